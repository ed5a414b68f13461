-- PostgreSQL form of ../sqlite/30000000001001_identity.sql (same version, same schema): every integer is BIGINT (the
-- `Any` driver decodes them as i64), flags are BIGINT 0/1, blobs BYTEA, and every TEXT column
-- compares as bytes (COLLATE "C", like SQLite's BINARY collation: listings are in UTF-8 byte order).

-- Vaultgate policy: tenants, principals, access keys, custom roles, grants,
-- bucket ownership, quorum rules and approvals, admin idempotency records.
CREATE TABLE IF NOT EXISTS pol_tenants (
    name TEXT COLLATE "C" PRIMARY KEY,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_principals (
    name TEXT COLLATE "C" PRIMARY KEY,
    kind TEXT COLLATE "C" NOT NULL,
    tenant TEXT COLLATE "C" NOT NULL REFERENCES pol_tenants(name),
    role TEXT COLLATE "C" NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_access_keys (
    access_key_id TEXT COLLATE "C" PRIMARY KEY,
    principal TEXT COLLATE "C" NOT NULL REFERENCES pol_principals(name),
    sealed_secret BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    revoked BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pol_access_keys_principal ON pol_access_keys(principal);
CREATE TABLE IF NOT EXISTS pol_roles (
    name TEXT COLLATE "C" PRIMARY KEY,
    actions TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_grants (
    id TEXT COLLATE "C" PRIMARY KEY,
    principal TEXT COLLATE "C" NOT NULL REFERENCES pol_principals(name),
    role TEXT COLLATE "C" NOT NULL,
    bucket TEXT COLLATE "C" NOT NULL,
    prefix TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS pol_grants_principal ON pol_grants(principal);
CREATE TABLE IF NOT EXISTS pol_bucket_tenants (
    bucket TEXT COLLATE "C" PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_quorum_rules (
    name TEXT COLLATE "C" PRIMARY KEY,
    action TEXT COLLATE "C" NOT NULL,
    bucket_pattern TEXT COLLATE "C" NOT NULL DEFAULT '*',
    approvals BIGINT NOT NULL,
    approver_roles TEXT COLLATE "C" NOT NULL,
    ttl_secs BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pol_approvals (
    id TEXT COLLATE "C" PRIMARY KEY,
    rule TEXT COLLATE "C" NOT NULL,
    requester TEXT COLLATE "C" NOT NULL,
    tenant TEXT COLLATE "C" NOT NULL,
    action TEXT COLLATE "C" NOT NULL,
    resource TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT COLLATE "C" NOT NULL,
    needed BIGINT NOT NULL,
    approver_roles TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    decided_ms BIGINT,
    consumed_ms BIGINT
);
CREATE INDEX IF NOT EXISTS pol_approvals_fingerprint ON pol_approvals(fingerprint);
CREATE TABLE IF NOT EXISTS pol_approval_votes (
    approval_id TEXT COLLATE "C" NOT NULL REFERENCES pol_approvals(id),
    approver TEXT COLLATE "C" NOT NULL,
    decision TEXT COLLATE "C" NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (approval_id, approver)
);
CREATE TABLE IF NOT EXISTS pol_idempotency (
    scope TEXT COLLATE "C" NOT NULL,
    idem_key TEXT COLLATE "C" NOT NULL,
    request_hash TEXT COLLATE "C" NOT NULL,
    status BIGINT NOT NULL,
    body TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
