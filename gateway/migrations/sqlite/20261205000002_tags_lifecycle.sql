-- Tagging and lifecycle (issues 16 and 15).
--
-- Object tags live in the version's `headers` map under `x-amz-tagging` (the URL-encoded tag
-- set, as the request header carries it), so that they are sealed with the object's metadata
-- like every other header. PutObjectTagging / DeleteObjectTagging write a sealed tag record (an
-- empty stream whose metadata names the version and carries its new tag set) and the version
-- references it in `tag_record_id` (like `lock_record_id`), so that `vaultgate reindex`
-- restores the tags as last changed.
--
-- `bucket_settings` holds per-bucket configuration documents by name ('tagging',
-- 'lifecycle', 'state': versioning and object lock as last set): the value is JSON of the
-- gateway's own types, `record_id` the sealed bucket record that carries the same value (so
-- that reindex restores it). Rows go with their bucket; the trigger queues the record of a
-- removed row for garbage collection (a bucket delete cascades here).

ALTER TABLE objects ADD COLUMN tag_record_id TEXT;
CREATE INDEX objects_tag_record_id ON objects (tag_record_id);

CREATE TABLE bucket_settings (
    bucket      TEXT   NOT NULL REFERENCES buckets (name) ON DELETE CASCADE,
    name        TEXT   NOT NULL,
    value       TEXT   NOT NULL,
    updated_ms  BIGINT NOT NULL,
    record_id   TEXT,
    PRIMARY KEY (bucket, name)
);
CREATE INDEX bucket_settings_record_id ON bucket_settings (record_id);

CREATE TRIGGER bucket_settings_record_gc AFTER DELETE ON bucket_settings
WHEN OLD.record_id IS NOT NULL
BEGIN
    INSERT INTO gc_queue (backend_id, queued_ms)
    VALUES (OLD.record_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
    ON CONFLICT (backend_id) DO NOTHING;
END;
