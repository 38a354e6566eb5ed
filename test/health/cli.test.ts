/**
 * `spillway health` and `spillway override` as a user runs them: the real
 * bin/spillway.js in a child process, against a gateway started in-process.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spillway } from '../support/cli.ts';
import { jsonOf, startGateway, type TestGateway } from '../support/harness.ts';
import { closedPort, TestUpstream } from '../support/test-upstream.ts';

async function gatewayWithTrippedRoute(upstream: TestUpstream): Promise<TestGateway> {
  upstream.behaviour = (req) =>
    req.url === '/orders' ? { kind: 'respond', status: 503, body: 'down' } : { kind: 'echo' };
  const gw = await startGateway({
    upstream: upstream.url,
    replay: { concurrency: 0 },
    routes: [{ name: 'orders', match: 'POST /orders' }],
    routeDefaults: { health: { minCalls: 5, openMs: 60_000 } },
  });
  for (let i = 0; i < 5; i++) await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: 'x' });
  assert.equal((await fetch(`${gw.publicUrl}/elsewhere`)).status, 200);
  return gw;
}

describe('spillway health and spillway override', () => {
  it('health prints a table of every route: state, trips, signals and the reason', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await gatewayWithTrippedRoute(upstream);
    try {
      const run = await spillway(['health', '--admin-url', `http://127.0.0.1:${gw.adminPort}`]);
      assert.equal(run.code, 0, run.stderr);
      const [header, orders, other, ...rest] = run.stdout.trimEnd().split('\n');
      assert.deepEqual(rest, []);
      assert.match(
        header!,
        /^ROUTE +STATE +FOR +TRIPS +CALLS +ERRORS +SLOW +LATENCY +IN FLIGHT +SYNC +REPLAYS +REASON$/,
      );
      assert.match(
        orders!,
        /^orders +diverting +\d+s +1 +5 +100% +0% +\d+ ms +0\/256 +0% +- +error-rate 100% > 10%$/,
      );
      assert.match(other!, /^default +sync +\d+s +0 +1 +0% +0% +\d+ ms +0\/256 +100% +- +started$/);
    } finally {
      await upstream.stop();
    }
  });

  it('health --json prints GET /api/health, with the admin URL from SPILLWAY_ADMIN_URL', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await gatewayWithTrippedRoute(upstream);
    try {
      const admin = `http://127.0.0.1:${gw.adminPort}`;
      const run = await spillway(['health', '--json'], { SPILLWAY_ADMIN_URL: admin });
      assert.equal(run.code, 0, run.stderr);
      const printed = JSON.parse(run.stdout);
      const direct = await jsonOf(await fetch(`${admin}/api/health`));
      assert.deepEqual(
        printed.routes.map((r: { route: string; state: string; trips: number }) => [
          r.route,
          r.state,
          r.trips,
        ]),
        direct.routes.map((r: { route: string; state: string; trips: number }) => [
          r.route,
          r.state,
          r.trips,
        ]),
      );
    } finally {
      await upstream.stop();
    }
  });

  it('override sets and clears a route override through the running gateway', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway({
      upstream: upstream.url,
      replay: { concurrency: 0 },
      routes: [{ name: 'orders', match: 'POST /orders' }],
    });
    try {
      const admin = ['--admin-url', `http://127.0.0.1:${gw.adminPort}`];
      const forced = await spillway(['override', 'orders', 'forced-async', ...admin]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(
        forced.stdout,
        /^Route "orders" is forced-async: .* Clear it with: spillway override orders none\n/,
      );
      assert.match(forced.stdout, /\norders +forced-async +.* override forced-async\n$/);
      const res = await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: 'x' });
      assert.equal(res.status, 202);
      assert.equal(res.headers.get('spillway-failover-reason'), 'override forced-async');
      assert.equal(gw.health.route('orders').override, 'forced-async');

      const cleared = await spillway(['override', 'orders', 'none', ...admin]);
      assert.equal(cleared.code, 0, cleared.stderr);
      assert.match(cleared.stdout, /^Override cleared: route "orders" follows its health policy again\./);
      assert.equal(gw.health.route('orders').override, null);
      assert.equal((await fetch(`${gw.publicUrl}/orders`, { method: 'POST', body: 'x' })).status, 200);
    } finally {
      await upstream.stop();
    }
  });

  it('says which routes exist when the route is unknown, and what to do when the admin port is unreachable', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway({
      upstream: upstream.url,
      routes: [{ name: 'orders', match: 'POST /orders' }],
    });
    try {
      const unknown = await spillway([
        'override',
        'nope',
        'forced-sync',
        '--admin-url',
        `http://127.0.0.1:${gw.adminPort}`,
      ]);
      assert.equal(unknown.code, 1);
      assert.equal(unknown.stderr, 'spillway: no route is named "nope". Routes: orders, default.\n');
      assert.equal(gw.health.route('orders').override, null);

      const port = await closedPort();
      for (const args of [['health'], ['override', 'orders', 'none']]) {
        const down = await spillway([...args, '--admin-url', `http://127.0.0.1:${port}`]);
        assert.equal(down.code, 1);
        assert.equal(
          down.stderr,
          `spillway: cannot reach the admin port at http://127.0.0.1:${port} (ECONNREFUSED). Is the gateway running? Point --admin-url or SPILLWAY_ADMIN_URL at its admin port.\n`,
        );
      }
      const bad = await spillway(['override', 'orders', 'sometimes']);
      assert.equal(bad.code, 2);
      assert.match(
        bad.stderr,
        /the override must be one of forced-async, forced-sync, none, got "sometimes"/,
      );
      const missing = await spillway(['override', 'orders']);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /expected 2 arguments, got 1/);
    } finally {
      await upstream.stop();
    }
  });

  it('defaults to the admin port on 127.0.0.1:8081, and documents both commands in the help', async () => {
    const plain = await spillway(['health']);
    // Whatever runs on this machine: either a gateway answers there, or the error names that address.
    assert.ok(
      (plain.code === 0 && plain.stdout.startsWith('ROUTE ')) ||
        (plain.code === 1 && plain.stderr.includes('the admin port at http://127.0.0.1:8081 (')),
      plain.stderr,
    );
    const help = await spillway(['help']);
    assert.match(help.stdout, /spillway health \[--json\] \[--admin-url URL\]/);
    assert.match(help.stdout, /spillway override ROUTE forced-async\|forced-sync\|none \[--admin-url URL\]/);
    assert.match(help.stdout, /spillway worker/);
    assert.match(help.stdout, /--admin-url URL +SPILLWAY_ADMIN_URL +http:\/\/127\.0\.0\.1:8081/);
  });
});
