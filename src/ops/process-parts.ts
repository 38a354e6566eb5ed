/**
 * The parts `serve` (spillway.ts) and `spillway worker` (worker-process.ts)
 * build alike from one config, so the two kinds of process cannot drift
 * apart: their lease owner name, their replay worker, and how they close a
 * server.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { Clock } from '../clock.ts';
import type { GatewayConfig } from '../config/config.ts';
import { BacklogBound } from '../engine/backlog-bound.ts';
import { StaleCopies } from '../engine/stale-copies.ts';
import type { Upstream } from '../engine/upstream.ts';
import type { LifecycleEvents } from '../events/lifecycle.ts';
import type { EdgeServerOptions } from '../gateway/edge-server.ts';
import type { HealthMonitor } from '../policy/health/health-monitor.ts';
import type { OperationStore } from '../store/port.ts';
import { ReplayWorker } from '../workers/replay-worker.ts';
import type { OperationsAdminOptions } from './admin/operations-admin.ts';

/** A lease owner name unique to this process: host:pid:random. */
export const defaultInstanceId = (): string =>
  `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

/** The replay worker for the config's routes (the catch-all route governs names no longer configured). */
export function replayWorkerFor(
  config: GatewayConfig,
  parts: {
    store: OperationStore;
    upstream: Upstream;
    clock: Clock;
    owner: string;
    events: LifecycleEvents;
    health?: HealthMonitor;
    /** The function routes this process runs (createSpillway's define); none for serve and worker. */
    functions?: () => readonly string[];
    proxiedRoutes?: boolean;
    staleCopies?: StaleCopies;
  },
): ReplayWorker {
  return new ReplayWorker({
    ...parts,
    routeNamed: (name) => config.routes.find((r) => r.name === name) ?? config.routes.at(-1)!,
    routes: config.routes,
    concurrency: config.replay.concurrency,
    pollIntervalMs: config.replay.pollIntervalMs,
    maxResultBytes: config.maxResultBytes,
  });
}

/** Stale copies and fallbacks, when a route has staleIfErrorMs or a fallback (src/engine/stale-copies.ts). */
export function staleCopiesFor(
  config: GatewayConfig,
  parts: { store: OperationStore; upstream: Upstream; clock: Clock; events: LifecycleEvents },
): StaleCopies | undefined {
  const used = config.routes.some((r) => r.staleIfErrorMs !== undefined || r.fallback !== undefined);
  return used ? new StaleCopies({ ...parts, bounds: config.staleCache }) : undefined;
}

/**
 * What the HTTP shell of a port reports (src/gateway/edge-server.ts), as lifecycle events: the log
 * writes an unexpected error at `error` and a client that left mid-request at `debug`.
 */
export function edgeEvents(
  events: LifecycleEvents,
  clock: Clock,
): Pick<EdgeServerOptions, 'onError' | 'onClientAbort'> {
  return {
    onError: (error, request) =>
      events.emit({
        type: 'request:error',
        at: clock.now(),
        source: request?.port === 'admin' ? 'admin' : 'request',
        error,
        ...(request ? { method: request.method, path: request.path } : {}),
      }),
    onClientAbort: (request) => events.emit({ type: 'request:aborted', at: clock.now(), ...request }),
  };
}

/**
 * Stops accepting and closes idle connections; a connection still busy after
 * `graceMs` is dropped. `close` alone waits for every connection to end, and a
 * client holding a half-sent request (or sending one slowly) held it until
 * the server's own timeouts, up to minutes.
 */
export async function closeServer(server: Server, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const grace = setTimeout(() => server.closeAllConnections(), graceMs);
  grace.unref();
  await closed;
  clearTimeout(grace);
}

/** The operations admin API of a process: its store, its routes, and its replay worker to wake. */
export function operationsAdmin(
  config: GatewayConfig,
  parts: { store: OperationStore; worker: ReplayWorker; events: LifecycleEvents; clock: Clock },
): OperationsAdminOptions {
  const { store, worker, events, clock } = parts;
  return {
    store,
    routes: config.routes,
    wake: () => worker.wake(),
    events,
    clock,
    bodyTimeoutMs: config.bodyTimeoutMs,
  };
}

/** The bound on waiting operations from the config's maxBacklog options, global and per route. */
export function backlogBoundFor(
  config: GatewayConfig,
  store: OperationStore,
  clock: Clock,
): BacklogBound | undefined {
  const routes = new Map<string, number>();
  for (const route of config.routes)
    if (route.maxBacklog !== undefined) routes.set(route.name, route.maxBacklog);
  if (config.maxBacklog === undefined && routes.size === 0) return undefined;
  return new BacklogBound(store, clock, { global: config.maxBacklog, routes });
}
