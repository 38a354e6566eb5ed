/**
 * Without an OpenTelemetry SDK (the default), trace context still flows
 * through the queue: the client's traceparent is stored and sent on replay
 * unchanged, and a request without one gets one Spillway starts (not
 * sampled), so its log lines and its replays share a trace id.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { LifecycleEvents } from '../../src/events/lifecycle.ts';
import { eventOf, recordEvents } from '../support/events.ts';
import { operationIdOf, startGateway } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

it("the client's traceparent and tracestate are stored and replayed as sent", async (t) => {
  const upstream = await new TestUpstream().start();
  t.after(() => upstream.stop());
  await using gw = await startGateway({ upstream: upstream.url });
  const res = await fetch(`${gw.publicUrl}/orders`, {
    method: 'POST',
    headers: { prefer: 'respond-async, wait=0', traceparent: TRACEPARENT, tracestate: 'a=1,b=2' },
    body: '{}',
  });
  const op = await gw.settled(operationIdOf(res));
  assert.equal(op.traceparent, TRACEPARENT);
  assert.equal(op.tracestate, 'a=1,b=2');
  assert.equal(upstream.received[0]?.headers.traceparent, TRACEPARENT);
  assert.equal(upstream.received[0]?.headers.tracestate, 'a=1,b=2');
});

it('without a traceparent, the capture starts a trace: stored, in the log events, sent on replay', async (t) => {
  const upstream = await new TestUpstream().start();
  t.after(() => upstream.stop());
  const events = new LifecycleEvents();
  const seen = recordEvents(events);
  await using gw = await startGateway({ upstream: upstream.url }, undefined, { events });
  const res = await fetch(`${gw.publicUrl}/orders`, {
    method: 'POST',
    headers: { prefer: 'respond-async, wait=0' },
    body: '{}',
  });
  const id = operationIdOf(res);
  const op = await gw.settled(id);
  const match = /^00-([0-9a-f]{32})-[0-9a-f]{16}-00$/.exec(op.traceparent ?? '');
  assert.ok(match, `a new, unsampled traceparent: ${op.traceparent}`);
  const captured = await eventOf(events, seen, 'operation:captured', (e) => e.operationId === id);
  assert.equal(captured.traceId, match[1]);
  assert.equal(upstream.received[0]?.headers.traceparent, op.traceparent);
});
