-- 0010_compact: a compact copy (Opus in Ogg, or MP3) of each filed recording, made after the
-- original's SHA-256 was taken (storage.compact). Python side: recorder/storage/compact.py.
--
-- compact_* name the copy and its own SHA-256. With keep_original the row goes on naming the
-- original (path, sha256, bytes, format) and the copy is a second file beside it. Without, the
-- copy becomes the recording: path, sha256, bytes and format are the copy's, original_* keep what
-- was filed (its hash, still in the 'filed' custody event), and the original file is deleted
-- after that commit (original_path names it until then). Either way a 'compacted' custody
-- event carries the copy's hash.

ALTER TABLE recordings
    ADD COLUMN compact_path    text,
    ADD COLUMN compact_format  text,
    ADD COLUMN compact_sha256  text CHECK (compact_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN compact_bytes   bigint CHECK (compact_bytes >= 0),
    ADD COLUMN original_sha256 text CHECK (original_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN original_bytes  bigint CHECK (original_bytes >= 0),
    ADD COLUMN original_format text,
    ADD COLUMN original_path   text,   -- the dropped original's file, until it is deleted
    ADD CONSTRAINT recordings_compact_whole CHECK (
        (compact_sha256 IS NULL) = (compact_path IS NULL)
        AND (compact_sha256 IS NULL) = (compact_bytes IS NULL)
        AND (compact_sha256 IS NULL) = (compact_format IS NULL)
        AND (original_sha256 IS NULL OR compact_sha256 IS NOT NULL));

-- Still to compact: an office's filed recordings without a copy.
CREATE INDEX recordings_uncompacted_idx ON recordings (asterisk_id, name)
    WHERE status = 'filed' AND compact_sha256 IS NULL;

-- Dropped originals whose deletion a crash interrupted.
CREATE INDEX recordings_original_left_idx ON recordings (asterisk_id)
    WHERE original_path IS NOT NULL;

-- The daemon writes a call's recordings from its model, which knows the original only: a
-- snapshot written after the original was dropped must not point the row back at it.
CREATE FUNCTION recordings_keep_compacted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.path := OLD.path;
    NEW.sha256 := OLD.sha256;
    NEW.bytes := OLD.bytes;
    NEW.format := OLD.format;
    RETURN NEW;
END
$$;

CREATE TRIGGER recordings_keep_compacted
    BEFORE UPDATE ON recordings
    FOR EACH ROW WHEN (OLD.original_sha256 IS NOT NULL AND NEW.sha256 = OLD.original_sha256)
    EXECUTE FUNCTION recordings_keep_compacted();

ALTER TABLE custody DROP CONSTRAINT custody_kind_check;
ALTER TABLE custody ADD CONSTRAINT custody_kind_check
    CHECK (kind IN ('filed', 'held', 'release_asked', 'released', 'purged', 'metadata_purged',
                    'play', 'download', 'moved', 're-keyed', 'compacted'));
