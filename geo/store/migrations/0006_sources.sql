-- hotspot311 PostGIS store, schema version 6: feed sources (geo.feeds).
-- A source is a city feed registered by name: its configuration (kind, endpoint, column
-- mapping, page size, rate limit, the NAME of the environment variable holding a token,
-- never the token) as JSON, and its sync state. The state is written in the same
-- transaction as the batch of the page it describes. (Versions 4 and 5 are other
-- branches'.)

CREATE TABLE sources (
    name          text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('open311', 'socrata', 'carto', 'file_url')),
    config        jsonb NOT NULL,
    watermark     jsonb,
    last_sync     timestamptz,
    last_outcome  text CHECK (last_outcome IN ('running', 'ok', 'error')),
    last_error    text,
    rows_synced   bigint NOT NULL DEFAULT 0,
    pages_synced  bigint NOT NULL DEFAULT 0
);

-- Open311 services.json of each source, as served (one JSON array).
CREATE TABLE source_services (
    source        text PRIMARY KEY REFERENCES sources (name) ON DELETE CASCADE,
    services      jsonb NOT NULL,
    fetched_at    timestamptz NOT NULL DEFAULT now()
);
