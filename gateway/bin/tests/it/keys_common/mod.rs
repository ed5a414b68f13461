//! Helpers of the key-management tests (`keys_ops.rs`, `keys_reencrypt.rs`): a gateway on the
//! key file provider, admin API calls, principals with tokens, audit counts, and the offline
//! `vaultgate` command on a test's data dir (and database).

use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");

pub async fn start_key_file(dir: &std::path::Path) -> gateway::server::RunningServer {
    let mut cfg = config(dir);
    cfg.master_key = None; // the key file provider: the one that rotates by itself
    gateway::server::start(cfg, admin_api)
        .await
        .expect("starts")
}

pub async fn call(
    admin: std::net::SocketAddr,
    tok: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {tok}");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = vec![("authorization", auth.as_str())];
    if !payload.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    let (st, _, b) = raw(admin, method, path, &headers, payload.as_bytes()).await;
    (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

pub async fn token_for(admin: std::net::SocketAddr, ak: &str, sk: &str) -> String {
    let body = json!({"access_key": ak, "secret_key": sk}).to_string();
    let (st, _, b) = raw(
        admin,
        "POST",
        "/admin/v1/auth/token",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(st, 200, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

/// A principal with `role` in `tenant`, and a token for it.
pub async fn principal_token(
    admin: std::net::SocketAddr,
    root: &str,
    name: &str,
    role: &str,
    tenant: Option<&str>,
) -> String {
    if let Some(t) = tenant {
        let (st, v) = call(
            admin,
            root,
            "POST",
            "/admin/v1/tenants",
            Some(json!({"name": t})),
        )
        .await;
        assert!(st == 201 || st == 409, "{st} {v}");
    }
    let (st, v) = call(
        admin,
        root,
        "POST",
        "/admin/v1/principals",
        Some(json!({"name": name, "role": role, "tenant": tenant})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (st, k) = call(
        admin,
        root,
        "POST",
        "/admin/v1/keys",
        Some(json!({"principal": name})),
    )
    .await;
    assert_eq!(st, 201, "{k}");
    token_for(
        admin,
        k["access_key_id"].as_str().unwrap(),
        k["secret_key"].as_str().unwrap(),
    )
    .await
}

pub async fn audit_count(admin: std::net::SocketAddr, tok: &str, action: &str) -> usize {
    let (st, v) = call(
        admin,
        tok,
        "GET",
        &format!("/admin/v1/audit?action={action}&limit=1000"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().unwrap().len()
}

pub fn body(i: u64) -> Vec<u8> {
    data(1000 + (i as usize * 7919) % 150_000, i)
}

/// The `vaultgate` binary for an offline command on `data` (the data dir of a test's stopped
/// gateway), with no setting inherited from the environment but the database the gateway used
/// (PostgreSQL in the CI's second run).
pub fn vaultgate(data: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULTGATE_") || k == "BLOB_KEY" || k == "LOG_LEVEL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    if let Some(url) = config(data.parent().unwrap()).database_url {
        cmd.env("VAULTGATE_DATABASE_URL", url);
    }
    cmd.env("VAULTGATE_DATA_DIR", data);
    cmd
}
