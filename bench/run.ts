/**
 * `npm run bench`: Spillway's throughput and latency on this machine.
 *
 *   1. Sync pass-through: a trivial upstream called directly, then through the
 *      gateway (GET, and POST with a ~200-byte JSON body); Spillway/direct ratios.
 *   2. Durable captures: the gateway's upstream is a closed port, so every
 *      request is captured to SQLite (synchronous=FULL) and answered 202. Then
 *      the gateway stops and the store file must hold one operation per 202.
 *
 * Upstream and gateway run as child processes; autocannon runs here. Tables go
 * to stdout, progress to stderr, numbers to bench/results/latest.json. Any lost
 * capture, error or unexpected status exits non-zero.
 *
 *   npm run bench [-- --quick] [-- --seconds N] [-- --connections N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Child, startChild } from './children.ts';
import type { LoadResult } from './load.ts';
import {
  type CaptureSummary,
  captureTable,
  ratios,
  type SyncComparison,
  storeCheckLine,
  syncTable,
  writeJson,
} from './report.ts';
import { loadSpec, measureCaptures, measureSync, postBody, type Timing } from './scenarios.ts';
import { countStoredOperations } from './store-check.ts';

type Ports = { port: number };

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    connections: { type: 'string', default: '32' },
  },
});
const timing: Timing = {
  warmUpSeconds: 1,
  seconds: values.seconds ? positive('seconds', values.seconds) : values.quick ? 1 : 5,
};
const connections = positive('connections', values.connections);
const gatewayEnv = { SPILLWAY_LOG_LEVEL: 'warn' };
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
const settings = { connections, ...timing, postBodyBytes: Buffer.byteLength(postBody) };
const startedAt = new Date();
const dir = mkdtempSync(join(tmpdir(), 'spillway-bench-'));
const children: Child<Ports>[] = [];
const start = async (script: string, args: string[], env?: Record<string, string>) => {
  const child = await startChild<Ports>(script, args, env);
  children.push(child);
  return child;
};

let sync: SyncComparison[] = [];
let captures: CaptureSummary | undefined;
try {
  sync = await benchSync();
  captures = await benchCaptures();
} catch (error) {
  problems.push(`the bench crashed: ${(error as Error).stack ?? String(error)}`);
} finally {
  await Promise.all(children.map((child) => child.stop(5_000)));
  rmSync(dir, { recursive: true, force: true });
}

console.log(
  `\nSpillway bench: ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ${machine.platform}` +
    `\n${connections} connections, ${timing.seconds} s per run after ${timing.warmUpSeconds} s of warm-up, loopback`,
);
if (sync.length > 0) {
  console.log('\n1. Sync pass-through (healthy upstream, answers 200)\n');
  console.log(syncTable(sync));
}
if (captures) {
  console.log('\n2. Durable captures (upstream down: SQLite synchronous=FULL, answers 202)\n');
  console.log(captureTable(captures));
  console.log(`\n${storeCheckLine(captures)}`);
}

const resultsFile = new URL('./results/latest.json', import.meta.url);
writeJson(resultsFile, {
  ok: problems.length === 0,
  startedAt,
  finishedAt: new Date(),
  machine,
  settings,
  syncPassThrough: sync.map((c) => ({ ...c, ratioSpillwayToDirect: ratios(c) })),
  durableCaptures: captures ?? null,
  problems,
});
console.log(`\nNumbers written to bench/results/latest.json`);

if (problems.length > 0) {
  console.error(`\nBENCH FAILED:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  process.exitCode = 1;
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

async function benchCaptures(): Promise<CaptureSummary> {
  const store = join(dir, 'captures.db');
  const gateway = await start(
    './gateway.ts',
    ['--upstream', url(await closedPort()), '--store', store],
    gatewayEnv,
  );
  progress('POST with the upstream down: captures');
  const runs = await measureCaptures(loadSpec(url(gateway.info.port), 'POST', connections), timing);
  const code = await gateway.stop();
  if (code !== 0) problems.push(`the capture gateway exited with code ${code}`);

  const all = [...runs.warmUp, runs.measured];
  for (const run of runs.warmUp) expectOnly('capture warm-up', run, '202');
  expectOnly('captures', runs.measured, '202');
  if (runs.measured.answered !== runs.planned) {
    problems.push(`captures: ${runs.measured.answered} of ${runs.planned} requests answered`);
  }
  const count202 = (runs: LoadResult[]) => runs.reduce((sum, run) => sum + (run.statuses['202'] ?? 0), 0);
  const summary: CaptureSummary = {
    method: 'POST',
    measured: runs.measured,
    warmUpAnswers202: count202(runs.warmUp),
    answers202: count202(all),
    storedOperations: countStoredOperations(store),
  };
  if (summary.storedOperations !== summary.answers202) {
    problems.push(
      `captures lost or invented: ${summary.storedOperations} operations in the store, ${summary.answers202} answers 202`,
    );
  }
  return summary;
}

/** Flags any status other than `status`, and any request that got no answer. */
function expectOnly(label: string, run: LoadResult, status: string): void {
  const others = Object.entries(run.statuses).filter(([code]) => code !== status);
  if (others.length > 0) {
    problems.push(`${label}: unexpected statuses ${others.map(([code, n]) => `${n}× ${code}`).join(', ')}`);
  }
  if (run.errors > 0) problems.push(`${label}: ${run.errors} requests failed or timed out without an answer`);
  if (run.answered === 0) problems.push(`${label}: no answers at all`);
}

/** A loopback port nothing listens on: bound by the OS, then released. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench: --${name} must be a positive integer, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return n;
}
