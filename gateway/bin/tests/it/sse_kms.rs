//! SSE-KMS per request, end to end on the real `vaultgate serve` binary over moto KMS: objects
//! of one bucket under two KMS keys named by the request (key id, alias, ARN) and under the
//! gateway's own key (an alias), single-part, multipart and copied between keys; HEAD reports
//! each key's ARN; an unknown key is a 400 `KMS.NotFoundException`. Offline, `keys status`
//! shows one bucket data key per KMS key (not one per object), each wrapped by its own KMS key;
//! `keys rewrap` after the gateway's alias moved to a new key moves only the gateway key's data
//! keys (the others stay under their KMS key); `keys reencrypt` re-seals every object under a
//! new data key version of the KMS key it was under; a restart reads every byte back with the
//! same key reported. Needs VAULTGATE_TEST_KMS_ENDPOINT (moto), else skipped (unless
//! VAULTGATE_REQUIRE_SERVICES=1); on PostgreSQL when VAULTGATE_TEST_DATABASE_URL is set.

use crate::common;
use crate::keys_common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use serde_json::Value;

fn kms_endpoint() -> Option<String> {
    match std::env::var("VAULTGATE_TEST_KMS_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var("VAULTGATE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "VAULTGATE_REQUIRE_SERVICES=1 but VAULTGATE_TEST_KMS_ENDPOINT is not set"
            );
            eprintln!("SKIPPED sse_kms: VAULTGATE_TEST_KMS_ENDPOINT not set");
            None
        }
    }
}

fn kms_client(ep: &str) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .endpoint_url(ep)
            .build(),
    )
}

/// A new KMS key: (key id, ARN).
async fn new_key(kms: &aws_sdk_kms::Client) -> (String, String) {
    let m = kms
        .create_key()
        .description("vaultgate sse_kms test")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    (m.key_id, m.arn.unwrap())
}

