-- 0010_encryption: recordings encrypted at rest (storage.encryption). Python side:
-- recorder/storage/crypt.py (Tink streaming AEAD, key wrapping), recorder/storage/keys.py.
--
-- Each encrypted recording's data key, wrapped by a master key (never stored here), with that
-- master key's id. recordings.sha256 and .bytes stay the plaintext's (what the custody chain's
-- 'filed' event and a purge's tombstone name); stored_sha256/stored_bytes are the ciphertext's,
-- the bytes the archive and the object store hold. A row is written before its file is placed
-- (a key is never lost to a crash), keyed by the recording (call_id, name: call ids are unique
-- across offices) because the filer writes it before the recording's row may exist.
CREATE TABLE recording_keys (
    call_id       text NOT NULL,
    name          text NOT NULL,
    key_id        text NOT NULL,    -- the master key that wrapped it
    wrapped_key   bytea NOT NULL,   -- Tink's encrypted keyset
    stored_sha256 text CHECK (stored_sha256 ~ '^[0-9a-f]{64}$'),  -- NULL until the file is placed
    stored_bytes  bigint CHECK (stored_bytes >= 0),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    rekeyed_at    timestamptz,
    PRIMARY KEY (call_id, name)
);
-- `verbatim keys rotate`: the rows still wrapped by another master key than the current one.
CREATE INDEX recording_keys_key_id_idx ON recording_keys (key_id, call_id, name);

-- A purged recording's key goes with its row: any copy of the ciphertext left anywhere (a
-- backup, a replica) is unreadable from then on. One statement per purge batch.
CREATE FUNCTION recording_keys_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM recording_keys k USING gone g WHERE k.call_id = g.call_id AND k.name = g.name;
    RETURN NULL;
END
$$;

CREATE TRIGGER recording_keys_forget AFTER DELETE ON recordings
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION recording_keys_forget();

-- The custody chain records each re-wrap under a new master key (issue 16: re-keyed).
ALTER TABLE custody DROP CONSTRAINT custody_kind_check;
ALTER TABLE custody ADD CONSTRAINT custody_kind_check
    CHECK (kind IN ('filed', 'held', 'release_asked', 'released', 'purged', 'metadata_purged',
                    'play', 'download', 'moved', 're-keyed'));
