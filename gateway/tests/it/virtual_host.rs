//! Virtual-hosted-style addressing (`domain` setting) against the in-process gateway, with
//! requests signed by aws-sigv4 for the Host they carry (the name does not resolve here, so the
//! request goes to the listener's address with that Host header, exactly the bytes a client
//! behind a wildcard DNS record sends): a bucket addressed by its subdomain is the bucket of the
//! operation, of the access check and of the range fallback route; path style keeps working
//! beside it; a Host under no base domain is path style; another tenant's bucket named in the
//! Host (or in the path of a virtual-hosted request) is refused, never served.

use crate::common;

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DOMAIN: &str = "s3.vg.test";

async fn start_with_domain(domain: Option<&str>) -> TestGateway {
    start_configured(|cfg| cfg.domain = domain.map(str::to_owned)).await
}

/// One SigV4-signed request to the gateway's listener with `host` as its Host header: (status,
/// head, body).
async fn signed(
    g: &TestGateway,
    creds: (&str, &str),
    method: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    signed_for(g, creds, method, (host, host), path, extra, body).await
}

/// [`signed`], signed for one Host and sent with another.
async fn signed_for(
    g: &TestGateway,
    creds: (&str, &str),
    method: &str,
    (signed_host, sent_host): (&str, &str),
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let payload = sha256_hex(body);
    let date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap();
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), signed_host.into()),
        ("x-amz-date".into(), date),
        ("x-amz-content-sha256".into(), payload.clone()),
    ];
    headers.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let identity = aws_credential_types::Credentials::new(creds.0, creds.1, None, None, "t").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        method,
        path,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(payload),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (k, v) in instructions.headers() {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
        headers.push((k.to_owned(), v.to_owned()));
    }
    headers[0].1 = sent_host.to_owned();
    send(g, method, path, &headers, body).await
}

/// The request as written, to the listener's address.
async fn send(
    g: &TestGateway,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(g.server.s3_addr)
        .await
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, out[split + 4..].to_vec())
}

fn code_of(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(body);
    t.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_owned()
}

fn vhost(g: &TestGateway, bucket: &str) -> String {
    format!("{bucket}.{DOMAIN}:{}", g.server.s3_addr.port())
}

#[tokio::test]
async fn buckets_are_addressed_by_subdomain_beside_path_style() {
    let g = start_with_domain(Some(&format!("{DOMAIN}, other.test"))).await;
    let me = (AK, SK);
    g.client.create_bucket().bucket("vb1").send().await.unwrap();
    let host = vhost(&g, "vb1");
    let payload = data(70_000, 7);
    let (st, _, b) = signed(&g, me, "PUT", &host, "/dir/obj", &[], &payload).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    // the object is the bucket's key "dir/obj": path style reads the same bytes
    let got = g
        .client
        .get_object()
        .bucket("vb1")
        .key("dir/obj")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(md5_hex(&got), md5_hex(&payload));
    // GET, a listing and an ignored (invalid) Range through the subdomain
    let (st, _, b) = signed(&g, me, "GET", &host, "/dir/obj", &[], b"").await;
    assert_eq!((st, md5_hex(&b)), (200, md5_hex(&payload)));
    let (st, _, b) = signed(
        &g,
        me,
        "GET",
        &host,
        "/dir/obj",
        &[("range", "bytes=9-2")],
        b"",
    )
    .await;
    assert_eq!((st, b.len()), (200, payload.len()), "range fallback");
    let (st, _, b) = signed(&g, me, "GET", &host, "/?list-type=2", &[], b"").await;
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&b).contains("<Key>dir/obj</Key>"));
    // the second base domain, upper case and no port work too
    let (st, _, _) = signed(&g, me, "HEAD", "VB1.Other.Test", "/dir/obj", &[], b"").await;
    assert_eq!(st, 200);
    // the base domain itself, the listener's address and an unknown name are path style
    let port = g.server.s3_addr.port();
    for h in [
        format!("{DOMAIN}:{port}"),
        g.server.s3_addr.to_string(),
        format!("localhost:{port}"),
        format!("vb1.unrelated.test:{port}"),
    ] {
        let (st, _, b) = signed(&g, me, "GET", &h, "/vb1/dir/obj", &[], b"").await;
        assert_eq!((st, md5_hex(&b)), (200, md5_hex(&payload)), "{h}");
    }
    // DELETE by subdomain, then the object is gone for path style too
    let (st, _, _) = signed(&g, me, "DELETE", &host, "/dir/obj", &[], b"").await;
    assert_eq!(st, 204);
    assert!(
        g.client
            .head_object()
            .bucket("vb1")
            .key("dir/obj")
            .send()
            .await
            .is_err()
    );
    // a signature made for one Host does not verify under another (the Host is signed), nor
    // for the same bucket in path style
    g.client.create_bucket().bucket("vb2").send().await.unwrap();
    let (st, _, b) = signed_for(&g, me, "GET", (&host, &vhost(&g, "vb2")), "/", &[], b"").await;
    assert_eq!((st, code_of(&b).as_str()), (403, "SignatureDoesNotMatch"));
    let (st, _, b) = signed(&g, me, "GET", &vhost(&g, "nosuch"), "/", &[], b"").await;
    assert_eq!((st, code_of(&b).as_str()), (404, "NoSuchBucket"));
    g.stop().await;
}

