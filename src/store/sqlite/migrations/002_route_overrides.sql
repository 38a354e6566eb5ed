-- Operator overrides of a route's health state (forced-async / forced-sync).
-- Kept in the store so that they survive restarts and, on a shared store, reach every instance.
CREATE TABLE route_overrides (
  route      TEXT PRIMARY KEY,
  override   TEXT NOT NULL CHECK (override IN ('forced-async', 'forced-sync')),
  updated_at INTEGER NOT NULL
) STRICT;
