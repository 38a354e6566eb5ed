/**
 * Spillway embedded for a test (createSpillway): a fresh SQLite file in a
 * temp directory, quiet logs, short time limits and backoff. `await using`
 * closes it and removes the directory.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CreateSpillwayOptions,
  createSpillway,
  type EmbeddedSpillway,
} from '../../src/embed/create-spillway.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { tempDir } from './harness.ts';

export interface TestEmbedded extends EmbeddedSpillway {
  dir: string;
  /** GETs a `/_spillway/…` path through `fetch`, as JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON documents
  json(path: string): Promise<any>;
  /** Polls the status monitor until the operation is terminal (or throws after `ms`). */
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON documents
  settled(id: string, ms?: number): Promise<any>;
}

/** Test defaults under `config`, deep enough for routeDefaults.backoff and replay. */
export function testConfig(config: Record<string, unknown> = {}): Record<string, unknown> {
  const routeDefaults = (config.routeDefaults ?? {}) as Record<string, unknown>;
  return {
    shutdownGraceMs: 2_000,
    ...config,
    replay: { concurrency: 4, pollIntervalMs: 50, ...(config.replay as object) },
    routeDefaults: {
      budgetMs: 300,
      attemptTimeoutMs: 3_000,
      ...routeDefaults,
      backoff: { initialMs: 20, maxMs: 100, multiplier: 2, ...(routeDefaults.backoff as object) },
    },
  };
}

export function embedded(options: CreateSpillwayOptions, dir?: string): TestEmbedded {
  const owned = dir === undefined;
  const where = dir ?? tempDir();
  const spillway = createSpillway({
    store: join(where, 'spillway.db'),
    logger: createLogger('silent'),
    ...options,
    config: testConfig(options.config),
  });
  const close = async () => {
    await spillway.close();
    if (owned) rmSync(where, { recursive: true, force: true });
  };
  const json = async (path: string) => (await spillway.fetch(new Request(`http://app.test${path}`))).json();
  return {
    ...spillway,
    dir: where,
    close,
    [Symbol.asyncDispose]: close,
    json,
    settled: async (id, ms = 10_000) => {
      const until = Date.now() + ms;
      for (;;) {
        const monitor = (await json(`/_spillway/operations/${id}`)) as { status: string };
        if (['Succeeded', 'Failed', 'Canceled'].includes(monitor.status)) return monitor;
        if (Date.now() > until) throw new Error(`operation ${id} still ${monitor.status} after ${ms} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}
