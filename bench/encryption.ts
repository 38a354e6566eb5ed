/**
 * What encryption at rest (storeEncryptionKey) costs the capture path: captures
 * per second through the store port with and without a key, on SQLite
 * (synchronous=FULL, group commit) and PostgreSQL when reachable. Each capture
 * carries a 1 KiB body and an Authorization header, as a payment would; the
 * captures are issued `--concurrency` at a time, as concurrent requests would
 * be. Runs alternate plain and sealed (`--rounds` each) so a change in the
 * machine's load shows in both; the ratio is of the summed rates.
 *
 *   npx node bench/encryption.ts [--captures N] [--rounds N] [--concurrency N] [--postgres URL]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { newOperationId } from '../src/engine/operation-id.ts';
import type { NewOperation, OperationStore } from '../src/store/port.ts';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { newStoreKey, StoreKeyring } from '../src/store/sealed-values.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';

const { values } = parseArgs({
  options: {
    captures: { type: 'string', default: '4000' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '64' },
    postgres: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/test' },
  },
});
const captures = Number(values.captures);
const rounds = Number(values.rounds);
const concurrency = Number(values.concurrency);
const keys = StoreKeyring.parse([newStoreKey()]);
const body = new Uint8Array(randomBytes(1024));

const operation = (): NewOperation => ({
  id: newOperationId(),
  route: 'default',
  request: {
    method: 'POST',
    path: '/payments',
    query: '',
    headers: [
      ['authorization', `Bearer ${randomBytes(24).toString('base64url')}`],
      ['content-type', 'application/json'],
    ],
    body,
  },
  priority: 0,
  idempotencyKey: null,
  tenant: null,
  traceparent: null,
  tracestate: null,
  attempts: 1,
  nextAttemptAt: Date.now() + 3_600_000,
  outcomeUnknown: false,
});

/** Captures per second: `captures` of them, `concurrency` in flight. */
async function rate(store: OperationStore): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < captures) await store.capture(operation());
    }),
  );
  return captures / ((performance.now() - started) / 1_000);
}

async function compare(name: string, open: (sealed: boolean) => Promise<OperationStore>) {
  const sums = { plain: 0, sealed: 0 };
  for (let round = 0; round < rounds; round++) {
    for (const sealed of [false, true]) {
      const store = await open(sealed);
      try {
        sums[sealed ? 'sealed' : 'plain'] += await rate(store);
      } finally {
        await store.close();
      }
    }
  }
  const plain = sums.plain / rounds;
  const sealed = sums.sealed / rounds;
  console.log(
    `${name.padEnd(10)} plain ${plain.toFixed(0).padStart(6)}/s   sealed ${sealed.toFixed(0).padStart(6)}/s   sealed/plain ${(sealed / plain).toFixed(2)}`,
  );
}

const dir = mkdtempSync(join(tmpdir(), 'spillway-bench-seal-'));
try {
  console.log(
    `captures through the store port: ${captures} per run, ${concurrency} at a time, 1 KiB body + Authorization, ${rounds} rounds each`,
  );
  let n = 0;
  await compare('sqlite', async (sealed) => {
    const path = join(dir, `store-${n++}.db`);
    return new SqliteStore({ path, ...(sealed ? { encryptionKeys: keys } : {}) });
  });
  try {
    const schema = `spillway_bench_seal_${randomBytes(4).toString('hex')}`;
    const url = new URL(values.postgres);
    url.searchParams.set('schema', schema);
    const probe = await PostgresStore.open({ url: url.toString() });
    await probe.close();
    let m = 0;
    await compare('postgres', async (sealed) => {
      const each = new URL(url);
      each.searchParams.set('schema', `${schema}_${m++}`);
      return PostgresStore.open({ url: each.toString(), ...(sealed ? { encryptionKeys: keys } : {}) });
    });
    // The schemas made for the runs go again.
    const client = new pg.Client({ connectionString: values.postgres });
    await client.connect();
    for (let i = 0; i < m; i++) await client.query(`DROP SCHEMA IF EXISTS ${schema}_${i} CASCADE`);
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  } catch (error) {
    console.log(`postgres   skipped: ${(error as Error).message}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
