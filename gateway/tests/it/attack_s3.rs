//! The adversarial suite of issue 12 on the S3 side, against the in-process gateway: each
//! finding reproduced with the request that succeeded before, now asserting the refusal.
//!
//! - deny by default: every operation s3s can route resolves to a policy action or is refused
//!   (enumerated from the s3s `S3` trait itself), and unserved operations answer 501 for every
//!   role and tenant;
//! - POST Object (browser form upload) is authorised like PutObject on the form's key:
//!   another tenant's SuperAdmin and a Viewer are refused, nothing is overwritten, the audit
//!   event says PutObject with the key; a SigV2-signed form is refused;
//! - an overwrite (PUT, copy, multipart complete, POST) of an object whose deletes are gated by
//!   quorum needs an approval of its own;
//! - per-request KMS headers are refused and SSE-C objects never served without their key;
//! - SigV2 off by default; SigV4 presign lifetime capped; oversized access key ids refused;
//! - brute force: failed authentications per address are limited and counted;
//! - a trickling body is cut off with 400 RequestTimeout; half-open connections from one
//!   address do not starve another address or the admin listener;
//! - low items: control characters in keys, metadata over 2 KB, `foo-.bar` bucket names,
//!   ListParts/ListMultipartUploads name the initiator's principal, not its access key id;
//!   the data dir is 0700 and the index 0600.

use crate::common;

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use common::*;
use gateway::config::Limits;
use policy::{Action, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BUCKET: &str = "acme-data";
const OTHER_BUCKET: &str = "globex-data";

struct Who {
    ak: String,
    sk: String,
    client: Client,
}

async fn who(g: &TestGateway, name: &str, tenant: &str, role: Role) -> Who {
    let store = g.server.authz.store();
    if !store
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
    Who {
        client: client_for(&g.endpoint, &k.access_key_id, k.secret.expose()),
        ak: k.access_key_id,
        sk: k.secret.expose().to_owned(),
    }
}

/// A gateway with tenants acme (root, manager, viewer) and globex (root), one bucket each.
struct World {
    g: TestGateway,
    root: Who,
    manager: Who,
    viewer: Who,
    other: Who,
}

async fn world_with(limits: Limits) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits = limits;
    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .expect("gateway starts");
    let endpoint = format!("http://{}", server.s3_addr);
    let client = client_for(&endpoint, AK, SK);
    let g = TestGateway {
        server,
        dir,
        endpoint,
        client,
    };
    let root = who(&g, "acme-root", "acme", Role::SuperAdmin).await;
    let manager = who(&g, "acme-writer", "acme", Role::Manager).await;
    let viewer = who(&g, "acme-reader", "acme", Role::Viewer).await;
    let other = who(&g, "globex-root", "globex", Role::SuperAdmin).await;
    root.client
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    other
        .client
        .create_bucket()
        .bucket(OTHER_BUCKET)
        .send()
        .await
        .unwrap();
    World {
        g,
        root,
        manager,
        viewer,
        other,
    }
}

async fn world() -> World {
    world_with(Limits::default()).await
}

async fn put(c: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
}

async fn get(c: &Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    match c.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(_) => None,
    }
}

fn body_code(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(body);
    t.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// deny by default

/// `snake_case` → `PascalCase` (`list_objects_v2` → `ListObjectsV2`).
fn pascal(s: &str) -> String {
    s.split('_')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Every operation of the s3s `S3` trait (the operations s3s can route), read from the source
/// of the s3s version in Cargo.lock, in cargo's registry (where this build compiled it from).
fn s3s_operations() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"s3s\"\n"))
        .and_then(|p| p.split("version = \"").nth(1))
        .and_then(|v| v.split('"').next())
        .expect("s3s in Cargo.lock")
        .to_owned();
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo")
        });
    let src = std::fs::read_dir(home.join("registry/src"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join(format!("s3s-{version}/src/s3_trait.rs")))
        .find(|p| p.exists())
        .expect("the s3s source in cargo's registry");
    let text = std::fs::read_to_string(&src).expect("s3s trait source");
    let mut ops: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("async fn "))
        .filter_map(|l| l.split('(').next())
        .map(pascal)
        .collect();
    ops.sort();
    ops.dedup();
    ops
}

