-- hotspot311 PostGIS store, schema version 3: request_areas partitioned by layer.
--
-- Re-joining a whole layer (a new generation, `hotspot311 join`, a big load) used to
-- DELETE that layer's rows and insert them again through both indexes: at 1M requests
-- and 7 layers, writing request_areas cost more than finding the areas. Now each layer
-- has its own partition (LIST on layer_key), so a whole-layer re-join fills a fresh
-- table without indexes, builds them once, and swaps it in for the old partition
-- (geo.postgis_join.replace_layer). Partitions are made by the code when a layer is
-- first re-joined whole, named ra_layer_<layer_key> (primary key ra_pkey_<layer_key>;
-- no layer key can make one name collide with another); rows of a layer that has no
-- partition yet (the rows of existing databases) stay in ra_default until then.
--
-- The (layer_key, code) index goes: a layer's partition is its own index on layer_key,
-- and scanning one partition for a code costs less than keeping the index on every
-- re-join. Also: requests.geom (WGS84) loses its GiST index. The store's spatial work is on
-- geom_city (indexed); geom stays for display and export. Rebuilding a second GiST index
-- on every big load cost as much as one more copy of the data.

DROP INDEX requests_geom_gist;

ALTER TABLE request_areas RENAME TO ra_default;
ALTER INDEX request_areas_pkey RENAME TO ra_default_pkey;
DROP INDEX request_areas_layer;

CREATE TABLE request_areas (
    service_request_id  text NOT NULL,
    layer_key           text NOT NULL,
    code                text NOT NULL,
    PRIMARY KEY (service_request_id, layer_key)
) PARTITION BY LIST (layer_key);

ALTER TABLE request_areas ATTACH PARTITION ra_default DEFAULT;
