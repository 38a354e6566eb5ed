-- Stale copies (stale-if-error, docs/http-api.md "Stale and fallback answers"): the last 2xx answer
-- of a GET or HEAD per resource (tenant, method, path, query) and variant (the values of the request
-- fields its Vary names). Bounded by entries and bytes, least recently used first out (last_used_at);
-- past expires_at a copy is too old to answer with and retention deletes it.
CREATE TABLE stale_copies (
  resource      TEXT NOT NULL,
  variant       TEXT NOT NULL,
  route         TEXT NOT NULL,
  vary          TEXT NOT NULL,      -- JSON [name, …]: the request fields the answer varies on
  status        INTEGER NOT NULL,
  headers       TEXT NOT NULL,      -- JSON [[name, value], …]
  body          BLOB NOT NULL,
  size          INTEGER NOT NULL,
  stored_at     INTEGER NOT NULL,
  initial_age   INTEGER NOT NULL,   -- seconds: the upstream's Age when it was received
  expires_at    INTEGER NOT NULL,
  last_used_at  INTEGER NOT NULL,
  PRIMARY KEY (resource, variant)
) STRICT;
CREATE INDEX stale_copies_lru ON stale_copies (last_used_at);
CREATE INDEX stale_copies_expiry ON stale_copies (expires_at);
