/**
 * The core journey over real loopback HTTP: sync pass-through, failover to 202
 * when the upstream is down, refuses or is slow (adoption), and replay to
 * completion, against a real upstream server and a real SQLite file.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { jsonOf, operationIdOf, startGateway, type TestGateway } from '../support/harness.ts';
import { type Behaviour, closedPort, TestUpstream } from '../support/test-upstream.ts';

const json = { 'content-type': 'application/json' };

describe('sync pass-through', () => {
  let upstream: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    upstream = await new TestUpstream().start();
    upstream.behaviour = (req): Behaviour =>
      req.url.startsWith('/blob')
        ? {
            kind: 'respond',
            status: 200,
            headers: { 'content-type': 'application/octet-stream' },
            body: req.body,
          }
        : {
            kind: 'respond',
            status: req.method === 'POST' ? 201 : 200,
            headers: {
              'content-type': 'text/plain',
              'x-custom': 'yes',
              'set-cookie': ['a=1', 'b=2'],
              etag: '"v1"',
            },
            body: `hello ${req.method} ${req.url}`,
          };
    // These tests are about the pass-through, not the budget: the harness's 500 ms
    // budget could run out on a 1 MiB round trip on a loaded machine and turn the
    // answer into an adoption's 202.
    gw = await startGateway({
      upstream: upstream.url,
      routeDefaults: { budgetMs: 10_000, attemptTimeoutMs: 20_000 },
    });
  });
  after(async () => {
    await gw.stop();
    await upstream.stop();
  });

  /** Everything but the per-response date and connection management must be equal. */
  const comparable = (res: Response) =>
    [...res.headers].filter(([name]) => !['date', 'connection', 'keep-alive', 'vary'].includes(name));

  for (const method of ['GET', 'POST'] as const) {
    it(`returns the upstream's status, headers and body unchanged for ${method}`, async () => {
      const init = { method, headers: json, ...(method === 'POST' ? { body: '{"amount":42}' } : {}) };
      const direct = await fetch(`${upstream.url}/payments?x=1&y=2`, init);
      const proxied = await fetch(`${gw.publicUrl}/payments?x=1&y=2`, init);
      assert.equal(proxied.status, direct.status);
      assert.deepEqual(comparable(proxied), comparable(direct));
      assert.equal(await proxied.text(), await direct.text());
      assert.equal(proxied.headers.get('vary'), 'Prefer');
      assert.deepEqual(proxied.headers.getSetCookie(), ['a=1', 'b=2']);
    });
  }

  it('carries a 1 MiB body both ways byte for byte', async () => {
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) % 251;
    const direct = await fetch(`${upstream.url}/blob`, { method: 'POST', body });
    const proxied = await fetch(`${gw.publicUrl}/blob`, { method: 'POST', body });
    assert.equal(proxied.status, 200);
    assert.deepEqual(comparable(proxied), comparable(direct));
    assert.ok(Buffer.from(await proxied.arrayBuffer()).equals(body));
    assert.ok(Buffer.from(await direct.arrayBuffer()).equals(body));
  });

  it('forwards method, path, query and end-to-end headers, adds Via, drops hop-by-hop fields', async () => {
    const marker = randomUUID();
    // node:http, because fetch refuses to send connection-management fields.
    await new Promise<void>((resolve, reject) => {
      const req = request(`${gw.publicUrl}/orders/7?expand=items`, {
        method: 'PUT',
        headers: {
          ...json,
          'x-trace': marker,
          'keep-alive': 'timeout=9',
          connection: 'keep-alive, x-drop',
          'x-drop': '1',
        },
      });
      req.on('response', (res) => res.resume().on('end', resolve));
      req.on('error', reject);
      req.end(JSON.stringify({ marker }));
    });
    const seen = upstream.received.find((r) => r.headers['x-trace'] === marker)!;
    assert.equal(seen.method, 'PUT');
    assert.equal(seen.url, '/orders/7?expand=items');
    assert.equal(seen.headers['content-type'], 'application/json');
    assert.equal(seen.headers.via, '1.1 spillway');
    assert.equal(seen.headers['x-drop'], undefined);
    assert.notEqual(seen.headers['keep-alive'], 'timeout=9');
  });

  it('answers 413 problem+json for a body over maxBodyBytes, without calling the upstream', async () => {
    const before = upstream.received.length;
    const res = await fetch(`${gw.publicUrl}/blob`, { method: 'POST', body: Buffer.alloc(1024 * 1024 + 1) });
    assert.equal(res.status, 413);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    const doc = await jsonOf(res);
    assert.equal(doc.type, 'https://spillway.dev/problems/body-too-large');
    assert.match(doc.detail, /maxBodyBytes/);
    assert.equal(upstream.received.length, before);
    assert.deepEqual(await gw.store.counts(), {
      NotStarted: 0,
      Running: 0,
      Succeeded: 0,
      Failed: 0,
      Canceled: 0,
      deadLettered: 0,
    });
  });

  it('answers 404 not-found for other paths under /_spillway/, and 405 for other methods', async () => {
    const res = await fetch(`${gw.publicUrl}/_spillway/nothing-here`);
    assert.equal(res.status, 404);
    assert.equal((await jsonOf(res)).type, 'https://spillway.dev/problems/not-found');
    const post = await fetch(`${gw.publicUrl}/_spillway/operations/op_AAAAAAAAAAAAAAAAAAAAAAAA`, {
      method: 'POST',
    });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD, OPTIONS');
  });

  it('answers 404 problem+json for an unknown operation id', async () => {
    for (const id of ['op_AAAAAAAAAAAAAAAAAAAAAAAA', 'nonsense']) {
      const res = await fetch(`${gw.publicUrl}/_spillway/operations/${id}`);
      assert.equal(res.status, 404);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      assert.equal((await jsonOf(res)).type, 'https://spillway.dev/problems/operation-not-found');
    }
  });
});

