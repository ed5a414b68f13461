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

/// One setting of the reference (`vaultgate config reference`, docs/CONFIGURATION.md): its
/// TOML key, variable, flag (none for secrets: refused on the command line), default and
/// description, all taken from the one declaration in [`settings!`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingInfo {
    /// TOML key (`[limits]` and `[tls]` keys as `limits.<key>`, `tls.<key>`).
    pub key: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// The `vaultgate serve` flag in snake case (`s3_addr` is `--s3-addr`); `None` for
    /// secrets.
    pub flag: Option<&'static str>,
    /// Default, as written in the declaration (`None` when unset by default).
    pub default: Option<&'static str>,
    /// The doc comment.
    pub doc: &'static str,
    /// Which commands besides `serve` read it, so their `--help` lists it (the mark in the
    /// declaration): `offline` every offline command (`migrate`, `migrate-db`, `reindex`,
    /// `import-hub`, `keys`, `audit`: data dir, database, log level, audit settings), `store` those that open
    /// the object store (all but `audit`: backend, KMS, master key), empty for `serve` alone
    /// (listeners, TLS, limits, rates).
    pub group: &'static str,
}

impl SettingInfo {
    /// How an error names the setting: `s3_addr (--s3-addr, VAULTGATE_S3_ADDR)`.
    pub fn names(&self) -> String {
        match self.flag() {
            Some(flag) => format!("{} ({flag}, {})", self.key, self.env),
            None => format!("{} ({})", self.key, self.env),
        }
    }

    /// The flag as typed: `--s3-addr`.
    pub fn flag(&self) -> Option<String> {
        self.flag.map(|f| format!("--{}", f.replace('_', "-")))
    }
}

/// The setting declared under `key`, named the way an error names it; the key itself when it
/// is not a declared setting.
pub fn setting(key: &str) -> String {
    all_settings()
        .into_iter()
        .find(|s| s.key == key)
        .map_or_else(|| key.to_owned(), |s| s.names())
}

