-- Vaultgate policy, security hardening (issue 12):
-- * when a principal got its current role (quorum approvers must have held their role
--   before the approval request was opened); existing principals: their creation time;
-- * custom roles belong to a tenant (existing ones to the default tenant, whose roles every
--   tenant may grant);
-- * per-principal and per-role S3 rate-limit overrides (NULL: inherit);
-- * idempotent replay bodies are stored sealed (`sealed_body`; `body` is then empty).
ALTER TABLE pol_principals ADD COLUMN role_since_ms BIGINT NOT NULL DEFAULT 0;
UPDATE pol_principals SET role_since_ms = created_ms;
ALTER TABLE pol_roles ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
CREATE TABLE IF NOT EXISTS pol_limits (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    s3_reads_per_min INTEGER,
    s3_writes_per_min INTEGER,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, name)
);
ALTER TABLE pol_idempotency ADD COLUMN sealed_body BLOB;
-- stored answers that hold a secret in clear are dropped (a retry then runs again)
DELETE FROM pol_idempotency WHERE body LIKE '%"secret_key"%';
