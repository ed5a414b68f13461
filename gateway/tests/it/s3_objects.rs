//! In-process aws-sdk-s3 tests of buckets, objects, ranges, conditions, checksums, copies,
//! listings and deletes against the real gateway (127.0.0.1:0, temp data dir, local backend).

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, Delete, MetadataDirective, ObjectIdentifier,
};
use common::*;

#[tokio::test]
async fn buckets_lifecycle_and_errors() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("alpha").send().await.unwrap();
    c.create_bucket().bucket("beta").send().await.unwrap();
    // re-creating your own bucket in us-east-1 succeeds and changes nothing (S3's legacy
    // answer; other regions: 409 BucketAlreadyOwnedByYou, see s3_small_items.rs)
    c.create_bucket().bucket("alpha").send().await.unwrap();

    let names: Vec<String> = c
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert_eq!(names, vec!["alpha".to_owned(), "beta".to_owned()]);

    c.head_bucket().bucket("alpha").send().await.unwrap();
    let e = c.head_bucket().bucket("nope").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    let loc = c
        .get_bucket_location()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    assert!(
        loc.location_constraint()
            .is_none_or(|l| l.as_str().is_empty())
    );

    c.put_object()
        .bucket("alpha")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let e = c.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
    assert_eq!(status(&e), 409);
    c.delete_object()
        .bucket("alpha")
        .key("k")
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket("alpha").send().await.unwrap();
    let e = c.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    let e = c
        .get_object()
        .bucket("alpha")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    g.stop().await;
}

#[tokio::test]
async fn put_get_head_list_agree_on_etag_size_and_metadata() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("bkt").send().await.unwrap();
    let body = data(200_000, 1);
    let put = c
        .put_object()
        .bucket("bkt")
        .key("dir/obj.bin")
        .body(ByteStream::from(body.clone()))
        .content_type("application/x-test")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"obj.bin\"")
        .cache_control("max-age=60")
        .content_language("en")
        .expires(aws_smithy_types::DateTime::from_secs(1_900_000_000))
        .metadata("mtime", "1700000000.5")
        .metadata("md5chksum", "abc")
        .send()
        .await
        .unwrap();
    let want = format!("\"{}\"", md5_hex(&body));
    assert_eq!(put.e_tag(), Some(want.as_str()));
    assert_eq!(
        put.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );

    let head = c
        .head_object()
        .bucket("bkt")
        .key("dir/obj.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(want.as_str()));
    assert_eq!(head.content_length(), Some(200_000));
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.content_encoding(), Some("identity"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"obj.bin\"")
    );
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.content_language(), Some("en"));
    assert_eq!(head.expires_string(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("mtime").map(String::as_str), Some("1700000000.5"));
    assert_eq!(meta.get("md5chksum").map(String::as_str), Some("abc"));
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );

    let get = c
        .get_object()
        .bucket("bkt")
        .key("dir/obj.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(get.e_tag(), Some(want.as_str()));
    assert_eq!(get.content_length(), Some(200_000));
    assert_eq!(
        get.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );
    let got = get.body.collect().await.unwrap().into_bytes();
    assert_eq!(sha256_hex(&got), sha256_hex(&body));

    let list = c.list_objects_v2().bucket("bkt").send().await.unwrap();
    let o = &list.contents()[0];
    assert_eq!(o.key(), Some("dir/obj.bin"));
    assert_eq!(o.e_tag(), Some(want.as_str()));
    assert_eq!(o.size(), Some(200_000));

    // empty object
    let e = c
        .put_object()
        .bucket("bkt")
        .key("empty")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .unwrap();
    assert_eq!(e.e_tag(), Some("\"d41d8cd98f00b204e9800998ecf8427e\""));
    assert!(get_bytes(c, "bkt", "empty", None).await.is_empty());

    let e = c
        .get_object()
        .bucket("bkt")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    assert_eq!(status(&e), 404);
    let e = c
        .head_object()
        .bucket("bkt")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let long = "k".repeat(1025);
    let e = c
        .put_object()
        .bucket("bkt")
        .key(&long)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KeyTooLongError");
    c.put_object()
        .bucket("bkt")
        .key("k".repeat(1024))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    g.stop().await;
}