/// Declares the top-level settings once. Each is a TOML key, a `VAULTGATE_*` variable and (but
/// secrets) a `vaultgate serve` flag of the same name, with its default and doc comment. From
/// the one list come: [`Layer`] (every setting optional: the TOML file, and the variables and
/// flags through clap; layers merge defaults < file < env < flags), [`Config`] (the resolved
/// values, defaults filled in) and [`SETTINGS`] (the reference). `values` have a default,
/// `optional` ones stay unset unless given, `secrets` come from the file or from
/// [`read_secret`], never from a flag. A declaration marked `[offline]` or `[store]` is read by
/// offline commands too ([`SettingInfo::group`]): their `--help` lists only those.
macro_rules! settings {
    (
        values { $( $(#[doc = $vdoc:literal])* $([$vgroup:ident])? $v:ident : $vty:ty = $vdef:expr, $venv:literal; )* }
        optional { $( $(#[doc = $odoc:literal])* $([$ogroup:ident])? $o:ident : $oty:ty, $oenv:literal; )* }
        secrets { $( $(#[doc = $sdoc:literal])* $([$sgroup:ident])? $s:ident, $senv:literal; )* }
    ) => {
        /// One layer of settings, each optional: the TOML file, or the variables and flags.
        #[derive(Debug, Clone, Default, Deserialize, Serialize)]
        #[cfg_attr(feature = "cli", derive(clap::Args))]
        #[serde(deny_unknown_fields, default)]
        pub struct Layer {
            $(
                $(#[doc = $vdoc])*
                #[cfg_attr(feature = "cli", arg(long, env = $venv))]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $v: Option<$vty>,
            )*
            $(
                $(#[doc = $odoc])*
                #[cfg_attr(feature = "cli", arg(long, env = $oenv))]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $o: Option<$oty>,
            )*
            $(
                $(#[doc = $sdoc])*
                #[cfg_attr(feature = "cli", arg(skip))]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $s: Option<Secret>,
            )*
            /// Retired settings still accepted so older files load (warned about at start).
            #[cfg_attr(feature = "cli", arg(skip))]
            #[serde(skip_serializing)]
            pub credential_cache_secs: Option<u64>,
            /// Defences against abuse (TOML section `[limits]`).
            #[cfg_attr(feature = "cli", command(flatten))]
            pub limits: Limits,
            /// TLS of both listeners (TOML section `[tls]`).
            #[cfg_attr(feature = "cli", command(flatten))]
            pub tls: Tls,
        }

        impl Layer {
            /// Overrides every setting that `over` sets.
            pub fn merge(&mut self, over: Layer) {
                $( if over.$v.is_some() { self.$v = over.$v; } )*
                $( if over.$o.is_some() { self.$o = over.$o; } )*
                $( if over.$s.is_some() { self.$s = over.$s; } )*
                if over.credential_cache_secs.is_some() {
                    self.credential_cache_secs = over.credential_cache_secs;
                }
                self.limits.merge(over.limits);
                self.tls.merge(over.tls);
            }

            /// The settings with every default filled in.
            pub fn resolve(self) -> Config {
                let mut warnings = Vec::new();
                if self.credential_cache_secs.is_some() {
                    warnings.push(
                        "credential_cache_secs is ignored (the access cache is invalidated by every policy write); remove it from the config file".to_owned(),
                    );
                }
                Config {
                    $( $v: self.$v.unwrap_or_else(|| $vdef), )*
                    $( $o: self.$o, )*
                    $( $s: self.$s, )*
                    limits: self.limits,
                    tls: self.tls,
                    secret_sources: Vec::new(),
                    warnings,
                }
            }
        }

        /// The whole gateway configuration, resolved (TOML keys are the field names).
        #[derive(Debug, Clone, Serialize)]
        pub struct Config {
            $( $(#[doc = $vdoc])* pub $v: $vty, )*
            $(
                $(#[doc = $odoc])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $o: Option<$oty>,
            )*
            $(
                $(#[doc = $sdoc])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $s: Option<Secret>,
            )*
            /// Defences against abuse: timeouts, connection caps, size bounds, the brute-force
            /// limiter and legacy SigV2 (TOML section `[limits]`; see docs/SECURITY.md).
            pub limits: Limits,
            /// TLS of both listeners (TOML section `[tls]`).
            pub tls: Tls,
            /// Where each secret setting came from (`master_key` → `systemd credential
            /// master_key`…), for the start-up line; never the value. Filled by the binary's
            /// settings loader.
            #[serde(skip)]
            pub secret_sources: Vec<(String, String)>,
            /// What the operator should fix but that does not stop the gateway (a retired key in
            /// the file, an unknown `VAULTGATE_*` variable): logged once at start and printed by
            /// `config check`.
            #[serde(skip)]
            pub warnings: Vec<String>,
        }

        /// The top-level settings, in declaration order.
        pub const SETTINGS: &[SettingInfo] = &[
            $( SettingInfo {
                key: stringify!($v),
                env: $venv,
                flag: Some(stringify!($v)),
                default: Some(stringify!($vdef)),
                doc: concat!($($vdoc, "\n",)*),
                group: concat!($(stringify!($vgroup))?),
            }, )*
            $( SettingInfo {
                key: stringify!($o),
                env: $oenv,
                flag: Some(stringify!($o)),
                default: None,
                doc: concat!($($odoc, "\n",)*),
                group: concat!($(stringify!($ogroup))?),
            }, )*
            $( SettingInfo {
                key: stringify!($s),
                env: $senv,
                flag: None,
                default: None,
                doc: concat!($($sdoc, "\n",)*),
                group: concat!($(stringify!($sgroup))?),
            }, )*
        ];
    };
}

settings! {
    values {
        /// Data dir: index, key file, local objects.
        [offline] data_dir: PathBuf = PathBuf::from("./data"), "VAULTGATE_DATA_DIR";
        /// S3 listener, `host:port` (a name such as `localhost` is resolved at start); port 0
        /// picks a free port.
        s3_addr: String = "127.0.0.1:9000".into(), "VAULTGATE_S3_ADDR";
        /// Admin listener (admin API, console, /metrics, /health, /ready), `host:port`.
        admin_addr: String = "127.0.0.1:9001".into(), "VAULTGATE_ADMIN_ADDR";
        /// Log level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or a filter
        /// (`info,gateway=debug`); `RUST_LOG` is read when `LOG_LEVEL` is unset.
        [offline] log_level: String = "info".into(), "LOG_LEVEL";
        /// Region reported to clients and expected in signatures.
        region: String = "us-east-1".into(), "VAULTGATE_REGION";
        /// Seconds in-flight requests get to finish on shutdown.
        shutdown_grace_secs: u64 = 30, "VAULTGATE_SHUTDOWN_GRACE_SECS";
        /// S3 reads per minute per principal, for the whole deployment (several instances on one
        /// database share it); 0 is no limit (per-principal limits are opt-in: set them per
        /// principal or role instead).
        rate_s3_reads_per_min: u32 = 0, "VAULTGATE_RATE_S3_READS_PER_MIN";
        /// S3 writes per minute per principal, for the whole deployment; 0 is no limit.
        rate_s3_writes_per_min: u32 = 0, "VAULTGATE_RATE_S3_WRITES_PER_MIN";
        /// Admin API calls per minute per principal, for the whole deployment.
        rate_admin_per_min: u32 = policy::RateLimitConfig::default().admin_per_min, "VAULTGATE_RATE_ADMIN_PER_MIN";
        /// What the audit ledger keeps of the client address: `keep`, `hash` (HMAC under a
        /// secret derived from the evidence key) or `drop`.
        [offline] audit_source: audit::SourceMode = audit::SourceMode::Keep, "VAULTGATE_AUDIT_SOURCE";
        /// Reads whose audit event cannot be recorded: `fail-closed` (503) or `fail-open`
        /// (served, counted and logged). Writes, deletes and admin changes always fail closed.
        audit_read_policy: audit::ReadPolicy = audit::ReadPolicy::FailClosed, "VAULTGATE_AUDIT_READ_POLICY";
        /// Days audit events are kept before the daily prune removes them (leaving a signed
        /// checkpoint); at least 1.
        [offline] audit_retention_days: u32 = 90, "VAULTGATE_AUDIT_RETENTION_DAYS";
        /// The `file://` backend is one filesystem every gateway instance on the database
        /// mounts (NFS, CephFS…). Without it a second live instance on PostgreSQL with a
        /// `file://` backend refuses to start (each would see only its own disk's objects).
        shared_filesystem: bool = false, "VAULTGATE_SHARED_FILESYSTEM";
        /// Single PUTs of at most this many bytes are committed inline: their sealed stream in
        /// the index row, with the row and the audit event in one transaction, and written
        /// back to the backend within about a second (docs/OPERATIONS.md, "Inline objects and
        /// the write-back"); at most 1048576; 0 writes every object to the backend first.
        inline_max_bytes: u64 = 65536, "VAULTGATE_INLINE_MAX_BYTES";
    }
    optional {
        /// Fixed bootstrap access key id (with `secret_key`). Default: generated on first
        /// start, its secret printed once.
        access_key: String, "VAULTGATE_ACCESS_KEY";
        /// Database of the index, policy store and audit ledger: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST[:PORT]/DB`. Default `sqlite://<data_dir>/index.db`.
        [offline] database_url: String, "VAULTGATE_DATABASE_URL";
        /// Backend URL (`file://`, `s3://`, `azure://`). Default `file://<data_dir>/objects`.
        [store] backend: String, "VAULTGATE_BACKEND";
        /// KMS URL (`aws-kms://KEY?region=..&endpoint=..`). Default none (the local key).
        [store] kms: String, "VAULTGATE_KMS";
        /// Append-only JSON-lines copy of the audit ledger. Default none.
        [offline] audit_mirror: PathBuf, "VAULTGATE_AUDIT_MIRROR";
        /// Base domain(s) of virtual-hosted-style addressing, comma-separated, without a port
        /// (`s3.example.com`: `mybucket.s3.example.com` addresses bucket `mybucket`). Path
        /// style always works; a Host under none of them is read as path style. Default none.
        domain: String, "VAULTGATE_DOMAIN";
    }
    secrets {
        /// Fixed bootstrap secret key (with `access_key`), at least 8 characters.
        secret_key, "VAULTGATE_SECRET_KEY";
        /// Master key, 64 hex characters (alias `BLOB_KEY`). Default: the key file
        /// `<data_dir>/master.key`, generated on first start.
        [store] master_key, "VAULTGATE_MASTER_KEY";
        /// HS256 secret of admin API tokens, at least 32 bytes (alias `ADMIN_JWT_SECRET`).
        /// Default: generated once, kept sealed in `<data_dir>/admin-jwt.sealed`.
        admin_jwt_secret, "VAULTGATE_ADMIN_JWT_SECRET";
    }
}

/// The largest `inline_max_bytes`: a PUT is sealed in memory up to it.
pub const MAX_INLINE_BYTES: u64 = 1024 * 1024;

/// Every setting of the reference: the top-level ones, then `[limits]` and `[tls]`.
pub fn all_settings() -> Vec<SettingInfo> {
    SETTINGS
        .iter()
        .chain(LIMITS.iter())
        .chain(TLS_SETTINGS.iter())
        .copied()
        .collect()
}

impl Default for Config {
    fn default() -> Self {
        Layer::default().resolve()
    }
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

impl Limits {
    /// Bounds that must be at least 1 (or, for the request head, at least 8 KiB).
    fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs()),
            ("body_read_timeout_secs", self.body_read_timeout_secs()),
            ("max_connections", u64::from(self.max_connections())),
            (
                "max_connections_per_ip",
                u64::from(self.max_connections_per_ip()),
            ),
            ("lifecycle_interval_secs", self.lifecycle_interval_secs()),
            ("lifecycle_day_secs", self.lifecycle_day_secs()),
        ] {
            if v == 0 {
                return Err(bad(&format!("limits.{name}"), "must be at least 1"));
            }
        }
        if self.max_header_bytes() < 8192 {
            return Err(bad("limits.max_header_bytes", "must be at least 8192"));
        }
        Ok(())
    }
}

/// The `[tls]` settings of the reference, in the order of [`Tls`]'s fields (a test checks
/// both lists name the same keys, variables and flags).
pub const TLS_SETTINGS: &[SettingInfo] = &[
    SettingInfo {
        key: "tls.cert",
        env: "VAULTGATE_TLS_CERT",
        flag: Some("tls_cert"),
        default: None,
        doc: "PEM certificate chain (leaf first) of the S3 listener. Default none: plain HTTP, which is refused on a non-loopback address unless insecure_http is set.\n",
        group: "",
    },
    SettingInfo {
        key: "tls.key",
        env: "VAULTGATE_TLS_KEY",
        flag: Some("tls_key"),
        default: None,
        doc: "PEM private key of the S3 listener (mode 0600 or 0640).\n",
        group: "",
    },
    SettingInfo {
        key: "tls.admin_cert",
        env: "VAULTGATE_ADMIN_TLS_CERT",
        flag: Some("admin_tls_cert"),
        default: None,
        doc: "PEM certificate chain of the admin listener. Default: the S3 listener's.\n",
        group: "",
    },
    SettingInfo {
        key: "tls.admin_key",
        env: "VAULTGATE_ADMIN_TLS_KEY",
        flag: Some("admin_tls_key"),
        default: None,
        doc: "PEM private key of the admin listener. Default: the S3 listener's.\n",
        group: "",
    },
    SettingInfo {
        key: "tls.admin_client_ca",
        env: "VAULTGATE_ADMIN_TLS_CLIENT_CA",
        flag: Some("admin_tls_client_ca"),
        default: None,
        doc: "PEM bundle of the CAs whose client certificates the admin listener requires (mTLS). Default none.\n",
        group: "",
    },
    SettingInfo {
        key: "tls.insecure_http",
        env: "VAULTGATE_INSECURE_HTTP",
        flag: Some("insecure_http"),
        default: Some("false"),
        doc: "Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy on a trusted network). Default false: refused.\n",
        group: "",
    },
];

/// Variables read besides the declared settings (no TOML key, no flag): credentials of the
/// backend and the KMS, the admin API's token options, the config file and the admin CLI's.
/// With the settings and [`SECRET_VARS`] (and their `_FILE` forms), these are every
/// `VAULTGATE_*` variable the gateway reads; any other is warned about at start.
pub const OTHER_VARS: &[(&str, &str)] = &[
    ("VAULTGATE_CONFIG", "the TOML config file (`--config`)"),
    (
        "VAULTGATE_BACKEND_ACCESS_KEY",
        "access key id of an `s3://` backend (secret: `VAULTGATE_BACKEND_SECRET_KEY`); else the AWS chain",
    ),
    (
        "VAULTGATE_AZURE_CONNECTION_STRING",
        "connection string of an `azure://` backend",
    ),
    ("VAULTGATE_AZURE_SAS", "SAS token of an `azure://` backend"),
    (
        "VAULTGATE_KMS_ACCESS_KEY",
        "access key id for the KMS (secret: `VAULTGATE_KMS_SECRET_KEY`); else the AWS chain",
    ),
    (
        "VAULTGATE_ADMIN_JWKS_FILE",
        "JWKS file of an external token issuer the admin API also accepts",
    ),
    (
        "VAULTGATE_ADMIN_TOKEN_TTL_SECS",
        "lifetime of admin API tokens",
    ),
    (
        "VAULTGATE_ADMIN_ENDPOINT",
        "`vaultgate admin`: the admin API's address",
    ),
    ("VAULTGATE_ADMIN_PROFILE", "`vaultgate admin`: the profile"),
    ("VAULTGATE_ADMIN_TOKEN", "`vaultgate admin`: a token to use"),
    (
        "VAULTGATE_MIGRATE_DB_TO",
        "`vaultgate migrate-db --to`: the PostgreSQL URL to copy into (its password stays out of `ps`)",
    ),
];

/// Prefixes of variables the test harness and the release build set; never warned about.
const HARNESS_PREFIXES: &[&str] = &[
    "VAULTGATE_TEST_",
    "VAULTGATE_BUILD_",
    "VAULTGATE_BIN",
    "VAULTGATE_REQUIRE_SERVICES",
    "VAULTGATE_DOCTESTS",
];

/// One warning per `VAULTGATE_*` variable of `names` that the gateway does not read (a typo
/// such as `VAULTGATE_S3_ADR` would otherwise be silently ignored).
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let known = |n: &str| {
        all_settings().iter().any(|s| s.env == n)
            || SECRET_VARS
                .iter()
                .any(|(v, _, _)| n == *v || n.strip_suffix("_FILE").is_some_and(|base| base == *v))
            || OTHER_VARS.iter().any(|(v, _)| *v == n)
            || HARNESS_PREFIXES.iter().any(|p| n.starts_with(p))
    };
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("VAULTGATE_") && !known(n))
        .map(|n| {
            let hint = all_settings()
                .into_iter()
                .map(|s| s.env)
                .chain(SECRET_VARS.iter().map(|(v, _, _)| *v))
                .chain(OTHER_VARS.iter().map(|(v, _)| *v))
                .min_by_key(|k| strsim::levenshtein(k, n))
                .filter(|k| strsim::levenshtein(k, n) <= 3);
            match hint {
                Some(k) => format!("environment variable {n} is not a Vaultgate setting (did you mean {k}?); it is ignored"),
                None => format!("environment variable {n} is not a Vaultgate setting; it is ignored"),
            }
        })
        .collect();
    out.sort();
    out
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
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr, $env:literal; )*) => {
        /// Abuse bounds (see the field docs for each default).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
        #[cfg_attr(feature = "cli", derive(clap::Args))]
        #[serde(deny_unknown_fields, default)]
        pub struct Limits {
            $(
                $(#[doc = $doc])*
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
                $(#[doc = $doc])*
                pub fn $name(&self) -> $ty {
                    self.$name.unwrap_or($default)
                }
            )*
        }

        /// The `[limits]` settings of the reference.
        pub const LIMITS: &[SettingInfo] = &[
            $( SettingInfo {
                key: concat!("limits.", stringify!($name)),
                env: $env,
                flag: Some(stringify!($name)),
                default: Some(stringify!($default)),
                doc: concat!($($doc, "\n",)*),
                group: "",
            }, )*
        ];
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
    /// address per minute, for the whole deployment, before its requests are refused for a
    /// while; 0 turns the limiter off. Default 60.
    auth_failures_per_min: u32 = 60, "VAULTGATE_AUTH_FAILURES_PER_MIN";
    /// Largest file of a browser form upload (POST Object), which is held in memory. Default
    /// 67108864 (64 MiB).
    post_object_max_bytes: u64 = 64 * 1024 * 1024, "VAULTGATE_POST_OBJECT_MAX_BYTES";
    /// Seconds between two passes of the lifecycle worker over the buckets with lifecycle
    /// rules. Default 3600.
    lifecycle_interval_secs: u64 = 3600, "VAULTGATE_LIFECYCLE_INTERVAL_SECS";
    /// Length of a lifecycle "day" in seconds (rule ages are counted in these). Default 86400;
    /// only tests shorten it (like RGW's `rgw_lc_debug_interval`).
    lifecycle_day_secs: u64 = 86400, "VAULTGATE_LIFECYCLE_DAY_SECS";
}

impl Layer {
    /// Reads a TOML file (unknown keys are an error).
    pub fn from_file(path: &Path) -> Result<Layer> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Layer::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses TOML text (unknown keys are an error; the message names the key and its line).
    pub fn from_toml(text: &str) -> Result<Layer> {
        toml::from_str(text).map_err(|e| Error::Config(one_line(&e.to_string())))
    }
}

/// A configuration error about setting `key`, named with its flag and variable.
fn bad(key: &str, what: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {what}", setting(key)))
}

/// A listener address: `IP:port`, or `name:port` resolved now (the first address the
/// resolver gives; `localhost` is loopback).
fn socket(key: &str, addr: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    if addr
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(bad(
            key,
            format!(
                "{addr:?} is not host:port (e.g. 127.0.0.1:9000, [::1]:9000 or localhost:9000)"
            ),
        ));
    }
    match addr.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| bad(key, format!("{addr:?}: the host name has no address"))),
        Err(e) => Err(bad(
            key,
            format!("{addr:?}: cannot resolve the host name: {e}"),
        )),
    }
}

/// The log level: a level name, or a filter whose every directive is `level` or
/// `target=level`. A bare word that is not a level (`verbose`) would be taken by the filter
/// syntax as a target name and silence every other log line, so it is refused.
fn check_log_level(level: &str) -> Result<()> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    let is_level = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    let directives: Vec<&str> = level
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    let ok = !directives.is_empty()
        && directives.iter().all(|d| match d.split_once('=') {
            Some((target, l)) => !target.is_empty() && is_level(l),
            None => is_level(d),
        })
        && tracing_subscriber::EnvFilter::try_new(level).is_ok();
    if ok {
        Ok(())
    } else {
        Err(bad(
            "log_level",
            format!(
                "{level:?} is not a log level: use one of error, warn, info, debug, trace, off, or a filter such as info,gateway=debug"
            ),
        ))
    }
}

/// A multi-line message (TOML's points at the column) as one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Config {
    /// Reads a TOML file (unknown keys are an error).
    pub fn from_file(path: &Path) -> Result<Config> {
        Ok(Layer::from_file(path)?.resolve())
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config> {
        Ok(Layer::from_toml(text)?.resolve())
    }

    /// The audit ledger settings (source mode, read policy, retention, mirror); the source
    /// secret is added by the caller from the evidence key.
    pub fn ledger_config(&self) -> Result<audit::LedgerConfig> {
        if self.audit_retention_days == 0 {
            return Err(bad("audit_retention_days", "must be at least 1"));
        }
        Ok(audit::LedgerConfig {
            source_mode: self.audit_source,
            read_policy: self.audit_read_policy,
            retention: std::time::Duration::from_secs(
                u64::from(self.audit_retention_days) * 24 * 3600,
            ),
            mirror_path: self.audit_mirror.clone(),
            ..audit::LedgerConfig::default()
        })
    }

    /// The S3 listener address (a host name is resolved: `localhost:9000`).
    pub fn s3_socket(&self) -> Result<SocketAddr> {
        socket("s3_addr", &self.s3_addr)
    }

    /// The admin listener address.
    pub fn admin_socket(&self) -> Result<SocketAddr> {
        socket("admin_addr", &self.admin_addr)
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

    /// The base domains of virtual-hosted-style addressing (`domain`), checked: each a host
    /// name without a port, none inside another. `None` when the setting is unset or empty.
    pub fn virtual_hosts(&self) -> Result<Option<crate::server::host::VirtualHosts>> {
        let Some(list) = self.domain.as_deref() else {
            return Ok(None);
        };
        let domains: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        if domains.is_empty() {
            return Ok(None);
        }
        crate::server::host::VirtualHosts::new(&domains)
            .map(Some)
            .map_err(|why| bad("domain", why))
    }

    /// Checks every setting as `serve` will use it, short of binding ports and reaching the
    /// network (`vaultgate config check` runs exactly this); the message names the setting by
    /// its TOML key, flag and variable, and says what to change.
    pub fn validate(&self) -> Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        let s3 = self.s3_socket()?;
        let admin = self.admin_socket()?;
        if s3 == admin && s3.port() != 0 {
            return Err(bad(
                "admin_addr",
                format!("is the same address as s3_addr ({s3}); give each listener its own port"),
            ));
        }
        if self.inline_max_bytes > MAX_INLINE_BYTES {
            return Err(bad(
                "inline_max_bytes",
                format!("must be at most {MAX_INLINE_BYTES} (0 turns inline objects off)"),
            ));
        }
        self.validate_credentials()?;
        self.validate_urls()?;
        check_log_level(&self.log_level)?;
        if self.region.is_empty() {
            return Err(bad("region", "must not be empty"));
        }
        self.virtual_hosts()?;
        self.limits.validate()?;
        self.ledger_config()?;
        if let Err(e) = self.jwt_authority() {
            let why = match e {
                Error::Config(m) => m,
                other => other.to_string(),
            };
            return Err(bad("admin_jwt_secret", why));
        }
        self.tls.validate(s3, admin)?;
        Ok(())
    }

    /// The bootstrap key pair and the master key.
    fn validate_credentials(&self) -> Result<()> {
        match (&self.access_key, &self.secret_key) {
            (Some(a), Some(s)) => {
                if a.len() < 3
                    || a.len() > 128
                    || !a
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(bad(
                        "access_key",
                        "must be 3-128 characters of A-Z, a-z, 0-9, '_' or '-'",
                    ));
                }
                if s.expose().len() < 8 {
                    return Err(bad("secret_key", "must be at least 8 characters"));
                }
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(bad(
                    "secret_key",
                    "is missing: access_key is set, and the two go together",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "access_key",
                    "is missing: secret_key is set, and the two go together",
                ));
            }
        }
        if let Some(k) = &self.master_key {
            let k = k.expose().trim();
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(
                    "master_key",
                    "must be 64 hex characters (32 bytes); generate one with `openssl rand -hex 32`",
                ));
            }
        }
        Ok(())
    }

    /// The database, backend and KMS URLs, parsed as `serve` will parse them.
    fn validate_urls(&self) -> Result<()> {
        let db = self.database_url();
        match audit::db::Dialect::of_url(&db) {
            Some(audit::db::Dialect::Sqlite) => {}
            Some(audit::db::Dialect::Postgres) => {
                let host = url::Url::parse(&db)
                    .ok()
                    .and_then(|u| u.host_str().map(|h| !h.is_empty()));
                if host != Some(true) {
                    return Err(bad(
                        "database_url",
                        format!(
                            "{}: a PostgreSQL URL needs a host: postgres://USER:PASSWORD@HOST[:PORT]/DATABASE",
                            redact_url(&db)
                        ),
                    ));
                }
            }
            None => {
                return Err(bad(
                    "database_url",
                    format!(
                        "must be a sqlite:// or postgres:// URL (got {})",
                        redact_url(&db)
                    ),
                ));
            }
        }
        let be = self.backend_url();
        let checked = match be.split_once("://").map(|(s, _)| s) {
            Some("file") => Ok(()),
            Some("s3") => crate::backend::s3::S3Config::from_url(&be).map(drop),
            Some("azure") => crate::backend::azure::AzureConfig::from_url(&be).map(drop),
            _ => Err(crate::backend::BackendError::Config(
                "must be a file://, s3:// or azure:// URL".into(),
            )),
        };
        if let Err(e) = checked {
            let why = match e {
                crate::backend::BackendError::Config(m) => m,
                other => other.to_string(),
            };
            return Err(bad("backend", format!("{}: {why}", redact_url(&be))));
        }
        if let Some(k) = &self.kms
            && let Err(e) = keys::kms::KmsUrl::parse(k)
        {
            return Err(bad("kms", format!("{k}: {e}")));
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

/// Masks the password of `scheme://user:password@host` URLs (one rule for every database URL:
/// `audit::db::mask_url`, which also copes with an `@` in the password).
pub fn redact_url(url: &str) -> String {
    audit::db::mask_url(url)
}

/// The settings reference as Markdown tables (docs/CONFIGURATION.md embeds it between the
/// `BEGIN/END GENERATED REFERENCE` markers; a test keeps the two equal, and `vaultgate config
/// reference` prints it).
pub fn reference_markdown() -> String {
    let cell = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    };
    // defaults as a config file would write them: the default configuration rendered as TOML
    let mut defaults = Config::default();
    defaults.limits = defaults.limits.effective();
    let rendered: toml::Table = toml::to_string(&defaults)
        .ok()
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default();
    let default_of = |s: &SettingInfo| -> Option<String> {
        let mut v: Option<&toml::Value> = None;
        let mut table = Some(&rendered);
        for part in s.key.split('.') {
            v = table.and_then(|t| t.get(part));
            table = v.and_then(toml::Value::as_table);
        }
        v.map(|x| x.to_string())
            .or_else(|| s.default.map(ToOwned::to_owned))
    };
    let mut out = String::from(
        "| TOML key | variable | flag | default | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    for s in all_settings() {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            s.key,
            s.env,
            s.flag()
                .map_or_else(|| "none (refused)".to_owned(), |f| format!("`{f}`")),
            default_of(&s).map_or_else(|| "none".to_owned(), |d| format!("`{}`", cell(&d))),
            cell(s.doc)
        ));
    }
    out.push_str(
        "\nOther variables (no TOML key, no flag):\n\n| variable | meaning |\n| --- | --- |\n",
    );
    for (var, _, _) in SECRET_VARS {
        if !SETTINGS.iter().any(|s| s.env == *var) {
            out.push_str(&format!(
                "| `{var}` | secret (also `{var}_FILE` or a systemd credential) |\n"
            ));
        }
    }
    for (var, what) in OTHER_VARS {
        out.push_str(&format!("| `{var}` | {} |\n", cell(what)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_declared_once_with_a_flag_and_a_variable() {
        // every field of Config is in the reference (a TOML rendering of a full Config names
        // them all), and [tls]/[limits] keys match their structs
        let mut full = Config {
            access_key: Some("AKIDEXAMPLE".into()),
            secret_key: Some(Secret::new("x".repeat(8))),
            master_key: Some(Secret::new("11".repeat(32))),
            database_url: Some("sqlite://x".into()),
            backend: Some("file:///x".into()),
            kms: Some("aws-kms://k".into()),
            audit_mirror: Some("/m".into()),
            domain: Some("s3.example.com".into()),
            admin_jwt_secret: Some(Secret::new("j".repeat(32))),
            ..Default::default()
        };
        full.limits = full.limits.effective();
        full.tls = Tls {
            cert: Some("/c".into()),
            key: Some("/k".into()),
            admin_cert: Some("/ac".into()),
            admin_key: Some("/ak".into()),
            admin_client_ca: Some("/ca".into()),
            insecure_http: Some(true),
        };
        let v: toml::Value = toml::from_str(&toml::to_string(&full).unwrap()).unwrap();
        let mut keys = Vec::new();
        for (k, val) in v.as_table().unwrap() {
            match val.as_table() {
                Some(t) => keys.extend(t.keys().map(|s| format!("{k}.{s}"))),
                None => keys.push(k.clone()),
            }
        }
        let mut declared: Vec<String> = all_settings().iter().map(|s| s.key.to_owned()).collect();
        keys.sort();
        declared.sort();
        assert_eq!(keys, declared);
        // the flags and variables clap registers are the declared ones
        #[cfg(feature = "cli")]
        {
            use clap::Args;
            let cmd = Layer::augment_args(clap::Command::new("t"));
            for s in all_settings() {
                let Some(flag) = s.flag() else {
                    continue;
                };
                let arg = cmd
                    .get_arguments()
                    .find(|a| a.get_long().map(|l| format!("--{l}")) == Some(flag.clone()))
                    .unwrap_or_else(|| panic!("no flag {flag}"));
                assert_eq!(
                    arg.get_env().and_then(|e| e.to_str()),
                    Some(s.env),
                    "{flag}"
                );
            }
        }
    }

    #[test]
    fn the_reference_in_the_docs_is_the_generated_one() {
        let doc = include_str!("../../docs/CONFIGURATION.md");
        let begin = "<!-- BEGIN GENERATED REFERENCE (vaultgate config reference) -->\n";
        let end = "<!-- END GENERATED REFERENCE -->";
        let a = doc.find(begin).expect("begin marker") + begin.len();
        let b = doc.find(end).expect("end marker");
        assert_eq!(
            doc[a..b].trim(),
            reference_markdown().trim(),
            "docs/CONFIGURATION.md is stale: replace the table with `vaultgate config reference`"
        );
    }

    #[test]
    fn errors_name_the_setting_three_ways_on_one_line() {
        let c = Config {
            log_level: "verbose".into(),
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("log_level (--log-level, LOG_LEVEL)") && e.contains("\"verbose\""),
            "{e}"
        );
        for ok in [
            "info",
            "WARN",
            "info,gateway=debug",
            "off",
            "gateway::s3=trace,warn",
        ] {
            check_log_level(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["verbose", "", "gateway=loud", "=info"] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
        let c = Config {
            backend: Some("s3://bucket?endpoint=http://127.0.0.1:1&regoin=x".into()),
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("backend (--backend, VAULTGATE_BACKEND)") && e.contains("regoin"),
            "{e}"
        );
        let c = Config {
            admin_jwt_secret: Some(Secret::new("short")),
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("VAULTGATE_ADMIN_JWT_SECRET") && !e.contains("short"),
            "{e}"
        );
        let c = Config {
            kms: Some("kms://k".into()),
            ..Default::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("VAULTGATE_KMS")
        );
        let e = Layer::from_toml("s3_adr = 1\n").unwrap_err().to_string();
        assert!(e.contains("s3_adr") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn host_names_are_accepted_in_listen_addresses() {
        let c = Config {
            s3_addr: "localhost:0".into(),
            admin_addr: "localhost:0".into(),
            ..Default::default()
        };
        c.validate().unwrap();
        assert!(c.s3_socket().unwrap().ip().is_loopback());
        for bad in ["localhost", ":9000", "localhost:port", "nowhere"] {
            let c = Config {
                s3_addr: bad.into(),
                ..Default::default()
            };
            let e = c.validate().unwrap_err().to_string();
            assert!(
                e.contains("s3_addr (--s3-addr, VAULTGATE_S3_ADDR)"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unknown_variables_are_warned_about_with_a_hint() {
        let w = unknown_variables([
            "VAULTGATE_S3_ADR",
            "VAULTGATE_S3_ADDR",
            "VAULTGATE_MASTER_KEY_FILE",
            "VAULTGATE_TEST_S3_ENDPOINT",
            "VAULTGATE_FROBNICATE",
            "PATH",
        ]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w.iter()
                .any(|m| m.contains("VAULTGATE_S3_ADR")
                    && m.contains("did you mean VAULTGATE_S3_ADDR")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|m| m.contains("VAULTGATE_FROBNICATE") && !m.contains("did you mean")),
            "{w:?}"
        );
        let c = Config::from_toml("credential_cache_secs = 10\n").unwrap();
        assert!(
            c.warnings[0].contains("credential_cache_secs"),
            "{:?}",
            c.warnings
        );
    }

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
        let mut layer =
            Layer::from_toml("s3_addr = \"127.0.0.1:7000\"\nlog_level = \"debug\"\n").unwrap();
        layer.merge(Layer {
            s3_addr: Some("127.0.0.1:0".into()),
            ..Default::default()
        });
        c = layer.resolve();
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
            let err = match Config::from_toml(toml) {
                Ok(c) => c.validate().unwrap_err(),
                Err(e) => e,
            };
            assert!(err.to_string().contains(name), "{err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
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
    fn postgres_is_accepted_and_a_bad_url_refused_without_its_password() {
        let ok = Config {
            database_url: Some("postgresql://gw:gwpass@db/vaultgate".into()),
            ..Default::default()
        };
        ok.validate().unwrap();
        for url in ["postgres://gw:gwpass@/vaultgate", "mysql://gw:gwpass@db/x"] {
            let c = Config {
                database_url: Some(url.into()),
                ..Default::default()
            };
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("VAULTGATE_DATABASE_URL"), "{err}");
            assert!(!err.contains("gwpass"), "{err}");
        }
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
        let mut layer =
            Layer::from_toml("[limits]\nsigv2 = true\nmax_connections_per_ip = 7\n").unwrap();
        layer.merge(Layer {
            limits: Limits {
                max_connections_per_ip: Some(9),
                ..Limits::default()
            },
            ..Default::default()
        });
        c = layer.resolve();
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
        public.tls.merge(Tls {
            insecure_http: Some(true),
            ..Tls::default()
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
