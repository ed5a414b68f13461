//! `vaultgate migrate-db` with the real binary: a data dir on SQLite with buckets, small and
//! multipart objects, versions and a delete marker, tags, an upload in progress, a user with an
//! access key, a custom role and a grant, a quorum rule and the audit events of all that is
//! copied into PostgreSQL by `migrate-db --to`, killed (SIGKILL) mid-copy and resumed; then
//! `vaultgate serve` on the PostgreSQL URL with the same data dir serves every version
//! byte-identical, the user's key works as before, and `vaultgate audit verify` passes over
//! every event. A second run on the finished target says there is nothing to copy and verifies
//! again (a row changed on the target is a MISMATCH, exit 1); a target holding another
//! database's data, the copy of another source, or a copy begun before the source changed is
//! refused; a bad or unreachable URL is one line without the password. Without `--to`,
//! `migrate-db` applies the migrations and says which. Needs `VAULTGATE_TEST_DATABASE_URL` (skipped without it unless
//! VAULTGATE_TEST_REQUIRE_POSTGRES=1).

use crate::common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const PASSWORD: &str = "vgtest-pass";

/// The binary with a clean environment, on `data` (SQLite unless `db`).
fn vaultgate(data: &std::path::Path, db: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULTGATE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("VAULTGATE_DATA_DIR", data)
        .env("VAULTGATE_MASTER_KEY", common::MASTER)
        .env("VAULTGATE_ACCESS_KEY", common::AK)
        .env("VAULTGATE_SECRET_KEY", common::SK);
    if let Some(db) = db {
        cmd.env("VAULTGATE_DATABASE_URL", db);
    }
    cmd
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        !o.contains(PASSWORD) && !e.contains(PASSWORD),
        "password shown: {o} {e}"
    );
    (o, e)
}

async fn serve(
    data: &std::path::Path,
    db: Option<&str>,
) -> (Child, std::net::SocketAddr, std::net::SocketAddr) {
    let mut cmd = vaultgate(data, db);
    cmd.arg("serve")
        .env("VAULTGATE_S3_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ADMIN_ADDR", "127.0.0.1:0");
    common::spawn_serve(cmd).await
}

async fn admin(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let (st, _, b) = common::raw(addr, method, path, &headers, body.to_string().as_bytes()).await;
    assert!(
        (200..300).contains(&st),
        "{method} {path}: {st} {}",
        String::from_utf8_lossy(&b)
    );
    serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null)
}

/// What the gateway served before the move, by (bucket, key, version id): sha256 of the bytes.
type Served = BTreeMap<(String, String, String), String>;

/// Fills a SQLite data dir through a real gateway; returns every version's digest and the
/// user's access key pair.
async fn populate(data: &std::path::Path) -> (Served, (String, String)) {
    let (child, s3, adm) = serve(data, None).await;
    let c = common::client_for(&format!("http://{s3}"), common::AK, common::SK);
    for b in ["alpha", "beta"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    common::enable_versioning(&c, "beta").await;
    for (k, n) in [("a.txt", 10usize), ("dir/b.bin", 300_000), ("empty", 0)] {
        put(&c, "alpha", k, common::data(n, n as u64)).await;
    }
    for i in 0..40u64 {
        put(
            &c,
            "alpha",
            &format!("many/{i:03}"),
            common::data(100 + i as usize, i),
        )
        .await;
    }
    multipart(&c, "alpha", "big").await;
    for i in 0..3u64 {
        put(&c, "beta", "v", common::data(1000 + i as usize, 90 + i)).await;
    }
    c.delete_object()
        .bucket("beta")
        .key("v")
        .send()
        .await
        .unwrap();
    put(&c, "beta", "w", common::data(5, 7)).await;
    let tags = Tagging::builder()
        .tag_set(Tag::builder().key("team").value("blue").build().unwrap())
        .build()
        .unwrap();
    c.put_object_tagging()
        .bucket("alpha")
        .key("a.txt")
        .tagging(tags)
        .send()
        .await
        .unwrap();
    // an upload in progress (uploads and parts rows)
    let up = c
        .create_multipart_upload()
        .bucket("alpha")
        .key("pending")
        .send()
        .await
        .unwrap();
    c.upload_part()
        .bucket("alpha")
        .key("pending")
        .upload_id(up.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from(common::data(1000, 3)))
        .send()
        .await
        .unwrap();
    let user = policy_objects(adm).await;
    let served = served(&c).await;
    common::stop_serve(child).await;
    (served, user)
}

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
}

