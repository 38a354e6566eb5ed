/**
 * A separate `spillway worker` follows the gateways' route health through the
 * PostgreSQL store: while a capture-only gateway diverts a route, the worker
 * replays it only as probes, one at a time at the probe cadence, and the
 * probes the upstream refuses are not counted as attempts; once the upstream
 * is back, a probe passes and the worker drains the backlog at once.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { buildConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { startWorkerProcess } from '../../src/ops/worker-process.ts';
import { startGateway } from '../support/harness.ts';
import { freshSchema, skipWithoutPostgres } from '../support/postgres.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const skip = await skipWithoutPostgres('the worker-follows-health tests on PostgreSQL');
const PROBE_INTERVAL_MS = 300;

describe('spillway worker follows the gateways’ route health', { skip }, () => {
  const db = freshSchema('spillway_worker_health_test');
  after(() => db.drop());

  it('probes a diverting route one replay at a time, uncounted, then drains it once the upstream is back', async (t) => {
    const upstream = await new TestUpstream().start();
    let healthy = false;
    upstream.behaviour = () =>
      healthy
        ? { kind: 'delay', ms: 50, and: { kind: 'respond', status: 201, body: 'done' } }
        : { kind: 'respond', status: 503 };
    const arrivals: number[] = [];
    let peak = 0;
    upstream.onArrival = (inFlight) => {
      arrivals.push(Date.now());
      peak = Math.max(peak, inFlight.size);
    };
    const routeDefaults = {
      backoff: { initialMs: 1_000, maxMs: 60_000 },
      health: { minCalls: 5, openMs: 60_000, probeIntervalMs: PROBE_INTERVAL_MS },
    };
    // A capture-only gateway: it decides the route's health, the worker replays.
    await using gw = await startGateway({
      upstream: upstream.url,
      store: db.url,
      replay: { concurrency: 0 },
      routeDefaults,
    });
    const worker = await startWorkerProcess(
      buildConfig({
        upstream: upstream.url,
        store: db.url,
        adminPort: 0,
        replay: { concurrency: 4, pollIntervalMs: 20 },
        routeDefaults,
      }),
      { logger: createLogger('silent') },
    );
    try {
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: `order ${i}` });
        assert.equal(res.status, 202);
        ids.push(((await res.json()) as { id: string }).id);
      }
      assert.equal(gw.health.snapshot()[0]?.state, 'diverting');
      assert.equal((await gw.store.routeHealth()).default?.state, 'diverting', 'the gateway wrote its state');
      // A replay the worker started before it read the trip ends within ms (the upstream answers 503 at once).
      await new Promise((r) => setTimeout(r, 200));
      const attempts = await Promise.all(ids.map(async (id) => (await gw.store.get(id))?.attempts));
      const tripped = Date.now();
      const before = upstream.received.length;
      peak = 0;
      // Two seconds of outage: the worker only probes.
      await new Promise((r) => setTimeout(r, 2_000));
      const probes = arrivals.filter((at) => at >= tripped);
      t.diagnostic(`${probes.length} probes in 2 s of outage (every ${PROBE_INTERVAL_MS} ms at most)`);
      assert.ok(probes.length >= 2, `${probes.length} probes`);
      assert.ok(
        probes.length <= 2_000 / PROBE_INTERVAL_MS + 2,
        `${probes.length} probes, no more than the cadence`,
      );
      assert.equal(peak, 1, 'one probe at a time');
      assert.deepEqual(
        await Promise.all(ids.map(async (id) => (await gw.store.get(id))?.attempts)),
        attempts,
        'refused probes are not counted as attempts',
      );
      healthy = true;
      const back = Date.now();
      const received = upstream.received.length;
      for (const id of ids) assert.equal((await gw.settled(id, 15_000)).status, 'Succeeded');
      const first = arrivals.find((at) => at >= back)!;
      t.diagnostic(
        `first replay ${first - back} ms after the upstream came back; ${ids.length} drained in ${Date.now() - back} ms (${before} sync calls, ${received - before} probes)`,
      );
      assert.ok(first - back <= 1_000, `first replay ${first - back} ms after the upstream was back`);
      assert.ok(peak > 1, 'the drain ran at more than one at a time');
    } finally {
      await worker.stop();
      await upstream.stop();
    }
  });
});
