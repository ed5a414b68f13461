//! The admin REST API mounted on the gateway's admin listener beside /metrics, /health and
//! /ready: a token for the bootstrap key, the OpenAPI document, refusal of bad credentials and
//! missing tokens, and `vaultgate admin status` (the real binary) against a running gateway.

use crate::common;

use common::*;

async fn token(g: &TestGateway, ak: &str, sk: &str) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"access_key": ak, "secret_key": sk}).to_string();
    let (st, _, b) = raw(
        g.server.admin_addr,
        "POST",
        "/admin/v1/auth/token",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    (
        st,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn bootstrap_key_gets_a_token_and_the_api_sits_beside_ops_routes() {
    let g = start().await;
    let (st, v) = token(&g, AK, SK).await;
    assert_eq!(st, 200, "{v}");
    let tok = v["token"].as_str().expect("token").to_owned();
    assert_eq!(tok.split('.').count(), 3, "a JWT");

    let (st, _, _) = raw(
        g.server.admin_addr,
        "GET",
        "/admin/v1/openapi.json",
        &[],
        b"",
    )
    .await;
    assert_eq!(st, 200);
    let (_, _, b) = raw(
        g.server.admin_addr,
        "GET",
        "/admin/v1/openapi.json",
        &[],
        b"",
    )
    .await;
    let doc: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert!(doc["paths"]["/admin/v1/auth/token"].is_object());

    let auth = format!("Bearer {tok}");
    let (st, _, b) = raw(
        g.server.admin_addr,
        "GET",
        "/admin/v1/status",
        &[("authorization", auth.as_str())],
        b"",
    )
    .await;
    assert_eq!(st, 200);
    let status: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(status["caller"], "admin");
    assert_eq!(status["extra"]["backend"], "file");

    // no token, a wrong secret
    let (st, _, _) = raw(g.server.admin_addr, "GET", "/admin/v1/status", &[], b"").await;
    assert_eq!(st, 401);
    let (st, v) = token(&g, AK, "wrong-secret-0123456789").await;
    assert_eq!(st, 401, "{v}");
    assert!(v["token"].is_null());

    // the operational routes still answer
    let (st, _, _) = raw(g.server.admin_addr, "GET", "/health", &[], b"").await;
    assert_eq!(st, 200);
    let (st, _, _) = raw(g.server.admin_addr, "GET", "/ready", &[], b"").await;
    assert_eq!(st, 200);
    let (st, _, b) = raw(g.server.admin_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&b).contains("# TYPE"));
    g.stop().await;
}

#[tokio::test]
async fn vaultgate_admin_status_prints_a_table() {
    let g = start().await;
    let (_, v) = token(&g, AK, SK).await;
    let tok = v["token"].as_str().expect("token").to_owned();
    let endpoint = format!("http://{}", g.server.admin_addr);
    let profile = g.dir.path().join("profile.json");
    let run = move |tok: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vaultgate"))
            .args(["admin", "--endpoint", &endpoint, "--token", &tok])
            .arg("--profile-file")
            .arg(&profile)
            .arg("status")
            .env_remove("VAULTGATE_ADMIN_TOKEN")
            .env_remove("VAULTGATE_ADMIN_ENDPOINT")
            .output()
            .expect("run vaultgate admin")
    };
    let r = run.clone();
    let out = tokio::task::spawn_blocking(move || r(tok)).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{stdout}");
    let header = lines[0].to_ascii_lowercase();
    for col in ["version", "uptime_secs", "principals", "caller"] {
        assert!(header.contains(col), "{stdout}");
    }
    assert!(
        lines.iter().skip(1).any(|l| l.contains("admin")),
        "{stdout}"
    );

    // a forged token is refused with the API's error code on stderr and exit 1
    let out = tokio::task::spawn_blocking(move || run("not.a.jwt".into()))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    g.stop().await;
}

const JWT_SECRET: &str = "policy-admin-test-jwt-secret-0123456789abcdef";

/// A compact JWS: base64url(header).base64url(claims).signature, HMAC-SHA256 over the first two
/// parts with `key` (`None`: an empty signature).
fn forge(header: serde_json::Value, claims: serde_json::Value, key: Option<&[u8]>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let sig = key.map_or_else(String::new, |k| {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, k);
        b64.encode(aws_lc_rs::hmac::sign(&k, signing_input.as_bytes()).as_ref())
    });
    format!("{signing_input}.{sig}")
}

