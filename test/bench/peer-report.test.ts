/**
 * The peer bench's arithmetic (bench/report.ts): Spillway's figures over its
 * peers', per request and per CPU-second, and each of issue 11's targets
 * judged on the right figure. The bench itself takes minutes and the whole
 * machine, so it is not run here; these are the parts whose mistakes would
 * publish a wrong verdict.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadResult } from '../../bench/load.ts';
import {
  BULLMQ,
  captureRatios,
  type PeerCaptureRun,
  type PeerResults,
  type PeerSyncRun,
  peerTargets,
  perCpuSecond,
  SPILLWAY,
  syncRatios,
  targetTable,
  UNDICI_PROXY,
} from '../../bench/report.ts';

const load = (answered: number, seconds = 5): LoadResult => ({
  answered,
  seconds,
  perSecond: answered / seconds,
  p50Ms: 1,
  p99Ms: 2,
  statuses: { '200': answered },
  errors: 0,
});
const sync = (system: string, method: string, answered: number, cpuSeconds?: number): PeerSyncRun => ({
  system,
  method,
  load: load(answered),
  ...(cpuSeconds === undefined ? {} : { cpuSeconds }),
});
const capture = (system: string, store: string, answered: number, p99Ms?: number): PeerCaptureRun => ({
  system,
  store,
  load: load(answered),
  answers202: answered,
  stored: answered,
  ...(p99Ms === undefined ? {} : { loopDelay: { p50Ms: 0, p99Ms, maxMs: p99Ms, samples: 100 } }),
});

describe('peer bench ratios', () => {
  it('compares requests per CPU-second, not just req/s: a faster proxy can be the costlier one', () => {
    // Spillway answers more requests but burns twice the CPU for 1.5× the requests.
    const ratios = syncRatios([sync(SPILLWAY, 'GET', 15_000, 4), sync(UNDICI_PROXY, 'GET', 10_000, 2)]);
    assert.equal(ratios.length, 1);
    assert.equal(ratios[0]!.perSecond, 1.5);
    assert.equal(ratios[0]!.perCpuSecond, 0.75);
  });

  it('pairs each Spillway run with the peers of the same request only', () => {
    const ratios = syncRatios([
      sync(SPILLWAY, 'GET', 9_000, 1),
      sync(SPILLWAY, 'POST', 4_000, 1),
      sync(UNDICI_PROXY, 'GET', 10_000, 1),
      sync(UNDICI_PROXY, 'POST', 8_000, 1),
      sync('@fastify/http-proxy', 'POST', 5_000, 1),
    ]);
    assert.deepEqual(
      ratios.map((r) => [r.method, r.peer, r.perCpuSecond]),
      [
        ['GET', UNDICI_PROXY, 0.9],
        ['POST', UNDICI_PROXY, 0.5],
        ['POST', '@fastify/http-proxy', 0.8],
      ],
    );
  });

  it('leaves the per-CPU ratio out when a CPU reading is missing or zero', () => {
    assert.equal(perCpuSecond(1_000, undefined), undefined);
    assert.equal(perCpuSecond(1_000, 0), undefined);
    const [ratio] = syncRatios([sync(SPILLWAY, 'GET', 1_000), sync(UNDICI_PROXY, 'GET', 1_000, 1)]);
    assert.equal(ratio!.perCpuSecond, undefined);
    assert.equal(ratio!.perSecond, 1);
  });

  it('divides each Spillway store by each peer for captures', () => {
    const ratios = captureRatios([
      capture(SPILLWAY, 'SQLite', 3_000),
      capture(BULLMQ, 'Redis', 2_000),
      capture('Fastify + pg-boss', 'PostgreSQL', 1_000),
    ]);
    assert.deepEqual(
      ratios.map((r) => [r.spillway, r.peer, r.perSecond]),
      [
        ['SQLite', BULLMQ, 1.5],
        ['SQLite', 'Fastify + pg-boss', 3],
      ],
    );
  });
});

describe('issue 11 targets', () => {
  const results: PeerResults = {
    sync: [sync(SPILLWAY, 'GET', 9_000, 1), sync(UNDICI_PROXY, 'GET', 10_000, 1)],
    captures: [capture(SPILLWAY, 'SQLite', 2_900, 5.01), capture(BULLMQ, 'Redis', 2_000)],
    drains: [
      {
        system: SPILLWAY,
        backlog: 10,
        outageSeconds: 10,
        firstReplaySeconds: 1,
        delivered: 10,
        completed: 10,
      },
    ],
  };

  it('judges each target on its bound, inclusive', () => {
    const checks = peerTargets(results);
    const verdict = Object.fromEntries(checks.map((c) => [c.target, [c.measured, c.met]]));
    assert.deepEqual(verdict, {
      [`durable captures/s, Spillway (SQLite) ÷ ${BULLMQ}`]: [1.45, false],
      [`sync GET per proxy CPU-second, Spillway ÷ ${UNDICI_PROXY}`]: [0.9, true],
      'event-loop delay p99 during captures (SQLite)': [5.01, false],
      'first replay after the upstream is back, Spillway': [1, true],
    });
  });

  it('says "not measured" rather than met or not when the figure is missing', () => {
    const checks = peerTargets({ ...results, captures: [capture(SPILLWAY, 'SQLite', 2_900)] });
    const missing = checks.filter((c) => c.measured === undefined).map((c) => c.target);
    assert.deepEqual(missing, [
      `durable captures/s, Spillway (SQLite) ÷ ${BULLMQ}`,
      'event-loop delay p99 during captures (SQLite)',
    ]);
    assert.ok(checks.every((c) => (c.measured === undefined) === (c.met === undefined)));
    assert.match(
      targetTable(checks),
      /event-loop delay p99 during captures \(SQLite\)\s+—\s+≤ 5\.00 ms\s+not measured/,
    );
  });
});
