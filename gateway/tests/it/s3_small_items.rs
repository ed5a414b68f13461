//! The smaller S3 behaviours of issue 16 item 8, against the in-process gateway: ListBuckets
//! paging, re-creating your own bucket (200 in us-east-1, 409 elsewhere), ListObjects v1's
//! `<Marker>` and an empty delimiter, `GET ?partNumber` beyond the part count, a repeated
//! CompleteMultipartUpload, `aws-chunked` kept out of the stored Content-Encoding, and a PUT
//! with `Transfer-Encoding: chunked` and no Content-Length.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::*;

async fn presigned_path<F, Fut>(make: F) -> String
where
    F: FnOnce(aws_sdk_s3::presigning::PresigningConfig) -> Fut,
    Fut: std::future::Future<Output = aws_sdk_s3::presigning::PresignedRequest>,
{
    let cfg =
        aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60))
            .unwrap();
    let p = make(cfg).await;
    let uri: http::Uri = p.uri().parse().unwrap();
    uri.path_and_query().unwrap().as_str().to_owned()
}

#[tokio::test]
async fn list_buckets_pages_and_recreate() {
    let g = start().await;
    let c = &g.client;
    for b in ["pg-a", "pg-b", "pg-c", "other"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = c
            .list_buckets()
            .prefix("pg-")
            .max_buckets(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        let names: Vec<String> = out
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect();
        assert!(names.len() <= 2);
        seen.extend(names);
        match out.continuation_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["pg-a", "pg-b", "pg-c"]);
    // exactly one page: no token
    let out = c.list_buckets().max_buckets(4).send().await.unwrap();
    assert_eq!((out.buckets().len(), out.continuation_token()), (4, None));
    for bad in [0, 10_001] {
        let e = c.list_buckets().max_buckets(bad).send().await.unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    }
    // re-creating your own bucket in us-east-1: 200, its objects untouched
    c.put_object()
        .bucket("pg-a")
        .key("k")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .unwrap();
    c.create_bucket().bucket("pg-a").send().await.unwrap();
    let got = c.get_object().bucket("pg-a").key("k").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"kept");
    // another tenant's name: taken (409 BucketAlreadyExists, as S3 answers; the access check
    // refuses it), never "owned by you"
    let store = g.server.authz.store();
    store.create_tenant("t2").await.unwrap();
    store
        .create_principal("t2-root", "user", "t2", Some(policy::Role::SuperAdmin))
        .await
        .unwrap();
    let k = store.create_access_key("t2-root", None).await.unwrap();
    let other = client_for(&g.endpoint, &k.access_key_id, k.secret.expose());
    let e = other
        .create_bucket()
        .bucket("pg-a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e).as_str()),
        (409, "BucketAlreadyExists")
    );
    // the bucket is still the first tenant's, its object untouched
    let got = c.get_object().bucket("pg-a").key("k").send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"kept");
    // a caller without the right to create buckets gets the access check's 403, as for any name
    store
        .create_principal("t2-viewer", "user", "t2", Some(policy::Role::Viewer))
        .await
        .unwrap();
    let k = store.create_access_key("t2-viewer", None).await.unwrap();
    let viewer = client_for(&g.endpoint, &k.access_key_id, k.secret.expose());
    for name in ["pg-a", "pg-fresh"] {
        let e = viewer
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (status(&e), code(&e).as_str()),
            (403, "AccessDenied"),
            "{name}"
        );
    }
    // names with a dash next to a dot
    for bad in ["a-.b", "a.-b"] {
        let e = c.create_bucket().bucket(bad).send().await.unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidBucketName"));
    }
    // names s3s refuses while parsing the path (too short, upper case) carry AWS's message
    // too (aws cli printed "Unknown" without one), and the body's request id is the header's
    for bad in ["ab", "Upper-Case"] {
        let e = c.create_bucket().bucket(bad).send().await.unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidBucketName"));
        assert_eq!(
            aws_sdk_s3::error::ProvideErrorMetadata::message(&e),
            Some("The specified bucket is not valid."),
            "{bad}"
        );
        let raw = e.raw_response().expect("a response");
        let header = raw.headers().get("x-amz-request-id").expect("request id");
        let body = std::str::from_utf8(raw.body().bytes().expect("body")).unwrap();
        assert!(
            body.contains(&format!("<RequestId>{header}</RequestId>")),
            "{body}"
        );
    }
    g.stop().await;
}

