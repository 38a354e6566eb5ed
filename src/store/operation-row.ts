/**
 * The `operations`, `operation_events` and `idempotency_keys` rows as both
 * adapters read them: the columns are the same, so only the dialect's reading
 * of booleans and JSON (dialect-values.ts) differs. Stored headers and bodies
 * are opened through the store's sealer (encryption at rest).
 */
import type { DialectValues } from './dialect-values.ts';
import type {
  IdempotencyRecord,
  LeasedOperation,
  NewOperation,
  Operation,
  OperationError,
  OperationEvent,
  OperationStatus,
} from './port.ts';
import { type MessageSealer, messageRow } from './sealed-values.ts';

type Row = Record<string, unknown>;

/** A text column that may be NULL (or absent from an older row's select). */
const textOrNull = (value: unknown): string | null => (value == null ? null : String(value));
const numberOrNull = (value: unknown): number | null => (value == null ? null : Number(value));

export function toOperation(row: Row, sealer: MessageSealer, dialect: DialectValues): Operation {
  const id = String(row.id);
  return {
    id,
    route: String(row.route),
    request: {
      method: String(row.method),
      path: String(row.path),
      query: String(row.query),
      ...sealer.open(
        dialect.json(row.request_headers),
        row.request_body as Uint8Array,
        messageRow.request(id),
      ),
    },
    status: row.status as OperationStatus,
    attempts: Number(row.attempts),
    nextAttemptAt: Number(row.next_attempt_at),
    leaseOwner: textOrNull(row.lease_owner),
    leaseExpiresAt: numberOrNull(row.lease_expires_at),
    outcomeUnknown: dialect.flag(row.outcome_unknown),
    result:
      row.result_status === null
        ? null
        : {
            status: Number(row.result_status),
            ...sealer.open(
              dialect.json(row.result_headers),
              row.result_body as Uint8Array,
              messageRow.result(id),
            ),
          },
    error: row.error === null ? null : dialect.json<OperationError>(row.error),
    deadLetteredAt: numberOrNull(row.dead_lettered_at),
    priority: Number(row.priority),
    idempotencyKey: textOrNull(row.idempotency_key),
    tenant: textOrNull(row.tenant),
    callbackUrl: textOrNull(row.callback_url),
    traceparent: textOrNull(row.traceparent),
    tracestate: textOrNull(row.tracestate),
    failoverReason: textOrNull(row.failover_reason),
    redrivenAt: numberOrNull(row.redriven_at),
    attemptsAtRedrive: Number(row.attempts_at_redrive ?? 0),
    discardedAt: numberOrNull(row.discarded_at),
    orderingKey: textOrNull(row.ordering_key),
    keyBlocked: dialect.flag(row.key_blocked),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** An operation row returned by a lease, with the lease's owner, expiry and token. */
export function toLeasedOperation(row: Row, sealer: MessageSealer, dialect: DialectValues): LeasedOperation {
  return {
    ...toOperation(row, sealer, dialect),
    leaseOwner: String(row.lease_owner),
    leaseExpiresAt: Number(row.lease_expires_at),
    leaseToken: String(row.lease_token),
  };
}

/** An `operation_events` row of operation `operationId`. */
export function toOperationEvent(operationId: string, row: Row, dialect: DialectValues): OperationEvent {
  return {
    operationId,
    seq: Number(row.seq),
    status: row.status as OperationStatus,
    at: Number(row.at),
    attempts: Number(row.attempts),
    error: row.error === null ? null : dialect.json<OperationError>(row.error),
  };
}

/** An `idempotency_keys` row kept under `key`. */
export function toIdempotencyRecord(
  row: Row,
  key: string,
  sealer: MessageSealer,
  dialect: DialectValues,
): IdempotencyRecord {
  const base = { fingerprint: String(row.fingerprint), expiresAt: Number(row.expires_at) };
  switch (row.state) {
    case 'completed':
      return {
        ...base,
        state: 'completed',
        response: {
          status: Number(row.response_status),
          ...sealer.open(
            dialect.json(row.response_headers),
            row.response_body as Uint8Array,
            messageRow.idempotentAnswer(key),
          ),
        },
      };
    case 'accepted':
      return { ...base, state: 'accepted', operationId: String(row.operation_id) };
    default:
      return { ...base, state: 'in-progress', lockedUntil: Number(row.locked_until) };
  }
}

/**
 * The operation a capture writes: `NotStarted`, or `Running` under the lease
 * of an adopted attempt. Its place in an ordering key's queue (`keyBlocked`)
 * is the INSERT's to decide; the adapter reads it back.
 */
export function capturedOperation(op: NewOperation, now: number): Operation {
  return {
    id: op.id,
    route: op.route,
    request: op.request,
    status: op.lease ? 'Running' : 'NotStarted',
    attempts: op.attempts,
    nextAttemptAt: op.nextAttemptAt,
    leaseOwner: op.lease?.owner ?? null,
    leaseExpiresAt: op.lease?.expiresAt ?? null,
    outcomeUnknown: op.outcomeUnknown,
    result: null,
    error: null,
    deadLetteredAt: null,
    priority: op.priority,
    idempotencyKey: op.idempotencyKey,
    tenant: op.tenant,
    callbackUrl: op.callbackUrl ?? null,
    traceparent: op.traceparent,
    tracestate: op.tracestate,
    failoverReason: op.failoverReason ?? null,
    redrivenAt: null,
    attemptsAtRedrive: 0,
    discardedAt: null,
    orderingKey: op.orderingKey ?? null,
    keyBlocked: false,
    createdAt: now,
    updatedAt: now,
  };
}

/** Priority, then due time: the order the lease takes them in (BRIEF.md §5, docs/policy.md). */
export const replayOrder = (a: Operation, b: Operation): number =>
  b.priority - a.priority || a.nextAttemptAt - b.nextAttemptAt || (a.id < b.id ? -1 : 1);
