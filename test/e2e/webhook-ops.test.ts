/**
 * The webhook operator actions end to end (docs/operations.md#webhooks): a
 * real gateway, a real loopback receiver, the admin API and the CLI code.
 * A subscription whose receiver answered 410 is listed, enabled again, and
 * its deliveries re-sent; the receiver gets each with the webhook-id it had
 * before, and every signature is checked by the reference verifier
 * (`standardwebhooks`). The dispatchers poll only hourly here, so a re-sent
 * delivery arrives in time only because the re-send wakes them.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it, type TestContext } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { buildConfig } from '../../src/config/config.ts';
import { newWebhookSecret } from '../../src/delivery/webhooks/signing.ts';
import { newOperationId } from '../../src/engine/operation-id.ts';
import { webhooksCommand } from '../../src/ops/admin-commands.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { startWorkerProcess } from '../../src/ops/worker-process.ts';
import type { OperationStore, WebhookAttempt, WebhookDelivery } from '../../src/store/port.ts';
import { jsonOf, operationIdOf, startGateway, type TestGateway, tempDir } from '../support/harness.ts';
import { freshSchema, skipWithoutPostgres } from '../support/postgres.ts';
import { TestUpstream } from '../support/test-upstream.ts';
import { type ReceivedWebhook, WebhookReceiver } from '../support/webhook-receiver.ts';

const SECRET = newWebhookSecret();
const GONE = 'The receiver answered 410 Gone.';
type Delivery = WebhookDelivery & { attemptLog: WebhookAttempt[] };

/** An upstream answering 201; stopped after the test. */
async function upstreamFor(t: TestContext): Promise<TestUpstream> {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => ({ kind: 'respond', status: 201, body: '{"paid":true}' });
  t.after(() => upstream.stop());
  return upstream;
}

/** Webhook options for a loopback receiver; the poll is hourly, so only a wake sends a re-sent delivery soon. */
const webhooksFor = (options: Record<string, unknown>) => ({
  secrets: [SECRET],
  allowPrivateNetworks: true,
  pollIntervalMs: 3_600_000,
  ...options,
});

