/**
 * What an attempt on an operation came to, told on the lifecycle event stream:
 * `attempt:finished`, then what the recorded decision means for the operation
 * (retry scheduled, succeeded, failed, dead-lettered). Shared by adoption and
 * the replay workers, so both tell it the same way.
 */
import { type AttemptResult, type LifecycleEvents, traceIdOf } from '../events/lifecycle.ts';
import type { AttemptOutcome, Decision } from '../policy/attempt-decision.ts';
import type { Operation } from '../store/port.ts';

export interface AttemptFacts {
  /** This attempt's number, 1-based. */
  attempt: number;
  kind: 'replay' | 'adopted';
  startedAt: number;
}

/** The facts of an operation's events. */
export const operationFacts = (op: Operation, at: number) => ({
  at,
  operationId: op.id,
  route: op.route,
  traceId: traceIdOf(op.traceparent),
});

export function attemptStarted(events: LifecycleEvents, op: Operation, facts: AttemptFacts): void {
  events.emit({
    type: 'attempt:started',
    ...operationFacts(op, facts.startedAt),
    attempt: facts.attempt,
    kind: facts.kind,
  });
}

/**
 * The attempt is over. `decision` is what was recorded (`held`: the lease was
 * still ours, so it was), or null when shutdown abandoned the attempt.
 */
export function attemptFinished(
  events: LifecycleEvents,
  op: Operation,
  facts: AttemptFacts,
  decision: Decision | null,
  held: boolean,
  now: number,
): void {
  const outcome = attemptResultOf(decision, held);
  const error = decision && decision.kind !== 'complete' ? decision.error : null;
  events.emit({
    type: 'attempt:finished',
    ...operationFacts(op, now),
    attempt: facts.attempt,
    kind: facts.kind,
    outcome,
    durationMs: now - facts.startedAt,
    upstreamStatus: decision?.kind === 'complete' ? decision.result.status : (error?.upstreamStatus ?? null),
    errorCode: error?.code ?? null,
  });
  if (decision && held) decided(events, op, decision, facts.attempt, now);
}

/** What a recorded decision means for the operation; also for one refused before any attempt. */
export function decided(
  events: LifecycleEvents,
  op: Operation,
  decision: Decision,
  attempts: number,
  now: number,
): void {
  const facts = operationFacts(op, now);
  switch (decision.kind) {
    case 'complete':
      events.emit({
        type: 'operation:succeeded',
        ...facts,
        attempts,
        upstreamStatus: decision.result.status,
      });
      return;
    case 'retry':
      events.emit({
        type: 'operation:retry-scheduled',
        ...facts,
        attempt: attempts,
        nextAttemptAt: decision.nextAttemptAt,
        errorCode: decision.error.code,
      });
      return;
    case 'fail':
      if (decision.deadLetter) {
        events.emit({
          type: 'operation:dead-lettered',
          ...facts,
          attempts,
          errorCode: decision.error.code,
          message: decision.error.message,
        });
      } else {
        events.emit({
          type: 'operation:failed',
          ...facts,
          attempts,
          errorCode: decision.error.code,
          upstreamStatus: decision.error.upstreamStatus ?? null,
        });
      }
  }
}

/** What an attempt came to: the decision recorded, or null when shutdown abandoned it; `held` false: the lease was lost. */
export function attemptResultOf(decision: Decision | null, held: boolean): AttemptResult {
  if (decision === null) return 'abandoned';
  if (!held) return 'lease-lost';
  if (decision.kind === 'complete') return 'succeeded';
  if (decision.kind === 'retry') return 'retry';
  return decision.deadLetter ? 'dead-lettered' : 'failed';
}

/**
 * A replay probe the upstream refused unprocessed (not sent, or a failover
 * status): its lease was handed back (`held`: still ours) without counting it.
 */
export function probeRefused(
  events: LifecycleEvents,
  op: Operation,
  facts: AttemptFacts,
  outcome: AttemptOutcome,
  held: boolean,
  now: number,
): void {
  events.emit({
    type: 'attempt:finished',
    ...operationFacts(op, now),
    attempt: facts.attempt,
    kind: facts.kind,
    outcome: held ? 'probe-refused' : 'lease-lost',
    durationMs: now - facts.startedAt,
    upstreamStatus: outcome.kind === 'response' ? outcome.response.status : null,
    errorCode: outcome.kind === 'response' ? 'upstream-status' : 'upstream-unreachable',
  });
}
