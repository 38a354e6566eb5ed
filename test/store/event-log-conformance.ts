/**
 * The event log (EventLog in src/store/port.ts): each status change a
 * numbered event in the commit of the change, and watchers told.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newOperationId } from '../../src/engine/operation-id.ts';
import { lease, newOperation, type StoreFactory, storeFixture } from './store-fixture.ts';

export function eventLogConformance(name: string, factory: StoreFactory): void {
  describe(`EventLog conformance: ${name}`, () => {
    const fx = storeFixture(factory);

    it('records each status change as a numbered event in the same commit, and tells watchers', async () => {
      const heard: string[] = [];
      const stop = fx.store.watch((id) => heard.push(id));
      const op = await fx.store.capture(newOperation(fx.clock));
      const [first] = await lease(fx.store);
      const error = { code: 'upstream-status', message: 'The upstream answered 503.', upstreamStatus: 503 };
      await fx.store.retry(op.id, first!.leaseToken, {
        nextAttemptAt: fx.clock.now(),
        error,
        outcomeUnknown: false,
      });
      const [second] = await lease(fx.store);
      fx.clock.advance(5);
      await fx.store.fail(op.id, second!.leaseToken, {
        error,
        result: null,
        deadLetter: true,
        countsAsAttempt: true,
      });
      const events = await fx.store.events(op.id, 0);
      assert.deepEqual(
        events.map((e) => [e.seq, e.status, e.attempts]),
        [
          [1, 'NotStarted', 0],
          [2, 'Running', 0],
          [3, 'Failed', 2],
        ],
        'one event per status change: a retry or a second lease is not one',
      );
      assert.equal(events[2]?.at, fx.clock.now());
      assert.deepEqual(events[2]?.error, error);
      assert.deepEqual(
        (await fx.store.events(op.id, 2)).map((e) => e.seq),
        [3],
      );
      assert.deepEqual(await fx.store.events(op.id, 3), []);
      assert.deepEqual(await fx.store.events(newOperationId(), 0), []);
      // Watching is a hint that may come late: wait for the last one to arrive.
      for (let i = 0; i < 100 && heard.filter((id) => id === op.id).length < 3; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      stop();
      assert.ok(heard.filter((id) => id === op.id).length >= 3, `heard ${heard.length} notices`);
    });
  });
}
