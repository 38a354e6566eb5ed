/**
 * Long-running-operation conformance, the table of
 * ../shared/research/http-standards.md §2.7, each test named by its row id.
 * Row L10 (tenants) is in idempotency.test.ts, which shares the tenant;
 * L11 (kill after the 202) is test/reliability/kill9.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { Retention } from '../../src/workers/retention.ts';
import { jsonOf, operationIdOf, startGateway, tempDir } from '../support/harness.ts';
import { closedPort, TestUpstream } from '../support/test-upstream.ts';

async function slowUpstream(ms: number) {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => ({
    kind: 'delay',
    ms,
    and: { kind: 'respond', status: 201, headers: { 'content-type': 'application/json' }, body: '{"x":1}' },
  });
  return upstream;
}

describe('operations conformance, http-standards.md §2.7', () => {
  it('L1–L3, L14: absolute Operation-Location; monitor 200 with Retry-After while running; result 202 with itself as Location, then the upstream answer', async () => {
    const upstream = await slowUpstream(1_500);
    await using gw = await startGateway({
      upstream: upstream.url,
      routeDefaults: { attemptTimeoutMs: 5_000 },
    });
    const res = await fetch(`${gw.publicUrl}/things`, {
      method: 'POST',
      headers: { prefer: 'respond-async, wait=1' },
    });
    assert.equal(res.status, 202);
    const monitorUrl = res.headers.get('operation-location')!;
    assert.ok(new URL(monitorUrl).protocol.startsWith('http'), 'L1: absolute');

    const monitor = await fetch(monitorUrl);
    assert.equal(monitor.status, 200);
    assert.ok(['NotStarted', 'Running'].includes((await jsonOf(monitor)).status));
    assert.ok(Number(monitor.headers.get('retry-after')) >= 1);
    assert.equal(monitor.headers.get('cache-control'), 'no-store', 'L14');
    assert.equal(monitor.headers.get('content-type'), 'application/json', 'L14');

    const pending = await fetch(`${monitorUrl}/result`);
    assert.equal(pending.status, 202, 'L3');
    assert.ok(pending.headers.get('retry-after'));
    assert.equal(pending.headers.get('location'), `${monitorUrl}/result`);

    await gw.settled(operationIdOf(res));
    const done = await jsonOf(await fetch(monitorUrl));
    assert.equal(done.status, 'Succeeded', 'L2');
    assert.equal(done.resourceLocation, `${monitorUrl}/result`);
    const result = await fetch(`${monitorUrl}/result`);
    assert.equal(result.status, 201);
    assert.equal(result.headers.get('content-type'), 'application/json');
    assert.equal(await result.text(), '{"x":1}');
    await upstream.stop();
  });

  it('L4: an upstream that keeps answering 500 ends Failed with error code and message; the result is not 200', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 500, body: 'boom' });
    await using gw = await startGateway({ upstream: upstream.url, routeDefaults: { maxAttempts: 3 } });
    // PUT is idempotent, so each 500 is retried until maxAttempts; wait=0 skips the sync attempt.
    const res = await fetch(`${gw.publicUrl}/docs/1`, {
      method: 'PUT',
      headers: { prefer: 'respond-async, wait=0' },
    });
    const op = await gw.settled(operationIdOf(res));
    const monitor = await jsonOf(await fetch(`${gw.publicUrl}/_spillway/operations/${op.id}`));
    assert.equal(monitor.status, 'Failed');
    assert.ok(monitor.error.code);
    assert.ok(monitor.error.message);
    const result = await fetch(`${gw.publicUrl}/_spillway/operations/${op.id}/result`);
    assert.ok(result.status >= 400, `result ${result.status}`);
    await upstream.stop();
  });

  it('L5/L6: a poller following Location until it stops answering 202 ends with the upstream body', async () => {
    const upstream = await slowUpstream(600);
    await using gw = await startGateway({ upstream: upstream.url, routeDefaults: { budgetMs: 100 } });
    const res = await fetch(`${gw.publicUrl}/things`, { method: 'POST' });
    assert.equal(res.status, 202);
    let location = res.headers.get('location')!;
    let final: Response;
    for (;;) {
      final = await fetch(location);
      if (final.status !== 202) break;
      location = final.headers.get('location') ?? location;
      await new Promise((r) => setTimeout(r, 100)); // a real poller would wait Retry-After seconds
    }
    assert.equal(final.status, 201);
    assert.equal(await final.text(), '{"x":1}');
    await upstream.stop();
  });

  it('L8: cancel while NotStarted → 200 Canceled, the upstream never called, again 200; a Running one → 409', async () => {
    const upstream = await new TestUpstream().start();
    await upstream.stop();
    const dir = tempDir();
    try {
      // Capture only, so no replay can start before the cancel (a race the test would otherwise lose now and then).
      const capturing = await startGateway({ upstream: upstream.url, replay: { concurrency: 0 } }, dir);
      const marker = randomUUID();
      const id = operationIdOf(
        await fetch(`${capturing.publicUrl}/payments`, { method: 'POST', body: marker }),
      );
      const cancel = () =>
        fetch(`${capturing.publicUrl}/_spillway/operations/${id}/cancel`, { method: 'POST' });
      const first = await cancel();
      assert.equal(first.status, 200);
      assert.equal((await jsonOf(first)).status, 'Canceled');
      const again = await cancel();
      assert.equal(again.status, 200);
      assert.equal((await jsonOf(again)).status, 'Canceled');
      const result = await fetch(`${capturing.publicUrl}/_spillway/operations/${id}/result`);
      assert.equal(result.status, 409);
      assert.equal((await jsonOf(result)).type, 'https://spillway.dev/problems/operation-canceled');
      const events = await (await fetch(`${capturing.publicUrl}/_spillway/operations/${id}/events`)).text();
      assert.match(events, /event: dev\.spillway\.operation\.canceled/);
      assert.equal((await fetch(`${capturing.publicUrl}/_spillway/operations/${id}/cancel`)).status, 405);
      await capturing.stop();

      // The same store with replay on and the upstream up: the canceled operation is never sent.
      await upstream.start();
      await using gw = await startGateway({ upstream: upstream.url }, dir);
      upstream.behaviour = () => ({ kind: 'delay', ms: 1_000, and: { kind: 'respond', status: 201 } });
      const running = operationIdOf(
        await fetch(`${gw.publicUrl}/payments`, {
          method: 'POST',
          headers: { prefer: 'respond-async, wait=0' },
        }),
      );
      while ((await gw.store.get(running))?.status !== 'Running') await new Promise((r) => setTimeout(r, 10));
      const refused = await fetch(`${gw.publicUrl}/_spillway/operations/${running}/cancel`, {
        method: 'POST',
      });
      assert.equal(refused.status, 409);
      assert.equal((await jsonOf(refused)).type, 'https://spillway.dev/problems/operation-running');
      await gw.settled(running);
      assert.equal(upstream.count(marker), 0, 'never sent');
      assert.equal((await gw.store.get(id))?.status, 'Canceled');
    } finally {
      await upstream.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('L7: an invalid JSON body on a route that checks JSON → 400 problem at once, nothing queued, the upstream never called', async () => {
    await using upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 503 }); // would fail over, were it sent
    await using gw = await startGateway({
      upstream: upstream.url,
      routes: [{ name: 'orders', match: 'POST /orders', rejectInvalidJson: true }],
    });
    const send = (body: string, type = 'application/json') =>
      fetch(`${gw.publicUrl}/orders`, { method: 'POST', headers: { 'content-type': type }, body });
    const broken = await send('{"amount": 10,');
    assert.equal(broken.status, 400);
    assert.equal(broken.headers.get('content-type'), 'application/problem+json');
    const problem = await jsonOf(broken);
    assert.equal(problem.code, 'invalid-json');
    assert.match(problem.detail, /not valid JSON/);
    assert.equal((await send('{nope', 'application/merge-patch+json; charset=utf-8')).status, 400);
    const counts = await gw.store.counts();
    assert.equal(counts.NotStarted + counts.Running + counts.Succeeded + counts.Failed + counts.Canceled, 0);
    assert.equal(upstream.received.length, 0);
    assert.equal((await send('{"amount": 10}')).status, 202, 'valid JSON goes on (and fails over here)');
    assert.equal((await send('not json', 'text/plain')).status, 202, 'only JSON-typed bodies are checked');
  });

  it('L15: past the retention a terminal operation is gone: 404, events included; one still waiting is kept', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway({ upstream: upstream.url });
    const done = operationIdOf(
      await fetch(`${gw.publicUrl}/things`, { method: 'POST', headers: { prefer: 'respond-async, wait=0' } }),
    );
    await gw.settled(done);
    await upstream.stop();
    const waiting = operationIdOf(await fetch(`${gw.publicUrl}/things`, { method: 'POST' }));
    const week = 7 * 24 * 60 * 60_000;
    // Retention's own clock, a week and a minute ahead: the run that would happen then.
    const later = { ...systemClock, now: () => Date.now() + week + 60_000 };
    assert.equal(
      await new Retention(gw.store, later, week, (error) => assert.fail(String(error))).runOnce(),
      1,
    );
    for (const path of ['', '/result', '/events']) {
      const res = await fetch(`${gw.publicUrl}/_spillway/operations/${done}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal((await jsonOf(res)).type, 'https://spillway.dev/problems/operation-not-found');
    }
    assert.equal((await fetch(`${gw.publicUrl}/_spillway/operations/${waiting}`)).status, 200);
  });

  it('L9: a random operation id → 404 problem+json', async () => {
    await using gw = await startGateway({ upstream: 'http://127.0.0.1:9' });
    const res = await fetch(`${gw.publicUrl}/_spillway/operations/op_${'x'.repeat(24)}`);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
  });

  it('L12: circuit open (forced-async), POST without a key → upstream not called synchronously, 202', async () => {
    const upstream = await new TestUpstream().start();
    await upstream.stop();
    await using gw = await startGateway({ upstream: upstream.url, replay: { concurrency: 0 } });
    await gw.health.setOverride('default', 'forced-async');
    const marker = randomUUID();
    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: marker });
    assert.equal(res.status, 202);
    assert.equal(upstream.count(marker), 0);
  });

  it('L13: a POST that timed out after it was sent, no key forwarded → never re-sent', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'black-hole' });
    await using gw = await startGateway({
      upstream: upstream.url,
      routeDefaults: { budgetMs: 100, attemptTimeoutMs: 300 },
    });
    const marker = randomUUID();
    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: marker });
    const op = await gw.settled(operationIdOf(res));
    assert.equal(op.error?.code, 'outcome-unknown');
    assert.equal(upstream.count(marker), 1);
    await upstream.stop();
  });
});

describe('CORS on proxied routes', () => {
  it("an allowed browser origin can read a 202's Operation-Location and Spillway's own problems; others get no CORS", async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    await using gw = await startGateway({
      upstream: down,
      corsOrigins: ['https://app.example'],
      replay: { concurrency: 0 },
    });
    const accepted = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { origin: 'https://app.example' },
    });
    assert.equal(accepted.status, 202);
    assert.equal(accepted.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.equal(accepted.headers.get('access-control-allow-credentials'), 'true');
    const exposed = accepted.headers.get('access-control-expose-headers') ?? '';
    for (const name of ['Operation-Location', 'Location', 'Retry-After'])
      assert.ok(exposed.includes(name), name);
    assert.equal(accepted.headers.get('vary'), 'Prefer, Origin');

    const invalidKey = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { origin: 'https://app.example', 'idempotency-key': '' },
    });
    assert.equal(invalidKey.status, 400);
    assert.equal(invalidKey.headers.get('access-control-allow-origin'), 'https://app.example');

    const foreign = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(foreign.status, 202);
    assert.equal(foreign.headers.get('access-control-allow-origin'), null);
    assert.equal(foreign.headers.get('vary'), 'Prefer');
  });

  it("a stored upstream answer sent again (its result, an Idempotency-Key replay) carries Spillway's CORS instead of its own: one Access-Control-Allow-Origin", async () => {
    // Browsers refuse a response with two Access-Control-Allow-Origin values (found by test/browser).
    await using upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'respond',
      status: 201,
      headers: { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'X-Upstream' },
      body: 'paid',
    });
    await using gw = await startGateway({ upstream: upstream.url, corsOrigins: ['https://app.example'] });
    const origin = { origin: 'https://app.example' };

    const first = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { ...origin, 'idempotency-key': '"k-cors"' },
    });
    assert.equal(first.status, 201);
    assert.equal(
      first.headers.get('access-control-allow-origin'),
      '*',
      "the upstream's own answer, untouched",
    );
    const replay = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { ...origin, 'idempotency-key': '"k-cors"' },
    });
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal(replay.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.doesNotMatch(replay.headers.get('access-control-expose-headers') ?? '', /X-Upstream/);

    const accepted = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { ...origin, prefer: 'respond-async, wait=0' },
    });
    assert.equal(accepted.status, 202);
    await gw.settled(operationIdOf(accepted));
    const result = await fetch(new URL(accepted.headers.get('location')!, gw.publicUrl), { headers: origin });
    assert.equal(result.status, 201);
    assert.equal(result.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.equal(await result.text(), 'paid');

    // An origin Spillway does not list gets the stored answer as it was.
    const other = await fetch(new URL(accepted.headers.get('location')!, gw.publicUrl), {
      headers: { origin: 'https://other.example' },
    });
    assert.equal(other.headers.get('access-control-allow-origin'), '*');
  });
});
