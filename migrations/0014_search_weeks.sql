-- migrate: no-transaction
-- 0014_search_weeks: partial- and full-number searches whose cost follows the page, not the
-- table.
--
-- The trigram index of 0002 answers LIKE '%digits%' badly on phone numbers: ten characters
-- make only 1,000 trigrams, so each posting list holds ~1 in 50 calls (10 M calls: a 7-digit
-- search with no match spent 35 ms intersecting them), and a common 4-digit pattern found
-- 6,100 calls that were read and sorted for one page. Here every call is indexed under
-- (its week, each 4-digit run of its numbers): one key names ~90 calls a week at 10 M calls
-- (13,700 a day). api/search.py walks the weeks newest first and stops at a full page: a common
-- pattern needs the newest week or two, a rare one probes each week (two tiny posting lists).
-- Searches of 3 digits (matches are common: the walk of 0013 is cheap) and partial numbers
-- sorted by length or counted keep the trigram index.
--
-- A manager's full-number search walked the number's calls newest first on its caller/callee
-- index, reading each call's row for its department (a number with 87,000 calls and a
-- department with 2 % of them: ~2,500 rows for one page). Carrying call_id and department in
-- those indexes (the callee's also the caller's number, which the merge tests) makes the walks
-- index-only (api/search.py then reads only the page's calls); they replace 0001's, built
-- before the old ones go. So does the extension index, now carrying call_id and the digits:
-- a staff member's partial-number search walks their own calls index-only (a number many
-- calls have, few of them theirs, made the weeks' walk read all of its calls).
--
-- Built concurrently (daemons keep writing; 10 M calls: see docs/search.md for the time), so
-- this file runs outside a transaction, statement by statement, and is safe to re-run: an
-- index left invalid by an interrupted build is dropped and built again.

-- Weeks since 1970-01-01 (a Thursday). IMMUTABLE: the epoch of a timestamptz does not depend
-- on the time zone (extract() is only STABLE because its other fields do).
CREATE OR REPLACE FUNCTION calls_week(at timestamptz) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT floor(extract(epoch FROM at) / 604800)::integer $$;

-- week * 10,000 + each run of 4 digits in number_digits (its words are the call's numbers;
-- runs never span two). GIN removes the duplicates. ~4 µs a call (plpgsql; the same in SQL
-- with unnest/generate_series took 13 µs).
CREATE OR REPLACE FUNCTION calls_digit_keys(number_digits text, started_at timestamptz)
    RETURNS integer[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    -- calls_week's arithmetic, inlined: a function body must not depend on the search_path
    -- (pg_restore rebuilds the index with an empty one)
    base integer := floor(extract(epoch FROM started_at) / 604800)::integer * 10000;
    word text;
    i integer;
    found integer[] := '{}';
BEGIN
    FOREACH word IN ARRAY string_to_array(number_digits, ' ') LOOP
        FOR i IN 1 .. length(word) - 3 LOOP
            found := found || (base + substr(word, i, 4)::integer);
        END LOOP;
    END LOOP;
    RETURN found;
END $$;

-- An index an interrupted CREATE INDEX CONCURRENTLY left invalid is dropped and built again.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['calls_digit_keys_idx', 'calls_caller_e164_page_idx',
                                'calls_callee_e164_page_idx', 'calls_extension_page_idx'] LOOP
        IF EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(name)
                   AND NOT indisvalid) THEN
            EXECUTE format('DROP INDEX %I', name);
        END IF;
    END LOOP;
END $$;

-- The builds sort in maintenance_work_mem (default 64 MB): fewer, larger runs. This session
-- only; reset at the end.
SET maintenance_work_mem = '256MB';
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_digit_keys_idx
    ON calls USING gin (calls_digit_keys(number_digits, started_at));
-- New keys wait in the index's pending list, which every probe reads whole: a search probes
-- ~100 weeks, and at the default 4 MB (10 M calls, the daemon writing 50/s) each probe took
-- 2 ms instead of 0.07. 64 kB (the least allowed) is merged after a few hundred new rows.
ALTER INDEX calls_digit_keys_idx SET (gin_pending_list_limit = 64);

CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_caller_e164_page_idx
    ON calls (caller_e164, started_at) INCLUDE (call_id, department)
    WHERE caller_e164 IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS calls_caller_e164_started_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_callee_e164_page_idx
    ON calls (callee_e164, started_at) INCLUDE (call_id, department, caller_e164)
    WHERE callee_e164 IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS calls_callee_e164_started_idx;
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_extension_page_idx
    ON calls (extension, started_at) INCLUDE (call_id, number_digits)
    WHERE extension IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS calls_extension_started_idx;
RESET maintenance_work_mem;
