//! Admin sessions across restarts, with the real binary: the generated admin token signing
//! secret is kept sealed in the data dir (mode 0600, not in clear), so a `vaultgate admin login`
//! survives a restart; `vaultgate keys rotate-admin-secret` replaces it and the CLI then says to
//! log in again; the secret key is read from stdin (`--secret-key-stdin`), never required on the
//! command line; the CLI has the grant list/revoke, user enable/set-role and roles list commands
//! of the REST API, and its tables show times, not epoch milliseconds.

use crate::common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const MASTER: &str = "3333333333333333333333333333333333333333333333333333333333333333";

fn clean(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULTGATE_") || k == "BLOB_KEY" || k == "LOG_LEVEL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

async fn serve(data: &Path) -> (Child, SocketAddr) {
    let mut child = clean(&mut Command::new(BIN))
        .arg("serve")
        .env("VAULTGATE_DATA_DIR", data)
        .env("VAULTGATE_S3_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ADMIN_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ACCESS_KEY", common::AK)
        .env("VAULTGATE_SECRET_KEY", common::SK)
        .env("VAULTGATE_MASTER_KEY", MASTER)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = common::listening_line(child.stdout.take().unwrap())
        .await
        .expect("listening line");
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    (child, v["admin_addr"].as_str().unwrap().parse().unwrap())
}

async fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
}

/// `vaultgate admin --endpoint … --profile-file … ARGS` with `stdin` fed in.
fn admin(admin: SocketAddr, profile: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = clean(&mut Command::new(BIN))
        .arg("admin")
        .args(["--endpoint", &format!("http://{admin}")])
        .arg("--profile-file")
        .arg(profile)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn login(addr: SocketAddr, profile: &Path) {
    ok(&admin(
        addr,
        profile,
        &["login", "--access-key", common::AK, "--secret-key-stdin"],
        Some(&format!("{}\n", common::SK)),
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_tokens_survive_restarts_until_the_secret_is_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let profile = dir.path().join("profile.json");
    let (child, addr) = serve(&data).await;

    // no secret anywhere and no terminal: a clear refusal, nothing asked on argv
    let out = admin(addr, &profile, &["login", "--access-key", common::AK], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "Client: no secret key: use --secret-key-stdin, the prompt (on a terminal) or VAULTGATE_SECRET_KEY"
    );
    login(addr, &profile);
    assert!(ok(&admin(addr, &profile, &["status"], None)).contains("admin"));

    // the signing secret is sealed in the data dir, mode 0600
    let sealed_path = data.join("admin-jwt.sealed");
    let sealed = std::fs::read(&sealed_path).unwrap();
    assert_eq!(&sealed[..4], b"VGB1", "a sealed blob");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sealed_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
    stop(child).await;

    // a restart keeps the session
    let (child, addr) = serve(&data).await;
    assert!(ok(&admin(addr, &profile, &["status"], None)).contains("admin"));
    stop(child).await;
    assert_eq!(
        std::fs::read(&sealed_path).unwrap(),
        sealed,
        "not rewritten"
    );

    // rotating the secret ends every session, and the CLI says what to do
    let out = clean(&mut Command::new(BIN))
        .args(["keys", "rotate-admin-secret"])
        .env("VAULTGATE_DATA_DIR", &data)
        .env("VAULTGATE_MASTER_KEY", MASTER)
        .output()
        .unwrap();
    ok(&out);
    assert_ne!(std::fs::read(&sealed_path).unwrap(), sealed);
    let (child, addr) = serve(&data).await;
    let out = admin(addr, &profile, &["status"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "Unauthorized: session expired or signed by an old key (bad token signature): log in \
         again (vaultgate admin login --access-key ID --secret-key-stdin)"
    );
    login(addr, &profile);
    assert!(ok(&admin(addr, &profile, &["status"], None)).contains("admin"));

    // the commands the REST API had and the CLI lacked
    ok(&admin(
        addr,
        &profile,
        &["user", "create", "ucli", "--role", "viewer"],
        None,
    ));
    let t = ok(&admin(
        addr,
        &profile,
        &["user", "set-role", "ucli", "--role", "manager"],
        None,
    ));
    assert!(t.contains("manager"), "{t}");
    ok(&admin(addr, &profile, &["user", "disable", "ucli"], None));
    let t = ok(&admin(
        addr,
        &profile,
        &["--format", "json", "user", "enable", "ucli"],
        None,
    ));
    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["disabled"], false, "{v}");
    ok(&admin(
        addr,
        &profile,
        &[
            "grant", "--user", "ucli", "--role", "viewer", "--bucket", "gbk",
        ],
        None,
    ));
    let t = ok(&admin(
        addr,
        &profile,
        &["--format", "json", "grants", "list", "--user", "ucli"],
        None,
    ));
    let grants: serde_json::Value = serde_json::from_str(&t).unwrap();
    let id = grants[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(grants[0]["bucket"], "gbk");
    ok(&admin(addr, &profile, &["grants", "revoke", &id], None));
    let t = ok(&admin(
        addr,
        &profile,
        &["--format", "json", "grants", "list", "--user", "ucli"],
        None,
    ));
    assert_eq!(t.trim(), "[]");
    let t = ok(&admin(addr, &profile, &["roles", "list"], None));
    assert!(t.starts_with("NAME"), "{t}");
    // times, not epoch milliseconds
    ok(&admin(
        addr,
        &profile,
        &["key", "create", "--user", "ucli", "--expires-in", "3600"],
        None,
    ));
    let t = ok(&admin(
        addr,
        &profile,
        &["key", "list", "--user", "ucli"],
        None,
    ));
    let header = t.lines().next().unwrap();
    assert!(header.contains("EXPIRES") && !header.contains("_MS"), "{t}");
    let row = t.lines().nth(1).unwrap();
    let expires = row.split_whitespace().last().unwrap();
    assert!(
        expires.len() >= 20 && expires.contains('T') && expires.ends_with('Z'),
        "RFC 3339: {t}"
    );
    stop(child).await;
}
