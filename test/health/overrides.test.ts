/**
 * Operator overrides and the health API on the admin port, over real HTTP:
 * forced-async captures every request at once, survives a restart on the same
 * store, and `none` clears it; forced-sync keeps trying the upstream while it
 * fails, where the route would otherwise divert.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { jsonOf, startGateway, type TestGateway, tempDir } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const config = (upstream: TestUpstream) => ({
  upstream: upstream.url,
  replay: { concurrency: 0 }, // no replay: every upstream call seen here is a sync attempt
  routes: [{ name: 'orders', match: 'POST /orders' }],
  routeDefaults: { health: { windowMs: 2_000, bucketMs: 200, minCalls: 5, openMs: 60_000 } },
});

const admin = (gw: TestGateway) => `http://127.0.0.1:${gw.adminPort}`;
const override = (gw: TestGateway, route: string, body: string) =>
  fetch(`${admin(gw)}/api/routes/${route}/override`, { method: 'PUT', body });
const routeHealth = async (gw: TestGateway, name: string) => {
  const { routes } = await jsonOf(await fetch(`${admin(gw)}/api/health`));
  return routes.find((r: { route: string }) => r.route === name);
};
const order = (gw: TestGateway) => fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: 'order' });

describe('health API and overrides', () => {
  it('GET /api/health lists every route with state, since, reason, trips and signals', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway(config(upstream));
    try {
      assert.equal((await order(gw)).status, 200);
      const res = await fetch(`${admin(gw)}/api/health`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/json');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const { routes } = await jsonOf(res);
      assert.deepEqual(
        routes.map((r: { route: string }) => r.route),
        ['orders', 'default'],
      );
      const [orders] = routes;
      assert.deepEqual(Object.keys(orders).sort(), [
        'backlog',
        'deadLettered',
        'reason',
        'replay',
        'route',
        'signals',
        'since',
        'state',
        'trips',
        'windowMs',
      ]);
      assert.deepEqual([orders.backlog, orders.deadLettered, orders.replay], [0, 0, 'running']);
      assert.equal(orders.state, 'sync');
      assert.equal(orders.trips, 0);
      assert.equal(new Date(orders.since).toISOString(), orders.since);
      assert.equal(orders.signals.calls, 1);
      assert.equal(orders.signals.errorRate, 0);
      for (const key of ['slowRate', 'hung', 'inFlight', 'concurrencyLimit', 'syncShare', 'openMs', 'drills'])
        assert.equal(typeof orders.signals[key], 'number', key);
      assert.equal(typeof orders.signals.latencyMs, 'number');
      assert.deepEqual(orders.signals.replay, { calls: 0, errorRate: 0 });
    } finally {
      await upstream.stop();
    }
  });

  it('forced-async captures every request at once and survives a restart on the same store; none clears it', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'delay', ms: 300, and: { kind: 'echo' } });
    const dir = tempDir();
    try {
      {
        await using gw = await startGateway(config(upstream), dir);
        const set = await override(gw, 'orders', 'forced-async');
        assert.equal(set.status, 200);
        const body = await jsonOf(set);
        assert.equal(body.route, 'orders');
        assert.equal(body.state, 'forced-async');
        assert.equal(body.reason, 'override forced-async');
        const before = upstream.received.length;
        const res = await order(gw);
        assert.equal(res.status, 202);
        assert.equal(res.headers.get('spillway-failover-reason'), 'override forced-async');
        assert.equal(upstream.received.length, before, 'the upstream was not called');
        assert.equal((await fetch(`${gw.publicUrl}/other`)).status, 200, 'other routes are not affected');
      }
      {
        await using gw = await startGateway(config(upstream), dir);
        assert.equal(
          (await routeHealth(gw, 'orders')).state,
          'forced-async',
          'the override came back from the store',
        );
        const res = await order(gw);
        assert.equal(res.status, 202);
        assert.equal(res.headers.get('spillway-failover-reason'), 'override forced-async');
        const cleared = await override(gw, 'orders', '{"override": "none"}');
        assert.equal(cleared.status, 200);
        assert.equal((await jsonOf(cleared)).state, 'sync');
        assert.equal((await order(gw)).status, 200);
      }
      {
        await using gw = await startGateway(config(upstream), dir);
        assert.equal((await routeHealth(gw, 'orders')).state, 'sync', 'the cleared override stays cleared');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await upstream.stop();
    }
  });

  it('forced-sync keeps trying the upstream while it fails; without it the route diverts', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 503, body: 'down' });
    await using gw = await startGateway(config(upstream));
    try {
      assert.equal((await override(gw, 'orders', 'forced-sync')).status, 200);
      for (let i = 0; i < 20; i++) {
        const res = await order(gw);
        assert.equal(res.status, 202);
        assert.equal(res.headers.get('spillway-failover-reason'), 'upstream answered 503');
      }
      assert.equal(upstream.received.length, 20, 'every request tried the upstream');
      const forced = await routeHealth(gw, 'orders');
      assert.equal(forced.state, 'forced-sync');
      assert.equal(forced.reason, 'override forced-sync');

      // Underneath, the policy tripped: once the override is cleared, requests are diverted without a call.
      assert.equal((await override(gw, 'orders', 'none')).status, 200);
      const diverting = await routeHealth(gw, 'orders');
      assert.equal(diverting.state, 'diverting');
      assert.equal(diverting.trips, 1);
      assert.match(diverting.reason, /^error-rate 100% > 10%$/);
      const res = await order(gw);
      assert.equal(res.status, 202);
      assert.match(res.headers.get('spillway-failover-reason')!, /^diverting: error-rate 100% > 10%$/);
      assert.equal(upstream.received.length, 20, 'a diverted request does not reach the upstream');
    } finally {
      await upstream.stop();
    }
  });

  it('answers problems for an unknown route, a bad override and a wrong method', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway(config(upstream));
    try {
      const unknown = await override(gw, 'nope', 'forced-async');
      assert.equal(unknown.status, 404);
      assert.equal(unknown.headers.get('content-type'), 'application/problem+json');
      assert.match((await jsonOf(unknown)).detail, /No route is named "nope"/);
      const bad = await override(gw, 'orders', 'sometimes');
      assert.equal(bad.status, 400);
      assert.equal((await jsonOf(bad)).type, 'https://spillway.dev/problems/bad-request');
      const get = await fetch(`${admin(gw)}/api/routes/orders/override`);
      assert.equal(get.status, 405);
      assert.equal(get.headers.get('allow'), 'PUT');
      assert.equal((await routeHealth(gw, 'orders')).state, 'sync', 'nothing changed');
    } finally {
      await upstream.stop();
    }
  });
});
