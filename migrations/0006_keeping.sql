-- 0006_keeping: keeping recordings as long as the policy says and no longer (retention), and
-- proving it (tombstones). Python side: recorder/keeping/.
--
-- Retention: a call's class (calls.retention_class, from the deciding rule) names a length in
-- the policy file; the length is looked up when the purge runs, so changing a class's length
-- moves the expiry of every call already in it. Nothing here stores an expiry.
--
-- A purge deletes a recording's file and its row in two steps that survive a crash anywhere:
--  1. one transaction writes a tombstone per recording, status 'purging' (the row and file are
--     still there; the tombstone says they are going);
--  2. the files are deleted, then one transaction deletes the rows and marks the tombstones
--     'purged'. A crash before its commit leaves 'purging' tombstones whose files may be gone:
--     the next run finishes them first (a missing file is then fine). So no file outlives its
--     row, and no row names a gone file without a 'purging' tombstone saying why.

CREATE TABLE tombstones (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job             text NOT NULL,   -- which run: "daily-<id>" (the daemon) or "cli-<id>"
    what            text NOT NULL CHECK (what IN ('audio', 'metadata')),
    call_id         text NOT NULL,   -- no foreign key: the call's rows may go (metadata)
    asterisk_id     text NOT NULL,
    recording_name  text,            -- audio: the recording; metadata: NULL
    retention_class text NOT NULL,
    rule            text,            -- calls.decided_by: the rule that chose the class
    -- audio: the file's SHA-256 as filed; metadata: of the call's row (to_jsonb) as deleted
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    path            text,            -- audio: the file deleted
    bytes           bigint,
    call_ended_at   timestamptz NOT NULL,  -- the length counts from here
    expired_at      timestamptz NOT NULL,  -- call_ended_at + the class's length at the time
    marked_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- purging: step 1 done; purged: gone; kept: a legal hold arrived before step 2
    status          text NOT NULL DEFAULT 'purging' CHECK (status IN ('purging', 'purged', 'kept')),
    done_at         timestamptz,
    file_found      boolean,         -- audio: whether step 2 found the file (false after a crash)
    CONSTRAINT tombstones_done CHECK ((status = 'purging') = (done_at IS NULL)),
    CONSTRAINT tombstones_audio CHECK ((what = 'audio') = (recording_name IS NOT NULL))
);
-- Unfinished purges (a run finishes them before marking new ones), and "is this recording being
-- purged already" while marking.
CREATE UNIQUE INDEX tombstones_purging_idx
    ON tombstones (asterisk_id, call_id, coalesce(recording_name, ''))
    WHERE status = 'purging';
CREATE INDEX tombstones_call_idx ON tombstones (call_id);
CREATE INDEX tombstones_done_idx ON tombstones (done_at) WHERE done_at IS NOT NULL;

-- A tombstone is evidence: written once, then only finished (purging -> purged | kept). The
-- test is the triggers' WHEN (no function call for the allowed update: purges are big).
CREATE FUNCTION tombstones_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tombstones are append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER tombstones_guard_update
    BEFORE UPDATE ON tombstones
    FOR EACH ROW WHEN (OLD.status <> 'purging' OR NEW.status NOT IN ('purged', 'kept')
        OR (NEW.id, NEW.job, NEW.what, NEW.call_id, NEW.asterisk_id, NEW.recording_name,
            NEW.retention_class, NEW.rule, NEW.sha256, NEW.path, NEW.bytes, NEW.call_ended_at,
            NEW.expired_at, NEW.marked_at)
           IS DISTINCT FROM
           (OLD.id, OLD.job, OLD.what, OLD.call_id, OLD.asterisk_id, OLD.recording_name,
            OLD.retention_class, OLD.rule, OLD.sha256, OLD.path, OLD.bytes, OLD.call_ended_at,
            OLD.expired_at, OLD.marked_at))
    EXECUTE FUNCTION tombstones_guard();
CREATE TRIGGER tombstones_guard_delete
    BEFORE DELETE ON tombstones
    FOR EACH ROW EXECUTE FUNCTION tombstones_guard();

-- The append-only logs of a call (0001 call_events, 0003 consent_audit) go with its metadata,
-- and only then: a delete is allowed only while a 'purging' metadata tombstone names the call.
CREATE FUNCTION metadata_purge_allowed(p_call_id text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM tombstones t WHERE t.call_id = p_call_id
                   AND t.what = 'metadata' AND t.status = 'purging')
