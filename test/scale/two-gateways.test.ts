/**
 * Scale-out end to end, all real processes on loopback: two `spillway serve`
 * gateways and `spillway worker` processes sharing one PostgreSQL schema.
 *
 * 1. The upstream is down; load is spread over both gateways; one gateway is
 *    killed -9 mid-load; the upstream comes back. Every operation acknowledged
 *    with a 202, by either gateway, must complete exactly once.
 *
 *    The gateways run capture-only (`replay.concurrency: 0`) and the worker is
 *    the only replayer: the topology docs/scaling.md recommends. That is what
 *    makes "exactly once" honest here without any help from the upstream:
 *    killing a gateway never cuts an attempt short, so no operation becomes
 *    "outcome unknown", and the test upstream counts real deliveries (it does
 *    not deduplicate by Idempotency-Key). A replayer killed mid-attempt is a
 *    different case, and is case 2.
 *
 *    An SSE client on the surviving gateway follows operations the killed one
 *    acknowledged, from before the upstream is back: it receives their events
 *    up to the terminal Succeeded, which the worker (a third process)
 *    commits, and the stream ends. The gateways' SSE poll backstop is set far
 *    beyond the test's bounds, so the events can only arrive through the
 *    store's LISTEN/NOTIFY.
 *
 * 2. A worker is killed -9 while its attempts are in flight (the upstream holds
 *    them); a second worker recovers them once their leases expire, under the
 *    retry-safety rule: the plain POST is not re-sent (dead-lettered, outcome
 *    unknown), the POST on a route whose upstream honours Idempotency-Key is
 *    re-sent with the same key and succeeds.
 *
 * Skipped with a message when PostgreSQL is unreachable (failing instead when
 * SPILLWAY_REQUIRE_POSTGRES=1). Every wait is bounded.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { OperationStore } from '../../src/store/port.ts';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import {
  type GatewayProcess,
  type SpillwayProcess,
  spawnGateway,
  spawnWorker,
} from '../support/gateway-process.ts';
import { jsonOf, tempDir } from '../support/harness.ts';
import { freshSchema, skipWithoutPostgres } from '../support/postgres.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const skip = await skipWithoutPostgres('the scale-out end-to-end tests');
const CLIENTS_PER_GATEWAY = 8;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface SseEvent {
  id: string;
  data: { status: string };
}

/** Reads a text/event-stream response to its end: each event's id and its CloudEvent's data. */
async function readEvents(res: Response): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body!) {
    buffer += decoder.decode(chunk, { stream: true });
    const blocks = buffer.split('\n\n');
    buffer = blocks.pop()!;
    for (const block of blocks) {
      const fields = new Map<string, string>();
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue; // a heartbeat comment
        const colon = line.indexOf(':');
        fields.set(line.slice(0, colon), line.slice(colon + 1).replace(/^ /, ''));
      }
      const data = fields.get('data');
      if (data !== undefined) events.push({ id: fields.get('id') ?? '', data: JSON.parse(data).data });
    }
  }
  return events;
}

/** Polls `check` every 50 ms until it holds, failing with `what` after `ms`. */
async function eventually(what: () => string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`still not true after ${ms} ms: ${what()}`);
    await sleep(50);
  }
}

async function terminate(process: SpillwayProcess): Promise<number | null> {
  if (process.child.exitCode === null && process.child.signalCode === null) process.child.kill('SIGTERM');
  return process.exited;
}

