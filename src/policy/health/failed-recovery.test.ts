/**
 * A revert that does not last is a failed recovery: the trip that ends it
 * opens for longer, so an upstream that flaps slower than the open period
 * cannot make the route trip once per failing phase. Time is passed in.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routeDefaults } from '../../config/config.ts';
import type { HealthPolicy } from './health-policy.ts';
import { RouteHealth } from './route-health.ts';

const T0 = 1_000_000;
const policy: HealthPolicy = {
  ...routeDefaults.health,
  minCalls: 4,
  openMs: 1_000,
  openMultiplier: 2,
  openJitter: 0,
  probeShare: 1,
  probeCalls: 3,
  minProbingMs: 0,
  rampMs: 0,
  decayAfterMs: 10_000,
};

/** Finishes `n` sync calls at `at`, failed or not; returns the time after them. */
function calls(health: RouteHealth, at: number, n: number, failed: boolean): number {
  for (let i = 0; i < n; i++) {
    const a = health.admit(at);
    if (a.path === 'sync') health.finish(a.token, { failed, durationMs: 1 }, at + 1);
    at += 2;
  }
  return at;
}

/** Trips with failures, waits out the open period, passes the probes: back in sync. Returns the open period. */
function tripAndRecover(health: RouteHealth, at: number): { openMs: number; at: number } {
  at = calls(health, at, 4, true);
  const s = health.state;
  assert.equal(s.kind, 'diverting');
  const openMs = s.kind === 'diverting' ? s.until - s.since : 0;
  at = s.kind === 'diverting' ? s.until : at;
  health.tick(at);
  assert.equal(health.state.kind, 'probing');
  at = calls(health, at, 3, false);
  assert.equal(health.state.kind, 'sync');
  return { openMs, at };
}

describe('RouteHealth: failed recoveries', () => {
  it('doubles the open period when a trip comes within decayAfterMs of a revert', () => {
    const health = new RouteHealth(
      'orders',
      policy,
      T0,
      () => {},
      () => 0.5,
    );
    let r = tripAndRecover(health, T0);
    assert.equal(r.openMs, 1_000, 'the first trip opens for openMs');
    r = tripAndRecover(health, r.at + 100);
    assert.equal(r.openMs, 2_000, 'the revert did not last: the next open period doubles');
    r = tripAndRecover(health, r.at + 100);
    assert.equal(r.openMs, 4_000);
    assert.equal(health.trips, 3);
  });

  it('keeps the open period when the revert lasted decayAfterMs, and steps it down after sustained health', () => {
    const health = new RouteHealth(
      'orders',
      policy,
      T0,
      () => {},
      () => 0.5,
    );
    let r = tripAndRecover(health, T0);
    r = tripAndRecover(health, r.at + 100);
    assert.equal(r.openMs, 2_000);
    // Healthy for a decay period: one failed recovery is paid back, and the revert held.
    health.tick(r.at + policy.decayAfterMs);
    r = tripAndRecover(health, r.at + policy.decayAfterMs + 1);
    assert.equal(r.openMs, 1_000);
  });
});
