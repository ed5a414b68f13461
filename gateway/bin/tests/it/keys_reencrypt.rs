//! `reencrypt` end to end: every version of a bucket (multipart objects, delete markers, locked
//! and tagged versions) re-sealed under a new data key version by the admin API's background
//! job while a client overwrites and reads the same bucket (no failed request; the overwrites
//! win), the version ids, ETags, metadata, tags and locks unchanged, every object byte-exact
//! before and after a restart, and the old KEK retired without `--accept-header-copies`;
//! SSE-C objects skipped and counted; the compare-and-swap commit that lets an overwrite win; who
//! may start it (a viewer, a manager, another tenant's superadmin refused; a quorum rule on
//! `admin:ReencryptBucket`); bad requests; and the offline `vaultgate keys reencrypt` killed
//! mid-run and resumed under the same data key version.

use crate::common;
use crate::keys_common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectLockLegalHoldStatus, ObjectLockMode,
};
use common::*;
use keys_common::*;
use serde_json::{Value, json};

fn in_secs(s: i64) -> DateTime {
    DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + s,
    )
}

async fn get_bytes(c: &Client, b: &str, k: &str, v: Option<&str>) -> Vec<u8> {
    c.get_object()
        .bucket(b)
        .key(k)
        .set_version_id(v.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {b}/{k} {v:?}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

async fn put(c: &Client, b: &str, k: &str, data: Vec<u8>) -> Option<String> {
    c.put_object()
        .bucket(b)
        .key(k)
        .content_type("application/x-test")
        .metadata("origin", "reencrypt-test")
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {b}/{k}: {e:?}"))
        .version_id()
        .map(str::to_owned)
}

/// Everything a client sees of one version (but its bytes): ETag, size, type, metadata, lock,
/// tags, last-modified.
async fn describe(c: &Client, b: &str, k: &str, v: Option<&str>) -> String {
    let h = c
        .head_object()
        .bucket(b)
        .key(k)
        .set_version_id(v.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {b}/{k} {v:?}: {e:?}"));
    let tags = c
        .get_object_tagging()
        .bucket(b)
        .key(k)
        .set_version_id(v.map(str::to_owned))
        .send()
        .await
        .unwrap();
    let tags: Vec<String> = tags
        .tag_set()
        .iter()
        .map(|t| format!("{}={}", t.key(), t.value()))
        .collect();
    format!(
        "etag={:?} len={:?} type={:?} meta={:?} mode={:?} until={:?} hold={:?} tags={tags:?} modified={:?} version={:?}",
        h.e_tag(),
        h.content_length(),
        h.content_type(),
        h.metadata(),
        h.object_lock_mode(),
        h.object_lock_retain_until_date(),
        h.object_lock_legal_hold_status(),
        h.last_modified(),
        h.version_id()
    )
}

/// Every version (delete markers included) of a bucket: (key, version id, is delete marker).
async fn versions(c: &Client, b: &str) -> Vec<(String, String, bool)> {
    let r = c.list_object_versions().bucket(b).send().await.unwrap();
    let mut out: Vec<(String, String, bool)> = r
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap().to_owned(),
                v.version_id().unwrap_or("null").to_owned(),
                false,
            )
        })
        .chain(r.delete_markers().iter().map(|m| {
            (
                m.key().unwrap().to_owned(),
                m.version_id().unwrap_or("null").to_owned(),
                true,
            )
        }))
        .collect();
    out.sort();
    out
}

