//! The policy store's migrations after the ledger's moved to the `audit` crate: a metadata
//! database written before the move (`policy/audit/tests/fixtures/index-95b30fa.sql`, a dump of a
//! gateway's `index.db` at commit 95b30fa) opens with its records and nothing re-run, and a fresh
//! database records the identity and security migrations exactly as that gateway did.

use std::sync::Arc;

use policy::{AesGcmSealer, PolicyStore};
use sqlx::AnyPool;

const INDEX_95B30FA: &str = include_str!("../audit/tests/fixtures/index-95b30fa.sql");

async fn pool() -> AnyPool {
    audit::db::connect(
        "sqlite::memory:",
        audit::db::PoolShape {
            max: 1,
            min: 1,
            acquire_timeout: std::time::Duration::from_secs(30),
            idle_timeout: None,
            create: true,
        },
    )
    .await
    .unwrap()
}

/// `success` is a SQLite `BOOLEAN`, which the `Any` driver reads as an integer only.
type MigrationRow = (i64, String, Vec<u8>, i64);

/// The policy migration written after the split: the write counter several gateway instances
/// follow (`30000000001003_generation.sql`).
const GENERATION: i64 = 30_000_000_001_003;

async fn applied(pool: &AnyPool) -> Vec<MigrationRow> {
    sqlx::query_as(
        "SELECT version, description, checksum, CAST(success AS BIGINT) AS success \
         FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn restored() -> AnyPool {
    let pool = pool().await;
    sqlx::raw_sql(INDEX_95B30FA).execute(&pool).await.unwrap();
    pool
}

fn sealer() -> Arc<AesGcmSealer> {
    Arc::new(AesGcmSealer::random().unwrap())
}

#[tokio::test]
async fn a_database_written_before_the_split_opens_with_its_records() {
    let pool = restored().await;
    let before = applied(&pool).await;
    assert_eq!(
        before.len(),
        4,
        "gateway, audit, identity and security migrations"
    );

    let store = PolicyStore::new(pool.clone(), sealer()).await.unwrap();
    let after = applied(&pool).await;
    assert_eq!(after[..before.len()], before[..], "nothing re-run");
    let added: Vec<i64> = after[before.len()..].iter().map(|m| m.0).collect();
    assert_eq!(
        added,
        [GENERATION],
        "only the migrations written since are added"
    );
    let alice = store.get_principal("alice").await.unwrap().unwrap();
    assert_eq!(alice.tenant, "acme");
    let tenants: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(tenants, ["acme", "default"]);
    assert_eq!(
        store.list_access_keys(Some("alice")).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_fresh_database_records_the_policy_migrations_as_before_the_split() {
    let old = applied(&restored().await).await;
    let fresh = pool().await;
    PolicyStore::new(fresh.clone(), sealer()).await.unwrap();
    let new = applied(&fresh).await;
    let expected: Vec<MigrationRow> = old
        .into_iter()
        .filter(|m| [30_000_000_001_001, 30_000_000_001_002].contains(&m.0))
        .collect();
    assert_eq!(new[..expected.len()], expected[..]);
    // and the one written since the split (several instances, issue 14)
    let since: Vec<i64> = new[expected.len()..].iter().map(|m| m.0).collect();
    assert_eq!(since, [GENERATION]);
}
