//! The backend conformance suite against the S3 backend on a real S3 server (SeaweedFS in CI:
//! `conformance/lib/seaweedfs.sh`), one test per check, each in its own fresh bucket; plus what
//! only a remote backend has: bucket creation at start-up, a clear error for an unreachable or
//! refusing endpoint, prefixes that keep backends apart, multipart uploads that stream with
//! bounded memory and leave nothing behind when they fail.
//!
//! Needs `VAULTGATE_TEST_S3_ENDPOINT`, `VAULTGATE_TEST_S3_ACCESS_KEY`, `VAULTGATE_TEST_S3_SECRET_KEY`.
//! Without them each test prints "skipped" and passes, unless `VAULTGATE_REQUIRE_SERVICES=1`,
//! which makes them fail.

use conformance::backend as suite;
use gateway::backend::s3::{BackendSecret, MIN_PART_SIZE, S3Backend, S3Config, S3Credentials};
use gateway::backend::{Backend, BackendError, new_backend_id};

struct Server {
    endpoint: String,
    access_key: String,
    secret_key: String,
}

fn server(test: &str) -> Option<Server> {
    let [endpoint, access_key, secret_key]: [String; 3] = suite::service_vars(
        test,
        &[
            "VAULTGATE_TEST_S3_ENDPOINT",
            "VAULTGATE_TEST_S3_ACCESS_KEY",
            "VAULTGATE_TEST_S3_SECRET_KEY",
        ],
        "source conformance/lib/seaweedfs.sh; seaweedfs_start DIR",
    )?
    .try_into()
    .ok()?;
    Some(Server {
        endpoint,
        access_key,
        secret_key,
    })
}

fn fresh_bucket() -> String {
    format!("vg-test-{}", &new_backend_id()[..16])
}

fn config(s: &Server, bucket: &str, prefix: &str) -> S3Config {
    let mut url = format!("s3://{bucket}");
    if !prefix.is_empty() {
        url.push('/');
        url.push_str(prefix);
    }
    url.push_str(&format!(
        "?endpoint={}&region=us-east-1&path_style=true",
        s.endpoint
    ));
    let mut cfg = S3Config::from_url(&url).expect("test URL parses");
    cfg.credentials = Some(S3Credentials {
        access_key: s.access_key.clone(),
        secret_key: BackendSecret::new(s.secret_key.clone()),
    });
    cfg
}

async fn fresh(s: &Server) -> S3Backend {
    S3Backend::connect(config(s, &fresh_bucket(), "objects"))
        .await
        .expect("connect to the S3 backend")
}

/// A fresh bucket for one check of the suite.
async fn for_check(test: &str) -> Option<((), S3Backend)> {
    Some(((), fresh(&server(test)?).await))
}

/// No multipart upload left behind.
async fn no_pending_uploads(_: &(), backend: &S3Backend) {
    assert_eq!(
        backend.pending_uploads().await.expect("list uploads"),
        Vec::<String>::new()
    );
}

