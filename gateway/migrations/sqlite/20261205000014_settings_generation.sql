-- Vaultgate index, several gateway instances on one database (issue 14, phase 2):
-- `idx_settings_generation` counts the writes to `bucket_settings` (bucket tags, lifecycle
-- rules, CORS, versioning state) and the deletes of buckets. The triggers advance it in the
-- writing transaction itself, whichever instance (or offline command) writes; every serving
-- instance polls it and drops its bucket settings cache when it moved
-- (`Index::follow_other_instances`), so a change made through one instance acts on all of
-- them within the stated bound (docs/SCALING.md).
CREATE TABLE IF NOT EXISTS idx_settings_generation (
    id BIGINT NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO idx_settings_generation (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TRIGGER IF NOT EXISTS bucket_settings_generation_insert AFTER INSERT ON bucket_settings
BEGIN UPDATE idx_settings_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS bucket_settings_generation_update AFTER UPDATE ON bucket_settings
BEGIN UPDATE idx_settings_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS bucket_settings_generation_delete AFTER DELETE ON bucket_settings
BEGIN UPDATE idx_settings_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS buckets_delete_settings_generation AFTER DELETE ON buckets
BEGIN UPDATE idx_settings_generation SET value = value + 1 WHERE id = 1; END;
