-- migrate: no-transaction
-- 0015_search_pages: two more walks of call search that read only index pages.
--
-- "Calls longer than 20 minutes" (0.09 % of calls) walked calls_started_idx newest first reading
-- each call's row for its length: 48,000 rows for a page at 10 M calls (cold: 450 ms). The
-- length index of 0002 now carries call_id and the scope's columns, so api/search.py takes the
-- long calls from it index-only (~9,000 entries at 10 M), sorts them by start and reads only
-- the page's rows.
--
-- Every page counts each call's filed recordings and sums their length: two reads a call on
-- recordings_call_idx and the heap (a cold page of 50 calls: ~100 reads, 20-30 ms at 10 M).
-- Carrying status and duration_ms makes that lookup index-only. status is already in partial
-- indexes' predicates (a change of it was never a HOT update) and duration_ms, once known, is
-- kept (repository._KEEP): few updates that were HOT stop being so.
--
-- Built concurrently like 0014 (10 M calls: see docs/search.md for the time), so outside a
-- transaction, statement by statement, and safe to re-run: an index left invalid by an
-- interrupted build is dropped and built again. The new indexes are built before the old go.

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['calls_duration_page_idx', 'recordings_call_page_idx'] LOOP
        IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(name)
                   AND NOT indisvalid) THEN
            EXECUTE format('DROP INDEX %I', name);
        END IF;
    END LOOP;
END $$;

SET maintenance_work_mem = '256MB';
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_duration_page_idx
    ON calls (duration_s, started_at) INCLUDE (call_id, department, extension)
    WHERE duration_s IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS calls_duration_started_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS recordings_call_page_idx
    ON recordings (call_id, segment) INCLUDE (status, duration_ms);
DROP INDEX CONCURRENTLY IF EXISTS recordings_call_idx;
RESET maintenance_work_mem;

-- An index-only lookup reads the heap for every page the visibility map does not mark
-- all-visible: the newest recordings, the ones the latest pages list. As 0013 did for calls,
-- autovacuum visits recordings every 10,000 new or changed rows (by default 20 % of the table).
ALTER TABLE recordings SET (autovacuum_vacuum_insert_scale_factor = 0,
                            autovacuum_vacuum_insert_threshold = 10000,
                            autovacuum_vacuum_scale_factor = 0,
                            autovacuum_vacuum_threshold = 10000);
