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
import { StoreUnavailableError } from '../errors.ts';
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

describe('SSE store reads that fail', () => {
  /** A stream over a store whose `events` reads answer as `reads` says, in turn (after the backlog read). */
  const open = async (reads: Array<() => Promise<OperationEvent[]>>) => {
    const clock = new ManualClock();
    const reported: unknown[] = [];
    let backlogRead = false;
    const store = {
      events: async (): Promise<OperationEvent[]> => {
        if (!backlogRead) {
          backlogRead = true;
          return [];
        }
        return (reads.shift() ?? (async () => []))();
      },
      get: async () => ({ status: 'NotStarted' }) as Operation,
      watch: () => () => {},
    } as unknown as OperationStore;
    const res = new RecordingResponse();
    await streamEvents(
      new EventEmitter() as IncomingMessage,
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
        heartbeatMs: 60_000,
        pollMs: 500,
        maxStreams: 10,
        onError: (error) => reported.push(error),
      },
    );
    /** Lets the reads started so far settle. */
    const settle = () => new Promise((resolve) => setImmediate(resolve));
    await settle();
    return { clock, res, reported, settle };
  };
  const event = (seq: number, status: OperationEvent['status']): OperationEvent => ({
    operationId: 'op_x',
    seq,
    status,
    at: 0,
    attempts: 1,
    error: null,
  });

  it('an unavailable store keeps the stream open, is told once per outage, and the stream resumes after it', async () => {
    const down = async (): Promise<OperationEvent[]> => {
      throw new StoreUnavailableError('The store cannot be reached.');
    };
    const { clock, res, reported, settle } = await open([down, down, down]);
    for (let i = 0; i < 3; i++) {
      clock.advance(500);
      await settle();
    }
    assert.equal(res.ended, false, 'the stream stays open through the outage');
    assert.equal(reported.length, 1, 'told once, not once per poll');
    assert.ok(reported[0] instanceof StoreUnavailableError);
    clock.advance(500);
    await settle();
    assert.equal(res.ended, false);
  });

  it('any other read failure is told and ends the stream (the client reconnects with Last-Event-ID)', async () => {
    const bug = new TypeError('a bug in reading events');
    const { clock, res, reported, settle } = await open([
      async () => [event(1, 'Running')],
      async () => {
        throw bug;
      },
    ]);
    clock.advance(500);
    await settle();
    assert.ok(res.written.some((chunk) => chunk.includes('op_x:1')));
    clock.advance(500);
    await settle();
    assert.deepEqual(reported, [bug]);
    assert.equal(res.ended, true);
  });
});
