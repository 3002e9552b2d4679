-- 0003_consent: the consent audit. One row per party and announcement: what each party of a call
-- heard, in which jurisdiction and under which rule, and whether it refused. Columns mirror
-- recorder/policy/audit.py (ConsentRow). A party that was due no announcement still gets a row
-- (played = 'none'), so every party of a recorded call is accounted for.
--
-- Append-only like call_events: this is the evidence a firm shows when asked what a party was
-- told, so a row once written is never changed (a later announcement is a new row).

CREATE TABLE consent_audit (
    id                  bigserial PRIMARY KEY,
    call_id             text NOT NULL REFERENCES calls (call_id),
    asterisk_id         text NOT NULL,
    channel_id          text NOT NULL,
    party               text NOT NULL,  -- caller, callee, target1, ...
    number              text,           -- as presented or dialled; NULL when withheld
    e164                text,
    region              text CHECK (region ~ '^[A-Z]{2}$'),
    state               text CHECK (state ~ '^[A-Z]{2}$'),
    -- How the party's jurisdiction was resolved (recorder/policy/jurisdiction.py).
    jurisdiction_source text NOT NULL CHECK (jurisdiction_source IN
                            ('override', 'extension', 'geocoder', 'region', 'default')),
    jurisdiction_detail text NOT NULL,
    mode                text NOT NULL CHECK (mode IN ('all-party', 'one-party')),  -- this party's law
    governing_mode      text NOT NULL CHECK (governing_mode IN ('all-party', 'one-party')),
    rule                text NOT NULL,  -- what decided: "rule 'Litigation'", "default", ...
    action              text NOT NULL CHECK (action IN ('force', 'yes', 'no', 'never')),
    recorded            boolean NOT NULL,  -- after the do-not-record list and opt-outs
    retention           text NOT NULL,
    announcement        text CHECK (announcement IN ('before-bridge', 'on-answer', 'on-join')),
    prompt              text,  -- prompt id, the file name without .wav
    prompt_sha256       text CHECK (prompt_sha256 ~ '^[0-9a-f]{64}$'),
    language            text,
    started_at          timestamptz,
    ended_at            timestamptz,
    -- finished: heard to the end; interrupted: hung up, or a key stopped it; none: not due.
    played              text NOT NULL CHECK (played IN ('finished', 'interrupted', 'none')),
    dtmf                text,  -- keys pressed during the announcement
    opted_out           boolean NOT NULL DEFAULT false,
    inserted_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT consent_audit_prompt_played CHECK ((prompt IS NULL) = (played = 'none')),
    CONSTRAINT consent_audit_times CHECK (ended_at IS NULL OR ended_at >= started_at)
);
-- A call's consent story, in the order written; also backs the foreign key.
CREATE INDEX consent_audit_call_idx ON consent_audit (call_id, id);

CREATE FUNCTION consent_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_audit is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER consent_audit_append_only
    BEFORE UPDATE OR DELETE ON consent_audit
    FOR EACH ROW EXECUTE FUNCTION consent_audit_append_only();
