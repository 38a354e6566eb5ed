/**
 * Deciding, not acting: what becomes of an operation after (or instead of) an
 * attempt. The workers and adoption carry the decision out against the store.
 */
import type { OperationError, StoredResponse } from '../store/port.ts';
import { backoffDelay } from './backoff.ts';
import { isResendSafe } from './retry-safety.ts';
import type { RoutePolicy } from './route-policy.ts';

/** How an attempt ended, as seen from Spillway. */
export type AttemptOutcome =
  /** The upstream answered; `retryAfterMs` from its Retry-After, if any. */
  | { kind: 'response'; response: StoredResponse; retryAfterMs?: number }
  /** The request never reached the upstream (connection refused, DNS, connect timeout). */
  | { kind: 'not-sent'; message: string }
  /** The request may have reached the upstream, and no answer came (reset, timeout). */
  | { kind: 'unknown'; message: string }
  /** The upstream answered with a body larger than Spillway stores. */
  | { kind: 'too-large'; status: number; limit: number };

export type Decision =
  | { kind: 'complete'; result: StoredResponse }
  | { kind: 'retry'; nextAttemptAt: number; error: OperationError; outcomeUnknown: boolean }
  | { kind: 'fail'; error: OperationError; result: StoredResponse | null; deadLetter: boolean };

export interface AttemptContext {
  route: RoutePolicy;
  method: string;
  /** Attempts made, this one included. */
  attempts: number;
  createdAt: number;
  now: number;
  random: () => number;
}

export function decideAfterAttempt(outcome: AttemptOutcome, ctx: AttemptContext): Decision {
  const resendSafe = isResendSafe(ctx.method, ctx.route.honoursIdempotencyKey);
  switch (outcome.kind) {
    case 'response': {
      const { status } = outcome.response;
      if (status < 400) return { kind: 'complete', result: outcome.response };
      const error = {
        code: 'upstream-status',
        message: `The upstream answered ${status}.`,
        upstreamStatus: status,
      };
      // A failover status says "not processed, come back later": always safe to resend.
      if (ctx.route.failoverStatuses.has(status))
        return retryOrExhaust(ctx, error, false, outcome.retryAfterMs);
      // Any other 5xx was processed to some unknown extent: resend only when that is safe.
      if (status >= 500 && resendSafe) return retryOrExhaust(ctx, error, false, outcome.retryAfterMs);
      // The upstream's final answer (4xx, or an unsafe-to-repeat 5xx): keep it as the result.
      return { kind: 'fail', error, result: outcome.response, deadLetter: false };
    }
    case 'not-sent':
      return retryOrExhaust(ctx, { code: 'upstream-unreachable', message: outcome.message }, false);
    case 'unknown':
      if (!resendSafe) return outcomeUnknown(outcome.message);
      return retryOrExhaust(ctx, { code: 'upstream-failed', message: outcome.message }, true);
    case 'too-large':
      return {
        kind: 'fail',
        error: {
          code: 'result-too-large',
          message: `The upstream answered ${outcome.status} with a body over the ${outcome.limit}-byte result limit (maxResultBytes).`,
          upstreamStatus: outcome.status,
        },
        result: null,
        deadLetter: true,
      };
  }
}

/** Checked before a replay is sent: undefined means "go ahead". */
export function decideBeforeAttempt(
  op: { method: string; outcomeUnknown: boolean; createdAt: number },
  route: RoutePolicy,
  now: number,
): Decision | undefined {
  if (op.outcomeUnknown && !isResendSafe(op.method, route.honoursIdempotencyKey)) {
    return outcomeUnknown('An earlier attempt may have reached the upstream, and its answer was lost.');
  }
  if (now - op.createdAt > route.maxAgeMs) return maxAgeExceeded(route);
  return undefined;
}

function retryOrExhaust(
  ctx: AttemptContext,
  error: OperationError,
  outcomeUnknown: boolean,
  retryAfterMs?: number,
): Decision {
  const { route } = ctx;
  if (ctx.attempts >= route.maxAttempts) {
    return {
      kind: 'fail',
      error: {
        ...error,
        code: 'attempts-exhausted',
        message: `Gave up after ${ctx.attempts} attempts (maxAttempts ${route.maxAttempts}). Last: ${error.message}`,
      },
      result: null,
      deadLetter: true,
    };
  }
  const expiresAt = ctx.createdAt + route.maxAgeMs;
  if (ctx.now >= expiresAt) return maxAgeExceeded(route, error);
  // An upstream Retry-After is honoured as given, but the last attempt happens no later than maxAgeMs.
  const delay = retryAfterMs ?? backoffDelay(route.backoff, ctx.attempts, ctx.random);
  return { kind: 'retry', nextAttemptAt: Math.min(ctx.now + delay, expiresAt), error, outcomeUnknown };
}

function outcomeUnknown(message: string): Decision {
  return {
    kind: 'fail',
    error: {
      code: 'outcome-unknown',
      message: `${message} The method is not idempotent and the route does not declare honoursIdempotencyKey, so Spillway will not resend it. Ask the upstream whether it took effect; only if it did not, send the request again (an operator can also redrive it on the admin port).`,
    },
    result: null,
    deadLetter: true,
  };
}

function maxAgeExceeded(route: RoutePolicy, last?: OperationError): Decision {
  return {
    kind: 'fail',
    error: {
      code: 'max-age-exceeded',
      message: `The operation is older than maxAgeMs (${route.maxAgeMs}).${last ? ` Last: ${last.message}` : ''}`,
      ...(last?.upstreamStatus === undefined ? {} : { upstreamStatus: last.upstreamStatus }),
    },
    result: null,
    deadLetter: true,
  };
}
