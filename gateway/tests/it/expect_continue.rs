//! `Expect: 100-continue` over raw TCP against the in-process gateway: a PUT is sent head first
//! (`Content-Length: 10485760`, no body byte) and the first response line read with a timeout.
//! A request that authentication refuses (unsigned, unknown key, bad signature) or the access
//! check refuses (a Viewer writing, another tenant's bucket, a bucket policy's Deny) gets its
//! 403 with the S3 error code *instead of* `100 Continue`, on a connection the gateway closes
//! (the body it never asked for is not read, and the client is not left hanging). A request that
//! passes gets `100 Continue` before it sends its body, then 200, and the object reads back
//! byte-exact.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use common::*;
use policy::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LEN: usize = 10 * 1024 * 1024;
const WAIT: Duration = Duration::from_secs(5);
const ACME: &str = "acme";
const GLOBEX: &str = "globex";
const ACME_BUCKET: &str = "acme-data";

/// How a test request is signed.
enum Signing<'a> {
    None,
    /// SigV4 with these credentials and this `x-amz-content-sha256`
    V4 {
        ak: &'a str,
        sk: &'a str,
        payload: String,
    },
}

/// The head of a PUT of `LEN` bytes to `path` expecting 100-continue.
fn put_head(addr: SocketAddr, path: &str, signing: Signing<'_>) -> String {
    let host = addr.to_string();
    let mut headers: Vec<(String, String)> = vec![("host".into(), host)];
    if let Signing::V4 { ak, sk, payload } = signing {
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap();
        headers.push(("x-amz-date".into(), date));
        headers.push(("x-amz-content-sha256".into(), payload.clone()));
        let identity = aws_credential_types::Credentials::new(ak, sk, None, None, "t").into();
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
            "PUT",
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
    }
    let mut head = format!("PUT {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {LEN}\r\nExpect: 100-continue\r\n\r\n"
    ));
    head
}

/// Sends `head` alone and reads the first response head (up to its blank line) with a timeout.
async fn first_response(addr: SocketAddr, head: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut byte))
            .await
            .expect("a response head in time, without sending the body")
            .unwrap();
        assert_eq!(n, 1, "connection closed before a response head: {got:?}");
        got.push(byte[0]);
    }
    (s, String::from_utf8(got).unwrap())
}

/// A refusal answered instead of `100 Continue`: its status line, its S3 error code, and the
/// gateway closing the connection (read to EOF in time).
async fn assert_refused(addr: SocketAddr, head: &str, code: &str) {
    let (mut s, resp) = first_response(addr, head).await;
    assert!(resp.starts_with("HTTP/1.1 403 "), "{code}: {resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection of a refused upload")
        .unwrap();
    let body = String::from_utf8_lossy(&rest);
    assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
}

/// The two tenants' world: acme's root made `ACME_BUCKET`, whose policy denies every PUT under
/// `locked/`; returns the keys (access key id, secret) of acme's root, a Viewer of acme and the
/// SuperAdmin of globex.
async fn tenants(g: &TestGateway) -> Vec<(String, String)> {
    let store = g.server.authz.store();
    let mut keys = Vec::new();
    for (name, tenant, role) in [
        ("acme-root", ACME, Role::SuperAdmin),
        ("acme-viewer", ACME, Role::Viewer),
        ("globex-root", GLOBEX, Role::SuperAdmin),
    ] {
        if store.create_tenant(tenant).await.is_err() {
            // the tenant exists already (acme's second principal)
        }
        store
            .create_principal(name, "user", tenant, Some(role))
            .await
            .unwrap();
        let k = store.create_access_key(name, None).await.unwrap();
        keys.push((k.access_key_id.clone(), k.secret.expose().to_owned()));
    }
    let root = client_for(&g.endpoint, &keys[0].0, &keys[0].1);
    root.create_bucket()
        .bucket(ACME_BUCKET)
        .send()
        .await
        .unwrap();
    let deny = format!(
        r#"{{"Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::{ACME_BUCKET}/locked/*"}}]}}"#
    );
    root.put_bucket_policy()
        .bucket(ACME_BUCKET)
        .policy(deny)
        .send()
        .await
        .unwrap();
    keys
}

