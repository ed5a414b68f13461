//! The audit ledger on the S3 request path, through the real gateway and aws-sdk-s3: every
//! request leaves exactly one event with the right fields (allowed, denied and bad-signature
//! requests too), changes fail closed with 503 when the ledger cannot record (object store
//! unchanged), reads follow the read policy, and 32 parallel clients leave an intact chain
//! with one event per request.

use crate::common;

use std::collections::BTreeMap;

use audit::{AuditQuery, Outcome, StoredEvent};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use common::*;

/// A client that does not retry (each call is exactly one request).
fn once_client(endpoint: &str, ak: &str, sk: &str) -> Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// Every event, oldest first.
async fn events(g: &TestGateway) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = g
            .server
            .audit
            .ledger
            .query(&AuditQuery {
                before_seq: before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("query");
        out.extend(page.events);
        match page.next_before_seq {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    out.reverse();
    out
}

/// Sum of `vaultgate_s3_requests_total` per op.
fn requests_per_op(g: &TestGateway) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for line in g.server.metrics.render().lines() {
        let Some(rest) = line.strip_prefix("vaultgate_s3_requests_total{op=\"") else {
            continue;
        };
        let op = rest.split('"').next().unwrap_or_default().to_owned();
        let n: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        *m.entry(op).or_default() += n;
    }
    m
}

fn events_per_action(ev: &[StoredEvent]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for e in ev {
        *m.entry(e.action.clone()).or_default() += 1;
    }
    m
}

fn metric(g: &TestGateway, name: &str) -> u64 {
    g.server
        .metrics
        .render()
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn find<'a>(ev: &'a [StoredEvent], action: &str) -> Vec<&'a StoredEvent> {
    ev.iter().filter(|e| e.action == action).collect()
}

async fn verify_ok(g: &TestGateway) -> audit::VerifyReport {
    let db = common::config(g.dir.path()).database_url();
    let report = audit::cli::verify_database(&db, None)
        .await
        .expect("verify runs");
    assert!(report.is_ok(), "{report}");
    report
}

