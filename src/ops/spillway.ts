/**
 * The composition root: opens the store, builds the engine, the replay worker,
 * the public and admin servers, and stops them in order. `serve` and the demo
 * both start Spillway through here; so do the end-to-end tests, in-process.
 * `buildGatewayParts` builds everything but the ports; `startSpillway` binds
 * them, and `createSpillway` (src/embed/) serves the same parts in-process.
 */

import type { Server } from 'node:http';
import { type Clock, systemClock } from '../clock.ts';
import type { GatewayConfig } from '../config/config.ts';
import { EventHub } from '../delivery/event-hub.ts';
import { Webhooks } from '../delivery/webhooks/webhooks.ts';
import { WebSocketChannel } from '../delivery/websocket.ts';
import { FailoverEngine } from '../engine/failover-engine.ts';
import { HttpUpstream, type Upstream } from '../engine/upstream.ts';
import { LifecycleEvents } from '../events/lifecycle.ts';
import { createPublicServer } from '../gateway/public-server.ts';
import { HealthMonitor } from '../policy/health/health-monitor.ts';
import type { OperationStore } from '../store/port.ts';
import type { ReplayWorker } from '../workers/replay-worker.ts';
import { Retention } from '../workers/retention.ts';
import { dispatcherFor, type WebhookDispatcher } from '../workers/webhook-dispatcher.ts';
import { assertAdminBindable } from './admin/admin-token.ts';
import { createAdminServer, webhookAdmin } from './admin-server.ts';
import { listen } from './listen.ts';
import { subscribeLogs } from './log-subscriber.ts';
import { createLogger, type Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { describeStore, openStore } from './open-store.ts';
import {
  backlogBoundFor,
  closeServer,
  defaultInstanceId,
  edgeEvents,
  operationsAdmin,
  replayWorkerFor,
  staleCopiesFor,
} from './process-parts.ts';

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

/**
 * The parts of a gateway, built and wired but listening on no port: the
 * public server is a request listener (`startSpillway` binds it to a port,
 * `createSpillway` in src/embed serves it in-process). One place builds
 * them, so the two cannot drift apart.
 */
export interface GatewayParts {
  store: OperationStore;
  upstream: Upstream;
  engine: FailoverEngine;
  worker: ReplayWorker;
  health: HealthMonitor;
  webhooks: WebhookDispatcher;
  /** The webhook configuration: callback checks, subscriptions, signing. */
  webhookSetup: Webhooks;
  hub: EventHub;
  /** The public routes and `/_spillway/`, not listening. */
  publicServer: Server;
  /** Base of the URLs in answers; settable once the port is known. */
  publicUrl: string;
  /** Starts the replay workers (unless replay.concurrency is 0), the webhook dispatcher and retention. */
  start(): void;
  /**
   * Stops replay at once; once `requestsDone` resolves (the public requests
   * have finished: one may still become an adoption), lets adopted attempts,
   * replays and webhook deliveries finish within `graceMs`, hands back the
   * rest, and closes the upstream and the store. Safe to call twice.
   */
  stop(graceMs: number, requestsDone?: Promise<unknown>): Promise<void>;
}

export interface PartsOptions {
  clock: Clock;
  /** Where every part tells what happened (the log subscribes to it). */
  events: LifecycleEvents;
  instanceId: string;
  upstream: Upstream;
  /** The function routes this process runs (createSpillway's define); none for serve. */
  functions?: () => readonly string[];
  /** False: no upstream of its own, replay runs only `functions`. Default true. */
  proxiedRoutes?: boolean;
}

export async function buildGatewayParts(config: GatewayConfig, options: PartsOptions): Promise<GatewayParts> {
  const { clock, upstream, instanceId, events } = options;
  const store = await openStore(config.store, clock, {
    maxSizeBytes: config.maxStoreBytes,
    encryptionKeys: config.storeEncryptionKey,
    onError: (error) => events.emit({ type: 'background:error', at: clock.now(), source: 'store', error }),
  });
  const health = new HealthMonitor({
    routes: config.routes,
    clock,
    store,
    onEvent: (event) => events.emit(event),
    onError: (error) =>
      events.emit({ type: 'background:error', at: clock.now(), source: 'health-overrides', error }),
  });
  await health.start();

  const staleCopies = staleCopiesFor(config, { store, upstream, clock, events });
  const worker = replayWorkerFor(config, {
    store,
    upstream,
    clock,
    owner: instanceId,
    health,
    events,
    ...(staleCopies ? { staleCopies } : {}),
    ...(options.functions ? { functions: options.functions } : {}),
    ...(options.proxiedRoutes === undefined ? {} : { proxiedRoutes: options.proxiedRoutes }),
  });
  const engine = new FailoverEngine({
    store,
    upstream,
    clock,
    instanceId,
    maxResultBytes: config.maxResultBytes,
    health,
    onCapture: (operation) => worker.wake(operation.nextAttemptAt),
    backlog: backlogBoundFor(config, store, clock),
    events,
    ...(staleCopies ? { staleCopies } : {}),
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
  let stopping: Promise<void> | undefined;
  const publicServer = createPublicServer({
    engine,
    store,
    ...(staleCopies ? { staleCopies } : {}),
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
    headersTimeoutMs: config.headersTimeoutMs,
    bodyTimeoutMs: config.bodyTimeoutMs,
    forwarding: config,
    get publicUrl() {
      return publicUrl;
    },
    ...edgeEvents(events, clock),
  });
  return {
    store,
    upstream,
    engine,
    worker,
    health,
    webhooks,
    webhookSetup,
    hub,
    publicServer,
    get publicUrl() {
      return publicUrl;
    },
    set publicUrl(url: string) {
      publicUrl = url;
    },
    start() {
      if (config.replay.concurrency > 0) worker.start();
      webhooks.start();
      retention.start();
    },
    stop(graceMs, requestsDone = Promise.resolve()) {
      stopping ??= (async () => {
        const workerStopped = worker.stop(graceMs);
        await requestsDone;
        await Promise.all([workerStopped, engine.drain(graceMs), webhooks.stop(graceMs)]);
        await webhookSetup.close();
        health.stop();
        retention.stop();
        await staleCopies?.close();
        await upstream.close();
        await store.close();
      })();
      return stopping;
    },
  };
}

export async function startSpillway(config: GatewayConfig, options: StartOptions = {}): Promise<Spillway> {
  const clock = options.clock ?? systemClock;
  const log = options.logger ?? createLogger();
  const instanceId = options.instanceId ?? defaultInstanceId();
  const events = options.events ?? new LifecycleEvents();
  assertAdminBindable(config.adminHost, config.adminToken);
  const unsubscribeLogs = subscribeLogs(events, log);
  const upstream = new HttpUpstream(config.upstream);
  const parts = await buildGatewayParts(config, { clock, events, instanceId, upstream });
  const { store, engine, worker, health, webhooks, webhookSetup, hub, publicServer } = parts;
  const websocket = new WebSocketChannel({
    ...config.websocket,
    store,
    hub,
    clock,
    corsOrigins: config.corsOrigins,
    tenantHeader: config.tenantHeader,
    get publicUrl() {
      return parts.publicUrl;
    },
    onError: (error) => events.emit({ type: 'request:error', at: clock.now(), source: 'websocket', error }),
  });
  websocket.attach(publicServer);
  let accepting = false;
  const metrics = new Metrics({
    events,
    store,
    clock,
    health,
    routes: config.routes.map((r) => r.name),
  });
  const adminServer = createAdminServer({
    edge: config,
    ...edgeEvents(events, clock),
    isReady: () => accepting,
    health,
    webhooks: webhookAdmin(store, webhookSetup, webhooks),
    operations: operationsAdmin(config, { store, worker, events, clock }),
    tokens: { admin: config.adminToken, metrics: config.metricsToken },
    metrics,
  });

  let port: number;
  let adminPort: number;
  try {
    port = await listen(publicServer, config.port, config.host);
    adminPort = await listen(adminServer, config.adminPort, config.adminHost);
  } catch (error) {
    // A port in use: let go of what was opened (the store's lock above all), so a retry can start.
    hub.close();
    await Promise.all([closeServer(publicServer, 0), closeServer(adminServer, 0), websocket.close(0)]);
    await parts.stop(0);
    unsubscribeLogs();
    throw error;
  }
  if (!config.publicUrl) parts.publicUrl = `http://${urlHost(config.host)}:${port}`;
  accepting = true;
  parts.start();
  log.info(
    {
      port,
      adminPort,
      publicUrl: parts.publicUrl,
      upstream: config.upstream,
      store: describeStore(config.store),
      instanceId,
    },
    'listening',
  );

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      accepting = false;
      log.info({ delayMs: config.shutdownDelayMs, graceMs: config.shutdownGraceMs }, 'shutting down');
      // Not ready, still serving: load balancers see /readyz fail before the port closes.
      await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
      // Event streams end now (clients reconnect elsewhere with Last-Event-ID), or they would hold the port open.
      hub.close();
      const websocketClosed = websocket.close(config.shutdownGraceMs); // 1001 to each, or they would too
      const closed = new Promise<void>((resolve) => publicServer.close(() => resolve()));
      publicServer.closeIdleConnections();
      const grace = setTimeout(() => publicServer.closeAllConnections(), config.shutdownGraceMs);
      // Replay stops leasing now; the rest waits for the requests on the public port to finish.
      await parts.stop(
        config.shutdownGraceMs,
        Promise.all([closed, websocketClosed]).finally(() => clearTimeout(grace)),
      );
      await closeServer(adminServer, config.shutdownGraceMs);
      log.info('stopped');
      unsubscribeLogs();
      metrics.close();
    })();
    return stopping;
  };
  return {
    get publicUrl() {
      return parts.publicUrl;
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
