//! Gateway configuration: the TOML file, `VAULTGATE_*` environment variables and `vaultgate serve`
//! flags merged into one validated [`Config`] (defaults < file < env < flags).
//!
//! Every setting of DESIGN.md's interface contract is a flag, an env var and a TOML key of the
//! same name. Secrets ([`Secret`]) zeroize on drop and print as `[redacted]`; `vaultgate config
//! check` prints [`Config::redacted_toml`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A configured secret (bootstrap secret key, master key, ...): the project's one secret
/// type, [`keys::Secret`] (never printed, serialized as `[redacted]`).
pub use keys::Secret;

/// The secret settings read by [`read_secret`]: (variable, systemd credential name, aliases of
/// the variable). Besides the variable, each may come from the systemd credential
/// `$CREDENTIALS_DIRECTORY/<name>` (`LoadCredential=` / `LoadCredentialEncrypted=`) or from the
/// file named by `<VARIABLE>_FILE` (a Kubernetes secret mounted as a file). On the command line
/// they are refused: arguments are visible to every local user through `ps`.
pub const SECRET_VARS: &[(&str, &str, &[&str])] = &[
    ("VAULTGATE_MASTER_KEY", "master_key", &["BLOB_KEY"]),
    ("VAULTGATE_MASTER_KEY_PREVIOUS", "master_key_previous", &[]),
    ("VAULTGATE_SECRET_KEY", "secret_key", &[]),
    (
        "VAULTGATE_ADMIN_JWT_SECRET",
        "admin_jwt_secret",
        &["ADMIN_JWT_SECRET"],
    ),
    ("VAULTGATE_KMS_SECRET_KEY", "kms_secret_key", &[]),
    ("VAULTGATE_BACKEND_SECRET_KEY", "backend_secret_key", &[]),
    ("VAULTGATE_AZURE_ACCOUNT_KEY", "azure_account_key", &[]),
];

/// Largest secret file read.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a secret file: refused when other users may read it (group may: Kubernetes mounts
/// secrets group-readable for the pod's `fsGroup`), when empty, not UTF-8 or over 64 KiB; one
/// trailing newline (or CRLF) is dropped.
pub fn read_secret_file(path: &Path) -> Result<Secret> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let err = |what: String| Error::Config(format!("secret file {}: {what}", path.display()));
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mode = f
        .metadata()
        .map_err(|e| err(e.to_string()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(err(format!(
            "readable by other users (mode {:o}); run chmod o-rwx on it",
            mode & 0o777
        )));
    }
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    f.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| err(e.to_string()))?;
    if buf.len() as u64 > MAX_SECRET_FILE {
        return Err(err(format!("larger than {MAX_SECRET_FILE} bytes")));
    }
    let text = std::str::from_utf8(&buf).map_err(|_| err("not UTF-8 text".into()))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if text.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(Secret::new(text))
}

