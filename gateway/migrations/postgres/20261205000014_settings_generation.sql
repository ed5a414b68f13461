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
CREATE OR REPLACE FUNCTION idx_advance_settings_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE idx_settings_generation SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER bucket_settings_generation AFTER INSERT OR UPDATE OR DELETE ON bucket_settings
    FOR EACH ROW EXECUTE FUNCTION idx_advance_settings_generation();
CREATE TRIGGER buckets_delete_settings_generation AFTER DELETE ON buckets
    FOR EACH ROW EXECUTE FUNCTION idx_advance_settings_generation();
