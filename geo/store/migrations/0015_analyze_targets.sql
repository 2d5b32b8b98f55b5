-- hotspot311 PostGIS store, schema version 15: no planner statistics for display-only
-- columns.
--
-- A big write now analyzes requests in its own transaction (geo.store.postgis_load:
-- needs_analyze), so the planner knows a first load's million rows at once. ANALYZE
-- builds statistics for every column, and at 1M rows most of its 1.8 s went to columns
-- that no query filters, joins or groups on: free text, display values, the raw extra
-- fields and the row fingerprint (x and y keep theirs: "located" filters them). A
-- statistics target of 0 leaves them out (0.5 s at 1M rows). A query that did filter one
-- of them would get the planner's default estimates.
ALTER TABLE requests
    ALTER COLUMN status_notes SET STATISTICS 0,
    ALTER COLUMN description SET STATISTICS 0,
    ALTER COLUMN address SET STATISTICS 0,
    ALTER COLUMN media_url SET STATISTICS 0,
    ALTER COLUMN geocode_match_type SET STATISTICS 0,
    ALTER COLUMN geocode_score SET STATISTICS 0,
    ALTER COLUMN quality_flags SET STATISTICS 0,
    ALTER COLUMN extra SET STATISTICS 0,
    ALTER COLUMN row_hash SET STATISTICS 0,
    ALTER COLUMN batch_id SET STATISTICS 0,
    ALTER COLUMN geom SET STATISTICS 0;
