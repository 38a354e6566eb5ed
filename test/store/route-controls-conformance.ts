/**
 * Route controls (RouteControls in src/store/port.ts): operator overrides,
 * paused replay, each route's health as a gateway last wrote it (migration
 * 016), and a route's waiting operations brought forward, all kept for every
 * process sharing the store. Every adapter passes it unchanged.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newOperation, type StoreFactory, storeFixture } from './store-fixture.ts';

export function routeControlsConformance(name: string, factory: StoreFactory): void {
  describe(`RouteControls conformance: ${name}`, () => {
    const fx = storeFixture(factory);

    it('keeps route overrides across reopening, and clears them', async () => {
      assert.deepEqual(await fx.store.overrides(), {});
      await fx.store.setOverride('payments', 'forced-async');
      await fx.store.setOverride('orders', 'forced-sync');
      await fx.store.setOverride('payments', 'forced-sync');
      await fx.store.close();
      fx.store = await fx.reopen();
      assert.deepEqual(await fx.store.overrides(), { orders: 'forced-sync', payments: 'forced-sync' });
      await fx.store.setOverride('orders', null);
      await fx.store.setOverride('never-set', null);
      assert.deepEqual(await fx.store.overrides(), { payments: 'forced-sync' });
    });

    it('brings a route’s waiting operations forward, first in replay order, leaving leased and other routes alone', async () => {
      const later = fx.clock.now() + 60_000;
      const first = await fx.store.capture(
        newOperation(fx.clock, { route: 'a', nextAttemptAt: later, priority: 1 }),
      );
      const second = await fx.store.capture(newOperation(fx.clock, { route: 'a', nextAttemptAt: later }));
      const other = await fx.store.capture(newOperation(fx.clock, { route: 'b', nextAttemptAt: later }));
      assert.deepEqual(
        await fx.store.lease({ owner: 'w', limit: 10, leaseMs: 1_000 }),
        [],
        'nothing due yet',
      );
      assert.equal(await fx.store.bringForward('a', 1), 1);
      assert.equal((await fx.store.get(first.id))?.nextAttemptAt, fx.clock.now());
      assert.equal((await fx.store.get(second.id))?.nextAttemptAt, later);
      assert.equal(await fx.store.bringForward('a'), 1, 'the one already due is not counted again');
      assert.equal((await fx.store.get(second.id))?.nextAttemptAt, fx.clock.now());
      assert.equal((await fx.store.get(other.id))?.nextAttemptAt, later);
      const leased = await fx.store.lease({ owner: 'w', limit: 10, leaseMs: 1_000 });
      assert.deepEqual(leased.map((op) => op.id).sort(), [first.id, second.id].sort());
      assert.equal(await fx.store.bringForward('a'), 0, 'leased operations stay as they are');
    });

    it('keeps each route’s health as last written, across reopening', async () => {
      assert.deepEqual(await fx.store.routeHealth(), {});
      const since = fx.clock.now();
      await fx.store.setRouteHealth('orders', {
        state: 'diverting',
        cause: 'trip',
        since,
        until: since + 5_000,
      });
      await fx.store.setRouteHealth('refunds', { state: 'sync', cause: null, since, until: null });
      await fx.store.setRouteHealth('orders', {
        state: 'probing',
        cause: null,
        since: since + 5_000,
        until: null,
      });
      await fx.store.close();
      fx.store = await fx.reopen();
      assert.deepEqual(await fx.store.routeHealth(), {
        orders: { state: 'probing', cause: null, since: since + 5_000, until: null },
        refunds: { state: 'sync', cause: null, since, until: null },
      });
    });

    it('keeps paused replays across reopening, and resumes them', async () => {
      assert.deepEqual(await fx.store.pausedReplays(), {});
      await fx.store.setReplayPaused('payments', true);
      const at = fx.clock.now();
      fx.clock.advance(10);
      await fx.store.setReplayPaused('payments', true);
      await fx.store.setReplayPaused('orders', true);
      await fx.store.close();
      fx.store = await fx.reopen();
      assert.deepEqual(await fx.store.pausedReplays(), { orders: at + 10, payments: at });
      await fx.store.setReplayPaused('payments', false);
      await fx.store.setReplayPaused('payments', false);
      assert.deepEqual(Object.keys(await fx.store.pausedReplays()), ['orders']);
    });
  });
}
