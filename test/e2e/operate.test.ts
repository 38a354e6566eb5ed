/**
 * Issue 12's "done when", end to end: the upstream is down, requests are
 * captured, a route with maxAttempts 2 dead-letters one, `spillway ops list
 * --dead-lettered` (the real bin, in a child process, with the admin token
 * from its environment) shows it, the upstream comes back, `spillway ops
 * redrive` sends it back and it ends Succeeded. Each step's log line is
 * asserted, each step's lifecycle event, each step's span (all in the
 * client's trace), and the metrics each step moves, scraped with the token.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { LifecycleEvents } from '../../src/events/lifecycle.ts';
import { spillway } from '../support/cli.ts';
import { eventOf, recordEvents } from '../support/events.ts';
import { operationIdOf, startGateway } from '../support/harness.ts';
import { capturedLogger } from '../support/log-lines.ts';
import { sample } from '../support/prometheus.ts';
import { TestUpstream } from '../support/test-upstream.ts';
import { recordSpans } from '../support/tracing.ts';

const recorded = recordSpans();

const TOKEN = randomUUID();
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';

describe('operating Spillway: a dead letter found and redriven from the command line', () => {
  it('upstream down → captured → dead-lettered → ops list --dead-lettered → upstream up → ops redrive → Succeeded', async () => {
    const upstream = await new TestUpstream().start();
    await upstream.stop(); // down: connections refused
    const { logger, lines } = capturedLogger('info');
    const events = new LifecycleEvents();
    const seen = recordEvents(events);
    await using gw = await startGateway(
      {
        upstream: upstream.url,
        adminToken: TOKEN,
        routes: [{ name: 'payments', match: 'POST /payments', maxAttempts: 2, health: { minCalls: 1_000 } }],
      },
      undefined,
      { logger, events },
    );
    const env = { SPILLWAY_ADMIN_URL: `http://127.0.0.1:${gw.adminPort}`, SPILLWAY_ADMIN_TOKEN: TOKEN };

    // Captures: the sync attempt cannot reach the upstream.
    const res = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${TRACE_ID}-b7ad6b7169203331-01` },
      body: JSON.stringify({ amount: 42 }),
    });
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    const captured = await eventOf(events, seen, 'operation:captured', (e) => e.operationId === id);
    assert.equal(captured.reason, 'upstream-unreachable');
    const dead = await eventOf(events, seen, 'operation:dead-lettered', (e) => e.operationId === id);
    assert.equal(dead.errorCode, 'attempts-exhausted');
    const lineOf = (event: string) => lines.find((l) => l.event === event && l.operationId === id);
    assert.deepEqual(pick(lineOf('operation:captured'), ['level', 'route', 'attempt', 'traceId']), {
      level: 'info',
      route: 'payments',
      attempt: 1,
      traceId: TRACE_ID,
    });
    assert.deepEqual(pick(lineOf('operation:dead-lettered'), ['level', 'route', 'attempt', 'traceId']), {
      level: 'warn',
      route: 'payments',
      attempt: 2,
      traceId: TRACE_ID,
    });

    // Metrics (the store-derived gauges are cached for a second: read until they show, with a deadline).
    const scrapeUntil = async (done: (text: string) => boolean) => {
      for (const until = Date.now() + 10_000; ; ) {
        const res = await fetch(`${env.SPILLWAY_ADMIN_URL}/metrics`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        assert.equal(res.status, 200);
        const text = await res.text();
        if (done(text)) return text;
        assert.ok(Date.now() < until, `the metrics did not show in time:\n${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const deadGauge = 'spillway_dead_lettered_operations{route="payments"}';
    const down = await scrapeUntil((text) => sample(text, deadGauge) === 1);
    assert.equal(
      sample(down, 'spillway_operations_captured_total{route="payments",reason="upstream-unreachable"}'),
      1,
    );
    assert.equal(sample(down, 'spillway_replay_attempts_total{route="payments",outcome="dead-lettered"}'), 1);
    assert.equal(sample(down, 'spillway_backlog_operations{route="payments"}'), 0);
    assert.equal((await fetch(`${env.SPILLWAY_ADMIN_URL}/metrics`)).status, 401, '/metrics needs the token');

    // The operator finds it.
    const listed = await spillway(['ops', 'list', '--dead-lettered'], env);
    assert.equal(listed.code, 0, listed.stderr);
    const row = listed.stdout.split('\n').find((line) => line.startsWith(id));
    assert.ok(row, `ops list shows ${id}:\n${listed.stdout}`);
    assert.match(row, /payments\s+Failed\s+2\s+yes/);
    assert.match(row, /attempts-exhausted/);
    const shown = await spillway(['ops', 'show', id], env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /went async\s+upstream unreachable/);
    assert.match(shown.stdout, /Redrive it with: spillway ops redrive/);
    const unauthorized = await spillway(['ops', 'list', '--dead-lettered'], {
      ...env,
      SPILLWAY_ADMIN_TOKEN: '',
    });
    assert.equal(unauthorized.code, 1);
    assert.match(unauthorized.stderr, /needs a token: set SPILLWAY_ADMIN_TOKEN/);

    // The upstream is back; the operator redrives.
    await upstream.start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: '{"paid":true}' });
    const redriven = await spillway(['ops', 'redrive', id], env);
    assert.equal(redriven.code, 0, redriven.stderr);
    assert.match(redriven.stdout, new RegExp(`Redriven ${id}`));
    const succeeded = await eventOf(events, seen, 'operation:succeeded', (e) => e.operationId === id);
    assert.equal(succeeded.upstreamStatus, 201);
    assert.equal((await gw.settled(id)).status, 'Succeeded');
    assert.deepEqual(pick(lineOf('operation:redriven'), ['level', 'route', 'traceId', 'by']), {
      level: 'info',
      route: 'payments',
      traceId: TRACE_ID,
      by: 'operator',
    });
    const attempts = lines.filter((l) => l.event === 'attempt:finished' && l.operationId === id);
    assert.deepEqual(
      attempts.map((l) => [l.attempt, l.outcome]),
      [
        [2, 'dead-lettered'],
        [3, 'succeeded'],
      ],
    );
    const mine = seen.filter((e) => 'operationId' in e && e.operationId === id).map((e) => e.type);
    assert.deepEqual(mine, [
      'operation:captured',
      'attempt:started',
      'attempt:finished',
      'operation:dead-lettered',
      'operation:redriven',
      'attempt:started',
      'attempt:finished',
      'operation:succeeded',
    ]);

    const up = await scrapeUntil((text) => sample(text, deadGauge) === 0);
    assert.equal(sample(up, 'spillway_replay_attempts_total{route="payments",outcome="succeeded"}'), 1);
    assert.equal(sample(up, 'spillway_replay_attempts_total{route="payments",outcome="dead-lettered"}'), 1);
    assert.equal(sample(up, 'spillway_backlog_operations{route="payments"}'), 0);

    // Spans: the request, its sync attempt and capture, each replay, and the redrive, in the client's trace.
    const inTrace = (name: string) =>
      recorded.spans().filter((s) => s.name === name && s.spanContext().traceId === TRACE_ID);
    const [server] = inTrace('POST payments');
    const [sync] = inTrace('sync payments');
    const [capture] = inTrace('capture payments');
    const [redriveSpan] = inTrace('redriven payments');
    await recorded.ended('replay payments', (s) => s.attributes['spillway.outcome'] === 'succeeded');
    const replays = inTrace('replay payments');
    assert.ok(
      server && sync && capture && redriveSpan,
      recorded
        .spans()
        .map((s) => s.name)
        .join(', '),
    );
    assert.equal(sync.attributes['error.type'], 'upstream-unreachable');
    assert.equal(capture.attributes['messaging.message.id'], id);
    assert.deepEqual(
      replays.map((s) => s.attributes['spillway.outcome']),
      ['dead-lettered', 'succeeded'],
    );
    assert.equal(redriveSpan.attributes['messaging.message.id'], id);
    assert.equal(redriveSpan.attributes['spillway.by'], 'operator');
    assert.equal(
      redriveSpan.parentSpanContext?.spanId,
      capture.spanContext().spanId,
      "a child of the capture's span",
    );

    const after = await spillway(['ops', 'list', '--dead-lettered'], env);
    assert.equal(after.stdout.trim(), 'No operation matches.');
    const history = await spillway(['ops', 'show', id, '--json'], env);
    const detail = JSON.parse(history.stdout) as {
      status: string;
      attemptHistory: Array<{ outcome: string }>;
    };
    assert.equal(detail.status, 'Succeeded');
    assert.deepEqual(
      detail.attemptHistory.map((a) => a.outcome),
      ['retry', 'failed', 'succeeded'],
    );
    await upstream.stop();
  });
});

function pick(line: Record<string, unknown> | undefined, keys: string[]): Record<string, unknown> {
  assert.ok(line, 'the log line exists');
  return Object.fromEntries(keys.map((k) => [k, line[k]]));
}
