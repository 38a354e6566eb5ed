/**
 * The bound on the backlog (invariant 3): `maxBacklog` operations waiting (not
 * terminal) per route and for all routes together. Past it a request that
 * would be captured is refused (503 backlog-full with Retry-After), never
 * stored and never dropped silently.
 *
 * Counting the backlog on every capture would read the store once per request
 * during an outage, when captures are most frequent. Instead the index-backed
 * counts (`routeCounts`) are read at most once per `refreshMs`, on demand, and
 * this process's own captures since that read are added on top. Other
 * processes' captures within one refresh can overshoot the bound by at most
 * what they capture in that second; the bound holds to that precision.
 */
import type { Clock } from '../clock.ts';
import type { OperationQueue, RouteCounts } from '../store/port.ts';

export interface BacklogLimits {
  /** All routes together; undefined: unbounded. */
  global: number | undefined;
  /** By route name; a route not listed is unbounded. */
  routes: ReadonlyMap<string, number>;
}

export type BacklogCheck =
  | { full: false }
  | { full: true; scope: 'route' | 'global'; backlog: number; limit: number };

export class BacklogBound {
  readonly #store: Pick<OperationQueue, 'routeCounts'>;
  readonly #clock: Clock;
  readonly #limits: BacklogLimits;
  readonly #refreshMs: number;
  #counts: Record<string, RouteCounts> = {};
  #readAt = Number.NEGATIVE_INFINITY;
  #reading: Promise<void> | undefined;
  /** Captures by this process since the last read, by route. */
  #since = new Map<string, number>();

  constructor(
    store: Pick<OperationQueue, 'routeCounts'>,
    clock: Clock,
    limits: BacklogLimits,
    refreshMs = 1_000,
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#limits = limits;
    this.#refreshMs = refreshMs;
  }

  /** Whether any bound is set: without one, nothing is ever read. */
  get bounded(): boolean {
    return this.#limits.global !== undefined || this.#limits.routes.size > 0;
  }

  /** Would one more capture on `route` go past a bound? Rejects when the store cannot be read. */
  async check(route: string): Promise<BacklogCheck> {
    const routeLimit = this.#limits.routes.get(route);
    const { global } = this.#limits;
    if (routeLimit === undefined && global === undefined) return { full: false };
    if (this.#clock.now() - this.#readAt >= this.#refreshMs) await this.#refresh();
    if (routeLimit !== undefined) {
      const backlog = (this.#counts[route]?.backlog ?? 0) + (this.#since.get(route) ?? 0);
      if (backlog >= routeLimit) return { full: true, scope: 'route', backlog, limit: routeLimit };
    }
    if (global !== undefined) {
      let backlog = 0;
      for (const c of Object.values(this.#counts)) backlog += c.backlog;
      for (const n of this.#since.values()) backlog += n;
      if (backlog >= global) return { full: true, scope: 'global', backlog, limit: global };
    }
    return { full: false };
  }

  /** A capture was stored: counted until the next read includes it. */
  captured(route: string): void {
    if (this.bounded) this.#since.set(route, (this.#since.get(route) ?? 0) + 1);
  }

  #refresh(): Promise<void> {
    // One read at a time: captures arriving meanwhile wait for it rather than each reading.
    this.#reading ??= (async () => {
      const startedAt = this.#clock.now();
      try {
        const counts = await this.#store.routeCounts();
        this.#counts = counts;
        // Captures committed before the read are in it; a capture racing the read may be counted twice,
        // which errs on the side of the bound.
        this.#since = new Map();
        this.#readAt = startedAt;
      } finally {
        this.#reading = undefined;
      }
    })();
    return this.#reading;
  }
}
