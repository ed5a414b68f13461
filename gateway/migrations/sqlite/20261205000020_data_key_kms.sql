-- SSE-KMS per request and per bucket (issue 16 item 2): a bucket data key is bound to a KMS key
-- (`kms_key`, the key ARN; '' = the provider's configured key, every key before this
-- migration), and a bucket has one version sequence per KMS key. SQLite cannot change a table
-- constraint in place: the table is rebuilt with UNIQUE (bucket, kms_key, version).
CREATE TABLE data_keys_v (
    id          TEXT    NOT NULL PRIMARY KEY,
    bucket      TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    kek_id      TEXT    NOT NULL,
    wrapped     BLOB    NOT NULL,
    created_ms  BIGINT  NOT NULL,
    kms_key     TEXT    NOT NULL DEFAULT '',
    UNIQUE (bucket, kms_key, version)
);
INSERT INTO data_keys_v (id, bucket, version, kek_id, wrapped, created_ms, kms_key)
    SELECT id, bucket, version, kek_id, wrapped, created_ms, '' FROM data_keys;
DROP TABLE data_keys;
ALTER TABLE data_keys_v RENAME TO data_keys;
