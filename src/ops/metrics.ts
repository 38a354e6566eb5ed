/**
 * Prometheus metrics (`GET /metrics` on the admin port of `serve` and
 * `spillway worker`), with prom-client, on a registry of their own per
 * process part (several Spillways in one process never share counters).
 *
 * Counters and the sync-duration histogram are fed by the lifecycle event
 * stream, the only source; the gauges are read at scrape time: store-derived
 * ones (backlog, oldest due, dead letters) from index-backed per-route
 * queries, at most once per `cacheMs` however often Prometheus scrapes, and
 * the health state from the policy's snapshot. Every label comes from a closed
 * set (route names from the config, reasons, outcomes, states): never an
 * operation id, a key or a URL.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import type { LifecycleEvents } from '../events/lifecycle.ts';
import type { HealthMonitor } from '../policy/health/health-monitor.ts';
import type { StateName } from '../policy/health/route-health.ts';
import type { OperationQueue, RouteCounts } from '../store/port.ts';

const STATES: readonly StateName[] = ['sync', 'diverting', 'probing', 'forced-async', 'forced-sync'];

export interface MetricsOptions {
  events: LifecycleEvents;
  store: Pick<OperationQueue, 'routeCounts' | 'oldestDueByRoute'>;
  clock: Clock;
  /** The configured route names: their gauges are exported (as 0) even while nothing waits there. */
  routes: readonly string[];
  /** The gateway's health (absent in `spillway worker`, which has no health state of its own). */
  health?: HealthMonitor;
  /** How long store-derived gauges are reused between scrapes. */
  cacheMs?: number;
}

interface StoreView {
  at: number;
  counts: Record<string, RouteCounts>;
  oldestDue: Record<string, number>;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #options: MetricsOptions;
  readonly #unsubscribe: () => void;
  #view: Promise<StoreView> | undefined;
  #viewAt = 0;