/// (status, error code, error message) of GET `path` with `token`.
async fn call(g: &TestGateway, path: &str, token: &str) -> (u16, String, String) {
    let auth = format!("Bearer {token}");
    let (st, _, b) = raw(
        g.server.admin_addr,
        "GET",
        path,
        &[("authorization", auth.as_str())],
        b"",
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
    (
        st,
        v["error"]["code"].as_str().unwrap_or("").to_owned(),
        v["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn forged_and_stale_tokens_are_refused_on_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = gateway::config::Config {
        admin_jwt_secret: Some(gateway::config::Secret::new(JWT_SECRET)),
        ..config(dir.path())
    };
    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .unwrap();
    let g = TestGateway {
        endpoint: format!("http://{}", server.s3_addr),
        client: client_for(&format!("http://{}", server.s3_addr), AK, SK),
        server,
        dir,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |exp: u64, nbf: u64, roles: serde_json::Value| serde_json::json!({"sub": "admin", "tenant": "default", "roles": roles, "exp": exp, "nbf": nbf, "iat": now});
    let hs = serde_json::json!({"alg": "HS256", "typ": "JWT"});
    let key = Some(JWT_SECRET.as_bytes());
    let sa = serde_json::json!(["superadmin"]);

    // the control: a token signed with the configured secret is accepted
    let good = forge(hs.clone(), claims(now + 600, now - 5, sa.clone()), key);
    assert_eq!(call(&g, "/admin/v1/principals", &good).await.0, 200);

    let refused = [
        (
            "alg none",
            forge(
                serde_json::json!({"alg": "none", "typ": "JWT"}),
                claims(now + 600, now - 5, sa.clone()),
                None,
            ),
            "unsupported algorithm",
        ),
        (
            "HS256 without a signature",
            forge(hs.clone(), claims(now + 600, now - 5, sa.clone()), None),
            "",
        ),
        (
            "bad signature",
            forge(
                hs.clone(),
                claims(now + 600, now - 5, sa.clone()),
                Some(b"another-secret-of-the-same-length-0123456789a"),
            ),
            "bad token signature",
        ),
        (
            // HS/RS confusion: an RS256 header over an HMAC made with a shared secret
            "RS256 header, HMAC signature",
            forge(
                serde_json::json!({"alg": "RS256", "typ": "JWT"}),
                claims(now + 600, now - 5, sa.clone()),
                key,
            ),
            "no JWKS key",
        ),
        (
            "HS512",
            forge(
                serde_json::json!({"alg": "HS512", "typ": "JWT"}),
                claims(now + 600, now - 5, sa.clone()),
                key,
            ),
            "not accepted",
        ),
        (
            "expired",
            forge(hs.clone(), claims(now - 1, now - 600, sa.clone()), key),
            "token expired",
        ),
        (
            "not yet valid",
            forge(hs.clone(), claims(now + 600, now + 300, sa.clone()), key),
            "token not yet valid",
        ),
        (
            "no exp",
            forge(
                hs.clone(),
                serde_json::json!({"sub": "admin", "tenant": "default", "roles": sa, "nbf": now - 5}),
                key,
            ),
            "",
        ),
    ];
    for (what, token, reason) in refused {
        let (st, code, message) = call(&g, "/admin/v1/principals", &token).await;
        assert_eq!(
            (st, code.as_str()),
            (401, "Unauthorized"),
            "{what}: {message}"
        );
        assert!(
            message.contains(reason),
            "{what}: {message:?} lacks {reason:?}"
        );
    }
    // a valid token of a principal whose role (in the store: the claims do not count since
    // issue 12) lacks the right the route needs: 403, whatever roles the token claims
    g.server
        .authz
        .store()
        .create_principal("watcher", "user", "default", Some(policy::Role::Viewer))
        .await
        .unwrap();
    for roles in [
        serde_json::json!(["viewer"]),
        serde_json::json!([]),
        serde_json::json!(["superadmin"]),
    ] {
        let c = serde_json::json!({"sub": "watcher", "tenant": "default", "roles": roles, "exp": now + 600, "nbf": now - 5, "iat": now});
        let t = forge(hs.clone(), c, key);
        let (st, code, message) = call(&g, "/admin/v1/principals", &t).await;
        assert_eq!(
            (st, code.as_str()),
            (403, "Forbidden"),
            "{roles}: {message}"
        );
    }
    g.stop().await;
}

/// Every admin route has a `vaultgate admin` command: the ones added last (principal show and
/// limits, custom role create/delete, role limits, quorum rule delete, approval show and
/// request, online chain verify, bucket key status, token renew), each run against the real
/// gateway with JSON output and its effect checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_every_admin_route() {
    let g = start().await;
    let (_, v) = token(&g, AK, SK).await;
    let tok = v["token"].as_str().expect("token").to_owned();
    let endpoint = format!("http://{}", g.server.admin_addr);
    let profile = g.dir.path().join("profile.json");
    let admin = move |args: Vec<String>| {
        let (endpoint, tok, profile) = (endpoint.clone(), tok.clone(), profile.clone());
        async move {
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_vaultgate"))
                    .args([
                        "admin",
                        "--endpoint",
                        &endpoint,
                        "--token",
                        &tok,
                        "--format",
                        "json",
                    ])
                    .arg("--profile-file")
                    .arg(&profile)
                    .args(&args)
                    .env_remove("VAULTGATE_ADMIN_TOKEN")
                    .env_remove("VAULTGATE_ADMIN_ENDPOINT")
                    .output()
                    .expect("run vaultgate admin")
            })
            .await
            .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "{stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
        }
    };
    let json = |s: &str| -> serde_json::Value { serde_json::from_str(s).expect(s) };
    let a = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();

    admin(a(&["user", "create", "dora", "--role", "viewer"])).await;
    let shown = json(&admin(a(&["user", "show", "dora"])).await);
    assert_eq!(shown["name"], "dora");
    assert_eq!(shown["role"], "viewer");
    let set = json(
        &admin(a(&[
            "user", "limits", "dora", "--reads", "120", "--writes", "7",
        ]))
        .await,
    );
    assert_eq!(set["s3_reads_per_min"], 120);
    let got = json(&admin(a(&["user", "limits", "dora"])).await);
    assert_eq!(
        (
            got["s3_reads_per_min"].clone(),
            got["s3_writes_per_min"].clone()
        ),
        (120.into(), 7.into())
    );
    let cleared = admin(a(&["user", "limits", "dora", "--clear"])).await;
    assert!(cleared.contains("removed"), "{cleared}");

    let role = json(
        &admin(a(&[
            "roles",
            "create",
            "uploader",
            "--actions",
            "PutObject,GetObject",
        ]))
        .await,
    );
    assert_eq!(role["name"], "uploader");
    let listed = admin(a(&["roles", "list"])).await;
    assert!(listed.contains("uploader"), "{listed}");
    admin(a(&["roles", "delete", "uploader"])).await;
    assert!(!admin(a(&["roles", "list"])).await.contains("uploader"));
    let rl = json(&admin(a(&["roles", "limits", "viewer", "--writes", "0"])).await);
    assert_eq!(rl["s3_writes_per_min"], 0);
    admin(a(&["roles", "limits", "viewer", "--clear"])).await;

    admin(a(&[
        "quorum",
        "set",
        "bd",
        "--action",
        "s3:DeleteBucket",
        "--approvals",
        "1",
        "--roles",
        "superadmin",
    ]))
    .await;
    let req = json(
        &admin(a(&[
            "approvals",
            "request",
            "--action",
            "s3:DeleteBucket",
            "--bucket",
            "b1",
        ]))
        .await,
    );
    let id = req["id"].as_str().expect("approval id").to_owned();
    assert_eq!(req["state"], "pending");
    let again = json(&admin(vec!["approvals".into(), "show".into(), id.clone()]).await);
    assert_eq!(again["id"], id.as_str());
    admin(a(&["quorum", "delete", "bd"])).await;
    assert!(
        !admin(a(&["quorum", "list"]))
            .await
            .contains("s3:DeleteBucket")
    );

    let chain = json(&admin(a(&["audit", "verify"])).await);
    assert_eq!(chain["ok"], true, "{chain}");
    assert!(chain["events"].as_u64().unwrap() > 10, "{chain}");
    let buckets = admin(a(&["kek", "buckets"])).await;
    assert!(buckets.trim_start().starts_with('['), "{buckets}");
    let renewed = json(&admin(a(&["renew"])).await);
    assert!(renewed["expires_in"].as_u64().unwrap() > 0, "{renewed}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(g.dir.path().join("profile.json")).unwrap()).unwrap();
    assert!(
        saved["token"].as_str().is_some_and(|t| t.len() > 20),
        "{saved}"
    );
    g.stop().await;
}
