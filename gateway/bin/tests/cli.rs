//! Tests of the `vaultgate` binary: `config check` (valid, invalid, secrets redacted, a
//! PostgreSQL index refused) and `serve` with port 0 (machine-readable listening line, S3
//! reachable, clean exit on SIGTERM).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULTGATE_") || k == "BLOB_KEY" || k == "LOG_LEVEL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn config_check_prints_redacted_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vg.toml");
    std::fs::write(
        &file,
        "s3_addr = \"127.0.0.1:7777\"\nlog_level = \"debug\"\n",
    )
    .unwrap();
    let out = clean_env(&mut Command::new(BIN))
        .args(["config", "check", "--config"])
        .arg(&file)
        .env("VAULTGATE_SECRET_KEY", "super-secret-value-123")
        .env("VAULTGATE_ACCESS_KEY", "VGCLITEST")
        .env("VAULTGATE_MASTER_KEY", common::MASTER)
        .env("VAULTGATE_ADMIN_ADDR", "127.0.0.1:7778")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("s3_addr = \"127.0.0.1:7777\""), "{stdout}");
    assert!(
        stdout.contains("admin_addr = \"127.0.0.1:7778\""),
        "{stdout}"
    );
    assert!(stdout.contains("log_level = \"debug\""), "{stdout}");
    assert!(stdout.contains("access_key = \"VGCLITEST\""), "{stdout}");
    assert!(!stdout.contains("super-secret-value-123"), "{stdout}");
    assert!(!stdout.contains(common::MASTER), "{stdout}");
    assert!(stdout.contains("[redacted]"));
}

#[test]
fn config_check_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "s3_address = \"127.0.0.1:1\"\n").unwrap();
    let out = clean_env(&mut Command::new(BIN))
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s3_address"), "{err}");

    let out = clean_env(&mut Command::new(BIN))
        .args(["config", "check"])
        .env("VAULTGATE_S3_ADDR", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3_addr"));

    let out = clean_env(&mut Command::new(BIN))
        .args(["config", "check"])
        .env("BLOB_KEY", "abcd")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("master_key"));
}

#[test]
fn config_check_refuses_a_postgres_index() {
    let out = clean_env(&mut Command::new(BIN))
        .args(["config", "check"])
        .env(
            "VAULTGATE_DATABASE_URL",
            "postgres://gw:gwpass@127.0.0.1/vaultgate",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("vaultgate: ") && err.contains("PostgreSQL is not supported yet"),
        "{err}"
    );
    assert!(!err.contains("gwpass"), "{err}");
}

#[tokio::test]
async fn serve_reports_its_addresses_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = clean_env(&mut Command::new(BIN))
        .arg("serve")
        .env("VAULTGATE_DATA_DIR", dir.path().join("data"))
        .env("VAULTGATE_S3_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ADMIN_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ACCESS_KEY", common::AK)
        .env("VAULTGATE_SECRET_KEY", common::SK)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            if line.contains("\"listening\"") {
                return Some(line.clone());
            }
        }
    })
    .await
    .unwrap()
    .expect("listening line");
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["msg"], "listening");
    let s3: std::net::SocketAddr = v["s3_addr"].as_str().unwrap().parse().unwrap();
    let admin: std::net::SocketAddr = v["admin_addr"].as_str().unwrap().parse().unwrap();
    assert_ne!(s3.port(), 0);

    let c = common::client_for(&format!("http://{s3}"), common::AK, common::SK);
    c.create_bucket().bucket("cli").send().await.unwrap();
    let (st, _, _) = common::raw(admin, "GET", "/ready", &[], b"").await;
    assert_eq!(st, 200);
    // the key file was generated with mode 0600 (no master key configured)
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key file mode {mode:o}");
    }

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    let logs = String::from_utf8_lossy(&out.stderr);
    // JSON logs, one line per request, never the secret
    assert!(
        logs.lines()
            .any(|l| l.contains("\"op\":\"CreateBucket\"") && l.contains("\"status\":200")),
        "{logs}"
    );
    assert!(!logs.contains(common::SK), "secret in logs");
    for l in logs.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
    }
}