#[tokio::test]
async fn range_reads_equal_the_slice() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("rng").send().await.unwrap();
    let body = data(300_001, 2); // several 64 KiB chunks, odd tail
    c.put_object()
        .bucket("rng")
        .key("o")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    for (range, slice) in [
        ("bytes=0-0", 0..1),
        ("bytes=0-99", 0..100),
        ("bytes=65530-65545", 65530..65546),
        ("bytes=131072-196607", 131072..196608),
        ("bytes=299999-", 299999..300001),
        ("bytes=-10", 299991..300001),
        ("bytes=5-999999999", 5..300001),
    ] {
        let out = c
            .get_object()
            .bucket("rng")
            .key("o")
            .range(range)
            .send()
            .await
            .unwrap();
        let cr = out.content_range().unwrap().to_owned();
        assert_eq!(
            cr,
            format!("bytes {}-{}/300001", slice.start, slice.end - 1),
            "{range}"
        );
        assert_eq!(out.content_length(), Some((slice.end - slice.start) as i64));
        let got = out.body.collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], &body[slice], "{range}");
    }
    let e = c
        .get_object()
        .bucket("rng")
        .key("o")
        .range("bytes=300001-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRange");
    assert_eq!(status(&e), 416);
    // syntactically invalid ranges are ignored (200, whole body), as AWS does
    for bad in ["bytes=abc", "bytes=5-2", "bytes=-", "bytes=0-1,5-6"] {
        let out = c
            .get_object()
            .bucket("rng")
            .key("o")
            .range(bad)
            .send()
            .await
            .unwrap();
        assert!(out.content_range().is_none(), "{bad}");
        assert_eq!(out.content_length(), Some(300_001), "{bad}");
        assert_eq!(out.e_tag().unwrap(), format!("\"{}\"", md5_hex(&body)));
        let got = out.body.collect().await.unwrap().into_bytes();
        assert_eq!(sha256_hex(&got), sha256_hex(&body), "{bad}");
        let head = c
            .head_object()
            .bucket("rng")
            .key("o")
            .range(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(300_001), "{bad}");
    }
    let e = c
        .get_object()
        .bucket("rng")
        .key("o")
        .range("bytes=abc")
        .if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    // raw status of a satisfiable range is 206
    let (st, head, _) = raw(
        g.server.s3_addr,
        "GET",
        "/rng/o",
        &[("Range", "bytes=1-2")],
        b"",
    )
    .await;
    assert_eq!(st, 403, "unsigned request must be refused: {head}");
    g.stop().await;
}

