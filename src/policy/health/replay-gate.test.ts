/**
 * One route's replay pace, with time passed in by hand: drain at the adaptive
 * limit when healthy, one probe at a time at the probe cadence while the route
 * diverts or probes, the drain as soon as a probe passes, and nothing while
 * the upstream's Retry-After runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routeDefaults } from '../../config/config.ts';
import { ReplayGate, type RouteHealthView } from './replay-gate.ts';
import { RouteHealth } from './route-health.ts';

const T0 = 1_000_000;
const sync: RouteHealthView = { state: 'sync', cause: null, since: T0, until: null, probesPassed: 0 };
const diverting: RouteHealthView = {
  state: 'diverting',
  cause: 'trip',
  since: T0,
  until: T0 + 5_000,
  probesPassed: 0,
};
const gate = () => new ReplayGate({ concurrency: 8, probeIntervalMs: 500 });

describe('ReplayGate', () => {
  it('drains a healthy route at its adaptive limit, from half the concurrency up', () => {
    const g = gate();
    assert.equal(g.mode(sync, T0), 'drain');
    assert.equal(g.slots(sync, T0), 4);
    g.started();
    assert.equal(g.slots(sync, T0), 3);
    for (let i = 0; i < 30; i++) {
      g.started();
      g.finished(true, undefined);
    }
    assert.equal(g.limit, 8, 'good replays raise the limit to the concurrency');
    for (let i = 0; i < 3; i++) {
      g.started();
      g.finished(false, undefined);
    }
    assert.equal(g.limit, 1, 'failed replays halve it, down to one');
  });

  it('sends one probe at a time, one per probeIntervalMs, while the route diverts', () => {
    const g = gate();
    assert.equal(g.mode(diverting, T0), 'probe');
    assert.equal(g.slots(diverting, T0), 1);
    g.probed(T0);
    g.started();
    assert.equal(g.slots(diverting, T0 + 10), 0, 'one at a time');
    g.finished(false, { since: T0 });
    assert.equal(g.slots(diverting, T0 + 100), 0, 'the next waits its turn');
    assert.equal(g.nextTurnIn(diverting, T0 + 100), 400);
    assert.equal(g.slots(diverting, T0 + 500), 1);
  });

  it('drains at once when a probe passes: entered once, for that state only', () => {
    const g = gate();
    assert.equal(g.enteredDrain(diverting, T0), false);
    g.probed(T0);
    g.started();
    g.finished(true, { since: T0 });
    assert.equal(g.mode(diverting, T0 + 1), 'drain');
    assert.equal(g.enteredDrain(diverting, T0 + 1), true, 'bring the due times forward');
    assert.equal(g.enteredDrain(diverting, T0 + 2), false, 'once');
    const again = { ...diverting, since: T0 + 10_000, until: T0 + 20_000 };
    assert.equal(g.mode(again, T0 + 10_000), 'probe', 'a new diversion probes again');
  });

  it('drains a probing route once any probe (live or replay) passed', () => {
    const g = gate();
    const probing: RouteHealthView = { ...diverting, state: 'probing', cause: null, until: null };
    assert.equal(g.mode(probing, T0), 'probe');
    assert.equal(g.mode({ ...probing, probesPassed: 1 }, T0), 'drain');
  });

  it('waits out the upstream Retry-After: the route diverting for it, or a replay answered with it', () => {
    const g = gate();
    const retryAfter: RouteHealthView = { ...diverting, cause: 'retry-after', until: T0 + 3_000 };
    assert.equal(g.slots(retryAfter, T0), 0);
    assert.equal(g.nextTurnIn(retryAfter, T0), 3_000);
    assert.equal(g.mode(retryAfter, T0 + 3_000), 'probe');
    g.pauseUntil(T0 + 2_000);
    assert.equal(g.slots(sync, T0 + 1_999), 0);
    assert.equal(g.slots(sync, T0 + 2_000), 4);
  });
});

describe('RouteHealth and replay probes', () => {
  it('ends a first open period early when a replay probe passes, never one after a failed recovery', () => {
    const policy = { ...routeDefaults.health, minCalls: 2, probeCalls: 2, openJitter: 0, openMs: 10_000 };
    const health = new RouteHealth('orders', policy, T0, () => {});
    for (let i = 0; i < 2; i++) {
      const a = health.admit(T0, 3_000);
      if (a.path === 'sync') health.finish(a.token, { failed: true, durationMs: 1 }, T0 + 1);
    }
    health.replayFinished({ failed: true, durationMs: 5 }, T0 + 500);
    assert.equal(health.state.kind, 'diverting', 'a failed probe changes nothing');
    health.replayFinished({ failed: false, durationMs: 5 }, T0 + 1_000);
    assert.equal(health.state.kind, 'probing');
    assert.equal(health.replayView().probesPassed, 1, 'the passing probe is the round’s first result');
    health.replayFinished({ failed: true, durationMs: 5 }, T0 + 1_100);
    assert.equal(health.replayView().state, 'diverting', 'the round failed: a failed recovery');
    health.replayFinished({ failed: false, durationMs: 5 }, T0 + 2_000);
    assert.equal(
      health.replayView().state,
      'diverting',
      'a flapping upstream waits out the longer open period',
    );
  });

  it('does not end a Retry-After diversion early', () => {
    const policy = { ...routeDefaults.health, openJitter: 0 };
    const health = new RouteHealth('orders', policy, T0, () => {});
    const a = health.admit(T0, 3_000);
    if (a.path === 'sync')
      health.finish(a.token, { failed: true, durationMs: 1, retryAfterMs: 30_000 }, T0 + 1);
    health.replayFinished({ failed: false, durationMs: 5 }, T0 + 1_000);
    assert.equal(health.state.kind, 'diverting');
  });
});
