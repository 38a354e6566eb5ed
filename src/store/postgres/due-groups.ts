/**
 * The PostgreSQL adapter's walk of the due index (migrations 008, 024, 025):
 * the (priority, route) groups of free operations, highest priority first, one
 * seek each (the greatest (priority, route) below the last). The lease reads
 * each group's due operations from there; the earliest due time, the oldest
 * due per route and bringing a route forward read each group's first entries.
 * A recursive CTE body: `WITH RECURSIVE groups AS (${DUE_GROUPS})`.
 */

/** Waiting, unleased and not blocked behind its ordering key's head: the rows of operations_due. */
export const FREE = `status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND NOT key_blocked`;

export const DUE_GROUPS = `(SELECT priority, route FROM operations
      WHERE ${FREE}
      ORDER BY priority DESC, route DESC LIMIT 1)
    UNION ALL
    SELECT next.priority, next.route FROM groups AS g CROSS JOIN LATERAL (
      SELECT priority, route FROM operations
      WHERE ${FREE}
        AND (priority, route) < (g.priority, g.route)
      ORDER BY priority DESC, route DESC LIMIT 1) AS next`;
