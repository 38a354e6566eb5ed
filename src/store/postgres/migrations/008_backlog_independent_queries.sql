-- The queue's hot statements cost the same whatever the backlog (docs/scaling.md, "Cost at any
-- backlog"): each is a range read of an index, never a sort of every due row or a walk of the table.
--
-- Leasing: free operations by priority, route and due time. The lease walks the (priority, route)
-- groups from the highest priority down, one seek each (a row-value range: (priority, route) < the
-- last group's), and reads each group's due operations as a range in due order, so it reads what it
-- leases (and at most that many more per group), whatever the backlog. The replay order is priority,
-- then due time.
CREATE INDEX operations_due ON operations (priority, route, next_attempt_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL;

-- Retention: finished operations by when they last changed.
CREATE INDEX operations_finished ON operations (updated_at)
  WHERE status IN ('Succeeded', 'Failed', 'Canceled');

-- Counts: kept by a statement-level trigger in the commit of each change, per route and status
-- (dead letters apart), so that reading them is a read of a few rows, not a count of the table.
-- Each change is added to the row of its server process's slot (pg_backend_pid() % 64): commits of
-- concurrent connections seldom wait on one counter row, and a read sums at most 64 rows per count.
CREATE TABLE operation_counts (
  route         text NOT NULL,
  status        text NOT NULL,
  dead_lettered boolean NOT NULL,
  slot          integer NOT NULL,
  n             bigint NOT NULL,
  PRIMARY KEY (route, status, dead_lettered, slot)
);

INSERT INTO operation_counts (route, status, dead_lettered, slot, n)
  SELECT route, status, dead_lettered_at IS NOT NULL, 0, count(*) FROM operations
  GROUP BY route, status, dead_lettered_at IS NOT NULL;

-- One function for the three triggers: each names its transition tables old_rows / new_rows. The
-- counter rows are written in key order, so two statements sharing a slot never deadlock.
CREATE FUNCTION operations_counted() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO operation_counts (route, status, dead_lettered, slot, n)
      SELECT route, status, dead_lettered_at IS NOT NULL, pg_backend_pid() % 64, count(*) FROM new_rows
      GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (route, status, dead_lettered, slot) DO UPDATE SET n = operation_counts.n + excluded.n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO operation_counts (route, status, dead_lettered, slot, n)
      SELECT route, status, dead, pg_backend_pid() % 64, sum(delta) FROM (
          SELECT route, status, dead_lettered_at IS NOT NULL AS dead, -1 AS delta FROM old_rows
          UNION ALL
          SELECT route, status, dead_lettered_at IS NOT NULL, 1 FROM new_rows) AS changes
      GROUP BY 1, 2, 3 HAVING sum(delta) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (route, status, dead_lettered, slot) DO UPDATE SET n = operation_counts.n + excluded.n;
  ELSE
    INSERT INTO operation_counts (route, status, dead_lettered, slot, n)
      SELECT route, status, dead_lettered_at IS NOT NULL, pg_backend_pid() % 64, -count(*) FROM old_rows
      GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (route, status, dead_lettered, slot) DO UPDATE SET n = operation_counts.n + excluded.n;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER operations_counted_insert AFTER INSERT ON operations
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION operations_counted();
CREATE TRIGGER operations_counted_update AFTER UPDATE ON operations
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION operations_counted();
CREATE TRIGGER operations_counted_delete AFTER DELETE ON operations
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION operations_counted();

-- TRUNCATE fires no row or DELETE trigger: it empties the counts with the table.
CREATE FUNCTION operations_truncated() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $$
BEGIN
  DELETE FROM operation_counts;
  RETURN NULL;
END $$;

CREATE TRIGGER operations_truncated AFTER TRUNCATE ON operations
  FOR EACH STATEMENT EXECUTE FUNCTION operations_truncated();