/** A request that goes async at once, so it has an operation and its webhooks. */
async function postAsync(publicUrl: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${publicUrl}/payments`, {
    method: 'POST',
    headers: { prefer: 'respond-async, wait=0', 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ amount: 5 }),
  });
  assert.equal(res.status, 202);
  return operationIdOf(res);
}

/** Reads the store until the delivery matches, for at most `ms`. */
async function deliveryWhen(
  store: OperationStore,
  operationId: string,
  endpoint: string,
  ok: (d: Delivery) => boolean,
  ms = 10_000,
): Promise<Delivery> {
  const until = Date.now() + ms;
  for (;;) {
    const d = (await store.webhookDeliveries(operationId)).find((x) => x.endpoint === endpoint);
    if (d && ok(d)) return d;
    if (Date.now() > until) {
      throw new Error(
        `delivery ${operationId}/${endpoint} not as expected after ${ms} ms: ${JSON.stringify(d)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One admin API call: its status, problem code (if any), body and headers. */
async function admin(adminPort: number, method: string, path: string) {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, { method });
  const body = await jsonOf(res);
  return { status: res.status, type: res.headers.get('content-type'), allow: res.headers.get('allow'), body };
}

const resendPath = (operationId: string, endpoint: string, seq: number) =>
  `/api/operations/${operationId}/deliveries/${endpoint}/${seq}/resend`;

/** Throws unless the reference library verifies the webhook as received. */
function verified(webhook: ReceivedWebhook): Record<string, unknown> {
  return new Webhook(SECRET).verify(webhook.raw, WebhookReceiver.headersOf(webhook)) as Record<
    string,
    unknown
  >;
}

const withId = (rx: WebhookReceiver, webhookId: string) =>
  rx.received.filter((w) => w.headers['webhook-id'] === webhookId);

describe('webhook operator actions, end to end', () => {
  it('a subscription disabled by a 410 is listed and enabled through the admin API; its deliveries, re-sent by the API and the CLI, arrive with the same webhook-id and valid signatures', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const upstream = await upstreamFor(t);
    const url = `${rx.origin}/ledger`;
    await using gw = await startGateway({
      upstream: upstream.url,
      webhooks: webhooksFor({ subscriptions: [{ name: 'ledger', url }] }),
    });
    rx.answer = () => ({ status: 410 });

    const a = await postAsync(gw.publicUrl);
    await rx.waitFor(1);
    const first = await deliveryWhen(gw.store, a, 'ledger', (d) => d.state === 'disabled');
    const b = await postAsync(gw.publicUrl);
    await gw.settled(b);
    const never = await deliveryWhen(gw.store, b, 'ledger', (d) => d.state === 'disabled');
    assert.equal(never.attempts, 0, 'created disabled: the endpoint was');
    assert.equal(rx.received.length, 1);

    const listed = await admin(gw.adminPort, 'GET', '/api/webhooks/endpoints/disabled');
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.endpoints.map((e: Record<string, string>) => [e.name, e.url, e.reason]),
      [['ledger', url, GONE]],
    );
    assert.equal(
      listed.body.endpoints[0].disabledAt,
      new Date(Date.parse(listed.body.endpoints[0].disabledAt)).toISOString(),
    );

    const early = await admin(gw.adminPort, 'POST', resendPath(a, 'ledger', first.seq));
    assert.equal(early.status, 409);
    assert.equal(early.type, 'application/problem+json');
    assert.equal(early.body.code, 'webhook-delivery-not-resendable');
    assert.equal(early.body.reason, 'endpoint-disabled');
    assert.match(early.body.detail, /enable it first \(POST \/api\/webhooks\/endpoints\/ledger\/enable/);

    const enabled = await admin(gw.adminPort, 'POST', '/api/webhooks/endpoints/ledger/enable');
    assert.equal(enabled.status, 200);
    assert.deepEqual(
      enabled.body.enabled.map((e: Record<string, string>) => [e.name, e.url]),
      [['ledger', url]],
    );
    assert.deepEqual((await admin(gw.adminPort, 'GET', '/api/webhooks/endpoints/disabled')).body, {
      endpoints: [],
    });
    assert.equal(
      (await deliveryWhen(gw.store, a, 'ledger', () => true)).state,
      'disabled',
      'enabling re-sends nothing by itself',
    );

    rx.answer = () => ({ status: 204 });
    const idA = `msg_${a}_${first.seq}_ledger`;
    const idB = `msg_${b}_${never.seq}_ledger`;
    const resent = await admin(gw.adminPort, 'POST', resendPath(a, 'ledger', first.seq));
    assert.equal(resent.status, 200);
    assert.equal(resent.body.webhookId, idA);
    assert.deepEqual(
      [resent.body.state, resent.body.previousState, resent.body.attempts, resent.body.url],
      ['pending', 'disabled', 1, url],
    );
    const cli = await webhooksCommand(['resend', b, 'ledger', String(never.seq)], {
      SPILLWAY_ADMIN_URL: `http://127.0.0.1:${gw.adminPort}`,
    });
    assert.equal(cli.code, 0, cli.err);
    assert.match(
      cli.out!,
      new RegExp(`^Re-sent ${idB} \\(it was disabled, after 0 attempts\\): pending, due `),
    );

    await rx.waitFor(3);
    const [before, again] = withId(rx, idA);
    assert.ok(before && again, 'A arrived twice: the 410 and the re-send');
    assert.equal(before, rx.received[0]);
    assert.deepEqual(again.raw, before.raw, 'the same message, byte for byte');
    const [onlyB] = withId(rx, idB);
    assert.ok(onlyB);
    for (const webhook of [before, again, onlyB]) {
      assert.equal(webhook.path, '/ledger');
      assert.ok(verified(webhook)); // throws on a bad signature or timestamp
    }
    assert.equal((verified(onlyB) as { subject: string }).subject, b);

    const doneA = await deliveryWhen(gw.store, a, 'ledger', (d) => d.state === 'delivered');
    assert.deepEqual(
      doneA.attemptLog.map((x) => [x.attempt, x.status]),
      [
        [1, 410],
        [2, 204],
      ],
      'the attempt log goes on',
    );
    const doneB = await deliveryWhen(gw.store, b, 'ledger', (d) => d.state === 'delivered');
    assert.deepEqual(
      doneB.attemptLog.map((x) => [x.attempt, x.status]),
      [[1, 204]],
    );

    const twice = await admin(gw.adminPort, 'POST', resendPath(a, 'ledger', first.seq));
    assert.equal(twice.status, 409);
    assert.equal(twice.body.reason, 'delivered');
    assert.equal(rx.received.length, 3, 'nothing more was sent');
  });

  it('an exhausted delivery gets one more attempt per re-send; a callback keeps its own URL', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const upstream = await upstreamFor(t);
    await using gw = await startGateway({
      upstream: upstream.url,
      webhooks: webhooksFor({ callbackAllow: [rx.origin], maxAttempts: 1 }),
    });
    rx.answer = () => ({ status: 500, body: 'down' });
    const id = await postAsync(gw.publicUrl, { 'spillway-callback': `${rx.origin}/cb?ref=7` });
    const failed = await deliveryWhen(gw.store, id, 'callback', (d) => d.state === 'failed');
    assert.equal(failed.attempts, 1);

    const resend = () => admin(gw.adminPort, 'POST', resendPath(id, 'callback', failed.seq));
    const once = await resend();
    assert.equal(once.status, 200);
    assert.equal(once.body.previousState, 'failed');
    await rx.waitFor(2);
    const again = await deliveryWhen(
      gw.store,
      id,
      'callback',
      (d) => d.state === 'failed' && d.attempts === 2,
    );
    assert.match(again.lastError!, /Gave up after 2 attempts/);

    rx.answer = () => ({ status: 204 });
    assert.equal((await resend()).status, 200);
    await rx.waitFor(3);
    const done = await deliveryWhen(gw.store, id, 'callback', (d) => d.state === 'delivered');
    assert.deepEqual(
      done.attemptLog.map((x) => x.status),
      [500, 500, 204],
    );
    const webhookId = `msg_${id}_${failed.seq}_callback`;
    assert.equal(withId(rx, webhookId).length, 3);
    for (const webhook of rx.received) {
      assert.equal(webhook.path, '/cb?ref=7');
      assert.ok(verified(webhook));
    }
  });

  it("a re-send goes to the subscription's URL as configured now: pointed at a new receiver, a disabled delivery needs no enable", async (t) => {
    await using retired = await new WebhookReceiver().start();
    await using fresh = await new WebhookReceiver().start();
    retired.answer = () => ({ status: 410 });
    const upstream = await upstreamFor(t);
    const dir = tempDir();
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const gatewayTo = (url: string) =>
      startGateway(
        { upstream: upstream.url, webhooks: webhooksFor({ subscriptions: [{ name: 'ledger', url }] }) },
        dir,
      );

    let id: string;
    let seq: number;
    {
      await using gw = await gatewayTo(`${retired.origin}/ledger`);
      id = await postAsync(gw.publicUrl);
      ({ seq } = await deliveryWhen(gw.store, id, 'ledger', (d) => d.state === 'disabled'));
    }
    await using gw = await gatewayTo(`${fresh.origin}/hooks`);
    const resent = await admin(gw.adminPort, 'POST', resendPath(id, 'ledger', seq));
    assert.equal(resent.status, 200, JSON.stringify(resent.body));
    assert.equal(resent.body.url, `${fresh.origin}/hooks`);
    await fresh.waitFor(1);
    const [webhook] = fresh.received;
    assert.equal(webhook!.headers['webhook-id'], `msg_${id}_${seq}_ledger`);
    assert.equal(webhook!.path, '/hooks');
    assert.ok(verified(webhook!));
    assert.equal(retired.received.length, 1);
    const listed = await admin(gw.adminPort, 'GET', '/api/webhooks/endpoints/disabled');
    assert.deepEqual(
      listed.body.endpoints.map((e: Record<string, string>) => e.url),
      [`${retired.origin}/ledger`],
      'the retired URL stays disabled; it no longer blocks anything',
    );
  });

  it('deliveries are listed by state across operations, newest first, a page at a time, behind the admin token; bad queries are 400 problems that say what to send', async (t) => {
    await using rx = await new WebhookReceiver().start();
    const upstream = await upstreamFor(t);
    const token = `token-${newOperationId()}`;
    await using gw = await startGateway({
      upstream: upstream.url,
      adminToken: token,
      webhooks: webhooksFor({
        subscriptions: [{ name: 'ledger', url: `${rx.origin}/ledger` }],
        callbackAllow: [rx.origin],
        maxAttempts: 1,
      }),
    });
    rx.answer = (req) => (req.path === '/ledger' ? { status: 500, body: 'down' } : { status: 204 });
    const ids = [];
    for (let i = 0; i < 3; i++)
      ids.push(await postAsync(gw.publicUrl, { 'spillway-callback': `${rx.origin}/cb` }));
    for (const id of ids) {
      await deliveryWhen(gw.store, id, 'ledger', (d) => d.state === 'failed');
      await deliveryWhen(gw.store, id, 'callback', (d) => d.state === 'delivered');
    }
    const get = async (query: string, auth: string | null = token) => {
      const res = await fetch(`http://127.0.0.1:${gw.adminPort}/api/webhooks/deliveries${query}`, {
        headers: auth === null ? {} : { authorization: `Bearer ${auth}` },
      });
      const headers = { type: res.headers.get('content-type'), cache: res.headers.get('cache-control') };
      return { status: res.status, ...headers, body: await jsonOf(res) };
    };

    assert.equal((await get('?state=failed', null)).status, 401, 'the admin token is required');
    const failed = await get('?state=failed');
    assert.equal(failed.status, 200);
    assert.equal(failed.type, 'application/json');
    assert.equal(failed.cache, 'no-store');
    assert.equal(failed.body.nextCursor, null);
    const listed = failed.body.deliveries as Array<Record<string, unknown>>;
    const order = (d: Record<string, unknown>) => `${d.createdDateTime} ${d.operationId}`;
    assert.deepEqual(
      listed.map(order),
      listed.map(order).sort().reverse(),
      'newest first (created, then operation id)',
    );
    assert.deepEqual(listed.map((d) => d.operationId).sort(), [...ids].sort());
    const first = listed[0]!;
    const stored = (await gw.store.webhookDeliveries(first.operationId as string)).find(
      (d) => d.endpoint === 'ledger',
    )!;
    assert.deepEqual(first, {
      webhookId: `msg_${stored.operationId}_${stored.seq}_ledger`,
      operationId: stored.operationId,
      eventId: `${stored.operationId}:${stored.seq}`,
      seq: stored.seq,
      endpoint: 'ledger',
      url: `${rx.origin}/ledger`,
      state: 'failed',
      attempts: 1,
      lastError: stored.lastError,
      createdDateTime: new Date(stored.createdAt).toISOString(),
      lastActionDateTime: new Date(stored.updatedAt).toISOString(),
    });
    assert.match(String(first.lastError), /500/, "an operator sees the subscription's own error");

    // Pages: a cursor goes on after the last of the page before, to nothing missed or repeated.
    const one = await get('?state=failed&limit=2');
    assert.equal(one.body.deliveries.length, 2);
    assert.equal(typeof one.body.nextCursor, 'string');
    const two = await get(`?state=failed&limit=2&cursor=${encodeURIComponent(one.body.nextCursor)}`);
    assert.equal(two.status, 200);
    assert.equal(two.body.nextCursor, null);
    assert.deepEqual([...one.body.deliveries, ...two.body.deliveries], listed);

    const byEndpoint = await get('?state=delivered&endpoint=callback');
    assert.deepEqual(
      byEndpoint.body.deliveries.map((d: Record<string, unknown>) => [d.endpoint, d.url, d.state]),
      ids.map(() => ['callback', `${rx.origin}/cb`, 'delivered']),
    );
    assert.deepEqual((await get('?state=failed&endpoint=callback')).body.deliveries, []);
    assert.deepEqual((await get('?state=pending')).body, { deliveries: [], nextCursor: null });

    // What an operator does next: re-send one as listed.
    const resent = await fetch(
      `http://127.0.0.1:${gw.adminPort}${resendPath(first.operationId as string, 'ledger', first.seq as number)}`,
      { method: 'POST', headers: { authorization: `Bearer ${token}` } },
    );
    assert.equal(resent.status, 200);
    await jsonOf(resent);

    const bad: Array<[string, RegExp]> = [
      ['', /state is required: send one of pending, delivered, failed, disabled/],
      ['?state=broken', /state must be one of pending, delivered, failed, disabled, got "broken"/],
      ['?state=Failed', /got "Failed"/],
      ['?state=failed&limit=0', /limit must be an integer from 1 to 500, got "0"/],
      ['?state=failed&limit=501', /limit must be an integer from 1 to 500/],
      ['?state=failed&limit=ten', /got "ten"/],
      ['?state=failed&cursor=nope', /cursor is not one this API gave: pass nextCursor/],
      [
        `?state=failed&cursor=${Buffer.from('[1,2]').toString('base64url')}`,
        /cursor is not one this API gave/,
      ],
      ['?state=failed&endpoint=no%20such', /endpoint must be "callback" or a subscription's name/],
    ];
    for (const [query, detail] of bad) {
      const answer = await get(query);
      assert.equal(answer.status, 400, query);
      assert.equal(answer.type, 'application/problem+json', query);
      assert.equal(answer.body.code, 'bad-request', query);
      assert.match(answer.body.detail, detail, query);
    }
    const post = await fetch(`http://127.0.0.1:${gw.adminPort}/api/webhooks/deliveries?state=failed`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET');
    await jsonOf(post);
  });

  it('the admin API answers problems that say what to fix', async (t) => {
    const upstream = await upstreamFor(t);
    await using gw: TestGateway = await startGateway({
      upstream: upstream.url,
      webhooks: webhooksFor({ subscriptions: [{ name: 'ledger', url: 'http://127.0.0.1:9/ledger' }] }),
    });
    const unknown = newOperationId();
    const cases: Array<[string, string, number, string, RegExp]> = [
      ['POST', resendPath(unknown, 'ledger', 3), 404, 'webhook-delivery-not-found', /No delivery msg_op_/],
      [
        'POST',
        resendPath(unknown, 'nobody', 3),
        409,
        'webhook-delivery-not-resendable',
        /does not deliver to the endpoint "nobody"/,
      ],
      [
        'POST',
        resendPath(unknown, 'callback', 3),
        409,
        'webhook-delivery-not-resendable',
        /does not deliver to the endpoint "callback"/,
      ],
      [
        'POST',
        `/api/operations/${unknown}/deliveries/ledger/0/resend`,
        400,
        'bad-request',
        /seq must be a positive integer/,
      ],
      ['POST', `/api/operations/${unknown}/deliveries/ledger/x/resend`, 400, 'bad-request', /got "x"/],
      [
        'POST',
        `/api/operations/%E0%A4%A/deliveries/ledger/3/resend`,
        400,
        'bad-request',
        /not percent-encoded/,
      ],
      ['GET', resendPath(unknown, 'ledger', 3), 405, 'method-not-allowed', /use POST/],
      [
        'POST',
        '/api/webhooks/endpoints/ledger/enable',
        404,
        'webhook-endpoint-not-disabled',
        /No endpoint named "ledger" is disabled/,
      ],
      ['PUT', '/api/webhooks/endpoints/ledger/enable', 405, 'method-not-allowed', /use POST/],
      ['POST', '/api/webhooks/endpoints/disabled', 405, 'method-not-allowed', /use GET/],
    ];
    for (const [method, path, status, code, detail] of cases) {
      const answer = await admin(gw.adminPort, method, path);
      assert.equal(answer.status, status, `${method} ${path}`);
      assert.equal(answer.type, 'application/problem+json', `${method} ${path}`);
      assert.equal(answer.body.code, code, `${method} ${path}`);
      assert.match(answer.body.detail, detail, `${method} ${path}`);
      if (status === 405) assert.ok(answer.allow, `${method} ${path}: Allow`);
    }
  });
});

const skip = await skipWithoutPostgres('the webhook operator actions on a spillway worker');

describe('webhook operator actions on PostgreSQL', { skip }, () => {
  const db = freshSchema('spillway_webhook_ops');
  after(() => db.drop());

  it("a spillway worker's admin port serves them too, for every process on the store", async (t) => {
    await using rx = await new WebhookReceiver().start();
    rx.answer = (_req, n) => (n === 1 ? { status: 410 } : { status: 204 });
    const upstream = await upstreamFor(t);
    const webhooks = webhooksFor({ subscriptions: [{ name: 'ledger', url: `${rx.origin}/ledger` }] });
    await using gw = await startGateway({ upstream: upstream.url, store: db.url, webhooks });
    const id = await postAsync(gw.publicUrl);
    const { seq } = await deliveryWhen(gw.store, id, 'ledger', (d) => d.state === 'disabled');

    await using worker = await startWorkerProcess(
      buildConfig({
        upstream: upstream.url,
        store: db.url,
        adminPort: 0,
        publicUrl: gw.publicUrl,
        shutdownGraceMs: 2_000,
        webhooks,
      }),
      { logger: createLogger('silent') },
    );
    const listed = await admin(worker.adminPort, 'GET', '/api/webhooks/endpoints/disabled');
    assert.deepEqual(
      listed.body.endpoints.map((e: Record<string, string>) => e.name),
      ['ledger'],
      "the gateway's 410, seen from the worker",
    );
    const disabled = await admin(worker.adminPort, 'GET', '/api/webhooks/deliveries?state=disabled');
    assert.deepEqual(
      disabled.body.deliveries.map((d: Record<string, unknown>) => [d.operationId, d.endpoint, d.seq]),
      [[id, 'ledger', seq]],
      "the gateway's disabled delivery, listed by the worker",
    );
    assert.equal(
      (await admin(worker.adminPort, 'POST', '/api/webhooks/endpoints/ledger/enable')).status,
      200,
    );
    const resent = await admin(worker.adminPort, 'POST', resendPath(id, 'ledger', seq));
    assert.equal(resent.status, 200, JSON.stringify(resent.body));
    await rx.waitFor(2);
    const [gone, delivered] = withId(rx, `msg_${id}_${seq}_ledger`);
    assert.ok(gone && delivered);
    assert.ok(verified(delivered));
    await deliveryWhen(gw.store, id, 'ledger', (d) => d.state === 'delivered');
  });
});
