/**
 * Webhooks across instances: two `spillway serve` processes share one
 * PostgreSQL schema, each with its own replay workers and webhook dispatcher,
 * and each hears the other's commits (LISTEN/NOTIFY). A backlog of operations
 * with callbacks, captured through both gateways while the upstream is down,
 * completes in a burst once it is back; both dispatchers race for the
 * deliveries. Every operation's webhook must arrive exactly once (the
 * receiver answers 2xx at once, so there is no reason for a second attempt):
 * the store's SKIP LOCKED leasing and fenced writes are what keep two
 * processes from sending one delivery.
 *
 * Skipped with a message when PostgreSQL is unreachable; fails instead when
 * SPILLWAY_REQUIRE_POSTGRES=1 (CI). Every wait is bounded.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { newWebhookSecret } from '../../src/delivery/webhooks/signing.ts';
import { type GatewayProcess, spawnGateway } from '../support/gateway-process.ts';
import { jsonOf, tempDir } from '../support/harness.ts';
import { freshSchema, skipWithoutPostgres } from '../support/postgres.ts';
import { TestUpstream } from '../support/test-upstream.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

const skip = await skipWithoutPostgres('the webhooks exactly-once test');
const OPERATIONS = 80;

describe('webhooks: exactly once across gateways sharing one PostgreSQL schema', { skip }, () => {
  const db = freshSchema('spillway_webhooks_test');
  const dir = tempDir();
  after(async () => {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('each operation completed through two gateways fires its webhook exactly once', {
    timeout: 90_000,
  }, async () => {
    const secret = newWebhookSecret();
    await using rx = await new WebhookReceiver().start();
    rx.answer = () => ({ status: 200, body: 'thanks' });
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'ok' });
    await upstream.stop(); // down: everything is captured first
    const config = {
      upstream: upstream.url,
      store: db.url,
      replay: { concurrency: 8, pollIntervalMs: 50 },
      routeDefaults: { maxAttempts: 10_000, backoff: { initialMs: 20, maxMs: 200 } },
      webhooks: {
        secrets: [secret],
        callbackAllow: [rx.origin],
        allowPrivateNetworks: true,
        concurrency: 8,
        pollIntervalMs: 200,
      },
    };
    const gateways: GatewayProcess[] = [];
    try {
      gateways.push(...(await Promise.all([spawnGateway(dir, config), spawnGateway(dir, config)])));
      const ids: string[] = [];
      for (let i = 0; i < OPERATIONS; i++) {
        const res = await fetch(`${gateways[i % 2]!.url}/payments`, {
          method: 'POST',
          headers: { prefer: 'respond-async, wait=0', 'spillway-callback': `${rx.origin}/hooks/${i}` },
          body: JSON.stringify({ i }),
        });
        assert.equal(res.status, 202);
        ids.push((await jsonOf(res)).id as string);
      }
      assert.equal(rx.received.length, 0, 'nothing is terminal yet');
      await upstream.start(); // the backlog completes in a burst; both dispatchers race for the deliveries

      await rx.waitFor(OPERATIONS, 60_000);
      // Longer than both dispatchers' poll interval: a duplicate would have arrived by now.
      await new Promise((resolve) => setTimeout(resolve, 1_500));

      const byId = new Map<string, number>();
      for (const webhook of rx.received) {
        new Webhook(secret).verify(webhook.raw, WebhookReceiver.headersOf(webhook));
        const id = String(webhook.headers['webhook-id']);
        byId.set(id, (byId.get(id) ?? 0) + 1);
      }
      const twice = [...byId].filter(([, n]) => n > 1);
      assert.deepEqual(twice, [], 'a webhook was delivered more than once');
      assert.equal(rx.received.length, OPERATIONS);
      assert.deepEqual(
        [...byId.keys()].sort(),
        ids.map((id) => `msg_${id}_3_callback`).sort(),
        'one webhook per operation, for its terminal event',
      );
      const rows = await db.query<{ state: string; attempts: number; n: string }>(
        `SELECT state, attempts, count(*) AS n FROM ${db.schema}.webhook_deliveries GROUP BY state, attempts`,
      );
      assert.deepEqual(
        rows.map((r) => [r.state, Number(r.attempts), Number(r.n)]),
        [['delivered', 1, OPERATIONS]],
        'each delivered at its first attempt',
      );
    } finally {
      for (const gateway of gateways) {
        if (gateway.child.exitCode === null && gateway.child.signalCode === null)
          gateway.child.kill('SIGTERM');
      }
      await Promise.all(gateways.map((g) => g.exited));
      await upstream.stop();
    }
  });
});
