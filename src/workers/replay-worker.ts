/**
 * Replay workers: lease due operations (highest priority, then oldest first),
 * replay them against the upstream and record each outcome. Expired leases of
 * a crashed process are recovered by the same lease query, under the retry
 * safety rule (src/policy/retry-safety.ts).
 *
 * Each route is leased and paced on its own (src/policy/health/replay-gate.ts):
 * its own adaptive limit, Retry-After pause and probes, so one failing route
 * never slows another's drain. While a route diverts or probes, its replays
 * act as probes, one at a time; one that passes brings the route's due times
 * forward and the drain starts at once. The route's health is the gateway's
 * own machine, or, in a `spillway worker` process, what gateways wrote to the
 * store.
 *
 * The loop (src/workers/lease-loop.ts) has a manual trigger, `runOnce()`, so
 * tests drive it without sleeping; `start()` runs it on a timer and on
 * `wake()` after each capture.
 */
import type { Span } from '@opentelemetry/api';
import type { Clock } from '../clock.ts';
import {
  applyDecision,
  attemptDeadline,
  interruptedAttempt,
  outcomeOf,
  recordOutcome,
  retryBudgetOf,
} from '../engine/attempt.ts';
import { attemptFinished, attemptStarted, decided, probeRefused } from '../engine/attempt-events.ts';

import { whenAborted } from '../engine/in-flight.ts';
import { holdLease, leaseMsFor } from '../engine/lease-heartbeat.ts';
import {
  endAttemptSpan,
  endSpan,
  remoteContext,
  SpanKind,
  startSpan,
  withTraceHeaders,
} from '../engine/spans.ts';
import type { StaleCopies } from '../engine/stale-copies.ts';
import type { ForwardRequest, Upstream } from '../engine/upstream.ts';
import { LifecycleEvents } from '../events/lifecycle.ts';
import { type AttemptOutcome, decideBeforeAttempt } from '../policy/attempt-decision.ts';
import type { HealthMonitor } from '../policy/health/health-monitor.ts';
import { ReplayGate, type RouteHealthView } from '../policy/health/replay-gate.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type {
  HeaderList,
  LeasedOperation,
  LeaseRequest,
  Operation,
  OperationQueue,
  RouteControls,
  StoredRouteHealth,
} from '../store/port.ts';
import { LeaseLoop } from './lease-loop.ts';

export interface ReplayWorkerOptions {
  /** The queue it leases from, and the route controls it follows (pauses, gateways' health, a drain brought forward). */
  store: OperationQueue & RouteControls;
  upstream: Upstream;
  clock: Clock;
  /** Lease owner name of this process (who holds a lease; each lease is fenced by its own token). */
  owner: string;
  /** The policy of a route by name (the catch-all route for names no longer configured). */
  routeNamed: (name: string) => RoutePolicy;
  /**
   * The configured routes, the catch-all last: each is leased and paced on its
   * own, and its leases last as long as its own attempts need (leaseMsFor).
   */
  routes: readonly RoutePolicy[];
  /** Replays of one route in flight at most (its adaptive limit's ceiling). */
  concurrency: number;
  pollIntervalMs: number;
  maxResultBytes: number;
  /**
   * The routes' health in this process: it paces each route's replay, and
   * replay outcomes feed it. Without it (`spillway worker`), the health
   * gateways wrote to the store paces replay.
   */
  health?: HealthMonitor;
  /** Where attempts, their outcomes and the loop's errors are told (logs, metrics). */
  events?: LifecycleEvents;
  /** Stale copies: a read's result refreshes its copy. */
  staleCopies?: StaleCopies;
  /** The function routes (`fn:<name>`) this process runs, asked at each lease (spillway.define adds them). */
  functions?: () => readonly string[];
  /** False: replay only `functions` (a process with no upstream of its own). Default true. */
  proxiedRoutes?: boolean;
  random?: () => number;
}

export class ReplayWorker {
  readonly #options: ReplayWorkerOptions;
  readonly #events: LifecycleEvents;
  readonly #loop: LeaseLoop<LeasedOperation>;
  /** Each route's pace: adaptive limit, Retry-After pause, probes. */
  readonly #gates = new Map<string, ReplayGate>();
  /** Replays sent as probes, by operation id, with the state they probe. */
  readonly #probes = new Map<string, { since: number }>();
  /** Replays whose outcome reached their gate (#learn), until their run ends. */
  readonly #learned = new Set<string>();
  /** Gateways' route health as last read from the store (without a local health monitor). */
  #stored: Record<string, StoredRouteHealth> = {};
  readonly #leaseMsByRoute: Record<string, number>;
  /** Operations of routes no longer configured: the longest lease, as their attempts' limit is not known here. */
  readonly #leaseMs: number;

