/**
 * `spillway worker`: replay workers without the HTTP edge, for scale-out.
 * As many worker processes as wanted share one PostgreSQL store with the
 * gateways; `SKIP LOCKED` leasing keeps them from taking one operation twice,
 * and each process's leases are recovered by the others if it dies.
 *
 * It composes the same parts as `serve` (ReplayWorker, Upstream, the admin
 * port for /healthz, /readyz and the webhook actions) from the same config
 * file, so routes and their retry policies match the gateways'. It refuses a
 * store that only one process may write (SQLite): there, the gateway's own
 * workers replay.
 */

import { type Clock, systemClock } from '../clock.ts';
import { ConfigError, type GatewayConfig } from '../config/config.ts';
import { Webhooks } from '../delivery/webhooks/webhooks.ts';
import { HttpUpstream } from '../engine/upstream.ts';
import { LifecycleEvents } from '../events/lifecycle.ts';
import { storeCapabilities, storeEngineOf } from '../store/capabilities.ts';
import type { OperationStore } from '../store/port.ts';
import type { ReplayWorker } from '../workers/replay-worker.ts';
import { dispatcherFor, type WebhookDispatcher } from '../workers/webhook-dispatcher.ts';
import { assertAdminBindable } from './admin/admin-token.ts';
import { createAdminServer, webhookAdmin } from './admin-server.ts';
import { listen } from './listen.ts';
import { subscribeLogs } from './log-subscriber.ts';
import { createLogger, type Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { describeStore, openStore } from './open-store.ts';
import {
  closeServer,
  defaultInstanceId,
  edgeEvents,
  operationsAdmin,
  replayWorkerFor,
  staleCopiesFor,
} from './process-parts.ts';

export interface WorkerProcessOptions {
  clock?: Clock;
  logger?: Logger;
  /** The lifecycle event stream to emit on (default: a new one). */
  events?: LifecycleEvents;
  /** Lease owner name; default host:pid:random. */
  instanceId?: string;
}

export interface WorkerProcess {
  adminPort: number;
  store: OperationStore;
  worker: ReplayWorker;
  /** Every lifecycle event of this process (attempts, dead letters, webhooks, errors). */
  events: LifecycleEvents;
  /** Posts terminal events to callbacks and subscriptions, beside the gateways' dispatchers. */
  webhooks: WebhookDispatcher;
  /** Stops leasing, lets attempts in flight finish within the grace period, hands back the rest. Safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startWorkerProcess(
  config: GatewayConfig,
  options: WorkerProcessOptions = {},
): Promise<WorkerProcess> {
  const engine = storeEngineOf(config.store);
  if (!storeCapabilities[engine].sharedByProcesses) {
    throw new ConfigError(
      `spillway worker needs a store several processes can share, a postgres:// URL; got the ${engine} file ${JSON.stringify(config.store)}, which has one writer. With SQLite, the gateway's own replay workers (replay.concurrency) replay its operations.`,
    );
  }
  if (config.replay.concurrency < 1) {
    throw new ConfigError('replay.concurrency must be at least 1 for spillway worker, got 0.');
  }
  const webhookSetup = new Webhooks(config.webhooks);
  const { publicUrl } = config;
  if (webhookSetup.enabled && publicUrl === undefined) {
    throw new ConfigError(
      'spillway worker delivers webhooks, whose events link to the operation on a gateway: set publicUrl (--public-url or SPILLWAY_PUBLIC_URL) to the URL clients reach the gateways at.',
    );
  }
  const clock = options.clock ?? systemClock;
  const log = options.logger ?? createLogger();
  const instanceId = options.instanceId ?? defaultInstanceId();
  const events = options.events ?? new LifecycleEvents();
  const unsubscribeLogs = subscribeLogs(events, log);
  assertAdminBindable(config.adminHost, config.adminToken);
  const store = await openStore(config.store, clock, {
    encryptionKeys: config.storeEncryptionKey,
    onError: (error) => events.emit({ type: 'background:error', at: clock.now(), source: 'store', error }),
  });
  const upstream = new HttpUpstream(config.upstream);
  // A read's result refreshes its stale copy here too: the gateways answer with it.
  const staleCopies = staleCopiesFor(config, { store, upstream, clock, events });
  const worker = replayWorkerFor(config, {
    store,
    upstream,
    clock,
    owner: instanceId,
    events,
    ...(staleCopies ? { staleCopies } : {}),
  });
  const webhooks = dispatcherFor(webhookSetup, {
    store,
    clock,
    owner: instanceId,
    publicUrl: () => publicUrl ?? '',
    events,
  });
  let running = false;
  const metrics = new Metrics({ events, store, clock, routes: config.routes.map((r) => r.name) });
  const adminServer = createAdminServer({
    edge: config,
    ...edgeEvents(events, clock),
    isReady: () => running,
    webhooks: webhookAdmin(store, webhookSetup, webhooks),
    operations: operationsAdmin(config, { store, worker, events, clock }),
    tokens: { admin: config.adminToken, metrics: config.metricsToken },
    metrics,
  });
  let adminPort: number;
  try {
    adminPort = await listen(adminServer, config.adminPort, config.adminHost);
  } catch (error) {
    await upstream.close();
    await store.close();
    unsubscribeLogs();
    metrics.close();
    throw error;
  }
  worker.start();
  webhooks.start();
  running = true;
  log.info(
    {
      adminPort,
      upstream: config.upstream,
      store: describeStore(config.store),
      instanceId,
      concurrency: config.replay.concurrency,
    },
    'replaying',
  );

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      running = false;
      log.info({ graceMs: config.shutdownGraceMs }, 'shutting down');
      await Promise.all([worker.stop(config.shutdownGraceMs), webhooks.stop(config.shutdownGraceMs)]);
      await webhookSetup.close();
      await staleCopies?.close();
      await upstream.close();
      await store.close();
      await closeServer(adminServer, config.shutdownGraceMs);
      log.info('stopped');
      unsubscribeLogs();
      metrics.close();
    })();
    return stopping;
  };
  return { adminPort, store, worker, events, webhooks, stop, [Symbol.asyncDispose]: stop };
}
