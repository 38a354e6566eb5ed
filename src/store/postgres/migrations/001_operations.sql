-- The operation record: a captured request, its replay state and its result.
-- Times are epoch milliseconds from Node's clock (the injected Clock), passed
-- in by each statement, never now(): see postgres-store.ts.
CREATE TABLE operations (
  id               text PRIMARY KEY,
  route            text NOT NULL,
  method           text NOT NULL,
  path             text NOT NULL,
  query            text NOT NULL,
  request_headers  jsonb NOT NULL,           -- [[name, value], …]
  request_body     bytea NOT NULL,
  status           text NOT NULL CHECK (status IN ('NotStarted', 'Running', 'Succeeded', 'Failed', 'Canceled')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  bigint NOT NULL,
  lease_owner      text,
  lease_expires_at bigint,
  -- Which lease call took the lease (not in the port): lets the adapter hand back leases whose
  -- answer was lost with the connection, without mistaking them for attempts in flight.
  lease_token      text,
  outcome_unknown  boolean NOT NULL DEFAULT false,
  result_status    integer,
  result_headers   jsonb,                    -- [[name, value], …]
  result_body      bytea,
  error            jsonb,                    -- {code, message, upstreamStatus?}
  dead_lettered_at bigint,
  priority         integer NOT NULL DEFAULT 0,
  idempotency_key  text,
  traceparent      text,
  tracestate       text,
  created_at       bigint NOT NULL,
  updated_at       bigint NOT NULL
);

-- Leasing walks waiting operations in replay order, skipping rows other workers hold locked.
CREATE INDEX operations_waiting ON operations (priority DESC, created_at, id)
  WHERE status IN ('NotStarted', 'Running');

CREATE INDEX operations_dead_lettered ON operations (dead_lettered_at)
  WHERE dead_lettered_at IS NOT NULL;
