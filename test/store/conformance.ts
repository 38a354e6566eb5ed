/**
 * The OperationStore conformance suite: every adapter must pass it unchanged
 * (SQLite now, PostgreSQL next). Time comes from a ManualClock, so lease
 * expiry and due times are exact.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { newOperationId } from '../../src/engine/operation-id.ts';
import {
  emptyStatusCounts,
  type IdempotencyClaim,
  type LeasedOperation,
  type NewOperation,
  type OperationStore,
  type WebhookAttemptRecord,
} from '../../src/store/port.ts';
import { ManualClock } from '../support/manual-clock.ts';

export type StoreFactory = (
  clock: ManualClock,
) => Promise<{ store: OperationStore; reopen(): Promise<OperationStore> }>;

export function newOperation(clock: ManualClock, overrides: Partial<NewOperation> = {}): NewOperation {
  return {
    id: newOperationId(),
    route: 'default',
    request: {
      method: 'POST',
      path: '/payments',
      query: 'a=1',
      headers: [
        ['content-type', 'application/json'],
        ['x-multi', '1'],
        ['x-multi', '2'],
      ],
      body: new Uint8Array(randomBytes(64)),
    },
    priority: 0,
    idempotencyKey: null,
    tenant: null,
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    tracestate: null,
    attempts: 0,
    nextAttemptAt: clock.now(),
    outcomeUnknown: false,
    ...overrides,
  };
}

const lease = (store: OperationStore, owner = 'w1', limit = 10, leaseMs = 1_000) =>
  store.lease({ owner, limit, leaseMs });

/** The token of the lease on `id` among `leased`. */
const tokenOf = (leased: LeasedOperation[], id: string): string => {
  const held = leased.find((op) => op.id === id);
  assert.ok(held, `${id} was leased`);
  return held.leaseToken;
};

