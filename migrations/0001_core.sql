-- 0001_core: calls, legs, recordings and the append-only call_events log.
-- Columns mirror recorder/db/rows.py (the contract with the call model); updated_at/created_at
-- are the database's own bookkeeping. Applied by recorder/db/migrate.py in one transaction.
--
-- Index policy (1 M+ calls): the call-search page lists calls newest first, in a date range,
-- optionally narrowed by extension, department or a phone number, paginated by keyset on
-- (started_at, call_id). Every search index therefore ends in started_at so the planner can read
-- a filter's rows already in date order and stop at LIMIT instead of sorting all matches.

CREATE TABLE calls (
    call_id       text PRIMARY KEY CHECK (call_id ~ '^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$'),
    asterisk_id   text NOT NULL,
    direction     text NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    caller_number text,
    caller_e164   text,
    callee_number text,
    callee_e164   text,
    extension     text,
    department    text,
    started_at    timestamptz NOT NULL,
    answered_at   timestamptz,
    ended_at      timestamptz,
    -- 'unknown': a fallback (MixMonitor) recording imported without the app seeing the call.
    outcome       text CHECK (outcome IN ('answered', 'busy', 'no_answer', 'abandoned', 'failed',
                                          'rejected', 'interrupted', 'unknown')),
    status        text NOT NULL CHECK (status IN ('active', 'ended')),
    fallback      boolean NOT NULL DEFAULT false,
    state         jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Default listing ("latest calls", "calls between two dates") and keyset pagination.
CREATE INDEX calls_started_idx ON calls (started_at, call_id);
-- "Calls of extension 214 last week": equality on extension, range/order on date.
CREATE INDEX calls_extension_started_idx ON calls (extension, started_at)
    WHERE extension IS NOT NULL;
-- "Calls of the litigation department this month".
CREATE INDEX calls_department_started_idx ON calls (department, started_at)
    WHERE department IS NOT NULL;
-- "All calls with +49301234567": searched as (caller_e164 = $1 OR callee_e164 = $1), which the
-- planner answers with a BitmapOr over these two; started_at narrows by date inside each.
CREATE INDEX calls_caller_e164_started_idx ON calls (caller_e164, started_at)
    WHERE caller_e164 IS NOT NULL;
CREATE INDEX calls_callee_e164_started_idx ON calls (callee_e164, started_at)
    WHERE callee_e164 IS NOT NULL;
-- Numbers as dialled/presented (short internal numbers, numbers that failed E.164 parsing).
-- text_pattern_ops also serves prefix search (LIKE '0301234%') whatever the database collation.
-- Substring/suffix search ("ends in 4567") would need pg_trgm: left to the search page's issue.
CREATE INDEX calls_caller_number_idx ON calls (caller_number text_pattern_ops, started_at)
    WHERE caller_number IS NOT NULL;
CREATE INDEX calls_callee_number_idx ON calls (callee_number text_pattern_ops, started_at)
    WHERE callee_number IS NOT NULL;
-- Crash recovery: a restarting daemon adopts its server's calls still marked active. Tiny,
-- since almost every row is 'ended'.
CREATE INDEX calls_active_idx ON calls (asterisk_id, started_at) WHERE status = 'active';


CREATE TABLE legs (
    asterisk_id   text NOT NULL,
    channel_id    text NOT NULL,
    call_id       text NOT NULL REFERENCES calls (call_id),
    channel_name  text NOT NULL,
    -- 'local': a Local channel half a transfer put in the call (a conduit, not a party).
    role          text NOT NULL CHECK (role IN ('caller', 'callee', 'local')),
    caller_name   text,
    caller_number text,
    started_at    timestamptz NOT NULL,
    answered_at   timestamptz,
    ended_at      timestamptz,
    hangup_cause  integer,
    -- A leg's own end: a dialled leg that was 'cancelled' (the caller gave up) or 'answered';
    -- the caller's leg that 'hangup' (its party ended the call) or was 'abandoned'.
    outcome       text CHECK (outcome IN ('answered', 'busy', 'no_answer', 'abandoned', 'failed',
                                          'rejected', 'interrupted', 'cancelled', 'hangup', 'forwarded')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asterisk_id, channel_id)
);
-- A call's detail page loads its legs; also backs the foreign key.
CREATE INDEX legs_call_idx ON legs (call_id, started_at);


-- Recording status only advances: requested < recording < finished < filed. failed and missing
-- are terminal, except that a missing recording found later may still be filed. An upsert from an
-- older snapshot of the call model therefore cannot undo the archive's 'filed'.
CREATE FUNCTION recording_status_may_change(old text, new text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN old = new THEN true
        WHEN old = 'missing' THEN new = 'filed'
        WHEN old IN ('filed', 'failed') THEN false
        WHEN new IN ('failed', 'missing') THEN true
        ELSE array_position(ARRAY['requested', 'recording', 'finished', 'filed'], new)
           > array_position(ARRAY['requested', 'recording', 'finished', 'filed'], old)
    END
$$;

CREATE TABLE recordings (
    asterisk_id  text NOT NULL,
    name         text NOT NULL,
    call_id      text NOT NULL REFERENCES calls (call_id),
    segment      integer NOT NULL CHECK (segment >= 0),
    target       text NOT NULL,
    format       text NOT NULL,
    status       text NOT NULL CHECK (status IN ('requested', 'recording', 'finished', 'filed',
                                                 'failed', 'missing')),
    requested_at timestamptz NOT NULL,
    started_at   timestamptz,
    ended_at     timestamptz,
    path         text,
    duration_ms  bigint CHECK (duration_ms >= 0),
    bytes        bigint CHECK (bytes >= 0),
    sha256       text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    error        text,
    fallback     boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (asterisk_id, name),
    -- 'filed' means in the archive with its hash: recovery and audits rely on both being there.
    CONSTRAINT recordings_filed_has_file
        CHECK (status <> 'filed' OR (path IS NOT NULL AND sha256 IS NOT NULL))
);
-- A call's recordings (detail page, playback); also backs the foreign key.
CREATE INDEX recordings_call_idx ON recordings (call_id, segment);
-- Recovery after a restart: recordings of this server not yet in the archive. The predicate is
-- repeated verbatim by Repository.unfiled_recordings so the planner matches it.
CREATE INDEX recordings_unfiled_idx ON recordings (asterisk_id, requested_at)
    WHERE status NOT IN ('filed', 'failed');


-- The audit trail: what happened to a call, in order. Append-only (see trigger below).
CREATE TABLE call_events (
    id             bigserial PRIMARY KEY,
    call_id        text NOT NULL REFERENCES calls (call_id),
    asterisk_id    text NOT NULL,
    at             timestamptz NOT NULL,
    kind           text NOT NULL,
    channel_id     text,
    recording_name text,
    detail         jsonb NOT NULL DEFAULT '{}'::jsonb,
    inserted_at    timestamptz NOT NULL DEFAULT now()
);
-- A call's timeline, in order; id breaks ties between events of the same instant.
CREATE INDEX call_events_call_idx ON call_events (call_id, at, id);

-- Rejecting row changes here holds even for the table owner; revoking privileges from the
-- daemon's role is a separate step. TRUNCATE is not a row change (tests use it to reset).
CREATE FUNCTION call_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'call_events is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER call_events_append_only
    BEFORE UPDATE OR DELETE ON call_events
    FOR EACH ROW EXECUTE FUNCTION call_events_append_only();
