//! Write locks across gateway instances (several processes writing one PostgreSQL index).
//!
//! Every index write transaction that reads before it writes first takes, as its first
//! statement, the locks of what it changes ([`LockSet`], taken by `audit::db::Dialect::lock_keys`
//! in ascending key order, held until COMMIT or ROLLBACK):
//!
//! | lock | held by |
//! | --- | --- |
//! | bucket, shared | every write that adds rows under a bucket (object versions and delete markers, uploads, parts, completion, settings) |
//! | bucket, exclusive | the bucket delete (so it never races a put into the bucket) |
//! | bucket configuration | versioning and object lock changes (each reads the other's column) |
//! | object key (bucket, key) | every write of a key's versions: put, delete, delete marker, completion, retention and legal hold, tags, re-seal, lifecycle expiry |
//! | upload | every write of a multipart upload: part, completion, abort |
//! | bucket setting (bucket, name) | a setting's write (its previous sealed record becomes garbage exactly once) |
//!
//! Writes of one key (or upload, or setting) are therefore serial across instances, as they
//! are within one instance, and each statement at READ COMMITTED sees the previous writer's
//! commit: one latest version, one `seq` order, every replaced blob queued by exactly one
//! transaction. A lock key is the kind in the top byte and 56 bits of a SHA-256 of the names
//! (stable across processes and releases; a collision only makes two writes take turns). The
//! kinds sort buckets before everything else, so a transaction's bucket lock comes first.
//!
//! On SQLite a [`LockSet`] stays empty and costs nothing: the single `BEGIN IMMEDIATE` writer
//! already excludes every other writer of the file.

use std::time::Duration;

use audit::db::Dialect;
use sha2::{Digest, Sha256};

use super::IndexError;

/// The kinds of lock, the top byte of the key (none is 0x56, the byte of the ledger and lease
/// keys `0x5647_…`).
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Kind {
    Bucket = 0x10,
    BucketConfig = 0x11,
    Object = 0x12,
    Upload = 0x13,
    Setting = 0x14,
}

/// The advisory lock key of `names` under `kind`.
fn key(kind: Kind, names: &[&str]) -> i64 {
    let mut h = Sha256::new();
    h.update([kind as u8]);
    for n in names {
        // length-prefixed, so ("ab", "c") and ("a", "bc") differ
        h.update((n.len() as u64).to_be_bytes());
        h.update(n.as_bytes());
    }
    let d = h.finalize();
    let mut k = [0u8; 8];
    k[0] = kind as u8;
    k[1..].copy_from_slice(&d[..7]);
    i64::from_be_bytes(k)
}

/// The locks one write transaction takes first. Empty (and free to build) on SQLite.
#[derive(Debug, Default)]
pub(crate) struct LockSet {
    active: bool,
    locks: Vec<(i64, bool)>,
}

impl LockSet {
    /// An empty set for a transaction on `dialect`.
    pub(crate) fn new(dialect: Dialect) -> LockSet {
        LockSet {
            active: dialect.needs_write_locks(),
            locks: Vec::new(),
        }
    }

    fn add(mut self, kind: Kind, names: &[&str], exclusive: bool) -> LockSet {
        if self.active {
            self.locks.push((key(kind, names), exclusive));
        }
        self
    }

    /// Adds rows under `bucket` (excludes only its delete).
    pub(crate) fn bucket_shared(self, bucket: &str) -> LockSet {
        self.add(Kind::Bucket, &[bucket], false)
    }

    /// Deletes `bucket` (excludes every write adding rows under it).
    pub(crate) fn bucket_exclusive(self, bucket: &str) -> LockSet {
        self.add(Kind::Bucket, &[bucket], true)
    }

    /// Changes the versioning or object lock configuration of `bucket`.
    pub(crate) fn bucket_config(self, bucket: &str) -> LockSet {
        self.add(Kind::BucketConfig, &[bucket], true)
    }

