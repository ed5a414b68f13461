//! The admin REST API mounted on the gateway's admin listener beside /metrics, /health and
//! /ready: a token for the bootstrap key, the OpenAPI document, refusal of bad credentials and
//! missing tokens, and `vaultgate admin status` (the real binary) against a running gateway.

mod common;

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
