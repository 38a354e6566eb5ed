/**
 * CORS preflights on proxied routes (docs/http-api.md, "CORS"): an `OPTIONS`
 * with `Origin` and `Access-Control-Request-Method` is not work. It goes to the
 * upstream while it can answer, and is never captured: when the upstream cannot
 * answer it (diverting, refused, unreachable, out of budget), Spillway answers
 * it itself, granting only the origins in `corsOrigins`. Real HTTP on loopback.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventOf, recordEvents } from '../support/events.ts';
import { jsonOf, startGateway, type TestGateway } from '../support/harness.ts';
import { closedPort, TestUpstream } from '../support/test-upstream.ts';

const APP = 'https://app.example';

const preflight = (gw: TestGateway, origin: string, requestHeaders?: string) =>
  fetch(`${gw.publicUrl}/payments`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      ...(requestHeaders ? { 'access-control-request-headers': requestHeaders } : {}),
    },
  });

/** Operations in the store, every status together. */
async function stored(gw: TestGateway): Promise<number> {
  const { deadLettered: _, ...byStatus } = await gw.store.counts();
  return Object.values(byStatus).reduce((a, b) => a + b, 0);
}

/** Spillway's stand-in answer for an allowed origin, as a browser reads it. */
function assertStandIn(res: Response, requestHeaders: string | null): void {
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), APP);
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
  assert.equal(res.headers.get('access-control-allow-methods'), 'POST');
  assert.equal(res.headers.get('access-control-allow-headers'), requestHeaders);
  assert.equal(res.headers.get('access-control-max-age'), '5');
  assert.equal(
    res.headers.get('vary'),
    'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
  );
  assert.equal(res.headers.get('operation-location'), null, 'nothing captured');
}

