/**
 * The queue (OperationQueue in src/store/port.ts): capture, lease under a
 * token, and every write that ends or extends a lease, cancel, purge, counts.
 * Every adapter passes it unchanged; time comes from a ManualClock, so lease
 * expiry and due times are exact.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { newOperationId } from '../../src/engine/operation-id.ts';
import { emptyStatusCounts, type LeasedOperation, type WebhookAttemptRecord } from '../../src/store/port.ts';
import { lease, newOperation, type StoreFactory, storeFixture, tokenOf } from './store-fixture.ts';

export function queueConformance(name: string, factory: StoreFactory): void {
  describe(`OperationQueue conformance: ${name}`, () => {
    const fx = storeFixture(factory);

    it('captures durably: the record survives closing and reopening, byte for byte', async () => {
      const input = newOperation(fx.clock);
      const captured = await fx.store.capture(input);
      assert.equal(captured.status, 'NotStarted');
      await fx.store.close();
      fx.store = await fx.reopen();
      const op = await fx.store.get(input.id);
      assert.ok(op);
      assert.deepEqual(op.request.headers, input.request.headers);
      assert.deepEqual(Buffer.from(op.request.body), Buffer.from(input.request.body));
      assert.equal(op.request.query, 'a=1');
      assert.equal(op.traceparent, input.traceparent);
      assert.equal(op.createdAt, fx.clock.now());
    });

    it('rejects a second capture with the same id and keeps the first', async () => {
      const input = newOperation(fx.clock);
      await fx.store.capture(input);
      await assert.rejects(fx.store.capture({ ...input, route: 'other' }));
      assert.equal((await fx.store.get(input.id))?.route, 'default');
    });

    it('commits captures arriving together, each resolving on its own', async () => {
      const inputs = Array.from({ length: 50 }, () => newOperation(fx.clock));
      const duplicate = { ...inputs[0]!, route: 'dup' };
      const results = await Promise.allSettled([
        ...inputs.map((i) => fx.store.capture(i)),
        fx.store.capture(duplicate),
      ]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 50);
      assert.equal(results.at(-1)!.status, 'rejected', 'one failing write does not sink its batch');
      assert.equal((await fx.store.counts()).NotStarted, 50);
    });

    it('leases due operations by priority, then oldest first, and not those due later', async () => {
      const low = await fx.store.capture(newOperation(fx.clock));
      fx.clock.advance(10);
      const high = await fx.store.capture(newOperation(fx.clock, { priority: 5 }));
      fx.clock.advance(10);
      const later = await fx.store.capture(
        newOperation(fx.clock, { nextAttemptAt: fx.clock.now() + 60_000 }),
      );
      const leased = await lease(fx.store);
      assert.deepEqual(
        leased.map((o) => o.id),
        [high.id, low.id],
      );
      assert.ok(leased.every((o) => o.status === 'Running' && o.leaseOwner === 'w1'));
      assert.deepEqual(await lease(fx.store, 'w2'), [], 'a held lease is not leased again');
      fx.clock.advance(60_000);
      const expiredAndLater = await lease(fx.store, 'w2');
      assert.ok(expiredAndLater.some((o) => o.id === later.id));
    });

    it('replay order is priority, then due time, across routes; excluded routes are passed over', async () => {
      const at = (ms: number) => fx.clock.now() + ms;
      // Captured in one order, due in another: due time decides, not capture time.
      const late = await fx.store.capture(newOperation(fx.clock, { route: 'a', nextAttemptAt: at(-10) }));
      const early = await fx.store.capture(newOperation(fx.clock, { route: 'b', nextAttemptAt: at(-30) }));
      const middle = await fx.store.capture(newOperation(fx.clock, { route: 'a', nextAttemptAt: at(-20) }));
      const urgent = await fx.store.capture(
        newOperation(fx.clock, { route: 'c', priority: 1, nextAttemptAt: at(-1) }),
      );
      const paused = await fx.store.capture(newOperation(fx.clock, { route: 'p', nextAttemptAt: at(-99) }));
      await fx.store.capture(newOperation(fx.clock, { route: 'a', nextAttemptAt: at(1) })); // not due
      const leased = await fx.store.lease({ owner: 'w1', limit: 3, leaseMs: 1_000, excludeRoutes: ['p'] });
      assert.deepEqual(
        leased.map((o) => o.id),
        [urgent.id, early.id, middle.id],
      );
      assert.deepEqual(
        (await fx.store.lease({ owner: 'w1', limit: 10, leaseMs: 1_000, excludeRoutes: ['p'] })).map(
          (o) => o.id,
        ),
        [late.id],
      );
      assert.deepEqual(
        (await lease(fx.store)).map((o) => o.id),
        [paused.id],
      );
    });

    it('counts follow every change: capture, lease, finish, dead-letter, cancel, purge', async () => {
      const ok = { status: 200, headers: [], body: new Uint8Array() };
      const error = { code: 'x', message: 'x' };
      const [a, b, c, d] = [
        await fx.store.capture(newOperation(fx.clock, { route: 'r1' })),
        await fx.store.capture(newOperation(fx.clock, { route: 'r2' })),
        await fx.store.capture(newOperation(fx.clock, { route: 'r2' })),
        await fx.store.capture(
          newOperation(fx.clock, { route: 'r1', nextAttemptAt: fx.clock.now() + 60_000 }),
        ),
      ];
      const leased = await lease(fx.store);
      assert.deepEqual(await fx.store.counts(), { ...emptyStatusCounts(), Running: 3, NotStarted: 1 });
      await fx.store.complete(a!.id, tokenOf(leased, a!.id), ok);
      await fx.store.fail(b!.id, tokenOf(leased, b!.id), {
        error,
        result: null,
        deadLetter: true,
        countsAsAttempt: true,
      });
      await fx.store.fail(c!.id, tokenOf(leased, c!.id), {
        error,
        result: null,
        deadLetter: false,
        countsAsAttempt: true,
      });
      await fx.store.cancel(d!.id);
      assert.deepEqual(await fx.store.counts(), {
        ...emptyStatusCounts(),
        Succeeded: 1,
        Failed: 2,
        Canceled: 1,
        deadLettered: 1,
      });
      fx.clock.advance(1);
      assert.equal(await fx.store.purge(fx.clock.now(), 10), 4);
      assert.deepEqual(await fx.store.counts(), emptyStatusCounts());
    });

    it('leases nothing from excluded routes', async () => {
      const paused = await fx.store.capture(newOperation(fx.clock, { route: 'payments' }));
      const other = await fx.store.capture(newOperation(fx.clock, { route: 'orders' }));
      const leased = await fx.store.lease({
        owner: 'w1',
        limit: 10,
        leaseMs: 1_000,
        excludeRoutes: ['payments'],
      });
      assert.deepEqual(
        leased.map((o) => o.id),
        [other.id],
      );
      assert.equal((await lease(fx.store, 'w2'))[0]?.id, paused.id);
    });

    it('leases a function route only in a process that defines it, and only those without an upstream', async () => {
      const plain = await fx.store.capture(newOperation(fx.clock, { route: 'payments' }));
      const charge = await fx.store.capture(newOperation(fx.clock, { route: 'fn:charge' }));
      const refund = await fx.store.capture(newOperation(fx.clock, { route: 'fn:refund' }));
      const ids = (leased: LeasedOperation[]) => leased.map((o) => o.id).sort();
      // A gateway or worker defines no function: it never takes one.
      assert.deepEqual(ids(await lease(fx.store, 'gateway')), [plain.id]);
      // A process without an upstream that defines charge takes charge, and nothing else.
      assert.deepEqual(
        ids(
          await fx.store.lease({
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
          await fx.store.lease({
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
      for (let i = 0; i < 5; i++) await fx.store.capture(newOperation(fx.clock));
      assert.equal((await lease(fx.store, 'w1', 2)).length, 2);
      assert.equal((await lease(fx.store, 'w2', 10)).length, 3);
    });

    it('recovers an expired lease as an attempt with an unknown outcome', async () => {
      const op = await fx.store.capture(newOperation(fx.clock));
      const [dead] = await lease(fx.store, 'dead-worker', 10, 1_000);
      fx.clock.advance(999);
      assert.deepEqual(await lease(fx.store, 'w2'), []);
      fx.clock.advance(1);
      assert.deepEqual(await lease(fx.store, 'w2'), [], 'this call hands the expired lease back…');
      const [recovered] = await lease(fx.store, 'w2');
      assert.equal(recovered?.id, op.id, '…and the next leases it');
      assert.equal(recovered?.attempts, 1);
      assert.equal(recovered?.outcomeUnknown, true);
      assert.equal(
        await fx.store.complete(op.id, dead!.leaseToken, {
          status: 200,
          headers: [],
          body: new Uint8Array(),
        }),
        false,
        'the old holder is fenced off',
      );
    });

    it('an adopted capture holds its lease until it expires', async () => {
      const op = await fx.store.capture(
        newOperation(fx.clock, {
          lease: { owner: 'gw', token: 'adopted', expiresAt: fx.clock.now() + 5_000 },
        }),
      );
      assert.equal(op.status, 'Running');
      assert.deepEqual(await lease(fx.store), []);
      assert.equal(
        await fx.store.complete(op.id, 'adopted', {
          status: 201,
          headers: [['x', '1']],
          body: Buffer.from('ok'),
        }),
        true,
      );
      const done = await fx.store.get(op.id);
      assert.equal(done?.status, 'Succeeded');
      assert.equal(done?.attempts, 1);
      assert.deepEqual(done?.result?.headers, [['x', '1']]);
      assert.equal(Buffer.from(done!.result!.body).toString(), 'ok');
    });

    it('retry puts the operation back with its next attempt time and clears the lease', async () => {
      const op = await fx.store.capture(newOperation(fx.clock));
      const [held] = await lease(fx.store);
      const error = { code: 'upstream-status', message: 'The upstream answered 503.', upstreamStatus: 503 };
      assert.equal(
        await fx.store.retry(op.id, held!.leaseToken, {
          nextAttemptAt: fx.clock.now() + 500,
          error,
          outcomeUnknown: false,
        }),
        true,
      );
      const waiting = await fx.store.get(op.id);
      assert.equal(waiting?.status, 'Running');
      assert.equal(waiting?.attempts, 1);
      assert.equal(waiting?.leaseOwner, null);
      assert.deepEqual(waiting?.error, error);
      assert.equal(await fx.store.nextDueAt(), fx.clock.now() + 500);
      assert.deepEqual(await lease(fx.store), []);
      fx.clock.advance(500);
      assert.equal((await lease(fx.store)).length, 1);
    });

    it('fail ends the operation, dead-lettered or not, counting the attempt only when asked', async () => {
      const a = await fx.store.capture(newOperation(fx.clock));
      const b = await fx.store.capture(newOperation(fx.clock));
      const leased = await lease(fx.store);
      const error = { code: 'outcome-unknown', message: 'unknown' };
      assert.equal(
        await fx.store.fail(a.id, tokenOf(leased, a.id), {
          error,
          result: null,
          deadLetter: true,
          countsAsAttempt: false,
        }),
        true,
      );
      const response = { status: 422, headers: [], body: Buffer.from('no') };
      assert.equal(
        await fx.store.fail(b.id, tokenOf(leased, b.id), {
          error,
          result: response,
          deadLetter: false,
          countsAsAttempt: true,
        }),
        true,
      );
      const [fa, fb] = [await fx.store.get(a.id), await fx.store.get(b.id)];
      assert.equal(fa?.status, 'Failed');
      assert.equal(fa?.attempts, 0);
      assert.equal(fa?.deadLetteredAt, fx.clock.now());
      assert.equal(fb?.attempts, 1);
      assert.equal(fb?.deadLetteredAt, null);
      assert.equal(fb?.result?.status, 422);
      const counts = await fx.store.counts();
      assert.equal(counts.Failed, 2);
      assert.equal(counts.deadLettered, 1);
      assert.equal(
        await fx.store.complete(a.id, tokenOf(leased, a.id), response),
        false,
        'terminal states never change',
      );
    });

    it('release hands the lease back, counting an attempt in flight as outcome unknown', async () => {
      const a = await fx.store.capture(newOperation(fx.clock));
      const b = await fx.store.capture(newOperation(fx.clock));
      const leased = await lease(fx.store);
      assert.equal(await fx.store.release(a.id, tokenOf(leased, a.id), true), true);
      assert.equal(await fx.store.release(b.id, tokenOf(leased, b.id), false), true);
      const [ra, rb] = [await fx.store.get(a.id), await fx.store.get(b.id)];
      assert.deepEqual([ra?.attempts, ra?.outcomeUnknown, ra?.leaseOwner], [1, true, null]);
      assert.deepEqual([rb?.attempts, rb?.outcomeUnknown, rb?.leaseOwner], [0, false, null]);
      assert.equal((await lease(fx.store, 'w2')).length, 2, 'released operations are due at once');
    });

    describe('lease tokens: every write that ends or extends a lease is fenced by its token', () => {
      const ok = { status: 200, headers: [], body: new Uint8Array() };
      const error = { code: 'upstream-status', message: 'The upstream answered 503.', upstreamStatus: 503 };

      it('same owner, two holders: the stale holder changes nothing, the live one finishes', async () => {
        const op = await fx.store.capture(newOperation(fx.clock));
        const [stale] = await lease(fx.store, 'gw', 10, 1_000);
        fx.clock.advance(1_000);
        await lease(fx.store, 'gw', 10, 1_000); // hands the expired lease back
        const [live] = await lease(fx.store, 'gw', 10, 1_000);
        assert.equal(live?.id, op.id);
        assert.ok(stale?.leaseToken && live?.leaseToken);
        assert.notEqual(stale.leaseToken, live.leaseToken, 'each lease has its own token');
        const before = await fx.store.get(op.id);
        assert.equal(await fx.store.complete(op.id, stale.leaseToken, ok), false);
        assert.equal(
          await fx.store.retry(op.id, stale.leaseToken, {
            nextAttemptAt: fx.clock.now(),
            error,
            outcomeUnknown: false,
          }),
          false,
        );
        assert.equal(
          await fx.store.fail(op.id, stale.leaseToken, {
            error,
            result: null,
            deadLetter: true,
            countsAsAttempt: true,
          }),
          false,
        );
        assert.equal(await fx.store.release(op.id, stale.leaseToken, true), false);
        assert.equal(await fx.store.extendLease(op.id, stale.leaseToken, fx.clock.now() + 60_000), false);
        assert.deepEqual(await fx.store.get(op.id), before, 'the stale holder changed nothing');
        assert.equal(await fx.store.complete(op.id, live.leaseToken, ok), true, 'the live holder finishes');
        assert.equal((await fx.store.get(op.id))?.status, 'Succeeded');
      });

      it('a late retry or release after expiry changes nothing and keeps the new holder leased', async () => {
        const a = await fx.store.capture(newOperation(fx.clock));
        const b = await fx.store.capture(newOperation(fx.clock));
        const first = await lease(fx.store, 'w1', 10, 1_000);
        fx.clock.advance(1_500);
        await lease(fx.store, 'w2', 10, 1_000); // hands the expired leases back
        const second = await lease(fx.store, 'w2', 10, 1_000);
        assert.equal(second.length, 2);
        const token = (leased: typeof first, id: string) => leased.find((o) => o.id === id)!.leaseToken;
        assert.equal(
          await fx.store.retry(a.id, token(first, a.id), {
            nextAttemptAt: fx.clock.now(),
            error,
            outcomeUnknown: false,
          }),
          false,
        );
        assert.equal(await fx.store.release(b.id, token(first, b.id), false), false);
        for (const id of [a.id, b.id]) {
          const held = await fx.store.get(id);
          assert.deepEqual([held?.leaseOwner, held?.attempts, held?.error], ['w2', 1, null], id);
        }
        assert.deepEqual(await lease(fx.store, 'w3'), [], 'still held: nothing is sent twice');
        assert.equal(await fx.store.release(b.id, token(second, b.id), false), true);
      });

      it('an expired lease is handed back even before anyone leases it again: its holder is fenced off', async () => {
        const op = await fx.store.capture(newOperation(fx.clock, { route: 'paused' }));
        const [held] = await lease(fx.store, 'w1', 10, 1_000);
        fx.clock.advance(1_000);
        // A lease call that takes nothing of that route still hands the lost lease back.
        assert.deepEqual(
          await fx.store.lease({ owner: 'w2', limit: 10, leaseMs: 1_000, excludeRoutes: ['paused'] }),
          [],
        );
        assert.equal(await fx.store.complete(op.id, held!.leaseToken, ok), false);
        const lost = await fx.store.get(op.id);
        assert.deepEqual(
          [lost?.status, lost?.leaseOwner, lost?.attempts, lost?.outcomeUnknown],
          ['Running', null, 1, true],
          'the lost attempt is counted, its outcome unknown',
        );
      });

      it('a heartbeat keeps a lease past its first expiry', async () => {
        const op = await fx.store.capture(newOperation(fx.clock));
        const [held] = await lease(fx.store, 'w1', 10, 1_000);
        fx.clock.advance(800);
        assert.equal(await fx.store.extendLease(op.id, 'not-the-token', fx.clock.now() + 1_000), false);
        assert.equal(await fx.store.extendLease(op.id, held!.leaseToken, fx.clock.now() + 1_000), true);
        assert.equal((await fx.store.get(op.id))?.leaseExpiresAt, fx.clock.now() + 1_000);
        fx.clock.advance(800);
        assert.deepEqual(await lease(fx.store, 'w2'), [], 'extended: not taken');
        assert.equal(await fx.store.nextDueAt(), fx.clock.now() + 200);
        assert.equal(await fx.store.complete(op.id, held!.leaseToken, ok), true);
        assert.equal(
          await fx.store.extendLease(op.id, held!.leaseToken, fx.clock.now() + 1_000),
          false,
          'finished',
        );
      });

      it('adoption is just another lease: a later lease of the same owner fences the adopted attempt', async () => {
        const token = randomUUID();
        const op = await fx.store.capture(
          newOperation(fx.clock, { lease: { owner: 'gw', token, expiresAt: fx.clock.now() + 1_000 } }),
        );
        assert.equal(await fx.store.extendLease(op.id, token, fx.clock.now() + 2_000), true);
        fx.clock.advance(2_000);
        await lease(fx.store, 'gw'); // hands the expired lease back
        const [replay] = await lease(fx.store, 'gw');
        assert.equal(replay?.id, op.id);
        assert.equal(await fx.store.complete(op.id, token, ok), false, 'the adopted attempt lost its lease');
        assert.equal(await fx.store.complete(op.id, replay!.leaseToken, ok), true);
      });

      it('leases last as long as their route asks', async () => {
        const fast = await fx.store.capture(newOperation(fx.clock, { route: 'fast' }));
        const slow = await fx.store.capture(newOperation(fx.clock, { route: 'slow' }));
        const leased = await fx.store.lease({
          owner: 'w1',
          limit: 10,
          leaseMs: 1_000,
          leaseMsByRoute: { slow: 20_000 },
        });
        const expiry = Object.fromEntries(leased.map((o) => [o.id, o.leaseExpiresAt]));
        assert.deepEqual(expiry, { [fast.id]: fx.clock.now() + 1_000, [slow.id]: fx.clock.now() + 20_000 });
        fx.clock.advance(1_000);
        await lease(fx.store, 'w2'); // hands the expired lease back
        assert.deepEqual(
          (await lease(fx.store, 'w2')).map((o) => o.id),
          [fast.id],
          "only the fast route's lease ran out",
        );
      });

      it('webhook deliveries: same owner, two holders: only the live token records or hands back', async () => {
        const op = await fx.store.capture(
          newOperation(fx.clock, { callbackUrl: `https://h.example/${randomUUID()}` }),
        );
        const [leasedOp] = await lease(fx.store);
        await fx.store.complete(op.id, leasedOp!.leaseToken, ok);
        const leaseHooks = () =>
          fx.store.leaseWebhookDeliveries({
            owner: 'gw',
            limit: 10,
            leaseMs: 1_000,
            endpoints: ['callback'],
          });
        const [stale] = await leaseHooks();
        fx.clock.advance(1_000);
        const [live] = await leaseHooks();
        assert.ok(stale?.leaseToken && live?.leaseToken);
        assert.notEqual(stale.leaseToken, live.leaseToken);
        const delivered: WebhookAttemptRecord = {
          attempt: { at: fx.clock.now(), status: 204, error: null, latencyMs: 3, responseSnippet: '' },
          next: { state: 'delivered' },
          lastError: null,
          disableEndpoint: false,
        };
        assert.equal(await fx.store.recordWebhookAttempt(stale, stale.leaseToken, delivered), false);
        assert.equal(await fx.store.releaseWebhookDelivery(stale, stale.leaseToken), false);
        assert.equal(await fx.store.recordWebhookAttempt(live, live.leaseToken, delivered), true);
        assert.equal((await fx.store.webhookDeliveries(op.id))[0]?.state, 'delivered');
      });
    });

    it('leases from the given routes only', async () => {
      const a = await fx.store.capture(newOperation(fx.clock, { route: 'a' }));
      const b = await fx.store.capture(newOperation(fx.clock, { route: 'b' }));
      const leased = await fx.store.lease({ owner: 'w', limit: 10, leaseMs: 1_000, routes: ['b'] });
      assert.deepEqual(
        leased.map((op) => op.id),
        [b.id],
      );
      const rest = await fx.store.lease({ owner: 'w', limit: 10, leaseMs: 1_000, routes: ['a', 'c'] });
      assert.deepEqual(
        rest.map((op) => op.id),
        [a.id],
      );
    });

    it('starts an adopted capture at Running, and completes it with an event', async () => {
      const op = await fx.store.capture(
        newOperation(fx.clock, {
          lease: { owner: 'gw', token: 'adopted', expiresAt: fx.clock.now() + 5_000 },
        }),
      );
      await fx.store.complete(op.id, 'adopted', { status: 200, headers: [], body: new Uint8Array() });
      assert.deepEqual(
        (await fx.store.events(op.id, 0)).map((e) => [e.seq, e.status]),
        [
          [1, 'Running'],
          [2, 'Succeeded'],
        ],
      );
    });

    it('cancels only an operation not started and not leased, atomically against leasing', async () => {
      const waiting = await fx.store.capture(
        newOperation(fx.clock, { nextAttemptAt: fx.clock.now() + 60_000 }),
      );
      const leased = await fx.store.capture(newOperation(fx.clock));
      await lease(fx.store);
      assert.equal(await fx.store.cancel(waiting.id), true);
      assert.equal(await fx.store.cancel(waiting.id), false, 'already canceled');
      assert.equal(await fx.store.cancel(leased.id), false, 'running');
      assert.equal(await fx.store.cancel(newOperationId()), false, 'unknown');
      assert.equal((await fx.store.get(waiting.id))?.status, 'Canceled');
      assert.deepEqual(
        (await fx.store.events(waiting.id, 0)).map((e) => e.status),
        ['NotStarted', 'Canceled'],
      );
      fx.clock.advance(60_000);
      assert.ok(
        (await lease(fx.store, 'w2')).every((o) => o.id !== waiting.id),
        'a canceled operation is never leased',
      );
      assert.equal((await fx.store.counts()).Canceled, 1);
    });

    it('purges terminal operations older than the retention, with their events, and nothing else', async () => {
      const done = await fx.store.capture(newOperation(fx.clock));
      const waiting = await fx.store.capture(
        newOperation(fx.clock, { nextAttemptAt: fx.clock.now() + 600_000 }),
      );
      const leased = await lease(fx.store);
      await fx.store.complete(done.id, tokenOf(leased, done.id), {
        status: 200,
        headers: [],
        body: new Uint8Array(),
      });
      fx.clock.advance(1_000);
      const recent = await fx.store.capture(newOperation(fx.clock));
      await fx.store.cancel(recent.id);
      assert.equal(await fx.store.purge(fx.clock.now() - 500, 100), 1);
      assert.equal(await fx.store.get(done.id), undefined);
      assert.deepEqual(await fx.store.events(done.id, 0), []);
      assert.ok(await fx.store.get(waiting.id), 'not terminal: kept whatever its age');
      assert.ok(await fx.store.get(recent.id), 'within the retention: kept');
      assert.equal(await fx.store.purge(fx.clock.now() + 1, 100), 1);
      assert.equal(await fx.store.purge(fx.clock.now() + 1, 100), 0);
    });

    it('answers get for an unknown id with undefined', async () => {
      assert.equal(await fx.store.get(newOperationId()), undefined);
    });

    it('oldestDueByRoute: per route, the earliest due time of what is due now; a leased one once its lease ran out', async () => {
      const t0 = fx.clock.now();
      await fx.store.capture(newOperation(fx.clock, { route: 'a', nextAttemptAt: t0 - 5_000 }));
      await fx.store.capture(newOperation(fx.clock, { route: 'a', nextAttemptAt: t0 - 1_000 }));
      await fx.store.capture(newOperation(fx.clock, { route: 'b', nextAttemptAt: t0 + 60_000 })); // not due yet
      await fx.store.capture(newOperation(fx.clock, { route: 'c', nextAttemptAt: t0 - 2_000 }));
      const done = newOperation(fx.clock, { route: 'd', nextAttemptAt: t0 - 9_000 });
      await fx.store.capture(done);
      assert.deepEqual(await fx.store.oldestDueByRoute(t0), { a: t0 - 5_000, c: t0 - 2_000, d: t0 - 9_000 });
      const [leased] = await fx.store.lease({ owner: 'w1', limit: 1, leaseMs: 1_000, routes: ['c'] });
      assert.ok(leased);
      const [finishing] = await fx.store.lease({ owner: 'w1', limit: 1, leaseMs: 1_000, routes: ['d'] });
      assert.ok(finishing);
      assert.ok(
        await fx.store.complete(done.id, finishing.leaseToken, {
          status: 200,
          headers: [],
          body: new Uint8Array(),
        }),
      );
      // A held lease is not due; a terminal operation never is.
      assert.deepEqual(await fx.store.oldestDueByRoute(t0), { a: t0 - 5_000 });
      fx.clock.advance(1_500);
      assert.deepEqual(await fx.store.oldestDueByRoute(fx.clock.now()), { a: t0 - 5_000, c: t0 + 1_000 });
    });
  });
}
