/**
 * The bench's output: the results as aligned text tables for people, and as
 * JSON (bench/results/latest.json) for tools and for comparing runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { LoadResult } from './load.ts';
import type { LoopDelay } from './loop-delay.ts';

export interface SyncComparison {
  method: string;
  direct: LoadResult;
  spillway: LoadResult;
}

export interface CaptureSummary {
  /** SQLite or PostgreSQL. */
  store: string;
  gateways: number;
  method: string;
  measured: LoadResult;
  warmUpAnswers202: number;
  answers202: number;
  storedOperations: number;
  server: ServerCost;
}

/** What the database server spent per operation (PostgreSQL; empty for SQLite). */
export interface ServerCost {
  walBytesPerOperation?: number;
  cpuMsPerOperation?: number;
}

export interface ReplaySummary {
  store: string;
  gateways: number;
  /** Operations waiting when the replaying gateways started. */
  backlog: number;
  /** From the replaying gateways being ready to the last operation Succeeded. */
  seconds: number;
  perSecond: number;
  succeeded: number;
  /** POSTs the upstream answered: one per operation, or some were delivered twice. */
  delivered: number;
  server: ServerCost;
}

/** Spillway's figure divided by the direct one: above 1 for latency and below 1 for req/s means overhead. */
export function ratios({ direct, spillway }: SyncComparison) {
  return {
    perSecond: spillway.perSecond / direct.perSecond,
    p50Ms: spillway.p50Ms / direct.p50Ms,
    p99Ms: spillway.p99Ms / direct.p99Ms,
  };
}

export function syncTable(comparisons: SyncComparison[]): string {
  const rows: string[][] = [['request', 'target', 'req/s', 'p50 ms', 'p99 ms', 'answered']];
  for (const c of comparisons) {
    const request = c.method === 'POST' ? 'POST (JSON)' : c.method;
    rows.push([request, 'direct', ...figures(c.direct)]);
    rows.push([request, 'via Spillway', ...figures(c.spillway)]);
    const r = ratios(c);
    rows.push([request, 'Spillway/direct', times(r.perSecond), times(r.p50Ms), times(r.p99Ms), '']);
  }
  return align(rows, 2);
}

export function captureTable(summaries: CaptureSummary[]): string {
  const rows: string[][] = [
    ['store', 'gateways', 'captures/s', 'p50 ms', 'p99 ms', 'answered 202', 'WAL B/op', 'server CPU ms/op'],
  ];
  for (const summary of summaries) {
    const { measured } = summary;
    rows.push([
      summary.store,
      String(summary.gateways),
      ...figures(measured).slice(0, 3),
      count(measured.statuses['202'] ?? 0),
      ...costs(summary.server),
    ]);
  }
  return align(rows, 1);
}

export function replayTable(summaries: ReplaySummary[]): string {
  const rows: string[][] = [
    ['store', 'gateways', 'replays/s', 'backlog', 'seconds', 'delivered', 'WAL B/op', 'server CPU ms/op'],
  ];
  for (const s of summaries) {
    rows.push([
      s.store,
      String(s.gateways),
      count(s.perSecond),
      count(s.backlog),
      s.seconds.toFixed(2),
      count(s.delivered),
      ...costs(s.server),
    ]);
  }
  return align(rows, 1);
}

export function storeCheckLine(summary: CaptureSummary): string {
  const { storedOperations, answers202, warmUpAnswers202 } = summary;
  const verdict = storedOperations === answers202 ? 'OK' : 'MISMATCH';
  return `Store check (${summary.store}, ${summary.gateways} gateway${summary.gateways > 1 ? 's' : ''}): ${count(storedOperations)} operations stored, ${count(answers202)} answers 202 (${count(warmUpAnswers202)} in warm-up + ${count(answers202 - warmUpAnswers202)} measured): ${verdict}`;
}