  constructor(options: MetricsOptions) {
    this.#options = options;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client names these gauges `_total`, which Prometheus reserves for counters (promtool
    // rejects them); nodejs_active_handles, _requests and _resources{type} carry the same counts.
    for (const name of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ])
      this.registry.removeSingleMetric(name);
    const captured = new Counter({
      name: 'spillway_operations_captured_total',
      help: 'Requests captured for replay (the 202s), by route and why they went async.',
      labelNames: ['route', 'reason'] as const,
      registers,
    });
    const attempts = new Counter({
      name: 'spillway_replay_attempts_total',
      help: 'Attempts on captured operations (replays, and sync attempts carried on past the budget), by outcome.',
      labelNames: ['route', 'outcome'] as const,
      registers,
    });
    const sync = new Histogram({
      name: 'spillway_sync_duration_seconds',
      help: 'Time from a request to its sync attempt ending (response headers, failure or spent budget).',
      labelNames: ['route'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    const webhooks = new Counter({
      name: 'spillway_webhook_deliveries_total',
      help: 'Webhook delivery attempts, by outcome (delivered, retry, failed, disabled, lost-lease).',
      labelNames: ['outcome'] as const,
      registers,
    });
    const backlogFull = new Counter({
      name: 'spillway_backlog_full_total',
      help: 'Requests refused 503 backlog-full because maxBacklog was reached, by route and scope.',
      labelNames: ['route', 'scope'] as const,
      registers,
    });
    const partial = new Counter({
      name: 'spillway_partial_answers_total',
      help: 'Reads answered at once instead of with a 202 or a problem, by route and source (stale copy or fallback).',
      labelNames: ['route', 'source'] as const,
      registers,
    });
    const notCaptured = new Counter({
      name: 'spillway_not_captured_total',
      help: 'Requests that are not work (CORS preflights) the upstream could not answer, answered by Spillway instead of captured, by route and reason.',
      labelNames: ['route', 'reason'] as const,
      registers,
    });
    const evicted = new Counter({
      name: 'spillway_stale_copies_evicted_total',
      help: 'Stale copies evicted, least recently used first, to keep staleCache.maxEntries and maxBytes.',
      labelNames: ['route'] as const,
      registers,
    });
    const skipped = new Counter({
      name: 'spillway_stale_copies_skipped_total',
      help: 'Answers not kept as stale copies because too many copies were already waiting to be written.',
      labelNames: ['route'] as const,
      registers,
    });
    const unsubscribe = [
      options.events.on('answer:stale', (e) => partial.inc({ route: e.route, source: 'stale' })),
      options.events.on('answer:fallback', (e) => partial.inc({ route: e.route, source: 'fallback' })),
      options.events.on('answer:not-captured', (e) => notCaptured.inc({ route: e.route, reason: e.reason })),
      options.events.on('stale-copy:evicted', (e) => evicted.inc({ route: e.route }, e.evicted)),
      options.events.on('stale-copy:skipped', (e) => skipped.inc({ route: e.route })),
      options.events.on('operation:captured', (e) => captured.inc({ route: e.route, reason: e.reason })),
      options.events.on('attempt:finished', (e) => attempts.inc({ route: e.route, outcome: e.outcome })),
      options.events.on('sync:finished', (e) => sync.observe({ route: e.route }, e.durationMs / 1_000)),
      options.events.on('backlog:full', (e) => backlogFull.inc({ route: e.route, scope: e.scope })),
      ...(['delivered', 'retry', 'failed', 'disabled', 'lost-lease'] as const).map((outcome) =>
        options.events.on(`webhook:${outcome}`, () => webhooks.inc({ outcome })),
      ),
    ];
    this.#unsubscribe = () => {
      for (const stop of unsubscribe) stop();
    };

    // Gauges read at scrape time from one cached store view; one series per route, configured or found.
    const routeGauge = (
      name: string,
      help: string,
      foundIn: keyof Pick<StoreView, 'counts' | 'oldestDue'>,
      read: (view: StoreView, route: string) => number,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['route'] as const,
        registers,
        collect: async function (this: Gauge<'route'>) {
          const view = await storeView();
          for (const route of routesOf(options.routes, view[foundIn])) this.set({ route }, read(view, route));
        },
      });
    const storeView = () => this.#storeView();
    routeGauge(
      'spillway_backlog_operations',
      'Operations not yet terminal (NotStarted or Running), by route.',
      'counts',
      ({ counts }, route) => counts[route]?.backlog ?? 0,
    );
    routeGauge(
      'spillway_dead_lettered_operations',
      'Dead-lettered operations waiting for a person (redrive or discard), by route.',
      'counts',
      ({ counts }, route) => counts[route]?.deadLettered ?? 0,
    );
    routeGauge(
      'spillway_oldest_due_operation_age_seconds',
      'How long the longest-due operation of each route has been due without being replayed (0: none due).',
      'oldestDue',
      ({ at, oldestDue }, route) => {
        const due = oldestDue[route];
        return due === undefined ? 0 : Math.max(0, at - due) / 1_000;
      },
    );
    const { health } = options;
    if (health) {
      new Gauge({
        name: 'spillway_route_health_state',
        help: "Each route's health state: 1 for the current state, 0 for the others.",
        labelNames: ['route', 'state'] as const,
        registers,
        collect() {
          for (const snapshot of health.snapshot()) {
            for (const state of STATES)
              this.set({ route: snapshot.route, state }, snapshot.state === state ? 1 : 0);
          }
        },
      });
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** Stops counting events (the registry stays readable). Safe to call twice. */
  close(): void {
    this.#unsubscribe();
  }

  /** The store's per-route counts, read at most once per cacheMs (the gauges of one scrape share a read). */
  #storeView(): Promise<StoreView> {
    const { store, clock, cacheMs = 1_000 } = this.#options;
    const now = clock.now();
    if (this.#view && now - this.#viewAt < cacheMs) return this.#view;
    const reading = Promise.all([store.routeCounts(), store.oldestDueByRoute(now)]).then(
      ([counts, oldestDue]) => ({ at: now, counts, oldestDue }),
    );
    this.#view = reading;
    this.#viewAt = now;
    // A failed read fails this scrape only: the next one reads again.
    reading.catch(() => {
      if (this.#view === reading) this.#view = undefined;
    });
    return reading;
  }
}

/** The configured routes, and any other the store still holds operations of (names no longer configured). */
function routesOf(configured: readonly string[], found: Record<string, unknown>): string[] {
  return [...new Set([...configured, ...Object.keys(found)])];
}