    /// Writes versions of `key` in `bucket`.
    pub(crate) fn object(self, bucket: &str, key: &str) -> LockSet {
        self.add(Kind::Object, &[bucket, key], true)
    }

    /// Writes the multipart upload `upload_id` (its row or its parts).
    pub(crate) fn upload(self, upload_id: &str) -> LockSet {
        self.add(Kind::Upload, &[upload_id], true)
    }

    /// Writes the bucket setting `name` of `bucket`.
    pub(crate) fn setting(self, bucket: &str, name: &str) -> LockSet {
        self.add(Kind::Setting, &[bucket, name], true)
    }

    /// Adds every lock of `other` (a group commit gathers its jobs' locks).
    pub(crate) fn extend(&mut self, other: LockSet) {
        self.locks.extend(other.locks);
    }

    /// The keys with their mode (`true`: exclusive), for `Dialect::lock_keys`.
    pub(crate) fn keys(&self) -> &[(i64, bool)] {
        &self.locks
    }
}

/// Most runs of a write that lost a conflict (a deadlock or serialization failure).
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// The pause before run `attempt` (2, 3, …) of a write that lost a conflict: 10 ms doubling,
/// with up to as much again of jitter so that two instances do not collide in step.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << attempt.saturating_sub(2).min(6);
    let mut b = [0u8; 2];
    let jitter = match getrandom::fill(&mut b) {
        Ok(()) => u64::from(u16::from_le_bytes(b)) % base,
        Err(_) => 0,
    };
    Duration::from_millis(base + jitter)
}

/// Whether an index error is a conflict that running the transaction again resolves.
pub(crate) fn is_conflict(e: &IndexError) -> bool {
    matches!(e, IndexError::Database(e) if audit::db::is_transient_conflict(e))
}

/// After a run of a write that lost a conflict: logs it and waits [`backoff`] before run
/// `attempt`.
pub(crate) async fn pause(attempt: u32, e: &IndexError) {
    tracing::debug!(error = %e, attempt, "index write lost a conflict; running it again");
    tokio::time::sleep(backoff(attempt)).await;
}

/// `retrying!(self.x_once(args))`: runs the write transaction (the expression is evaluated
/// anew for each run) until it does not lose a conflict with another instance's transaction,
/// at most [`MAX_ATTEMPTS`] times; the last conflict is returned as the database error it is
/// (503 to a client, never a 500). A macro rather than a function taking a closure: a closure
/// returning a future that borrows the caller's arguments trips the compiler's `Send` check of
/// the spawned request futures.
macro_rules! retrying {
    ($once:expr) => {{
        let mut attempt = 1;
        loop {
            match $once.await {
                Err(e)
                    if attempt < $crate::index::locks::MAX_ATTEMPTS
                        && $crate::index::locks::is_conflict(&e) =>
                {
                    attempt += 1;
                    $crate::index::locks::pause(attempt, &e).await;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use retrying;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_distinct_and_sorted_by_kind() {
        let a = key(Kind::Object, &["b", "k"]);
        assert_eq!(a, key(Kind::Object, &["b", "k"]));
        assert_ne!(a, key(Kind::Object, &["bk", ""]));
        assert_ne!(a, key(Kind::Setting, &["b", "k"]));
        assert!(key(Kind::Bucket, &["zzz"]) < key(Kind::Object, &["a", "a"]));
        assert_eq!(a.to_be_bytes()[0], 0x12);
    }

    #[test]
    fn sqlite_sets_stay_empty() {
        let s = LockSet::new(Dialect::Sqlite)
            .bucket_shared("b")
            .object("b", "k");
        assert!(s.keys().is_empty());
        let p = LockSet::new(Dialect::Postgres)
            .bucket_shared("b")
            .object("b", "k");
        assert_eq!(p.keys().len(), 2);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(2) >= Duration::from_millis(10));
        assert!(backoff(2) < Duration::from_millis(20));
        assert!(backoff(30) < Duration::from_millis(1280));
    }
}