#[test]
fn every_s3s_operation_resolves_to_an_action_or_is_refused() {
    let ops = s3s_operations();
    assert!(ops.len() > 80, "found only {} operations", ops.len());
    let mut mapped: Vec<&str> = Vec::new();
    for op in &ops {
        match gateway::auth::action_of_operation(op) {
            Some(a) => {
                // a mapped operation is one the gateway serves, under its own action
                // (PostObject is a PutObject; DeleteBucketEncryption needs
                // PutEncryptionConfiguration, DeleteBucketOwnershipControls
                // PutBucketOwnershipControls and DeletePublicAccessBlock
                // PutBucketPublicAccessBlock, as on AWS; GetObjectAttributes is a GetObject)
                assert!(
                    a.s3_operation() == Some(op.as_str())
                        || (op == "PostObject" && a == Action::PutObject)
                        || (op == "GetObjectAttributes" && a == Action::GetObject)
                        || (op == "DeleteBucketEncryption"
                            && a == Action::PutEncryptionConfiguration)
                        || (op == "DeleteBucketOwnershipControls"
                            && a == Action::PutBucketOwnershipControls)
                        || (op == "DeletePublicAccessBlock"
                            && a == Action::PutBucketPublicAccessBlock),
                    "{op} maps to {a}"
                );
                mapped.push(op);
            }
            None => {
                // refused by the access check before any handler: nothing else to assert here,
                // `unserved_operations_are_refused_for_every_role` shows it over HTTP
            }
        }
    }
    // every served action is reachable, and nothing else is
    let operations: Vec<&str> = Action::ALL
        .into_iter()
        .filter_map(Action::s3_operation)
        .collect();
    for op in &operations {
        assert!(mapped.contains(op), "{op} is not an s3s operation");
    }
    // plus the five served under another operation's action (PostObject,
    // DeleteBucketEncryption, GetObjectAttributes, DeleteBucketOwnershipControls,
    // DeletePublicAccessBlock)
    assert_eq!(mapped.len(), operations.len() + 5, "{mapped:?}");
}

#[tokio::test]
async fn unserved_operations_are_refused_for_every_role() {
    let w = world().await;
    put(&w.root.client, BUCKET, "k", b"v".to_vec()).await;
    for (name, c) in [
        ("superadmin", &w.root.client),
        ("manager", &w.manager.client),
        ("viewer", &w.viewer.client),
        ("other tenant", &w.other.client),
    ] {
        let e = c
            .get_bucket_logging()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 501, "{name} GetBucketLogging: {e:?}");
        assert_eq!(code(&e), "NotImplemented");
        let e = c
            .get_bucket_website()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 501, "{name} GetBucketWebsite");
        let e = c
            .get_object_torrent()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 501, "{name} GetObjectTorrent");
        let e = c
            .get_bucket_replication()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 501, "{name} GetBucketReplication");
    }
    assert_eq!(get(&w.root.client, BUCKET, "k").await.unwrap(), b"v");
    w.g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// POST Object

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&k, data).as_ref().to_vec()
}

/// A SigV4-signed browser form upload of `body` to `bucket/key` (what boto3's
/// `generate_presigned_post` produces), as a raw multipart body and its content type.
fn post_form(ak: &str, sk: &str, bucket: &str, key: &str, body: &[u8]) -> (String, Vec<u8>) {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let credential = format!("{ak}/{date}/us-east-1/s3/aws4_request");
    let expiration = (now + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let policy = serde_json::json!({
        "expiration": expiration,
        "conditions": [
            {"bucket": bucket},
            {"key": key},
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": credential},
            {"x-amz-date": amz_date},
        ]
    })
    .to_string();
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy);
    let mut k = hmac(format!("AWS4{sk}").as_bytes(), date.as_bytes());
    for part in ["us-east-1", "s3", "aws4_request"] {
        k = hmac(&k, part.as_bytes());
    }
    let signature = hex::encode(hmac(&k, policy_b64.as_bytes()));
    multipart_form(
        &[
            ("key", key),
            ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
            ("x-amz-credential", &credential),
            ("x-amz-date", &amz_date),
            ("policy", &policy_b64),
            ("x-amz-signature", &signature),
        ],
        body,
    )
}

