/**
 * Webhook conformance, the table of ../shared/research/http-standards.md §4.4,
 * each test named by its row id (W1 … W12). The receiver is a real loopback
 * HTTP server, and every signature is checked by the independent reference
 * verifier, `new Webhook(secret).verify(rawBody, headers)` from the npm
 * package `standardwebhooks`.
 *
 * Rows about what the receiver sees of a real gateway (W1, W4–W6, W11's 400)
 * run a gateway in-process; rows about time (W3, W7–W10, W12) drive the
 * dispatcher on a real SQLite store with a ManualClock, so a schedule of hours
 * runs in milliseconds and every delay is checked exactly. In every test but
 * W11 the guard is configured to allow the loopback receiver; W11 checks the
 * production policy.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { buildConfig } from '../../src/config/config.ts';
import type { ResolvedAddress } from '../../src/delivery/webhooks/callback-guard.ts';
import {
  newWebhookSecret,
  parseWebhookSecret,
  signatureHeader,
} from '../../src/delivery/webhooks/signing.ts';
import { Webhooks } from '../../src/delivery/webhooks/webhooks.ts';
import { main } from '../../src/ops/cli.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { startWorkerProcess } from '../../src/ops/worker-process.ts';
import type { WebhookTarget } from '../../src/store/port.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { WebhookDispatcher } from '../../src/workers/webhook-dispatcher.ts';
import { newOperation } from '../store/store-fixture.ts';
import { jsonOf, operationIdOf, startGateway, tempDir } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { TestUpstream } from '../support/test-upstream.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

const SECRET = newWebhookSecret();
/** Loosely typed JSON, as the harness reads it. */
type Json = Awaited<ReturnType<typeof jsonOf>>;
const headersOf = WebhookReceiver.headersOf;

/** An upstream that answers 201, and a gateway whose callbacks may reach the receiver. */
async function gatewayFor(t: TestContext, rx: WebhookReceiver, webhooks: Record<string, unknown> = {}) {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => ({ kind: 'respond', status: 201, body: '{"paid":true}' });
  t.after(() => upstream.stop());
  const gw = await startGateway({
    upstream: upstream.url,
    webhooks: { secrets: [SECRET], callbackAllow: [rx.origin], allowPrivateNetworks: true, ...webhooks },
  });
  t.after(() => gw.stop());
  return { gw, upstream };
}

/** A request that goes async at once (no sync attempt) and names a callback. */
function postAsync(publicUrl: string, callback: string | undefined, headers: Record<string, string> = {}) {
  return fetch(`${publicUrl}/payments`, {
    method: 'POST',
    headers: {
      prefer: 'respond-async, wait=0',
      'content-type': 'application/json',
      ...(callback ? { 'spillway-callback': callback } : {}),
      ...headers,
    },
    body: JSON.stringify({ amount: 5 }),
  });
}

/**
 * The dispatcher alone, on a real SQLite store and a ManualClock starting at
 * a whole second of now (so the reference verifier's ±5 min tolerance holds).
 */
