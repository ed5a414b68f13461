//! In-process tests of authentication (SigV4 headers, presigned URLs, expiry, wrong secrets,
//! unsigned payloads), role checks, the bootstrap credential, and the admin listener
//! (/health, /ready, /metrics), plus restart persistence and graceful shutdown.

use crate::common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use common::*;
use policy::{Role, SecretKey};

#[tokio::test]
async fn wrong_secret_and_unknown_key_are_refused() {
    let g = start().await;
    g.client.create_bucket().bucket("aaa").send().await.unwrap();
    let bad = client_for(&g.endpoint, AK, "not-the-right-secret-0000000000");
    let e = bad.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "SignatureDoesNotMatch");
    assert_eq!(status(&e), 403);
    let e = bad
        .put_object()
        .bucket("aaa")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "SignatureDoesNotMatch");
    let unknown = client_for(&g.endpoint, "VGUNKNOWNKEY00000000", SK);
    let e = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidAccessKeyId");
    assert_eq!(status(&e), 403);
    // anonymous
    let (st, _, body) = raw(g.server.s3_addr, "GET", "/", &[], b"").await;
    assert_eq!(st, 403);
    assert!(String::from_utf8_lossy(&body).contains("AccessDenied"));
    g.stop().await;
}

#[tokio::test]
async fn presigned_urls_work_and_expire() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("pre").send().await.unwrap();
    let body = data(70_000, 9);
    // presigned PUT: an unsigned payload sent by a plain HTTP client
    let put = c
        .put_object()
        .bucket("pre")
        .key("up")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = put.uri().parse().unwrap();
    let (st, head, resp) = raw(
        g.server.s3_addr,
        "PUT",
        uri.path_and_query().unwrap().as_str(),
        &[],
        &body,
    )
    .await;
    assert_eq!(st, 200, "{head} {}", String::from_utf8_lossy(&resp));
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("etag: \"{}\"", md5_hex(&body))),
        "{head}"
    );

    let get = c
        .get_object()
        .bucket("pre")
        .key("up")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = get.uri().parse().unwrap();
    let (st, head, got) = raw(
        g.server.s3_addr,
        "GET",
        uri.path_and_query().unwrap().as_str(),
        &[],
        b"",
    )
    .await;
    assert_eq!(st, 200, "{head}");
    assert_eq!(sha256_hex(&got), sha256_hex(&body));

    // signed an hour ago for 60 s: expired
    let expired_cfg = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap();
    let old = c
        .get_object()
        .bucket("pre")
        .key("up")
        .presigned(expired_cfg)
        .await
        .unwrap();
    let uri: http::Uri = old.uri().parse().unwrap();
    let (st, _, body403) = raw(
        g.server.s3_addr,
        "GET",
        uri.path_and_query().unwrap().as_str(),
        &[],
        b"",
    )
    .await;
    assert_eq!(st, 403);
    let text = String::from_utf8_lossy(&body403);
    assert!(
        text.contains("<Code>AccessDenied</Code>") && text.contains("Request has expired"),
        "{text}"
    );

    // tampered signature
    let pq = uri.path_and_query().unwrap().as_str().to_owned();
    let last = pq.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &pq[..pq.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let (st, _, _) = raw(g.server.s3_addr, "GET", &tampered, &[], b"").await;
    assert_eq!(st, 403);
    g.stop().await;
}