conformance::backend_tests!(fresh: for_check, after: no_pending_uploads);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_in_one_bucket_without_prefix() {
    let Some(s) = server("run_all_in_one_bucket_without_prefix") else {
        return;
    };
    let backend = S3Backend::connect(config(&s, &fresh_bucket(), ""))
        .await
        .expect("connect");
    suite::run_all(&backend).await;
    let left: Vec<_> =
        futures::StreamExt::collect::<Vec<_>>(backend.list().await.expect("list")).await;
    assert!(left.is_empty(), "objects left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_created_or_refused() {
    let Some(s) = server("missing_bucket_is_created_or_refused") else {
        return;
    };
    let bucket = fresh_bucket();
    let mut no_create = config(&s, &bucket, "");
    no_create.create_bucket = false;
    let err = S3Backend::connect(no_create.clone())
        .await
        .expect_err("a missing bucket without creation");
    assert!(
        matches!(&err, BackendError::Config(m) if m.contains("does not exist") && m.contains(&bucket)),
        "{err}"
    );

    let created = S3Backend::connect(config(&s, &bucket, ""))
        .await
        .expect("connect creates the bucket");
    // Now it exists for a backend that may not create it, and objects written by one are seen
    // by the other.
    let other = S3Backend::connect(no_create)
        .await
        .expect("bucket exists now");
    let id = new_backend_id();
    created
        .put(&id, suite::body_of(b"shared", 3), Some(6))
        .await
        .expect("put");
    assert_eq!(
        suite::read_all(other.get(&id, None).await.expect("get"))
            .await
            .expect("read"),
        b"shared"
    );
    other.delete(&id).await.expect("delete");
}

#[tokio::test]
async fn closed_port_fails_with_a_clear_error() {
    // No server needed: nothing listens on a port we just closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let s = Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: "ak".into(),
        secret_key: "sk".into(),
    };
    let started = std::time::Instant::now();
    let err = S3Backend::connect(config(&s, "some-bucket", ""))
        .await
        .expect_err("closed port");
    match &err {
        BackendError::Unavailable(m) => {
            assert!(
                m.contains("cannot reach") && m.contains(&format!("127.0.0.1:{port}")),
                "{m}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(!err.to_string().contains("sk\""), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "gave up only after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_without_leaking_them() {
    let Some(s) = server("wrong_credentials_are_refused_without_leaking_them") else {
        return;
    };
    let bad = Server {
        endpoint: s.endpoint.clone(),
        access_key: s.access_key.clone(),
        secret_key: "wrong-secret-0123456789".into(),
    };
    let err = S3Backend::connect(config(&bad, &fresh_bucket(), ""))
        .await
        .expect_err("bad secret");
    assert!(matches!(err, BackendError::Denied(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong-secret"), "{err}");
    assert!(!format!("{err:?}").contains("wrong-secret"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_mapping_and_prefix_isolation() {
    let Some(s) = server("not_found_mapping_and_prefix_isolation") else {
        return;
    };
    let bucket = fresh_bucket();
    let a = S3Backend::connect(config(&s, &bucket, "tenant-a"))
        .await
        .expect("connect a");
    let b = S3Backend::connect(config(&s, &bucket, "tenant-b/deeper"))
        .await
        .expect("connect b");
    let id = new_backend_id();
    a.put(&id, suite::body_of(b"only in a", 4), None)
        .await
        .expect("put");
    assert!(matches!(b.head(&id).await, Err(BackendError::NotFound(_))));
    assert!(matches!(
        b.get(&id, None).await.map(|_| ()),
        Err(BackendError::NotFound(_))
    ));
    assert!(matches!(
        b.get(&id, Some(1..3)).await.map(|_| ()),
        Err(BackendError::NotFound(_))
    ));
    b.delete(&id).await.expect("deleting a missing id is Ok");
    assert_eq!(a.head(&id).await.expect("still in a").size, 9);
    let listed_b: Vec<_> =
        futures::StreamExt::collect::<Vec<_>>(b.list().await.expect("list b")).await;
    assert!(listed_b.is_empty(), "{listed_b:?}");
    let listed_a: Vec<_> =
        futures::StreamExt::collect::<Vec<_>>(a.list().await.expect("list a")).await;
    assert_eq!(
        listed_a
            .into_iter()
            .map(|r| r.expect("item").id)
            .collect::<Vec<_>>(),
        vec![id.clone()]
    );
    // Ranges beyond the end are refused, not truncated.
    assert!(matches!(
        a.get(&id, Some(5..10)).await.map(|_| ()),
        Err(BackendError::InvalidRange(_))
    ));
    assert!(matches!(
        a.get(&id, Some(9..10)).await.map(|_| ()),
        Err(BackendError::InvalidRange(_))
    ));
    assert!(matches!(
        a.get(&id, Some(10..10)).await.map(|_| ()),
        Err(BackendError::InvalidRange(_))
    ));
    a.delete(&id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_put_streams_with_bounded_memory() {
    let Some(s) = server("multipart_put_streams_with_bounded_memory") else {
        return;
    };
    let backend = fresh(&s).await;
    // 100 MiB in 16 MiB parts: 7 parts, at most two of them in memory.
    let size: u64 = 100 * 1024 * 1024 + 12_345;
    let report = suite::large_streamed_object(&backend, size, 96 * 1024 * 1024).await;
    eprintln!("s3 large object report: {report:?}");
    assert_eq!(
        backend.pending_uploads().await.expect("list uploads"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_multipart_put_is_aborted() {
    let Some(s) = server("failed_multipart_put_is_aborted") else {
        return;
    };
    let mut cfg = config(&s, &fresh_bucket(), "objects");
    cfg.part_size = MIN_PART_SIZE;
    let backend = S3Backend::connect(cfg).await.expect("connect");
    let len = 2 * MIN_PART_SIZE + 1000;
    let data = suite::pseudo_random(77, len);

    // Declared longer than it is: fails after two parts were uploaded.
    let id = new_backend_id();
    let err = backend
        .put(&id, suite::body_of(&data, 1 << 20), Some(len as u64 + 1))
        .await
        .expect_err("short body");
    assert!(matches!(err, BackendError::SizeMismatch(_)), "{err:?}");
    assert!(matches!(
        backend.head(&id).await,
        Err(BackendError::NotFound(_))
    ));

    // The body fails after more than one part.
    let good = bytes::Bytes::from(data.clone());
    let items: Vec<std::io::Result<bytes::Bytes>> = vec![
        Ok(good.slice(..MIN_PART_SIZE + 10)),
        Ok(good.slice(MIN_PART_SIZE + 10..)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let err = backend
        .put(
            &id,
            futures::StreamExt::boxed(futures::stream::iter(items)),
            None,
        )
        .await
        .expect_err("failing body");
    assert!(matches!(err, BackendError::Io(_)), "{err:?}");
    assert!(matches!(
        backend.head(&id).await,
        Err(BackendError::NotFound(_))
    ));
    assert_eq!(
        backend.pending_uploads().await.expect("list uploads"),
        Vec::<String>::new(),
        "uploads not aborted"
    );

    // The same body, unbroken and of unknown length, lands intact in three parts.
    let n = backend
        .put(&id, suite::body_of(&data, 777_777), None)
        .await
        .expect("put");
    assert_eq!(n, len as u64);
    let back = suite::read_all(backend.get(&id, None).await.expect("get"))
        .await
        .expect("read");
    assert!(back == data, "multipart content differs");
    let tail = suite::read_all(
        backend
            .get(
                &id,
                Some(MIN_PART_SIZE as u64 - 5..MIN_PART_SIZE as u64 + 5),
            )
            .await
            .expect("get"),
    )
    .await
    .expect("read");
    assert_eq!(tail, data[MIN_PART_SIZE - 5..MIN_PART_SIZE + 5]);
    backend.delete(&id).await.expect("delete");
}

#[tokio::test]
async fn open_backend_parses_s3_urls_and_reports_unreachable_endpoints() {
    let dir = tempfile::tempdir().expect("temp dir");
    for bad in [
        "s3://Bad_Bucket",
        "s3://bucket?bogus=1",
        "s3://bucket?endpoint=ftp://x",
    ] {
        match gateway::backend::open_backend(bad, dir.path()).await {
            Err(BackendError::Config(m)) => {
                assert!(m.contains("s3") || m.contains("backend URL"), "{bad}: {m}")
            }
            other => panic!("{bad}: expected Other, got {other:?}"),
        }
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("s3://some-bucket/p?endpoint=http://127.0.0.1:{port}");
    let err = gateway::backend::open_backend(&url, dir.path())
        .await
        .expect_err("closed port");
    eprintln!("{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_past_one_thousand_objects() {
    use futures::StreamExt;
    let Some(s) = server("list_pages_past_one_thousand_objects") else {
        return;
    };
    let backend = fresh(&s).await;
    let ids: Vec<String> = (0..1010).map(|_| new_backend_id()).collect();
    let results: Vec<_> = futures::stream::iter(ids.iter())
        .map(|id| backend.put(id, suite::body_of(id.as_bytes(), 64), Some(32)))
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(results.iter().all(|r| matches!(r, Ok(32))), "puts failed");
    let mut listed: Vec<String> = backend
        .list()
        .await
        .expect("list")
        .map(|r| r.expect("list item").id)
        .collect()
        .await;
    listed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        listed.len(),
        1010,
        "ListObjectsV2 pages (1000 keys per page) were not all read"
    );
    assert_eq!(listed, want);
    let deleted: Vec<_> = futures::stream::iter(ids.iter())
        .map(|id| backend.delete(id))
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(deleted.iter().all(|r| r.is_ok()));
}
