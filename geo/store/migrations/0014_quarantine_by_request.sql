-- A keyed Open311 post (an Idempotency-Key) checks the quarantined rows of its tracking
-- number before it is stored (hotspot311/api/intake.py): by this index, not by reading
-- the whole quarantine, which grows with every unusable row of every source.
CREATE INDEX IF NOT EXISTS quarantine_request ON quarantine (service_request_id);
