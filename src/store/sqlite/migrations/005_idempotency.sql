-- Who created an operation (a digest of its credential, see src/gateway/access.ts): only the same
-- tenant may read it. NULL for operations captured without a credential, and for older rows.
ALTER TABLE operations ADD COLUMN tenant TEXT;

-- Idempotency-Key records under the composite lookup key (tenant, method, route, client key),
-- digested by the gateway. `token` fences later writes to the claim that made the record; the
-- unique key is what makes a claim atomic. An accepted record points at its operation and goes
-- with it when retention deletes the operation.
CREATE TABLE idempotency_keys (
  key              TEXT PRIMARY KEY,
  token            TEXT NOT NULL,
  fingerprint      TEXT NOT NULL,
  state            TEXT NOT NULL CHECK (state IN ('in-progress', 'completed', 'accepted')),
  operation_id     TEXT REFERENCES operations (id) ON DELETE CASCADE,
  response_status  INTEGER,
  response_headers TEXT,                   -- JSON [[name, value], …]
  response_body    BLOB,
  locked_until     INTEGER NOT NULL,
  expires_at       INTEGER NOT NULL,
  created_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
CREATE INDEX idempotency_keys_operation ON idempotency_keys (operation_id) WHERE operation_id IS NOT NULL;