#[tokio::test]
async fn every_request_leaves_exactly_one_event_with_its_fields() {
    let g = start().await;
    let c = once_client(&g.endpoint, AK, SK);
    let body = b"hello".to_vec();
    let big = data(5 * 1024 * 1024, 7);

    c.create_bucket().bucket("bkt1").send().await.unwrap();
    c.put_object()
        .bucket("bkt1")
        .key("dir/a.txt")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    c.head_object()
        .bucket("bkt1")
        .key("dir/a.txt")
        .send()
        .await
        .unwrap();
    let got = c
        .get_object()
        .bucket("bkt1")
        .key("dir/a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"hello"
    );
    let e = c
        .get_object()
        .bucket("bkt1")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    c.list_objects_v2().bucket("bkt1").send().await.unwrap();
    c.copy_object()
        .bucket("bkt1")
        .key("copy.txt")
        .copy_source("bkt1/dir/a.txt")
        .send()
        .await
        .unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("bkt1")
        .key("mp.bin")
        .send()
        .await
        .unwrap();
    let uid = up.upload_id().unwrap().to_owned();
    let p1 = c
        .upload_part()
        .bucket("bkt1")
        .key("mp.bin")
        .upload_id(&uid)
        .part_number(1)
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket("bkt1")
        .key("mp.bin")
        .upload_id(&uid)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p1.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let e = c.delete_bucket().bucket("bkt1").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
    c.delete_objects()
        .bucket("bkt1")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("copy.txt").build().unwrap())
                .objects(ObjectIdentifier::builder().key("mp.bin").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("bkt1")
        .key("dir/a.txt")
        .send()
        .await
        .unwrap();
    c.list_buckets().send().await.unwrap();
    // a wrong secret: SignatureDoesNotMatch; an unknown key: InvalidAccessKeyId
    let bad = once_client(&g.endpoint, AK, "not-the-secret-0123456789");
    let e = bad
        .get_object()
        .bucket("bkt1")
        .key("dir/a.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403);
    let unknown = once_client(&g.endpoint, "VGNOSUCHKEY000000000", SK);
    let e = unknown
        .put_object()
        .bucket("bkt1")
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403);
    // an unsigned request over raw HTTP: the response names its request id
    let (st, head, body) = raw(g.server.s3_addr, "GET", "/bkt1/dir/a.txt", &[], b"").await;
    assert_eq!(st, 403);
    let rid = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-amz-request-id: ")
                .map(|v| v.trim().to_ascii_uppercase())
        })
        .expect("x-amz-request-id on an error response");
    // ... and the error body names the same id, as S3 does
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains(&format!("<RequestId>{rid}</RequestId></Error>")),
        "{body}"
    );
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    c.delete_bucket().bucket("bkt1").send().await.unwrap();

    let ev = events(&g).await;
    // 18 requests, 18 events, seq 1..=18 without gaps
    assert_eq!(
        ev.len(),
        18,
        "{:#?}",
        ev.iter().map(|e| (&e.action, e.status)).collect::<Vec<_>>()
    );
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1);
    }
    let ids: std::collections::BTreeSet<_> = ev.iter().map(|e| e.request_id.clone()).collect();
    assert_eq!(ids.len(), ev.len(), "one event per request id");
    assert_eq!(events_per_action(&ev), requests_per_op(&g));

    let put = find(&ev, "PutObject");
    assert_eq!(put.len(), 2);
    let p = put[0];
    assert_eq!(
        (
            p.principal.as_deref(),
            p.bucket.as_deref(),
            p.key.as_deref()
        ),
        (Some("admin"), Some("bkt1"), Some("dir/a.txt"))
    );
    assert_eq!(
        (p.outcome, p.status, p.bytes_in),
        (Outcome::Success, 200, 5)
    );
    assert!(p.key_version.is_some());
    assert_eq!(p.source.as_deref(), Some("127.0.0.1"));
    assert_eq!(p.kind, audit::EventKind::S3);

    let gets = find(&ev, "GetObject");
    assert_eq!(gets.len(), 4);
    assert_eq!(
        (gets[0].status, gets[0].bytes_out, gets[0].outcome),
        (200, 5, Outcome::Success)
    );
    assert!(gets[0].key_version.is_some());
    assert_eq!(
        (
            gets[1].status,
            gets[1].error_code.as_deref(),
            gets[1].outcome
        ),
        (404, Some("NoSuchKey"), Outcome::Error)
    );
    // bad signature: denied, the key is known but not authenticated
    assert_eq!((gets[2].status, gets[2].outcome), (403, Outcome::Denied));
    assert_eq!(gets[2].error_code.as_deref(), Some("SignatureDoesNotMatch"));
    // unsigned: denied, no principal, the id returned to the client
    assert_eq!((gets[3].status, gets[3].outcome), (403, Outcome::Denied));
    assert_eq!(gets[3].principal, None);
    assert_eq!(gets[3].request_id, rid);

    let denied_put = put[1];
    assert_eq!(
        (denied_put.status, denied_put.outcome),
        (403, Outcome::Denied)
    );
    assert_eq!(denied_put.error_code.as_deref(), Some("InvalidAccessKeyId"));
    assert_eq!(denied_put.principal, None);

    let head = find(&ev, "HeadObject")[0];
    assert_eq!((head.status, head.bytes_out), (200, 0));
    let part = find(&ev, "UploadPart")[0];
    assert_eq!(part.bytes_in, big.len() as i64);
    assert!(part.key_version.is_some());
    let complete = find(&ev, "CompleteMultipartUpload")[0];
    assert_eq!(
        (complete.key.as_deref(), complete.status),
        (Some("mp.bin"), 200)
    );
    let db = find(&ev, "DeleteBucket");
    assert_eq!(db.len(), 2);
    assert_eq!(
        (db[0].status, db[0].error_code.as_deref(), db[0].outcome),
        (409, Some("BucketNotEmpty"), Outcome::Error)
    );
    assert_eq!((db[1].status, db[1].outcome), (204, Outcome::Success));
    assert_eq!(find(&ev, "DeleteObjects").len(), 1);
    assert_eq!(find(&ev, "CopyObject")[0].bytes_in, 0);
    assert_eq!(find(&ev, "CreateBucket")[0].status, 200);
    assert!(ev.iter().all(|e| e.duration_us > 0 || e.status >= 400));

    assert_eq!(
        metric(&g, "vaultgate_s3_denied_total{operation=\"GetObject\"}"),
        2
    );
    assert_eq!(
        metric(&g, "vaultgate_s3_denied_total{operation=\"PutObject\"}"),
        1
    );
    assert_eq!(metric(&g, "file_downloads_total{status=\"200\"}"), 1);
    assert_eq!(metric(&g, "file_downloads_total{status=\"404\"}"), 1);
    assert_eq!(metric(&g, "file_download_bytes_total"), 5);
    assert_eq!(metric(&g, "vaultgate_audit_failures_total"), 0);
    verify_ok(&g).await;
    g.stop().await;
}

