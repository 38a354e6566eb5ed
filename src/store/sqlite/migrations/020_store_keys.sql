-- Encryption at rest (src/store/sealed-values.ts): the ids of the keys that have sealed values in this
-- store, recorded by each process as it opens with a key. A process that lacks one of them refuses to
-- start, rather than failing request by request; `spillway store rekey` forgets the ids it re-encrypted away.
CREATE TABLE store_keys (
  key_id        TEXT PRIMARY KEY,
  first_used_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
