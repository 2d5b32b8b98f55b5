-- hotspot311 PostGIS store, schema version 9: the join index of each layer generation.
--
-- A write locates its requests in Python with the embedded store's index
-- (geo.joins.build_index: subdivided pieces, a lookup grid) and loads the area codes with
-- the rows by binary COPY, so both stores agree by construction. Building an index costs
-- 0.2-0.6 s a layer; it depends only on the generation's areas, so it is built once and
-- kept here (geo.joins.index_to_bytes, an .npz without pickle), with the SHA-256 of the
-- areas it was built from (codes and WKB) and the index format. An index of another
-- format, or none (generations stored before this migration), is built again on use.
-- (Versions 6-8 are other branches'.)

CREATE TABLE join_indexes (
    layer_key   text NOT NULL,
    generation  integer NOT NULL,
    digest      text NOT NULL,
    format      text NOT NULL,
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (layer_key, generation),
    FOREIGN KEY (layer_key, generation) REFERENCES generations ON DELETE CASCADE
);