#[tokio::test]
async fn roles_limit_what_a_key_may_do() {
    let g = start().await;
    g.client.create_bucket().bucket("rol").send().await.unwrap();
    g.client
        .put_object()
        .bucket("rol")
        .key("k")
        .body(ByteStream::from_static(b"v"))
        .send()
        .await
        .unwrap();
    let store = g.server.authz.store();
    for (name, role, id, secret) in [
        (
            "viewer",
            Role::Viewer,
            "VGVIEWER000000000001",
            "viewer-secret-0123456789",
        ),
        (
            "manager",
            Role::Manager,
            "VGMANAGER00000000001",
            "manager-secret-0123456789",
        ),
    ] {
        store
            .create_principal(name, "user", "default", Some(role))
            .await
            .unwrap();
        store
            .import_access_key(name, id, &SecretKey::new(secret), None)
            .await
            .unwrap();
    }
    let viewer = client_for(
        &g.endpoint,
        "VGVIEWER000000000001",
        "viewer-secret-0123456789",
    );
    let manager = client_for(
        &g.endpoint,
        "VGMANAGER00000000001",
        "manager-secret-0123456789",
    );

    let got = viewer
        .get_object()
        .bucket("rol")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"v");
    viewer.list_objects_v2().bucket("rol").send().await.unwrap();
    let e = viewer
        .put_object()
        .bucket("rol")
        .key("v")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    assert_eq!(status(&e), 403);

    manager
        .put_object()
        .bucket("rol")
        .key("m")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let e = manager
        .delete_object()
        .bucket("rol")
        .key("m")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = manager
        .create_bucket()
        .bucket("new")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // the admin (SuperAdmin) may delete
    g.client
        .delete_object()
        .bucket("rol")
        .key("m")
        .send()
        .await
        .unwrap();
    // an operation the gateway does not serve: NotImplemented for the admin
    let e = g
        .client
        .get_bucket_logging()
        .bucket("rol")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    g.stop().await;
}

#[tokio::test]
async fn admin_listener_health_ready_metrics() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("met").send().await.unwrap();
    c.put_object()
        .bucket("met")
        .key("k")
        .body(ByteStream::from(data(1000, 1)))
        .send()
        .await
        .unwrap();
    let _ = c
        .get_object()
        .bucket("met")
        .key("k")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap();
    let _ = c
        .get_object()
        .bucket("met")
        .key("nope")
        .send()
        .await
        .unwrap_err();

    let (st, _, body) = raw(g.server.admin_addr, "GET", "/health", &[], b"").await;
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("ok"));
    let (st, _, body) = raw(g.server.admin_addr, "GET", "/ready", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["checks"]["index"], "ok");
    assert_eq!(v["checks"]["backend"], "ok");
    assert_eq!(v["checks"]["keys"], "ok");
    let (st, _, body) = raw(g.server.admin_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(st, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("vaultgate_s3_requests_total{op=\"PutObject\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("vaultgate_s3_requests_total{op=\"GetObject\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("vaultgate_s3_request_duration_seconds_bucket{op=\"GetObject\""),
        "{text}"
    );
    assert!(text.contains("vaultgate_s3_in_flight_requests 0"), "{text}");
    // the database time of the hot paths (process-wide: other tests add to the counts) and
    // the instances sharing the rate limits (one on SQLite)
    for series in [
        "vaultgate_db_query_seconds_count{op=\"get_version\",store=\"index\"} ",
        "vaultgate_db_query_seconds_count{op=\"write_batch\",store=\"index\"} ",
        "vaultgate_db_query_seconds_count{op=\"append_batch\",store=\"audit\"} ",
        "vaultgate_db_query_seconds_count{op=\"access_load\",store=\"policy\"} ",
    ] {
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing in {text}"));
        assert!(n >= 1, "{series}{n}");
    }
    assert!(text.contains("vaultgate_instances_live 1"), "{text}");
    let bytes_in: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("vaultgate_s3_bytes_in_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert_eq!(bytes_in, 1000);
    let bytes_out: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("vaultgate_s3_bytes_out_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(bytes_out >= 1000, "{bytes_out}");
    g.stop().await;
}

#[tokio::test]
async fn bootstrap_key_is_generated_once_and_persists_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = gateway::config::Config {
        access_key: None,
        secret_key: None,
        ..config(dir.path())
    };
    let first = gateway::server::start(cfg.clone(), common::admin_api)
        .await
        .unwrap();
    let boot = first
        .bootstrap
        .as_ref()
        .expect("a key is generated on first start");
    let (ak, sk) = (boot.access_key.clone(), boot.secret_key.expose().to_owned());
    assert!(ak.starts_with("VG"));
    assert!(format!("{:?}", first.bootstrap).contains("[redacted]"));
    let c = client_for(&format!("http://{}", first.s3_addr), &ak, &sk);
    c.create_bucket().bucket("persist").send().await.unwrap();
    c.put_object()
        .bucket("persist")
        .key("k")
        .body(ByteStream::from(data(100_000, 7)))
        .send()
        .await
        .unwrap();
    first.shutdown().await;

    // second start: no new key, old key and data still work
    cfg.s3_addr = "127.0.0.1:0".into();
    let second = gateway::server::start(cfg, common::admin_api)
        .await
        .unwrap();
    assert!(second.bootstrap.is_none());
    let c = client_for(&format!("http://{}", second.s3_addr), &ak, &sk);
    let got = c
        .get_object()
        .bucket("persist")
        .key("k")
        .send()
        .await
        .unwrap();
    let got = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(sha256_hex(&got), sha256_hex(&data(100_000, 7)));
    second.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let g = start().await;
    let c = g.client.clone();
    c.create_bucket().bucket("sdn").send().await.unwrap();
    let body = data(8 * 1024 * 1024, 3);
    c.put_object()
        .bucket("sdn")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let out = c.get_object().bucket("sdn").key("k").send().await.unwrap();
    let s3_addr = g.server.s3_addr;
    let stopper = tokio::spawn(async move { g.server.shutdown().await });
    // the response that started before shutdown completes
    let got = out.body.collect().await.unwrap().into_bytes();
    assert_eq!(sha256_hex(&got), sha256_hex(&body));
    stopper.await.unwrap();
    // and nothing listens any more
    assert!(tokio::net::TcpStream::connect(s3_addr).await.is_err());
}

#[tokio::test]
async fn body_shorter_than_content_length_is_incomplete_and_not_stored() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("inc").send().await.unwrap();
    let put = c
        .put_object()
        .bucket("inc")
        .key("short")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = put.uri().parse().unwrap();
    let addr = g.server.s3_addr;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000\r\n\r\n",
        uri.path_and_query().unwrap()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&data(40_000, 1)).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("<Code>IncompleteBody</Code>"), "{text}");
    let e = c
        .head_object()
        .bucket("inc")
        .key("short")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    assert_eq!(backend_objects(&g).await, 0);
    g.stop().await;
}

