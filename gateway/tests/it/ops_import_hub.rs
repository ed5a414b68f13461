//! `vaultgate import-hub` (gateway::ops::import_hub): hub-format blobs written here with AES-256-GCM
//! (`[nonce 12][len 4 BE][ct ‖ tag]` records, empty AAD) are imported under their relative paths,
//! served by a real gateway with the original bytes and an MD5 ETag; tampered, truncated and
//! foreign-key blobs are skipped by name and leave no object, index row or backend ciphertext.

use crate::common;

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use futures::TryStreamExt;
use gateway::ops::OpsContext;
use gateway::ops::import_hub::{ImportOptions, hub_key_from_file, import_hub};
use md5::Digest;

const HUB_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn hub_seal(key_hex: &str, chunks: &[&[u8]]) -> Vec<u8> {
    let key_bytes = hex::decode(key_hex).expect("hex");
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("key"));
    let mut out = Vec::new();
    for c in chunks {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("random");
        let mut buf = c.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .expect("seal");
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        out.extend_from_slice(&buf);
    }
    out
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).expect("random");
    v
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_good_blobs_and_names_every_bad_one() {
    let root = tempfile::tempdir().expect("tempdir");
    let hub = root.path().join("hub");
    let (a, b, c) = (random(65_536), random(40_000), random(1));
    let report_pdf = [a.clone(), b.clone(), c.clone()].concat();
    let notes = b"plain notes".to_vec();
    write(&hub, "report.pdf", &hub_seal(HUB_KEY, &[&a, &b, &c]));
    write(&hub, "sub/dir/notes.txt", &hub_seal(HUB_KEY, &[&notes]));
    write(&hub, "empty.bin", &[]);
    let mut tampered = hub_seal(HUB_KEY, &[&random(5000), &random(5000)]);
    let n = tampered.len();
    tampered[n - 100] ^= 0x40; // inside the second record's ciphertext
    write(&hub, "tampered.bin", &tampered);
    let whole = hub_seal(HUB_KEY, &[&random(3000)]);
    write(&hub, "truncated.bin", &whole[..whole.len() - 5]);
    write(
        &hub,
        "wrongkey.bin",
        &hub_seal(&"ab".repeat(32), &[&random(100)]),
    );
    let key_file = root.path().join("blob.key");
    std::fs::write(&key_file, format!("{HUB_KEY}\n")).expect("key file");

    let cfg = common::config(root.path());
    let ctx = OpsContext::open(&cfg).await.expect("open");
    let key = hub_key_from_file(&key_file).expect("key");
    let opts = ImportOptions {
        bucket: "imported".into(),
        owner: "admin".into(),
        quiet: true,
    };
    let report = import_hub(&ctx, &key, &hub, &opts).await.expect("import");
    assert_eq!(report.total, 6);
    assert_eq!(
        report.imported,
        vec!["empty.bin", "report.pdf", "sub/dir/notes.txt"]
    );
    let failed: Vec<&str> = report.failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        failed,
        vec!["tampered.bin", "truncated.bin", "wrongkey.bin"]
    );
    assert!(report.failed[0].1.contains("does not verify"), "{report:?}");
    assert!(report.failed[1].1.contains("truncated"), "{report:?}");
    assert!(
        report
            .failed
            .iter()
            .all(|(_, why)| why.contains("hub blob rejected") && !why.contains("request body")),
        "{report:?}"
    );
    let summary = report.summary("imported");
    assert!(summary.contains("skipped: tampered.bin"), "{summary}");
    // nothing half-imported: exactly one backend object per imported blob
    let stored: Vec<_> = ctx
        .backend
        .list()
        .await
        .expect("list")
        .try_collect()
        .await
        .expect("list");
    assert_eq!(stored.len(), 3, "{stored:?}");
    ctx.close().await;

    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .expect("start");
    let client = common::client_for(
        &format!("http://{}", server.s3_addr),
        common::AK,
        common::SK,
    );
    for (k, want) in [
        ("report.pdf", &report_pdf),
        ("sub/dir/notes.txt", &notes),
        ("empty.bin", &Vec::new()),
    ] {
        let got = client
            .get_object()
            .bucket("imported")
            .key(k)
            .send()
            .await
            .expect("get");
        let etag = got.e_tag().expect("etag").to_owned();
        let body = got.body.collect().await.expect("body").into_bytes();
        assert_eq!(&body[..], &want[..], "{k}");
        assert_eq!(
            etag,
            format!("\"{}\"", hex::encode(md5::Md5::digest(want))),
            "{k}"
        );
    }
    for k in ["tampered.bin", "truncated.bin", "wrongkey.bin"] {
        let err = client
            .head_object()
            .bucket("imported")
            .key(k)
            .send()
            .await
            .expect_err("not imported");
        assert_eq!(common::status(&err), 404, "{k}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_file_and_missing_directory_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let bad = root.path().join("bad.key");
    std::fs::write(&bad, "not hex").expect("write");
    let err = hub_key_from_file(&bad).expect_err("bad key");
    assert!(matches!(err, gateway::Error::Config(_)), "{err}");
    let err = hub_key_from_file(&root.path().join("missing.key")).expect_err("missing");
    assert!(matches!(err, gateway::Error::Config(_)), "{err}");

    let ctx = OpsContext::open(&common::config(root.path()))
        .await
        .expect("open");
    let key = keys::HubKey::from_hex(HUB_KEY).expect("key");
    let opts = ImportOptions {
        bucket: "b".into(),
        owner: "admin".into(),
        quiet: true,
    };
    let err = import_hub(&ctx, &key, &root.path().join("nope"), &opts)
        .await
        .expect_err("missing dir");
    assert!(err.to_string().contains("cannot read directory"), "{err}");
    assert!(ctx.index.get_bucket("b").await.expect("get").is_none());
    ctx.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_into_a_tenant_creates_its_bucket_there_and_keeps_other_tenants_buckets() {
    let root = tempfile::tempdir().expect("tempdir");
    let hub = root.path().join("hub");
    write(&hub, "a.txt", &hub_seal(HUB_KEY, &[b"tenant data"]));
    let cfg = common::config(root.path());
    let ctx = OpsContext::open(&cfg).await.expect("open");
    let key = keys::HubKey::from_hex(HUB_KEY).expect("key");
    let opts = |bucket: &str| ImportOptions {
        bucket: bucket.into(),
        owner: "admin".into(),
        quiet: true,
    };
    let into = gateway::ops::import_hub::import_hub_into;
    let r = into(&ctx, &key, &hub, &opts("acme-hub"), Some("acme"))
        .await
        .expect("import");
    assert_eq!(r.imported, vec!["a.txt"]);
    // without a tenant: a new bucket goes to the owner's tenant (default here)
    into(&ctx, &key, &hub, &opts("plain-hub"), None)
        .await
        .expect("import");
    let policy = gateway::ops::policy_store(&ctx.index, &ctx.keyring)
        .await
        .unwrap();
    assert_eq!(policy.bucket_tenant("acme-hub").await.unwrap(), "acme");
    assert_eq!(policy.bucket_tenant("plain-hub").await.unwrap(), "default");
    // importing into acme's bucket for another tenant is refused and changes nothing
    let err = into(&ctx, &key, &hub, &opts("acme-hub"), Some("globex"))
        .await
        .expect_err("foreign bucket");
    assert!(err.to_string().contains("belongs to tenant acme"), "{err}");
    assert_eq!(policy.bucket_tenant("acme-hub").await.unwrap(), "acme");
    // a second import into the same tenant's bucket is fine; without a tenant it keeps acme
    into(&ctx, &key, &hub, &opts("acme-hub"), Some("acme"))
        .await
        .expect("same tenant");
    into(&ctx, &key, &hub, &opts("acme-hub"), None)
        .await
        .expect("no tenant named");
    assert_eq!(policy.bucket_tenant("acme-hub").await.unwrap(), "acme");
    ctx.close().await;

    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .expect("start");
    let endpoint = format!("http://{}", server.s3_addr);
    let admin = common::client_for(&endpoint, common::AK, common::SK);
    let names: Vec<String> = admin
        .list_buckets()
        .send()
        .await
        .expect("list")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert_eq!(names, vec!["plain-hub".to_owned()]);
    let store = server.authz.store();
    store
        .create_principal("acme-root", "user", "acme", Some(policy::Role::Viewer))
        .await
        .unwrap();
    let k = store.create_access_key("acme-root", None).await.unwrap();
    let acme = common::client_for(&endpoint, &k.access_key_id, k.secret.expose());
    let got = acme
        .get_object()
        .bucket("acme-hub")
        .key("a.txt")
        .send()
        .await
        .expect("acme reads its bucket");
    assert_eq!(
        &got.body.collect().await.expect("body").into_bytes()[..],
        b"tenant data"
    );
    server.shutdown().await;
}
