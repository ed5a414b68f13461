//! The web console's server side: `/console/` static serving (security headers, CSP, SPA
//! fallback, unknown assets 404, nothing secret in the assets) and the admin API additions the
//! console uses: `POST /auth/renew`, `GET /audit/verify`, the `request_id` and `status` audit
//! filters, and `/admin/v1/s3…` when no S3 listener is configured or the session has no key.

use crate::common;

use std::time::Duration;

use audit::Outcome;
use common::{env, env_audited, error_code};
use http::{Method, StatusCode};
use serde_json::json;

const CONSOLE_ASSETS: [&str; 3] = [
    "/console/",
    "/console/assets/app.js",
    "/console/assets/app.css",
];

fn header<'a>(r: &'a common::Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test]
async fn console_pages_carry_the_security_headers() {
    let e = env().await;
    for path in CONSOLE_ASSETS
        .iter()
        .copied()
        .chain(["/console/approvals", "/console/buckets/photos/2024"])
    {
        let r = e.req(Method::GET, path, None, None, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let csp = header(&r, "content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp} lacks {directive}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(!csp.contains("http:") && !csp.contains("https:"), "{csp}");
        assert_eq!(header(&r, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer", "{path}");
    }
    let html = e.req(Method::GET, "/console/", None, None, &[]).await;
    assert_eq!(header(&html, "cache-control"), "no-store");
    assert!(header(&html, "content-type").starts_with("text/html"));
    let js = e
        .req(Method::GET, "/console/assets/app.js", None, None, &[])
        .await;
    assert!(header(&js, "content-type").starts_with("text/javascript"));
    let css = e
        .req(Method::GET, "/console/assets/app.css", None, None, &[])
        .await;
    assert!(header(&css, "content-type").starts_with("text/css"));
}

#[tokio::test]
async fn spa_paths_answer_the_app_and_unknown_assets_are_404() {
    let e = env().await;
    let index = e.req(Method::GET, "/console/", None, None, &[]).await;
    let page = index.body.as_str().unwrap().to_owned();
    assert!(page.contains("<div id=\"app\">"), "{page}");
    // the page loads only same-origin script and style, and has no inline script
    assert!(page.contains("<script defer src=\"/console/assets/app.js\"></script>"));
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(
        !page.contains("style=") && !page.contains("<style"),
        "{page}"
    );
    for spa in [
        "/console/approvals",
        "/console/audit",
        "/console/buckets/b/k/x",
    ] {
        let r = e.req(Method::GET, spa, None, None, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.as_str(), Some(page.as_str()), "{spa}");
    }
    for missing in [
        "/console/assets/other.js",
        "/console/assets/",
        "/console/favicon.ico",
        "/console/approvals/x.map",
        "/console/assets/app.js.map",
    ] {
        let r = e.req(Method::GET, missing, None, None, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert!(header(&r, "content-type").starts_with("text/plain"));
    }
    let bare = e.req(Method::GET, "/console", None, None, &[]).await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&bare, "location"), "/console/");
    let post = e.req(Method::POST, "/console/", None, None, &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    // path tricks stay inside the console
    let r = e
        .req(
            Method::GET,
            "/console/..%2f..%2fetc%2fpasswd",
            None,
            None,
            &[],
        )
        .await;
    assert!(r.status == StatusCode::OK || r.status == StatusCode::NOT_FOUND);
    assert!(!r.body.to_string().contains("root:"));
}

#[tokio::test]
async fn the_assets_hold_no_secret_and_never_use_browser_storage() {
    let e = env().await;
    let secret = e.admin_key.secret.expose().to_owned();
    for path in CONSOLE_ASSETS {
        let r = e.req(Method::GET, path, None, None, &[]).await;
        let text = r.body.as_str().unwrap().to_owned();
        assert!(!text.contains(&secret));
        assert!(!text.contains(&e.token));
        for api in [
            "localStorage",
            "sessionStorage",
            "document.cookie",
            "indexedDB",
        ] {
            assert!(!text.contains(api), "{path} uses {api}");
        }
        // no external origin: no CDN, font or analytics
        assert!(
            !text.contains("https://") && !text.contains("//cdn"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn renew_gives_a_fresh_token_until_the_key_is_revoked() {
    let e = env().await;
    let r = e
        .req(
            Method::POST,
            "/admin/v1/auth/renew",
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let renewed = r.body["token"].as_str().unwrap().to_owned();
    assert!(r.body["expires_in"].as_u64().unwrap() > 0);
    let st = e
        .req(Method::GET, "/admin/v1/status", Some(&renewed), None, &[])
        .await;
    assert_eq!(st.status, StatusCode::OK);
    assert_eq!(st.body["caller"], "admin");

    // a second principal renews its own session only; revoking its key ends both tokens
    let t = e.user_token("rita", "viewer", "default").await;
    let r = e
        .req(Method::POST, "/admin/v1/auth/renew", Some(&t), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let t2 = r.body["token"].as_str().unwrap().to_owned();
    let st = e
        .req(Method::GET, "/admin/v1/status", Some(&t2), None, &[])
        .await;
    assert_eq!(st.body["caller"], "rita");
    let keys = e.get("/admin/v1/keys?principal=rita").await;
    let id = keys.body["items"][0]["access_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rev = e
        .post(&format!("/admin/v1/keys/{id}/revoke"), json!({}))
        .await;
    assert!(rev.status.is_success(), "{:?}", rev.body);
    for tok in [&t, &t2] {
        let r = e
            .req(Method::POST, "/admin/v1/auth/renew", Some(tok), None, &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(&r), "Unauthorized");
    }
    // no token, a garbage token: 401
    for tok in [None, Some("x.y.z")] {
        let r = e
            .req(Method::POST, "/admin/v1/auth/renew", tok, None, &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // a disabled principal cannot renew
    let t3 = e.user_token("dora", "manager", "default").await;
    let d = e.post("/admin/v1/principals/dora/disable", json!({})).await;
    assert!(d.status.is_success());
    let r = e
        .req(Method::POST, "/admin/v1/auth/renew", Some(&t3), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn chain_verification_is_for_default_tenant_superadmins_and_reports_ok() {
    let e = env_audited().await;
    let viewer = e.user_token("vic", "viewer", "default").await;
    let r = e.post("/admin/v1/tenants", json!({"name": "acme"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let acme_admin = e.user_token("ada", "superadmin", "acme").await;
    for tok in [&viewer, &acme_admin] {
        let r = e
            .req(Method::GET, "/admin/v1/audit/verify", Some(tok), None, &[])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
        assert_eq!(error_code(&r), "Forbidden");
    }
    let r = e
        .req(Method::GET, "/admin/v1/audit/verify", None, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let before = e.head().await;
    let r = e.get("/admin/v1/audit/verify").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["ok"], true);
    assert!(r.body["broken_seq"].is_null());
    assert!(r.body["events"].as_u64().unwrap() >= u64::try_from(before).unwrap());
    assert_eq!(r.body["anchor"], "genesis");
    // the call itself is audited once, as VerifyAuditChain
    let ev = e
        .ledger
        .as_ref()
        .unwrap()
        .get(e.head().await)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.action, "admin.VerifyAuditChain");
    assert_eq!(ev.outcome, Outcome::Success);
}

#[tokio::test]
async fn a_tampered_ledger_reports_the_first_broken_seq() {
    let e = env_audited().await;
    for _ in 0..3 {
        e.get("/admin/v1/status").await;
    }
    sqlx::query("UPDATE audit_events SET principal = 'mallory' WHERE seq = 2")
        .execute(e.ledger.as_ref().unwrap().pool())
        .await
        .unwrap();
    let r = e.get("/admin/v1/audit/verify").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["ok"], false);
    assert_eq!(r.body["broken_seq"], 2, "{:?}", r.body);
    assert!(r.body["issue"].as_str().unwrap().len() > 3);
}

#[tokio::test]
async fn audit_search_by_request_id_and_status() {
    let e = env_audited().await;
    let denied = e
        .req(
            Method::GET,
            "/admin/v1/principals/nobody",
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(denied.status, StatusCode::NOT_FOUND);
    let rid = header(&denied, "x-request-id").to_owned();
    for _ in 0..3 {
        e.get("/admin/v1/status").await;
    }
    let r = e.get(&format!("/admin/v1/audit?request_id={rid}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["request_id"], rid.as_str());
    assert_eq!(items[0]["status"], 404);
    assert_eq!(items[0]["action"], "admin.GetPrincipal");
    let r = e.get("/admin/v1/audit?status=404").await;
    let items = r.body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i["status"] == 404), "{items:?}");
    let r = e.get("/admin/v1/audit?request_id=no-such-request").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    for bad in ["status=abc", "status=99", "status=600", "request_ids=x"] {
        let r = e.get(&format!("/admin/v1/audit?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
        assert_eq!(error_code(&r), "InvalidRequest");
    }
    // an evidence export of exactly that request
    let x = e
        .post("/admin/v1/evidence/export", json!({"request_id": rid}))
        .await;
    assert_eq!(x.status, StatusCode::CREATED, "{:?}", x.body);
    assert_eq!(x.body["events"], 1);
}

#[tokio::test]
async fn s3_routes_refuse_without_a_relay_or_a_session_key() {
    let e = env().await;
    let r = e.get("/admin/v1/s3").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(error_code(&r), "Unavailable");
    for m in [Method::GET, Method::PUT, Method::POST, Method::DELETE] {
        let r = e
            .req(m.clone(), "/admin/v1/s3/bucket?key=a", None, None, &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m}");
    }
    // a relay whose S3 listener is not bound yet: 503, nothing hangs
    let mut st = e.state.clone();
    st = st.with_s3_relay(admin::S3Relay::new(Default::default(), "us-east-1"));
    let router = admin::router(st);
    let req = http::Request::builder()
        .uri("/admin/v1/s3/bucket?key=a")
        .header("authorization", format!("Bearer {}", e.token))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        tower::ServiceExt::oneshot(router.clone(), req),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // bad bucket names, keys and smuggled signature parameters are 400 before anything is sent
    for q in [
        "/admin/v1/s3/Bad_Bucket",
        "/admin/v1/s3/ab",
        "/admin/v1/s3/bucket?key=a&key=b",
        "/admin/v1/s3/bucket?key=",
        "/admin/v1/s3/bucket?X-Amz-Signature=00",
        "/admin/v1/s3/bucket?x-amz-credential=a",
        "/admin/v1/s3?prefix=a",
    ] {
        let req = http::Request::builder()
            .uri(q)
            .header("authorization", format!("Bearer {}", e.token))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(router.clone(), req)
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{q}");
    }
    let long = format!("/admin/v1/s3/bucket?key={}", "k".repeat(1025));
    let req = http::Request::builder()
        .uri(long)
        .header("authorization", format!("Bearer {}", e.token))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_new_routes_are_in_the_openapi_document() {
    let e = env().await;
    let doc = e.get("/admin/v1/openapi.json").await.body;
    let paths = &doc["paths"];
    assert_eq!(
        paths["/admin/v1/auth/renew"]["post"]["operationId"],
        "RenewToken"
    );
    assert_eq!(
        paths["/admin/v1/audit/verify"]["get"]["operationId"],
        "VerifyAuditChain"
    );
    assert_eq!(paths["/admin/v1/s3"]["get"]["operationId"], "S3ListBuckets");
    for (m, op) in [
        ("get", "S3Get"),
        ("put", "S3Put"),
        ("post", "S3Post"),
        ("delete", "S3Delete"),
    ] {
        assert_eq!(paths["/admin/v1/s3/{bucket}"][m]["operationId"], op);
    }
    let params = paths["/admin/v1/audit"]["get"]["parameters"]
        .as_array()
        .unwrap();
    for p in ["request_id", "status"] {
        assert!(params.iter().any(|x| x["name"] == p), "{p}");
    }
}

#[tokio::test]
async fn key_status_lists_each_tenants_bucket_keys_for_superadmins_only() {
    let mut e = env().await;
    let r = e.get("/admin/v1/key-status").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    // the gateway's hook (here: the rows its index would return)
    let hook: admin::api::KeyStatusHook = std::sync::Arc::new(|| {
        Box::pin(async {
            // acme-data has data keys under the gateway's key and under a KMS key (SSE-KMS)
            Ok([
                ("acme-data", ""),
                ("acme-data", "arn:aws:kms:us-east-1:1:key/k1"),
                ("shared-logs", ""),
            ]
            .iter()
            .enumerate()
            .map(|(i, (b, kms))| admin::api::BucketKey {
                bucket: (*b).to_owned(),
                kms_key: (*kms).to_owned(),
                version: 2 + i as u32,
                versions: 2 + i as u32,
                kek_id: if kms.is_empty() {
                    "file:abc".into()
                } else {
                    format!("aws-kms:{kms}")
                },
                rotated_ms: 1_700_000_000_000,
            })
            .collect())
        })
    });
    let mut st = e.state.clone().with_key_status(hook);
    st.status_extra = Some(std::sync::Arc::new(|| json!({"key_provider": "file"})));
    e.router = admin::router(st.clone());
    e.state = st;
    e.state
        .store
        .assign_bucket("shared-logs", "default")
        .await
        .unwrap();
    let r = e.post("/admin/v1/tenants", json!({"name": "acme"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    e.state
        .store
        .assign_bucket("acme-data", "acme")
        .await
        .unwrap();
    let r = e.get("/admin/v1/key-status").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["key_provider"], "file");
    let names: Vec<&str> = r.body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bucket"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme-data", "acme-data", "shared-logs"]);
    assert_eq!(r.body["buckets"][0]["version"], 2);
    assert_eq!(r.body["buckets"][0]["kms_key"], "");
    assert_eq!(
        r.body["buckets"][1]["kms_key"],
        "arn:aws:kms:us-east-1:1:key/k1"
    );
    assert_eq!(
        r.body["buckets"][1]["kek_id"],
        "aws-kms:arn:aws:kms:us-east-1:1:key/k1"
    );
    // no key material in the answer
    assert!(!r.body.to_string().contains("wrapped"));
    // acme's SuperAdmin sees acme's bucket only; a viewer nothing
    let boss = e.user_token("boss", "superadmin", "acme").await;
    let r = e
        .req(Method::GET, "/admin/v1/key-status", Some(&boss), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["buckets"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["buckets"][0]["bucket"], "acme-data");
    assert_eq!(r.body["buckets"][1]["bucket"], "acme-data");
    let viewer = e.user_token("vik", "viewer", "default").await;
    let r = e
        .req(
            Method::GET,
            "/admin/v1/key-status",
            Some(&viewer),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r), "Forbidden");
    let r = e
        .req(Method::GET, "/admin/v1/key-status", None, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
