import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HookedAbortController, offAbort, onAbort } from './abort-hook.ts';

describe('abort hooks', () => {
  it('calls the hook once, after the signal has aborted, and then its listeners are done too', () => {
    const controller = new HookedAbortController();
    const seen: string[] = [];
    controller.signal.addEventListener('abort', () => seen.push('listener'));
    onAbort(controller.signal, () =>
      seen.push(`hook ${controller.signal.aborted} ${controller.signal.reason}`),
    );
    controller.abort('why');
    controller.abort('again');
    assert.deepEqual(seen, ['listener', 'hook true why']);
  });

  it('a second caller on the same signal, and any other signal, get a listener: every one is told', () => {
    const hooked = new HookedAbortController();
    const plain = new AbortController();
    const seen: string[] = [];
    onAbort(hooked.signal, () => seen.push('first'));
    onAbort(hooked.signal, () => seen.push('second'));
    onAbort(plain.signal, () => seen.push('plain'));
    hooked.abort(new Error('x'));
    plain.abort();
    assert.deepEqual(seen.sort(), ['first', 'plain', 'second']);
  });

  it('offAbort stops it, hook or listener, and frees the hook for the next caller', () => {
    const controller = new HookedAbortController();
    const plain = new AbortController();
    const seen: string[] = [];
    const first = () => seen.push('first');
    const stopped = () => seen.push('stopped');
    onAbort(controller.signal, first);
    onAbort(controller.signal, stopped); // a listener: the hook is taken
    offAbort(controller.signal, stopped);
    offAbort(controller.signal, first);
    onAbort(controller.signal, () => seen.push('next')); // the hook again
    onAbort(plain.signal, stopped);
    offAbort(plain.signal, stopped);
    controller.abort(new Error('x'));
    plain.abort();
    assert.deepEqual(seen, ['next']);
  });
});
