-- PostgreSQL form of ../sqlite/30000000000001_audit.sql (same version, same schema): every integer is BIGINT (the
-- `Any` driver decodes them as i64), flags are BIGINT 0/1, blobs BYTEA, and every TEXT column
-- compares as bytes (COLLATE "C", like SQLite's BINARY collation: listings are in UTF-8 byte order).

-- Vaultgate audit ledger (policy crate). Versions 3000… never collide with the gateway's 2026… migrations.
-- Plain SQL that PostgreSQL accepts as well.

-- One row per audited request, hash-chained by seq (see docs/AUDIT.md for the canonical form).
CREATE TABLE IF NOT EXISTS audit_events (
    seq          BIGINT  NOT NULL PRIMARY KEY,
    time_ms      BIGINT  NOT NULL,
    request_id   TEXT COLLATE "C"    NOT NULL,
    kind         TEXT COLLATE "C"    NOT NULL,
    principal    TEXT COLLATE "C",
    tenant       TEXT COLLATE "C",
    action       TEXT COLLATE "C"    NOT NULL,
    bucket       TEXT COLLATE "C",
    object_key   TEXT COLLATE "C",
    outcome      TEXT COLLATE "C"    NOT NULL,
    status       BIGINT NOT NULL,
    error_code   TEXT COLLATE "C",
    bytes_in     BIGINT  NOT NULL,
    bytes_out    BIGINT  NOT NULL,
    key_version  BIGINT,
    source       TEXT COLLATE "C",
    duration_us  BIGINT  NOT NULL,
    prev_hash    TEXT COLLATE "C"    NOT NULL,
    hash         TEXT COLLATE "C"    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time_ms);
CREATE INDEX IF NOT EXISTS audit_events_hash ON audit_events (hash);
CREATE INDEX IF NOT EXISTS audit_events_principal ON audit_events (principal, seq);
CREATE INDEX IF NOT EXISTS audit_events_bucket ON audit_events (bucket, seq);

-- Signed checkpoints written by retention pruning: the chain continues from (seq, hash).
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq              BIGINT NOT NULL PRIMARY KEY,
    hash             TEXT COLLATE "C"   NOT NULL,
    pruned_before_ms BIGINT NOT NULL,
    pruned_count     BIGINT NOT NULL,
    created_ms       BIGINT NOT NULL,
    public_key       TEXT COLLATE "C"   NOT NULL,
    signature        TEXT COLLATE "C"   NOT NULL
);

-- The chain head (last seq and hash), updated in the same transaction as every append. An
-- append refuses to continue a chain whose last row does not match it (tail truncation).
CREATE TABLE IF NOT EXISTS audit_head (
    id   BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT COLLATE "C"    NOT NULL
);
