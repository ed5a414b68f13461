//! Writes from several gateway instances on one database (issue 14, phase 2): two or three
//! independent `Index`es (each with its own group-commit writer and pools) on one PostgreSQL
//! database and one backend, racing for real, with the end state read back from the database
//! and the backend:
//! - overwrites and deletes of one key end in one winner: at most one current version, every
//!   replaced blob reported as garbage exactly once, the backend holding exactly the live blobs;
//!   on a versioned bucket one total order of versions, exactly one latest, each version deleted
//!   once;
//! - the first data key of a bucket created at once on two instances is one key, which both
//!   seal and open with;
//! - a multipart upload whose parts go through two instances completes on a third, and a
//!   completion racing an abort ends in one outcome;
//! - a bucket delete racing a put into it: the put fails with NotFound (NoSuchBucket) or the
//!   delete with NotEmpty (BucketNotEmpty), never both succeed.
//!
//! PostgreSQL when `VAULTGATE_TEST_DATABASE_URL` is set (the CI's second pass); else one SQLite
//! file, where the same guarantees hold through SQLite's single writer. With
//! `VAULTGATE_TEST_REQUIRE_POSTGRES=1` a missing PostgreSQL fails the tests instead.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use gateway::backend::{Backend, LocalBackend, new_backend_id};
use gateway::index::{
    Index, IndexError, NULL_VERSION, ObjectRecord, PartRecord, StreamRecord, UploadRecord,
    Versioning, collect_garbage,
};
use keys::{CacheConfig, DataKeyStore, KeyProvider, Keyring, LocalProvider, SealParams};
use sqlx::Row;

/// Independent instances on one database, and the backend they share.
struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Index>,
    backend: Arc<LocalBackend>,
    tracker: Arc<Tracker>,
}

async fn cluster(n: usize) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let url = match audit::db::test_database_url() {
        Some(url) => url,
        None => {
            assert_ne!(
                std::env::var("VAULTGATE_TEST_REQUIRE_POSTGRES").as_deref(),
                Ok("1"),
                "VAULTGATE_TEST_REQUIRE_POSTGRES=1 but VAULTGATE_TEST_DATABASE_URL is not set"
            );
            format!("sqlite://{}", dir.path().join("index.db").display())
        }
    };
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(Index::open(&url).await.unwrap());
    }
    let backend = Arc::new(
        LocalBackend::open(dir.path().join("objects"))
            .await
            .unwrap(),
    );
    Cluster {
        dir,
        nodes,
        backend,
        tracker: Arc::default(),
    }
}

/// Every blob the writers stored, and how often each was reported as garbage.
#[derive(Default)]
struct Tracker {
    written: Mutex<HashSet<String>>,
    garbage: Mutex<HashMap<String, u32>>,
    /// the writers finished (the readers stop)
    done: AtomicBool,
}

impl Tracker {
    fn garbage(&self, ids: &[String]) {
        let mut g = self.garbage.lock().unwrap();
        for id in ids {
            *g.entry(id.clone()).or_default() += 1;
        }
    }
}

/// A small deterministic generator per task (no shared state between tasks).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

impl Cluster {
    /// Stores a fresh blob in the backend (as a PUT does before its index write).
    async fn blob(&self) -> String {
        let id = new_backend_id();
        let body = futures::stream::iter([Ok(Bytes::from(id.clone().into_bytes()))]).boxed();
        self.backend.put(&id, body, Some(32)).await.unwrap();
        self.tracker.written.lock().unwrap().insert(id.clone());
        id
    }

    /// What the object layer does with garbage the index answered: counts it, deletes it from
    /// the backend, acknowledges it.
    async fn collect(&self, node: &Index, ids: Vec<String>) {
        self.tracker.garbage(&ids);
        for id in &ids {
            self.backend.delete(id).await.unwrap();
        }
        node.gc_done(&ids).await.unwrap();
    }