async function dispatchBench(
  t: TestContext,
  rx: WebhookReceiver,
  webhooks: Record<string, unknown> = {},
  random: () => number = () => 0.5,
) {
  const dir = tempDir();
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  const store = new SqliteStore({ path: join(dir, 'spillway.db'), clock });
  const config = buildConfig({
    upstream: 'http://127.0.0.1:9',
    webhooks: { secrets: [SECRET], callbackAllow: [rx.origin], allowPrivateNetworks: true, ...webhooks },
  }).webhooks;
  const setup = new Webhooks(config);
  const dispatcher = new WebhookDispatcher({
    store,
    clock,
    owner: 'bench',
    endpoints: setup.endpoints(),
    schedule: config.schedule,
    timeoutMs: config.timeoutMs,
    concurrency: 4,
    pollIntervalMs: 60_000,
    publicUrl: () => 'https://gw.example',
    random,
  });
  t.after(async () => {
    await dispatcher.stop(0);
    await setup.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    clock,
    store,
    dispatcher,
    /** An operation that has just Succeeded, with a callback to the receiver (and any subscriptions). */
    async finished(subscriptions: WebhookTarget[] = [], callbackUrl: string | null = `${rx.origin}/hook`) {
      const op = await store.capture(
        newOperation(clock, { callbackUrl, webhookSubscriptions: subscriptions }),
      );
      const leased = await store.lease({ owner: 'w', limit: 10, leaseMs: 60_000 });
      await store.complete(op.id, leased.find((l) => l.id === op.id)!.leaseToken, {
        status: 201,
        headers: [],
        body: new Uint8Array(),
      });
      return op;
    },
    /** One round of the dispatcher: lease what is due, wait for those attempts; resolves with how many. */
    async round() {
      const leased = await dispatcher.runOnce();
      await dispatcher.idle();
      return leased;
    },
    async delivery(operationId: string, endpoint = 'callback') {
      return (await store.webhookDeliveries(operationId)).find((d) => d.endpoint === endpoint)!;
    },
  };
}

describe('webhooks conformance, http-standards.md §4.4', () => {
  it('W1: a delivery verifies with the reference library and carries the terminal CloudEvent with a link to the result', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const { gw, upstream } = await gatewayFor(t, rx);
    const res = await postAsync(gw.publicUrl, `${rx.origin}/hooks/payments?ref=1`);
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    await rx.waitFor(1);
    const [webhook] = rx.received;
    const payload = new Webhook(SECRET).verify(webhook!.raw, headersOf(webhook!)) as Json;
    assert.equal(webhook!.path, '/hooks/payments?ref=1');
    assert.equal(webhook!.headers['content-type'], 'application/cloudevents+json; charset=utf-8');
    assert.match(String(webhook!.headers['user-agent']), /^Spillway\//);
    const webhookId = String(webhook!.headers['webhook-id']);
    assert.match(webhookId, /^[A-Za-z0-9_-]+$/);
    assert.equal(webhookId, `msg_${id}_3_callback`);
    // The body is a CloudEvent in structured mode (C1): everything is inside the signed bytes.
    assert.equal(payload.specversion, '1.0');
    assert.equal(payload.id, `${id}:3`);
    assert.equal(payload.type, 'dev.spillway.operation.succeeded');
    assert.equal(payload.subject, id);
    assert.equal(payload.source, `${gw.publicUrl}/_spillway/operations`);
    assert.ok(!Number.isNaN(Date.parse(payload.time)));
    assert.equal(payload.data.status, 'Succeeded');
    assert.equal(payload.data.resultLocation, `${gw.publicUrl}/_spillway/operations/${id}/result`);
    const result = await fetch(payload.data.resultLocation);
    assert.equal(result.status, 201);
    assert.equal(await result.text(), '{"paid":true}');
    assert.ok(
      upstream.received.every((r) => r.headers['spillway-callback'] === undefined),
      'the header is never forwarded',
    );

    // The attempt is recorded and visible to the operation's tenant.
    let view: Json = {};
    for (let i = 0; i < 100; i++) {
      view = await jsonOf(await fetch(`${gw.publicUrl}/_spillway/operations/${id}/deliveries`));
      if (view.deliveries?.[0]?.state === 'delivered') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(view.operationId, id);
    const [delivery] = view.deliveries;
    assert.equal(delivery.webhookId, webhookId);
    assert.equal(delivery.eventId, `${id}:3`);
    assert.equal(delivery.endpoint, 'callback');
    assert.equal(delivery.url, `${rx.origin}/hooks/payments?ref=1`);
    assert.equal(delivery.state, 'delivered');
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.attemptLog.length, 1);
    assert.equal(delivery.attemptLog[0].status, 204);
    assert.equal(typeof delivery.attemptLog[0].latencyMs, 'number');
  });

  it('W2: the known-good vector verifies with the clock at ts+10 s, data.id is "op_1"', (t) => {
    const vector = {
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      timestamp: 1674087231,
      body: '{"type":"job.succeeded","timestamp":"2023-01-19T00:13:51Z","data":{"id":"op_1"}}',
      signature: 'v1,74tAHt89e+g+2tm437R2f21XiuZM//PRlz2EOJHr1sg=',
    };
    // Spillway's signer produces exactly the vector's signature…
    const ours = signatureHeader(
      [parseWebhookSecret(vector.secret)],
      vector.id,
      vector.timestamp,
      new TextEncoder().encode(vector.body),
    );
    assert.equal(ours, vector.signature);
    // …and the reference verifier accepts it at ts+10 s.
    t.mock.timers.enable({ apis: ['Date'], now: (vector.timestamp + 10) * 1000 });
    const payload = new Webhook(vector.secret).verify(vector.body, {
      'webhook-id': vector.id,
      'webhook-timestamp': String(vector.timestamp),
      'webhook-signature': ours,
    }) as { data: { id: string } };
    assert.equal(payload.data.id, 'op_1');
  });

  it('W3: a retried delivery keeps its webhook-id, gets a new timestamp, and each attempt verifies on its own', async (t) => {
    await using rx = await new WebhookReceiver().start();
    rx.answer = (_req, n) => (n === 1 ? { status: 500, body: 'try later' } : { status: 200 });
    const bench = await dispatchBench(t, rx);
    const op = await bench.finished();
    assert.equal(await bench.round(), 1);
    const first = await bench.delivery(op.id);
    assert.equal(first.state, 'pending');
    assert.equal(first.nextAttemptAt, bench.clock.now() + 5_000, 'the schedule: 5 s (no jitter drawn here)');
    bench.clock.advance(5_000);
    assert.equal(await bench.round(), 1);
    assert.equal(rx.received.length, 2);
    const [a, b] = rx.received as [
      NonNullable<(typeof rx.received)[0]>,
      NonNullable<(typeof rx.received)[0]>,
    ];
    assert.equal(a.headers['webhook-id'], b.headers['webhook-id']);
    assert.equal(Number(b.headers['webhook-timestamp']) - Number(a.headers['webhook-timestamp']), 5);
    assert.notEqual(a.headers['webhook-signature'], b.headers['webhook-signature']);
    assert.deepEqual(a.raw, b.raw, 'the same bytes every time');
    for (const webhook of [a, b]) new Webhook(SECRET).verify(webhook.raw, headersOf(webhook));
    const done = await bench.delivery(op.id);
    assert.equal(done.state, 'delivered');
    assert.deepEqual(
      done.attemptLog.map((x) => [x.attempt, x.status, x.responseSnippet]),
      [
        [1, 500, 'try later'],
        [2, 200, ''],
      ],
    );
  });

  it('W4: a receiver whose clock reads ts+301 s refuses the delivery as too old: the timestamp is the attempt time', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const { gw } = await gatewayFor(t, rx);
    await postAsync(gw.publicUrl, `${rx.origin}/hook`);
    await rx.waitFor(1);
    const webhook = rx.received[0]!;
    const ts = Number(webhook.headers['webhook-timestamp']);
    assert.ok(Math.abs(ts - Date.now() / 1000) < 60, 'stamped at the attempt, not at the event');
    t.mock.timers.enable({ apis: ['Date'], now: (ts + 301) * 1000 });
    assert.throws(
      () => new Webhook(SECRET).verify(webhook.raw, headersOf(webhook)),
      /Message timestamp too old/,
    );
    t.mock.timers.reset();
    t.mock.timers.enable({ apis: ['Date'], now: (ts + 299) * 1000 });
    assert.doesNotThrow(() => new Webhook(SECRET).verify(webhook.raw, headersOf(webhook)));
  });

  it('W5: one flipped body byte fails verification', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const { gw } = await gatewayFor(t, rx);
    await postAsync(gw.publicUrl, `${rx.origin}/hook`);
    await rx.waitFor(1);
    const webhook = rx.received[0]!;
    const flipped = Buffer.from(webhook.raw);
    const at = flipped.indexOf('succeeded');
    flipped[at] = flipped[at]! ^ 0x01; // the signed type (C3): tampering with metadata is caught too
    assert.throws(
      () => new Webhook(SECRET).verify(flipped, headersOf(webhook)),
      /No matching signature found/,
    );
    assert.doesNotThrow(() => new Webhook(SECRET).verify(webhook.raw, headersOf(webhook)));
  });

  it('W6: during a rotation both secrets sign; a verifier holding either one accepts', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const next = newWebhookSecret();
    const old = newWebhookSecret();
    const { gw } = await gatewayFor(t, rx, { secrets: [next, old] });
    await postAsync(gw.publicUrl, `${rx.origin}/hook`);
    await rx.waitFor(1);
    const webhook = rx.received[0]!;
    const entries = String(webhook.headers['webhook-signature']).split(' ');
    assert.equal(entries.length, 2);
    assert.ok(entries.every((e) => e.startsWith('v1,')));
    for (const secret of [next, old]) new Webhook(secret).verify(webhook.raw, headersOf(webhook));
    assert.throws(
      () => new Webhook(newWebhookSecret()).verify(webhook.raw, headersOf(webhook)),
      /No matching/,
    );
  });

  it('W7: a 302 is a failure, the redirect is not followed, and a retry is scheduled', async (t) => {
    await using target = await new WebhookReceiver().start();
    await using rx = await new WebhookReceiver().start();
    rx.answer = () => ({ status: 302, headers: { location: `${target.origin}/elsewhere` } });
    const bench = await dispatchBench(t, rx, { callbackAllow: [rx.origin, target.origin] });
    const op = await bench.finished();
    assert.equal(await bench.round(), 1);
    assert.equal(target.received.length, 0, 'the redirect target was never called');
    const delivery = await bench.delivery(op.id);
    assert.equal(delivery.state, 'pending');
    assert.equal(delivery.attempts, 1);
    assert.match(delivery.lastError!, /302, a redirect; redirects are not followed/);
    assert.equal(delivery.nextAttemptAt, bench.clock.now() + 5_000);
    bench.clock.advance(5_000);
    assert.equal(await bench.round(), 1, 'tried again on schedule');
    assert.equal(rx.received.length, 2);
    assert.equal(target.received.length, 0);
  });

  it('W8: a 410 disables the endpoint: no more attempts, for a callback and for a subscription', async (t) => {
    await using rx = await new WebhookReceiver().start();
    rx.answer = () => ({ status: 410 });
    const bench = await dispatchBench(t, rx, {
      subscriptions: [{ name: 'ledger', url: `${rx.origin}/ledger` }],
    });
    const subscription: WebhookTarget = { endpoint: 'ledger', url: `${rx.origin}/ledger`, events: null };
    const op = await bench.finished([subscription]);
    assert.equal(await bench.round(), 2);
    assert.equal((await bench.delivery(op.id)).state, 'disabled');
    assert.equal((await bench.delivery(op.id, 'ledger')).state, 'disabled');
    bench.clock.advance(7 * 24 * 3_600_000);
    assert.equal(await bench.round(), 0, 'no more attempts');
    assert.equal(rx.received.length, 2);

    // The subscription stays disabled for later operations (all processes share the flag); a new callback does not.
    const later = await bench.finished([subscription]);
    assert.equal((await bench.delivery(later.id, 'ledger')).state, 'disabled');
    assert.equal((await bench.delivery(later.id)).state, 'pending');
    assert.equal(await bench.round(), 1);
    assert.equal(rx.received.length, 3);
    assert.ok(rx.received.every((r) => r.path !== '/ledger' || r === rx.received[0] || r === rx.received[1]));
  });

  it('W9: a 503 with Retry-After: 120 is tried again no sooner than 120 s later', async (t) => {
    await using rx = await new WebhookReceiver().start();
    rx.answer = (_req, n) => (n === 1 ? { status: 503, headers: { 'retry-after': '120' } } : { status: 200 });
    const bench = await dispatchBench(t, rx);
    const op = await bench.finished();
    const start = bench.clock.now();
    assert.equal(await bench.round(), 1);
    assert.equal((await bench.delivery(op.id)).nextAttemptAt, start + 120_000);
    bench.clock.advance(119_999);
    assert.equal(await bench.round(), 0, 'not before 120 s, though the schedule says 5 s');
    bench.clock.advance(1);
    assert.equal(await bench.round(), 1);
    assert.equal(rx.received.length, 2);
    assert.equal(
      Number(rx.received[1]!.headers['webhook-timestamp']) -
        Number(rx.received[0]!.headers['webhook-timestamp']),
      120,
    );
    assert.equal((await bench.delivery(op.id)).state, 'delivered');
  });

  it('W10: a hung receiver: the attempt is aborted at the configured time limit and counted as a failure', async (t) => {
    await using rx = await new WebhookReceiver().start();
    rx.answer = (_req, n) => (n === 1 ? 'hang' : { status: 200 });
    const bench = await dispatchBench(t, rx); // timeoutMs: the default, 15 s
    const op = await bench.finished();
    void bench.dispatcher.runOnce();
    await rx.waitFor(1);
    let settled = false;
    const idle = bench.dispatcher.idle().then(() => {
      settled = true;
    });
    bench.clock.advance(14_999);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settled, false, 'still waiting before the limit');
    bench.clock.advance(1);
    await idle;
    const delivery = await bench.delivery(op.id);
    assert.equal(delivery.state, 'pending');
    assert.equal(delivery.attempts, 1);
    assert.deepEqual(
      delivery.attemptLog.map((a) => [a.status, a.error, a.latencyMs]),
      [[null, 'No answer within 15000 ms.', 15_000]],
    );
    bench.clock.advance(5_000);
    assert.equal(await bench.round(), 1);
    assert.equal((await bench.delivery(op.id)).state, 'delivered');
    // The limit is 15 s by default and never more than 30 s.
    assert.equal(buildConfig({ upstream: 'http://x' }).webhooks.timeoutMs, 15_000);
    assert.throws(() => buildConfig({ upstream: 'http://x', webhooks: { timeoutMs: 30_001 } }), /timeoutMs/);
  });

  it('W11: the production policy refuses loopback, metadata, [::1] and a name resolving to 10.x; the gateway answers 400 and stores nothing', async (t) => {
    const resolve = async (host: string): Promise<ResolvedAddress[]> =>
      host === 'internal.example'
        ? [{ address: '10.0.0.7', family: 4 }]
        : [{ address: '93.184.216.34', family: 4 }];
    const urls = [
      'http://127.0.0.1/hook',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::1]/hook',
      'https://internal.example/hook',
    ];
    const production = new Webhooks(
      buildConfig({
        upstream: 'http://x',
        webhooks: {
          secrets: [SECRET],
          callbackAllow: [...urls.map((u) => new URL(u).origin), 'https://ok.example'],
        },
      }).webhooks,
      resolve,
    );
    t.after(() => production.close());
    for (const url of urls) {
      const decision = await production.callbackFrom([url]);
      assert.equal(decision.kind, 'refused', url);
      assert.match((decision as { detail: string }).detail, /(loopback|metadata|private) address/, url);
    }
    assert.deepEqual(await production.callbackFrom(['https://ok.example/hook']), {
      kind: 'allowed',
      url: 'https://ok.example/hook',
    });

    // At the gateway: 400 problem+json before anything is captured, and the upstream is never called.
    await using rx = await new WebhookReceiver().start();
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    await using gw = await startGateway({
      upstream: upstream.url,
      webhooks: { secrets: [SECRET], callbackAllow: [rx.origin] }, // allowPrivateNetworks: false
    });
    const cases: Array<[string[] | undefined, RegExp]> = [
      [[`${rx.origin}/hook`], /loopback address/],
      [['https://evil.example/hook'], /not on the allow-list/],
      [['not-a-url'], /not an absolute URL/],
      [[`${rx.origin}/a`, `${rx.origin}/b`], /one Spillway-Callback/],
    ];
    for (const [values, detail] of cases) {
      const headers = new Headers({ prefer: 'respond-async, wait=0', 'idempotency-key': randomUUID() });
      for (const value of values ?? []) headers.append('spillway-callback', value);
      const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', headers, body: '{}' });
      assert.equal(res.status, 400);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
      const problem = await jsonOf(res);
      assert.equal(problem.code, 'callback-not-allowed');
      assert.equal(problem.type, 'https://spillway.dev/problems/callback-not-allowed');
      assert.match(problem.detail, detail);
    }
    const counts = await gw.store.counts();
    assert.deepEqual(
      [counts.NotStarted, counts.Running, counts.Succeeded, counts.Failed, counts.Canceled],
      [0, 0, 0, 0, 0],
      'nothing was captured',
    );
    assert.equal(upstream.received.length, 0, 'the upstream was not called');
    assert.equal(rx.received.length, 0);

    // Without any webhooks configured, the header is refused the same way, not ignored.
    await using plain = await startGateway({ upstream: upstream.url });
    const res = await postAsync(plain.publicUrl, 'https://hooks.example/x');
    assert.equal(res.status, 400);
    assert.match((await jsonOf(res)).detail, /not enabled/);
  });

  it('W12: the delays between attempts follow the configured schedule with jitter (fake clock), then the delivery fails', async (t) => {
    await using rx = await new WebhookReceiver().start();
    rx.answer = () => ({ status: 500 });
    const draws = [0, 0.999_999, 0.25];
    let n = 0;
    const schedule = [5_000, 300_000, 1_800_000];
    const bench = await dispatchBench(
      t,
      rx,
      { schedule, jitter: 0.2, maxAttempts: 4 },
      () => draws[n++ % draws.length]!,
    );
    const op = await bench.finished();
    const expected = schedule.map((d, i) => Math.round(d * (1 + 0.2 * (2 * draws[i]! - 1))));
    assert.deepEqual(expected, [4_000, 360_000, 1_620_000]);
    const attemptTimes: number[] = [];
    assert.equal(await bench.round(), 1);
    attemptTimes.push(bench.clock.now());
    for (const delay of expected) {
      const due = (await bench.delivery(op.id)).nextAttemptAt;
      assert.equal(due - bench.clock.now(), delay);
      assert.ok(due - bench.clock.now() !== schedule[attemptTimes.length - 1], 'jittered, not the bare step');
      bench.clock.advance(delay - 1);
      assert.equal(await bench.round(), 0, 'not a millisecond early');
      bench.clock.advance(1);
      assert.equal(await bench.round(), 1);
      attemptTimes.push(bench.clock.now());
    }
    const timestamps = rx.received.map((r) => Number(r.headers['webhook-timestamp']) * 1000);
    assert.deepEqual(
      timestamps.slice(1).map((ts, i) => ts - timestamps[i]!),
      expected,
      'the receiver saw the same spacing',
    );
    const delivery = await bench.delivery(op.id);
    assert.equal(delivery.state, 'failed');
    assert.equal(delivery.attempts, 4);
    assert.match(delivery.lastError!, /Gave up after 4 attempts/);
    bench.clock.advance(86_400_000);
    assert.equal(await bench.round(), 0);
    assert.equal(rx.received.length, 4);
  });
});