async fn multipart(c: &Client, b: &str, k: &str, parts: &[Vec<u8>]) {
    let id = c
        .create_multipart_upload()
        .bucket(b)
        .key(k)
        .content_type("video/mp4")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let r = c
            .upload_part()
            .bucket(b)
            .key(k)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket(b)
        .key(k)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// Polls the job's state until it is no longer running.
async fn wait_done(admin: std::net::SocketAddr, tok: &str, bucket: &str) -> Value {
    for _ in 0..600 {
        let (st, s) = call(
            admin,
            tok,
            "GET",
            &format!("/admin/v1/kek/reencrypt/{bucket}"),
            None,
        )
        .await;
        assert_eq!(st, 200, "{s}");
        if s["running"] == false {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the re-encryption of {bucket} did not end");
}

fn data_key(s: &Value, bucket: &str, version: u64) -> Value {
    s["data_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["bucket"] == bucket && k["version"] == version)
        .cloned()
        .unwrap_or_else(|| panic!("no data key {bucket} v{version} in {s}"))
}

type Snapshot = BTreeMap<(String, String, String), (String, String)>;

/// Bytes (SHA-256) and description of every version of `buckets`.
async fn snapshot(c: &Client, buckets: &[&str]) -> Snapshot {
    let mut out = BTreeMap::new();
    for b in buckets {
        for (k, v, marker) in versions(c, b).await {
            let vid = (v != "null").then_some(v.as_str());
            let entry = if marker {
                ("delete marker".to_owned(), String::new())
            } else {
                (
                    sha256_hex(&get_bytes(c, b, &k, vid).await),
                    describe(c, b, &k, vid).await,
                )
            };
            out.insert((b.to_string(), k, v), entry);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn reencrypt_online_while_a_client_overwrites_then_the_old_kek_retires() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_key_file(dir.path()).await;
    let admin = server.admin_addr;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    let tok = token_for(admin, AK, SK).await;

    // "live": plain objects, a tagged one, a multipart one
    client.create_bucket().bucket("live").send().await.unwrap();
    for i in 0..30 {
        put(&client, "live", &format!("o{i}"), body(i)).await;
    }
    put(&client, "live", "tagged", body(99)).await;
    client
        .put_object_tagging()
        .bucket("live")
        .key("tagged")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("team")
                        .value("blue")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mp_parts = vec![data(5 << 20, 7), data(12_345, 8)];
    multipart(&client, "live", "mp", &mp_parts).await;

    // "ver": object lock (so versioning), versions, a legal hold, a retention, a delete marker
    client
        .create_bucket()
        .bucket("ver")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let mut kept = Vec::new();
    for i in 0..3 {
        kept.push(put(&client, "ver", "k", body(100 + i)).await.unwrap());
    }
    client
        .put_object_legal_hold()
        .bucket("ver")
        .key("k")
        .version_id(&kept[0])
        .legal_hold(
            aws_sdk_s3::types::ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .unwrap();
    client
        .put_object()
        .bucket("ver")
        .key("retained")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_secs(3600))
        .body(ByteStream::from(body(200)))
        .send()
        .await
        .unwrap();
    put(&client, "ver", "gone", body(201)).await;
    client
        .delete_object()
        .bucket("ver")
        .key("gone")
        .send()
        .await
        .unwrap();
    multipart(&client, "ver", "mpv", &[data(5 << 20, 9), data(10, 10)]).await;

    let before = snapshot(&client, &["ver"]).await;
    let live_before = snapshot(&client, &["live"]).await;

    // a new KEK: data keys re-wrapped, stream headers still carry the old one
    let (_, s) = call(admin, &tok, "GET", "/admin/v1/kek", None).await;
    let old = s["keks"][0]["kek_id"].as_str().unwrap().to_owned();
    let (st, r) = call(admin, &tok, "POST", "/admin/v1/kek/rotate", None).await;
    assert_eq!(st, 200, "{r}");
    assert_ne!(r["current_kek_id"].as_str().unwrap(), old);
    let (st, e) = call(
        admin,
        &tok,
        "POST",
        &format!("/admin/v1/kek/{old}/retire"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 409, "{e}");

    // a client overwriting o0..o9 and reading o10..o29 the whole time
    let stop = Arc::new(AtomicBool::new(false));
    let last: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let writer = {
        let (c, stop, last) = (client.clone(), stop.clone(), last.clone());
        tokio::spawn(async move {
            let mut i = 1000u64;
            while !stop.load(Ordering::Relaxed) || i < 1040 {
                let k = format!("o{}", i % 10);
                put(&c, "live", &k, body(i)).await;
                last.lock().unwrap().insert(k, i);
                let r = 10 + i % 20;
                let got = get_bytes(&c, "live", &format!("o{r}"), None).await;
                assert_eq!(sha256_hex(&got), sha256_hex(&body(r)), "o{r}");
                i += 1;
            }
            i
        })
    };

    let (st, r) = call(
        admin,
        &tok,
        "POST",
        "/admin/v1/kek/reencrypt",
        Some(json!({"bucket": "live", "rate_objects": 200})),
    )
    .await;
    assert_eq!(st, 202, "{r}");
    assert_eq!(r["target_version"], 2, "{r}");
    assert_eq!(r["running"], true, "{r}");
    let (st, r) = call(
        admin,
        &tok,
        "POST",
        "/admin/v1/kek/reencrypt",
        Some(json!({"bucket": "ver"})),
    )
    .await;
    assert_eq!(st, 202, "{r}");
    let live = wait_done(admin, &tok, "live").await;
    let ver = wait_done(admin, &tok, "ver").await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("no failed request");
    assert!(written >= 1040);

    for s in [&live, &ver] {
        assert!(s["finished_ms"].is_i64(), "{s}");
        assert_eq!(s["failed"], 0, "{s}");
        assert_eq!(s["remaining"], 0, "{s}");
        assert_eq!(s["skipped_sse_c"], 0, "{s}");
    }
    // every version of "ver": 3 of k, retained, gone + its marker, mpv
    assert_eq!(ver["resealed"], 7, "{ver}");
    // "live": 32 versions at the start; an overwrite may have replaced some before their turn
    let live_n = live["resealed"].as_u64().unwrap() + live["raced"].as_u64().unwrap();
    assert!(
        live_n <= 32 && live["resealed"].as_u64().unwrap() >= 22,
        "{live}"
    );

    // nothing depends on data key version 1 or on the old KEK any more
    let (_, s) = call(admin, &tok, "GET", "/admin/v1/kek", None).await;
    for b in ["live", "ver"] {
        assert_eq!(data_key(&s, b, 1)["objects"], 0, "{s}");
        assert!(data_key(&s, b, 2)["objects"].as_u64().unwrap() > 0, "{s}");
    }
    let old_kek = s["keks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kek_id"] == old.as_str())
        .unwrap();
    assert_eq!(old_kek["stream_headers"], 0, "{s}");
    let (st, r) = call(
        admin,
        &tok,
        "POST",
        &format!("/admin/v1/kek/{old}/retire"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 200, "retire without accept_header_copies: {r}");
    assert_eq!(r["stream_headers"], 0);

    // same versions, bytes, ETags, metadata, tags and locks; the overwrites won
    assert_eq!(snapshot(&client, &["ver"]).await, before);
    let live_after = snapshot(&client, &["live"]).await;
    for (k, v) in &live_before {
        if !k.1.starts_with('o') || k.1[1..].parse::<u64>().unwrap() >= 10 {
            assert_eq!(live_after.get(k), Some(v), "{k:?}");
        }
    }
    let last = last.lock().unwrap().clone();
    for (k, i) in &last {
        let got = get_bytes(&client, "live", k, None).await;
        assert_eq!(
            sha256_hex(&got),
            sha256_hex(&body(*i)),
            "{k}: the overwrite won"
        );
    }
    assert_eq!(
        sha256_hex(&get_bytes(&client, "live", "mp", None).await),
        sha256_hex(&mp_parts.concat())
    );
    // one event for each start and each finish
    assert_eq!(audit_count(admin, &tok, "admin.ReencryptBucket").await, 2);
    assert_eq!(
        audit_count(admin, &tok, "admin.ReencryptBucketFinished").await,
        2
    );
    // a second run starts a new data key version
    let (st, r) = call(
        admin,
        &tok,
        "POST",
        "/admin/v1/kek/reencrypt",
        Some(json!({"bucket": "ver"})),
    )
    .await;
    assert_eq!(st, 202, "{r}");
    assert_eq!(r["target_version"], 3, "{r}");
    let ver3 = wait_done(admin, &tok, "ver").await;
    assert_eq!(ver3["resealed"], 7, "{ver3}");
    server.shutdown().await;

    // the old KEK is gone from the key file; a restart serves every version byte-exact
    let kf: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("data/master.key")).unwrap())
            .unwrap();
    assert_eq!(kf["keys"].as_array().unwrap().len(), 1);
    let server = start_key_file(dir.path()).await;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    assert_eq!(snapshot(&client, &["ver"]).await, before);
    for i in 10..30 {
        let got = get_bytes(&client, "live", &format!("o{i}"), None).await;
        assert_eq!(sha256_hex(&got), sha256_hex(&body(i)));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_c_objects_are_skipped_and_counted() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let server = start_key_file(dir.path()).await;
    let admin = server.admin_addr;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    let tok = token_for(admin, AK, SK).await;
    client.create_bucket().bucket("cust").send().await.unwrap();
    let raw_key = [7u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw_key);
    let md5 = {
        use md5::Digest;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(raw_key))
    };
    client
        .put_object()
        .bucket("cust")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&b64)
        .sse_customer_key_md5(&md5)
        .body(ByteStream::from(body(1)))
        .send()
        .await
        .unwrap();
    put(&client, "cust", "plain", body(2)).await;

    let (st, r) = call(
        admin,
        &tok,
        "POST",
        "/admin/v1/kek/reencrypt",
        Some(json!({"bucket": "cust"})),
    )
    .await;
    assert_eq!(st, 202, "{r}");
    let s = wait_done(admin, &tok, "cust").await;
    assert_eq!(s["resealed"], 1, "{s}");
    assert_eq!(s["skipped_sse_c"], 1, "{s}");
    assert_eq!(s["remaining"], 1, "the SSE-C object stays: {s}");
    assert!(s["finished_ms"].is_i64(), "{s}");
    let (_, k) = call(admin, &tok, "GET", "/admin/v1/kek", None).await;
    assert_eq!(data_key(&k, "cust", 1)["objects"], 1, "{k}");
    assert_eq!(data_key(&k, "cust", 2)["objects"], 1, "{k}");
    let got = client
        .get_object()
        .bucket("cust")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&b64)
        .sse_customer_key_md5(&md5)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(got.as_ref(), body(1).as_slice());
    assert_eq!(get_bytes(&client, "cust", "plain", None).await, body(2));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reseal_whose_version_changed_meanwhile_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_key_file(dir.path()).await;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    client.create_bucket().bucket("race").send().await.unwrap();
    put(&client, "race", "k", body(1)).await;
    let index = server.store.index();
    let stale = index.get_version("race", "k", None).await.unwrap().unwrap();
    let expected: Vec<String> = stale.backend_ids().map(str::to_owned).collect();
    // an overwrite lands between the read and the commit of a re-seal
    put(&client, "race", "k", body(2)).await;
    let mut resealed = stale.clone();
    resealed.data_key_id = "00".repeat(16);
    resealed.key_version = 9;
    assert_eq!(
        index.reseal_version(&expected, &resealed).await.unwrap(),
        None
    );
    let now = index.get_version("race", "k", None).await.unwrap().unwrap();
    assert_ne!(now.data_key_id, resealed.data_key_id);
    assert_eq!(get_bytes(&client, "race", "k", None).await, body(2));
    // a deleted version: dropped too
    let current: Vec<String> = now.backend_ids().map(str::to_owned).collect();
    client
        .delete_object()
        .bucket("race")
        .key("k")
        .send()
        .await
        .unwrap();
    let mut resealed = now.clone();
    resealed.key_version = 9;
    assert_eq!(
        index.reseal_version(&current, &resealed).await.unwrap(),
        None
    );
    assert!(
        index
            .get_version("race", "k", None)
            .await
            .unwrap()
            .is_none()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn who_may_reencrypt_and_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_key_file(dir.path()).await;
    let admin = server.admin_addr;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    client.create_bucket().bucket("slow").send().await.unwrap();
    for i in 0..4 {
        put(&client, "slow", &format!("k{i}"), body(i)).await;
    }
    let root = token_for(admin, AK, SK).await;
    let viewer = principal_token(admin, &root, "rviewer", "viewer", None).await;
    let manager = principal_token(admin, &root, "rmanager", "manager", None).await;
    let other = principal_token(admin, &root, "rsuper", "superadmin", Some("other")).await;
    for tok in [&viewer, &manager, &other] {
        let (st, e) = call(
            admin,
            tok,
            "POST",
            "/admin/v1/kek/reencrypt",
            Some(json!({"bucket": "slow"})),
        )
        .await;
        assert_eq!(st, 403, "{e}");
        let (st, e) = call(admin, tok, "GET", "/admin/v1/kek/reencrypt/slow", None).await;
        assert_eq!(st, 403, "{e}");
    }
    let (st, _) = call(
        admin,
        "not-a-token",
        "POST",
        "/admin/v1/kek/reencrypt",
        Some(json!({"bucket": "slow"})),
    )
    .await;
    assert_eq!(st, 401);
    for bad in [
        json!({"bucket": "slow", "rate": -1}),
        json!({"bucket": "slow", "rate_objects": 0}),
        json!({"bucket": "slow", "bogus": true}),
        json!({}),
    ] {
        let (st, e) = call(
            admin,
            &root,
            "POST",
            "/admin/v1/kek/reencrypt",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(st, 400, "{bad}: {e}");
    }
    let (st, e) = call(
        admin,
        &root,
        "POST",
        "/admin/v1/kek/reencrypt",
        Some(json!({"bucket": "nosuch"})),
    )
    .await;
    assert_eq!(st, 404, "{e}");
    let (st, e) = call(admin, &root, "GET", "/admin/v1/kek/reencrypt/slow", None).await;
    assert_eq!(st, 404, "never started: {e}");
    // nothing started by the refusals: one data key version
    let (_, s) = call(admin, &root, "GET", "/admin/v1/kek", None).await;
    let versions = s["data_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["bucket"] == "slow")
        .count();
    assert_eq!(versions, 1, "{s}");
    assert_eq!(
        audit_count(admin, &root, "admin.ReencryptBucketFinished").await,
        0
    );

    // throttled to 2 versions a second: a second start while it runs is refused
    let (st, r) = call(
        admin,
        &root,
        "POST",
        "/admin/v1/kek/reencrypt",
        Some(json!({"bucket": "slow", "rate_objects": 2})),
    )
    .await;
    assert_eq!(st, 202, "{r}");
    let started = std::time::Instant::now();
    let (st, e) = call(
        admin,
        &root,
        "POST",
        "/admin/v1/kek/reencrypt",
        Some(json!({"bucket": "slow"})),
    )
    .await;
    assert_eq!(st, 409, "{e}");
    let s = wait_done(admin, &root, "slow").await;
    assert_eq!(s["resealed"], 4, "{s}");
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "throttled: {:?}",
        started.elapsed()
    );

    // a quorum rule on admin:ReencryptBucket: a start needs an approval
    let (st, v) = call(
        admin,
        &root,
        "PUT",
        "/admin/v1/quorum/rules/reencrypt",
        Some(json!({"action": "admin:ReencryptBucket", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 3600})),
    )
    .await;
    assert!(st == 200 || st == 201, "{st} {v}");
    let (st, e) = call(
        admin,
        &root,
        "POST",
        "/admin/v1/kek/reencrypt",
        Some(json!({"bucket": "slow"})),
    )
    .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"]["code"], "ApprovalRequired", "{e}");
    let (_, s) = call(admin, &root, "GET", "/admin/v1/kek", None).await;
    let versions = s["data_keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["bucket"] == "slow")
        .count();
    assert_eq!(versions, 2, "no third version: {s}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_reencrypt_killed_mid_run_resumes_under_the_same_version() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_key_file(dir.path()).await;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    client.create_bucket().bucket("offl").send().await.unwrap();
    for i in 0..40 {
        put(&client, "offl", &format!("k{i:02}"), body(i)).await;
    }
    server.shutdown().await;
    let stored_before = stored_objects(&data);
    assert!(stored_before >= 40);

    let out = vaultgate(&data)
        .args(["keys", "reencrypt", "--bucket", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "vaultgate: no bucket nosuch"
    );
    let out = vaultgate(&data)
        .args(["keys", "reencrypt", "--bucket", "offl", "--rate", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--rate must be a positive number"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 10 versions a second, killed after about a second and a half
    let mut child = vaultgate(&data)
        .args([
            "keys",
            "reencrypt",
            "--bucket",
            "offl",
            "--rate-objects",
            "10",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let status = |data: &std::path::Path| {
        let out = vaultgate(data)
            .args(["keys", "status", "--format", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let s = status(&data);
    let moved = data_key(&s, "offl", 2)["objects"].as_u64().unwrap();
    assert!(
        moved > 0 && moved < 40,
        "killed mid-run: {moved} re-sealed, {s}"
    );
    assert_eq!(
        data_key(&s, "offl", 1)["objects"].as_u64().unwrap() + moved,
        40
    );

    let out = vaultgate(&data)
        .args(["keys", "reencrypt", "--bucket", "offl"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout} {stderr}");
    assert!(
        stdout.starts_with("reencrypt offl: data key version 2, ") && stdout.contains(", finished"),
        "resumed under version 2: {stdout}"
    );
    assert!(stdout.contains(", 0 failed, 0 remaining"), "{stdout}");
    // stderr is not a terminal: no progress bar drawn
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
    let s = status(&data);
    assert_eq!(data_key(&s, "offl", 1)["objects"], 0, "{s}");
    assert_eq!(data_key(&s, "offl", 2)["objects"], 40, "{s}");
    assert!(
        s["data_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["bucket"] != "offl" || k["version"].as_u64().unwrap() <= 2),
        "no third version: {s}"
    );

    // the gateway serves every object byte-exact; the old ciphertext is gone
    let server = start_key_file(dir.path()).await;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    for i in 0..40 {
        let got = get_bytes(&client, "offl", &format!("k{i:02}"), None).await;
        assert_eq!(sha256_hex(&got), sha256_hex(&body(i)), "k{i:02}");
    }
    let tok = token_for(server.admin_addr, AK, SK).await;
    // starts: the refused bucket, the killed run, the resumed one (a bad flag is refused
    // before anything is opened); one finish: the killed run never got there
    assert_eq!(
        audit_count(server.admin_addr, &tok, "keys.ReencryptBucket").await,
        3
    );
    assert_eq!(
        audit_count(server.admin_addr, &tok, "keys.ReencryptBucketFinished").await,
        1
    );
    // the old ciphertext was collected, and the stream the killed run had not committed swept:
    // at once on SQLite; on PostgreSQL the sweep spares unreferenced blobs younger than
    // ORPHAN_GRACE (another instance may be about to commit them), so the one stream the kill
    // may have left uncommitted stays until then
    let on_postgres = config(dir.path())
        .database_url
        .is_some_and(|u| u.starts_with("postgres"));
    let spared = usize::from(on_postgres);
    let mut now = 0;
    for _ in 0..50 {
        now = stored_objects(&data);
        if now == stored_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (stored_before..=stored_before + spared).contains(&now),
        "{now} stored, {stored_before} before (postgres: {on_postgres})"
    );
    server.shutdown().await;
}

/// Committed backend objects of a local data dir (files under `objects`, its temp dir aside).
fn stored_objects(data: &std::path::Path) -> usize {
    let root = data.join("objects");
    files_under(&root)
        .into_iter()
        .filter(|p| {
            p.strip_prefix(&root)
                .map(|r| !r.starts_with(".tmp"))
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_progress_without_a_terminal_is_plain_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_key_file(dir.path()).await;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    client.create_bucket().bucket("prog").send().await.unwrap();
    for i in 0..14 {
        put(&client, "prog", &format!("k{i:02}"), body(i)).await;
    }
    server.shutdown().await;
    // 2 versions a second: about 7 seconds, so at least one progress line (every 5 s)
    let out = vaultgate(&data)
        .args([
            "keys",
            "reencrypt",
            "--bucket",
            "prog",
            "--rate-objects",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "no bar: {stderr:?}"
    );
    let lines: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "vaultgate::progress")
        .collect();
    assert!(!lines.is_empty(), "a progress line: {stderr}");
    let msg = lines[0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("reencrypt: ")
            && msg.contains(" of ")
            && msg.contains("/s")
            && msg.contains("ETA"),
        "{msg}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(", finished"));
}
