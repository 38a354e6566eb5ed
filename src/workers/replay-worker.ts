/**
 * Replay workers: lease due operations (highest priority, then oldest first),
 * replay them against the upstream and record each outcome. Expired leases of
 * a crashed process are recovered by the same lease query, under the retry
 * safety rule (src/policy/retry-safety.ts).
 *
 * The loop (src/workers/lease-loop.ts) has a manual trigger, `runOnce()`, so
 * tests drive it without sleeping; `start()` runs it on a timer and on
 * `wake()` after each capture.
 */
import type { Clock } from '../clock.ts';
import {
  applyDecision,
  attemptDeadline,
  interruptedAttempt,
  outcomeOf,
  recordOutcome,
  retryBudgetOf,
} from '../engine/attempt.ts';
import { attemptFinished, attemptStarted, decided } from '../engine/attempt-events.ts';

import { whenAborted } from '../engine/in-flight.ts';
import { holdLease, leaseMsFor } from '../engine/lease-heartbeat.ts';
import type { ForwardRequest, Upstream } from '../engine/upstream.ts';
import { LifecycleEvents } from '../events/lifecycle.ts';
import { type AttemptOutcome, decideBeforeAttempt } from '../policy/attempt-decision.ts';
import { AimdLimit } from '../policy/health/aimd-limit.ts';
import type { HealthMonitor } from '../policy/health/health-monitor.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { HeaderList, LeasedOperation, Operation, OperationStore } from '../store/port.ts';
import { LeaseLoop } from './lease-loop.ts';

export interface ReplayWorkerOptions {
  store: OperationStore;
  upstream: Upstream;
  clock: Clock;
  /** Lease owner name of this process (who holds a lease; each lease is fenced by its own token). */
  owner: string;
  /** The policy of a route by name (the catch-all route for names no longer configured). */
  routeNamed: (name: string) => RoutePolicy;
  /** The configured routes: each one's leases last as long as its own attempts need (leaseMsFor). */
  routes: readonly RoutePolicy[];
  concurrency: number;
  pollIntervalMs: number;
  maxResultBytes: number;
  /** The routes' health: replay pauses for a route while it diverts for cause, and outcomes feed its replay view. */
  health?: HealthMonitor;
  /** Where attempts, their outcomes and the loop's errors are told (logs, metrics). */
  events?: LifecycleEvents;
  random?: () => number;
}

export class ReplayWorker {
  readonly #options: ReplayWorkerOptions;
  readonly #events: LifecycleEvents;
  readonly #loop: LeaseLoop<LeasedOperation>;
  /** The drain rate adapts to the upstream: AIMD from replay latency and errors, within [1, concurrency]. */
  readonly #limit: AimdLimit;
  /** An upstream Retry-After on a replay pauses all replay until then. */
  #pausedUntil = 0;

  constructor(options: ReplayWorkerOptions) {
    this.#options = options;
    this.#events = options.events ?? new LifecycleEvents();
    const max = Math.max(1, options.concurrency);
    this.#limit = new AimdLimit({ min: 1, max, initial: Math.ceil(max / 2), backoff: 0.5 });
    const { clock, store, owner, routes, health, pollIntervalMs } = options;
    const leaseMsByRoute = Object.fromEntries(routes.map((route) => [route.name, leaseMsFor(route)]));
    // Operations of routes no longer configured: the longest lease, as their attempts' limit is not known here.
    const leaseMs = Math.max(...Object.values(leaseMsByRoute));
    this.#loop = new LeaseLoop({
      clock,
      pollIntervalMs,
      freeSlots: (inFlight) => (clock.now() < this.#pausedUntil ? 0 : this.concurrencyLimit - inFlight),
      // Routes diverting for cause get no replay: the backlog must not knock a recovering upstream over again.
      // Nor do routes an operator paused: read from the store at each lease, so a pause reaches every process.
      lease: async (limit) => {
        const paused = Object.keys(await store.pausedReplays());
        return store.lease({
          owner,
          limit,
          leaseMs,
          leaseMsByRoute,
          excludeRoutes: [...(health?.routesNotReplaying() ?? []), ...paused],
        });
      },
      run: (op, shutdown) => this.#replay(op, shutdown),
      onError: (error) =>
        this.#events.emit({ type: 'background:error', at: clock.now(), source: 'replay', error }),
      // Something due that could not be leased (routes paused, slots full, Retry-After) waits a poll:
      // finished replays and captures wake the loop sooner.
      idleDelay: async () => {
        const due = await store.nextDueAt();
        const now = clock.now();
        let delay = pollIntervalMs;
        if (due !== undefined && due > now) delay = Math.min(pollIntervalMs, due - now);
        if (this.#pausedUntil > now) delay = Math.min(pollIntervalMs, this.#pausedUntil - now);
        return delay;
      },
    });
  }

