-- The Open311 server (hotspot311/api): accounts' API keys and the indexes its reads use.

-- API keys: only the SHA-256 of a key is stored (geo/store/api_keys.py), with the
-- account's role; a revoked key keeps its row (revoked_at set) so the account stays known.
CREATE TABLE api_keys (
    name        text PRIMARY KEY,
    role        text NOT NULL CHECK (role IN ('liaison', 'field_staff', 'partner')),
    key_hash    text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Open311 pages are ordered newest first by (requested_datetime, service_request_id) in
-- code-point order and walked by keyset; this index serves both the order and the
-- "(time, id) < (last time, last id)" condition, scanned backwards.
CREATE INDEX requests_open311_order
    ON requests (requested_datetime, service_request_id COLLATE "C");
CREATE INDEX requests_updated ON requests (updated_datetime);
