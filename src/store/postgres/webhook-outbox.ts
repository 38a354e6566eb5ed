/**
 * The PostgreSQL adapter's webhook outbox statements (migration 006), kept
 * apart from the operation verbs. The outbox rows are written by the trigger
 * on the terminal event, inside the commit of the status change; these
 * statements lease them, record attempts and read them back.
 *
 * Leasing is `FOR UPDATE SKIP LOCKED` in one statement, so gateways and
 * workers sharing the schema never hold one delivery at once, and a delivery
 * recorded `delivered` is never leased again: each webhook is sent by one
 * process at a time, and once it succeeded, never again. Recording an attempt
 * is one statement too (data-modifying CTEs): the attempt, the delivery's new
 * state and, on a 410, the disabled endpoint commit together, fenced by the
 * lease's token.
 *
 * A 410 disables the endpoint's other pending deliveries where they are, a
 * leased one keeping its lease owner and expiry: its holder's record is then
 * refused (no longer pending), and an operator's re-send of it waits for that
 * lease to run out, so one delivery is never held by two processes at once.
 */
import { postgresValues } from '../dialect-values.ts';
import type {
  LeasedWebhookDelivery,
  WebhookAttemptRecord,
  WebhookDelivery,
  WebhookDeliveryKey,
  WebhookDeliveryQuery,
  WebhookLeaseRequest,
  WebhookResend,
} from '../port.ts';
import { toLeasedWebhookDelivery as leasedDelivery, toWebhookDelivery } from '../webhook-rows.ts';

export { toDisabledWebhookEndpoint, toWebhookDelivery, withAttemptLogs } from '../webhook-rows.ts';

type Row = Record<string, unknown>;

const DELIVERY_COLUMNS = `operation_id, seq, endpoint, url, state, attempts, next_attempt_at, last_error,
  created_at, updated_at`;

// While leased, next_attempt_at is when the lease runs out: one due-time index finds free and expired alike.
export const LEASE_WEBHOOKS = `WITH due AS (
    SELECT operation_id, seq, endpoint FROM webhook_deliveries
    WHERE state = 'pending' AND next_attempt_at <= $2 AND endpoint = ANY ($5::text[])
    ORDER BY next_attempt_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
  )
  UPDATE webhook_deliveries AS d SET lease_owner = $1, next_attempt_at = $3, lease_token = gen_random_uuid()::text,
    attempts = d.attempts + (d.lease_owner IS NOT NULL)::int, updated_at = $2
  FROM due
  JOIN operation_events AS e ON e.operation_id = due.operation_id AND e.seq = due.seq
  JOIN operations AS o ON o.id = due.operation_id
  WHERE d.operation_id = due.operation_id AND d.seq = due.seq AND d.endpoint = due.endpoint
  RETURNING ${DELIVERY_COLUMNS.replace(/(\w+)/g, 'd.$1')}, d.lease_token,
    e.status AS event_status, e.at AS event_at, e.attempts AS event_attempts, e.error AS event_error,
    o.traceparent, o.tracestate`;

export const leaseWebhookValues = (
  { owner, limit, leaseMs, endpoints }: WebhookLeaseRequest,
  now: number,
): unknown[] => [owner, now, now + leaseMs, limit, endpoints];

// Answers one row when the caller held the lease (its token; so it wrote the attempt), none otherwise.
export const RECORD_WEBHOOK_ATTEMPT = `WITH d AS (
    UPDATE webhook_deliveries SET state = $5, attempts = attempts + 1, next_attempt_at = $6::bigint,
      lease_owner = NULL, lease_token = NULL, last_error = $7, updated_at = $4
    WHERE operation_id = $1 AND seq = $2 AND endpoint = $3 AND lease_token = $8 AND state = 'pending'
    RETURNING operation_id, seq, endpoint, url, attempts
  ), attempt AS (
    INSERT INTO webhook_attempts (operation_id, seq, endpoint, attempt, at, status, error, latency_ms,
      response_snippet)
    SELECT operation_id, seq, endpoint, attempts, $9::bigint, $10::integer, $11::text, $12::integer, $13::text
    FROM d
  ), disabled AS (
    INSERT INTO webhook_endpoints (endpoint, url, disabled_at, reason)
    SELECT endpoint, url, $4, coalesce($7, 'The receiver answered 410 Gone.') FROM d WHERE $14::boolean
    ON CONFLICT DO NOTHING
  ), others AS (
    UPDATE webhook_deliveries AS o SET state = 'disabled', last_error = $7, updated_at = $4
    FROM d
    WHERE $14::boolean AND o.endpoint = d.endpoint AND o.url = d.url AND o.state = 'pending'
      AND (o.operation_id, o.seq) <> (d.operation_id, d.seq)
  )
  SELECT 1 FROM d`;

export const recordWebhookValues = (
  key: WebhookDeliveryKey,
  token: string,
  record: WebhookAttemptRecord,
  now: number,
): unknown[] => [
  key.operationId,
  key.seq,
  key.endpoint,
  now,
  record.next.state,
  record.next.state === 'pending' ? record.next.nextAttemptAt : now,
  record.lastError,
  token,
  record.attempt.at,
  record.attempt.status,
  record.attempt.error,
  record.attempt.latencyMs,
  record.attempt.responseSnippet,
  record.disableEndpoint,
];

