import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { ManualClock } from '../../../test/support/manual-clock.ts';
import { CallbackGuard } from './callback-guard.ts';
import { USER_AGENT, WebhookSender } from './sender.ts';
import { newWebhookSecret, parseWebhookSecret } from './signing.ts';

async function receiver(handle: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void) {
  const received: Array<{ headers: IncomingMessage['headers']; body: Buffer }> = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    received.push({ headers: req.headers, body });
    handle(req, res, body);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    received,
    [Symbol.asyncDispose]: async () => {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    },
  };
}

const secretText = newWebhookSecret();
const secrets = [parseWebhookSecret(secretText)];
const message = (body = '{"specversion":"1.0"}') => ({
  webhookId: 'msg_op_x_3_callback',
  body: new TextEncoder().encode(body),
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  tracestate: null,
});

describe('WebhookSender', () => {
  it('posts the exact bytes with Standard Webhooks headers, and keeps a snippet of the answer', async (t) => {
    await using rx = await receiver((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('x'.repeat(5_000));
    });
    const clock = new ManualClock(Date.now());
    const guard = new CallbackGuard({ allowOrigins: new Set([rx.origin]), allowPrivateNetworks: true });
    t.after(() => guard.close());
    const sender = new WebhookSender(clock);
    const { outcome, report } = await sender.send({
      guard,
      url: `${rx.origin}/hooks?a=1`,
      message: message(),
      secrets,
      timeoutMs: 15_000,
    });
    assert.deepEqual(outcome, { kind: 'response', status: 200 });
    assert.equal(report.status, 200);
    assert.equal(report.error, null);
    assert.equal(report.responseSnippet, 'x'.repeat(1_024));
    const [got] = rx.received;
    assert.equal(got?.body.toString(), '{"specversion":"1.0"}');
    assert.equal(got?.headers['content-type'], 'application/cloudevents+json; charset=utf-8');
    assert.equal(got?.headers['user-agent'], USER_AGENT);
    assert.match(USER_AGENT, /^Spillway\/\d+\.\d+\.\d+/);
    assert.equal(got?.headers.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(got?.headers['webhook-timestamp'], String(Math.floor(clock.now() / 1000)));
    const payload = new Webhook(secretText).verify(got!.body, got!.headers as Record<string, string>);
    assert.deepEqual(payload, { specversion: '1.0' });
  });

  it('reads Retry-After, and never follows a redirect', async (t) => {
    let targetHits = 0;
    await using target = await receiver((_req, res) => {
      targetHits++;
      res.end('moved here');
    });
    await using rx = await receiver((_req, res) => {
      res.writeHead(307, { location: `${target.origin}/`, 'retry-after': '120' });
      res.end();
    });
    const guard = new CallbackGuard({
      allowOrigins: new Set([rx.origin, target.origin]),
      allowPrivateNetworks: true,
    });
    t.after(() => guard.close());
    const { outcome } = await new WebhookSender(new ManualClock()).send({
      guard,
      url: `${rx.origin}/`,
      message: message(),
      secrets,
      timeoutMs: 15_000,
    });
    assert.deepEqual(outcome, { kind: 'response', status: 307, retryAfterMs: 120_000 });
    assert.equal(targetHits, 0);
  });

  it('aborts an attempt at its time limit on the injected clock', async (t) => {
    await using rx = await receiver(() => {}); // never answers
    const clock = new ManualClock();
    const guard = new CallbackGuard({ allowOrigins: new Set([rx.origin]), allowPrivateNetworks: true });
    t.after(() => guard.close());
    const sending = new WebhookSender(clock).send({
      guard,
      url: `${rx.origin}/`,
      message: message(),
      secrets,
      timeoutMs: 15_000,
    });
    while (rx.received.length === 0) await new Promise((r) => setTimeout(r, 5));
    clock.advance(14_999);
    await new Promise((r) => setTimeout(r, 20));
    clock.advance(1);
    const { outcome, report } = await sending;
    assert.deepEqual(outcome, {
      kind: 'error',
      message: 'No answer within 15000 ms.',
      timedOut: true,
      permanent: false,
    });
    assert.equal(report.latencyMs, 15_000);
    assert.equal(report.status, null);
  });

  it('refuses a URL the guard refuses without connecting; permanent only when off the allow-list', async (t) => {
    await using rx = await receiver((_req, res) => res.end());
    const strict = new CallbackGuard({ allowOrigins: new Set([rx.origin]), allowPrivateNetworks: false });
    t.after(() => strict.close());
    const sender = new WebhookSender(new ManualClock());
    const loopback = await sender.send({
      guard: strict,
      url: `${rx.origin}/`,
      message: message(),
      secrets,
      timeoutMs: 1_000,
    });
    assert.equal(loopback.outcome.kind, 'error');
    assert.match(loopback.report.error!, /loopback address/);
    assert.equal((loopback.outcome as { permanent?: boolean }).permanent, false);
    const off = await sender.send({
      guard: strict,
      url: 'http://127.0.0.2:1/',
      message: message(),
      secrets,
      timeoutMs: 1_000,
    });
    assert.equal((off.outcome as { permanent?: boolean }).permanent, true);
    assert.equal(rx.received.length, 0);
  });
});
