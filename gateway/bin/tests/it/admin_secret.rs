//! Online rotation of the admin token signing secret (`POST /admin/v1/auth/signing-secret/rotate`,
//! `vaultgate admin kek rotate-admin-secret`): the new secret signs new tokens at once, a token
//! signed by the previous one keeps working for its grace, the new secret is sealed in the data
//! dir (a restart keeps it), one audit event; a viewer, a manager, another tenant's superadmin
//! and a quorum rule are refused, and a configured secret is rotated by configuration (409).

use crate::common;
use crate::keys_common;

use common::*;
use keys_common::*;
use serde_json::json;

const ROTATE: &str = "/admin/v1/auth/signing-secret/rotate";

fn sealed(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read(dir.join("data/admin-jwt.sealed")).expect("the sealed secret")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_signing_secret_rotates_online_and_old_tokens_work_for_their_grace() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_key_file(dir.path()).await;
    let admin = server.admin_addr;
    let old = token_for(admin, AK, SK).await;
    let before = sealed(dir.path());

    let (st, r) = call(admin, &old, "POST", ROTATE, None).await;
    assert_eq!(st, 200, "{r}");
    let grace =
        r["previous_accepted_until_ms"].as_i64().unwrap() - r["rotated_ms"].as_i64().unwrap();
    // the default token lifetime (900 s), within a second of rounding
    assert!((899_000..=901_000).contains(&grace), "{r}");
    assert_ne!(
        sealed(dir.path()),
        before,
        "the new secret is sealed in the data dir"
    );

    // the token signed by the previous secret still works; a new one is signed by the new secret
    let (st, s) = call(admin, &old, "GET", "/admin/v1/status", None).await;
    assert_eq!(st, 200, "old token in its grace: {s}");
    let new = token_for(admin, AK, SK).await;
    assert_ne!(new, old);
    let (st, _) = call(admin, &new, "GET", "/admin/v1/status", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        audit_count(admin, &new, "admin.RotateSigningSecret").await,
        1
    );
    server.shutdown().await;

    // a restart opens the new secret: the new token works; the replaced secret is not kept, so
    // the old token gets the "log in again" answer
    let server = start_key_file(dir.path()).await;
    let admin = server.admin_addr;
    let (st, _) = call(admin, &new, "GET", "/admin/v1/status", None).await;
    assert_eq!(st, 200, "the restart kept the new secret");
    let (st, e) = call(admin, &old, "GET", "/admin/v1/status", None).await;
    assert_eq!(st, 401, "{e}");
    assert_eq!(e["error"]["message"], "bad token signature", "{e}");

    // the CLI: a session, rotated online, keeps working
    let profile = dir.path().join("profile.json");
    let cli = |args: &[&str], stdin: &str| {
        let mut child = vaultgate(&dir.path().join("data"))
            .args([
                "admin",
                "--endpoint",
                &format!("http://{admin}"),
                "--profile-file",
            ])
            .arg(&profile)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let sk = format!("{SK}\n");
    tokio::task::block_in_place(|| {
        cli(&["login", "--access-key", AK, "--secret-key-stdin"], &sk);
        let before = sealed(dir.path());
        let v: serde_json::Value = serde_json::from_str(&cli(
            &["--format", "json", "kek", "rotate-admin-secret"],
            "",
        ))
        .unwrap();
        assert!(
            v["previous_accepted_until_ms"].as_i64().unwrap() > v["rotated_ms"].as_i64().unwrap(),
            "{v}"
        );
        assert_ne!(sealed(dir.path()), before);
        assert!(
            cli(&["status"], "").contains("admin"),
            "the session still works"
        );
    });
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_signing_secret_needs_a_default_tenant_superadmin_and_the_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_key_file(dir.path()).await;
    let admin = server.admin_addr;
    let root = token_for(admin, AK, SK).await;
    let viewer = principal_token(admin, &root, "sviewer", "viewer", None).await;
    let manager = principal_token(admin, &root, "smanager", "manager", None).await;
    let other = principal_token(admin, &root, "osuper", "superadmin", Some("other")).await;
    let before = sealed(dir.path());
    for tok in [&viewer, &manager, &other] {
        let (st, e) = call(admin, tok, "POST", ROTATE, None).await;
        assert_eq!(st, 403, "{e}");
    }
    let (st, _) = call(admin, "not-a-token", "POST", ROTATE, None).await;
    assert_eq!(st, 401);

    let (st, v) = call(
        admin,
        &root,
        "PUT",
        "/admin/v1/quorum/rules/signing-secret",
        Some(json!({"action": "admin:RotateSigningSecret", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 3600})),
    )
    .await;
    assert!(st == 200 || st == 201, "{st} {v}");
    let (st, e) = call(admin, &root, "POST", ROTATE, None).await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"]["code"], "ApprovalRequired", "{e}");
    assert_eq!(sealed(dir.path()), before, "nothing rotated");
    // every refused call left one event
    assert_eq!(
        audit_count(admin, &root, "admin.RotateSigningSecret").await,
        5
    );
    // the tokens issued before still work: nothing changed
    let (st, _) = call(admin, &viewer, "GET", "/admin/v1/status", None).await;
    assert_eq!(st, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_signing_secret_is_rotated_by_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.admin_jwt_secret = Some(gateway::config::Secret::new("c".repeat(40)));
    let server = gateway::server::start(cfg, admin_api)
        .await
        .expect("starts");
    let admin = server.admin_addr;
    let root = token_for(admin, AK, SK).await;
    let (st, e) = call(admin, &root, "POST", ROTATE, None).await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(
        e["error"]["message"],
        "the admin token signing secret is configured (VAULTGATE_ADMIN_JWT_SECRET): change it \
         there and restart the gateway"
    );
    let (st, _) = call(admin, &root, "GET", "/admin/v1/status", None).await;
    assert_eq!(st, 200, "the token still works");
    server.shutdown().await;
}
