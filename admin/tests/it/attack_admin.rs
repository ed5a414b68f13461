//! Adversarial tests of the admin API (issue 12): each reproduces an attack as it was observed
//! against the release binary — same calls — and asserts the refusal. Quorum self-approval by
//! minted principals, tokens that outlive demotion and revocation, unauthenticated memory
//! growth through oversized access key ids, brute force, secrets at rest in idempotency
//! records, custom roles and key ids across tenants, and the per-principal/role S3 limits.

use crate::common;

use std::sync::Arc;

use common::{Env, Resp, env, env_audited, env_from, error_code};
use http::{Method, StatusCode};
use policy::{AesGcmSealer, PolicyStore, RateLimitConfig};
use serde_json::{Value, json};

/// The gateway's setup: the store with its access cache.
async fn env_cached() -> Env {
    let store = PolicyStore::in_memory(Arc::new(AesGcmSealer::random().unwrap()))
        .await
        .unwrap()
        .with_access_cache();
    env_from(
        store,
        RateLimitConfig {
            s3_reads_per_min: 0,
            s3_writes_per_min: 0,
            admin_per_min: 100_000,
        },
    )
    .await
}

async fn call(e: &Env, m: Method, path: &str, tok: &str, body: Option<Value>) -> Resp {
    e.req(m, path, Some(tok), body, &[]).await
}

fn approval_required(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(error_code(r), "ApprovalRequired");
    r.body["error"]["approval_id"]
        .as_str()
        .expect("approval_id")
        .to_owned()
}