$$;

CREATE FUNCTION call_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND metadata_purge_allowed(OLD.call_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER call_events_append_only ON call_events;
CREATE TRIGGER call_events_append_only
    BEFORE UPDATE OR DELETE ON call_events
    FOR EACH ROW EXECUTE FUNCTION call_log_append_only();
DROP TRIGGER consent_audit_append_only ON consent_audit;
CREATE TRIGGER consent_audit_append_only
    BEFORE UPDATE OR DELETE ON consent_audit
    FOR EACH ROW EXECUTE FUNCTION call_log_append_only();

-- The purge walks a server's filed recordings in name order (keyset), so each run reads every
-- row at most once however few have expired.
CREATE INDEX recordings_filed_idx ON recordings (asterisk_id, name) WHERE status = 'filed';
-- Metadata purge: a server's ended calls, oldest first.
CREATE INDEX calls_ended_idx ON calls (asterisk_id, call_id) WHERE status = 'ended';


-- Legal holds: calls frozen for litigation, whatever their class. A hold matches calls by any of
-- matter/tag, call, number, department, extension and a date range (every criterion given must
-- hold); it is read when the purge runs, so it also covers calls recorded after it was placed.
-- Holds are never deleted: released ones stay, with who released them and why. With the
-- policy's retention.release_needs_two a release is first requested, then approved by another
-- admin; the hold holds until then.
CREATE TABLE holds (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    reason               text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    tag                  text,
    call_id              text,
    number               text,  -- E.164, or the digits as dialled/presented (short numbers)
    department           text,
    extension            text,
    starts_at            timestamptz,  -- calls that started at or after
    ends_at              timestamptz,  -- and before
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    release_requested_by text,
    release_requested_at timestamptz,
    release_reason       text CHECK (length(release_reason) BETWEEN 1 AND 2000),
    released_by          text,
    released_at          timestamptz,
    release_approval     text CHECK (length(release_approval) BETWEEN 1 AND 2000),
    CONSTRAINT holds_matches_something
        CHECK (num_nonnulls(tag, call_id, number, department, extension, starts_at, ends_at) > 0),
    CONSTRAINT holds_range CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at),
    CONSTRAINT holds_requested CHECK ((release_requested_at IS NULL) = (release_requested_by IS NULL)
                                      AND (release_requested_at IS NULL) = (release_reason IS NULL)),
    CONSTRAINT holds_released CHECK ((released_at IS NULL) = (released_by IS NULL)
                                     AND (released_at IS NULL OR release_requested_at IS NOT NULL))
);
CREATE INDEX holds_active_idx ON holds (id) WHERE released_at IS NULL;

-- What a hold says is fixed once written; only its release is filled in, once.
CREATE FUNCTION holds_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    release_cols CONSTANT text[] := ARRAY['release_requested_by', 'release_requested_at',
        'release_reason', 'released_by', 'released_at', 'release_approval'];
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.released_at IS NULL
       AND (to_jsonb(NEW) - release_cols) = (to_jsonb(OLD) - release_cols)
       AND (OLD.release_requested_at IS NULL
            OR (NEW.release_requested_by, NEW.release_requested_at, NEW.release_reason)
               IS NOT DISTINCT FROM
               (OLD.release_requested_by, OLD.release_requested_at, OLD.release_reason)) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'holds are only ever released: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER holds_guard
    BEFORE UPDATE OR DELETE ON holds
    FOR EACH ROW EXECUTE FUNCTION holds_guard();

-- Whether a call is under a hold not (yet) released. The purge and the API ask this; keeping
-- the rule here means both ask the same question.
CREATE FUNCTION call_held(c calls) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM holds h WHERE h.released_at IS NULL
          AND (h.call_id IS NULL OR h.call_id = c.call_id)
          AND (h.tag IS NULL OR EXISTS (SELECT 1 FROM call_tags g
                                        WHERE g.call_id = c.call_id AND g.tag = h.tag))
          AND (h.number IS NULL OR h.number IN (c.caller_e164, c.callee_e164,
                                                c.caller_number, c.callee_number))
          AND (h.department IS NULL OR h.department = c.department)
          AND (h.extension IS NULL OR h.extension = c.extension)
          AND (h.starts_at IS NULL OR c.started_at >= h.starts_at)
          AND (h.ends_at IS NULL OR c.started_at < h.ends_at))
$$;

