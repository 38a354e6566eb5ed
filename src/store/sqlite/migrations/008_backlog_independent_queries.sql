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

-- Counts: kept by triggers in the commit of each change, per route and status (dead letters apart),
-- so that reading them is a read of a few rows, not a count of the table.
CREATE TABLE operation_counts (
  route         TEXT NOT NULL,
  status        TEXT NOT NULL,
  dead_lettered INTEGER NOT NULL,
  n             INTEGER NOT NULL,
  PRIMARY KEY (route, status, dead_lettered)
) STRICT, WITHOUT ROWID;

INSERT INTO operation_counts (route, status, dead_lettered, n)
  SELECT route, status, dead_lettered_at IS NOT NULL, count(*) FROM operations
  GROUP BY route, status, dead_lettered_at IS NOT NULL;

CREATE TRIGGER operation_counted AFTER INSERT ON operations
BEGIN
  INSERT INTO operation_counts (route, status, dead_lettered, n)
    VALUES (NEW.route, NEW.status, NEW.dead_lettered_at IS NOT NULL, 1)
    ON CONFLICT (route, status, dead_lettered) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER operation_recounted AFTER UPDATE OF status, dead_lettered_at ON operations
WHEN NEW.status <> OLD.status OR (NEW.dead_lettered_at IS NULL) <> (OLD.dead_lettered_at IS NULL)
BEGIN
  UPDATE operation_counts SET n = n - 1
    WHERE route = OLD.route AND status = OLD.status AND dead_lettered = (OLD.dead_lettered_at IS NOT NULL);
  INSERT INTO operation_counts (route, status, dead_lettered, n)
    VALUES (NEW.route, NEW.status, NEW.dead_lettered_at IS NOT NULL, 1)
    ON CONFLICT (route, status, dead_lettered) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER operation_uncounted AFTER DELETE ON operations
BEGIN
  UPDATE operation_counts SET n = n - 1
    WHERE route = OLD.route AND status = OLD.status AND dead_lettered = (OLD.dead_lettered_at IS NOT NULL);
END;