#[tokio::test]
async fn conditional_requests() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("cnd").send().await.unwrap();
    let put = c
        .put_object()
        .bucket("cnd")
        .key("o")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();

    // If-Match
    c.get_object()
        .bucket("cnd")
        .key("o")
        .if_match(&etag)
        .send()
        .await
        .unwrap();
    let e = c
        .get_object()
        .bucket("cnd")
        .key("o")
        .if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    assert_eq!(code(&e), "PreconditionFailed");
    // If-None-Match
    let e = c
        .get_object()
        .bucket("cnd")
        .key("o")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    c.get_object()
        .bucket("cnd")
        .key("o")
        .if_none_match("\"0000\"")
        .send()
        .await
        .unwrap();
    let e = c
        .head_object()
        .bucket("cnd")
        .key("o")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    // If-Modified-Since / If-Unmodified-Since
    let future = aws_smithy_types::DateTime::from_secs(4_000_000_000);
    let past = aws_smithy_types::DateTime::from_secs(1_000_000_000);
    let e = c
        .get_object()
        .bucket("cnd")
        .key("o")
        .if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    c.get_object()
        .bucket("cnd")
        .key("o")
        .if_modified_since(past)
        .send()
        .await
        .unwrap();
    let e = c
        .get_object()
        .bucket("cnd")
        .key("o")
        .if_unmodified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    c.get_object()
        .bucket("cnd")
        .key("o")
        .if_unmodified_since(future)
        .send()
        .await
        .unwrap();
    // If-Match wins over a failing If-Unmodified-Since (S3 rule)
    c.get_object()
        .bucket("cnd")
        .key("o")
        .if_match(&etag)
        .if_unmodified_since(past)
        .send()
        .await
        .unwrap();
    // ranged + If-Match, as aws cli's parallel downloads do
    let out = c
        .get_object()
        .bucket("cnd")
        .key("o")
        .if_match(&etag)
        .range("bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(&out.body.collect().await.unwrap().into_bytes()[..], b"ell");
    // conditional PUT: If-None-Match: * on an existing key
    let e = c
        .put_object()
        .bucket("cnd")
        .key("o")
        .if_none_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    assert_eq!(get_bytes(c, "cnd", "o", None).await, b"hello");
    g.stop().await;
}

#[tokio::test]
async fn checksums_are_verified_and_returned() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("cks").send().await.unwrap();
    let body = data(100_000, 3);
    for algo in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        let key = format!("o-{}", algo.as_str());
        let put = c
            .put_object()
            .bucket("cks")
            .key(&key)
            .checksum_algorithm(algo.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{algo:?}: {e:?}"));
        // the SDK validates the returned checksum itself when checksum mode is enabled
        let get = c
            .get_object()
            .bucket("cks")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let sent = match algo {
            ChecksumAlgorithm::Crc32 => (
                put.checksum_crc32().map(str::to_owned),
                get.checksum_crc32().map(str::to_owned),
            ),
            ChecksumAlgorithm::Crc32C => (
                put.checksum_crc32_c().map(str::to_owned),
                get.checksum_crc32_c().map(str::to_owned),
            ),
            ChecksumAlgorithm::Sha1 => (
                put.checksum_sha1().map(str::to_owned),
                get.checksum_sha1().map(str::to_owned),
            ),
            ChecksumAlgorithm::Sha256 => (
                put.checksum_sha256().map(str::to_owned),
                get.checksum_sha256().map(str::to_owned),
            ),
            _ => (
                put.checksum_crc64_nvme().map(str::to_owned),
                get.checksum_crc64_nvme().map(str::to_owned),
            ),
        };
        assert!(sent.0.is_some(), "{algo:?} not returned on PUT");
        assert_eq!(sent.0, sent.1, "{algo:?}");
        let got = get.body.collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], &body[..]);
    }
    // sha256 of the body, known
    use base64::Engine;
    let sha = {
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body))
    };
    c.put_object()
        .bucket("cks")
        .key("explicit")
        .checksum_sha256(&sha)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    // mismatching checksum: refused, and nothing stored
    let wrong = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    let e = c
        .put_object()
        .bucket("cks")
        .key("bad-sha")
        .checksum_sha256(&wrong)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400, "{e:?}");
    assert!(
        ["BadDigest", "XAmzContentChecksumMismatch"].contains(&code(&e).as_str()),
        "{e:?}"
    );
    let e = c
        .head_object()
        .bucket("cks")
        .key("bad-sha")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let e = c
        .put_object()
        .bucket("cks")
        .key("bad-crc")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest", "{e:?}");
    assert_eq!(
        status(
            &c.head_object()
                .bucket("cks")
                .key("bad-crc")
                .send()
                .await
                .unwrap_err()
        ),
        404
    );

    // Content-MD5
    let good_md5 =
        base64::engine::general_purpose::STANDARD.encode(hex::decode(md5_hex(&body)).unwrap());
    c.put_object()
        .bucket("cks")
        .key("md5")
        .content_md5(&good_md5)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let e = c
        .put_object()
        .bucket("cks")
        .key("md5-bad")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    assert_eq!(
        status(
            &c.head_object()
                .bucket("cks")
                .key("md5-bad")
                .send()
                .await
                .unwrap_err()
        ),
        404
    );
    let e = c
        .put_object()
        .bucket("cks")
        .key("md5-invalid")
        .content_md5("not-base64!")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidDigest");
    // the backend holds no stray objects from the refused writes: 4 good objects + explicit + md5
    let n = backend_objects(&g).await;
    assert_eq!(n, 7, "backend objects");
    g.stop().await;
}