#[tokio::test]
async fn ready_is_503_and_names_the_failing_dependency() {
    let g = start().await;
    let (st, _, _) = raw(g.server.admin_addr, "GET", "/ready", &[], b"").await;
    assert_eq!(st, 200);
    // the index goes away (pool closed): not ready, and the JSON says which check failed
    g.server.store.index().close().await;
    let (st, _, body) = raw(g.server.admin_addr, "GET", "/ready", &[], b"").await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["status"], "unavailable");
    assert!(
        v["checks"]["index"].as_str().unwrap().starts_with("error"),
        "{v}"
    );
    assert_eq!(v["checks"]["backend"], "ok");
    // liveness is unaffected
    let (st, _, _) = raw(g.server.admin_addr, "GET", "/health", &[], b"").await;
    assert_eq!(st, 200);
    // S3 requests answer 503 ServiceUnavailable, not 500
    let e = g.client.list_buckets().send().await.unwrap_err();
    assert_eq!(status(&e), 503, "{e:?}");
    g.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("exp").send().await.unwrap();
    let put = c
        .put_object()
        .bucket("exp")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = put.uri().parse().unwrap();
    let addr = g.server.s3_addr;
    let body = data(50_000, 4);
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        uri.path_and_query().unwrap(),
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // the interim response arrives without the client sending any body byte
    let mut buf = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("100 Continue in time")
        .unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    s.write_all(&body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // an empty body gets no "100 Continue" from hyper: the connection is closed after the
    // response so that clients (botocore) do not misparse the next response on it
    let empty = c
        .put_object()
        .bucket("exp")
        .key("empty")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uri0: http::Uri = empty.uri().parse().unwrap();
    // keep-alive request (no Connection: close from the client): the server must close
    let mut s0 = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req0 = format!(
        "PUT {} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
        uri0.path_and_query().unwrap()
    );
    s0.write_all(req0.as_bytes()).await.unwrap();
    let mut head0 = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s0.read_to_end(&mut head0))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let head0 = String::from_utf8_lossy(&head0).into_owned();
    assert!(head0.starts_with("HTTP/1.1 200"), "{head0}");
    assert!(
        head0.to_ascii_lowercase().contains("connection: close"),
        "{head0}"
    );
    let got = c.get_object().bucket("exp").key("k").send().await.unwrap();
    assert_eq!(
        sha256_hex(&got.body.collect().await.unwrap().into_bytes()),
        sha256_hex(&body)
    );
    g.stop().await;
}
