import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AimdLimit } from './aimd-limit.ts';
import { LatencyHistogram } from './histogram.ts';
import { errorRateRule, hungCallsRule, judge, latencyRule, type RuleContext, slowRateRule } from './rules.ts';
import { SlidingWindow } from './sliding-window.ts';

describe('LatencyHistogram', () => {
  it('reads percentiles from bucket counts (upper bounds), without sorting samples', () => {
    const h = new LatencyHistogram();
    assert.equal(h.percentile(99), undefined);
    for (let i = 0; i < 98; i++) h.record(3);
    h.record(40);
    h.record(4_000);
    assert.equal(h.percentile(50), 5);
    assert.equal(h.percentile(99), 50);
    assert.equal(h.percentile(100), 5_000);
  });
});

describe('SlidingWindow', () => {
  it('counts calls, failures and slow calls over the last windowMs only', () => {
    const w = new SlidingWindow(1_000, 100, 200);
    w.record({ failed: true, durationMs: 250 }, 0);
    w.record({ failed: false, durationMs: 10 }, 950);
    assert.deepEqual([w.totals(990).calls, w.totals(990).failures, w.totals(990).slow], [2, 1, 1]);
    assert.equal(w.totals(1_150).calls, 1, 'the first bucket slid out');
    w.clear();
    assert.equal(w.totals(1_150).calls, 0);
  });
});

describe('AimdLimit', () => {
  it('adds 1/limit per good call, multiplies on a bad one, within [min, max]', () => {
    const l = new AimdLimit({ min: 2, max: 4, initial: 2, backoff: 0.5 });
    l.good();
    l.good();
    assert.equal(l.limit, 2); // 2 + 1/2 + 1/2.5 = 2.9
    for (let i = 0; i < 20; i++) l.good();
    assert.equal(l.limit, 4);
    l.bad();
    assert.equal(l.limit, 2);
    l.bad();
    assert.equal(l.limit, 2, 'never below min');
  });
});

describe('rules', () => {
  const ctx: RuleContext = {
    thresholds: { errorRate: 0.1, slowRate: 0.5, latencyMs: 300 },
    minCalls: 10,
    hungCalls: 2,
    latencyPercentile: 99,
    hungAfterMs: 1_000,
  };
  const quiet = { calls: 10, errorRate: 0, slowRate: 0, latencyMs: 100, hung: 0, inFlight: 0 };
  it('each fires alone, names itself, and respects minCalls', () => {
    assert.equal(judge(quiet, ctx), undefined);
    assert.match(errorRateRule({ ...quiet, errorRate: 0.2 }, ctx)!, /^error-rate 20% > 10%/);
    assert.match(slowRateRule({ ...quiet, slowRate: 0.6 }, ctx)!, /^slow-rate 60% > 50%/);
    assert.match(latencyRule({ ...quiet, latencyMs: 500 }, ctx)!, /^latency p99 500 ms > 300 ms/);
    assert.match(hungCallsRule({ ...quiet, hung: 2 }, ctx)!, /^hung-calls 2/);
    assert.equal(errorRateRule({ ...quiet, calls: 9, errorRate: 1 }, ctx), undefined);
    assert.match(
      hungCallsRule({ ...quiet, calls: 0, hung: 3 }, ctx)!,
      /^hung-calls/,
      'hangs need no minimum',
    );
  });
});
