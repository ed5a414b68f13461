-- Vaultgate audit ledger (policy crate). Versions 3000… never collide with the gateway's 2026… migrations.
-- Plain SQL that PostgreSQL accepts as well.

-- One row per audited request, hash-chained by seq (see docs/AUDIT.md for the canonical form).
CREATE TABLE IF NOT EXISTS audit_events (
    seq          BIGINT  NOT NULL PRIMARY KEY,
    time_ms      BIGINT  NOT NULL,
    request_id   TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    principal    TEXT,
    tenant       TEXT,
    action       TEXT    NOT NULL,
    bucket       TEXT,
    object_key   TEXT,
    outcome      TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    error_code   TEXT,
    bytes_in     BIGINT  NOT NULL,
    bytes_out    BIGINT  NOT NULL,
    key_version  BIGINT,
    source       TEXT,
    duration_us  BIGINT  NOT NULL,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time_ms);
CREATE INDEX IF NOT EXISTS audit_events_hash ON audit_events (hash);
CREATE INDEX IF NOT EXISTS audit_events_principal ON audit_events (principal, seq);
CREATE INDEX IF NOT EXISTS audit_events_bucket ON audit_events (bucket, seq);

-- Signed checkpoints written by retention pruning: the chain continues from (seq, hash).
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq              BIGINT NOT NULL PRIMARY KEY,
    hash             TEXT   NOT NULL,
    pruned_before_ms BIGINT NOT NULL,
    pruned_count     BIGINT NOT NULL,
    created_ms       BIGINT NOT NULL,
    public_key       TEXT   NOT NULL,
    signature        TEXT   NOT NULL
);

-- The chain head (last seq and hash), updated in the same transaction as every append. An
-- append refuses to continue a chain whose last row does not match it (tail truncation).
CREATE TABLE IF NOT EXISTS audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
