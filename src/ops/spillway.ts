/**
 * The composition root: opens the store, builds the engine, the replay worker,
 * the public and admin servers, and stops them in order. `serve` and the demo
 * both start Spillway through here; so do the end-to-end tests, in-process.
 */

import { type Clock, systemClock } from '../clock.ts';
import type { GatewayConfig } from '../config/config.ts';
import { EventHub } from '../delivery/event-hub.ts';
import { Webhooks } from '../delivery/webhooks/webhooks.ts';
import { WebSocketChannel } from '../delivery/websocket.ts';
import { FailoverEngine } from '../engine/failover-engine.ts';
import { Upstream } from '../engine/upstream.ts';
import { LifecycleEvents } from '../events/lifecycle.ts';
import { createPublicServer } from '../gateway/public-server.ts';
import { HealthMonitor } from '../policy/health/health-monitor.ts';
import type { OperationStore } from '../store/port.ts';
import type { ReplayWorker } from '../workers/replay-worker.ts';
import { Retention } from '../workers/retention.ts';
import { dispatcherFor, type WebhookDispatcher } from '../workers/webhook-dispatcher.ts';
import { createAdminServer, webhookAdmin } from './admin-server.ts';
import { listen } from './listen.ts';
import { subscribeLogs } from './log-subscriber.ts';
import { createLogger, type Logger } from './logger.ts';
import { describeStore, openStore } from './open-store.ts';
import { closeServer, defaultInstanceId, operationsAdmin, replayWorkerFor } from './process-parts.ts';

export interface StartOptions {
  clock?: Clock;
  logger?: Logger;
  /** The lifecycle event stream to emit on (default: a new one); subscribe to it for more than the log. */
  events?: LifecycleEvents;
  /** Lease owner name; default host:pid:random. */
  instanceId?: string;
}

export interface Spillway {
  /** Base URL of the public port as clients should use it. */
  publicUrl: string;
  port: number;
  adminPort: number;
  store: OperationStore;
  engine: FailoverEngine;
  worker: ReplayWorker;
  health: HealthMonitor;
  /** Every lifecycle event of this instance (captures, attempts, dead letters, health, webhooks, errors). */
  events: LifecycleEvents;
  /** WebSocket delivery on the public port (`/_spillway/ws`). */
  websocket: WebSocketChannel;
  /** Posts terminal events to callbacks and subscriptions (idle without any configured). */
  webhooks: WebhookDispatcher;
  /** Stops accepting, lets in-flight work finish within the grace period, hands back leases. Safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startSpillway(config: GatewayConfig, options: StartOptions = {}): Promise<Spillway> {
  const clock = options.clock ?? systemClock;
  const log = options.logger ?? createLogger();
  const instanceId = options.instanceId ?? defaultInstanceId();
  const events = options.events ?? new LifecycleEvents();
  const unsubscribeLogs = subscribeLogs(events, log);
  const store = await openStore(config.store, clock, config.maxStoreBytes);
  const upstream = new Upstream(config.upstream);
  const health = new HealthMonitor({
    routes: config.routes,
    clock,
    store,
    onEvent: (event) => events.emit(event),
    onError: (error) =>
      events.emit({ type: 'background:error', at: clock.now(), source: 'health-overrides', error }),
  });
  await health.start();

  const worker = replayWorkerFor(config, { store, upstream, clock, owner: instanceId, health, events });
  const engine = new FailoverEngine({
    store,
    upstream,
    clock,
    instanceId,
    maxResultBytes: config.maxResultBytes,
    health,
    onCapture: (operation) => worker.wake(operation.nextAttemptAt),
    events,
  });

  let publicUrl = config.publicUrl ?? '';
  const webhookSetup = new Webhooks(config.webhooks);
  const webhooks = dispatcherFor(webhookSetup, {
    store,
    clock,
    owner: instanceId,
    publicUrl: () => publicUrl,
    events,
  });
  const hub = new EventHub(store);
  const retention = new Retention(store, clock, config.retentionMs, (error) =>
    events.emit({ type: 'background:error', at: clock.now(), source: 'retention', error }),
  );
  const publicServer = createPublicServer({
    engine,
    store,
    clock,
    corsOrigins: config.corsOrigins,
    sse: { ...config.sse, hub },
    routes: config.routes,
    maxBodyBytes: config.maxBodyBytes,
    maxResultBytes: config.maxResultBytes,
    idempotencyTtlMs: config.idempotencyTtlMs,
    tenantHeader: config.tenantHeader,
    events,
    webhooks: webhookSetup,
    maxInFlight: config.maxInFlight,
    get publicUrl() {
      return publicUrl;
    },
    onError: (error) => events.emit({ type: 'request:error', at: clock.now(), source: 'request', error }),
  });
  const websocket = new WebSocketChannel({
    ...config.websocket,
    store,
    hub,
    clock,
    corsOrigins: config.corsOrigins,
    tenantHeader: config.tenantHeader,
    get publicUrl() {
      return publicUrl;
    },
    onError: (error) => events.emit({ type: 'request:error', at: clock.now(), source: 'websocket', error }),
  });
  websocket.attach(publicServer);
  let accepting = false;
  const adminServer = createAdminServer({
    isReady: () => accepting,
    health,
    webhooks: webhookAdmin(store, webhookSetup, webhooks),
    operations: operationsAdmin(config, { store, worker, events, clock }),
  });

  const port = await listen(publicServer, config.port, config.host);
  const adminPort = await listen(adminServer, config.adminPort, config.adminHost);
  if (!config.publicUrl) publicUrl = `http://${urlHost(config.host)}:${port}`;
  accepting = true;
  if (config.replay.concurrency > 0) worker.start();
  webhooks.start();
  retention.start();
  log.info(
    { port, adminPort, publicUrl, upstream: config.upstream, store: describeStore(config.store), instanceId },
    'listening',
  );

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      accepting = false;
      log.info({ delayMs: config.shutdownDelayMs, graceMs: config.shutdownGraceMs }, 'shutting down');
      // Not ready, still serving: load balancers see /readyz fail before the port closes.
      await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
      const workerStopped = worker.stop(config.shutdownGraceMs);
      // Requests on the public port finish first: one may still become an adoption.
      // Event streams end now (clients reconnect elsewhere with Last-Event-ID), or they would hold the port open.
      hub.close();
      const websocketClosed = websocket.close(config.shutdownGraceMs); // 1001 to each, or they would too
      const closed = new Promise<void>((resolve) => publicServer.close(() => resolve()));
      publicServer.closeIdleConnections();
      const grace = setTimeout(() => publicServer.closeAllConnections(), config.shutdownGraceMs);
      await Promise.all([closed, websocketClosed]);
      clearTimeout(grace);
      await Promise.all([
        workerStopped,
        engine.drain(config.shutdownGraceMs),
        webhooks.stop(config.shutdownGraceMs),
      ]);
      await webhookSetup.close();
      health.stop();
      retention.stop();
      await upstream.close();
      await store.close();
      await closeServer(adminServer);
      log.info('stopped');
      unsubscribeLogs();
    })();
    return stopping;
  };
  return {
    get publicUrl() {
      return publicUrl;
    },
    port,
    adminPort,
    store,
    engine,
    worker,
    health,
    events,
    websocket,
    webhooks,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

const urlHost = (host: string) =>
  host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
