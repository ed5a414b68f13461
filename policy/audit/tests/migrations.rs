//! The ledger's migration moved from `policy/migrations` to this crate's `migrations/` with the
//! same version, description and bytes: a metadata database written before the move
//! (`fixtures/index-95b30fa.sql`, a dump of a gateway's `index.db` at commit 95b30fa) opens,
//! verifies and keeps appending without any migration being run again, and a fresh database
//! records the migration exactly as that gateway did.

use std::path::Path;

use audit::{AuditEvent, EventKind, Ledger, LedgerConfig, Outcome, open_pool};
use sqlx::AnyPool;

const INDEX_95B30FA: &str = include_str!("fixtures/index-95b30fa.sql");
const AUDIT_VERSION: i64 = 30_000_000_000_001;
/// Added after the split: the index on `request_id` (issue 20), and the index on `hash` dropped
/// (issue 19): the two migrations an old database gains.
const REQUEST_ID_VERSION: i64 = 30_000_000_000_002;
const NO_HASH_INDEX_VERSION: i64 = 30_000_000_000_003;

async fn pool_in(dir: &Path, name: &str) -> AnyPool {
    let url = format!("sqlite://{}", dir.join(name).display());
    open_pool(&url, true).await.unwrap()
}

async fn restored(dir: &Path) -> AnyPool {
    let pool = pool_in(dir, "index-95b30fa.db").await;
    sqlx::raw_sql(INDEX_95B30FA).execute(&pool).await.unwrap();
    pool
}

/// `success` is a SQLite `BOOLEAN`, which the `Any` driver reads as an integer only.
type MigrationRow = (i64, String, Vec<u8>, i64);

async fn applied(pool: &AnyPool) -> Vec<MigrationRow> {
    sqlx::query_as(
        "SELECT version, description, checksum, CAST(success AS BIGINT) AS success \
         FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn event() -> AuditEvent {
    AuditEvent {
        time_ms: 1_900_000_000_000,
        request_id: "after-the-split".into(),
        kind: EventKind::Admin,
        principal: Some("admin".into()),
        tenant: Some("default".into()),
        action: "admin.GetStatus".into(),
        bucket: None,
        key: None,
        outcome: Outcome::Success,
        status: 200,
        error_code: None,
        bytes_in: 0,
        bytes_out: 10,
        key_version: None,
        source: Some("127.0.0.1".into()),
        duration_us: 5,
    }
}

#[tokio::test]
async fn a_database_written_before_the_split_opens_verifies_and_keeps_appending() {
    let dir = tempfile::tempdir().unwrap();
    let pool = restored(dir.path()).await;
    let before = applied(&pool).await;
    assert_eq!(
        before.len(),
        4,
        "gateway, audit, identity and security migrations"
    );

    let ledger = Ledger::open(pool.clone(), LedgerConfig::default())
        .await
        .unwrap();
    let after = applied(&pool).await;
    let (added, kept): (Vec<MigrationRow>, Vec<MigrationRow>) = after
        .into_iter()
        .partition(|m| [REQUEST_ID_VERSION, NO_HASH_INDEX_VERSION].contains(&m.0));
    assert_eq!(kept, before, "nothing re-run");
    let added: Vec<i64> = added.iter().map(|m| m.0).collect();
    assert_eq!(added, [REQUEST_ID_VERSION, NO_HASH_INDEX_VERSION]);
    assert_eq!(
        indexes(&pool).await,
        [
            "audit_events_bucket",
            "audit_events_principal",
            "audit_events_request_id",
            "audit_events_time"
        ]
    );
    let report = ledger.verify(None).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events, 7);

    assert_eq!(ledger.append(event()).await.unwrap().seq, 8);
    let report = ledger.verify(None).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events, 8);
}

#[tokio::test]
async fn a_fresh_database_records_the_audit_migration_as_before_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let old = applied(&restored(dir.path()).await).await;
    let fresh = pool_in(dir.path(), "fresh.db").await;
    audit::migrate(&fresh).await.unwrap();
    let new = applied(&fresh).await;
    assert_eq!(new.len(), 3, "only the ledger's own migrations: {new:?}");
    let expected: Vec<MigrationRow> = old.into_iter().filter(|m| m.0 == AUDIT_VERSION).collect();
    assert_eq!(new[..1], expected[..]);
    assert_eq!(new[1].0, REQUEST_ID_VERSION);
    assert_eq!(new[2].0, NO_HASH_INDEX_VERSION);
    assert!(
        !indexes(&fresh)
            .await
            .contains(&"audit_events_hash".to_owned())
    );
}

/// The indexes of `audit_events`, by name.
async fn indexes(pool: &AnyPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' \
         AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}
