-- 0008_row_keys: rows the daemon may write twice carry the key it gave them when staged.
-- While PostgreSQL is away the daemon keeps its rows in a journal on disk; a daemon that died
-- during the outage replays it, and a row the database had already taken (a write that timed
-- out after its commit) must not be added again. NULL for rows written before this migration.
ALTER TABLE call_events ADD COLUMN row_key text;
ALTER TABLE consent_audit ADD COLUMN row_key text;
ALTER TABLE coverage_gaps ADD COLUMN row_key text;
CREATE UNIQUE INDEX call_events_row_key_idx ON call_events (row_key);
CREATE UNIQUE INDEX consent_audit_row_key_idx ON consent_audit (row_key);
CREATE UNIQUE INDEX coverage_gaps_row_key_idx ON coverage_gaps (row_key);
