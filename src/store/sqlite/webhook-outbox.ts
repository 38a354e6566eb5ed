/**
 * The SQLite adapter's webhook outbox verbs (migration 006), kept apart from
 * the operation verbs. The outbox rows themselves are written by the trigger
 * on the terminal event, inside the commit of the status change; what is here
 * leases them, records attempts and reads them back.
 *
 * Every function runs inside the adapter's group-commit transaction (its
 * `#write`), so an attempt, the delivery's new state and a disabled endpoint
 * are committed together or not at all.
 *
 * A 410 disables the endpoint's other pending deliveries where they are, a
 * leased one keeping its lease owner and expiry: its holder's record is then
 * refused (no longer pending), and an operator's re-send of it waits for that
 * lease to run out, so one delivery is never held by two processes at once.
 */
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { sqliteValues } from '../dialect-values.ts';
import type {
  DisabledWebhookEndpoint,
  LeasedWebhookDelivery,
  WebhookAttempt,
  WebhookAttemptRecord,
  WebhookDelivery,
  WebhookDeliveryKey,
  WebhookDeliveryQuery,
  WebhookLeaseRequest,
  WebhookResend,
} from '../port.ts';
import {
  toWebhookDelivery as toDelivery,
  toDisabledWebhookEndpoint as toDisabledEndpoint,
  toLeasedWebhookDelivery,
  withAttemptLogs,
} from '../webhook-rows.ts';

type Row = Record<string, SQLInputValue>;

