/**
 * The failover core, usable without HTTP: try the upstream within the budget;
 * when it cannot answer in time, capture the request durably and hand back the
 * operation instead.
 *
 * - Unreachable upstream or a failover status: capture for replay.
 * - Budget spent while the call is in flight: adoption. The operation is
 *   captured holding the lease of the in-flight call, which carries on as the
 *   operation's first attempt under its own, longer time limit. It is never
 *   cancelled and re-sent.
 * - Nothing is acknowledged before its capture is durable. If the capture of an
 *   adoption fails, the client keeps waiting on the sync attempt instead.
 * - A request that is not work (a CORS preflight, `Submission.notWork`) is never
 *   captured: where it would fail over, the engine says so and the caller answers.
 */
import { randomUUID } from 'node:crypto';
import type { Context, Span } from '@opentelemetry/api';
import type { Clock } from '../clock.ts';
import { type ErrorCode, StoreUnavailableError } from '../errors.ts';
import { type CaptureReason, LifecycleEvents, type SyncResult, traceIdOf } from '../events/lifecycle.ts';
import type { AttemptOutcome } from '../policy/attempt-decision.ts';
import { backoffDelay } from '../policy/backoff.ts';
import type { HealthMonitor } from '../policy/health/health-monitor.ts';
import type { Admission, CallToken, FinishedCall } from '../policy/health/route-health.ts';
import { orderingKeyOf } from '../policy/ordering-key.ts';
import { parseRetryAfter } from '../policy/retry-after.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type {
  AttemptRecordInput,
  HeaderList,
  NewOperation,
  Operation,
  OperationQueue,
  WebhookTarget,
} from '../store/port.ts';
import {
  type AttemptDeadline,
  AttemptTimeoutError,
  attemptDeadline,
  interruptedAttempt,
  outcomeOf,
  recordOutcome,
} from './attempt.ts';
import { attemptFinished, attemptStarted } from './attempt-events.ts';
import type { BacklogBound } from './backlog-bound.ts';
import { FORWARDING_FIELDS, headerValue } from './http-fields.ts';
import { InFlight, whenAborted } from './in-flight.ts';
import { holdLease, leaseMsFor } from './lease-heartbeat.ts';
import { newOperationId } from './operation-id.ts';
import {
  endAttemptSpan,
  endSpan,
  newTraceparent,
  remoteContext,
  SpanKind,
  startSpan,
  traceHeadersOf,
  withTraceHeaders,
} from './spans.ts';
import type { PartialAnswer, StaleCopies } from './stale-copies.ts';
import {
  describeError,
  type ForwardRequest,
  failedBeforeSending,
  type Upstream,
  type UpstreamResponse,
  whenBodyCloses,
} from './upstream.ts';

/** How long a client refused for a full backlog is told to wait: the backlog drains at the upstream's pace. */
const BACKLOG_RETRY_AFTER_S = 30;

/** A capture refused for a full backlog (adoption: the client keeps waiting on the sync attempt). */
class BacklogFullError extends Error {}

export interface Submission {
  route: RoutePolicy;
  /** What to forward: end-to-end headers, consumed Prefer tokens already removed. */
  request: ForwardRequest;
  /** When the request was received whole, its body read (epoch ms); the budget counts from here. */
  receivedAt: number;
  /** How long the client waits for the sync attempt's response headers. */
  budgetMs: number;
  /** False: never capture; a spent budget answers 504 and failures 502. */
  mayFailover: boolean;
  /**
   * The request is not work (a CORS preflight): replaying it later would do
   * nothing for anyone. It is never captured, adopted, drilled, taken as a probe
   * or held behind an ordering key; where another request would fail over, and where one that may
   * not would get a 502 or 504, the answer is `unanswered` and the caller
   * answers it itself.
   */
  notWork?: boolean;
  /** The caller's tenant (src/gateway/access.ts), kept with a capture: only it may read the operation. */
  tenant: string | null;
  /** The Idempotency-Key claim the request holds: a capture marks it accepted in the same commit. */
  idempotency?: { key: string; token: string };
  /** Where a capture's terminal event is posted: the checked `Spillway-Callback`, and the route's subscriptions. */
  webhooks?: { callbackUrl: string | null; subscriptions: readonly WebhookTarget[] };
  /** The incoming request's trace context (its span); default: from the request's traceparent. */
  trace?: Context;
  /**
   * The client takes a stale copy or a fallback at once instead of a 202 or a
   * problem (it sent neither `Prefer: respond-async` nor `max-stale=0`).
   */
  acceptsPartial?: boolean;
}

