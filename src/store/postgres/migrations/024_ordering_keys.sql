-- FIFO per key (docs/policy.md, "Replay order"): operations of one route with the same ordering key
-- replay one at a time, in capture order. A key's queue is its operations not yet finished: waiting,
-- in flight, or dead-lettered (a dead letter blocks its key until it is redriven, discarded or
-- purged). Only the first of a key's queue (its head) may be leased; the others are `key_blocked`
-- and left out of the due indexes, so the lease stays a range read of operations_due whatever the
-- number of operations waiting behind a head. Operations without a key are never blocked.
--
-- ordering_key: the route's key of the request, scoped by the gateway to the tenant; NULL: no key.
-- key_seq:      capture order within the key's queue (1 + the last one still in it).
-- key_blocked:  true while an earlier operation of the key is not finished.
ALTER TABLE operations ADD COLUMN ordering_key text, ADD COLUMN key_seq bigint,
  ADD COLUMN key_blocked boolean NOT NULL DEFAULT false;

-- A key's queue in capture order: the capture reads its last, a finish its new head.
CREATE INDEX operations_key_queue ON operations (route, ordering_key, key_seq)
  WHERE ordering_key IS NOT NULL AND (status IN ('NotStarted', 'Running') OR dead_lettered_at IS NOT NULL);

-- The due indexes leave out blocked operations: a key's backlog is not due until its head is done.
DROP INDEX operations_due;
CREATE INDEX operations_due ON operations (priority, route, next_attempt_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND NOT key_blocked;
DROP INDEX operations_next_attempt;
CREATE INDEX operations_next_attempt ON operations (next_attempt_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND NOT key_blocked;
DROP INDEX operations_due_by_route;
CREATE INDEX operations_due_by_route ON operations (route, next_attempt_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND NOT key_blocked;

-- Several processes capture and finish one key's operations at once: each change to a key's queue
-- takes the key's transaction-scoped advisory lock first, so a capture and the finish of the head
-- never miss each other (a capture counted behind a head that is finishing, and that finish not
-- seeing it, would leave the key with no head). The functions are VOLATILE, so each statement in
-- them reads a snapshot taken after the lock was granted: everything the previous holder committed.
-- First key of the lock: "Spillway ordering keys"; the second the key's hash (a collision only
-- makes two keys take turns).
CREATE FUNCTION operations_key_lock(route text, ordering_key text) RETURNS void LANGUAGE sql VOLATILE
  AS $$ SELECT pg_advisory_xact_lock(1397771339, hashtext(route || '/' || ordering_key)) $$;

-- A capture joins the end of its key's queue, blocked if the queue was not empty. Row by row, so
-- a multi-row INSERT with two operations of one key sees the first when placing the second.
CREATE FUNCTION operations_key_placed() RETURNS trigger LANGUAGE plpgsql VOLATILE
  SET search_path FROM CURRENT AS $$
DECLARE
  last bigint;
BEGIN
  PERFORM operations_key_lock(NEW.route, NEW.ordering_key);
  SELECT max(key_seq) INTO last FROM operations
    WHERE route = NEW.route AND ordering_key = NEW.ordering_key
      AND (status IN ('NotStarted', 'Running') OR dead_lettered_at IS NOT NULL);
  NEW.key_seq := coalesce(last, 0) + 1;
  NEW.key_blocked := last IS NOT NULL;
  RETURN NEW;
END $$;

CREATE TRIGGER operations_key_placed BEFORE INSERT ON operations
  FOR EACH ROW WHEN (NEW.ordering_key IS NOT NULL) EXECUTE FUNCTION operations_key_placed();

-- An operation left its key's queue (succeeded, failed without a dead letter, canceled, discarded,
-- or a dead letter purged): if the queue has no head now, its first operation becomes the head.
-- A blocked one leaving (an operator's cancel) changes nothing: the head is still there. A row
-- locked by another transaction is skipped rather than waited for (only an operator's cancel locks
-- a blocked row, and it is leaving), so two changes to one key never wait on each other in a cycle.
CREATE FUNCTION operations_key_advanced() RETURNS trigger LANGUAGE plpgsql VOLATILE
  SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM operations_key_lock(OLD.route, OLD.ordering_key);
  IF NOT EXISTS (SELECT 1 FROM operations
      WHERE route = OLD.route AND ordering_key = OLD.ordering_key AND NOT key_blocked
        AND (status IN ('NotStarted', 'Running') OR dead_lettered_at IS NOT NULL)) THEN
    UPDATE operations SET key_blocked = false
    WHERE key_blocked AND id = (SELECT id FROM operations
      WHERE route = OLD.route AND ordering_key = OLD.ordering_key
        AND (status IN ('NotStarted', 'Running') OR dead_lettered_at IS NOT NULL)
      ORDER BY key_seq LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER operations_key_advanced AFTER UPDATE OF status, dead_lettered_at ON operations
  FOR EACH ROW WHEN (OLD.ordering_key IS NOT NULL
    AND (OLD.status IN ('NotStarted', 'Running') OR OLD.dead_lettered_at IS NOT NULL)
    AND NOT (NEW.status IN ('NotStarted', 'Running') OR NEW.dead_lettered_at IS NOT NULL))
  EXECUTE FUNCTION operations_key_advanced();

CREATE TRIGGER operations_key_purged AFTER DELETE ON operations
  FOR EACH ROW WHEN (OLD.ordering_key IS NOT NULL AND OLD.dead_lettered_at IS NOT NULL)
  EXECUTE FUNCTION operations_key_advanced();