export function writeJson(file: URL, data: unknown): void {
  mkdirSync(new URL('.', file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
}

const costs = (cost: ServerCost) => [
  cost.walBytesPerOperation === undefined ? '—' : count(cost.walBytesPerOperation),
  cost.cpuMsPerOperation === undefined ? '—' : cost.cpuMsPerOperation.toFixed(3),
];
const figures = (r: LoadResult) => [count(r.perSecond), ms(r.p50Ms), ms(r.p99Ms), count(r.answered)];
const count = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => n.toFixed(2);
const times = (n: number) => `${n.toFixed(2)}×`;

/** Left-aligns the first `textColumns` columns, right-aligns the rest (numbers). */
function align(rows: string[][], textColumns: number): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i < textColumns ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

// --- `--peers`: Spillway side by side with its peers ---

/** One proxy (Spillway or a peer) forwarding one kind of request to the healthy upstream. */
export interface PeerSyncRun {
  system: string;
  method: string;
  load: LoadResult;
  /** CPU seconds the proxy's process spent over the measured run (undefined off Linux). */
  cpuSeconds?: number;
  loopDelay?: LoopDelay;
  /** The same window's delay in an idle Node process: the wait for a core, common to every process here. */
  idleLoopDelay?: LoopDelay;
}

/** One system answering 202 once a request is durably stored, its upstream down or absent. */
export interface PeerCaptureRun {
  system: string;
  /** Where it stores: SQLite, PostgreSQL, Redis (AOF, appendfsync always). */
  store: string;
  /** The measured run. */
  load: LoadResult;
  /** 202s answered, warm-up included. */
  answers202: number;
  /** Operations or jobs counted in its store afterwards: must equal `answers202`. */
  stored: number;
  /** CPU seconds over the measured run: the server process, and its store's (PostgreSQL, Redis) when it runs here. */
  cpuSeconds?: number;
  storeCpuSeconds?: number;
  loopDelay?: LoopDelay;
  idleLoopDelay?: LoopDelay;
}

/** A backlog captured while the upstream was down, replayed when it comes back. */
export interface PeerDrainRun {
  system: string;
  /** Requests answered 202 during the outage: what must reach the upstream. */
  backlog: number;
  /** From the first capture to the upstream listening again. */
  outageSeconds: number;
  /** From the upstream listening again to the first replay reaching it. */
  firstReplaySeconds?: number;
  /** From the upstream listening again to the last replay reaching it. */
  drainSeconds?: number;
  /** POSTs the upstream answered: the backlog exactly, or some were lost or sent twice. */
  delivered: number;
  /** Operations or jobs the system recorded as done. */
  completed: number;
}

export interface PeerResults {
  sync: PeerSyncRun[];
  captures: PeerCaptureRun[];
  drains: PeerDrainRun[];
}

/** A target of issue 11, the figure measured for it, and whether it is met (undefined: not measured). */
export interface TargetCheck {
  target: string;
  measured?: number;
  unit: '×' | 'ms' | 's';
  atLeast?: number;
  atMost?: number;
  met?: boolean;
}

export const SPILLWAY = 'Spillway';
export const UNDICI_PROXY = 'undici Pool + node:http';
export const BULLMQ = 'Fastify + BullMQ';
/** The least a durable capture costs on node:http and node:sqlite (bench/peers/sqlite-floor.ts). */
export const FLOOR = 'node:http + node:sqlite floor';

/** Requests per CPU-second of the proxy's process; undefined when the CPU time is unknown or zero. */
export const perCpuSecond = (answered: number, cpuSeconds: number | undefined) =>
  cpuSeconds === undefined || cpuSeconds <= 0 ? undefined : answered / cpuSeconds;

/** Spillway's figures over each peer's, for each request: req/s and requests per CPU-second. */
export function syncRatios(runs: PeerSyncRun[]) {
  const ratios: Array<{ method: string; peer: string; perSecond: number; perCpuSecond?: number }> = [];
  for (const spillway of runs.filter((run) => run.system === SPILLWAY)) {
    const ours = perCpuSecond(spillway.load.answered, spillway.cpuSeconds);
    for (const peer of runs.filter((run) => run.system !== SPILLWAY && run.method === spillway.method)) {
      const theirs = perCpuSecond(peer.load.answered, peer.cpuSeconds);
      ratios.push({
        method: spillway.method,
        peer: peer.system,
        perSecond: spillway.load.perSecond / peer.load.perSecond,
        ...(ours === undefined || theirs === undefined ? {} : { perCpuSecond: ours / theirs }),
      });
    }
  }
  return ratios;
}

/** Each Spillway store's captures/s over each peer's. */
export function captureRatios(runs: PeerCaptureRun[]) {
  const ours = runs.filter((run) => run.system === SPILLWAY);
  return ours.flatMap((spillway) =>
    runs
      .filter((run) => run.system !== SPILLWAY)
      .map((peer) => ({
        spillway: spillway.store,
        peer: peer.system,
        perSecond: spillway.load.perSecond / peer.load.perSecond,
      })),
  );
}

/** The Done-when figures of issue 11 that the peer bench measures, each against its target. */
export function peerTargets({ sync, captures, drains }: PeerResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const check = (target: string, measured: number | undefined, unit: TargetCheck['unit'], bound: Bound) => {
    const met =
      measured === undefined || Number.isNaN(measured)
        ? undefined
        : (bound.atLeast === undefined || measured >= bound.atLeast) &&
          (bound.atMost === undefined || measured <= bound.atMost);
    checks.push({
      target,
      unit,
      ...bound,
      ...(measured === undefined ? {} : { measured }),
      ...(met === undefined ? {} : { met }),
    });
  };
  const bullmq = captures.find((run) => run.system === BULLMQ);
  for (const spillway of captures.filter((run) => run.system === SPILLWAY)) {
    check(
      `durable captures/s, Spillway (${spillway.store}) ÷ ${BULLMQ}`,
      bullmq && spillway.load.perSecond / bullmq.load.perSecond,
      '×',
      { atLeast: 1.5 },
    );
  }
  // Not a target: whether the floor itself reaches the captures target, on this machine, in this run.
  const floor = captures.find((run) => run.system === FLOOR);
  if (floor)
    check(
      `for reference, no Spillway: ${FLOOR} ÷ ${BULLMQ}`,
      bullmq && floor.load.perSecond / bullmq.load.perSecond,
      '×',
      { atLeast: 1.5 },
    );
  for (const ratio of syncRatios(sync).filter((r) => r.peer === UNDICI_PROXY)) {
    check(`sync ${ratio.method} per proxy CPU-second, Spillway ÷ ${UNDICI_PROXY}`, ratio.perCpuSecond, '×', {
      atLeast: 0.9,
    });
  }
  for (const spillway of captures.filter((run) => run.system === SPILLWAY)) {
    check(`event-loop delay p99 during captures (${spillway.store})`, spillway.loopDelay?.p99Ms, 'ms', {
      atMost: 5,
    });
  }
  const drain = drains.find((run) => run.system === SPILLWAY);
  if (drain)
    check('first replay after the upstream is back, Spillway', drain.firstReplaySeconds, 's', { atMost: 1 });
  return checks;
}
type Bound = { atLeast?: number; atMost?: number };

export function peerSyncTable(runs: PeerSyncRun[]): string {
  const rows: string[][] = [
    ['proxy', 'request', 'req/s', 'p50 ms', 'p99 ms', 'answered', 'CPU s', 'req/CPU-s'],
  ];
  for (const run of runs) {
    const perCpu = perCpuSecond(run.load.answered, run.cpuSeconds);
    rows.push([
      run.system,
      run.method,
      ...figures(run.load),
      run.cpuSeconds === undefined ? '—' : run.cpuSeconds.toFixed(2),
      perCpu === undefined ? '—' : count(perCpu),
    ]);
  }
  rows.push([]);
  rows.push(['Spillway ÷ peer', 'request', 'req/s', '', '', '', '', 'req/CPU-s']);
  for (const r of syncRatios(runs)) {
    rows.push([
      `÷ ${r.peer}`,
      r.method,
      times(r.perSecond),
      '',
      '',
      '',
      '',
      r.perCpuSecond === undefined ? '—' : times(r.perCpuSecond),
    ]);
  }
  return align(rows, 2);
}

export function peerCaptureTable(runs: PeerCaptureRun[]): string {
  const rows: string[][] = [
    [
      'system',
      'store',
      'captures/s',
      'p50 ms',
      'p99 ms',
      'answered 202',
      'stored',
      'check',
      'CPU ms/op',
      'store CPU ms/op',
    ],
  ];
  for (const run of runs) {
    const measured = run.load.answered;
    rows.push([
      run.system,
      run.store,
      ...figures(run.load).slice(0, 3),
      count(run.answers202),
      count(run.stored),
      run.stored === run.answers202 ? 'OK' : 'MISMATCH',
      msPerOperation(run.cpuSeconds, measured),
      msPerOperation(run.storeCpuSeconds, measured),
    ]);
  }
  rows.push([]);
  rows.push(['Spillway ÷ peer', 'store', 'captures/s']);
  for (const r of captureRatios(runs)) rows.push([`÷ ${r.peer}`, r.spillway, times(r.perSecond)]);
  return align(rows, 2);
}

export function peerDrainTable(runs: PeerDrainRun[]): string {
  const rows: string[][] = [
    [
      'system',
      'backlog',
      'outage s',
      'first replay s',
      'drained in s',
      'replays/s',
      'delivered',
      'completed',
    ],
  ];
  for (const run of runs) {
    const rate =
      run.drainSeconds !== undefined &&
      run.firstReplaySeconds !== undefined &&
      run.drainSeconds > run.firstReplaySeconds
        ? run.delivered / (run.drainSeconds - run.firstReplaySeconds)
        : undefined;
    rows.push([
      run.system,
      count(run.backlog),
      run.outageSeconds.toFixed(1),
      seconds(run.firstReplaySeconds),
      seconds(run.drainSeconds),
      rate === undefined ? '—' : count(rate),
      count(run.delivered),
      count(run.completed),
    ]);
  }
  return align(rows, 1);
}

export function loopDelayTable(
  runs: Array<{ run: string; loopDelay: LoopDelay; idleLoopDelay?: LoopDelay | undefined }>,
): string {
  const rows: string[][] = [
    ['Spillway gateway during', 'p50 ms', 'p99 ms', 'max ms', 'samples', 'idle p99 ms'],
  ];
  for (const { run, loopDelay, idleLoopDelay } of runs) {
    rows.push([
      run,
      ms(loopDelay.p50Ms),
      ms(loopDelay.p99Ms),
      ms(loopDelay.maxMs),
      count(loopDelay.samples),
      idleLoopDelay === undefined ? '—' : ms(idleLoopDelay.p99Ms),
    ]);
  }
  return align(rows, 1);
}

export function targetTable(checks: TargetCheck[]): string {
  const rows: string[][] = [['issue 11 target', 'measured', 'target', 'verdict']];
  for (const c of checks) {
    const bound = c.atLeast === undefined ? `≤ ${unit(c.atMost!, c.unit)}` : `≥ ${unit(c.atLeast, c.unit)}`;
    const measured = c.measured === undefined ? '—' : unit(c.measured, c.unit);
    rows.push([c.target, measured, bound, c.met === undefined ? 'not measured' : c.met ? 'met' : 'NOT MET']);
  }
  return align(rows, 1);
}

const msPerOperation = (cpuSeconds: number | undefined, operations: number) =>
  cpuSeconds === undefined || operations === 0 ? '—' : ((cpuSeconds * 1000) / operations).toFixed(3);
const seconds = (n: number | undefined) => (n === undefined ? '—' : n.toFixed(2));
const unit = (n: number, u: TargetCheck['unit']) =>
  u === '×' ? times(n) : u === 'ms' ? `${ms(n)} ms` : `${n.toFixed(2)} s`;
