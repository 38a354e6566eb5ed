/**
 * Probing that ends under light traffic, and trips on spent budgets, with
 * time passed in by hand: probe results count from the start of probing (not
 * within the sliding window), replay outcomes count as probe results, the
 * probing reason shows progress, and a call that has outlived its own budget
 * counts as hung.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routeDefaults } from '../../config/config.ts';
import type { HealthPolicy } from './health-policy.ts';
import { type HealthEvent, RouteHealth } from './route-health.ts';

const T0 = 1_000_000;

function probingMachine(over: Partial<HealthPolicy> = {}, random: () => number = () => 0) {
  const events: HealthEvent[] = [];
  const policy: HealthPolicy = {
    ...routeDefaults.health,
    minCalls: 4,
    openMs: 1_000,
    openJitter: 0,
    probeShare: 1,
    ...over,
  };
  const health = new RouteHealth('orders', policy, T0, (e) => events.push(e), random);
  for (let i = 0; i < policy.minCalls; i++) {
    const a = health.admit(T0 + i, policy.slowCallMs);
    if (a.path === 'sync') health.finish(a.token, { failed: true, durationMs: 1 }, T0 + i + 1);
  }
  assert.equal(health.state.kind, 'diverting');
  const at = T0 + 2_000;
  health.tick(at);
  assert.equal(health.state.kind, 'probing');
  return { health, events, at, policy };
}

describe('probing under light traffic', () => {
  it('counts probe results from the start of probing, not only within the sliding window', () => {
    // windowMs 10 s, 5 probes judged together, one live probe every 3 s: at most 4 fit in any window.
    const { health, at } = probingMachine({ windowMs: 10_000, probeCalls: 5 });
    let now = at;
    for (let i = 0; i < 5; i++) {
      now = at + i * 3_000;
      const a = health.admit(now, 3_000);
      assert.equal(a.path, 'sync');
      if (a.path === 'sync') health.finish(a.token, { failed: false, durationMs: 20 }, now + 20);
    }
    health.tick(now + 100);
    assert.equal(health.state.kind, 'sync', 'five probes passed since probing began: revert');
    assert.equal(health.snapshot(now + 100).reason, 'probes passed (5 judged)');
  });

  it('never takes a request that is not work (a CORS preflight) as a probe', () => {
    // A CORS layer in front of a failing upstream answers preflights: such a probe would pass and revert.
    const { health, at } = probingMachine({ probeCalls: 1 });
    const preflight = health.admit(at, 3_000, false);
    assert.equal(preflight.path, 'divert');
    assert.equal(health.snapshot(at).reason, '0/1 probes passed', 'no probe started');
    assert.equal(health.admit(at + 1, 3_000).path, 'sync', 'the next request that is work is the probe');
  });

  it('counts replay outcomes as probe results: a route with no live traffic reverts on its backlog', () => {
    const { health, events, at } = probingMachine({ probeCalls: 5, minProbingMs: 1_000 });
    for (let i = 0; i < 5; i++) health.replayFinished({ failed: false, durationMs: 30 }, at + 100 + i);
    assert.equal(health.state.kind, 'probing', 'minProbingMs not yet spent');
    health.tick(at + 1_000);
    assert.equal(health.state.kind, 'sync');
    assert.equal(events.at(-1)?.type, 'health:revert');
  });

  it('fails the round when a replay probe fails', () => {
    const { health, events, at } = probingMachine({ probeCalls: 5 });
    for (let i = 0; i < 4; i++) health.replayFinished({ failed: false, durationMs: 30 }, at + i);
    health.replayFinished({ failed: true, durationMs: 30 }, at + 5);
    assert.equal(health.state.kind, 'diverting');
    assert.match(events.at(-1)?.reason ?? '', /^probe failed: error-rate 20% > 5%/);
  });

  it('shows the probing progress in its reason, and in the divert reason of the requests it captures', () => {
    const { health, at } = probingMachine({ probeCalls: 5, probeShare: 0.5 }, () => 0.9);
    assert.equal(health.snapshot(at).reason, '0/5 probes passed');
    health.replayFinished({ failed: false, durationMs: 30 }, at + 1);
    health.replayFinished({ failed: false, durationMs: 30 }, at + 2);
    assert.equal(health.snapshot(at + 3).reason, '2/5 probes passed');
    const a = health.admit(at + 3, 3_000);
    assert.equal(a.path, 'divert');
    assert.equal(a.path === 'divert' && a.reason, 'probing: 2/5 probes passed');
  });

  it('shows replays in the signals, and never trips on them in sync', () => {
    const policy: HealthPolicy = { ...routeDefaults.health, minCalls: 4 };
    const health = new RouteHealth('orders', policy, T0, () => {});
    for (let i = 0; i < 20; i++) health.replayFinished({ failed: true, durationMs: 5 }, T0 + i);
    health.tick(T0 + 30);
    assert.equal(health.state.kind, 'sync');
  });
});

describe('tripping on spent budgets', () => {
  it('counts a call that has outlived its own budget as hung, long before slowCallMs', () => {
    const events: HealthEvent[] = [];
    const policy: HealthPolicy = { ...routeDefaults.health, slowCallMs: 3_000, hungCalls: 3 };
    const health = new RouteHealth('orders', policy, T0, (e) => events.push(e));
    for (let i = 0; i < 3; i++) assert.equal(health.admit(T0 + i, 1_000).path, 'sync');
    health.tick(T0 + 999);
    assert.equal(health.state.kind, 'sync', 'no budget spent yet');
    health.tick(T0 + 1_002);
    assert.equal(health.state.kind, 'diverting');
    assert.equal(events.at(-1)?.reason, 'hung-calls 3 in flight over 1000 ms ≥ 3');
  });

  it('still waits for slowCallMs when the budget is longer', () => {
    const policy: HealthPolicy = { ...routeDefaults.health, slowCallMs: 300, hungCalls: 2 };
    const health = new RouteHealth('orders', policy, T0, () => {});
    health.admit(T0, 2_000);
    health.admit(T0, 2_000);
    health.tick(T0 + 299);
    assert.equal(health.state.kind, 'sync');
    health.tick(T0 + 300);
    assert.equal(health.state.kind, 'diverting');
    assert.match(health.snapshot(T0 + 300).reason, /^hung-calls 2 in flight over 300 ms ≥ 2$/);
  });

  it('fails a probing round at once when a probe outlives its budget', () => {
    const { health, at } = probingMachine({ slowCallMs: 3_000 });
    health.admit(at, 500);
    health.tick(at + 499);
    assert.equal(health.state.kind, 'probing');
    health.tick(at + 500);
    assert.equal(health.state.kind, 'diverting');
  });
});