export type EngineAnswer =
  | { kind: 'sync'; response: UpstreamResponse }
  /** Captured; `reason` says why the request went async (for the Spillway-Failover-Reason header). */
  | { kind: 'accepted'; operation: Operation; reason: string; cause: CaptureReason }
  | { kind: 'failed'; code: ErrorCode; detail: string; retryAfterSeconds?: number }
  /**
   * A request that is not work (`Submission.notWork`) where any other would
   * have been captured: nothing was stored. `reason` and `cause` as for a 202;
   * `retryAfterSeconds`: when the upstream may answer again, as far as is known.
   */
  | { kind: 'unanswered'; reason: string; cause: CaptureReason; retryAfterSeconds: number }
  /**
   * A read answered at once with a stale copy or a fallback (src/engine/stale-copies.ts)
   * instead of the 202 (`operation`, whose result will be the fresh answer) or the
   * problem (`operation` null) it would have had; `reason` says why, as for a 202.
   */
  | { kind: 'partial'; answer: PartialAnswer; operation: Operation | null; reason: string };

export interface FailoverEngineOptions {
  store: OperationQueue;
  upstream: Upstream;
  clock: Clock;
  /** This process's lease owner name (who holds a lease; each lease is fenced by its own token). */
  instanceId: string;
  maxResultBytes: number;
  /** The routes' health: decides sync or divert, and learns from every sync outcome. */
  health?: HealthMonitor;
  /** Called after each capture, so idle replay workers can wake. */
  onCapture?: (operation: Operation) => void;
  /** The bound on waiting operations (maxBacklog); captures past it are refused. */
  backlog?: BacklogBound;
  /** Where captures, sync attempts and adopted attempts are told (logs, metrics). */
  events?: LifecycleEvents;
  /** Stale copies and fallbacks for reads (routes with staleIfErrorMs or a fallback). */
  staleCopies?: StaleCopies;
  random?: () => number;
}

/** One request on its way through the engine. */
interface Pending {
  id: string | undefined;
  submission: Submission;
  request: ForwardRequest;
  /** Its route's ordering key, scoped to the tenant (src/policy/ordering-key.ts), if it has one. */
  orderingKey: string | undefined;
  /** The parent of the sync attempt's and the capture's spans. */
  trace: Context;
}

interface CaptureSpec {
  attempts: number;
  outcomeUnknown: boolean;
  nextAttemptAt: number;
  reason: string;
  cause: CaptureReason;
  /** The failed sync attempt, when one was made (`attempts` 1). */
  firstAttempt?: AttemptRecordInput;
}

export class FailoverEngine {
  readonly #options: FailoverEngineOptions;
  readonly #random: () => number;
  readonly #events: LifecycleEvents;
  /** Adopted attempts still in flight. */
  readonly #adopted = new InFlight();

  constructor(options: FailoverEngineOptions) {
    this.#options = options;
    this.#random = options.random ?? Math.random;
    this.#events = options.events ?? new LifecycleEvents();
  }

  submit(submission: Submission): Promise<EngineAnswer> {
    const copies = this.#options.staleCopies;
    // Without stale copies for this request, no second await on the sync path.
    if (!copies || !submission.acceptsPartial) return this.#submit(submission);
    return this.#submit(submission).then((answer) => this.#orPartial(submission, answer, copies));
  }

