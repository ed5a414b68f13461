//! Key custody at start and the KMS outage drill, run against the real `vaultgate serve`
//! binary: a deleted key file is never replaced by a fresh key next to existing data, a wrong
//! master key and a KMS key that does not exist stop the start with one line naming the KEK and
//! where the provider looked (exit code 1), and with the KMS (moto, behind a proxy the test
//! cuts) unreachable at start or mid-run, cached buckets keep serving, uncached ones answer 503
//! with Retry-After, `/ready` names them, and everything recovers when the KMS answers again,
//! without a restart. The KMS tests need VAULTGATE_TEST_KMS_ENDPOINT (moto); without it they are
//! skipped, unless VAULTGATE_REQUIRE_SERVICES=1.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use aws_sdk_s3::primitives::ByteStream;

const BIN: &str = env!("CARGO_BIN_EXE_vaultgate");
const KEY_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_B: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn serve_cmd(data: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULTGATE_")
            || k.starts_with("AWS_")
            || k == "BLOB_KEY"
            || k == "LOG_LEVEL"
            || k == "RUST_LOG"
            || k == "CREDENTIALS_DIRECTORY"
        {
            cmd.env_remove(k);
        }
    }
    cmd.arg("serve")
        .env("VAULTGATE_DATA_DIR", data)
        .env("VAULTGATE_S3_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ADMIN_ADDR", "127.0.0.1:0")
        .env("VAULTGATE_ACCESS_KEY", common::AK)
        .env("VAULTGATE_SECRET_KEY", common::SK)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

struct Running {
    child: Child,
    s3: SocketAddr,
    admin: SocketAddr,
}

impl Running {
    fn client(&self) -> aws_sdk_s3::Client {
        common::client_for(&format!("http://{}", self.s3), common::AK, common::SK)
    }
    async fn stop(self) {
        common::stop_serve(self.child).await;
    }
}

/// Starts `vaultgate serve` and waits for its listening line.
async fn serve(cmd: Command) -> Running {
    let (child, s3, admin) = common::spawn_serve(cmd).await;
    Running { child, s3, admin }
}

/// Runs `vaultgate serve` expecting it to refuse: (exit code, the `vaultgate: …` line on stderr).
fn refused(mut cmd: Command) -> (i32, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("vaultgate: "))
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    (out.status.code().unwrap_or(-1), lines[0].to_owned())
}

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap();
}

async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

fn kek_id_of(hex_key: &str) -> String {
    keys::provider::local_kek_id(&keys::DataKeyMaterial::from_hex(hex_key).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_key_file_is_not_replaced_next_to_existing_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let g = serve(serve_cmd(&data, &[])).await;
    let c = g.client();
    c.create_bucket().bucket("bk1").send().await.unwrap();
    let body = common::data(70_000, 1);
    put(&c, "bk1", "k", &body).await;
    g.stop().await;

    let key_file = data.join("master.key");
    let saved = std::fs::read(&key_file).unwrap();
    let file: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    let kek = kek_id_of(file["keys"][0]["hex"].as_str().unwrap());
    std::fs::remove_file(&key_file).unwrap();

    let (code, line) = refused(serve_cmd(&data, &[]));
    assert_eq!(code, 1);
    assert_eq!(
        line,
        format!(
            "vaultgate: invalid configuration: the key file {}/master.key is missing, but the index \
             sqlite://{}/index.db holds 2 data keys (1 buckets) wrapped by KEK {kek}; restore \
             master.key from your backup (or set VAULTGATE_MASTER_KEY / VAULTGATE_KMS to the key \
             that wraps them): a new key would open none of this data, so none is generated",
            data.display(),
            data.display()
        )
    );
    assert!(!key_file.exists(), "no new key file was generated");

    // the restored key file serves the object again
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)
            .unwrap();
        f.write_all(&saved).unwrap();
    }
    let g = serve(serve_cmd(&data, &[])).await;
    assert_eq!(get(&g.client(), "bk1", "k").await, body);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_master_key_stops_the_start_naming_the_kek() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let g = serve(serve_cmd(&data, &[("VAULTGATE_MASTER_KEY", KEY_A)])).await;
    let c = g.client();
    c.create_bucket().bucket("bk1").send().await.unwrap();
    let body = common::data(1000, 2);
    put(&c, "bk1", "k", &body).await;
    g.stop().await;

    let kek = kek_id_of(KEY_A);
    let (code, line) = refused(serve_cmd(&data, &[("VAULTGATE_MASTER_KEY", KEY_B)]));
    assert_eq!(code, 1);
    assert_eq!(
        line,
        format!(
            "vaultgate: invalid configuration: key custody: KEK {kek} wraps 2 data keys (buckets \
             __vaultgate_secrets, bk1) but the master key from environment VAULTGATE_MASTER_KEY \
             cannot unwrap them (key unavailable: KEK {kek} is not in this key provider); \
             configure the key that wraps them (restore the key file, or set VAULTGATE_MASTER_KEY \
             / VAULTGATE_KMS)"
        )
    );
    assert!(
        !line.contains(KEY_A) && !line.contains(KEY_B),
        "no key material"
    );
    // no key file either: the refused start created nothing
    assert!(!data.join("master.key").exists());

    // the right key still serves
    let g = serve(serve_cmd(&data, &[("VAULTGATE_MASTER_KEY", KEY_A)])).await;
    assert_eq!(get(&g.client(), "bk1", "k").await, body);
    g.stop().await;
}

