import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildConfig } from '../config/config.ts';
import { type AttemptContext, decideAfterAttempt, decideBeforeAttempt } from './attempt-decision.ts';

const route = (overrides: Record<string, unknown> = {}) =>
  buildConfig({
    upstream: 'http://127.0.0.1:1',
    routeDefaults: { maxAttempts: 3, maxAgeMs: 60_000, ...overrides },
  }).routes[0]!;
const now = 1_000_000;
const ctx = (over: Partial<AttemptContext> = {}): AttemptContext => ({
  route: route(),
  method: 'POST',
  attempts: 1,
  createdAt: now,
  now,
  random: () => 0.5,
  ...over,
});
const response = (status: number) => ({
  kind: 'response' as const,
  response: { status, headers: [], body: new Uint8Array() },
});

describe('decideAfterAttempt', () => {
  it('completes on 2xx and 3xx', () => {
    assert.equal(decideAfterAttempt(response(201), ctx()).kind, 'complete');
    assert.equal(decideAfterAttempt(response(304), ctx()).kind, 'complete');
  });

  it('retries a failover status with backoff, or at the upstream Retry-After', () => {
    const backoff = decideAfterAttempt(response(503), ctx());
    assert.deepEqual(backoff.kind === 'retry' && backoff.nextAttemptAt, now + 500); // 0.5 · 1000 · 2^0
    const told = decideAfterAttempt({ ...response(429), retryAfterMs: 7_000 }, ctx());
    assert.deepEqual(told.kind === 'retry' && told.nextAttemptAt, now + 7_000);
  });

  it('keeps a 4xx as the final answer, not dead-lettered', () => {
    const d = decideAfterAttempt(response(422), ctx());
    assert.equal(d.kind, 'fail');
    assert.equal(d.kind === 'fail' && d.deadLetter, false);
    assert.equal(d.kind === 'fail' && d.result?.status, 422);
  });

  it('retries a 500 only when resending is safe', () => {
    assert.equal(decideAfterAttempt(response(500), ctx()).kind, 'fail');
    assert.equal(decideAfterAttempt(response(500), ctx({ method: 'PUT' })).kind, 'retry');
    assert.equal(
      decideAfterAttempt(response(500), ctx({ route: route({ honoursIdempotencyKey: true }) })).kind,
      'retry',
    );
  });

  it('retries a request that never left, whatever the method', () => {
    assert.equal(decideAfterAttempt({ kind: 'not-sent', message: 'ECONNREFUSED' }, ctx()).kind, 'retry');
  });

  it('dead-letters an unknown outcome of a POST as outcome-unknown, retries it when safe', () => {
    const d = decideAfterAttempt({ kind: 'unknown', message: 'reset' }, ctx());
    assert.equal(d.kind === 'fail' && d.error.code, 'outcome-unknown');
    assert.equal(d.kind === 'fail' && d.deadLetter, true);
    const safe = decideAfterAttempt({ kind: 'unknown', message: 'reset' }, ctx({ method: 'DELETE' }));
    assert.equal(safe.kind === 'retry' && safe.outcomeUnknown, true);
  });

  it('tells, in an outcome-unknown message, what the client and the operator can do', () => {
    const d = decideAfterAttempt({ kind: 'unknown', message: 'reset' }, ctx());
    const message = d.kind === 'fail' ? d.error.message : '';
    // A client reads this too: it cannot redrive or discard, but it can ask and send again.
    assert.match(
      message,
      /Ask the upstream whether it took effect; only if it did not, send the request again/,
    );
    assert.match(message, /an operator can also redrive it on the admin port/);
  });

  it('dead-letters when maxAttempts is reached, keeping the last error', () => {
    const d = decideAfterAttempt(response(503), ctx({ attempts: 3 }));
    assert.equal(d.kind === 'fail' && d.error.code, 'attempts-exhausted');
    assert.equal(d.kind === 'fail' && d.error.upstreamStatus, 503);
    assert.match(d.kind === 'fail' ? d.error.message : '', /503/);
  });

  it('schedules no attempt past maxAgeMs: the last one happens at the boundary, then it is dead-lettered', () => {
    const late = decideAfterAttempt({ ...response(503), retryAfterMs: 600_000 }, ctx());
    assert.equal(late.kind === 'retry' && late.nextAttemptAt, now + 60_000);
    const d = decideAfterAttempt(response(503), ctx({ now: now + 60_000 }));
    assert.equal(d.kind === 'fail' && d.error.code, 'max-age-exceeded');
    assert.equal(d.kind === 'fail' && d.error.upstreamStatus, 503);
  });

  it('dead-letters an oversized result', () => {
    const d = decideAfterAttempt({ kind: 'too-large', status: 200, limit: 10 }, ctx());
    assert.equal(d.kind === 'fail' && d.error.code, 'result-too-large');
  });
});

describe('decideBeforeAttempt', () => {
  it('refuses to resend an unsafe request whose earlier outcome is unknown', () => {
    const d = decideBeforeAttempt({ method: 'POST', outcomeUnknown: true, createdAt: now }, route(), now);
    assert.equal(d?.kind === 'fail' && d.error.code, 'outcome-unknown');
    assert.equal(
      decideBeforeAttempt({ method: 'PUT', outcomeUnknown: true, createdAt: now }, route(), now),
      undefined,
    );
    assert.equal(
      decideBeforeAttempt({ method: 'POST', outcomeUnknown: false, createdAt: now }, route(), now),
      undefined,
    );
  });

  it('refuses an operation older than maxAgeMs', () => {
    const d = decideBeforeAttempt(
      { method: 'GET', outcomeUnknown: false, createdAt: now - 60_001 },
      route(),
      now,
    );
    assert.equal(d?.kind === 'fail' && d.error.code, 'max-age-exceeded');
  });
});
