/**
 * Invariant 1 for Spillway embedded in an app (createSpillway with an
 * in-process upstream, and a defined function): the app process is killed -9
 * while it acknowledges captures, several times over, and restarted on the
 * same SQLite file. Every request it acknowledged with a 202, and every call
 * it answered `accepted`, must still be there and take effect exactly once
 * when the app's handler (or function) works again, replayed in-process.
 *
 * The crash rounds run with `replay.concurrency: 0` and a handler that
 * refuses (503, NotProcessedError), so every request is captured and none is
 * replayed at the kill (a replay killed mid-call is the outcome-unknown case
 * of test/reliability/kill9.test.ts, decided by the same engine).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { spawnEmbeddedApp } from '../support/embedded-process.ts';
import { jsonOf, tempDir } from '../support/harness.ts';

const ROUNDS = 3;
const CLIENTS = 12;

/** How a client learns that its request was acknowledged, per entry point. */
const entryPoints = {
  'a proxied route (function upstream)': {
    path: '/payments',
    acknowledged: async (res: Response) =>
      res.status === 202 ? ((await jsonOf(res)).id as string) : undefined,
  },
  'a defined function (spillway.define)': {
    path: '/charge',
    acknowledged: async (res: Response) => {
      const outcome = res.status === 200 ? await jsonOf(res) : undefined;
      return outcome?.status === 'accepted' ? (outcome.id as string) : undefined;
    },
  },
};

describe('kill -9 of an app with Spillway embedded', () => {
  for (const [what, { path, acknowledged: ackOf }] of Object.entries(entryPoints)) {
    it(`${what}: loses nothing acknowledged, and each takes effect exactly once after the restart`, async (t) => {
      const dir = tempDir();
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const store = join(dir, 'spillway.db');
      const effects = join(dir, 'effects.log');
      const acknowledged = new Map<string, string>(); // operation id → body marker

      for (let round = 0; round < ROUNDS; round++) {
        const app = await spawnEmbeddedApp(dir, {
          store,
          effects,
          handler: 'refuse',
          config: { replay: { concurrency: 0 } },
        });
        let stop = false;
        const client = async () => {
          while (!stop) {
            const marker = randomUUID();
            try {
              const res = await fetch(`${app.url}${path}`, { method: 'POST', body: marker });
              const id = await ackOf(res);
              if (id) acknowledged.set(id, marker);
            } catch {
              return; // the app died under this request: it was never acknowledged
            }
          }
        };
        const clients = Array.from({ length: CLIENTS }, client);
        const before = acknowledged.size;
        // Kill once captures are flowing, at a different moment each round.
        while (acknowledged.size - before < 40 + round * 30) await new Promise((r) => setTimeout(r, 5));
        app.child.kill('SIGKILL');
        await app.exited;
        stop = true;
        await Promise.all(clients);
      }
      assert.ok(acknowledged.size >= ROUNDS * 40, `acknowledged ${acknowledged.size}`);
      assert.equal(existsSync(effects), false, 'the refusing handler had no effect');

      // After the crashes, before any replay: every acknowledged operation is in the file.
      const check = new SqliteStore({ path: store });
      for (const id of acknowledged.keys()) assert.ok(await check.get(id), `acknowledged ${id} is missing`);
      await check.close();

      const app = await spawnEmbeddedApp(dir, {
        store,
        effects,
        handler: 'effect',
        config: {
          replay: { concurrency: 8, pollIntervalMs: 50 },
          routeDefaults: { backoff: { initialMs: 10, maxMs: 50 } },
        },
      });
      try {
        const deadline = Date.now() + 60_000;
        for (const id of acknowledged.keys()) {
          for (;;) {
            const monitor = await jsonOf(await fetch(`${app.url}/_spillway/operations/${id}`));
            if (monitor.status === 'Succeeded') break;
            assert.notEqual(monitor.status, 'Failed', `${id} failed: ${JSON.stringify(monitor.error)}`);
            assert.ok(Date.now() < deadline, `${id} still ${monitor.status}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        }
        const times = new Map<string, number>();
        for (const marker of readFileSync(effects, 'utf8').trim().split('\n')) {
          times.set(marker, (times.get(marker) ?? 0) + 1);
        }
        for (const [id, marker] of acknowledged) {
          assert.equal(times.get(marker), 1, `${id} took effect ${times.get(marker) ?? 0} times`);
        }
      } finally {
        app.child.kill('SIGTERM');
        await app.exited;
      }
    });
  }
});
