/**
 * Idempotency-Key conformance, the table of ../shared/research/http-standards.md
 * §3.5, each test named by its row id; and L10 of §2.7 (operations are scoped
 * to the tenant that created them), which shares the tenant with the keys.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { jsonOf, operationIdOf, startGateway } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { freshSchema, skipWithoutPostgres } from '../support/postgres.ts';
import { closedPort, TestUpstream } from '../support/test-upstream.ts';

const created = (body = '{"id":"pay_1"}') =>
  ({
    kind: 'respond',
    status: 201,
    headers: { 'content-type': 'application/json', 'x-upstream-request': randomUUID() },
    body,
  }) as const;

async function upstreamAnswering(behaviour: TestUpstream['behaviour'] = () => created()) {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = behaviour;
  return upstream;
}

const post = (
  url: string,
  key: string | undefined,
  body = '{"amount":10}',
  headers: Record<string, string> = {},
) =>
  fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(key === undefined ? {} : { 'idempotency-key': key }),
      ...headers,
    },
    body,
  });

describe('Idempotency-Key conformance, http-standards.md §3.5', () => {
  it('I1: the same request twice: the second gets the first 201 and body again, marked replayed; the upstream saw one', async () => {
    await using upstream = await upstreamAnswering();
    await using gw = await startGateway({ upstream: upstream.url });
    const key = randomUUID();
    const first = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(first.status, 201);
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const firstBody = await first.text();

    const second = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(second.status, 201);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.equal(second.headers.get('content-type'), 'application/json');
    assert.equal(second.headers.get('x-upstream-request'), first.headers.get('x-upstream-request'));
    assert.equal(await second.text(), firstBody);
    assert.equal(upstream.received.length, 1);
  });

  it('I1, read-your-writes: once the whole answer has arrived, a retry gets the replay, however slow the store', async () => {
    await using upstream = await upstreamAnswering();
    await using gw = await startGateway({ upstream: upstream.url });
    const store = gw.store;
    const complete = store.completeIdempotencyKey.bind(store);
    store.completeIdempotencyKey = async (...args) => {
      await new Promise((r) => setTimeout(r, 300)); // a slow commit
      return complete(...args);
    };
    const key = randomUUID();
    const first = await post(`${gw.publicUrl}/payments`, key);
    await first.text();
    const retry = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(retry.status, 201, 'not 409: the answer was stored before it ended');
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
    assert.equal(upstream.received.length, 1);
  });

  it('I2: the same key with another body: 422 problem, the upstream saw one', async () => {
    await using upstream = await upstreamAnswering();
    await using gw = await startGateway({ upstream: upstream.url });
    const key = randomUUID();
    assert.equal((await post(`${gw.publicUrl}/payments`, key, '{"amount":10}')).status, 201);
    const changed = await post(`${gw.publicUrl}/payments`, key, '{"amount":99}');
    assert.equal(changed.status, 422);
    assert.equal(changed.headers.get('content-type'), 'application/problem+json');
    assert.equal((await jsonOf(changed)).code, 'idempotency-key-reused');
    const otherPath = await post(`${gw.publicUrl}/payments?x=1`, key, '{"amount":10}');
    assert.equal(otherPath.status, 422, 'the target is part of the fingerprint too');
    assert.equal(upstream.received.length, 1);
  });

  it('I3: two at once: one is processed, the other gets 409 with Retry-After; the upstream saw one', async () => {
    await using upstream = await upstreamAnswering(() => ({ kind: 'delay', ms: 1_000, and: created() }));
    await using gw = await startGateway({
      upstream: upstream.url,
      routeDefaults: { budgetMs: 3_000, attemptTimeoutMs: 5_000 },
    });
    const key = randomUUID();
    const first = post(`${gw.publicUrl}/payments`, key);
    while (upstream.received.length === 0) await new Promise((r) => setTimeout(r, 10));
    const second = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(second.status, 409);
    assert.equal((await jsonOf(second)).code, 'idempotency-key-in-use');
    assert.equal(second.headers.get('retry-after'), '1');
    const firstAnswer = await first;
    assert.equal(firstAnswer.status, 201);
    await firstAnswer.text();
    const later = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(later.status, 201, 'after the first finished, a retry gets its answer');
    assert.equal(later.headers.get('idempotent-replayed'), 'true');
    assert.equal(upstream.received.length, 1);
  });

  it('I4: a route that requires a key answers 400 without one, with a type and a describedby link to the docs', async () => {
    await using upstream = await upstreamAnswering();
    await using gw = await startGateway({
      upstream: upstream.url,
      routes: [{ name: 'payments', match: 'POST /payments', idempotencyKeys: 'required' }],
    });
    const res = await post(`${gw.publicUrl}/payments`, undefined);
    assert.equal(res.status, 400);
    const problem = await jsonOf(res);
    assert.equal(problem.type, 'https://spillway.dev/problems/idempotency-key-missing');
    assert.match(res.headers.get('link') ?? '', /rel="describedby"/);
    assert.equal((await fetch(`${gw.publicUrl}/payments`)).status, 201, 'GET needs no key');
    assert.equal(upstream.received.length, 1, 'only the GET reached the upstream');
  });

  it('I5: a quoted key and the same key bare are one key', async () => {
    await using upstream = await upstreamAnswering();
    await using gw = await startGateway({ upstream: upstream.url });
    assert.equal((await post(`${gw.publicUrl}/payments`, '"abc-1"')).status, 201);
    const bare = await post(`${gw.publicUrl}/payments`, 'abc-1');
    assert.equal(bare.status, 201);
    assert.equal(bare.headers.get('idempotent-replayed'), 'true');
    assert.equal(upstream.received.length, 1);
  });

  it('I6: a key of 256 characters, a control character, non-ASCII or a bad quoted string: 400, nothing sent on', async () => {
    await using upstream = await upstreamAnswering();
    await using gw = await startGateway({ upstream: upstream.url });
    for (const key of ['k'.repeat(256), 'caf\u00e9', '"unterminated', '"a"b"', '""']) {
      const res = await post(`${gw.publicUrl}/payments`, key);
      assert.equal(res.status, 400, key);
      assert.equal((await jsonOf(res)).code, 'idempotency-key-invalid', key);
    }
    assert.equal((await post(`${gw.publicUrl}/payments`, 'k'.repeat(255))).status, 201, '255 is allowed');
    // Node's clients refuse to send control characters, so this one goes over a raw socket.
    const raw = await rawRequest(
      gw.port,
      `POST /payments HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x01b\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    );
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.match(raw, /application\/problem\+json/);
    assert.equal(upstream.received.length, 1, 'only the valid 255-character key reached the upstream');
  });

  it('I7: a stored upstream 500 is replayed as the same 500, marked replayed; the upstream is not hit again', async () => {
    await using upstream = await upstreamAnswering(() => ({
      kind: 'respond',
      status: 500,
      headers: { 'content-type': 'text/plain' },
      body: 'ledger exploded',
    }));
    await using gw = await startGateway({ upstream: upstream.url });
    const key = randomUUID();
    assert.equal((await post(`${gw.publicUrl}/payments`, key)).status, 500);
    const again = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(again.status, 500);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(await again.text(), 'ledger exploded');
    assert.equal(upstream.received.length, 1);
  });

  it('I7, except "come back later": an upstream 503 on a route that cannot fail over is not kept, so the retry is sent on', async () => {
    let calls = 0;
    await using upstream = await upstreamAnswering(() =>
      ++calls === 1 ? { kind: 'respond', status: 503, headers: { 'retry-after': '1' } } : created(),
    );
    await using gw = await startGateway({
      upstream: upstream.url,
      routes: [{ name: 'direct', match: 'POST /payments', failover: false }],
    });
    const key = randomUUID();
    assert.equal((await post(`${gw.publicUrl}/payments`, key)).status, 503);
    const retry = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(retry.status, 201);
    assert.equal(retry.headers.get('idempotent-replayed'), null);
    assert.equal((await post(`${gw.publicUrl}/payments`, key)).headers.get('idempotent-replayed'), 'true');
    assert.equal(upstream.received.length, 2);
  });

  it("I8: Spillway's own rejections are not kept: a corrected retry under the same key is processed", async () => {
    await using upstream = await upstreamAnswering();
    const down = await closedPort();
    await using gw = await startGateway({
      upstream: upstream.url,
      maxBodyBytes: 64,
      routes: [
        { name: 'strict', match: 'POST /strict' },
        // Does not fail over: an unreachable upstream is answered 502 by Spillway itself.
        { name: 'no-failover', match: 'POST /direct', failover: false },
      ],
    });
    const key = randomUUID();
    const tooLarge = await post(`${gw.publicUrl}/strict`, key, JSON.stringify({ pad: 'x'.repeat(100) }));
    assert.equal(tooLarge.status, 413);
    const corrected = await post(`${gw.publicUrl}/strict`, key, '{"amount":10}');
    assert.equal(corrected.status, 201);
    assert.equal(corrected.headers.get('idempotent-replayed'), null);
    assert.equal(upstream.received.length, 1);

    await using direct = await startGateway({
      upstream: `http://127.0.0.1:${down}`,
      routes: [{ name: 'no-failover', match: 'POST /direct', failover: false }],
    });
    const other = randomUUID();
    assert.equal((await post(`${direct.publicUrl}/direct`, other)).status, 502);
    const retried = await post(`${direct.publicUrl}/direct`, other);
    assert.equal(retried.status, 502, 'sent on again, not a replayed 502');
    assert.equal(retried.headers.get('idempotent-replayed'), null);
  });

  it('I9: a retry of a request answered 202 gets the same operation, and there is one capture', async () => {
    const down = await closedPort();
    await using gw = await startGateway({ upstream: `http://127.0.0.1:${down}`, replay: { concurrency: 0 } });
    const key = randomUUID();
    const first = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(first.status, 202);
    const second = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(second.status, 202);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.equal(second.headers.get('operation-location'), first.headers.get('operation-location'));
    assert.equal(second.headers.get('location'), first.headers.get('location'));
    assert.equal((await jsonOf(second)).id, operationIdOf(first));
    assert.equal((await gw.store.counts()).NotStarted, 1, 'exactly one job in the queue');
  });

  it('I10: the same key from two tenants: independent, neither sees the other', async () => {
    let n = 0;
    await using upstream = await upstreamAnswering(() => created(`{"n":${++n}}`));
    await using gw = await startGateway({ upstream: upstream.url });
    const key = randomUUID();
    const a = await post(`${gw.publicUrl}/payments`, key, '{}', { authorization: 'Bearer tenant-a' });
    const b = await post(`${gw.publicUrl}/payments`, key, '{}', { authorization: 'Bearer tenant-b' });
    assert.equal(await a.text(), '{"n":1}');
    assert.equal(await b.text(), '{"n":2}');
    assert.equal(b.headers.get('idempotent-replayed'), null);
    const a2 = await post(`${gw.publicUrl}/payments`, key, '{}', { authorization: 'Bearer tenant-a' });
    assert.equal(await a2.text(), '{"n":1}');
    assert.equal(upstream.received.length, 2);
  });

  it('I11: a key reused after its expiry (simulated clock) is a new request', async () => {
    const clock = new ManualClock();
    await using upstream = await upstreamAnswering();
    await using gw = await startGateway({ upstream: upstream.url, idempotencyTtlMs: 3_600_000 }, undefined, {
      clock,
    });
    const key = randomUUID();
    assert.equal((await post(`${gw.publicUrl}/payments`, key)).status, 201);
    clock.advance(3_599_000);
    assert.equal((await post(`${gw.publicUrl}/payments`, key)).headers.get('idempotent-replayed'), 'true');
    clock.advance(1_000);
    const reused = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(reused.status, 201);
    assert.equal(reused.headers.get('idempotent-replayed'), null);
    assert.equal(upstream.received.length, 2);
  });

  it('I12: the upstream gets the same key on the sync attempt and on the queued retry', async () => {
    let calls = 0;
    await using upstream = await upstreamAnswering(() =>
      ++calls === 1 ? { kind: 'respond', status: 503, headers: { 'retry-after': '0' } } : created(),
    );
    await using gw = await startGateway({
      upstream: upstream.url,
      routes: [{ name: 'payments', match: 'POST /payments', honoursIdempotencyKey: true }],
    });
    const key = `"${randomUUID()}"`;
    const res = await post(`${gw.publicUrl}/payments`, key);
    assert.equal(res.status, 202);
    assert.equal((await gw.settled(operationIdOf(res))).status, 'Succeeded');
    assert.equal(upstream.received.length, 2);
    assert.deepEqual(
      upstream.received.map((r) => r.headers['idempotency-key']),
      [key, key],
    );

    // Without a client key, the key derived from the operation id, the same on both attempts.
    calls = 0;
    upstream.received.length = 0;
    const minted = await post(`${gw.publicUrl}/payments`, undefined);
    const id = operationIdOf(minted);
    await gw.settled(id);
    assert.deepEqual(
      upstream.received.map((r) => r.headers['idempotency-key']),
      [`spillway-${id}`, `spillway-${id}`],
    );
  });

  it('I3 across instances: two gateways on one PostgreSQL schema, the same key at once: one upstream call', async (t) => {
    const skip = await skipWithoutPostgres('two gateways sharing Idempotency-Keys');
    if (skip) return t.skip(skip);
    const db = freshSchema('spillway_idem_test');
    await using upstream = await upstreamAnswering(() => ({ kind: 'delay', ms: 500, and: created() }));
    try {
      const config = {
        upstream: upstream.url,
        store: db.url,
        routeDefaults: { budgetMs: 3_000, attemptTimeoutMs: 5_000 },
      };
      await using a = await startGateway(config);
      await using b = await startGateway(config);
      const key = randomUUID();
      const answers = await Promise.all([a, b, a, b].map((gw) => post(`${gw.publicUrl}/payments`, key)));
      const statuses = answers.map((r) => r.status).sort();
      assert.deepEqual(statuses, [201, 409, 409, 409]);
      // Once a client has the whole answer, a retry gets the replay (the answer is stored before it ends).
      await Promise.all(answers.map((r) => r.text()));
      assert.equal(upstream.received.length, 1);
      for (const gw of [a, b]) {
        const replay = await post(`${gw.publicUrl}/payments`, key);
        assert.equal(replay.status, 201);
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
      }
      assert.equal(upstream.received.length, 1);
    } finally {
      await db.drop();
    }
  });
});

describe('operations conformance, http-standards.md §2.7 (tenants)', () => {
  it('L10: another tenant gets 404 for the monitor, result, events and cancel, exactly as for an unknown id', async () => {
    const down = await closedPort();
    await using gw = await startGateway({ upstream: `http://127.0.0.1:${down}`, replay: { concurrency: 0 } });
    const res = await post(`${gw.publicUrl}/payments`, undefined, '{}', { authorization: 'Bearer alice' });
    assert.equal(res.status, 202);
    const monitor = res.headers.get('operation-location')!;
    const as = (who: string | undefined, url: string, method = 'GET') =>
      fetch(url, { method, headers: who ? { authorization: who } : {} });

    assert.equal((await as('Bearer alice', monitor)).status, 200);
    const unknown = await jsonOf(
      await as('Bearer alice', `${gw.publicUrl}/_spillway/operations/${'A'.repeat(24)}`),
    );
    for (const who of ['Bearer mallory', undefined]) {
      for (const [url, method] of [
        [monitor, 'GET'],
        [`${monitor}/result`, 'GET'],
        [`${monitor}/events`, 'GET'],
        [`${monitor}/cancel`, 'POST'],
      ] as const) {
        const answer = await as(who, url, method);
        assert.equal(answer.status, 404, `${who} ${method} ${url}`);
        const problem = await jsonOf(answer);
        assert.equal(problem.code, unknown.code);
        assert.equal(problem.title, unknown.title);
        assert.doesNotMatch(JSON.stringify(problem), /alice|NotStarted/);
      }
    }
    assert.equal((await gw.store.get(operationIdOf(res)))?.status, 'NotStarted', 'the cancel did nothing');

    const open = await post(`${gw.publicUrl}/payments`, undefined, '{}');
    assert.equal(
      (await as('Bearer anyone', open.headers.get('operation-location')!)).status,
      200,
      'an operation captured without a credential is visible to whoever holds its id',
    );
  });
});

function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(text));
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      answer += chunk;
    });
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}
