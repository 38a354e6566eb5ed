/**
 * Leases under a running replay: each route's lease lasts as long as its own
 * attempts need (not the longest route's), and a replay that outlives its
 * lease keeps it by heartbeat, so no other worker takes the operation and
 * sends it a second time. Real SQLite file, real upstream on loopback; the
 * store's and the worker's time is a ManualClock, the upstream's real time.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildConfig } from '../../src/config/config.ts';
import { leaseMsFor } from '../../src/engine/lease-heartbeat.ts';
import { HttpUpstream } from '../../src/engine/upstream.ts';
import { LifecycleEvents } from '../../src/events/lifecycle.ts';
import { replayWorkerFor } from '../../src/ops/process-parts.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newOperation } from '../store/store-fixture.ts';
import { tempDir } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { TestUpstream } from '../support/test-upstream.ts';

describe('leases of running replays', () => {
  const dir = tempDir();
  const upstream = new TestUpstream();
  before(() => upstream.start());
  after(async () => {
    await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const setup = async (name: string) => {
    const clock = new ManualClock();
    const store = new SqliteStore({ path: join(dir, `${name}.db`), clock });
    const config = buildConfig({
      upstream: upstream.url,
      routes: [{ name: 'fast', match: 'POST /fast', attemptTimeoutMs: 2_000, budgetMs: 500 }],
      routeDefaults: { attemptTimeoutMs: 120_000, budgetMs: 500 },
    });
    const client = new HttpUpstream(upstream.url);
    const worker = replayWorkerFor(config, {
      store,
      upstream: client,
      clock,
      owner: 'gw',
      events: new LifecycleEvents(),
    });
    return {
      clock,
      store,
      worker,
      route: (name: string) => config.routes.find((r) => r.name === name)!,
      close: async () => {
        await worker.stop(0);
        await client.close();
        await store.close();
      },
    };
  };

  /** Lets the store's queued writes (heartbeats) commit: they flush on the next turns of the event loop. */
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  };

  it("lasts as long as its own route's attempts need, not the longest route's", async () => {
    const { clock, store, worker, route, close } = await setup('durations');
    upstream.behaviour = () => ({ kind: 'delay', ms: 300, and: { kind: 'echo' } });
    try {
      const fast = await store.capture(newOperation(clock, { route: 'fast' }));
      const slow = await store.capture(newOperation(clock, { route: 'default' }));
      assert.equal(await worker.runOnce(), 2);
      const expiry = async (id: string) => (await store.get(id))?.leaseExpiresAt;
      assert.equal(await expiry(fast.id), clock.now() + leaseMsFor(route('fast')));
      assert.equal(await expiry(slow.id), clock.now() + leaseMsFor(route('default')));
      assert.ok(leaseMsFor(route('fast')) < leaseMsFor(route('default')));
      await worker.idle();
      assert.equal((await store.get(fast.id))?.status, 'Succeeded');
    } finally {
      await close();
    }
  });

  it('a replay longer than its lease keeps it by heartbeat: nobody else takes it, it is sent once', async () => {
    const { clock, store, worker, route, close } = await setup('heartbeat');
    const leaseMs = leaseMsFor(route('default'));
    let answer: () => void = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    upstream.behaviour = () => ({ kind: 'delay', ms: 60_000, and: { kind: 'echo' } });
    try {
      const op = await store.capture(newOperation(clock, { route: 'default' }));
      const arrivals = upstream.received.length;
      upstream.onArrival = () => answer();
      assert.equal(await worker.runOnce(), 1);
      await answered; // the request is at the upstream, which holds it
      const firstExpiry = (await store.get(op.id))!.leaseExpiresAt!;
      // Three leases' worth of time passes while the attempt runs.
      for (let elapsed = 0; elapsed < 3 * leaseMs; elapsed += 1_000) {
        clock.advance(1_000);
        await settle();
      }
      const held = await store.get(op.id);
      assert.equal(held?.status, 'Running');
      assert.equal(held?.leaseOwner, 'gw');
      assert.ok(held!.leaseExpiresAt! > clock.now(), 'the heartbeat kept the lease ahead of the clock');
      assert.ok(held!.leaseExpiresAt! > firstExpiry);
      for (let i = 0; i < 2; i++) {
        assert.deepEqual(await store.lease({ owner: 'other', limit: 10, leaseMs: 1_000 }), [], 'not taken');
      }
      assert.equal(upstream.received.length - arrivals, 1, 'sent once');
    } finally {
      upstream.onArrival = () => {};
      await close();
    }
  });
});