/// Reads the secret setting named by its variable `var` (one of [`SECRET_VARS`]) from its
/// sources — the systemd credential, the `<var>_FILE` file, the variable (or else its alias) —
/// with `lookup` reading the environment. Returns the value and where it came from (e.g.
/// `systemd credential master_key`; never the value). Two sources set at once is an error:
/// which one would win is not obvious, so nothing is guessed. Other variables are read plainly.
pub fn read_secret(
    var: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(Secret, String)>> {
    let Some((_, name, aliases)) = SECRET_VARS.iter().find(|(v, _, _)| *v == var) else {
        return Ok(lookup(var).map(|v| (Secret::new(v), format!("environment {var}"))));
    };
    let mut found: Vec<(Secret, String)> = Vec::new();
    if let Some(dir) = lookup("CREDENTIALS_DIRECTORY") {
        let p = Path::new(&dir).join(name);
        if p.symlink_metadata().is_ok() {
            found.push((read_secret_file(&p)?, format!("systemd credential {name}")));
        }
    }
    let file_var = format!("{var}_FILE");
    if let Some(p) = lookup(&file_var) {
        found.push((
            read_secret_file(Path::new(&p))?,
            format!("file {p} ({file_var})"),
        ));
    }
    if let Some(v) = std::iter::once(var)
        .chain(aliases.iter().copied())
        .find_map(|v| lookup(v).map(|x| (Secret::new(x), format!("environment {v}"))))
    {
        found.push(v);
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(Error::Config(format!(
            "{name} is given by both the {} and the {}; keep one source",
            found[0].1, found[1].1
        ))),
    }
}

/// [`read_secret`] over the process environment (empty variables count as unset).
pub fn secret_var(var: &str) -> Result<Option<Secret>> {
    Ok(read_secret(var, &|k| std::env::var(k).ok().filter(|v| !v.is_empty()))?.map(|(s, _)| s))
}

/// The whole gateway configuration (TOML keys are the field names).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data dir: index, key file, local objects. Default `./data`.
    pub data_dir: PathBuf,
    /// S3 listener. Default `127.0.0.1:9000`; port 0 picks a free port.
    pub s3_addr: String,
    /// Admin listener (/metrics, /health, /ready). Default `127.0.0.1:9001`.
    pub admin_addr: String,
    /// Fixed bootstrap access key id (with `secret_key`).
    pub access_key: Option<String>,
    /// Fixed bootstrap secret key (with `access_key`).
    pub secret_key: Option<Secret>,
    /// Master key, 64 hex chars (env alias `BLOB_KEY`).
    pub master_key: Option<Secret>,
    /// Index database URL. Default `sqlite://<data_dir>/index.db`.
    pub database_url: Option<String>,
    /// Backend URL. Default `file://<data_dir>/objects`.
    pub backend: Option<String>,
    /// KMS URL (`aws-kms://KEY?region=..&endpoint=..`). Default none (local key).
    pub kms: Option<String>,
    /// Log filter (`info`, `debug`, `gateway=debug,info`...). Default `info`.
    pub log_level: String,
    /// Region reported to clients. Default `us-east-1`.
    pub region: String,
    /// Seconds in-flight requests get to finish on shutdown. Default 30.
    pub shutdown_grace_secs: u64,
    /// Unused since access keys live in the policy store (its access cache has no time to live:
    /// every policy write invalidates it, so a revoked key is refused on its next request);
    /// accepted so older config files still load.
    pub credential_cache_secs: u64,
    /// S3 reads per minute per principal (`VAULTGATE_RATE_S3_READS_PER_MIN`); 0 is no limit.
    /// Default 0 (per-principal limits are opt-in: set them per principal or role instead).
    pub rate_s3_reads_per_min: u32,
    /// S3 writes per minute per principal (`VAULTGATE_RATE_S3_WRITES_PER_MIN`); 0 is no limit.
    /// Default 0.
    pub rate_s3_writes_per_min: u32,
    /// Admin API calls per minute per principal (`VAULTGATE_RATE_ADMIN_PER_MIN`). Default 60.
    pub rate_admin_per_min: u32,
    /// HS256 secret of admin API tokens, at least 32 bytes (`VAULTGATE_ADMIN_JWT_SECRET`, alias
    /// `ADMIN_JWT_SECRET`). Default: random per start (tokens die with the process).
    pub admin_jwt_secret: Option<Secret>,
    /// What the audit ledger keeps of the client address: `keep`, `hash` (HMAC under a secret
    /// derived from the evidence key) or `drop` (`VAULTGATE_AUDIT_SOURCE`). Default `keep`.
    pub audit_source: String,
    /// Reads whose audit event cannot be recorded: `fail-closed` (503) or `fail-open` (served,
    /// counted and logged) (`VAULTGATE_AUDIT_READ_POLICY`). Default `fail-closed`. Writes,
    /// deletes and admin changes always fail closed.
    pub audit_read_policy: String,
    /// Days audit events are kept before the daily prune removes them (with a signed
    /// checkpoint) (`VAULTGATE_AUDIT_RETENTION_DAYS`). Default 90.
    pub audit_retention_days: u32,
    /// Optional append-only JSON-lines copy of the ledger (`VAULTGATE_AUDIT_MIRROR`).
    pub audit_mirror: Option<PathBuf>,
    /// Defences against abuse: timeouts, connection caps, size bounds, the brute-force
    /// limiter and legacy SigV2 (TOML section `[limits]`; see docs/SECURITY.md).
    pub limits: Limits,
    /// TLS of both listeners (TOML section `[tls]`).
    pub tls: Tls,
    /// Where each secret setting came from (`master_key` → `systemd credential master_key`…),
    /// for the start-up line; never the value. Filled by the binary's settings loader.
    #[serde(skip)]
    pub secret_sources: Vec<(String, String)>,
}

/// TLS of both listeners (TOML section `[tls]`; each field is also a `vaultgate serve` flag and
/// a `VAULTGATE_*` variable). Unset fields stay `None` so file < env < flag layering works
/// through [`Tls::merge`]. PEM files; the admin listener uses the S3 pair unless given its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain (leaf first) of the S3 listener. Default none: plain HTTP, which is
    /// refused on a non-loopback address unless insecure_http is set.
    #[cfg_attr(
        feature = "cli",
        arg(id = "tls_cert", long = "tls-cert", env = "VAULTGATE_TLS_CERT")
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of the S3 listener (mode 0600 or 0640).
    #[cfg_attr(
        feature = "cli",
        arg(id = "tls_key", long = "tls-key", env = "VAULTGATE_TLS_KEY")
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// PEM certificate chain of the admin listener. Default: the S3 listener's.
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "admin_tls_cert",
            long = "admin-tls-cert",
            env = "VAULTGATE_ADMIN_TLS_CERT"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_cert: Option<PathBuf>,
    /// PEM private key of the admin listener. Default: the S3 listener's.
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "admin_tls_key",
            long = "admin-tls-key",
            env = "VAULTGATE_ADMIN_TLS_KEY"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_key: Option<PathBuf>,
    /// PEM bundle of the CAs whose client certificates the admin listener requires (mTLS).
    /// Default none (no client certificates asked).
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "admin_tls_client_ca",
            long = "admin-tls-client-ca",
            env = "VAULTGATE_ADMIN_TLS_CLIENT_CA"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_client_ca: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy on a trusted
    /// network). Default false: refused.
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "insecure_http",
            long = "insecure-http",
            env = "VAULTGATE_INSECURE_HTTP",
            num_args = 0..=1,
            default_missing_value = "true"
        )
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_http: Option<bool>,
}

