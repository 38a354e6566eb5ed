/**
 * `npm run bench`: Spillway's throughput and latency on this machine.
 *
 *   1. Sync pass-through: a trivial upstream called directly, then through the
 *      gateway (GET, and POST with a ~200-byte JSON body); Spillway/direct ratios.
 *   2. Durable captures: the gateways' upstream is a closed port, so every
 *      request is captured and answered 202: one gateway on SQLite
 *      (synchronous=FULL), then one and two gateways sharing PostgreSQL
 *      (synchronous_commit=on), the load split between them. The gateways
 *      capture only (replay.concurrency 0), so this measures the capture path;
 *      `--replay-during-capture` keeps their default replay workers running,
 *      retrying against the closed port as they would in production. Then the
 *      gateways stop and the store must hold one operation per 202.
 *   3. Replay: the backlog each capture run left is made due at once, the
 *      upstream is up, and the same number of gateways replays it; replays/s
 *      until every operation has Succeeded, each delivered exactly once.
 *   4. Backlog (backlog.ts): replay through the store port at 2,000 and
 *      200,000 operations due.
 *
 * With `--peers`, instead, Spillway side by side with its peers (peers.ts): a
 * bare undici proxy, @fastify/http-proxy, nginx when installed, Fastify +
 * pg-boss, Fastify + BullMQ on a Redis with appendfsync always; numbers to
 * bench/results/peers.json.
 *
 * Upstream and gateways run as child processes; autocannon runs here. Tables
 * go to stdout, progress to stderr, numbers to bench/results/latest.json. Any
 * lost capture or replay, error or unexpected status exits non-zero. Without a
 * reachable PostgreSQL the PostgreSQL rows are skipped, with a note.
 *
 *   npm run bench [-- --quick] [-- --seconds N] [-- --connections N] [-- --postgres URL]
 *                 [-- --replay-during-capture]
 *   npm run bench -- --peers [--quick] [--rounds N] [--drain-backlog N] [--outage SECONDS] [...]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { type BacklogSummary, backlogTable, benchBacklog } from './backlog.ts';
import { childGroup, freePort } from './children.ts';
import type { LoadResult } from './load.ts';
import { benchPeers } from './peers.ts';
import {
  type CaptureSummary,
  captureTable,
  loopDelayTable,
  peerCaptureTable,
  peerDrainTable,
  peerSyncTable,
  peerTargets,
  type ReplaySummary,
  ratios,
  replayTable,
  type ServerCost,
  type SyncComparison,
  storeCheckLine,
  syncTable,
  targetTable,
  writeJson,
} from './report.ts';
import {
  count202,
  loadSpec,
  measureCaptures,
  measureSync,
  postBody,
  SYNC_WARM_UP_SECONDS,
  type Timing,
  unexpectedAnswers,
  warmUpSync,
} from './scenarios.ts';
import {
  type BenchStore,
  postgresBenchStore,
  postgresUnreachable,
  type ServerUsage,
  sqliteBenchStore,
} from './store-check.ts';

type Ports = { port: number };

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    peers: { type: 'boolean', default: false },
    'drain-backlog': { type: 'string' },
    outage: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    connections: { type: 'string', default: '32' },
    'replay-during-capture': { type: 'boolean', default: false },
    postgres: {
      type: 'string',
      default: process.env.SPILLWAY_BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    },
  },
});
const timing: Timing = {
  warmUpSeconds: 1,
  // --peers measures each system `rounds` times: 3 s a run keeps the whole within about 4 minutes.
  seconds: values.seconds ? positive('seconds', values.seconds) : values.quick ? 1 : values.peers ? 3 : 5,
};
const connections = positive('connections', values.connections);
/** Each method through each proxy before the sync scenario measures (warmUpSync). */
const syncWarmUpSeconds = values.quick ? 1 : SYNC_WARM_UP_SECONDS;
const drainBacklog = values['drain-backlog']
  ? positive('drain-backlog', values['drain-backlog'])
  : values.quick
    ? 200
    : 2_000;
const rounds = values.rounds ? positive('rounds', values.rounds) : values.quick ? 1 : 3;
const outageSeconds = values.outage ? positive('outage', values.outage) : values.quick ? 2 : 10;
const gatewayEnv = { SPILLWAY_LOG_LEVEL: 'warn' };
/** Replay runs drain at most this many operations per second of `--seconds`, the rest parked. */
const REPLAY_BACKLOG_PER_SECOND = 2_000;
const problems: string[] = [];
const progress = (message: string) => process.stderr.write(`· ${message}\n`);
const url = (port: number) => `http://127.0.0.1:${port}`;

