import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { type LifecycleEvent, LifecycleEvents, traceIdOf } from './lifecycle.ts';

const captured = (): LifecycleEvent => ({
  type: 'operation:captured',
  at: 1,
  operationId: 'op1',
  route: 'default',
  traceId: null,
  reason: 'upstream-status',
  detail: 'upstream answered 503',
  attempts: 1,
});

describe('LifecycleEvents', () => {
  it('delivers each event to the listeners of its type and to every onAny listener, in order', () => {
    const events = new LifecycleEvents();
    const seen: string[] = [];
    events.on('operation:captured', (e) => seen.push(`typed:${e.operationId}`));
    events.on('sync:finished', () => seen.push('wrong type'));
    const stop = events.onAny((e) => seen.push(`any:${e.type}`));
    events.emit(captured());
    stop();
    events.emit(captured());
    assert.deepEqual(seen, ['typed:op1', 'any:operation:captured', 'typed:op1']);
  });

  it('a subscriber that throws does not reach the emitter nor stop the others; it is reported as subscriber:error', () => {
    const events = new LifecycleEvents();
    const reports: LifecycleEvent[] = [];
    const after: string[] = [];
    events.on('operation:captured', () => {
      throw new Error('broken subscriber');
    });
    events.on('operation:captured', (e) => after.push(e.operationId));
    events.on('subscriber:error', (e) => reports.push(e));
    assert.doesNotThrow(() => events.emit(captured()));
    assert.deepEqual(after, ['op1']);
    assert.equal(reports.length, 1);
    const report = reports[0] as Extract<LifecycleEvent, { type: 'subscriber:error' }>;
    assert.equal(report.eventType, 'operation:captured');
    assert.equal((report.error as Error).message, 'broken subscriber');
  });

  it('a subscriber whose promise rejects is reported too', async () => {
    const events = new LifecycleEvents();
    events.on('operation:captured', async () => {
      throw new Error('async failure');
    });
    const reported = new Promise<LifecycleEvent>((resolve) => events.on('subscriber:error', resolve));
    events.emit(captured());
    const report = (await reported) as Extract<LifecycleEvent, { type: 'subscriber:error' }>;
    assert.equal((report.error as Error).message, 'async failure');
  });

  it('with nobody to report to, or a reporter that fails too, the failure becomes a process warning', async () => {
    const events = new LifecycleEvents();
    events.on('operation:captured', () => {
      throw new Error('nobody listens');
    });
    const warned = once(process, 'warning');
    events.emit(captured());
    const [warning] = (await warned) as [Error & { code?: string }];
    assert.equal(warning.code, 'SPILLWAY_SUBSCRIBER_ERROR');
    assert.match(warning.message, /nobody listens/);

    const looping = new LifecycleEvents();
    looping.onAny(() => {
      throw new Error('fails on every event');
    });
    const warnedAgain = once(process, 'warning');
    assert.doesNotThrow(() => looping.emit(captured()));
    const [second] = (await warnedAgain) as [Error & { code?: string }];
    assert.match(second.message, /subscriber:error/);
  });
});

describe('traceIdOf', () => {
  it('reads the trace id of a traceparent; null for none, a malformed one or the all-zero id', () => {
    assert.equal(
      traceIdOf('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'),
      '0af7651916cd43dd8448eb211c80319c',
    );
    assert.equal(traceIdOf(null), null);
    assert.equal(traceIdOf('garbage'), null);
    assert.equal(traceIdOf(`00-${'0'.repeat(32)}-b7ad6b7169203331-01`), null);
  });
});
