import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideAfterDelivery, defaultSchedule, STANDARD_DELAYS_MS, scheduledDelay } from './schedule.ts';

const respond = (status: number, retryAfterMs?: number) =>
  ({ kind: 'response', status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }) as const;

describe('webhook schedule', () => {
  it('follows Standard Webhooks: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, ten attempts', () => {
    assert.deepEqual(
      STANDARD_DELAYS_MS.map((ms) => ms / 1000),
      [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
    );
    assert.equal(defaultSchedule.maxAttempts, 10);
    const mid = () => 0.5; // no jitter
    assert.deepEqual(
      Array.from({ length: 9 }, (_, i) => scheduledDelay(defaultSchedule, i + 1, mid)),
      STANDARD_DELAYS_MS,
    );
    assert.equal(scheduledDelay(defaultSchedule, 40, mid), 86_400_000, 'the last delay repeats');
  });

  it('spreads each delay by ±jitter', () => {
    const schedule = { delaysMs: [10_000], jitter: 0.2, maxAttempts: 5 };
    assert.equal(
      scheduledDelay(schedule, 1, () => 0),
      8_000,
    );
    assert.equal(
      scheduledDelay(schedule, 1, () => 0.999999),
      12_000,
    );
    const none = { ...schedule, jitter: 0 };
    assert.equal(scheduledDelay(none, 1, Math.random), 10_000);
  });

  it('2xx is delivered; 410 disables; 3xx, 4xx, 5xx and errors are retried', () => {
    for (const status of [200, 201, 202, 204, 299]) {
      assert.deepEqual(decideAfterDelivery(respond(status), 1, defaultSchedule), { kind: 'delivered' });
    }
    assert.equal(decideAfterDelivery(respond(410), 1, defaultSchedule).kind, 'disabled');
    for (const status of [301, 302, 307, 308, 400, 404, 415, 429, 500, 502, 503, 504]) {
      const decision = decideAfterDelivery(respond(status), 1, defaultSchedule, () => 0.5);
      assert.equal(decision.kind, 'retry', String(status));
      assert.equal((decision as { delayMs: number }).delayMs, 5_000);
    }
    assert.match(
      (decideAfterDelivery(respond(302), 1, defaultSchedule) as { reason: string }).reason,
      /redirects are not followed/,
    );
    assert.match(
      (decideAfterDelivery(respond(429), 1, defaultSchedule) as { reason: string }).reason,
      /throttled/,
    );
    const timeout = { kind: 'error', message: 'No answer within 15000 ms.', timedOut: true } as const;
    assert.equal(decideAfterDelivery(timeout, 1, defaultSchedule).kind, 'retry');
  });

  it('Retry-After is a floor under the schedule, capped at its longest delay', () => {
    const retry = (ms: number, attempts = 1) =>
      (decideAfterDelivery(respond(503, ms), attempts, defaultSchedule, () => 0.5) as { delayMs: number })
        .delayMs;
    assert.equal(retry(120_000), 120_000, 'later than the 5 s step');
    assert.equal(retry(1_000), 5_000, 'sooner than the step: the step wins');
    assert.equal(retry(1_000, 3), 1_800_000);
    assert.equal(retry(30 * 86_400_000), 86_400_000, 'capped');
    const throttled = decideAfterDelivery(respond(429, 60_000), 1, defaultSchedule, () => 0.5);
    assert.deepEqual(throttled, {
      kind: 'retry',
      delayMs: 60_000,
      reason: 'The receiver answered 429: throttled.',
    });
  });

  it('fails after maxAttempts, and at once on a permanent error', () => {
    const schedule = { delaysMs: [1_000], jitter: 0, maxAttempts: 3 };
    assert.equal(decideAfterDelivery(respond(500), 2, schedule).kind, 'retry');
    const last = decideAfterDelivery(respond(500), 3, schedule);
    assert.equal(last.kind, 'failed');
    assert.match((last as { reason: string }).reason, /Gave up after 3 attempts/);
    assert.equal(decideAfterDelivery(respond(200), 3, schedule).kind, 'delivered');
    const refused = { kind: 'error', message: 'off the list', timedOut: false, permanent: true } as const;
    assert.equal(decideAfterDelivery(refused, 1, schedule).kind, 'failed');
  });
});