const machine = {
  cores: cpus().length,
  cpu: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
};
const replayDuringCapture = values['replay-during-capture'];
const settings = {
  connections,
  ...timing,
  postBodyBytes: Buffer.byteLength(postBody),
  ...(values.peers ? { peers: true, rounds, drainBacklog, outageSeconds } : { replayDuringCapture }),
};
const startedAt = new Date();
const dir = mkdtempSync(join(tmpdir(), 'spillway-bench-'));
const children = childGroup();
const start = (script: string, args: string[], env?: Record<string, string>) =>
  children.start<Ports>(script, args, env);

const notes: string[] = [];
console.log(
  `\nSpillway bench: ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ${machine.platform}` +
    `\n${connections} connections, ${timing.seconds} s per run after ${timing.warmUpSeconds} s of warm-up, loopback`,
);
let results: Record<string, unknown>;
try {
  results = values.peers ? await peersRun() : await standardRun();
} finally {
  await children.stopAll();
  rmSync(dir, { recursive: true, force: true });
}
for (const note of notes) console.log(`\nNote: ${note}`);

const resultsName = values.peers ? 'peers.json' : 'latest.json';
writeJson(new URL(`./results/${resultsName}`, import.meta.url), {
  ok: problems.length === 0,
  startedAt,
  finishedAt: new Date(),
  machine,
  settings,
  ...results,
  notes,
  problems,
});
console.log(`\nNumbers written to bench/results/${resultsName}`);

if (problems.length > 0) {
  console.error(`\nBENCH FAILED:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  process.exitCode = 1;
}

/** Scenarios 1–4: Spillway alone. */
async function standardRun() {
  let sync: SyncComparison[] = [];
  const captures: CaptureSummary[] = [];
  const replays: ReplaySummary[] = [];
  let backlogRuns: BacklogSummary[] = [];
  const stores: BenchStore[] = [];
  try {
    sync = await benchSync();
    const setups: Array<{ store: BenchStore; gateways: number }> = [
      { store: sqliteBenchStore(join(dir, 'captures.db')), gateways: 1 },
    ];
    const unreachable = await postgresUnreachable(values.postgres);
    if (unreachable) {
      notes.push(
        `PostgreSQL not reachable at ${hostOf(values.postgres)} (${unreachable}): its rows are skipped.`,
      );
    } else {
      for (const gateways of [1, 2]) {
        const schema = `spillway_bench_${randomBytes(4).toString('hex')}`;
        setups.push({ store: postgresBenchStore(values.postgres, schema), gateways });
      }
    }
    for (const { store, gateways } of setups) {
      stores.push(store);
      const summary = await benchCaptures(store, gateways);
      captures.push(summary);
      const backlog = Math.min(summary.storedOperations, REPLAY_BACKLOG_PER_SECOND * timing.seconds);
      replays.push(await benchReplays(store, gateways, backlog));
    }
    backlogRuns = await benchBacklog(unreachable ? undefined : values.postgres, progress);
  } catch (error) {
    problems.push(`the bench crashed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await children.stopAll();
    for (const store of stores) await store.drop().catch(() => {});
  }

  if (sync.length > 0) {
    console.log('\n1. Sync pass-through (healthy upstream, answers 200)\n');
    console.log(syncTable(sync));
  }
  if (captures.length > 0) {
    console.log(
      `\n2. Durable captures (upstream down, answers 202: SQLite synchronous=FULL, PostgreSQL synchronous_commit=on;` +
        ` ${replayDuringCapture ? 'gateways replaying in the background' : 'capture-only gateways'})\n`,
    );
    console.log(captureTable(captures));
    console.log(`\n${captures.map(storeCheckLine).join('\n')}`);
  }
  if (replays.length > 0) {
    console.log('\n3. Replay (the capture backlog, all due at once; upstream up, answers 200)\n');
    console.log(replayTable(replays));
  }
  if (backlogRuns.length > 0) {
    console.log(
      '\n4. Backlog (replay through the store port with 2,000 and 200,000 operations due; captures meanwhile)\n',
    );
    console.log(backlogTable(backlogRuns));
  }
  return {
    syncPassThrough: sync.map((c) => ({ ...c, ratioSpillwayToDirect: ratios(c) })),
    durableCaptures: captures,
    replays,
    backlog: backlogRuns,
  };
}

