//! The gateway's S3 front end authorised by the policy library, over real SigV4 (aws-sdk-s3):
//! roles of keys created through the policy store API, revocation acting on the very next
//! request, tenant isolation of buckets (ListBuckets and access), SlowDown with Retry-After past
//! the write limit, and the upgrade of a data dir whose index still holds the legacy
//! `access_keys` table.

use crate::common;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use common::*;
use policy::Role;

/// Creates a principal in `tenant` with `role` and an access key for it; returns (id, secret).
async fn key_for(g: &TestGateway, name: &str, tenant: &str, role: Role) -> (String, String) {
    let store = g.server.authz.store();
    if tenant != "default"
        && !store
            .list_tenants()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == tenant)
    {
        store.create_tenant(tenant).await.unwrap();
    }
    store
        .create_principal(name, "user", tenant, Some(role))
        .await
        .unwrap();
    let k = store.create_access_key(name, None).await.unwrap();
    (k.access_key_id, k.secret.expose().to_owned())
}

async fn put(c: &Client, bucket: &str, key: &str, body: &'static [u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap();
}

async fn bucket_names(c: &Client) -> Vec<String> {
    c.list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn viewer_reads_manager_writes_neither_deletes() {
    let g = start().await;
    g.client
        .create_bucket()
        .bucket("roles")
        .send()
        .await
        .unwrap();
    put(&g.client, "roles", "k", b"value").await;
    let (vid, vsk) = key_for(&g, "viewer", "default", Role::Viewer).await;
    let (mid, msk) = key_for(&g, "manager", "default", Role::Manager).await;
    let viewer = client_for(&g.endpoint, &vid, &vsk);
    let manager = client_for(&g.endpoint, &mid, &msk);

    assert_eq!(bucket_names(&viewer).await, vec!["roles".to_owned()]);
    let listed = viewer
        .list_objects_v2()
        .bucket("roles")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1);
    let got = viewer
        .get_object()
        .bucket("roles")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"value"
    );
    let e = viewer
        .put_object()
        .bucket("roles")
        .key("v")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("AccessDenied", 403));
    let e = viewer
        .delete_object()
        .bucket("roles")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("AccessDenied", 403));

    put(&manager, "roles", "m", b"by manager").await;
    let got = g
        .client
        .get_object()
        .bucket("roles")
        .key("m")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"by manager"
    );
    let e = manager
        .delete_object()
        .bucket("roles")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("AccessDenied", 403));
    let e = manager
        .create_bucket()
        .bucket("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // the refused delete left the object in place
    g.client
        .head_object()
        .bucket("roles")
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(g.server.authz.denied_total() >= 4);
    g.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_on_the_very_next_request() {
    let g = start().await;
    g.client.create_bucket().bucket("rev").send().await.unwrap();
    let (id, sk) = key_for(&g, "soon-gone", "default", Role::Manager).await;
    let c = client_for(&g.endpoint, &id, &sk);
    put(&c, "rev", "a", b"1").await;
    c.head_object().bucket("rev").key("a").send().await.unwrap();
    g.server.authz.store().revoke_access_key(&id).await.unwrap();
    let e = c
        .head_object()
        .bucket("rev")
        .key("a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403);
    let e = c.list_objects_v2().bucket("rev").send().await.unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("InvalidAccessKeyId", 403));
    // a wrong secret for a live key is refused too
    let (id2, _) = key_for(&g, "other", "default", Role::Viewer).await;
    let bad = client_for(&g.endpoint, &id2, "not-the-secret-0123456789");
    let e = bad.list_buckets().send().await.unwrap_err();
    assert_eq!(
        (code(&e).as_str(), status(&e)),
        ("SignatureDoesNotMatch", 403)
    );
    g.stop().await;
}

#[tokio::test]
async fn another_tenants_buckets_are_invisible_and_denied() {
    let g = start().await;
    g.client
        .create_bucket()
        .bucket("home")
        .send()
        .await
        .unwrap();
    put(&g.client, "home", "k", b"default tenant").await;
    let (id, sk) = key_for(&g, "t2-admin", "t2", Role::SuperAdmin).await;
    let t2 = client_for(&g.endpoint, &id, &sk);
    t2.create_bucket().bucket("away").send().await.unwrap();
    put(&t2, "away", "k", b"tenant two").await;
    assert_eq!(
        g.server.authz.store().bucket_tenant("away").await.unwrap(),
        "t2"
    );

    assert_eq!(bucket_names(&g.client).await, vec!["home".to_owned()]);
    assert_eq!(bucket_names(&t2).await, vec!["away".to_owned()]);
    let e = t2
        .get_object()
        .bucket("home")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("AccessDenied", 403));
    let e = t2
        .list_objects_v2()
        .bucket("home")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = g
        .client
        .get_object()
        .bucket("away")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // copying out of another tenant's bucket is refused (the source is checked as GetObject)
    let e = t2
        .copy_object()
        .bucket("away")
        .key("stolen")
        .copy_source("home/k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    t2.copy_object()
        .bucket("away")
        .key("copy")
        .copy_source("away/k")
        .send()
        .await
        .unwrap();

    // DeleteBucket forgets the tenant: the name can be created again by the default tenant
    for k in ["k", "copy"] {
        t2.delete_object()
            .bucket("away")
            .key(k)
            .send()
            .await
            .unwrap();
    }
    t2.delete_bucket().bucket("away").send().await.unwrap();
    g.client
        .create_bucket()
        .bucket("away")
        .send()
        .await
        .unwrap();
    assert_eq!(
        bucket_names(&g.client).await,
        vec!["away".to_owned(), "home".to_owned()]
    );
    assert!(bucket_names(&t2).await.is_empty());
    g.stop().await;
}

#[tokio::test]
async fn writes_past_the_limit_get_slowdown_with_retry_after() {
    let g = with_write_limit(3).await;
    let c = &g.client;
    c.create_bucket().bucket("slow").send().await.unwrap();
    put(c, "slow", "1", b"1").await;
    put(c, "slow", "2", b"2").await;
    let e = c
        .put_object()
        .bucket("slow")
        .key("3")
        .body(ByteStream::from_static(b"3"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((code(&e).as_str(), status(&e)), ("SlowDown", 503));
    let retry_after: u64 = e
        .raw_response()
        .and_then(|r| r.headers().get("retry-after"))
        .expect("Retry-After header")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // reads have their own budget; the refused write stored nothing
    let e = c
        .head_object()
        .bucket("slow")
        .key("3")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    assert_eq!(g.server.authz.throttled_total(), 1);
    g.stop().await;
}

/// Writes a key into the legacy `access_keys` table the way the gateway did before the policy
/// store, on an index that has never seen the policy migrations.
async fn legacy_key(
    cfg: &gateway::config::Config,
    id: &str,
    secret: &str,
    principal: &str,
    role: Role,
) {
    std::fs::create_dir_all(&cfg.data_dir).unwrap();
    let index = gateway::index::Index::open(&cfg.database_url())
        .await
        .unwrap();
    let provider = keys::provider_from_config(&cfg.key_config()).await.unwrap();
    let ring = keys::Keyring::new(
        provider,
        std::sync::Arc::new(index.clone()),
        keys::CacheConfig::default(),
    );
    let sealed = ring
        .seal_blob(&gateway::auth::secret_context(id), secret.as_bytes())
        .await
        .unwrap();
    index
        .put_access_key(&gateway::index::AccessKeyRecord {
            access_key_id: id.to_owned(),
            sealed_secret: sealed,
            principal: principal.to_owned(),
            role: role.as_str().to_owned(),
            created_ms: 1,
            disabled: false,
        })
        .await
        .unwrap();
    index.close().await;
}

#[tokio::test]
async fn legacy_access_keys_keep_working_after_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    // an old data dir with a generated admin key (no fixed env) and a viewer key
    let cfg = gateway::config::Config {
        access_key: None,
        secret_key: None,
        ..config(dir.path())
    };
    let (admin_id, admin_sk) = ("VGLEGACYADMIN0000001", "legacy-admin-secret-0123456789");
    legacy_key(&cfg, admin_id, admin_sk, "admin", Role::SuperAdmin).await;
    legacy_key(
        &cfg,
        "VGLEGACYVIEWER000001",
        "legacy-viewer-secret-01234",
        "old-viewer",
        Role::Viewer,
    )
    .await;

    let server = gateway::server::start(cfg.clone(), common::admin_api)
        .await
        .unwrap();
    assert!(
        server.bootstrap.is_none(),
        "the imported admin key is the bootstrap key"
    );
    let endpoint = format!("http://{}", server.s3_addr);
    let admin = client_for(&endpoint, admin_id, admin_sk);
    admin.create_bucket().bucket("old").send().await.unwrap();
    put(&admin, "old", "k", b"still here").await;
    let viewer = client_for(
        &endpoint,
        "VGLEGACYVIEWER000001",
        "legacy-viewer-secret-01234",
    );
    let got = viewer
        .get_object()
        .bucket("old")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"still here"
    );
    let e = viewer
        .delete_object()
        .bucket("old")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // revoking an imported key sticks across restarts (the import does not resurrect it)
    server
        .authz
        .store()
        .revoke_access_key("VGLEGACYVIEWER000001")
        .await
        .unwrap();
    server.shutdown().await;

    let mut cfg2 = cfg.clone();
    cfg2.s3_addr = "127.0.0.1:0".into();
    let server = gateway::server::start(cfg2, common::admin_api)
        .await
        .unwrap();
    assert!(server.bootstrap.is_none());
    let endpoint = format!("http://{}", server.s3_addr);
    let admin = client_for(&endpoint, admin_id, admin_sk);
    admin
        .head_object()
        .bucket("old")
        .key("k")
        .send()
        .await
        .unwrap();
    let viewer = client_for(
        &endpoint,
        "VGLEGACYVIEWER000001",
        "legacy-viewer-secret-01234",
    );
    let e = viewer.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidAccessKeyId");
    server.shutdown().await;
}

#[tokio::test]
async fn fixed_env_key_from_an_old_index_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    // the old gateway stored the fixed VAULTGATE_ACCESS_KEY pair in its own table
    legacy_key(&cfg, AK, SK, "admin", Role::SuperAdmin).await;
    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .unwrap();
    assert!(server.bootstrap.is_none());
    let c = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    c.create_bucket().bucket("fixed").send().await.unwrap();
    assert_eq!(bucket_names(&c).await, vec!["fixed".to_owned()]);
    let info = server
        .authz
        .store()
        .get_access_key(AK)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.principal, "admin");
    server.shutdown().await;
}