-- Hold actions are written to the access log (action 'hold'), and `verbatim holds` acts for a
-- named admin from the command line (via 'cli').
ALTER TABLE access_log
    DROP CONSTRAINT access_log_action_check,
    ADD CONSTRAINT access_log_action_check
        CHECK (action IN ('search', 'view', 'play', 'download', 'access_log', 'control', 'hold')),
    DROP CONSTRAINT access_log_via_check,
    ADD CONSTRAINT access_log_via_check CHECK (via IN ('session', 'token', 'cli'));


-- Tamper evidence: the custody chain. Each custody event (a recording filed, a hold placed or
-- released, a recording or a call's metadata purged, a recording played or downloaded) is a row
-- carrying the SHA-256 of the row before it, so changing, removing or inserting a row breaks
-- every link after it (`verbatim verify`, recorder/keeping/verify.py, recomputes them without
-- trusting anything here). One chain per Asterisk server (chain = asterisk_id), so offices never
-- wait on each other; firm-wide events (legal holds) form the chain '*'.
--
-- A row's hash: sha256(prev || f(chain) f(seq) f(at) f(kind) f(call_id) f(asterisk_id)
-- f(recording_name) f(hold_id) f(access_id) f(subject_sha256) f(detail::text)), UTF-8, hex,
-- where f(NULL) = '-' and f(v) = <octets of v>:<v>; `at` as YYYY-MM-DDTHH:MM:SS.ffffffZ.
-- subject_sha256: of the file (filed, purged), of the access_log row (play, download: the read
-- is chained in, not logged twice), of the call's row (metadata_purged).
--
-- Writers append through custody_append (or, for a purge's batch, recorder/keeping/custody.py's
-- append_many, which hashes the same way), locking the chain's head row: two writers on one
-- chain queue there (and (chain, seq) is the primary key besides), so a chain never forks.

CREATE TABLE custody_heads (
    chain  text PRIMARY KEY,
    seq    bigint NOT NULL,
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$')
);

CREATE TABLE custody (
    chain          text NOT NULL,
    seq            bigint NOT NULL CHECK (seq >= 1),
    at             timestamptz NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('filed', 'held', 'release_asked', 'released',
                                                 'purged', 'metadata_purged', 'play',
                                                 'download')),
    call_id        text,
    asterisk_id    text,
    recording_name text,
    hold_id        bigint,
    access_id      bigint,
    subject_sha256 text CHECK (subject_sha256 ~ '^[0-9a-f]{64}$'),
    detail         jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_sha256    text NOT NULL CHECK (prev_sha256 ~ '^[0-9a-f]{64}$'),
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (chain, seq)
);
-- A recording's custody (verify compares a file with the hash it was filed with).
CREATE INDEX custody_recording_idx ON custody (asterisk_id, recording_name)
    WHERE recording_name IS NOT NULL;
CREATE INDEX custody_at_idx ON custody (chain, at);