/** `--peers`: Spillway side by side with a bare proxy, @fastify/http-proxy, pg-boss and BullMQ (bench/peers.ts). */
async function peersRun() {
  const unreachable = await postgresUnreachable(values.postgres);
  if (unreachable) {
    notes.push(
      `PostgreSQL not reachable at ${hostOf(values.postgres)} (${unreachable}): Spillway on PostgreSQL and pg-boss are skipped.`,
    );
  }
  const peers = await benchPeers({
    connections,
    timing,
    ...(unreachable ? {} : { postgres: values.postgres }),
    rounds,
    syncWarmUpSeconds,
    drainBacklog,
    outageSeconds,
    dir,
    progress,
  });
  problems.push(...peers.problems);
  notes.push(...peers.notes);
  const { sync, captures, drains } = peers;
  console.log(
    '\n1. Sync pass-through (healthy upstream, answers 200; CPU: the proxy process over the measured run)\n',
  );
  console.log(peerSyncTable(sync));
  console.log(
    '\n2. Durable captures (answers 202 once stored: SQLite synchronous=FULL, PostgreSQL synchronous_commit=on,' +
      ' Redis appendfsync always; CPU ms per measured capture)\n',
  );
  console.log(peerCaptureTable(captures));
  console.log(
    `\n3. Drain after an outage (${drainBacklog.toLocaleString('en-US')} captured while the upstream is down,` +
      ` back after ${outageSeconds} s; times from the upstream listening again)\n`,
  );
  console.log(peerDrainTable(drains));
  const loops = [
    ...sync.flatMap(({ method, loopDelay, idleLoopDelay }) =>
      loopDelay ? [{ run: `sync ${method}`, loopDelay, idleLoopDelay }] : [],
    ),
    ...captures.flatMap(({ store, loopDelay, idleLoopDelay }) =>
      loopDelay ? [{ run: `captures (${store})`, loopDelay, idleLoopDelay }] : [],
    ),
  ];
  console.log(
    '\n4. Event-loop delay of the Spillway gateway (monitorEventLoopDelay, over each measured run;' +
      ' idle: an idle Node process over the same runs, the wait for a core)\n',
  );
  console.log(loopDelayTable(loops));
  const targets = peerTargets(peers);
  console.log('\nTargets (issue 11)\n');
  console.log(targetTable(targets));
  return { peers: { sync, captures, drains, targets } };
}

async function benchSync(): Promise<SyncComparison[]> {
  const upstream = await start('./upstream.ts', []);
  const upstreamUrl = url(upstream.info.port);
  const gateway = await start(
    './gateway.ts',
    ['--upstream', upstreamUrl, '--store', join(dir, 'pass-through.db')],
    gatewayEnv,
  );
  const results: SyncComparison[] = [];
  progress('warming up the gateway with GET and POST');
  problems.push(...(await warmUpSync([url(gateway.info.port)], connections, syncWarmUpSeconds)));
  for (const method of ['GET', 'POST'] as const) {
    progress(`${method} direct to the upstream`);
    const direct = await measureSync(loadSpec(upstreamUrl, method, connections), timing);
    expectOnly(`${method} direct`, direct, '200');
    progress(`${method} through Spillway`);
    const spillway = await measureSync(loadSpec(url(gateway.info.port), method, connections), timing);
    expectOnly(`${method} via Spillway`, spillway, '200');
    results.push({ method, direct, spillway });
  }
  const code = await gateway.stop();
  if (code !== 0) problems.push(`the pass-through gateway exited with code ${code}`);
  await upstream.stop();
  return results;
}

