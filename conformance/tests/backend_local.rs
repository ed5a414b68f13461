//! The backend conformance suite against the local disk backend, one test per check, each with
//! its own temp dir. Also checks what only the local backend promises: ids (not names) on disk,
//! fan-out layout, no temp files left behind.

use conformance::backend as suite;
use gateway::backend::{Backend, LocalBackend, open_backend};

async fn fresh() -> (tempfile::TempDir, LocalBackend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = LocalBackend::open(dir.path().join("objects"))
        .await
        .expect("open local backend");
    (dir, backend)
}

/// A fresh temp dir for one check of the suite.
async fn for_check(_test: &str) -> Option<(tempfile::TempDir, LocalBackend)> {
    Some(fresh().await)
}

/// Every check cleans up after itself: nothing may be left in the temp dir.
async fn no_temp_files(dir: &tempfile::TempDir, _: &LocalBackend) {
    let tmp = dir.path().join("objects").join(".tmp");
    assert_eq!(
        std::fs::read_dir(tmp).expect("tmp dir").count(),
        0,
        "temp files left"
    );
}

conformance::backend_tests!(fresh: for_check, after: no_temp_files);

#[tokio::test]
async fn run_all_through_open_backend_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("file://{}", dir.path().join("store").display());
    let backend = open_backend(&url, dir.path())
        .await
        .expect("open file:// backend");
    assert_eq!(backend.name(), "file");
    suite::run_all(backend.as_ref()).await;
    // Nothing but the temp dir and fan-out directories remain.
    let listed: Vec<_> =
        futures::StreamExt::collect::<Vec<_>>(backend.list().await.expect("list")).await;
    assert!(listed.is_empty(), "objects left: {listed:?}");
}

#[tokio::test]
async fn files_are_named_by_id_only() {
    let (dir, backend) = fresh().await;
    let id = gateway::backend::new_backend_id();
    let data = suite::pseudo_random(5, 1234);
    backend
        .put(&id, suite::body_of(&data, 100), Some(1234))
        .await
        .expect("put");
    let path = dir
        .path()
        .join("objects")
        .join(&id[0..2])
        .join(&id[2..4])
        .join(&id);
    assert_eq!(std::fs::read(&path).expect("object file"), data);
    assert_eq!(backend.path_of(&id).expect("path"), path);
}
