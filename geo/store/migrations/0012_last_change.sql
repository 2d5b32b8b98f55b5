-- Open311 updated_after/updated_before filter on a request's last change: its
-- updated_datetime, or its requested_datetime when it was never updated (many sources
-- leave updated_datetime empty until the first change; a feed following updates must
-- still see those requests). The index of migration 0007 on updated_datetime alone is
-- replaced by one on that expression, under the same name (a bulk load drops and
-- rebuilds it: geo/store/postgis_load.py).
DROP INDEX IF EXISTS requests_updated;
CREATE INDEX requests_updated
    ON requests ((coalesce(updated_datetime, requested_datetime)));
