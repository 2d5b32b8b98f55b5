-- hotspot311 PostGIS store, schema version 1.
-- Applied by geo.postgis_schema.migrate inside one transaction; never edit an applied
-- migration: add 0002_….sql instead.

CREATE EXTENSION IF NOT EXISTS postgis;

-- One row: the city this database serves. The city SRID is bound at store open
-- (geo.postgis_schema.bind_city), which also adds the SRID checks on geom_city and on
-- the area geometries: the SRID comes from the profile, not from this file.
CREATE TABLE store_meta (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    city       text NOT NULL,
    crs        text NOT NULL,
    city_srid  integer NOT NULL,
    bound_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE batches (
    seq          bigserial PRIMARY KEY,
    batch_id     text,
    source_file  text,
    format       text,
    encoding     text,
    rows_read    bigint NOT NULL,
    inserted     bigint NOT NULL,
    updated      bigint NOT NULL,
    unchanged    bigint NOT NULL,
    quarantined  bigint NOT NULL,
    ingested_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE requests (
    service_request_id  text PRIMARY KEY,
    status              text,
    status_notes        text,
    service_code        text,
    service_name        text,
    agency_responsible  text,
    description         text,
    requested_datetime  timestamptz,
    updated_datetime    timestamptz,
    expected_datetime   timestamptz,
    closed_datetime     timestamptz,
    address             text,
    zipcode             text,
    lat                 double precision,
    lon                 double precision,
    media_url           text,
    source              text,
    x                   double precision,
    y                   double precision,
    geocode_match_type  text,
    geocode_score       double precision,
    quality_flags       text,
    synthetic           boolean NOT NULL DEFAULT false,
    extra               jsonb,
    batch_id            text,
    row_hash            bigint NOT NULL,   -- uint64 fingerprint stored as its int64 bit pattern
    geom                geometry(Point, 4326),
    geom_city           geometry(Point)    -- city SRID, checked by bind_city
);
CREATE INDEX requests_geom_city_gist ON requests USING gist (geom_city);
CREATE INDEX requests_geom_gist ON requests USING gist (geom);
CREATE INDEX requests_requested ON requests (requested_datetime);

CREATE TABLE quarantine (
    quarantine_id       text PRIMARY KEY,
    seq                 bigserial NOT NULL,
    batch_id            text,
    source_file         text,
    source_row          bigint,
    reason              text NOT NULL,
    detail              text,
    service_request_id  text,
    address             text,
    raw                 text,              -- the source row as JSON text, verbatim
    quarantined_at      timestamptz
);
CREATE INDEX quarantine_reason ON quarantine (reason);

-- Boundary layers, MapIt style: a layer has generations; each generation has its areas
-- (codes unique per layer and generation) and the areas' subdivided pieces for lookups.
CREATE TABLE layers (
    layer_key  text PRIMARY KEY CHECK (layer_key ~ '^[a-z][a-z0-9_]{0,39}$'),
    seq        bigserial NOT NULL
);

CREATE TABLE generations (
    layer_key   text NOT NULL REFERENCES layers ON DELETE CASCADE,
    generation  integer NOT NULL CHECK (generation > 0),
    seq         bigserial NOT NULL,
    title       text NOT NULL,
    valid_from  date,
    source      text NOT NULL,
    id_field    text NOT NULL,
    name_field  text NOT NULL,
    n_areas     integer NOT NULL,
    active      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (layer_key, generation)
);
CREATE UNIQUE INDEX generations_one_active ON generations (layer_key) WHERE active;

CREATE TABLE areas (
    layer_key   text NOT NULL,
    generation  integer NOT NULL,
    code        text NOT NULL,
    name        text,
    geom        geometry NOT NULL                  -- city SRID, checked by bind_city
                CHECK (GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON')),
    PRIMARY KEY (layer_key, generation, code),
    FOREIGN KEY (layer_key, generation) REFERENCES generations ON DELETE CASCADE
);
CREATE INDEX areas_geom_gist ON areas USING gist (geom);

CREATE TABLE area_pieces (
    piece_id    bigserial PRIMARY KEY,
    layer_key   text NOT NULL,
    generation  integer NOT NULL,
    code        text NOT NULL,
    geom        geometry(Polygon) NOT NULL,        -- city SRID, checked by bind_city
    FOREIGN KEY (layer_key, generation, code) REFERENCES areas ON DELETE CASCADE
);
CREATE INDEX area_pieces_geom_gist ON area_pieces USING gist (geom);
CREATE INDEX area_pieces_generation ON area_pieces (layer_key, generation);

-- The area code of each request in the active generation of each layer. A row per
-- (request, layer) rather than a column per layer: layers are added at run time without
-- DDL on the big table, re-joining one layer rewrites only that layer's rows (not every
-- request row), and a point outside every area simply has no row.
CREATE TABLE request_areas (
    service_request_id  text NOT NULL,
    layer_key           text NOT NULL,
    code                text NOT NULL,
    PRIMARY KEY (service_request_id, layer_key)
);
CREATE INDEX request_areas_layer ON request_areas (layer_key, code);

-- Stored hotspot runs (DBSCAN per service type and window), for reproduction and
-- week-on-week comparison.
CREATE TABLE hotspot_runs (
    run_id          bigserial PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    service_names   text[] NOT NULL,
    window_start    timestamptz,
    window_end      timestamptz,
    status_filter   text,
    eps_m           double precision NOT NULL CHECK (eps_m > 0),
    min_samples     integer NOT NULL CHECK (min_samples > 0),
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,
    n_requests      bigint,
    n_hotspots      integer
);

CREATE TABLE hotspots (
    run_id          bigint NOT NULL REFERENCES hotspot_runs ON DELETE CASCADE,
    hotspot_id      integer NOT NULL,
    n_members       integer NOT NULL,
    n_open          integer,
    n_overdue       integer,
    oldest_open     timestamptz,
    priority        double precision,
    priority_parts  jsonb,
    areas           jsonb,
    top_addresses   jsonb,
    hull            geometry(Geometry, 4326),
    PRIMARY KEY (run_id, hotspot_id)
);
CREATE INDEX hotspots_hull_gist ON hotspots USING gist (hull);

CREATE TABLE hotspot_members (
    run_id              bigint NOT NULL,
    hotspot_id          integer NOT NULL,
    service_request_id  text NOT NULL,
    core                boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, hotspot_id, service_request_id),
    FOREIGN KEY (run_id, hotspot_id) REFERENCES hotspots ON DELETE CASCADE
);
CREATE INDEX hotspot_members_request ON hotspot_members (service_request_id);
