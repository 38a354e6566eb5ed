-- Each status change of an operation, numbered per operation: the source of SSE (with Last-Event-ID
-- resume) and webhooks. Triggers write them in the very transaction that changes the status, so an
-- event exists exactly when its change was committed, whichever process (or psql session) made it.
--
-- The same triggers NOTIFY the schema's channel with the operation id: the other processes sharing
-- the schema LISTEN on it (postgres-store.ts) and hear of the change once it commits. A notification
-- is a hint; readers re-read the events and poll as a backstop.
--
-- The channel is 'spillway_' followed by the schema name, cut to 63 bytes (PostgreSQL's limit on
-- a channel name; schema names are ASCII): `channelOf` in postgres-store.ts computes the same.
CREATE TABLE operation_events (
  operation_id text NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
  seq          integer NOT NULL,
  status       text NOT NULL,
  at           bigint NOT NULL,          -- epoch ms: the operation's updated_at, Node's clock
  attempts     integer NOT NULL,
  error        jsonb,                    -- {code, message, upstreamStatus?}
  PRIMARY KEY (operation_id, seq)
);

-- Captures arrive as one multi-row INSERT per batch: one statement-level trigger writes all of
-- their first events in one set-based INSERT, rather than a function call per row. A capture's
-- first event has the status it was stored with: NotStarted, or Running for an adopted capture.
-- `SET search_path FROM CURRENT` pins the function to this schema (the migration runs with it), so
-- a session with another search_path that writes to operations still writes the right events.
CREATE FUNCTION operations_captured() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO operation_events (operation_id, seq, status, at, attempts, error)
    SELECT id, 1, status, updated_at, attempts, error FROM captured;
  PERFORM pg_notify(left('spillway_' || TG_TABLE_SCHEMA, 63), id) FROM captured;
  RETURN NULL;
END $$;

CREATE TRIGGER operations_captured AFTER INSERT ON operations
  REFERENCING NEW TABLE AS captured
  FOR EACH STATEMENT EXECUTE FUNCTION operations_captured();

-- A status change is one event: a row-level trigger whose WHEN clause skips, without calling the
-- function, the updates that leave the status as it was (retry, release, a second lease,
-- heartbeats). Concurrent changes of one operation are serialized by its row lock, and each
-- statement of the function sees the events committed before it, so max(seq) + 1 has no gaps.
CREATE FUNCTION operations_status_changed() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO operation_events (operation_id, seq, status, at, attempts, error)
    SELECT NEW.id, coalesce(max(seq), 0) + 1, NEW.status, NEW.updated_at, NEW.attempts, NEW.error
    FROM operation_events WHERE operation_id = NEW.id;
  PERFORM pg_notify(left('spillway_' || TG_TABLE_SCHEMA, 63), NEW.id);
  RETURN NULL;
END $$;

CREATE TRIGGER operations_status_changed AFTER UPDATE OF status ON operations
  FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status)
  EXECUTE FUNCTION operations_status_changed();