  /** Replays allowed in flight now (the adaptive limit). */
  get concurrencyLimit(): number {
    return Math.min(this.#limit.limit, this.#options.concurrency);
  }

  /** Starts the loop. Safe to call twice. */
  start(): void {
    this.#loop.start();
  }

  /**
   * A capture falls due at `dueAt` (default now): look then instead of at the
   * next poll, unless a look is already planned sooner. Captures during an
   * outage fall due later, so they do not set off a lease each.
   */
  wake(dueAt?: number): void {
    this.#loop.wakeIn(dueAt === undefined ? 0 : Math.max(0, dueAt - this.#options.clock.now()));
  }

  /**
   * Leases as many due operations as there are free slots and starts their
   * replays. Resolves with the number leased; the replays go on in the background.
   */
  runOnce(): Promise<number> {
    return this.#loop.runOnce();
  }

  /** Resolves when no replay is in flight. */
  idle(): Promise<void> {
    return this.#loop.idle();
  }

  /**
   * Stops leasing, waits up to `graceMs` for replays in flight, then aborts the
   * rest and hands their leases back. Safe to call twice.
   */
  stop(graceMs: number): Promise<void> {
    return this.#loop.stop(graceMs);
  }

  async #replay(op: LeasedOperation, shutdown: AbortSignal): Promise<void> {
    const { store, upstream, clock, maxResultBytes } = this.#options;
    const token = op.leaseToken;
    const route = this.#options.routeNamed(op.route);
    const refusal = decideBeforeAttempt(
      {
        method: op.request.method,
        outcomeUnknown: op.outcomeUnknown,
        createdAt: retryBudgetOf(op).createdAt,
      },
      route,
      clock.now(),
    );
    if (refusal) {
      if (await applyDecision(store, op.id, token, refusal))
        decided(this.#events, op, refusal, op.attempts, clock.now());
      return;
    }
    if (shutdown.aborted) {
      await store.release(op.id, token, false);
      return;
    }
    const deadline = attemptDeadline(clock, route.attemptTimeoutMs);
    const heartbeat = holdLease(store, clock, { id: op.id, token, leaseMs: leaseMsFor(route) });
    const started = clock.now();
    const facts = { attempt: op.attempts + 1, kind: 'replay', startedAt: started } as const;
    attemptStarted(this.#events, op, facts);
    let outcome: AttemptOutcome;
    try {
      const call = upstream.send(forwardRequestOf(op), deadline.signal);
      outcome = await Promise.race([outcomeOf(call, maxResultBytes, clock.now()), whenAborted(shutdown)]);
    } catch (reason) {
      // Shut down mid-attempt: the request is out, so its outcome is unknown to whoever leases it next.
      heartbeat.stop();
      deadline.abort(reason as Error);
      await store.release(op.id, token, true, interruptedAttempt(started, clock.now()));
      attemptFinished(this.#events, op, facts, null, false, clock.now());
      return;
    }
    heartbeat.stop();
    deadline.clear();
    this.#learn(op.route, route, outcome, clock.now() - started);
    const { decision, held } = await recordOutcome(
      store,
      op,
      route,
      token,
      outcome,
      clock,
      started,
      this.#options.random,
    );
    attemptFinished(this.#events, op, facts, decision, held, clock.now());
  }

  /** Feeds the drain rate, the pause and the route's replay view from one replay's outcome. */
  #learn(name: string, route: RoutePolicy, outcome: AttemptOutcome, durationMs: number): void {
    const { clock, health } = this.#options;
    const refused = outcome.kind === 'response' && route.failoverStatuses.has(outcome.response.status);
    const failed = outcome.kind === 'not-sent' || outcome.kind === 'unknown' || refused;
    if (failed || durationMs >= route.health.slowCallMs) this.#limit.bad();
    else this.#limit.good();
    if (outcome.kind === 'response' && outcome.retryAfterMs !== undefined && refused) {
      this.#pausedUntil = Math.max(this.#pausedUntil, clock.now() + outcome.retryAfterMs);
    }
    if (health?.has(name)) health.route(name).replayFinished({ failed, durationMs }, clock.now());
  }
}

/** The captured request as it is sent again, carrying the same Idempotency-Key on every attempt. */
function forwardRequestOf(op: Operation): ForwardRequest {
  const headers: HeaderList = [...op.request.headers];
  if (op.idempotencyKey && !headers.some(([name]) => name === 'idempotency-key')) {
    headers.push(['idempotency-key', op.idempotencyKey]);
  }
  for (const [name, value] of [
    ['traceparent', op.traceparent],
    ['tracestate', op.tracestate],
  ] as const) {
    if (value && !headers.some(([n]) => n === name)) headers.push([name, value]);
  }
  return { ...op.request, headers };
}
