//! `vaultgate audit verify|prune` and `vaultgate evidence verify` through the real binary, on a
//! ledger the real gateway wrote: untouched it verifies (exit 0); a field edited, a row
//! deleted, a row inserted or two rows swapped in SQLite, or the same done to the JSON-lines
//! mirror, make it exit 1 naming the broken seq; after a prune it verifies from the signed
//! checkpoint, also once the gateway has appended more events.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");

fn vaultgate(args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULTGATE_") || k == "BLOB_KEY" || k == "LOG_LEVEL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let out = cmd.args(args).output().expect("run vaultgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Runs the gateway once on `dir` (mirror on), sends `n_puts` PUTs plus a bucket and a GET.
async fn serve_some(dir: &Path, bucket: &str, n_puts: usize) {
    let mut cfg = config(dir);
    // these tests tamper with, copy and restore the SQLite file itself
    cfg.database_url = None;
    cfg.audit_mirror = Some(dir.join("data").join("audit.jsonl"));
    let server = gateway::server::start(cfg, common::admin_api)
        .await
        .expect("start");
    let c = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    c.create_bucket().bucket(bucket).send().await.unwrap();
    for i in 0..n_puts {
        c.put_object()
            .bucket(bucket)
            .key(format!("k{i}"))
            .body(ByteStream::from(data(100, i as u64)))
            .send()
            .await
            .unwrap();
    }
    c.get_object()
        .bucket(bucket)
        .key("k0")
        .send()
        .await
        .unwrap();
    server.shutdown().await;
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("data").join("index.db")
}

/// Runs SQL against the (stopped) gateway's database, on one connection closed before this
/// returns. (A pool's `close` can return with a connection handed back during it still open;
/// that connection, closed later, would write its view of the WAL over the next restore.)
async fn sql(dir: &Path, statements: &[&str]) {
    use sqlx::Connection;
    let url = format!("sqlite://{}", db_path(dir).display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open db");
    for s in statements {
        sqlx::query(s).execute(&mut conn).await.expect(s);
    }
    conn.close().await.expect("close db");
}

/// Puts the database back as `pristine` (a [`snapshot`]): the file, and no write-ahead log or
/// shared-memory index beside it — a WAL left by the previous case's connection would otherwise
/// be replayed over the restored file (seen: a forged row of one case showing up in the next).
fn restore(dir: &Path, pristine: &[u8]) {
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db_path(dir).display()));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", side.display()),
        }
    }
    std::fs::write(db_path(dir), pristine).unwrap();
}

fn verify_db(dir: &Path) -> (i32, String) {
    let data = dir.join("data");
    vaultgate(&["audit", "verify", "--data-dir", data.to_str().unwrap()])
}

fn verify_mirror(path: &Path) -> (i32, String) {
    vaultgate(&["audit", "verify", "--file", path.to_str().unwrap()])
}