async fn read_back(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let got = c.get_object().bucket(bucket).key(key).send().await.unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn refusals_come_instead_of_100_continue() {
    let g = start().await;
    let keys = tenants(&g).await;
    let (root, viewer, globex) = (&keys[0], &keys[1], &keys[2]);
    let addr = g.server.s3_addr;
    let path = format!("/{ACME_BUCKET}/obj");
    let unsigned = "UNSIGNED-PAYLOAD".to_owned();
    let hash = sha256_hex(&data(LEN, 1));

    assert_refused(addr, &put_head(addr, &path, Signing::None), "AccessDenied").await;
    let head = put_head(
        addr,
        &path,
        Signing::V4 {
            ak: AK,
            sk: "not-the-secret-of-this-key-000000000000",
            payload: hash.clone(),
        },
    );
    assert_refused(addr, &head, "SignatureDoesNotMatch").await;
    let head = put_head(
        addr,
        &path,
        Signing::V4 {
            ak: "VGNOSUCHKEY000000000",
            sk: SK,
            payload: unsigned.clone(),
        },
    );
    assert_refused(addr, &head, "InvalidAccessKeyId").await;
    let locked = format!("/{ACME_BUCKET}/locked/obj");
    // a Viewer (no write right), another tenant's caller, a bucket policy's Deny
    for ((ak, sk), path) in [(viewer, &path), (globex, &path), (root, &locked)] {
        for payload in [unsigned.clone(), hash.clone()] {
            let head = put_head(addr, path, Signing::V4 { ak, sk, payload });
            assert_refused(addr, &head, "AccessDenied").await;
        }
    }
    // nothing was written by any of them
    let c = client_for(&g.endpoint, &root.0, &root.1);
    for key in ["obj", "locked/obj"] {
        let e = c
            .head_object()
            .bucket(ACME_BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 404, "{key}");
    }
    g.stop().await;
}

#[tokio::test]
async fn a_refused_client_that_sends_its_body_anyway_does_not_hang() {
    let g = start().await;
    let addr = g.server.s3_addr;
    g.client
        .create_bucket()
        .bucket("exp-bucket")
        .send()
        .await
        .unwrap();
    let (mut s, resp) = first_response(addr, &put_head(addr, "/exp-bucket/k", Signing::None)).await;
    assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");
    // a client that does not wait for 100 Continue: the body goes out regardless; the gateway
    // closes the connection (the write may fail) and the read ends
    let body = data(LEN, 2);
    let _ = tokio::time::timeout(WAIT, s.write_all(&body)).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("the connection ends");
    // EOF, or a reset because unread bytes were pending when the gateway closed
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1 200"));
    let e = g
        .client
        .head_object()
        .bucket("exp-bucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    g.stop().await;
}

#[tokio::test]
async fn an_authorised_put_gets_100_continue_then_stores_the_body() {
    let g = start().await;
    let addr = g.server.s3_addr;
    g.client
        .create_bucket()
        .bucket("exp-bucket")
        .send()
        .await
        .unwrap();
    for (key, seed, signed_hash) in [("hashed", 3, true), ("unsigned", 4, false)] {
        let body = data(LEN, seed);
        let payload = if signed_hash {
            sha256_hex(&body)
        } else {
            "UNSIGNED-PAYLOAD".to_owned()
        };
        let head = put_head(
            addr,
            &format!("/exp-bucket/{key}"),
            Signing::V4 {
                ak: AK,
                sk: SK,
                payload,
            },
        );
        let (mut s, resp) = first_response(addr, &head).await;
        assert_eq!(resp, "HTTP/1.1 100 Continue\r\n\r\n");
        if let Err(e) = s.write_all(&body).await {
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
            panic!("{e}: {}", String::from_utf8_lossy(&rest));
        }
        let mut rest = vec![0u8; 12];
        tokio::time::timeout(Duration::from_secs(60), s.read_exact(&mut rest))
            .await
            .expect("the final response")
            .unwrap();
        assert_eq!(&rest, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&rest));
        assert_eq!(
            sha256_hex(&read_back(&g.client, "exp-bucket", key).await),
            sha256_hex(&body)
        );
    }
    g.stop().await;
}