async fn put_rule(e: &Env, name: &str, action: &str, bucket: &str, m: u32) {
    let r = call(
        e,
        Method::PUT,
        &format!("/admin/v1/quorum/rules/{name}"),
        &e.token,
        Some(
            json!({"action": action, "bucket_pattern": bucket, "approvals": m,
                    "approver_roles": ["superadmin"], "ttl_secs": 600}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

/// Every way a SuperAdmin could mint the approvers it needs, with the rules of the finding.
async fn assert_minting_approvers_is_gated(e: &Env, tok: &str, tenant: &str, tag: &str) {
    // a principal *with a role* is gated (not created)
    let r = call(
        e,
        Method::POST,
        "/admin/v1/principals",
        tok,
        Some(json!({"name": format!("{tag}-sock1"), "role": "superadmin", "tenant": tenant})),
    )
    .await;
    approval_required(&r);
    let r = e.get(&format!("/admin/v1/principals/{tag}-sock1")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "not created");
    // a role-less principal may be created, but every way to give it power is gated
    let r = call(
        e,
        Method::POST,
        "/admin/v1/principals",
        tok,
        Some(json!({"name": format!("{tag}-sock2"), "tenant": tenant})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let sock = format!("{tag}-sock2");
    approval_required(
        &call(
            e,
            Method::POST,
            "/admin/v1/keys",
            tok,
            Some(json!({"principal": sock})),
        )
        .await,
    );
    approval_required(
        &call(
            e,
            Method::PUT,
            &format!("/admin/v1/principals/{sock}/role"),
            tok,
            Some(json!({"role": "superadmin"})),
        )
        .await,
    );
    approval_required(
        &call(
            e,
            Method::POST,
            "/admin/v1/grants",
            tok,
            Some(json!({"principal": sock, "role": "superadmin", "bucket": "*"})),
        )
        .await,
    );
    approval_required(
        &call(
            e,
            Method::POST,
            "/admin/v1/roles",
            tok,
            Some(json!({"name": format!("{tag}-Deleter"), "actions": ["DeleteObject"]})),
        )
        .await,
    );
    let r = e.get(&format!("/admin/v1/keys?principal={sock}")).await;
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        0,
        "no key issued"
    );
    assert_eq!(
        e.get(&format!("/admin/v1/principals/{sock}")).await.body["role"],
        "none"
    );
}

#[tokio::test]
async fn one_superadmin_cannot_mint_the_approvers_of_its_own_delete() {
    let e = env_cached().await;
    // a tenant and its SuperAdmin, created before any rule
    assert_eq!(
        e.post("/admin/v1/tenants", json!({"name": "acme"}))
            .await
            .status,
        StatusCode::CREATED
    );
    let acme_admin = e.user_token("acme-admin", "superadmin", "acme").await;
    put_rule(&e, "protect-x", "s3:DeleteObject", "x", 2).await;
    put_rule(&e, "roles", "admin:ChangeRole", "*", 2).await;
    put_rule(&e, "rules", "admin:ChangeQuorumRule", "*", 2).await;
    // the pending delete the attacker wants approved
    let a = e
        .post(
            "/admin/v1/approvals",
            json!({"action": "s3:DeleteObject", "bucket": "x", "key": "k"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["needed"], 2);
    // the operator's SuperAdmin, and a tenant SuperAdmin inside its tenant
    assert_minting_approvers_is_gated(&e, &e.token, "default", "op").await;
    assert_minting_approvers_is_gated(&e, &acme_admin, "acme", "acme").await;
    // a key for oneself is not a privilege change
    let r = e
        .post("/admin/v1/keys", json!({"principal": "admin"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // the requester still cannot approve its own delete
    let id = a.body["id"].as_str().unwrap();
    let r = e
        .post(&format!("/admin/v1/approvals/{id}/approve"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_change_role_rule_alone_gates_every_privilege_change() {
    let e = env_cached().await;
    put_rule(&e, "roles", "admin:ChangeRole", "*", 2).await;
    assert_minting_approvers_is_gated(&e, &e.token, "default", "solo").await;
    // re-enabling a disabled principal restores its role: gated too
    let r = e
        .post("/admin/v1/principals/solo-sock2/disable", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    approval_required(
        &e.post("/admin/v1/principals/solo-sock2/enable", json!({}))
            .await,
    );
    // a role-less principal is not gated; enabling an enabled one is a no-op, not gated
    let r = e
        .post("/admin/v1/principals", json!({"name": "plain"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = e.post("/admin/v1/principals/plain/enable", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn approvers_created_or_promoted_after_the_request_cannot_approve() {
    let e = env_cached().await;
    let early = e.user_token("early", "superadmin", "default").await;
    let _ = e.user_token("promoted", "viewer", "default").await;
    let disabled = e.user_token("gone", "superadmin", "default").await;
    let revoked_key = e
        .post("/admin/v1/keys", json!({"principal": "early"}))
        .await;
    let early_revoked = e
        .login(
            revoked_key.body["access_key_id"].as_str().unwrap(),
            revoked_key.body["secret_key"].as_str().unwrap(),
        )
        .await;
    put_rule(&e, "protect", "s3:DeleteObject", "*", 1).await;
    let a = e
        .post(
            "/admin/v1/approvals",
            json!({"action": "s3:DeleteObject", "bucket": "b", "key": "k"}),
        )
        .await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    let approve = format!("/admin/v1/approvals/{id}/approve");
    // minted after the request was opened (no ChangeRole rule: creation itself is allowed)
    let late = e.user_token("late", "superadmin", "default").await;
    let r = call(&e, Method::POST, &approve, &late, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r), "Forbidden");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("before the request was opened"),
        "{:?}",
        r.body
    );
    // existed, but got the qualifying role after the request was opened
    let r = e
        .req(
            Method::PUT,
            "/admin/v1/principals/promoted/role",
            Some(&e.token),
            Some(json!({"role": "superadmin"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let promoted = e
        .post("/admin/v1/keys", json!({"principal": "promoted"}))
        .await;
    let promoted = e
        .login(
            promoted.body["access_key_id"].as_str().unwrap(),
            promoted.body["secret_key"].as_str().unwrap(),
        )
        .await;
    let r = call(&e, Method::POST, &approve, &promoted, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    // disabled principals and revoked keys cannot approve
    e.post("/admin/v1/principals/gone/disable", json!({})).await;
    let r = call(&e, Method::POST, &approve, &disabled, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let kid = revoked_key.body["access_key_id"].as_str().unwrap();
    e.post(&format!("/admin/v1/keys/{kid}/revoke"), json!({}))
        .await;
    let r = call(&e, Method::POST, &approve, &early_revoked, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // nothing counted so far; a principal that held the role before approves
    assert_eq!(
        e.get(&format!("/admin/v1/approvals/{id}")).await.body["state"],
        "pending"
    );
    let r = call(&e, Method::POST, &approve, &early, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "approved");
}

fn claims_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_do_not_outlive_demotion_revocation_or_disable() {
    let e = env_cached().await;
    let ops = e.user_token("ops", "superadmin", "default").await;
    // the token names the access key that minted it
    let keys = e.get("/admin/v1/keys?principal=ops").await;
    let kid = keys.body["items"][0]["access_key_id"].as_str().unwrap();
    assert_eq!(claims_of(&ops)["akid"], kid);
    let r = call(
        &e,
        Method::POST,
        "/admin/v1/principals",
        &ops,
        Some(json!({"name": "made-by-ops"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // demoted to viewer: the very next call acts as a viewer, whatever the token claims
    let r = call(
        &e,
        Method::PUT,
        "/admin/v1/principals/ops/role",
        &e.token,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(claims_of(&ops)["roles"], json!(["superadmin"]));
    let r = call(
        &e,
        Method::POST,
        "/admin/v1/principals",
        &ops,
        Some(json!({"name": "evil", "role": "superadmin"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r), "Forbidden");
    assert_eq!(
        e.get("/admin/v1/principals/evil").await.status,
        StatusCode::NOT_FOUND
    );
    let r = call(&e, Method::GET, "/admin/v1/status", &ops, None).await;
    assert_eq!(r.status, StatusCode::OK, "still a valid viewer token");
    // the key that minted it is revoked: 401 on the next call
    e.post(&format!("/admin/v1/keys/{kid}/revoke"), json!({}))
        .await;
    let r = call(&e, Method::GET, "/admin/v1/status", &ops, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&r), "Unauthorized");
    // disabled principal: 401, and again when re-enabled its *new* tokens work
    let t2 = e.user_token("ops2", "superadmin", "default").await;
    e.post("/admin/v1/principals/ops2/disable", json!({})).await;
    let r = call(&e, Method::GET, "/admin/v1/status", &t2, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // a tenant moved by the store, not the claims: a forged claim of another tenant is ignored
    let r = call(&e, Method::GET, "/admin/v1/status", &e.token, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

const WRONG_KEY: &str = "invalid access key or secret";

#[tokio::test]
async fn oversized_access_key_ids_cost_no_memory_and_answer_like_a_wrong_key() {
    let e = env_cached().await;
    let wrong = e
        .req(
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": "NOSUCHKEY", "secret_key": "x"})),
            &[],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["error"]["message"], WRONG_KEY);
    // 150 distinct 1 MiB-ish access keys from 150 addresses (below each one's failure quota)
    let big = "A".repeat(1000 * 1024);
    let tracked_before = e.state.limits.tracked_keys();
    for i in 0..150u32 {
        let ak = format!("{i:05}{big}");
        let r = e
            .req_from(
                &format!("10.1.{}.{}", i / 200, i % 200),
                Method::POST,
                "/admin/v1/auth/token",
                None,
                Some(json!({"access_key": ak, "secret_key": "whatever-secret"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(&r), "Unauthorized");
        assert_eq!(
            r.body["error"]["message"], WRONG_KEY,
            "same body as a wrong key"
        );
    }
    // the limiter tracks addresses (a few bytes each), never the caller's key ids
    assert!(e.state.limits.tracked_keys() <= tracked_before + 150);
    assert_eq!(e.state.auth_failures.failures_total(), 150);
    assert!(e.state.auth_failures.tracked_addresses() <= 150);
    // a key id of 129 characters or with control bytes is refused like a wrong key too
    for ak in ["B".repeat(129), "AK\u{1}EY".to_owned()] {
        let r = e
            .req(
                Method::POST,
                "/admin/v1/auth/token",
                None,
                Some(json!({"access_key": ak, "secret_key": "x"})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["error"]["message"], WRONG_KEY);
    }
}

#[tokio::test]
async fn brute_force_from_one_address_is_refused_with_retry_after() {
    let mut e = env_cached().await;
    // on by default, 60 failures per minute per address
    assert_eq!(
        e.state.auth_failures.per_min(),
        policy::DEFAULT_AUTH_FAILURES_PER_MIN
    );
    assert_eq!(policy::DEFAULT_AUTH_FAILURES_PER_MIN, 60);
    // the same limiter at 6 per minute (one back every 10 s), so the test's own run time does
    // not regenerate failures
    e.state = e
        .state
        .clone()
        .with_auth_failures(Arc::new(policy::AuthFailures::new(6)));
    e.router = admin::router(e.state.clone());
    let ak = e.admin_key.access_key_id.clone();
    let sk = e.admin_key.secret.expose().to_owned();
    let attacker = "198.51.100.9";
    let mut refused = 0;
    for i in 0..200 {
        let r = e
            .req_from(
                attacker,
                Method::POST,
                "/admin/v1/auth/token",
                None,
                Some(json!({"access_key": ak, "secret_key": format!("guess-{i}")})),
            )
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
            assert_eq!(error_code(&r), "TooManyRequests");
            // the failure that used up the budget locks the address out for a minute
            let ra: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((50..=60).contains(&ra), "{ra}");
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(refused, 200 - 6, "6 failures, then refused");
    assert_eq!(e.state.auth_failures.failures_total(), 6);
    assert_eq!(e.state.auth_failures.blocked_total(), 194);
    // blocked before any lookup: even the right secret is refused from that address …
    let r = e
        .req_from(
            attacker,
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": ak, "secret_key": sk})),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // … and bearer calls from it too
    let r = e
        .req_from(
            attacker,
            Method::GET,
            "/admin/v1/status",
            Some(&e.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // another address is unaffected
    let r = e
        .req_from(
            "198.51.100.10",
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": ak, "secret_key": sk})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // bad bearer tokens count as failures of their address
    let before = e.state.auth_failures.failures_total();
    for _ in 0..3 {
        let r = e
            .req_from(
                "198.51.100.11",
                Method::GET,
                "/admin/v1/status",
                Some("not-a-token"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(e.state.auth_failures.failures_total(), before + 3);
}

#[tokio::test]
async fn idempotent_replays_of_new_keys_are_sealed_at_rest() {
    let e = env().await;
    let h = [("idempotency-key", "create-key-1")];
    let body = json!({"principal": "admin"});
    let k1 = e
        .req(
            Method::POST,
            "/admin/v1/keys",
            Some(&e.token),
            Some(body.clone()),
            &h,
        )
        .await;
    assert_eq!(k1.status, StatusCode::CREATED);
    let secret = k1.body["secret_key"].as_str().unwrap().to_owned();
    // the database never holds the secret in clear
    let rows: Vec<(String, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT body, sealed_body FROM pol_idempotency")
            .fetch_all(e.state.store.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    for (clear, sealed) in &rows {
        assert!(!clear.contains(&secret), "secret in clear: {clear}");
        let sealed = sealed.as_ref().expect("body stored sealed");
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // a replay still answers the same key and secret
    let k2 = e
        .req(
            Method::POST,
            "/admin/v1/keys",
            Some(&e.token),
            Some(body),
            &h,
        )
        .await;
    assert_eq!(k2.status, StatusCode::CREATED);
    assert_eq!(k2.headers["idempotent-replayed"], "true");
    assert_eq!(k2.body["secret_key"], secret.as_str());
    assert_eq!(k2.body["access_key_id"], k1.body["access_key_id"]);
    // unauthenticated calls store nothing (the token endpoint's answer is a credential)
    let r = e
        .req(
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": e.admin_key.access_key_id, "secret_key": e.admin_key.secret.expose()})),
            &[("idempotency-key", "tok-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pol_idempotency")
        .fetch_one(e.state.store.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn custom_roles_and_key_ids_do_not_cross_tenants() {
    let e = env_cached().await;
    for t in ["acme", "globex"] {
        e.post("/admin/v1/tenants", json!({"name": t})).await;
    }
    let acme = e.user_token("acme-admin", "superadmin", "acme").await;
    let globex = e.user_token("globex-admin", "superadmin", "globex").await;
    // the operator's role (grantable everywhere) and one per tenant
    let r = e
        .post(
            "/admin/v1/roles",
            json!({"name": "OpReader", "actions": ["GetObject"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["tenant"], "default");
    let r = call(
        &e,
        Method::POST,
        "/admin/v1/roles",
        &acme,
        Some(json!({"name": "AcmeWriter", "actions": ["PutObject"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["tenant"], "acme");
    // globex sees its own and the operator's roles only
    let r = call(&e, Method::GET, "/admin/v1/roles", &globex, None).await;
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["OpReader"]);
    // and cannot delete acme's (404 as for a missing role) nor the operator's (403)
    let r = call(
        &e,
        Method::DELETE,
        "/admin/v1/roles/AcmeWriter",
        &globex,
        None,
    )
    .await;
    let missing = call(
        &e,
        Method::DELETE,
        "/admin/v1/roles/NoSuchRole",
        &globex,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .replace("AcmeWriter", "X"),
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .replace("NoSuchRole", "X")
    );
    let r = call(
        &e,
        Method::DELETE,
        "/admin/v1/roles/OpReader",
        &globex,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // nor grant acme's role to its own principal
    call(
        &e,
        Method::POST,
        "/admin/v1/principals",
        &globex,
        Some(json!({"name": "g-svc"})),
    )
    .await;
    let r = call(
        &e,
        Method::POST,
        "/admin/v1/grants",
        &globex,
        Some(json!({"principal": "g-svc", "role": "AcmeWriter", "bucket": "globex-data"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &e,
        Method::POST,
        "/admin/v1/grants",
        &globex,
        Some(json!({"principal": "g-svc", "role": "OpReader", "bucket": "globex-data"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // acme deletes its own; the operator sees and manages all
    let r = e.get("/admin/v1/roles").await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let r = call(
        &e,
        Method::DELETE,
        "/admin/v1/roles/AcmeWriter",
        &acme,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // revoking another tenant's key answers exactly as a key that does not exist
    let k = call(
        &e,
        Method::POST,
        "/admin/v1/keys",
        &acme,
        Some(json!({"principal": "acme-admin"})),
    )
    .await;
    let kid = k.body["access_key_id"].as_str().unwrap();
    let theirs = call(
        &e,
        Method::POST,
        &format!("/admin/v1/keys/{kid}/revoke"),
        &globex,
        None,
    )
    .await;
    let fake = "VGNOSUCHKEYNOSUCHKEY";
    let none = call(
        &e,
        Method::POST,
        &format!("/admin/v1/keys/{fake}/revoke"),
        &globex,
        None,
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(theirs.status, none.status);
    let strip = |r: &Resp, id: &str| {
        let mut b = r.body.clone();
        b["error"]["request_id"] = json!("-");
        b.to_string().replace(id, "ID")
    };
    assert_eq!(strip(&theirs, kid), strip(&none, fake));
    assert!(!theirs.body.to_string().contains("acme"));
    // the key still works
    let r = e.get("/admin/v1/keys?principal=acme-admin").await;
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["revoked"] == false)
    );
}

#[tokio::test]
async fn s3_limits_per_principal_and_role_through_the_api() {
    let e = env_audited().await;
    e.post("/admin/v1/tenants", json!({"name": "acme"})).await;
    let acme = e.user_token("acme-admin", "superadmin", "acme").await;
    let viewer = e.user_token("v", "viewer", "default").await;
    e.post(
        "/admin/v1/principals",
        json!({"name": "sync", "kind": "service"}),
    )
    .await;
    let path = "/admin/v1/principals/sync/limits";
    let r = e.get(path).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"s3_reads_per_min": null, "s3_writes_per_min": null})
    );
    let before = e.head().await;
    let r = call(
        &e,
        Method::PUT,
        path,
        &e.token,
        Some(json!({"s3_writes_per_min": 5000})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["s3_writes_per_min"], 5000);
    let ev = e
        .ledger
        .as_ref()
        .unwrap()
        .get(before + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.action, "admin.SetPrincipalLimits");
    assert_eq!(e.get(path).await.body["s3_writes_per_min"], 5000);
    assert_eq!(
        e.state
            .store
            .s3_quota(
                &e.state.store.identity("sync").await.unwrap().unwrap(),
                policy::LimitClass::S3Write,
                0
            )
            .await
            .unwrap(),
        5000
    );
    // validation: unknown fields, negative numbers
    for bad in [
        json!({"s3_deletes_per_min": 1}),
        json!({"s3_reads_per_min": -1}),
    ] {
        let r = call(&e, Method::PUT, path, &e.token, Some(bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // SuperAdmin only, tenant-scoped (another tenant's principal is not found)
    let r = call(&e, Method::PUT, path, &viewer, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(&e, Method::PUT, path, &acme, Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &e,
        Method::PUT,
        "/admin/v1/principals/acme-admin/limits",
        &acme,
        Some(json!({"s3_reads_per_min": 10})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // role limits: built-in roles, operator only
    let rpath = "/admin/v1/roles/manager/limits";
    let r = call(
        &e,
        Method::PUT,
        rpath,
        &acme,
        Some(json!({"s3_reads_per_min": 1})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        &e,
        Method::PUT,
        rpath,
        &e.token,
        Some(json!({"s3_reads_per_min": 100, "s3_writes_per_min": 0})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(e.get(rpath).await.body["s3_reads_per_min"], 100);
    let r = call(
        &e,
        Method::PUT,
        "/admin/v1/roles/Custom/limits",
        &e.token,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&e, Method::DELETE, rpath, &e.token, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(e.get(rpath).await.body["s3_reads_per_min"], Value::Null);
    let r = call(&e, Method::DELETE, path, &e.token, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(e.get(path).await.body["s3_writes_per_min"], Value::Null);
    // a rule naming admin:SetLimits gates the changes
    put_rule(&e, "limits", "admin:SetLimits", "*", 1).await;
    approval_required(
        &call(
            &e,
            Method::PUT,
            path,
            &e.token,
            Some(json!({"s3_reads_per_min": 1})),
        )
        .await,
    );
}
