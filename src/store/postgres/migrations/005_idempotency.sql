-- Who created an operation (a digest of its credential, see src/gateway/access.ts): only the same
-- tenant may read it. NULL for operations captured without a credential, and for older rows.
ALTER TABLE operations ADD COLUMN tenant text;

-- Idempotency-Key records under the composite lookup key (tenant, method, route, client key),
-- digested by the gateway. `token` fences later writes to the claim that made the record; the
-- primary key is what makes a claim atomic across every gateway sharing the schema. An accepted
-- record points at its operation and goes with it when retention deletes the operation.
CREATE TABLE idempotency_keys (
  key              text PRIMARY KEY,
  token            text NOT NULL,
  fingerprint      text NOT NULL,
  state            text NOT NULL CHECK (state IN ('in-progress', 'completed', 'accepted')),
  operation_id     text REFERENCES operations (id) ON DELETE CASCADE,
  response_status  integer,
  response_headers jsonb,                   -- [[name, value], …]
  response_body    bytea,
  locked_until     bigint NOT NULL,
  expires_at       bigint NOT NULL,
  created_at       bigint NOT NULL
);

CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
CREATE INDEX idempotency_keys_operation ON idempotency_keys (operation_id) WHERE operation_id IS NOT NULL;
