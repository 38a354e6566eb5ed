-- The operation record: a captured request, its replay state and its result.
-- Times are epoch milliseconds from the gateway's clock (one process per file).
CREATE TABLE operations (
  id               TEXT PRIMARY KEY,
  route            TEXT NOT NULL,
  method           TEXT NOT NULL,
  path             TEXT NOT NULL,
  query            TEXT NOT NULL,
  request_headers  TEXT NOT NULL,          -- JSON [[name, value], …]
  request_body     BLOB NOT NULL,
  status           TEXT NOT NULL CHECK (status IN ('NotStarted', 'Running', 'Succeeded', 'Failed', 'Canceled')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER NOT NULL,
  lease_owner      TEXT,
  lease_expires_at INTEGER,
  outcome_unknown  INTEGER NOT NULL DEFAULT 0,
  result_status    INTEGER,
  result_headers   TEXT,                   -- JSON [[name, value], …]
  result_body      BLOB,
  error            TEXT,                   -- JSON {code, message, upstreamStatus?}
  dead_lettered_at INTEGER,
  priority         INTEGER NOT NULL DEFAULT 0,
  idempotency_key  TEXT,
  traceparent      TEXT,
  tracestate       TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
) STRICT;

-- Leasing walks waiting operations in replay order.
CREATE INDEX operations_waiting ON operations (priority DESC, created_at, id)
  WHERE status IN ('NotStarted', 'Running');

CREATE INDEX operations_dead_lettered ON operations (dead_lettered_at)
  WHERE dead_lettered_at IS NOT NULL;