  #orPartial(
    submission: Submission,
    answer: EngineAnswer,
    copies: StaleCopies,
  ): EngineAnswer | Promise<EngineAnswer> {
    if (answer.kind === 'sync' || answer.kind === 'partial' || answer.kind === 'unanswered') return answer;
    // A drill exercises the async path on purpose while the upstream is healthy; a request held behind
    // its ordering key waits for earlier writes, which a copy from before them would hide.
    if (answer.kind === 'accepted' && (answer.cause === 'drill' || answer.cause === 'ordering-key'))
      return answer;
    if (answer.kind === 'failed' && answer.code === 'ordering-key-pending') return answer;
    return this.#partial(submission, answer, copies);
  }

  /**
   * Instead of a 202 or a problem, a stale copy or the route's fallback, when
   * there is one; the captured operation (if any) becomes the refresh.
   */
  async #partial(
    { route, request, tenant }: Submission,
    answer: Extract<EngineAnswer, { kind: 'accepted' | 'failed' }>,
    copies: StaleCopies,
  ): Promise<EngineAnswer> {
    const { clock } = this.#options;
    const read = {
      tenant,
      method: request.method,
      path: request.path,
      query: request.query,
      headers: request.headers,
    };
    let partial: PartialAnswer | undefined;
    try {
      partial = (await copies.find(route, read)) ?? (await copies.fallback(route, read));
    } catch (error) {
      // No copy to be had (the store failed): the answer it would have had, and the failure told.
      this.#events.emit({ type: 'background:error', at: clock.now(), source: 'stale-copies', error });
      return answer;
    }
    if (!partial) return answer;
    const operation = answer.kind === 'accepted' ? answer.operation : null;
    this.#events.emit({
      type: partial.source === 'stale' ? 'answer:stale' : 'answer:fallback',
      at: clock.now(),
      route: route.name,
      operationId: operation?.id ?? null,
      why: answer.kind === 'accepted' ? answer.cause : answer.code,
      ageSeconds: partial.ageSeconds ?? null,
      fallbackFrom: partial.fallbackFrom ?? null,
    });
    return {
      kind: 'partial',
      answer: partial,
      operation,
      // A problem's detail advises on the problem, which the client does not get: its code says why instead.
      reason: answer.kind === 'accepted' ? answer.reason : answer.code,
    };
  }

  async #submit(submission: Submission): Promise<EngineAnswer> {
    const { route, receivedAt, mayFailover } = submission;
    const notWork = submission.notWork === true;
    const { clock } = this.#options;
    // The id is minted up front only when the first attempt must already carry the key derived from it.
    const id = route.honoursIdempotencyKey ? newOperationId() : undefined;
    const request = withIdempotencyKey(submission.request, id);
    const trace =
      submission.trace ??
      remoteContext(headerValue(request.headers, 'traceparent'), headerValue(request.headers, 'tracestate'));
    // A request that is not work changes nothing, so it has nothing to wait for behind a key.
    const orderingKey =
      notWork || !route.orderingKey
        ? undefined
        : orderingKeyOf(route.orderingKey, request, submission.tenant);
    const pending: Pending = { id, submission, request, trace, orderingKey };
    const now = clock.now();
    // Failing over is capturing, except for a request that is not work: that one is only told.
    const failOver = (spec: Partial<CaptureSpec> & { reason: string; cause: CaptureReason }) => {
      const full = { attempts: 0, outcomeUnknown: false, nextAttemptAt: clock.now(), ...spec };
      return notWork ? this.#unanswered(route.name, full) : this.#capture(pending, full);
    };

    if (mayFailover && submission.budgetMs === 0)
      return failOver({ reason: 'respond-async with wait=0', cause: 'respond-async' });

    // FIFO per key: a request never goes ahead of its key's backlog; it joins the end of it.
    if (orderingKey !== undefined) {
      const behind = await this.#keyBacklog(route.name, orderingKey, mayFailover);
      if (behind === 'capture')
        return failOver({ reason: 'ordering key has earlier requests waiting', cause: 'ordering-key' });
      if (behind !== undefined) return behind;
    }

    // A budget spent before the call (`Prefer: wait=0` without respond-async, or a body that took the
    // whole budget to arrive) is not a call: nothing is sent, so nothing is abandoned half-done, and the
    // upstream is not judged by it. Only a request that may be captured still goes, to be adopted.
    const remaining = Math.max(0, receivedAt + submission.budgetMs - now);
    if (remaining === 0 && (notWork || !mayFailover))
      return notWork
        ? failOver({ reason: `budget of ${submission.budgetMs} ms spent`, cause: 'budget-spent' })
        : spentBeforeSending(submission);

    // The health state may divert before any attempt; a route that cannot fail over is only observed.
    const health = this.#options.health?.route(route.name);
    let token: CallToken | undefined;
    if (health && mayFailover) {
      const admission = health.admit(now, remaining, !notWork);
      if (admission.path === 'divert')
        return failOver({
          reason: admission.reason,
          cause: divertCause(admission),
          nextAttemptAt: admission.until ?? now,
        });
      token = admission.token;
    } else token = health?.observe(now);
    const report = (failed: boolean, retryAfterMs?: number) => {
      const at = clock.now();
      if (!token) return;
      // No spread of an empty object on the healthy path: this runs once per sync request.
      const outcome: FinishedCall = { failed, durationMs: at - now };
      if (retryAfterMs !== undefined) outcome.retryAfterMs = retryAfterMs;
      health?.finish(token, outcome, at);
    };

    // The attempt's own limit bounds it to the end of the response body, or, once a sync answer is passed on
    // to its client, how long nothing moves within it (passOn); the budget only bounds the wait for headers.
    const deadline = attemptDeadline(clock, route.attemptTimeoutMs);
    const span = startSpan(`sync ${route.name}`, SpanKind.CLIENT, trace, {
      'http.request.method': request.method,
      'spillway.route': route.name,
    });
    // Without a span of its own to propagate (no SDK), the request goes as it is, not copied.
    const traced = withTraceHeaders(request.headers, span);
    const call = this.#options.upstream.send(
      traced === request.headers ? request : { ...request, headers: traced },
      deadline.signal,
    );
    const first = await withinBudget(call, remaining, clock);
    const synced = (outcome: SyncResult, upstreamStatus: number | null = null) =>
      this.#events.emit({
        type: 'sync:finished',
        at: clock.now(),
        route: route.name,
        outcome,
        durationMs: clock.now() - now,
        upstreamStatus,
      });

    if (first.kind === 'budget-spent') {
      synced('budget-spent');
      if (mayFailover && !notWork) {
        // The call is hung from now on: judge at once, so a black hole trips before more requests pay the budget.
        health?.tick(clock.now());
        return this.#adopt(pending, call, deadline, report, now, span);
      }
      endSpan(span, {}, { type: 'upstream-timeout' });
      deadline.abort(new AttemptTimeoutError(submission.budgetMs));
      report(true);
      // Not work: no attempt worth adopting, so the call is dropped, as for a request that may not fail over.
      return notWork
        ? failOver({ reason: `budget of ${submission.budgetMs} ms spent`, cause: 'budget-spent' })
        : timedOut(submission);
    }
    if (first.kind === 'error') {
      deadline.clear();
      report(true);
      synced('error');
      const sent = !failedBeforeSending(first.error);
      endSpan(span, {}, { type: sent ? 'upstream-failed' : 'upstream-unreachable' });
      if (!mayFailover && !notWork) return syncFailure(first.error);
      return failOver({
        attempts: 1,
        outcomeUnknown: sent,
        reason: sent ? 'upstream connection failed mid-request' : 'upstream unreachable',
        cause: sent ? 'upstream-failed' : 'upstream-unreachable',
        nextAttemptAt: sent ? clock.now() : clock.now() + backoffDelay(route.backoff, 1, this.#random),
        firstAttempt: syncAttempt(now, clock.now(), null, describeError(first.error)),
      });
    }

    const response = first.response;
    const status = response.statusCode;
    const header = response.headers['retry-after'];
    const retryAfterMs = parseRetryAfter(Array.isArray(header) ? header[0] : header, clock.now());
    const refused = route.failoverStatuses.has(status);
    report(refused, refused && (status === 429 || status === 503) ? retryAfterMs : undefined);
    synced(refused ? 'refused' : 'answered', status);
    endSpan(span, { 'http.response.status_code': status }, refused ? { type: 'upstream-status' } : undefined);
    if (mayFailover && refused) {
      deadline.clear();
      response.body.resume(); // discard the refusal, keep the connection reusable
      const delay = retryAfterMs ?? backoffDelay(route.backoff, 1, this.#random);
      return failOver({
        attempts: 1,
        reason: `upstream answered ${status}`,
        cause: 'upstream-status',
        nextAttemptAt: clock.now() + delay,
        firstAttempt: syncAttempt(now, clock.now(), status, `The upstream answered ${status}.`),
      });
    }
    return passOn(response, deadline, submission);
  }

  /**
   * Whether a request of `orderingKey` must wait behind the key's backlog: `capture` it behind,
   * or, when it may not be captured, the answer refusing it; undefined when nothing of the key waits.
   */
  async #keyBacklog(
    route: string,
    orderingKey: string,
    mayFailover: boolean,
  ): Promise<'capture' | EngineAnswer | undefined> {
    let pending: boolean;
    try {
      pending = await this.#options.store.orderingKeyPending(route, orderingKey);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      return {
        kind: 'failed',
        code: 'store-unavailable',
        detail: `Whether earlier requests with this ordering key are still waiting could not be read (${error.message}). Nothing was sent or accepted; retry later.`,
        retryAfterSeconds: 5,
      };
    }
    if (!pending) return undefined;
    if (mayFailover) return 'capture';
    return {
      kind: 'failed',
      code: 'ordering-key-pending',
      detail:
        'Earlier requests with this ordering key are still waiting to be replayed, and this one may not go ahead of them; it may not be captured either (the route does not fail over, or Prefer: wait came without respond-async). Nothing was sent; retry later, or send Prefer: respond-async to be queued behind them.',
      retryAfterSeconds: BACKLOG_RETRY_AFTER_S,
    };
  }

  /** Resolves once every adopted attempt has been recorded (tests, shutdown). */
  idle(): Promise<void> {
    return this.#adopted.idle();
  }

  /**
   * Waits for adopted attempts to finish, up to `graceMs`; the rest are aborted
   * and their leases handed back with the attempt counted as in flight.
   */
  drain(graceMs: number): Promise<void> {
    return this.#adopted.drain(this.#options.clock, graceMs);
  }

  async #adopt(
    pending: Pending,
    call: Promise<UpstreamResponse>,
    deadline: AttemptDeadline,
    report: (failed: boolean) => void,
    startedAt: number,
    span: Span,
  ): Promise<EngineAnswer> {
    const { clock, instanceId } = this.#options;
    const { submission } = pending;
    span.setAttribute('spillway.adopted', true);
    const id = pending.id ?? newOperationId(); // named before the capture, so a failed one can be told
    // Adoption is just another lease: its own token, its route's duration, extended while the call runs.
    const lease = {
      owner: instanceId,
      token: randomUUID(),
      expiresAt: clock.now() + leaseMsFor(submission.route),
    };
    const reason = `budget of ${submission.budgetMs} ms spent (adopted)`;
    let operation: Operation;
    try {
      // A full backlog is no reason to cut the client off: it waits for the sync attempt instead.
      if (await this.#backlogFull(submission.route.name)) throw new BacklogFullError();
      operation = await this.#store(
        { ...pending, id },
        { attempts: 0, outcomeUnknown: false, nextAttemptAt: lease.expiresAt, reason, cause: 'budget-spent' },
        lease,
      );
    } catch (error) {
      // No durable capture, so no 202: the client waits for the sync attempt after all, which also
      // finishes its health token. A failure other than an unavailable store or a full backlog is a bug to tell.
      if (!(error instanceof StoreUnavailableError) && !(error instanceof BacklogFullError)) {
        this.#events.emit({
          type: 'background:error',
          at: clock.now(),
          source: 'adoption',
          operationId: id,
          error,
        });
      }
      try {
        const response = await call;
        const refused = submission.route.failoverStatuses.has(response.statusCode);
        report(refused);
        endSpan(
          span,
          { 'http.response.status_code': response.statusCode },
          refused ? { type: 'upstream-status' } : undefined,
        );
        return passOn(response, deadline, submission);
      } catch (failure) {
        deadline.clear();
        report(true);
        endSpan(span, {}, { type: 'upstream-failed' });
        return failure instanceof AttemptTimeoutError ? timedOut(submission) : syncFailure(failure);
      }
    }
    this.#captured(operation, 'budget-spent', reason);
    this.#finishAdopted(operation, lease.token, submission.route, call, deadline, report, startedAt, span);
    return { kind: 'accepted', operation, reason, cause: 'budget-spent' };
  }

  #finishAdopted(
    operation: Operation,
    token: string,
    route: RoutePolicy,
    call: Promise<UpstreamResponse>,
    deadline: AttemptDeadline,
    report: (failed: boolean) => void,
    startedAt: number,
    span: Span,
  ): void {
    const { clock, store, maxResultBytes } = this.#options;
    const facts = { attempt: 1, kind: 'adopted', startedAt } as const;
    attemptStarted(this.#events, operation, facts);
    // A store that refuses the final write past its retries leaves the lease to expire: the next lease recovers it.
    const failed = (error: unknown) =>
      this.#events.emit({
        type: 'background:error',
        at: clock.now(),
        source: 'adoption',
        operationId: operation.id,
        error,
      });
    this.#adopted.track(async (shutdown) => {
      const held = holdLease(store, clock, { id: operation.id, token, leaseMs: leaseMsFor(route) });
      let outcome: AttemptOutcome;
      try {
        outcome = await Promise.race([outcomeOf(call, maxResultBytes, clock.now()), whenAborted(shutdown)]);
      } catch (reason) {
        held.stop();
        deadline.abort(reason as Error); // shutdown: abandon the call, hand the lease back
        await store.release(operation.id, token, true, interruptedAttempt(startedAt, clock.now()));
        attemptFinished(this.#events, operation, facts, null, false, clock.now());
        endAttemptSpan(span, null, false);
        return;
      }
      held.stop();
      deadline.clear();
      report(outcome.kind !== 'response' || route.failoverStatuses.has(outcome.response.status));
      const recorded = await recordOutcome(
        store,
        operation,
        route,
        token,
        outcome,
        clock,
        startedAt,
        this.#random,
      );
      attemptFinished(this.#events, operation, facts, recorded.decision, recorded.held, clock.now());
      endAttemptSpan(span, recorded.decision, recorded.held);
      if (recorded.held && recorded.decision.kind === 'complete')
        this.#options.staleCopies?.resultArrived(route, operation, recorded.decision.result, clock.now());
    }, failed);
  }

  async #capture(pending: Pending, spec: CaptureSpec): Promise<EngineAnswer> {
    try {
      const full = await this.#backlogFull(pending.submission.route.name);
      if (full) {
        return {
          kind: 'failed',
          code: 'backlog-full',
          detail: `The request had to go async (${spec.reason}), and ${full}. Nothing was accepted; retry later.`,
          retryAfterSeconds: BACKLOG_RETRY_AFTER_S,
        };
      }
      const operation = await this.#store(pending, spec);
      this.#captured(operation, spec.cause, spec.reason);
      return { kind: 'accepted', operation, reason: spec.reason, cause: spec.cause };
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      return {
        kind: 'failed',
        code: 'store-unavailable',
        detail: `The request had to go async (${spec.reason}) and could not be stored (${error.message}). Nothing was accepted; retry later.`,
        retryAfterSeconds: 5,
      };
    }
  }

  /** A request that is not work, which would have failed over: told, never stored. */
  #unanswered(route: string, spec: CaptureSpec): EngineAnswer {
    const now = this.#options.clock.now();
    this.#events.emit({
      type: 'answer:not-captured',
      at: now,
      route,
      reason: spec.cause,
      detail: spec.reason,
    });
    return {
      kind: 'unanswered',
      reason: spec.reason,
      cause: spec.cause,
      retryAfterSeconds: Math.max(1, Math.ceil((spec.nextAttemptAt - now) / 1000)),
    };
  }

  /**
   * Whether the route's or the global backlog is full; if so, says so on the
   * event stream and returns why, in words for the client's problem.
   */
  async #backlogFull(route: string): Promise<string | undefined> {
    const bound = this.#options.backlog;
    if (!bound) return undefined;
    const check = await bound.check(route);
    if (!check.full) return undefined;
    this.#events.emit({ type: 'backlog:full', at: this.#options.clock.now(), route, ...check });
    return check.scope === 'route'
      ? `the route ${route} already has ${check.backlog} operations waiting (its maxBacklog is ${check.limit})`
      : `${check.backlog} operations are already waiting (maxBacklog is ${check.limit})`;
  }

  /**
   * The capture itself, in its span (PRODUCER): the operation keeps the span's
   * traceparent (the client's when no SDK records spans; a new one when there
   * is neither), so its replays and webhooks join this trace.
   */
  async #store(pending: Pending, spec: CaptureSpec, lease?: NewOperation['lease']): Promise<Operation> {
    const { route } = pending.submission;
    const span = startSpan(`capture ${route.name}`, SpanKind.PRODUCER, pending.trace, {
      'messaging.system': 'spillway',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'capture',
      'messaging.destination.name': route.name,
      'spillway.capture.reason': spec.cause,
    });
    const trace = traceHeadersOf(span) ?? { traceparent: newTraceparent(), tracestate: null };
    try {
      const operation = await this.#options.store.capture({
        ...this.#newOperation(pending, spec, trace),
        ...(lease ? { lease } : {}),
      });
      endSpan(span, { 'messaging.message.id': operation.id });
      return operation;
    } catch (error) {
      endSpan(span, {}, { type: error instanceof StoreUnavailableError ? 'store-unavailable' : 'error' });
      throw error;
    }
  }

  #captured(operation: Operation, cause: CaptureReason, detail: string): void {
    this.#options.backlog?.captured(operation.route);
    this.#options.onCapture?.(operation);
    this.#events.emit({
      type: 'operation:captured',
      at: this.#options.clock.now(),
      operationId: operation.id,
      route: operation.route,
      traceId: traceIdOf(operation.traceparent),
      reason: cause,
      detail,
      attempts: operation.attempts,
    });
  }

  #newOperation(
    { id, submission, request, orderingKey }: Pending,
    spec: CaptureSpec,
    trace: { traceparent: string; tracestate: string | null },
  ): NewOperation {
    const { route } = submission;
    return {
      id: id ?? newOperationId(),
      route: route.name,
      request: {
        ...request,
        headers: request.headers.filter(
          ([name]) => route.captureHeaders.has(name) || FORWARDING_FIELDS.has(name),
        ),
      },
      priority: route.priority,
      idempotencyKey: route.honoursIdempotencyKey
        ? (headerValue(request.headers, 'idempotency-key') ?? null)
        : null,
      tenant: submission.tenant,
      ...(submission.idempotency ? { idempotency: submission.idempotency } : {}),
      ...(submission.webhooks
        ? {
            callbackUrl: submission.webhooks.callbackUrl,
            webhookSubscriptions: submission.webhooks.subscriptions,
          }
        : {}),
      traceparent: trace.traceparent,
      tracestate: trace.tracestate,
      attempts: spec.attempts,
      nextAttemptAt: spec.nextAttemptAt,
      outcomeUnknown: spec.outcomeUnknown,
      failoverReason: spec.reason,
      orderingKey: orderingKey ?? null,
      ...(spec.firstAttempt ? { firstAttempt: spec.firstAttempt } : {}),
    };
  }
}