#[tokio::test]
async fn copy_object_reseals_and_handles_metadata_directives() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("src").send().await.unwrap();
    c.create_bucket().bucket("dst").send().await.unwrap();
    let body = data(150_000, 4);
    let put = c
        .put_object()
        .bucket("src")
        .key("a b+c.txt")
        .content_type("text/plain")
        .metadata("color", "blue")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();

    let cp = c
        .copy_object()
        .bucket("dst")
        .key("copy")
        .copy_source("src/a%20b%2Bc.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cp.copy_object_result().unwrap().e_tag(),
        Some(etag.as_str())
    );
    let head = c
        .head_object()
        .bucket("dst")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata().unwrap().get("color").map(String::as_str),
        Some("blue")
    );
    assert_eq!(get_bytes(c, "dst", "copy", None).await, body);

    // REPLACE
    c.copy_object()
        .bucket("dst")
        .key("copy2")
        .copy_source("src/a%20b%2Bc.txt")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/json")
        .metadata("shape", "round")
        .send()
        .await
        .unwrap();
    let head = c
        .head_object()
        .bucket("dst")
        .key("copy2")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/json"));
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("shape").map(String::as_str), Some("round"));
    assert!(!meta.contains_key("color"));

    // onto itself: refused without REPLACE, metadata change with it
    let e = c
        .copy_object()
        .bucket("src")
        .key("a b+c.txt")
        .copy_source("src/a%20b%2Bc.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    c.copy_object()
        .bucket("src")
        .key("a b+c.txt")
        .copy_source("src/a%20b%2Bc.txt")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("color", "red")
        .send()
        .await
        .unwrap();
    let head = c
        .head_object()
        .bucket("src")
        .key("a b+c.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.metadata().unwrap().get("color").map(String::as_str),
        Some("red")
    );
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(get_bytes(c, "src", "a b+c.txt", None).await, body);

    // missing source; copy-source conditions
    let e = c
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    let e = c
        .copy_object()
        .bucket("dst")
        .key("x")
        .copy_source("src/a%20b%2Bc.txt")
        .copy_source_if_match("\"beef\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    g.stop().await;
}

#[tokio::test]
async fn listings_v1_v2_with_prefix_delimiter_pages_and_encoding() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("lst").send().await.unwrap();
    let keys = ["a/1", "a/2", "a/b/3", "b/4", "c", "d e", "z/€"];
    for k in keys {
        c.put_object()
            .bucket("lst")
            .key(k)
            .body(ByteStream::from(k.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    let all = c.list_objects_v2().bucket("lst").send().await.unwrap();
    let got: Vec<&str> = all.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, keys.to_vec());
    assert_eq!(all.key_count(), Some(7));
    for o in all.contents() {
        assert_eq!(o.size(), Some(o.key().unwrap().len() as i64));
        assert_eq!(
            o.e_tag().unwrap(),
            format!("\"{}\"", md5_hex(o.key().unwrap().as_bytes()))
        );
    }

    let d = c
        .list_objects_v2()
        .bucket("lst")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = d
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["a/", "b/", "z/"]);
    let ks: Vec<&str> = d.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(ks, vec!["c", "d e"]);

    let p = c
        .list_objects_v2()
        .bucket("lst")
        .prefix("a/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let ks: Vec<&str> = p.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(ks, vec!["a/1", "a/2"]);
    assert_eq!(p.common_prefixes()[0].prefix(), Some("a/b/"));

    // pagination with continuation tokens
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = c.list_objects_v2().bucket("lst").max_keys(2);
        if let Some(t) = &token {
            req = req.continuation_token(t);
        }
        let page = req.send().await.unwrap();
        assert!(page.contents().len() <= 2);
        seen.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        if page.is_truncated() == Some(true) {
            token = page.next_continuation_token().map(str::to_owned);
            assert!(token.is_some());
        } else {
            break;
        }
    }
    assert_eq!(seen, keys.to_vec());

    let sa = c
        .list_objects_v2()
        .bucket("lst")
        .start_after("b/4")
        .send()
        .await
        .unwrap();
    let ks: Vec<&str> = sa.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(ks, vec!["c", "d e", "z/€"]);

    // v1 with marker
    let v1 = c
        .list_objects()
        .bucket("lst")
        .marker("a/b/3")
        .max_keys(2)
        .send()
        .await
        .unwrap();
    let ks: Vec<&str> = v1.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(ks, vec!["b/4", "c"]);
    assert_eq!(v1.is_truncated(), Some(true));
    let v1d = c
        .list_objects()
        .bucket("lst")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    assert_eq!(v1d.common_prefixes().len(), 3);

    // encoding-type=url: the SDK decodes keys back
    let enc = c
        .list_objects_v2()
        .bucket("lst")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .prefix("d")
        .send()
        .await
        .unwrap();
    let k = enc.contents()[0].key().unwrap();
    assert!(k == "d e" || k == "d%20e", "{k}");
    let (st, _, xml) = raw(
        g.server.s3_addr,
        "GET",
        "/lst?list-type=2&encoding-type=url",
        &[],
        b"",
    )
    .await;
    assert_eq!(st, 403);
    assert!(String::from_utf8_lossy(&xml).contains("AccessDenied"));

    let e = c
        .list_objects_v2()
        .bucket("nobucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    g.stop().await;
}

#[tokio::test]
async fn delete_and_delete_objects() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("del").send().await.unwrap();
    for k in ["1", "2", "3"] {
        c.put_object()
            .bucket("del")
            .key(k)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap();
    }
    c.delete_object()
        .bucket("del")
        .key("1")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("del")
        .key("never-existed")
        .send()
        .await
        .unwrap();
    let del = Delete::builder()
        .objects(ObjectIdentifier::builder().key("2").build().unwrap())
        .objects(ObjectIdentifier::builder().key("3").build().unwrap())
        .objects(ObjectIdentifier::builder().key("4").build().unwrap())
        .build()
        .unwrap();
    let out = c
        .delete_objects()
        .bucket("del")
        .delete(del)
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 3);
    assert!(out.errors().is_empty());
    assert!(
        c.list_objects_v2()
            .bucket("del")
            .send()
            .await
            .unwrap()
            .contents()
            .is_empty()
    );
    // every backend object is gone again
    let n = backend_objects(&g).await;
    assert_eq!(n, 0);
    c.delete_bucket().bucket("del").send().await.unwrap();
    g.stop().await;
}

