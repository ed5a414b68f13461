//! Garbage collection over a real local backend and a real SQLite index: the write path of the
//! CONTRACTS (backend put -> index commit -> delete old ids -> gc_done), a crash between commit
//! and delete (drained by collect_garbage), and orphans of a crash before the commit (removed by
//! sweep_orphans after the grace period, never touching referenced or young objects).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gateway::backend::{Backend, BackendError, LocalBackend, new_backend_id};
use gateway::index::{
    GcReport, Index, ObjectRecord, PartRecord, StreamRecord, UploadRecord, collect_garbage,
    sweep_orphans,
};

async fn setup() -> (tempfile::TempDir, Index, LocalBackend) {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(
        &audit::db::test_database_url_for(&dir.path().display().to_string())
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("index.db").display())),
    )
    .await
    .unwrap();
    let backend = LocalBackend::open(dir.path().join("objects"))
        .await
        .unwrap();
    index.create_bucket("b", "o").await.unwrap();
    (dir, index, backend)
}

async fn store(backend: &LocalBackend, data: &'static [u8]) -> String {
    let id = new_backend_id();
    let body = futures::stream::iter([Ok(Bytes::from_static(data))]).boxed();
    backend
        .put(&id, body, Some(data.len() as u64))
        .await
        .unwrap();
    id
}

fn record(key: &str, ids: &[&str]) -> ObjectRecord {
    ObjectRecord {
        bucket: "b".into(),
        key: key.into(),
        version_id: gateway::index::NULL_VERSION.into(),
        is_latest: true,
        delete_marker: false,
        lock: Default::default(),
        size: 1,
        etag: "e".into(),
        last_modified_ms: 1,
        headers: BTreeMap::new(),
        user_metadata: BTreeMap::new(),
        checksums: BTreeMap::new(),
        data_key_id: "00".into(),
        key_version: 1,
        streams: ids
            .iter()
            .enumerate()
            .map(|(i, id)| StreamRecord {
                backend_id: id.to_string(),
                part_number: i as u32 + 1,
                header: vec![1],
                plaintext_len: 1,
                md5_hex: "00".into(),
                checksums: BTreeMap::new(),
                inline: None,
            })
            .collect(),
        manifest_id: None,
    }
}

async fn exists(backend: &LocalBackend, id: &str) -> bool {
    match backend.head(id).await {
        Ok(_) => true,
        Err(BackendError::NotFound(_)) => false,
        Err(e) => panic!("head {id}: {e}"),
    }
}

#[tokio::test]
async fn write_path_then_crash_between_commit_and_delete() {
    let (_d, index, backend) = setup().await;
    let v1 = store(&backend, b"version one").await;
    assert!(
        index
            .put_object(&record("k", &[&v1]))
            .await
            .unwrap()
            .is_empty()
    );

    // Overwrite, following the contract's write path completely.
    let v2 = store(&backend, b"version two").await;
    let garbage = index.put_object(&record("k", &[&v2])).await.unwrap();
    assert_eq!(garbage, std::slice::from_ref(&v1));
    for id in &garbage {
        backend.delete(id).await.unwrap();
    }
    index.gc_done(&garbage).await.unwrap();
    assert!(!exists(&backend, &v1).await);
    assert!(index.gc_pending(10).await.unwrap().is_empty());

    // Overwrite again but "crash" after the commit: the old id stays queued.
    let v3 = store(&backend, b"version three").await;
    assert_eq!(
        index.put_object(&record("k", &[&v3])).await.unwrap(),
        std::slice::from_ref(&v2)
    );
    let deleted = store(&backend, b"deleted object").await;
    index
        .put_object(&record("gone", &[&deleted]))
        .await
        .unwrap();
    assert_eq!(
        index.delete_object("b", "gone").await.unwrap(),
        Some(vec![deleted.clone()])
    );
    // The queue survives a restart of the index.
    index.close().await;
    let index = Index::open(
        &audit::db::test_database_url_for(&_d.path().display().to_string())
            .unwrap_or_else(|| format!("sqlite://{}", _d.path().join("index.db").display())),
    )
    .await
    .unwrap();

    let report = collect_garbage(&index, &backend).await.unwrap();
    assert_eq!(
        report,
        GcReport {
            deleted: 2,
            still_referenced: 0,
            failed: 0
        }
    );
    assert!(!exists(&backend, &v2).await);
    assert!(!exists(&backend, &deleted).await);
    assert!(exists(&backend, &v3).await, "the live version must survive");
    assert!(index.gc_pending(10).await.unwrap().is_empty());
    // Nothing left: a second run is a no-op.
    assert_eq!(
        collect_garbage(&index, &backend).await.unwrap(),
        GcReport::default()
    );
}

