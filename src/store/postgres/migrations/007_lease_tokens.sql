-- A token per lease (docs/glossary.md, "lease token"): every write that finishes, retries, hands back
-- or extends a lease is fenced by it, never by the owner name, which names a process and not a claim.
-- operations.lease_token exists since 001 (it named the lease call); from now on it is each lease's
-- own. Leases held when this runs keep their old token, which no new process knows: they run out
-- and are recovered like those of a crashed process (the attempt counted, its outcome unknown).
ALTER TABLE webhook_deliveries ADD COLUMN lease_token text;
