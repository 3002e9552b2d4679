-- 0009_object_store: recordings moved from the local archive into an object store
-- (storage.backend: s3). Python side: recorder/storage/upload.py, recorder/storage/objects.py.
--
-- recordings.path says where a filed recording is: an absolute path in the local archive, or,
-- once uploaded and its SHA-256 confirmed by the store, s3://<bucket>/<asterisk_id>/<yyyy>/<mm>/
-- <dd>/<call_id>/<name>.<format>. A move is one transaction (the path, an uploads row and a
-- 'moved' custody event); the local file is removed after its commit, and uploads.local_removed_at
-- says that happened, so a crash in between leaves a row that says which file to remove.

-- Still to upload: an office's filed recordings with a local path.
CREATE INDEX recordings_local_idx ON recordings (asterisk_id, name)
    WHERE status = 'filed' AND path NOT LIKE 's3://%';

CREATE TABLE uploads (
    asterisk_id      text NOT NULL,
    name             text NOT NULL,   -- the recording (no foreign key: a purge deletes it)
    local_path       text NOT NULL,   -- the archive file it was uploaded from
    key              text NOT NULL,   -- where it went (recordings.path from then on)
    sha256           text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes            bigint NOT NULL CHECK (bytes >= 0),
    uploaded_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    local_removed_at timestamptz,
    PRIMARY KEY (asterisk_id, name)
);
-- Local copies whose removal a crash interrupted.
CREATE INDEX uploads_local_idx ON uploads (asterisk_id) WHERE local_removed_at IS NULL;

-- The daemon writes a call's recordings from its model, which knows the archive path only: a
-- snapshot written after the move must not point the row back at the removed local file.
CREATE FUNCTION recordings_keep_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.path := OLD.path;
    RETURN NEW;
END
$$;

CREATE TRIGGER recordings_keep_moved
    BEFORE UPDATE OF path ON recordings
    FOR EACH ROW WHEN (OLD.path LIKE 's3://%' AND NEW.path IS DISTINCT FROM OLD.path)
    EXECUTE FUNCTION recordings_keep_moved();

-- The custody chain records the move (issue 16: filed, held, released, purged, moved).
ALTER TABLE custody DROP CONSTRAINT custody_kind_check;
ALTER TABLE custody ADD CONSTRAINT custody_kind_check
    CHECK (kind IN ('filed', 'held', 'release_asked', 'released', 'purged', 'metadata_purged',
                    'play', 'download', 'moved'));