/// Makes every append fail, as a read-only or broken audit store would.
async fn break_ledger(g: &TestGateway) {
    refuse_appends(g, true).await;
}

async fn repair_ledger(g: &TestGateway) {
    refuse_appends(g, false).await;
}

async fn refuse_appends(g: &TestGateway, on: bool) {
    let pool = g.server.store.index().write_pool();
    let dialect = audit::db::Dialect::of(pool);
    for sql in audit::db::test_refuse_inserts(dialect, "audit_events", "audit_refuses", on) {
        sqlx::query(&sql).execute(pool).await.expect("trigger");
    }
}

async fn keys_of(c: &Client, bucket: &str) -> Vec<String> {
    c.list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn changes_fail_closed_and_reads_follow_the_read_policy() {
    let g = start().await;
    let c = once_client(&g.endpoint, AK, SK);
    c.create_bucket().bucket("fcb").send().await.unwrap();
    c.put_object()
        .bucket("fcb")
        .key("keep.txt")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("fcb")
        .key("mp.bin")
        .send()
        .await
        .unwrap();
    let uid = up.upload_id().unwrap().to_owned();
    let p1 = c
        .upload_part()
        .bucket("fcb")
        .key("mp.bin")
        .upload_id(&uid)
        .part_number(1)
        .body(ByteStream::from_static(b"last part may be small"))
        .send()
        .await
        .unwrap();
    let keys_before = keys_of(&c, "fcb").await;
    let blobs_before = backend_objects(&g).await;
    let head_before = g.server.audit.ledger.head().await.unwrap();
    let failures_before = metric(&g, "vaultgate_audit_failures_total");

    break_ledger(&g).await;
    let e = c
        .put_object()
        .bucket("fcb")
        .key("new.txt")
        .body(ByteStream::from_static(b"never visible"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (503, "ServiceUnavailable"));
    let e = c
        .delete_object()
        .bucket("fcb")
        .key("keep.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (503, "ServiceUnavailable"));
    let e = c.create_bucket().bucket("fcb2").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (503, "ServiceUnavailable"));
    let e = c
        .complete_multipart_upload()
        .bucket("fcb")
        .key("mp.bin")
        .upload_id(&uid)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p1.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (503, "ServiceUnavailable"));
    let e = c
        .delete_objects()
        .bucket("fcb")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key("keep.txt").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 503);
    // reads: fail closed by default, before any byte of the object is sent
    let e = c
        .get_object()
        .bucket("fcb")
        .key("keep.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (503, "ServiceUnavailable"));
    assert_eq!(metric(&g, "file_download_bytes_total"), 0);
    assert!(metric(&g, "vaultgate_audit_failures_total") >= failures_before + 6);
    repair_ledger(&g).await;

    // nothing changed: same keys, same backend objects, the bucket was not created, the
    // upload is still open, and the ledger holds no event of the refused requests
    assert_eq!(keys_of(&c, "fcb").await, keys_before);
    assert_eq!(backend_objects(&g).await, blobs_before);
    let e = c.head_bucket().bucket("fcb2").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    c.list_parts()
        .bucket("fcb")
        .key("mp.bin")
        .upload_id(&uid)
        .send()
        .await
        .unwrap();
    let ev = events(&g).await;
    assert!(
        ev.iter()
            .all(|e| e.seq <= head_before.seq || e.status != 503)
    );
    let got = c
        .get_object()
        .bucket("fcb")
        .key("keep.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"kept"
    );
    verify_ok(&g).await;
    g.stop().await;
}

#[tokio::test]
async fn fail_open_reads_are_served_while_writes_still_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.audit_read_policy = audit::ReadPolicy::FailOpen;
    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .unwrap();
    let endpoint = format!("http://{}", server.s3_addr);
    let g = TestGateway {
        client: client_for(&endpoint, AK, SK),
        server,
        dir,
        endpoint,
    };
    let c = once_client(&g.endpoint, AK, SK);
    c.create_bucket().bucket("fob").send().await.unwrap();
    c.put_object()
        .bucket("fob")
        .key("a")
        .body(ByteStream::from_static(b"open read"))
        .send()
        .await
        .unwrap();
    break_ledger(&g).await;
    let got = c.get_object().bucket("fob").key("a").send().await.unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"open read"
    );
    let e = c
        .put_object()
        .bucket("fob")
        .key("b")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 503);
    assert!(metric(&g, "vaultgate_audit_failures_total") >= 2);
    repair_ledger(&g).await;
    assert_eq!(keys_of(&c, "fob").await, vec!["a".to_owned()]);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_clients_leave_one_event_per_request_and_an_intact_chain() {
    let g = start().await;
    let c = once_client(&g.endpoint, AK, SK);
    c.create_bucket().bucket("par").send().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let c = once_client(&g.endpoint, AK, SK);
        tasks.push(tokio::spawn(async move {
            let key = format!("k{i}");
            let body = data(1000 + i as usize, i);
            c.put_object()
                .bucket("par")
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
            let got = c.get_object().bucket("par").key(&key).send().await.unwrap();
            assert_eq!(
                got.body.collect().await.unwrap().into_bytes().as_ref(),
                body
            );
            c.head_object()
                .bucket("par")
                .key(&key)
                .send()
                .await
                .unwrap();
            c.list_objects_v2().bucket("par").send().await.unwrap();
            let _ = c
                .get_object()
                .bucket("par")
                .key(format!("absent{i}"))
                .send()
                .await
                .unwrap_err();
            if i % 2 == 0 {
                c.delete_object()
                    .bucket("par")
                    .key(&key)
                    .send()
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ev = events(&g).await;
    let sent = 1 + 32 * 5 + 16;
    assert_eq!(ev.len(), sent);
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "no gaps");
    }
    assert_eq!(events_per_action(&ev), requests_per_op(&g));
    let report = verify_ok(&g).await;
    assert!(
        report.to_string().contains(&format!("{sent} events")),
        "{report}"
    );
    g.stop().await;
}

#[tokio::test]
async fn admin_calls_on_the_gateway_listener_are_audited_and_counted() {
    let g = start().await;
    let body = serde_json::json!({"access_key": AK, "secret_key": SK}).to_string();
    let (st, _, b) = raw(
        g.server.admin_addr,
        "POST",
        "/admin/v1/auth/token",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    let auth = format!("Bearer {}", v["token"].as_str().unwrap());
    let (st, _, _) = raw(
        g.server.admin_addr,
        "GET",
        "/admin/v1/status",
        &[("authorization", auth.as_str())],
        b"",
    )
    .await;
    assert_eq!(st, 200);
    // the audit routes answer on the gateway (the ledger is wired)
    let (st, _, b) = raw(
        g.server.admin_addr,
        "GET",
        "/admin/v1/audit?kind=admin",
        &[("authorization", auth.as_str())],
        b"",
    )
    .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    let ev = events(&g).await;
    let admin: Vec<_> = ev
        .iter()
        .filter(|e| e.kind == audit::EventKind::Admin)
        .collect();
    assert!(admin.len() >= 2, "{admin:#?}");
    assert!(admin.iter().all(|e| e.action.starts_with("admin.")));
    assert_eq!(admin[0].source.as_deref(), Some("127.0.0.1"));
    let text = g.server.metrics.render();
    assert!(text.contains("admin_operations_total{operation="), "{text}");
    verify_ok(&g).await;
    g.stop().await;
}

#[tokio::test]
async fn throttled_requests_are_denied_events_and_sources_can_be_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.rate_s3_writes_per_min = 2;
    cfg.audit_source = audit::SourceMode::Hash;
    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .unwrap();
    let endpoint = format!("http://{}", server.s3_addr);
    let g = TestGateway {
        client: client_for(&endpoint, AK, SK),
        server,
        dir,
        endpoint,
    };
    let c = once_client(&g.endpoint, AK, SK);
    c.create_bucket().bucket("thr").send().await.unwrap();
    c.put_object()
        .bucket("thr")
        .key("a")
        .body(ByteStream::from_static(b"a"))
        .send()
        .await
        .unwrap();
    let e = c
        .put_object()
        .bucket("thr")
        .key("b")
        .body(ByteStream::from_static(b"b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (503, "SlowDown"));
    let ev = events(&g).await;
    assert_eq!(ev.len(), 3);
    let last = &ev[2];
    assert_eq!(
        (last.action.as_str(), last.outcome, last.status),
        ("PutObject", Outcome::Denied, 503)
    );
    assert_eq!(last.error_code.as_deref(), Some("SlowDown"));
    assert_eq!(
        metric(&g, "vaultgate_s3_throttled_total{operation=\"PutObject\"}"),
        1
    );
    // hash mode: a stable keyed digest, never the address itself
    let s = ev[0].source.as_deref().unwrap();
    assert!(s.starts_with("hmac-sha256:") && s.len() == 12 + 64, "{s}");
    assert!(ev.iter().all(|e| e.source.as_deref() == Some(s)));
    assert!(!s.contains("127.0.0.1"));
    verify_ok(&g).await;
    g.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_mid_upload_still_leaves_one_event() {
    use tokio::io::AsyncWriteExt;
    let g = start().await;
    let c = once_client(&g.endpoint, AK, SK);
    c.create_bucket().bucket("gone").send().await.unwrap();
    let presigned = c
        .put_object()
        .bucket("gone")
        .key("partial")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                300,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let uri: http::Uri = presigned.uri().parse().unwrap();
    let mut s = tokio::net::TcpStream::connect(g.server.s3_addr)
        .await
        .unwrap();
    let mut head = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\n",
        uri.path_and_query().unwrap(),
        g.server.s3_addr
    );
    for (k, v) in presigned.headers() {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&[7u8; 4096]).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(s);

    // the event arrives (from the handler's error path or from the abandoned request's task)
    let mut found = Vec::new();
    for _ in 0..100 {
        found = events(&g)
            .await
            .into_iter()
            .filter(|e| e.key.as_deref() == Some("partial"))
            .collect();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found.len(), 1, "{found:#?}");
    let e = &found[0];
    assert_eq!(
        (e.action.as_str(), e.outcome),
        ("PutObject", Outcome::Error)
    );
    // hyper reports the early EOF to the handler, which answers IncompleteBody
    assert_eq!(
        (e.status, e.error_code.as_deref()),
        (400, Some("IncompleteBody"))
    );
    assert_eq!(e.principal.as_deref(), Some("admin"));
    assert!(keys_of(&c, "gone").await.is_empty());
    for _ in 0..100 {
        if metric(&g, "vaultgate_s3_in_flight_requests") == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&g, "vaultgate_s3_in_flight_requests"), 0);
    verify_ok(&g).await;
    g.stop().await;
}

/// Issue 19, one transaction per write: a PutObject's audit event is committed by the index's
/// group commit together with the object row (the ledger's own writer commits nothing for
/// it), with every field it had before (status, bytes, key version), an unbroken chain; a
/// conditional PUT refused inside that transaction leaves no success event, only its 412.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_and_its_event_commit_in_one_transaction() {
    let g = start().await;
    let c = once_client(&g.endpoint, AK, SK);
    c.create_bucket().bucket("onetx").send().await.unwrap();
    let ledger = &g.server.audit.ledger;
    ledger.sync().await;
    let batches_before = ledger.stats().snapshot().batches;
    let writes_before = g.server.store.index().write_stats().batches;
    for i in 0..20u64 {
        c.put_object()
            .bucket("onetx")
            .key(format!("k{i}"))
            .body(ByteStream::from(data(4096 + i as usize, i)))
            .send()
            .await
            .unwrap();
    }
    ledger.sync().await;
    assert_eq!(
        ledger.stats().snapshot().batches,
        batches_before,
        "the ledger's writer committed nothing for the PUTs"
    );
    assert!(g.server.store.index().write_stats().batches >= writes_before + 20);
    // 16 at once: batched with their events, the chain still one line
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let c = once_client(&g.endpoint, AK, SK);
        tasks.push(tokio::spawn(async move {
            c.put_object()
                .bucket("onetx")
                .key(format!("p{i}"))
                .body(ByteStream::from(data(100, i)))
                .send()
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // a conditional PUT refused in the transaction: its event went with it
    let e = c
        .put_object()
        .bucket("onetx")
        .key("k0")
        .if_none_match("*")
        .body(ByteStream::from_static(b"no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    let ev = events(&g).await;
    let puts: Vec<&StoredEvent> = ev.iter().filter(|e| e.action == "PutObject").collect();
    assert_eq!(
        puts.len(),
        37,
        "one event per PUT, the refused one included"
    );
    for e in puts
        .iter()
        .filter(|e| e.key.as_deref().is_some_and(|k| k.starts_with('k')))
    {
        if e.status == 412 {
            assert_eq!(e.outcome, Outcome::Error);
            continue;
        }
        let i: usize = e.key.as_deref().unwrap()[1..].parse().unwrap();
        assert_eq!((e.status, e.outcome), (200, Outcome::Success));
        assert_eq!(e.bytes_in, 4096 + i as i64);
        assert!(e.key_version.is_some());
    }
    assert_eq!(puts.iter().filter(|e| e.status == 412).count(), 1);
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "no gaps");
    }
    verify_ok(&g).await;
    g.stop().await;
}