#[tokio::test]
async fn recreating_your_bucket_elsewhere_than_us_east_1_is_409() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.region = "eu-west-1".into();
    let server = gateway::server::start(cfg, admin_api).await.unwrap();
    let endpoint = format!("http://{}", server.s3_addr);
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("eu-west-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            AK, SK, None, None, "t",
        ))
        .force_path_style(true)
        .build();
    let c = aws_sdk_s3::Client::from_conf(conf);
    let loc = aws_sdk_s3::types::CreateBucketConfiguration::builder()
        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
        .build();
    c.create_bucket()
        .bucket("eu1")
        .create_bucket_configuration(loc.clone())
        .send()
        .await
        .unwrap();
    let e = c
        .create_bucket()
        .bucket("eu1")
        .create_bucket_configuration(loc)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e).as_str()),
        (409, "BucketAlreadyOwnedByYou")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn list_v1_marker_and_empty_delimiter() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("lv1").send().await.unwrap();
    for k in ["a/1", "b"] {
        c.put_object()
            .bucket("lv1")
            .key(k)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    // the SDK reads an absent element as None and an empty one as Some("")
    let out = c
        .list_objects()
        .bucket("lv1")
        .delimiter("")
        .send()
        .await
        .unwrap();
    assert_eq!(out.marker(), Some(""));
    assert_eq!(out.delimiter(), None);
    assert_eq!(out.contents().len(), 2);
    // a delimiter is still echoed, and groups
    let out = c
        .list_objects()
        .bucket("lv1")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    assert_eq!(out.delimiter(), Some("/"));
    assert_eq!(out.common_prefixes().len(), 1);
    g.stop().await;
}

#[tokio::test]
async fn parts_beyond_the_count_and_repeated_complete() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("mp1").send().await.unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("mp1")
        .key("big")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part1 = data(5 * 1024 * 1024, 1);
    let part2 = data(1000, 2);
    let mut parts = Vec::new();
    for (n, body) in [(1, &part1), (2, &part2)] {
        let out = c
            .upload_part()
            .bucket("mp1")
            .key("big")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    let done = CompletedMultipartUpload::builder()
        .set_parts(Some(parts.clone()))
        .build();
    let first = c
        .complete_multipart_upload()
        .bucket("mp1")
        .key("big")
        .upload_id(id)
        .multipart_upload(done.clone())
        .send()
        .await
        .unwrap();
    // the same request again: 200, the same ETag, nothing else changed
    let again = c
        .complete_multipart_upload()
        .bucket("mp1")
        .key("big")
        .upload_id(id)
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    assert_eq!(again.e_tag(), first.e_tag());
    let versions = c.list_object_versions().bucket("mp1").send().await.unwrap();
    assert_eq!(versions.versions().len(), 1);
    // other parts under the finished id: NoSuchUpload
    let wrong = CompletedMultipartUpload::builder()
        .parts(parts[0].clone())
        .build();
    let e = c
        .complete_multipart_upload()
        .bucket("mp1")
        .key("big")
        .upload_id(id)
        .multipart_upload(wrong)
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchUpload"));
    // partNumber: each part, then beyond the count
    let got = c
        .get_object()
        .bucket("mp1")
        .key("big")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(got.parts_count(), Some(2));
    assert_eq!(
        md5_hex(&got.body.collect().await.unwrap().into_bytes()),
        md5_hex(&part2)
    );
    let e = c
        .get_object()
        .bucket("mp1")
        .key("big")
        .part_number(3)
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidPart"));
    // a single-part object has part 1 only
    c.put_object()
        .bucket("mp1")
        .key("small")
        .body(ByteStream::from_static(b"abc"))
        .send()
        .await
        .unwrap();
    let e = c
        .get_object()
        .bucket("mp1")
        .key("small")
        .part_number(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidPart"));
    let one = c
        .get_object()
        .bucket("mp1")
        .key("small")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(&one.body.collect().await.unwrap().into_bytes()[..], b"abc");
    g.stop().await;
}

#[tokio::test]
async fn aws_chunked_is_not_a_stored_content_encoding() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("ce1").send().await.unwrap();
    for (sent, stored) in [
        ("gzip", Some("gzip")),
        ("gzip, aws-chunked", Some("gzip")),
        ("aws-chunked, gzip", Some("gzip")),
        ("aws-chunked", None),
    ] {
        c.put_object()
            .bucket("ce1")
            .key("k")
            .content_encoding(sent)
            .body(ByteStream::from_static(b"zz"))
            .send()
            .await
            .unwrap();
        let h = c.head_object().bucket("ce1").key("k").send().await.unwrap();
        assert_eq!(h.content_encoding(), stored, "{sent}");
    }
    g.stop().await;
}

