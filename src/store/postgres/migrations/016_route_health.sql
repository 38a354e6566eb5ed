-- Each route's health as a gateway last wrote it (sync, diverting, probing), so that `spillway worker`
-- processes follow it: pausing a diverting route's drain to one probe at a time. The last writer
-- wins; every gateway still decides for itself.
CREATE TABLE route_health (
  route      text PRIMARY KEY,
  state      text NOT NULL CHECK (state IN ('sync', 'diverting', 'probing')),
  cause      text CHECK (cause IN ('trip', 'retry-after')),
  since      bigint NOT NULL,
  until      bigint,
  updated_at bigint NOT NULL
);
