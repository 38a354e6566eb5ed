/**
 * Every trigger and every transition of RouteHealth, with time passed in by
 * hand: no sleeping, each test runs in milliseconds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { routeDefaults } from '../../config/config.ts';
import type { HealthPolicy } from './health-policy.ts';
import { type Admission, type HealthEvent, RouteHealth } from './route-health.ts';

const T0 = 1_000_000;
const policy = (over: Partial<HealthPolicy> = {}): HealthPolicy => ({
  ...routeDefaults.health,
  minCalls: 4,
  openJitter: 0,
  probeShare: 1,
  probeCalls: 3,
  minProbingMs: 100,
  rampMs: 1_000,
  ...over,
});

function machine(over: Partial<HealthPolicy> = {}, random: () => number = () => 0.5) {
  const events: HealthEvent[] = [];
  const health = new RouteHealth('payments', policy(over), T0, (e) => events.push(e), random);
  /** A sync call at `at` that finishes `ms` later, failed or not. */
  const call = (at: number, failed: boolean, ms = 10, retryAfterMs?: number) => {
    const a = health.admit(at);
    if (a.path === 'sync') {
      health.finish(
        a.token,
        { failed, durationMs: ms, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
        at + ms,
      );
    }
    return a;
  };
  return { health, events, call };
}

const syncOf = (a: Admission) => {
  assert.equal(a.path, 'sync');
  return a.path === 'sync' ? a.token : undefined!;
};

describe('RouteHealth triggers (sync → diverting)', () => {
  it('trips on error rate over the trip threshold, once minCalls finished', () => {
    const { health, events, call } = machine();
    for (let i = 0; i < 3; i++) call(T0 + i, true);
    assert.equal(health.state.kind, 'sync', 'fewer than minCalls: no verdict');
    call(T0 + 3, true);
    assert.equal(health.state.kind, 'diverting');
    assert.match(health.snapshot(T0 + 20).reason, /^error-rate 100% > 10%/);
    assert.deepEqual(
      events.map((e) => e.type),
      ['health:trip'],
    );
    assert.equal(health.trips, 1);
  });

  it('does not trip at exactly the threshold, nor on 4xx-free successes', () => {
    const { health, call } = machine({ minCalls: 10 });
    for (let i = 0; i < 9; i++) call(T0 + i, false);
    call(T0 + 9, true); // 10% is not > 10%
    assert.equal(health.state.kind, 'sync');
  });

  it('trips on the slow-call rate', () => {
    const { health, call } = machine({ slowCallMs: 100 });
    for (let i = 0; i < 4; i++) call(T0 + i * 200, false, 150);
    assert.equal(health.state.kind, 'diverting');
    assert.match(health.snapshot(T0 + 1_000).reason, /^slow-rate 100% > 50%/);
  });

  it('trips on the latency percentile, read from the histogram', () => {
    const { health, call } = machine({
      slowCallMs: 10_000,
      trip: { errorRate: 0.1, slowRate: 0.5, latencyMs: 300 },
    });
    for (let i = 0; i < 3; i++) call(T0 + i, false, 10);
    call(T0 + 3, false, 450); // p99 falls in the 500 ms bucket
    assert.equal(health.state.kind, 'diverting');
    assert.match(health.snapshot(T0 + 500).reason, /^latency p99 500 ms > 300 ms/);
  });

  it('trips on hung calls before they finish (hang detection by tick)', () => {
    const { health } = machine({ slowCallMs: 1_000, hungCalls: 2 });
    health.admit(T0);
    health.admit(T0 + 10);
    health.tick(T0 + 999);
    assert.equal(health.state.kind, 'sync');
    health.tick(T0 + 1_010);
    assert.equal(health.state.kind, 'diverting');
    assert.match(health.snapshot(T0 + 1_010).reason, /^hung-calls 2 in flight over 1000 ms ≥ 2/);
  });

  it('diverts until an upstream Retry-After', () => {
    const { health, call } = machine();
    call(T0, true, 5, 2_000);
    const s = health.state;
    assert.equal(s.kind, 'diverting');
    assert.equal(s.kind === 'diverting' && s.until, T0 + 5 + 2_000);
    assert.equal(s.kind === 'diverting' && s.cause, 'retry-after');
    assert.equal(health.trips, 1);
  });

  it('forgets old outcomes as the window slides', () => {
    const { health, call } = machine({ windowMs: 1_000, bucketMs: 100 });
    for (let i = 0; i < 3; i++) call(T0 + i, true);
    for (let i = 0; i < 4; i++) call(T0 + 2_000 + i, false);
    assert.equal(health.state.kind, 'sync');
    assert.equal(health.snapshot(T0 + 2_010).signals.calls, 4);
  });
});

