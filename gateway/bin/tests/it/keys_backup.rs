//! `vaultgate keys backup|restore` with the real binary: a backup (mode 0600, never
//! overwritten, no key bytes in clear), `master.key` deleted (the gateway then refuses to
//! start), a wrong passphrase and damaged files refused with one line and nothing written, the
//! restore, and the gateway serving every object byte-exact again; a restore over a different
//! key refused without `--force` and, with it, the replaced key kept aside.

use crate::common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use aws_sdk_s3::primitives::ByteStream;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const PASS: &str = "correct horse battery staple";

async fn start_key_file(dir: &Path) -> Result<gateway::server::RunningServer, gateway::Error> {
    let mut cfg = config(dir);
    cfg.master_key = None;
    gateway::server::start(cfg, admin_api).await
}

/// `vaultgate keys ARGS` on `data`, `stdin` as its standard input.
fn keys(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULTGATE_") || k == "BLOB_KEY" || k == "LOG_LEVEL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .arg("keys")
        .args(args)
        .env("VAULTGATE_DATA_DIR", data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn err_line(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr).trim_end().to_owned();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{} {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn body(i: u64) -> Vec<u8> {
    data(3000 + (i as usize * 7919) % 100_000, i)
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_delete_restore_and_the_gateway_serves_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_key_file(dir.path()).await.unwrap();
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    client.create_bucket().bucket("bkp").send().await.unwrap();
    for i in 0..5 {
        client
            .put_object()
            .bucket("bkp")
            .key(format!("k{i}"))
            .body(ByteStream::from(body(i)))
            .send()
            .await
            .unwrap();
    }
    server.shutdown().await;
    let key_file = std::fs::read(data.join("master.key")).unwrap();
    let evidence_key = std::fs::read(data.join("evidence.key")).unwrap();

    let out = dir.path().join("keys.vgkb");
    let out_s = out.to_str().unwrap();
    let o = keys(
        &data,
        &["backup", "--out", out_s, "--passphrase-stdin"],
        "short\n",
    );
    assert_eq!(
        err_line(&o),
        "vaultgate: the passphrase must have at least 12 characters"
    );
    assert!(!out.exists());
    let text = ok(&keys(
        &data,
        &["backup", "--out", out_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    ));
    assert!(
        text.contains("master.key") && text.contains("evidence.key"),
        "{text}"
    );
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let sealed = std::fs::read(&out).unwrap();
    assert_eq!(&sealed[..4], b"VGKB");
    // no key bytes in clear, not even their base64
    let kf = String::from_utf8_lossy(&key_file).into_owned();
    let kf_json: serde_json::Value = serde_json::from_str(&kf).unwrap();
    let secret_hex = kf_json.to_string();
    for needle in [
        key_file.as_slice(),
        evidence_key.as_slice(),
        secret_hex.as_bytes(),
    ] {
        assert!(
            !sealed
                .windows(16)
                .any(|w| needle.windows(16).any(|n| n == w)),
            "key bytes in clear"
        );
    }
    // never overwritten
    let o = keys(
        &data,
        &["backup", "--out", out_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    );
    assert!(err_line(&o).contains("exists; refusing to overwrite"));
    assert_eq!(std::fs::read(&out).unwrap(), sealed);

    // the key file is lost: the gateway refuses to start
    std::fs::remove_file(data.join("master.key")).unwrap();
    let Err(e) = start_key_file(dir.path()).await else {
        panic!("the gateway started without its key file");
    };
    assert!(e.to_string().contains("is missing"), "{e}");

    // wrong passphrase, damaged files: one line, nothing written
    let o = keys(
        &data,
        &["restore", "--in", out_s, "--passphrase-stdin"],
        "correct horse battery stable\n",
    );
    assert_eq!(
        err_line(&o),
        format!(
            "vaultgate: {out_s}: wrong passphrase for this key backup (or its header is damaged)"
        )
    );
    assert!(!data.join("master.key").exists());
    let bad = dir.path().join("bad.vgkb");
    let bad_s = bad.to_str().unwrap();
    let mut flipped = sealed.clone();
    let n = flipped.len();
    flipped[n - 40] ^= 0x01; // in the ciphertext
    std::fs::write(&bad, &flipped).unwrap();
    let o = keys(
        &data,
        &["restore", "--in", bad_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    );
    assert_eq!(
        err_line(&o),
        format!(
            "vaultgate: {bad_s}: the key backup is damaged: it does not verify (the passphrase is right)"
        )
    );
    let mut flipped = sealed.clone();
    flipped[20] ^= 0x01; // in the salt
    std::fs::write(&bad, &flipped).unwrap();
    let o = keys(
        &data,
        &["restore", "--in", bad_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    );
    assert!(err_line(&o).contains("wrong passphrase"));
    std::fs::write(&bad, &sealed[..60]).unwrap();
    let o = keys(
        &data,
        &["restore", "--in", bad_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    );
    assert!(err_line(&o).contains("truncated"));
    std::fs::write(&bad, b"{\"not\": \"a backup\"}").unwrap();
    let o = keys(
        &data,
        &["restore", "--in", bad_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    );
    assert!(err_line(&o).contains("not a vaultgate key backup"));
    let o = keys(&data, &["restore", "--in", out_s], "");
    assert!(err_line(&o).contains("no passphrase"));
    assert!(!data.join("master.key").exists());

    // the restore: the same bytes, mode 0600; identical files are left alone
    let text = ok(&keys(
        &data,
        &["restore", "--in", out_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    ));
    assert!(
        text.contains("restored into") && text.contains("master.key"),
        "{text}"
    );
    assert!(
        text.contains("already identical: admin-jwt.sealed"),
        "{text}"
    );
    assert_eq!(std::fs::read(data.join("master.key")).unwrap(), key_file);
    assert_eq!(
        std::fs::metadata(data.join("master.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let server = start_key_file(dir.path()).await.unwrap();
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    for i in 0..5 {
        let got = client
            .get_object()
            .bucket("bkp")
            .key(format!("k{i}"))
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert_eq!(sha256_hex(&got), sha256_hex(&body(i)), "k{i}");
    }
    // a restore under a running gateway is refused by the data dir lock
    let o = keys(
        &data,
        &["restore", "--in", out_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_never_replaces_a_different_key_without_force() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        start_key_file(d.path()).await.unwrap().shutdown().await;
    }
    let (da, db) = (a.path().join("data"), b.path().join("data"));
    let out = a.path().join("a.vgkb");
    let out_s = out.to_str().unwrap();
    ok(&keys(
        &da,
        &["backup", "--out", out_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    ));
    let b_key = std::fs::read(db.join("master.key")).unwrap();
    let a_key = std::fs::read(da.join("master.key")).unwrap();
    assert_ne!(a_key, b_key);

    let o = keys(
        &db,
        &["restore", "--in", out_s, "--passphrase-stdin"],
        &format!("{PASS}\n"),
    );
    let e = err_line(&o);
    assert!(
        e.contains("exist with other keys than the backup's; nothing restored")
            && e.contains("master.key")
            && e.contains("--force"),
        "{e}"
    );
    assert_eq!(std::fs::read(db.join("master.key")).unwrap(), b_key);

    let text = ok(&keys(
        &db,
        &["restore", "--in", out_s, "--passphrase-stdin", "--force"],
        &format!("{PASS}\n"),
    ));
    assert!(text.contains("kept the replaced"), "{text}");
    assert_eq!(std::fs::read(db.join("master.key")).unwrap(), a_key);
    let kept: Vec<_> = std::fs::read_dir(&db)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("master.key.replaced-")
        })
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(kept[0].path()).unwrap(), b_key);
}
