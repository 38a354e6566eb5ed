/**
 * FIFO per key (migration 024): operations of one route with the same
 * ordering key are leased one at a time, in capture order, across retries,
 * backoff and expired leases; a dead letter blocks its key until it is
 * redriven, discarded or purged; other keys, other routes and operations
 * without a key are never held up. Every adapter passes it unchanged, with a
 * ManualClock, and a property test checks the order over random interleavings
 * of capture, lease, complete, retry and lease expiry.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { LeasedOperation, Operation, OperationStore } from '../../src/store/port.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { newOperation, type StoreFactory, storeFixture } from './store-fixture.ts';

const LEASE_MS = 1_000;
const lease = (store: OperationStore, limit = 10) => store.lease({ owner: 'w', limit, leaseMs: LEASE_MS });
const ok = { status: 200, headers: [], body: Buffer.from('ok') };
const refused = { code: 'upstream-status', message: 'The upstream answered 503.', upstreamStatus: 503 };

export function orderingConformance(name: string, factory: StoreFactory): void {
  describe(`OperationStore ordering keys: ${name}`, () => {
    const fx = storeFixture(factory);

    const capture = (orderingKey: string | null, overrides: Parameters<typeof newOperation>[1] = {}) =>
      fx.store.capture(newOperation(fx.clock, { orderingKey, ...overrides }));
    const ids = (ops: Operation[]) => ops.map((op) => op.id);

    it('leases a key’s operations one at a time, in capture order; other keys and unkeyed ones in parallel', async () => {
      const a1 = await capture('a');
      const a2 = await capture('a');
      const b1 = await capture('b');
      const a3 = await capture('a');
      const free = await capture(null);
      assert.equal(a1.keyBlocked, false);
      assert.equal(a2.keyBlocked, true, 'captured behind a1');
      assert.equal(b1.keyBlocked, false);
      const first = await lease(fx.store);
      assert.deepEqual(
        ids(first).sort(),
        [a1.id, b1.id, free.id].sort(),
        'one head per key, and the free one',
      );
      assert.deepEqual(await lease(fx.store), [], 'a key’s next waits for its head, however due');
      await fx.store.complete(a1.id, first.find((op) => op.id === a1.id)!.leaseToken, ok);
      const second = await lease(fx.store);
      assert.deepEqual(ids(second), [a2.id]);
      assert.equal(second[0]!.keyBlocked, false);
      await fx.store.complete(a2.id, second[0]!.leaseToken, ok);
      assert.deepEqual(ids(await lease(fx.store)), [a3.id]);
    });

    it('keeps the order across retries and backoff: the head is retried first, later ones wait', async () => {
      const a1 = await capture('a');
      const a2 = await capture('a');
      const [held] = await lease(fx.store);
      assert.equal(held?.id, a1.id);
      await fx.store.retry(a1.id, held.leaseToken, {
        nextAttemptAt: fx.clock.now() + 5_000,
        error: refused,
        outcomeUnknown: false,
      });
      fx.clock.advance(1_000);
      assert.deepEqual(await lease(fx.store), [], 'a2 is due, but its head is backing off');
      assert.equal(
        await fx.store.nextDueAt(),
        fx.clock.now() + 4_000,
        'the timer waits for the head, not for a2',
      );
      fx.clock.advance(4_000);
      const [again] = await lease(fx.store);
      assert.equal(again?.id, a1.id);
      await fx.store.complete(a1.id, again.leaseToken, ok);
      assert.deepEqual(ids(await lease(fx.store)), [a2.id]);
    });

    it('hands an expired head back to the key, not to the next one', async () => {
      const a1 = await capture('a');
      await capture('a');
      assert.deepEqual(ids(await lease(fx.store)), [a1.id]);
      fx.clock.advance(LEASE_MS + 1);
      assert.deepEqual(await lease(fx.store), [], 'the hand-back makes a1 due from the next call on');
      const [back] = await lease(fx.store);
      assert.equal(back?.id, a1.id);
      assert.equal(back.outcomeUnknown, true);
    });

    it('scopes a key to its route', async () => {
      const a = await capture('k', { route: 'a' });
      const b = await capture('k', { route: 'b' });
      assert.deepEqual(ids(await lease(fx.store)).sort(), [a.id, b.id].sort());
    });

    it('tells whether a key has an operation not finished', async () => {
      assert.equal(await fx.store.orderingKeyPending('default', 'a'), false);
      const a1 = await capture('a');
      assert.equal(await fx.store.orderingKeyPending('default', 'a'), true);
      assert.equal(await fx.store.orderingKeyPending('other', 'a'), false);
      const [held] = await lease(fx.store);
      assert.equal(await fx.store.orderingKeyPending('default', 'a'), true, 'in flight');
      await fx.store.complete(a1.id, held!.leaseToken, ok);
      assert.equal(await fx.store.orderingKeyPending('default', 'a'), false);
    });

    it('a dead letter blocks its key until redriven; discarding it lets the next one go', async () => {
      const a1 = await capture('a');
      const a2 = await capture('a');
      const a3 = await capture('a');
      const deadLetter = async (id: string) => {
        const [held] = await lease(fx.store);
        assert.equal(held?.id, id);
        await fx.store.fail(id, held.leaseToken, {
          error: refused,
          result: null,
          deadLetter: true,
          countsAsAttempt: true,
        });
      };
      await deadLetter(a1.id);
      assert.deepEqual(await lease(fx.store), [], 'blocked by its dead letter');
      assert.equal(await fx.store.orderingKeyPending('default', 'a'), true);
      assert.deepEqual(await fx.store.blockedOrderingKeys(10), [
        {
          route: 'default',
          orderingKey: 'a',
          operationId: a1.id,
          deadLetteredAt: fx.clock.now(),
          waiting: 2,
        },
      ]);
      const [listed] = await fx.store.listOperations({ limit: 10, status: 'NotStarted' });
      assert.equal(listed?.orderingKey, 'a');
      assert.equal(listed?.keyBlocked, true);
      // Redriven: still the head, replayed before the rest.
      assert.equal((await fx.store.redrive(a1.id)).outcome, 'redriven');
      await deadLetter(a1.id);
      assert.equal((await fx.store.discard(a1.id)).outcome, 'discarded');
      assert.deepEqual(await fx.store.blockedOrderingKeys(10), []);
      const [next] = await lease(fx.store);
      assert.equal(next?.id, a2.id);
      // A final answer (failed, not dead-lettered) does not block the key.
      await fx.store.fail(a2.id, next.leaseToken, {
        error: { code: 'upstream-status', message: '422', upstreamStatus: 422 },
        result: null,
        deadLetter: false,
        countsAsAttempt: true,
      });
      assert.deepEqual(ids(await lease(fx.store)), [a3.id]);
    });

    it('retention purging a dead letter unblocks its key', async () => {
      const a1 = await capture('a');
      const a2 = await capture('a');
      const [held] = await lease(fx.store);
      await fx.store.fail(a1.id, held!.leaseToken, {
        error: refused,
        result: null,
        deadLetter: true,
        countsAsAttempt: true,
      });
      fx.clock.advance(10);
      assert.equal(await fx.store.purge(fx.clock.now(), 10), 1);
      assert.deepEqual(ids(await lease(fx.store)), [a2.id]);
    });

    it('canceling a blocked operation keeps the head; canceling the head lets the next one go', async () => {
      const a1 = await capture('a');
      const a2 = await capture('a');
      const a3 = await capture('a');
      assert.equal(await fx.store.cancel(a2.id), true);
      assert.equal(await fx.store.cancel(a1.id), true);
      assert.deepEqual(ids(await lease(fx.store)), [a3.id]);
    });

    it('keeps each key in capture order over random interleavings (property)', async () => {
      const step = fc.oneof(
        {
          weight: 4,
          arbitrary: fc.record({
            kind: fc.constant('capture' as const),
            key: fc.constantFrom('a', 'b', 'c', null),
          }),
        },
        {
          weight: 3,
          arbitrary: fc.record({
            kind: fc.constant('lease' as const),
            limit: fc.integer({ min: 1, max: 4 }),
          }),
        },
        { weight: 3, arbitrary: fc.record({ kind: fc.constant('complete' as const), pick: fc.nat() }) },
        {
          weight: 2,
          arbitrary: fc.record({
            kind: fc.constant('retry' as const),
            pick: fc.nat(),
            delayMs: fc.integer({ min: 0, max: 3_000 }),
          }),
        },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const) }) },
      );
      await fx.store.close(); // each run gets a store of its own
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), async (steps) => {
          fx.clock = new ManualClock();
          ({ store: fx.store } = await factory(fx.clock));
          try {
            await checkOrder(fx.store, fx.clock, steps);
          } finally {
            await fx.store.close();
          }
        }),
        { numRuns: 30 },
      );
      ({ store: fx.store } = await factory(fx.clock)); // for afterEach
    });
  });
}

type Step =
  | { kind: 'capture'; key: string | null }
  | { kind: 'lease'; limit: number }
  | { kind: 'complete'; pick: number }
  | { kind: 'retry'; pick: number; delayMs: number }
  | { kind: 'expire' };

/**
 * Runs the steps, then drains what is left, checking after each lease that no
 * key has two leases held and that nothing is leased before every earlier
 * operation of its key has succeeded; at the end each key's successes must be
 * its captures, in order.
 */
