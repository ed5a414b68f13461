//! The settings every gateway command shares (`serve`, `config check`, the offline operations,
//! `audit`): flags and `VAULTGATE_*` variables layered over the TOML file into one validated
//! [`Config`] (defaults < file < env < flags), and the JSON logging that `serve` and the
//! offline operations start.

use std::path::PathBuf;

use clap::Args;
use gateway::config::{Config, Layer};

#[derive(Args, Debug)]
pub struct Settings {
    /// TOML config file.
    #[arg(long, env = "VAULTGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Refused: secrets on the command line leak through `ps` (VAULTGATE_SECRET_KEY instead).
    #[arg(long, hide = true)]
    secret_key: Option<String>,
    /// Refused: secrets on the command line leak through `ps` (VAULTGATE_MASTER_KEY instead).
    #[arg(long, hide = true)]
    master_key: Option<String>,
    /// Refused: secrets on the command line leak through `ps` (VAULTGATE_ADMIN_JWT_SECRET instead).
    #[arg(long, hide = true)]
    admin_jwt_secret: Option<String>,
    /// Every setting declared in `gateway::config` (`settings!`, `[limits]`, `[tls]`), as a
    /// flag and a variable.
    #[command(flatten)]
    layer: Layer,
}

/// Hides from the `--help` of each offline command (and its subcommands) the settings it does
/// not read, by their group in `gateway::config`'s `settings!` declaration: every offline
/// command reads the `offline` ones (data dir, database, log level, audit settings); all but
/// `audit` open the object store and read the `store` ones too (backend, KMS); the rest
/// (listeners, TLS, limits, rates) are `serve`'s. Hidden settings are still accepted (one
/// `Settings` for every command).
pub fn offline_help(cli: clap::Command) -> clap::Command {
    fn hide(cmd: clap::Command, groups: &[&str]) -> clap::Command {
        let unused: Vec<&str> = gateway::config::all_settings()
            .iter()
            .filter(|s| !groups.contains(&s.group))
            .filter_map(|s| s.flag)
            .collect();
        let ids: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| unused.contains(&id.as_str()))
            .collect();
        let subs: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        let cmd = ids
            .iter()
            .fold(cmd, |c, id| c.mut_arg(id.as_str(), |a| a.hide(true)));
        subs.iter().fold(cmd, |c, name| {
            c.mut_subcommand(name.as_str(), |sub| hide(sub, groups))
        })
    }
    const STORE: &[&str] = &["offline", "store"];
    [
        ("migrate", STORE),
        ("reindex", STORE),
        ("migrate-db", STORE),
        ("import-hub", STORE),
        ("keys", STORE),
        ("audit", &["offline"][..]),
    ]
    .into_iter()
    .fold(cli, |c, (name, groups)| {
        c.mut_subcommand(name, |cmd| hide(cmd, groups))
    })
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
        let mut layer = match &self.config {
            Some(p) => Layer::from_file(p)?,
            None => Layer::default(),
        };
        let (mut secrets, sources) = secret_sources(&layer)?;
        let mut secret = |name: &str| secrets.remove(name).map(|(s, _)| s);
        let mut over = self.layer;
        over.secret_key = secret("secret_key");
        over.master_key = secret("master_key");
        over.admin_jwt_secret = secret("admin_jwt_secret");
        if over.log_level.is_none() {
            over.log_level = env("RUST_LOG");
        }
        layer.merge(over);
        let mut cfg = layer.resolve();
        cfg.secret_sources = sources;
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect();
        cfg.warnings.extend(gateway::config::unknown_variables(
            names.iter().map(String::as_str),
        ));
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Secret values with their sources, by setting name (`master_key`).
type Secrets = std::collections::HashMap<&'static str, (gateway::config::Secret, String)>;

/// Every secret setting's value and source: each source is read (and a bad one refused) even
/// when its setting is unused, and a secret given both in the config file and by a credential
/// or a file is refused. Returns the values by setting name and, for the start-up line, where
/// each came from (never the value).
fn secret_sources(layer: &Layer) -> Result<(Secrets, Vec<(String, String)>), gateway::Error> {
    // every secret source is read (and a bad one refused) even when its setting is unused
    let mut secrets = std::collections::HashMap::new();
    for (var, name, _) in gateway::config::SECRET_VARS {
        if let Some(found) = gateway::config::read_secret(var, &env)? {
            secrets.insert(*name, found);
        }
    }
    let mut sources = Vec::new();
    for (name, in_file) in [
        ("master_key", layer.master_key.is_some()),
        ("secret_key", layer.secret_key.is_some()),
        ("admin_jwt_secret", layer.admin_jwt_secret.is_some()),
    ] {
        match secrets.get(name) {
            Some((_, source)) if in_file && !source.starts_with("environment") => {
                return Err(gateway::Error::Config(format!(
                    "{name} is given by both the config file and the {source}; keep one source"
                )));
            }
            Some((_, source)) => sources.push((name.into(), source.clone())),
            None if in_file => sources.push((name.into(), "config file".into())),
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
            sources.push((name.into(), source.clone()));
        }
    }
    Ok((secrets, sources))
}

/// JSON lines on stderr under `log_level`, with the signing targets capped
/// (`gateway::config::effective_log_filter`), written above an offline command's progress bar
/// (`gateway::ops::LogWriter`).
pub fn init_logging(log_level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(gateway::config::effective_log_filter(log_level))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(|| gateway::ops::LogWriter)
        .init();
}