/**
 * Routes whose upstream honours Idempotency-Key get one on every attempt: the
 * client's, or one derived from the id (minted up front for such routes only).
 */
function withIdempotencyKey(request: ForwardRequest, id: string | undefined): ForwardRequest {
  if (id === undefined || headerValue(request.headers, 'idempotency-key') !== undefined) return request;
  const headers: HeaderList = [...request.headers, ['idempotency-key', `spillway-${id}`]];
  return { ...request, headers };
}

/** The record of a sync attempt that failed before its capture. */
function syncAttempt(
  startedAt: number,
  now: number,
  upstreamStatus: number | null,
  error: string,
): AttemptRecordInput {
  return { startedAt, durationMs: now - startedAt, outcome: 'retry', upstreamStatus, error };
}

type FirstEvent =
  | { kind: 'response'; response: UpstreamResponse }
  | { kind: 'error'; error: unknown }
  | { kind: 'budget-spent' };

const BUDGET_SPENT: FirstEvent = Object.freeze({ kind: 'budget-spent' });

function withinBudget(call: Promise<UpstreamResponse>, ms: number, clock: Clock): Promise<FirstEvent> {
  return new Promise((resolve) => {
    // A budget spent before the call (wait=0, or used up reading the body) is spent now: a timer of
    // 0 ms would race the upstream's answer, and a fast upstream could win it.
    if (ms <= 0) resolve(BUDGET_SPENT);
    const timer = ms > 0 ? clock.setTimeout(() => resolve(BUDGET_SPENT), ms) : undefined;
    call.then(
      (response) => {
        if (timer !== undefined) clock.clearTimeout(timer);
        resolve({ kind: 'response', response });
      },
      (error: unknown) => {
        if (timer !== undefined) clock.clearTimeout(timer);
        resolve({ kind: 'error', error });
      },
    );
  });
}

