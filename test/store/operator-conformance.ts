/**
 * The operator verbs of the OperationStore port (migration 010): attempt
 * history, lists and counts, redrive, discard, cancel between attempts and
 * replay paused per route. Every adapter passes it unchanged, beside the main
 * conformance suite, with a ManualClock for exact times.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttemptRecordInput, OperationStore } from '../../src/store/port.ts';
import { newOperation, type StoreFactory, storeFixture } from './store-fixture.ts';

const lease = (store: OperationStore, owner = 'w1', limit = 10, leaseMs = 1_000) =>
  store.lease({ owner, limit, leaseMs });

const ok = { status: 200, headers: [], body: Buffer.from('ok') };
const unavailable = { code: 'upstream-status', message: 'The upstream answered 503.', upstreamStatus: 503 };

export function operatorConformance(name: string, factory: StoreFactory): void {
  describe(`OperationStore operator verbs: ${name}`, () => {
    const fx = storeFixture(factory);

    /** Captures an operation and dead-letters it through a lease, as the workers would. */
    async function deadLettered(overrides: Parameters<typeof newOperation>[1] = {}, outcomeUnknown = false) {
      // The highest priority, so that it is the one leased whatever else is waiting.
      const op = await fx.store.capture(newOperation(fx.clock, { priority: 100, ...overrides }));
      const [leased] = await fx.store.lease({ owner: 'dl', limit: 1, leaseMs: 1_000, excludeRoutes: [] });
      assert.equal(leased?.id, op.id);
      const error = outcomeUnknown ? { code: 'outcome-unknown', message: 'unknown' } : unavailable;
      let token = leased.leaseToken;
      if (outcomeUnknown) {
        await fx.store.release(op.id, token, true);
        token = (await lease(fx.store, 'dl'))[0]!.leaseToken;
      }
      assert.equal(
        await fx.store.fail(op.id, token, { error, result: null, deadLetter: true, countsAsAttempt: true }),
        true,
      );
      return op;
    }

    it('keeps one record per attempt, written with the change that ends it, fenced like it, across reopening', async () => {
      const first: AttemptRecordInput = {
        startedAt: fx.clock.now() - 40,
        durationMs: 40,
        outcome: 'retry',
        upstreamStatus: null,
        error: 'connect ECONNREFUSED',
      };
      const op = await fx.store.capture(
        newOperation(fx.clock, { attempts: 1, firstAttempt: first, failoverReason: 'upstream unreachable' }),
      );
      assert.equal(op.failoverReason, 'upstream unreachable');
      const [held] = await lease(fx.store);
      fx.clock.advance(10);
      const second: AttemptRecordInput = {
        startedAt: fx.clock.now() - 7,
        durationMs: 7,
        outcome: 'retry',
        upstreamStatus: 503,
        error: 'The upstream answered 503.',
      };
      assert.equal(
        await fx.store.retry(
          op.id,
          held!.leaseToken,
          { nextAttemptAt: fx.clock.now(), error: unavailable, outcomeUnknown: false },
          second,
        ),
        true,
      );
      const [again] = await lease(fx.store);
      assert.equal(again?.id, op.id);
      const lost = { ...second, outcome: 'succeeded' as const, upstreamStatus: 200, error: null };
      assert.equal(await fx.store.complete(op.id, 'stranger', ok, lost), false, 'fenced: no record either');
      assert.equal(
        await fx.store.release(op.id, again!.leaseToken, true, { ...second, outcome: 'interrupted' }),
        true,
      );
      const [last] = await lease(fx.store);
      const third = { ...lost, startedAt: fx.clock.now(), durationMs: 12 };
      assert.equal(await fx.store.complete(op.id, last!.leaseToken, ok, third), true);

      await fx.store.close();
      fx.store = await fx.reopen();
      const log = await fx.store.attemptLog(op.id);
      assert.deepEqual(log, [
        { attempt: 1, ...first },
        { attempt: 2, ...second },
        { attempt: 3, ...second, outcome: 'interrupted' },
        { attempt: 4, ...third },
      ]);
      assert.equal((await fx.store.get(op.id))?.failoverReason, 'upstream unreachable');
      assert.deepEqual(await fx.store.attemptLog('unknown-id'), []);
    });

    it('a fail that is not an attempt writes no record; purging takes the history with the operation', async () => {
      const op = await fx.store.capture(newOperation(fx.clock));
      const [held] = await lease(fx.store);
      const attempt: AttemptRecordInput = {
        startedAt: fx.clock.now(),
        durationMs: 0,
        outcome: 'failed',
        upstreamStatus: null,
        error: 'x',
      };
      const error = { code: 'outcome-unknown', message: 'unknown' };
      assert.equal(
        await fx.store.fail(op.id, held!.leaseToken, {
          error,
          result: null,
          deadLetter: true,
          countsAsAttempt: false,
        }),
        true,
      );
      assert.deepEqual(await fx.store.attemptLog(op.id), []);
      const other = await fx.store.capture(newOperation(fx.clock));
      const [otherHeld] = await lease(fx.store);
      await fx.store.fail(
        other.id,
        otherHeld!.leaseToken,
        { error, result: null, deadLetter: false, countsAsAttempt: true },
        attempt,
      );
      assert.equal((await fx.store.attemptLog(other.id)).length, 1);
      fx.clock.advance(1);
      assert.equal(await fx.store.purge(fx.clock.now(), 10), 2);
      assert.deepEqual(await fx.store.attemptLog(other.id), []);
    });

    it('lists newest first by status, route and dead letters, a page at a time, without bodies', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push(
          (await fx.store.capture(newOperation(fx.clock, { route: i % 2 ? 'orders' : 'payments' }))).id,
        );
        fx.clock.advance(1);
      }
      const dead = await deadLettered({ route: 'orders' });
      const all = await fx.store.listOperations({ limit: 10 });
      assert.deepEqual(
        all.map((o) => o.id),
        [dead.id, ...[...ids].reverse()],
      );
      assert.equal('request' in all[0]!, false);
      assert.equal(all[1]?.method, 'POST');
      assert.equal(all[1]?.path, '/payments');

      const page1 = await fx.store.listOperations({ limit: 2 });
      const last = page1.at(-1)!;
      const page2 = await fx.store.listOperations({
        limit: 2,
        after: { createdAt: last.createdAt, id: last.id },
      });
      assert.deepEqual(
        [...page1, ...page2].map((o) => o.id),
        all.slice(0, 4).map((o) => o.id),
      );
      // Operations created in the same millisecond are split by id, none lost or repeated.
      const sameMs = await Promise.all(
        [1, 2, 3].map(() => fx.store.capture(newOperation(fx.clock, { route: 'same' }))),
      );
      const seen: string[] = [];
      let after: { createdAt: number; id: string } | undefined;
      for (;;) {
        const page = await fx.store.listOperations({ route: 'same', limit: 1, ...(after ? { after } : {}) });
        if (page.length === 0) break;
        seen.push(page[0]!.id);
        after = { createdAt: page[0]!.createdAt, id: page[0]!.id };
      }
      assert.deepEqual(
        seen,
        sameMs
          .map((o) => o.id)
          .sort()
          .reverse(),
      );

      const orders = await fx.store.listOperations({ route: 'orders', limit: 10 });
      assert.deepEqual(
        orders.map((o) => o.id),
        [dead.id, ids[3], ids[1]],
      );
      const deadOnes = await fx.store.listOperations({ deadLettered: true, limit: 10 });
      assert.deepEqual(
        deadOnes.map((o) => [o.id, o.status, o.deadLetteredAt, o.error?.code]),
        [[dead.id, 'Failed', fx.clock.now(), 'upstream-status']],
      );
      assert.equal((await fx.store.listOperations({ deadLettered: false, limit: 10 })).length, 8);
      const failedPayments = await fx.store.listOperations({
        status: 'Failed',
        route: 'payments',
        limit: 10,
      });
      assert.deepEqual(failedPayments, []);
      const notStarted = await fx.store.listOperations({ status: 'NotStarted', limit: 10 });
      assert.equal(notStarted.length, 8);
    });

    it('redrives a dead letter: due now, leasable, with a fresh retry budget; refuses others', async () => {
      const waiting = await fx.store.capture(newOperation(fx.clock));
      const dead = await deadLettered();
      assert.deepEqual(await fx.store.redrive('no-such-id'), { outcome: 'unknown' });
      const refused = await fx.store.redrive(waiting.id);
      assert.equal(refused.outcome, 'refused');
      assert.equal(refused.outcome === 'refused' && refused.reason, 'not-dead-lettered');

      fx.clock.advance(1_000);
      const redriven = await fx.store.redrive(dead.id);
      assert.equal(redriven.outcome, 'redriven');
      const op = await fx.store.get(dead.id);
      assert.equal(op?.status, 'NotStarted');
      assert.equal(op?.deadLetteredAt, null);
      assert.equal(op?.nextAttemptAt, fx.clock.now());
      assert.equal(op?.redrivenAt, fx.clock.now());
      assert.equal(op?.attemptsAtRedrive, 1);
      assert.equal(op?.attempts, 1, 'the attempt count goes on');
      const events = await fx.store.events(dead.id, 0);
      assert.deepEqual(
        events.map((e) => e.status),
        ['NotStarted', 'Running', 'Failed', 'NotStarted'],
      );
      assert.deepEqual(await fx.store.listOperations({ deadLettered: true, limit: 10 }), []);
      const again = await fx.store.redrive(dead.id);
      assert.equal(again.outcome === 'refused' && again.reason, 'not-dead-lettered', 'redriven once');
      const leased = await lease(fx.store, 'w2');
      assert.ok(leased.some((o) => o.id === dead.id));
    });

    it('redrives an operation whose outcome is unknown only when told to, and then no longer unknown', async () => {
      const dead = await deadLettered({}, true);
      assert.equal((await fx.store.get(dead.id))?.outcomeUnknown, true);
      const refused = await fx.store.redrive(dead.id);
      assert.equal(refused.outcome === 'refused' && refused.reason, 'outcome-unknown');
      assert.equal((await fx.store.get(dead.id))?.deadLetteredAt !== null, true, 'left dead-lettered');
      const redriven = await fx.store.redrive(dead.id, { includeOutcomeUnknown: true });
      assert.equal(redriven.outcome, 'redriven');
      assert.equal(redriven.outcome === 'redriven' && redriven.operation.outcomeUnknown, false);
    });

    it('discards a dead letter: it stays Failed and leaves the list; others are refused', async () => {
      const dead = await deadLettered();
      const waiting = await fx.store.capture(newOperation(fx.clock));
      assert.deepEqual(await fx.store.discard('no-such-id'), { outcome: 'unknown' });
      const refused = await fx.store.discard(waiting.id);
      assert.equal(refused.outcome, 'refused');
      fx.clock.advance(5);
      const discarded = await fx.store.discard(dead.id);
      assert.equal(discarded.outcome, 'discarded');
      const op = await fx.store.get(dead.id);
      assert.deepEqual([op?.status, op?.deadLetteredAt, op?.discardedAt], ['Failed', null, fx.clock.now()]);
      assert.equal((await fx.store.counts()).deadLettered, 0);
      assert.equal(
        (await fx.store.redrive(dead.id)).outcome,
        'refused',
        'a discarded operation is not redriven',
      );
    });

    it('cancels a Running operation between attempts only when asked, and never one holding a lease', async () => {
      const op = await fx.store.capture(newOperation(fx.clock));
      const [held] = await lease(fx.store);
      assert.equal(
        await fx.store.cancel(op.id, { betweenAttempts: true }),
        false,
        'leased: an attempt is in flight',
      );
      await fx.store.retry(op.id, held!.leaseToken, {
        nextAttemptAt: fx.clock.now() + 1_000,
        error: unavailable,
        outcomeUnknown: false,
      });
      assert.equal(await fx.store.cancel(op.id), false, 'the public cancel stops at NotStarted');
      assert.equal(await fx.store.cancel(op.id, { betweenAttempts: true }), true);
      assert.equal((await fx.store.get(op.id))?.status, 'Canceled');
      fx.clock.advance(1_000);
      assert.deepEqual(await lease(fx.store), []);
    });

    it('counts the backlog and dead letters by route', async () => {
      await fx.store.capture(newOperation(fx.clock, { route: 'payments' }));
      await fx.store.capture(newOperation(fx.clock, { route: 'payments' }));
      await deadLettered({ route: 'orders' });
      const done = await fx.store.capture(
        newOperation(fx.clock, { route: 'orders', nextAttemptAt: fx.clock.now() + 60_000 }),
      );
      assert.deepEqual(await fx.store.routeCounts(), {
        payments: { backlog: 2, deadLettered: 0 },
        orders: { backlog: 1, deadLettered: 1 },
      });
      assert.equal(await fx.store.cancel(done.id), true);
      assert.deepEqual((await fx.store.routeCounts()).orders, { backlog: 0, deadLettered: 1 });
    });
  });
}
