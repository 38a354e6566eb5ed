-- Operator overrides of a route's health state (forced-async / forced-sync).
-- Kept in the store so that they survive restarts and reach every instance sharing the database.
CREATE TABLE route_overrides (
  route      text PRIMARY KEY,
  override   text NOT NULL CHECK (override IN ('forced-async', 'forced-sync')),
  updated_at bigint NOT NULL
);
