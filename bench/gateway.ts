/**
 * Bench child process: a Spillway gateway started through its composition
 * root, as `spillway serve` does, but on ports chosen by the OS and reported
 * over IPC (the "listening" log line is info level, below the bench's `warn`).
 *
 *   node bench/gateway.ts --upstream URL --store PATH|URL [--replay-concurrency N]
 *
 * SIGTERM stops it gracefully; it exits 0 once the store is closed.
 *
 * It watches its own event loop (`monitorEventLoopDelay`, sampling every
 * 10 ms) and over IPC answers `'loop-delay'` with the delay percentiles since
 * the last `'loop-delay-reset'`: what the bench reports as event-loop delay
 * while the gateway captures or forwards.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { buildConfig } from '../src/config/config.ts';
import { startSpillway } from '../src/ops/spillway.ts';

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

/** The histogram records each sample's full interval; the delay is what exceeds the resolution. */
const LOOP_RESOLUTION_MS = 10;
const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loop.enable();
const delayMs = (nanoseconds: number) => Math.max(0, nanoseconds / 1e6 - LOOP_RESOLUTION_MS);
process.on('message', (message) => {
  if (message === 'loop-delay-reset') {
    loop.reset();
    process.send?.({ reset: true });
  } else if (message === 'loop-delay') {
    process.send?.({
      p50Ms: delayMs(loop.percentile(50)),
      p99Ms: delayMs(loop.percentile(99)),
      maxMs: delayMs(loop.max),
      samples: loop.count,
    });
  }
});

process.once('SIGTERM', () => {
  spillway.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
