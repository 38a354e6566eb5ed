/**
 * Nothing fails silently in work nobody awaits: adopted attempts, replays, the
 * lease loop and retention tell every failure, with the operation's id, on the
 * lifecycle event stream (`background:error`); a final write the store refuses for a moment
 * is tried again, and one it keeps refusing is reported as unrecorded. A
 * capture that fails in any way finishes its health token.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { buildConfig } from '../../src/config/config.ts';
import { FailoverEngine } from '../../src/engine/failover-engine.ts';
import { HttpUpstream } from '../../src/engine/upstream.ts';
import { StoreUnavailableError } from '../../src/errors.ts';
import { type EventOfType, LifecycleEvents } from '../../src/events/lifecycle.ts';
import { HealthMonitor } from '../../src/policy/health/health-monitor.ts';
import type { OperationStore } from '../../src/store/port.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ReplayWorker } from '../../src/workers/replay-worker.ts';
import { Retention } from '../../src/workers/retention.ts';
import { startGateway, tempDir } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { TestUpstream } from '../support/test-upstream.ts';

type Failure = EventOfType<'background:error'>;

/** An event stream whose `background:error` events land in `into`. */
function told(into: Failure[]): LifecycleEvents {
  const events = new LifecycleEvents();
  events.on('background:error', (event) => into.push(event));
  return events;
}

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** A real SQLite store whose named verbs are replaced (to fail) by the test. */
function storeWith(overrides: Partial<Record<keyof OperationStore, (...args: never[]) => unknown>>) {
  const real = new SqliteStore({ path: join(dir, `s${++files}.db`) });
  const store = new Proxy(real, {
    get(target, name, receiver) {
      const override = (overrides as Record<PropertyKey, unknown>)[name];
      if (override) return override;
      const value = Reflect.get(target, name, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as OperationStore;
  return { real, store };
}

const config = (upstream: string) =>
  buildConfig({
    upstream,
    routeDefaults: { budgetMs: 50, attemptTimeoutMs: 5_000, backoff: { initialMs: 10, maxMs: 20 } },
  });

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function slowUpstream(ms: number): Promise<TestUpstream> {
  const upstream = await new TestUpstream().start();
  upstream.behaviour = () => ({ kind: 'delay', ms, and: { kind: 'respond', status: 201, body: 'made' } });
  return upstream;
}

function engineFor(store: OperationStore, upstreamUrl: string, failures: Failure[]) {
  const { routes } = config(upstreamUrl);
  const health = new HealthMonitor({ routes, clock: systemClock, store });
  const upstream = new HttpUpstream(upstreamUrl);
  const engine = new FailoverEngine({
    store,
    upstream,
    clock: systemClock,
    instanceId: 'test',
    maxResultBytes: 1_000_000,
    health,
    events: told(failures),
  });
  const route = routes.at(-1)!;
  const submit = () =>
    engine.submit({
      route,
      request: { method: 'POST', path: '/pay', query: '', headers: [], body: Buffer.from('{}') },
      receivedAt: Date.now(),
      budgetMs: route.budgetMs,
      mayFailover: true,
      tenant: null,
    });
  return { engine, health, upstream, submit, route };
}

describe('adopted attempts', () => {
  it('report a final write that fails with an unexpected error, with the operation id', async () => {
    const upstream = await slowUpstream(150);
    const { store, real } = storeWith({
      complete: () => Promise.reject(new Error('constraint failed: disk gremlins')),
    });
    const failures: Failure[] = [];
    const { engine, submit, upstream: client } = engineFor(store, upstream.url, failures);
    try {
      const answer = await submit();
      assert.equal(answer.kind, 'accepted');
      const id = answer.kind === 'accepted' ? answer.operation.id : '';
      await engine.idle();
      assert.equal(failures.length, 1);
      assert.equal(failures[0]?.source, 'adoption');
      assert.equal(failures[0]?.operationId, id);
      assert.match(String(failures[0]?.error), /disk gremlins/);
    } finally {
      await client.close();
      await real.close();
      await upstream.stop();
    }
  });

  it('retry a final write the store refuses for a moment, and record the result', async () => {
    const upstream = await slowUpstream(150);
    let refusals = 0;
    const { store, real } = storeWith({
      complete: ((...args: Parameters<OperationStore['complete']>) => {
        if (++refusals <= 2) return Promise.reject(new StoreUnavailableError('database is locked'));
        return real.complete(...args);
      }) as never,
    });
    const failures: Failure[] = [];
    const { engine, submit, upstream: client } = engineFor(store, upstream.url, failures);
    try {
      const answer = await submit();
      assert.equal(answer.kind, 'accepted');
      const id = answer.kind === 'accepted' ? answer.operation.id : '';
      await engine.idle();
      assert.equal(refusals, 3);
      assert.deepEqual(failures, []);
      const op = await real.get(id);
      assert.equal(op?.status, 'Succeeded');
      assert.equal(op?.result?.status, 201);
    } finally {
      await client.close();
      await real.close();
      await upstream.stop();
    }
  });

  it('report loudly a final write the store keeps refusing, after a bounded number of tries', async () => {
    const upstream = await slowUpstream(100);
    let tries = 0;
    const { store, real } = storeWith({
      complete: () => {
        tries++;
        return Promise.reject(new StoreUnavailableError('disk I/O error'));
      },
    });
    const failures: Failure[] = [];
    const { engine, submit, upstream: client } = engineFor(store, upstream.url, failures);
    try {
      const answer = await submit();
      const id = answer.kind === 'accepted' ? answer.operation.id : '';
      await engine.idle();
      assert.equal(tries, 6, 'the first try and five more');
      assert.equal(failures.length, 1);
      assert.equal(failures[0]?.operationId, id);
      assert.equal((failures[0]?.error as Error | undefined)?.name, 'FinalWriteError');
      assert.match(String(failures[0]?.error), /could not be recorded after 6 tries/);
      assert.equal((await real.get(id))?.status, 'Running', 'left to its lease, to be recovered');
    } finally {
      await client.close();
      await real.close();
      await upstream.stop();
    }
  });
});

describe('a capture that fails with an unexpected error', () => {
  it('finishes the health token and lets the client wait for the sync answer', async () => {
    const upstream = await slowUpstream(150);
    const { store, real } = storeWith({
      capture: () => Promise.reject(new TypeError('cannot read properties of undefined')),
    });
    const failures: Failure[] = [];
    const { submit, health, route, upstream: client } = engineFor(store, upstream.url, failures);
    try {
      const answer = await submit();
      assert.equal(answer.kind, 'sync');
      if (answer.kind === 'sync') {
        assert.equal(answer.response.statusCode, 201);
        answer.response.body.resume();
      }
      assert.equal(health.route(route.name).snapshot(Date.now()).signals.inFlight, 0, 'token finished');
      assert.equal(failures.length, 1);
      assert.equal(failures[0]?.source, 'adoption');
      assert.match(String(failures[0]?.error), /cannot read properties/);
    } finally {
      await client.close();
      await real.close();
      await upstream.stop();
    }
  });
});

describe('replays', () => {
  async function captured(store: OperationStore): Promise<string> {
    const op = await store.capture({
      id: `op_${Math.random().toString(36).slice(2)}`,
      route: 'default',
      request: { method: 'PUT', path: '/x', query: '', headers: [], body: Buffer.alloc(0) },
      priority: 0,
      idempotencyKey: null,
      tenant: null,
      traceparent: null,
      tracestate: null,
      attempts: 0,
      nextAttemptAt: 0,
      outcomeUnknown: false,
    });
    return op.id;
  }

  function workerFor(store: OperationStore, upstreamUrl: string, failures: Failure[]) {
    const { routes } = config(upstreamUrl);
    const upstream = new HttpUpstream(upstreamUrl);
    const worker = new ReplayWorker({
      store,
      upstream,
      clock: systemClock,
      owner: 'test',
      routeNamed: () => routes.at(-1)!,
      routes,
      concurrency: 2,
      pollIntervalMs: 20,
      maxResultBytes: 1_000_000,
      events: told(failures),
    });
    return { worker, upstream };
  }

  it('report a replay that fails with an unexpected error, with the operation id', async () => {
    const upstream = await slowUpstream(0);
    const { store, real } = storeWith({
      complete: () => Promise.reject(new RangeError('result row too wide')),
    });
    const id = await captured(real);
    const failures: Failure[] = [];
    const { worker, upstream: client } = workerFor(store, upstream.url, failures);
    try {
      assert.equal(await worker.runOnce(), 1);
      await worker.idle();
      assert.equal(failures.length, 1);
      assert.equal(failures[0]?.source, 'replay');
      assert.equal(failures[0]?.operationId, id);
      assert.match(String(failures[0]?.error), /result row too wide/);
    } finally {
      await worker.stop(0);
      await client.close();
      await real.close();
      await upstream.stop();
    }
  });

  it('report a store that fails the lease loop, and keep polling', async () => {
    const upstream = await slowUpstream(0);
    let leases = 0;
    const { store, real } = storeWith({
      lease: () => {
        leases++;
        return Promise.reject(new Error('no such column: lease_token'));
      },
    });
    const failures: Failure[] = [];
    const { worker, upstream: client } = workerFor(store, upstream.url, failures);
    try {
      worker.start();
      await until('two failed leases reported', () => failures.length >= 2);
      assert.ok(leases >= 2, 'the loop went on polling');
      assert.equal(failures[0]?.source, 'replay');
      assert.match(String(failures[0]?.error), /no such column/);
    } finally {
      await worker.stop(0);
      await client.close();
      await real.close();
      await upstream.stop();
    }
  });
});

describe('retention', () => {
  it('reports a round that fails, and runs the next one', async () => {
    let rounds = 0;
    const { store, real } = storeWith({
      purge: () => {
        rounds++;
        return Promise.reject(new StoreUnavailableError('database is locked'));
      },
    });
    const clock = new ManualClock();
    const failures: Failure[] = [];
    const retention = new Retention(store, clock, 60_000, (error) =>
      failures.push({ type: 'background:error', at: clock.now(), source: 'retention', error }),
    );
    try {
      retention.start();
      clock.advance(6_000);
      await until('the first round reported', () => failures.length === 1);
      clock.advance(6_000);
      await until('the second round reported', () => failures.length === 2);
      assert.equal(rounds, 2);
      assert.equal(failures[0]?.source, 'retention');
      assert.match(String(failures[0]?.error), /database is locked/);
    } finally {
      retention.stop();
      await real.close();
    }
  });
});

describe('a WebSocket subscription whose store read fails with an unexpected error', () => {
  it('tells it as a request:error instead of dropping it', async () => {
    const upstream = await new TestUpstream().start();
    const gw = await startGateway({ upstream: upstream.url });
    try {
      const accepted = await fetch(`${gw.publicUrl}/x`, {
        method: 'POST',
        headers: { prefer: 'respond-async, wait=0' },
      });
      const { id } = (await accepted.json()) as { id: string };
      const errors: EventOfType<'request:error'>[] = [];
      gw.events.on('request:error', (event) => errors.push(event));
      gw.store.events = () => Promise.reject(new TypeError('events is not iterable'));
      const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/_spillway/ws`, 'cloudevents.json');
      await new Promise((resolve, reject) => {
        ws.addEventListener('open', resolve);
        ws.addEventListener('error', reject);
      });
      ws.send(JSON.stringify({ type: 'subscribe', operationId: id }));
      await until('the failed read told', () => errors.length > 0);
      assert.equal(errors[0]?.source, 'websocket');
      assert.match(String(errors[0]?.error), /events is not iterable/);
      ws.close();
    } finally {
      await gw.stop();
      await upstream.stop();
    }
  });
});
