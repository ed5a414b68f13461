//! The backend conformance suite against the Azure Blob backend on Azurite
//! (`conformance/lib/azurite.sh`), one test per check, each in its own fresh container; plus
//! container creation at start-up, clear errors for an unreachable endpoint or a wrong key,
//! prefixes that keep backends apart, and staged (block) uploads that stream with bounded memory
//! and commit nothing when they fail.
//!
//! Needs `VAULTGATE_TEST_AZURE_ENDPOINT` (e.g. `http://127.0.0.1:10000/devstoreaccount1`; the
//! emulator's well-known account and key are used). Without it each test prints "skipped" and
//! passes, unless `VAULTGATE_REQUIRE_SERVICES=1`, which makes them fail.

use conformance::backend as suite;
use gateway::backend::azure::{AzureAuth, AzureBackend, AzureConfig, MIN_BLOCK_SIZE};
use gateway::backend::s3::BackendSecret;
use gateway::backend::{Backend, BackendError, new_backend_id};

fn endpoint(test: &str) -> Option<String> {
    suite::service_vars(
        test,
        &["VAULTGATE_TEST_AZURE_ENDPOINT"],
        "source conformance/lib/azurite.sh; azurite_start DIR",
    )?
    .pop()
}

fn fresh_container() -> String {
    format!("vg-test-{}", &new_backend_id()[..16])
}

fn config(endpoint: &str, container: &str, prefix: &str) -> AzureConfig {
    let mut url = format!("azure://{container}");
    if !prefix.is_empty() {
        url.push('/');
        url.push_str(prefix);
    }
    url.push_str(&format!(
        "?account=devstoreaccount1&endpoint={endpoint}&use_emulator=true"
    ));
    AzureConfig::from_url(&url).expect("test URL parses")
}

async fn fresh(endpoint: &str) -> AzureBackend {
    AzureBackend::connect(config(endpoint, &fresh_container(), "objects"))
        .await
        .expect("connect to Azurite")
}

/// A fresh container for one check of the suite.
async fn for_check(test: &str) -> Option<((), AzureBackend)> {
    Some(((), fresh(&endpoint(test)?).await))
}

/// Nothing to check after a run: uncommitted blocks expire on their own.
async fn nothing_left(_: &(), _: &AzureBackend) {}