impl Tls {
    /// Overrides every field that `over` sets.
    pub fn merge(&mut self, over: Tls) {
        let Tls {
            cert,
            key,
            admin_cert,
            admin_key,
            admin_client_ca,
            insecure_http,
        } = over;
        macro_rules! take {
            ($($f:ident),*) => { $( if $f.is_some() { self.$f = $f; } )* };
        }
        take!(
            cert,
            key,
            admin_cert,
            admin_key,
            admin_client_ca,
            insecure_http
        );
    }

    /// The S3 listener's files, when TLS is configured for it.
    pub fn s3_files(&self) -> Option<crate::server::tls::TlsFiles> {
        Some(crate::server::tls::TlsFiles {
            cert: self.cert.clone()?,
            key: self.key.clone()?,
            client_ca: None,
        })
    }

    /// The admin listener's files: its own pair, else the S3 pair; with the client CA.
    pub fn admin_files(&self) -> Option<crate::server::tls::TlsFiles> {
        let (cert, key) = match (&self.admin_cert, &self.admin_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => (self.cert.clone()?, self.key.clone()?),
        };
        Some(crate::server::tls::TlsFiles {
            cert,
            key,
            client_ca: self.admin_client_ca.clone(),
        })
    }

    /// Plain HTTP allowed on non-loopback addresses.
    pub fn insecure_http(&self) -> bool {
        self.insecure_http.unwrap_or(false)
    }

