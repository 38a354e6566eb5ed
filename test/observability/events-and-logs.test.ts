/**
 * The lifecycle event stream and the log lines made from it, end to end over
 * loopback HTTP: a capture, replay attempts, a dead letter and a success each
 * become typed events and JSON log lines with operationId, route, attempt and
 * traceId, and nothing secret; a subscriber that throws breaks nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LifecycleEvents } from '../../src/events/lifecycle.ts';
import { eventOf, recordEvents } from '../support/events.ts';
import { operationIdOf, startGateway } from '../support/harness.ts';
import { capturedLogger } from '../support/log-lines.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
const SECRET = 'card-4111111111111111';
const CREDENTIAL = 'Bearer sk_live_do_not_log';

describe('lifecycle events and log lines', () => {
  it('upstream refusing: capture, a replay attempt, dead letter, each an event and a log line', async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    upstream.behaviour = () => ({ kind: 'respond', status: 503, body: 'busy' });
    const { logger, lines, raw } = capturedLogger('info');
    const events = new LifecycleEvents();
    const seen = recordEvents(events);
    await using gw = await startGateway(
      { upstream: upstream.url, routeDefaults: { maxAttempts: 2, health: { minCalls: 1_000 } } },
      undefined,
      { logger, events },
    );
    const res = await fetch(`${gw.publicUrl}/payments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: TRACEPARENT, authorization: CREDENTIAL },
      body: JSON.stringify({ card: SECRET }),
    });
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    const dead = await eventOf(events, seen, 'operation:dead-lettered', (e) => e.operationId === id);
    assert.equal(dead.errorCode, 'attempts-exhausted');
    assert.equal(dead.attempts, 2);

    const mine = seen.filter((e) => !('operationId' in e) || e.operationId === id).map((e) => e.type);
    assert.deepEqual(mine, [
      'sync:finished',
      'operation:captured',
      'attempt:started',
      'attempt:finished',
      'operation:dead-lettered',
    ]);
    const sync = await eventOf(events, seen, 'sync:finished');
    assert.equal(sync.outcome, 'refused');
    assert.equal(sync.upstreamStatus, 503);
    const captured = await eventOf(events, seen, 'operation:captured');
    assert.deepEqual(
      {
        reason: captured.reason,
        attempts: captured.attempts,
        traceId: captured.traceId,
        route: captured.route,
      },
      { reason: 'upstream-status', attempts: 1, traceId: TRACE_ID, route: 'default' },
    );
    const finished = await eventOf(events, seen, 'attempt:finished');
    assert.deepEqual(
      {
        attempt: finished.attempt,
        kind: finished.kind,
        outcome: finished.outcome,
        upstreamStatus: finished.upstreamStatus,
      },
      { attempt: 2, kind: 'replay', outcome: 'dead-lettered', upstreamStatus: 503 },
    );

    const line = (event: string) => lines.find((l) => l.event === event && l.operationId === id);
    const capture = line('operation:captured');
    assert.ok(capture, 'a capture line');
    assert.equal(capture.level, 'info');
    assert.equal(capture.msg, 'operation:captured');
    assert.match(capture.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(
      [capture.route, capture.attempt, capture.traceId, capture.reason],
      ['default', 1, TRACE_ID, 'upstream-status'],
    );
    const attempt = line('attempt:finished');
    assert.ok(attempt, 'an attempt line');
    assert.deepEqual(
      [attempt.level, attempt.attempt, attempt.outcome, attempt.traceId],
      ['info', 2, 'dead-lettered', TRACE_ID],
    );
    assert.equal(typeof attempt.durationMs, 'number');
    const deadLine = line('operation:dead-lettered');
    assert.ok(deadLine, 'a dead-letter line');
    assert.deepEqual([deadLine.level, deadLine.attempt, deadLine.route], ['warn', 2, 'default']);
    // Nothing secret: no body, no credential.
    const all = raw.join('\n');
    assert.ok(!all.includes(SECRET), 'no request body in the logs');
    assert.ok(!all.includes('sk_live'), 'no credential in the logs');
    assert.ok(!all.includes('busy'), 'no upstream body in the logs');
  });

  it('a replay that succeeds: attempt:finished succeeded and operation:succeeded', async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    const { logger, lines } = capturedLogger('info');
    const events = new LifecycleEvents();
    const seen = recordEvents(events);
    await using gw = await startGateway({ upstream: upstream.url }, undefined, { logger, events });
    const res = await fetch(`${gw.publicUrl}/orders`, {
      method: 'POST',
      headers: { prefer: 'respond-async, wait=0' },
      body: '{}',
    });
    const id = operationIdOf(res);
    const done = await eventOf(events, seen, 'operation:succeeded', (e) => e.operationId === id);
    assert.deepEqual([done.attempts, done.upstreamStatus], [1, 200]);
    const captured = await eventOf(events, seen, 'operation:captured', (e) => e.operationId === id);
    assert.equal(captured.reason, 'respond-async');
    assert.match(
      captured.traceId ?? '',
      /^[0-9a-f]{32}$/,
      'a trace Spillway started, as the client sent none',
    );
    const attempt = lines.find((l) => l.event === 'attempt:finished' && l.operationId === id);
    assert.ok(attempt);
    assert.deepEqual([attempt.outcome, attempt.attempt, attempt.upstreamStatus], ['succeeded', 1, 200]);
  });

  it("a client's cancel is an operation:canceled event and an info line", async () => {
    const { logger, lines } = capturedLogger('info');
    const events = new LifecycleEvents();
    const seen = recordEvents(events);
    // Capture only (no replay), so the operation is still NotStarted when it is canceled.
    await using gw = await startGateway(
      { upstream: 'http://127.0.0.1:9', replay: { concurrency: 0 } },
      undefined,
      { logger, events },
    );
    const res = await fetch(`${gw.publicUrl}/orders`, {
      method: 'POST',
      headers: { prefer: 'respond-async, wait=0', traceparent: TRACEPARENT },
      body: '{}',
    });
    const id = operationIdOf(res);
    const cancel = await fetch(`${gw.publicUrl}/_spillway/operations/${id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 200);
    const canceled = await eventOf(events, seen, 'operation:canceled', (e) => e.operationId === id);
    assert.deepEqual([canceled.by, canceled.traceId], ['client', TRACE_ID]);
    const line = lines.find((l) => l.msg === 'operation:canceled' && l.operationId === id);
    assert.equal(line?.level, 'info');
    // A second cancel changes nothing and tells nothing.
    await fetch(`${gw.publicUrl}/_spillway/operations/${id}/cancel`, { method: 'POST' });
    assert.equal(seen.filter((e) => e.type === 'operation:canceled').length, 1);
  });

  it('a subscriber that throws breaks neither the request nor the replay, and is reported in the log', async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    const { logger, lines } = capturedLogger('info');
    const events = new LifecycleEvents();
    const seen = recordEvents(events);
    events.on('operation:captured', () => {
      throw new Error('metrics backend exploded');
    });
    await using gw = await startGateway({ upstream: upstream.url }, undefined, { logger, events });
    const res = await fetch(`${gw.publicUrl}/orders`, {
      method: 'POST',
      headers: { prefer: 'respond-async, wait=0' },
      body: '{}',
    });
    assert.equal(res.status, 202);
    const id = operationIdOf(res);
    assert.equal((await gw.settled(id)).status, 'Succeeded');
    await eventOf(events, seen, 'subscriber:error');
    const report = lines.find((l) => l.event === 'subscriber:error');
    assert.ok(report, 'the failure is logged');
    assert.equal(report.level, 'error');
    assert.equal(report.eventType, 'operation:captured');
    assert.match(report.err.message, /metrics backend exploded/);
  });
});
