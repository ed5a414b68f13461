//! Tests of the `vaultgate` binary: `config check` (valid, invalid, secrets redacted, a
//! PostgreSQL index refused) and `serve` with port 0 (machine-readable listening line, S3
//! reachable, clean exit on SIGTERM).

use crate::common;

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
fn config_check_refuses_a_postgres_url_without_a_host() {
    let out = clean_env(&mut Command::new(BIN))
        .args(["config", "check"])
        .env("VAULTGATE_DATABASE_URL", "postgres://gw:gwpass@/vaultgate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("vaultgate: ")
            && err.contains("VAULTGATE_DATABASE_URL")
            && err.contains("needs a host"),
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
    let line = common::listening_line(child.stdout.take().unwrap())
        .await
        .expect("listening line");
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["msg"], "listening");
    let (s3, admin) = common::listening_addrs(&line);
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

    let logs = common::stop_serve(child).await;
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

/// What a bad setting does to `vaultgate serve`: exit code 1 and exactly one line on stderr
/// besides JSON log lines (said once, no stacked prefixes), naming the setting three ways.
#[test]
fn bad_configuration_is_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let data = dir.path().join("data").display().to_string();
    let not_dir = file.join("d").display().to_string();
    // (variables, the exact line, or its start and end)
    type Row<'a> = (Vec<(&'a str, String)>, String, Option<String>);
    let rows: Vec<Row> = vec![
        (
            vec![("VAULTGATE_S3_ADDR", busy_addr.clone())],
            format!(
                "vaultgate: cannot start: cannot listen on {busy_addr}: the address is already in use (another process listens there); change s3_addr (--s3-addr, VAULTGATE_S3_ADDR)"
            ),
            None,
        ),
        (
            vec![("VAULTGATE_DATA_DIR", not_dir.clone())],
            format!(
                "vaultgate: cannot start: cannot create data dir {not_dir}: Not a directory (os error 20); check data_dir (--data-dir, VAULTGATE_DATA_DIR) and the directory's owner and mode"
            ),
            None,
        ),
        (
            vec![("VAULTGATE_BACKEND", "ftp://host/x".into())],
            "vaultgate: invalid configuration: backend (--backend, VAULTGATE_BACKEND): ftp://host/x: must be a file://, s3:// or azure:// URL".into(),
            None,
        ),
        (
            vec![(
                "VAULTGATE_BACKEND",
                "s3://bucket?endpoint=http://127.0.0.1:9&regoin=eu".into(),
            )],
            "vaultgate: invalid configuration: backend (--backend, VAULTGATE_BACKEND): s3://bucket?endpoint=http://127.0.0.1:9&regoin=eu: unknown s3 backend URL parameter \"regoin\" (known: endpoint, region, path_style)".into(),
            None,
        ),
        (
            vec![
                ("VAULTGATE_BACKEND", "s3://bucket?endpoint=http://127.0.0.1:9".into()),
                ("VAULTGATE_BACKEND_ACCESS_KEY", "AKIDEXAMPLE".into()),
                ("VAULTGATE_BACKEND_SECRET_KEY", "wrong-secret-1".into()),
            ],
            "vaultgate: cannot start: backend s3://bucket?endpoint=http://127.0.0.1:9: unreachable (".into(),
            Some("Connection refused (os error 111)); check backend (--backend, VAULTGATE_BACKEND) and that the service is up".into()),
        ),
        (
            vec![("VAULTGATE_BACKEND", "s3://bucket?endpoint=http://127.0.0.1:9".into())],
            "vaultgate: cannot start: backend s3://bucket?endpoint=http://127.0.0.1:9: access denied (".into(),
            Some("no credentials: none are configured and the AWS credential chain found none); check VAULTGATE_BACKEND_ACCESS_KEY / VAULTGATE_BACKEND_SECRET_KEY".into()),
        ),
        (
            vec![("VAULTGATE_DATABASE_URL", "mysql://root:hunter2@db/vg".into())],
            "vaultgate: invalid configuration: database_url (--database-url, VAULTGATE_DATABASE_URL): must be a sqlite:// or postgres:// URL (got mysql://root:[redacted]@db/vg)".into(),
            None,
        ),
        (
            vec![("VAULTGATE_DATABASE_URL", "postgres://gw:hunter2@127.0.0.1:9/vg".into())],
            "vaultgate: cannot start: cannot open the index postgres://gw:[redacted]@127.0.0.1:9/vg: database error: ".into(),
            Some("Connection refused (os error 111); check database_url (--database-url, VAULTGATE_DATABASE_URL)".into()),
        ),
        (
            vec![("VAULTGATE_ADMIN_JWT_SECRET", "too-short".into())],
            "vaultgate: invalid configuration: admin_jwt_secret (VAULTGATE_ADMIN_JWT_SECRET): the admin JWT secret must be at least 32 bytes".into(),
            None,
        ),
        (
            vec![("LOG_LEVEL", "verbose".into())],
            "vaultgate: invalid configuration: log_level (--log-level, LOG_LEVEL): \"verbose\" is not a log level: use one of error, warn, info, debug, trace, off, or a filter such as info,gateway=debug".into(),
            None,
        ),
        (
            vec![("VAULTGATE_S3_ADDR", "localhost".into())],
            "vaultgate: invalid configuration: s3_addr (--s3-addr, VAULTGATE_S3_ADDR): \"localhost\" is not host:port (e.g. 127.0.0.1:9000, [::1]:9000 or localhost:9000)".into(),
            None,
        ),
    ];
    let mut rows = rows;
    // a wrong password on a real PostgreSQL (conformance/lib/postgres.sh)
    if let Some(admin) = std::env::var("VAULTGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_password(Some("hunter2")).unwrap();
        let masked = format!(
            "postgres://{}:[redacted]@{}:{}{}",
            url.username(),
            url.host_str().unwrap(),
            url.port().unwrap(),
            url.path()
        );
        rows.push((
            vec![("VAULTGATE_DATABASE_URL", url.to_string())],
            format!("vaultgate: cannot start: cannot open the index {masked}: database error: "),
            Some(format!(
                "password authentication failed for user \"{}\"; check database_url (--database-url, VAULTGATE_DATABASE_URL)",
                url.username()
            )),
        ));
    }
    for (vars, line, end) in rows {
        let mut cmd = Command::new(BIN);
        clean_env(&mut cmd)
            .arg("serve")
            .env("VAULTGATE_DATA_DIR", &data)
            .env("VAULTGATE_ADMIN_ADDR", "127.0.0.1:0");
        if !vars.iter().any(|(k, _)| *k == "VAULTGATE_S3_ADDR") {
            cmd.env("VAULTGATE_S3_ADDR", "127.0.0.1:0");
        }
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with('{')).collect();
        assert_eq!(out.status.code(), Some(1), "{vars:?}: {stderr}");
        assert_eq!(lines.len(), 1, "{vars:?}: said once: {stderr}");
        match &end {
            None => assert_eq!(lines[0], line, "{vars:?}"),
            Some(end) => assert!(
                lines[0].starts_with(&line) && lines[0].ends_with(end.as_str()),
                "{vars:?}: {}",
                lines[0]
            ),
        }
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("wrong-secret-1"),
            "{stderr}"
        );
        assert!(!stderr.contains("start-up failed"), "{stderr}");
    }
    drop(busy);
}