async function checkOrder(store: OperationStore, clock: ManualClock, steps: Step[]): Promise<void> {
  const captured = new Map<string, string[]>(); // key → ids in capture order
  const succeeded = new Map<string, string[]>();
  const keyOf = new Map<string, string | null>();
  let held: LeasedOperation[] = [];
  const take = async (limit: number) => {
    const leased = await store.lease({ owner: 'w', limit, leaseMs: LEASE_MS });
    // A lease that ran out is no longer held: whoever leases the operation now holds it.
    held = held.filter((h) => h.leaseExpiresAt > clock.now() && !leased.some((l) => l.id === h.id));
    for (const op of leased) {
      const key = keyOf.get(op.id);
      if (key === null || key === undefined) continue;
      assert.ok(!held.some((h) => keyOf.get(h.id) === key), `key ${key} leased twice at once`);
      const queue = captured.get(key)!;
      const before = queue.slice(0, queue.indexOf(op.id));
      const done = succeeded.get(key) ?? [];
      assert.deepEqual(done, before, `${op.id} leased before every earlier operation of ${key} succeeded`);
      held.push(op);
    }
    for (const op of leased) if (keyOf.get(op.id) === null) held.push(op);
  };
  /** Finishes one live lease, the `pick`th; false when none is live. */
  const finish = async (pick: number, retryDelayMs?: number): Promise<boolean> => {
    const live = held.filter((h) => h.leaseExpiresAt > clock.now());
    const op = live[pick % Math.max(1, live.length)];
    if (!op) return false;
    held = held.filter((h) => h !== op);
    if (retryDelayMs === undefined) {
      if (await store.complete(op.id, op.leaseToken, ok)) {
        const key = keyOf.get(op.id);
        if (key != null) succeeded.set(key, [...(succeeded.get(key) ?? []), op.id]);
      }
    } else {
      await store.retry(op.id, op.leaseToken, {
        nextAttemptAt: clock.now() + retryDelayMs,
        error: refused,
        outcomeUnknown: false,
      });
    }
    return true;
  };
  for (const step of steps) {
    switch (step.kind) {
      case 'capture': {
        const op = await store.capture(newOperation(clock, { orderingKey: step.key }));
        keyOf.set(op.id, step.key);
        if (step.key !== null) captured.set(step.key, [...(captured.get(step.key) ?? []), op.id]);
        break;
      }
      case 'lease':
        await take(step.limit);
        break;
      case 'complete':
        await finish(step.pick);
        break;
      case 'retry':
        await finish(step.pick, step.delayMs);
        break;
      case 'expire':
        clock.advance(LEASE_MS + 1);
        break;
    }
  }
  // Drain: lease and complete everything left, moving time on past backoffs and expired leases.
  for (let round = 0; round < 500; round++) {
    await take(4);
    while (await finish(0)) {}
    const next = await store.nextDueAt();
    if (next === undefined) break;
    if (next > clock.now()) clock.advance(next - clock.now());
  }
  for (const [key, ids] of captured)
    assert.deepEqual(succeeded.get(key) ?? [], ids, `key ${key} in capture order`);
}
