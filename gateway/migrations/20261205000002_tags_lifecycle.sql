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
-- 'lifecycle'): the value is JSON of the gateway's own types. Rows go with their bucket.

ALTER TABLE objects ADD COLUMN tag_record_id TEXT;
CREATE INDEX objects_tag_record_id ON objects (tag_record_id);

CREATE TABLE bucket_settings (
    bucket      TEXT   NOT NULL REFERENCES buckets (name) ON DELETE CASCADE,
    name        TEXT   NOT NULL,
    value       TEXT   NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (bucket, name)
);
