//! `vaultgate serve`: loads the configuration, starts logging, runs the gateway with the admin
//! REST API ([`crate::compose::admin_api`]) until SIGTERM or SIGINT, then shuts down gracefully.
//! SIGHUP reloads the TLS certificates (`gateway::server::tls`).

use std::process::ExitCode;

use gateway::config::{Config, redact_url};

use crate::settings::{Settings, init_logging};

/// Serves until a signal: exit 0 after a clean shutdown, 1 when the configuration is invalid or
/// start-up fails. Its own log lines keep the target `vaultgate`.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let config_file = settings
        .config_file()
        .map_or_else(|| "none".to_owned(), |p| p.display().to_string());
    let cfg = settings.load()?;
    // unusable certificates are refused before logging starts: one line on stderr, nothing
    // created on disk (start loads them again, first)
    gateway::server::tls::check(&cfg, std::time::SystemTime::now())?;
    init_logging(&cfg.log_level);
    let started = StartLine::of(&cfg, config_file);
    for w in &cfg.warnings {
        tracing::warn!(target: "vaultgate", "{w}");
    }
    // the handlers are in place before the listening line: a SIGTERM sent as soon as a script
    // reads it is a clean shutdown, not the default action (killed)
    let signals = Signals::install();
    // a failure is reported once, by `commands::report`, as one plain line
    let server = gateway::server::start(cfg, crate::compose::admin_api).await?;
    started.log(server.s3_addr, server.admin_addr);
    if started.rotating {
        finish_rotation(server.store.keyring()).await;
    }
    // machine-readable line for scripts (stdout, exactly one JSON object)
    println!(
        "{}",
        serde_json::json!({
            "msg": "listening",
            "s3_addr": server.s3_addr.to_string(),
            "admin_addr": server.admin_addr.to_string(),
            "s3_tls": started.s3_tls,
            "admin_tls": started.admin_tls,
        })
    );
    signals.recv().await;
    tracing::info!(target: "vaultgate", "signal received; shutting down");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// What the one start-up line says: version, listeners (TLS or not), backend, database, key
/// provider with the master key's source, and the config file. Never a secret: URLs are shown
/// with their password masked, secrets by their source only.
struct StartLine {
    /// a previous master key is given: data keys are re-wrapped under the current one
    rotating: bool,
    s3_tls: bool,
    admin_tls: bool,
    admin_mtls: bool,
    backend: String,
    database: String,
    key_provider: String,
    secret_sources: String,
    config_file: String,
}

impl StartLine {
    fn of(cfg: &Config, config_file: String) -> StartLine {
        let source = |name: &str| {
            cfg.secret_sources
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
        };
        let key_provider = if cfg.master_key.is_some() {
            format!(
                "local key from {}",
                source("master_key").unwrap_or_else(|| "config".into())
            )
        } else if let Some(kms) = &cfg.kms {
            format!("aws-kms {}", redact_url(kms))
        } else {
            format!(
                "key file {}",
                cfg.data_dir.join(keys::provider::KEY_FILE_NAME).display()
            )
        };
        StartLine {
            rotating: source("master_key_previous").is_some() && cfg.master_key.is_some(),
            s3_tls: cfg.tls.s3_files().is_some(),
            admin_tls: cfg.tls.admin_files().is_some(),
            admin_mtls: cfg.tls.admin_client_ca.is_some(),
            backend: redact_url(&cfg.backend_url()),
            database: redact_url(&cfg.database_url()),
            key_provider,
            secret_sources: cfg
                .secret_sources
                .iter()
                .map(|(n, s)| format!("{n}: {s}"))
                .collect::<Vec<_>>()
                .join("; "),
            config_file,
        }
    }

    fn log(&self, s3: std::net::SocketAddr, admin: std::net::SocketAddr) {
        let scheme = |tls| if tls { "https" } else { "http" };
        tracing::info!(
            target: "vaultgate",
            version = env!("CARGO_PKG_VERSION"),
            s3 = %format!("{}://{s3}", scheme(self.s3_tls)),
            admin = %format!(
                "{}://{admin}{}",
                scheme(self.admin_tls),
                if self.admin_mtls { " (client certificates required)" } else { "" }
            ),
            backend = %self.backend,
            database = %self.database,
            key_provider = %self.key_provider,
            secret_sources = %self.secret_sources,
            config_file = %self.config_file,
            "vaultgate started"
        );
    }
}

/// With `VAULTGATE_MASTER_KEY_PREVIOUS` (or its credential) beside the master key: re-wraps every
/// bucket data key still wrapped by the previous key under the current one (resumable: keys
/// already current are skipped), while serving. Once it reports no failure, the previous key can
/// be removed from the configuration (keep it in escrow: stream headers still carry the copies it
/// wrapped, which `vaultgate reindex` reads).
async fn finish_rotation(keyring: &keys::Keyring) {
    match keyring.rewrap_all().await {
        Ok(r) if r.failed.is_empty() => tracing::info!(
            target: "vaultgate",
            total = r.total,
            rewrapped = r.rewrapped,
            already_current = r.already_current,
            "master key rotation: every data key is wrapped by the current master key; the previous one can be removed"
        ),
        Ok(r) => tracing::error!(
            target: "vaultgate",
            total = r.total,
            rewrapped = r.rewrapped,
            failed = r.failed.len(),
            "master key rotation incomplete: keep the previous master key and restart to retry"
        ),
        Err(e) => tracing::error!(
            target: "vaultgate",
            error = %e,
            "master key rotation failed: keep the previous master key and restart to retry"
        ),
    }
}

/// SIGINT and SIGTERM, registered when installed (`tokio::signal::ctrl_c` registers only when
/// first polled).
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            if self.int.is_none() && self.term.is_none() {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            tokio::select! {
                _ = next(&mut self.int) => {}
                _ = next(&mut self.term) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
