/**
 * Stale copies and fallbacks, the acting half of stale-if-error (the deciding
 * half is src/policy/stale-if-error.ts): keeps the last 2xx answer of a
 * route's GETs in the store, and, when a read would otherwise get a 202 or a
 * problem, finds the answer to give at once instead: a copy young enough,
 * else the route's fallback.
 *
 * Keeping a copy never delays an answer: writes go behind it, one in flight
 * per copy (a newer answer waiting replaces an older one still waiting), and
 * at most MAX_PENDING copies wait at all; past it a copy is skipped, told as
 * `stale-copy:skipped`. A copy the store cannot keep is a missed refresh, told
 * as `background:error`, never a failed request.
 */
import type { Clock } from '../clock.ts';
import type { LifecycleEvents } from '../events/lifecycle.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import {
  acceptedStaleness,
  currentAge,
  initialAge,
  keptFields,
  type ReadRequest,
  resourceKey,
  STALE_METHODS,
  variantKey,
  varyNames,
  whyNotKept,
} from '../policy/stale-if-error.ts';
import type { Operation, OperationStore, StaleCopy, StoredResponse } from '../store/port.ts';
import { attemptDeadline } from './attempt.ts';
import { readBounded } from './body.ts';
import { endToEnd } from './http-fields.ts';
import type { Upstream } from './upstream.ts';

/** Copies waiting to be written at most; more are skipped (the store is slower than the reads). */
const MAX_PENDING = 1_000;

export interface StaleCacheBounds {
  /** Copies kept at most, all routes together. */
  maxEntries: number;
  /** Bytes of copies (bodies and header sections) kept at most. */
  maxBytes: number;
  /** A larger answer is not kept (it would be buffered whole on its way to the client). */
  maxCopyBytes: number;
}

/** What answers a read at once instead of a 202 or a problem. */
export interface PartialAnswer {
  source: 'stale' | 'fallback';
  response: StoredResponse;
  /** The copy's current age in seconds (stale answers). */
  ageSeconds?: number;
  /** `upstream`: the fallback path answered; `static`: the configured answer. */
  fallbackFrom?: 'upstream' | 'static';
}

export interface StaleCopiesOptions {
  store: OperationStore;
  clock: Clock;
  bounds: StaleCacheBounds;
  /** Where a route's fallback path is asked. */
  upstream: Upstream;
  events: LifecycleEvents;
}

export class StaleCopies {
  readonly #options: StaleCopiesOptions;
  /** Copies waiting to be written, by resource and variant; at most one write in flight for each. */
  readonly #pending = new Map<string, StaleCopy>();
  readonly #writing = new Set<string>();
  readonly #settled = new Set<() => void>();

  constructor(options: StaleCopiesOptions) {
    this.#options = options;
  }

  get bounds(): StaleCacheBounds {
    return this.#options.bounds;
  }

  /**
   * The route keeps copies of this request's answers: a GET or HEAD on a route
   * with staleIfErrorMs.
   */
  keepsCopies(route: RoutePolicy, method: string): boolean {
    return route.staleIfErrorMs !== undefined && STALE_METHODS.has(method);
  }

