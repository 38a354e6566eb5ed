/**
 * The PostgreSQL adapter's drain statements (migration 016): each route's
 * health as a gateway last wrote it, for `spillway worker` processes to
 * follow, and bringing a route's waiting operations forward when its
 * upstream is back.
 */

// The partial index on next_attempt_at (003, 024) finds the waiting rows; the route narrows them.
// Operations blocked behind their ordering key's head are not brought forward: they are not next.
// SKIP LOCKED: rows a concurrent lease is taking are left to it.
export const BRING_FORWARD = `UPDATE operations SET next_attempt_at = $2, updated_at = $2
  WHERE id IN (SELECT id FROM operations
    WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND NOT key_blocked
      AND next_attempt_at > $2 AND route = $1
    ORDER BY priority DESC, created_at, id LIMIT $3
    FOR UPDATE SKIP LOCKED)`;

export const SET_ROUTE_HEALTH = `INSERT INTO route_health (route, state, cause, since, until, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (route) DO UPDATE SET state = excluded.state, cause = excluded.cause,
    since = excluded.since, until = excluded.until, updated_at = excluded.updated_at`;

export const ROUTE_HEALTH = 'SELECT route, state, cause, since, until FROM route_health ORDER BY route';