#[tokio::test]
async fn large_object_round_trip_and_no_plaintext_in_backend() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("big").send().await.unwrap();
    let marker = b"VAULTGATE-PLAINTEXT-MARKER-0123456789";
    let mut body = data(21 * 1024 * 1024 + 123, 5);
    for i in (0..body.len() - marker.len()).step_by(1_000_003) {
        body[i..i + marker.len()].copy_from_slice(marker);
    }
    let put = c
        .put_object()
        .bucket("big")
        .key("confidential-object-name-42")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.e_tag().unwrap(), format!("\"{}\"", md5_hex(&body)));
    let head = c
        .head_object()
        .bucket("big")
        .key("confidential-object-name-42")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(body.len() as i64));
    let got = get_bytes(c, "big", "confidential-object-name-42", None).await;
    assert_eq!(got.len(), body.len());
    assert_eq!(sha256_hex(&got), sha256_hex(&body));
    let mid = get_bytes(
        c,
        "big",
        "confidential-object-name-42",
        Some("bytes=10000000-10999999"),
    )
    .await;
    assert_eq!(&mid[..], &body[10_000_000..11_000_000]);

    // the backend holds only ciphertext: no marker, no key name, anywhere in the data dir
    let files = files_under(&g.data_dir());
    assert!(!files.is_empty());
    let mut backend_bytes = 0u64;
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        if f.starts_with(g.data_dir().join("objects")) {
            backend_bytes += bytes.len() as u64;
            assert!(
                !bytes
                    .windows(27)
                    .any(|w| w == b"confidential-object-name-42"),
                "key name in backend object {f:?}"
            );
        }
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "plaintext found in {f:?}"
        );
    }
    assert!(
        backend_bytes > body.len() as u64,
        "ciphertext is stored ({backend_bytes} bytes)"
    );
    g.stop().await;
}