#[tokio::test]
async fn a_chunked_put_without_content_length() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("te1").send().await.unwrap();
    let path = presigned_path(|cfg| async move {
        c.put_object()
            .bucket("te1")
            .key("streamed")
            .presigned(cfg)
            .await
            .unwrap()
    })
    .await;
    // HTTP/1.1 chunked body, no Content-Length
    let mut s = tokio::net::TcpStream::connect(g.server.s3_addr)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        g.server.s3_addr
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let got = c
        .get_object()
        .bucket("te1")
        .key("streamed")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_length(), Some(11));
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"hello world"
    );
    g.stop().await;
}

/// A header-signed PUT (payload hash or UNSIGNED-PAYLOAD) sent `Transfer-Encoding: chunked`
/// without Content-Length, as RGW takes it (botocore with a streaming body, curl -T -).
async fn chunked_signed_put(
    g: &TestGateway,
    key: &str,
    chunks: &[&[u8]],
    unsigned: bool,
    claimed: Option<&[u8]>,
) -> (u16, String) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body: Vec<u8> = chunks.concat();
    let payload = if unsigned {
        "UNSIGNED-PAYLOAD".to_owned()
    } else {
        sha256_hex(claimed.unwrap_or(&body))
    };
    let host = g.server.s3_addr.to_string();
    let path = format!("/te1/{key}");
    let mut headers = vec![
        ("host".to_owned(), host),
        ("x-amz-content-sha256".to_owned(), payload.clone()),
        ("transfer-encoding".to_owned(), "chunked".to_owned()),
    ];
    let identity = aws_credential_types::Credentials::new(AK, SK, None, None, "t").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "PUT",
        &path,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(payload),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (k, v) in instructions.headers() {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
        headers.push((k.to_owned(), v.to_owned()));
    }
    let mut s = tokio::net::TcpStream::connect(g.server.s3_addr)
        .await
        .unwrap();
    let mut req = format!("PUT {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in &headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    for c in chunks {
        s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(c).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn header_signed_chunked_puts() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("te1").send().await.unwrap();
    for (key, unsigned) in [("hashed", false), ("unsigned", true)] {
        let (st, text) = chunked_signed_put(&g, key, &[b"hello", b" world"], unsigned, None).await;
        assert_eq!(st, 200, "{text}");
        let got = c.get_object().bucket("te1").key(key).send().await.unwrap();
        assert_eq!(
            &got.body.collect().await.unwrap().into_bytes()[..],
            b"hello world"
        );
    }
    // a body that is not the one signed: refused, nothing stored
    let (st, text) = chunked_signed_put(&g, "tampered", &[b"abc"], false, Some(b"abd")).await;
    assert_eq!(st, 400, "{text}");
    assert!(
        text.contains("XAmzContentSHA256Mismatch") || text.contains("BadDigest"),
        "{text}"
    );
    assert!(
        c.head_object()
            .bucket("te1")
            .key("tampered")
            .send()
            .await
            .is_err()
    );
    // over the in-memory bound: 411 MissingContentLength, nothing stored
    let big = vec![7u8; 1024 * 1024];
    let chunks: Vec<&[u8]> = (0..17).map(|_| big.as_slice()).collect();
    let (st, text) = chunked_signed_put(&g, "big", &chunks, true, None).await;
    assert_eq!(st, 411, "{text}");
    assert!(text.contains("MissingContentLength"), "{text}");
    assert!(
        c.head_object()
            .bucket("te1")
            .key("big")
            .send()
            .await
            .is_err()
    );
    g.stop().await;
}
