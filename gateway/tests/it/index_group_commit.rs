//! Integration tests of the index's group commit (gateway/src/index/writer.rs): concurrent puts,
//! overwrites and deletes batched into shared transactions all land with the right garbage; a
//! failing write of a batch fails alone (its partial changes undone) while the others commit;
//! `close` commits what was queued and later writes fail cleanly; in-memory databases work;
//! audited puts append the events of those that went in, with the batch's COMMIT.

use crate::index_support;

use std::collections::{BTreeMap, BTreeSet};

use audit::{AuditEvent, AuditQuery, EventKind, Ledger, LedgerConfig, Outcome};
use futures::future::join_all;
use gateway::index::{Index, IndexError};
use index_support::object;

/// A fresh index: PostgreSQL with VAULTGATE_TEST_DATABASE_URL set, else a SQLite file.
async fn fresh() -> (tempfile::TempDir, String, Index) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = audit::db::test_database_url()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("index.db").display()));
    let index = Index::open(&url).await.expect("open index");
    (dir, url, index)
}

/// A fresh SQLite index (the tests of SQLite's own transaction behaviour).
async fn fresh_sqlite() -> (tempfile::TempDir, String, Index) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    let index = Index::open(&url).await.expect("open index");
    (dir, url, index)
}

async fn queued(ix: &Index) -> BTreeSet<String> {
    ix.gc_pending(100_000).await.unwrap().into_iter().collect()
}

/// 64 tasks × 20 puts (own keys and 4 shared keys), each put read back through the read pool as
/// soon as it returns: every write lands, and the gc queue holds exactly the replaced ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_puts_all_land_and_lose_no_garbage() {
    let (_d, _url, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    let before = ix.write_stats();
    let mut tasks = Vec::new();
    for t in 0..64u32 {
        let ix = ix.clone();
        tasks.push(tokio::spawn(async move {
            let mut written = Vec::new();
            let mut garbage = Vec::new();
            for i in 0..20u32 {
                let key = if i % 4 == 0 {
                    format!("shared{}", i % 3)
                } else {
                    format!("t{t}/k{}", i % 7)
                };
                let id = format!("{t:04x}{i:04x}");
                let id2 = format!("{id}-2");
                let rec = object("b", &key, &id, &[&id, &id2]);
                garbage.extend(ix.put_object(&rec).await?);
                // Answered only after the COMMIT: the read pool (other connections) sees it.
                let seen = ix.get_object("b", &key).await?.expect("committed");
                if !key.starts_with("shared") {
                    assert_eq!(seen, rec, "own key reads back what was written");
                }
                written.push((key, id, id2));
            }
            Ok::<_, IndexError>((written, garbage))
        }));
    }
    let mut all_ids = BTreeSet::new();
    let mut garbage = BTreeSet::new();
    let mut last_own: BTreeMap<String, String> = BTreeMap::new();
    for t in tasks {
        let (written, g) = t.await.unwrap().expect("no put may fail");
        for (key, id, id2) in written {
            if !key.starts_with("shared") {
                last_own.insert(key, id.clone());
            }
            all_ids.insert(id);
            all_ids.insert(id2);
        }
        for id in g {
            assert!(garbage.insert(id), "an id is returned as garbage once");
        }
    }
    // Last writer wins for keys written in sequence by one task.
    for (key, id) in &last_own {
        assert_eq!(&ix.get_object("b", key).await.unwrap().unwrap().etag, id);
    }
    // Every id is either referenced by a live object or was returned (and queued) as garbage.
    let mut live = BTreeSet::new();
    let keys: Vec<String> = last_own
        .keys()
        .cloned()
        .chain((0..3).map(|n| format!("shared{n}")))
        .collect();
    for key in &keys {
        let rec = ix.get_object("b", key).await.unwrap().unwrap();
        live.extend(rec.backend_ids().map(str::to_string));
    }
    assert!(live.is_disjoint(&garbage));
    assert_eq!(
        live.union(&garbage).cloned().collect::<BTreeSet<_>>(),
        all_ids
    );
    assert_eq!(
        queued(&ix).await,
        garbage,
        "gc_queue holds exactly the replaced ids"
    );
    let after = ix.write_stats();
    assert_eq!(after.jobs - before.jobs, 64 * 20);
    assert!(after.batches > before.batches);
    // Acknowledging the garbage empties the queue (gc_done goes through the writer too).
    let ids: Vec<String> = garbage.into_iter().collect();
    ix.gc_done(&ids).await.unwrap();
    assert!(queued(&ix).await.is_empty());
}

