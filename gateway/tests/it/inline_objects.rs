//! Inline objects (issue 19; docs/FORMAT.md, "Inline objects"): a small single PUT is committed
//! with its sealed stream in the index row and served from there; the write-back task stores
//! the same bytes on the backend under the stream's backend id and marks them written, so that
//! `reindex` rebuilds them from the backend alone. Large objects, multipart parts and a gateway
//! with `inline_max_bytes = 0` write to the backend first, as before. A deleted object leaves no
//! backend object behind whichever of its delete and its write-back comes first, and inline
//! bytes changed in the database are refused, never served.

use crate::common;

use common::*;
use futures::TryStreamExt;
use gateway::index::ObjectRecord;

async fn record(g: &TestGateway, bucket: &str, key: &str) -> ObjectRecord {
    g.server
        .store
        .index()
        .get_object(bucket, key)
        .await
        .expect("index")
        .expect("object")
}

async fn backend_bytes(g: &TestGateway, id: &str) -> Option<Vec<u8>> {
    match g.server.store.backend().get(id, None).await {
        Ok(s) => {
            let chunks: Vec<bytes::Bytes> = s.try_collect().await.expect("read");
            Some(chunks.concat())
        }
        Err(gateway::backend::BackendError::NotFound(_)) => None,
        Err(e) => panic!("backend: {e}"),
    }
}