export function prepareWebhookOutbox(db: DatabaseSync) {
  const key = 'operation_id = :operation_id AND seq = :seq AND endpoint = :endpoint';
  const sql = {
    // While leased, next_attempt_at is when the lease runs out: one due-time index finds free and expired alike.
    // Each lease gets its own random token: the attempt's record and a hand-back are fenced by it.
    lease: db.prepare(`UPDATE webhook_deliveries SET lease_owner = :owner, next_attempt_at = :expires,
        lease_token = lower(hex(randomblob(16))), attempts = attempts + (lease_owner IS NOT NULL), updated_at = :now
      WHERE (operation_id, seq, endpoint) IN (
        SELECT operation_id, seq, endpoint FROM webhook_deliveries
        WHERE state = 'pending' AND next_attempt_at <= :now
          AND endpoint IN (SELECT value FROM json_each(:endpoints))
        ORDER BY next_attempt_at LIMIT :limit)
      RETURNING operation_id, seq, endpoint, lease_token`),
    leased: db.prepare(`SELECT d.*, e.status AS event_status, e.at AS event_at, e.attempts AS event_attempts,
        e.error AS event_error, o.traceparent, o.tracestate
      FROM webhook_deliveries d
      JOIN operation_events e ON e.operation_id = d.operation_id AND e.seq = d.seq
      JOIN operations o ON o.id = d.operation_id
      WHERE d.operation_id = :operation_id AND d.seq = :seq AND d.endpoint = :endpoint`),
    finish: db.prepare(`UPDATE webhook_deliveries SET state = :state, attempts = attempts + 1,
        next_attempt_at = :next_attempt_at, lease_owner = NULL, lease_token = NULL, last_error = :last_error,
        updated_at = :now
      WHERE ${key} AND lease_token = :token AND state = 'pending'
      RETURNING attempts, url`),
    attempt: db.prepare(`INSERT INTO webhook_attempts
        (operation_id, seq, endpoint, attempt, at, status, error, latency_ms, response_snippet)
      VALUES (:operation_id, :seq, :endpoint, :attempt, :at, :status, :error, :latency_ms, :response_snippet)`),
    disable: db.prepare(`INSERT OR IGNORE INTO webhook_endpoints (endpoint, url, disabled_at, reason)
      VALUES (:endpoint, :url, :now, :reason)`),
    disablePending: db.prepare(`UPDATE webhook_deliveries SET state = 'disabled',
        last_error = :reason, updated_at = :now
      WHERE endpoint = :endpoint AND url = :url AND state = 'pending'`),
    release:
      db.prepare(`UPDATE webhook_deliveries SET lease_owner = NULL, lease_token = NULL, next_attempt_at = :now,
        updated_at = :now
      WHERE ${key} AND lease_token = :token AND state = 'pending'`),
    deliveries: db.prepare(
      'SELECT * FROM webhook_deliveries WHERE operation_id = :operation_id ORDER BY seq, endpoint',
    ),
    attempts: db.prepare(
      'SELECT * FROM webhook_attempts WHERE operation_id = :operation_id ORDER BY seq, endpoint, attempt',
    ),
    nextDue: db.prepare(`SELECT min(next_attempt_at) AS at FROM webhook_deliveries
      WHERE state = 'pending' AND endpoint IN (SELECT value FROM json_each(:endpoints))`),
    disabledEndpoints: db.prepare('SELECT * FROM webhook_endpoints ORDER BY disabled_at, endpoint, url'),
    enable: db.prepare('DELETE FROM webhook_endpoints WHERE endpoint = :endpoint RETURNING *'),
    resendable: db.prepare(`SELECT state, EXISTS (SELECT 1 FROM webhook_endpoints w
        WHERE w.endpoint = d.endpoint AND w.url = coalesce(:url, d.url)) AS endpoint_disabled
      FROM webhook_deliveries d WHERE ${key}`),
    // A lease still held (disabled mid-attempt) is waited out; an expired one is counted when next leased.
    resend: db.prepare(`UPDATE webhook_deliveries SET state = 'pending', url = coalesce(:url, url),
        next_attempt_at = CASE WHEN lease_owner IS NULL THEN :now ELSE max(next_attempt_at, :now) END,
        updated_at = :now
      WHERE ${key} AND state IN ('failed', 'disabled')
      RETURNING *`),
  };

  const keyParams = (k: WebhookDeliveryKey) => ({
    operation_id: k.operationId,
    seq: k.seq,
    endpoint: k.endpoint,
  });

  return {
    lease({ owner, limit, leaseMs, endpoints }: WebhookLeaseRequest, now: number): LeasedWebhookDelivery[] {
      const keys = sql.lease.all({
        owner,
        now,
        expires: now + leaseMs,
        limit,
        endpoints: JSON.stringify(endpoints),
      }) as Row[];
      return keys
        .map(({ lease_token, ...k }) => ({
          ...toLeasedWebhookDelivery(sql.leased.get(k as Record<string, SQLInputValue>) as Row, sqliteValues),
          leaseToken: String(lease_token),
        }))
        .sort((a, b) => a.createdAt - b.createdAt);
    },

    record(k: WebhookDeliveryKey, token: string, record: WebhookAttemptRecord, now: number): boolean {
      const updated = sql.finish.get({
        ...keyParams(k),
        token,
        now,
        state: record.next.state,
        next_attempt_at: record.next.state === 'pending' ? record.next.nextAttemptAt : now,
        last_error: record.lastError,
      }) as Row | undefined;
      if (!updated) return false;
      const { attempt } = record;
      sql.attempt.run({
        ...keyParams(k),
        attempt: Number(updated.attempts),
        at: attempt.at,
        status: attempt.status,
        error: attempt.error,
        latency_ms: attempt.latencyMs,
        response_snippet: attempt.responseSnippet,
      });
      if (record.disableEndpoint) {
        const endpoint = {
          endpoint: k.endpoint,
          url: String(updated.url),
          now,
          reason: record.lastError ?? '410',
        };
        sql.disable.run(endpoint);
        sql.disablePending.run(endpoint);
      }
      return true;
    },

    release(k: WebhookDeliveryKey, token: string, now: number): boolean {
      return Number(sql.release.run({ ...keyParams(k), token, now }).changes) === 1;
    },

    deliveries(operationId: string): Array<WebhookDelivery & { attemptLog: WebhookAttempt[] }> {
      const attempts = sql.attempts.all({ operation_id: operationId }) as Row[];
      return withAttemptLogs(sql.deliveries.all({ operation_id: operationId }) as Row[], attempts);
    },

    list(query: WebhookDeliveryQuery): WebhookDelivery[] {
      const { text, params } = listWebhookStatement(query);
      return (db.prepare(text).all(params) as Row[]).map(toDelivery);
    },

    nextDue(endpoints: readonly string[]): number | undefined {
      const row = sql.nextDue.get({ endpoints: JSON.stringify(endpoints) }) as Row;
      return row.at === null ? undefined : Number(row.at);
    },

    disabledEndpoints(): DisabledWebhookEndpoint[] {
      return (sql.disabledEndpoints.all() as Row[]).map(toDisabledEndpoint);
    },

    enable(endpoint: string): DisabledWebhookEndpoint[] {
      return (sql.enable.all({ endpoint }) as Row[]).map(toDisabledEndpoint);
    },

    /** Inside the write transaction: the check and the change see the same row. */
    resend(k: WebhookDeliveryKey, url: string | undefined, now: number): WebhookResend {
      const params = { ...keyParams(k), url: url ?? null };
      const current = sql.resendable.get(params) as Row | undefined;
      if (!current) return { outcome: 'unknown' };
      const state = current.state as WebhookDelivery['state'];
      if (state === 'pending' || state === 'delivered') return { outcome: 'refused', reason: state };
      if (Number(current.endpoint_disabled) === 1) return { outcome: 'refused', reason: 'endpoint-disabled' };
      const row = sql.resend.get({ ...params, now }) as Row;
      return { outcome: 'resent', previousState: state, delivery: toDelivery(row) };
    },
  };
}

/**
 * Deliveries in a state, newest first, a page after the cursor: a range of
 * migration 026's webhook_deliveries_by_state, or of _by_endpoint with an
 * endpoint (the planner picks it by the equalities it is given).
 */
export function listWebhookStatement(query: WebhookDeliveryQuery): {
  text: string;
  params: Record<string, SQLInputValue>;
} {
  const where = ['state = :state'];
  const params: Record<string, SQLInputValue> = { state: query.state, limit: query.limit };
  if (query.endpoint !== undefined) {
    where.push('endpoint = :endpoint');
    params.endpoint = query.endpoint;
  }
  if (query.after) {
    where.push(
      '(created_at, operation_id, seq, endpoint) < (:created_at, :operation_id, :seq, :after_endpoint)',
    );
    params.created_at = query.after.createdAt;
    params.operation_id = query.after.operationId;
    params.seq = query.after.seq;
    params.after_endpoint = query.after.endpoint;
  }
  return {
    text: `SELECT * FROM webhook_deliveries WHERE ${where.join(' AND ')}
      ORDER BY created_at DESC, operation_id DESC, seq DESC, endpoint DESC LIMIT :limit`,
    params,
  };
}