CREATE FUNCTION custody_field(v text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN v IS NULL THEN '-' ELSE octet_length(v)::text || ':' || v END
$$;

CREATE FUNCTION custody_time(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- Events of one chain, in order (a purge appends a whole batch): the head is locked and moved
-- once, and the rows are written by one INSERT.
CREATE FUNCTION custody_append_many(
    p_chain text, p_kinds text[], p_call_ids text[], p_asterisk_ids text[],
    p_recording_names text[], p_hold_ids bigint[], p_access_ids bigint[], p_subjects text[],
    p_details jsonb[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    head custody_heads;
    v_at timestamptz := clock_timestamp();
    v_n integer := coalesce(array_length(p_kinds, 1), 0);
    v_hashes text[] := array_fill(NULL::text, ARRAY[v_n + 1]);
BEGIN
    INSERT INTO custody_heads (chain, seq, sha256) VALUES (p_chain, 0, repeat('0', 64))
        ON CONFLICT (chain) DO NOTHING;
    SELECT * INTO head FROM custody_heads WHERE chain = p_chain FOR UPDATE;
    v_hashes[1] := head.sha256;  -- v_hashes[i] is the hash before event i, [i + 1] its own
    FOR i IN 1 .. v_n LOOP
        v_hashes[i + 1] := encode(sha256(convert_to(
            v_hashes[i] || custody_field(p_chain) || custody_field((head.seq + i)::text)
            || custody_field(custody_time(v_at)) || custody_field(p_kinds[i])
            || custody_field(p_call_ids[i]) || custody_field(p_asterisk_ids[i])
            || custody_field(p_recording_names[i]) || custody_field(p_hold_ids[i]::text)
            || custody_field(p_access_ids[i]::text) || custody_field(p_subjects[i])
            || custody_field(coalesce(p_details[i], '{}'::jsonb)::text), 'UTF8')), 'hex');
    END LOOP;
    INSERT INTO custody (chain, seq, at, kind, call_id, asterisk_id, recording_name, hold_id,
                         access_id, subject_sha256, detail, prev_sha256, sha256)
    SELECT p_chain, head.seq + i, v_at, p_kinds[i], p_call_ids[i], p_asterisk_ids[i],
           p_recording_names[i], p_hold_ids[i], p_access_ids[i], p_subjects[i],
           coalesce(p_details[i], '{}'::jsonb), v_hashes[i], v_hashes[i + 1]
    FROM generate_series(1, v_n) AS i;
    UPDATE custody_heads SET seq = head.seq + v_n, sha256 = v_hashes[v_n + 1]
    WHERE chain = p_chain;
    RETURN head.seq + v_n;
END
$$;

-- One event.
CREATE FUNCTION custody_append(
    p_chain text, p_kind text, p_call_id text, p_asterisk_id text, p_recording_name text,
    p_hold_id bigint, p_access_id bigint, p_subject text, p_detail jsonb
) RETURNS bigint LANGUAGE sql AS $$
    SELECT custody_append_many(p_chain, ARRAY[p_kind], ARRAY[p_call_id], ARRAY[p_asterisk_id],
                               ARRAY[p_recording_name], ARRAY[p_hold_id], ARRAY[p_access_id],
                               ARRAY[p_subject], ARRAY[p_detail])
$$;

CREATE FUNCTION custody_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'custody is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER custody_append_only
    BEFORE UPDATE OR DELETE ON custody
    FOR EACH ROW EXECUTE FUNCTION custody_append_only();

-- Filed: whichever path files a recording (the daemon, recovery, the fallback import), the
-- row's arrival at 'filed' is the event.
CREATE FUNCTION custody_filed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM custody_append(NEW.asterisk_id, 'filed', NEW.call_id, NEW.asterisk_id, NEW.name,
                           NULL, NULL, NEW.sha256,
                           jsonb_build_object('path', NEW.path, 'bytes', NEW.bytes));
    RETURN NULL;
END
$$;

CREATE TRIGGER custody_filed_insert AFTER INSERT ON recordings
    FOR EACH ROW WHEN (NEW.status = 'filed') EXECUTE FUNCTION custody_filed();
CREATE TRIGGER custody_filed_update AFTER UPDATE OF status ON recordings
    FOR EACH ROW WHEN (NEW.status = 'filed' AND OLD.status <> 'filed')
    EXECUTE FUNCTION custody_filed();

-- A play or download of a recording: the access_log row itself is chained (its digest), on the
-- recording's server's chain. Searches, views and refused attempts are not custody events.
CREATE FUNCTION access_digest(a access_log) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT encode(sha256(convert_to(
        custody_field(a.id::text) || custody_field(custody_time(a.at))
        || custody_field(a.user_name) || custody_field(a.role) || custody_field(a.via)
        || custody_field(a.action) || custody_field(a.call_id) || custody_field(a.asterisk_id)
        || custody_field(a.recording_name) || custody_field(a.detail::text)
        || custody_field(a.remote) || custody_field(a.user_agent), 'UTF8')), 'hex')
$$;

CREATE FUNCTION custody_access() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM custody_append(NEW.asterisk_id, NEW.action, NEW.call_id, NEW.asterisk_id,
                           NEW.recording_name, NULL, NEW.id, access_digest(NEW), NULL);
    RETURN NULL;
END
$$;

CREATE TRIGGER custody_access AFTER INSERT ON access_log
    FOR EACH ROW WHEN (NEW.action IN ('play', 'download') AND NEW.asterisk_id IS NOT NULL
                       AND NEW.recording_name IS NOT NULL)
    EXECUTE FUNCTION custody_access();

-- Recordings filed before this migration join their server's chain now, oldest first: the
-- chain vouches for them from here on, with the hashes they were filed with.
SELECT custody_append(asterisk_id, 'filed', call_id, asterisk_id, name, NULL, NULL, sha256,
                      jsonb_build_object('path', path, 'bytes', bytes, 'backfilled', true))
FROM (SELECT * FROM recordings WHERE status = 'filed'
      ORDER BY asterisk_id, requested_at, name) r;
