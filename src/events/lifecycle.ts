/**
 * The lifecycle event stream: the one place the engine, the workers and (through
 * its callbacks) the policy say what happened. Logs (src/ops/log-subscriber.ts)
 * and metrics (src/ops/metrics.ts) subscribe; nothing in the core calls a logger
 * or a metrics registry itself.
 *
 * Events are a discriminated union on `type`, namespaced like graphile-worker's
 * (`operation:captured`, `attempt:finished`, …). Every field is a fact fit for a
 * log line: ids, route names, counts, codes, statuses, times. Never a body,
 * a header value or a credential.
 *
 * Emitting is synchronous and cannot fail: a subscriber that throws (or whose
 * promise rejects) is reported as a `subscriber:error` event to the others, and
 * the core carries on. Nothing is swallowed: when nobody listens for
 * `subscriber:error`, or that listener fails as well, it becomes a process
 * warning.
 */
import type { HealthEventType } from '../policy/health/route-health.ts';

/**
 * Why a request went async, a closed set (a metric label):
 * - `respond-async`: the client asked for it (`Prefer: respond-async, wait=0`)
 * - `diverting`: the route's health state diverts (diverting, probing, the ramp after a revert)
 * - `shed`: too many sync calls in flight for the route's adaptive limit
 * - `drill`: a drill sent a share of healthy traffic down the async path
 * - `forced-async`: an operator override
 * - `upstream-unreachable`: the sync attempt never reached the upstream
 * - `upstream-failed`: the connection failed after the request was sent
 * - `upstream-status`: the upstream answered a failover status (503, 429, …)
 * - `budget-spent`: the budget ran out while the attempt was in flight (adoption)
 * - `ordering-key`: its ordering key still had operations waiting: it goes behind them, never ahead
 */
export type CaptureReason =
  | 'respond-async'
  | 'diverting'
  | 'shed'
  | 'drill'
  | 'forced-async'
  | 'upstream-unreachable'
  | 'upstream-failed'
  | 'upstream-status'
  | 'budget-spent'
  | 'ordering-key';

/**
 * What one attempt on an operation came to (a metric label):
 * `succeeded`, `retry` (scheduled again), `failed` (the upstream's final
 * non-success answer), `dead-lettered`, `lease-lost` (its lease had expired, so
 * nothing was recorded: whoever holds it now decides), `abandoned` (shutdown
 * aborted it; its lease was handed back with the outcome unknown), `probe-refused`
 * (a replay sent as its route's probe while the route diverts or probes, which
 * the upstream refused unprocessed: handed back, not counted as an attempt).
 */
export type AttemptResult =
  | 'succeeded'
  | 'retry'
  | 'failed'
  | 'dead-lettered'
  | 'lease-lost'
  | 'abandoned'
  | 'probe-refused';

/** What a sync attempt came to (a metric label): answered, refused with a failover status, failed, or out of budget. */
export type SyncResult = 'answered' | 'refused' | 'error' | 'budget-spent';

/** Facts every operation event carries. */
interface OperationFacts {
  /** Epoch ms on the injected clock. */
  at: number;
  operationId: string;
  route: string;
  /** The W3C trace id the operation belongs to (from its stored traceparent), or null. */
  traceId: string | null;
}

export type OperationLifecycleEvent =
  | (OperationFacts & {
      type: 'operation:captured';
      reason: CaptureReason;
      /** The human-readable reason, as in the Spillway-Failover-Reason header. */
      detail: string;
      /** Attempts made before the capture (the failed sync attempt). */
      attempts: number;
    })
  | (OperationFacts & {
      type: 'attempt:started';
      /** This attempt's number, 1-based. */
      attempt: number;
      /** `adopted`: the sync attempt carried on past the budget; `replay`: a worker's. */
      kind: 'replay' | 'adopted';
    })
  | (OperationFacts & {
      type: 'attempt:finished';
      attempt: number;
      kind: 'replay' | 'adopted';
      outcome: AttemptResult;
      durationMs: number;
      /** The upstream's status when it answered. */
      upstreamStatus: number | null;
      /** The error code (src/errors.ts vocabulary: upstream-status, upstream-unreachable, …) when not succeeded. */
      errorCode: string | null;
    })
  | (OperationFacts & {
      type: 'operation:retry-scheduled';
      attempt: number;
      nextAttemptAt: number;
      errorCode: string;
    })
  | (OperationFacts & {
      type: 'operation:dead-lettered';
      attempts: number;
      errorCode: string;
      /** Why, in words (no body, no header values). */
      message: string;
    })
  | (OperationFacts & { type: 'operation:succeeded'; attempts: number; upstreamStatus: number })
  | (OperationFacts & {
      type: 'operation:failed';
      attempts: number;
      errorCode: string;
      upstreamStatus: number | null;
    })
  | (OperationFacts & { type: 'operation:redriven' | 'operation:discarded'; by: 'operator' })
  | (OperationFacts & { type: 'operation:canceled'; by: 'client' | 'operator' });

