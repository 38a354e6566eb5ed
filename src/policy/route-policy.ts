/**
 * A route: a class of requests (method + path pattern) with its own policy.
 * Defaults live in `routeDefaults` (src/config/schema.ts), each documented
 * beside its option; this is only the shape.
 */

import type { StoredResponse } from '../store/port.ts';
import type { BackoffPolicy } from './backoff.ts';
import type { HealthPolicy } from './health/health-policy.ts';
import type { OrderingKeySource } from './ordering-key.ts';
import type { PathMatcher } from './route-match.ts';

export interface RoutePolicy {
  name: string;
  /** `METHOD /path/pattern` as written in the config. */
  match: string;
  matches: PathMatcher;
  /** False: never answer 202; upstream failures answer 502/504 problem+json. */
  failover: boolean;
  /** How long the client waits for the sync attempt's response headers. */
  budgetMs: number;
  /** Upper bound for a client's `Prefer: wait=N`. */
  maxWaitMs: number;
  /** Time limit of an adopted or replayed attempt, from its start. */
  attemptTimeoutMs: number;
  /** Upstream statuses that mean "not processed, try later": they fail over and are retried. */
  failoverStatuses: ReadonlySet<number>;
  /** The upstream deduplicates by the Idempotency-Key Spillway forwards, so any request may be resent. */
  honoursIdempotencyKey: boolean;
  /**
   * Spillway's own Idempotency-Key handling for clients: `optional` dedupes
   * requests that carry a key, `required` also answers 400 to those without,
   * `off` leaves the header to the upstream alone.
   */
  idempotencyKeys: 'optional' | 'required' | 'off';
  /** Answer 400 to a JSON-typed body that does not parse, before anything is stored or forwarded. */
  rejectInvalidJson: boolean;
  maxAttempts: number;
  /** Operations of this route waiting at most; past it a capture answers 503 backlog-full. */
  maxBacklog: number | undefined;
  maxAgeMs: number;
  backoff: BackoffPolicy;
  priority: number;
  /** Request headers kept with a capture, so that a replay carries them. */
  captureHeaders: ReadonlySet<string>;
  /** FIFO per key: where a request's ordering key is read (src/policy/ordering-key.ts); none: no ordering. */
  orderingKey: OrderingKeySource | undefined;
  /** When to divert, probe and come back (docs/policy.md). */
  health: HealthPolicy;
  /**
   * Stale-if-error (src/policy/stale-if-error.ts): the last 2xx answer of a
   * GET or HEAD is kept, and one younger than this answers at once when the
   * request would otherwise get a 202 or a problem. Undefined: off.
   */
  staleIfErrorMs: number | undefined;
  /** Keep answers marked Cache-Control no-store or private as well (copies are per tenant anyway). */
  staleKeepsPrivate: boolean;
  /** What a GET or HEAD gets at once when no stale copy is young enough. Undefined: none. */
  fallback: Fallback | undefined;
}

/** A route's fallback answer: its path on the upstream is asked first, then the configured answer. */
export interface Fallback {
  /** A cheaper path on the upstream, asked with the request's query; its 2xx answer is the fallback. */
  path: string | undefined;
  /** How long the fallback path may take. */
  timeoutMs: number;
  /** The configured answer, when the path is absent or did not answer 2xx. */
  response: StoredResponse | undefined;
}
