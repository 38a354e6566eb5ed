/**
 * Peer child process: Fastify + BullMQ. Each request is a job added to a
 * BullMQ queue on the Redis at `--redis-port` (which the bench starts with
 * `appendonly yes`, `appendfsync always`: a write is on disk before Redis
 * acknowledges it) and answered 202 once `add` resolves.
 *
 *   node bench/peers/bullmq-server.ts --redis-port N
 *
 * Over IPC, `'count'` answers `{ stored }`: the queue's jobs in Redis, in any
 * state. SIGTERM closes the queue and exits 0.
 */
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startCaptureServer } from './queue-http.ts';

const { values } = parseArgs({ options: { 'redis-port': { type: 'string' } } });
// An ioredis instance, not options: BullMQ loads ioredis with require(), absent in native ESM.
const connection = new Redis({
  host: '127.0.0.1',
  port: Number(values['redis-port']),
  maxRetriesPerRequest: null,
});
const queue = new Queue('captures', { connection });
await queue.waitUntilReady();

const { app, port } = await startCaptureServer(async (request) => (await queue.add('capture', request)).id);
process.send?.({ ready: { port } });

process.on('message', (message) => {
  if (message !== 'count') return;
  queue.getJobCountByTypes('wait', 'prioritized', 'delayed', 'active', 'completed', 'failed').then(
    (stored) => process.send?.({ stored }),
    (error: unknown) => process.send?.({ error: String(error) }),
  );
});

process.once('SIGTERM', () => {
  void (async () => {
    await app.close();
    await queue.close();
    connection.disconnect();
    process.exit(0);
  })();
});