/// The `vaultgate` binary on `data` (and the test's database) over the KMS at `url`.
fn vaultgate_kms(data: &Path, url: &str) -> Command {
    let mut cmd = keys_common::vaultgate(data);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("VAULTGATE_KMS", url)
        .env("VAULTGATE_KMS_ACCESS_KEY", "testing")
        .env("VAULTGATE_KMS_SECRET_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

struct Running {
    child: Child,
    s3: SocketAddr,
    admin: SocketAddr,
}

impl Running {
    fn client(&self) -> aws_sdk_s3::Client {
        common::client_for(&format!("http://{}", self.s3), common::AK, common::SK)
    }
    async fn stop(self) {
        common::stop_serve(self.child).await;
    }
}

async fn serve(data: &Path, url: &str) -> Running {
    let mut cmd = vaultgate_kms(data, url);
    cmd.arg("serve")
        .env("VAULTGATE_S3_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ADMIN_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ACCESS_KEY", common::AK)
        .env("VAULTGATE_SECRET_KEY", common::SK);
    let (child, s3, admin) = common::spawn_serve(cmd).await;
    Running { child, s3, admin }
}

fn keys_json(data: &Path, url: &str, args: &[&str]) -> Value {
    let out = vaultgate_kms(data, url)
        .arg("keys")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys {args:?}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The data keys of `bucket` in `keys status`: KMS key → [(version, kek id, objects)].
fn data_keys(status: &Value, bucket: &str) -> BTreeMap<String, Vec<(u64, String, u64)>> {
    let mut out: BTreeMap<String, Vec<(u64, String, u64)>> = BTreeMap::new();
    for k in status["data_keys"].as_array().unwrap() {
        if k["bucket"] == bucket {
            out.entry(k["kms_key"].as_str().unwrap().to_owned())
                .or_default()
                .push((
                    k["version"].as_u64().unwrap(),
                    k["kek_id"].as_str().unwrap().to_owned(),
                    k["objects"].as_u64().unwrap(),
                ));
        }
    }
    out
}

const B: &str = "mixed";

/// The admin API of the running gateway reports the bucket's data key under each of the three
/// keys with the KMS key that wraps it: `GET /key-status` (one current key per bucket and key;
/// `kms_key` empty for the gateway's own key) and `GET /kek` (every data key version).
async fn admin_reports_every_data_key(g: &Running, arn0: &str, arn1: &str, arn2: &str) {
    let tok = keys_common::token_for(g.admin, common::AK, common::SK).await;
    let (st, v) = keys_common::call(g.admin, &tok, "GET", "/admin/v1/key-status", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["key_provider"], "aws-kms", "{v}");
    let mut rows: Vec<(String, u64, u64, String)> = v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["bucket"] == B)
        .map(|b| {
            (
                b["kms_key"].as_str().unwrap().to_owned(),
                b["version"].as_u64().unwrap(),
                b["versions"].as_u64().unwrap(),
                b["kek_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want = vec![
        (String::new(), 1, 1, format!("aws-kms:{arn0}")),
        (arn1.to_owned(), 1, 1, format!("aws-kms:{arn1}")),
        (arn2.to_owned(), 1, 1, format!("aws-kms:{arn2}")),
    ];
    // the gateway's own key first, then the KMS keys (in the database's order of their ARNs)
    want[1..].sort();
    if rows.len() == 3 {
        rows[1..].sort();
    }
    assert_eq!(rows, want, "{v}");
    let (st, v) = keys_common::call(g.admin, &tok, "GET", "/admin/v1/kek", None).await;
    assert_eq!(st, 200, "{v}");
    let dk = data_keys(&v, B);
    let kek = |arn: &str| format!("aws-kms:{arn}");
    assert_eq!(dk[""], vec![(1, kek(arn0), 2)], "{v}");
    assert_eq!(dk[arn1], vec![(1, kek(arn1), 2)], "{v}");
    assert_eq!(dk[arn2], vec![(1, kek(arn2), 4)], "{v}");
    assert_eq!(dk.len(), 3, "{v}");
}

/// Writes the objects: object key → (bytes, KMS key ARN it reports).
async fn write_objects(
    c: &aws_sdk_s3::Client,
    plan: &[(&str, Option<&str>, &str)],
) -> BTreeMap<String, (Vec<u8>, String)> {
    let mut want = BTreeMap::new();
    for (i, (key, key_id, arn)) in plan.iter().enumerate() {
        let body = common::data(20_000 + i * 1000, i as u64);
        let r = c
            .put_object()
            .bucket(B)
            .key(*key)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(key_id.map(str::to_owned))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.ssekms_key_id(), Some(*arn), "{key}");
        assert_eq!(r.bucket_key_enabled(), Some(true));
        want.insert((*key).to_owned(), (body, (*arn).to_owned()));
    }
    want
}

/// A two-part upload under the KMS key `key_id`, each step reporting `arn`.
async fn multipart(c: &aws_sdk_s3::Client, key: &str, key_id: &str, arn: &str) -> Vec<u8> {
    let body = common::data(5 * 1024 * 1024 + 3000, 77);
    let up = c
        .create_multipart_upload()
        .bucket(B)
        .key(key)
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(up.ssekms_key_id(), Some(arn));
    let id = up.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, chunk) in body.chunks(5 * 1024 * 1024).enumerate() {
        let n = n as i32 + 1;
        let p = c
            .upload_part()
            .bucket(B)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        assert_eq!(p.ssekms_key_id(), Some(arn));
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(p.e_tag().unwrap())
                .build(),
        );
    }
    let done = c
        .complete_multipart_upload()
        .bucket(B)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(done.ssekms_key_id(), Some(arn));
    body
}

/// Every object reads back byte for byte and reports its key.
async fn check_all(c: &aws_sdk_s3::Client, want: &BTreeMap<String, (Vec<u8>, String)>) {
    for (key, (body, arn)) in want {
        let got = c.get_object().bucket(B).key(key).send().await.unwrap();
        assert_eq!(
            got.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms)
        );
        assert_eq!(got.ssekms_key_id(), Some(arn.as_str()), "{key}");
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes.as_ref() == body.as_slice(), "{key}: bytes differ");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_under_two_kms_keys_survive_rewrap_reencrypt_and_restart() {
    let Some(ep) = kms_endpoint() else { return };
    let kms = kms_client(&ep);
    let (_, arn0) = new_key(&kms).await;
    let (id1, arn1) = new_key(&kms).await;
    let (_, arn2) = new_key(&kms).await;
    let alias = format!("alias/vg-sse-kms-{}", std::process::id());
    let alias2 = format!("{alias}-two");
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(&arn0)
        .send()
        .await
        .unwrap();
    kms.create_alias()
        .alias_name(&alias2)
        .target_key_id(&arn2)
        .send()
        .await
        .unwrap();
    let url = format!("aws-kms://{alias}?region=us-east-1&endpoint={ep}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let g = serve(&data, &url).await;
    let c = g.client();
    c.create_bucket().bucket(B).send().await.unwrap();
    let plan = [
        ("k1-a", Some(id1.as_str()), arn1.as_str()),
        ("k1-b", Some(arn1.as_str()), arn1.as_str()),
        ("k2-a", Some(alias2.as_str()), arn2.as_str()),
        ("k2-b", Some(arn2.as_str()), arn2.as_str()),
        ("own-a", None, arn0.as_str()),
        ("own-b", Some(alias.as_str()), arn0.as_str()),
    ];
    let mut want = write_objects(&c, &plan).await;
    let mp = multipart(&c, "k2-mp", &alias2, &arn2).await;
    want.insert("k2-mp".into(), (mp, arn2.clone()));
    let r = c
        .copy_object()
        .bucket(B)
        .key("k1-to-k2")
        .copy_source(format!("{B}/k1-a"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&arn2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.ssekms_key_id(), Some(arn2.as_str()));
    want.insert("k1-to-k2".into(), (want["k1-a"].0.clone(), arn2.clone()));
    let e = c
        .put_object()
        .bucket(B)
        .key("nope")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/vg-no-such-key")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "KMS.NotFoundException");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
    check_all(&c, &want).await;
    admin_reports_every_data_key(&g, &arn0, &arn1, &arn2).await;
    g.stop().await;

    // one data key per KMS key for the whole bucket, each wrapped by its own KMS key
    let s = keys_json(&data, &url, &["status"]);
    let dk = data_keys(&s, B);
    let kek = |arn: &str| format!("aws-kms:{arn}");
    assert_eq!(dk[""], vec![(1, kek(&arn0), 2)], "{s}");
    assert_eq!(dk[&arn1], vec![(1, kek(&arn1), 2)], "{s}");
    assert_eq!(dk[&arn2], vec![(1, kek(&arn2), 4)], "{s}");
    assert_eq!(dk.len(), 3, "{s}");

    // the gateway's alias moves to a new key: rewrap moves the gateway key's data keys only
    let (_, arn0b) = new_key(&kms).await;
    kms.update_alias()
        .alias_name(&alias)
        .target_key_id(&arn0b)
        .send()
        .await
        .unwrap();
    let r = keys_json(&data, &url, &["rewrap"]);
    // the bucket's and the secrets' data keys move; the two under K1 and K2 are current as they are
    assert_eq!(
        (&r["total"], &r["rewrapped"], &r["already_current"]),
        (&4.into(), &2.into(), &2.into()),
        "{r}"
    );
    let dk = data_keys(&keys_json(&data, &url, &["status"]), B);
    assert_eq!(dk[""][0].1, kek(&arn0b));
    assert_eq!(dk[&arn1][0].1, kek(&arn1));
    assert_eq!(dk[&arn2][0].1, kek(&arn2));

    // reencrypt: a version 2 under each KMS key, every object re-sealed under its own key's
    let out = vaultgate_kms(&data, &url)
        .args(["keys", "reencrypt", "--bucket", B])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dk = data_keys(&keys_json(&data, &url, &["status"]), B);
    assert_eq!(dk[""][1], (2, kek(&arn0b), 2), "{dk:?}");
    assert_eq!(dk[&arn1][1], (2, kek(&arn1), 2), "{dk:?}");
    assert_eq!(dk[&arn2][1], (2, kek(&arn2), 4), "{dk:?}");
    assert!(
        dk.values().all(|v| v[0].2 == 0),
        "nothing left on v1: {dk:?}"
    );

    // a restart (keys unwrapped again from the KMS) reads everything back, same keys reported
    let g = serve(&data, &url).await;
    let c = g.client();
    check_all(&c, &want).await;
    // new writes without a key now go under the alias's new key
    let r = c
        .put_object()
        .bucket(B)
        .key("own-new")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.ssekms_key_id(), Some(arn0b.as_str()));
    g.stop().await;
}