describe('failover when the upstream is down', () => {
  it('answers 202 with the contract headers, then completes once the upstream is back', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'respond',
      status: 201,
      headers: { 'content-type': 'application/json', location: '/payments/p1' },
      body: '{"id":"p1"}',
    });
    await upstream.stop();
    await using gw = await startGateway({ upstream: upstream.url });

    const res = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: json,
      body: '{"amount":1}',
    });
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    assert.equal(res.headers.get('location'), `${gw.publicUrl}/_spillway/operations/${id}/result`);
    assert.equal(res.headers.get('operation-location'), `${gw.publicUrl}/_spillway/operations/${id}`);
    assert.match(res.headers.get('retry-after')!, /^\d+$/);
    assert.equal(res.headers.get('vary'), 'Prefer');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('preference-applied'), null);
    const monitor = await jsonOf(res);
    assert.equal(monitor.id, id);
    assert.equal(monitor.status, 'NotStarted');
    assert.ok(Date.parse(monitor.createdDateTime));

    const pending = await fetch(`${gw.publicUrl}/_spillway/operations/${id}/result`);
    assert.equal(pending.status, 202);
    assert.ok(pending.headers.get('retry-after'));
    const polled = await fetch(`${gw.publicUrl}/_spillway/operations/${id}`);
    assert.equal(polled.status, 200);
    assert.ok(polled.headers.get('retry-after'));

    await upstream.start();
    const op = await gw.settled(id);
    assert.equal(op.status, 'Succeeded');

    const monitorDone = await fetch(`${gw.publicUrl}/_spillway/operations/${id}`);
    assert.equal(monitorDone.headers.get('retry-after'), null);
    const done = await jsonOf(monitorDone);
    assert.equal(done.status, 'Succeeded');
    assert.equal(done.resourceLocation, `${gw.publicUrl}/_spillway/operations/${id}/result`);
    const result = await fetch(`${gw.publicUrl}/_spillway/operations/${id}/result`);
    assert.equal(result.status, 201);
    assert.equal(result.headers.get('location'), '/payments/p1');
    assert.equal(await result.text(), '{"id":"p1"}');
    assert.equal(upstream.received.length, 1);
    await upstream.stop();
  });

  it('applies respond-async: Preference-Applied, and wait=0 captures without a sync attempt', async () => {
    const upstream = await new TestUpstream().start();
    await using gw = await startGateway({ upstream: upstream.url });
    const res = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { ...json, prefer: 'respond-async, wait=0' },
      body: '{"amount":2}',
    });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('preference-applied'), 'respond-async');
    const op = await gw.settled(operationIdOf(res));
    assert.equal(op.status, 'Succeeded');
    assert.equal(upstream.received.length, 1, 'replayed once, never attempted synchronously');
    assert.equal(upstream.received[0]!.headers.prefer, undefined, 'consumed preferences are not forwarded');
    await upstream.stop();
  });

  it('fails over on a failover status and honours its Retry-After for the first replay', async () => {
    const upstream = await new TestUpstream().start();
    let calls = 0;
    upstream.behaviour = () =>
      ++calls === 1
        ? { kind: 'respond', status: 503, headers: { 'retry-after': '1' }, body: 'busy' }
        : { kind: 'respond', status: 200, body: 'ok' };
    await using gw = await startGateway({ upstream: upstream.url });
    const res = await fetch(`${gw.publicUrl}/things`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 202);
    const captured = (await gw.store.get(operationIdOf(res)))!;
    assert.equal(captured.attempts, 1);
    assert.ok(captured.nextAttemptAt - captured.createdAt >= 900, 'first replay waits for Retry-After');
    const op = await gw.settled(captured.id);
    assert.equal(op.status, 'Succeeded');
    assert.equal(op.attempts, 2);
    await upstream.stop();
  });
});

