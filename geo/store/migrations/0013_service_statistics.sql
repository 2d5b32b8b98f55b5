-- One service type's page ("open street light outages, newest first") asks
-- left(service_name, 200) = … AND service_name = … AND status = … (migration 0012 says
-- why). Without statistics on how these columns go together, the planner multiplies the
-- selectivity of the two service conditions as if they were independent, expects a
-- few thousand of the 20,000 matching rows at 1M requests, and sorts a parallel scan of
-- the whole table (1.7 s) instead of walking requests_service_order (11 ms). These
-- statistics tell it the two name conditions are one and how status goes with them;
-- ANALYZE (autovacuum's, or this one) fills them.
CREATE STATISTICS IF NOT EXISTS requests_service_stats (dependencies, mcv)
    ON (left(service_name, 200)), service_name, status FROM requests;
ANALYZE requests;
