/**
 * Row mapping the two adapters share for the operator verbs (migration 010):
 * the columns are the same, only booleans and JSON come back typed
 * differently, so each adapter passes its own reading of those two
 * (dialect-values.ts).
 */
import type { DialectValues } from './dialect-values.ts';
import type {
  AttemptRecord,
  AttemptRecordOutcome,
  OperationError,
  OperationStatus,
  OperationSummary,
} from './port.ts';

type Row = Record<string, unknown>;

export function toSummary(row: Row, dialect: DialectValues): OperationSummary {
  return {
    id: String(row.id),
    route: String(row.route),
    method: String(row.method),
    path: String(row.path),
    status: row.status as OperationStatus,
    attempts: Number(row.attempts),
    nextAttemptAt: Number(row.next_attempt_at),
    leased: row.lease_owner !== null,
    outcomeUnknown: dialect.flag(row.outcome_unknown),
    error: row.error === null ? null : dialect.json<OperationError>(row.error),
    deadLetteredAt: row.dead_lettered_at === null ? null : Number(row.dead_lettered_at),
    failoverReason: row.failover_reason === null ? null : String(row.failover_reason),
    orderingKey: row.ordering_key === null ? null : String(row.ordering_key),
    keyBlocked: dialect.flag(row.key_blocked),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export function toAttemptRecord(row: Row): AttemptRecord {
  return {
    attempt: Number(row.attempt),
    startedAt: Number(row.started_at),
    durationMs: Number(row.duration_ms),
    outcome: row.outcome as AttemptRecordOutcome,
    upstreamStatus: row.upstream_status === null ? null : Number(row.upstream_status),
    error: row.error === null ? null : String(row.error),
  };
}