describe('RouteHealth diverting', () => {
  it('captures every request at once, with the open period end as the replay time', () => {
    const { health, call } = machine({ openMs: 5_000 });
    for (let i = 0; i < 4; i++) call(T0 + i, true);
    const a = health.admit(T0 + 100);
    assert.equal(a.path, 'divert');
    assert.equal(a.path === 'divert' && a.until, T0 + 3 + 10 + 5_000);
    assert.match(a.path === 'divert' ? a.reason : '', /^diverting: error-rate/);
    assert.equal(health.replayView().state, 'diverting', 'replay probes only while diverting');
  });

  it('moves to probing on the clock when the open period ends, without any request', () => {
    const { health, events, call } = machine({ openMs: 5_000 });
    for (let i = 0; i < 4; i++) call(T0 + i, true);
    health.tick(T0 + 5_000);
    assert.equal(health.state.kind, 'diverting');
    health.tick(T0 + 5_013);
    assert.equal(health.state.kind, 'probing');
    assert.equal(events.at(-1)?.type, 'health:probe');
    assert.equal(health.replayView().state, 'probing');
  });
});

describe('RouteHealth probing', () => {
  function probing(over: Partial<HealthPolicy> = {}, random?: () => number) {
    const m = machine({ openMs: 1_000, ...over }, random);
    for (let i = 0; i < 4; i++) m.call(T0 + i, true);
    const at = T0 + 2_000;
    m.health.tick(at);
    assert.equal(m.health.state.kind, 'probing');
    return { ...m, at };
  }

  it('sends only a share of live requests, at most probeCalls at once; the rest is captured', () => {
    const draws = { values: [0.1, 0.9], i: 0 };
    const { health, at } = probing({ probeShare: 0.5 }, () => draws.values[draws.i++ % 2]!);
    draws.i = 0;
    const a1 = health.admit(at);
    const a2 = health.admit(at);
    assert.equal(a1.path, 'sync');
    assert.equal(a2.path, 'divert');
    assert.match(a2.path === 'divert' ? a2.reason : '', /^probing: /);
    const more = [health.admit(at), health.admit(at), health.admit(at), health.admit(at), health.admit(at)];
    assert.equal(
      [a1, ...more].filter((a) => a.path === 'sync').length,
      3,
      'probeCalls bounds probes in flight',
    );
  });

  it('reverts when probeCalls probes pass the revert thresholds after minProbingMs, then ramps up', () => {
    const { health, events, at } = probing();
    const tokens = [syncOf(health.admit(at)), syncOf(health.admit(at)), syncOf(health.admit(at))];
    for (const t of tokens) health.finish(t, { failed: false, durationMs: 20 }, at + 50);
    assert.equal(health.state.kind, 'probing', 'minProbingMs not yet spent');
    health.tick(at + 100);
    assert.equal(health.state.kind, 'sync');
    assert.equal(events.at(-1)?.type, 'health:revert');
    assert.equal(health.snapshot(at + 100).signals.syncShare, 1, 'probeShare 1: the ramp starts at 100%');
  });

  it('ramps the sync share from probeShare to 100% over rampMs', () => {
    const { health, at } = probing({ probeShare: 0.2 }, () => 0);
    const tokens = [syncOf(health.admit(at)), syncOf(health.admit(at)), syncOf(health.admit(at))];
    for (const t of tokens) health.finish(t, { failed: false, durationMs: 20 }, at + 150);
    const revertAt = at + 150;
    assert.equal(health.state.kind, 'sync');
    assert.ok(Math.abs(health.snapshot(revertAt).signals.syncShare - 0.2) < 1e-9);
    assert.ok(Math.abs(health.snapshot(revertAt + 500).signals.syncShare - 0.6) < 1e-9);
    assert.equal(health.snapshot(revertAt + 1_000).signals.syncShare, 1);
  });

  it('judges probes with the stricter revert thresholds: one slow probe in three fails the round', () => {
    const { health, events, at } = probing({
      slowCallMs: 10_000,
      revert: { errorRate: 0.05, slowRate: 0.2, latencyMs: 100 },
    });
    const tokens = [syncOf(health.admit(at)), syncOf(health.admit(at)), syncOf(health.admit(at))];
    health.finish(tokens[0]!, { failed: false, durationMs: 20 }, at + 20);
    health.finish(tokens[1]!, { failed: false, durationMs: 20 }, at + 20);
    health.finish(tokens[2]!, { failed: false, durationMs: 180 }, at + 180); // p99 180 > 100 (revert), < 3000 (trip)
    assert.equal(health.state.kind, 'diverting');
    assert.match(events.at(-1)?.reason ?? '', /^probe failed: latency/);
    assert.equal(health.trips, 1, 'a failed recovery is not a new trip');
  });

  it('fails the round at once when a probe hangs', () => {
    const { health, at } = probing({ slowCallMs: 500 });
    health.admit(at);
    health.tick(at + 499);
    assert.equal(health.state.kind, 'probing');
    health.tick(at + 500);
    assert.equal(health.state.kind, 'diverting');
  });

  it('grows the open period with each failed recovery, capped, and decays it after sustained health', () => {
    const { health, at } = probing({
      openMs: 1_000,
      openMultiplier: 2,
      maxOpenMs: 3_000,
      decayAfterMs: 10_000,
    });
    const fail = (now: number) => {
      const t = syncOf(health.admit(now));
      health.finish(t, { failed: true, durationMs: 1 }, now + 1);
      for (let i = 0; i < 2; i++)
        health.finish(syncOf(health.admit(now)), { failed: true, durationMs: 1 }, now + 1);
    };
    fail(at);
    assert.equal(health.snapshot(at + 1).signals.openMs, 2_000);
    health.tick(at + 1 + 2_000);
    fail(at + 2_001);
    assert.equal(health.snapshot(at + 2_002).signals.openMs, 3_000, 'capped at maxOpenMs');
    // Recover: probes pass, revert; then sustained health decays the exponent.
    let now = at + 2_002 + 3_000;
    health.tick(now);
    for (let i = 0; i < 3; i++)
      health.finish(syncOf(health.admit(now)), { failed: false, durationMs: 1 }, now + 1);
    now += 100;
    health.tick(now);
    assert.equal(health.state.kind, 'sync');
    health.tick(now + 10_000);
    health.tick(now + 20_000);
    // Trip again: the open period has stepped down from 2^2 · 1000 by two decays to 1000.
    const later = now + 20_001;
    for (let i = 0; i < 4; i++) {
      const a = health.admit(later);
      if (a.path === 'sync') health.finish(a.token, { failed: true, durationMs: 1 }, later + 1);
    }
    assert.equal(health.state.kind, 'diverting');
    assert.equal(health.snapshot(later + 1).signals.openMs, 1_000);
  });
});

