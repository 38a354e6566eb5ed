/**
 * Traces through the queue, with an in-memory SDK: the client's request, its
 * sync attempt, its capture, every replay attempt and the webhook delivery are
 * spans of one trace (the client's, or one Spillway starts), each the parent
 * of what it sends, across a restart on the same store.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { newWebhookSecret } from '../../src/delivery/webhooks/signing.ts';
import { operationIdOf, startGateway, tempDir } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';
import { parentIdOf, recordSpans } from '../support/tracing.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

const recorded = recordSpans();
const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

describe('traces through the queue', () => {
  it("one trace, the client's: request, sync attempt, capture, each replay attempt, the webhook", async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    let calls = 0;
    // Refused twice (the sync attempt and the first replay), then paid.
    upstream.behaviour = () =>
      ++calls <= 2 ? { kind: 'respond', status: 503 } : { kind: 'respond', status: 201, body: '{}' };
    await using receiver = await new WebhookReceiver().start();
    await using gw = await startGateway({
      upstream: upstream.url,
      routeDefaults: { health: { minCalls: 1_000 } },
      webhooks: {
        secrets: [newWebhookSecret()],
        callbackAllow: [receiver.origin],
        allowPrivateNetworks: true,
      },
    });
    const res = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: {
        traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`,
        tracestate: 'vendor=abc',
        'spillway-callback': `${receiver.origin}/hook`,
      },
      body: '{}',
    });
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    assert.equal((await gw.settled(id)).status, 'Succeeded');
    await receiver.waitFor(1);

    const server = await recorded.ended('POST default', (s) => s.spanContext().traceId === CLIENT_TRACE);
    const sync = recorded.named('sync default');
    const capture = recorded.named('capture default');
    const webhook = await recorded.ended('webhook callback');
    const replays = recorded
      .spans()
      .filter((s) => s.name === 'replay default' && s.attributes['messaging.message.id'] === id);
    assert.equal(replays.length, 2, 'one span per replay attempt');
    for (const span of [server, sync, capture, webhook, ...replays]) {
      assert.equal(span.spanContext().traceId, CLIENT_TRACE, `${span.name} is in the client's trace`);
    }
    // Parents: the client → the request → its sync attempt and its capture → each replay and the webhook.
    assert.equal(server.kind, SpanKind.SERVER);
    assert.equal(server.parentSpanContext?.spanId, CLIENT_SPAN);
    assert.equal(server.attributes['http.response.status_code'], 202);
    assert.equal(sync.kind, SpanKind.CLIENT);
    assert.equal(sync.parentSpanContext?.spanId, server.spanContext().spanId);
    assert.equal(sync.status.code, SpanStatusCode.ERROR);
    assert.equal(sync.attributes['error.type'], 'upstream-status');
    assert.equal(capture.kind, SpanKind.PRODUCER);
    assert.equal(capture.parentSpanContext?.spanId, server.spanContext().spanId);
    assert.equal(capture.attributes['messaging.message.id'], id);
    const stored = await gw.store.get(id);
    assert.equal(parentIdOf(stored?.traceparent ?? undefined), capture.spanContext().spanId);
    assert.equal(stored?.tracestate, 'vendor=abc');
    for (const replay of replays) {
      assert.equal(replay.kind, SpanKind.CONSUMER);
      assert.equal(replay.parentSpanContext?.spanId, capture.spanContext().spanId);
      assert.equal(replay.links[0]?.context.spanId, capture.spanContext().spanId, 'linked to the capture');
    }
    const [first, second] = replays.sort(
      (a, b) => Number(a.attributes['spillway.attempt']) - Number(b.attributes['spillway.attempt']),
    );
    assert.deepEqual(
      [first?.attributes['spillway.attempt'], first?.attributes['spillway.outcome'], first?.status.code],
      [2, 'retry', SpanStatusCode.ERROR],
    );
    assert.deepEqual(
      [second?.attributes['spillway.attempt'], second?.attributes['spillway.outcome']],
      [3, 'succeeded'],
    );
    assert.equal(second?.attributes['http.response.status_code'], 201);
    assert.equal(webhook.kind, SpanKind.CLIENT);
    assert.equal(webhook.parentSpanContext?.spanId, capture.spanContext().spanId);
    assert.equal(webhook.attributes['http.response.status_code'], 204);

    // What each hop received names the span that sent it as its parent.
    const [syncReceived, replay1, replay2] = upstream.received;
    assert.equal(parentIdOf(syncReceived?.headers.traceparent), sync.spanContext().spanId);
    assert.equal(parentIdOf(replay1?.headers.traceparent), first?.spanContext().spanId);
    assert.equal(parentIdOf(replay2?.headers.traceparent), second?.spanContext().spanId);
    assert.equal(replay2?.headers.tracestate, 'vendor=abc');
    assert.equal(parentIdOf(receiver.received[0]?.headers.traceparent), webhook.spanContext().spanId);
  });

  it('a client without a traceparent: Spillway starts the trace, and the replay joins it', async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    await using gw = await startGateway({ upstream: upstream.url });
    const res = await fetch(`${gw.publicUrl}/orders`, {
      method: 'POST',
      headers: { prefer: 'respond-async, wait=0' },
      body: '{}',
    });
    const id = operationIdOf(res);
    await gw.settled(id);
    const replay = await recorded.ended('replay default', (s) => s.attributes['messaging.message.id'] === id);
    const capture = recorded
      .spans()
      .find((s) => s.name === 'capture default' && s.attributes['messaging.message.id'] === id);
    assert.ok(capture);
    const server = recorded
      .spans()
      .find((s) => s.name === 'POST default' && s.spanContext().spanId === capture.parentSpanContext?.spanId);
    assert.ok(server, 'the capture is a child of the request span');
    assert.equal(server.parentSpanContext, undefined, 'the request span is the root');
    assert.equal(replay.spanContext().traceId, server.spanContext().traceId);
    assert.equal(replay.parentSpanContext?.spanId, capture.spanContext().spanId);
  });

  it('across a restart: a gateway started on the same store replays in the trace the first one stored', async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    const dir = tempDir();
    try {
      const capturing = await startGateway({ upstream: upstream.url, replay: { concurrency: 0 } }, dir);
      const res = await fetch(`${capturing.publicUrl}/orders`, {
        method: 'POST',
        headers: { prefer: 'respond-async, wait=0', traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` },
        body: '{}',
      });
      const id = operationIdOf(res);
      await capturing.stop();
      const capture = recorded
        .spans()
        .find((s) => s.name === 'capture default' && s.attributes['messaging.message.id'] === id);
      assert.ok(capture);
      recorded.exporter.reset();

      await using replaying = await startGateway({ upstream: upstream.url }, dir);
      await replaying.settled(id);
      const replay = await recorded.ended(
        'replay default',
        (s) => s.attributes['messaging.message.id'] === id,
      );
      assert.equal(replay.spanContext().traceId, CLIENT_TRACE);
      assert.equal(replay.parentSpanContext?.spanId, capture.spanContext().spanId);
      assert.equal(parentIdOf(upstream.received.at(-1)?.headers.traceparent), replay.spanContext().spanId);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
