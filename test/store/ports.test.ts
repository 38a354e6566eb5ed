/**
 * The store port is made of parts (src/store/port.ts), and each component
 * asks only for the parts it uses. Here each is built on an object that has
 * ONLY those verbs, bound to a real store and typed as those ports: a
 * component that reached for another verb would not typecheck, and would
 * throw at run time (the verb is simply not there).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { buildConfig } from '../../src/config/config.ts';
import { EventHub } from '../../src/delivery/event-hub.ts';
import { FailoverEngine } from '../../src/engine/failover-engine.ts';
import { HttpUpstream } from '../../src/engine/upstream.ts';
import { HealthMonitor } from '../../src/policy/health/health-monitor.ts';
import type {
  EventLog,
  IdempotencyKeys,
  OperationQueue,
  OperationStore,
  OperatorViews,
  RouteControls,
  StaleCopyStore,
  StoreLifecycle,
  WebhookOutbox,
} from '../../src/store/port.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ReplayWorker } from '../../src/workers/replay-worker.ts';
import { Retention } from '../../src/workers/retention.ts';
import { tempDir } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { TestUpstream } from '../support/test-upstream.ts';
import { newOperation } from './store-fixture.ts';

// Each port's verbs, checked by the compiler to be all of them and nothing more.
const queue = {
  capture: true,
  lease: true,
  complete: true,
  retry: true,
  fail: true,
  release: true,
  extendLease: true,
  get: true,
  counts: true,
  cancel: true,
  purge: true,
  nextDueAt: true,
  orderingKeyPending: true,
  routeCounts: true,
  oldestDueByRoute: true,
} satisfies Record<keyof OperationQueue, true>;
const idempotencyKeys = {
  claimIdempotencyKey: true,
  completeIdempotencyKey: true,
  releaseIdempotencyKey: true,
  purgeIdempotencyKeys: true,
} satisfies Record<keyof IdempotencyKeys, true>;
const eventLog = { events: true, watch: true } satisfies Record<keyof EventLog, true>;
const webhookOutbox = {
  leaseWebhookDeliveries: true,
  recordWebhookAttempt: true,
  releaseWebhookDelivery: true,
  webhookDeliveries: true,
  listWebhookDeliveries: true,
  nextWebhookDueAt: true,
  disabledWebhookEndpoints: true,
  enableWebhookEndpoint: true,
  resendWebhookDelivery: true,
} satisfies Record<keyof WebhookOutbox, true>;
const routeControls = {
  setOverride: true,
  overrides: true,
  setReplayPaused: true,
  pausedReplays: true,
  setRouteHealth: true,
  routeHealth: true,
  bringForward: true,
} satisfies Record<keyof RouteControls, true>;
const operatorViews = {
  listOperations: true,
  attemptLog: true,
  redrive: true,
  discard: true,
  blockedOrderingKeys: true,
} satisfies Record<keyof OperatorViews, true>;
const staleCopies = {
  keepStaleCopy: true,
  staleCopies: true,
  useStaleCopy: true,
  dropStaleCopies: true,
  purgeStaleCopies: true,
} satisfies Record<keyof StaleCopyStore, true>;
const lifecycle = { close: true, rekey: true } satisfies Record<keyof StoreLifecycle, true>;

/** An object with only `verbs` (every verb of the ports P), each bound to `store`. */
function only<P>(store: OperationStore, verbs: Record<keyof P, true>): P {
  const narrow: Record<string, unknown> = {};
  for (const verb of Object.keys(verbs)) {
    const method = Reflect.get(store, verb) as (...args: unknown[]) => unknown;
    narrow[verb] = method.bind(store);
  }
  return narrow as P;
}

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const openStore = (clock = systemClock) => new SqliteStore({ path: join(dir, `s${++files}.db`), clock });

const config = (upstream: string) =>
  buildConfig({
    upstream,
    routeDefaults: { budgetMs: 50, attemptTimeoutMs: 5_000, backoff: { initialMs: 10, maxMs: 20 } },
  });

/** An operation due now, named `id`. */
const due = (id: string) => newOperation(new ManualClock(Date.now()), { id });

