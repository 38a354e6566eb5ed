/**
 * PostgreSQL crashes and restarts under load. A gateway process (capturing,
 * with its replay workers running) takes a steady stream of POSTs while the
 * upstream is down; the server is stopped like a crash (`pg_ctl -m
 * immediate`: no checkpoint, WAL recovery at restart) and started again.
 *
 * - While it is down, requests are answered 503 store-unavailable
 *   problem+json, never 202, and promptly: nothing hangs.
 * - It comes back by itself: captures are acknowledged again without
 *   restarting the gateway.
 * - Every operation acknowledged before, during or after the outage is in the
 *   database after recovery, and completes exactly once when the upstream
 *   comes back (the replay workers, whose writes met the outage, resumed).
 * - A store watching from another process (this one) reconnects its LISTEN
 *   connection by itself and hears of the gateway's completions after the
 *   restart.
 *
 * The server here is a private one (test/scale/private-cluster.ts): restarting
 * the shared server would break the test files running beside this one. When
 * no private server can be started, this skips with the reason (and fails
 * under SPILLWAY_REQUIRE_POSTGRES=1).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { type GatewayProcess, spawnGateway } from '../support/gateway-process.ts';
import { jsonOf, tempDir } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';
import { privateClusterUnavailable, startPrivateCluster } from './private-cluster.ts';

const CLIENTS = 8;
/** Longest any request may wait for its answer, outage included. */
const ANSWER_WITHIN_MS = 8_000;

const unavailable = privateClusterUnavailable();
if (unavailable && process.env.SPILLWAY_REQUIRE_POSTGRES === '1') {
  throw new Error(
    `Cannot start a private PostgreSQL server: ${unavailable}. SPILLWAY_REQUIRE_POSTGRES=1 makes this a failure.`,
  );
}
const skip = unavailable
  ? `cannot start a private PostgreSQL server: ${unavailable}; skipping the restart test`
  : false;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function eventually(
  what: () => string,
  check: () => boolean | Promise<boolean>,
  ms: number,
): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`still not true after ${ms} ms: ${what()}`);
    await sleep(50);
  }
}

describe('PostgreSQL crashes and restarts under load', { skip }, () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('answers 503 (never 202) while it is down, recovers by itself, and loses no acknowledged operation', {
    timeout: 90_000,
  }, async (t) => {
    const cluster = await startPrivateCluster();
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'ok' });
    await upstream.stop();
    let gateway: GatewayProcess | undefined;
    try {
      const url = `${cluster.url}?schema=spillway_restart`;
      gateway = await spawnGateway(dir, {
        upstream: upstream.url,
        store: url,
        replay: { concurrency: 4, pollIntervalMs: 50 },
        routeDefaults: { maxAttempts: 10_000, backoff: { initialMs: 20, maxMs: 200 } },
      });
      const gw = gateway;
      // Watches from this process, across the crash: its LISTEN connection must come back by itself.
      const watcher = await PostgresStore.open({ url, poolSize: 1 });
      const heard = new Set<string>();
      const stopWatching = watcher.watch((id) => heard.add(id));
      /** True once the watcher's LISTEN connection is up and has listened (its last query is not empty). */
      const listening = async () => {
        const client = new pg.Client({ connectionString: cluster.url, connectionTimeoutMillis: 2_000 });
        try {
          await client.connect();
          const { rows } = await client.query(
            `SELECT 1 FROM pg_stat_activity WHERE application_name = 'spillway-listen:spillway_restart'
               AND state = 'idle' AND query <> ''`,
          );
          return rows.length === 1;
        } catch {
          return false;
        } finally {
          await client.end().catch(() => {});
        }
      };
      await eventually(() => 'the watcher is not listening', listening, 10_000);

      const acknowledged = new Map<string, string>(); // id → body marker
      const refused: string[] = []; // problem types of the 503s
      const unexpected: string[] = [];
      let slowest = 0;
      let stop = false;
      const client = async () => {
        while (!stop) {
          const marker = randomUUID();
          const started = Date.now();
          try {
            const res = await fetch(`${gw.url}/payments`, {
              method: 'POST',
              body: marker,
              signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
            });
            slowest = Math.max(slowest, Date.now() - started);
            if (res.status === 202) acknowledged.set((await jsonOf(res)).id as string, marker);
            else if (res.status === 503 && res.headers.get('content-type') === 'application/problem+json') {
              refused.push((await jsonOf(res)).type as string);
            } else unexpected.push(`${res.status} ${await res.text()}`);
          } catch (error) {
            unexpected.push(`no answer within ${ANSWER_WITHIN_MS} ms: ${String(error)}`);
          }
          if (refused.length > 0) await sleep(5); // do not spin on instant 503s
        }
      };
      const clients = Array.from({ length: CLIENTS }, client);
      const progress = () =>
        `${acknowledged.size} acknowledged, ${refused.length} refused, unexpected ${JSON.stringify(unexpected.slice(0, 3))}`;

      await eventually(progress, () => acknowledged.size >= 150, 20_000);
      await cluster.crash();
      const ackedAtCrash = acknowledged.size;
      await eventually(progress, () => refused.length >= 20, 10_000);
      const ackedWhileDown = acknowledged.size - ackedAtCrash;
      await cluster.start();
      const refusedWhileDown = refused.length;
      await eventually(progress, () => acknowledged.size >= ackedAtCrash + 150, 30_000);
      stop = true;
      await Promise.all(clients);

      assert.deepEqual(unexpected, [], 'every request got a 202 or a 503 problem+json, in time');
      assert.ok(
        refused.every((type) => type === 'https://spillway.dev/problems/store-unavailable'),
        refused[0],
      );
      assert.ok(
        ackedWhileDown <= CLIENTS,
        `at most the captures in flight at the crash were acknowledged after it (${ackedWhileDown})`,
      );
      t.diagnostic(
        `${acknowledged.size} acknowledged (${ackedAtCrash} before the crash), ${refused.length} answered 503 (${refusedWhileDown} while down), slowest answer ${slowest} ms`,
      );

      // After WAL recovery: every acknowledged capture is there.
      const check = await PostgresStore.open({ url, poolSize: 2 });
      try {
        for (const id of acknowledged.keys()) assert.ok(await check.get(id), `acknowledged ${id} was lost`);

        await eventually(() => 'the watcher did not listen again after the restart', listening, 10_000);
        heard.clear();
        await upstream.start();
        let done = 0;
        await eventually(
          () => `${done} of ${acknowledged.size} succeeded`,
          async () => {
            done = 0;
            for (const id of acknowledged.keys()) if ((await check.get(id))?.status === 'Succeeded') done++;
            return done === acknowledged.size;
          },
          45_000,
        );
        for (const [id, marker] of acknowledged) {
          assert.equal(
            upstream.count(marker),
            1,
            `${id} reached the upstream ${upstream.count(marker)} times`,
          );
        }
        assert.equal((await check.counts()).Failed, 0, 'no operation was failed by the outage');
        await eventually(
          () =>
            `the watcher heard of ${[...acknowledged.keys()].filter((id) => heard.has(id)).length} of ${acknowledged.size} completions`,
          () => [...acknowledged.keys()].every((id) => heard.has(id)),
          10_000,
        );
      } finally {
        stopWatching();
        await Promise.all([check.close(), watcher.close()]);
      }
      gw.child.kill('SIGTERM');
      assert.equal(await gw.exited, 0, 'the gateway stops gracefully');
    } finally {
      if (gateway && gateway.child.exitCode === null) gateway.child.kill('SIGKILL');
      await gateway?.exited;
      await upstream.stop();
      await cluster.destroy();
    }
  });
});
