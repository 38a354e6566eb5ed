/**
 * The webhook outbox rows (migration 006) as both adapters read them: the
 * same columns in both, only the event's JSON error read per dialect
 * (dialect-values.ts).
 */
import type { DialectValues } from './dialect-values.ts';
import type {
  DisabledWebhookEndpoint,
  LeasedWebhookDelivery,
  OperationError,
  OperationStatus,
  WebhookAttempt,
  WebhookDelivery,
} from './port.ts';

type Row = Record<string, unknown>;

export function toDisabledWebhookEndpoint(row: Row): DisabledWebhookEndpoint {
  return {
    endpoint: String(row.endpoint),
    url: String(row.url),
    disabledAt: Number(row.disabled_at),
    reason: String(row.reason),
  };
}

export function toWebhookDelivery(row: Row): WebhookDelivery {
  return {
    operationId: String(row.operation_id),
    seq: Number(row.seq),
    endpoint: String(row.endpoint),
    url: String(row.url),
    state: row.state as WebhookDelivery['state'],
    attempts: Number(row.attempts),
    nextAttemptAt: Number(row.next_attempt_at),
    lastError: row.last_error === null ? null : String(row.last_error),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** A leased delivery with its event and trace context (the `event_*` columns of the lease's select). */
export function toLeasedWebhookDelivery(row: Row, dialect: DialectValues): LeasedWebhookDelivery {
  const delivery = toWebhookDelivery(row);
  return {
    ...delivery,
    leaseToken: String(row.lease_token),
    event: {
      operationId: delivery.operationId,
      seq: delivery.seq,
      status: row.event_status as OperationStatus,
      at: Number(row.event_at),
      attempts: Number(row.event_attempts),
      error: row.event_error === null ? null : dialect.json<OperationError>(row.event_error),
    },
    traceparent: row.traceparent === null ? null : String(row.traceparent),
    tracestate: row.tracestate === null ? null : String(row.tracestate),
  };
}

/** Deliveries with their attempts, from the rows of the deliveries query and of the attempts query. */
export function withAttemptLogs(
  deliveries: Row[],
  attempts: Row[],
): Array<WebhookDelivery & { attemptLog: WebhookAttempt[] }> {
  return deliveries.map((row) => ({
    ...toWebhookDelivery(row),
    attemptLog: attempts
      .filter((a) => Number(a.seq) === Number(row.seq) && a.endpoint === row.endpoint)
      .map((a) => ({
        attempt: Number(a.attempt),
        at: Number(a.at),
        status: a.status === null ? null : Number(a.status),
        error: a.error === null ? null : String(a.error),
        latencyMs: Number(a.latency_ms),
        responseSnippet: a.response_snippet === null ? null : String(a.response_snippet),
      })),
  }));
}
