-- FIFO per key (docs/policy.md, "Replay order"): operations of one route with the same ordering key
-- replay one at a time, in capture order. A key's queue is its operations not yet finished: waiting,
-- in flight, or dead-lettered (a dead letter blocks its key until it is redriven, discarded or
-- purged). Only the first of a key's queue (its head) may be leased; the others are `key_blocked`
-- and left out of the due indexes, so the lease stays a range read of operations_due whatever the
-- number of operations waiting behind a head. Operations without a key are never blocked.
--
-- ordering_key: the route's key of the request, scoped by the gateway to the tenant; NULL: no key.
-- key_seq:      capture order within the key's queue (1 + the last one still in it).
-- key_blocked:  1 while an earlier operation of the key is not finished.
ALTER TABLE operations ADD COLUMN ordering_key TEXT;
ALTER TABLE operations ADD COLUMN key_seq INTEGER;
ALTER TABLE operations ADD COLUMN key_blocked INTEGER NOT NULL DEFAULT 0;

-- A key's queue in capture order: the capture reads its last, a finish its new head.
CREATE INDEX operations_key_queue ON operations (route, ordering_key, key_seq)
  WHERE ordering_key IS NOT NULL AND (status IN ('NotStarted', 'Running') OR dead_lettered_at IS NOT NULL);

-- The due indexes leave out blocked operations: a key's backlog is not due until its head is done.
DROP INDEX operations_due;
CREATE INDEX operations_due ON operations (priority, route, next_attempt_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND key_blocked = 0;
DROP INDEX operations_next_attempt;
CREATE INDEX operations_next_attempt ON operations (next_attempt_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND key_blocked = 0;
DROP INDEX operations_due_by_route;
CREATE INDEX operations_due_by_route ON operations (route, next_attempt_at)
  WHERE status IN ('NotStarted', 'Running') AND lease_owner IS NULL AND key_blocked = 0;

-- The head leaves the queue (succeeded, failed without a dead letter, canceled, discarded): the next
-- operation of the key, in capture order, becomes its head, in the same commit. A blocked operation
-- leaving (an operator's cancel) changes no head: the first of the queue is still unblocked.
CREATE TRIGGER operation_key_advanced AFTER UPDATE OF status, dead_lettered_at ON operations
WHEN NEW.ordering_key IS NOT NULL
  AND (OLD.status IN ('NotStarted', 'Running') OR OLD.dead_lettered_at IS NOT NULL)
  AND NOT (NEW.status IN ('NotStarted', 'Running') OR NEW.dead_lettered_at IS NOT NULL)
BEGIN
  UPDATE operations SET key_blocked = 0
  WHERE key_blocked = 1 AND id = (SELECT id FROM operations
    WHERE route = NEW.route AND ordering_key = NEW.ordering_key
      AND (status IN ('NotStarted', 'Running') OR dead_lettered_at IS NOT NULL)
    ORDER BY key_seq LIMIT 1);
END;

-- Retention deletes only finished operations; a dead letter it deletes leaves its key's queue too.
CREATE TRIGGER operation_key_purged AFTER DELETE ON operations
WHEN OLD.ordering_key IS NOT NULL AND OLD.dead_lettered_at IS NOT NULL
BEGIN
  UPDATE operations SET key_blocked = 0
  WHERE key_blocked = 1 AND id = (SELECT id FROM operations
    WHERE route = OLD.route AND ordering_key = OLD.ordering_key
      AND (status IN ('NotStarted', 'Running') OR dead_lettered_at IS NOT NULL)
    ORDER BY key_seq LIMIT 1);
END;
