/**
 * Bench child process: a Spillway gateway started through its composition
 * root, as `spillway serve` does, but on ports chosen by the OS and reported
 * over IPC (the "listening" log line is info level, below the bench's `warn`).
 *
 *   node bench/gateway.ts --upstream URL --store PATH|URL [--replay-concurrency N]
 *
 * SIGTERM stops it gracefully; it exits 0 once the store is closed.
 *
 * It reports its event-loop delay over IPC (loop-delay.ts): what the bench
 * shows as event-loop delay while the gateway captures or forwards.
 */
import { parseArgs } from 'node:util';
import { buildConfig } from '../src/config/config.ts';
import { startSpillway } from '../src/ops/spillway.ts';
import { answerLoopDelay } from './loop-delay.ts';

const { values } = parseArgs({
  options: {
    upstream: { type: 'string' },
    store: { type: 'string' },
    'replay-concurrency': { type: 'string' },
  },
});

const spillway = await startSpillway(
  buildConfig({
    upstream: values.upstream,
    store: values.store,
    host: '127.0.0.1',
    port: 0,
    adminPort: 0,
    shutdownGraceMs: 2_000,
    ...(values['replay-concurrency'] === undefined
      ? {}
      : { replay: { concurrency: Number(values['replay-concurrency']) } }),
  }),
);
process.send?.({ ready: { port: spillway.port, adminPort: spillway.adminPort } });

answerLoopDelay();

process.once('SIGTERM', () => {
  spillway.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
