-- Each status change of an operation, numbered per operation: the source of SSE (with Last-Event-ID
-- resume) and webhooks. Triggers write them in the very transaction that changes the status, so an
-- event exists exactly when its change was committed.
CREATE TABLE operation_events (
  operation_id TEXT NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
  seq          INTEGER NOT NULL,
  status       TEXT NOT NULL,
  at           INTEGER NOT NULL,
  attempts     INTEGER NOT NULL,
  error        TEXT,
  PRIMARY KEY (operation_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER operation_captured AFTER INSERT ON operations
BEGIN
  INSERT INTO operation_events (operation_id, seq, status, at, attempts, error)
  VALUES (NEW.id, 1, NEW.status, NEW.updated_at, NEW.attempts, NEW.error);
END;

CREATE TRIGGER operation_status_changed AFTER UPDATE OF status ON operations
WHEN NEW.status <> OLD.status
BEGIN
  INSERT INTO operation_events (operation_id, seq, status, at, attempts, error)
  VALUES (NEW.id, (SELECT max(seq) + 1 FROM operation_events WHERE operation_id = NEW.id),
          NEW.status, NEW.updated_at, NEW.attempts, NEW.error);
END;
