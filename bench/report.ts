/**
 * The bench's output: the results as aligned text tables for people, and as
 * JSON (bench/results/latest.json) for tools and for comparing runs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import type { LoadResult } from './load.ts';

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