describe('RouteHealth load shedding, drills, overrides', () => {
  it('captures requests past the static in-flight limit instead of queueing them', () => {
    const { health } = machine({ maxConcurrency: 2 });
    health.admit(T0);
    health.admit(T0);
    const third = health.admit(T0);
    assert.equal(third.path, 'divert');
    assert.match(third.path === 'divert' ? third.reason : '', /^shed: 2 in flight ≥ limit 2/);
  });

  it('lowers an adaptive limit on slow or failed calls and raises it on good ones', () => {
    const { health } = machine({
      maxConcurrency: 100,
      adaptiveConcurrency: { enabled: true, min: 2, initial: 10 },
      minCalls: 1_000,
    });
    assert.equal(health.snapshot(T0).signals.concurrencyLimit, 10);
    for (let i = 0; i < 5; i++)
      health.finish(syncOf(health.admit(T0)), { failed: true, durationMs: 1 }, T0 + 1);
    assert.equal(health.snapshot(T0 + 1).signals.concurrencyLimit, 5); // 10 · 0.9^5 = 5.9
    for (let i = 0; i < 30; i++)
      health.finish(syncOf(health.admit(T0 + 2)), { failed: false, durationMs: 1 }, T0 + 3);
    assert.ok(health.snapshot(T0 + 3).signals.concurrencyLimit > 5);
  });

  it('sends a drillShare of healthy traffic down the async path, marked as drills', () => {
    let r = 0;
    const { health } = machine({ drillShare: 0.25 }, () => [0.1, 0.5, 0.9, 0.3][r++ % 4]!);
    const admissions = Array.from({ length: 8 }, () => health.admit(T0));
    const drills = admissions.filter((a) => a.path === 'divert' && a.drill);
    assert.equal(drills.length, 2);
    assert.equal(health.snapshot(T0).signals.drills, 2);
  });

  it('never drills a request admitted with drills off (not work: a CORS preflight)', () => {
    const { health } = machine({ drillShare: 1 });
    assert.equal(health.admit(T0, 1_000, false).path, 'sync');
    assert.equal(health.snapshot(T0).signals.drills, 0);
    assert.equal(health.admit(T0).path, 'divert', 'the others are, at drillShare 1');
  });

  it('forced-async captures everything; forced-sync keeps sync through failures; none restores the machine', () => {
    const { health, events, call } = machine();
    health.setOverride('forced-async', T0);
    assert.equal(health.admit(T0).path, 'divert');
    assert.equal(health.snapshot(T0).state, 'forced-async');
    health.setOverride('forced-sync', T0 + 1);
    for (let i = 0; i < 6; i++) assert.equal(call(T0 + 2 + i, true).path, 'sync');
    assert.equal(health.snapshot(T0 + 10).state, 'forced-sync');
    health.setOverride(null, T0 + 20);
    assert.equal(health.snapshot(T0 + 20).state, 'diverting', 'the machine kept running underneath');
    assert.deepEqual(
      events.filter((e) => e.type === 'health:override').map((e) => e.reason),
      ['forced-async', 'forced-sync', 'none'],
    );
  });

  it('replays feed a separate view and never trip the route', () => {
    const { health } = machine();
    for (let i = 0; i < 50; i++) health.replayFinished({ failed: true, durationMs: 10 }, T0 + i);
    health.tick(T0 + 60);
    assert.equal(health.state.kind, 'sync');
    assert.deepEqual(health.snapshot(T0 + 60).signals.replay, { calls: 50, errorRate: 1 });
  });
});

