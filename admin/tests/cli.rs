//! CLI tests: `vaultgate admin …` argument parsing (nested the way the gateway
//! nests it) against an in-process admin server on 127.0.0.1:0, checking the
//! table and JSON output, the 0600 profile file, and error reporting.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use admin::cli::{AdminArgs, run};
use clap::Parser;
use serde_json::Value;

#[derive(Parser)]
struct Top {
    #[command(flatten)]
    admin: AdminArgs,
}

async fn cli(endpoint: &str, profile: &Path, args: &[&str]) -> Result<String, admin::ApiError> {
    let mut argv = vec![
        "vaultgate-admin",
        "--endpoint",
        endpoint,
        "--profile-file",
        profile.to_str().unwrap(),
    ];
    argv.extend_from_slice(args);
    let top = Top::try_parse_from(argv).expect("arguments parse");
    let mut out = Vec::new();
    run(top.admin, &mut out).await?;
    Ok(String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn cli_against_a_live_admin_server() {
    let e = common::env().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = e.router.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("cfg").join("admin.json");
    let ak = e.admin_key.access_key_id.clone();
    let sk = e.admin_key.secret.expose().to_owned();

    // Without a token: a clear 401.
    let err = cli(&endpoint, &profile, &["status"]).await.unwrap_err();
    assert_eq!(err.status, http::StatusCode::UNAUTHORIZED);
    assert_eq!(err.code, "Unauthorized");

    // login writes a 0600 profile used by later commands.
    let out = cli(
        &endpoint,
        &profile,
        &["login", "--access-key", &ak, "--secret-key", &sk],
    )
    .await
    .unwrap();
    assert!(out.starts_with("ENDPOINT"), "{out}");
    let mode = std::fs::metadata(&profile).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    assert_eq!(saved["endpoint"], endpoint.as_str());
    assert!(
        !std::fs::read_to_string(&profile).unwrap().contains(&sk),
        "secret not stored"
    );

    let out = cli(&endpoint, &profile, &["status"]).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("VERSION") && lines[0].contains("CALLER"));
    assert!(lines[1].ends_with("admin"), "{out}");

    // user create / list (table and json) / disable.
    let out = cli(
        &endpoint,
        &profile,
        &["user", "create", "ci", "--role", "manager"],
    )
    .await
    .unwrap();
    assert_eq!(
        out.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["ci", "user", "default", "manager", "false"]
    );
    cli(
        &endpoint,
        &profile,
        &["user", "create", "backup", "--service"],
    )
    .await
    .unwrap();
    let out = cli(&endpoint, &profile, &["user", "list"]).await.unwrap();
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["admin", "backup", "ci"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "KIND", "TENANT", "ROLE", "DISABLED"]);
    let out = cli(&endpoint, &profile, &["--format", "json", "user", "list"])
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[1]["kind"], "service");
    let out = cli(&endpoint, &profile, &["user", "disable", "backup"])
        .await
        .unwrap();
    assert!(out.lines().nth(1).unwrap().ends_with("true"));
    let err = cli(&endpoint, &profile, &["user", "create", "ci"])
        .await
        .unwrap_err();
    assert_eq!(err.code, "Conflict");

    // key create / list / revoke.
    let out = cli(
        &endpoint,
        &profile,
        &[
            "--format",
            "json",
            "key",
            "create",
            "--user",
            "ci",
            "--expires-in",
            "3600",
        ],
    )
    .await
    .unwrap();
    let k: Value = serde_json::from_str(&out).unwrap();
    let kid = k["access_key_id"].as_str().unwrap().to_owned();
    let ksecret = k["secret_key"].as_str().unwrap().to_owned();
    assert_eq!(ksecret.len(), 40);
    let out = cli(&endpoint, &profile, &["key", "create", "--user", "ci"])
        .await
        .unwrap();
    assert!(out.contains("shown only once"));
    let out = cli(&endpoint, &profile, &["key", "list", "--user", "ci"])
        .await
        .unwrap();
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(!out.contains(&ksecret));
    let out = cli(&endpoint, &profile, &["key", "revoke", &kid])
        .await
        .unwrap();
    assert!(out.lines().nth(1).unwrap().contains("true"), "{out}");

    // grant, tenant.
    let out = cli(
        &endpoint,
        &profile,
        &[
            "grant",
            "--user",
            "ci",
            "--role",
            "superadmin",
            "--bucket",
            "finance-*",
            "--prefix",
            "q1/",
        ],
    )
    .await
    .unwrap();
    assert!(out.contains("finance-*") && out.contains("q1/"), "{out}");
    cli(&endpoint, &profile, &["tenant", "create", "acme"])
        .await
        .unwrap();
    let out = cli(&endpoint, &profile, &["--format", "json", "tenant", "list"])
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["acme", "default"]
    );

    // quorum set / list, approvals list / approve / reject with a second SuperAdmin's token.
    cli(
        &endpoint,
        &profile,
        &[
            "quorum",
            "set",
            "nodel",
            "--action",
            "s3:DeleteBucket",
            "--approvals",
            "1",
            "--roles",
            "superadmin,manager",
            "--ttl",
            "600",
        ],
    )
    .await
    .unwrap();
    let out = cli(&endpoint, &profile, &["quorum", "list"]).await.unwrap();
    assert!(out.lines().nth(1).unwrap().starts_with("nodel"), "{out}");
    assert!(out.contains("superadmin,manager"));
    let err = cli(
        &endpoint,
        &profile,
        &[
            "quorum",
            "set",
            "bad",
            "--action",
            "s3:DeleteBucket",
            "--approvals",
            "0",
            "--roles",
            "superadmin",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, "InvalidRequest");
    let a1 = e
        .post(
            "/admin/v1/approvals",
            serde_json::json!({"action": "s3:DeleteBucket", "bucket": "b1"}),
        )
        .await;
    let a2 = e
        .post(
            "/admin/v1/approvals",
            serde_json::json!({"action": "s3:DeleteBucket", "bucket": "b2"}),
        )
        .await;
    let (id1, id2) = (
        a1.body["id"].as_str().unwrap().to_owned(),
        a2.body["id"].as_str().unwrap().to_owned(),
    );
    let out = cli(
        &endpoint,
        &profile,
        &["approvals", "list", "--state", "pending"],
    )
    .await
    .unwrap();
    assert_eq!(out.lines().count(), 3, "{out}");
    let err = cli(&endpoint, &profile, &["approvals", "approve", &id1])
        .await
        .unwrap_err();
    assert_eq!(err.code, "Forbidden", "requester cannot approve");
    let boss2 = e.user_token("boss2", "superadmin", "default").await;
    let out = cli(
        &endpoint,
        &profile,
        &["--token", &boss2, "approvals", "approve", &id1],
    )
    .await
    .unwrap();
    assert!(out.lines().nth(1).unwrap().contains("approved"), "{out}");
    let out = cli(
        &endpoint,
        &profile,
        &[
            "--token",
            &boss2,
            "--format",
            "json",
            "approvals",
            "reject",
            &id2,
        ],
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "rejected");
    let err = cli(&endpoint, &profile, &["approvals", "approve", "apr-none"])
        .await
        .unwrap_err();
    assert_eq!(err.status, http::StatusCode::NOT_FOUND);

    // A profile readable by others is refused.
    std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = cli(&endpoint, &profile, &["status"]).await.unwrap_err();
    assert!(err.message.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&profile, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Connection errors and non-http endpoints are reported, not panics.
    let err = cli("http://127.0.0.1:1", &profile, &["status"])
        .await
        .unwrap_err();
    assert_eq!(err.code, "Connection");
    let err = cli("https://127.0.0.1:1", &profile, &["status"])
        .await
        .unwrap_err();
    assert_eq!(err.code, "Client");
}

#[test]
fn table_aligns_columns() {
    let rows = vec![
        serde_json::json!({"a": "x", "b": 1, "c": null}),
        serde_json::json!({"a": "longer", "b": [1, 2], "c": true}),
    ];
    let t = admin::cli::table(&["a", "b", "c"], &rows);
    assert_eq!(t, "A       B    C\nx       1    -\nlonger  1,2  true\n");
}
