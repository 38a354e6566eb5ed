/**
 * Starting Spillway for a test: in-process, on loopback, on a fresh SQLite file
 * in a temp directory, with quiet logs and short time limits. `await using`
 * stops it and removes the directory, so no test leaves a server running.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../src/clock.ts';
import { buildConfig } from '../../src/config/config.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { type Spillway, type StartOptions, startSpillway } from '../../src/ops/spillway.ts';
import type { Operation } from '../../src/store/port.ts';

export interface TestGateway extends Spillway {
  dir: string;
  storePath: string;
  /** Polls the store until the operation reaches a terminal status (or throws after `ms`). */
  settled(id: string, ms?: number): Promise<Operation>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'spillway-test-'));
}

/**
 * Starts a gateway on `dir`/spillway.db. Without `dir`, a fresh temp directory
 * that `stop()` removes; a `dir` passed in is the caller's (a restart on the
 * same store starts a second gateway on it), and `stop()` leaves it. A `clock`
 * replaces the system clock (tests of expiry); a `logger` the silent one
 * (tests of what is logged).
 */
export async function startGateway(
  raw: Record<string, unknown>,
  dir?: string,
  options: Pick<StartOptions, 'logger' | 'events'> & { clock?: Clock } = {},
): Promise<TestGateway> {
  const owned = dir === undefined;
  dir ??= tempDir();
  const storePath = join(dir, 'spillway.db');
  const config = buildConfig({
    host: '127.0.0.1',
    port: 0,
    adminPort: 0,
    store: storePath,
    shutdownGraceMs: 2_000,
    ...raw,
    replay: { concurrency: 4, pollIntervalMs: 50, ...(raw.replay as object) },
    routeDefaults: {
      budgetMs: 500,
      attemptTimeoutMs: 3_000,
      ...(raw.routeDefaults as object),
      backoff: {
        initialMs: 20,
        maxMs: 100,
        multiplier: 2,
        ...(raw.routeDefaults as { backoff?: object })?.backoff,
      },
    },
  });
  const spillway = await startSpillway(config, { logger: createLogger('silent'), ...options });
  const stop = async () => {
    await spillway.stop();
    if (owned) rmSync(dir, { recursive: true, force: true });
  };
  return {
    ...spillway,
    dir,
    storePath,
    stop,
    [Symbol.asyncDispose]: stop,
    settled: (id: string, ms = 10_000) => waitForTerminal(spillway, id, ms),
  };
}

async function waitForTerminal(spillway: Spillway, id: string, ms: number): Promise<Operation> {
  const until = Date.now() + ms;
  for (;;) {
    const op = await spillway.store.get(id);
    if (op && ['Succeeded', 'Failed', 'Canceled'].includes(op.status)) return op;
    if (Date.now() > until) throw new Error(`operation ${id} not terminal after ${ms} ms: ${op?.status}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The operation id from a 202's Operation-Location. */
export function operationIdOf(response: Response): string {
  const location = response.headers.get('operation-location');
  if (!location) throw new Error(`no Operation-Location on a ${response.status}`);
  return location.split('/').at(-1)!;
}

/** A response's JSON body, loosely typed for assertions. */
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON documents
type Json = Record<string, any>;
export const jsonOf = (res: Response): Promise<Json> => res.json() as Promise<Json>;
