-- Stale copies (stale-if-error, docs/http-api.md "Stale and fallback answers"): the last 2xx answer
-- of a GET or HEAD per resource (tenant, method, path, query) and variant (the values of the request
-- fields its Vary names). Bounded by entries and bytes, least recently used first out (last_used_at);
-- past expires_at a copy is too old to answer with and retention deletes it.
CREATE TABLE stale_copies (
  resource      text NOT NULL,
  variant       text NOT NULL,
  route         text NOT NULL,
  vary          jsonb NOT NULL,     -- [name, …]: the request fields the answer varies on
  status        integer NOT NULL,
  headers       jsonb NOT NULL,     -- [[name, value], …]
  body          bytea NOT NULL,
  size          integer NOT NULL,
  stored_at     bigint NOT NULL,
  initial_age   integer NOT NULL,   -- seconds: the upstream's Age when it was received
  expires_at    bigint NOT NULL,
  last_used_at  bigint NOT NULL,
  PRIMARY KEY (resource, variant)
);
CREATE INDEX stale_copies_lru ON stale_copies (last_used_at);
CREATE INDEX stale_copies_expiry ON stale_copies (expires_at);
