-- hotspot311 PostGIS store, schema version 11: requests by service type and request time.
--
-- A one-request look-up (reports.tracking) asks for the newest request of the request's
-- type and for that type's requests of a 30-day window near the request; the app's
-- service-type filter asks for one type's counts. Both read one type's rows in time
-- order: this index serves them (the newest request is one index probe, a window one
-- range scan) instead of a scan of every request.
CREATE INDEX IF NOT EXISTS requests_service_requested
    ON requests (service_name, requested_datetime);
