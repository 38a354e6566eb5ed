/**
 * Stale copies and fallbacks, the acting half of stale-if-error (the deciding
 * half is src/policy/stale-if-error.ts): keeps the last 2xx answer of a
 * route's GETs in the store, and, when a read would otherwise get a 202 or a
 * problem, finds the answer to give at once instead: a copy young enough,
 * else the route's fallback.
 *
 * Keeping a copy never delays an answer: writes go behind it, and each copy
 * is written at most once every REWRITE_INTERVAL_MS (a newer answer waiting
 * replaces an older one still waiting), so a busy read costs the store a write
 * a second, not a write a request (on SQLite a commit holds the event loop).
 * At most MAX_PENDING copies, MAX_PENDING_BYTES in all, wait at once; past
 * that an answer is not kept, told as `stale-copy:skipped`. A copy the store
 * cannot keep is a missed refresh, told as `background:error`, never a failed
 * request.
 */
import type { Clock, Timer } from '../clock.ts';
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
import type { Operation, StaleCopy, StaleCopyStore, StoredResponse } from '../store/port.ts';
import { attemptDeadline } from './attempt.ts';
import { readBounded } from './body.ts';
import { endToEnd } from './http-fields.ts';
import type { Upstream } from './upstream.ts';

/** Copies waiting to be written at most, and their bytes; more are skipped (the store is slower than the reads). */
const MAX_PENDING = 1_000;
const MAX_PENDING_BYTES = 32 * 1024 * 1024;
/** A copy is written at most this often: it lags the latest answer by a second at most. */
export const REWRITE_INTERVAL_MS = 1_000;

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
  store: StaleCopyStore;
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
  #pendingBytes = 0;
  readonly #writing = new Set<string>();
  /** Copies waiting for the rest of their rewrite interval. */
  readonly #timers = new Map<string, Timer>();
  /** When each copy was last written, oldest first; entries older than the interval are pruned. */
  readonly #lastWrite = new Map<string, number>();
  readonly #settled = new Set<() => void>();
  #closed = false;

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
    const replaced = this.#pending.get(key);
    const bytes = this.#pendingBytes - (replaced?.response.body.byteLength ?? 0) + response.body.byteLength;
    if (this.#closed) return;
    if ((!replaced && this.#pending.size >= MAX_PENDING) || bytes > MAX_PENDING_BYTES) {
      this.#options.events.emit({
        type: 'stale-copy:skipped',
        at: this.#options.clock.now(),
        route: route.name,
        pending: this.#pending.size,
      });
      return;
    }
    this.#pending.set(key, copy);
    this.#pendingBytes = bytes;
    this.#schedule(key);
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

  /** Resolves once no copy is being written (tests). */
  idle(): Promise<void> {
    if (this.#writing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#settled.add(resolve));
  }

  /** Shutdown: copies still waiting are not written (a missed refresh); resolves once writes in flight end. */
  close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers.values()) this.#options.clock.clearTimeout(timer);
    this.#timers.clear();
    this.#pending.clear();
    this.#pendingBytes = 0;
    return this.idle();
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

  /** Writes the copy waiting under `key` now, or when its rewrite interval is over. */
  #schedule(key: string): void {
    const { clock } = this.#options;
    if (this.#closed || this.#writing.has(key) || this.#timers.has(key) || !this.#pending.has(key)) return;
    const wait = (this.#lastWrite.get(key) ?? Number.NEGATIVE_INFINITY) + REWRITE_INTERVAL_MS - clock.now();
    if (wait <= 0) {
      void this.#write(key);
      return;
    }
    const timer = clock.setTimeout(() => {
      this.#timers.delete(key);
      void this.#write(key);
    }, wait);
    timer.unref?.();
    this.#timers.set(key, timer);
  }

  async #write(key: string): Promise<void> {
    const { store, events, clock } = this.#options;
    const copy = this.#pending.get(key);
    if (!copy || this.#closed) return;
    this.#pending.delete(key);
    this.#pendingBytes -= copy.response.body.byteLength;
    this.#writing.add(key);
    const now = clock.now();
    this.#lastWrite.delete(key);
    this.#lastWrite.set(key, now);
    for (const [earliest, at] of this.#lastWrite) {
      if (at > now - REWRITE_INTERVAL_MS) break;
      this.#lastWrite.delete(earliest);
    }
    try {
      const { evicted } = await store.keepStaleCopy(copy, this.bounds);
      if (evicted > 0)
        events.emit({ type: 'stale-copy:evicted', at: clock.now(), route: copy.route, evicted });
    } catch (error) {
      events.emit({ type: 'background:error', at: clock.now(), source: 'stale-copies', error });
    } finally {
      this.#writing.delete(key);
      this.#schedule(key); // a newer answer arrived meanwhile
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