    /// Pairs complete, a client CA only with TLS, no plain HTTP on a public address unless
    /// allowed.
    fn validate(&self, s3: SocketAddr, admin: SocketAddr) -> Result<()> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(Error::Config(
                "tls.cert and tls.key (VAULTGATE_TLS_CERT / VAULTGATE_TLS_KEY) must be set together"
                    .into(),
            ));
        }
        if self.admin_cert.is_some() != self.admin_key.is_some() {
            return Err(Error::Config(
                "tls.admin_cert and tls.admin_key (VAULTGATE_ADMIN_TLS_CERT / VAULTGATE_ADMIN_TLS_KEY) must be set together".into(),
            ));
        }
        if self.admin_client_ca.is_some() && self.admin_files().is_none() {
            return Err(Error::Config(
                "tls.admin_client_ca (VAULTGATE_ADMIN_TLS_CLIENT_CA) needs a certificate for the admin listener".into(),
            ));
        }
        if !self.insecure_http() {
            for (name, addr, tls, var) in [
                (
                    "s3_addr",
                    s3,
                    self.s3_files().is_some(),
                    "VAULTGATE_TLS_CERT/VAULTGATE_TLS_KEY",
                ),
                (
                    "admin_addr",
                    admin,
                    self.admin_files().is_some(),
                    "VAULTGATE_ADMIN_TLS_CERT/VAULTGATE_ADMIN_TLS_KEY (or the S3 pair)",
                ),
            ] {
                if !tls && !addr.ip().is_loopback() {
                    return Err(Error::Config(format!(
                        "{name} {addr} is not a loopback address and has no TLS certificate: set {var}, or --insecure-http (VAULTGATE_INSECURE_HTTP=true) to serve plain HTTP there"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Declares the `[limits]` settings once: each is a TOML key of `[limits]`, a `vaultgate serve`
/// flag and a `VAULTGATE_*` variable (clap, with the `cli` feature, and serde on the same
/// field), with its default given by the accessor of the same name. Unset fields stay `None` so
/// file < env < flag layering works through [`Limits::merge`].
macro_rules! limits {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty = $default:expr, $env:literal; )*) => {
        /// Abuse bounds (see the field docs for each default).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
        #[cfg_attr(feature = "cli", derive(clap::Args))]
        #[serde(deny_unknown_fields, default)]
        pub struct Limits {
            $(
                $(#[$doc])*
                #[cfg_attr(feature = "cli", arg(long, env = $env))]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        impl Limits {
            /// Overrides every field that `over` sets.
            pub fn merge(&mut self, over: Limits) {
                $( if over.$name.is_some() { self.$name = over.$name; } )*
            }

            /// Every field filled with its effective value (for `config check`).
            pub fn effective(&self) -> Limits {
                Limits { $( $name: Some(self.$name()), )* }
            }

            $(
                $(#[$doc])*
                pub fn $name(&self) -> $ty {
                    self.$name.unwrap_or($default)
                }
            )*
        }
    };
}

limits! {
    /// Accept legacy AWS Signature Version 2 requests (with a 15-minute clock window and a
    /// 7-day presign cap). Default false: SigV2 requests answer 400 InvalidRequest.
    sigv2: bool = false, "VAULTGATE_SIGV2";
    /// Seconds a client gets to send a complete request head. Default 10.
    header_read_timeout_secs: u64 = 10, "VAULTGATE_HEADER_READ_TIMEOUT_SECS";
    /// Length in seconds of the window in which a request body must make progress. Default 30.
    body_read_timeout_secs: u64 = 30, "VAULTGATE_BODY_READ_TIMEOUT_SECS";
    /// Bytes per second a body must average over each window, else 400 RequestTimeout.
    /// Default 1024.
    body_min_bytes_per_sec: u64 = 1024, "VAULTGATE_BODY_MIN_BYTES_PER_SEC";
    /// Open connections per listener (further clients wait in the accept queue); lowered to
    /// fit the process's file descriptor limit. Default 4096.
    max_connections: u32 = 4096, "VAULTGATE_MAX_CONNECTIONS";
    /// Open connections per client address and listener (more are closed at once). Default 128.
    max_connections_per_ip: u32 = 128, "VAULTGATE_MAX_CONNECTIONS_PER_IP";
    /// Largest request head (request line and headers) in bytes; larger heads answer 431.
    /// Default 65536.
    max_header_bytes: u32 = 65536, "VAULTGATE_MAX_HEADER_BYTES";
    /// Failed authentications (bad signature, unknown key, bad token) allowed per client
    /// address per minute before its requests are refused for a while; 0 turns the limiter
    /// off. Default 60.
    auth_failures_per_min: u32 = 60, "VAULTGATE_AUTH_FAILURES_PER_MIN";
    /// Largest file of a browser form upload (POST Object), which is held in memory. Default
    /// 67108864 (64 MiB).
    post_object_max_bytes: u64 = 64 * 1024 * 1024, "VAULTGATE_POST_OBJECT_MAX_BYTES";
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            s3_addr: "127.0.0.1:9000".into(),
            admin_addr: "127.0.0.1:9001".into(),
            access_key: None,
            secret_key: None,
            master_key: None,
            database_url: None,
            backend: None,
            kms: None,
            log_level: "info".into(),
            region: "us-east-1".into(),
            shutdown_grace_secs: 30,
            credential_cache_secs: 10,
            rate_s3_reads_per_min: 0,
            rate_s3_writes_per_min: 0,
            rate_admin_per_min: policy::RateLimitConfig::default().admin_per_min,
            admin_jwt_secret: None,
            audit_source: "keep".into(),
            audit_read_policy: "fail-closed".into(),
            audit_retention_days: 90,
            audit_mirror: None,
            limits: Limits::default(),
            tls: Tls::default(),
            secret_sources: Vec::new(),
        }
    }
}

/// Overrides from env/flags (each `Some` wins over the file).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// --data-dir / VAULTGATE_DATA_DIR
    pub data_dir: Option<PathBuf>,
    /// --s3-addr / VAULTGATE_S3_ADDR
    pub s3_addr: Option<String>,
    /// --admin-addr / VAULTGATE_ADMIN_ADDR
    pub admin_addr: Option<String>,
    /// VAULTGATE_ACCESS_KEY
    pub access_key: Option<String>,
    /// VAULTGATE_SECRET_KEY
    pub secret_key: Option<Secret>,
    /// VAULTGATE_MASTER_KEY / BLOB_KEY
    pub master_key: Option<Secret>,
    /// VAULTGATE_DATABASE_URL
    pub database_url: Option<String>,
    /// VAULTGATE_BACKEND
    pub backend: Option<String>,
    /// VAULTGATE_KMS
    pub kms: Option<String>,
    /// LOG_LEVEL / RUST_LOG
    pub log_level: Option<String>,
    /// VAULTGATE_RATE_S3_READS_PER_MIN
    pub rate_s3_reads_per_min: Option<u32>,
    /// VAULTGATE_RATE_S3_WRITES_PER_MIN
    pub rate_s3_writes_per_min: Option<u32>,
    /// VAULTGATE_RATE_ADMIN_PER_MIN
    pub rate_admin_per_min: Option<u32>,
    /// VAULTGATE_ADMIN_JWT_SECRET / ADMIN_JWT_SECRET
    pub admin_jwt_secret: Option<Secret>,
    /// VAULTGATE_AUDIT_SOURCE
    pub audit_source: Option<String>,
    /// VAULTGATE_AUDIT_READ_POLICY
    pub audit_read_policy: Option<String>,
    /// VAULTGATE_AUDIT_RETENTION_DAYS
    pub audit_retention_days: Option<u32>,
    /// VAULTGATE_AUDIT_MIRROR
    pub audit_mirror: Option<PathBuf>,
    /// the `[limits]` flags and variables that are set
    pub limits: Limits,
    /// the `[tls]` flags and variables that are set
    pub tls: Tls,
}

impl Config {
    /// Reads a TOML file (unknown keys are an error).
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Config::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Applies env/flag overrides.
    pub fn apply(&mut self, o: Overrides) {
        if let Some(v) = o.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = o.s3_addr {
            self.s3_addr = v;
        }
        if let Some(v) = o.admin_addr {
            self.admin_addr = v;
        }
        if o.access_key.is_some() {
            self.access_key = o.access_key;
        }
        if o.secret_key.is_some() {
            self.secret_key = o.secret_key;
        }
        if o.master_key.is_some() {
            self.master_key = o.master_key;
        }
        if o.database_url.is_some() {
            self.database_url = o.database_url;
        }
        if o.backend.is_some() {
            self.backend = o.backend;
        }
        if o.kms.is_some() {
            self.kms = o.kms;
        }
        if let Some(v) = o.log_level {
            self.log_level = v;
        }
        if let Some(v) = o.rate_s3_reads_per_min {
            self.rate_s3_reads_per_min = v;
        }
        if let Some(v) = o.rate_s3_writes_per_min {
            self.rate_s3_writes_per_min = v;
        }
        if let Some(v) = o.rate_admin_per_min {
            self.rate_admin_per_min = v;
        }
        if o.admin_jwt_secret.is_some() {
            self.admin_jwt_secret = o.admin_jwt_secret;
        }
        if let Some(v) = o.audit_source {
            self.audit_source = v;
        }
        if let Some(v) = o.audit_read_policy {
            self.audit_read_policy = v;
        }
        if let Some(v) = o.audit_retention_days {
            self.audit_retention_days = v;
        }
        if o.audit_mirror.is_some() {
            self.audit_mirror = o.audit_mirror;
        }
        self.limits.merge(o.limits);
        self.tls.merge(o.tls);
    }

    /// The audit ledger settings (source mode, read policy, retention, mirror); the source
    /// secret is added by the caller from the evidence key.
    pub fn ledger_config(&self) -> Result<audit::LedgerConfig> {
        let source_mode: audit::SourceMode = self
            .audit_source
            .parse()
            .map_err(|e| Error::Config(format!("audit_source: {e}")))?;
        let read_policy: audit::ReadPolicy = self
            .audit_read_policy
            .parse()
            .map_err(|e| Error::Config(format!("audit_read_policy: {e}")))?;
        if self.audit_retention_days == 0 {
            return Err(Error::Config(
                "audit_retention_days must be at least 1".into(),
            ));
        }
        Ok(audit::LedgerConfig {
            source_mode,
            read_policy,
            retention: std::time::Duration::from_secs(
                u64::from(self.audit_retention_days) * 24 * 3600,
            ),
            mirror_path: self.audit_mirror.clone(),
            ..audit::LedgerConfig::default()
        })
    }

    /// The S3 listener address.
    pub fn s3_socket(&self) -> Result<SocketAddr> {
        self.s3_addr
            .parse()
            .map_err(|e| Error::Config(format!("s3_addr {:?} is not host:port: {e}", self.s3_addr)))
    }

    /// The admin listener address.
    pub fn admin_socket(&self) -> Result<SocketAddr> {
        self.admin_addr.parse().map_err(|e| {
            Error::Config(format!(
                "admin_addr {:?} is not host:port: {e}",
                self.admin_addr
            ))
        })
    }

    /// What the key provider needs: the data dir (key file), the master key (credential, file,
    /// variable or config file) and the KMS URL, with KMS credentials from
    /// VAULTGATE_KMS_ACCESS_KEY and VAULTGATE_KMS_SECRET_KEY (or its credential / `_FILE`) when
    /// set (else the standard AWS chain).
    pub fn key_config(&self) -> keys::KeyConfig {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        keys::KeyConfig {
            data_dir: self.data_dir.clone(),
            master_key_hex: self
                .master_key
                .as_ref()
                .map(|k| keys::Secret::new(k.expose().trim())),
            previous_master_key_hex: secret_var("VAULTGATE_MASTER_KEY_PREVIOUS")
                .ok()
                .flatten()
                .map(|s| keys::Secret::new(s.expose().trim())),
            kms_url: self.kms.clone(),
            kms_access_key: env("VAULTGATE_KMS_ACCESS_KEY"),
            kms_secret_key: secret_var("VAULTGATE_KMS_SECRET_KEY")
                .ok()
                .flatten()
                .map(|s| keys::Secret::new(s.expose())),
        }
    }

    /// The per-principal rate limits.
    pub fn rate_limits(&self) -> policy::RateLimitConfig {
        policy::RateLimitConfig {
            s3_reads_per_min: self.rate_s3_reads_per_min,
            s3_writes_per_min: self.rate_s3_writes_per_min,
            admin_per_min: self.rate_admin_per_min,
        }
    }

    /// The admin API's token authority: the configured HS256 secret (else a random one), plus
    /// `VAULTGATE_ADMIN_JWKS_FILE` and `VAULTGATE_ADMIN_TOKEN_TTL_SECS` from the environment.
    pub fn jwt_authority(&self) -> Result<policy::JwtAuthority> {
        let secret = self
            .admin_jwt_secret
            .as_ref()
            .map(|s| s.expose().to_owned());
        Ok(policy::JwtAuthority::from_lookup(|k| match k {
            "VAULTGATE_ADMIN_JWT_SECRET" | "ADMIN_JWT_SECRET" => secret.clone(),
            other => std::env::var(other).ok().filter(|v| !v.is_empty()),
        })?)
    }

    /// Effective database URL.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/index.db", self.data_dir.display()))
    }

    /// Effective backend URL.
    pub fn backend_url(&self) -> String {
        self.backend.clone().unwrap_or_else(|| {
            let dir = self.data_dir.join("objects");
            let abs = std::path::absolute(&dir).unwrap_or(dir);
            format!("file://{}", abs.display())
        })
    }

    /// Checks every setting; the message names the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config("data_dir must not be empty".into()));
        }
        let s3 = self.s3_socket()?;
        let admin = self.admin_socket()?;
        if s3 == admin && s3.port() != 0 {
            return Err(Error::Config(format!(
                "s3_addr and admin_addr are both {s3}"
            )));
        }
        match (&self.access_key, &self.secret_key) {
            (Some(a), Some(s)) => {
                if a.len() < 3
                    || a.len() > 128
                    || !a
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(Error::Config(
                        "access_key must be 3-128 characters of A-Z, a-z, 0-9, '_' or '-'".into(),
                    ));
                }
                if s.expose().len() < 8 {
                    return Err(Error::Config(
                        "secret_key must be at least 8 characters".into(),
                    ));
                }
            }
            (None, None) => {}
            _ => {
                return Err(Error::Config(
                    "access_key and secret_key (VAULTGATE_ACCESS_KEY / VAULTGATE_SECRET_KEY) must be set together".into(),
                ));
            }
        }
        if let Some(k) = &self.master_key {
            let k = k.expose().trim();
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Config(
                    "master_key must be 64 hex characters (32 bytes)".into(),
                ));
            }
        }
        let db = self.database_url();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return Err(Error::Config(format!(
                "database_url must start with sqlite: or postgres:// (got {})",
                redact_url(&db)
            )));
        }
        let be = self.backend_url();
        if !(be.starts_with("file://") || be.starts_with("s3://") || be.starts_with("azure://")) {
            return Err(Error::Config(format!(
                "backend must be a file://, s3:// or azure:// URL (got {be})"
            )));
        }
        if let Some(k) = &self.kms
            && !k.starts_with("aws-kms://")
        {
            return Err(Error::Config(format!(
                "kms must be an aws-kms:// URL (got {k})"
            )));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(Error::Config(format!(
                "log_level {:?} is not a valid filter",
                self.log_level
            )));
        }
        if self.region.is_empty() {
            return Err(Error::Config("region must not be empty".into()));
        }
        let l = &self.limits;
        for (name, v) in [
            ("header_read_timeout_secs", l.header_read_timeout_secs()),
            ("body_read_timeout_secs", l.body_read_timeout_secs()),
            ("max_connections", u64::from(l.max_connections())),
            (
                "max_connections_per_ip",
                u64::from(l.max_connections_per_ip()),
            ),
        ] {
            if v == 0 {
                return Err(Error::Config(format!("limits.{name} must be at least 1")));
            }
        }
        if l.max_header_bytes() < 8192 {
            return Err(Error::Config(
                "limits.max_header_bytes must be at least 8192".into(),
            ));
        }
        self.ledger_config()?;
        self.tls.validate(s3, admin)?;
        Ok(())
    }

    /// Refuses what [`Config::validate`] accepts but this build cannot serve: a PostgreSQL
    /// `database_url` (the index is SQLite only; `crate::server::start` fails on it when it
    /// opens the index). `vaultgate config check` runs it after `validate`.
    pub fn check_supported(&self) -> Result<()> {
        let db = self.database_url();
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return Err(Error::Config(format!(
                "database_url {}: PostgreSQL is not supported yet; use sqlite://PATH",
                redact_url(&db)
            )));
        }
        Ok(())
    }

    /// The effective configuration as TOML, secrets shown as `[redacted]`, passwords in URLs masked.
    pub fn redacted_toml(&self) -> String {
        let mut c = self.clone();
        c.database_url = Some(redact_url(&self.database_url()));
        c.backend = Some(self.backend_url());
        c.limits = self.limits.effective();
        toml::to_string_pretty(&c).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// Targets whose logs carry request signatures, signing strings, multipart form fields or
/// `Authorization` values below `info` (s3s prints the signature it computed for a request
/// that failed its check: a signing oracle). They are capped whatever the filter asks. s3s is
/// off altogether: above debug it only logs each client error again, at ERROR (one to three
/// lines per bad request, so anyone could flood the log and page an operator); the gateway's
/// own request line records every status and error code, and its own errors are logged where
/// they are made.
const CAPPED: &[(&str, &str)] = &[("s3s", "off"), ("aws_sigv4", "info")];

/// Noisy transport targets kept at `info` unless the filter names them.
const QUIET: &[&str] = &["hyper", "hyper_util", "h2", "aws_smithy_runtime", "rustls"];

/// The tracing filter used for `log_level`: the operator's directives, with the targets of
/// [`CAPPED`] capped (any directive naming them is replaced) and those of [`QUIET`] at `info`
/// unless named explicitly.
pub fn effective_log_filter(log_level: &str) -> String {
    let names = |d: &str, t: &str| {
        let target = d.split('=').next().unwrap_or("").trim();
        target == t || target.starts_with(&format!("{t}::"))
    };
    let mut out: Vec<String> = log_level
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| !CAPPED.iter().any(|(t, _)| names(d, t)))
        .map(str::to_owned)
        .collect();
    for t in QUIET {
        if !log_level.split(',').any(|d| names(d.trim(), t)) {
            out.push(format!("{t}=info"));
        }
    }
    out.extend(CAPPED.iter().map(|(t, l)| format!("{t}={l}")));
    out.join(",")
}