#[tokio::test]
async fn without_the_setting_a_subdomain_host_is_path_style() {
    let g = start_with_domain(None).await;
    g.client.create_bucket().bucket("pb1").send().await.unwrap();
    let host = vhost(&g, "pb1");
    // "/k" is bucket "k" in path style: not pb1's key
    let (st, _, b) = signed(&g, (AK, SK), "PUT", &host, "/k", &[], b"x").await;
    assert_ne!(st, 200, "{}", String::from_utf8_lossy(&b));
    let (st, _, _) = signed(&g, (AK, SK), "PUT", &host, "/pb1/k", &[], b"x").await;
    assert_eq!(st, 200);
    g.stop().await;
}

#[tokio::test]
async fn another_tenants_bucket_is_refused_whichever_way_it_is_named() {
    let g = start_with_domain(Some(DOMAIN)).await;
    let store = g.server.authz.store();
    store.create_tenant("acme").await.unwrap();
    store.create_tenant("globex").await.unwrap();
    let mut keys = Vec::new();
    for (name, tenant) in [("acme-root", "acme"), ("globex-root", "globex")] {
        store
            .create_principal(name, "user", tenant, Some(policy::Role::SuperAdmin))
            .await
            .unwrap();
        let k = store.create_access_key(name, None).await.unwrap();
        keys.push((k.access_key_id.clone(), k.secret.expose().to_owned()));
    }
    let acme = (keys[0].0.as_str(), keys[0].1.as_str());
    let globex = (keys[1].0.as_str(), keys[1].1.as_str());
    let (acme_host, globex_host) = (vhost(&g, "acme-b"), vhost(&g, "globex-b"));
    assert_eq!(
        signed(&g, acme, "PUT", &acme_host, "/", &[], b"").await.0,
        200
    );
    assert_eq!(
        signed(&g, globex, "PUT", &globex_host, "/", &[], b"")
            .await
            .0,
        200
    );
    let secret = b"acme's secret document";
    assert_eq!(
        signed(&g, acme, "PUT", &acme_host, "/doc", &[], secret)
            .await
            .0,
        200
    );
    // the owner reads it by subdomain, with a valid and with an ignored Range
    let (st, _, b) = signed(&g, acme, "GET", &acme_host, "/doc", &[], b"").await;
    assert_eq!((st, b.as_slice()), (200, &secret[..]));
    // globex names acme's bucket in the Host: refused (plain GET, ignored Range, HEAD, list,
    // delete, overwrite)
    for (method, path, extra) in [
        ("GET", "/doc", vec![]),
        ("GET", "/doc", vec![("range", "bytes=abc")]),
        ("HEAD", "/doc", vec![]),
        ("GET", "/", vec![]),
        ("GET", "/?list-type=2", vec![]),
        ("DELETE", "/doc", vec![]),
        ("PUT", "/doc", vec![]),
    ] {
        let (st, _, b) = signed(&g, globex, method, &acme_host, path, &extra, b"x").await;
        assert_eq!(st, 403, "{method} {path} {extra:?}");
        if method != "HEAD" {
            assert_eq!(code_of(&b), "AccessDenied", "{method} {path}");
        }
        assert!(!b.windows(secret.len()).any(|w| w == secret));
    }
    // globex names acme's bucket in the path of its own subdomain: that is a key of globex's
    // bucket, which does not exist, never acme's object
    for extra in [vec![], vec![("range", "bytes=5-1")]] {
        let (st, _, b) = signed(&g, globex, "GET", &globex_host, "/acme-b/doc", &extra, b"").await;
        assert_eq!((st, code_of(&b).as_str()), (404, "NoSuchKey"), "{extra:?}");
    }
    // and the acme object is intact
    let (st, _, b) = signed(&g, acme, "GET", &acme_host, "/doc", &[("range", "x")], b"").await;
    assert_eq!((st, b.as_slice()), (200, &secret[..]));
    g.stop().await;
}

#[test]
fn the_setting_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "s3.example.com:9000",
        "bad name",
        "example.com,s3.example.com",
    ] {
        let mut c = config(dir.path());
        c.domain = Some(bad.into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("VAULTGATE_DOMAIN"), "{bad}: {e}");
    }
    let mut c = config(dir.path());
    c.domain = Some(" s3.example.com , s3.example.org ".into());
    c.validate().unwrap();
}