describe('scale-out: gateways and workers sharing one PostgreSQL schema', { skip }, () => {
  const db = freshSchema('spillway_scale_test');
  const dir = tempDir();
  let store: OperationStore;
  before(async () => {
    store = await PostgresStore.open({ url: db.url, poolSize: 2 });
  });
  after(async () => {
    await store?.close();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a gateway killed -9 loses nothing: every acknowledged operation completes exactly once', {
    timeout: 90_000,
  }, async (t) => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'ok' });
    await upstream.stop();
    const shared = {
      upstream: upstream.url,
      store: db.url,
      // The upstream stays down for seconds: retry often and never give up within the test.
      routeDefaults: { maxAttempts: 10_000, backoff: { initialMs: 20, maxMs: 200 } },
    };
    // SSE streams re-read the store only every minute without a notice: past this test's bounds.
    const sse = { pollMs: 60_000 };
    const processes: SpillwayProcess[] = [];
    try {
      const gateways: GatewayProcess[] = await Promise.all([
        spawnGateway(dir, { ...shared, sse, replay: { concurrency: 0 } }),
        spawnGateway(dir, { ...shared, sse, replay: { concurrency: 0 } }),
      ]);
      processes.push(...gateways);
      const worker = await spawnWorker(dir, { ...shared, replay: { concurrency: 8, pollIntervalMs: 50 } });
      processes.push(worker);

      const acknowledged = new Map<string, { marker: string; via: number }>();
      const ackedBy = [0, 0];
      const statuses: Record<string, number> = {};
      const survivorErrors: string[] = [];
      let killed = -1;
      let stop = false;
      const client = async (g: number) => {
        while (!stop && killed !== g) {
          const marker = randomUUID();
          try {
            const res = await fetch(`${gateways[g]!.url}/payments`, { method: 'POST', body: marker });
            statuses[res.status] = (statuses[res.status] ?? 0) + 1;
            if (res.status === 202) {
              acknowledged.set((await jsonOf(res)).id as string, { marker, via: g });
              ackedBy[g]!++;
            } else await res.body?.cancel();
          } catch (error) {
            // The killed gateway's requests in flight die with it: never acknowledged, nothing to keep.
            if (killed !== g) survivorErrors.push(String(error));
            return;
          }
        }
      };
      const clients = [0, 1].flatMap((g) => Array.from({ length: CLIENTS_PER_GATEWAY }, () => client(g)));

      const progress = () => `acknowledged ${JSON.stringify(ackedBy)}, answers ${JSON.stringify(statuses)}`;
      await eventually(progress, async () => ackedBy[0]! >= 150 && ackedBy[1]! >= 150, 30_000);
      killed = 0;
      gateways[0]!.child.kill('SIGKILL');
      await gateways[0]!.exited;
      const atKill = ackedBy[1]!;
      await eventually(progress, async () => ackedBy[1]! >= atKill + 100, 30_000);
      stop = true;
      await Promise.all(clients);
      assert.deepEqual(survivorErrors, [], 'the surviving gateway answered every request');
      assert.deepEqual(Object.keys(statuses), ['202'], `upstream down, store up: only 202s (${progress()})`);

      // Before any replay can succeed: everything acknowledged is in the database.
      const ids = [...acknowledged.keys()];
      for (const id of ids) assert.ok(await store.get(id), `acknowledged ${id} is missing`);

      // SSE clients on the survivor follow five operations the killed gateway acknowledged.
      const orphans = [...acknowledged].filter(([, { via }]) => via === 0).map(([id]) => id);
      const followed = orphans.slice(0, 5);
      const streamsAbort = new AbortController();
      const opened = await Promise.all(
        followed.map(async (id) => {
          const res = await fetch(`${gateways[1]!.url}/_spillway/operations/${id}/events`, {
            headers: { accept: 'text/event-stream' },
            signal: streamsAbort.signal,
          });
          assert.equal(res.status, 200);
          assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
          return res;
        }),
      );
      const streams = opened.map(readEvents); // each resolves when its stream ends
      // Awaited below; should an assertion fail before, the killed streams must not reject unheard.
      for (const stream of streams) stream.catch(() => {});
      // Following made the survivor LISTEN; once it does, it hears what the worker commits.
      await eventually(
        () => "the surviving gateway's LISTEN connection is not up",
        async () =>
          (
            await db.query(
              `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle' AND query <> ''`,
              [`spillway-listen:${db.schema}`],
            )
          ).length > 0,
        10_000,
      );

      await upstream.start();
      const bound = setTimeout(() => streamsAbort.abort(), 20_000);
      const heard = await Promise.allSettled(streams);
      clearTimeout(bound);
      heard.forEach((result, i) => {
        const id = followed[i]!;
        assert.equal(
          result.status,
          'fulfilled',
          `the SSE stream of ${id} did not end within 20 s of the upstream's return`,
        );
        const events = (result as PromiseFulfilledResult<SseEvent[]>).value;
        assert.deepEqual(
          events.map((event) => event.id),
          events.map((_, seq) => `${id}:${seq + 1}`),
          'every event, in order, from the first',
        );
        assert.equal(events[0]?.data.status, 'NotStarted');
        assert.equal(events.at(-1)?.data.status, 'Succeeded', `the last event of ${id} is the terminal one`);
      });
      let done = 0;
      await eventually(
        () =>
          `${done} of ${ids.length} acknowledged operations succeeded; counts ${JSON.stringify(statuses)}`,
        async () => {
          done = 0;
          for (const id of ids) if ((await store.get(id))?.status === 'Succeeded') done++;
          return done === ids.length;
        },
        60_000,
      );
      for (const [id, { marker }] of acknowledged) {
        assert.equal(upstream.count(marker), 1, `${id} reached the upstream ${upstream.count(marker)} times`);
      }
      assert.equal((await store.counts()).Failed, 0);
      t.diagnostic(`${progress()}; all ${ids.length} completed exactly once`);

      // The survivor serves the operations the dead gateway acknowledged.
      for (const id of orphans.slice(0, 20)) {
        const monitor = await jsonOf(await fetch(`${gateways[1]!.url}/_spillway/operations/${id}`));
        assert.equal(monitor.status, 'Succeeded');
        const result = await fetch(`${gateways[1]!.url}/_spillway/operations/${id}/result`);
        assert.equal(result.status, 201);
        assert.equal(await result.text(), 'ok');
      }

      assert.equal(await terminate(gateways[1]!), 0, 'the surviving gateway stops gracefully');
      assert.equal(await terminate(worker), 0, 'the worker stops gracefully');
    } finally {
      for (const process of processes) if (process.child.exitCode === null) process.child.kill('SIGKILL');
      await Promise.all(processes.map((process) => process.exited));
      await upstream.stop();
    }
  });

  it('a worker killed -9 mid-attempt: its operations are recovered after the lease expires, under the retry-safety rule', {
    timeout: 60_000,
  }, async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'black-hole' }); // the attempts are in flight when the worker dies
    const config = {
      upstream: upstream.url,
      store: db.url,
      // Leases last attemptTimeoutMs + 5 s: 6 s here.
      routeDefaults: { budgetMs: 100, attemptTimeoutMs: 1_000 },
      routes: [{ name: 'keyed', match: 'POST /keyed', honoursIdempotencyKey: true }],
    };
    const processes: SpillwayProcess[] = [];
    try {
      const gateway = await spawnGateway(dir, { ...config, replay: { concurrency: 0 } });
      processes.push(gateway);
      const first = await spawnWorker(dir, { ...config, replay: { concurrency: 4, pollIntervalMs: 50 } });
      processes.push(first);
      const ids: Record<string, string> = {};
      for (const path of ['plain', 'keyed']) {
        const res = await fetch(`${gateway.url}/${path}`, {
          method: 'POST',
          headers: { prefer: 'respond-async, wait=0' },
          body: `${path}-worker-kill`,
        });
        assert.equal(res.status, 202);
        ids[path] = (await jsonOf(res)).id as string;
      }
      await eventually(
        () => `upstream received ${upstream.received.length}`,
        async () => upstream.count('plain-worker-kill') + upstream.count('keyed-worker-kill') === 2,
        10_000,
      );
      first.child.kill('SIGKILL');
      await first.exited;

      upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'done' });
      const second = await spawnWorker(dir, { ...config, replay: { concurrency: 4, pollIntervalMs: 50 } });
      processes.push(second);
      const settled = async (id: string) => {
        let status = '';
        await eventually(
          () => `${id} is ${status}`,
          async () => {
            status = (await store.get(id))?.status ?? 'missing';
            return status === 'Succeeded' || status === 'Failed';
          },
          20_000,
        );
        return jsonOf(await fetch(`${gateway.url}/_spillway/operations/${id}`));
      };

      const plain = await settled(ids.plain!);
      assert.equal(plain.status, 'Failed');
      assert.equal(plain.error.code, 'outcome-unknown');
      assert.equal(plain.error.deadLettered, true);
      assert.equal(
        upstream.count('plain-worker-kill'),
        1,
        'a POST without idempotency-key support is not re-sent',
      );

      const keyed = await settled(ids.keyed!);
      assert.equal(keyed.status, 'Succeeded');
      const sent = upstream.received.filter((r) => r.body.includes('keyed-worker-kill'));
      assert.equal(sent.length, 2);
      assert.equal(sent[0]!.headers['idempotency-key'], sent[1]!.headers['idempotency-key']);
      assert.equal(keyed.attempts, 2, 'the attempt lost with the worker is counted');

      assert.equal(await terminate(second), 0);
      assert.equal(await terminate(gateway), 0);
    } finally {
      for (const process of processes) if (process.child.exitCode === null) process.child.kill('SIGKILL');
      await Promise.all(processes.map((process) => process.exited));
      await upstream.stop();
    }
  });
});
