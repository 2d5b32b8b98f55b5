-- hotspot311 PostGIS store, schema version 2: stored hotspot runs as the app keeps them.
-- 0001 created hotspot_runs / hotspots / hotspot_members; this adds what a faithful
-- round trip needs: the data snapshot of a run, each hotspot's content hash id (the
-- integer hotspot_id of 0001 is the hotspot's position in rank order), every summary
-- column as jsonb and the hull in the city CRS (the 0001 hull column is WGS84).

ALTER TABLE hotspot_runs
    ADD COLUMN snapshot jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN n_selected bigint;

ALTER TABLE hotspots
    ADD COLUMN hotspot_key text,
    ADD COLUMN attrs jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN hull_city geometry;               -- city SRID

CREATE INDEX hotspots_key ON hotspots (hotspot_key);
CREATE INDEX hotspot_runs_created ON hotspot_runs (created_at);