/// Masks the password of `scheme://user:password@host` URLs.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:[redacted]@{host}");
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.s3_addr, "127.0.0.1:9000");
        assert_eq!(c.admin_addr, "127.0.0.1:9001");
        assert_eq!(c.database_url(), "sqlite://./data/index.db");
        assert!(c.backend_url().starts_with("file:///"));
        assert!(c.backend_url().ends_with("/data/objects"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::from_toml("s3_adr = \"127.0.0.1:1\"").unwrap_err();
        assert!(err.to_string().contains("s3_adr"), "{err}");
    }

    #[test]
    fn file_then_overrides() {
        let mut c =
            Config::from_toml("s3_addr = \"127.0.0.1:7000\"\nlog_level = \"debug\"\n").unwrap();
        assert_eq!(c.s3_addr, "127.0.0.1:7000");
        c.apply(Overrides {
            s3_addr: Some("127.0.0.1:0".into()),
            ..Default::default()
        });
        assert_eq!(c.s3_addr, "127.0.0.1:0");
        assert_eq!(c.log_level, "debug");
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = Config {
            s3_addr: "nowhere".into(),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("s3_addr"));
        c = Config {
            access_key: Some("AKIDEXAMPLE".into()),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("together"));
        c = Config {
            master_key: Some(Secret::new("abcd")),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("master_key"));
        c = Config {
            backend: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("backend"));
    }

    #[test]
    fn audit_settings_parse_and_bad_ones_are_named() {
        let c = Config::from_toml(
            "audit_source = \"hash\"\naudit_read_policy = \"fail-open\"\naudit_retention_days = 7\naudit_mirror = \"/tmp/a.jsonl\"\n",
        )
        .unwrap();
        let l = c.ledger_config().unwrap();
        assert_eq!(l.source_mode, audit::SourceMode::Hash);
        assert_eq!(l.read_policy, audit::ReadPolicy::FailOpen);
        assert_eq!(l.retention.as_secs(), 7 * 24 * 3600);
        assert_eq!(l.mirror_path.as_deref(), Some(Path::new("/tmp/a.jsonl")));
        let d = Config::default().ledger_config().unwrap();
        assert_eq!(d.source_mode, audit::SourceMode::Keep);
        assert_eq!(d.read_policy, audit::ReadPolicy::FailClosed);
        assert_eq!(d.retention.as_secs(), 90 * 24 * 3600);
        for (toml, name) in [
            ("audit_source = \"maybe\"", "audit_source"),
            ("audit_read_policy = \"sometimes\"", "audit_read_policy"),
            ("audit_retention_days = 0", "audit_retention_days"),
        ] {
            let err = Config::from_toml(toml).unwrap().validate().unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_output() {
        let c = Config {
            access_key: Some("AKIDEXAMPLE".into()),
            secret_key: Some(Secret::new("verysecretvalue123")),
            master_key: Some(Secret::new("11".repeat(32))),
            database_url: Some("postgres://gw:gwpass@127.0.0.1:5432/db".into()),
            ..Default::default()
        };
        c.validate().unwrap();
        let out = c.redacted_toml();
        assert!(!out.contains("verysecretvalue123"), "{out}");
        assert!(!out.contains(&"11".repeat(32)), "{out}");
        assert!(!out.contains("gwpass"), "{out}");
        assert!(out.contains("[redacted]"));
        assert!(!format!("{c:?}").contains("verysecretvalue123"));
        // the redacted output is itself valid config syntax
        let back = Config::from_toml(&out).unwrap();
        assert_eq!(back.s3_addr, c.s3_addr);
    }

    #[test]
    fn postgres_is_valid_syntax_but_not_supported() {
        let c = Config {
            database_url: Some("postgresql://gw:gwpass@db/vaultgate".into()),
            ..Default::default()
        };
        c.validate().unwrap();
        let err = c.check_supported().unwrap_err().to_string();
        assert!(err.contains("PostgreSQL is not supported yet"), "{err}");
        assert!(!err.contains("gwpass"), "{err}");
        Config::default().check_supported().unwrap();
    }

    #[test]
    fn log_filter_caps_the_signing_targets() {
        let f = effective_log_filter("debug");
        assert!(f.starts_with("debug,"), "{f}");
        for d in ["s3s=off", "aws_sigv4=info", "hyper=info", "h2=info"] {
            assert!(f.split(',').any(|x| x == d), "{d} missing in {f}");
        }
        // asking for s3s debug output does not bring the signatures back
        let f = effective_log_filter("info,s3s=trace,s3s::ops::signature=debug,hyper=debug");
        assert!(!f.contains("trace") && !f.contains("signature"), "{f}");
        assert!(
            f.contains("hyper=debug") && !f.contains("hyper=info"),
            "{f}"
        );
        assert!(tracing_subscriber::EnvFilter::try_new(&f).is_ok());
    }

    #[test]
    fn limits_layer_file_env_flags_and_default() {
        let mut c =
            Config::from_toml("[limits]\nsigv2 = true\nmax_connections_per_ip = 7\n").unwrap();
        assert!(c.limits.sigv2());
        assert_eq!(c.limits.max_connections_per_ip(), 7);
        assert_eq!(c.limits.header_read_timeout_secs(), 10);
        c.apply(Overrides {
            limits: Limits {
                max_connections_per_ip: Some(9),
                ..Limits::default()
            },
            ..Default::default()
        });
        assert_eq!(c.limits.max_connections_per_ip(), 9);
        assert!(c.limits.sigv2());
        assert!(Config::from_toml("[limits]\nsigv3 = true\n").is_err());
        let shown = c.redacted_toml();
        assert!(shown.contains("body_min_bytes_per_sec = 1024"), "{shown}");
        c.limits.max_header_bytes = Some(100);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("max_header_bytes")
        );
    }

    #[test]
    fn tls_pairs_and_public_binds() {
        let c = Config::from_toml("[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n").unwrap();
        c.validate().unwrap();
        // the admin listener defaults to the S3 pair
        assert_eq!(c.tls.admin_files().unwrap().cert, Path::new("/c.pem"));
        let only_cert = Config::from_toml("[tls]\ncert = \"/c.pem\"\n").unwrap();
        assert!(
            only_cert
                .validate()
                .unwrap_err()
                .to_string()
                .contains("together")
        );
        let ca_alone = Config::from_toml("[tls]\nadmin_client_ca = \"/ca.pem\"\n").unwrap();
        assert!(
            ca_alone
                .validate()
                .unwrap_err()
                .to_string()
                .contains("admin_client_ca")
        );
        assert!(Config::from_toml("[tls]\ncertificate = \"x\"\n").is_err());
        // plain HTTP on a public address is refused, on loopback allowed, unless insecure_http
        let mut public = Config {
            s3_addr: "0.0.0.0:9000".into(),
            ..Default::default()
        };
        let e = public.validate().unwrap_err().to_string();
        assert!(
            e.contains("s3_addr 0.0.0.0:9000 is not a loopback address"),
            "{e}"
        );
        assert!(e.contains("VAULTGATE_INSECURE_HTTP"), "{e}");
        public.apply(Overrides {
            tls: Tls {
                insecure_http: Some(true),
                ..Tls::default()
            },
            ..Default::default()
        });
        public.validate().unwrap();
        let admin_public = Config {
            admin_addr: "[::]:9001".into(),
            ..Default::default()
        };
        assert!(
            admin_public
                .validate()
                .unwrap_err()
                .to_string()
                .contains("admin_addr")
        );
        let v6_loopback = Config {
            s3_addr: "[::1]:9000".into(),
            ..Default::default()
        };
        v6_loopback.validate().unwrap();
    }

    #[test]
    fn secrets_come_from_one_source_and_safe_files_only() {
        use std::collections::HashMap;
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let creds = d.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        let key = "ab".repeat(32);
        let cred = creds.join("master_key");
        std::fs::write(&cred, format!("{key}\n")).unwrap();
        std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o400)).unwrap();
        let read = |vars: &[(&str, String)]| {
            let m: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            read_secret("VAULTGATE_MASTER_KEY", &move |k| m.get(k).cloned())
        };
        let dir = creds.display().to_string();
        let (s, src) = read(&[("CREDENTIALS_DIRECTORY", dir.clone())])
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), key, "one trailing newline dropped");
        assert_eq!(src, "systemd credential master_key");
        // a second source is refused, naming both, never the value
        let e = read(&[
            ("CREDENTIALS_DIRECTORY", dir.clone()),
            ("BLOB_KEY", "cd".repeat(32)),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("systemd credential master_key") && e.contains("environment BLOB_KEY"),
            "{e}"
        );
        assert!(!e.contains(&key) && !e.contains(&"cd".repeat(32)), "{e}");
        // a _FILE path
        let f = d.path().join("mk");
        std::fs::write(&f, &key).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (_, src) = read(&[("VAULTGATE_MASTER_KEY_FILE", f.display().to_string())])
            .unwrap()
            .unwrap();
        assert!(src.contains("VAULTGATE_MASTER_KEY_FILE"), "{src}");
        // world-readable, empty: refused
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read(&[("VAULTGATE_MASTER_KEY_FILE", f.display().to_string())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("readable by other users"), "{e}");
        std::fs::write(&f, "\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read(&[("VAULTGATE_MASTER_KEY_FILE", f.display().to_string())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        // the variable alone, and nothing at all
        let (_, src) = read(&[("VAULTGATE_MASTER_KEY", key.clone())])
            .unwrap()
            .unwrap();
        assert_eq!(src, "environment VAULTGATE_MASTER_KEY");
        assert!(read(&[]).unwrap().is_none());
        // a credentials dir without this credential is no source
        assert!(
            read(&[("CREDENTIALS_DIRECTORY", d.path().display().to_string())])
                .unwrap()
                .is_none()
        );
    }
}
