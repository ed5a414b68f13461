-- Vaultgate metadata index, initial schema.
--
-- Portable SQL: SQLite now, PostgreSQL later (BLOB becomes BYTEA there). Keys and names are
-- compared as UTF-8 bytes (SQLite's default BINARY collation; a PostgreSQL database for the index
-- must use the "C" collation). Times are milliseconds since the Unix epoch. Maps (headers, user
-- metadata, checksums) are JSON objects stored as TEXT; sealed-stream headers are raw bytes.

CREATE TABLE buckets (
    name        TEXT    NOT NULL PRIMARY KEY,
    owner       TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL
);

-- One row per visible object version (no versioning: at most one per bucket/key).
CREATE TABLE objects (
    bucket            TEXT    NOT NULL REFERENCES buckets (name),
    object_key        TEXT    NOT NULL,
    size              BIGINT  NOT NULL,
    etag              TEXT    NOT NULL,
    last_modified_ms  BIGINT  NOT NULL,
    headers           TEXT    NOT NULL,
    user_metadata     TEXT    NOT NULL,
    checksums         TEXT    NOT NULL,
    data_key_id       TEXT    NOT NULL,
    key_version       BIGINT  NOT NULL,
    manifest_id       TEXT,
    PRIMARY KEY (bucket, object_key)
);
CREATE INDEX objects_manifest_id ON objects (manifest_id);

-- The sealed streams of an object, in order: one for a single PUT, the parts for multipart.
CREATE TABLE object_streams (
    bucket         TEXT    NOT NULL,
    object_key     TEXT    NOT NULL,
    seq            BIGINT  NOT NULL,
    part_number    BIGINT  NOT NULL,
    backend_id     TEXT    NOT NULL,
    header         BLOB    NOT NULL,
    plaintext_len  BIGINT  NOT NULL,
    md5_hex        TEXT    NOT NULL,
    PRIMARY KEY (bucket, object_key, seq),
    FOREIGN KEY (bucket, object_key) REFERENCES objects (bucket, object_key) ON DELETE CASCADE
);
CREATE INDEX object_streams_backend_id ON object_streams (backend_id);

CREATE TABLE uploads (
    upload_id           TEXT    NOT NULL PRIMARY KEY,
    bucket              TEXT    NOT NULL REFERENCES buckets (name),
    object_key          TEXT    NOT NULL,
    object_id_hex       TEXT    NOT NULL,
    initiated_ms        BIGINT  NOT NULL,
    headers             TEXT    NOT NULL,
    user_metadata       TEXT    NOT NULL,
    checksum_algorithm  TEXT,
    owner               TEXT    NOT NULL
);
CREATE INDEX uploads_by_key ON uploads (bucket, object_key, upload_id);

CREATE TABLE parts (
    upload_id         TEXT    NOT NULL REFERENCES uploads (upload_id) ON DELETE CASCADE,
    part_number       BIGINT  NOT NULL,
    backend_id        TEXT    NOT NULL,
    header            BLOB    NOT NULL,
    size              BIGINT  NOT NULL,
    md5_hex           TEXT    NOT NULL,
    checksums         TEXT    NOT NULL,
    last_modified_ms  BIGINT  NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
CREATE INDEX parts_backend_id ON parts (backend_id);

-- Bucket data keys, wrapped by a key-encryption key (keys::envelope::WrappedDataKey).
CREATE TABLE data_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    bucket      TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    kek_id      TEXT    NOT NULL,
    wrapped     BLOB    NOT NULL,
    created_ms  BIGINT  NOT NULL,
    UNIQUE (bucket, version)
);

-- S3 access keys; the secret is sealed (keys::Keyring::seal_blob), never stored in the clear.
CREATE TABLE access_keys (
    access_key_id  TEXT     NOT NULL PRIMARY KEY,
    sealed_secret  BLOB     NOT NULL,
    principal      TEXT     NOT NULL,
    role           TEXT     NOT NULL,
    created_ms     BIGINT   NOT NULL,
    disabled       BOOLEAN  NOT NULL
);

-- Backend ids no longer referenced, to be deleted from the backend. Written in the same
-- transaction that drops the reference, removed once the backend delete succeeded.
CREATE TABLE gc_queue (
    backend_id  TEXT    NOT NULL PRIMARY KEY,
    queued_ms   BIGINT  NOT NULL
);
