-- Each route's health as a gateway last wrote it (sync, diverting, probing), so that replay workers
-- in other processes follow it: pausing a diverting route's drain to one probe at a time. The last
-- writer wins; every gateway still decides for itself.
CREATE TABLE route_health (
  route      TEXT PRIMARY KEY,
  state      TEXT NOT NULL CHECK (state IN ('sync', 'diverting', 'probing')),
  cause      TEXT CHECK (cause IN ('trip', 'retry-after')),
  since      INTEGER NOT NULL,
  until      INTEGER,
  updated_at INTEGER NOT NULL
) STRICT;
