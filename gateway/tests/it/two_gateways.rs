//! Two whole gateways (S3 listener, object layer, keyring, index) serving one PostgreSQL
//! database and one backend directory (marked `shared_filesystem`), driven with aws-sdk-s3 at
//! the same moment (the SDK's own retries off, so a 503 is seen): the first PUTs into a new
//! bucket through both leave one data key and every object reads back byte-exact through the
//! other gateway (the first-key race itself is reproduced reliably one level down, in
//! `index_instances.rs`); PUTs of one key through both all succeed and end with one object,
//! the same bytes through either, and the backend holding exactly the referenced blobs. Needs `VAULTGATE_TEST_DATABASE_URL` (skipped without it unless
//! `VAULTGATE_TEST_REQUIRE_POSTGRES=1`): one SQLite data dir serves one gateway.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use common::*;

/// A gateway on the shared database and backend, with its own data dir.
async fn gateway(db: &str, objects: &std::path::Path) -> TestGateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    cfg.database_url = Some(db.to_owned());
    cfg.backend = Some(format!("file://{}", objects.display()));
    cfg.shared_filesystem = true;
    let server = gateway::server::start(cfg, admin_api)
        .await
        .expect("gateway starts");
    let endpoint = format!("http://{}", server.s3_addr);
    let creds = aws_sdk_s3::config::Credentials::new(AK, SK, None, None, "test");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(creds)
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    let client = aws_sdk_s3::Client::from_conf(conf);
    TestGateway {
        server,
        dir,
        endpoint,
        client,
    }
}

async fn get(g: &TestGateway, bucket: &str, key: &str) -> Vec<u8> {
    let out = g.client.get_object().bucket(bucket).key(key).send().await;
    let out = out.unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_on_one_database_share_the_first_data_key_and_one_winner_per_key() {
    let Some(db) = audit::db::test_database_url() else {
        assert_ne!(
            std::env::var("VAULTGATE_TEST_REQUIRE_POSTGRES").as_deref(),
            Ok("1"),
            "VAULTGATE_TEST_REQUIRE_POSTGRES=1 but VAULTGATE_TEST_DATABASE_URL is not set"
        );
        eprintln!("skipped: VAULTGATE_TEST_DATABASE_URL is not set");
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let objects = shared.path().join("objects");
    let a = gateway(&db, &objects).await;
    let b = gateway(&db, &objects).await;
    a.client
        .create_bucket()
        .bucket("fresh")
        .send()
        .await
        .unwrap();

    // the bucket's first PUTs go through both gateways at once: one data key
    let mut puts = Vec::new();
    for i in 0..12u64 {
        let client = if i % 2 == 0 { &a.client } else { &b.client };
        let (client, body) = (client.clone(), data(3000 + i as usize, i));
        puts.push(tokio::spawn(async move {
            client
                .put_object()
                .bucket("fresh")
                .key(format!("obj{i}"))
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
        }));
    }
    for p in puts {
        p.await
            .unwrap()
            .expect("no PUT fails for the other gateway's key");
    }
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_keys WHERE bucket = 'fresh'")
        .fetch_one(a.server.store.index().read_pool())
        .await
        .unwrap();
    assert_eq!(keys, 1, "one data key for the bucket");
    for i in 0..12u64 {
        // read through the gateway that did not write it
        let reader = if i % 2 == 0 { &b } else { &a };
        assert_eq!(
            get(reader, "fresh", &format!("obj{i}")).await,
            data(3000 + i as usize, i)
        );
    }

    // PUTs of one key through both at once: one object, the same bytes through either
    let mut puts = Vec::new();
    for i in 0..16u64 {
        let client = if i % 2 == 0 { &a.client } else { &b.client };
        let (client, body) = (client.clone(), data(2000, 100 + i));
        puts.push(tokio::spawn(async move {
            client
                .put_object()
                .bucket("fresh")
                .key("contended")
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
        }));
    }
    for p in puts {
        p.await.unwrap().expect("every overwrite succeeds");
    }
    let through_a = get(&a, "fresh", "contended").await;
    assert_eq!(through_a, get(&b, "fresh", "contended").await);
    assert!((0..16).any(|i| through_a == data(2000, 100 + i)));
    let versions = a
        .client
        .list_object_versions()
        .bucket("fresh")
        .prefix("contended")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1, "one null version");

    // every replaced blob was deleted (or is queued): the backend holds the live blobs only, once
    // the small objects still pending in the index are written back (the background pass runs
    // every 200 ms on whichever instance holds the lease)
    let index = a.server.store.index();
    gateway::index::collect_garbage(index, a.server.store.backend().as_ref())
        .await
        .unwrap();
    let live = index.referenced_backend_ids().await.unwrap();
    let stored = backend_objects_under(&a, &objects).await;
    assert_eq!(stored, live.len(), "no orphaned blob");
    b.stop().await;
    a.stop().await;
}