/// The database file alone, as a consistent copy: whatever the stopped gateway's last
/// connection left in the write-ahead log (SQLite deletes it on a clean close, but a close that
/// races with a still-finishing task can leave it) is checkpointed into the file first, so
/// restoring the file alone restores the whole database.
async fn snapshot(dir: &Path) -> Vec<u8> {
    sql(dir, &["PRAGMA wal_checkpoint(TRUNCATE)"]).await;
    let wal = PathBuf::from(format!("{}-wal", db_path(dir).display()));
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "{} still holds frames after a checkpoint: is the gateway still running?",
        wal.display()
    );
    std::fs::read(db_path(dir)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_every_kind_of_tampering_in_the_database_and_the_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    serve_some(dir, "tamper", 8).await; // 1 + 8 + 1 = 10 events

    let (code, out) = verify_db(dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK, 10 events (seq 1..=10)"), "{out}");
    let pristine = snapshot(dir).await;

    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "edit a field",
            vec!["UPDATE audit_events SET status = 201 WHERE seq = 3"],
            "BROKEN at seq 3",
        ),
        (
            "delete a row",
            vec!["DELETE FROM audit_events WHERE seq = 4"],
            "BROKEN at seq 4",
        ),
        (
            "insert a row",
            vec![
                "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 6",
                "UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1006",
                "INSERT INTO audit_events SELECT 6, time_ms, 'FORGED', kind, principal, tenant, \
                 action, bucket, object_key, outcome, status, error_code, bytes_in, bytes_out, \
                 key_version, source, duration_us, hash, hash FROM audit_events WHERE seq = 5",
                "UPDATE audit_head SET seq = seq + 1",
            ],
            "BROKEN at seq 6",
        ),
        (
            "swap two rows",
            vec![
                "UPDATE audit_events SET seq = -7 WHERE seq = 7",
                "UPDATE audit_events SET seq = 7 WHERE seq = 8",
                "UPDATE audit_events SET seq = 8 WHERE seq = -7",
            ],
            "BROKEN at seq 7",
        ),
    ];
    for (what, stmts, want) in cases {
        restore(dir, &pristine);
        sql(dir, &stmts).await;
        let (code, out) = verify_db(dir);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.contains(want), "{what}: want {want:?} in {out}");
    }
    restore(dir, &pristine);
    assert_eq!(verify_db(dir).0, 0);

    // the mirror file
    let mirror = dir.join("data").join("audit.jsonl");
    let (code, out) = verify_mirror(&mirror);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK, 10 events"), "{out}");
    let text = std::fs::read_to_string(&mirror).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10);
    let edited = lines[2].replacen("\"status\":200", "\"status\":201", 1);
    assert_ne!(edited, lines[2]);
    let mut swapped = lines.clone();
    swapped.swap(6, 7);
    let mut deleted = lines.clone();
    deleted.remove(3);
    let mut inserted = lines.clone();
    inserted.insert(5, lines[4]);
    let mut edit = lines.clone();
    edit[2] = &edited;
    let tampered = tmp.path().join("tampered.jsonl");
    for (what, content, want) in [
        ("edit a line", edit, "BROKEN at seq 3"),
        ("delete a line", deleted, "BROKEN at seq 4"),
        ("insert a line", inserted, "BROKEN at seq 5"),
        ("swap two lines", swapped, "BROKEN at seq 7"),
    ] {
        std::fs::write(&tampered, content.join("\n") + "\n").unwrap();
        let (code, out) = verify_mirror(&tampered);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.contains(want), "{what}: want {want:?} in {out}");
    }

    // unreadable input: exit 2
    let (code, out) = verify_mirror(&dir.join("no-such-file.jsonl"));
    assert_eq!(code, 2, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_then_verify_from_the_signed_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    serve_some(dir, "retain", 3).await; // 5 events
    let data = dir.join("data");
    let data_s = data.to_str().unwrap();
    // nothing is 90 days old: the default retention prunes nothing
    let (code, out) = vaultgate(&["audit", "prune", "--data-dir", data_s]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("pruned 0 events"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, out) = vaultgate(&["audit", "prune", "--data-dir", data_s, "--before-days", "0"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pruned 5 events; checkpoint at seq 5"),
        "{out}"
    );
    let (code, out) = verify_db(dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK, 0 events"), "{out}");
    assert!(out.contains("from checkpoint after seq 5"), "{out}");
    assert!(out.contains("(trusted key)"), "{out}");

    // the gateway continues the chain after the checkpoint
    serve_some(dir, "retain2", 1).await; // 3 more events
    let (code, out) = verify_db(dir);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK, 3 events (seq 6..=8)"), "{out}");
    // a checkpoint signed by another key is refused when the key is pinned
    let (code, out) = vaultgate(&[
        "audit",
        "verify",
        "--data-dir",
        data_s,
        "--public-key",
        &audit::evidence::EvidenceKey::from_seed(&[0x11; 32])
            .public_key()
            .to_hex(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad checkpoint"), "{out}");
    // the first remaining event edited: broken right after the checkpoint
    sql(dir, &["UPDATE audit_events SET bytes_in = 1 WHERE seq = 6"]).await;
    let (code, out) = verify_db(dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 6"), "{out}");
    // the mirror still holds every event from seq 1 and verifies from genesis
    let (code, out) = verify_mirror(&data.join("audit.jsonl"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK, 8 events"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_verify_accepts_an_exported_bundle_and_rejects_changed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let server = gateway::server::start(config(tmp.path()), common::admin_api)
        .await
        .unwrap();
    let c = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    c.create_bucket().bucket("evid").send().await.unwrap();
    c.put_object()
        .bucket("evid")
        .key("a")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let bundle = tmp.path().join("bundle.json");
    let filter = audit::AuditFilter {
        bucket: Some("evid".into()),
        ..Default::default()
    };
    audit::evidence::export_bundle(
        &server.audit.ledger,
        &server.audit.evidence_key,
        &filter,
        audit::now_ms(),
        audit::evidence::ExportLimits::default(),
        &bundle,
    )
    .await
    .unwrap();
    let own = server.audit.evidence_key.public_key().to_hex();
    server.shutdown().await;
    let b = bundle.to_str().unwrap();
    let (code, out) = vaultgate(&["evidence", "verify", b]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("evidence bundle OK: 2 events"), "{out}");
    let (code, out) = vaultgate(&["evidence", "verify", b, "--public-key", &own]);
    assert_eq!(code, 0, "{out}");
    let other = audit::evidence::EvidenceKey::from_seed(&[0x22; 32])
        .public_key()
        .to_hex();
    let (code, out) = vaultgate(&["evidence", "verify", b, "--public-key", &other]);
    assert_eq!(code, 1, "{out}");
    // one character of the container changed
    let mut bytes = std::fs::read(&bundle).unwrap();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    std::fs::write(&bundle, &bytes).unwrap();
    let (code, out) = vaultgate(&["evidence", "verify", b]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn evidence_verify_rejects_what_is_not_a_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bundle.json");
    std::fs::write(&f, b"{\"format\":\"something-else\",\"files\":[]}").unwrap();
    let (code, out) = vaultgate(&["evidence", "verify", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bundle.json"), "{out}");
    assert!(out.to_lowercase().contains("malformed"), "{out}");
}