    /// Drains the gc queue, then checks: no blob reported twice, every blob written is either
    /// referenced by the index or was reported exactly once, and the backend holds exactly the
    /// referenced blobs (nothing orphaned, nothing live missing).
    async fn assert_no_orphans(&self) {
        let node = &self.nodes[0];
        collect_garbage(node, self.backend.as_ref()).await.unwrap();
        assert!(node.gc_pending(10).await.unwrap().is_empty());
        let garbage = self.tracker.garbage.lock().unwrap().clone();
        let twice: Vec<_> = garbage.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            twice.is_empty(),
            "garbage reported more than once: {twice:?}"
        );
        let live: HashSet<String> = node
            .referenced_backend_ids()
            .await
            .unwrap()
            .into_iter()
            .collect();
        let written = self.tracker.written.lock().unwrap().clone();
        for id in &written {
            assert!(
                live.contains(id) != garbage.contains_key(id),
                "blob {id}: live {} garbage {}",
                live.contains(id),
                garbage.contains_key(id)
            );
        }
        let mut stored = HashSet::new();
        let mut listing = self.backend.list().await.unwrap();
        while let Some(info) = listing.next().await {
            stored.insert(info.unwrap().id);
        }
        assert_eq!(stored, live, "the backend holds exactly the live blobs");
    }
}

fn record(bucket: &str, key: &str, version_id: &str, blobs: &[&str], marker: bool) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version_id.into(),
        is_latest: true,
        delete_marker: marker,
        lock: Default::default(),
        size: if marker { 0 } else { 32 * blobs.len() as u64 },
        // the ETag names the first blob: a reader can tell a whole record from a mixed one
        etag: blobs.first().map(|b| b.to_string()).unwrap_or_default(),
        last_modified_ms: gateway::index::now_ms(),
        headers: BTreeMap::new(),
        user_metadata: BTreeMap::new(),
        checksums: BTreeMap::new(),
        data_key_id: "00".into(),
        key_version: 1,
        streams: blobs
            .iter()
            .enumerate()
            .map(|(i, b)| StreamRecord {
                backend_id: b.to_string(),
                part_number: i as u32 + 1,
                header: vec![1],
                plaintext_len: 32,
                md5_hex: "00".into(),
                checksums: BTreeMap::new(),
                inline: None,
            })
            .collect(),
        manifest_id: None,
    }
}

/// The version rows of a key: (version id, seq, is latest), by seq.
async fn versions(node: &Index, bucket: &str, key: &str) -> Vec<(String, i64, bool)> {
    let rows = sqlx::query(
        "SELECT version_id, seq, CAST(is_latest AS BIGINT) AS l FROM objects \
         WHERE bucket = $1 AND object_key = $2 ORDER BY seq",
    )
    .bind(bucket)
    .bind(key)
    .fetch_all(node.read_pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get::<String, _>("version_id"),
                r.get::<i64, _>("seq"),
                r.get::<i64, _>("l") == 1,
            )
        })
        .collect()
}

/// A reader on every instance while the writers race: what it sees of a key is one whole
/// version (its ETag names its own stream), never a mix of two writes.
fn spawn_readers(
    c: &Arc<Cluster>,
    bucket: &'static str,
    keys: &'static [&'static str],
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..c.nodes.len())
        .map(|n| {
            let c = Arc::clone(c);
            tokio::spawn(async move {
                let mut seen = 0;
                while !c.done() {
                    for key in keys {
                        if let Some(rec) = c.nodes[n].get_object(bucket, key).await.unwrap() {
                            assert_eq!(rec.streams.len(), 1, "{key}: {rec:?}");
                            assert_eq!(rec.etag, rec.streams[0].backend_id, "{key}: half a write");
                            seen += 1;
                        }
                    }
                    tokio::task::yield_now().await;
                }
                seen
            })
        })
        .collect()
}

impl Cluster {
    /// Whether the writers finished (the readers stop then).
    fn done(&self) -> bool {
        self.tracker.done.load(Ordering::Acquire)
    }

    fn finish(&self) {
        self.tracker.done.store(true, Ordering::Release);
    }
}