describe('webhooks: subscriptions and the deliveries view', () => {
  it('a subscription gets the events it asks for, signed with its own secret, on its routes only; clients do not see its URL', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const ledgerSecret = newWebhookSecret();
    const upstream = await new TestUpstream().start();
    upstream.behaviour = (req) =>
      req.url.startsWith('/refunds')
        ? { kind: 'respond', status: 422, body: 'no' }
        : { kind: 'respond', status: 201, body: 'ok' };
    t.after(() => upstream.stop());
    await using gw = await startGateway({
      upstream: upstream.url,
      routes: [{ name: 'payments', match: 'POST /payments' }],
      webhooks: {
        secrets: [SECRET],
        callbackAllow: [rx.origin],
        allowPrivateNetworks: true,
        subscriptions: [
          { name: 'ledger', url: `${rx.origin}/ledger`, secrets: [ledgerSecret], routes: ['payments'] },
          { name: 'failures', url: `${rx.origin}/failures`, events: ['failed'] },
        ],
      },
    });
    const auth = { authorization: 'Bearer tenant-a' };
    const paid = await postAsync(gw.publicUrl, `${rx.origin}/cb`, auth);
    const id = operationIdOf(paid);
    const refund = await fetch(`${gw.publicUrl}/refunds`, {
      method: 'POST',
      headers: { prefer: 'respond-async, wait=0' },
      body: '{}',
    });
    const refundId = operationIdOf(refund);
    await rx.waitFor(3);
    await new Promise((r) => setTimeout(r, 200)); // nothing more is coming
    const byPath = new Map(rx.received.map((r) => [r.path, r]));
    assert.deepEqual([...byPath.keys()].sort(), ['/cb', '/failures', '/ledger']);
    const ledger = byPath.get('/ledger')!;
    assert.equal(ledger.headers['webhook-id'], `msg_${id}_3_ledger`);
    new Webhook(ledgerSecret).verify(ledger.raw, headersOf(ledger));
    assert.throws(() => new Webhook(SECRET).verify(ledger.raw, headersOf(ledger)), /No matching/);
    const failure = byPath.get('/failures')!;
    assert.equal(failure.headers['webhook-id'], `msg_${refundId}_3_failures`);
    const event = new Webhook(SECRET).verify(failure.raw, headersOf(failure)) as { type: string };
    assert.equal(event.type, 'dev.spillway.operation.failed');

    const view = async (headers: Record<string, string>) =>
      fetch(`${gw.publicUrl}/_spillway/operations/${id}/deliveries`, { headers });
    assert.equal((await view({})).status, 404, 'another tenant sees nothing, as for the monitor');
    let deliveries: Json[] = [];
    for (let i = 0; i < 100; i++) {
      deliveries = (await jsonOf(await view(auth))).deliveries;
      if (deliveries.every((d) => d.state === 'delivered')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(
      deliveries.map((d) => [d.endpoint, d.state, d.url]),
      [
        ['callback', 'delivered', `${rx.origin}/cb`],
        ['ledger', 'delivered', undefined],
      ],
    );
    assert.equal(
      deliveries[1]!.attemptLog[0].responseSnippet,
      undefined,
      "the subscription's answer is the operator's",
    );
  });

  it('configuration errors name the option and never echo a secret', () => {
    const build = (webhooks: Record<string, unknown>) => () =>
      buildConfig({ upstream: 'http://x', webhooks });
    assert.throws(build({ callbackAllow: ['https://hooks.example'] }), /no secret to sign them/);
    assert.throws(
      build({ secrets: ['whsec_c2hvcnQ='] }),
      (e: Error) => /24–64 bytes/.test(e.message) && !e.message.includes('c2hvcnQ'),
    );
    assert.throws(
      build({ secrets: [SECRET], callbackAllow: ['https://hooks.example/path'] }),
      /callbackAllow.*not an origin/,
    );
    assert.throws(
      build({ secrets: [SECRET], subscriptions: [{ name: 'callback', url: 'https://h.example' }] }),
      /not "callback"/,
    );
    assert.throws(
      build({ secrets: [SECRET], subscriptions: [{ name: 'a.b', url: 'https://h.example' }] }),
      /name must be/,
    );
    assert.throws(build({ subscriptions: [{ name: 'a', url: 'https://h.example' }] }), /no global secret/);
    assert.throws(
      build({
        secrets: [SECRET],
        subscriptions: [{ name: 'a', url: 'https://h.example', events: ['running'] }],
      }),
      /terminal events are succeeded, failed, canceled/,
    );
    assert.throws(
      () =>
        buildConfig({
          upstream: 'http://x',
          webhooks: {
            secrets: [SECRET],
            subscriptions: [{ name: 'a', url: 'https://h.example', routes: ['nope'] }],
          },
        }),
      /names "nope", which is no route/,
    );
    assert.throws(build({ secrets: [SECRET], nope: 1 }), /Unknown option "webhooks.nope"/);
    // Environment variables arrive as strings.
    const fromEnv = buildConfig({
      upstream: 'http://x',
      webhooks: {
        secrets: `${SECRET} ${newWebhookSecret()}`,
        callbackAllow: 'https://a.example, https://B.example:443',
        allowPrivateNetworks: '1',
      },
    }).webhooks;
    assert.equal(fromEnv.secrets.length, 2);
    assert.deepEqual([...fromEnv.callbackAllow], ['https://a.example', 'https://b.example']);
    assert.equal(fromEnv.allowPrivateNetworks, true);
  });

  it('spillway worker delivers webhooks only with publicUrl, which the events link to', async () => {
    const config = (publicUrl?: string) =>
      buildConfig({
        upstream: 'http://127.0.0.1:9',
        store: 'postgres://127.0.0.1:1/never-reached',
        adminPort: 0,
        ...(publicUrl ? { publicUrl } : {}),
        webhooks: { secrets: [SECRET], callbackAllow: ['https://hooks.example'] },
      });
    await assert.rejects(startWorkerProcess(config(), { logger: createLogger('silent') }), {
      name: 'ConfigError',
      message: /set publicUrl/,
    });
    // With it, the worker goes on to open the store (unreachable here): past the webhook check.
    await assert.rejects(
      startWorkerProcess(config('https://gw.example'), { logger: createLogger('silent') }),
      (error: Error) => error.name !== 'ConfigError',
    );
  });

  it('spillway webhook-secret prints a secret the reference library accepts', async (t) => {
    const lines: string[] = [];
    t.mock.method(console, 'log', (line: string) => lines.push(line));
    assert.equal(await main(['webhook-secret']), 0);
    assert.equal(lines.length, 1);
    assert.equal(parseWebhookSecret(lines[0]!).key.byteLength, 32);
    assert.doesNotThrow(() => new Webhook(lines[0]!));
  });
});
