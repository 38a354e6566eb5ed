-- Metrics (spillway_oldest_due_operation_age_seconds): the earliest due time of each route's
-- waiting, unleased operations, read from an index rather than a walk of the table. Leased ones
-- due again (expired leases) are found through operations_lease_expiry (migration 003).
CREATE INDEX operations_due_by_route ON operations (route, next_attempt_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL;
