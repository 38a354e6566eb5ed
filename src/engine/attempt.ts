/**
 * One attempt at the upstream, start to finish, and the recording of its
 * outcome. Used by adoption (the sync attempt carried on past the budget) and
 * by the replay workers, so both judge outcomes the same way.
 */
import type { Clock } from '../clock.ts';
import { type AttemptOutcome, type Decision, decideAfterAttempt } from '../policy/attempt-decision.ts';
import { parseRetryAfter } from '../policy/retry-after.ts';
import type { RoutePolicy } from '../policy/route-policy.ts';
import type { Operation, OperationStore } from '../store/port.ts';
import { readBounded } from './body.ts';
import { endToEnd } from './http-fields.ts';
import { describeError, failedBeforeSending, type UpstreamResponse } from './upstream.ts';

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
 * Decides what the outcome means for the operation and writes it, fenced by the
 * lease; `held` is false when the lease was lost and nothing was written.
 */
export async function recordOutcome(
  store: OperationStore,
  op: Operation,
  route: RoutePolicy,
  owner: string,
  outcome: AttemptOutcome,
  clock: Clock,
  random: () => number = Math.random,
): Promise<{ decision: Decision; held: boolean }> {
  const decision = decideAfterAttempt(outcome, {
    route,
    method: op.request.method,
    attempts: op.attempts + 1,
    createdAt: op.createdAt,
    now: clock.now(),
    random,
  });
  const held = await applyDecision(store, op.id, owner, decision, true);
  return { decision, held };
}

export async function applyDecision(
  store: OperationStore,
  id: string,
  owner: string,
  decision: Decision,
  countsAsAttempt: boolean,
): Promise<boolean> {
  switch (decision.kind) {
    case 'complete':
      return store.complete(id, owner, decision.result);
    case 'retry':
      return store.retry(id, owner, decision);
    case 'fail':
      return store.fail(id, owner, { ...decision, countsAsAttempt });
  }
}

export interface AttemptDeadline {
  signal: AbortSignal;
  /** The attempt is over: stop the timer. */
  clear(): void;
  /** Abandon the attempt now (shutdown): the upstream call is aborted. */
  abort(reason: Error): void;
}

/** An attempt's time limit on the given clock. */
export function attemptDeadline(clock: Clock, ms: number): AttemptDeadline {
  const controller = new AbortController();
  const timer = clock.setTimeout(() => controller.abort(new AttemptTimeoutError(ms)), ms);
  timer.unref?.();
  const clear = () => clock.clearTimeout(timer);
  return {
    signal: controller.signal,
    clear,
    abort: (reason) => {
      clear();
      controller.abort(reason);
    },
  };
}

export class AttemptTimeoutError extends Error {
  override name = 'AttemptTimeoutError';
  readonly code = 'SPILLWAY_ATTEMPT_TIMEOUT';
  constructor(ms: number) {
    super(`The attempt took longer than attemptTimeoutMs (${ms} ms).`);
  }
}
