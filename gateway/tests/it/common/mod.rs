//! Shared helpers of the in-process tests: start the real gateway on 127.0.0.1:0 with a temp data
//! dir (its admin listener serving the admin REST API as the `vaultgate` binary composes it),
//! build an aws-sdk-s3 client for it, raw HTTP/1.1 requests, and error-code extraction. The
//! binary's tests (`gateway/bin/tests/it`) include this module too.
#![allow(dead_code)]

/// The binary's composition of the admin REST API (`gateway/bin/src/compose.rs`), so that the
/// tests serve what the binary ships; `gateway` itself does not depend on `admin`.
#[path = "../../../bin/src/compose.rs"]
mod compose;

pub use compose::admin_api;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use gateway::config::{Config, Secret};
use gateway::server::RunningServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const AK: &str = "VGTESTACCESSKEY00001";
pub const SK: &str = "test/secret+key-0123456789abcdefghijklmn";
pub const MASTER: &str = "5f4dcc3b5aa765d61d8327deb882cf995f4dcc3b5aa765d61d8327deb882cf99";

pub struct TestGateway {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub client: Client,
}

impl TestGateway {
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }
    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

pub fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.join("data"),
        // PostgreSQL when VAULTGATE_TEST_DATABASE_URL is set: a fresh database per data dir
        // (the same one when a test restarts its gateway on the same dir)
        database_url: audit::db::test_database_url_for(&dir.display().to_string()),
        s3_addr: "127.0.0.1:0".into(),
        admin_addr: "127.0.0.1:0".into(),
        access_key: Some(AK.into()),
        secret_key: Some(Secret::new(SK)),
        master_key: Some(Secret::new(MASTER)),
        // the tests here are not about rate limits (0 = unlimited)
        rate_s3_reads_per_min: 0,
        rate_s3_writes_per_min: 0,
        ..Default::default()
    }
}

/// Loses the index of the stopped gateway of `cfg` ([`remove_index`]) and rebuilds it from the
/// backend alone with `vaultgate reindex`; answers its report.
pub async fn reindex_from_backend(cfg: &Config) -> gateway::ops::reindex::ReindexReport {
    remove_index(cfg);
    let ctx = gateway::ops::OpsContext::open(cfg).await.expect("open");
    let report = gateway::ops::reindex::run(
        &ctx,
        &gateway::ops::reindex::ReindexOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .await
    .expect("reindex");
    ctx.close().await;
    report
}

/// Loses the index of a stopped gateway with config `cfg`: deletes the SQLite file (and its WAL),
/// or empties the PostgreSQL database the tests gave it.
pub fn remove_index(cfg: &Config) {
    match &cfg.database_url {
        Some(url) if url.starts_with("postgres") => audit::db::test_database_wipe(url),
        _ => {
            for suffix in ["", "-wal", "-shm"] {
                let p = cfg.data_dir.join(format!("index.db{suffix}"));
                if p.exists() {
                    std::fs::remove_file(&p).expect("remove index file");
                }
            }
        }
    }
}

pub async fn start() -> TestGateway {
    start_configured(|_| {}).await
}

/// Starts the gateway on [`config`] as `change` alters it.
pub async fn start_configured(change: impl FnOnce(&mut Config)) -> TestGateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path());
    change(&mut cfg);
    let server = gateway::server::start(cfg, admin_api)
        .await
        .expect("gateway starts");
    let endpoint = format!("http://{}", server.s3_addr);
    let client = client_for(&endpoint, AK, SK);
    TestGateway {
        server,
        dir,
        endpoint,
        client,
    }
}

pub fn client_for(endpoint: &str, ak: &str, sk: &str) -> Client {
    let creds = Credentials::new(ak, sk, None, None, "test");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

/// Creates a principal in `tenant` (created if new) with `role` and an S3 client for it.
pub async fn client_as(g: &TestGateway, name: &str, tenant: &str, role: policy::Role) -> Client {
    let store = g.server.authz.store();
    if tenant != "default"
        && !store
            .list_tenants()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == tenant)
    {
        store.create_tenant(tenant).await.unwrap();
    }
    store
        .create_principal(name, "user", tenant, Some(role))
        .await
        .unwrap();
    let k = store.create_access_key(name, None).await.unwrap();
    client_for(&g.endpoint, &k.access_key_id, k.secret.expose())
}

