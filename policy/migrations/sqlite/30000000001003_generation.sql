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
CREATE TRIGGER IF NOT EXISTS pol_access_keys_generation_insert AFTER INSERT ON pol_access_keys
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_access_keys_generation_update AFTER UPDATE ON pol_access_keys
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_access_keys_generation_delete AFTER DELETE ON pol_access_keys
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_principals_generation_insert AFTER INSERT ON pol_principals
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_principals_generation_update AFTER UPDATE ON pol_principals
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_principals_generation_delete AFTER DELETE ON pol_principals
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_grants_generation_insert AFTER INSERT ON pol_grants
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_grants_generation_update AFTER UPDATE ON pol_grants
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_grants_generation_delete AFTER DELETE ON pol_grants
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_roles_generation_insert AFTER INSERT ON pol_roles
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_roles_generation_update AFTER UPDATE ON pol_roles
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_roles_generation_delete AFTER DELETE ON pol_roles
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_bucket_tenants_generation_insert AFTER INSERT ON pol_bucket_tenants
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_bucket_tenants_generation_update AFTER UPDATE ON pol_bucket_tenants
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_bucket_tenants_generation_delete AFTER DELETE ON pol_bucket_tenants
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_quorum_rules_generation_insert AFTER INSERT ON pol_quorum_rules
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_quorum_rules_generation_update AFTER UPDATE ON pol_quorum_rules
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_quorum_rules_generation_delete AFTER DELETE ON pol_quorum_rules
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_limits_generation_insert AFTER INSERT ON pol_limits
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_limits_generation_update AFTER UPDATE ON pol_limits
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_limits_generation_delete AFTER DELETE ON pol_limits
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_tenants_generation_insert AFTER INSERT ON pol_tenants
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_tenants_generation_update AFTER UPDATE ON pol_tenants
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS pol_tenants_generation_delete AFTER DELETE ON pol_tenants
BEGIN UPDATE pol_generation SET value = value + 1 WHERE id = 1; END;
