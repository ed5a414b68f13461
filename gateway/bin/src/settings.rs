//! The settings every gateway command shares (`serve`, `config check`, the offline operations,
//! `audit`): flags and `VAULTGATE_*` variables layered over the TOML file into one validated
//! [`Config`] (defaults < file < env < flags), and the JSON logging that `serve` and the
//! offline operations start.

use std::path::PathBuf;

use clap::Args;
use gateway::config::{Config, Overrides};

#[derive(Args, Debug)]
pub struct Settings {
    /// TOML config file.
    #[arg(long, env = "VAULTGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Data dir (index, key file, local objects). Default ./data
    #[arg(long, env = "VAULTGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// S3 listener. Default 127.0.0.1:9000
    #[arg(long, env = "VAULTGATE_S3_ADDR")]
    s3_addr: Option<String>,
    /// Admin listener (/metrics, /health, /ready). Default 127.0.0.1:9001
    #[arg(long, env = "VAULTGATE_ADMIN_ADDR")]
    admin_addr: Option<String>,
    /// Fixed bootstrap access key id.
    #[arg(long, env = "VAULTGATE_ACCESS_KEY")]
    access_key: Option<String>,
    /// Refused: secrets on the command line leak through `ps` (VAULTGATE_SECRET_KEY instead).
    #[arg(long, hide = true)]
    secret_key: Option<String>,
    /// Refused: secrets on the command line leak through `ps` (VAULTGATE_MASTER_KEY instead).
    #[arg(long, hide = true)]
    master_key: Option<String>,
    /// Index database URL. Default sqlite://<data dir>/index.db
    #[arg(long, env = "VAULTGATE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Backend URL. Default file://<data dir>/objects
    #[arg(long, env = "VAULTGATE_BACKEND")]
    backend: Option<String>,
    /// KMS URL (aws-kms://KEY?region=..&endpoint=..).
    #[arg(long, env = "VAULTGATE_KMS")]
    kms: Option<String>,
    /// Log level / filter (also RUST_LOG). Default info
    #[arg(long, env = "LOG_LEVEL")]
    log_level: Option<String>,
    /// S3 reads per minute per principal (0: no limit). Default 0
    #[arg(long, env = "VAULTGATE_RATE_S3_READS_PER_MIN")]
    rate_s3_reads_per_min: Option<u32>,
    /// S3 writes per minute per principal (0: no limit). Default 0
    #[arg(long, env = "VAULTGATE_RATE_S3_WRITES_PER_MIN")]
    rate_s3_writes_per_min: Option<u32>,
    /// Admin API calls per minute per principal. Default 60
    #[arg(long, env = "VAULTGATE_RATE_ADMIN_PER_MIN")]
    rate_admin_per_min: Option<u32>,
    /// Refused: secrets on the command line leak through `ps` (VAULTGATE_ADMIN_JWT_SECRET instead).
    #[arg(long, hide = true)]
    admin_jwt_secret: Option<String>,
    /// Client address in audit events: keep, hash or drop. Default keep
    #[arg(long, env = "VAULTGATE_AUDIT_SOURCE")]
    audit_source: Option<String>,
    /// Reads whose audit event cannot be recorded: fail-closed (503) or fail-open. Default fail-closed
    #[arg(long, env = "VAULTGATE_AUDIT_READ_POLICY")]
    audit_read_policy: Option<String>,
    /// Days audit events are kept. Default 90
    #[arg(long, env = "VAULTGATE_AUDIT_RETENTION_DAYS")]
    audit_retention_days: Option<u32>,
    /// JSON-lines mirror of the audit ledger.
    #[arg(long, env = "VAULTGATE_AUDIT_MIRROR")]
    audit_mirror: Option<PathBuf>,
    #[command(flatten)]
    limits: gateway::config::Limits,
    #[command(flatten)]
    tls: gateway::config::Tls,
}

/// A variable's value, unless unset or empty (the aliases `BLOB_KEY`, `RUST_LOG`,
/// `ADMIN_JWT_SECRET`).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    /// The config file given (`--config` / `VAULTGATE_CONFIG`).
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }

    /// The file (if any), overridden by the variables and flags that are set, validated.
    /// Secrets come from their variable, a systemd credential or a `_FILE` file
    /// (`gateway::config::read_secret`), never from a flag.
    pub fn load(self) -> Result<Config, gateway::Error> {
        for (flag, set, var) in [
            (
                "--master-key",
                self.master_key.is_some(),
                "VAULTGATE_MASTER_KEY",
            ),
            (
                "--secret-key",
                self.secret_key.is_some(),
                "VAULTGATE_SECRET_KEY",
            ),
            (
                "--admin-jwt-secret",
                self.admin_jwt_secret.is_some(),
                "VAULTGATE_ADMIN_JWT_SECRET",
            ),
        ] {
            if set {
                return Err(gateway::Error::Config(format!(
                    "{flag} is refused: secrets on the command line are visible to every local user through ps; use {var}, {var}_FILE or a systemd credential"
                )));
            }
        }
        let mut cfg = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        // every secret source is read (and a bad one refused) even when its setting is unused
        let mut secrets = std::collections::HashMap::new();
        for (var, name, _) in gateway::config::SECRET_VARS {
            if let Some(found) = gateway::config::read_secret(var, &env)? {
                secrets.insert(*name, found);
            }
        }
        for (name, in_file) in [
            ("master_key", cfg.master_key.is_some()),
            ("secret_key", cfg.secret_key.is_some()),
            ("admin_jwt_secret", cfg.admin_jwt_secret.is_some()),
        ] {
            match secrets.get(name) {
                Some((_, source)) if in_file && !source.starts_with("environment") => {
                    return Err(gateway::Error::Config(format!(
                        "{name} is given by both the config file and the {source}; keep one source"
                    )));
                }
                Some((_, source)) => cfg.secret_sources.push((name.into(), source.clone())),
                None if in_file => cfg.secret_sources.push((name.into(), "config file".into())),
                None => {}
            }
        }
        for name in [
            "master_key_previous",
            "kms_secret_key",
            "backend_secret_key",
            "azure_account_key",
        ] {
            if let Some((_, source)) = secrets.get(name) {
                cfg.secret_sources.push((name.into(), source.clone()));
            }
        }
        let mut secret = |name: &str| secrets.remove(name).map(|(s, _)| s);
        cfg.apply(Overrides {
            data_dir: self.data_dir,
            s3_addr: self.s3_addr,
            admin_addr: self.admin_addr,
            access_key: self.access_key,
            secret_key: secret("secret_key"),
            master_key: secret("master_key"),
            database_url: self.database_url,
            backend: self.backend,
            kms: self.kms,
            log_level: self.log_level.or_else(|| env("RUST_LOG")),
            rate_s3_reads_per_min: self.rate_s3_reads_per_min,
            rate_s3_writes_per_min: self.rate_s3_writes_per_min,
            rate_admin_per_min: self.rate_admin_per_min,
            admin_jwt_secret: secret("admin_jwt_secret"),
            audit_source: self.audit_source,
            audit_read_policy: self.audit_read_policy,
            audit_retention_days: self.audit_retention_days,
            audit_mirror: self.audit_mirror,
            limits: self.limits,
            tls: self.tls,
        });
        cfg.validate()?;
        Ok(cfg)
    }
}

/// JSON lines on stderr under `log_level`, with the signing targets capped
/// (`gateway::config::effective_log_filter`).
pub fn init_logging(log_level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(gateway::config::effective_log_filter(log_level))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
