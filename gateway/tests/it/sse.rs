//! SSE-C (customer-provided keys, issue 16) through the real aws-sdk-s3 against an in-process
//! gateway: the customer key is part of the object's key derivation, so an SSE-C object is
//! refused without its key or with another one (GET, HEAD, copy source, UploadPart,
//! UploadPartCopy), every answer echoes the algorithm and key MD5, multipart uploads need the
//! key on every part, copies move between SSE-C and the gateway's own keys, bad header sets get
//! S3's codes, the key never reaches the index, the backend or the audit trail, and `reindex`
//! rebuilds SSE-C objects (still locked) from the backend alone.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;

const MIB: usize = 1024 * 1024;

/// One customer key: raw bytes, base64 and base64 MD5 (what the SDK sends).
struct Ck {
    raw: [u8; 32],
    b64: String,
    md5: String,
}

fn ck(byte: u8) -> Ck {
    use md5::Digest;
    let raw = [byte; 32];
    Ck {
        raw,
        b64: B64.encode(raw),
        md5: B64.encode(md5::Md5::digest(raw)),
    }
}

async fn put_c(c: &aws_sdk_s3::Client, b: &str, k: &str, body: &[u8], key: &Ck) {
    let r = c
        .put_object()
        .bucket(b)
        .key(k)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&key.b64)
        .sse_customer_key_md5(&key.md5)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect("SSE-C put");
    assert_eq!(r.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(r.sse_customer_key_md5(), Some(key.md5.as_str()));
    assert_eq!(r.server_side_encryption(), None);
    assert_eq!(r.e_tag(), Some(format!("\"{}\"", md5_hex(body)).as_str()));
}

async fn get_c(
    c: &aws_sdk_s3::Client,
    b: &str,
    k: &str,
    key: Option<&Ck>,
    range: Option<&str>,
) -> Result<Vec<u8>, (u16, String)> {
    let mut req = c.get_object().bucket(b).key(k);
    if let Some(key) = key {
        req = req
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&key.b64)
            .sse_customer_key_md5(&key.md5);
    }
    if let Some(r) = range {
        req = req.range(r);
    }
    match req.send().await {
        Ok(r) => {
            if let Some(key) = key {
                assert_eq!(r.sse_customer_algorithm(), Some("AES256"));
                assert_eq!(r.sse_customer_key_md5(), Some(key.md5.as_str()));
            }
            Ok(r.body.collect().await.unwrap().into_bytes().to_vec())
        }
        Err(e) => Err((status(&e), code(&e))),
    }
}

fn bad_request() -> Result<Vec<u8>, (u16, String)> {
    Err((400, "InvalidRequest".into()))
}

#[tokio::test]
async fn sse_c_object_opens_only_with_its_key() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("ssec").send().await.unwrap();
    let (a, b) = (ck(0xA1), ck(0xB2));
    let body = data(200_000, 1);
    put_c(c, "ssec", "obj", &body, &a).await;

    assert_eq!(
        get_c(c, "ssec", "obj", Some(&a), None).await,
        Ok(body.clone())
    );
    assert_eq!(
        get_c(c, "ssec", "obj", Some(&a), Some("bytes=70000-140001")).await,
        Ok(body[70_000..140_002].to_vec())
    );
    assert_eq!(get_c(c, "ssec", "obj", None, None).await, bad_request());
    assert_eq!(get_c(c, "ssec", "obj", Some(&b), None).await, bad_request());

    // HEAD: same rules, and it echoes the key MD5
    let h = c
        .head_object()
        .bucket("ssec")
        .key("obj")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_length(), Some(body.len() as i64));
    assert_eq!(h.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(h.sse_customer_key_md5(), Some(a.md5.as_str()));
    let e = c
        .head_object()
        .bucket("ssec")
        .key("obj")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    let e = c
        .head_object()
        .bucket("ssec")
        .key("obj")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&b.b64)
        .sse_customer_key_md5(&b.md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);

    // the listing shows the plaintext size and ETag
    let l = c.list_objects_v2().bucket("ssec").send().await.unwrap();
    let o = &l.contents()[0];
    assert_eq!(o.size(), Some(body.len() as i64));
    assert_eq!(o.e_tag(), Some(format!("\"{}\"", md5_hex(&body)).as_str()));

    // SSE-C together with x-amz-server-side-encryption names two modes: refused
    let e = c
        .put_object()
        .bucket("ssec")
        .key("both")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));

    // SSE-C headers on an object stored without a customer key are refused too
    c.put_object()
        .bucket("ssec")
        .key("plain")
        .body(ByteStream::from_static(b"plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_c(c, "ssec", "plain", Some(&a), None).await,
        bad_request()
    );
    assert_eq!(
        get_c(c, "ssec", "plain", None, None).await,
        Ok(b"plain".to_vec())
    );
    g.stop().await;
}

