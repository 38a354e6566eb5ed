-- What operators need (docs/operations.md): each operation's attempt history, why it went async,
-- redrive and discard of dead letters, replay paused per route, and listing by status, route or
-- dead letters through indexes rather than a walk of the table.

-- One row per attempt, written in the commit that ends it (or, for the sync attempt that failed
-- before a capture, in the capture's). Numbered by the operation's attempt count at its end, so an
-- attempt lost in a crash leaves a gap.
CREATE TABLE operation_attempts (
  operation_id    TEXT NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
  attempt         INTEGER NOT NULL,
  started_at      INTEGER NOT NULL,
  duration_ms     INTEGER NOT NULL,
  outcome         TEXT NOT NULL CHECK (outcome IN ('succeeded', 'retry', 'failed', 'interrupted')),
  upstream_status INTEGER,
  error           TEXT,
  PRIMARY KEY (operation_id, attempt)
) STRICT, WITHOUT ROWID;

ALTER TABLE operations ADD COLUMN failover_reason TEXT;
-- A redrive gives a fresh retry budget: maxAttempts counts attempts since, maxAgeMs time since.
ALTER TABLE operations ADD COLUMN redriven_at INTEGER;
ALTER TABLE operations ADD COLUMN attempts_at_redrive INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN discarded_at INTEGER;

-- Routes whose replay an operator paused; every process sharing the store leaves them unleased.
CREATE TABLE route_replay (
  route     TEXT PRIMARY KEY,
  paused_at INTEGER NOT NULL
) STRICT;

-- Lists, newest first, with a (created_at, id) cursor: unfiltered, by status, by route, dead letters.
CREATE INDEX operations_listed ON operations (created_at, id);
CREATE INDEX operations_by_status ON operations (status, created_at, id);
CREATE INDEX operations_by_route ON operations (route, created_at, id);
CREATE INDEX operations_dead_listed ON operations (created_at, id) WHERE dead_lettered_at IS NOT NULL;
-- Counts by route (the health view, maxBacklog): only the waiting and dead-lettered rows are read.
CREATE INDEX operations_backlog_by_route ON operations (route) WHERE status IN ('NotStarted', 'Running');
CREATE INDEX operations_dead_by_route ON operations (route) WHERE dead_lettered_at IS NOT NULL;