async fn multipart(c: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    let up = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, len) in [(1, 5 << 20), (2, 123_457)] {
        let r = c
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(common::data(len, n as u64)))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// A user with a custom role granted on alpha, its access key, a quorum rule; returns the key.
async fn policy_objects(adm: std::net::SocketAddr) -> (String, String) {
    let tok = admin(
        adm,
        None,
        "POST",
        "/admin/v1/auth/token",
        json!({"access_key": common::AK, "secret_key": common::SK}),
    )
    .await;
    let tok = tok["token"].as_str().unwrap().to_owned();
    let t = Some(tok.as_str());
    admin(
        adm,
        t,
        "POST",
        "/admin/v1/roles",
        json!({"name": "Reader", "actions": ["GetObject", "ListObjectsV2"]}),
    )
    .await;
    admin(
        adm,
        t,
        "POST",
        "/admin/v1/principals",
        json!({"name": "alice", "kind": "user", "tenant": "default", "role": "none"}),
    )
    .await;
    admin(
        adm,
        t,
        "POST",
        "/admin/v1/grants",
        json!({"principal": "alice", "role": "Reader", "bucket": "alpha"}),
    )
    .await;
    admin(adm, t, "PUT", "/admin/v1/quorum/rules/guard-beta", json!({"action": "s3:DeleteBucket", "bucket_pattern": "beta", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 600})).await;
    let key = admin(
        adm,
        t,
        "POST",
        "/admin/v1/keys",
        json!({"principal": "alice"}),
    )
    .await;
    (
        key["access_key_id"].as_str().unwrap().to_owned(),
        key["secret_key"].as_str().unwrap().to_owned(),
    )
}

/// Every version of every bucket (delete markers as "marker"), read through S3.
async fn served(c: &aws_sdk_s3::Client) -> Served {
    let mut out = Served::new();
    for b in ["alpha", "beta"] {
        let v = c.list_object_versions().bucket(b).send().await.unwrap();
        for m in v.delete_markers() {
            let id = m.version_id().unwrap().to_owned();
            out.insert((b.into(), m.key().unwrap().into(), id), "marker".into());
        }
        for o in v.versions() {
            let (k, id) = (o.key().unwrap(), o.version_id().unwrap());
            let body = c
                .get_object()
                .bucket(b)
                .key(k)
                .version_id(id)
                .send()
                .await
                .unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            out.insert((b.into(), k.into(), id.into()), common::sha256_hex(&bytes));
        }
    }
    out
}

async fn pg(db: &str, sql: &str) -> Vec<Option<i64>> {
    audit::db::install_drivers();
    let pool = sqlx::AnyPool::connect(db).await.unwrap();
    let rows: Vec<(Option<i64>,)> = sqlx::query_as(sql)
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    pool.close().await;
    rows.into_iter().map(|r| r.0).collect()
}

