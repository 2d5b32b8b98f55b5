-- hotspot311 PostGIS store, schema version 4: problems.
--
-- requests.problem_id: the service_request_id of the first request of the problem the
-- request belongs to (clustering/problems.py has the rule). The loader never writes it:
-- a write that is given the problem rule sets it for the written requests and the
-- problems they touch, in the same transaction (geo/store/postgis_problems.py). Rows
-- stored before this migration have none until the next such write or
-- `hotspot311 problems rebuild`.

ALTER TABLE requests ADD COLUMN problem_id text;
CREATE INDEX requests_problem ON requests (problem_id);