describe('adoption when the upstream is slower than the budget', () => {
  it('answers 202 at about the budget; the in-flight call completes the operation, sent exactly once', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'delay',
      ms: 1_000,
      and: { kind: 'respond', status: 201, body: 'made it' },
    });
    await using gw = await startGateway({ upstream: upstream.url, routeDefaults: { budgetMs: 300 } });
    const marker = randomUUID();
    const started = performance.now();
    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: marker });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 202);
    assert.ok(elapsed >= 290 && elapsed < 900, `202 after ${elapsed} ms, budget 300 ms`);
    const id = operationIdOf(res);
    assert.equal((await jsonOf(res)).status, 'Running');
    const op = await gw.settled(id);
    assert.equal(op.status, 'Succeeded');
    assert.equal(op.attempts, 1);
    const result = await fetch(`${gw.publicUrl}/_spillway/operations/${id}/result`);
    assert.equal(result.status, 201);
    assert.equal(await result.text(), 'made it');
    await gw.worker.idle();
    assert.equal(upstream.count(marker), 1, 'the upstream received the request exactly once');
    await upstream.stop();
  });

  it('Prefer: wait=N without respond-async is a timeout hint: 504 problem, never 202', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'delay', ms: 1_000, and: { kind: 'respond', status: 200 } });
    await using gw = await startGateway({ upstream: upstream.url });
    const res = await fetch(`${gw.publicUrl}/x`, { headers: { prefer: 'wait=0' } });
    assert.equal(res.status, 504);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
    assert.equal((await gw.store.counts()).NotStarted, 0);
    await upstream.stop();
  });
});

describe('routes with failover switched off', () => {
  it('answers 502 when the upstream is unreachable and 504 when it is too slow, capturing nothing', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'delay', ms: 1_000, and: { kind: 'respond', status: 200 } });
    await using gw = await startGateway({
      upstream: upstream.url,
      routes: [{ name: 'reports', match: 'GET /reports/*', failover: false, budgetMs: 200 }],
    });
    const slow = await fetch(`${gw.publicUrl}/reports/1`);
    assert.equal(slow.status, 504);
    assert.equal((await jsonOf(slow)).type, 'https://spillway.dev/problems/upstream-timeout');
    assert.equal(slow.headers.get('vary'), null, 'a route that cannot answer 202 applies no preference');
    await upstream.stop();
    const down = await fetch(`${gw.publicUrl}/reports/1`);
    assert.equal(down.status, 502);
    const unreachable = await jsonOf(down);
    assert.equal(unreachable.type, 'https://spillway.dev/problems/upstream-unreachable');
    assert.match(unreachable.detail, /refused the connection \(ECONNREFUSED\)/);
    assert.ok(!unreachable.detail.includes(new URL(upstream.url).port), 'no upstream address (E8)');
    const counts = await gw.store.counts();
    assert.equal(counts.NotStarted + counts.Running + counts.Succeeded + counts.Failed, 0);
  });
});

describe('dead-lettering', () => {
  it('dead-letters after maxAttempts and /result shows the last error', async () => {
    const port = await closedPort();
    await using gw = await startGateway({
      upstream: `http://127.0.0.1:${port}`,
      routeDefaults: { maxAttempts: 3 },
    });
    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    const op = await gw.settled(id);
    assert.equal(op.status, 'Failed');
    assert.equal(op.attempts, 3);
    assert.ok(op.deadLetteredAt);
    const result = await fetch(`${gw.publicUrl}/_spillway/operations/${id}/result`);
    assert.equal(result.status, 502);
    const doc = await jsonOf(result);
    assert.equal(doc.type, 'https://spillway.dev/problems/attempts-exhausted');
    assert.match(doc.detail, /ECONNREFUSED/);
    assert.doesNotMatch(doc.detail, /127\.0\.0\.1|:\d{4,5}\b/, 'no upstream address reaches a client (E8)');
    assert.equal(doc.deadLettered, true);
    const monitor = await jsonOf(await fetch(`${gw.publicUrl}/_spillway/operations/${id}`));
    assert.equal(monitor.status, 'Failed');
    assert.equal(monitor.error.code, 'attempts-exhausted');
  });

  it("keeps the upstream's final 4xx answer as the result of a Failed operation", async () => {
    const upstream = await new TestUpstream().start();
    await upstream.stop();
    await using gw = await startGateway({ upstream: upstream.url });
    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: 'x' });
    upstream.behaviour = () => ({
      kind: 'respond',
      status: 422,
      headers: { 'content-type': 'application/json' },
      body: '{"error":"amount"}',
    });
    await upstream.start();
    const op = await gw.settled(operationIdOf(res));
    assert.equal(op.status, 'Failed');
    assert.equal(op.deadLetteredAt, null, 'the upstream decided; there is nothing to redrive');
    const result = await fetch(`${gw.publicUrl}/_spillway/operations/${op.id}/result`);
    assert.equal(result.status, 422);
    assert.equal(await result.text(), '{"error":"amount"}');
    await upstream.stop();
  });
});