describe('RouteHealth property: no flapping beyond the open-period rules', () => {
  it('never trips twice within the minimum open period plus minProbingMs, whatever the outcomes', () => {
    const openMs = 500;
    const minProbingMs = 100;
    const jitter = 0.2;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            gap: fc.integer({ min: 0, max: 300 }),
            failed: fc.boolean(),
            ms: fc.integer({ min: 1, max: 800 }),
          }),
          { minLength: 1, maxLength: 400 },
        ),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (steps, seed) => {
          let x = seed;
          const random = () => {
            x = ((x * 9301 + 49297) % 233280) / 233280;
            return x;
          };
          const trips: number[] = [];
          const health = new RouteHealth(
            'r',
            policy({
              openMs,
              openJitter: jitter,
              minProbingMs,
              slowCallMs: 600,
              minCalls: 3,
              probeShare: 0.5,
            }),
            T0,
            (e) => {
              if (e.type === 'health:trip' && !e.reason.startsWith('probe failed')) trips.push(e.at);
            },
            random,
          );
          let now = T0;
          for (const step of steps) {
            now += step.gap;
            const a = health.admit(now);
            if (a.path === 'sync')
              health.finish(a.token, { failed: step.failed, durationMs: step.ms }, now + step.ms);
            health.tick(now + step.ms);
          }
          const minGap = openMs * (1 - jitter) + minProbingMs;
          for (let i = 1; i < trips.length; i++) {
            if (trips[i]! - trips[i - 1]! < minGap) return false;
          }
          const span = now + 1_000 - T0;
          return trips.length <= 1 + Math.floor(span / minGap);
        },
      ),
      { numRuns: 300 },
    );
  });
});