/// SIGKILLs `child` (a `migrate-db --to db`) as soon as it committed `rows` rows (polled on one
/// connection, so the kill lands early in the copy).
async fn kill_after(child: &mut Child, db: &str, rows: i64) {
    audit::db::install_drivers();
    let pool = sqlx::AnyPool::connect(db).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let copied: Option<i64> =
            sqlx::query_scalar("SELECT CAST(SUM(rows) AS BIGINT) FROM migrate_db_progress")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        if copied.unwrap_or(0) >= rows {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    child.kill().unwrap();
    pool.close().await;
}

/// Rows of a few tables, as text, from either database (the same query on both).
async fn dump(url: &str) -> Vec<String> {
    audit::db::install_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut out = Vec::new();
    for q in [
        "SELECT seq || ' ' || hash AS r FROM audit_events ORDER BY seq",
        "SELECT id || ' ' || kek_id || ' ' || created_ms AS r FROM data_keys ORDER BY id",
        "SELECT access_key_id || ' ' || principal || ' ' || created_ms AS r FROM pol_access_keys ORDER BY access_key_id",
        "SELECT bucket || '/' || object_key || ' ' || version_id || ' ' || seq || ' ' || last_modified_ms || ' ' || etag AS r FROM objects ORDER BY bucket, object_key, version_id",
        "SELECT upload_id || ' ' || part_number || ' ' || backend_id AS r FROM parts ORDER BY upload_id, part_number",
        "SELECT name || ' ' || action || ' ' || bucket_pattern AS r FROM pol_quorum_rules ORDER BY name",
        "SELECT 'settings ' || value AS r FROM idx_settings_generation",
        "SELECT 'policy ' || value AS r FROM pol_generation",
    ] {
        let rows: Vec<(String,)> = sqlx::query_as(q).fetch_all(&pool).await.unwrap();
        out.extend(rows.into_iter().map(|r| r.0));
    }
    let blobs: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT wrapped FROM data_keys ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    out.extend(blobs.iter().map(|b| hex_of(&b.0)));
    let sealed: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT sealed_secret FROM pol_access_keys ORDER BY access_key_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    out.extend(sealed.iter().map(|b| hex_of(&b.0)));
    pool.close().await;
    out
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_data_dir_moves_to_postgres_killed_and_resumed_and_serves_the_same() {
    let Some(db) = common::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (before, (ak, sk)) = populate(&data).await;
    assert_eq!(before.len(), 49, "{before:?}");
    let sqlite = format!("sqlite://{}/index.db", data.display());
    let source_rows = dump(&sqlite).await;

    // killed mid-copy: one row per batch, SIGKILL once some rows are committed
    let mut child = vaultgate(&data, None)
        .args(["migrate-db", "--batch-rows", "1", "--quiet", "--to", &db])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_after(&mut child, &db, 5).await;
    assert!(
        child.wait().unwrap().code().is_none(),
        "killed by the signal"
    );
    let copied_at = pg(&db, "SELECT copied_ms FROM migrate_db_source").await;
    assert_eq!(copied_at, [None], "the kill came before the copy finished");

    let out = run({
        let mut c = vaultgate(&data, None);
        c.args(["migrate-db", "--quiet", "--to", &db]);
        c
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in [
        "resuming the copy begun earlier",
        "rows were copied by an earlier run",
        "identical",
        "OK,",
        "verified: the target is a complete copy",
        "postgres://vgtest:[redacted]@",
    ] {
        assert!(stdout.contains(want), "{want} missing in {stdout}");
    }
    assert!(!stdout.contains("MISMATCH"), "{stdout}");
    assert_eq!(dump(&db).await, source_rows, "the copy equals the source");

    // a second run (the URL by variable, out of `ps`): nothing to copy, verified again
    let out = run({
        let mut c = vaultgate(&data, None);
        c.args(["migrate-db", "--quiet"])
            .env("VAULTGATE_MIGRATE_DB_TO", &db);
        c
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("nothing to copy"), "{stdout}");
    assert!(!stdout.contains("copied 0 rows"), "{stdout}");

    // without --to, on the new database: nothing left to apply
    let out = run({
        let mut c = vaultgate(&data, Some(&db));
        c.arg("migrate-db");
        c
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("up to date, nothing applied (14 migrations in place)"),
        "{stdout}"
    );

    // a row changed on the target: the verification says so, exit 1
    let tamper = |etag: &str| {
        format!(
            "UPDATE objects SET etag = '{etag}' WHERE bucket = 'alpha' AND object_key = 'dir/b.bin'"
        )
    };
    audit::db::install_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    let etag: String = sqlx::query_scalar(
        "SELECT etag FROM objects WHERE bucket = 'alpha' AND object_key = 'dir/b.bin'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query(&tamper("0123")).execute(&pool).await.unwrap();
    let out = run({
        let mut c = vaultgate(&data, None);
        c.args(["migrate-db", "--quiet", "--to", &db]);
        c
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "MISMATCH table objects: 49 rows in the source, 49 in the target, contents differ"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("NOT verified"), "{stdout}");
    sqlx::query(&tamper(&etag)).execute(&pool).await.unwrap();
    pool.close().await;

    // another source into the same target: refused
    let other = dir.path().join("other");
    let out = run({
        let mut c = vaultgate(&other, None);
        c.args(["migrate-db", "--quiet", "--to", &db]);
        c
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("holds a copy of another database"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // serve on PostgreSQL with the same data dir: the same versions and bytes, the same keys
    let (child, s3, _) = serve(&data, Some(&db)).await;
    let c = common::client_for(&format!("http://{s3}"), common::AK, common::SK);
    assert_eq!(served(&c).await, before);
    let alice = common::client_for(&format!("http://{s3}"), &ak, &sk);
    let got = alice
        .get_object()
        .bucket("alpha")
        .key("a.txt")
        .send()
        .await
        .unwrap();
    let tagging = c
        .get_object_tagging()
        .bucket("alpha")
        .key("a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(tagging.tag_set()[0].value(), "blue");
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().to_vec(),
        common::data(10, 10)
    );
    let denied = alice
        .get_object()
        .bucket("beta")
        .key("w")
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::code(&denied), "AccessDenied");
    let uploads = c
        .list_multipart_uploads()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    common::stop_serve(child).await;

    let events = source_rows
        .iter()
        .filter(|r| r.split(' ').nth(1).is_some_and(|h| h.len() == 64))
        .count();
    let out = run({
        let mut c = vaultgate(&data, Some(&db));
        c.args(["audit", "verify"]);
        c
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let n: usize = stdout
        .split("OK, ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        n > events,
        "{n} events after serving, {events} copied: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_other_data_or_a_bad_url_is_refused_in_one_line() {
    let Some(db) = common::postgres_database() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // a database a gateway already served from
    let (child, _, _) = serve(&dir.path().join("pg-data"), Some(&db)).await;
    common::stop_serve(child).await;
    populate(&data).await;
    let migrate = |to: &str| {
        let mut c = vaultgate(&data, None);
        c.args(["migrate-db", "--quiet", "--to", to]);
        c
    };
    let out = run(migrate(&db)).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(": the target postgres://vgtest:[redacted]@"),
        "{stderr}"
    );
    assert!(
        stderr.contains("already holds data that migrate-db did not copy"),
        "{stderr}"
    );
    assert!(stderr.contains("rows in pol_principals"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // a copy interrupted, then the gateway served from SQLite again: the source changed
    let fresh = audit::db::test_database_url().unwrap();
    let mut child = migrate(&fresh)
        .args(["--batch-rows", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    kill_after(&mut child, &fresh, 3).await;
    child.wait().unwrap();
    let (child, s3, _) = serve(&data, None).await;
    let c = common::client_for(&format!("http://{s3}"), common::AK, common::SK);
    c.create_bucket().bucket("later").send().await.unwrap();
    common::stop_serve(child).await;
    let out = run(migrate(&fresh)).await;
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("changed since the copy into postgres://vgtest:[redacted]@"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let mut url = url::Url::parse(&db).unwrap();
    let mut wrong = url.clone();
    wrong.set_password(Some("vgtest-pass-not")).unwrap();
    url.set_port(Some(1)).unwrap();
    for (to, want) in [
        (
            wrong.to_string(),
            "password authentication failed for user \"vgtest\"",
        ),
        (
            "mysql://u:vgtest-pass@h/db".to_owned(),
            "--to must be a PostgreSQL URL",
        ),
        (
            "postgres://u:vgtest-pass@/db".to_owned(),
            "not a usable URL",
        ),
        (
            url.to_string(),
            "cannot open the target database postgres://vgtest:[redacted]@127.0.0.1:1/",
        ),
    ] {
        let out = run(migrate(&to)).await;
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{to}: {stderr}");
        assert!(stderr.contains(want), "{to}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_to_the_migrations_are_applied_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let apply = || {
        let mut c = vaultgate(&data, None);
        c.arg("migrate-db");
        c
    };
    let out = run(apply()).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("applied 14 migrations:"), "{stdout}");
    assert!(stdout.contains("20261205000040 inline streams"), "{stdout}");
    assert!(
        stdout.contains("20261206000050 bucket state generation"),
        "{stdout}"
    );
    assert!(
        stdout.contains("20261205000014 settings generation"),
        "{stdout}"
    );
    assert!(stdout.contains("20261205000020 data key kms"), "{stdout}");
    assert!(stdout.contains("20261205000030 part checksums"), "{stdout}");
    let out = run(apply()).await;
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("up to date, nothing applied (14 migrations in place)"),
        "{stdout}"
    );

    // --help lists the command's own options, not serve's
    let out = run({
        let mut c = vaultgate(&data, None);
        c.args(["migrate-db", "--help"]);
        c
    })
    .await;
    let (help, _) = text(&out);
    for own in [
        "--to",
        "--batch-rows",
        "--sample",
        "--data-dir",
        "--database-url",
    ] {
        assert!(help.contains(own), "{own} missing in {help}");
    }
    for other in ["--s3-addr", "--admin-addr", "--tls-cert"] {
        assert!(!help.contains(other), "{other} in {help}");
    }
}
