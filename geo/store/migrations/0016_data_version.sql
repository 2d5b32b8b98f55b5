-- hotspot311 PostGIS store, schema version 16: a number that changes with requests.
--
-- The Open311 server keeps the pages it has answered and serves one again only while
-- the requests are as they were (hotspot311.api.cache). It asks for this number before
-- each page: one row, read by primary key. A statement-level trigger adds one to it in
-- the transaction of every statement that writes requests (INSERT, UPDATE, DELETE,
-- TRUNCATE, COPY), whichever code or person runs it, so a new number is visible exactly
-- when the change is. Triggers do not fire in a session with
-- session_replication_role = replica (a logical-replication subscriber, pg_restore
-- --disable-triggers): restart the Open311 servers after such a load.
CREATE TABLE data_version (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    version  bigint NOT NULL
);
INSERT INTO data_version (one, version) VALUES (true, 1);

CREATE FUNCTION requests_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE data_version SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER requests_data_version
    AFTER INSERT OR UPDATE OR DELETE ON requests
    FOR EACH STATEMENT EXECUTE FUNCTION requests_changed();
CREATE TRIGGER requests_data_version_truncate
    AFTER TRUNCATE ON requests
    FOR EACH STATEMENT EXECUTE FUNCTION requests_changed();