#[tokio::test]
async fn bad_sse_c_header_sets_get_s3_codes_and_store_nothing() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("bad").send().await.unwrap();
    let a = ck(0xA1);
    let other_md5 = ck(0x01).md5;
    let short_md5 = {
        use md5::Digest;
        B64.encode(md5::Md5::digest(b"short"))
    };
    type Set<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let cases: [(&str, Set, &str); 6] = [
        (
            "wrong-md5",
            (Some("AES256"), Some(&a.b64), Some(&other_md5)),
            "InvalidArgument",
        ),
        (
            "no-md5",
            (Some("AES256"), Some(&a.b64), None),
            "InvalidArgument",
        ),
        ("no-key", (Some("AES256"), None, None), "InvalidArgument"),
        (
            "no-algorithm",
            (None, Some(&a.b64), Some(&a.md5)),
            "InvalidArgument",
        ),
        (
            "aes128",
            (Some("AES128"), Some(&a.b64), Some(&a.md5)),
            "InvalidEncryptionAlgorithmError",
        ),
        (
            "short-key",
            (Some("AES256"), Some("c2hvcnQ="), Some(&short_md5)),
            "InvalidArgument",
        ),
    ];
    for (key, (alg, k, md5), want) in cases {
        let mut req = c
            .put_object()
            .bucket("bad")
            .key(key)
            .body(ByteStream::from_static(b"data"));
        if let Some(v) = alg {
            req = req.sse_customer_algorithm(v);
        }
        if let Some(v) = k {
            req = req.sse_customer_key(v);
        }
        if let Some(v) = md5 {
            req = req.sse_customer_key_md5(v);
        }
        let e = req.send().await.unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (400, want), "{key}");
        // the key never comes back in an error
        let msg = format!("{e:?}");
        assert!(!msg.contains(&a.b64[..20]), "{key}: {msg}");
    }
    let l = c.list_objects_v2().bucket("bad").send().await.unwrap();
    assert_eq!(l.key_count(), Some(0));
    g.stop().await;
}

fn part(n: i32, etag: &str) -> CompletedPart {
    CompletedPart::builder().part_number(n).e_tag(etag).build()
}

