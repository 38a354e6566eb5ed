-- Webhooks: the operation's callback URL and the subscriptions that apply to it, fixed at capture;
-- an outbox of deliveries, one per (terminal event, endpoint), written by a trigger in the very
-- transaction that writes the terminal event, so no operation is terminal without its deliveries
-- and none gets two for one event; the attempts of each; and the endpoints disabled by a 410.
ALTER TABLE operations ADD COLUMN callback_url TEXT;
ALTER TABLE operations ADD COLUMN webhook_subscriptions TEXT; -- JSON [{endpoint, url, events}] or NULL

-- Subscriptions whose receiver answered 410 Gone: nothing more is sent there, by any process.
-- Keyed by name and URL, so pointing the subscription at a new URL starts afresh.
CREATE TABLE webhook_endpoints (
  endpoint    TEXT NOT NULL,
  url         TEXT NOT NULL,
  disabled_at INTEGER NOT NULL,
  reason      TEXT NOT NULL,
  PRIMARY KEY (endpoint, url)
) STRICT, WITHOUT ROWID;

CREATE TABLE webhook_deliveries (
  operation_id     TEXT NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
  seq              INTEGER NOT NULL,           -- the terminal event's
  endpoint         TEXT NOT NULL,              -- 'callback' or a subscription's name
  url              TEXT NOT NULL,
  state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'disabled')),
  attempts         INTEGER NOT NULL DEFAULT 0,
  -- Due from then on while pending; while leased, when the lease runs out (so one index finds both).
  next_attempt_at  INTEGER NOT NULL,
  lease_owner      TEXT,
  last_error       TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  PRIMARY KEY (operation_id, seq, endpoint)
) STRICT, WITHOUT ROWID;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

CREATE TABLE webhook_attempts (
  operation_id     TEXT NOT NULL,
  seq              INTEGER NOT NULL,
  endpoint         TEXT NOT NULL,
  attempt          INTEGER NOT NULL,
  at               INTEGER NOT NULL,
  status           INTEGER,
  error            TEXT,
  latency_ms       INTEGER NOT NULL,
  response_snippet TEXT,
  PRIMARY KEY (operation_id, seq, endpoint, attempt),
  FOREIGN KEY (operation_id, seq, endpoint)
    REFERENCES webhook_deliveries (operation_id, seq, endpoint) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- On the terminal event's row rather than on the status change, so it has the event's seq whatever
-- order SQLite fires the two UPDATE triggers in. A target whose endpoint was disabled is recorded
-- as disabled at once, so it stays visible and is never sent.
CREATE TRIGGER operation_event_webhooks AFTER INSERT ON operation_events
WHEN NEW.status IN ('Succeeded', 'Failed', 'Canceled')
BEGIN
  INSERT OR IGNORE INTO webhook_deliveries
    (operation_id, seq, endpoint, url, state, next_attempt_at, created_at, updated_at)
  SELECT NEW.operation_id, NEW.seq, t.endpoint, t.url,
         CASE WHEN EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.endpoint = t.endpoint AND w.url = t.url)
              THEN 'disabled' ELSE 'pending' END,
         NEW.at, NEW.at, NEW.at
  FROM (
    SELECT 'callback' AS endpoint, o.callback_url AS url, NULL AS events
      FROM operations o WHERE o.id = NEW.operation_id AND o.callback_url IS NOT NULL
    UNION ALL
    SELECT json_extract(s.value, '$.endpoint'), json_extract(s.value, '$.url'), json_extract(s.value, '$.events')
      FROM operations o, json_each(o.webhook_subscriptions) s
      WHERE o.id = NEW.operation_id AND o.webhook_subscriptions IS NOT NULL
  ) t
  WHERE t.events IS NULL OR EXISTS (SELECT 1 FROM json_each(t.events) WHERE value = lower(NEW.status));
END;
