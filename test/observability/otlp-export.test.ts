/**
 * Traces end to end: real `spillway serve` processes export OTLP/HTTP JSON,
 * configured by the standard OTEL_* variables only, to a receiver this test
 * runs on loopback. One process captures and stops; another, started on the
 * same store, replays: its replay span is in the client's trace, a child of
 * the first process's capture span.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { it } from 'node:test';
import { type GatewayProcess, spawnGateway } from '../support/gateway-process.ts';
import { jsonOf, operationIdOf, tempDir } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';
import { parentIdOf } from '../support/tracing.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: { stringValue?: string; intValue?: string | number } }>;
}

/** A minimal OTLP/HTTP JSON trace receiver: POST /v1/traces, keeps every span. */
async function otlpReceiver() {
  const spans: OtlpSpan[] = [];
  const contentTypes = new Set<string>();
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
      res.writeHead(404).end();
      return;
    }
    contentTypes.add(String(req.headers['content-type']));
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
    };
    for (const resource of body.resourceSpans)
      for (const scope of resource.scopeSpans) spans.push(...scope.spans);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const find = async (match: (span: OtlpSpan) => boolean, what: string, ms = 15_000): Promise<OtlpSpan> => {
    const until = Date.now() + ms;
    for (;;) {
      const span = spans.find(match);
      if (span) return span;
      if (Date.now() > until) throw new Error(`no ${what} span exported within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return {
    url,
    spans,
    contentTypes,
    find,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes.find((a) => a.key === key)?.value;
  return value?.stringValue ?? (value?.intValue === undefined ? undefined : Number(value.intValue));
};

async function stop(gateway: GatewayProcess): Promise<number | null> {
  gateway.child.kill('SIGTERM');
  return gateway.exited;
}

it('spillway serve exports request, sync, capture and replay spans of one trace over OTLP/HTTP JSON, across processes', async () => {
  const receiver = await otlpReceiver();
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => ({ kind: 'respond', status: 503 });
  const dir = tempDir();
  const env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OTEL_SERVICE_NAME: 'spillway-test',
  };
  const config = {
    upstream: upstream.url,
    store: join(dir, 'spillway.db'),
    routeDefaults: { health: { minCalls: 1_000 }, backoff: { initialMs: 20, maxMs: 50 } },
  };
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  try {
    // The first process captures (it replays nothing), exports, and stops.
    const capturing = await spawnGateway(dir, { ...config, replay: { concurrency: 0 } }, env);
    const res = await fetch(`${capturing.url}/payments`, {
      method: 'POST',
      headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01`, 'content-type': 'application/json' },
      body: '{"amount":1}',
    });
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    const server = await receiver.find((s) => s.name === 'POST default' && s.traceId === traceId, 'request');
    assert.equal(server.parentSpanId, 'b7ad6b7169203331');
    const sync = await receiver.find((s) => s.name === 'sync default' && s.traceId === traceId, 'sync');
    assert.equal(sync.parentSpanId, server.spanId);
    const capture = await receiver.find((s) => s.name === 'capture default', 'capture');
    assert.deepEqual([capture.traceId, capture.parentSpanId], [traceId, server.spanId]);
    assert.equal(attribute(capture, 'messaging.message.id'), id);
    assert.equal(parentIdOf(upstream.received[0]?.headers.traceparent), sync.spanId);
    assert.equal(await stop(capturing), 0);

    // A second process on the same store replays it, in the same trace.
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: '{"paid":true}' });
    const replaying = await spawnGateway(dir, config, env);
    try {
      const replay = await receiver.find((s) => s.name === 'replay default', 'replay');
      assert.deepEqual([replay.traceId, replay.parentSpanId], [traceId, capture.spanId]);
      assert.equal(attribute(replay, 'messaging.message.id'), id);
      assert.equal(attribute(replay, 'spillway.attempt'), 2);
      assert.equal(parentIdOf(upstream.received.at(-1)?.headers.traceparent), replay.spanId);
      const monitor = await jsonOf(await fetch(`${replaying.url}/_spillway/operations/${id}`));
      assert.equal(monitor.status, 'Succeeded');
    } finally {
      assert.equal(await stop(replaying), 0);
    }
    assert.deepEqual([...receiver.contentTypes], ['application/json']);
  } finally {
    await upstream.stop();
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
