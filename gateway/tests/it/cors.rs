//! CORS against the in-process gateway: Put/Get/DeleteBucketCors through aws-sdk-s3 (validation
//! with S3's codes, NoSuchCORSConfiguration), the unauthenticated preflight as a browser sends it
//! (raw HTTP: headers of the granting rule, 400 without Origin or method, one 403 whatever the
//! reason so a preflight does not tell a missing bucket from a closed one, a presigned URL's
//! query ignored), the `Access-Control-*` headers of actual responses (errors too) and one audit
//! event per preflight and per configuration change.

use crate::common;

use audit::StoredEvent;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use common::*;

const ORIGIN: &str = "https://app.example";

fn rule(origins: &[&str], methods: &[&str]) -> aws_sdk_s3::types::builders::CorsRuleBuilder {
    let mut b = CorsRule::builder();
    for o in origins {
        b = b.allowed_origins(*o);
    }
    for m in methods {
        b = b.allowed_methods(*m);
    }
    b
}

fn config(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn code_of(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(body);
    t.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_owned()
}

fn without_request_id(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(body);
    match (t.find("<RequestId>"), t.find("</RequestId>")) {
        (Some(a), Some(b)) => format!("{}{}", &t[..a], &t[b + "</RequestId>".len()..]),
        _ => t.into_owned(),
    }
}

async fn events(g: &TestGateway) -> Vec<StoredEvent> {
    audit_events(g).await
}

#[tokio::test]
async fn configurations_are_stored_validated_and_removed() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("cors1").send().await.unwrap();
    let e = c
        .get_bucket_cors()
        .bucket("cors1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e).as_str()),
        (404, "NoSuchCORSConfiguration")
    );
    let stored = config(vec![
        rule(&[ORIGIN, "https://*.example.org"], &["GET", "PUT", "HEAD"])
            .allowed_headers("*")
            .expose_headers("ETag")
            .expose_headers("x-amz-version-id")
            .max_age_seconds(600)
            .id("web")
            .build()
            .unwrap(),
        rule(&["*"], &["GET"]).build().unwrap(),
    ]);
    c.put_bucket_cors()
        .bucket("cors1")
        .cors_configuration(stored.clone())
        .send()
        .await
        .unwrap();
    let got = c.get_bucket_cors().bucket("cors1").send().await.unwrap();
    assert_eq!(got.cors_rules(), stored.cors_rules());
    // refused as S3 refuses them; the stored configuration stays
    let bad: Vec<(CorsConfiguration, &str)> = vec![
        (
            config(vec![rule(&[ORIGIN], &["PATCH"]).build().unwrap()]),
            "InvalidRequest",
        ),
        (
            config(vec![
                rule(&["https://*.*.example"], &["GET"]).build().unwrap(),
            ]),
            "InvalidRequest",
        ),
        (
            config(vec![
                rule(&[ORIGIN], &["GET"])
                    .expose_headers("*")
                    .build()
                    .unwrap(),
            ]),
            "InvalidRequest",
        ),
        (
            config(
                (0..101)
                    .map(|_| rule(&[ORIGIN], &["GET"]).build().unwrap())
                    .collect(),
            ),
            "MalformedXML",
        ),
    ];
    for (cfg, want) in bad {
        let e = c
            .put_bucket_cors()
            .bucket("cors1")
            .cors_configuration(cfg)
            .send()
            .await
            .unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (400, want));
    }
    let (st, _, b) = raw(
        g.server.s3_addr,
        "PUT",
        "/cors1?cors",
        &[],
        b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule>",
    )
    .await;
    assert_eq!(st, 403, "unsigned: {}", String::from_utf8_lossy(&b));
    let got = c.get_bucket_cors().bucket("cors1").send().await.unwrap();
    assert_eq!(got.cors_rules(), stored.cors_rules());
    // a missing bucket
    let e = c
        .put_bucket_cors()
        .bucket("nosuch-cors")
        .cors_configuration(stored.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    c.delete_bucket_cors().bucket("cors1").send().await.unwrap();
    let e = c
        .get_bucket_cors()
        .bucket("cors1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchCORSConfiguration");
    // one event per change, named by its operation
    let ev = events(&g).await;
    for op in ["PutBucketCors", "DeleteBucketCors", "GetBucketCors"] {
        assert!(ev.iter().any(|e| e.action == op), "{op}");
    }
    assert_eq!(
        ev.iter()
            .filter(|e| e.action == "PutBucketCors" && e.status == 200)
            .count(),
        1
    );
    g.stop().await;
}