async fn start_with(inline_max_bytes: u64) -> TestGateway {
    start_configured(|c| c.inline_max_bytes = inline_max_bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_put_is_committed_inline_then_written_back_byte_for_byte() {
    let g = start().await;
    g.client.create_bucket().bucket("inl").send().await.unwrap();
    let body = data(4096, 1);
    put_bytes(&g.client, "inl", "small", &body).await;

    let rec = record(&g, "inl", "small").await;
    assert_eq!(rec.streams.len(), 1);
    let s = &rec.streams[0];
    let inline = s.inline.as_ref().expect("a 4 KiB PUT is inline");
    // served from the row, whether or not the write-back ran yet
    assert_eq!(get_bytes(&g.client, "inl", "small", None).await, body);
    assert_eq!(
        get_bytes(&g.client, "inl", "small", Some("bytes=100-199")).await,
        body[100..200]
    );
    // never plaintext in the row
    assert!(
        !inline.data.windows(64).any(|w| w == &body[..64]),
        "the inline stream is sealed"
    );

    // a copy of it is inline too (its length is the source's)
    g.client
        .copy_object()
        .bucket("inl")
        .key("copy")
        .copy_source("inl/small")
        .send()
        .await
        .expect("copy");
    assert!(record(&g, "inl", "copy").await.streams[0].inline.is_some());
    assert_eq!(get_bytes(&g.client, "inl", "copy", None).await, body);

    let report = g.server.store.write_back().await.expect("write-back");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(
        backend_bytes(&g, &s.backend_id).await.as_deref(),
        Some(&inline.data[..]),
        "the backend holds exactly the inline stream"
    );
    let after = record(&g, "inl", "small").await;
    let s2 = &after.streams[0];
    assert!(!s2.inline.as_ref().expect("still inline").pending);
    assert_eq!(
        g.server.store.index().pending_inline_bytes().await.unwrap(),
        0
    );
    // the write-back task's gauge, set at its next tick (every second at least)
    let mut text = String::new();
    for _ in 0..30 {
        text = g.server.metrics.render();
        if text.contains("vaultgate_inline_pending_bytes 0") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(text.contains("vaultgate_inline_pending_bytes 0"), "{text}");
    assert_eq!(get_bytes(&g.client, "inl", "small", None).await, body);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_puts_parts_and_a_zero_limit_write_to_the_backend_first() {
    let g = start().await;
    g.client.create_bucket().bucket("inl").send().await.unwrap();
    // the limit itself is inline, one byte more is not
    let at = data(65536, 2);
    let over = data(65537, 3);
    put_bytes(&g.client, "inl", "at", &at).await;
    put_bytes(&g.client, "inl", "over", &over).await;
    assert!(record(&g, "inl", "at").await.streams[0].inline.is_some());
    let over_rec = record(&g, "inl", "over").await;
    assert!(over_rec.streams[0].inline.is_none());
    assert!(
        backend_bytes(&g, &over_rec.streams[0].backend_id)
            .await
            .is_some(),
        "on the backend before the PUT answered"
    );
    assert_eq!(
        get_bytes(&g.client, "inl", "at", Some("bytes=65000-")).await,
        at[65000..]
    );
    assert_eq!(get_bytes(&g.client, "inl", "over", None).await, over);
    g.stop().await;

    let g = start_with(0).await;
    g.client.create_bucket().bucket("inl").send().await.unwrap();
    put_bytes(&g.client, "inl", "small", b"tiny").await;
    let rec = record(&g, "inl", "small").await;
    assert!(rec.streams[0].inline.is_none(), "inline_max_bytes = 0");
    assert!(
        backend_bytes(&g, &rec.streams[0].backend_id)
            .await
            .is_some()
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_or_replaced_inline_objects_leave_no_backend_object() {
    let g = start().await;
    g.client.create_bucket().bucket("inl").send().await.unwrap();
    for i in 0..20u64 {
        let key = format!("k{i}");
        put_bytes(&g.client, "inl", &key, &data(1000 + i as usize, i)).await;
        if i % 2 == 0 {
            g.client
                .delete_object()
                .bucket("inl")
                .key(&key)
                .send()
                .await
                .unwrap();
        } else {
            put_bytes(&g.client, "inl", &key, &data(2000, i + 100)).await;
        }
    }
    g.server.store.write_back().await.expect("write-back");
    // the gc queue of the deletes and overwrites drains on its own schedule: drain it now
    gateway::index::collect_garbage(g.server.store.index(), g.server.store.backend().as_ref())
        .await
        .expect("gc");
    // exactly the 10 current objects remain on the backend
    assert_eq!(backend_objects(&g).await, 10);
    for i in (1..20u64).step_by(2) {
        assert_eq!(
            get_bytes(&g.client, "inl", &format!("k{i}"), None).await,
            data(2000, i + 100)
        );
    }
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_bytes_changed_in_the_database_are_refused() {
    let g = start_with(65536).await;
    g.client.create_bucket().bucket("inl").send().await.unwrap();
    let body = data(3000, 7);
    put_bytes(&g.client, "inl", "t", &body).await;
    let rec = record(&g, "inl", "t").await;
    let mut bad = rec.streams[0].inline.as_ref().unwrap().data.to_vec();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    sqlx::query("UPDATE object_streams SET inline_data = $1 WHERE backend_id = $2")
        .bind(bad)
        .bind(&rec.streams[0].backend_id)
        .execute(g.server.store.index().write_pool())
        .await
        .unwrap();
    let e = g
        .client
        .get_object()
        .bucket("inl")
        .key("t")
        .send()
        .await
        .expect_err("a tampered stream is not served");
    assert_eq!(status(&e), 500);
    assert_eq!(code(&e), "InternalError");
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_restores_inline_objects_from_the_backend_alone() {
    let g = start().await;
    g.client.create_bucket().bucket("inl").send().await.unwrap();
    let mut want = Vec::new();
    for i in 0..40u64 {
        let body = data(100 + 997 * i as usize, i);
        put_bytes(&g.client, "inl", &format!("o/{i:02}"), &body).await;
        want.push(body);
    }
    let cfg = config(g.dir.path());
    let TestGateway { server, dir, .. } = g;
    // a clean shutdown writes back what is pending
    server.shutdown().await;
    let report = reindex_from_backend(&cfg).await;
    assert_eq!(report.objects, 40, "{report:?}");
    let server = gateway::server::start(cfg, admin_api)
        .await
        .expect("restart");
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    for (i, body) in want.iter().enumerate() {
        assert_eq!(
            &get_bytes(&client, "inl", &format!("o/{i:02}"), None).await,
            body
        );
    }
    server.shutdown().await;
    drop(dir);
}

/// A backend that counts its `put_batch` calls and, during the first, marks `then_pending`
/// pending again in the index: the PUTs other clients commit while a batch is being written.
#[derive(Debug)]
struct CountingBackend {
    inner: gateway::backend::LocalBackend,
    batches: std::sync::Mutex<Vec<usize>>,
    index: sqlx::AnyPool,
    then_pending: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl gateway::backend::Backend for CountingBackend {
    fn name(&self) -> &str {
        "file"
    }
    async fn put(
        &self,
        id: &str,
        body: gateway::backend::ByteStream,
        size_hint: Option<u64>,
    ) -> Result<u64, gateway::backend::BackendError> {
        self.inner.put(id, body, size_hint).await
    }
    async fn put_batch(
        &self,
        items: Vec<(String, bytes::Bytes)>,
    ) -> Vec<Result<(), gateway::backend::BackendError>> {
        self.batches.lock().unwrap().push(items.len());
        let more = std::mem::take(&mut *self.then_pending.lock().unwrap());
        mark_pending(&self.index, &more).await;
        self.inner.put_batch(items).await
    }
    async fn get(
        &self,
        id: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<gateway::backend::ByteStream, gateway::backend::BackendError> {
        self.inner.get(id, range).await
    }
    async fn head(
        &self,
        id: &str,
    ) -> Result<gateway::backend::ObjectInfo, gateway::backend::BackendError> {
        self.inner.head(id).await
    }
    async fn delete(&self, id: &str) -> Result<(), gateway::backend::BackendError> {
        self.inner.delete(id).await
    }
    async fn list(
        &self,
    ) -> Result<
        futures::stream::BoxStream<
            'static,
            Result<gateway::backend::ObjectInfo, gateway::backend::BackendError>,
        >,
        gateway::backend::BackendError,
    > {
        self.inner.list().await
    }
    async fn check(&self) -> Result<(), gateway::backend::BackendError> {
        self.inner.check().await
    }
}

/// Sets `inline_pending` again on the streams of `ids`, as if their PUTs had just committed.
async fn mark_pending(index: &sqlx::AnyPool, ids: &[String]) {
    for id in ids {
        sqlx::query("UPDATE object_streams SET inline_pending = 1 WHERE backend_id = $1")
            .bind(id)
            .execute(index)
            .await
            .expect("mark pending");
    }
}

async fn counting(
    root: &std::path::Path,
    index: &sqlx::AnyPool,
    then: &[String],
) -> CountingBackend {
    CountingBackend {
        inner: gateway::backend::LocalBackend::open(root)
            .await
            .expect("backend"),
        batches: Default::default(),
        index: index.clone(),
        then_pending: std::sync::Mutex::new(then.to_vec()),
    }
}

/// The serving task's pass (`PassEnd::PartialBatch`) ends after a batch that is not full: what
/// PUTs commit while it writes waits for the next tick rather than being chased one or two
/// objects per batch (each batch a filesystem sync and an index transaction). A full batch is
/// followed by the next at once, and a draining pass (shutdown, offline commands) leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_pass_does_not_chase_puts_committed_during_its_batch() {
    use gateway::store::inline::{BATCH_STREAMS, PassEnd, write_back};
    let total = BATCH_STREAMS as usize + 44;
    let g = start().await;
    g.client.create_bucket().bucket("inl").send().await.unwrap();
    for i in 0..total {
        put_bytes(&g.client, "inl", &format!("o/{i:04}"), &data(512, i as u64)).await;
    }
    let cfg = config(g.dir.path());
    let TestGateway { server, dir, .. } = g;
    server.shutdown().await; // drains: nothing pending
    let index = gateway::index::Index::open(&cfg.database_url())
        .await
        .expect("index");
    assert_eq!(index.pending_inline_bytes().await.unwrap(), 0);
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT backend_id FROM object_streams ORDER BY backend_id")
            .fetch_all(index.write_pool())
            .await
            .unwrap();
    assert_eq!(ids.len(), total);
    let count_pending = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM object_streams WHERE inline_pending = 1")
            .fetch_one(index.write_pool())
            .await
            .unwrap()
    };
    let root = dir.path().join("pass");
    let pool = index.write_pool().clone();
    // 10 pending, 3 more committed during the batch: the serving pass writes the 10 and stops
    mark_pending(&pool, &ids[..10]).await;
    let b = counting(&root, &pool, &ids[10..13]).await;
    let r = write_back(&index, &b, PassEnd::PartialBatch).await.unwrap();
    assert_eq!((r.written, r.failed), (10, 0), "{r:?}");
    assert_eq!(*b.batches.lock().unwrap(), vec![10]);
    assert_eq!(count_pending().await, 3, "left for the next tick");
    // a draining pass takes them, and what comes in meanwhile, until nothing is pending
    let b = counting(&root, &pool, &ids[13..15]).await;
    let r = write_back(&index, &b, PassEnd::Drained).await.unwrap();
    assert_eq!(r.written, 5, "{r:?}");
    assert_eq!(*b.batches.lock().unwrap(), vec![3, 2]);
    assert_eq!(count_pending().await, 0);

    // more than a full batch pending: the serving pass goes on after the full one
    mark_pending(&pool, &ids).await;
    let b = counting(&root, &pool, &[]).await;
    let r = write_back(&index, &b, PassEnd::PartialBatch).await.unwrap();
    assert_eq!(r.written, total as u64, "{r:?}");
    assert_eq!(*b.batches.lock().unwrap(), vec![BATCH_STREAMS as usize, 44]);
    assert_eq!(count_pending().await, 0);
    index.close().await;
    drop(dir);
}