export function storeConformance(name: string, factory: StoreFactory): void {
  describe(`OperationStore conformance: ${name}`, () => {
    let clock: ManualClock;
    let store: OperationStore;
    let reopen: () => Promise<OperationStore>;
    beforeEach(async () => {
      clock = new ManualClock();
      ({ store, reopen } = await factory(clock));
    });
    afterEach(async () => {
      await store.close();
    });

    it('captures durably: the record survives closing and reopening, byte for byte', async () => {
      const input = newOperation(clock);
      const captured = await store.capture(input);
      assert.equal(captured.status, 'NotStarted');
      await store.close();
      store = await reopen();
      const op = await store.get(input.id);
      assert.ok(op);
      assert.deepEqual(op.request.headers, input.request.headers);
      assert.deepEqual(Buffer.from(op.request.body), Buffer.from(input.request.body));
      assert.equal(op.request.query, 'a=1');
      assert.equal(op.traceparent, input.traceparent);
      assert.equal(op.createdAt, clock.now());
    });

    it('rejects a second capture with the same id and keeps the first', async () => {
      const input = newOperation(clock);
      await store.capture(input);
      await assert.rejects(store.capture({ ...input, route: 'other' }));
      assert.equal((await store.get(input.id))?.route, 'default');
    });

    it('commits captures arriving together, each resolving on its own', async () => {
      const inputs = Array.from({ length: 50 }, () => newOperation(clock));
      const duplicate = { ...inputs[0]!, route: 'dup' };
      const results = await Promise.allSettled([
        ...inputs.map((i) => store.capture(i)),
        store.capture(duplicate),
      ]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 50);
      assert.equal(results.at(-1)!.status, 'rejected', 'one failing write does not sink its batch');
      assert.equal((await store.counts()).NotStarted, 50);
    });

    it('leases due operations by priority, then oldest first, and not those due later', async () => {
      const low = await store.capture(newOperation(clock));
      clock.advance(10);
      const high = await store.capture(newOperation(clock, { priority: 5 }));
      clock.advance(10);
      const later = await store.capture(newOperation(clock, { nextAttemptAt: clock.now() + 60_000 }));
      const leased = await lease(store);
      assert.deepEqual(
        leased.map((o) => o.id),
        [high.id, low.id],
      );
      assert.ok(leased.every((o) => o.status === 'Running' && o.leaseOwner === 'w1'));
      assert.deepEqual(await lease(store, 'w2'), [], 'a held lease is not leased again');
      clock.advance(60_000);
      const expiredAndLater = await lease(store, 'w2');
      assert.ok(expiredAndLater.some((o) => o.id === later.id));
    });

    it('replay order is priority, then due time, across routes; excluded routes are passed over', async () => {
      const at = (ms: number) => clock.now() + ms;
      // Captured in one order, due in another: due time decides, not capture time.
      const late = await store.capture(newOperation(clock, { route: 'a', nextAttemptAt: at(-10) }));
      const early = await store.capture(newOperation(clock, { route: 'b', nextAttemptAt: at(-30) }));
      const middle = await store.capture(newOperation(clock, { route: 'a', nextAttemptAt: at(-20) }));
      const urgent = await store.capture(
        newOperation(clock, { route: 'c', priority: 1, nextAttemptAt: at(-1) }),
      );
      const paused = await store.capture(newOperation(clock, { route: 'p', nextAttemptAt: at(-99) }));
      await store.capture(newOperation(clock, { route: 'a', nextAttemptAt: at(1) })); // not due
      const leased = await store.lease({ owner: 'w1', limit: 3, leaseMs: 1_000, excludeRoutes: ['p'] });
      assert.deepEqual(
        leased.map((o) => o.id),
        [urgent.id, early.id, middle.id],
      );
      assert.deepEqual(
        (await store.lease({ owner: 'w1', limit: 10, leaseMs: 1_000, excludeRoutes: ['p'] })).map(
          (o) => o.id,
        ),
        [late.id],
      );
      assert.deepEqual(
        (await lease(store)).map((o) => o.id),
        [paused.id],
      );
    });

    it('counts follow every change: capture, lease, finish, dead-letter, cancel, purge', async () => {
      const ok = { status: 200, headers: [], body: new Uint8Array() };
      const error = { code: 'x', message: 'x' };
      const [a, b, c, d] = [
        await store.capture(newOperation(clock, { route: 'r1' })),
        await store.capture(newOperation(clock, { route: 'r2' })),
        await store.capture(newOperation(clock, { route: 'r2' })),
        await store.capture(newOperation(clock, { route: 'r1', nextAttemptAt: clock.now() + 60_000 })),
      ];
      const leased = await lease(store);
      assert.deepEqual(await store.counts(), { ...emptyStatusCounts(), Running: 3, NotStarted: 1 });
      await store.complete(a!.id, tokenOf(leased, a!.id), ok);
      await store.fail(b!.id, tokenOf(leased, b!.id), {
        error,
        result: null,
        deadLetter: true,
        countsAsAttempt: true,
      });
      await store.fail(c!.id, tokenOf(leased, c!.id), {
        error,
        result: null,
        deadLetter: false,
        countsAsAttempt: true,
      });
      await store.cancel(d!.id);
      assert.deepEqual(await store.counts(), {
        ...emptyStatusCounts(),
        Succeeded: 1,
        Failed: 2,
        Canceled: 1,
        deadLettered: 1,
      });
      clock.advance(1);
      assert.equal(await store.purge(clock.now(), 10), 4);
      assert.deepEqual(await store.counts(), emptyStatusCounts());
    });

    it('leases nothing from excluded routes', async () => {
      const paused = await store.capture(newOperation(clock, { route: 'payments' }));
      const other = await store.capture(newOperation(clock, { route: 'orders' }));
      const leased = await store.lease({
        owner: 'w1',
        limit: 10,
        leaseMs: 1_000,
        excludeRoutes: ['payments'],
      });
      assert.deepEqual(
        leased.map((o) => o.id),
        [other.id],
      );
      assert.equal((await lease(store, 'w2'))[0]?.id, paused.id);
    });

    it('leases a function route only in a process that defines it, and only those without an upstream', async () => {
      const plain = await store.capture(newOperation(clock, { route: 'payments' }));
      const charge = await store.capture(newOperation(clock, { route: 'fn:charge' }));
      const refund = await store.capture(newOperation(clock, { route: 'fn:refund' }));
      const ids = (leased: LeasedOperation[]) => leased.map((o) => o.id).sort();
      // A gateway or worker defines no function: it never takes one.
      assert.deepEqual(ids(await lease(store, 'gateway')), [plain.id]);
      // A process without an upstream that defines charge takes charge, and nothing else.
      assert.deepEqual(
        ids(
          await store.lease({
            owner: 'app',
            limit: 10,
            leaseMs: 1_000,
            functions: ['fn:charge'],
            proxiedRoutes: false,
          }),
        ),
        [charge.id],
      );
      assert.deepEqual(
        ids(
          await store.lease({
            owner: 'app2',
            limit: 10,
            leaseMs: 1_000,
            functions: ['fn:refund', 'fn:other'],
          }),
        ),
        [refund.id],
      );
    });

    it('respects the limit', async () => {
      for (let i = 0; i < 5; i++) await store.capture(newOperation(clock));
      assert.equal((await lease(store, 'w1', 2)).length, 2);
      assert.equal((await lease(store, 'w2', 10)).length, 3);
    });

    it('recovers an expired lease as an attempt with an unknown outcome', async () => {
      const op = await store.capture(newOperation(clock));
      const [dead] = await lease(store, 'dead-worker', 10, 1_000);
      clock.advance(999);
      assert.deepEqual(await lease(store, 'w2'), []);
      clock.advance(1);
      assert.deepEqual(await lease(store, 'w2'), [], 'this call hands the expired lease back…');
      const [recovered] = await lease(store, 'w2');
      assert.equal(recovered?.id, op.id, '…and the next leases it');
      assert.equal(recovered?.attempts, 1);
      assert.equal(recovered?.outcomeUnknown, true);
      assert.equal(
        await store.complete(op.id, dead!.leaseToken, { status: 200, headers: [], body: new Uint8Array() }),
        false,
        'the old holder is fenced off',
      );
    });

    it('an adopted capture holds its lease until it expires', async () => {
      const op = await store.capture(
        newOperation(clock, { lease: { owner: 'gw', token: 'adopted', expiresAt: clock.now() + 5_000 } }),
      );
      assert.equal(op.status, 'Running');
      assert.deepEqual(await lease(store), []);
      assert.equal(
        await store.complete(op.id, 'adopted', {
          status: 201,
          headers: [['x', '1']],
          body: Buffer.from('ok'),
        }),
        true,
      );
      const done = await store.get(op.id);
      assert.equal(done?.status, 'Succeeded');
      assert.equal(done?.attempts, 1);
      assert.deepEqual(done?.result?.headers, [['x', '1']]);
      assert.equal(Buffer.from(done!.result!.body).toString(), 'ok');
    });

    it('retry puts the operation back with its next attempt time and clears the lease', async () => {
      const op = await store.capture(newOperation(clock));
      const [held] = await lease(store);
      const error = { code: 'upstream-status', message: 'The upstream answered 503.', upstreamStatus: 503 };
      assert.equal(
        await store.retry(op.id, held!.leaseToken, {
          nextAttemptAt: clock.now() + 500,
          error,
          outcomeUnknown: false,
        }),
        true,
      );
      const waiting = await store.get(op.id);
      assert.equal(waiting?.status, 'Running');
      assert.equal(waiting?.attempts, 1);
      assert.equal(waiting?.leaseOwner, null);
      assert.deepEqual(waiting?.error, error);
      assert.equal(await store.nextDueAt(), clock.now() + 500);
      assert.deepEqual(await lease(store), []);
      clock.advance(500);
      assert.equal((await lease(store)).length, 1);
    });

    it('fail ends the operation, dead-lettered or not, counting the attempt only when asked', async () => {
      const a = await store.capture(newOperation(clock));
      const b = await store.capture(newOperation(clock));
      const leased = await lease(store);
      const error = { code: 'outcome-unknown', message: 'unknown' };
      assert.equal(
        await store.fail(a.id, tokenOf(leased, a.id), {
          error,
          result: null,
          deadLetter: true,
          countsAsAttempt: false,
        }),
        true,
      );
      const response = { status: 422, headers: [], body: Buffer.from('no') };
      assert.equal(
        await store.fail(b.id, tokenOf(leased, b.id), {
          error,
          result: response,
          deadLetter: false,
          countsAsAttempt: true,
        }),
        true,
      );
      const [fa, fb] = [await store.get(a.id), await store.get(b.id)];
      assert.equal(fa?.status, 'Failed');
      assert.equal(fa?.attempts, 0);
      assert.equal(fa?.deadLetteredAt, clock.now());
      assert.equal(fb?.attempts, 1);
      assert.equal(fb?.deadLetteredAt, null);
      assert.equal(fb?.result?.status, 422);
      const counts = await store.counts();
      assert.equal(counts.Failed, 2);
      assert.equal(counts.deadLettered, 1);
      assert.equal(
        await store.complete(a.id, tokenOf(leased, a.id), response),
        false,
        'terminal states never change',
      );
    });

    it('release hands the lease back, counting an attempt in flight as outcome unknown', async () => {
      const a = await store.capture(newOperation(clock));
      const b = await store.capture(newOperation(clock));
      const leased = await lease(store);
      assert.equal(await store.release(a.id, tokenOf(leased, a.id), true), true);
      assert.equal(await store.release(b.id, tokenOf(leased, b.id), false), true);
      const [ra, rb] = [await store.get(a.id), await store.get(b.id)];
      assert.deepEqual([ra?.attempts, ra?.outcomeUnknown, ra?.leaseOwner], [1, true, null]);
      assert.deepEqual([rb?.attempts, rb?.outcomeUnknown, rb?.leaseOwner], [0, false, null]);
      assert.equal((await lease(store, 'w2')).length, 2, 'released operations are due at once');
    });

    describe('lease tokens: every write that ends or extends a lease is fenced by its token', () => {
      const ok = { status: 200, headers: [], body: new Uint8Array() };
      const error = { code: 'upstream-status', message: 'The upstream answered 503.', upstreamStatus: 503 };

      it('same owner, two holders: the stale holder changes nothing, the live one finishes', async () => {
        const op = await store.capture(newOperation(clock));
        const [stale] = await lease(store, 'gw', 10, 1_000);
        clock.advance(1_000);
        await lease(store, 'gw', 10, 1_000); // hands the expired lease back
        const [live] = await lease(store, 'gw', 10, 1_000);
        assert.equal(live?.id, op.id);
        assert.ok(stale?.leaseToken && live?.leaseToken);
        assert.notEqual(stale.leaseToken, live.leaseToken, 'each lease has its own token');
        const before = await store.get(op.id);
        assert.equal(await store.complete(op.id, stale.leaseToken, ok), false);
        assert.equal(
          await store.retry(op.id, stale.leaseToken, {
            nextAttemptAt: clock.now(),
            error,
            outcomeUnknown: false,
          }),
          false,
        );
        assert.equal(
          await store.fail(op.id, stale.leaseToken, {
            error,
            result: null,
            deadLetter: true,
            countsAsAttempt: true,
          }),
          false,
        );
        assert.equal(await store.release(op.id, stale.leaseToken, true), false);
        assert.equal(await store.extendLease(op.id, stale.leaseToken, clock.now() + 60_000), false);
        assert.deepEqual(await store.get(op.id), before, 'the stale holder changed nothing');
        assert.equal(await store.complete(op.id, live.leaseToken, ok), true, 'the live holder finishes');
        assert.equal((await store.get(op.id))?.status, 'Succeeded');
      });

      it('a late retry or release after expiry changes nothing and keeps the new holder leased', async () => {
        const a = await store.capture(newOperation(clock));
        const b = await store.capture(newOperation(clock));
        const first = await lease(store, 'w1', 10, 1_000);
        clock.advance(1_500);
        await lease(store, 'w2', 10, 1_000); // hands the expired leases back
        const second = await lease(store, 'w2', 10, 1_000);
        assert.equal(second.length, 2);
        const token = (leased: typeof first, id: string) => leased.find((o) => o.id === id)!.leaseToken;
        assert.equal(
          await store.retry(a.id, token(first, a.id), {
            nextAttemptAt: clock.now(),
            error,
            outcomeUnknown: false,
          }),
          false,
        );
        assert.equal(await store.release(b.id, token(first, b.id), false), false);
        for (const id of [a.id, b.id]) {
          const held = await store.get(id);
          assert.deepEqual([held?.leaseOwner, held?.attempts, held?.error], ['w2', 1, null], id);
        }
        assert.deepEqual(await lease(store, 'w3'), [], 'still held: nothing is sent twice');
        assert.equal(await store.release(b.id, token(second, b.id), false), true);
      });

      it('an expired lease is handed back even before anyone leases it again: its holder is fenced off', async () => {
        const op = await store.capture(newOperation(clock, { route: 'paused' }));
        const [held] = await lease(store, 'w1', 10, 1_000);
        clock.advance(1_000);
        // A lease call that takes nothing of that route still hands the lost lease back.
        assert.deepEqual(
          await store.lease({ owner: 'w2', limit: 10, leaseMs: 1_000, excludeRoutes: ['paused'] }),
          [],
        );
        assert.equal(await store.complete(op.id, held!.leaseToken, ok), false);
        const lost = await store.get(op.id);
        assert.deepEqual(
          [lost?.status, lost?.leaseOwner, lost?.attempts, lost?.outcomeUnknown],
          ['Running', null, 1, true],
          'the lost attempt is counted, its outcome unknown',
        );
      });

      it('a heartbeat keeps a lease past its first expiry', async () => {
        const op = await store.capture(newOperation(clock));
        const [held] = await lease(store, 'w1', 10, 1_000);
        clock.advance(800);
        assert.equal(await store.extendLease(op.id, 'not-the-token', clock.now() + 1_000), false);
        assert.equal(await store.extendLease(op.id, held!.leaseToken, clock.now() + 1_000), true);
        assert.equal((await store.get(op.id))?.leaseExpiresAt, clock.now() + 1_000);
        clock.advance(800);
        assert.deepEqual(await lease(store, 'w2'), [], 'extended: not taken');
        assert.equal(await store.nextDueAt(), clock.now() + 200);
        assert.equal(await store.complete(op.id, held!.leaseToken, ok), true);
        assert.equal(
          await store.extendLease(op.id, held!.leaseToken, clock.now() + 1_000),
          false,
          'finished',
        );
      });

      it('adoption is just another lease: a later lease of the same owner fences the adopted attempt', async () => {
        const token = randomUUID();
        const op = await store.capture(
          newOperation(clock, { lease: { owner: 'gw', token, expiresAt: clock.now() + 1_000 } }),
        );
        assert.equal(await store.extendLease(op.id, token, clock.now() + 2_000), true);
        clock.advance(2_000);
        await lease(store, 'gw'); // hands the expired lease back
        const [replay] = await lease(store, 'gw');
        assert.equal(replay?.id, op.id);
        assert.equal(await store.complete(op.id, token, ok), false, 'the adopted attempt lost its lease');
        assert.equal(await store.complete(op.id, replay!.leaseToken, ok), true);
      });

      it('leases last as long as their route asks', async () => {
        const fast = await store.capture(newOperation(clock, { route: 'fast' }));
        const slow = await store.capture(newOperation(clock, { route: 'slow' }));
        const leased = await store.lease({
          owner: 'w1',
          limit: 10,
          leaseMs: 1_000,
          leaseMsByRoute: { slow: 20_000 },
        });
        const expiry = Object.fromEntries(leased.map((o) => [o.id, o.leaseExpiresAt]));
        assert.deepEqual(expiry, { [fast.id]: clock.now() + 1_000, [slow.id]: clock.now() + 20_000 });
        clock.advance(1_000);
        await lease(store, 'w2'); // hands the expired lease back
        assert.deepEqual(
          (await lease(store, 'w2')).map((o) => o.id),
          [fast.id],
          "only the fast route's lease ran out",
        );
      });

      it('webhook deliveries: same owner, two holders: only the live token records or hands back', async () => {
        const op = await store.capture(
          newOperation(clock, { callbackUrl: `https://h.example/${randomUUID()}` }),
        );
        const [leasedOp] = await lease(store);
        await store.complete(op.id, leasedOp!.leaseToken, ok);
        const leaseHooks = () =>
          store.leaseWebhookDeliveries({ owner: 'gw', limit: 10, leaseMs: 1_000, endpoints: ['callback'] });
        const [stale] = await leaseHooks();
        clock.advance(1_000);
        const [live] = await leaseHooks();
        assert.ok(stale?.leaseToken && live?.leaseToken);
        assert.notEqual(stale.leaseToken, live.leaseToken);
        const delivered: WebhookAttemptRecord = {
          attempt: { at: clock.now(), status: 204, error: null, latencyMs: 3, responseSnippet: '' },
          next: { state: 'delivered' },
          lastError: null,
          disableEndpoint: false,
        };
        assert.equal(await store.recordWebhookAttempt(stale, stale.leaseToken, delivered), false);
        assert.equal(await store.releaseWebhookDelivery(stale, stale.leaseToken), false);
        assert.equal(await store.recordWebhookAttempt(live, live.leaseToken, delivered), true);
        assert.equal((await store.webhookDeliveries(op.id))[0]?.state, 'delivered');
      });
    });

    it('keeps route overrides across reopening, and clears them', async () => {
      assert.deepEqual(await store.overrides(), {});
      await store.setOverride('payments', 'forced-async');
      await store.setOverride('orders', 'forced-sync');
      await store.setOverride('payments', 'forced-sync');
      await store.close();
      store = await reopen();
      assert.deepEqual(await store.overrides(), { orders: 'forced-sync', payments: 'forced-sync' });
      await store.setOverride('orders', null);
      await store.setOverride('never-set', null);
      assert.deepEqual(await store.overrides(), { payments: 'forced-sync' });
    });

    it('records each status change as a numbered event in the same commit, and tells watchers', async () => {
      const heard: string[] = [];
      const stop = store.watch((id) => heard.push(id));
      const op = await store.capture(newOperation(clock));
      const [first] = await lease(store);
      const error = { code: 'upstream-status', message: 'The upstream answered 503.', upstreamStatus: 503 };
      await store.retry(op.id, first!.leaseToken, {
        nextAttemptAt: clock.now(),
        error,
        outcomeUnknown: false,
      });
      const [second] = await lease(store);
      clock.advance(5);
      await store.fail(op.id, second!.leaseToken, {
        error,
        result: null,
        deadLetter: true,
        countsAsAttempt: true,
      });
      const events = await store.events(op.id, 0);
      assert.deepEqual(
        events.map((e) => [e.seq, e.status, e.attempts]),
        [
          [1, 'NotStarted', 0],
          [2, 'Running', 0],
          [3, 'Failed', 2],
        ],
        'one event per status change: a retry or a second lease is not one',
      );
      assert.equal(events[2]?.at, clock.now());
      assert.deepEqual(events[2]?.error, error);
      assert.deepEqual(
        (await store.events(op.id, 2)).map((e) => e.seq),
        [3],
      );
      assert.deepEqual(await store.events(op.id, 3), []);
      assert.deepEqual(await store.events(newOperationId(), 0), []);
      // Watching is a hint that may come late: wait for the last one to arrive.
      for (let i = 0; i < 100 && heard.filter((id) => id === op.id).length < 3; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      stop();
      assert.ok(heard.filter((id) => id === op.id).length >= 3, `heard ${heard.length} notices`);
    });

    it('starts an adopted capture at Running, and completes it with an event', async () => {
      const op = await store.capture(
        newOperation(clock, { lease: { owner: 'gw', token: 'adopted', expiresAt: clock.now() + 5_000 } }),
      );
      await store.complete(op.id, 'adopted', { status: 200, headers: [], body: new Uint8Array() });
      assert.deepEqual(
        (await store.events(op.id, 0)).map((e) => [e.seq, e.status]),
        [
          [1, 'Running'],
          [2, 'Succeeded'],
        ],
      );
    });

    it('cancels only an operation not started and not leased, atomically against leasing', async () => {
      const waiting = await store.capture(newOperation(clock, { nextAttemptAt: clock.now() + 60_000 }));
      const leased = await store.capture(newOperation(clock));
      await lease(store);
      assert.equal(await store.cancel(waiting.id), true);
      assert.equal(await store.cancel(waiting.id), false, 'already canceled');
      assert.equal(await store.cancel(leased.id), false, 'running');
      assert.equal(await store.cancel(newOperationId()), false, 'unknown');
      assert.equal((await store.get(waiting.id))?.status, 'Canceled');
      assert.deepEqual(
        (await store.events(waiting.id, 0)).map((e) => e.status),
        ['NotStarted', 'Canceled'],
      );
      clock.advance(60_000);
      assert.ok(
        (await lease(store, 'w2')).every((o) => o.id !== waiting.id),
        'a canceled operation is never leased',
      );
      assert.equal((await store.counts()).Canceled, 1);
    });

    it('purges terminal operations older than the retention, with their events, and nothing else', async () => {
      const done = await store.capture(newOperation(clock));
      const waiting = await store.capture(newOperation(clock, { nextAttemptAt: clock.now() + 600_000 }));
      const leased = await lease(store);
      await store.complete(done.id, tokenOf(leased, done.id), {
        status: 200,
        headers: [],
        body: new Uint8Array(),
      });
      clock.advance(1_000);
      const recent = await store.capture(newOperation(clock));
      await store.cancel(recent.id);
      assert.equal(await store.purge(clock.now() - 500, 100), 1);
      assert.equal(await store.get(done.id), undefined);
      assert.deepEqual(await store.events(done.id, 0), []);
      assert.ok(await store.get(waiting.id), 'not terminal: kept whatever its age');
      assert.ok(await store.get(recent.id), 'within the retention: kept');
      assert.equal(await store.purge(clock.now() + 1, 100), 1);
      assert.equal(await store.purge(clock.now() + 1, 100), 0);
    });

    describe('Idempotency-Key records', () => {
      const claimOf = (overrides: Partial<IdempotencyClaim> = {}): IdempotencyClaim => ({
        key: 'k1',
        token: randomUUID(),
        fingerprint: 'fp1',
        lockedUntil: clock.now() + 10_000,
        expiresAt: clock.now() + 86_400_000,
        ...overrides,
      });
      const answer = {
        status: 500,
        headers: [['content-type', 'text/plain'] as [string, string]],
        body: new Uint8Array(Buffer.from('upstream broke')),
      };

      it('a claim holds the key: the next claim sees it in progress', async () => {
        const first = claimOf();
        assert.equal(await store.claimIdempotencyKey(first), undefined);
        const second = await store.claimIdempotencyKey(claimOf({ fingerprint: 'fp2' }));
        assert.equal(second?.state, 'in-progress');
        assert.equal(second?.fingerprint, 'fp1', 'the record is unchanged by the refused claim');
      });

      it('only one of many concurrent claims of a key wins', async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.claimIdempotencyKey(claimOf())),
        );
        assert.equal(results.filter((r) => r === undefined).length, 1);
      });

      it('keeps a completed answer byte for byte, across reopening', async () => {
        const claim = claimOf();
        await store.claimIdempotencyKey(claim);
        await store.completeIdempotencyKey(claim.key, claim.token, answer);
        await store.close();
        store = await reopen();
        const record = await store.claimIdempotencyKey(claimOf());
        assert.equal(record?.state, 'completed');
        assert.ok(record?.state === 'completed');
        assert.equal(record.response.status, 500);
        assert.deepEqual(record.response.headers, answer.headers);
        assert.deepEqual(Buffer.from(record.response.body), Buffer.from(answer.body));
      });

      it('a released claim frees the key; a stranger token changes nothing', async () => {
        const claim = claimOf();
        await store.claimIdempotencyKey(claim);
        await store.releaseIdempotencyKey(claim.key, 'someone-else');
        assert.equal((await store.claimIdempotencyKey(claimOf()))?.state, 'in-progress');
        await store.releaseIdempotencyKey(claim.key, claim.token);
        assert.equal(await store.claimIdempotencyKey(claimOf()), undefined);
      });

      it('a lapsed lock lets a new claim take over, and fences the old claimant out', async () => {
        const old = claimOf();
        await store.claimIdempotencyKey(old);
        clock.advance(10_000);
        const fresh = claimOf();
        assert.equal(await store.claimIdempotencyKey(fresh), undefined);
        await store.completeIdempotencyKey(old.key, old.token, answer);
        assert.equal((await store.claimIdempotencyKey(claimOf()))?.state, 'in-progress', 'old token ignored');
      });

      it('an expired record is forgotten: claimed anew, and purged', async () => {
        const claim = claimOf({ expiresAt: clock.now() + 1_000 });
        await store.claimIdempotencyKey(claim);
        await store.completeIdempotencyKey(claim.key, claim.token, answer);
        await store.claimIdempotencyKey(claimOf({ key: 'k2', expiresAt: clock.now() + 1_000 }));
        await store.claimIdempotencyKey(claimOf({ key: 'k3', expiresAt: clock.now() + 5_000 }));
        assert.equal((await store.claimIdempotencyKey(claimOf()))?.state, 'completed');
        clock.advance(1_000);
        assert.equal(await store.purgeIdempotencyKeys(clock.now(), 100), 2, 'k1 and k2 expired; k3 kept');
        assert.equal(await store.claimIdempotencyKey(claimOf()), undefined, 'a reuse after expiry is new');
        assert.equal((await store.claimIdempotencyKey(claimOf({ key: 'k3' })))?.state, 'in-progress');
      });

      it('a capture marks its claim accepted in the same commit; retention takes the record with the operation', async () => {
        const claim = claimOf();
        await store.claimIdempotencyKey(claim);
        const op = await store.capture(
          newOperation(clock, { tenant: 't1', idempotency: { key: claim.key, token: claim.token } }),
        );
        assert.equal((await store.get(op.id))?.tenant, 't1');
        const record = await store.claimIdempotencyKey(claimOf());
        assert.deepEqual(record?.state === 'accepted' && record.operationId, op.id);
        await store.cancel(op.id);
        clock.advance(1_000);
        assert.equal(await store.purge(clock.now(), 100), 1);
        assert.equal(
          await store.claimIdempotencyKey(claimOf()),
          undefined,
          'the key went with its operation',
        );
      });
    });

    it('webhooks: a terminal change creates one delivery per endpoint in its own commit, filtered by events', async () => {
      const hooks = `https://hooks.example/${randomUUID()}`;
      const subscriptions = [
        { endpoint: 'audit', url: `${hooks}/audit`, events: null },
        { endpoint: 'failures', url: `${hooks}/failures`, events: ['failed' as const] },
      ];
      const done = await store.capture(
        newOperation(clock, { callbackUrl: `${hooks}/cb`, webhookSubscriptions: subscriptions }),
      );
      const plain = await store.capture(newOperation(clock));
      const canceled = await store.capture(
        newOperation(clock, {
          nextAttemptAt: clock.now() + 60_000,
          webhookSubscriptions: [{ endpoint: 'cancels', url: `${hooks}/c`, events: ['canceled'] }],
        }),
      );
      assert.equal((await store.get(done.id))?.callbackUrl, `${hooks}/cb`);
      assert.equal((await store.get(plain.id))?.callbackUrl, null);
      const leased = await lease(store);
      assert.deepEqual(await store.webhookDeliveries(done.id), [], 'nothing before the terminal event');
      clock.advance(7);
      await store.complete(done.id, tokenOf(leased, done.id), {
        status: 201,
        headers: [],
        body: new Uint8Array(),
      });
      await store.complete(plain.id, tokenOf(leased, plain.id), {
        status: 201,
        headers: [],
        body: new Uint8Array(),
      });
      await store.cancel(canceled.id);
      const deliveries = await store.webhookDeliveries(done.id);
      assert.deepEqual(
        deliveries.map((d) => [d.seq, d.endpoint, d.url, d.state, d.attempts, d.nextAttemptAt, d.attemptLog]),
        [
          [3, 'audit', `${hooks}/audit`, 'pending', 0, clock.now(), []],
          [3, 'callback', `${hooks}/cb`, 'pending', 0, clock.now(), []],
        ],
        'the Succeeded event (seq 3) goes to the callback and to "audit", not to "failures"',
      );
      assert.deepEqual(await store.webhookDeliveries(plain.id), []);
      assert.deepEqual(
        (await store.webhookDeliveries(canceled.id)).map((d) => [d.seq, d.endpoint]),
        [[2, 'cancels']],
      );
      assert.deepEqual(await store.webhookDeliveries(newOperationId()), []);
    });

    it('webhooks: leasing is exclusive and per endpoint, attempts are fenced and recorded, a delivered one is done', async () => {
      const url = `https://hooks.example/${randomUUID()}`;
      const op = await store.capture(
        newOperation(clock, {
          callbackUrl: url,
          webhookSubscriptions: [{ endpoint: 'audit', url: `${url}/audit`, events: null }],
        }),
      );
      const leased = await lease(store);
      await store.complete(op.id, tokenOf(leased, op.id), {
        status: 200,
        headers: [],
        body: new Uint8Array(),
      });
      const leaseHooks = (owner: string, endpoints: string[], limit = 10) =>
        store.leaseWebhookDeliveries({ owner, limit, leaseMs: 30_000, endpoints });
      assert.deepEqual(await leaseHooks('w1', []), []);
      const [mine, extra] = await leaseHooks('w1', ['callback']);
      assert.equal(extra, undefined);
      assert.equal(mine?.endpoint, 'callback');
      assert.equal(mine?.url, url);
      assert.deepEqual(
        [mine?.event.operationId, mine?.event.seq, mine?.event.status, mine?.event.attempts],
        [op.id, 3, 'Succeeded', 1],
      );
      assert.equal(mine?.traceparent, op.traceparent);
      assert.deepEqual(await leaseHooks('w2', ['callback', 'audit']).then((l) => l.map((d) => d.endpoint)), [
        'audit',
      ]);
      assert.deepEqual(await leaseHooks('w3', ['callback', 'audit']), [], 'held leases are not leased again');
      assert.equal(await store.nextWebhookDueAt(['callback']), clock.now() + 30_000, 'the lease, while held');

      const key = { operationId: op.id, seq: 3, endpoint: 'callback' };
      const failedAttempt = {
        attempt: { at: clock.now(), status: 500, error: null, latencyMs: 12, responseSnippet: 'boom' },
        next: { state: 'pending' as const, nextAttemptAt: clock.now() + 5_000 },
        lastError: 'The receiver answered 500.',
        disableEndpoint: false,
      };
      assert.equal(
        await store.recordWebhookAttempt(key, `${mine!.leaseToken}x`, failedAttempt),
        false,
        'fenced by the token',
      );
      assert.equal(await store.recordWebhookAttempt(key, mine!.leaseToken, failedAttempt), true);
      assert.equal(
        await store.recordWebhookAttempt(key, mine!.leaseToken, failedAttempt),
        false,
        'the lease is gone',
      );
      assert.equal(await store.nextWebhookDueAt(['callback']), clock.now() + 5_000);
      assert.deepEqual(await leaseHooks('w1', ['callback']), [], 'not due yet');
      clock.advance(5_000);
      const [again] = await leaseHooks('w3', ['callback']);
      assert.equal(again?.attempts, 1);
      clock.advance(40);
      const delivered = {
        attempt: { at: clock.now(), status: 204, error: null, latencyMs: 3, responseSnippet: '' },
        next: { state: 'delivered' as const },
        lastError: null,
        disableEndpoint: false,
      };
      assert.equal(await store.recordWebhookAttempt(key, again!.leaseToken, delivered), true);
      clock.advance(3_600_000);
      assert.deepEqual(await leaseHooks('w4', ['callback']), [], 'delivered: never leased again');
      assert.equal(await store.nextWebhookDueAt(['callback']), undefined);
      const callback = (await store.webhookDeliveries(op.id)).find((d) => d.endpoint === 'callback');
      assert.equal(callback?.state, 'delivered');
      assert.equal(callback?.attempts, 2);
      assert.equal(callback?.lastError, null);
      assert.deepEqual(callback?.attemptLog, [
        {
          attempt: 1,
          at: failedAttempt.attempt.at,
          status: 500,
          error: null,
          latencyMs: 12,
          responseSnippet: 'boom',
        },
        { attempt: 2, at: delivered.attempt.at, status: 204, error: null, latencyMs: 3, responseSnippet: '' },
      ]);
    });

    it('webhooks: an expired lease counts the lost attempt; a released one is due at once, uncounted', async () => {
      const op = await store.capture(
        newOperation(clock, { callbackUrl: `https://h.example/${randomUUID()}` }),
      );
      const leased = await lease(store);
      await store.complete(op.id, tokenOf(leased, op.id), {
        status: 200,
        headers: [],
        body: new Uint8Array(),
      });
      const leaseHooks = (owner: string) =>
        store.leaseWebhookDeliveries({ owner, limit: 10, leaseMs: 1_000, endpoints: ['callback'] });
      const [dead] = await leaseHooks('dead');
      clock.advance(999);
      assert.deepEqual(await leaseHooks('w2'), []);
      clock.advance(1);
      const [recovered] = await leaseHooks('w2');
      assert.equal(recovered?.attempts, 1, 'the lost attempt is counted');
      const key = { operationId: op.id, seq: 3, endpoint: 'callback' };
      assert.equal(await store.releaseWebhookDelivery(key, dead!.leaseToken), false);
      assert.equal(await store.releaseWebhookDelivery(key, recovered!.leaseToken), true);
      const [handedBack] = await leaseHooks('w3');
      assert.equal(handedBack?.attempts, 1, 'a release is not an attempt');
    });

    it('webhooks: a 410 disables a subscription for its pending and later deliveries; a callback only its own', async () => {
      const url = `https://hooks.example/${randomUUID()}`;
      const subscribed = (callbackUrl: string | null = null) =>
        store.capture(
          newOperation(clock, {
            callbackUrl,
            webhookSubscriptions: [{ endpoint: 'audit', url, events: null }],
          }),
        );
      const [a, b] = [await subscribed(`${url}/cb-a`), await subscribed(`${url}/cb-b`)];
      const later = await subscribed();
      const other = await store.capture(
        newOperation(clock, {
          webhookSubscriptions: [{ endpoint: 'audit', url: `${url}/elsewhere`, events: null }],
        }),
      );
      const leased = await lease(store);
      for (const op of [a, b, other]) {
        await store.complete(op.id, tokenOf(leased, op.id), {
          status: 200,
          headers: [],
          body: new Uint8Array(),
        });
        clock.advance(1); // deliveries are leased oldest first: a's comes first
      }
      const gone = (lastError: string) => ({
        attempt: { at: clock.now(), status: 410, error: null, latencyMs: 1, responseSnippet: null },
        next: { state: 'disabled' as const },
        lastError,
        disableEndpoint: true,
      });
      const [first] = await store.leaseWebhookDeliveries({
        owner: 'w1',
        limit: 1,
        leaseMs: 30_000,
        endpoints: ['audit'],
      });
      assert.ok(first);
      assert.equal(
        await store.recordWebhookAttempt(first, first.leaseToken, gone('The receiver answered 410 Gone.')),
        true,
      );
      const state = async (id: string, endpoint: string) =>
        (await store.webhookDeliveries(id)).find((d) => d.endpoint === endpoint)?.state;
      assert.equal(await state(a.id, 'audit'), 'disabled');
      assert.equal(
        await state(b.id, 'audit'),
        'disabled',
        'a pending delivery to the same endpoint ends too',
      );
      assert.equal(await state(other.id, 'audit'), 'pending', 'another URL of the same name is not disabled');
      await store.complete(later.id, tokenOf(leased, later.id), {
        status: 200,
        headers: [],
        body: new Uint8Array(),
      });
      assert.equal(await state(later.id, 'audit'), 'disabled', 'later deliveries are created disabled');
      assert.deepEqual(
        (
          await store.leaseWebhookDeliveries({ owner: 'w2', limit: 10, leaseMs: 1_000, endpoints: ['audit'] })
        ).map((d) => d.operationId),
        [other.id],
      );

      // A callback's 410 ends that delivery only.
      const [cbA] = await store.leaseWebhookDeliveries({
        owner: 'w1',
        limit: 1,
        leaseMs: 30_000,
        endpoints: ['callback'],
      });
      assert.ok(cbA);
      await store.recordWebhookAttempt(cbA, cbA.leaseToken, { ...gone('gone'), disableEndpoint: false });
      const callbacks = [await state(a.id, 'callback'), await state(b.id, 'callback')].sort();
      assert.deepEqual(callbacks, ['disabled', 'pending']);
    });

    it('webhooks: purging an operation removes its deliveries and their attempts', async () => {
      const op = await store.capture(
        newOperation(clock, { callbackUrl: `https://h.example/${randomUUID()}` }),
      );
      const leased = await lease(store);
      await store.complete(op.id, tokenOf(leased, op.id), {
        status: 200,
        headers: [],
        body: new Uint8Array(),
      });
      const [d] = await store.leaseWebhookDeliveries({
        owner: 'w1',
        limit: 1,
        leaseMs: 1_000,
        endpoints: ['callback'],
      });
      await store.recordWebhookAttempt(d!, d!.leaseToken, {
        attempt: { at: clock.now(), status: 200, error: null, latencyMs: 1, responseSnippet: 'ok' },
        next: { state: 'delivered' },
        lastError: null,
        disableEndpoint: false,
      });
      clock.advance(1_000);
      assert.equal(await store.purge(clock.now(), 100), 1);
      assert.deepEqual(await store.webhookDeliveries(op.id), []);
    });

    describe('webhooks: operator actions (enable an endpoint, re-send a delivery)', () => {
      const ok = { status: 200, headers: [], body: new Uint8Array() };
      /** A fresh subscription name: on PostgreSQL disabled endpoints outlive each test's truncation. */
      const freshName = () => `hooks-${randomUUID().slice(0, 8)}`;
      const leaseHooks = (owner: string, endpoints: string[], limit = 10, leaseMs = 30_000) =>
        store.leaseWebhookDeliveries({ owner, limit, leaseMs, endpoints });
      const attempt = (status: number, next: WebhookAttemptRecord['next'], disableEndpoint = false) => ({
        attempt: { at: clock.now(), status, error: null, latencyMs: 2, responseSnippet: String(status) },
        next,
        lastError: status === 410 ? 'The receiver answered 410 Gone.' : `The receiver answered ${status}.`,
        disableEndpoint,
      });
      /** Operations that have just Succeeded (seq 3), with a callback and the given subscription. */
      async function finished(count: number, subscription?: { endpoint: string; url: string }) {
        const ops = [];
        for (let i = 0; i < count; i++) {
          ops.push(
            await store.capture(
              newOperation(clock, {
                callbackUrl: `https://cb.example/${randomUUID()}`,
                webhookSubscriptions: subscription ? [{ ...subscription, events: null }] : [],
              }),
            ),
          );
        }
        const leased = await store.lease({ owner: 'w', limit: count, leaseMs: 60_000 });
        for (const op of ops) {
          await store.complete(op.id, tokenOf(leased, op.id), ok);
          clock.advance(1); // deliveries are leased oldest first
        }
        return ops;
      }
      const delivery = async (operationId: string, endpoint = 'callback') =>
        (await store.webhookDeliveries(operationId)).find((d) => d.endpoint === endpoint)!;
      const keyOf = (operationId: string, endpoint = 'callback') => ({ operationId, seq: 3, endpoint });

      it('webhooks: disabled endpoints are listed; enabling one sends later deliveries and leaves those disabled meanwhile disabled', async () => {
        const name = freshName();
        const [url, moved] = [`https://hooks.example/${randomUUID()}`, `https://new.example/${randomUUID()}`];
        const [a, b] = await finished(2, { endpoint: name, url });
        const [elsewhere] = await finished(1, { endpoint: name, url: moved });
        const mine = async () => (await store.disabledWebhookEndpoints()).filter((e) => e.endpoint === name);
        assert.deepEqual(await mine(), []);

        const [first] = await leaseHooks('w1', [name], 1);
        assert.equal(first?.operationId, a!.id);
        const disabledAt = clock.now();
        assert.equal(
          await store.recordWebhookAttempt(
            first!,
            first!.leaseToken,
            attempt(410, { state: 'disabled' }, true),
          ),
          true,
        );
        clock.advance(5);
        const [second] = await leaseHooks('w1', [name]);
        assert.equal(second?.operationId, elsewhere!.id, "b's delivery was disabled with the endpoint");
        await store.recordWebhookAttempt(
          second!,
          second!.leaseToken,
          attempt(410, { state: 'disabled' }, true),
        );
        const gone = 'The receiver answered 410 Gone.';
        const listed = [
          { endpoint: name, url, disabledAt, reason: gone },
          { endpoint: name, url: moved, disabledAt: disabledAt + 5, reason: gone },
        ];
        assert.deepEqual(await mine(), listed, 'each URL of the name, oldest first');

        assert.deepEqual(await store.enableWebhookEndpoint(name), listed, 'every URL of the name is enabled');
        assert.deepEqual(await mine(), []);
        assert.deepEqual(await store.enableWebhookEndpoint(name), [], 'enabling twice changes nothing');
        assert.deepEqual(await store.enableWebhookEndpoint(freshName()), []);
        assert.equal((await delivery(b!.id, name)).state, 'disabled', 'disabled meanwhile: stays disabled');
        assert.deepEqual(await leaseHooks('w2', [name]), [], 'nothing was made pending by enabling');

        const [later] = await finished(1, { endpoint: name, url });
        assert.equal((await delivery(later!.id, name)).state, 'pending', 'later deliveries are sent again');
        assert.deepEqual(
          (await leaseHooks('w2', [name])).map((d) => d.operationId),
          [later!.id],
        );
      });

      it('webhooks: a re-send puts a failed or disabled delivery back, due now, keeping its attempts; pending, leased, delivered and unknown ones are refused', async () => {
        const [failed, disabled, waiting] = await finished(3);
        const [f, d] = await leaseHooks('w1', ['callback'], 2);
        assert.deepEqual([f?.operationId, d?.operationId], [failed!.id, disabled!.id]);
        await store.recordWebhookAttempt(f!, f!.leaseToken, attempt(500, { state: 'failed' }));
        await store.recordWebhookAttempt(d!, d!.leaseToken, attempt(410, { state: 'disabled' }));
        clock.advance(60_000);

        const resent = await store.resendWebhookDelivery(keyOf(failed!.id));
        assert.equal(resent.outcome, 'resent');
        assert.ok(resent.outcome === 'resent');
        assert.equal(resent.previousState, 'failed');
        assert.equal(resent.delivery.state, 'pending');
        assert.equal(resent.delivery.nextAttemptAt, clock.now(), 'due now');
        assert.equal(resent.delivery.attempts, 1, 'its attempts are kept');
        const after = await delivery(failed!.id);
        assert.deepEqual(
          [after.state, after.attempts, after.url, after.attemptLog.map((a) => a.status)],
          ['pending', 1, f!.url, [500]],
          'the attempt log is kept, and the URL',
        );
        assert.deepEqual(await store.resendWebhookDelivery(keyOf(failed!.id)), {
          outcome: 'refused',
          reason: 'pending',
        });

        const again = await store.resendWebhookDelivery(keyOf(disabled!.id));
        assert.ok(again.outcome === 'resent', again.outcome);
        assert.equal(again.previousState, 'disabled');

        assert.deepEqual(await store.resendWebhookDelivery(keyOf(waiting!.id)), {
          outcome: 'refused',
          reason: 'pending',
        });
        const leased = await leaseHooks('w2', ['callback']);
        assert.deepEqual(
          leased.map((l) => [l.operationId, l.attempts]).sort(),
          [
            [disabled!.id, 1],
            [failed!.id, 1],
            [waiting!.id, 0],
          ].sort() as Array<[string, number]>,
        );
        assert.deepEqual(
          await store.resendWebhookDelivery(keyOf(failed!.id)),
          { outcome: 'refused', reason: 'pending' },
          'leased: refused, and still held',
        );
        assert.deepEqual(await leaseHooks('w3', ['callback']), []);
        const [byW2] = leased.filter((l) => l.operationId === failed!.id);
        assert.equal(
          await store.recordWebhookAttempt(byW2!, byW2!.leaseToken, attempt(204, { state: 'delivered' })),
          true,
        );
        const done = await delivery(failed!.id);
        assert.deepEqual(
          done.attemptLog.map((a) => [a.attempt, a.status]),
          [
            [1, 500],
            [2, 204],
          ],
          'the re-sent attempt is numbered after the earlier ones',
        );
        assert.deepEqual(await store.resendWebhookDelivery(keyOf(failed!.id)), {
          outcome: 'refused',
          reason: 'delivered',
        });
        assert.equal((await delivery(failed!.id)).state, 'delivered');

        assert.deepEqual(await store.resendWebhookDelivery(keyOf(newOperationId())), { outcome: 'unknown' });
        assert.deepEqual(await store.resendWebhookDelivery(keyOf(waiting!.id, 'nobody')), {
          outcome: 'unknown',
        });
        assert.deepEqual(await store.resendWebhookDelivery({ ...keyOf(waiting!.id), seq: 2 }), {
          outcome: 'unknown',
        });
      });

      it("webhooks: a re-send is refused while its endpoint is disabled there, and may point a subscription's delivery at a new URL", async () => {
        const name = freshName();
        const [url, moved] = [`https://hooks.example/${randomUUID()}`, `https://new.example/${randomUUID()}`];
        const [a, b] = await finished(2, { endpoint: name, url });
        const [first] = await leaseHooks('w1', [name], 1);
        await store.recordWebhookAttempt(
          first!,
          first!.leaseToken,
          attempt(410, { state: 'disabled' }, true),
        );
        assert.deepEqual(await store.resendWebhookDelivery(keyOf(a!.id, name)), {
          outcome: 'refused',
          reason: 'endpoint-disabled',
        });
        assert.equal((await delivery(a!.id, name)).state, 'disabled');
        assert.deepEqual(await leaseHooks('w1', [name]), []);

        const retargeted = await store.resendWebhookDelivery(keyOf(a!.id, name), moved);
        assert.ok(retargeted.outcome === 'resent', retargeted.outcome);
        assert.equal(retargeted.delivery.url, moved);
        const [leased] = await leaseHooks('w1', [name]);
        assert.deepEqual([leased?.operationId, leased?.url], [a!.id, moved]);

        assert.equal((await store.enableWebhookEndpoint(name)).length, 1);
        const same = await store.resendWebhookDelivery(keyOf(b!.id, name));
        assert.ok(same.outcome === 'resent', same.outcome);
        assert.equal(same.delivery.url, url, 'without a URL, the delivery keeps its own');
      });

      it('webhooks: a delivery disabled mid-attempt and re-sent stays with its lease holder until the lease runs out, never leased twice', async () => {
        const name = freshName();
        const url = `https://hooks.example/${randomUUID()}`;
        const [a, b, c] = await finished(3, { endpoint: name, url });
        const [da] = await leaseHooks('w1', [name], 1);
        const leasedAt = clock.now();
        const [db, dc] = await leaseHooks('w2', [name], 2, 30_000);
        assert.deepEqual(
          [da, db, dc].map((d) => d?.operationId),
          [a!.id, b!.id, c!.id],
        );
        await store.recordWebhookAttempt(da!, da!.leaseToken, attempt(410, { state: 'disabled' }, true));
        assert.equal((await delivery(b!.id, name)).state, 'disabled', 'disabled while w2 sends it');
        assert.equal(
          await store.recordWebhookAttempt(db!, db!.leaseToken, attempt(204, { state: 'delivered' })),
          false,
          "the holder's record is refused while it is disabled",
        );
        await store.enableWebhookEndpoint(name);
        clock.advance(1_000);
        for (const op of [b!, c!]) {
          const resent = await store.resendWebhookDelivery(keyOf(op.id, name));
          assert.ok(resent.outcome === 'resent', resent.outcome);
          assert.equal(resent.delivery.nextAttemptAt, leasedAt + 30_000, 'due when the lease runs out');
        }
        assert.deepEqual(await leaseHooks('w3', [name]), [], 'not leased while w2 may still be sending');
        assert.equal(
          await store.recordWebhookAttempt(dc!, dc!.leaseToken, attempt(204, { state: 'delivered' })),
          true,
          'the holder records its attempt',
        );
        assert.equal((await delivery(c!.id, name)).state, 'delivered');
        clock.advance(29_000);
        const [recovered, extra] = await leaseHooks('w3', [name]);
        assert.equal(extra, undefined);
        assert.equal(recovered?.operationId, b!.id);
        assert.equal(recovered?.attempts, 1, "the holder's unrecorded attempt is counted as lost");
      });

      it('webhooks: of concurrent re-sends one wins, and of concurrent leases after it one gets the delivery', async () => {
        const [op] = await finished(1);
        const [d] = await leaseHooks('w1', ['callback']);
        await store.recordWebhookAttempt(d!, d!.leaseToken, attempt(500, { state: 'failed' }));
        const resends = await Promise.all(
          Array.from({ length: 8 }, () => store.resendWebhookDelivery(keyOf(op!.id))),
        );
        assert.deepEqual(resends.map((r) => (r.outcome === 'refused' ? r.reason : r.outcome)).sort(), [
          'pending',
          'pending',
          'pending',
          'pending',
          'pending',
          'pending',
          'pending',
          'resent',
        ]);
        const leases = await Promise.all(
          ['x1', 'x2', 'x3', 'x4'].map((owner) => leaseHooks(owner, ['callback'])),
        );
        assert.equal(leases.flat().length, 1);
      });
    });

    it('answers get for an unknown id with undefined', async () => {
      assert.equal(await store.get(newOperationId()), undefined);
    });

    it('close is safe to call twice, and verbs after close reject', async () => {
      await store.close();
      await store.close();
      await assert.rejects(store.capture(newOperation(clock)), { name: 'StoreUnavailableError' });
      store = await reopen();
    });

    it('oldestDueByRoute: per route, the earliest due time of what is due now; a leased one once its lease ran out', async () => {
      const t0 = clock.now();
      await store.capture(newOperation(clock, { route: 'a', nextAttemptAt: t0 - 5_000 }));
      await store.capture(newOperation(clock, { route: 'a', nextAttemptAt: t0 - 1_000 }));
      await store.capture(newOperation(clock, { route: 'b', nextAttemptAt: t0 + 60_000 })); // not due yet
      await store.capture(newOperation(clock, { route: 'c', nextAttemptAt: t0 - 2_000 }));
      const done = newOperation(clock, { route: 'd', nextAttemptAt: t0 - 9_000 });
      await store.capture(done);
      assert.deepEqual(await store.oldestDueByRoute(t0), { a: t0 - 5_000, c: t0 - 2_000, d: t0 - 9_000 });
      const [leased] = await store.lease({ owner: 'w1', limit: 1, leaseMs: 1_000, routes: ['c'] });
      assert.ok(leased);
      const [finishing] = await store.lease({ owner: 'w1', limit: 1, leaseMs: 1_000, routes: ['d'] });
      assert.ok(finishing);
      assert.ok(
        await store.complete(done.id, finishing.leaseToken, {
          status: 200,
          headers: [],
          body: new Uint8Array(),
        }),
      );
      // A held lease is not due; a terminal operation never is.
      assert.deepEqual(await store.oldestDueByRoute(t0), { a: t0 - 5_000 });
      clock.advance(1_500);
      assert.deepEqual(await store.oldestDueByRoute(clock.now()), { a: t0 - 5_000, c: t0 + 1_000 });
    });
  });
}
