//! Two gateway instances on one database (issue 14, phase 2), at the policy store's level: two
//! stores with their own access caches on one database (PostgreSQL in the CI's second pass, one
//! SQLite file otherwise). A change made through one — a revoked key, a disabled principal, a
//! new quorum rule — acts on the other within a second (`follow_other_instances` polls the
//! database's write counter), and an approved request retried on both at once is consumed
//! exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use policy::{
    AesGcmSealer, Error, FOLLOW_INTERVAL, PolicyStore, QuorumRule, Role, SecretSealer, now_ms,
};

/// The database both stores open, and the directory holding it when it is a SQLite file.
fn database() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = audit::db::test_database_url()
        .unwrap_or_else(|| format!("sqlite://{}/index.db", dir.path().display()));
    (url, dir)
}

/// One instance's store: its own pool and access cache, following the other instances' writes
/// when `follow`.
async fn instance(url: &str, sealer: &Arc<dyn SecretSealer>, follow: bool) -> PolicyStore {
    let pool = audit::db::connect(
        url,
        audit::db::PoolShape {
            max: 4,
            min: 0,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: None,
            create: true,
        },
    )
    .await
    .unwrap();
    let store = PolicyStore::new(pool, sealer.clone())
        .await
        .unwrap()
        .with_access_cache();
    if follow {
        store.follow_other_instances(FOLLOW_INTERVAL)
    } else {
        store
    }
}

/// How long until `check` holds, polled every 20 ms; panics after 3 s.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !check().await {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{what}: not seen after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

fn rule(name: &str, action: &str, m: u32) -> QuorumRule {
    QuorumRule {
        name: name.into(),
        action: action.into(),
        bucket_pattern: "*".into(),
        approvals: m,
        approver_roles: vec!["superadmin".into()],
        ttl_secs: 600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_instance_acts_on_the_other_within_a_second() {
    let (url, _dir) = database();
    let sealer: Arc<dyn SecretSealer> = Arc::new(AesGcmSealer::random().unwrap());
    let a = instance(&url, &sealer, true).await;
    a.bootstrap(None).await.unwrap();
    let b = instance(&url, &sealer, true).await;
    // an instance that does not follow the others: shows what the follower prevents
    let blind = instance(&url, &sealer, false).await;
    for (name, role) in [("bob", Role::Manager), ("carol", Role::Viewer)] {
        a.create_principal(name, "user", "default", Some(role))
            .await
            .unwrap();
    }
    let bob = a
        .create_access_key("bob", None)
        .await
        .unwrap()
        .access_key_id;
    let carol = a
        .create_access_key("carol", None)
        .await
        .unwrap()
        .access_key_id;
    for s in [&b, &blind] {
        for k in [&bob, &carol] {
            assert!(s.lookup_key(k, now_ms()).await.unwrap().is_some(), "{k}");
        }
    }

    a.revoke_access_key(&bob).await.unwrap();
    let took = until("a revoked key", async || {
        b.lookup_key(&bob, now_ms()).await.unwrap().is_none()
    })
    .await;
    assert!(
        took < Duration::from_secs(1),
        "revocation seen after {took:?}"
    );

    a.set_disabled("carol", true).await.unwrap();
    let took = until("a disabled principal", async || {
        b.lookup_key(&carol, now_ms()).await.unwrap().is_none()
    })
    .await;
    assert!(took < Duration::from_secs(1), "disable seen after {took:?}");

    let boss = a.identity("admin").await.unwrap().unwrap();
    b.gate(&boss, "s3:DeleteObject", Some("x"), "x/k", "", now_ms())
        .await
        .expect("no rule yet");
    a.set_quorum_rule(&boss, &rule("del", "s3:DeleteObject", 2), now_ms())
        .await
        .unwrap();
    let took = until("a new quorum rule", async || {
        matches!(
            b.gate(&boss, "s3:DeleteObject", Some("x"), "x/k", "", now_ms())
                .await,
            Err(Error::ApprovalRequired { .. })
        )
    })
    .await;
    assert!(
        took < Duration::from_secs(1),
        "quorum rule seen after {took:?}"
    );

    // the store that does not follow still answers from its cache
    tokio::time::sleep(FOLLOW_INTERVAL * 4).await;
    assert!(blind.lookup_key(&bob, now_ms()).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_retried_on_two_instances_at_once_is_consumed_once() {
    let (url, _dir) = database();
    let sealer: Arc<dyn SecretSealer> = Arc::new(AesGcmSealer::random().unwrap());
    let a = instance(&url, &sealer, true).await;
    a.bootstrap(None).await.unwrap();
    for name in ["req", "a1", "a2"] {
        a.create_principal(name, "user", "default", Some(Role::SuperAdmin))
            .await
            .unwrap();
    }
    let (req, a1, a2) = (
        a.identity("req").await.unwrap().unwrap(),
        a.identity("a1").await.unwrap().unwrap(),
        a.identity("a2").await.unwrap().unwrap(),
    );
    // the approvers held their role before the request (the clock of the request runs ahead)
    let t = now_ms() + 60_000;
    a.set_quorum_rule(&req, &rule("del", "s3:DeleteObject", 2), t)
        .await
        .unwrap();
    let b = instance(&url, &sealer, true).await;
    let Err(Error::ApprovalRequired { approval_id, .. }) = a
        .gate(&req, "s3:DeleteObject", Some("fin"), "fin/k", "", t + 1)
        .await
    else {
        panic!("the rule gates the request")
    };
    a.approve(&approval_id, &a1, t + 2).await.unwrap();
    b.approve(&approval_id, &a2, t + 3).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..12 {
        let (s, req) = (if i % 2 == 0 { a.clone() } else { b.clone() }, req.clone());
        tasks.push(tokio::spawn(async move {
            s.gate(&req, "s3:DeleteObject", Some("fin"), "fin/k", "", t + 4)
                .await
        }));
    }
    let mut passed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => passed += 1,
            Err(Error::ApprovalRequired {
                approval_id: again, ..
            }) => {
                assert_ne!(
                    again, approval_id,
                    "a consumed approval is not offered again"
                )
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(passed, 1, "the approval let exactly one retry through");
}
