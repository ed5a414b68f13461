//! `vaultgate migrate` (gateway::ops::migrate) against a real in-process gateway: local → local
//! with a deterministic interruption (`stop_after`, the resume test) and the switch the gateway
//! enforces at start-up; a missing source object blocks the switch; and, when SeaweedFS and
//! Azurite run (conformance/run), local → SeaweedFS → Azurite keeps every object readable with
//! the same ETag and SHA-256.

use crate::common;
use crate::ops_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use gateway::backend::Backend;
use gateway::config::Config;
use gateway::index::{Index, ListQuery, SETTING_BACKEND_URL};
use gateway::ops::OpsContext;
use gateway::ops::migrate::{MigrateOptions, migrate, run};
use ops_support::{BUCKETS, ObjState, sha256_hex};

type Snapshot = BTreeMap<String, Vec<ObjState>>;

async fn filled() -> (tempfile::TempDir, Config, Snapshot, usize) {
    let gw = common::start().await;
    let referenced = ops_support::populate(&gw.client).await;
    let before = ops_support::snapshot(&gw.client).await;
    let cfg = common::config(gw.dir.path());
    let common::TestGateway { server, dir, .. } = gw;
    server.shutdown().await;
    (dir, cfg, before, referenced)
}

fn opts(stop_after: Option<usize>) -> MigrateOptions {
    MigrateOptions {
        stop_after,
        quiet: true,
    }
}

