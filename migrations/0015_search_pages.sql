-- migrate: no-transaction
-- 0015_search_pages: call search's walks read fewer pages.
--
-- 0014 indexed each call under week * 10000 + each 4-digit run of its numbers. A rare partial
-- number looks up its runs in every week of the range: at 10 M calls over two years, 264 keys
-- for 7 digits, each on a different leaf page of the GIN index's entry tree (the keys sort by
-- week first): ~200 pages read cold, 20-30 ms before a row. Here the keys are run * 100000 +
-- week, so one run's weeks sit side by side (~40 to a leaf page), and api/search.py looks up
-- batches of weeks growing twice as long in one GIN scan each: a few pages for two years.
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
--
-- 0014's calls_digit_keys_idx and its function stay: the previous version's partial-number
-- searches use them, and it must run on this schema (README, Rolling back; without the
-- function its searches fail, without the index they scan every call). A later release,
-- once no supported version reads them, drops both.

-- Each run of 4 digits in number_digits (its words are the call's numbers; runs never span
-- two) * 100000 + the week the call started (since 1970-01-01; below 100,000 until the year
-- 3886). GIN removes the duplicates. As 0014's calls_digit_keys, with the run first.
CREATE OR REPLACE FUNCTION calls_run_keys(number_digits text, started_at timestamptz)
    RETURNS integer[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    -- calls_week's arithmetic, inlined: a function body must not depend on the search_path
    -- (pg_restore rebuilds the index with an empty one)
    week integer := floor(extract(epoch FROM started_at) / 604800)::integer;
    word text;
    i integer;
    found integer[] := '{}';
BEGIN
    FOREACH word IN ARRAY string_to_array(number_digits, ' ') LOOP
        FOR i IN 1 .. length(word) - 3 LOOP
            found := found || (substr(word, i, 4)::integer * 100000 + week);
        END LOOP;
    END LOOP;
    RETURN found;
END $$;

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['calls_run_keys_idx', 'calls_duration_page_idx',
                                'recordings_call_page_idx'] LOOP
        IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(name)
                   AND NOT indisvalid) THEN
            EXECUTE format('DROP INDEX %I', name);
        END IF;
    END LOOP;
END $$;

SET maintenance_work_mem = '256MB';
-- The pending list as 0014's: every probe reads it whole.
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_run_keys_idx
    ON calls USING gin (calls_run_keys(number_digits, started_at))
    WITH (gin_pending_list_limit = 64);
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