/// A client that does not retry (so a SlowDown reaches the test).
fn no_retry(endpoint: &str, ak: &str, sk: &str) -> Client {
    Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
            .force_path_style(true)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    )
}

async fn try_put(c: &Client, key: &str) -> Result<(), String> {
    match c
        .put_object()
        .bucket("burst")
        .key(key)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let retry_after = e
                .raw_response()
                .and_then(|r| r.headers().get("retry-after"))
                .unwrap_or("-")
                .to_owned();
            Err(format!("{} {} {retry_after}", status(&e), code(&e)))
        }
    }
}

/// A gateway allowing `per_min` S3 writes a minute per principal, with a client that does not
/// retry.
async fn with_write_limit(per_min: u32) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let cfg = gateway::config::Config {
        rate_s3_writes_per_min: per_min,
        ..config(dir.path())
    };
    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .unwrap();
    let endpoint = format!("http://{}", server.s3_addr);
    TestGateway {
        client: no_retry(&endpoint, AK, SK),
        endpoint,
        server,
        dir,
    }
}

#[tokio::test]
async fn slowdown_ends_after_the_retry_after_it_announced() {
    // 30 writes a minute: a burst of 30, then one more every 2 s (wide enough that a loaded
    // machine's request latency cannot let a second token in before the check below)
    let g = with_write_limit(30).await;
    let c = &g.client;
    c.create_bucket().bucket("burst").send().await.unwrap();
    let (id, sk) = key_for(&g, "other-writer", "default", Role::Manager).await;
    let other = no_retry(&g.endpoint, &id, &sk);
    let mut accepted = 0;
    let refusal = loop {
        match try_put(c, &format!("k{accepted}")).await {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 200, "no SlowDown after {accepted} writes");
    };
    assert!(
        accepted >= 29,
        "the burst is the per-minute limit: {accepted}"
    );
    // one write comes back every 2 s, and the answer says so: 2 s, or 1 s when the burst
    // itself took more than a second (a loaded 2-core machine; Retry-After is rounded up)
    let wait = |r: &str| -> u64 {
        let n = r
            .strip_prefix("503 SlowDown ")
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        assert!((1..=2).contains(&n), "{r}");
        n
    };
    let announced = wait(&refusal);
    let early = try_put(c, "early").await.unwrap_err();
    wait(&early);
    // another principal has its own budget
    assert_eq!(try_put(&other, "other").await, Ok(()));
    tokio::time::sleep(std::time::Duration::from_millis(announced * 1000 + 100)).await;
    assert_eq!(
        try_put(c, "after").await,
        Ok(()),
        "allowed again after Retry-After"
    );
    // one write per 2 s, not a new burst
    let after2 = try_put(c, "after2").await.unwrap_err();
    wait(&after2);
    // the refused writes stored nothing
    let keys: Vec<String> = c
        .list_objects_v2()
        .bucket("burst")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert!(
        !keys.iter().any(|k| k == "early" || k == "after2"),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k == "after"));
    g.stop().await;
}

