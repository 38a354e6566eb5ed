-- A token per lease (docs/glossary.md, "lease token"): every write that finishes, retries, hands back
-- or extends a lease is fenced by it, never by the owner name, which names a process and not a claim.
-- Leases held when this runs have no token: they can no longer be finished, run out, and are
-- recovered like those of a crashed process (the attempt counted, its outcome unknown).
ALTER TABLE operations ADD COLUMN lease_token TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN lease_token TEXT;