fn multipart_form(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "vaultgateboundary7MA4YWxkTrZu0gW";
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(file);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), out)
}

async fn post_object(g: &TestGateway, bucket: &str, form: (String, Vec<u8>)) -> (u16, Vec<u8>) {
    let (ct, body) = form;
    let (status, _, body) = raw(
        g.server.s3_addr,
        "POST",
        &format!("/{bucket}"),
        &[("Content-Type", &ct)],
        &body,
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn post_object_is_authorised_like_put_object() {
    let w = world().await;
    let existing: Vec<u8> = (0..116_000u32).map(|i| (i % 251) as u8).collect();
    put(&w.root.client, BUCKET, "report.bin", existing.clone()).await;

    // another tenant's SuperAdmin: refused, for a new key and for an overwrite
    for key in ["new.bin", "report.bin"] {
        let form = post_form(&w.other.ak, &w.other.sk, BUCKET, key, b"");
        let (st, body) = post_object(&w.g, BUCKET, form).await;
        assert_eq!(
            (st, body_code(&body).as_str()),
            (403, "AccessDenied"),
            "{key}"
        );
    }
    assert_eq!(
        get(&w.root.client, BUCKET, "report.bin").await.unwrap(),
        existing
    );
    assert!(get(&w.root.client, BUCKET, "new.bin").await.is_none());

    // a Viewer of the same tenant: refused
    let form = post_form(&w.viewer.ak, &w.viewer.sk, BUCKET, "viewer.bin", b"x");
    let (st, body) = post_object(&w.g, BUCKET, form).await;
    assert_eq!((st, body_code(&body).as_str()), (403, "AccessDenied"));
    assert!(get(&w.root.client, BUCKET, "viewer.bin").await.is_none());

    // a Manager of the tenant: stored, byte-exact
    let data = b"uploaded from a browser form".to_vec();
    let form = post_form(&w.manager.ak, &w.manager.sk, BUCKET, "form.txt", &data);
    let (st, body) = post_object(&w.g, BUCKET, form).await;
    assert_eq!(st, 204, "{}", String::from_utf8_lossy(&body));
    assert_eq!(get(&w.root.client, BUCKET, "form.txt").await.unwrap(), data);

    // the audit events name PutObject and the key, allowed and refused alike
    let events = audit_events(&w.g).await;
    let posts: Vec<_> = events
        .iter()
        .filter(|e| {
            e.action == "PutObject"
                && matches!(
                    e.key.as_deref(),
                    Some("new.bin" | "report.bin" | "viewer.bin" | "form.txt")
                )
                && e.status != 200
        })
        .map(|e| (e.principal.clone().unwrap_or_default(), e.status))
        .collect();
    assert_eq!(
        posts,
        [
            ("acme-reader".to_owned(), 403),
            ("globex-root".to_owned(), 403),
            ("globex-root".to_owned(), 403)
        ],
        "{:?}",
        events
    );
    assert!(events.iter().all(|e| e.action != "Unknown"));
    w.g.stop().await;
}

#[tokio::test]
async fn a_sigv2_form_upload_is_refused_by_default() {
    let w = world().await;
    let policy = base64::engine::general_purpose::STANDARD.encode(
        serde_json::json!({
            "expiration": "2099-01-01T00:00:00Z",
            "conditions": [{"bucket": BUCKET}, ["starts-with", "$key", ""]]
        })
        .to_string(),
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(
        aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                w.manager.sk.as_bytes(),
            ),
            policy.as_bytes(),
        )
        .as_ref(),
    );
    let form = multipart_form(
        &[
            ("key", "v2.bin"),
            ("AWSAccessKeyId", &w.manager.ak),
            ("policy", &policy),
            ("signature", &sig),
        ],
        b"v2",
    );
    let (st, body) = post_object(&w.g, BUCKET, form).await;
    assert_eq!((st, body_code(&body).as_str()), (400, "InvalidRequest"));
    assert!(get(&w.root.client, BUCKET, "v2.bin").await.is_none());
    w.g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// quorum: overwrites of objects whose deletes are gated

#[tokio::test]
async fn overwriting_a_delete_gated_object_needs_an_approval() {
    let w = world().await;
    let store = w.g.server.authz.store();
    let root = store.identity("acme-root").await.unwrap().unwrap();
    store
        .set_quorum_rule(
            &root,
            &policy::QuorumRule {
                name: "guard-deletes".into(),
                action: "s3:DeleteObject".into(),
                bucket_pattern: BUCKET.into(),
                approvals: 2,
                approver_roles: vec!["superadmin".into()],
                ttl_secs: 600,
            },
            policy::now_ms(),
        )
        .await
        .unwrap();
    let original = b"backup of monday".to_vec();
    put(&w.root.client, BUCKET, "monday.tar", original.clone()).await;
    put(&w.root.client, BUCKET, "source.tar", b"other".to_vec()).await;
    let m = &w.manager.client;
    let names_approval = |msg: Option<&str>| msg.unwrap_or("").contains("apr-");

    // a 0-byte PutObject onto the key
    let e = m
        .put_object()
        .bucket(BUCKET)
        .key("monday.tar")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
    assert!(names_approval(
        aws_sdk_s3::error::ProvideErrorMetadata::message(&e)
    ));
    // a CopyObject onto it
    let e = m
        .copy_object()
        .bucket(BUCKET)
        .key("monday.tar")
        .copy_source(format!("{BUCKET}/source.tar"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
    // a CompleteMultipartUpload onto it
    let up = m
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("monday.tar")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = m
        .upload_part()
        .bucket(BUCKET)
        .key("monday.tar")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"overwritten"))
        .send()
        .await
        .unwrap();
    let e = m
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("monday.tar")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
    // a POST Object onto it
    let form = post_form(&w.manager.ak, &w.manager.sk, BUCKET, "monday.tar", b"");
    let (st, body) = post_object(&w.g, BUCKET, form).await;
    assert_eq!((st, body_code(&body).as_str()), (403, "AccessDenied"));
    assert_eq!(
        get(&w.root.client, BUCKET, "monday.tar").await.unwrap(),
        original
    );

    // new keys are not gated
    put(m, BUCKET, "tuesday.tar", b"new".to_vec()).await;
    w.g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// encryption headers that are not honoured

#[tokio::test]
async fn encryption_headers_the_gateway_does_not_honour_are_refused() {
    let w = world().await;
    let c = &w.root.client;
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5_of(&[7u8; 32]));
    let r = c
        .put_object()
        .bucket(BUCKET)
        .key("ssec")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key)
        .sse_customer_key_md5(&md5)
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .expect("SSE-C is honoured (issue 16)");
    assert_eq!(r.sse_customer_key_md5(), Some(md5.as_str()));
    // ... and an SSE-C object is never served without its key
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("ssec")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("kms")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .ssekms_key_id("arn:aws:kms:us-east-1:1:key/other")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap_err();
    // this gateway runs on its local key: aws:kms is a client error (400), not silently AES256
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    assert!(get(c, BUCKET, "kms").await.is_none());
    c.put_object()
        .bucket(BUCKET)
        .key("aes")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"fine"))
        .send()
        .await
        .unwrap();
    w.g.stop().await;
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(b).into()
}