describe('CORS preflights on proxied routes', () => {
  it('upstream down: an allowed origin gets a 204 from Spillway granting what it asked; nothing is stored; the real request then fails over with CORS', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    await using gw = await startGateway({ upstream: down, corsOrigins: [APP], replay: { concurrency: 0 } });
    const seen = recordEvents(gw.events);
    const res = await preflight(gw, APP, 'content-type,idempotency-key,prefer');
    assertStandIn(res, 'content-type,idempotency-key,prefer');
    assert.equal(await res.text(), '');
    const told = await eventOf(gw.events, seen, 'answer:not-captured');
    assert.deepEqual(
      { route: told.route, reason: told.reason, detail: told.detail },
      { route: 'default', reason: 'upstream-unreachable', detail: 'upstream unreachable' },
    );
    // A preflight without Access-Control-Request-Headers is granted no headers.
    assertStandIn(await preflight(gw, APP), null);
    assert.equal(await stored(gw), 0, 'a preflight is never captured');

    const real = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { origin: APP, 'content-type': 'application/json', prefer: 'respond-async' },
      body: '{"amount":1}',
    });
    assert.equal(real.status, 202);
    assert.equal(real.headers.get('access-control-allow-origin'), APP);
    assert.equal(await stored(gw), 1, 'the request that followed is');
  });

  it('upstream down: any other origin gets a 503 problem with Retry-After and no CORS; nothing is stored', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    await using gw = await startGateway({ upstream: down, corsOrigins: [APP], replay: { concurrency: 0 } });
    const res = await preflight(gw, 'https://other.example', 'content-type');
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal(res.headers.get('access-control-allow-methods'), null);
    const problem = await jsonOf(res);
    assert.equal(problem.type, 'https://spillway.dev/problems/preflight-not-answered');
    assert.match(problem.detail, /corsOrigins/);
    assert.equal(await stored(gw), 0);
  });

  it("healthy upstream: the upstream's own preflight answer passes through", async () => {
    await using upstream = await new TestUpstream().start();
    upstream.behaviour = (req) =>
      req.method === 'OPTIONS'
        ? {
            kind: 'respond',
            status: 200,
            headers: {
              'access-control-allow-origin': APP,
              'access-control-allow-methods': 'POST, PUT',
              'access-control-allow-headers': 'content-type',
              'access-control-max-age': '600',
            },
          }
        : { kind: 'echo' };
    await using gw = await startGateway({ upstream: upstream.url, corsOrigins: [APP] });
    for (const origin of [APP, 'https://other.example']) {
      const res = await preflight(gw, origin, 'content-type');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-methods'), 'POST, PUT', "the upstream's");
      assert.equal(res.headers.get('access-control-max-age'), '600');
      assert.equal(res.headers.get('access-control-allow-origin'), APP);
    }
    assert.equal(upstream.received.filter((r) => r.method === 'OPTIONS').length, 2);
    assert.equal(await stored(gw), 0);
  });

  it('route diverting (here by the forced-async override): answered by Spillway at once, without a call to the upstream', async () => {
    await using upstream = await new TestUpstream().start();
    await using gw = await startGateway({ upstream: upstream.url, corsOrigins: [APP] });
    const set = await fetch(`http://127.0.0.1:${gw.adminPort}/api/routes/default/override`, {
      method: 'PUT',
      body: 'forced-async',
    });
    assert.equal(set.status, 200);
    assertStandIn(await preflight(gw, APP, 'prefer'), 'prefer');
    assert.equal(upstream.received.length, 0);
    assert.equal(await stored(gw), 0);
  });

  it('a route with a budget of 0 (always async): answered by Spillway at once, without a call to the upstream', async () => {
    await using upstream = await new TestUpstream().start();
    await using gw = await startGateway({
      upstream: upstream.url,
      corsOrigins: [APP],
      routes: [{ name: 'payments', match: '* /payments', budgetMs: 0 }],
    });
    assertStandIn(await preflight(gw, APP), null);
    assert.equal(upstream.received.length, 0);
    assert.equal(await stored(gw), 0);
  });

  it('upstream refusing with a failover status, or holding the call past the budget: answered by Spillway; nothing stored, nothing adopted', async () => {
    await using upstream = await new TestUpstream().start();
    upstream.behaviour = (req) =>
      req.headers['x-hold'] ? { kind: 'black-hole' } : { kind: 'respond', status: 503, body: 'busy' };
    await using gw = await startGateway({
      upstream: upstream.url,
      corsOrigins: [APP],
      routeDefaults: { budgetMs: 200, health: { minCalls: 1_000 } },
    });
    assertStandIn(await preflight(gw, APP, 'content-type'), 'content-type');
    const held = await fetch(`${gw.publicUrl}/payments`, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'PUT', 'x-hold': '1' },
    });
    assert.equal(held.status, 204);
    assert.equal(held.headers.get('access-control-allow-methods'), 'PUT');
    assert.equal(await stored(gw), 0);
  });

  it('a route that does not fail over: a preflight the upstream cannot answer is answered by Spillway too', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    await using gw = await startGateway({
      upstream: down,
      corsOrigins: [APP],
      routes: [{ name: 'payments', match: '* /payments', failover: false }],
    });
    assertStandIn(await preflight(gw, APP, 'content-type'), 'content-type');
    const other = await preflight(gw, 'https://other.example');
    assert.equal(other.status, 503);
    assert.match((await jsonOf(other)).detail, /upstream unreachable/);
  });

  it('a malformed preflight the upstream cannot answer is a 400 problem, even for an allowed origin', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    await using gw = await startGateway({ upstream: down, corsOrigins: [APP], replay: { concurrency: 0 } });
    const res = await fetch(`${gw.publicUrl}/payments`, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'PO ST' },
    });
    assert.equal(res.status, 400);
    assert.equal((await jsonOf(res)).code, 'bad-request');
    assert.equal(
      res.headers.get('access-control-allow-origin'),
      APP,
      'readable, like any problem of Spillway',
    );
    assert.equal(res.headers.get('access-control-allow-methods'), null);
    assert.equal(await stored(gw), 0);
  });

  it('a plain OPTIONS (no Access-Control-Request-Method) is an ordinary request: it fails over', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    await using gw = await startGateway({ upstream: down, corsOrigins: [APP], replay: { concurrency: 0 } });
    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'OPTIONS', headers: { origin: APP } });
    assert.equal(res.status, 202);
    assert.ok(res.headers.get('operation-location'));
    assert.equal(await stored(gw), 1);
  });
});
