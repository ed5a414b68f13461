//! Admin API tests through the axum router in-process (tower `oneshot`):
//! every route, error JSON, JWT failures, tenant scoping, quorum through the
//! API, Idempotency-Key replay, pagination, rate limiting, and the OpenAPI
//! document (complete against the router, valid per openapi-spec-validator).

use crate::common;

use common::{env, env_with, error_code};
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use policy::RateLimitConfig;
use serde_json::json;

#[tokio::test]
async fn public_routes_and_authentication_errors() {
    let e = env().await;
    let r = e
        .req(Method::GET, "/admin/v1/health", None, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ok");
    // No token, garbage token, wrong scheme.
    for auth in [None, Some("garbage")] {
        let r = e
            .req(Method::GET, "/admin/v1/status", auth, None, &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(&r), "Unauthorized");
    }
    let r = e
        .req(
            Method::GET,
            "/admin/v1/status",
            None,
            None,
            &[("authorization", "Basic YTpi")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Bad key pair at the token endpoint.
    let r = e
        .req(
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": e.admin_key.access_key_id, "secret_key": "wrong-secret"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&r), "Unauthorized");
    let r = e
        .req(
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": 1})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r), "InvalidRequest");
    // A valid token works.
    let r = e.get("/admin/v1/status").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["caller"], "admin");
    assert_eq!(r.body["principals"], 1);
}

/// The `name` of each item of a list page.
fn item_names(page: &serde_json::Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

fn forge(claims: serde_json::Value, alg: Algorithm, key: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
}

#[tokio::test]
async fn jwt_expired_not_yet_valid_bad_signature_missing_role() {
    let e = env().await;
    let now = jsonwebtoken::get_current_timestamp();
    let base = |exp: u64, nbf: u64, roles: serde_json::Value| json!({"sub": "admin", "tenant": "default", "roles": roles, "exp": exp, "nbf": nbf, "iat": now});
    let cases = [
        (
            forge(
                base(now - 10, now - 100, json!(["superadmin"])),
                Algorithm::HS256,
                common::SECRET,
            ),
            "token expired",
        ),
        (
            forge(
                base(now + 600, now + 300, json!(["superadmin"])),
                Algorithm::HS256,
                common::SECRET,
            ),
            "token not yet valid",
        ),
        (
            forge(
                base(now + 600, now, json!(["superadmin"])),
                Algorithm::HS256,
                b"some-other-secret-some-other-secret!!",
            ),
            "bad token signature",
        ),
        (
            forge(
                base(now + 600, now, json!(["superadmin"])),
                Algorithm::HS512,
                common::SECRET,
            ),
            "not accepted",
        ),
    ];
    for (tok, msg) in cases {
        let r = e
            .req(Method::GET, "/admin/v1/principals", Some(&tok), None, &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{msg}");
        assert_eq!(error_code(&r), "Unauthorized");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(msg),
            "{:?} vs {msg}",
            r.body
        );
    }
    // Valid signature, no superadmin role: 403 on admin routes, 200 on status. The role is
    // the store's (issue 12): a token for a viewer principal acts as a viewer even when it
    // claims superadmin, and a principal the store does not know gets 401.
    e.user_token("watcher", "viewer", "default").await;
    let viewer = forge(
        json!({"sub": "watcher", "tenant": "default", "roles": ["superadmin"], "exp": now + 600, "nbf": now, "iat": now}),
        Algorithm::HS256,
        common::SECRET,
    );
    let ghost = forge(
        json!({"sub": "ghost", "tenant": "default", "roles": ["superadmin"], "exp": now + 600, "nbf": now, "iat": now}),
        Algorithm::HS256,
        common::SECRET,
    );
    let r = e
        .req(Method::GET, "/admin/v1/status", Some(&ghost), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = e
        .req(
            Method::GET,
            "/admin/v1/principals",
            Some(&viewer),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r), "Forbidden");
    let r = e
        .req(Method::GET, "/admin/v1/status", Some(&viewer), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn principals_keys_disable_and_pagination() {
    let e = env().await;
    for n in ["p1", "p2", "p3"] {
        let r = e
            .post("/admin/v1/principals", json!({"name": n, "role": "viewer"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.body["tenant"], "default");
    }
    let r = e.post("/admin/v1/principals", json!({"name": "p1"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(error_code(&r), "Conflict");
    let r = e
        .post("/admin/v1/principals", json!({"name": "bad name"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = e
        .post(
            "/admin/v1/principals",
            json!({"name": "px", "role": "root"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Pagination: admin, p1, p2, p3.
    let r = e.get("/admin/v1/principals?limit=2").await;
    let names = item_names(&r.body);
    assert_eq!(names, ["admin", "p1"]);
    let cur = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = e
        .get(&format!("/admin/v1/principals?limit=2&cursor={cur}"))
        .await;
    let names = item_names(&r.body);
    assert_eq!(names, ["p2", "p3"]);
    assert!(r.body["next_cursor"].is_null());
    // A cursor is a place in the order, so one naming a deleted (or never existing) item
    // continues after where it would be, instead of failing the next page.
    let r = e.get("/admin/v1/principals?limit=2&cursor=nobody").await;
    assert_eq!(r.status, StatusCode::OK);
    let names = item_names(&r.body);
    assert_eq!(names, ["p1", "p2"]);
    for bad in ["limit=0", "limit=5000", "limit=abc"] {
        let r = e.get(&format!("/admin/v1/principals?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(&r), "InvalidRequest");
    }
    let r = e.get("/admin/v1/principals/p2").await;
    assert_eq!(r.body["role"], "viewer");
    let r = e.get("/admin/v1/principals/nobody").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&r), "NotFound");
    // Keys: create shows the secret once; lists never do.
    let k = e
        .post(
            "/admin/v1/keys",
            json!({"principal": "p1", "expires_in_secs": 3600}),
        )
        .await;
    assert_eq!(k.status, StatusCode::CREATED);
    let id = k.body["access_key_id"].as_str().unwrap().to_owned();
    let secret = k.body["secret_key"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 40);
    let l = e.get("/admin/v1/keys?principal=p1").await;
    assert_eq!(l.body["items"].as_array().unwrap().len(), 1);
    assert!(!l.body.to_string().contains(&secret));
    let r = e
        .post("/admin/v1/keys", json!({"principal": "ghost"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Disable: the principal's token stops working on the next request.
    let t = e.login(&id, &secret).await;
    let r = e
        .req(Method::GET, "/admin/v1/status", Some(&t), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = e.post("/admin/v1/principals/p1/disable", json!({})).await;
    assert_eq!(r.body["disabled"], true);
    let r = e
        .req(Method::GET, "/admin/v1/status", Some(&t), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = e
        .req(
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": id, "secret_key": secret})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = e.post("/admin/v1/principals/p1/enable", json!({})).await;
    assert_eq!(r.body["disabled"], false);
    let r = e
        .post("/admin/v1/principals/admin/disable", json!({}))
        .await;
    // a well-formed request the current state refuses: a conflict, not a malformed request
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Revoke.
    let r = e
        .post(&format!("/admin/v1/keys/{id}/revoke"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revoked"], true);
    let r = e
        .req(
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": id, "secret_key": secret})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = e.post("/admin/v1/keys/NOPE/revoke", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Role change.
    let r = e
        .req(
            Method::PUT,
            "/admin/v1/principals/p2/role",
            Some(&e.token),
            Some(json!({"role": "manager"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["role"], "manager");
}

#[tokio::test]
async fn roles_grants_tenants_and_tenant_scoping() {
    let e = env().await;
    let r = e
        .post(
            "/admin/v1/roles",
            json!({"name": "BackupWriter", "actions": ["PutObject", "DeleteObject"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = e
        .post(
            "/admin/v1/roles",
            json!({"name": "Bad", "actions": ["Nope"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        e.get("/admin/v1/roles").await.body["items"][0]["name"],
        "BackupWriter"
    );
    let r = e.post("/admin/v1/tenants", json!({"name": "acme"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = e.post("/admin/v1/tenants", json!({"name": "acme"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let tenants = e.get("/admin/v1/tenants").await;
    assert_eq!(tenants.body["items"].as_array().unwrap().len(), 2);
    let r = e
        .post(
            "/admin/v1/principals",
            json!({"name": "backup", "tenant": "acme", "kind": "service"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let g = e.post("/admin/v1/grants", json!({"principal": "backup", "role": "BackupWriter", "bucket": "acme-backups", "prefix": "h1/"})).await;
    assert_eq!(g.status, StatusCode::CREATED, "{:?}", g.body);
    let gid = g.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        e.get("/admin/v1/grants?principal=backup").await.body["items"][0]["prefix"],
        "h1/"
    );
    let r = e
        .req(
            Method::DELETE,
            "/admin/v1/roles/BackupWriter",
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = e
        .req(
            Method::DELETE,
            &format!("/admin/v1/grants/{gid}"),
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = e
        .req(
            Method::DELETE,
            &format!("/admin/v1/grants/{gid}"),
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = e
        .req(
            Method::DELETE,
            "/admin/v1/roles/BackupWriter",
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // A tenant SuperAdmin sees and manages only its tenant.
    let acme_admin = e.user_token("acme-admin", "superadmin", "acme").await;
    let r = e
        .req(
            Method::GET,
            "/admin/v1/principals",
            Some(&acme_admin),
            None,
            &[],
        )
        .await;
    let names = item_names(&r.body);
    assert_eq!(names, ["acme-admin", "backup"]);
    let r = e
        .req(
            Method::GET,
            "/admin/v1/principals/admin",
            Some(&acme_admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = e
        .req(
            Method::POST,
            "/admin/v1/principals",
            Some(&acme_admin),
            Some(json!({"name": "x", "tenant": "default"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = e
        .req(
            Method::POST,
            "/admin/v1/tenants",
            Some(&acme_admin),
            Some(json!({"name": "evil"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = e
        .req(
            Method::GET,
            "/admin/v1/tenants",
            Some(&acme_admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn quorum_rules_and_approvals_through_the_api() {
    let e = env().await;
    let boss2 = e.user_token("boss2", "superadmin", "default").await;
    let viewer = e.user_token("watcher", "viewer", "default").await;
    let rule = json!({"action": "s3:DeleteBucket", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 600});
    let r = e
        .req(
            Method::PUT,
            "/admin/v1/quorum/rules/protect",
            Some(&e.token),
            Some(rule),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = e
        .req(
            Method::PUT,
            "/admin/v1/quorum/rules/bad",
            Some(&e.token),
            Some(json!({"action": "x", "approvals": 0, "approver_roles": [], "ttl_secs": 1})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        e.get("/admin/v1/quorum/rules").await.body["items"][0]["bucket_pattern"],
        "*"
    );
    // Ask ahead of time; idempotent.
    let a = e
        .post(
            "/admin/v1/approvals",
            json!({"action": "s3:DeleteBucket", "bucket": "b1"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        e.post(
            "/admin/v1/approvals",
            json!({"action": "s3:DeleteBucket", "bucket": "b1"})
        )
        .await
        .body["id"],
        id.as_str()
    );
    let r = e
        .post(
            "/admin/v1/approvals",
            json!({"action": "s3:PutObject", "bucket": "b1"}),
        )
        .await;
    // no rule covers it: a well-formed request the current rules refuse
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Requester and a viewer cannot approve.
    let r = e
        .post(&format!("/admin/v1/approvals/{id}/approve"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = e
        .req(
            Method::POST,
            &format!("/admin/v1/approvals/{id}/approve"),
            Some(&viewer),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = e
        .req(
            Method::POST,
            &format!("/admin/v1/approvals/{id}/approve"),
            Some(&boss2),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["state"], "approved");
    let r = e
        .req(
            Method::POST,
            &format!("/admin/v1/approvals/{id}/approve"),
            Some(&boss2),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        e.get(&format!("/admin/v1/approvals/{id}")).await.body["votes"][0]["approver"],
        "boss2"
    );
    assert_eq!(
        e.get("/admin/v1/approvals?state=approved").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        e.get("/admin/v1/approvals?state=bogus").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        e.get("/admin/v1/approvals/apr-none").await.status,
        StatusCode::NOT_FOUND
    );
    let b = e
        .post(
            "/admin/v1/approvals",
            json!({"action": "s3:DeleteBucket", "bucket": "b2"}),
        )
        .await;
    let bid = b.body["id"].as_str().unwrap().to_owned();
    let r = e
        .req(
            Method::POST,
            &format!("/admin/v1/approvals/{bid}/reject"),
            Some(&boss2),
            None,
            &[],
        )
        .await;
    assert_eq!(r.body["state"], "rejected");
    // Rule changes gated by a rule on admin:ChangeQuorumRule.
    let guard = json!({"action": "admin:ChangeQuorumRule", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 600});
    let r = e
        .req(
            Method::PUT,
            "/admin/v1/quorum/rules/guard",
            Some(&e.token),
            Some(guard),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = e
        .req(
            Method::DELETE,
            "/admin/v1/quorum/rules/protect",
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r), "ApprovalRequired");
    let aid = r.body["error"]["approval_id"].as_str().unwrap().to_owned();
    assert!(r.body["error"]["message"].as_str().unwrap().contains(&aid));
    let r = e
        .req(
            Method::POST,
            &format!("/admin/v1/approvals/{aid}/approve"),
            Some(&boss2),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = e
        .req(
            Method::DELETE,
            "/admin/v1/quorum/rules/protect",
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = e
        .req(
            Method::DELETE,
            "/admin/v1/quorum/rules/protect",
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn idempotency_key_replay_and_misuse() {
    let e = env().await;
    let h = [("idempotency-key", "k-1")];
    let first = e
        .req(
            Method::POST,
            "/admin/v1/tenants",
            Some(&e.token),
            Some(json!({"name": "t1"})),
            &h,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = e
        .req(
            Method::POST,
            "/admin/v1/tenants",
            Some(&e.token),
            Some(json!({"name": "t1"})),
            &h,
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    // Same key, different request.
    let other = e
        .req(
            Method::POST,
            "/admin/v1/tenants",
            Some(&e.token),
            Some(json!({"name": "t2"})),
            &h,
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&other), "IdempotencyKeyReused");
    // Without a key the retry is a conflict.
    let plain = e.post("/admin/v1/tenants", json!({"name": "t1"})).await;
    assert_eq!(plain.status, StatusCode::CONFLICT);
    // A key replays a created access key exactly (the same secret, not a second key).
    let k1 = e
        .req(
            Method::POST,
            "/admin/v1/keys",
            Some(&e.token),
            Some(json!({"principal": "admin"})),
            &[("idempotency-key", "key-1")],
        )
        .await;
    let k2 = e
        .req(
            Method::POST,
            "/admin/v1/keys",
            Some(&e.token),
            Some(json!({"principal": "admin"})),
            &[("idempotency-key", "key-1")],
        )
        .await;
    assert_eq!(k1.body["access_key_id"], k2.body["access_key_id"]);
    assert_eq!(
        e.get("/admin/v1/keys?principal=admin").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Keys are scoped per caller: another principal's same key is a fresh request.
    let boss2 = e.user_token("boss2", "superadmin", "default").await;
    let r = e
        .req(
            Method::POST,
            "/admin/v1/tenants",
            Some(&boss2),
            Some(json!({"name": "t3"})),
            &h,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["name"], "t3");
    // Errors are not stored: after fixing the cause the same key succeeds.
    let h2 = [("idempotency-key", "k-2")];
    let r = e
        .req(
            Method::POST,
            "/admin/v1/principals",
            Some(&e.token),
            Some(json!({"name": "z", "tenant": "nope"})),
            &h2,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let long = "x".repeat(300);
    let r = e
        .req(
            Method::POST,
            "/admin/v1/tenants",
            Some(&e.token),
            Some(json!({"name": "t9"})),
            &[("idempotency-key", long.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_routes_methods_and_bodies_answer_json_errors() {
    let e = env().await;
    let r = e.get("/admin/v1/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&r), "NotFound");
    let r = e
        .req(
            Method::PATCH,
            "/admin/v1/tenants",
            Some(&e.token),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&r), "MethodNotAllowed");
    let r = e
        .req(
            Method::POST,
            "/admin/v1/tenants",
            Some(&e.token),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&r), "InvalidRequest");
    let r = e.post("/admin/v1/tenants", json!({"nome": "x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admin_calls_are_rate_limited_with_retry_after() {
    let e = env_with(RateLimitConfig {
        s3_reads_per_min: 0,
        s3_writes_per_min: 0,
        admin_per_min: 3,
    })
    .await;
    // The token exchange used one "token:" slot, not the principal's.
    for _ in 0..3 {
        assert_eq!(e.get("/admin/v1/status").await.status, StatusCode::OK);
    }
    let r = e.get("/admin/v1/status").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&r), "TooManyRequests");
    let ra: u64 = r
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&ra), "{ra}");
}

#[tokio::test]
async fn openapi_document_covers_every_route_and_validates() {
    let e = env().await;
    let r = e
        .req(Method::GET, "/admin/v1/openapi.json", None, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.body.clone();
    assert_eq!(doc, serde_json::to_value(admin::api::openapi()).unwrap());
    let paths = doc["paths"].as_object().unwrap();
    let mut ops = Vec::new();
    for (path, item) in paths {
        for m in ["get", "post", "put", "delete", "patch"] {
            if item.get(m).is_some() {
                ops.push((m.to_uppercase(), path.clone()));
            }
        }
    }
    // Every documented operation is routed (not the router's 404/405 fallback)…
    for (m, p) in &ops {
        let concrete = p
            .replace("{name}", "x")
            .replace("{id}", "x")
            .replace("{seq}", "1");
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let body = matches!(method, Method::POST | Method::PUT).then(|| json!({}));
        let r = e.req(method, &concrete, Some(&e.token), body, &[]).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        assert!(
            r.body["error"]["message"] != "no such route",
            "{m} {p} not routed"
        );
    }
    // …and every route of the API is documented (the list the router is built from).
    let expected = [
        ("GET", "/admin/v1/health"),
        ("GET", "/admin/v1/status"),
        ("POST", "/admin/v1/auth/token"),
        ("GET", "/admin/v1/principals"),
        ("POST", "/admin/v1/principals"),
        ("GET", "/admin/v1/principals/{name}"),
        ("POST", "/admin/v1/principals/{name}/disable"),
        ("POST", "/admin/v1/principals/{name}/enable"),
        ("PUT", "/admin/v1/principals/{name}/role"),
        ("GET", "/admin/v1/principals/{name}/limits"),
        ("PUT", "/admin/v1/principals/{name}/limits"),
        ("DELETE", "/admin/v1/principals/{name}/limits"),
        ("GET", "/admin/v1/roles/{name}/limits"),
        ("PUT", "/admin/v1/roles/{name}/limits"),
        ("DELETE", "/admin/v1/roles/{name}/limits"),
        ("GET", "/admin/v1/keys"),
        ("POST", "/admin/v1/keys"),
        ("POST", "/admin/v1/keys/{id}/revoke"),
        ("GET", "/admin/v1/roles"),
        ("POST", "/admin/v1/roles"),
        ("DELETE", "/admin/v1/roles/{name}"),
        ("GET", "/admin/v1/grants"),
        ("POST", "/admin/v1/grants"),
        ("DELETE", "/admin/v1/grants/{id}"),
        ("GET", "/admin/v1/tenants"),
        ("POST", "/admin/v1/tenants"),
        ("GET", "/admin/v1/quorum/rules"),
        ("PUT", "/admin/v1/quorum/rules/{name}"),
        ("DELETE", "/admin/v1/quorum/rules/{name}"),
        ("GET", "/admin/v1/approvals"),
        ("POST", "/admin/v1/approvals"),
        ("GET", "/admin/v1/approvals/{id}"),
        ("POST", "/admin/v1/approvals/{id}/approve"),
        ("POST", "/admin/v1/approvals/{id}/reject"),
        ("GET", "/admin/v1/openapi.json"),
        ("GET", "/admin/v1/audit"),
        ("GET", "/admin/v1/audit/{seq}"),
        ("POST", "/admin/v1/evidence/export"),
        ("GET", "/admin/v1/evidence/{id}"),
        ("GET", "/admin/v1/evidence/public-key"),
        // the web console's additions (docs/CONSOLE.md)
        ("POST", "/admin/v1/auth/renew"),
        ("GET", "/admin/v1/key-status"),
        ("GET", "/admin/v1/audit/verify"),
        ("GET", "/admin/v1/s3"),
        ("GET", "/admin/v1/s3/{bucket}"),
        ("PUT", "/admin/v1/s3/{bucket}"),
        ("POST", "/admin/v1/s3/{bucket}"),
        ("DELETE", "/admin/v1/s3/{bucket}"),
        // key management (issue 17)
        ("GET", "/admin/v1/kek"),
        ("POST", "/admin/v1/kek/rotate"),
        ("POST", "/admin/v1/kek/rewrap"),
        ("POST", "/admin/v1/kek/{kek_id}/retire"),
        ("POST", "/admin/v1/kek/reencrypt"),
        ("GET", "/admin/v1/kek/reencrypt/{bucket}"),
        ("POST", "/admin/v1/auth/signing-secret/rotate"),
    ];
    let mut got: Vec<(String, String)> = ops.clone();
    got.sort();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    // The document validates with openapi-spec-validator (PyPI, installed into .cache/venv on first use).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/validate-openapi.sh");
    let out = std::process::Command::new(script)
        .arg(&file)
        .output()
        .expect("run validate-openapi.sh");
    assert!(
        out.status.success(),
        "openapi-spec-validator failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A broken document is refused (the validator really validates).
    let mut broken = doc.clone();
    broken["paths"]["/admin/v1/health"]["get"]["responses"] = json!("nope");
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
    let out = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/validate-openapi.sh"),
    )
    .arg(&file)
    .output()
    .unwrap();
    assert!(!out.status.success());
}
