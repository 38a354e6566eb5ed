/**
 * The PostgreSQL adapter's drain statements (migration 016): each route's
 * health as a gateway last wrote it, for `spillway worker` processes to
 * follow, and bringing a route's waiting operations forward when its
 * upstream is back.
 */
import { DUE_GROUPS, FREE } from './due-groups.ts';

// The route's groups of the due index (due-groups.ts), each read in due order from its first entry due
// later: replay order, never a walk of the backlog. Blocked operations (behind their ordering key's
// head) are not in that index. SKIP LOCKED: rows a concurrent lease is taking are left to it.
export const BRING_FORWARD = `WITH RECURSIVE groups AS (
    ${DUE_GROUPS}
  )
  UPDATE operations SET next_attempt_at = $2, updated_at = $2
  WHERE id IN (SELECT f.id FROM groups AS g CROSS JOIN LATERAL (
      SELECT id, next_attempt_at FROM operations
      WHERE ${FREE} AND priority = g.priority AND route = g.route AND next_attempt_at > $2::bigint
      ORDER BY next_attempt_at LIMIT $3
      FOR UPDATE SKIP LOCKED) AS f
    WHERE g.route = $1
    ORDER BY g.priority DESC, f.next_attempt_at LIMIT $3)`;

export const SET_ROUTE_HEALTH = `INSERT INTO route_health (route, state, cause, since, until, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (route) DO UPDATE SET state = excluded.state, cause = excluded.cause,
    since = excluded.since, until = excluded.until, updated_at = excluded.updated_at`;

export const ROUTE_HEALTH = 'SELECT route, state, cause, since, until FROM route_health ORDER BY route';