// ---------------------------------------------------------------------------------------------
// signatures: SigV2 off, presign cap, oversized ids

#[tokio::test]
async fn sigv2_presign_lifetime_and_oversized_ids_are_refused_before_lookup() {
    let w = world().await;
    let addr = w.g.server.s3_addr;
    let date = httpdate();
    let (st, _, body) = raw(
        addr,
        "GET",
        &format!("/{BUCKET}/k"),
        &[
            ("Authorization", &format!("AWS {}:c2lnbmF0dXJl", w.root.ak)),
            ("Date", &date),
        ],
        b"",
    )
    .await;
    assert_eq!((st, body_code(&body).as_str()), (400, "InvalidRequest"));
    let (st, _, body) = raw(
        addr,
        "GET",
        &format!(
            "/{BUCKET}/k?AWSAccessKeyId={}&Expires=2524608000&Signature=eA%3D%3D",
            w.root.ak
        ),
        &[],
        b"",
    )
    .await;
    assert_eq!((st, body_code(&body).as_str()), (400, "InvalidRequest"));
    for exp in ["999999999", "-5"] {
        let q = format!(
            "/{BUCKET}/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires={exp}&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
            w.root.ak
        );
        let (st, _, body) = raw(addr, "GET", &q, &[], b"").await;
        assert_eq!(
            (st, body_code(&body).as_str()),
            (400, "AuthorizationQueryParametersError"),
            "{exp}"
        );
    }
    // a 7-day presigned URL (the SDK's own maximum) still works
    put(&w.root.client, BUCKET, "k", b"presigned".to_vec()).await;
    let url = w
        .root
        .client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(604_800))
                .unwrap(),
        )
        .await
        .unwrap();
    let uri: http::Uri = url.uri().parse().unwrap();
    let (st, _, body) = raw(
        addr,
        "GET",
        uri.path_and_query().unwrap().as_str(),
        &[],
        b"",
    )
    .await;
    assert_eq!((st, body.as_slice()), (200, b"presigned".as_slice()));
    // a 200 KiB access key id never reaches a lookup (431 for the head, or 403)
    let long = "A".repeat(200 * 1024);
    let (st, _, _) = raw(
        addr,
        "GET",
        &format!("/{BUCKET}"),
        &[(
            "Authorization",
            &format!("AWS4-HMAC-SHA256 Credential={long}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"),
        )],
        b"",
    )
    .await;
    assert!(st == 431 || st == 403, "{st}");
    let mid = "A".repeat(200);
    let (st, _, body) = raw(
        addr,
        "GET",
        &format!("/{BUCKET}"),
        &[(
            "Authorization",
            &format!("AWS4-HMAC-SHA256 Credential={mid}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"),
        )],
        b"",
    )
    .await;
    assert_eq!((st, body_code(&body).as_str()), (403, "InvalidAccessKeyId"));
    w.g.stop().await;
}