#[tokio::test]
async fn preflights_and_responses_follow_the_rules() {
    let g = start().await;
    let c = &g.client;
    let addr = g.server.s3_addr;
    for b in ["web", "closed"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    c.put_bucket_cors()
        .bucket("web")
        .cors_configuration(config(vec![
            rule(&[ORIGIN], &["GET", "PUT"])
                .allowed_headers("content-type")
                .allowed_headers("x-amz-*")
                .expose_headers("ETag")
                .max_age_seconds(300)
                .build()
                .unwrap(),
            rule(&["*"], &["HEAD"]).build().unwrap(),
        ]))
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("web")
        .key("a b.txt")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let before = events(&g).await.len();

    // granted: the rule's headers, the requested headers echoed
    let (st, head, _) = raw(
        addr,
        "OPTIONS",
        "/web/a%20b.txt",
        &[
            ("Origin", ORIGIN),
            ("Access-Control-Request-Method", "PUT"),
            (
                "Access-Control-Request-Headers",
                "Content-Type, X-Amz-Meta-Note",
            ),
        ],
        b"",
    )
    .await;
    assert_eq!(st, 200, "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        header(&head, "access-control-allow-methods"),
        Some("GET, PUT")
    );
    assert_eq!(
        header(&head, "access-control-allow-headers"),
        Some("content-type, x-amz-meta-note")
    );
    assert_eq!(header(&head, "access-control-expose-headers"), Some("ETag"));
    assert_eq!(header(&head, "access-control-max-age"), Some("300"));
    assert!(header(&head, "vary").is_some_and(|v| v.contains("Origin")));
    // a presigned URL's query (signed for the PUT it announces) does not matter
    let (st, head, _) = raw(
        addr,
        "OPTIONS",
        "/web/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00&X-Amz-Expires=60",
        &[("Origin", ORIGIN), ("Access-Control-Request-Method", "PUT")],
        b"",
    )
    .await;
    assert_eq!(st, 200, "{head}");
    // the wildcard rule answers "*"
    let (st, head, _) = raw(
        addr,
        "OPTIONS",
        "/web/x",
        &[
            ("Origin", "https://other.example"),
            ("Access-Control-Request-Method", "HEAD"),
        ],
        b"",
    )
    .await;
    assert_eq!(
        (st, header(&head, "access-control-allow-origin")),
        (200, Some("*"))
    );

    // refused: wrong origin, method or header; no configuration; no such bucket. One answer.
    let refusals = [
        ("/web/k", "https://evil.example", "GET", None),
        ("/web/k", ORIGIN, "DELETE", None),
        ("/web/k", ORIGIN, "PUT", Some("authorization")),
        ("/closed/k", ORIGIN, "GET", None),
        ("/no-such-bucket-x/k", ORIGIN, "GET", None),
        ("/", ORIGIN, "GET", None),
    ];
    let mut bodies = Vec::new();
    for (path, origin, method, hdrs) in refusals {
        let mut h = vec![
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
        ];
        if let Some(x) = hdrs {
            h.push(("Access-Control-Request-Headers", x));
        }
        let (st, head, body) = raw(addr, "OPTIONS", path, &h, b"").await;
        assert_eq!(
            (st, code_of(&body).as_str()),
            (403, "AccessForbidden"),
            "{path} {origin} {method}"
        );
        assert!(
            header(&head, "access-control-allow-origin").is_none(),
            "{head}"
        );
        bodies.push(without_request_id(&body));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert!(bodies[0].contains("CORSResponse: This CORS request is not allowed"));
    // malformed preflights
    for h in [
        vec![("Access-Control-Request-Method", "GET")],
        vec![("Origin", ORIGIN)],
    ] {
        let (st, _, body) = raw(addr, "OPTIONS", "/web/k", &h, b"").await;
        assert_eq!((st, code_of(&body).as_str()), (400, "BadRequest"));
    }
    // one audit event per preflight, named CorsPreflight, with its bucket
    let ev = events(&g).await;
    let preflights: Vec<_> = ev.iter().filter(|e| e.action == "CorsPreflight").collect();
    assert_eq!(ev.len() - before, 11);
    assert_eq!(preflights.len(), 11);
    assert!(
        preflights
            .iter()
            .any(|e| e.bucket.as_deref() == Some("web") && e.status == 200)
    );

    // actual responses: granted origins get the headers, on errors too; others get none
    let url = format!("/web/{}", "a%20b.txt");
    let (st, head, body) = raw(addr, "GET", &url, &[("Origin", ORIGIN)], b"").await;
    assert_eq!(st, 403, "anonymous: {}", String::from_utf8_lossy(&body));
    assert_eq!(header(&head, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(&head, "access-control-expose-headers"), Some("ETag"));
    assert_eq!(header(&head, "vary"), Some("Origin"));
    let (_, head, _) = raw(
        addr,
        "GET",
        &url,
        &[("Origin", "https://evil.example")],
        b"",
    )
    .await;
    assert!(header(&head, "access-control-allow-origin").is_none());
    let (_, head, _) = raw(addr, "DELETE", &url, &[("Origin", ORIGIN)], b"").await;
    assert!(
        header(&head, "access-control-allow-origin").is_none(),
        "DELETE not allowed"
    );
    let (_, head, _) = raw(addr, "GET", "/closed/k", &[("Origin", ORIGIN)], b"").await;
    assert!(header(&head, "access-control-allow-origin").is_none());
    // a signed GET by the SDK with an Origin header: 200, the bytes and the headers
    let out = c
        .get_object()
        .bucket("web")
        .key("a b.txt")
        .customize()
        .mutate_request(|r| {
            r.headers_mut().insert("origin", ORIGIN);
        })
        .send()
        .await
        .unwrap();
    let body = out.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"hello");
    g.stop().await;
}
