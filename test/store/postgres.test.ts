/**
 * The PostgreSQL adapter against the real server: the conformance suite every
 * adapter passes unchanged, then what only a shared, networked store must do:
 * concurrent lease calls from several pools never hand one operation to two
 * owners; captures from two store instances interleave, duplicates rejected;
 * an unreachable, hung or restarted server rejects verbs with
 * StoreUnavailableError within their time limits, and the pool recovers by
 * itself; a watcher on one store instance hears of operations changed through
 * another (LISTEN/NOTIFY), also after its LISTEN connection was killed. Faults
 * are put between the store and the server by a TCP proxy, so the shared
 * server is never touched (except the one LISTEN backend a test terminates).
 *
 * One fresh schema for the file, emptied before each conformance test and
 * dropped at the end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { StoreUnavailableError } from '../../src/errors.ts';
import { readMigrations } from '../../src/store/migrations.ts';
import type { OperationStore } from '../../src/store/port.ts';
import { PostgresStore, type PostgresStoreOptions } from '../../src/store/postgres/postgres-store.ts';
import { StoreKeyring } from '../../src/store/sealed-values.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { freshSchema, skipWithoutPostgres, TEST_POSTGRES_URL } from '../support/postgres.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';
import { closedPort } from '../support/test-upstream.ts';
import { storeConformance } from './conformance.ts';
import { rawBytes, sealingConformance } from './sealing-conformance.ts';
import { newOperation } from './store-fixture.ts';

const skip = await skipWithoutPostgres('the PostgreSQL store tests');

if (skip) {
  describe('OperationStore: postgres', { skip }, () => {});
} else {
  const db = freshSchema('spillway_store_test');
  const open = (clock: ManualClock, options: Partial<PostgresStoreOptions> = {}) =>
    PostgresStore.open({ url: db.url, clock, poolSize: 4, ...options });
  const empty = () =>
    db.query(
      `TRUNCATE ${db.schema}.operations, ${db.schema}.route_overrides, ${db.schema}.idempotency_keys, ${db.schema}.route_replay, ${db.schema}.route_health, ${db.schema}.stale_copies, ${db.schema}.store_keys CASCADE`,
    );

  before(async () => {
    await (await open(new ManualClock())).close(); // creates the schema and its tables
  });
  after(() => db.drop());

  storeConformance('postgres', async (clock) => {
    await empty();
    return { store: await open(clock), reopen: () => open(clock) };
  });

  sealingConformance('postgres', async (clock) => {
    await empty();
    return {
      open: (keys, onError) =>
        open(clock, {
          ...(keys ? { encryptionKeys: StoreKeyring.parse(keys) } : {}),
          ...(onError ? { onError } : {}),
        }),
      rawContent: async () => {
        // Past the adapter: every value of every table of the schema, as the server holds it.
        const tables = await db.query<{ name: string }>(
          'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1',
          [db.schema],
        );
        const values: Buffer[] = [];
        for (const { name } of tables) {
          for (const row of await db.query(`SELECT * FROM ${db.schema}."${name}"`)) {
            values.push(...Object.values(row).map((value) => rawBytes(value)));
          }
        }
        return Buffer.concat(values);
      },
    };
  });

  describe('PostgreSQL: several processes on one database', () => {
    it('concurrent lease calls from several pools never hand one operation to two owners', async () => {
      await empty();
      const clock = new ManualClock();
      const stores = await Promise.all([open(clock), open(clock), open(clock)]);
      try {
        const total = 300;
        const inputs = Array.from({ length: total }, (_, i) =>
          newOperation(clock, { priority: i % 3, nextAttemptAt: clock.now() - i }),
        );
        await Promise.all(inputs.map((input, i) => stores[i % 3]!.capture(input)));
        const claims = new Map<string, string[]>(); // operation id → owners that got it
        // 12 leasers, 4 per pool, all at once, until nothing is left.
        const leaser = async (store: OperationStore, owner: string) => {
          for (;;) {
            const leased = await store.lease({ owner, limit: 7, leaseMs: 60_000 });
            if (leased.length === 0) return;
            for (const op of leased) claims.set(op.id, [...(claims.get(op.id) ?? []), owner]);
          }
        };
        await Promise.all(Array.from({ length: 12 }, (_, i) => leaser(stores[i % 3]!, `worker-${i}`)));
        const twice = [...claims].filter(([, owners]) => owners.length > 1);
        assert.deepEqual(twice, [], 'an operation was leased by two owners');
        assert.equal(claims.size, total, 'every due operation was leased');
        const owners = new Set([...claims.values()].map(([owner]) => owner));
        assert.ok(owners.size > 3, `the work was shared (${owners.size} owners)`);
        for (const [id, [owner]] of claims) {
          const op = await stores[0]!.get(id);
          assert.equal(op?.leaseOwner, owner, `${id} is held by the owner it was handed to`);
        }
      } finally {
        await Promise.all(stores.map((store) => store.close()));
      }
    });

    it('an ordering key’s head finishing waits for a capture of the key in flight, so the capture is not left blocked', async () => {
      await empty();
      const clock = new ManualClock();
      const store = await open(clock);
      const other = new pg.Client({ connectionString: TEST_POSTGRES_URL });
      await other.connect();
      try {
        await store.capture(newOperation(clock, { orderingKey: 'k' }));
        const [head] = await store.lease({ owner: 'w', limit: 10, leaseMs: 60_000 });
        // Another process's capture of the key, placed behind the head and not yet committed.
        await other.query(`SET search_path TO ${db.schema}`);
        await other.query('BEGIN');
        await other.query(
          `INSERT INTO operations (id, route, method, path, query, request_headers, request_body,
            status, next_attempt_at, created_at, updated_at, ordering_key)
          VALUES ('behind', 'default', 'POST', '/p', '', '[]', '\\x00', 'NotStarted', $1, $1, $1, 'k')`,
          [clock.now()],
        );
        let settled = false;
        const completing = store
          .complete(head!.id, head!.leaseToken, { status: 200, headers: [], body: Buffer.alloc(0) })
          .finally(() => {
            settled = true;
          });
        // The finish must wait for the key's lock; without it, it would not see the capture and leave it blocked.
        const deadline = Date.now() + 10_000;
        for (;;) {
          // The ordering keys' lock class (migration 024), waited for.
          const [waiting] = await db.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = 1397771339 AND NOT granted",
          );
          if (waiting!.n > 0 || settled || Date.now() > deadline) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await other.query('COMMIT');
        assert.equal(await completing, true);
        const leased = await store.lease({ owner: 'w', limit: 10, leaseMs: 60_000 });
        assert.deepEqual(
          leased.map((op) => op.id),
          ['behind'],
          'the capture that was in flight became the head',
        );
      } finally {
        await other.end();
        await store.close();
      }
    });

    it('captures from two store instances interleave; an id captured by both is stored once', async () => {
      await empty();
      const clock = new ManualClock();
      const [a, b] = await Promise.all([open(clock), open(clock)]);
      try {
        const onlyA = Array.from({ length: 150 }, () => newOperation(clock, { route: 'a' }));
        const onlyB = Array.from({ length: 150 }, () => newOperation(clock, { route: 'b' }));
        const both = Array.from({ length: 20 }, () => newOperation(clock));
        const results = await Promise.allSettled([
          ...onlyA.map((input) => a!.capture(input)),
          ...onlyB.map((input) => b!.capture(input)),
          ...both.flatMap((input) => [
            a!.capture({ ...input, route: 'a' }),
            b!.capture({ ...input, route: 'b' }),
          ]),
        ]);
        const shared = results.slice(300);
        for (let i = 0; i < both.length; i++) {
          const pair = [shared[2 * i]!, shared[2 * i + 1]!];
          assert.equal(
            pair.filter((r) => r.status === 'fulfilled').length,
            1,
            'exactly one capture of a shared id wins',
          );
          const winner = pair[0]!.status === 'fulfilled' ? 'a' : 'b';
          assert.equal((await a!.get(both[i]!.id))?.route, winner, "the stored record is the winner's");
        }
        assert.ok(results.slice(0, 300).every((r) => r.status === 'fulfilled'));
        assert.equal((await b!.counts()).NotStarted, 320);
      } finally {
        await Promise.all([a!.close(), b!.close()]);
      }
    });

    it('stores opened together on a new schema migrate it once, one after the other', async () => {
      const other = freshSchema('spillway_migrate_test');
      try {
        const stores = await Promise.all(
          Array.from({ length: 4 }, () => PostgresStore.open({ url: other.url, poolSize: 1 })),
        );
        await Promise.all(stores.map((store) => store.close()));
        const applied = await other.query<{ version: number }>(
          `SELECT version FROM ${other.schema}.spillway_migrations ORDER BY version`,
        );
        const shipped = readMigrations(new URL('../../src/store/postgres/migrations', import.meta.url));
        assert.deepEqual(
          applied.map((row) => row.version),
          shipped.map((m) => m.version),
        );
      } finally {
        await other.drop();
      }
    });
  });

  describe('PostgreSQL: events across store instances (LISTEN/NOTIFY)', () => {
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    /** Waits, at most `ms`, until `check` holds; resolves whether it does. */
    const until = async (check: () => boolean | Promise<boolean>, ms: number) => {
      const giveUpAt = Date.now() + ms;
      while (!(await check())) {
        if (Date.now() > giveUpAt) return false;
        await sleep(20);
      }
      return true;
    };
    const listenBackends = async () =>
      (
        await db.query<{ pid: number }>(
          'SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid',
          [`spillway-listen:${db.schema}`],
        )
      ).map((row) => row.pid);

    it('a watcher on store B hears of operations captured and completed through store A, also after its LISTEN connection is killed', {
      timeout: 30_000,
    }, async () => {
      await empty();
      const clock = new ManualClock();
      const [a, b] = await Promise.all([open(clock), open(clock)]);
      const heard: string[] = [];
      const stop = b!.watch((id) => heard.push(id));
      const times = (id: string) => heard.filter((heardId) => heardId === id).length;
      /** Captures, leases and completes one operation through A; resolves its id. */
      const runThroughA = async () => {
        const op = await a!.capture(newOperation(clock));
        const [leased] = await a!.lease({ owner: 'worker-a', limit: 1, leaseMs: 60_000 });
        assert.equal(leased?.id, op.id);
        assert.equal(
          await a!.complete(op.id, leased.leaseToken, { status: 200, headers: [], body: new Uint8Array() }),
          true,
        );
        return op.id;
      };
      /** Runs operations through A until B hears of one: B's LISTEN connection is up from then on. */
      const untilHeard = async (ms: number) => {
        const giveUpAt = Date.now() + ms;
        while (Date.now() < giveUpAt) {
          const id = await runThroughA();
          if (await until(() => times(id) > 0, 200)) return id;
        }
        assert.fail(`store B heard nothing through its LISTEN connection for ${ms} ms`);
      };
      try {
        await untilHeard(5_000);

        const id = await runThroughA();
        assert.ok(
          await until(() => times(id) >= 3, 5_000),
          `B heard of ${id} ${times(id)} times, not once per status change (3)`,
        );
        assert.deepEqual(
          (await b!.events(id, 0)).map((e) => [e.seq, e.status]),
          [
            [1, 'NotStarted'],
            [2, 'Running'],
            [3, 'Succeeded'],
          ],
        );

        // A status changed outside any store (a psql session with another search_path): the trigger
        // still writes the event in the right schema, and B hears of it.
        await db.query(
          `UPDATE ${db.schema}.operations SET status = 'Canceled', updated_at = $2 WHERE id = $1`,
          [id, clock.now()],
        );
        assert.ok(await until(() => times(id) >= 4, 5_000), 'B heard of the change made outside the stores');
        assert.deepEqual(
          (await b!.events(id, 3)).map((e) => [e.seq, e.status]),
          [[4, 'Canceled']],
        );

        // Kill B's LISTEN connection on the server: B reconnects by itself and keeps hearing.
        const [killed, ...others] = await listenBackends();
        assert.ok(killed !== undefined && others.length === 0, 'one LISTEN connection per watching store');
        await db.query('SELECT pg_terminate_backend($1)', [killed]);
        const afterKill = await untilHeard(10_000);
        const now = await listenBackends();
        assert.equal(now.length, 1);
        assert.notEqual(now[0], killed, 'a new LISTEN connection');
        assert.ok(
          await until(() => times(afterKill) >= 3, 5_000),
          `B heard of ${afterKill} ${times(afterKill)} times`,
        );
      } finally {
        stop();
        await Promise.all([a!.close(), b!.close()]);
      }
      assert.deepEqual(await listenBackends(), [], 'close() ends the LISTEN connection');
    });

    it('a store hears of its own writes at once, and once each, without waiting for the notification', async () => {
      await empty();
      const clock = new ManualClock();
      const store = await open(clock);
      const heard: string[] = [];
      const stop = store.watch((id) => heard.push(id));
      try {
        // Let the LISTEN connection come up, so its notifications would arrive if they were not skipped.
        assert.ok(await until(async () => (await listenBackends()).length === 1, 5_000));
        await sleep(200);
        const op = await store.capture(newOperation(clock));
        assert.deepEqual(heard, [op.id], 'told when capture resolved');
        const [leased] = await store.lease({ owner: 'w1', limit: 1, leaseMs: 60_000 });
        await store.complete(op.id, leased!.leaseToken, { status: 200, headers: [], body: new Uint8Array() });
        assert.equal(heard.length, 3);
        await sleep(300);
        assert.equal(heard.length, 3, "the store's own notifications are not told twice");
      } finally {
        stop();
        await store.close();
      }
    });
  });

  describe('PostgreSQL: faults between the store and the server', () => {
    const target = new URL(TEST_POSTGRES_URL);
    let proxy: TcpProxy;
    before(async () => {
      proxy = await new TcpProxy(target.hostname, Number(target.port || 5432)).start();
    });
    after(() => proxy.stop());
    const viaProxy = (clock: ManualClock) => {
      const url = new URL(db.url);
      url.host = `127.0.0.1:${proxy.port}`;
      return open(clock, { url: url.toString(), connectTimeoutMs: 500, statementTimeoutMs: 500 });
    };

    it('opening a store on a server that cannot be reached rejects with StoreUnavailableError', async () => {
      const url = new URL(db.url);
      url.host = `127.0.0.1:${await closedPort()}`;
      await assert.rejects(PostgresStore.open({ url: url.toString() }), StoreUnavailableError);
    });

    it('server down: verbs reject with StoreUnavailableError at once; back up: the same store recovers', async () => {
      await empty();
      const clock = new ManualClock();
      const store = await viaProxy(clock);
      try {
        const before = await store.capture(newOperation(clock));
        proxy.mode = 'refuse';
        const started = Date.now();
        const down = await Promise.allSettled([
          store.capture(newOperation(clock)),
          store.capture(newOperation(clock)),
          store.get(before.id),
          store.lease({ owner: 'w1', limit: 10, leaseMs: 1_000 }),
          store.counts(),
        ]);
        for (const result of down) {
          assert.equal(result.status, 'rejected');
          assert.ok((result as PromiseRejectedResult).reason instanceof StoreUnavailableError);
        }
        assert.ok(Date.now() - started < 2_000, 'nothing waits for long while the server is down');
        proxy.mode = 'forward';
        const after = await store.capture(newOperation(clock));
        assert.equal((await store.get(after.id))?.status, 'NotStarted');
        assert.equal((await store.counts()).NotStarted, 2, 'only the captures that resolved were stored');
      } finally {
        proxy.mode = 'forward';
        await store.close();
      }
    });

    it('hung server: verbs reject with StoreUnavailableError after their time limits, and recover', async () => {
      await empty();
      const clock = new ManualClock();
      const store = await viaProxy(clock);
      try {
        proxy.mode = 'black-hole';
        const started = Date.now();
        await assert.rejects(store.capture(newOperation(clock)), StoreUnavailableError);
        await assert.rejects(store.counts(), StoreUnavailableError);
        assert.ok(Date.now() - started < 8_000, `rejected after ${Date.now() - started} ms`);
        proxy.mode = 'refuse'; // drop the hung connections
        proxy.mode = 'forward';
        const op = await store.capture(newOperation(clock));
        assert.equal((await store.get(op.id))?.id, op.id);
      } finally {
        proxy.mode = 'forward';
        await store.close();
      }
    });

    it('a fenced write that meets a passing outage is retried, so the finished attempt is not taken for a lost one', async () => {
      await empty();
      const clock = new ManualClock();
      const store = await viaProxy(clock);
      try {
        const op = await store.capture(newOperation(clock));
        const [leased] = await store.lease({ owner: 'w1', limit: 10, leaseMs: 1_000 });
        proxy.mode = 'refuse';
        const error = { code: 'upstream-unreachable', message: 'refused' };
        const retried = store.retry(op.id, leased!.leaseToken, {
          nextAttemptAt: clock.now(),
          error,
          outcomeUnknown: false,
        });
        await new Promise((resolve) => setTimeout(resolve, 600));
        proxy.mode = 'forward';
        assert.equal(await retried, true);
        const after = await store.get(op.id);
        assert.deepEqual([after?.attempts, after?.leaseOwner, after?.outcomeUnknown], [1, null, false]);
      } finally {
        proxy.mode = 'forward';
        await store.close();
      }
    });

    it('a fenced write retried through an outage that outlasts its lease is still fenced: the new holder keeps the lease', async () => {
      await empty();
      const clock = new ManualClock();
      const store = await viaProxy(clock);
      const direct = await open(clock);
      try {
        const op = await store.capture(newOperation(clock));
        // The same owner name for both holders, as a gateway's adoption and its own replay worker have.
        const [stale] = await store.lease({ owner: 'gw', limit: 1, leaseMs: 1_000 });
        proxy.mode = 'refuse';
        const late = store.complete(op.id, stale!.leaseToken, {
          status: 200,
          headers: [],
          body: new Uint8Array(),
        });
        await new Promise((resolve) => setTimeout(resolve, 300)); // the first tries meet the outage
        clock.advance(1_000); // the outage outlasts the lease: another holder takes the operation
        await direct.lease({ owner: 'gw', limit: 1, leaseMs: 60_000 }); // hands the expired lease back
        const [live] = await direct.lease({ owner: 'gw', limit: 1, leaseMs: 60_000 });
        assert.equal(live?.id, op.id);
        proxy.mode = 'forward';
        assert.equal(await late, false, 'the late retried write is fenced off');
        const after = await direct.get(op.id);
        assert.deepEqual(
          [after?.status, after?.leaseOwner, after?.leaseExpiresAt, after?.result],
          ['Running', 'gw', live!.leaseExpiresAt, null],
          'the new holder keeps its lease, and no result was written',
        );
        assert.equal(
          await direct.complete(op.id, live!.leaseToken, {
            status: 201,
            headers: [],
            body: new Uint8Array(),
          }),
          true,
        );
      } finally {
        proxy.mode = 'forward';
        await Promise.all([store.close(), direct.close()]);
      }
    });

    it('a lease whose answer is lost is handed back untouched, not taken for an attempt lost in a crash', async () => {
      await empty();
      const clock = new ManualClock();
      const store = await viaProxy(clock);
      try {
        const op = await store.capture(newOperation(clock));
        proxy.mode = 'drop-answers';
        await assert.rejects(store.lease({ owner: 'w1', limit: 10, leaseMs: 1_000 }), StoreUnavailableError);
        proxy.mode = 'refuse';
        proxy.mode = 'forward';
        const held = await db.query<{ lease_owner: string | null }>(
          `SELECT lease_owner FROM ${db.schema}.operations WHERE id = $1`,
          [op.id],
        );
        assert.equal(held[0]?.lease_owner, 'w1', 'the lease did commit on the server');
        clock.advance(5_000); // long past that lease's expiry
        const [again] = await store.lease({ owner: 'w1', limit: 10, leaseMs: 1_000 });
        assert.equal(again?.id, op.id);
        assert.equal(again?.attempts, 0, 'no attempt was counted');
        assert.equal(again?.outcomeUnknown, false, 'no attempt was ever made');
      } finally {
        proxy.mode = 'forward';
        await store.close();
      }
    });
  });

  describe('PostgreSQL: what close() cannot finish is told', () => {
    const target = new URL(TEST_POSTGRES_URL);
    let proxy: TcpProxy;
    before(async () => {
      proxy = await new TcpProxy(target.hostname, Number(target.port || 5432)).start();
    });
    after(() => proxy.stop());

    it('lost leases that cannot be handed back at close reach onError, and the store still closes', async () => {
      await empty();
      const clock = new ManualClock();
      const reported: unknown[] = [];
      const url = new URL(db.url);
      url.host = `127.0.0.1:${proxy.port}`;
      const store = await open(clock, {
        url: url.toString(),
        connectTimeoutMs: 500,
        statementTimeoutMs: 500,
        onError: (error) => reported.push(error),
      });
      await store.capture(newOperation(clock));
      proxy.mode = 'drop-answers';
      await assert.rejects(store.lease({ owner: 'w1', limit: 10, leaseMs: 1_000 }), StoreUnavailableError);
      proxy.mode = 'refuse'; // still down when the store closes: the hand-back fails
      try {
        await store.close();
        assert.equal(reported.length, 1, 'the failed hand-back was told');
        assert.ok(reported[0] instanceof Error);
      } finally {
        proxy.mode = 'forward';
      }
    });
  });

  describe('PostgreSQL: setup errors', () => {
    it('refuses a schema name that would need quoting', async () => {
      await assert.rejects(PostgresStore.open({ url: db.url, schema: 'Robert"; DROP' }), {
        name: 'PostgresSetupError',
        message: /schema \(\?schema= or the schema option\) must be lower-case/,
      });
    });

    it('refuses a schema migrated by a newer Spillway', async () => {
      const other = freshSchema('spillway_newer_test');
      try {
        await (await PostgresStore.open({ url: other.url, poolSize: 1 })).close();
        await other.query(
          `INSERT INTO ${other.schema}.spillway_migrations (version, name) VALUES (999, 'future')`,
        );
        await assert.rejects(PostgresStore.open({ url: other.url, poolSize: 1 }), {
          name: 'PostgresSetupError',
          message: /migration 999, newer than this Spillway knows/,
        });
      } finally {
        await other.drop();
      }
    });
  });
}
