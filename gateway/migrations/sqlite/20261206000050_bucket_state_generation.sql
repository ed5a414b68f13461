-- Vaultgate index: a bucket's versioning and object lock state is cached like its settings
-- (`Index::bucket_state`, read by every object request). A change of that state (an UPDATE of
-- `buckets`: versioning, object lock, default retention) advances the settings write counter
-- too, so that every other instance drops its cached state within the follow interval
-- (docs/SCALING.md).
CREATE TRIGGER IF NOT EXISTS buckets_update_settings_generation AFTER UPDATE ON buckets
BEGIN UPDATE idx_settings_generation SET value = value + 1 WHERE id = 1; END;
