//! A large object streamed through the local disk backend with bounded memory. Its own test
//! binary, so that the peak-RSS measurement sees no other test's allocations.

use conformance::backend as suite;
use gateway::backend::LocalBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_object_streams_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = LocalBackend::open(dir.path())
        .await
        .expect("open local backend");
    let size: u64 = 256 * 1024 * 1024 + 12_345;
    let report = suite::large_streamed_object(&backend, size, 64 * 1024 * 1024).await;
    eprintln!("large object report: {report:?}");
    assert!(report.max_read_chunk <= gateway::backend::local::READ_CHUNK);
}