/// An unknown `VAULTGATE_*` variable is warned about (with the nearest name), not fatal, and a
/// host name is accepted in a listen address.
#[test]
fn unknown_variables_are_warned_about_and_host_names_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let out = clean_env(&mut Command::new(BIN))
        .args(["config", "check"])
        .env("VAULTGATE_DATA_DIR", dir.path())
        .env("VAULTGATE_S3_ADR", "127.0.0.1:1")
        .env("VAULTGATE_S3_ADDR", "localhost:9000")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "vaultgate: warning: environment variable VAULTGATE_S3_ADR is not a Vaultgate setting (did you mean VAULTGATE_S3_ADDR?); it is ignored"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("s3_addr = \"localhost:9000\""));
}

/// An offline command refuses to run against a data dir a gateway serves (and says so in one
/// line); once the gateway has stopped it runs.
#[tokio::test]
async fn offline_commands_refuse_a_data_dir_a_gateway_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = clean_env(&mut Command::new(BIN))
        .arg("serve")
        .env("VAULTGATE_DATA_DIR", &data)
        .env("VAULTGATE_S3_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ADMIN_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ACCESS_KEY", common::AK)
        .env("VAULTGATE_SECRET_KEY", common::SK)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let listening = common::listening_line(child.stdout.take().unwrap())
        .await
        .is_some();
    assert!(listening);
    let reindex = |data: &std::path::Path| {
        clean_env(&mut Command::new(BIN))
            .args(["reindex", "--quiet"])
            .env("VAULTGATE_DATA_DIR", data)
            .env("VAULTGATE_ACCESS_KEY", common::AK)
            .env("VAULTGATE_SECRET_KEY", common::SK)
            .output()
            .unwrap()
    };
    let out = reindex(&data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with('{')).collect();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        lines,
        vec![format!(
            "vaultgate: cannot start: the data dir {} is in use by a vaultgate gateway (serve) (pid {}); an offline vaultgate command (migrate, migrate-db, reindex, import-hub, keys) needs it alone: stop that process first (while a gateway serves, use the online commands: vaultgate admin …)",
            data.display(),
            child.id()
        )],
        "{stderr}"
    );
    // migrate-db, with --to (before connecting anywhere) and without (SQLite: the data dir's file)
    for args in [
        &[
            "migrate-db",
            "--quiet",
            "--to",
            "postgres://gw:pw@127.0.0.1:1/vg",
        ][..],
        &["migrate-db"][..],
    ] {
        let out = clean_env(&mut Command::new(BIN))
            .args(args)
            .env("VAULTGATE_DATA_DIR", &data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is in use by a vaultgate gateway (serve)"),
            "{args:?}: {stderr}"
        );
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let out = reindex(&data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each offline command's `--help` lists its own options and where the data is, not the
/// listener, TLS and abuse settings of `serve` (which `serve --help` still lists).
#[test]
fn offline_help_lists_only_its_own_options() {
    let help = |args: &[&str]| {
        let out = clean_env(&mut Command::new(BIN))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for cmd in [
        &["reindex", "--help"][..],
        &["migrate", "--help"],
        &["keys", "status", "--help"],
    ] {
        let h = help(cmd);
        // the settings marked [offline] or [store] in gateway::config's settings!
        for own in [
            "--data-dir",
            "--backend",
            "--database-url",
            "--kms",
            "--log-level",
        ] {
            assert!(h.contains(own), "{cmd:?} lacks {own}: {h}");
        }
        for serve_only in [
            "--s3-addr",
            "--tls-cert",
            "--max-connections",
            "--rate-admin-per-min",
        ] {
            assert!(!h.contains(serve_only), "{cmd:?} lists {serve_only}: {h}");
        }
    }
    // the audit commands open no object store: no backend, no KMS
    let h = help(&["audit", "verify", "--help"]);
    assert!(
        h.contains("--data-dir") && h.contains("--database-url"),
        "{h}"
    );
    for unused in ["--backend", "--kms", "--s3-addr", "--tls-cert"] {
        assert!(!h.contains(unused), "audit verify lists {unused}: {h}");
    }
    let h = help(&["serve", "--help"]);
    assert!(h.contains("--s3-addr") && h.contains("--tls-cert"), "{h}");
    // and an offline command takes the settings it lists
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kdata");
    let out = clean_env(&mut Command::new(BIN))
        .args(["keys", "status", "--format", "json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["provider"]["location"],
        format!("key file {}", data.join("master.key").display())
    );
}

/// `config check --connect` for the given variables (a fresh data dir unless one is given):
/// exit code, stdout lines and the stderr lines that are not JSON logs.
fn check_connect(vars: &[(&str, &str)]) -> (Option<i32>, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    clean_env(&mut cmd)
        .args(["config", "check", "--connect"])
        .env("VAULTGATE_DATA_DIR", dir.path());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let lines = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.starts_with('{'))
            .map(str::to_owned)
            .collect()
    };
    (out.status.code(), lines(&out.stdout), lines(&out.stderr))
}

/// The `ok {what} {target} (N ms…)` line of a probe, with its time replaced by `N`.
fn probe_line(stdout: &[String], what: &str) -> String {
    let line = stdout
        .iter()
        .find(|l| l.starts_with(&format!("ok {what} ")))
        .unwrap_or_else(|| panic!("no ok {what} line: {stdout:?}"));
    let (head, rest) = line.rsplit_once(" (").unwrap();
    let (ms, tail) = rest.split_once(" ms").unwrap();
    assert!(ms.parse::<u64>().is_ok(), "{line}");
    format!("{head} (N ms{tail}")
}

/// Without `--connect` nothing is reached; with it, a new data dir's database, backend and key
/// file are ok (they do not exist yet), and an unreachable backend, PostgreSQL and KMS are each
/// the one line `serve` prints, passwords masked, exit 1.
#[test]
fn config_check_connect_probes_the_database_backend_and_key_provider() {
    let (code, stdout, stderr) = check_connect(&[]);
    assert_eq!(code, Some(0), "{stdout:?} {stderr:?}");
    assert_eq!(stderr, Vec::<String>::new());
    let db = probe_line(&stdout, "database");
    assert!(
        db.starts_with("ok database sqlite://")
            && db.ends_with("/index.db (N ms; the file does not exist yet: serve creates it)"),
        "{db}"
    );
    let backend = probe_line(&stdout, "backend");
    assert!(
        backend.starts_with("ok backend file://")
            && backend
                .ends_with("/objects (N ms; the directory does not exist yet: serve creates it)"),
        "{backend}"
    );
    assert!(
        probe_line(&stdout, "keys").ends_with(
            "/master.key (N ms; the file does not exist yet: serve generates it for a new data dir)"
        ),
        "{stdout:?}"
    );
    let (code, stdout, _) = check_connect(&[("VAULTGATE_MASTER_KEY", common::MASTER)]);
    assert_eq!(code, Some(0));
    assert_eq!(
        probe_line(&stdout, "keys"),
        "ok keys master key from environment VAULTGATE_MASTER_KEY (N ms)"
    );

    let unreachable = [
        (
            "VAULTGATE_BACKEND",
            "s3://bucket?endpoint=http://127.0.0.1:9",
        ),
        ("VAULTGATE_BACKEND_ACCESS_KEY", "AKIDEXAMPLE"),
        ("VAULTGATE_BACKEND_SECRET_KEY", "wrong-secret-1"),
        (
            "VAULTGATE_DATABASE_URL",
            "postgres://gw:hunter2@127.0.0.1:9/vg",
        ),
        (
            "VAULTGATE_KMS",
            "aws-kms://alias/vg-any?region=us-east-1&endpoint=http://127.0.0.1:1",
        ),
        ("VAULTGATE_KMS_ACCESS_KEY", "testing"),
        ("VAULTGATE_KMS_SECRET_KEY", "testing-secret-2"),
    ];
    // offline, the same settings pass: nothing is reached
    let out = clean_env(&mut Command::new(BIN))
        .args(["config", "check"])
        .envs(unreachable)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (code, stdout, stderr) = check_connect(&unreachable);
    assert_eq!(code, Some(1), "{stdout:?} {stderr:?}");
    assert!(!stdout.iter().any(|l| l.starts_with("ok ")), "{stdout:?}");
    assert_eq!(stderr.len(), 3, "{stderr:?}");
    let expect = [
        (
            "vaultgate: cannot start: cannot open the index postgres://gw:[redacted]@127.0.0.1:9/vg: database error: ",
            "Connection refused (os error 111); check database_url (--database-url, VAULTGATE_DATABASE_URL)",
        ),
        (
            "vaultgate: cannot start: backend s3://bucket?endpoint=http://127.0.0.1:9: unreachable (",
            "Connection refused (os error 111)); check backend (--backend, VAULTGATE_BACKEND) and that the service is up",
        ),
        (
            "vaultgate: service unavailable: key custody: AWS KMS key alias/vg-any at http://127.0.0.1:1 is unreachable (key unavailable: KMS DescribeKey unreachable: ",
            "); check kms (--kms, VAULTGATE_KMS) and that the KMS is up",
        ),
    ];
    for (line, (start, end)) in stderr.iter().zip(expect) {
        assert!(line.starts_with(start) && line.ends_with(end), "{line}");
    }
    let all = stderr.join("\n");
    for secret in ["hunter2", "wrong-secret-1", "testing-secret-2"] {
        assert!(!all.contains(secret), "{all}");
    }
}

/// A reachable SeaweedFS (conformance/lib/seaweedfs.sh) is ok; wrong credentials are the
/// "access denied" line naming the credential variables, exit 1.
#[test]
fn config_check_connect_reaches_seaweedfs_and_names_wrong_credentials() {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(ep), Some(ak), Some(sk)) = (
        var("VAULTGATE_TEST_S3_ENDPOINT"),
        var("VAULTGATE_TEST_S3_ACCESS_KEY"),
        var("VAULTGATE_TEST_S3_SECRET_KEY"),
    ) else {
        assert!(
            var("VAULTGATE_REQUIRE_SERVICES").as_deref() != Some("1"),
            "VAULTGATE_REQUIRE_SERVICES=1 but VAULTGATE_TEST_S3_* are not set"
        );
        eprintln!(
            "SKIPPED config check --connect on SeaweedFS: VAULTGATE_TEST_S3_ENDPOINT not set"
        );
        return;
    };
    let url = format!("s3://vg-check-connect?endpoint={ep}");
    let (code, stdout, stderr) = check_connect(&[
        ("VAULTGATE_BACKEND", &url),
        ("VAULTGATE_BACKEND_ACCESS_KEY", &ak),
        ("VAULTGATE_BACKEND_SECRET_KEY", &sk),
    ]);
    assert_eq!(code, Some(0), "{stdout:?} {stderr:?}");
    assert_eq!(
        probe_line(&stdout, "backend"),
        format!("ok backend {url} (N ms)")
    );

    let (code, stdout, stderr) = check_connect(&[
        ("VAULTGATE_BACKEND", &url),
        ("VAULTGATE_BACKEND_ACCESS_KEY", &ak),
        ("VAULTGATE_BACKEND_SECRET_KEY", "wrong-secret-3"),
    ]);
    assert_eq!(code, Some(1), "{stdout:?} {stderr:?}");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].starts_with(&format!(
            "vaultgate: cannot start: backend {url}: access denied ("
        )) && stderr[0]
            .ends_with("); check VAULTGATE_BACKEND_ACCESS_KEY / VAULTGATE_BACKEND_SECRET_KEY"),
        "{}",
        stderr[0]
    );
    assert!(!stderr[0].contains("wrong-secret-3"));
}

