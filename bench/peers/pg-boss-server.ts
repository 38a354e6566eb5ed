/**
 * Peer child process: Fastify + pg-boss. Each request is a job sent to a
 * pg-boss queue in its own PostgreSQL schema (`synchronous_commit` as the
 * server has it, `on` by default) and answered 202 once `send` resolves.
 *
 * With `--upstream`, it also runs pg-boss workers that send each job to the
 * upstream (8 in flight: 2 local workers fetching 4 jobs each, fetching again
 * at once while batches come back full, polling every 0.5 s, pg-boss's
 * shortest, when idle); a job whose call fails is retried every second.
 *
 *   node bench/peers/pg-boss-server.ts --postgres URL --schema NAME [--upstream URL]
 *
 * Over IPC, `'count'` answers `{ stored, completed }`: the queue's jobs in the
 * database. SIGTERM stops it (workers first) and exits 0.
 */
import { parseArgs } from 'node:util';
import { PgBoss } from 'pg-boss';
import { type CapturedRequest, startCaptureServer, upstreamCaller } from './queue-http.ts';

const QUEUE = 'captures';
const { values } = parseArgs({
  options: { postgres: { type: 'string' }, schema: { type: 'string' }, upstream: { type: 'string' } },
});
const schema = values.schema!;
if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`--schema must be a plain identifier, got ${schema}`);

const boss = new PgBoss({
  connectionString: values.postgres!,
  schema,
  max: 16,
  schedule: false,
  openTelemetry: { enabled: false },
});
boss.on('error', (error) => console.error('pg-boss:', error));
await boss.start();
await boss.createQueue(QUEUE, { retryLimit: 100_000, retryDelay: 1, expireInSeconds: 60 });

const upstream = values.upstream ? upstreamCaller(values.upstream) : undefined;
if (upstream) {
  await boss.work<CapturedRequest>(
    QUEUE,
    {
      batchSize: 4,
      localConcurrency: 2,
      pollingIntervalSeconds: 0.5,
      burstWhenBatchFull: true,
      perJobResults: true,
    },
    (jobs) =>
      Promise.all(
        jobs.map(async (job) => {
          try {
            await upstream.call(job.data);
            return { id: job.id, status: 'completed' as const };
          } catch (error) {
            return { id: job.id, status: 'failed' as const, output: { message: (error as Error).message } };
          }
        }),
      ),
  );
}

const { app, port } = await startCaptureServer((request) => boss.send(QUEUE, request));
process.send?.({ ready: { port } });

process.on('message', (message) => {
  if (message !== 'count') return;
  boss
    .getDb()
    .executeSql(
      `SELECT count(*)::int AS stored, (count(*) FILTER (WHERE state = 'completed'))::int AS completed
         FROM ${schema}.job WHERE name = $1`,
      [QUEUE],
    )
    .then(
      ({ rows }) => process.send?.(rows[0]),
      (error: unknown) => process.send?.({ error: String(error) }),
    );
});

process.once('SIGTERM', () => {
  void (async () => {
    await app.close();
    await boss.stop({ graceful: true, timeout: 5_000 });
    await upstream?.close();
    process.exit(0);
  })();
});
