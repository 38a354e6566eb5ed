/**
 * The health of every route, moved along by a timer on the injected clock so
 * that dashboards and workers see transitions on time, even without traffic.
 * Overrides are read from and written to the store (they survive restarts and
 * reach every instance sharing it); the decisions stay local to this process.
 */
import type { Clock, Timer } from '../../clock.ts';
import type { RoutePolicy } from '../route-policy.ts';
import type { RouteHealthView } from './replay-gate.ts';
import { type HealthEvent, type HealthSnapshot, type Override, RouteHealth } from './route-health.ts';

export interface OverrideStore {
  setOverride(route: string, override: Override | null): Promise<void>;
  overrides(): Promise<Record<string, Override>>;
  /** Where each transition is written, so that replay workers in other processes follow it. */
  setRouteHealth?(route: string, health: Omit<RouteHealthView, 'probesPassed'>): Promise<void>;
}

export interface HealthMonitorOptions {
  routes: readonly RoutePolicy[];
  clock: Clock;
  store: OverrideStore;
  /** How often the machines are ticked. */
  tickMs?: number;
  /** How often overrides are re-read from the store (another instance may have set one). */
  overrideRefreshMs?: number;
  onEvent?: (event: HealthEvent) => void;
  /** Told when overrides could not be re-read, or a transition written, in the store (the ones in force are kept). */
  onError?: (error: unknown) => void;
  random?: () => number;
}

export class HealthMonitor {
  readonly #byRoute = new Map<string, RouteHealth>();
  readonly #options: HealthMonitorOptions;
  #timer: Timer | undefined;
  #lastRefresh = 0;
  #running = false;

  constructor(options: HealthMonitorOptions) {
    this.#options = options;
    for (const route of options.routes) this.add(route);
  }

  /** Watches one more route (a function defined after start, spillway.define). No-op for a known name. */
  add(route: RoutePolicy): void {
    if (this.#byRoute.has(route.name)) return;
    const { clock, onEvent, random } = this.#options;
    this.#byRoute.set(
      route.name,
      new RouteHealth(
        route.name,
        route.health,
        clock.now(),
        (e) => {
          onEvent?.(e);
          if (e.type !== 'health:override') this.#publish(e.route);
        },
        random,
      ),
    );
  }

  /** Loads overrides from the store and starts ticking. Safe to call twice. */
  async start(): Promise<void> {
    if (this.#running) return;
    await this.refreshOverrides();
    this.#running = true;
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) this.#options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  route(name: string): RouteHealth {
    const health = this.#byRoute.get(name);
    if (!health) throw new Error(`No route named ${name}.`);
    return health;
  }

  has(name: string): boolean {
    return this.#byRoute.has(name);
  }

  /** Ticks every route now (the timer calls this; tests may too). */
  tick(): void {
    const now = this.#options.clock.now();
    for (const health of this.#byRoute.values()) health.tick(now);
  }

  snapshot(): HealthSnapshot[] {
    const now = this.#options.clock.now();
    return [...this.#byRoute.values()].map((h) => h.snapshot(now));
  }

  /** Sets an override here and in the store, so it survives restarts. */
  async setOverride(route: string, override: Override | null): Promise<void> {
    const health = this.route(route);
    await this.#options.store.setOverride(route, override);
    health.setOverride(override, this.#options.clock.now());
  }

  async refreshOverrides(): Promise<void> {
    const stored = await this.#options.store.overrides();
    const now = this.#options.clock.now();
    this.#lastRefresh = now;
    for (const health of this.#byRoute.values()) health.setOverride(stored[health.route] ?? null, now);
  }

  /** Writes the route's new state to the store, for `spillway worker` processes; the last writer wins. */
  #publish(route: string): void {
    const write = this.#options.store.setRouteHealth;
    if (!write) return;
    const { probesPassed: _, ...view } = this.route(route).replayView();
    write.call(this.#options.store, route, view).catch((error: unknown) => this.#options.onError?.(error));
  }

  #schedule(): void {
    const { clock, tickMs = 100, overrideRefreshMs = 5_000 } = this.#options;
    this.#timer = clock.setTimeout(() => {
      if (!this.#running) return;
      this.tick();
      if (clock.now() - this.#lastRefresh >= overrideRefreshMs) {
        // The store is unavailable: keep the overrides we have, say so, try again next time.
        this.refreshOverrides().catch((error: unknown) => this.#options.onError?.(error));
      }
      this.#schedule();
    }, tickMs);
    this.#timer.unref?.();
  }
}
