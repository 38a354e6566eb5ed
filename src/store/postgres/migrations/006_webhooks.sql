-- Webhooks: the operation's callback URL and the subscriptions that apply to it, fixed at capture;
-- an outbox of deliveries, one per (terminal event, endpoint), written by a trigger in the very
-- transaction that writes the terminal event, so no operation is terminal without its deliveries
-- and none gets two for one event (the primary key); the attempts of each; and the endpoints
-- disabled by a 410, shared by every process on the schema.
ALTER TABLE operations
  ADD COLUMN callback_url text,
  ADD COLUMN webhook_subscriptions jsonb;    -- [{endpoint, url, events}] or NULL

-- Subscriptions whose receiver answered 410 Gone: nothing more is sent there, by any process.
-- Keyed by name and URL, so pointing the subscription at a new URL starts afresh.
CREATE TABLE webhook_endpoints (
  endpoint    text NOT NULL,
  url         text NOT NULL,
  disabled_at bigint NOT NULL,               -- epoch ms, Node's clock
  reason      text NOT NULL,
  PRIMARY KEY (endpoint, url)
);

CREATE TABLE webhook_deliveries (
  operation_id    text NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
  seq             integer NOT NULL,          -- the terminal event's
  endpoint        text NOT NULL,             -- 'callback' or a subscription's name
  url             text NOT NULL,
  state           text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'disabled')),
  attempts        integer NOT NULL DEFAULT 0,
  -- Due from then on while pending; while leased, when the lease runs out (so one index finds both).
  next_attempt_at bigint NOT NULL,
  lease_owner     text,
  last_error      text,
  created_at      bigint NOT NULL,
  updated_at      bigint NOT NULL,
  PRIMARY KEY (operation_id, seq, endpoint)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

CREATE TABLE webhook_attempts (
  operation_id     text NOT NULL,
  seq              integer NOT NULL,
  endpoint         text NOT NULL,
  attempt          integer NOT NULL,
  at               bigint NOT NULL,
  status           integer,
  error            text,
  latency_ms       integer NOT NULL,
  response_snippet text,
  PRIMARY KEY (operation_id, seq, endpoint, attempt),
  FOREIGN KEY (operation_id, seq, endpoint)
    REFERENCES webhook_deliveries (operation_id, seq, endpoint) ON DELETE CASCADE
);

-- On the terminal event's row rather than on the status change, so it has the event's seq. A
-- row-level trigger whose WHEN clause skips the function for every other event (captures among
-- them, which arrive as multi-row INSERTs). A target whose endpoint was disabled is recorded as
-- disabled at once, so it stays visible and is never sent.
CREATE FUNCTION operation_event_webhooks() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO webhook_deliveries (operation_id, seq, endpoint, url, state, next_attempt_at, created_at, updated_at)
    SELECT NEW.operation_id, NEW.seq, t.endpoint, t.url,
           CASE WHEN EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.endpoint = t.endpoint AND w.url = t.url)
                THEN 'disabled' ELSE 'pending' END,
           NEW.at, NEW.at, NEW.at
    FROM operations o
    CROSS JOIN LATERAL (
      SELECT 'callback' AS endpoint, o.callback_url AS url, NULL::jsonb AS events WHERE o.callback_url IS NOT NULL
      UNION ALL
      SELECT s ->> 'endpoint', s ->> 'url', s -> 'events'
        FROM jsonb_array_elements(coalesce(o.webhook_subscriptions, '[]'::jsonb)) AS s
    ) AS t
    WHERE o.id = NEW.operation_id
      AND (t.events IS NULL OR jsonb_typeof(t.events) = 'null' OR t.events ? lower(NEW.status))
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

CREATE TRIGGER operation_event_webhooks AFTER INSERT ON operation_events
  FOR EACH ROW WHEN (NEW.status IN ('Succeeded', 'Failed', 'Canceled'))
  EXECUTE FUNCTION operation_event_webhooks();
