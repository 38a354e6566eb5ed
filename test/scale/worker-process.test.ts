/**
 * `spillway worker` in-process: what it refuses (a store only one process may
 * write, no replay workers, a size bound PostgreSQL cannot honour), its admin
 * port, and that it replays what a gateway captured and stops gracefully.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { buildConfig, ConfigError } from '../../src/config/config.ts';
import { main } from '../../src/ops/cli.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { openStore } from '../../src/ops/open-store.ts';
import { startWorkerProcess } from '../../src/ops/worker-process.ts';
import { newOperation } from '../store/store-fixture.ts';
import { tempDir } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { freshSchema, skipWithoutPostgres } from '../support/postgres.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const quiet = { logger: createLogger('silent') };

describe('spillway worker: what it refuses', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses an SQLite store, saying where replay happens instead', async () => {
    const config = buildConfig({ upstream: 'http://127.0.0.1:9', store: join(dir, 'one-writer.db') });
    await assert.rejects(startWorkerProcess(config, quiet), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /needs a store several processes can share, a postgres:\/\/ URL/);
      assert.match(error.message, /gateway's own replay workers/);
      return true;
    });
  });

  it('exits 1 from the command line with that message', async () => {
    const errors: string[] = [];
    const original = console.error;
    console.error = (message: string) => errors.push(message);
    try {
      const code = await main(['worker', '--upstream', 'http://127.0.0.1:9', '--store', join(dir, 'x.db')]);
      assert.equal(code, 1);
    } finally {
      console.error = original;
    }
    assert.match(errors.join('\n'), /^spillway: spillway worker needs a store/);
  });

  it('refuses maxStoreBytes with a PostgreSQL store instead of ignoring it', async () => {
    await assert.rejects(
      openStore('postgres://postgres@127.0.0.1:5432/test', systemClock, { maxSizeBytes: 1_000_000 }),
      {
        name: 'ConfigError',
        message: /maxStoreBytes bounds an SQLite file/,
      },
    );
  });
});

const skip = await skipWithoutPostgres('the worker process tests on PostgreSQL');

describe('spillway worker on PostgreSQL', { skip }, () => {
  const db = freshSchema('spillway_worker_test');
  after(() => db.drop());

  it('refuses replay.concurrency 0: a worker with no workers would replay nothing', async () => {
    const config = buildConfig({ upstream: 'http://127.0.0.1:9', store: db.url, replay: { concurrency: 0 } });
    await assert.rejects(startWorkerProcess(config, quiet), {
      name: 'ConfigError',
      message: /replay.concurrency must be at least 1/,
    });
  });

  it('replays what is in the store, answers /healthz and /readyz, and stops gracefully', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'done' });
    const capturing = await openStore(db.url, new ManualClock(Date.now()));
    const op = await capturing.capture(newOperation(new ManualClock(Date.now())));
    const worker = await startWorkerProcess(
      buildConfig({
        upstream: upstream.url,
        store: db.url,
        adminPort: 0,
        replay: { concurrency: 2, pollIntervalMs: 20 },
      }),
      quiet,
    );
    try {
      const admin = `http://127.0.0.1:${worker.adminPort}`;
      assert.equal((await fetch(`${admin}/healthz`)).status, 200);
      assert.equal((await fetch(`${admin}/readyz`)).status, 200);
      const until = Date.now() + 10_000;
      while ((await capturing.get(op.id))?.status !== 'Succeeded') {
        assert.ok(Date.now() < until, 'the worker replayed the captured operation');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(upstream.received.length, 1);
      await worker.stop();
      await worker.stop(); // safe twice
      await assert.rejects(fetch(`${admin}/readyz`), 'the admin port is closed after stop');
      await assert.rejects(worker.store.get(op.id), { name: 'StoreUnavailableError' });
    } finally {
      await worker.stop();
      await capturing.close();
      await upstream.stop();
    }
  });
});