export const RELEASE_WEBHOOK = `UPDATE webhook_deliveries SET lease_owner = NULL, lease_token = NULL,
    next_attempt_at = $4, updated_at = $4
  WHERE operation_id = $1 AND seq = $2 AND endpoint = $3 AND lease_token = $5 AND state = 'pending'`;

export const releaseWebhookValues = (key: WebhookDeliveryKey, token: string, now: number): unknown[] => [
  key.operationId,
  key.seq,
  key.endpoint,
  now,
  token,
];

export const WEBHOOK_DELIVERIES = `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries
  WHERE operation_id = $1 ORDER BY seq, endpoint`;

export const WEBHOOK_ATTEMPTS = `SELECT seq, endpoint, attempt, at, status, error, latency_ms, response_snippet
  FROM webhook_attempts WHERE operation_id = $1 ORDER BY seq, endpoint, attempt`;

/**
 * Deliveries in a state, newest first, a page after the cursor: a range of
 * migration 026's webhook_deliveries_by_state, or of _by_endpoint with an
 * endpoint (the planner picks it by the equalities it is given).
 */
export function listWebhookStatement(query: WebhookDeliveryQuery): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (value: unknown, type: string) => {
    values.push(value);
    return `$${values.length}::${type}`;
  };
  const where = [`state = ${param(query.state, 'text')}`];
  if (query.endpoint !== undefined) where.push(`endpoint = ${param(query.endpoint, 'text')}`);
  if (query.after) {
    const { createdAt, operationId, seq, endpoint } = query.after;
    where.push(`(created_at, operation_id, seq, endpoint) < (${param(createdAt, 'bigint')}, ${param(operationId, 'text')},
      ${param(seq, 'integer')}, ${param(endpoint, 'text')})`);
  }
  const text = `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE ${where.join(' AND ')}
    ORDER BY created_at DESC, operation_id DESC, seq DESC, endpoint DESC LIMIT ${param(query.limit, 'integer')}`;
  return { text, values };
}

export const NEXT_WEBHOOK_DUE = `SELECT min(next_attempt_at) AS at FROM webhook_deliveries
  WHERE state = 'pending' AND endpoint = ANY ($1::text[])`;

export const DISABLED_WEBHOOK_ENDPOINTS = `SELECT endpoint, url, disabled_at, reason FROM webhook_endpoints
  ORDER BY disabled_at, endpoint, url`;

export const ENABLE_WEBHOOK_ENDPOINT = `DELETE FROM webhook_endpoints WHERE endpoint = $1
  RETURNING endpoint, url, disabled_at, reason`;

// One statement: the row is locked as it is read, so the state it answers with is the one it changed, or
// the one that refused it, whatever leases and records run beside it. A lease still held (the delivery was
// disabled mid-attempt) is waited out; an expired one is counted when next leased.
export const RESEND_WEBHOOK = `WITH current AS (
    SELECT d.operation_id, d.seq, d.endpoint, d.state AS previous_state, coalesce($4, d.url) AS target,
      EXISTS (SELECT 1 FROM webhook_endpoints w
        WHERE w.endpoint = d.endpoint AND w.url = coalesce($4, d.url)) AS endpoint_disabled
    FROM webhook_deliveries AS d
    WHERE d.operation_id = $1 AND d.seq = $2 AND d.endpoint = $3
    FOR UPDATE
  ), resent AS (
    UPDATE webhook_deliveries AS d SET state = 'pending', url = c.target,
      next_attempt_at = CASE WHEN d.lease_owner IS NULL THEN $5 ELSE greatest(d.next_attempt_at, $5) END,
      updated_at = $5
    FROM current AS c
    WHERE d.operation_id = c.operation_id AND d.seq = c.seq AND d.endpoint = c.endpoint
      AND d.state IN ('failed', 'disabled') AND NOT c.endpoint_disabled
    RETURNING ${DELIVERY_COLUMNS.replace(/(\w+)/g, 'd.$1')}
  )
  SELECT c.previous_state, c.endpoint_disabled, r.* FROM current AS c LEFT JOIN resent AS r ON true`;

export const resendWebhookValues = (
  key: WebhookDeliveryKey,
  url: string | undefined,
  now: number,
): unknown[] => [key.operationId, key.seq, key.endpoint, url ?? null, now];

/** What RESEND_WEBHOOK's row (or its absence) means. */
export function toWebhookResend(row: Row | undefined): WebhookResend {
  if (!row) return { outcome: 'unknown' };
  const previous = row.previous_state as WebhookDelivery['state'];
  if (row.state !== null && row.state !== undefined && (previous === 'failed' || previous === 'disabled')) {
    return { outcome: 'resent', previousState: previous, delivery: toWebhookDelivery(row) };
  }
  if (previous === 'pending' || previous === 'delivered') return { outcome: 'refused', reason: previous };
  return { outcome: 'refused', reason: 'endpoint-disabled' };
}

/** A leased delivery as the lease's RETURNING gives it. */
export const toLeasedWebhookDelivery = (row: Row): LeasedWebhookDelivery =>
  leasedDelivery(row, postgresValues);
