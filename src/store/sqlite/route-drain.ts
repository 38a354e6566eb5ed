/**
 * The SQLite adapter's drain verbs (migration 016), kept apart from the
 * operation verbs: each route's health as a gateway last wrote it, and
 * bringing a route's waiting operations forward when its upstream is back.
 * Writes run inside the adapter's group-commit transaction (its `#write`).
 */
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import type { StoredRouteHealth } from '../port.ts';
import { storedRouteHealthOf } from '../route-health-row.ts';

type Row = Record<string, SQLInputValue>;

export function prepareRouteDrain(db: DatabaseSync) {
  const sql = {
    // One (priority, route) group's waiting operations due later, first in due order: a range of the
    // due index (migrations 008, 024), which leaves out those blocked behind their ordering key's head.
    bringForward: db.prepare(`UPDATE operations SET next_attempt_at = :now, updated_at = :now
      WHERE id IN (SELECT id FROM operations INDEXED BY operations_due
        WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND key_blocked = 0
          AND priority = :priority AND route = :route AND next_attempt_at > :now
        ORDER BY next_attempt_at LIMIT :limit)`),
    setHealth: db.prepare(`INSERT INTO route_health (route, state, cause, since, until, updated_at)
      VALUES (:route, :state, :cause, :since, :until, :now)
      ON CONFLICT (route) DO UPDATE SET state = excluded.state, cause = excluded.cause,
        since = excluded.since, until = excluded.until, updated_at = excluded.updated_at`),
    health: db.prepare('SELECT route, state, cause, since, until FROM route_health ORDER BY route'),
  };
  return {
    /** Brings one (priority, route) group's operations forward; the caller walks the groups in replay order. */
    bringForward(group: { priority: number; route: string }, limit: number, now: number): number {
      return Number(sql.bringForward.run({ ...group, limit, now }).changes);
    },
    setRouteHealth(route: string, health: StoredRouteHealth, now: number): void {
      sql.setHealth.run({ route, ...health, now });
    },
    routeHealth(): Record<string, StoredRouteHealth> {
      return Object.fromEntries(
        (sql.health.all() as Row[]).map((row) => [String(row.route), storedRouteHealthOf(row)]),
      );
    },
  };
}
