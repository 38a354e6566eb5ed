/**
 * Log lines from the lifecycle event stream: the only place operations,
 * attempts, health transitions and webhook deliveries become log lines.
 *
 * - `info`: each capture, each attempt's outcome (replayed or adopted), the
 *   operator's and clients' actions, health probes, reverts and overrides,
 *   reads answered with a stale copy or a fallback, preflights answered in the upstream's place
 * - `warn`: each dead letter, each capture refused for a full backlog, each health trip, webhooks that failed, were
 *   disabled or lost their lease
 * - `error`: failures in background work, request handlers and subscribers
 * - `debug`: the rest (attempt starts, retries scheduled, sync attempts, terminal states)
 *
 * Every operation line has `operationId`, `route`, `attempt` (attempts made so
 * far, or this attempt's number) and `traceId`; the message is the event type.
 * Events carry no bodies and no header values, so neither do the lines.
 */
import type { LifecycleEvent, LifecycleEvents } from '../events/lifecycle.ts';
import type { Logger } from './logger.ts';

type Level = 'debug' | 'info' | 'warn' | 'error';

/** Writes a line per event to `log`; returns the function that stops it. */
export function subscribeLogs(events: LifecycleEvents, log: Logger): () => void {
  return events.onAny((event) => {
    const level = levelOf(event);
    if (!log.isLevelEnabled(level)) return;
    log[level](fieldsOf(event), event.type);
  });
}

function levelOf(event: LifecycleEvent): Level {
  switch (event.type) {
    case 'operation:captured':
    case 'attempt:finished':
    case 'operation:redriven':
    case 'operation:discarded':
    case 'operation:canceled':
    case 'health:probe':
    case 'health:revert':
    case 'health:override':
    case 'answer:stale':
    case 'answer:fallback':
    case 'answer:not-captured':
      return 'info';
    case 'operation:dead-lettered':
    case 'backlog:full':
    case 'health:trip':
    case 'webhook:failed':
    case 'webhook:disabled':
    case 'webhook:lost-lease':
      return 'warn';
    case 'background:error':
    case 'request:error':
    case 'subscriber:error':
      return 'error';
    default:
      return 'debug';
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

function fieldsOf(event: LifecycleEvent): Record<string, unknown> {
  const { type, at: _at, ...rest } = event;
  const fields: Record<string, unknown> = { event: type, ...rest };
  switch (event.type) {
    case 'operation:captured':
    case 'operation:dead-lettered':
    case 'operation:succeeded':
    case 'operation:failed':
      fields.attempt = event.attempts;
      delete fields.attempts;
      break;
    case 'operation:retry-scheduled':
      fields.nextAttemptAt = iso(event.nextAttemptAt);
      break;
    case 'webhook:retry':
      if (event.nextAttemptAt !== undefined) fields.nextAttemptAt = iso(event.nextAttemptAt);
      break;
    case 'background:error':
    case 'request:error':
    case 'subscriber:error':
      delete fields.error;
      fields.err = event.error;
      break;
  }
  return fields;
}
