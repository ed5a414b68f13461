-- Vaultgate policy, several gateway instances on one database (issue 14, phase 2):
-- `pol_generation` counts the writes to every table the access check caches (access keys,
-- principals, grants, roles, bucket tenants, quorum rules, rate-limit overrides, tenants).
-- The triggers below advance it in the writing transaction itself, whichever instance (or
-- offline command) writes; every serving instance polls it and drops its access cache when
-- it moved (`PolicyStore::follow_other_instances`), so a change made through one instance acts
-- on all of them within the stated bound (docs/SCALING.md).
CREATE TABLE IF NOT EXISTS pol_generation (
    id BIGINT NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO pol_generation (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE OR REPLACE FUNCTION pol_advance_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE pol_generation SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER pol_access_keys_generation AFTER INSERT OR UPDATE OR DELETE ON pol_access_keys
    FOR EACH ROW EXECUTE FUNCTION pol_advance_generation();
CREATE TRIGGER pol_principals_generation AFTER INSERT OR UPDATE OR DELETE ON pol_principals
    FOR EACH ROW EXECUTE FUNCTION pol_advance_generation();
CREATE TRIGGER pol_grants_generation AFTER INSERT OR UPDATE OR DELETE ON pol_grants
    FOR EACH ROW EXECUTE FUNCTION pol_advance_generation();
CREATE TRIGGER pol_roles_generation AFTER INSERT OR UPDATE OR DELETE ON pol_roles
    FOR EACH ROW EXECUTE FUNCTION pol_advance_generation();
CREATE TRIGGER pol_bucket_tenants_generation AFTER INSERT OR UPDATE OR DELETE ON pol_bucket_tenants
    FOR EACH ROW EXECUTE FUNCTION pol_advance_generation();
CREATE TRIGGER pol_quorum_rules_generation AFTER INSERT OR UPDATE OR DELETE ON pol_quorum_rules
    FOR EACH ROW EXECUTE FUNCTION pol_advance_generation();
CREATE TRIGGER pol_limits_generation AFTER INSERT OR UPDATE OR DELETE ON pol_limits
    FOR EACH ROW EXECUTE FUNCTION pol_advance_generation();
CREATE TRIGGER pol_tenants_generation AFTER INSERT OR UPDATE OR DELETE ON pol_tenants
    FOR EACH ROW EXECUTE FUNCTION pol_advance_generation();