conformance::backend_tests!(fresh: for_check, after: nothing_left);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_in_one_container_without_prefix() {
    let Some(e) = endpoint("run_all_in_one_container_without_prefix") else {
        return;
    };
    let backend = AzureBackend::connect(config(&e, &fresh_container(), ""))
        .await
        .expect("connect");
    suite::run_all(&backend).await;
    let left: Vec<_> =
        futures::StreamExt::collect::<Vec<_>>(backend.list().await.expect("list")).await;
    assert!(left.is_empty(), "objects left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_container_is_created_or_refused() {
    let Some(e) = endpoint("missing_container_is_created_or_refused") else {
        return;
    };
    let container = fresh_container();
    let mut no_create = config(&e, &container, "");
    no_create.create_container = false;
    let err = AzureBackend::connect(no_create.clone())
        .await
        .expect_err("a missing container without creation");
    assert!(
        matches!(&err, BackendError::Config(m) if m.contains("does not exist") && m.contains(&container)),
        "{err}"
    );

    let created = AzureBackend::connect(config(&e, &container, ""))
        .await
        .expect("connect creates the container");
    let other = AzureBackend::connect(no_create)
        .await
        .expect("container exists now");
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
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let started = std::time::Instant::now();
    let cfg = config(
        &format!("http://127.0.0.1:{port}/devstoreaccount1"),
        "some-container",
        "",
    );
    let err = AzureBackend::connect(cfg).await.expect_err("closed port");
    match &err {
        BackendError::Unavailable(m) => {
            assert!(
                m.contains("cannot reach") && m.contains(&format!("127.0.0.1:{port}")),
                "{m}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "gave up only after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_without_leaking_it() {
    let Some(e) = endpoint("wrong_key_is_refused_without_leaking_it") else {
        return;
    };
    let mut cfg = config(&e, &fresh_container(), "");
    // Valid base64, wrong key.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    cfg.credential = Some(AzureAuth::AccountKey(BackendSecret::new(wrong)));
    let err = AzureBackend::connect(cfg).await.expect_err("wrong key");
    assert!(matches!(err, BackendError::Denied(_)), "{err:?}");
    assert!(!format!("{err:?}").contains(wrong), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_mapping_and_prefix_isolation() {
    let Some(e) = endpoint("not_found_mapping_and_prefix_isolation") else {
        return;
    };
    let container = fresh_container();
    let a = AzureBackend::connect(config(&e, &container, "tenant-a"))
        .await
        .expect("connect a");
    let b = AzureBackend::connect(config(&e, &container, "tenant-b/deeper"))
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
    for r in [5..10, 9..10, 10..10] {
        let got = a.get(&id, Some(r.clone())).await.map(|_| ());
        assert!(
            matches!(got, Err(BackendError::InvalidRange(_))),
            "{r:?}: {got:?}"
        );
    }
    a.delete(&id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_put_streams_with_bounded_memory() {
    let Some(e) = endpoint("staged_put_streams_with_bounded_memory") else {
        return;
    };
    let backend = fresh(&e).await;
    let size: u64 = 100 * 1024 * 1024 + 12_345;
    let report = suite::large_streamed_object(&backend, size, 96 * 1024 * 1024).await;
    eprintln!("azure large object report: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_staged_put_commits_nothing() {
    let Some(e) = endpoint("failed_staged_put_commits_nothing") else {
        return;
    };
    let mut cfg = config(&e, &fresh_container(), "objects");
    cfg.part_size = MIN_BLOCK_SIZE;
    let backend = AzureBackend::connect(cfg).await.expect("connect");
    let len = 3 * MIN_BLOCK_SIZE + 1000;
    let data = suite::pseudo_random(78, len);

    let id = new_backend_id();
    let err = backend
        .put(&id, suite::body_of(&data, 100_000), Some(len as u64 + 1))
        .await
        .expect_err("short body");
    assert!(matches!(err, BackendError::SizeMismatch(_)), "{err:?}");
    assert!(matches!(
        backend.head(&id).await,
        Err(BackendError::NotFound(_))
    ));

    let good = bytes::Bytes::from(data.clone());
    let items: Vec<std::io::Result<bytes::Bytes>> = vec![
        Ok(good.slice(..2 * MIN_BLOCK_SIZE + 10)),
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

    // An old object stays intact when a staged overwrite fails.
    backend
        .put(&id, suite::body_of(b"old", 3), Some(3))
        .await
        .expect("put old");
    let items: Vec<std::io::Result<bytes::Bytes>> = vec![
        Ok(good.slice(..2 * MIN_BLOCK_SIZE + 10)),
        Err(std::io::Error::other("gone")),
    ];
    assert!(
        backend
            .put(
                &id,
                futures::StreamExt::boxed(futures::stream::iter(items)),
                None
            )
            .await
            .is_err()
    );
    assert_eq!(
        suite::read_all(backend.get(&id, None).await.expect("get"))
            .await
            .expect("read"),
        b"old"
    );

    let n = backend
        .put(&id, suite::body_of(&data, 333_333), None)
        .await
        .expect("put");
    assert_eq!(n, len as u64);
    let back = suite::read_all(backend.get(&id, None).await.expect("get"))
        .await
        .expect("read");
    assert!(back == data, "staged content differs");
    let mid = suite::read_all(
        backend
            .get(
                &id,
                Some(MIN_BLOCK_SIZE as u64 - 5..MIN_BLOCK_SIZE as u64 + 5),
            )
            .await
            .expect("get"),
    )
    .await
    .expect("read");
    assert_eq!(mid, data[MIN_BLOCK_SIZE - 5..MIN_BLOCK_SIZE + 5]);
    backend.delete(&id).await.expect("delete");
}

#[tokio::test]
async fn open_backend_parses_azure_urls_and_reports_unreachable_endpoints() {
    let dir = tempfile::tempdir().expect("temp dir");
    for bad in [
        "azure://Bad_Container?use_emulator=true",
        "azure://box?bogus=1",
        "azure://box?use_emulator=maybe",
    ] {
        match gateway::backend::open_backend(bad, dir.path()).await {
            Err(BackendError::Config(m)) => assert!(
                m.contains("azure") || m.contains("backend URL"),
                "{bad}: {m}"
            ),
            other => panic!("{bad}: expected Other, got {other:?}"),
        }
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("azure://some-container?use_emulator=true&endpoint=http://127.0.0.1:{port}");
    match gateway::backend::open_backend(&url, dir.path()).await {
        Err(BackendError::Unavailable(m)) => {
            assert!(
                m.contains("cannot reach")
                    && m.contains(&format!("127.0.0.1:{port}/devstoreaccount1")),
                "{m}"
            )
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