  /**
   * An answer arrived (a sync attempt's, or a replay's or adopted attempt's
   * result, `receivedAt` epoch ms): keep it as the copy, or, if it may not be
   * kept (Cache-Control no-store or private), forget the copy its resource had.
   */
  answered(route: RoutePolicy, request: ReadRequest, response: StoredResponse, receivedAt: number): void {
    if (route.staleIfErrorMs === undefined || !STALE_METHODS.has(request.method)) return;
    if (response.status < 200 || response.status > 299) return;
    const resource = resourceKey(request);
    const refused = whyNotKept(request, response, route.staleKeepsPrivate);
    if (refused !== undefined) {
      // The upstream no longer lets this answer be kept: neither is the older one answered with.
      if (refused.startsWith('the answer')) this.#background(this.#options.store.dropStaleCopies(resource));
      return;
    }
    if (response.body.byteLength > this.bounds.maxCopyBytes) return;
    const vary = varyNames(response.headers) ?? [];
    const age = initialAge(response.headers);
    const copy: StaleCopy = {
      resource,
      variant: variantKey(vary, request.headers),
      route: route.name,
      vary,
      response: { ...response, headers: keptFields(response.headers) },
      storedAt: receivedAt,
      initialAge: age,
      expiresAt: receivedAt - age * 1_000 + route.staleIfErrorMs,
      lastUsedAt: receivedAt,
    };
    const key = `${copy.resource} ${copy.variant}`;
    if (!this.#pending.has(key) && this.#pending.size >= MAX_PENDING) {
      this.#options.events.emit({
        type: 'stale-copy:skipped',
        at: this.#options.clock.now(),
        route: route.name,
        pending: this.#pending.size,
      });
      return;
    }
    this.#pending.set(key, copy);
    if (!this.#writing.has(key)) void this.#write(key);
  }

  /** An operation's result arrived (a replay's or an adopted attempt's): the fresh answer refreshes its copy. */
  resultArrived(route: RoutePolicy, operation: Operation, result: StoredResponse, at: number): void {
    const { tenant, request } = operation;
    this.answered(route, { tenant, ...request }, result, at);
  }

  /**
   * The copy to answer `request` with, if one is young enough for the route's
   * staleIfErrorMs and the request's `max-stale`; it becomes the most
   * recently used.
   */
  async find(route: RoutePolicy, request: ReadRequest): Promise<PartialAnswer | undefined> {
    const { store, clock } = this.#options;
    if (route.staleIfErrorMs === undefined || !STALE_METHODS.has(request.method)) return undefined;
    const now = clock.now();
    const limit = Math.min(route.staleIfErrorMs / 1_000, acceptedStaleness(request.headers));
    const copy = (await store.staleCopies(resourceKey(request))).find(
      (c) => c.variant === variantKey(c.vary, request.headers) && currentAge(c, now) * 1_000 < limit * 1_000,
    );
    if (!copy) return undefined;
    this.#background(store.useStaleCopy(copy.resource, copy.variant, now));
    return { source: 'stale', response: copy.response, ageSeconds: currentAge(copy, now) };
  }

  /**
   * The route's fallback for `request`: its path on the upstream first (a 2xx
   * within its timeoutMs), else its configured answer; undefined without one.
   */
  async fallback(route: RoutePolicy, request: ReadRequest): Promise<PartialAnswer | undefined> {
    const { fallback } = route;
    if (!fallback || !STALE_METHODS.has(request.method)) return undefined;
    if (fallback.path !== undefined) {
      const answer = await this.#askFallbackPath(fallback.path, fallback.timeoutMs, request);
      if (answer) return { source: 'fallback', response: answer, fallbackFrom: 'upstream' };
    }
    return fallback.response
      ? { source: 'fallback', response: fallback.response, fallbackFrom: 'static' }
      : undefined;
  }

  /** Resolves once no copy waits to be written (tests, shutdown). */
  idle(): Promise<void> {
    if (this.#writing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#settled.add(resolve));
  }

  async #askFallbackPath(
    path: string,
    timeoutMs: number,
    request: ReadRequest,
  ): Promise<StoredResponse | undefined> {
    const { upstream, clock } = this.#options;
    const deadline = attemptDeadline(clock, timeoutMs);
    try {
      const response = await upstream.send(
        {
          method: request.method,
          path,
          query: request.query,
          headers: request.headers,
          body: new Uint8Array(),
        },
        deadline.signal,
      );
      if (response.statusCode < 200 || response.statusCode > 299) {
        response.body.resume();
        return undefined;
      }
      const body = await readBounded(response.body, this.bounds.maxCopyBytes);
      if (body === 'too-large') return undefined;
      return { status: response.statusCode, headers: keptFields(endToEnd(response.headers)), body };
    } catch {
      // The fallback path failing is expected while the upstream is down: the configured answer follows.
      return undefined;
    } finally {
      deadline.clear();
    }
  }

  async #write(key: string): Promise<void> {
    const { store, events, clock } = this.#options;
    this.#writing.add(key);
    try {
      for (let copy = this.#pending.get(key); copy; copy = this.#pending.get(key)) {
        this.#pending.delete(key);
        try {
          const { evicted } = await store.keepStaleCopy(copy, this.bounds);
          if (evicted > 0)
            events.emit({ type: 'stale-copy:evicted', at: clock.now(), route: copy.route, evicted });
        } catch (error) {
          events.emit({ type: 'background:error', at: clock.now(), source: 'stale-copies', error });
        }
      }
    } finally {
      this.#writing.delete(key);
      if (this.#writing.size === 0) {
        for (const resolve of this.#settled) resolve();
        this.#settled.clear();
      }
    }
  }

  #background(write: Promise<unknown>): void {
    write.catch((error: unknown) =>
      this.#options.events.emit({
        type: 'background:error',
        at: this.#options.clock.now(),
        source: 'stale-copies',
        error,
      }),
    );
  }
}
