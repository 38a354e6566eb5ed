/**
 * Invariant 1 under SIGKILL: the gateway is killed -9 while it acknowledges
 * captures, several times over, and restarted on the same SQLite file. Every
 * operation it acknowledged with a 202 must be present after the restarts and
 * complete exactly once when the upstream comes back.
 *
 * The crash rounds run with `replay.concurrency: 0` (a capture-only gateway),
 * so no replay is in flight at the kill: a replay killed mid-attempt is a
 * different case (outcome unknown), covered below.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { spawnGateway } from '../support/gateway-process.ts';
import { jsonOf, tempDir } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const ROUNDS = 4;
const CLIENTS = 16;

describe('kill -9 while acknowledging captures', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loses no acknowledged operation and completes each exactly once', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'ok' });
    await upstream.stop();
    const store = join(dir, 'spillway.db');
    const acknowledged = new Map<string, string>(); // operation id → body marker
    // A 202 from anyone but this gateway (a server given the down upstream's port) is not its acknowledgement.
    const foreign: string[] = [];

    for (let round = 0; round < ROUNDS; round++) {
      const gw = await spawnGateway(dir, { upstream: upstream.url, store, replay: { concurrency: 0 } });
      let stop = false;
      const client = async () => {
        while (!stop) {
          const marker = randomUUID();
          try {
            const res = await fetch(`${gw.url}/payments`, { method: 'POST', body: marker });
            if (res.status === 202) {
              const location = res.headers.get('operation-location') ?? '';
              const id = (await jsonOf(res)).id as string;
              if (location === `${gw.url}/_spillway/operations/${id}`) acknowledged.set(id, marker);
              else foreign.push(location);
            } else await res.body?.cancel();
          } catch {
            return; // the gateway died under this request: it was never acknowledged
          }
        }
      };
      const clients = Array.from({ length: CLIENTS }, client);
      const before = acknowledged.size;
      // Kill once captures are flowing, at a different moment each round.
      while (acknowledged.size - before < 50 + round * 40) await new Promise((r) => setTimeout(r, 5));
      gw.child.kill('SIGKILL');
      await gw.exited;
      stop = true;
      await Promise.all(clients);
    }
    assert.deepEqual(foreign, [], 'every 202 came from the gateway under test');
    assert.ok(acknowledged.size >= ROUNDS * 50, `acknowledged ${acknowledged.size}`);

    // After the crashes, before any replay: every acknowledged operation is in the file.
    const check = new SqliteStore({ path: store });
    for (const id of acknowledged.keys()) assert.ok(await check.get(id), `acknowledged ${id} is missing`);
    await check.close();

    await upstream.start();
    const gw = await spawnGateway(dir, {
      upstream: upstream.url,
      store,
      replay: { concurrency: 8, pollIntervalMs: 50 },
    });
    try {
      const deadline = Date.now() + 60_000;
      for (const [id, marker] of acknowledged) {
        for (;;) {
          const monitor = await jsonOf(await fetch(`${gw.url}/_spillway/operations/${id}`));
          if (monitor.status === 'Succeeded') break;
          assert.notEqual(monitor.status, 'Failed', `${id} failed: ${JSON.stringify(monitor.error)}`);
          assert.ok(Date.now() < deadline, `${id} still ${monitor.status}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(upstream.count(marker), 1, `${id} reached the upstream ${upstream.count(marker)} times`);
      }
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exited;
      await upstream.stop();
    }
  });
});

describe('kill -9 during a replay attempt', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('recovers the operation after its lease expires, under the retry-safety rule', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'black-hole' }); // the replay is in flight when the gateway dies
    const config = {
      upstream: upstream.url,
      store: join(dir, 'spillway.db'),
      replay: { concurrency: 4, pollIntervalMs: 50 },
      routeDefaults: { budgetMs: 100, attemptTimeoutMs: 1_000 },
      routes: [{ name: 'keyed', match: 'POST /keyed', honoursIdempotencyKey: true }],
    };
    const first = await spawnGateway(dir, config);
    const ids: Record<string, string> = {};
    for (const path of ['plain', 'keyed']) {
      const res = await fetch(`${first.url}/${path}`, {
        method: 'POST',
        headers: { prefer: 'respond-async, wait=0' },
        body: `${path}-body`,
      });
      assert.equal(res.status, 202);
      ids[path] = (await jsonOf(res)).id as string;
    }
    while (upstream.count('plain-body') + upstream.count('keyed-body') < 2)
      await new Promise((r) => setTimeout(r, 10));
    first.child.kill('SIGKILL');
    await first.exited;

    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'done' });
    const second = await spawnGateway(dir, config);
    try {
      const settle = async (id: string) => {
        for (;;) {
          const monitor = await jsonOf(await fetch(`${second.url}/_spillway/operations/${id}`));
          if (monitor.status === 'Succeeded' || monitor.status === 'Failed') return monitor;
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const plain = await settle(ids.plain!);
      assert.equal(plain.status, 'Failed');
      assert.equal(plain.error.code, 'outcome-unknown');
      assert.equal(plain.error.deadLettered, true);
      assert.equal(upstream.count('plain-body'), 1, 'a POST without idempotency-key support is not re-sent');

      const keyed = await settle(ids.keyed!);
      assert.equal(keyed.status, 'Succeeded');
      const sent = upstream.received.filter((r) => r.body.includes('keyed-body'));
      assert.equal(sent.length, 2);
      assert.equal(sent[0]!.headers['idempotency-key'], sent[1]!.headers['idempotency-key']);
      assert.equal(keyed.attempts, 2, 'the attempt lost in the crash is counted');
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
      await upstream.stop();
    }
  });
});
