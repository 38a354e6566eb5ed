/**
 * Scenario 4, the backlog: does replay cost the same with 200,000 operations
 * due as with 2,000? On each store, a backlog of each size is written straight
 * into a fresh store (all due, two routes), then the store is opened in this
 * process and 1,000 operations are replayed through the port as the workers
 * do it (4 loops, each leasing 8 and completing each with its lease token),
 * while 2 other loops capture new operations, whose latencies give the capture
 * p50/p99 while the backlog drains. Replay rate 200k/2k is the ratio the issue
 * asks to be >= 0.8. Each size is measured ROUNDS times, the sizes taking
 * turns on fresh stores, and the median of each is kept: one run of 1,000
 * replays lasts a second or two, and on a shared machine a single one says
 * more about the neighbours than about the backlog. A PostgreSQL backlog is
 * vacuumed after it is written, as autovacuum would have done to a backlog that
 * built up over minutes: otherwise the run pays for a fresh bulk load (hint
 * bits set on first read, autovacuum starting mid-run), not for the backlog's
 * size. Loopback and in-process only; bounded by the sizes and rounds.
 *
 *   node bench/backlog.ts [--postgres URL] [--scattered]   (also run by `npm run bench`)
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { newOperationId } from '../src/engine/operation-id.ts';
import type { OperationStore } from '../src/store/port.ts';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';

export const BACKLOGS = [2_000, 200_000] as const;
const REPLAYS = 1_000;
/** Runs of each size; the median is reported. */
const ROUNDS = 5;
const LEASERS = 4;
const BATCH = 8;
const CAPTURERS = 2;

export interface BacklogRun {
  store: string;
  backlog: number;
  /** The median of the rounds. */
  replaysPerSecond: number;
  /** Every round's rate, in the order run. */
  rounds: number[];
  captures: number;
  captureP50Ms: number;
  captureP99Ms: number;
}

export interface BacklogSummary {
  store: string;
  runs: BacklogRun[];
  /** Replay rate at the largest backlog over the rate at the smallest. */
  ratio: number;
}

/**
 * How the backlog's rows relate to its replay order. `captured`: as Spillway
 * writes a backlog over time, ids (time-ordered) and creation times ascending
 * in capture order, due times in the same order, so a drain walks every index
 * roughly in key order. `scattered`: what this bench wrote until 3 Dec 2026,
 * ids in text order (`op_bench1`, `op_bench10`, `op_bench100`…, far from due
 * order) and one creation time for all, as in a store written before ids were
 * time-ordered: each replay then touches leaf pages of its own in the indexes
 * that end with the id.
 */
export type BacklogLayout = 'captured' | 'scattered';

/** Rows of a backlog, as an INSERT … SELECT over the numbers 1…N (`n`, `id` its text): all due, two routes. */
const rows = (n: string, id: string, layout: BacklogLayout, now: number, bytes: string, headers: string) => {
  const created = layout === 'captured' ? `${now} - 1000000 + ${n}` : `${now}`;
  return `SELECT 'op_bench' || ${id},
  CASE WHEN ${n} % 2 = 0 THEN 'default' ELSE 'orders' END, 'POST', '/payments', '', ${headers}, ${bytes},
  'NotStarted', 0, ${now} - 1000000 + ${n}, false, 0, ${created}, ${created}`;
};
const COLUMNS = `id, route, method, path, query, request_headers, request_body, status, attempts,
  next_attempt_at, outcome_unknown, priority, created_at, updated_at`;

interface Setup {
  label: string;
  /** A fresh store holding `backlog` due operations. */
  open(backlog: number): Promise<OperationStore>;
  /**
   * Removes the stores opened so far (each is closed by then). Called after
   * every round: a round's store left on disk kept the page cache and the
   * disk busy for the next round, whose rates then fell round after round.
   */
  cleanUp(): Promise<void>;
}

