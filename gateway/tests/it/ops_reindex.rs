//! `vaultgate reindex` (gateway::ops::reindex) against a real in-process gateway on the local
//! backend: after the SQLite index is deleted, the rebuilt index gives clients exactly the same
//! listings, sizes, ETags, last-modified times, headers, metadata and bodies; a wrong key, a
//! tampered stream and a non-empty index are refused or reported by backend id.

use crate::common;
use crate::ops_support;

use gateway::config::{Config, Secret};
use gateway::ops::OpsContext;
use gateway::ops::reindex::{ReindexOptions, run};

fn remove_index(cfg: &Config) {
    common::remove_index(cfg);
}

fn quiet() -> ReindexOptions {
    ReindexOptions {
        quiet: true,
        ..Default::default()
    }
}

/// Starts a gateway, fills it, snapshots, stops it; returns (dir, config, snapshot, referenced).
async fn filled() -> (
    tempfile::TempDir,
    Config,
    std::collections::BTreeMap<String, Vec<ops_support::ObjState>>,
) {
    let gw = common::start().await;
    ops_support::populate(&gw.client).await;
    let before = ops_support::snapshot(&gw.client).await;
    let cfg = common::config(gw.dir.path());
    let common::TestGateway { server, dir, .. } = gw;
    server.shutdown().await;
    (dir, cfg, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_after_deleting_the_index_restores_everything_clients_see() {
    let (_dir, cfg, before) = filled().await;
    assert_eq!(before["alpha"].len(), 5);
    assert_eq!(before["beta"].len(), 1);
    remove_index(&cfg);

    let ctx = OpsContext::open(&cfg).await.expect("open");
    let report = run(&ctx, &quiet()).await.expect("reindex");
    ctx.close().await;
    assert_eq!(report.scanned, 9, "{report:?}");
    assert_eq!(report.buckets, 2);
    assert_eq!(report.objects, 6);
    assert_eq!(report.multipart, 1);
    assert_eq!(report.orphan_parts.len(), 1, "the pending upload's part");
    assert!(report.unreadable.is_empty(), "{report:?}");
    assert!(report.superseded.is_empty(), "{report:?}");
    assert!(report.data_keys >= 2, "one data key per bucket at least");

    let server = gateway::server::start(cfg.clone(), common::admin_api)
        .await
        .expect("restart");
    let client = common::client_for(
        &format!("http://{}", server.s3_addr),
        common::AK,
        common::SK,
    );
    let after = ops_support::snapshot(&client).await;
    assert_eq!(before, after);
    // the multipart object's FULL_OBJECT checksum and its parts' checksums were there to lose
    let mp = before["alpha"]
        .iter()
        .find(|o| o.key == "mp/big.dat")
        .unwrap();
    assert_eq!(mp.checksum_type.as_deref(), Some("FULL_OBJECT"));
    assert!(mp.checksum_crc32c.is_some());
    assert_eq!(mp.part_checksums.len(), 2);
    assert!(mp.part_checksums.iter().all(Option::is_some), "{mp:?}");
    // the bucket is writable again with its restored data key
    client
        .put_object()
        .bucket("alpha")
        .key("new")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put after reindex");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_refuses_an_index_that_is_not_empty() {
    let (_dir, cfg, _) = filled().await;
    let ctx = OpsContext::open(&cfg).await.expect("open");
    let err = run(&ctx, &quiet()).await.expect_err("must refuse");
    assert!(
        matches!(err, gateway::Error::Config(ref m) if m.contains("empty index")),
        "{err}"
    );
    // nothing changed: the objects are still listed once
    let page = ctx
        .index
        .list_objects(&gateway::index::ListQuery {
            bucket: "alpha".into(),
            max_keys: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.objects.len(), 5);
    ctx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_with_the_wrong_key_imports_nothing_and_names_every_stream() {
    let (_dir, cfg, _) = filled().await;
    remove_index(&cfg);
    let mut wrong = cfg.clone();
    wrong.master_key = Some(Secret::new("11".repeat(32)));
    let ctx = OpsContext::open(&wrong).await.expect("open");
    let report = run(&ctx, &quiet()).await.expect("reindex runs");
    assert_eq!(report.objects, 0, "{report:?}");
    assert_eq!(report.buckets, 0);
    // 5 single-PUT streams + 1 manifest cannot be opened; the 3 parts have no readable manifest
    assert_eq!(report.unreadable.len(), 6, "{report:?}");
    assert_eq!(report.orphan_parts.len(), 3, "{report:?}");
    assert!(report.summary().contains("unreadable (not imported)"));
    assert!(ctx.index.is_empty().await.expect("is_empty"));
    ctx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_skips_a_tampered_stream_by_id_and_restores_the_rest() {
    let (_dir, cfg, before) = filled().await;
    // find a.one.txt's backend id through the old index, then flip a byte of its trailer
    let idx = gateway::index::Index::open(&cfg.database_url())
        .await
        .expect("index");
    let rec = idx
        .get_object("alpha", "a/one.txt")
        .await
        .expect("get")
        .expect("exists");
    idx.close().await;
    let id = rec.streams[0].backend_id.clone();
    let path = cfg
        .data_dir
        .join("objects")
        .join(&id[0..2])
        .join(&id[2..4])
        .join(&id);
    let mut bytes = std::fs::read(&path).expect("read stream");
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write tampered");
    remove_index(&cfg);

    let ctx = OpsContext::open(&cfg).await.expect("open");
    let report = run(&ctx, &quiet()).await.expect("reindex");
    assert_eq!(report.objects, 5, "{report:?}");
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    assert_eq!(report.unreadable[0].0, id);
    let keys: Vec<String> = ctx
        .index
        .list_objects(&gateway::index::ListQuery {
            bucket: "alpha".into(),
            max_keys: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    let expected: Vec<String> = before["alpha"]
        .iter()
        .map(|o| o.key.clone())
        .filter(|k| k != "a/one.txt")
        .collect();
    assert_eq!(keys, expected);
    ctx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_into_a_tenant_gives_the_buckets_to_that_tenant_only() {
    let (_dir, cfg, before) = filled().await;
    remove_index(&cfg);
    let ctx = OpsContext::open(&cfg).await.expect("open");
    // a bad tenant name is refused before anything is written
    let err = gateway::ops::reindex::run_into(&ctx, &quiet(), Some("no such/tenant"))
        .await
        .expect_err("bad name");
    assert!(err.to_string().contains("tenant name"), "{err}");
    assert!(ctx.index.is_empty().await.expect("is_empty"));
    let report = gateway::ops::reindex::run_into(&ctx, &quiet(), Some("acme"))
        .await
        .expect("reindex");
    assert_eq!(report.buckets, 2);
    let policy = gateway::ops::policy_store(&ctx.index, &ctx.keyring)
        .await
        .expect("policy store");
    for b in ["alpha", "beta"] {
        assert_eq!(policy.bucket_tenant(b).await.unwrap(), "acme");
    }
    ctx.close().await;

    let server = gateway::server::start(cfg.clone(), common::admin_api)
        .await
        .expect("restart");
    let endpoint = format!("http://{}", server.s3_addr);
    // the bootstrap admin (tenant default) no longer sees or reads them
    let admin = common::client_for(&endpoint, common::AK, common::SK);
    let listed = admin.list_buckets().send().await.expect("list");
    assert!(listed.buckets().is_empty(), "{listed:?}");
    let e = admin
        .list_objects_v2()
        .bucket("alpha")
        .send()
        .await
        .expect_err("other tenant");
    assert_eq!(common::code(&e), "AccessDenied");
    // a SuperAdmin of acme sees exactly what was there before
    let store = server.authz.store();
    store
        .create_principal("acme-root", "user", "acme", Some(policy::Role::SuperAdmin))
        .await
        .unwrap();
    let k = store.create_access_key("acme-root", None).await.unwrap();
    let acme = common::client_for(&endpoint, &k.access_key_id, k.secret.expose());
    assert_eq!(ops_support::snapshot(&acme).await, before);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_by_default_gives_the_buckets_to_the_owners_tenant() {
    let (_dir, cfg, _) = filled().await;
    remove_index(&cfg);
    let ctx = OpsContext::open(&cfg).await.expect("open");
    // the rebuilt index already knows a principal "ops" of tenant "ops-team" (no buckets yet)
    let policy = gateway::ops::policy_store(&ctx.index, &ctx.keyring)
        .await
        .expect("policy store");
    policy.create_tenant("ops-team").await.unwrap();
    policy
        .create_principal("ops", "user", "ops-team", Some(policy::Role::SuperAdmin))
        .await
        .unwrap();
    let opts = ReindexOptions {
        owner: "ops".into(),
        quiet: true,
    };
    let report = run(&ctx, &opts).await.expect("reindex");
    assert_eq!(report.buckets, 2);
    for b in ["alpha", "beta"] {
        assert_eq!(policy.bucket_tenant(b).await.unwrap(), "ops-team");
    }
    ctx.close().await;
}

/// Every version of a key, newest first: (version id, latest, delete marker, body or None).
async fn version_state(
    c: &aws_sdk_s3::Client,
    bucket: &str,
) -> Vec<(String, String, bool, bool, Option<Vec<u8>>)> {
    let out = c
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let mut all = Vec::new();
    for v in out.versions() {
        let (k, id) = (v.key().unwrap(), v.version_id().unwrap());
        let body = c
            .get_object()
            .bucket(bucket)
            .key(k)
            .version_id(id)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec();
        all.push((
            k.to_owned(),
            id.to_owned(),
            v.is_latest().unwrap(),
            false,
            Some(body),
        ));
    }
    for m in out.delete_markers() {
        all.push((
            m.key().unwrap().to_owned(),
            m.version_id().unwrap().to_owned(),
            m.is_latest().unwrap(),
            true,
            None,
        ));
    }
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_restores_versions_delete_markers_and_locks() {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetentionMode};
    let gw = common::start().await;
    let c = &gw.client;
    c.create_bucket()
        .bucket("vers")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("vers")
        .key("k")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    let until = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
    let locked = c
        .put_object()
        .bucket("vers")
        .key("k")
        .body(ByteStream::from_static(b"two, locked"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from(until))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    // extended after the write: reindex must restore the extension, not the write-time date
    let extended = std::time::SystemTime::now() + std::time::Duration::from_secs(3 * 86_400);
    c.put_object_retention()
        .bucket("vers")
        .key("k")
        .version_id(&locked)
        .retention(
            aws_sdk_s3::types::ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(aws_sdk_s3::primitives::DateTime::from(extended))
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("vers")
        .key("k")
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("vers")
        .key("other")
        .body(ByteStream::from_static(b"current"))
        .send()
        .await
        .unwrap();
    let before = version_state(c, "vers").await;
    assert_eq!(before.len(), 4, "{before:?}");
    let cfg = common::config(gw.dir.path());
    let common::TestGateway { server, dir, .. } = gw;
    server.shutdown().await;
    remove_index(&cfg);

    let ctx = OpsContext::open(&cfg).await.expect("open");
    let report = run(&ctx, &quiet()).await.expect("reindex");
    ctx.close().await;
    assert_eq!(report.objects, 4, "3 versions and a marker: {report:?}");
    assert_eq!(report.scanned, 5, "and one lock record: {report:?}");
    assert!(
        report.superseded.is_empty() && report.unreadable.is_empty(),
        "{report:?}"
    );

    let server = gateway::server::start(cfg.clone(), common::admin_api)
        .await
        .expect("restart");
    let client = common::client_for(
        &format!("http://{}", server.s3_addr),
        common::AK,
        common::SK,
    );
    assert_eq!(version_state(&client, "vers").await, before);
    // the COMPLIANCE retention came back with the version: still not deletable
    let r = client
        .get_object_retention()
        .bucket("vers")
        .key("k")
        .version_id(&locked)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.retention().unwrap().mode(),
        Some(&ObjectLockRetentionMode::Compliance)
    );
    let until = r.retention().unwrap().retain_until_date().unwrap().secs();
    let want = aws_sdk_s3::primitives::DateTime::from(extended).secs();
    assert!(
        (until - want).abs() <= 1,
        "the extended date came back: {until} vs {want}"
    );
    let e = client
        .delete_object()
        .bucket("vers")
        .key("k")
        .version_id(&locked)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "AccessDenied");
    server.shutdown().await;
    drop(dir);
}