fn httpdate() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap()
}

#[tokio::test]
async fn sigv2_when_turned_on_checks_the_clock() {
    let w = world_with(Limits {
        sigv2: Some(true),
        ..Limits::default()
    })
    .await;
    let addr = w.g.server.s3_addr;
    for date in ["Mon, 01 Jan 2001 00:00:00 +0000", "not a date at all"] {
        let (st, _, body) = raw(
            addr,
            "GET",
            &format!("/{BUCKET}/k"),
            &[
                ("Authorization", &format!("AWS {}:c2lnbmF0dXJl", w.root.ak)),
                ("Date", date),
            ],
            b"",
        )
        .await;
        assert_eq!(st, 403, "{date}");
        assert!(
            ["RequestTimeTooSkewed", "AccessDenied"].contains(&body_code(&body).as_str()),
            "{date}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    w.g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// brute force, slow clients

#[tokio::test]
async fn failed_authentications_per_address_are_limited_and_counted() {
    let w = world_with(Limits {
        auth_failures_per_min: Some(5),
        ..Limits::default()
    })
    .await;
    let wrong = client_for(
        &w.g.endpoint,
        &w.root.ak,
        "not-the-secret-0123456789abcdefghijkl",
    );
    let mut codes = Vec::new();
    for _ in 0..8 {
        let e = wrong.head_bucket().bucket(BUCKET).send().await.unwrap_err();
        codes.push(status(&e));
    }
    // five failures use up the budget and lock the address out
    assert_eq!(&codes[..5], &[403; 5], "{codes:?}");
    assert!(codes[5..].iter().all(|s| *s == 503), "{codes:?}");
    // blocked: even a correctly signed request from this address waits
    let e = w
        .root
        .client
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (503, "SlowDown"));
    let m = w.g.server.metrics.render();
    let value = |name: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(value("vaultgate_auth_failures_total") >= 5, "{m}");
    assert!(value("vaultgate_auth_blocked_total") >= 3, "{m}");
    w.g.stop().await;
}

#[tokio::test]
async fn a_trickling_body_is_cut_off() {
    let w = world_with(Limits {
        body_read_timeout_secs: Some(1),
        ..Limits::default()
    })
    .await;
    // a presigned PUT, so the body can be sent by hand, one byte every 400 ms
    let url = w
        .root
        .client
        .put_object()
        .bucket(BUCKET)
        .key("slow")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(600)).unwrap(),
        )
        .await
        .unwrap();
    let uri: http::Uri = url.uri().parse().unwrap();
    let mut s = tokio::net::TcpStream::connect(w.g.server.s3_addr)
        .await
        .unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n",
        uri.path_and_query().unwrap(),
        w.g.server.s3_addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(400)) => {
                if s.write_all(b"x").await.is_err() { break; }
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "never cut off");
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
    assert!(get(&w.root.client, BUCKET, "slow").await.is_none());
    assert!(
        w.g.server
            .metrics
            .render()
            .contains("vaultgate_request_timeouts_total 1")
    );
    w.g.stop().await;
}