async function benchCaptures(store: BenchStore, gateways: number): Promise<CaptureSummary> {
  const label = `${store.label}, ${gateways} gateway${gateways > 1 ? 's' : ''}`;
  const upstreamDown = url(await freePort());
  const running = await Promise.all(
    Array.from({ length: gateways }, () =>
      start(
        './gateway.ts',
        [
          '--upstream',
          upstreamDown,
          '--store',
          store.location,
          ...(replayDuringCapture ? [] : ['--replay-concurrency', '0']),
        ],
        gatewayEnv,
      ),
    ),
  );
  progress(`POST with the upstream down: captures (${label})`);
  const share = Math.max(1, Math.round(connections / gateways));
  const specs = running.map((gateway) => loadSpec(url(gateway.info.port), 'POST', share));
  const before = await store.usage();
  const runs = await measureCaptures(specs, timing);
  const after = await store.usage();
  for (const code of await Promise.all(running.map((gateway) => gateway.stop()))) {
    if (code !== 0) problems.push(`a capture gateway (${label}) exited with code ${code}`);
  }

  for (const run of runs.warmUp) expectOnly(`capture warm-up (${label})`, run, '202');
  expectOnly(`captures (${label})`, runs.measured, '202');
  if (runs.measured.answered !== runs.planned) {
    problems.push(`captures (${label}): ${runs.measured.answered} of ${runs.planned} requests answered`);
  }
  const summary: CaptureSummary = {
    store: store.label,
    gateways,
    method: 'POST',
    measured: runs.measured,
    warmUpAnswers202: count202(runs.warmUp),
    answers202: count202([...runs.warmUp, runs.measured]),
    storedOperations: await store.operations(),
    server: {},
  };
  summary.server = costPer(before, after, summary.answers202);
  if (summary.storedOperations !== summary.answers202) {
    problems.push(
      `captures lost or invented (${label}): ${summary.storedOperations} operations in the store, ${summary.answers202} answers 202`,
    );
  }
  return summary;
}

/** Makes a backlog of `backlog` due, brings the upstream up and times `gateways` gateways draining it. */
async function benchReplays(store: BenchStore, gateways: number, backlog: number): Promise<ReplaySummary> {
  const label = `${store.label}, ${gateways} gateway${gateways > 1 ? 's' : ''}`;
  await store.makeBacklogDue(backlog);
  const upstream = await start('./upstream.ts', []);
  progress(`replaying the backlog of ${backlog.toLocaleString('en-US')} (${label})`);
  const running = await Promise.all(
    Array.from({ length: gateways }, () =>
      start('./gateway.ts', ['--upstream', url(upstream.info.port), '--store', store.location], gatewayEnv),
    ),
  );
  const readyAt = performance.now();
  const doneAtReady = await store.succeeded();
  const before = await store.usage();
  let succeeded = doneAtReady;
  while (succeeded < backlog) {
    if (performance.now() - readyAt > 120_000) {
      problems.push(`replay (${label}): ${succeeded} of ${backlog} operations succeeded after 120 s`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    succeeded = await store.succeeded();
  }
  const seconds = (performance.now() - readyAt) / 1000;
  const after = await store.usage();
  for (const code of await Promise.all(running.map((gateway) => gateway.stop()))) {
    if (code !== 0) problems.push(`a replay gateway (${label}) exited with code ${code}`);
  }
  const { posts } = await upstream.ask<{ posts: number }>('count');
  await upstream.stop();
  if (posts !== backlog) {
    problems.push(`replay (${label}): the upstream got ${posts} POSTs for ${backlog} operations`);
  }
  return {
    store: store.label,
    gateways,
    backlog,
    seconds,
    perSecond: (succeeded - doneAtReady) / seconds,
    succeeded,
    delivered: posts,
    server: costPer(before, after, succeeded - doneAtReady),
  };
}

/** The server's spending between two readings, per operation. */
function costPer(before: ServerUsage, after: ServerUsage, operations: number): ServerCost {
  const cost: ServerCost = {};
  if (operations <= 0) return cost;
  if (before.walBytes !== undefined && after.walBytes !== undefined) {
    cost.walBytesPerOperation = (after.walBytes - before.walBytes) / operations;
  }
  if (before.cpuSeconds !== undefined && after.cpuSeconds !== undefined) {
    cost.cpuMsPerOperation = ((after.cpuSeconds - before.cpuSeconds) * 1000) / operations;
  }
  return cost;
}

/** Flags any status other than `status`, and any request that got no answer. */
function expectOnly(label: string, run: LoadResult, status: string): void {
  problems.push(...unexpectedAnswers(label, run, status));
}

function hostOf(location: string): string {
  try {
    const parsed = new URL(location);
    return `${parsed.hostname}:${parsed.port || 5432}`;
  } catch {
    return location;
  }
}

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench: --${name} must be a positive integer, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return n;
}