fn file_url(p: &std::path::Path) -> String {
    format!("file://{}", std::path::absolute(p).expect("abs").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_local_resumes_after_interruption_then_switches() {
    let (dir, cfg, before, referenced) = filled().await;
    let dst_url = file_url(&dir.path().join("dest"));
    let ctx = OpsContext::open(&cfg).await.expect("open");

    let first = run(&ctx, &dst_url, &opts(Some(4)))
        .await
        .expect("first run");
    assert_eq!(first.total, referenced);
    assert_eq!(first.copied, 4);
    assert!(!first.switched);
    assert!(first.summary(&dst_url).contains("NOT switched"));
    assert_eq!(
        ctx.index
            .get_setting(SETTING_BACKEND_URL)
            .await
            .expect("setting"),
        None
    );

    let second = run(&ctx, &dst_url, &opts(None)).await.expect("second run");
    assert_eq!(
        second.skipped, 4,
        "verified ids of the first run are skipped"
    );
    assert_eq!(second.copied, referenced - 4);
    assert!(second.failed.is_empty(), "{second:?}");
    assert!(second.switched);
    assert!(
        second
            .summary(&dst_url)
            .contains(&format!("VAULTGATE_BACKEND={dst_url}"))
    );
    assert_eq!(
        ctx.index
            .get_setting(SETTING_BACKEND_URL)
            .await
            .expect("setting"),
        Some(dst_url.clone())
    );
    assert!(
        ctx.index
            .migrate_copied(&dst_url)
            .await
            .expect("copied")
            .is_empty()
    );
    // every referenced id is in the destination with the source's bytes
    let dst = gateway::backend::open_backend(&dst_url, &cfg.data_dir)
        .await
        .expect("dst");
    for id in ctx.index.referenced_backend_ids().await.expect("ids") {
        let a = gateway::ops::read_bytes(ctx.backend.as_ref(), &id, None)
            .await
            .expect("src");
        let b = gateway::ops::read_bytes(dst.as_ref(), &id, None)
            .await
            .expect("dst");
        assert_eq!(sha256_hex(&a), sha256_hex(&b), "{id}");
    }
    // migrating again towards the old backend from the new index state is refused
    let again = run(&ctx, &dst_url, &opts(None))
        .await
        .expect_err("same backend");
    assert!(again.to_string().contains("index says"), "{again}");
    ctx.close().await;

    // the gateway refuses the old backend now ...
    let err = gateway::server::start(cfg.clone(), common::admin_api)
        .await
        .expect_err("old backend refused");
    assert!(
        err.to_string()
            .contains(&format!("VAULTGATE_BACKEND={dst_url}")),
        "{err}"
    );
    // ... and serves everything unchanged from the new one
    let mut moved = cfg.clone();
    moved.backend = Some(dst_url.clone());
    let server = gateway::server::start(moved, common::admin_api)
        .await
        .expect("start on new backend");
    let client = common::client_for(
        &format!("http://{}", server.s3_addr),
        common::AK,
        common::SK,
    );
    assert_eq!(ops_support::snapshot(&client).await, before);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_object_is_named_and_blocks_the_switch() {
    let (dir, cfg, _, referenced) = filled().await;
    let ctx = OpsContext::open(&cfg).await.expect("open");
    let rec = ctx
        .index
        .get_object("beta", "ünï/cödé key")
        .await
        .expect("get")
        .expect("exists");
    let gone = rec.streams[0].backend_id.clone();
    ctx.backend
        .delete(&gone)
        .await
        .expect("delete source object");
    let dst_url = file_url(&dir.path().join("dest"));
    let report = run(&ctx, &dst_url, &opts(None)).await.expect("run");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, gone);
    assert_eq!(report.copied, referenced - 1);
    assert!(!report.switched);
    assert_eq!(
        ctx.index
            .get_setting(SETTING_BACKEND_URL)
            .await
            .expect("setting"),
        None
    );
    // the configured backend keeps working: the gateway still starts on it
    ctx.close().await;
    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .expect("still starts");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_to_the_configured_backend_is_refused() {
    let (_dir, cfg, _, _) = filled().await;
    let ctx = OpsContext::open(&cfg).await.expect("open");
    let url = ctx.backend_url.clone();
    let err = run(&ctx, &url, &opts(None)).await.expect_err("refused");
    assert!(matches!(err, gateway::Error::Config(_)), "{err}");
    ctx.close().await;
}

// ---- SeaweedFS + Azurite ----------------------------------------------------------------------

fn services(test: &str) -> Option<(String, String, String, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("VAULTGATE_TEST_S3_ENDPOINT"),
        var("VAULTGATE_TEST_S3_ACCESS_KEY"),
        var("VAULTGATE_TEST_S3_SECRET_KEY"),
        var("VAULTGATE_TEST_AZURE_ENDPOINT"),
    ) {
        (Some(a), Some(b), Some(c), Some(d)) => Some((a, b, c, d)),
        _ => {
            if var("VAULTGATE_REQUIRE_SERVICES").as_deref() == Some("1") {
                panic!(
                    "{test}: VAULTGATE_REQUIRE_SERVICES=1 but VAULTGATE_TEST_S3_* / VAULTGATE_TEST_AZURE_ENDPOINT are not set"
                );
            }
            eprintln!(
                "{test}: skipped (VAULTGATE_TEST_S3_ENDPOINT / VAULTGATE_TEST_AZURE_ENDPOINT not set)"
            );
            None
        }
    }
}

/// Reads every object through the object layer on `backend`: (bucket, key) -> (etag, sha256).
async fn read_all(
    index: &Index,
    backend: Arc<dyn Backend>,
    keyring: &keys::Keyring,
) -> BTreeMap<(String, String), (String, String)> {
    let store = gateway::store::Store::new(
        backend,
        index.clone(),
        keyring.clone(),
        gateway::metrics::Metrics::new(),
    );
    let mut out = BTreeMap::new();
    for b in BUCKETS {
        let page = index
            .list_objects(&ListQuery {
                bucket: b.into(),
                max_keys: 1000,
                ..Default::default()
            })
            .await
            .expect("list");
        for o in page.objects {
            let rec = index
                .get_object(b, &o.key)
                .await
                .expect("get")
                .expect("rec");
            let body: Vec<bytes::Bytes> = store
                .open_object(&rec, 0..rec.size, None)
                .await
                .expect("open")
                .try_collect()
                .await
                .expect("read");
            out.insert(
                (b.to_owned(), o.key.clone()),
                (format!("\"{}\"", rec.etag), sha256_hex(&body.concat())),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_seaweedfs_to_azurite_keeps_etags_and_sha256() {
    let Some((s3_endpoint, ak, sk, az_endpoint)) =
        services("local_to_seaweedfs_to_azurite_keeps_etags_and_sha256")
    else {
        return;
    };
    let (_dir, cfg, before, referenced) = filled().await;
    let expected: BTreeMap<(String, String), (String, String)> = before
        .iter()
        .flat_map(|(b, objs)| {
            objs.iter().map(move |o| {
                (
                    (b.clone(), o.key.clone()),
                    (o.etag.clone(), o.sha256.clone()),
                )
            })
        })
        .collect();
    let ctx = OpsContext::open(&cfg).await.expect("open");
    let tag = &gateway::backend::new_backend_id()[..12];

    let s3_url = format!(
        "s3://vg-migrate-{tag}/data?endpoint={s3_endpoint}&region=us-east-1&path_style=true"
    );
    let mut s3_cfg = gateway::backend::s3::S3Config::from_url(&s3_url).expect("s3 url");
    s3_cfg.credentials = Some(gateway::backend::s3::S3Credentials {
        access_key: ak,
        secret_key: gateway::backend::s3::BackendSecret::new(sk),
    });
    let s3: Arc<dyn Backend> = Arc::new(
        gateway::backend::s3::S3Backend::connect(s3_cfg)
            .await
            .expect("seaweedfs"),
    );
    let local_url = ctx.backend_url.clone();
    // interrupted, then resumed
    let r1 = migrate(
        &ctx.index,
        ctx.backend.as_ref(),
        &local_url,
        s3.as_ref(),
        &s3_url,
        &opts(Some(3)),
    )
    .await
    .expect("to s3, part 1");
    assert_eq!((r1.copied, r1.switched), (3, false));
    let r2 = migrate(
        &ctx.index,
        ctx.backend.as_ref(),
        &local_url,
        s3.as_ref(),
        &s3_url,
        &opts(None),
    )
    .await
    .expect("to s3, part 2");
    assert_eq!(
        (r2.skipped, r2.copied, r2.switched),
        (3, referenced - 3, true),
        "{r2:?}"
    );
    assert_eq!(
        read_all(&ctx.index, s3.clone(), &ctx.keyring).await,
        expected
    );

    let az_url = format!(
        "azure://vg-migrate-{tag}/data?account=devstoreaccount1&endpoint={az_endpoint}&use_emulator=true"
    );
    let az: Arc<dyn Backend> = Arc::new(
        gateway::backend::azure::AzureBackend::connect(
            gateway::backend::azure::AzureConfig::from_url(&az_url).expect("azure url"),
        )
        .await
        .expect("azurite"),
    );
    // the index now says the data is in SeaweedFS: migrating "from local" is refused
    let refused = migrate(
        &ctx.index,
        ctx.backend.as_ref(),
        &local_url,
        az.as_ref(),
        &az_url,
        &opts(None),
    )
    .await;
    assert!(refused.is_err());
    let r3 = migrate(
        &ctx.index,
        s3.as_ref(),
        &s3_url,
        az.as_ref(),
        &az_url,
        &opts(None),
    )
    .await
    .expect("to azure");
    assert_eq!((r3.copied, r3.switched), (referenced, true), "{r3:?}");
    assert_eq!(
        read_all(&ctx.index, az.clone(), &ctx.keyring).await,
        expected
    );
    assert_eq!(
        ctx.index
            .get_setting(SETTING_BACKEND_URL)
            .await
            .expect("setting"),
        Some(az_url)
    );
    ctx.close().await;
}