#[tokio::test]
async fn streaming_file_uploads_with_trailing_checksums() {
    // ByteStream::from_path is a streaming body: the SDK sends it aws-chunked with the checksum
    // in a trailer (its current default), which the gateway verifies over the plaintext.
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("stm").send().await.unwrap();
    let body = data(3 * 1024 * 1024 + 17, 8);
    let path = g.dir.path().join("upload.bin");
    std::fs::write(&path, &body).unwrap();
    for algo in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha256,
    ] {
        let key = format!("f-{}", algo.as_str());
        let put = c
            .put_object()
            .bucket("stm")
            .key(&key)
            .checksum_algorithm(algo.clone())
            .body(ByteStream::from_path(&path).await.unwrap())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{algo:?}: {e:?}"));
        assert_eq!(put.e_tag().unwrap(), format!("\"{}\"", md5_hex(&body)));
        let get = c
            .get_object()
            .bucket("stm")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(get.content_length(), Some(body.len() as i64));
        let got = get.body.collect().await.unwrap().into_bytes();
        assert_eq!(sha256_hex(&got), sha256_hex(&body));
    }
    // default settings (no explicit algorithm)
    c.put_object()
        .bucket("stm")
        .key("default")
        .body(ByteStream::from_path(&path).await.unwrap())
        .send()
        .await
        .unwrap();
    let head = c
        .head_object()
        .bucket("stm")
        .key("default")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(body.len() as i64));
    g.stop().await;
}

#[tokio::test]
async fn tampered_ciphertext_is_an_internal_error_not_data() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("tmp").send().await.unwrap();
    let body = data(200_000, 6);
    c.put_object()
        .bucket("tmp")
        .key("t")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let root = g.data_dir().join("objects");
    let files: Vec<_> = files_under(&root)
        .into_iter()
        .filter(|p| {
            p.strip_prefix(&root)
                .map(|r| !r.starts_with(".tmp"))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(files.len(), 1);
    // flip one byte in the middle of the ciphertext (well past the header, inside record 1)
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&files[0], &bytes).unwrap();

    let e = c
        .get_object()
        .bucket("tmp")
        .key("t")
        .range("bytes=100000-100099")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 500, "{e:?}");
    assert_eq!(code(&e), "InternalError");
    // a range in an untouched record still reads
    let out = c
        .get_object()
        .bucket("tmp")
        .key("t")
        .range("bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &out.body.collect().await.unwrap().into_bytes()[..],
        &body[..100]
    );
    // a full read never completes with the tampered record's bytes
    match c.get_object().bucket("tmp").key("t").send().await {
        // 500 before any byte, or a transport error once the 200 body breaks off
        Err(e) => assert!([0, 500].contains(&status(&e)), "{e:?}"),
        Ok(out) => assert!(out.body.collect().await.is_err(), "the body must break off"),
    }
    g.stop().await;
}
