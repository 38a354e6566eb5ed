/**
 * One attempt at the upstream, start to finish, and the recording of its
 * outcome. Used by adoption (the sync attempt carried on past the budget) and
 * by the replay workers, so both judge outcomes the same way.
 */
import type { Clock, Timer } from '../clock.ts';
import { type AttemptOutcome, type Decision, decideAfterAttempt } from '../policy/attempt-decision.ts';
import { parseRetryAfter } from '../policy/retry-after.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { AttemptRecordInput, Operation, OperationQueue } from '../store/port.ts';
import { HookedAbortController } from './abort-hook.ts';
import { readBounded } from './body.ts';
import { finalWrite } from './final-write.ts';
import { endToEnd } from './http-fields.ts';
import { describeError, failedBeforeSending, type SilenceWatch, type UpstreamResponse } from './upstream.ts';

/** Turns a pending upstream call into an outcome, reading the body up to `maxResultBytes`. */
export async function outcomeOf(
  pending: Promise<UpstreamResponse>,
  maxResultBytes: number,
  now: number,
): Promise<AttemptOutcome> {
  let response: UpstreamResponse;
  try {
    response = await pending;
  } catch (error) {
    const message = `Could not complete the attempt: ${describeError(error)}.`;
    return failedBeforeSending(error) ? { kind: 'not-sent', message } : { kind: 'unknown', message };
  }
  let body: Uint8Array | 'too-large';
  try {
    body = await readBounded(response.body, maxResultBytes);
  } catch (error) {
    // The upstream started answering, then the answer broke off: it did get the request.
    return { kind: 'unknown', message: `The response broke off: ${describeError(error)}.` };
  }
  if (body === 'too-large') return { kind: 'too-large', status: response.statusCode, limit: maxResultBytes };
  const retryAfter = response.headers['retry-after'];
  const retryAfterMs = parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, now);
  return {
    kind: 'response',
    response: { status: response.statusCode, headers: endToEnd(response.headers), body },
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/**
 * Decides what the outcome of the attempt started at `startedAt` means for the
 * operation and writes it, with the attempt's record, fenced by the lease's token;
 * `held` is false when the lease was lost and nothing was written.
 */
export async function recordOutcome(
  store: OperationQueue,
  op: Operation,
  route: RoutePolicy,
  token: string,
  outcome: AttemptOutcome,
  clock: Clock,
  startedAt: number,
  random: () => number = Math.random,
): Promise<{ decision: Decision; held: boolean }> {
  const now = clock.now();
  const decision = decideAfterAttempt(outcome, {
    route,
    method: op.request.method,
    ...retryBudgetOf(op),
    now,
    random,
  });
  const held = await finalWrite(clock, `The attempt's outcome (${decision.kind})`, () =>
    applyDecision(store, op.id, token, decision, attemptRecordOf(outcome, decision, startedAt, now)),
  );
  return { decision, held };
}

/**
 * What the retry budget (maxAttempts, maxAgeMs) counts, this attempt included:
 * a redrive starts it afresh (docs/operations.md).
 */
export function retryBudgetOf(op: Operation): { attempts: number; createdAt: number } {
  return { attempts: op.attempts - op.attemptsAtRedrive + 1, createdAt: op.redrivenAt ?? op.createdAt };
}

/**
 * Writes a decision. With `attempt` (an attempt was made) its record goes in
 * the same commit; without, the decision was taken before sending, and no
 * attempt is counted.
 */
export async function applyDecision(
  store: OperationQueue,
  id: string,
  token: string,
  decision: Decision,
  attempt?: AttemptRecordInput,
): Promise<boolean> {
  switch (decision.kind) {
    case 'complete':
      return store.complete(id, token, decision.result, attempt);
    case 'retry':
      return store.retry(id, token, decision, attempt);
    case 'fail':
      return store.fail(id, token, { ...decision, countsAsAttempt: attempt !== undefined }, attempt);
  }
}

/** The attempt history's record of one attempt. */
export function attemptRecordOf(
  outcome: AttemptOutcome,
  decision: Decision,
  startedAt: number,
  now: number,
): AttemptRecordInput {
  const upstreamStatus =
    outcome.kind === 'response'
      ? outcome.response.status
      : outcome.kind === 'too-large'
        ? outcome.status
        : null;
  const error =
    outcome.kind === 'not-sent' || outcome.kind === 'unknown'
      ? outcome.message
      : decision.kind === 'complete'
        ? null
        : decision.error.message;
  const kind = { complete: 'succeeded', retry: 'retry', fail: 'failed' } as const;
  return { startedAt, durationMs: now - startedAt, outcome: kind[decision.kind], upstreamStatus, error };
}

/** The record of an attempt abandoned at shutdown, its request already out. */
export function interruptedAttempt(startedAt: number, now: number): AttemptRecordInput {
  return {
    startedAt,
    durationMs: now - startedAt,
    outcome: 'interrupted',
    upstreamStatus: null,
    error: 'Spillway shut down mid-attempt; the upstream may have processed the request.',
  };
}

export interface AttemptDeadline extends SilenceWatch {
  signal: AbortSignal;
  /** The attempt is over: stop the timer. */
  clear(): void;
  /** Abandon the attempt now (shutdown): the upstream call is aborted. */
  abort(reason: Error): void;
}

/**
 * An attempt's time limit on the given clock: `ms` from the start, the
 * whole attempt, body included (what adoption and replays need: they store
 * the body, so an attempt that never ends must end). A sync answer passed
 * on to its client (failover-engine.ts) turns it, past its head, into a limit
 * on how long nothing moves instead: `heard()` counts `ms` afresh from each
 * chunk and from each time a reader that was behind (`held()`) takes more.
 * A slow client that keeps reading is never cut; one that stops for `ms` is.
 */
export function attemptDeadline(clock: Clock, ms: number): AttemptDeadline {
  return new Deadline(clock, ms);
}

/** One timer for the whole attempt, moved (not replaced) while the body streams. */
class Deadline implements AttemptDeadline {
  // Its signal takes the upstream call's one listener as a hook (abort-hook.ts).
  readonly #controller = new HookedAbortController();
  readonly signal = this.#controller.signal;
  readonly #clock: Clock;
  readonly #ms: number;
  #timer: Timer;
  /** Counting the upstream's silence (since `heard()`), not the attempt's total time. */
  #silence = false;
  /** Spillway holds the upstream back (its reader is behind): a silence now is the reader's. */
  #held = false;
  /** Cleared: the attempt is over, the timer is never set again. */
  #over = false;
  readonly #fire = () => {
    const cut = this.#held ? 'reader' : this.#silence ? 'silence' : 'attempt';
    this.#controller.abort(new AttemptTimeoutError(this.#ms, cut));
  };
  // A property, not a method: it is handed on as a callback (whenBodyCloses).
  readonly clear = () => {
    this.#over = true;
    this.#clock.clearTimeout(this.#timer);
  };

  constructor(clock: Clock, ms: number) {
    this.#clock = clock;
    this.#ms = ms;
    this.#timer = clock.setTimeout(this.#fire, ms);
    this.#timer.unref?.();
  }

  abort(reason: Error): void {
    this.clear();
    this.#controller.abort(reason);
  }

  heard(): void {
    if (this.#over) return;
    this.#silence = true;
    this.#held = false;
    const timer = this.#timer;
    if (timer.refresh) {
      timer.refresh();
      return;
    }
    // A clock whose timers cannot be moved: a new one, unless the attempt is already over.
    if (this.signal.aborted) return;
    this.#clock.clearTimeout(timer);
    this.#timer = this.#clock.setTimeout(this.#fire, this.#ms);
    this.#timer.unref?.();
  }

  held(): void {
    this.#held = true;
  }
}

export class AttemptTimeoutError extends Error {
  override name = 'AttemptTimeoutError';
  readonly code = 'SPILLWAY_ATTEMPT_TIMEOUT';
  /**
   * What ran out: the attempt's length, or, in a streaming sync answer, the upstream's silence or
   * the time its reader (the client) took nothing.
   */
  constructor(ms: number, cut: 'attempt' | 'silence' | 'reader' = 'attempt') {
    super(
      cut === 'silence'
        ? `The upstream sent nothing for attemptTimeoutMs (${ms} ms) while its answer streamed.`
        : cut === 'reader'
          ? `The client read nothing for attemptTimeoutMs (${ms} ms) while its answer streamed.`
          : `The attempt took longer than attemptTimeoutMs (${ms} ms).`,
    );
  }
}
