-- Open311 updated_after/updated_before filter on a request's last change: its
-- updated_datetime, or its requested_datetime when it was never updated (many sources
-- leave updated_datetime empty until the first change; a feed following updates must
-- still see those requests). The index of migration 0007 on updated_datetime alone is
-- replaced by one on that expression, under the same name (a bulk load drops and
-- rebuilds it: geo/store/postgis_load.py).
DROP INDEX IF EXISTS requests_updated;
CREATE INDEX requests_updated
    ON requests ((coalesce(updated_datetime, requested_datetime)));

-- A page of one service type (the commonest filter: "open street light outages, newest
-- first") walks this index in the page order instead of filtering the whole time window
-- (geo/store/postgis_query.py asks with left(service_name, 200) = left(%s, 200) AND
-- service_name = %s when one type is given). The first 200 characters only: a name is
-- whatever a source sent, and a btree row must fit in a page.
CREATE INDEX requests_service_order
    ON requests ((left(service_name, 200)), requested_datetime, service_request_id COLLATE "C");
