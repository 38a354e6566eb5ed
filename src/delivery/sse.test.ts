/**
 * An event stream's cost does not grow with its age: however long it stays
 * open, it holds one timer per loop (poll, heartbeat), driven here through an
 * hour of heartbeats on a manual clock.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { ManualClock } from '../../test/support/manual-clock.ts';
import type { Timer } from '../clock.ts';
import type { Operation, OperationEvent, OperationStore } from '../store/port.ts';
import { EventHub } from './event-hub.ts';
import { streamEvents } from './sse.ts';

/** Counts the timers still scheduled, and those cancelled. */
class CountingClock extends ManualClock {
  readonly live = new Set<Timer>();
  cleared = 0;
  override setTimeout(fn: () => void, ms: number): Timer {
    const timer: Timer = super.setTimeout(() => {
      this.live.delete(timer);
      fn();
    }, ms);
    this.live.add(timer);
    return timer;
  }
  override clearTimeout(timer: Timer): void {
    this.cleared++;
    this.live.delete(timer);
    super.clearTimeout(timer);
  }
}

/** A response that records what is written; `close` is emitted by the test. */
class RecordingResponse extends EventEmitter {
  readonly written: string[] = [];
  ended = false;
  writeHead(): this {
    return this;
  }
  flushHeaders(): void {}
  write(chunk: string): boolean {
    this.written.push(chunk);
    return true;
  }
  end(): void {
    this.ended = true;
  }
}

describe('SSE stream lifetime', () => {
  it('an hour of heartbeats and polls leaves at most one timer per loop, and ending the stream clears them', async () => {
    const clock = new CountingClock();
    const store = {
      events: async (): Promise<OperationEvent[]> => [],
      get: async () => ({ status: 'NotStarted' }) as Operation,
      watch: () => () => {},
    } as unknown as OperationStore;
    const req = new EventEmitter() as IncomingMessage;
    const res = new RecordingResponse();
    await streamEvents(
      req,
      res as unknown as ServerResponse,
      'op_x',
      0,
      {},
      {
        store,
        hub: new EventHub(store),
        clock,
        publicUrl: 'http://gateway.test',
        retryMs: 2_000,
        heartbeatMs: 1_000,
        pollMs: 500,
        maxStreams: 10,
      },
    );
    for (let minute = 0; minute < 60; minute++) {
      clock.advance(60_000);
      await new Promise((resolve) => setImmediate(resolve)); // lets the polls' store reads settle
      assert.ok(clock.live.size <= 2, `${clock.live.size} timers scheduled after ${minute + 1} min`);
    }
    assert.equal(res.written.filter((chunk) => chunk === ': heartbeat\n\n').length, 3_600);

    clock.cleared = 0;
    res.emit('close');
    assert.ok(res.ended);
    assert.equal(clock.live.size, 0, 'no timer left once the stream ends');
    assert.ok(
      clock.cleared <= 2,
      `ending the stream cancelled ${clock.cleared} timers: it kept every one it ever made`,
    );
  });
});
