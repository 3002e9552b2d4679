-- The coverage proof (recorder/model/coverage.py): per leg, how long it talked and how much of
-- that the recordings' files really hold; every uncovered interval above the threshold is a gap
-- row flagged for ops. Computed once per call, when its files are filed.

ALTER TABLE legs
    ADD COLUMN talked_ms  bigint CHECK (talked_ms >= 0),   -- in a bridge with another party
    ADD COLUMN covered_ms bigint CHECK (covered_ms >= 0),  -- of that, held in a recording
    ADD COLUMN held_ms    bigint CHECK (held_ms >= 0);     -- of that, on hold (never a gap)

-- The legs present in a segment (channel ids), so a call can be replayed in order.
ALTER TABLE recordings ADD COLUMN legs text[];

CREATE TABLE coverage_gaps (
    id           bigserial PRIMARY KEY,
    call_id      text NOT NULL REFERENCES calls (call_id),
    asterisk_id  text NOT NULL,
    channel_id   text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL CHECK (ends_at >= starts_at),
    duration_ms  bigint NOT NULL CHECK (duration_ms >= 0),
    reason       text NOT NULL,
    flagged      boolean NOT NULL DEFAULT true,  -- for ops until someone has looked at it
    detected_at  timestamptz NOT NULL DEFAULT now()
);
-- `verbatim coverage --since 24h` and a call's detail page.
CREATE INDEX coverage_gaps_starts_idx ON coverage_gaps (starts_at);
CREATE INDEX coverage_gaps_call_idx ON coverage_gaps (call_id);
CREATE INDEX coverage_gaps_flagged_idx ON coverage_gaps (detected_at) WHERE flagged;

-- Consent and recording policy (recorder/policy): what was decided for the call and by which
-- rule; the retention class drives retention and legal hold (later).
ALTER TABLE calls
    ADD COLUMN recorded        boolean,
    ADD COLUMN retention_class text,
    ADD COLUMN decided_by      text;

-- Calls joined by an attended transfer (the consultation and the call it was made from): the
-- search shows them together, as one case.
ALTER TABLE calls ADD COLUMN linked_calls text[];
CREATE INDEX calls_linked_idx ON calls USING gin (linked_calls) WHERE linked_calls IS NOT NULL;
