//! The vaultgate binary's integration tests (CLI, key commands, PostgreSQL, SSE-KMS), one binary with
//! a module per former test file: one link instead of twelve.
//! `cargo test -p vaultgate --test it keys_ops::` runs one family.

#[path = "../../../tests/it/common/mod.rs"]
mod common;
mod keys_common;

mod admin_secret;
mod admin_session;
mod audit_cli;
mod cli;
mod key_custody;
mod keys_backup;
mod keys_ops;
mod keys_reencrypt;
mod migrate_db;
mod policy_admin;
mod postgres;
mod sse_kms;