#[tokio::test]
async fn sse_c_multipart_needs_the_key_on_every_part() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("mpc").send().await.unwrap();
    let (a, b) = (ck(0xA1), ck(0xB2));
    let p1 = data(5 * MIB, 3);
    let p2 = data(777_777, 4);
    let up = c
        .create_multipart_upload()
        .bucket("mpc")
        .key("big")
        .content_type("text/plain")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(up.sse_customer_key_md5(), Some(a.md5.as_str()));
    let id = up.upload_id().unwrap().to_owned();
    let upload = |n: i32, body: &[u8], key: Option<&Ck>| {
        let mut r = c
            .upload_part()
            .bucket("mpc")
            .key("big")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body.to_vec()));
        if let Some(k) = key {
            r = r
                .sse_customer_algorithm("AES256")
                .sse_customer_key(&k.b64)
                .sse_customer_key_md5(&k.md5);
        }
        r.send()
    };
    let e = upload(1, b"small", None).await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let e = upload(1, b"small", Some(&b)).await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let r1 = upload(1, &p1, Some(&a)).await.unwrap();
    assert_eq!(r1.sse_customer_key_md5(), Some(a.md5.as_str()));
    let r2 = upload(2, &p2, Some(&a)).await.unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(part(1, r1.e_tag().unwrap()))
        .parts(part(2, r2.e_tag().unwrap()))
        .build();
    // the key is not needed to complete (as S3), but one that is sent must be the upload's
    let e = c
        .complete_multipart_upload()
        .bucket("mpc")
        .key("big")
        .upload_id(&id)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&b.b64)
        .sse_customer_key_md5(&b.md5)
        .multipart_upload(parts.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let done = c
        .complete_multipart_upload()
        .bucket("mpc")
        .key("big")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(part(1, r1.e_tag().unwrap()))
                .parts(part(2, r2.e_tag().unwrap()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(done.e_tag().unwrap().ends_with("-2\""));
    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    assert_eq!(
        get_c(c, "mpc", "big", Some(&a), None).await,
        Ok(whole.clone())
    );
    let lo = 5 * MIB - 1000;
    assert_eq!(
        get_c(
            c,
            "mpc",
            "big",
            Some(&a),
            Some(&format!("bytes={lo}-{}", lo + 5000))
        )
        .await,
        Ok(whole[lo..lo + 5001].to_vec())
    );
    assert_eq!(get_c(c, "mpc", "big", None, None).await, bad_request());
    assert_eq!(get_c(c, "mpc", "big", Some(&b), None).await, bad_request());

    // a customer key on a part of an upload without one is refused
    let plain = c
        .create_multipart_upload()
        .bucket("mpc")
        .key("plain")
        .send()
        .await
        .unwrap();
    let e = c
        .upload_part()
        .bucket("mpc")
        .key("plain")
        .upload_id(plain.upload_id().unwrap())
        .part_number(1)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    g.stop().await;
}

#[tokio::test]
async fn copies_move_between_sse_c_and_the_gateway_keys() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("cpy").send().await.unwrap();
    let (a, b) = (ck(0xA1), ck(0xB2));
    let body = data(100_000, 9);
    put_c(c, "cpy", "src", &body, &a).await;

    // without the source key (or with another) the copy is refused and nothing is written
    let e = c
        .copy_object()
        .bucket("cpy")
        .key("dst")
        .copy_source("cpy/src")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let e = c
        .copy_object()
        .bucket("cpy")
        .key("dst")
        .copy_source("cpy/src")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&b.b64)
        .copy_source_sse_customer_key_md5(&b.md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    assert_eq!(
        get_c(c, "cpy", "dst", None, None).await,
        Err((404, "NoSuchKey".into()))
    );

    // SSE-C → gateway keys: readable without a key
    let r = c
        .copy_object()
        .bucket("cpy")
        .key("plain")
        .copy_source("cpy/src")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&a.b64)
        .copy_source_sse_customer_key_md5(&a.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(r.sse_customer_algorithm(), None);
    assert_eq!(
        r.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );
    assert_eq!(get_c(c, "cpy", "plain", None, None).await, Ok(body.clone()));

    // gateway keys → SSE-C under key B
    let r = c
        .copy_object()
        .bucket("cpy")
        .key("again")
        .copy_source("cpy/plain")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&b.b64)
        .sse_customer_key_md5(&b.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(r.sse_customer_key_md5(), Some(b.md5.as_str()));
    assert_eq!(
        get_c(c, "cpy", "again", Some(&b), None).await,
        Ok(body.clone())
    );
    assert_eq!(
        get_c(c, "cpy", "again", Some(&a), None).await,
        bad_request()
    );

    // re-keying an object in place (A → B) is a change of encryption, allowed
    c.copy_object()
        .bucket("cpy")
        .key("src")
        .copy_source("cpy/src")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&a.b64)
        .copy_source_sse_customer_key_md5(&a.md5)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&b.b64)
        .sse_customer_key_md5(&b.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_c(c, "cpy", "src", Some(&b), None).await,
        Ok(body.clone())
    );
    assert_eq!(get_c(c, "cpy", "src", Some(&a), None).await, bad_request());

    // UploadPartCopy: source key for the source, the upload's key for the part
    let up = c
        .create_multipart_upload()
        .bucket("cpy")
        .key("mp")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let e = c
        .upload_part_copy()
        .bucket("cpy")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .copy_source("cpy/src")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e).as_str()),
        (400, "InvalidRequest"),
        "no source key"
    );
    let e = c
        .upload_part_copy()
        .bucket("cpy")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .copy_source("cpy/src")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&b.b64)
        .copy_source_sse_customer_key_md5(&b.md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e).as_str()),
        (400, "InvalidRequest"),
        "no upload key"
    );
    let pc = c
        .upload_part_copy()
        .bucket("cpy")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .copy_source("cpy/src")
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&b.b64)
        .copy_source_sse_customer_key_md5(&b.md5)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket("cpy")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(part(1, pc.copy_part_result().unwrap().e_tag().unwrap()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_c(c, "cpy", "mp", Some(&a), None).await,
        Ok(body.clone())
    );
    assert_eq!(get_c(c, "cpy", "mp", None, None).await, bad_request());
    g.stop().await;
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_key_is_stored_nowhere_and_reindex_keeps_objects_locked() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("nokey").send().await.unwrap();
    let a = ck(0x5C);
    let body = data(70_000, 5);
    put_c(c, "nokey", "o", &body, &a).await;
    let up = c
        .create_multipart_upload()
        .bucket("nokey")
        .key("m")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let p = c
        .upload_part()
        .bucket("nokey")
        .key("m")
        .upload_id(id)
        .part_number(1)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket("nokey")
        .key("m")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(part(1, p.e_tag().unwrap()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let cfg = common::config(g.dir.path());
    let common::TestGateway { server, dir, .. } = g;
    server.shutdown().await;

    // neither the raw key nor its base64 or hex is in the index, the audit ledger (same
    // database), the key file or the backend
    let data_dir = cfg.data_dir.clone();
    assert!(!files_under(&data_dir).is_empty());
    for needle in [
        a.raw.to_vec(),
        a.b64.as_bytes().to_vec(),
        hex::encode(a.raw).into_bytes(),
        hex::encode(a.raw).to_uppercase().into_bytes(),
    ] {
        let hits = files_holding(&data_dir, &needle);
        assert!(hits.is_empty(), "customer key found in {hits:?}");
    }

    // reindex from the backend alone: the SSE-C objects come back and still need their key
    let report = common::reindex_from_backend(&cfg).await;
    assert!(report.unreadable.is_empty(), "{report:?}");
    assert_eq!(report.objects, 2, "{report:?}");
    let server = gateway::server::start(cfg.clone(), common::admin_api)
        .await
        .expect("restart");
    let c = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    for k in ["o", "m"] {
        assert_eq!(
            get_c(&c, "nokey", k, Some(&a), None).await,
            Ok(body.clone()),
            "{k}"
        );
        assert_eq!(
            get_c(&c, "nokey", k, None, None).await,
            bad_request(),
            "{k}"
        );
        assert_eq!(
            get_c(&c, "nokey", k, Some(&ck(1)), None).await,
            bad_request(),
            "{k}"
        );
    }
    server.shutdown().await;
    drop(dir);
}

#[tokio::test]
async fn sse_c_is_refused_on_a_plain_http_listener_off_loopback() {
    // a listener on every address without TLS (the operator opted into plain HTTP): a customer
    // key would cross the network in clear, so SSE-C is refused as S3 refuses it over HTTP
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.s3_addr = "0.0.0.0:0".into();
    cfg.tls.insecure_http = Some(true);
    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .expect("start");
    let c = client_for(
        &format!("http://127.0.0.1:{}", server.s3_addr.port()),
        AK,
        SK,
    );
    c.create_bucket().bucket("plainhttp").send().await.unwrap();
    let a = ck(0xA1);
    let e = c
        .put_object()
        .bucket("plainhttp")
        .key("k")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&a.b64)
        .sse_customer_key_md5(&a.md5)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    // everything else works as usual there
    c.put_object()
        .bucket("plainhttp")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn an_invalid_range_on_an_sse_c_object_still_needs_and_uses_the_key() {
    // an unparsable Range is ignored (200, whole object) by the range fallback route: the SSE-C
    // rules must hold there too
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("ssecrange").send().await.unwrap();
    let a = ck(0xA1);
    let body = data(1000, 2);
    put_c(c, "ssecrange", "o", &body, &a).await;
    assert_eq!(
        get_c(c, "ssecrange", "o", Some(&a), Some("bytes=abc")).await,
        Ok(body.clone())
    );
    assert_eq!(
        get_c(c, "ssecrange", "o", None, Some("bytes=abc")).await,
        bad_request()
    );
    assert_eq!(
        get_c(c, "ssecrange", "o", Some(&ck(1)), Some("bytes=abc")).await,
        bad_request()
    );
    g.stop().await;
}
