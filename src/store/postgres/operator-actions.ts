/**
 * The PostgreSQL adapter's operator verbs (migration 010), kept apart from the
 * operation verbs: statements and row mapping for the attempt history, the
 * lists and counts the admin API reads, redrive and discard of dead letters,
 * and replay paused per route. Each verb is one statement, so one commit.
 */

import { postgresValues } from '../dialect-values.ts';
import { toSummary as sharedSummary, toAttemptRecord } from '../operator-rows.ts';
import type { AttemptRecordInput, OperationQuery, OperationSummary, RouteCounts } from '../port.ts';

type Row = Record<string, unknown>;

/**
 * Turns a fenced UPDATE into one statement that also writes the attempt's
 * record when it changed a row (and the attempt is given: `$first` not null),
 * numbered by the operation's attempt count after the update. Parameters
 * `$first`…`$first+5` are `attemptValues(attempt)`. Resolves one row per row changed.
 */
export function withAttemptLog(update: string, first: number): string {
  const p = (i: number) => `$${first + i}`;
  return `WITH changed AS (${update} RETURNING id, attempts),
    logged AS (
      INSERT INTO operation_attempts (operation_id, attempt, started_at, duration_ms, outcome, upstream_status, error)
      SELECT id, attempts, ${p(1)}::bigint, ${p(2)}::bigint, ${p(3)}::text, ${p(4)}::integer, ${p(5)}::text
      FROM changed WHERE ${p(0)}::boolean
      ON CONFLICT DO NOTHING)
    SELECT id FROM changed`;
}

/** The values of withAttemptLog's parameters; none logged without an attempt. */
export function attemptValues(attempt: AttemptRecordInput | undefined): unknown[] {
  if (!attempt) return [false, null, null, null, null, null];
  return [
    true,
    attempt.startedAt,
    Math.max(0, Math.round(attempt.durationMs)),
    attempt.outcome,
    attempt.upstreamStatus,
    attempt.error,
  ];
}

export const ATTEMPT_LOG = `SELECT attempt, started_at, duration_ms, outcome, upstream_status, error
  FROM operation_attempts WHERE operation_id = $1 ORDER BY attempt`;

export const REDRIVE = `UPDATE operations SET status = 'NotStarted', dead_lettered_at = NULL,
    outcome_unknown = false, next_attempt_at = $2, redriven_at = $2, attempts_at_redrive = attempts,
    discarded_at = NULL, updated_at = $2
  WHERE id = $1 AND dead_lettered_at IS NOT NULL AND status = 'Failed' AND ($3 OR NOT outcome_unknown)
  RETURNING id`;

export const DISCARD = `UPDATE operations SET dead_lettered_at = NULL, discarded_at = $2, updated_at = $2
  WHERE id = $1 AND dead_lettered_at IS NOT NULL
  RETURNING id`;

// Kept by migration 008's trigger: a few rows per route, status and slot, whatever the backlog (025).
export const ROUTE_COUNTS = `SELECT route,
    coalesce(sum(n) FILTER (WHERE status IN ('NotStarted', 'Running')), 0)::bigint AS backlog,
    coalesce(sum(n) FILTER (WHERE dead_lettered), 0)::bigint AS dead
  FROM operation_counts GROUP BY route
  HAVING coalesce(sum(n) FILTER (WHERE status IN ('NotStarted', 'Running')), 0) > 0
    OR coalesce(sum(n) FILTER (WHERE dead_lettered), 0) > 0`;

export const PAUSE_REPLAY = `INSERT INTO route_replay (route, paused_at) VALUES ($1, $2)
  ON CONFLICT (route) DO NOTHING`;
export const RESUME_REPLAY = 'DELETE FROM route_replay WHERE route = $1';
export const PAUSED_REPLAYS = 'SELECT route, paused_at FROM route_replay ORDER BY route';

const SUMMARY_COLUMNS = `id, route, method, path, status, attempts, next_attempt_at, lease_owner, outcome_unknown,
  error, dead_lettered_at, failover_reason, ordering_key, key_blocked, created_at, updated_at`;

/** The list query for a filter, newest first, with the (created_at, id) cursor as a range. */
export function listStatement(query: OperationQuery): { text: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  const param = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  if (query.status !== undefined) where.push(`status = ${param(query.status)}`);
  if (query.route !== undefined) where.push(`route = ${param(query.route)}`);
  if (query.deadLettered !== undefined)
    where.push(`dead_lettered_at IS ${query.deadLettered ? 'NOT NULL' : 'NULL'}`);
  if (query.after) {
    where.push(
      `(created_at, id) < (${param(query.after.createdAt)}::bigint, ${param(query.after.id)}::text)`,
    );
  }
  const filter = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
  const text = `SELECT ${SUMMARY_COLUMNS} FROM operations ${filter}
    ORDER BY created_at DESC, id DESC LIMIT ${param(query.limit)}`;
  return { text, values };
}

export const toSummary = (row: Row): OperationSummary => sharedSummary(row, postgresValues);
export { toAttemptRecord };

export function toRouteCounts(rows: Row[]): Record<string, RouteCounts> {
  return Object.fromEntries(
    rows.map((row) => [String(row.route), { backlog: Number(row.backlog), deadLettered: Number(row.dead) }]),
  );
}