const KEYS: &[&str] = &["k0", "k1", "k2"];
/// Writer tasks per instance, and operations per task.
const TASKS: u64 = 4;
const OPS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overwrites_and_deletes_of_one_key_on_two_instances_end_in_one_winner() {
    let c = Arc::new(cluster(2).await);
    c.nodes[0].create_bucket("bk", "o").await.unwrap();
    let readers = spawn_readers(&c, "bk", KEYS);
    let mut writers = Vec::new();
    for n in 0..2 {
        for t in 0..TASKS {
            let c = Arc::clone(&c);
            writers.push(tokio::spawn(async move {
                let node = &c.nodes[n];
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n as u64 * 31 + t + 1));
                for _ in 0..OPS {
                    let key = KEYS[rng.below(KEYS.len() as u64) as usize];
                    if rng.below(4) == 0 {
                        if let Some(garbage) = node.delete_object("bk", key).await.unwrap() {
                            c.collect(node, garbage).await;
                        }
                    } else {
                        let blob = c.blob().await;
                        let rec = record("bk", key, NULL_VERSION, &[&blob], false);
                        let garbage = node.put_object(&rec).await.unwrap();
                        c.collect(node, garbage).await;
                    }
                }
            }));
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    c.finish();
    let mut seen = 0;
    for r in readers {
        seen += r.await.unwrap();
    }
    assert!(seen > 0, "the readers saw objects while the writers raced");
    for key in KEYS {
        let rows = versions(&c.nodes[0], "bk", key).await;
        assert!(rows.len() <= 1, "{key}: one null version at most: {rows:?}");
        assert!(
            rows.iter()
                .all(|(v, _, latest)| v == NULL_VERSION && *latest)
        );
        // both instances read the same winner
        let a = c.nodes[0].get_object("bk", key).await.unwrap();
        let b = c.nodes[1].get_object("bk", key).await.unwrap();
        assert_eq!(a, b);
    }
    c.assert_no_orphans().await;
    let _ = &c.dir;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_written_and_deleted_on_two_instances_keep_one_order_and_one_latest() {
    let c = Arc::new(cluster(2).await);
    c.nodes[0].create_bucket("vb", "o").await.unwrap();
    c.nodes[1]
        .set_versioning("vb", Versioning::Enabled)
        .await
        .unwrap();
    // version ids written so far, and how many deletes of each found it (exactly one must)
    let made: Arc<Mutex<Vec<(&'static str, String)>>> = Arc::default();
    let deleted: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let mut writers = Vec::new();
    for n in 0..2 {
        for t in 0..TASKS {
            let (c, made, deleted) = (Arc::clone(&c), Arc::clone(&made), Arc::clone(&deleted));
            writers.push(tokio::spawn(async move {
                let node = &c.nodes[n];
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (n as u64 * 131 + t + 7));
                for _ in 0..OPS {
                    let key = KEYS[rng.below(KEYS.len() as u64) as usize];
                    let pick = rng.below(5);
                    let victim = {
                        let m = made.lock().unwrap();
                        (pick == 0 && !m.is_empty())
                            .then(|| m[rng.below(m.len() as u64) as usize].clone())
                    };
                    if let Some((vkey, vid)) = victim {
                        // the same version deleted from both instances: one finds it
                        if let Some(d) = node.delete_version("vb", vkey, &vid, false).await.unwrap()
                        {
                            *deleted.lock().unwrap().entry(vid).or_default() += 1;
                            c.collect(node, d.garbage).await;
                        }
                        continue;
                    }
                    let blob = c.blob().await;
                    let vid = new_backend_id();
                    // every fourth write a delete marker (with its sealed marker blob)
                    let rec = record("vb", key, &vid, &[&blob], pick == 1);
                    let garbage = node.put_object(&rec).await.unwrap();
                    assert!(garbage.is_empty(), "a new version replaces nothing");
                    made.lock().unwrap().push((key, vid));
                }
            }));
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    let deleted = deleted.lock().unwrap().clone();
    assert!(
        deleted.values().all(|n| *n == 1),
        "a version deleted twice: {deleted:?}"
    );
    let made = made.lock().unwrap().clone();
    assert!(!deleted.is_empty() && made.len() > deleted.len());
    let mut remaining = 0;
    for key in KEYS {
        let rows = versions(&c.nodes[0], "vb", key).await;
        let seqs: HashSet<i64> = rows.iter().map(|r| r.1).collect();
        assert_eq!(seqs.len(), rows.len(), "{key}: one total order");
        let latest: Vec<_> = rows.iter().filter(|r| r.2).collect();
        if rows.is_empty() {
            continue;
        }
        assert_eq!(latest.len(), 1, "{key}: exactly one latest: {rows:?}");
        assert_eq!(
            latest[0].1,
            rows.last().unwrap().1,
            "{key}: the newest is the latest"
        );
        remaining += rows.len();
    }
    assert_eq!(
        remaining,
        made.len() - deleted.len(),
        "every write and delete counted"
    );
    c.assert_no_orphans().await;
}

/// A keyring over one instance's index, with the master key the instances share.
fn keyring(dir: &std::path::Path, store: &Index) -> Keyring {
    let provider: Arc<dyn KeyProvider> =
        Arc::new(LocalProvider::open_or_create(&dir.join("master.key")).unwrap());
    let store: Arc<dyn DataKeyStore> = Arc::new(store.clone());
    Keyring::new(provider, store, CacheConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_data_key_of_a_bucket_created_on_two_instances_is_one_key() {
    let c = cluster(2).await;
    let ring_a = keyring(c.dir.path(), &c.nodes[0]);
    let ring_b = keyring(c.dir.path(), &c.nodes[1]);
    for round in 0..24 {
        let bucket = format!("dk{round}");
        let mut tasks = Vec::new();
        // three requests on each instance ask for the bucket's key at once
        for ring in [&ring_a, &ring_b, &ring_a, &ring_b, &ring_a, &ring_b] {
            let (ring, bucket) = (ring.clone(), bucket.clone());
            tasks.push(tokio::spawn(async move { ring.sealing_key(&bucket).await }));
        }
        let mut ids = HashSet::new();
        let mut keys = Vec::new();
        for t in tasks {
            let k = t
                .await
                .unwrap()
                .expect("no instance fails for the other's key");
            ids.insert(k.data_key_id());
            keys.push(k);
        }
        assert_eq!(ids.len(), 1, "{bucket}: one key for every request");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_keys WHERE bucket = $1")
            .bind(&bucket)
            .fetch_one(c.nodes[1].read_pool())
            .await
            .unwrap();
        assert_eq!(n, 1, "{bucket}: one stored key");
        // sealed through one instance's key, opened through the other's
        let plain = format!("sealed on a, opened on b, round {round}").into_bytes();
        let input = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(plain.clone()))]);
        let (sealed, _handle) = keys::seal(
            &ring_a.sealing_key(&bucket).await.unwrap(),
            SealParams::object(&bucket, [7; 16], keys::ObjectMeta::default()),
            input,
        );
        let sealed: Vec<u8> = sealed.map(|b| b.unwrap().to_vec()).concat().await;
        let key_b = ring_b.sealing_key(&bucket).await.unwrap();
        let opened = keys::open_sealed_bytes(&key_b, &sealed).unwrap();
        assert_eq!(opened.plaintext, plain);
    }
}

fn upload(bucket: &str, key: &str, id: &str) -> UploadRecord {
    UploadRecord {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: id.into(),
        object_id_hex: "00".repeat(16),
        initiated_ms: 1,
        headers: BTreeMap::new(),
        user_metadata: BTreeMap::new(),
        checksum_algorithm: None,
        checksum_type: None,
        owner: "o".into(),
    }
}

fn part(bucket: &str, upload_id: &str, n: u32, blob: &str) -> PartRecord {
    PartRecord {
        bucket: bucket.into(),
        upload_id: upload_id.into(),
        part_number: n,
        backend_id: blob.into(),
        header: vec![1],
        size: 32,
        md5_hex: "00".into(),
        checksums: BTreeMap::new(),
        last_modified_ms: 1,
    }
}

impl Cluster {
    /// Uploads parts 1..=`parts` of `upload_id`, each on the instance `n % instances` and
    /// every part number twice at once (from two instances): one upload of each number stays,
    /// the other is reported as garbage once. Returns the blobs of the parts that stayed.
    async fn upload_parts(
        self: &Arc<Self>,
        upload_id: &str,
        parts: u32,
        instances: usize,
    ) -> Vec<String> {
        let mut tasks = Vec::new();
        for n in 1..=parts {
            for copy in 0..2 {
                let (c, id) = (Arc::clone(self), upload_id.to_owned());
                tasks.push(tokio::spawn(async move {
                    let node = &c.nodes[(n as usize + copy) % instances];
                    let blob = c.blob().await;
                    let replaced = node.put_part(&part("mp", &id, n, &blob)).await.unwrap();
                    c.collect(node, replaced.into_iter().collect()).await;
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let parts = self.nodes[0]
            .list_parts("mp", upload_id, 0, 1000)
            .await
            .unwrap();
        parts.into_iter().map(|p| p.backend_id).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parts_through_two_instances_complete_on_a_third_and_complete_racing_abort_ends_once() {
    let c = Arc::new(cluster(3).await);
    c.nodes[0].create_bucket("mp", "o").await.unwrap();
    // parts through instances 0 and 1 (each part number twice), completed on 2
    c.nodes[0]
        .create_upload(&upload("mp", "big", "u-big"))
        .await
        .unwrap();
    let blobs = c.upload_parts("u-big", 6, 2).await;
    assert_eq!(blobs.len(), 6);
    let refs: Vec<&str> = blobs.iter().map(String::as_str).collect();
    let rec = record("mp", "big", NULL_VERSION, &refs, false);
    let garbage = c.nodes[2]
        .complete_upload("mp", "u-big", &rec)
        .await
        .unwrap();
    assert!(garbage.is_empty(), "every part is used");
    let got = c.nodes[1].get_object("mp", "big").await.unwrap().unwrap();
    assert_eq!(
        got.streams
            .iter()
            .map(|s| s.backend_id.clone())
            .collect::<Vec<_>>(),
        blobs
    );

    // completions racing aborts (and a second completion) on the other instances
    let (mut completed, mut aborted) = (0, 0);
    for round in 0..16 {
        let id = format!("u{round}");
        let key = format!("obj{round}");
        c.nodes[round % 3]
            .create_upload(&upload("mp", &key, &id))
            .await
            .unwrap();
        let blobs = c.upload_parts(&id, 3, 3).await;
        let refs: Vec<&str> = blobs.iter().map(String::as_str).collect();
        let rec = record("mp", &key, NULL_VERSION, &refs, false);
        let (ca, cb, ab) = (Arc::clone(&c), Arc::clone(&c), Arc::clone(&c));
        let (id_a, id_b, id_c) = (id.clone(), id.clone(), id.clone());
        let (rec_a, rec_b) = (rec.clone(), rec.clone());
        let complete_a =
            tokio::spawn(async move { ca.nodes[0].complete_upload("mp", &id_a, &rec_a).await });
        let complete_b =
            tokio::spawn(async move { cb.nodes[1].complete_upload("mp", &id_b, &rec_b).await });
        let abort = tokio::spawn(async move { ab.nodes[2].abort_upload("mp", &id_c).await });
        let mut wins = 0;
        let mut done = false;
        for r in [complete_a.await.unwrap(), complete_b.await.unwrap()] {
            match r {
                Ok(garbage) => {
                    wins += 1;
                    completed += 1;
                    done = true;
                    c.collect(&c.nodes[0], garbage).await;
                }
                Err(IndexError::NoSuchUpload(_)) => {}
                Err(e) => panic!("{id}: completion failed with {e}"),
            }
        }
        match abort.await.unwrap() {
            Ok(garbage) => {
                wins += 1;
                aborted += 1;
                assert_eq!(garbage.len(), 3, "{id}: the aborted parts are garbage");
                c.collect(&c.nodes[2], garbage).await;
            }
            Err(IndexError::NoSuchUpload(_)) => {}
            Err(e) => panic!("{id}: abort failed with {e}"),
        }
        assert_eq!(wins, 1, "{id}: exactly one of two completions and an abort");
        // the object exists exactly when a completion won, with the parts that stayed
        let object = c.nodes[2].get_object("mp", &key).await.unwrap();
        assert_eq!(object.map(|o| o.streams.len()), done.then_some(3), "{id}");
        assert!(c.nodes[0].get_upload("mp", &id).await.unwrap().is_none());
    }
    eprintln!("{completed} completed, {aborted} aborted");
    c.assert_no_orphans().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucket_delete_racing_a_put_into_it_fails_one_of_them_cleanly() {
    let c = Arc::new(cluster(2).await);
    let (mut puts_won, mut deletes_won) = (0, 0);
    for round in 0..40 {
        let bucket = format!("race{round}");
        c.nodes[round % 2]
            .create_bucket(&bucket, "o")
            .await
            .unwrap();
        let blob = c.blob().await;
        let rec = record(&bucket, "k", NULL_VERSION, &[&blob], false);
        let (cp, cd, b) = (Arc::clone(&c), Arc::clone(&c), bucket.clone());
        let put = tokio::spawn(async move { cp.nodes[0].put_object(&rec).await });
        let delete = tokio::spawn(async move { cd.nodes[1].delete_bucket(&b).await });
        let (put, delete) = (put.await.unwrap(), delete.await.unwrap());
        match (&put, &delete) {
            (Ok(_), Err(IndexError::NotEmpty(_))) => {
                puts_won += 1;
                let rows = versions(&c.nodes[1], &bucket, "k").await;
                assert_eq!(rows.len(), 1);
            }
            (Err(IndexError::NotFound(_)), Ok(garbage)) => {
                deletes_won += 1;
                assert!(garbage.is_empty());
                // the put failed: the object layer deletes its blob
                c.backend.delete(&blob).await.unwrap();
                c.tracker.written.lock().unwrap().remove(&blob);
                assert!(c.nodes[0].get_bucket(&bucket).await.unwrap().is_none());
            }
            other => panic!("{bucket}: put and delete ended {other:?}"),
        }
    }
    eprintln!("puts won {puts_won}, deletes won {deletes_won}");
    let stray: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM objects WHERE bucket NOT IN (SELECT name FROM buckets)",
    )
    .fetch_one(c.nodes[0].read_pool())
    .await
    .unwrap();
    assert_eq!(stray, 0, "no object in a deleted bucket");
    c.assert_no_orphans().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_chosen_as_deadlock_victim_runs_again_and_commits() {
    let c = cluster(1).await;
    let node = &c.nodes[0];
    if node.dialect() != audit::db::Dialect::Postgres {
        eprintln!("skipped: PostgreSQL's deadlock detection (SQLite has one writer)");
        return;
    }
    node.create_bucket("bk", "o").await.unwrap();
    let first = c.blob().await;
    node.put_object(&record("bk", "k", NULL_VERSION, &[&first], false))
        .await
        .unwrap();
    // another session holds the key's row...
    let mut other = node.read_pool().begin().await.unwrap();
    sqlx::query("UPDATE objects SET etag = etag WHERE bucket = 'bk' AND object_key = 'k'")
        .execute(&mut *other)
        .await
        .unwrap();
    // ...while the writer's batch takes the key's locks, then waits for that row
    let second = c.blob().await;
    let rec = record("bk", "k", NULL_VERSION, &[&second], false);
    let writer = node.clone();
    let put = tokio::spawn(async move { writer.put_object(&rec).await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let locks = loop {
        let keys: Vec<i64> = sqlx::query_scalar(
            "SELECT (CAST(classid AS BIGINT) << 32) | CAST(objid AS BIGINT) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_all(node.read_pool())
        .await
        .unwrap();
        if !keys.is_empty() {
            break keys;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch holds no advisory lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    // the batch waits first, so its deadlock check (after deadlock_timeout) finds the cycle
    // once the other session asks for the batch's locks: the batch is the victim
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for key in locks {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *other)
            .await
            .expect("the other session is not the victim");
    }
    other.commit().await.unwrap();
    // the victim batch was rolled back and ran again: its caller sees only the success
    let garbage = put.await.unwrap().expect("the put is retried, not failed");
    assert_eq!(garbage, vec![first.clone()]);
    c.collect(node, garbage).await;
    let now = node.get_object("bk", "k").await.unwrap().unwrap();
    assert_eq!(now.streams[0].backend_id, second);
    c.assert_no_orphans().await;
}
