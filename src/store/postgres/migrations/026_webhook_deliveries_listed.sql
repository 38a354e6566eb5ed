-- Webhook deliveries by state, for the admin API (GET /api/webhooks/deliveries), newest first with a
-- (created_at, operation_id, seq, endpoint) cursor: every delivery in a state, or those to one
-- endpoint. A page is a range read of one of these, whatever the outbox holds. Their columns are
-- the delivery's creation and state, which a lease or an attempt never changes; each of those
-- writes changes next_attempt_at (webhook_deliveries_due) and so is never a HOT update: it adds an
-- entry to these as it does to the primary key, bounded by the deliveries' attempts.
CREATE INDEX webhook_deliveries_by_state ON webhook_deliveries (state, created_at, operation_id, seq, endpoint);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint, state, created_at, operation_id, seq);