/// A wrong password on a real PostgreSQL (conformance/lib/postgres.sh) is the masked line.
#[test]
fn config_check_connect_masks_a_wrong_postgres_password() {
    let Some(admin) = std::env::var("VAULTGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!(
            "SKIPPED config check --connect on PostgreSQL: VAULTGATE_TEST_DATABASE_URL not set"
        );
        return;
    };
    let (code, stdout, _) = check_connect(&[("VAULTGATE_DATABASE_URL", &admin)]);
    assert_eq!(code, Some(0), "{stdout:?}");
    assert_eq!(
        probe_line(&stdout, "database"),
        format!("ok database {} (N ms)", audit::db::mask_url(&admin))
    );
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_password(Some("hunter2")).unwrap();
    let (code, _, stderr) = check_connect(&[("VAULTGATE_DATABASE_URL", url.as_str())]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        vec![format!(
            "vaultgate: cannot start: cannot open the index {}: database error: error returned from database: password authentication failed for user \"{}\"; check database_url (--database-url, VAULTGATE_DATABASE_URL)",
            audit::db::mask_url(url.as_str()),
            url.username()
        )]
    );
}

/// A KMS key moto holds is ok (DescribeKey); one it does not hold is the "refused" line.
#[tokio::test(flavor = "multi_thread")]
async fn config_check_connect_asks_the_kms() {
    let Some(ep) = std::env::var("VAULTGATE_TEST_KMS_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!("SKIPPED config check --connect on KMS: VAULTGATE_TEST_KMS_ENDPOINT not set");
        return;
    };
    let creds = aws_credential_types::Credentials::new("testing", "testing", None, None, "test");
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(&ep)
            .build(),
    );
    let made = kms.create_key().send().await.unwrap();
    let key_id = made.key_metadata.unwrap().key_id;
    let run = |key: String| {
        let url = format!("aws-kms://{key}?region=us-east-1&endpoint={ep}");
        tokio::task::spawn_blocking(move || {
            let r = check_connect(&[
                ("VAULTGATE_KMS", &url),
                ("VAULTGATE_KMS_ACCESS_KEY", "testing"),
                ("VAULTGATE_KMS_SECRET_KEY", "testing"),
            ]);
            (url, r)
        })
    };
    let (url, (code, stdout, stderr)) = run(key_id).await.unwrap();
    assert_eq!(code, Some(0), "{stdout:?} {stderr:?}");
    assert_eq!(probe_line(&stdout, "keys"), format!("ok keys {url} (N ms)"));
    let (_, (code, _, stderr)) = run("alias/vg-check-missing".into()).await.unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].starts_with(&format!(
            "vaultgate: invalid configuration: key custody: AWS KMS key alias/vg-check-missing at {ep} refused: key unavailable: KMS DescribeKey: NotFoundException: "
        )) && stderr[0].ends_with("; check VAULTGATE_KMS and the KMS credentials"),
        "{}",
        stderr[0]
    );
}
