/**
 * The SQLite adapter's operator verbs (migration 010), kept apart from the
 * operation verbs: the attempt history, the lists and counts the admin API
 * reads, redrive and discard of dead letters, and replay paused per route.
 *
 * Writes run inside the adapter's group-commit transaction (its `#write`): an
 * attempt's record commits with the change that ends the attempt, and a
 * redrive's check and change are one step against leasing.
 */
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { sqliteValues } from '../dialect-values.ts';
import { toSummary as sharedSummary, toAttemptRecord } from '../operator-rows.ts';
import type {
  AttemptRecord,
  AttemptRecordInput,
  OperationQuery,
  OperationSummary,
  RouteCounts,
} from '../port.ts';

type Row = Record<string, SQLInputValue>;

const SUMMARY_COLUMNS = `id, route, method, path, status, attempts, next_attempt_at, lease_owner, outcome_unknown,
  error, dead_lettered_at, failover_reason, ordering_key, key_blocked, created_at, updated_at`;

export function prepareOperatorActions(db: DatabaseSync) {
  const sql = {
    // Never blocks the change it is written with: a number already taken (it cannot be, short of a bug) is skipped.
    logAttempt: db.prepare(`INSERT INTO operation_attempts
        (operation_id, attempt, started_at, duration_ms, outcome, upstream_status, error)
      SELECT id, attempts, :started_at, :duration_ms, :outcome, :upstream_status, :error FROM operations
      WHERE id = :id
      ON CONFLICT DO NOTHING`),
    attempts: db.prepare('SELECT * FROM operation_attempts WHERE operation_id = :id ORDER BY attempt'),
    redrive: db.prepare(`UPDATE operations SET status = 'NotStarted', dead_lettered_at = NULL,
        outcome_unknown = 0, next_attempt_at = :now, redriven_at = :now, attempts_at_redrive = attempts,
        discarded_at = NULL, updated_at = :now
      WHERE id = :id AND dead_lettered_at IS NOT NULL AND status = 'Failed' AND (:include OR outcome_unknown = 0)`),
    discard: db.prepare(`UPDATE operations SET dead_lettered_at = NULL, discarded_at = :now, updated_at = :now
      WHERE id = :id AND dead_lettered_at IS NOT NULL`),
    // Kept by migration 008's triggers: a few rows per route, whatever the backlog (migration 025).
    backlog: db.prepare(`SELECT route, sum(n) AS n FROM operation_counts
      WHERE status IN ('NotStarted', 'Running') GROUP BY route HAVING sum(n) > 0`),
    dead: db.prepare(
      'SELECT route, sum(n) AS n FROM operation_counts WHERE dead_lettered = 1 GROUP BY route HAVING sum(n) > 0',
    ),
    pause: db.prepare(`INSERT INTO route_replay (route, paused_at) VALUES (:route, :now)
      ON CONFLICT (route) DO NOTHING`),
    resume: db.prepare('DELETE FROM route_replay WHERE route = :route'),
    paused: db.prepare('SELECT route, paused_at FROM route_replay ORDER BY route'),
  };
  return {
    logAttempt(id: string, attempt: AttemptRecordInput): void {
      sql.logAttempt.run({
        id,
        started_at: attempt.startedAt,
        duration_ms: Math.max(0, Math.round(attempt.durationMs)),
        outcome: attempt.outcome,
        upstream_status: attempt.upstreamStatus,
        error: attempt.error,
      });
    },
    attemptLog(id: string): AttemptRecord[] {
      return (sql.attempts.all({ id }) as Row[]).map(toAttemptRecord);
    },
    list(query: OperationQuery): OperationSummary[] {
      const { text, params } = listStatement(query);
      return (db.prepare(text).all(params) as Row[]).map(toSummary);
    },
    redrive(id: string, includeOutcomeUnknown: boolean, now: number): boolean {
      return Number(sql.redrive.run({ id, now, include: includeOutcomeUnknown ? 1 : 0 }).changes) === 1;
    },
    discard(id: string, now: number): boolean {
      return Number(sql.discard.run({ id, now }).changes) === 1;
    },
    routeCounts(): Record<string, RouteCounts> {
      const counts: Record<string, RouteCounts> = {};
      const of = (route: string) => (counts[route] ??= { backlog: 0, deadLettered: 0 });
      for (const row of sql.backlog.all() as Row[]) of(String(row.route)).backlog = Number(row.n);
      for (const row of sql.dead.all() as Row[]) of(String(row.route)).deadLettered = Number(row.n);
      return counts;
    },
    setReplayPaused(route: string, paused: boolean, now: number): void {
      if (paused) sql.pause.run({ route, now });
      else sql.resume.run({ route });
    },
    pausedReplays(): Record<string, number> {
      return Object.fromEntries(
        (sql.paused.all() as Row[]).map((row) => [String(row.route), Number(row.paused_at)]),
      );
    },
  };
}

/**
 * The list query for a filter: one of migration 010's indexes orders it (the
 * planner picks by the equality it is given), the cursor is a range on
 * (created_at, id), newest first.
 */
function listStatement(query: OperationQuery): { text: string; params: Record<string, SQLInputValue> } {
  const where: string[] = [];
  const params: Record<string, SQLInputValue> = { limit: query.limit };
  if (query.status !== undefined) {
    where.push('status = :status');
    params.status = query.status;
  }
  if (query.route !== undefined) {
    where.push('route = :route');
    params.route = query.route;
  }
  if (query.deadLettered !== undefined)
    where.push(`dead_lettered_at IS ${query.deadLettered ? 'NOT NULL' : 'NULL'}`);
  if (query.after) {
    where.push('(created_at < :created_at OR (created_at = :created_at AND id < :id))');
    params.created_at = query.after.createdAt;
    params.id = query.after.id;
  }
  const filter = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
  return {
    text: `SELECT ${SUMMARY_COLUMNS} FROM operations ${filter} ORDER BY created_at DESC, id DESC LIMIT :limit`,
    params,
  };
}

const toSummary = (row: Row): OperationSummary => sharedSummary(row, sqliteValues);
