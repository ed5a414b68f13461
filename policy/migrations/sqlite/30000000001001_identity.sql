-- Vaultgate policy: tenants, principals, access keys, custom roles, grants,
-- bucket ownership, quorum rules and approvals, admin idempotency records.
CREATE TABLE IF NOT EXISTS pol_tenants (
    name TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_principals (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    tenant TEXT NOT NULL REFERENCES pol_tenants(name),
    role TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_access_keys (
    access_key_id TEXT PRIMARY KEY,
    principal TEXT NOT NULL REFERENCES pol_principals(name),
    sealed_secret BLOB NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pol_access_keys_principal ON pol_access_keys(principal);
CREATE TABLE IF NOT EXISTS pol_roles (
    name TEXT PRIMARY KEY,
    actions TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_grants (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL REFERENCES pol_principals(name),
    role TEXT NOT NULL,
    bucket TEXT NOT NULL,
    prefix TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS pol_grants_principal ON pol_grants(principal);
CREATE TABLE IF NOT EXISTS pol_bucket_tenants (
    bucket TEXT PRIMARY KEY,
    tenant TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_quorum_rules (
    name TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    bucket_pattern TEXT NOT NULL DEFAULT '*',
    approvals INTEGER NOT NULL,
    approver_roles TEXT NOT NULL,
    ttl_secs BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_approvals (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    requester TEXT NOT NULL,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    needed INTEGER NOT NULL,
    approver_roles TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    decided_ms BIGINT,
    consumed_ms BIGINT
);
CREATE INDEX IF NOT EXISTS pol_approvals_fingerprint ON pol_approvals(fingerprint);
CREATE TABLE IF NOT EXISTS pol_approval_votes (
    approval_id TEXT NOT NULL REFERENCES pol_approvals(id),
    approver TEXT NOT NULL,
    decision TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (approval_id, approver)
);
CREATE TABLE IF NOT EXISTS pol_idempotency (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
