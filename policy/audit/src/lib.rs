//! The tamper-evident audit ledger of Vaultgate: one hash-chained event per request (S3 and
//! admin), stored in the gateway's SQLite metadata database (tables `audit_events`,
//! `audit_head`, `audit_checkpoints` from this crate's `migrations/`), optionally mirrored to a
//! JSON-lines file; offline and online verification, retention with signed checkpoints, and
//! signed evidence bundles. It depends on no other crate of the workspace. See docs/AUDIT.md
//! for the canonical form and the gateway-facing API.
//!
//! Modules: [`ledger`](Ledger) (settings, append, query), [`event`](StoredEvent) (the event and
//! its canonical hash), [`scope`] (one request's event, recorded exactly once), [`verify`],
//! [`retention`], `mirror`, [`cli`] (the `vaultgate audit verify` entry points) and
//! [`evidence`] (bundles and the Ed25519 evidence key).

pub mod cli;
pub mod db;
mod error;
mod event;
pub mod evidence;
mod ledger;
mod mirror;
pub mod retention;
pub mod scope;
pub mod verify;

pub use error::{AuditError, AuditResult, BundleReason};
pub use event::{
    AuditEvent, EventKind, GENESIS_HASH, LINK_TAG, Outcome, StoredEvent, link_hash, link_string,
    sha256_hex,
};
pub use ledger::{
    AuditFilter, AuditPage, AuditQuery, AuditStats, ChainAppender, DEFAULT_RETENTION, Head, Ledger,
    LedgerConfig, MAX_PAGE, READ_LINGER, ReadPolicy, Receipt, SourceMode, SourceSecret,
    StatsSnapshot, migrate, open_pool,
};
pub(crate) use ledger::{COLUMNS, locked_head, row_to_event, select_ascending, select_range};
pub use retention::{Checkpoint, PruneReport};
pub use scope::{AbandonGuard, CLIENT_CLOSED, RequestAudit, new_request_id, outcome_for};
pub use verify::{Anchor, Issue, VerifyReport};

/// The current time in Unix milliseconds (for `AuditEvent::time_ms`, prune and export).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