fn kms_endpoint() -> Option<String> {
    match std::env::var("VAULTGATE_TEST_KMS_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var("VAULTGATE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "VAULTGATE_REQUIRE_SERVICES=1 but VAULTGATE_TEST_KMS_ENDPOINT is not set"
            );
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED key custody KMS test: VAULTGATE_TEST_KMS_ENDPOINT not set\n",
            );
            None
        }
    }
}

fn kms_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("VAULTGATE_KMS", url.to_owned()),
        ("VAULTGATE_KMS_ACCESS_KEY", "testing".into()),
        ("VAULTGATE_KMS_SECRET_KEY", "testing".into()),
    ]
}

fn with_env(data: &Path, env: &[(&'static str, String)]) -> Command {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    serve_cmd(data, &pairs)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kms_key_that_does_not_exist_stops_the_start() {
    let Some(ep) = kms_endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alias = format!("alias/vg-missing-{}", keys::DataKeyId::random().unwrap());
    let url = format!("aws-kms://{alias}?region=us-east-1&endpoint={ep}");
    let (code, line) = refused(with_env(&data, &kms_env(&url)));
    assert_eq!(code, 1);
    let prefix = format!(
        "vaultgate: invalid configuration: key custody: AWS KMS key {alias} at {ep} refused: key \
         unavailable: KMS DescribeKey: NotFoundException: "
    );
    assert!(line.starts_with(&prefix), "{line}");
    assert!(
        line.ends_with("; check VAULTGATE_KMS and the KMS credentials"),
        "{line}"
    );
    assert!(!line.contains("testing"), "no credential in the message");
    assert!(!data.join("master.key").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_gateway_with_an_unreachable_kms_does_not_start() {
    // nothing listens on port 1: the KMS is unreachable, and a new index has no key yet
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = "aws-kms://alias/vg-any?region=us-east-1&endpoint=http://127.0.0.1:1";
    let (code, line) = refused(with_env(&data, &kms_env(url)));
    assert_eq!(code, 1);
    let prefix = "vaultgate: service unavailable: key custody: AWS KMS key alias/vg-any at \
                  http://127.0.0.1:1 is unreachable (key unavailable: KMS DescribeKey unreachable: ";
    assert!(line.starts_with(prefix), "{line}");
    assert!(
        line.ends_with(
            "and the index holds no data key yet: a new gateway needs its key provider to create \
             its first keys; start again once it answers"
        ),
        "{line}"
    );
}

/// A TCP proxy in front of the KMS that the test can cut (connections are dropped) and restore.
struct Cut {
    addr: SocketAddr,
    down: tokio::sync::watch::Sender<bool>,
}

async fn cut_proxy(target: SocketAddr) -> Cut {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (down, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if *rx.borrow() {
                drop(inbound);
                continue;
            }
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let Ok(mut out) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                    _ = rx.wait_for(|d| *d) => {}
                }
            });
        }
    });
    Cut { addr, down }
}

