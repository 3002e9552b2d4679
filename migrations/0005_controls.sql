-- 0005_controls: in-call controls asked for through the HTTP API (a CRM, an IVR) and carried out
-- by the daemon that owns the call. The API server and the daemons are separate processes (one
-- daemon per Asterisk server, all on this database), so a request is a durable row rather than
-- a message: it survives either side restarting, two daemons can never both take it, and the
-- result is written back where the API (and anyone reading the request later) finds it.
-- Python side: recorder/db/controls.py (ControlQueue).
--
-- A row's life: pending (stored, announced) -> taken (claimed by the call's daemon, in one
-- UPDATE ... FOR UPDATE SKIP LOCKED) -> done | rejected | failed, with handled_at and detail.
-- rejected: the daemon refused (the call's state or the policy does not allow it); failed: it
-- could not be carried out (Asterisk refused, the request expired before a daemon took it, or
-- the daemon that took it restarted before finishing).

CREATE TABLE control_requests (
    id           bigserial PRIMARY KEY,
    call_id      text NOT NULL REFERENCES calls (call_id),
    -- Copied from the call when the request is stored, so each daemon selects its own rows
    -- through the partial index below without joining calls.
    asterisk_id  text NOT NULL,
    action       text NOT NULL CHECK (action IN ('pause', 'resume', 'start', 'stop', 'tag')),
    -- The same rule as call_tags.tag (0002), so a tag accepted here can always be stored there.
    tag          text CHECK (length(tag) BETWEEN 1 AND 100 AND tag !~ '[[:cntrl:]]'),
    requested_by text NOT NULL,  -- the user's name (for a bearer token: the token's owner)
    requested_at timestamptz NOT NULL DEFAULT now(),
    taken_at     timestamptz,    -- when a daemon claimed it
    handled_at   timestamptz,    -- when its result was written
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'taken', 'done', 'rejected', 'failed')),
    detail       text,           -- the daemon's words about the result, for people
    CONSTRAINT control_requests_tag_iff_tag CHECK ((action = 'tag') = (tag IS NOT NULL)),
    -- A result has a time, and only a result has one: "handled" can be read from either.
    CONSTRAINT control_requests_handled
        CHECK ((status IN ('done', 'rejected', 'failed')) = (handled_at IS NOT NULL)),
    CONSTRAINT control_requests_taken CHECK (status <> 'taken' OR taken_at IS NOT NULL)
);
-- What a daemon polls: its server's pending rows, oldest first. Tiny, since almost every row
-- has been handled.
CREATE INDEX control_requests_pending_idx ON control_requests (asterisk_id, id)
    WHERE status = 'pending';
-- A call's control requests; also backs the foreign key.
CREATE INDEX control_requests_call_idx ON control_requests (call_id, id);

-- Every stored request wakes the daemons at once (they also poll every few seconds, in case a
-- notification was missed while a listening connection was down). The payload is the Asterisk
-- server's id: each daemon ignores the others'. Sent at commit; duplicates within one
-- transaction are folded into one by PostgreSQL, which is all a wake-up needs.
CREATE FUNCTION control_requests_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('verbatim_controls', NEW.asterisk_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER control_requests_notify
    AFTER INSERT ON control_requests
    FOR EACH ROW EXECUTE FUNCTION control_requests_notify();

-- Asking for a control is written to the access log like a view or a playback (one row per
-- request, in the same transaction as the request row, so a control that cannot be logged is
-- never stored). The CHECK of 0002 gains the action 'control'.
ALTER TABLE access_log
    DROP CONSTRAINT access_log_action_check,
    ADD CONSTRAINT access_log_action_check
        CHECK (action IN ('search', 'view', 'play', 'download', 'access_log', 'control'));
