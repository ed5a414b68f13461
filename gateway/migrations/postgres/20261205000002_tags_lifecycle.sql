-- PostgreSQL form of ../sqlite/20261205000002_tags_lifecycle.sql (same version, same schema): every integer is BIGINT (the
-- `Any` driver decodes them as i64), flags are BIGINT 0/1, blobs BYTEA, and every TEXT column
-- compares as bytes (COLLATE "C", like SQLite's BINARY collation: listings are in UTF-8 byte order).

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

ALTER TABLE objects ADD COLUMN tag_record_id TEXT COLLATE "C";
CREATE INDEX objects_tag_record_id ON objects (tag_record_id);

CREATE TABLE bucket_settings (
    bucket      TEXT COLLATE "C"   NOT NULL REFERENCES buckets (name) ON DELETE CASCADE,
    name        TEXT COLLATE "C"   NOT NULL,
    value       TEXT COLLATE "C"   NOT NULL,
    updated_ms  BIGINT NOT NULL,
    record_id   TEXT COLLATE "C",
    PRIMARY KEY (bucket, name)
);
CREATE INDEX bucket_settings_record_id ON bucket_settings (record_id);

CREATE FUNCTION bucket_settings_record_gc() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.record_id IS NOT NULL THEN
        INSERT INTO gc_queue (backend_id, queued_ms)
        VALUES (OLD.record_id, CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT))
        ON CONFLICT (backend_id) DO NOTHING;
    END IF;
    RETURN OLD;
END;
$$;

CREATE TRIGGER bucket_settings_record_gc AFTER DELETE ON bucket_settings
FOR EACH ROW EXECUTE FUNCTION bucket_settings_record_gc();