/** The sync attempt of a request (no operation exists unless it is captured). */
export interface SyncEvent {
  type: 'sync:finished';
  at: number;
  route: string;
  outcome: SyncResult;
  durationMs: number;
  upstreamStatus: number | null;
}

/**
 * A request that would have been captured was refused because the backlog is
 * full (maxBacklog, of its route or of all routes): answered 503 backlog-full,
 * or, for an adoption, left to finish synchronously.
 */
export interface BacklogFullEvent {
  type: 'backlog:full';
  at: number;
  route: string;
  scope: 'route' | 'global';
  /** Operations waiting when it was refused, and the bound. */
  backlog: number;
  limit: number;
}

/**
 * A read answered at once instead of with a 202 or a problem (stale-if-error,
 * src/engine/stale-copies.ts): with a stale copy (`stale`), or, when none was
 * young enough, with the route's fallback (`fallback`, from its path on the
 * upstream or its configured answer). `operationId` is the refresh operation
 * whose result will be the fresh answer, null when none could be captured.
 */
export type PartialAnswerEvent = ({ type: 'answer:stale' } | { type: 'answer:fallback' }) & {
  at: number;
  route: string;
  operationId: string | null;
  /** Why the read could not be answered fresh: a capture reason, or the problem's code. */
  why: string;
  /** The copy's age in seconds (stale answers). */
  ageSeconds: number | null;
  /** Where a fallback came from. */
  fallbackFrom: 'upstream' | 'static' | null;
};

/**
 * A request that is not work (a CORS preflight, `Submission.notWork`) could not
 * get the upstream's answer where any other request would have been captured
 * (`reason`, as for a capture; `detail` as in Spillway-Failover-Reason).
 * Nothing was stored: the gateway answered it itself (src/gateway/preflight.ts).
 */
export interface NotCapturedEvent {
  type: 'answer:not-captured';
  at: number;
  route: string;
  reason: CaptureReason;
  detail: string;
}

/**
 * The stale-copy bounds at work: least recently used copies evicted to keep
 * `staleCache.maxEntries` and `maxBytes` (`evicted`), or an answer not kept
 * because too many copies already waited to be written (`skipped`).
 */
export type StaleCopyEvent =
  | { type: 'stale-copy:evicted'; at: number; route: string; evicted: number }
  | { type: 'stale-copy:skipped'; at: number; route: string; pending: number };

/** The policy's health transitions, from HealthMonitor's `onEvent`. */
export interface HealthTransitionEvent {
  type: HealthEventType;
  at: number;
  route: string;
  reason: string;
}

/** One webhook delivery attempt, from the dispatcher. */
export interface WebhookEvent {
  type: 'webhook:delivered' | 'webhook:retry' | 'webhook:failed' | 'webhook:disabled' | 'webhook:lost-lease';
  at: number;
  webhookId: string;
  operationId: string;
  endpoint: string;
  attempt: number;
  /** The receiver's status, when it answered. */
  status: number | null;
  error: string | null;
  durationMs: number;
  traceId: string | null;
  nextAttemptAt?: number;
}

/**
 * Something failed outside any request: background work (`replay`,
 * `webhooks`, `retention`, `health-overrides`, `adoption`: an adopted attempt
 * or its capture; `stale-copies`: keeping or using a stale copy; `store`: what
 * the store met outside a verb's answer, such as a leased row it could not
 * decrypt and skipped, or a close that failed), a request handler (`request`, `websocket`), or a
 * subscriber (`subscriber:error`).
 */
