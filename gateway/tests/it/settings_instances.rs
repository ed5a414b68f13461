//! The bucket settings cache across instances: two `Index`es on one database (PostgreSQL with
//! `VAULTGATE_TEST_DATABASE_URL`, else one SQLite file), each with its own cache. A lifecycle
//! or CORS change, and a bucket delete, made through one is seen by the other, which follows
//! the write counter `idx_settings_generation`, within 1 s (measured); an index that does not
//! follow keeps serving its cached value, which is what the poll prevents. The same for a
//! bucket's versioning and object lock state.

use std::time::{Duration, Instant};

use gateway::index::{
    BucketState, DefaultRetention, Index, IndexError, LockMode, SETTING_CORS, SETTING_LIFECYCLE,
    SETTINGS_FOLLOW_INTERVAL, Versioning,
};

const BOUND: Duration = Duration::from_secs(1);

/// Polls `b`'s view of a setting until it equals `want`; returns how long that took (fails
/// past [`BOUND`]).
async fn seen_within(b: &Index, name: &str, want: Option<&str>) -> Duration {
    let start = Instant::now();
    loop {
        if b.bucket_setting("bk", name).await.unwrap().as_deref() == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < BOUND, "{name} not seen within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three indexes on one database (PostgreSQL with `VAULTGATE_TEST_DATABASE_URL`, else a SQLite
/// file in `dir`): the writer `a`, `b` following the write counter, and `still`, which does not.
async fn three_instances(dir: &std::path::Path) -> (Index, Index, Index) {
    let url = audit::db::test_database_url()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("index.db").display()));
    let a = Index::open(&url).await.unwrap();
    let b = Index::open(&url).await.unwrap();
    b.follow_other_instances(SETTINGS_FOLLOW_INTERVAL);
    let still = Index::open(&url).await.unwrap();
    (a, b, still)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_change_through_one_instance_is_seen_by_the_other_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, still) = three_instances(dir.path()).await;
    a.create_bucket("bk", "o").await.unwrap();
    let rules = r#"{"rules":[{"id":"old","days":30}]}"#;
    a.set_bucket_setting("bk", SETTING_LIFECYCLE, Some(rules), None)
        .await
        .unwrap();
    // both cache what they read now
    for idx in [&b, &still] {
        assert_eq!(
            idx.bucket_setting("bk", SETTING_LIFECYCLE)
                .await
                .unwrap()
                .as_deref(),
            Some(rules)
        );
        assert_eq!(idx.bucket_setting("bk", SETTING_CORS).await.unwrap(), None);
    }

    let new_rules = r#"{"rules":[{"id":"new","days":1}]}"#;
    a.set_bucket_setting("bk", SETTING_LIFECYCLE, Some(new_rules), None)
        .await
        .unwrap();
    let took = seen_within(&b, SETTING_LIFECYCLE, Some(new_rules)).await;
    eprintln!("lifecycle change seen after {took:?}");
    let cors = r#"[{"allowed_origins":["https://app.example"],"allowed_methods":["GET"]}]"#;
    a.set_bucket_setting("bk", SETTING_CORS, Some(cors), None)
        .await
        .unwrap();
    seen_within(&b, SETTING_CORS, Some(cors)).await;
    a.set_bucket_setting("bk", SETTING_CORS, None, None)
        .await
        .unwrap();
    seen_within(&b, SETTING_CORS, None).await;

    // the index that does not follow still answers from its cache
    tokio::time::sleep(SETTINGS_FOLLOW_INTERVAL * 2).await;
    assert_eq!(
        still
            .bucket_setting("bk", SETTING_LIFECYCLE)
            .await
            .unwrap()
            .as_deref(),
        Some(rules)
    );

    // a bucket deleted through one instance is gone for the other within the bound
    a.set_bucket_setting("bk", SETTING_LIFECYCLE, None, None)
        .await
        .unwrap();
    seen_within(&b, SETTING_LIFECYCLE, None).await;
    a.delete_bucket("bk").await.unwrap();
    let start = Instant::now();
    loop {
        match b.bucket_setting("bk", SETTING_LIFECYCLE).await {
            Err(IndexError::NotFound(name)) => {
                assert_eq!(name, "bk");
                break;
            }
            other => assert!(start.elapsed() < BOUND, "still {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bucket's versioning and object lock state (read by every object request, cached like the
/// settings): a change through one instance is seen by the other within the bound; the index
/// that does not follow keeps its cached state (which shows the state is served from memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versioning_or_object_lock_change_through_one_instance_is_seen_by_the_other_within_a_second()
 {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, still) = three_instances(dir.path()).await;
    a.create_bucket("bk", "o").await.unwrap();
    for idx in [&b, &still] {
        let s = idx.bucket_state("bk").await.unwrap().unwrap();
        assert_eq!(s.versioning, Versioning::Unversioned);
        assert!(!s.object_lock);
    }

    let state_within = |want: BucketState| {
        let b = &b;
        async move {
            let start = Instant::now();
            loop {
                let now = b.bucket_state("bk").await.unwrap().unwrap();
                if now == want {
                    return start.elapsed();
                }
                assert!(
                    start.elapsed() < BOUND,
                    "state {now:?} after {BOUND:?}, want {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    a.set_versioning("bk", Versioning::Enabled).await.unwrap();
    // the writing instance sees its own change at once
    assert_eq!(
        a.bucket_state("bk").await.unwrap().unwrap().versioning,
        Versioning::Enabled
    );
    let took = state_within(BucketState {
        versioning: Versioning::Enabled,
        ..BucketState::default()
    })
    .await;
    eprintln!("versioning change seen after {took:?}");

    let retention = DefaultRetention {
        mode: LockMode::Governance,
        days: Some(3),
        years: None,
    };
    a.set_object_lock("bk", Some(retention)).await.unwrap();
    state_within(BucketState {
        versioning: Versioning::Enabled,
        object_lock: true,
        default_retention: Some(retention),
    })
    .await;

    // the index that does not follow still answers from its cache
    tokio::time::sleep(SETTINGS_FOLLOW_INTERVAL * 2).await;
    assert_eq!(
        still.bucket_state("bk").await.unwrap().unwrap(),
        BucketState::default()
    );
}
