-- 0002_access: finding and hearing calls. Search columns and indexes on calls, tags, the users
-- who may search (roles, hashed passwords, hashed API tokens, server-side web sessions), and
-- the append-only access log of who searched, viewed, played or downloaded what.
--
-- Every search the API runs is keyset-paginated on (started_at, call_id) and scoped in SQL by
-- the user's role (manager: department = ANY(...), staff: extension = ...), so the indexes of
-- 0001 on (department|extension, started_at) serve both the filters and the scoping.

-- Partial phone numbers ("…555-01") are matched as a substring of the digits of every number on
-- the call; a trigram GIN index answers LIKE '%digits%' (3+ digits) without reading the table.
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Computed by the database, so the daemon's upserts (explicit column lists) need no change.
-- The part of a SIP URI after '@' is a host, whose digits would match any search: dropped.
ALTER TABLE calls
    ADD COLUMN number_digits text GENERATED ALWAYS AS (
        regexp_replace(split_part(coalesce(caller_number, ''), '@', 1), '[^0-9]', '', 'g')
        || ' ' || regexp_replace(coalesce(caller_e164, ''), '[^0-9]', '', 'g')
        || ' ' || regexp_replace(split_part(coalesce(callee_number, ''), '@', 1), '[^0-9]', '', 'g')
        || ' ' || regexp_replace(coalesce(callee_e164, ''), '[^0-9]', '', 'g')
    ) STORED,
    -- The call's length, ring time included (NULL while it is going on); whole seconds.
    ADD COLUMN duration_s integer GENERATED ALWAYS AS (
        floor(extract(epoch FROM ended_at - started_at))::integer
    ) STORED;

CREATE INDEX calls_number_digits_trgm_idx ON calls USING gin (number_digits gin_trgm_ops);
-- The planner guesses a LIKE '%…%' pattern's selectivity from this column's histogram. With
-- the default 100 entries its guess for rare digits is often far too high, and it then walks
-- calls_started_idx through tens of thousands of calls instead of using the trigram index.
-- 10 000 entries (bench/search_bench.py, 1 M calls: 4-digit partial p99 29 -> 17 ms) cost a
-- slower ANALYZE (it samples 3 M rows), which autovacuum does in the background.
ALTER TABLE calls ALTER COLUMN number_digits SET STATISTICS 10000;
-- "Calls longer than 20 minutes": few calls, spread over all dates; without it a page of them
-- means walking ~40 000 calls newest-first.
CREATE INDEX calls_duration_started_idx ON calls (duration_s, started_at)
    WHERE duration_s IS NOT NULL;
-- Long calls are the exponential tail of durations: the default histogram puts them all in its
-- last bucket and overestimates them, which picks the walk again (p95 12 -> 2.4 ms at 1 M).
ALTER TABLE calls ALTER COLUMN duration_s SET STATISTICS 1000;


-- Tags and matter numbers ("matter:2026-0113") on calls; written by later features, searched
-- here. Tags are kept as given (case matters: matter numbers are identifiers).
CREATE TABLE call_tags (
    call_id    text NOT NULL REFERENCES calls (call_id),
    tag        text NOT NULL CHECK (length(tag) BETWEEN 1 AND 100 AND tag !~ '[[:cntrl:]]'),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text,
    PRIMARY KEY (call_id, tag)
);
-- "Calls of matter X": the tag's calls, then their started_at through calls_pkey.
CREATE INDEX call_tags_tag_idx ON call_tags (tag, call_id);


-- People and scripts that may use the API. Users are disabled, never deleted: the access log
-- refers to them. A manager must have departments and staff an extension, or they would see
-- nothing; the CHECKs make that a mistake the database refuses.
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    role          text NOT NULL CHECK (role IN ('admin', 'auditor', 'manager', 'staff')),
    departments   text[] NOT NULL DEFAULT '{}',
    extension     text,
    -- argon2id (argon2-cffi's encoded form); NULL: cannot log in with a password (tokens only).
    password_hash text CHECK (password_hash LIKE '$argon2%'),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_manager_has_departments
        CHECK (role <> 'manager' OR cardinality(departments) > 0),
    CONSTRAINT users_staff_has_extension CHECK (role <> 'staff' OR extension IS NOT NULL)
);

-- Bearer tokens for scripts. Only the SHA-256 of a token is kept: tokens are 256 random bits,
-- so a fast hash is enough (unlike passwords) and lets the lookup be an index probe.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id),
    token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    label        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- Web sessions, server-side so that disabling a user or logging out ends them at once. The
-- cookie holds a random id; only its SHA-256 is stored. csrf_token guards the page's forms.
CREATE TABLE web_sessions (
    id_sha256    text PRIMARY KEY CHECK (id_sha256 ~ '^[0-9a-f]{64}$'),
    user_id      bigint NOT NULL REFERENCES users (id),
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    remote       text
);
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);


-- Who searched, viewed, played or downloaded what, when and from where. One row per search,
-- detail view, playback (not per HTTP Range request) and download, written before the data is
-- sent: an access that cannot be logged is refused. Append-only (trigger below). call_id has no
-- foreign key on purpose: the log must keep naming a call even if retention removes it.
CREATE TABLE access_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_id        bigint REFERENCES users (id),
    user_name      text NOT NULL,
    role           text NOT NULL,
    via            text NOT NULL CHECK (via IN ('session', 'token')),
    action         text NOT NULL CHECK (action IN ('search', 'view', 'play', 'download',
                                                   'access_log')),
    call_id        text,
    asterisk_id    text,
    recording_name text,
    -- search filters and result count, the Range asked for, the status answered
    detail         jsonb NOT NULL DEFAULT '{}'::jsonb,
    remote         text,
    user_agent     text
);
-- The auditor's views: everything in a period, one user's accesses, one call's listeners.
CREATE INDEX access_log_at_idx ON access_log (at, id);
CREATE INDEX access_log_user_idx ON access_log (user_name, at);
CREATE INDEX access_log_call_idx ON access_log (call_id, at) WHERE call_id IS NOT NULL;

-- As for call_events: rejected even for the table owner. Revoking UPDATE/DELETE/TRUNCATE from
-- the service's role is the operator's second line (TRUNCATE is how tests reset tables).
CREATE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER access_log_append_only
    BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_append_only();
