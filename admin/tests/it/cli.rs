//! CLI tests: `vaultgate admin …` argument parsing (nested the way the gateway
//! nests it) against an in-process admin server on 127.0.0.1:0, checking the
//! table and JSON output, the 0600 profile file, and error reporting.

use crate::common;

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
    // the approver exists (with its role) before the requests are opened
    let boss2 = e.user_token("boss2", "superadmin", "default").await;
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

/// A `Write` the test can read while the command runs on another thread.
#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Waits (≤ 10 s) until `buf` satisfies `pred`.
async fn wait_for(buf: &SharedBuf, pred: impl Fn(&str) -> bool) -> String {
    for _ in 0..200 {
        let t = buf.text();
        if pred(&t) {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out; output so far:\n{}", buf.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_evidence_commands_against_a_live_server() {
    let e = common::env_audited().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = e
        .router
        .clone()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("admin.json");
    let ak = e.admin_key.access_key_id.clone();
    let sk = e.admin_key.secret.expose().to_owned();
    cli(
        &endpoint,
        &profile,
        &["login", "--access-key", &ak, "--secret-key", &sk],
    )
    .await
    .unwrap();
    for name in ["u1", "u2", "u3"] {
        cli(&endpoint, &profile, &["user", "create", name])
            .await
            .unwrap();
    }

    // search: table with the event columns, newest first, filtered.
    let out = cli(
        &endpoint,
        &profile,
        &["audit", "search", "--action", "admin.CreatePrincipal"],
    )
    .await
    .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "SEQ",
            "TIME",
            "PRINCIPAL",
            "ACTION",
            "TARGET",
            "OUTCOME",
            "STATUS"
        ]
    );
    assert_eq!(lines.len(), 4, "{out}");
    let seqs: Vec<i64> = lines[1..]
        .iter()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(
                cols[2..],
                ["admin", "admin.CreatePrincipal", "-", "success", "201"]
            );
            assert!(cols[1].ends_with('Z') && cols[1].contains('T'), "{l}");
            cols[0].parse().unwrap()
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );

    // search --format json: the events themselves; --limit caps; the source address is kept.
    let search_json = |filter: Vec<String>| {
        let (endpoint, profile) = (endpoint.clone(), profile.clone());
        async move {
            let mut args = vec!["--format", "json", "audit", "search"];
            args.extend(filter.iter().map(String::as_str));
            let out = cli(&endpoint, &profile, &args).await.unwrap();
            serde_json::from_str::<Value>(&out).unwrap()
        }
    };
    let v = search_json(vec![
        "--principal".into(),
        "admin".into(),
        "--limit".into(),
        "2".into(),
    ])
    .await;
    let evs = v.as_array().unwrap();
    assert_eq!(evs.len(), 2);
    assert!(
        evs.iter()
            .all(|x| x["principal"] == "admin" && x["kind"] == "admin")
    );
    assert_eq!(evs[0]["source"], "127.0.0.1", "ConnectInfo source recorded");
    // --request-id and --status: one event by the id an answer carried
    let rid = evs[1]["request_id"].as_str().unwrap().to_owned();
    let status = evs[1]["status"].to_string();
    let v = search_json(vec!["--request-id".into(), rid, "--status".into(), status]).await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["seq"], evs[1]["seq"]);
    let err = cli(
        &endpoint,
        &profile,
        &["audit", "search", "--outcome", "bad"],
    )
    .await
    .unwrap_err();
    assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
    assert!(err.message.contains("outcome"), "{err}");
    // get one
    let out = cli(&endpoint, &profile, &["audit", "get", &seqs[0].to_string()])
        .await
        .unwrap();
    assert!(out.contains("admin.CreatePrincipal"), "{out}");

    // tail -n 2: the last two events, oldest first (the two searches above and the get).
    let out = cli(&endpoint, &profile, &["audit", "tail", "-n", "2"])
        .await
        .unwrap();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0][3], "admin.ListAuditEvents");
    assert_eq!(rows[1][3], "admin.GetAuditEvent");
    assert!(rows[0][0].parse::<i64>().unwrap() < rows[1][0].parse::<i64>().unwrap());

    // tail -f prints an event that happens after it started, and not its own polling.
    let buf = SharedBuf::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ep, pf, mut w) = (endpoint.clone(), profile.clone(), buf.clone());
    let follower = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let argv = [
                "vaultgate-admin",
                "--endpoint",
                &ep,
                "--profile-file",
                pf.to_str().unwrap(),
                "audit",
                "tail",
                "-n",
                "1",
                "-f",
            ];
            let top = Top::try_parse_from(argv).unwrap();
            tokio::select! {
                r = run(top.admin, &mut w) => r.map(|_| "ended"),
                _ = stop_rx => Ok("stopped"),
            }
        })
    });
    let first = wait_for(&buf, |t| t.lines().count() >= 2).await;
    assert_eq!(first.lines().count(), 2, "header + 1 event: {first}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    cli(&endpoint, &profile, &["user", "create", "late"])
        .await
        .unwrap();
    let text = wait_for(&buf, |t| t.lines().count() >= 3).await;
    // two more polls: nothing else is printed (its own ListAuditEvents calls are skipped)
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let text2 = buf.text();
    assert_eq!(text, text2, "only the new event was printed");
    let new_lines: Vec<&str> = text2.lines().skip(2).collect();
    assert_eq!(new_lines.len(), 1, "{text2}");
    assert!(
        new_lines[0].contains("admin.CreatePrincipal") && new_lines[0].contains("201"),
        "{text2}"
    );
    stop_tx.send(()).unwrap();
    assert_eq!(follower.join().unwrap().unwrap(), "stopped");

    // evidence public-key (hex) and export → a bundle that verifies with it.
    let out = cli(&endpoint, &profile, &["evidence", "public-key"])
        .await
        .unwrap();
    let pk = audit::evidence::PublicKey::parse(out.trim()).unwrap();
    let bundle = dir.path().join("b.json");
    let out = cli(
        &endpoint,
        &profile,
        &[
            "--format",
            "json",
            "evidence",
            "export",
            "--action",
            "admin.CreatePrincipal",
            "--out",
            bundle.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["events"], 4);
    let summary = audit::evidence::verify_bundle(&bundle, Some(&pk)).unwrap();
    assert_eq!(summary.events.len(), 4);
    assert!(
        summary
            .events
            .iter()
            .all(|x| x.action == "admin.CreatePrincipal")
    );
    let err = cli(
        &endpoint,
        &profile,
        &[
            "evidence",
            "export",
            "--principal",
            "nobody",
            "--out",
            bundle.to_str().unwrap(),
        ],
    )
    .await
    .unwrap_err();
    // nothing to export
    assert_eq!(err.status, http::StatusCode::NOT_FOUND);
}

#[test]
fn filters_are_percent_encoded() {
    let f = admin::cli::FilterArgs {
        from: Some("2026-01-01T00:00:00+01:00".into()),
        prefix: Some("a b/ü&x=1".into()),
        ..Default::default()
    };
    assert_eq!(
        f.query(),
        "from=2026-01-01T00%3A00%3A00%2B01%3A00&prefix=a%20b%2F%C3%BC%26x%3D1"
    );
    assert_eq!(
        admin::cli::format_ms(1_700_000_000_123),
        "2023-11-14T22:13:20.123Z"
    );
}
