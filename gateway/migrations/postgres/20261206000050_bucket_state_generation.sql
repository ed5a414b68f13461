-- Vaultgate index: a bucket's versioning and object lock state is cached like its settings
-- (`Index::bucket_state`, read by every object request). A change of that state (an UPDATE of
-- `buckets`: versioning, object lock, default retention) advances the settings write counter
-- too, so that every other instance drops its cached state within the follow interval
-- (docs/SCALING.md).
CREATE TRIGGER buckets_update_settings_generation AFTER UPDATE ON buckets
    FOR EACH ROW EXECUTE FUNCTION idx_advance_settings_generation();