  constructor(options: ReplayWorkerOptions) {
    this.#options = options;
    this.#events = options.events ?? new LifecycleEvents();
    const { clock, store, routes, pollIntervalMs } = options;
    this.#leaseMsByRoute = Object.fromEntries(routes.map((route) => [route.name, leaseMsFor(route)]));
    this.#leaseMs = Math.max(...Object.values(this.#leaseMsByRoute));
    for (const route of routes) {
      this.#gates.set(
        route.name,
        new ReplayGate({ concurrency: options.concurrency, probeIntervalMs: route.health.probeIntervalMs }),
      );
    }
    this.#loop = new LeaseLoop({
      clock,
      pollIntervalMs,
      freeSlots: () => this.#freeSlots(),
      lease: () => this.#lease(),
      run: (op, shutdown) =>
        this.#replay(op, shutdown).finally(() => {
          // A replay that ended without an outcome (refused before sending, shutdown) frees its slot here.
          if (this.#learned.delete(op.id)) return;
          this.#probes.delete(op.id);
          this.#gateOf(op.route).released();
        }),
      onError: (error, op) =>
        this.#events.emit({
          type: 'background:error',
          at: clock.now(),
          source: 'replay',
          ...(op ? { operationId: op.id } : {}),
          error,
        }),
      // Something due that could not be leased (routes paused, slots full, Retry-After) waits a poll;
      // a route's probe waits its turn. Finished replays and captures wake the loop sooner.
      idleDelay: async () => {
        const due = await store.nextDueAt();
        const now = clock.now();
        let delay = pollIntervalMs;
        if (due !== undefined && due > now) delay = Math.min(pollIntervalMs, due - now);
        for (const [name, gate] of this.#gates) {
          const turn = gate.nextTurnIn(this.#viewOf(name), now);
          if (turn !== undefined) delay = Math.min(delay, Math.max(1, turn));
        }
        return delay;
      },
    });
  }

  /** Replays of `route` allowed in flight now in drain mode (its adaptive limit). */
  concurrencyLimit(route: string): number {
    return this.#gateOf(route).limit;
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
    // A child of the operation's stored trace context (and linked to it), in whichever process replays it.
    const span = startSpan(
      `replay ${op.route}`,
      SpanKind.CONSUMER,
      remoteContext(op.traceparent, op.tracestate),
      {
        'messaging.system': 'spillway',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'replay',
        'messaging.destination.name': op.route,
        'messaging.message.id': op.id,
        'spillway.attempt': facts.attempt,
        'http.request.method': op.request.method,
      },
      true,
    );
    let outcome: AttemptOutcome;
    try {
      const call = upstream.send(forwardRequestOf(op, span), deadline.signal);
      outcome = await Promise.race([outcomeOf(call, maxResultBytes, clock.now()), whenAborted(shutdown)]);
    } catch (reason) {
      // Shut down mid-attempt: the request is out, so its outcome is unknown to whoever leases it next.
      heartbeat.stop();
      deadline.abort(reason as Error);
      await store.release(op.id, token, true, interruptedAttempt(started, clock.now()));
      attemptFinished(this.#events, op, facts, null, false, clock.now());
      endAttemptSpan(span, null, false);
      return;
    }
    heartbeat.stop();
    deadline.clear();
    const probe = this.#probes.has(op.id);
    const refused = this.#learn(op, route, outcome, clock.now() - started);
    if (probe && refused) {
      // The route's outage is not the operation's fault: a probe the upstream refused is handed
      // back uncounted, the operation keeps its place and its retry budget.
      const held = await store.release(op.id, token, false);
      probeRefused(this.#events, op, facts, outcome, held, clock.now());
      endSpan(
        span,
        {
          'spillway.outcome': held ? 'probe-refused' : 'lease-lost',
          ...(outcome.kind === 'response' ? { 'http.response.status_code': outcome.response.status } : {}),
        },
        { type: outcome.kind === 'response' ? 'upstream-status' : 'upstream-unreachable' },
      );
      return;
    }
    let recorded: Awaited<ReturnType<typeof recordOutcome>>;
    try {
      recorded = await recordOutcome(store, op, route, token, outcome, clock, started, this.#options.random);
    } catch (error) {
      endSpan(span, {}, { type: 'store-unavailable' }); // not recorded: the lease runs out and it is replayed
      throw error;
    }
    const { decision, held } = recorded;
    attemptFinished(this.#events, op, facts, decision, held, clock.now());
    endAttemptSpan(span, decision, held);
    // A read's fresh answer refreshes its stale copy (the refresh operation of a stale answer, or any other).
    if (held && decision.kind === 'complete')
      this.#options.staleCopies?.resultArrived(route, op, decision.result, clock.now());
  }

  /**
   * Feeds the route's pace (limit, pause, probe) and its health from one
   * replay's outcome. True when the upstream refused it unprocessed: not sent,
   * or a failover status.
   */
  #learn(op: Operation, route: RoutePolicy, outcome: AttemptOutcome, durationMs: number): boolean {
    const { clock, health } = this.#options;
    const refused = outcome.kind === 'response' && route.failoverStatuses.has(outcome.response.status);
    const failed = outcome.kind === 'not-sent' || outcome.kind === 'unknown' || refused;
    const gate = this.#gateOf(op.route);
    gate.finished(!failed && durationMs < route.health.slowCallMs, this.#probes.get(op.id));
    this.#probes.delete(op.id);
    this.#learned.add(op.id);
    if (outcome.kind === 'response' && outcome.retryAfterMs !== undefined && refused)
      gate.pauseUntil(clock.now() + outcome.retryAfterMs);
    if (health?.has(op.route)) health.route(op.route).replayFinished({ failed, durationMs }, clock.now());
    return outcome.kind === 'not-sent' || refused;
  }

  #gateOf(route: string): ReplayGate {
    // Names no longer configured are replayed under the catch-all route's gate.
    return this.#gates.get(route) ?? this.#gates.get(this.#options.routes.at(-1)!.name)!;
  }

  #viewOf(route: string): RouteHealthView | undefined {
    const { health } = this.#options;
    if (health) return health.has(route) ? health.route(route).replayView() : undefined;
    const stored = this.#stored[route];
    // The store holds a gateway's transitions, not its probe results: this process's own probes decide.
    return stored && { ...stored, probesPassed: 0 };
  }

  #freeSlots(): number {
    const now = this.#options.clock.now();
    let free = 0;
    for (const [name, gate] of this.#gates) free += gate.slots(this.#viewOf(name), now);
    return free;
  }

  /**
   * Leases each route's due operations into its own free slots. A route in
   * probe mode gets one, even if none is due yet (the probe is the route's,
   * not the operation's); a route entering drain mode has its waiting
   * operations brought forward first, so the drain starts at once.
   */
  async #lease(): Promise<LeasedOperation[]> {
    const { store, clock, owner, routes, health } = this.#options;
    // An operator's pause is read from the store at each lease, so it reaches every process.
    const paused = await store.pausedReplays();
    if (!health) this.#stored = await store.routeHealth();
    const names = routes.map((r) => r.name);
    const leased: LeasedOperation[] = [];
    for (const name of names) {
      if (paused[name] !== undefined) continue;
      const gate = this.#gateOf(name);
      const view = this.#viewOf(name);
      const now = clock.now();
      if (gate.enteredDrain(view, now)) await store.bringForward(name);
      const slots = gate.slots(view, now);
      if (slots <= 0) continue;
      const probe = gate.mode(view, now) === 'probe';
      if (probe) gate.probed(now);
      const request: LeaseRequest = {
        owner,
        limit: slots,
        leaseMs: this.#leaseMs,
        leaseMsByRoute: this.#leaseMsByRoute,
        // The catch-all route also takes the operations of routes no longer configured.
        ...(name === names.at(-1)
          ? { excludeRoutes: [...names.slice(0, -1), ...Object.keys(paused)] }
          : { routes: [name] }),
        // Defined functions (createSpillway's define) are leased only where they are defined.
        functions: this.#options.functions?.() ?? [],
        proxiedRoutes: this.#options.proxiedRoutes ?? true,
      };
      let ops = await store.lease(request);
      if (ops.length === 0 && probe && (await store.bringForward(name, 1)) > 0)
        ops = await store.lease(request);
      for (const op of ops) {
        gate.started();
        if (probe) this.#probes.set(op.id, { since: view?.since ?? 0 });
      }
      leased.push(...ops);
    }
    return leased;
  }
}

/**
 * The captured request as it is sent again, carrying the same Idempotency-Key
 * on every attempt, and the replay span as the parent in its traceparent.
 */
function forwardRequestOf(op: Operation, span: Span): ForwardRequest {
  const headers: HeaderList = [...op.request.headers];
  if (op.idempotencyKey && !headers.some(([name]) => name === 'idempotency-key')) {
    headers.push(['idempotency-key', op.idempotencyKey]);
  }
  return { ...op.request, headers: withTraceHeaders(headers, span), attempt: op.attempts + 1 };
}