/// The body of `b/k` (or of `range` of it) as the SDK reads it.
pub async fn get_bytes(c: &aws_sdk_s3::Client, b: &str, k: &str, range: Option<&str>) -> Vec<u8> {
    let mut req = c.get_object().bucket(b).key(k);
    if let Some(r) = range {
        req = req.range(r);
    }
    let out = req.send().await.expect("get");
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// Stores `body` under `b/k`.
pub async fn put_bytes(c: &Client, b: &str, k: &str, body: &[u8]) {
    c.put_object()
        .bucket(b)
        .key(k)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect("put");
}

/// S3 error code of an SDK error ("NoSuchKey", ...).
pub fn code<E: ProvideErrorMetadata>(
    e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> String {
    e.code().unwrap_or("").to_owned()
}

/// Turns versioning on for `bucket`.
pub async fn enable_versioning(c: &Client, bucket: &str) {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// HTTP status of an SDK error (0 if there was no response).
pub fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// A raw HTTP/1.1 exchange: returns (status, headers, body).
pub async fn raw(
    addr: std::net::SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req =
        format!("{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "PUT" || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write body");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut body = out[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        let Some(chunk) = b.get(pos + 2..pos + 2 + n) else {
            break;
        };
        out.extend_from_slice(chunk);
        b = b.get(pos + 2 + n + 2..).unwrap_or_default();
    }
    out
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Number of committed backend objects (files under <data>/objects, excluding its temp dir),
/// once the small objects committed inline are written back.
pub async fn backend_objects(g: &TestGateway) -> usize {
    backend_objects_under(g, &g.data_dir().join("objects")).await
}

/// [`backend_objects`] of a gateway whose local backend is the directory `root`.
pub async fn backend_objects_under(g: &TestGateway, root: &std::path::Path) -> usize {
    let r = g.server.store.write_back().await.expect("write-back");
    assert_eq!(r.failed, 0, "write-back: {r:?}");
    files_under(root)
        .into_iter()
        .filter(|p| {
            p.strip_prefix(root)
                .map(|r| !r.starts_with(".tmp"))
                .unwrap_or(false)
        })
        .count()
}

/// A bucket default encryption of `alg` (with `key` as its KMSMasterKeyID) and BucketKeyEnabled.
pub fn default_encryption(
    alg: aws_sdk_s3::types::ServerSideEncryption,
    key: Option<&str>,
) -> aws_sdk_s3::types::ServerSideEncryptionConfiguration {
    use aws_sdk_s3::types::{
        ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    };
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(alg)
        .set_kms_master_key_id(key.map(str::to_owned))
        .build()
        .expect("sse_algorithm is set");
    ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(by_default)
                .bucket_key_enabled(true)
                .build(),
        )
        .build()
        .expect("rules are set")
}

/// The gateway's audit events (the first 1000).
pub async fn audit_events(g: &TestGateway) -> Vec<audit::StoredEvent> {
    g.server
        .audit
        .ledger
        .query(&audit::AuditQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("audit query")
        .events
}

/// The `"listening"` log line a `vaultgate serve` child prints on stdout once both listeners are
/// bound (`None` when its stdout ends first). The rest of its stdout is drained on a thread, so
/// the child never blocks on a full pipe.
pub async fn listening_line(stdout: std::process::ChildStdout) -> Option<String> {
    use std::io::BufRead;
    tokio::task::spawn_blocking(move || {
        let mut r = std::io::BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            if line.contains("\"listening\"") {
                let found = line.clone();
                std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
                return Some(found);
            }
        }
    })
    .await
    .expect("the stdout reader")
}

/// A fresh PostgreSQL database for a test that only makes sense there, or None (the test skips
/// itself, saying so) when no test server is configured — unless
/// VAULTGATE_TEST_REQUIRE_POSTGRES=1 (the CI's PostgreSQL pass), where a missing server fails.
pub fn postgres_database() -> Option<String> {
    match audit::db::test_database_url() {
        Some(url) => Some(url),
        None if std::env::var("VAULTGATE_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("VAULTGATE_TEST_REQUIRE_POSTGRES=1 but VAULTGATE_TEST_DATABASE_URL is not set")
        }
        None => {
            eprintln!("skipped: VAULTGATE_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// Spawns `cmd` (a `vaultgate serve` with its settings), its stderr kept in a temp file, and
/// waits for its listening line (panicking with that stderr when none comes): the child and its
/// S3 and admin addresses.
pub async fn spawn_serve(
    mut cmd: std::process::Command,
) -> (
    std::process::Child,
    std::net::SocketAddr,
    std::net::SocketAddr,
) {
    let log = tempfile::NamedTempFile::new().expect("temp file");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(log.reopen().expect("temp file"))
        .spawn()
        .expect("vaultgate serve starts");
    let line = listening_line(child.stdout.take().expect("stdout"))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no listening line; stderr: {}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            )
        });
    let (s3, admin) = listening_addrs(&line);
    (child, s3, admin)
}

/// The S3 and admin addresses of a `vaultgate serve` child's listening line.
pub fn listening_addrs(line: &str) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("a JSON log line");
    let addr = |k: &str| v[k].as_str().expect(k).parse().expect(k);
    (addr("s3_addr"), addr("admin_addr"))
}

/// Stops a `vaultgate serve` child with SIGTERM, asserts it exited 0 (a clean shutdown) and
/// returns its stderr (the logs).
pub async fn stop_serve(child: std::process::Child) -> String {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("the waiting thread")
        .expect("the child's output");
    assert!(out.status.success(), "serve exit {:?}", out.status);
    String::from_utf8_lossy(&out.stderr).into_owned()
}