describe('the store port, in parts', () => {
  it('adds up to the whole OperationStore, each verb in exactly one part', async () => {
    const parts = [
      queue,
      idempotencyKeys,
      eventLog,
      webhookOutbox,
      routeControls,
      operatorViews,
      staleCopies,
      lifecycle,
    ];
    const verbs = parts.flatMap((part) => Object.keys(part));
    assert.equal(new Set(verbs).size, verbs.length, 'no verb in two parts');
    const store = openStore();
    try {
      const whole = only<OperationStore>(
        store,
        Object.fromEntries(verbs.map((verb) => [verb, true])) as never,
      );
      const methods = new Set<string>();
      for (
        let proto = Object.getPrototypeOf(store);
        proto !== Object.prototype;
        proto = Object.getPrototypeOf(proto)
      ) {
        for (const name of Object.getOwnPropertyNames(proto)) if (name !== 'constructor') methods.add(name);
      }
      const missing = [...methods].filter((name) => !(name in whole));
      assert.deepEqual(missing, [], 'every public verb of the adapter belongs to a part');
    } finally {
      await store.close();
    }
  });

  it('a failover engine and its health monitor need only the queue and the route controls', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({
      kind: 'delay',
      ms: 150,
      and: { kind: 'respond', status: 201, body: 'made' },
    });
    const store = openStore();
    const { routes } = config(upstream.url);
    const client = new HttpUpstream(upstream.url);
    const health = new HealthMonitor({
      routes,
      clock: systemClock,
      store: only<RouteControls>(store, routeControls),
    });
    const engine = new FailoverEngine({
      store: only<OperationQueue>(store, queue),
      upstream: client,
      clock: systemClock,
      instanceId: 'test',
      maxResultBytes: 1_000_000,
      health,
    });
    try {
      const route = routes.at(-1)!;
      const answer = await engine.submit({
        route,
        request: { method: 'POST', path: '/pay', query: '', headers: [], body: Buffer.from('{}') },
        receivedAt: Date.now(),
        budgetMs: route.budgetMs,
        mayFailover: true,
        tenant: null,
      });
      assert.equal(answer.kind, 'accepted', 'the budget ran out in flight: adopted');
      await engine.idle();
      const id = answer.kind === 'accepted' ? answer.operation.id : '';
      const op = await store.get(id);
      assert.equal(op?.status, 'Succeeded', 'the adopted attempt finished through the queue alone');
      assert.equal(Buffer.from(op?.result?.body ?? []).toString(), 'made');
    } finally {
      await client.close();
      await store.close();
      await upstream.stop();
    }
  });

  it('a replay worker needs only the queue and the route controls', async () => {
    const upstream = await new TestUpstream().start();
    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: 'replayed' });
    const store = openStore();
    const { routes } = config(upstream.url);
    const client = new HttpUpstream(upstream.url);
    const worker = new ReplayWorker({
      store: only<OperationQueue & RouteControls>(store, { ...queue, ...routeControls }),
      upstream: client,
      clock: systemClock,
      owner: 'test',
      routeNamed: () => routes.at(-1)!,
      routes,
      concurrency: 2,
      pollIntervalMs: 20,
      maxResultBytes: 1_000_000,
    });
    try {
      await store.capture(due('op_replayed'));
      assert.equal(await worker.runOnce(), 1);
      await worker.idle();
      assert.equal((await store.get('op_replayed'))?.status, 'Succeeded');
    } finally {
      await worker.stop(0);
      await client.close();
      await store.close();
      await upstream.stop();
    }
  });

  it('retention needs only the queue, the Idempotency-Key records and the stale copies', async () => {
    const clock = new ManualClock();
    const store = openStore(clock);
    const errors: unknown[] = [];
    const retention = new Retention(
      only<OperationQueue & IdempotencyKeys & StaleCopyStore>(store, {
        ...queue,
        ...idempotencyKeys,
        ...staleCopies,
      }),
      clock,
      60_000,
      (error) => errors.push(error),
    );
    try {
      await store.capture(newOperation(clock, { id: 'op_old' }));
      await store.cancel('op_old');
      clock.advance(61_000);
      assert.equal(await retention.runOnce(), 1);
      assert.equal(await store.get('op_old'), undefined);
      assert.deepEqual(errors, []);
    } finally {
      await store.close();
    }
  });

  it('an event hub needs only the event log', async () => {
    const store = openStore();
    const hub = new EventHub(only<EventLog>(store, eventLog));
    try {
      const heard = new Promise<void>((resolve) => hub.follow('op_watched', resolve, () => {}));
      await store.capture(due('op_watched'));
      await heard;
    } finally {
      hub.close();
      await store.close();
    }
  });
});
