//! Leases for background work (`gateway::lease`): on PostgreSQL two instances on one database
//! never hold the same job's lease at once, and when the holder goes (dropped, or its connection
//! killed by the server as when its process dies) the other takes the lease within
//! `LEASE_RETRY`; `vaultgate_lease_held{job}` says who holds what. On SQLite every lease is held.
//! The orphan sweep's grace spares a blob another instance wrote but has not committed yet
//! (next to an empty index even young objects are withheld).
//! The PostgreSQL cases need `VAULTGATE_TEST_DATABASE_URL` (the CI's PostgreSQL pass sets it).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use gateway::backend::{Backend, LocalBackend, new_backend_id};
use gateway::index::{Index, ORPHAN_GRACE, sweep_orphans};
use gateway::lease::{Job, LEASE_RETRY, Leases};

/// A database for the test: a fresh PostgreSQL one when configured, else a SQLite file.
fn database(dir: &tempfile::TempDir) -> String {
    audit::db::test_database_url()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("index.db").display()))
}

/// The value of `vaultgate_lease_held{job="…"}` in `registry`.
fn gauge(registry: &prometheus::Registry, job: Job) -> i64 {
    let family = registry
        .gather()
        .into_iter()
        .find(|f| f.name() == "vaultgate_lease_held")
        .expect("vaultgate_lease_held registered");
    let metric = family
        .get_metric()
        .iter()
        .find(|m| m.get_label().iter().any(|l| l.value() == job.name()))
        .expect("a series per job")
        .get_gauge()
        .get_value();
    metric as i64
}

/// Waits (at most `limit`) until `leases` holds `job`; returns how long it took.
async fn take_within(leases: &Leases, job: Job, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if leases.try_hold(job).await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{} not taken over within {limit:?}",
            job.name()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_instance_at_a_time_holds_each_lease_and_the_other_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let url = database(&dir);
    let index_a = Index::open(&url).await.unwrap();
    let a = Leases::new(&index_a);
    let reg_a = prometheus::Registry::new();
    a.register(&reg_a).unwrap();
    if !url.starts_with("postgres") {
        // SQLite: one instance, every lease held from the start, nothing to take over
        assert!(!a.shared_database());
        for job in Job::ALL {
            assert!(a.held(job));
            assert!(a.try_hold(job).await);
            assert_eq!(gauge(&reg_a, job), 1);
        }
        return;
    }
    assert!(a.shared_database());
    let index_b = Index::open(&url).await.unwrap();
    let b = Leases::new(&index_b);
    let reg_b = prometheus::Registry::new();
    b.register(&reg_b).unwrap();
    for job in Job::ALL {
        assert_eq!(gauge(&reg_a, job), 0, "nothing held before the first try");
        assert!(a.try_hold(job).await, "{} free", job.name());
        assert!(!b.try_hold(job).await, "{} held by a", job.name());
        // asked again: still a's, still not b's
        assert!(a.try_hold(job).await);
        assert!(!b.try_hold(job).await);
        assert_eq!((gauge(&reg_a, job), gauge(&reg_b, job)), (1, 0));
    }

    // the holder goes away (its connection closes): b takes every lease over
    drop(a);
    for job in Job::ALL {
        let took = take_within(&b, job, LEASE_RETRY + Duration::from_secs(1)).await;
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert_eq!(gauge(&reg_b, job), 1);
    }

    // a new instance finds them taken; then b's process "dies": the server ends its lease
    // connection, and the new one takes over while b learns it lost them
    let c = Leases::new(&index_a);
    let reg_c = prometheus::Registry::new();
    c.register(&reg_c).unwrap();
    assert!(!c.try_hold(Job::Gc).await);
    let killed: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(pg_terminate_backend(pid)) AS BIGINT) FROM pg_locks \
         WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND granted \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(index_a.read_pool())
    .await
    .unwrap();
    assert!(killed >= 1, "b's lease connection holds advisory locks");
    for job in Job::ALL {
        take_within(&c, job, LEASE_RETRY + Duration::from_secs(1)).await;
        assert!(!b.try_hold(job).await, "b lost {}", job.name());
        assert_eq!((gauge(&reg_b, job), gauge(&reg_c, job)), (0, 1));
    }

    // a clean release (shutdown) hands over as soon as the server has ended the session
    c.release().await;
    assert_eq!(gauge(&reg_c, Job::Lifecycle), 0);
    take_within(&b, Job::Lifecycle, Duration::from_secs(1)).await;
    assert_eq!(gauge(&reg_b, Job::Lifecycle), 1);
}

#[tokio::test]
async fn the_sweep_under_grace_spares_a_blob_written_but_not_yet_committed() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&database(&dir)).await.unwrap();
    let backend = LocalBackend::open(dir.path().join("objects"))
        .await
        .unwrap();
    // another instance's PUT: the ciphertext is in the backend, its index row not yet
    let id = new_backend_id();
    let body = futures::stream::iter([Ok(Bytes::from_static(b"in flight"))]).boxed();
    backend.put(&id, body, Some(9)).await.unwrap();
    // next to an empty index even a young object is a sign of a foreign backend: withheld
    let report = sweep_orphans(&index, &backend, ORPHAN_GRACE).await.unwrap();
    assert_eq!((report.young, report.withheld, report.deleted), (1, 1, 0));
    index.create_bucket("b", "o").await.unwrap();

    let report = sweep_orphans(&index, &backend, ORPHAN_GRACE).await.unwrap();
    assert_eq!((report.scanned, report.young, report.deleted), (1, 1, 0));
    let mut back = backend.get(&id, None).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = back.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(bytes, b"in flight");
    // without the grace (SQLite's start-up sweep, where no other instance exists) it goes
    let report = sweep_orphans(&index, &backend, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.deleted, 1);
}
