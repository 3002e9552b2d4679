-- migrate: no-transaction
-- migrate: also applied as sha256 6c4d14139202fbc3a8fc111b38aa7afbbc37a971f9c78eb2d9500d58cf9e5eb3
-- 0013_search_digits: partial-number searches newest first without reading the calls' rows.
--
-- A partial number with common digits ("…6273") matches thousands of calls, so the planner
-- rightly walks calls newest first and keeps the matches; through calls_started_idx as 0001
-- made it, every step of that walk read a heap row to test number_digits (10 M calls: 83 000
-- rows, 21 000 pages, 320 ms). Carrying number_digits in the index makes the walk an
-- index-only scan (2 900 pages, 28 ms); api/search.py then reads only the page's calls.
-- The index replaces 0001's under the same name (one index written per call, as before; its
-- entries ~80 bytes instead of ~50: 800 MB at 10 M calls). The new one is built before the
-- old one goes, so searches always have one.
--
-- Built concurrently, as 0014 is (the daemons keep inserting calls during a build that takes
-- minutes at 10 M calls), so this file runs outside a transaction, statement by statement, and
-- is safe to re-run. Its first form built the index inside a transaction, blocking inserts on
-- calls meanwhile; it made the same schema, so a database that applied it (the sha256 above)
-- is up to date with this one.

-- An index-only scan reads the heap for every page the visibility map does not mark all-visible,
-- and those are the newest pages, the ones every search starts from. By default autovacuum
-- visits calls after 20 % of the table is new (2 M calls at 10 M: months); every 10 000 new or
-- changed calls keeps the map current (1 M calls, 2,000 new: 8,800 heap reads in one walk).
-- Each run reads only pages changed since the last (the map skips the rest).
-- (Set first, so that the rename is the file's last step.)
ALTER TABLE calls SET (autovacuum_vacuum_insert_scale_factor = 0,
                       autovacuum_vacuum_insert_threshold = 10000,
                       autovacuum_vacuum_scale_factor = 0,
                       autovacuum_vacuum_threshold = 10000);

-- An index an interrupted CREATE INDEX CONCURRENTLY left invalid is dropped and built again.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('calls_started_digits_idx')
               AND NOT indisvalid) THEN
        DROP INDEX calls_started_digits_idx;
    END IF;
END $$;

CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_started_digits_idx
    ON calls (started_at, call_id) INCLUDE (number_digits);
DROP INDEX CONCURRENTLY IF EXISTS calls_started_idx;
ALTER INDEX IF EXISTS calls_started_digits_idx RENAME TO calls_started_idx;
