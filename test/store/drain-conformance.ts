/**
 * The drain verbs of the OperationStore port (migration 016): leasing from
 * chosen routes only, bringing a route's waiting operations forward, and each
 * route's health as a gateway last wrote it. Every adapter passes it
 * unchanged, with a ManualClock for exact times.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { OperationStore } from '../../src/store/port.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { newOperation, type StoreFactory } from './conformance.ts';

export function drainConformance(name: string, factory: StoreFactory): void {
  describe(`OperationStore drain verbs: ${name}`, () => {
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

    it('leases from the given routes only', async () => {
      const a = await store.capture(newOperation(clock, { route: 'a' }));
      const b = await store.capture(newOperation(clock, { route: 'b' }));
      const leased = await store.lease({ owner: 'w', limit: 10, leaseMs: 1_000, routes: ['b'] });
      assert.deepEqual(
        leased.map((op) => op.id),
        [b.id],
      );
      const rest = await store.lease({ owner: 'w', limit: 10, leaseMs: 1_000, routes: ['a', 'c'] });
      assert.deepEqual(
        rest.map((op) => op.id),
        [a.id],
      );
    });

    it('brings a route’s waiting operations forward, first in replay order, leaving leased and other routes alone', async () => {
      const later = clock.now() + 60_000;
      const first = await store.capture(
        newOperation(clock, { route: 'a', nextAttemptAt: later, priority: 1 }),
      );
      const second = await store.capture(newOperation(clock, { route: 'a', nextAttemptAt: later }));
      const other = await store.capture(newOperation(clock, { route: 'b', nextAttemptAt: later }));
      assert.deepEqual(await store.lease({ owner: 'w', limit: 10, leaseMs: 1_000 }), [], 'nothing due yet');
      assert.equal(await store.bringForward('a', 1), 1);
      assert.equal((await store.get(first.id))?.nextAttemptAt, clock.now());
      assert.equal((await store.get(second.id))?.nextAttemptAt, later);
      assert.equal(await store.bringForward('a'), 1, 'the one already due is not counted again');
      assert.equal((await store.get(second.id))?.nextAttemptAt, clock.now());
      assert.equal((await store.get(other.id))?.nextAttemptAt, later);
      const leased = await store.lease({ owner: 'w', limit: 10, leaseMs: 1_000 });
      assert.deepEqual(leased.map((op) => op.id).sort(), [first.id, second.id].sort());
      assert.equal(await store.bringForward('a'), 0, 'leased operations stay as they are');
    });

    it('keeps each route’s health as last written, across reopening', async () => {
      assert.deepEqual(await store.routeHealth(), {});
      const since = clock.now();
      await store.setRouteHealth('orders', {
        state: 'diverting',
        cause: 'trip',
        since,
        until: since + 5_000,
      });
      await store.setRouteHealth('refunds', { state: 'sync', cause: null, since, until: null });
      await store.setRouteHealth('orders', {
        state: 'probing',
        cause: null,
        since: since + 5_000,
        until: null,
      });
      await store.close();
      store = await reopen();
      assert.deepEqual(await store.routeHealth(), {
        orders: { state: 'probing', cause: null, since: since + 5_000, until: null },
        refunds: { state: 'sync', cause: null, since, until: null },
      });
    });
  });
}