/**
 * A sync answer goes to its client. Its body may stream for as long as the
 * upstream keeps sending (a download, an export, Server-Sent Events): from
 * its head on, the attempt's limit bounds how long nothing moves (the
 * upstream silent, or the client taking nothing), not the attempt's total
 * time; a slow client that keeps reading is never cut.
 * The limit ends with the body. An answer kept whole for its Idempotency-Key
 * is read to its end even when the client leaves, so, like an adopted attempt
 * or a replay, it keeps the total limit: an attempt that never ends must end.
 */
function passOn(response: UpstreamResponse, deadline: AttemptDeadline, submission: Submission): EngineAnswer {
  whenBodyCloses(response, deadline.clear);
  if (submission.idempotency === undefined) response.limitBySilence?.(deadline);
  return { kind: 'sync', response };
}

/** The closed-set reason of a health-state diversion (the human-readable one goes in the header). */
function divertCause(admission: Extract<Admission, { path: 'divert' }>): CaptureReason {
  if (admission.drill) return 'drill';
  if (admission.reason.startsWith('override')) return 'forced-async';
  if (admission.reason.startsWith('shed')) return 'shed';
  return 'diverting';
}

function timedOut({ route, budgetMs }: Submission): EngineAnswer {
  const advice = route.failover
    ? 'send Prefer: respond-async (without wait, or with a longer one) to get a 202 and a tracking id instead'
    : 'this route does not fail over (failover: false); retry later, or raise its budgetMs';
  return {
    kind: 'failed',
    code: 'upstream-timeout',
    detail: `The upstream did not answer within ${budgetMs} ms and may still process the request; ${advice}.`,
  };
}

function spentBeforeSending({ route, budgetMs }: Submission): EngineAnswer {
  return {
    kind: 'failed',
    code: 'upstream-timeout',
    detail: `The budget of ${budgetMs} ms was spent before the request could be sent (Prefer: wait=0, or a body that took that long to arrive); nothing was sent. ${route.failover ? 'Send Prefer: respond-async to get a 202 and a tracking id instead, or a longer wait.' : 'Send a longer wait, or none.'}`,
  };
}

function syncFailure(error: unknown): EngineAnswer {
  return failedBeforeSending(error)
    ? {
        kind: 'failed',
        code: 'upstream-unreachable',
        detail: `Could not reach the upstream: ${describeError(error)}. Retry later.`,
      }
    : {
        kind: 'failed',
        code: 'upstream-failed',
        detail: `The upstream connection failed mid-request: ${describeError(error)}. The upstream may have processed the request; check before retrying.`,
      };
}