/// One batch mixing good writes with two failing ones: a put into a missing bucket (NotFound)
/// and an overwrite that fails after removing the old row (size out of range). Each fails alone;
/// the failed overwrite leaves the old object and queues nothing; the rest of the batch commits.
#[tokio::test] // current-thread runtime: all jobs are queued before the writer first runs
async fn a_failing_write_fails_alone_in_its_batch() {
    let (_d, url, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    let victim = object("b", "victim", "v1", &["v1a", "v1b"]);
    ix.put_object(&victim).await.unwrap();
    ix.put_object(&object("b", "gone", "g", &["g1"]))
        .await
        .unwrap();
    ix.put_object(&object("b", "over", "o1", &["o1"]))
        .await
        .unwrap();
    let before = ix.write_stats();

    let mut broken = object("b", "victim", "v2", &["v2a"]);
    broken.size = u64::MAX; // fails in the INSERT, after the old row was deleted
    let puts = (0..30u32).map(|i| {
        let ix = ix.clone();
        async move {
            let bucket = if i % 10 == 3 { "missing" } else { "b" };
            let id = format!("n{i}");
            ix.put_object(&object(bucket, &format!("k{i}"), "e", &[&id]))
                .await
        }
    });
    let over = object("b", "over", "o2", &["o2"]);
    let (puts, broken_put, overwrite, delete, delete_missing) = tokio::join!(
        join_all(puts),
        ix.put_object(&broken),
        ix.put_object(&over),
        ix.delete_object("b", "gone"),
        ix.delete_object("b", "never"),
    );

    for (i, r) in puts.iter().enumerate() {
        if i % 10 == 3 {
            assert!(
                matches!(r, Err(IndexError::NotFound(b)) if b == "missing"),
                "put {i}: {r:?}"
            );
            assert!(
                ix.get_object("missing", &format!("k{i}"))
                    .await
                    .unwrap()
                    .is_none()
            );
        } else {
            assert_eq!(r.as_ref().unwrap(), &Vec::<String>::new(), "put {i}");
            let rec = ix.get_object("b", &format!("k{i}")).await.unwrap().unwrap();
            assert_eq!(rec.streams[0].backend_id, format!("n{i}"));
        }
    }
    assert!(
        matches!(broken_put, Err(IndexError::Corrupt(_))),
        "{broken_put:?}"
    );
    assert_eq!(overwrite.unwrap(), vec!["o1".to_string()]);
    assert_eq!(delete.unwrap(), Some(vec!["g1".to_string()]));
    assert_eq!(delete_missing.unwrap(), None);

    // The failed overwrite was undone: the old object is intact, its ids are not garbage.
    assert_eq!(ix.get_object("b", "victim").await.unwrap().unwrap(), victim);
    let expected: BTreeSet<String> = ["o1", "g1"].iter().map(|s| s.to_string()).collect();
    assert_eq!(queued(&ix).await, expected);

    let stats = ix.write_stats();
    assert!(
        stats.largest_batch > 1,
        "the jobs were sent together and must share a transaction: {stats:?}"
    );
    assert_eq!(stats.jobs - before.jobs, 34);
    assert!(stats.batches - before.batches < 34);

    // And it is all on disk: a fresh open sees the same.
    ix.close().await;
    let again = Index::open(&url).await.unwrap();
    assert_eq!(
        again.get_object("b", "victim").await.unwrap().unwrap(),
        victim
    );
    assert!(again.get_object("b", "k0").await.unwrap().is_some());
    assert!(again.get_object("b", "gone").await.unwrap().is_none());
    assert_eq!(queued(&again).await, expected);
}

/// A PutObject request's audit event for `key`.
fn put_event(key: &str) -> AuditEvent {
    AuditEvent {
        time_ms: 1_700_000_000_000,
        request_id: format!("req-{key}"),
        kind: EventKind::S3,
        principal: Some("alice".into()),
        tenant: None,
        action: "PutObject".into(),
        bucket: Some("b".into()),
        key: Some(key.into()),
        outcome: Outcome::Success,
        status: 200,
        error_code: None,
        bytes_in: 4096,
        bytes_out: 0,
        key_version: Some(1),
        source: None,
        duration_us: 10,
    }
}

/// Audited puts sharing a batch (one to a missing bucket among them): the events of the puts
/// that went in are in the chain, in job order, right after the head before them; each put is
/// answered its own event's receipt, the failed one none and no event. A failing put alone in
/// its batch appends nothing either; the ledger's own appends go on after them, and the chain
/// verifies.
#[tokio::test] // current-thread runtime: all jobs are queued before the writer first runs
async fn audited_puts_append_the_events_of_those_that_went_in() {
    let (_d, url, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    let ledger = Ledger::open(ix.write_pool().clone(), LedgerConfig::default())
        .await
        .unwrap();
    ledger.append(put_event("first")).await.unwrap();
    let start = ledger.head().await.unwrap();
    let before = ix.write_stats();

    let keys: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
    let puts = keys.iter().enumerate().map(|(i, key)| {
        let ix = ix.clone();
        let event = ledger.prepare(put_event(key));
        async move {
            let bucket = if i == 3 { "missing" } else { "b" };
            ix.put_object_audited(&object(bucket, key, "e", &[key]), None, Some(event))
                .await
        }
    });
    let results = join_all(puts).await;
    assert_eq!(ix.write_stats().batches - before.batches, 1, "one batch");

    let mut expected_seq = start.seq;
    let mut receipts = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        if i == 3 {
            assert!(
                matches!(r, Err(IndexError::NotFound(ref b)) if b == "missing"),
                "{r:?}"
            );
            continue;
        }
        let (garbage, receipt) = r.unwrap();
        assert!(garbage.is_empty());
        let receipt = receipt.expect("an audited put is answered its receipt");
        expected_seq += 1;
        assert_eq!(receipt.seq, expected_seq, "put {i}: events in job order");
        receipts.push((keys[i].clone(), receipt));
    }
    let page = ledger
        .query(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut appended: Vec<_> = page.events.iter().filter(|e| e.seq > start.seq).collect();
    appended.reverse();
    assert_eq!(appended.len(), 7, "{appended:?}");
    assert_eq!(appended[0].prev_hash, start.hash, "linked after the head");
    for ((key, receipt), stored) in receipts.iter().zip(&appended) {
        assert_eq!(stored.request_id, format!("req-{key}"));
        assert_eq!((stored.seq, &stored.hash), (receipt.seq, &receipt.hash));
    }
    assert!(!page.events.iter().any(|e| e.request_id == "req-k3"));

    // alone in its batch, a failing put appends nothing
    let head = ledger.head().await.unwrap();
    let lone = ix
        .put_object_audited(
            &object("missing", "lone", "e", &["lone"]),
            None,
            Some(ledger.prepare(put_event("lone"))),
        )
        .await;
    assert!(matches!(lone, Err(IndexError::NotFound(_))), "{lone:?}");
    assert_eq!(ledger.head().await.unwrap(), head);
    // alone and going in: its event is the next one, then the ledger's own
    let (_, alone) = ix
        .put_object_audited(
            &object("b", "alone", "e", &["alone"]),
            None,
            Some(ledger.prepare(put_event("alone"))),
        )
        .await
        .unwrap();
    assert_eq!(alone.unwrap().seq, head.seq + 1);
    assert_eq!(
        ledger.append(put_event("after")).await.unwrap().seq,
        head.seq + 2
    );
    let report = audit::verify::verify_pool(ix.write_pool(), &url, None)
        .await
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.last_seq, Some(head.seq + 2));
}

/// `close` commits the writes already queued, answers them, then later writes fail with
/// `Unavailable` (no panic, no hang); closing twice is fine.
#[tokio::test]
async fn close_commits_queued_writes_then_refuses() {
    let (_d, url, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    let tasks: Vec<_> = (0..10u32)
        .map(|i| {
            let ix = ix.clone();
            tokio::spawn(async move {
                ix.put_object(&object("b", &format!("q{i}"), "e", &[&format!("q{i}")]))
                    .await
            })
        })
        .collect();
    // Let the tasks queue their jobs, then close while they wait for their answers.
    tokio::task::yield_now().await;
    ix.close().await;
    for t in tasks {
        t.await
            .unwrap()
            .expect("a write queued before close is committed");
    }
    let err = ix
        .put_object(&object("b", "late", "e", &["late"]))
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("stopped"), "{err}");
    assert!(matches!(
        ix.delete_object("b", "q0").await,
        Err(IndexError::Unavailable(_))
    ));
    assert!(matches!(
        ix.gc_done(&["x".to_string()]).await,
        Err(IndexError::Unavailable(_))
    ));
    ix.close().await;

    let again = Index::open(&url).await.unwrap();
    for i in 0..10 {
        assert!(
            again
                .get_object("b", &format!("q{i}"))
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(again.get_object("b", "late").await.unwrap().is_none());
}

/// An in-memory index (read pool = write pool) goes through the writer too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_index_group_commits() {
    let ix = Index::open("sqlite::memory:").await.unwrap();
    ix.create_bucket("m", "o").await.unwrap();
    let writes = (0..40u32).map(|i| {
        let ix = ix.clone();
        async move {
            let key = format!("k{}", i % 5);
            let id = format!("m{i}");
            ix.put_object(&object("m", &key, &id, &[&id])).await
        }
    });
    let garbage: Vec<String> = join_all(writes)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    assert_eq!(garbage.len(), 35, "5 keys × 8 writes: 35 replaced");
    assert_eq!(queued(&ix).await.len(), 35);
    assert_eq!(ix.delete_object("m", "k0").await.unwrap().unwrap().len(), 1);
    ix.gc_done(&garbage).await.unwrap();
    assert_eq!(queued(&ix).await.len(), 1);
    ix.close().await;
}

/// When the batch as a whole fails (here a trigger aborts the whole transaction with
/// `RAISE(ROLLBACK)`, so the failing write's savepoint is gone too), every write of the batch
/// gets `Unavailable` and none of them is committed; the next batch works again.
#[tokio::test] // current-thread runtime: all jobs are queued before the writer first runs
async fn a_failed_batch_fails_every_write_and_commits_none() {
    let (_d, _url, ix) = fresh_sqlite().await;
    ix.create_bucket("b", "o").await.unwrap();
    sqlx::query(
        "CREATE TRIGGER boom BEFORE INSERT ON objects WHEN NEW.object_key = 'boom' \
         BEGIN SELECT RAISE(ROLLBACK, 'boom refused'); END",
    )
    .execute(ix.write_pool())
    .await
    .unwrap();
    ix.put_object(&object("b", "old", "e", &["old1"]))
        .await
        .unwrap();
    let before = ix.write_stats();
    let puts = ["a", "boom", "c"].map(|k| {
        let ix = ix.clone();
        async move {
            ix.put_object(&object("b", k, "e", &[&format!("{k}1")]))
                .await
        }
    });
    let (puts, delete) = tokio::join!(join_all(puts), ix.delete_object("b", "old"));
    for (k, r) in ["a", "boom", "c"].iter().zip(&puts) {
        assert!(matches!(r, Err(IndexError::Unavailable(_))), "{k}: {r:?}");
        assert!(ix.get_object("b", k).await.unwrap().is_none(), "{k}");
    }
    let err = delete.unwrap_err();
    assert!(err.to_string().contains("not committed"), "{err}");
    assert!(ix.get_object("b", "old").await.unwrap().is_some());
    assert!(queued(&ix).await.is_empty());
    assert_eq!(ix.write_stats(), before, "a failed batch is not counted");
    // The writer goes on: the next writes commit.
    ix.put_object(&object("b", "a", "e", &["a2"]))
        .await
        .unwrap();
    assert_eq!(
        ix.delete_object("b", "old").await.unwrap(),
        Some(vec!["old1".to_string()])
    );
    assert_eq!(ix.write_stats().batches, before.batches + 2);
}

/// The files of `dir` this process holds open (its descriptors' targets).
fn open_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.starts_with(dir))
                .collect()
        })
        .unwrap_or_default()
}

/// The connections a SQLite index keeps for GET's read (outside the read pool, `kept.rs`) are
/// closed with it: none of the database's files stays open, and a read after `close` fails
/// cleanly instead of opening a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_leaves_no_database_file_open_and_later_reads_fail() {
    let (dir, _url, ix) = fresh_sqlite().await;
    ix.create_bucket("b", "o").await.unwrap();
    ix.put_object(&object("b", "k", "e", &["s1"]))
        .await
        .unwrap();
    // concurrent reads: several kept connections in use at once
    let reads = join_all((0..16).map(|_| ix.get_object("b", "k"))).await;
    for r in reads {
        assert_eq!(r.unwrap().unwrap().key, "k");
    }
    assert!(!open_files_under(dir.path()).is_empty());
    ix.close().await;
    // sqlx closes a connection on its own thread: give the threads a moment
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !open_files_under(dir.path()).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        open_files_under(dir.path()),
        Vec::<std::path::PathBuf>::new()
    );
    let err = ix.get_object("b", "k").await.unwrap_err();
    assert!(matches!(err, IndexError::Database(_)), "{err:?}");
    assert!(open_files_under(dir.path()).is_empty());
}
