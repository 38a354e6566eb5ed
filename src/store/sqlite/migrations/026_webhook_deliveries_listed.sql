-- Webhook deliveries by state, for the admin API (GET /api/webhooks/deliveries), newest first with a
-- (created_at, operation_id, seq, endpoint) cursor: every delivery in a state, or those to one
-- endpoint. A page is a range read of one of these, whatever the outbox holds. created_at never
-- changes and state changes once or twice in a delivery's life, so leasing and recording attempts
-- (which change next_attempt_at, attempts and updated_at) leave these entries where they are.
CREATE INDEX webhook_deliveries_by_state ON webhook_deliveries (state, created_at, operation_id, seq, endpoint);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint, state, created_at, operation_id, seq);