#[tokio::test]
async fn collect_garbage_spares_ids_referenced_again_and_handles_many() {
    let (_d, index, backend) = setup().await;
    let mut ids = Vec::new();
    for i in 0..600 {
        let id = store(&backend, b"x").await;
        index
            .put_object(&record(&format!("k{i}"), &[&id]))
            .await
            .unwrap();
        ids.push(id);
    }
    for i in 0..600 {
        index.delete_object("b", &format!("k{i}")).await.unwrap();
    }
    // Pretend one id got referenced again before gc ran (must not be deleted).
    index
        .put_object(&record("revived", &[&ids[7]]))
        .await
        .unwrap();
    let report = collect_garbage(&index, &backend).await.unwrap();
    assert_eq!(
        report,
        GcReport {
            deleted: 599,
            still_referenced: 1,
            failed: 0
        }
    );
    assert!(exists(&backend, &ids[7]).await);
    assert!(!exists(&backend, &ids[8]).await);
    let left: Vec<_> = backend.list().await.unwrap().collect().await;
    assert_eq!(left.len(), 1);
}

#[tokio::test]
async fn failed_deletes_stay_queued() {
    let (d, index, backend) = setup().await;
    let id = store(&backend, b"stuck").await;
    index.put_object(&record("k", &[&id])).await.unwrap();
    index.delete_object("b", "k").await.unwrap();
    // Make the delete fail: replace the object file by a non-empty directory.
    let path = backend.path_of(&id).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir_all(path.join("blocker")).unwrap();
    let report = collect_garbage(&index, &backend).await.unwrap();
    assert_eq!(report.failed, 1);
    assert_eq!(
        index.gc_pending(10).await.unwrap(),
        std::slice::from_ref(&id)
    );
    std::fs::remove_dir_all(&path).unwrap();
    let report = collect_garbage(&index, &backend).await.unwrap();
    assert_eq!((report.deleted, report.failed), (1, 0));
    assert!(index.gc_pending(10).await.unwrap().is_empty());
    drop(d);
}

#[tokio::test]
async fn sweep_orphans_deletes_only_old_unreferenced_objects() {
    let (_d, index, backend) = setup().await;
    let live = store(&backend, b"live object").await;
    index.put_object(&record("k", &[&live])).await.unwrap();
    let manifest = store(&backend, b"manifest").await;
    let mut with_manifest = record("mp", &[&live]);
    with_manifest.key = "mp".into();
    with_manifest.streams.clear();
    with_manifest.manifest_id = Some(manifest.clone());
    index.put_object(&with_manifest).await.unwrap();
    index
        .create_upload(&UploadRecord {
            bucket: "b".into(),
            key: "u".into(),
            upload_id: "up".into(),
            object_id_hex: "00".into(),
            initiated_ms: 0,
            headers: BTreeMap::new(),
            user_metadata: BTreeMap::new(),
            checksum_algorithm: None,
            checksum_type: None,
            owner: "o".into(),
        })
        .await
        .unwrap();
    let part = store(&backend, b"part").await;
    index
        .put_part(&PartRecord {
            bucket: "b".into(),
            upload_id: "up".into(),
            part_number: 1,
            backend_id: part.clone(),
            header: vec![],
            size: 4,
            md5_hex: "00".into(),
            checksums: BTreeMap::new(),
            last_modified_ms: 0,
        })
        .await
        .unwrap();
    let queued = store(&backend, b"queued garbage").await;
    index.put_object(&record("q", &[&queued])).await.unwrap();
    index.delete_object("b", "q").await.unwrap();
    // A crash between backend put and index commit leaves orphans.
    let orphan_a = store(&backend, b"orphan a").await;
    let orphan_b = store(&backend, b"orphan b").await;

    // While serving: a grace period spares them (they might be in-flight writes).
    let report = sweep_orphans(&index, &backend, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!((report.scanned, report.deleted, report.young), (6, 0, 2));
    assert!(exists(&backend, &orphan_a).await);

    // At start-up: no grace needed.
    let report = sweep_orphans(&index, &backend, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        (report.scanned, report.deleted, report.young, report.failed),
        (6, 2, 0, 0)
    );
    for id in [&orphan_a, &orphan_b] {
        assert!(!exists(&backend, id).await, "orphan {id} survived");
    }
    for id in [&live, &manifest, &part, &queued] {
        assert!(exists(&backend, id).await, "referenced {id} was swept");
    }
}

#[tokio::test]
async fn sweep_deletes_nothing_next_to_an_empty_index() {
    // A lost or wrong index must never turn every object into an "orphan".
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(
        &audit::db::test_database_url_for(&dir.path().display().to_string())
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("index.db").display())),
    )
    .await
    .unwrap();
    let backend = LocalBackend::open(dir.path().join("objects"))
        .await
        .unwrap();
    let ids = [
        store(&backend, b"one").await,
        store(&backend, b"two").await,
        store(&backend, b"three").await,
    ];
    let report = sweep_orphans(&index, &backend, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((report.scanned, report.deleted, report.withheld), (3, 0, 3));
    for id in &ids {
        assert!(exists(&backend, id).await, "object {id} was deleted");
    }
}

#[tokio::test]
async fn sweep_deletes_nothing_when_more_orphans_than_a_crash_leaves() {
    let (_d, index, backend) = setup().await;
    let live = store(&backend, b"live").await;
    index.put_object(&record("k", &[&live])).await.unwrap();
    let n = gateway::index::MAX_CRASH_ORPHANS + 1;
    for _ in 0..n {
        store(&backend, b"foreign").await;
    }
    let report = sweep_orphans(&index, &backend, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((report.deleted, report.withheld), (0, n));
    assert_eq!(report.scanned, n + 1);
}