#[tokio::test]
async fn a_delete_objects_batch_costs_one_write_token_however_many_keys() {
    // 30 writes a minute: a burst of 30, then one more every 2 s
    let g = with_write_limit(30).await;
    let c = &g.client;
    c.create_bucket().bucket("burst").send().await.unwrap();
    for i in 0..5 {
        try_put(c, &format!("k{i}")).await.unwrap();
    }
    // 200 keys (5 present, 195 absent) in one request, more than the whole per-minute budget
    let ids: Vec<_> = (0..200)
        .map(|i| {
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key(format!("k{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let out = c
        .delete_objects()
        .bucket("burst")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(ids))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    assert_eq!(out.deleted().len(), 200);
    let left = c.list_objects_v2().bucket("burst").send().await.unwrap();
    assert_eq!(left.key_count(), Some(0));
    // 7 tokens spent (bucket, 5 puts, the batch): the rest of the burst is still there
    let mut accepted = 0;
    while try_put(c, &format!("after{accepted}")).await.is_ok() {
        accepted += 1;
        assert!(accepted < 100, "no SlowDown after {accepted} writes");
    }
    assert!(
        accepted >= 20,
        "the batch used more than one token: {accepted} writes left"
    );
    assert_eq!(g.server.authz.throttled_total(), 1);
    g.stop().await;
}