export type ErrorEvent =
  | {
      type: 'background:error';
      at: number;
      source:
        | 'replay'
        | 'webhooks'
        | 'retention'
        | 'health-overrides'
        | 'adoption'
        | 'stale-copies'
        | 'store';
      /** The operation the failed work was for, when there is one. */
      operationId?: string;
      error: unknown;
    }
  | {
      type: 'request:error';
      at: number;
      /** `request`: the public port; `admin`: the admin port; `websocket`: a WebSocket message. */
      source: 'request' | 'websocket' | 'admin';
      error: unknown;
      /** The request's method and path (no query, no header values), when the error came from one. */
      method?: string;
      path?: string;
    }
  | { type: 'subscriber:error'; at: number; eventType: string; error: unknown };

/** A client closed its connection before its request was read whole: no error of Spillway's. */
export interface RequestAbortedEvent {
  type: 'request:aborted';
  at: number;
  port: 'public' | 'admin';
  method: string;
  path: string;
  /** Body bytes received before the client left. */
  receivedBytes: number;
}

export type LifecycleEvent =
  | OperationLifecycleEvent
  | RequestAbortedEvent
  | SyncEvent
  | BacklogFullEvent
  | PartialAnswerEvent
  | NotCapturedEvent
  | StaleCopyEvent
  | HealthTransitionEvent
  | WebhookEvent
  | ErrorEvent;
export type LifecycleEventType = LifecycleEvent['type'];
export type EventOfType<T extends LifecycleEventType> = Extract<LifecycleEvent, { type: T }>;

/** A subscriber; what it returns is ignored, except that a promise it returns is watched for rejection. */
type Listener<E> = (event: E) => unknown;

export class LifecycleEvents {
  // Copied on subscribe and unsubscribe, never on emit (which runs several times per request): emit
  // walks the arrays as they were when it began, as it would walk a copy.
  readonly #byType = new Map<LifecycleEventType, readonly Listener<never>[]>();
  #any: readonly Listener<LifecycleEvent>[] = [];

  /** Calls `listener` for each event of `type`; returns the function that stops it. */
  on<T extends LifecycleEventType>(type: T, listener: Listener<EventOfType<T>>): () => void {
    const added = listener as Listener<never>;
    const listeners = this.#byType.get(type) ?? [];
    if (!listeners.includes(added)) this.#byType.set(type, [...listeners, added]);
    return () => {
      const now = this.#byType.get(type) ?? [];
      if (now.includes(added))
        this.#byType.set(
          type,
          now.filter((l) => l !== added),
        );
    };
  }

  /** Calls `listener` for every event; returns the function that stops it. */
  onAny(listener: Listener<LifecycleEvent>): () => void {
    if (!this.#any.includes(listener)) this.#any = [...this.#any, listener];
    return () => {
      this.#any = this.#any.filter((l) => l !== listener);
    };
  }

  /** Tells every subscriber, in order of subscription; never throws. */
  emit(event: LifecycleEvent): void {
    const byType = this.#byType.get(event.type);
    if (byType) for (const listener of byType) this.#call(listener as Listener<LifecycleEvent>, event);
    for (const listener of this.#any) this.#call(listener, event);
  }

  #call(listener: Listener<LifecycleEvent>, event: LifecycleEvent): void {
    try {
      const result = listener(event);
      if (result instanceof Promise) result.catch((error: unknown) => this.#subscriberFailed(event, error));
    } catch (error) {
      this.#subscriberFailed(event, error);
    }
  }

  #subscriberFailed(event: LifecycleEvent, error: unknown): void {
    const listening = (this.#byType.get('subscriber:error')?.length ?? 0) + this.#any.length > 0;
    if (event.type === 'subscriber:error' || !listening) {
      // The reporting path itself failed, or nobody reports: the process warning is the last resort.
      process.emitWarning(
        `A lifecycle event subscriber failed on ${event.type}: ${(error as Error)?.stack ?? String(error)}`,
        { code: 'SPILLWAY_SUBSCRIBER_ERROR' },
      );
      return;
    }
    this.emit({ type: 'subscriber:error', at: event.at, eventType: event.type, error });
  }
}

/** The trace id of a W3C traceparent (`00-<trace id>-<span id>-<flags>`), or null. */
export function traceIdOf(traceparent: string | null | undefined): string | null {
  const match = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/.exec(traceparent ?? '');
  return match && match[1] !== '0'.repeat(32) ? match[1]! : null;
}