#[tokio::test]
async fn half_open_connections_from_one_address_do_not_starve_the_others() {
    let w = world_with(Limits {
        max_connections_per_ip: Some(20),
        header_read_timeout_secs: Some(2),
        ..Limits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..100 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        if let Ok(mut s) = sock.connect(w.g.server.s3_addr).await {
            let _ = s.write_all(b"GET /acme-data HTTP/1.1\r\nHost: x\r\n").await;
            held.push(s);
        }
    }
    let t0 = Instant::now();
    w.root
        .client
        .head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let admin = format!("http://{}/health", w.g.server.admin_addr);
    let admin_addr = w.g.server.admin_addr;
    let (st, _, _) = raw(admin_addr, "GET", "/health", &[], b"").await;
    assert_eq!(st, 200, "{admin}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // the connections over the cap were closed at once, the rest after the head deadline
    let mut closed = 0;
    for s in &mut held {
        let mut b = [0u8; 256];
        // EOF, or a reset (the server closed with our unread bytes in its buffer)
        if tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, held.len());
    assert!(
        w.g.server
            .metrics
            .render()
            .contains("vaultgate_connections_refused_total{listener=\"s3\"} 80")
    );
    w.g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// low items

#[tokio::test]
async fn keys_metadata_bucket_names_and_initiators() {
    let w = world().await;
    let c = &w.root.client;
    for key in ["a\u{0}b", "a\u{1}b", "line\nbreak"] {
        let e = c
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (status(&e), code(&e).as_str()),
            (400, "InvalidArgument"),
            "{key:?}"
        );
    }
    let e = c
        .put_object()
        .bucket(BUCKET)
        .key("meta")
        .metadata("big", "v".repeat(3000))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "MetadataTooLarge"));
    for name in ["foo-.bar", "foo.-bar"] {
        let e = c.create_bucket().bucket(name).send().await.unwrap_err();
        assert_eq!(
            (status(&e), code(&e).as_str()),
            (400, "InvalidBucketName"),
            "{name}"
        );
    }
    // the initiator of an upload is shown by principal name, never by access key id
    let up = w
        .manager
        .client
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .unwrap();
    let parts = w
        .viewer
        .client
        .list_parts()
        .bucket(BUCKET)
        .key("big")
        .upload_id(up.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    let initiator = parts.initiator().and_then(|i| i.display_name()).unwrap();
    assert_eq!(initiator, "acme-writer");
    let uploads = w
        .viewer
        .client
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let u = &uploads.uploads()[0];
    assert_eq!(u.initiator().and_then(|i| i.id()), Some("acme-writer"));
    assert_eq!(u.owner().and_then(|o| o.id()), Some("acme-writer"));
    assert!(!format!("{uploads:?}{parts:?}").contains(&w.manager.ak));
    w.g.stop().await;
}

#[tokio::test]
async fn the_data_dir_and_index_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let g = start().await;
    g.client
        .create_bucket()
        .bucket("private-b")
        .send()
        .await
        .unwrap();
    let mode = |p: std::path::PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(g.data_dir()), 0o700);
    // the SQLite index (on PostgreSQL the index is not a file of the data dir)
    if g.server.store.index().dialect() == audit::db::Dialect::Sqlite {
        assert_eq!(mode(g.data_dir().join("index.db")), 0o600);
        assert_eq!(mode(g.data_dir().join("index.db-wal")), 0o600);
    }
    g.stop().await;
}
