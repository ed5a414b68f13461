-- SSE-KMS per request and per bucket (issue 16 item 2): a bucket data key is bound to a KMS key
-- (`kms_key`, the key ARN; '' = the provider's configured key, every key before this
-- migration), and a bucket has one version sequence per KMS key.
ALTER TABLE data_keys ADD COLUMN kms_key TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE data_keys DROP CONSTRAINT data_keys_bucket_version_key;
ALTER TABLE data_keys ADD CONSTRAINT data_keys_bucket_kms_key_version_key
    UNIQUE (bucket, kms_key, version);