function sqliteSetup(layout: BacklogLayout): Setup {
  let dir: string | undefined;
  let n = 0;
  return {
    label: 'SQLite',
    open: async (backlog) => {
      dir ??= mkdtempSync(join(tmpdir(), 'spillway-backlog-'));
      const path = join(dir, `backlog-${n++}.db`);
      await new SqliteStore({ path }).close(); // migrates
      const db = new DatabaseSync(path);
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${backlog})
        INSERT INTO operations (${COLUMNS}) ${rows('i', layout === 'captured' ? "printf('%09d', i)" : 'i', layout, Date.now(), "X'7b7d'", "'[]'")} FROM n`);
      db.exec('ANALYZE');
      db.close();
      return new SqliteStore({ path });
    },
    cleanUp: async () => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}

function postgresSetup(url: string, layout: BacklogLayout): Setup {
  const schemas: string[] = [];
  const admin = async (text: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  return {
    label: 'PostgreSQL',
    open: async (backlog) => {
      const schema = `spillway_backlog_${randomBytes(4).toString('hex')}`;
      schemas.push(schema);
      const at = new URL(url);
      at.searchParams.set('schema', schema);
      await (await PostgresStore.open({ url: at.toString() })).close(); // migrates
      await admin(`INSERT INTO ${schema}.operations (${COLUMNS})
        ${rows('n', layout === 'captured' ? "lpad(n::text, 9, '0')" : 'n', layout, Date.now(), "'\\x7b7d'::bytea", "'[]'::jsonb")} FROM generate_series(1, ${backlog}) AS n`);
      await admin(`VACUUM (ANALYZE) ${schema}.operations`); // a statement of its own: not in a transaction
      return PostgresStore.open({ url: at.toString() });
    },
    cleanUp: async () => {
      for (const schema of schemas.splice(0)) await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  };
}

async function measure(store: OperationStore, label: string, backlog: number): Promise<BacklogRun> {
  let replayed = 0;
  let draining = true;
  const latencies: number[] = [];
  const ok = { status: 200, headers: [], body: new Uint8Array() };
  const leaser = async (owner: string) => {
    while (replayed < REPLAYS) {
      const leased = await store.lease({ owner, limit: BATCH, leaseMs: 30_000 });
      if (leased.length === 0) throw new Error(`${label}: nothing to lease with ${backlog - replayed} due`);
      await Promise.all(leased.map((op) => store.complete(op.id, op.leaseToken, ok)));
      replayed += leased.length;
    }
  };
  const capturer = async () => {
    while (draining) {
      const started = performance.now();
      await store.capture({
        id: newOperationId(),
        route: 'captures',
        request: { method: 'POST', path: '/payments', query: '', headers: [], body: new Uint8Array(200) },
        priority: 0,
        idempotencyKey: null,
        tenant: null,
        traceparent: null,
        tracestate: null,
        attempts: 0,
        nextAttemptAt: Date.now() + 3_600_000, // not due: only the backlog is replayed
        outcomeUnknown: false,
      });
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  const capturing = Array.from({ length: CAPTURERS }, capturer);
  await Promise.all(Array.from({ length: LEASERS }, (_, i) => leaser(`bench-${i}`)));
  const seconds = (performance.now() - started) / 1000;
  draining = false;
  await Promise.all(capturing);
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)] ?? 0;
  return {
    store: label,
    backlog,
    replaysPerSecond: replayed / seconds,
    rounds: [replayed / seconds],
    captures: latencies.length,
    captureP50Ms: at(0.5),
    captureP99Ms: at(0.99),
  };
}

/** Runs the scenario on SQLite and, when `postgresUrl` is given, PostgreSQL. */
export async function benchBacklog(
  postgresUrl: string | undefined,
  progress: (message: string) => void,
  layout: BacklogLayout = 'captured',
): Promise<BacklogSummary[]> {
  const setups = [sqliteSetup(layout), ...(postgresUrl ? [postgresSetup(postgresUrl, layout)] : [])];
  const summaries: BacklogSummary[] = [];
  for (const setup of setups) {
    const measured = new Map<number, BacklogRun[]>(BACKLOGS.map((backlog) => [backlog, []]));
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        for (const backlog of BACKLOGS) {
          const what = `backlog of ${backlog.toLocaleString('en-US')} due (${setup.label}), round ${round}/${ROUNDS}`;
          progress(`${what}: writing it`);
          const store = await setup.open(backlog);
          try {
            progress(`${what}: replaying ${REPLAYS}`);
            measured.get(backlog)!.push(await measure(store, setup.label, backlog));
          } finally {
            await store.close();
            await setup.cleanUp();
          }
        }
      }
    } finally {
      await setup.cleanUp();
    }
    const runs = BACKLOGS.map((backlog) => medianRun(measured.get(backlog)!));
    summaries.push({
      store: setup.label,
      runs,
      ratio: runs.at(-1)!.replaysPerSecond / runs[0]!.replaysPerSecond,
    });
  }
  return summaries;
}

/** The round with the median replay rate, carrying every round's rate. */
function medianRun(rounds: BacklogRun[]): BacklogRun {
  const sorted = [...rounds].sort((a, b) => a.replaysPerSecond - b.replaysPerSecond);
  return { ...sorted[Math.floor(sorted.length / 2)]!, rounds: rounds.map((r) => r.replaysPerSecond) };
}

export function backlogTable(summaries: BacklogSummary[]): string {
  const lines = [
    'store        backlog  replays/s  captures  capture p50 ms  capture p99 ms  rounds (replays/s)',
  ];
  for (const { runs, ratio, store } of summaries) {
    for (const run of runs) {
      lines.push(
        `${run.store.padEnd(10)} ${run.backlog.toLocaleString('en-US').padStart(9)} ${run.replaysPerSecond
          .toFixed(0)
          .padStart(
            10,
          )} ${String(run.captures).padStart(9)} ${run.captureP50Ms.toFixed(2).padStart(15)} ${run.captureP99Ms
          .toFixed(2)
          .padStart(15)}  ${run.rounds.map((r) => r.toFixed(0)).join(' ')}`,
      );
    }
    lines.push(
      `${store.padEnd(10)} ratio ${BACKLOGS.at(-1)!.toLocaleString('en-US')}/${BACKLOGS[0].toLocaleString('en-US')}: ${ratio.toFixed(2)}× (target ≥ 0.8×)`,
    );
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { postgres: { type: 'string' }, scattered: { type: 'boolean' } } });
  const summaries = await benchBacklog(
    values.postgres,
    (m) => process.stderr.write(`· ${m}\n`),
    values.scattered ? 'scattered' : 'captured',
  );
  console.log(backlogTable(summaries));
}