async fn ready(admin: SocketAddr) -> (u16, serde_json::Value) {
    let (st, _, body) = common::raw(admin, "GET", "/ready", &[], b"").await;
    (st, serde_json::from_slice(&body).unwrap())
}

/// (status, Retry-After) of a GET.
async fn get_status(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (u16, Option<String>) {
    match c.get_object().bucket(bucket).key(key).send().await {
        Ok(_) => (200, None),
        Err(e) => {
            let raw = e.raw_response().expect("an HTTP answer");
            (
                raw.status().as_u16(),
                raw.headers().get("retry-after").map(str::to_owned),
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kms_outage_drill_at_start_and_mid_run() {
    let Some(ep) = kms_endpoint() else { return };
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .endpoint_url(&ep)
            .build(),
    );
    let arn = kms
        .create_key()
        .description("vaultgate key custody drill")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap();
    let target: SocketAddr = ep
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = cut_proxy(target).await;
    let url = format!(
        "aws-kms://{arn}?region=us-east-1&endpoint=http://{}",
        proxy.addr
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = kms_env(&url);

    // write two buckets while the KMS answers
    let g = serve(with_env(&data, &env)).await;
    let c = g.client();
    let (hot, cold) = (common::data(50_000, 3), common::data(50_000, 4));
    for b in ["hot", "cold"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    put(&c, "hot", "k", &hot).await;
    put(&c, "cold", "k", &cold).await;
    g.stop().await;

    // unreachable at start: the gateway starts, is not ready and says why; S3 answers 503
    proxy.down.send_replace(true);
    let g = serve(with_env(&data, &env)).await;
    let c = g.client();
    let (st, v) = ready(g.admin).await;
    assert_eq!(st, 503, "{v}");
    let p = &v["key_providers"][0];
    assert_eq!(p["kind"], "aws-kms");
    assert_eq!(p["state"], "unreachable");
    assert_eq!(p["serving"], false);
    let uncached: Vec<&str> = p["uncached_buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert!(
        uncached.contains(&"hot") && uncached.contains(&"cold"),
        "{v}"
    );
    assert_eq!(
        get_status(&c, "hot", "k").await,
        (503, Some("5".to_owned()))
    );

    // the KMS comes back: served without a restart
    proxy.down.send_replace(false);
    assert_eq!(get(&c, "hot", "k").await, hot, "hot served after recovery");
    let (st, v) = ready(g.admin).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["key_providers"][0]["state"], "ready");
    g.stop().await;

    // mid-run: a restart caches only what it reads; "hot" is read, "cold" is not
    let g = serve(with_env(&data, &env)).await;
    let c = g.client();
    assert_eq!(get(&c, "hot", "k").await, hot);
    proxy.down.send_replace(true);
    assert_eq!(
        get(&c, "hot", "k").await,
        hot,
        "cached bucket keeps serving"
    );
    let (st, retry) = get_status(&c, "cold", "k").await;
    assert_eq!((st, retry.as_deref()), (503, Some("5")));
    let (st, v) = ready(g.admin).await;
    assert_eq!(st, 503, "{v}");
    let p = &v["key_providers"][0];
    assert_eq!(p["state"], "unreachable");
    assert_eq!(p["uncached_buckets"], serde_json::json!(["cold"]), "{v}");
    assert!(
        v["checks"]["keys"]
            .as_str()
            .unwrap()
            .ends_with("buckets without a cached key: cold"),
        "{v}"
    );
    // recovers when the KMS answers again, without a restart
    proxy.down.send_replace(false);
    assert_eq!(get(&c, "cold", "k").await, cold);
    let (st, v) = ready(g.admin).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["checks"]["keys"], "ok");
    g.stop().await;
}
