-- Finding what is due without walking the whole backlog: during an outage most waiting operations
-- are not due yet (backoff). One partial index for operations waiting on their next attempt, one
-- for held leases, whose expiry makes them due again (the same pair as the PostgreSQL adapter's).
CREATE INDEX operations_next_attempt ON operations (next_attempt_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL;

CREATE INDEX operations_lease_expiry ON operations (lease_expires_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NOT NULL;
