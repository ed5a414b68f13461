//! The `vaultgate` binary: parses flags/env/config file, starts JSON logging, runs
//! `vaultgate serve` until SIGTERM/SIGINT, validates and prints the effective config with
//! `vaultgate config check`, or runs an offline operation (`migrate`, `reindex`, `import-hub`,
//! in `gateway::ops`), checks the audit ledger (`vaultgate audit verify|prune`) or an evidence
//! bundle (`vaultgate evidence verify`). All logic lives in the `gateway` and `policy` libraries.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gateway::config::{Config, Overrides, Secret};

#[derive(Parser, Debug)]
#[command(
    name = "vaultgate",
    version,
    about = "S3-compatible encrypting gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve S3 and the admin listener.
    Serve(Settings),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Offline: copy all ciphertext to another backend (verified, resumable), then switch the index.
    Migrate {
        #[command(flatten)]
        settings: Settings,
        /// Destination backend URL (file:///..., s3://..., azure://...).
        #[arg(long)]
        to: String,
        /// Stop after copying N objects in this run (resume testing).
        #[arg(long, hide = true)]
        stop_after: Option<usize>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Offline: rebuild an empty index from the backend and the key.
    Reindex {
        #[command(flatten)]
        settings: Settings,
        /// Owner recorded for the recreated buckets.
        #[arg(long, default_value = "admin")]
        owner: String,
        /// Tenant of the buckets created (default: --owner's tenant, else "default").
        #[arg(long)]
        tenant: Option<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Import a directory of original hub blobs (key: --key-file or env BLOB_KEY) into a bucket.
    ImportHub {
        #[command(flatten)]
        settings: Settings,
        /// Destination bucket (created if missing).
        #[arg(long)]
        bucket: String,
        /// File holding the hub's BLOB_KEY (64 hex chars); default: env BLOB_KEY.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Owner of the bucket if it is created.
        #[arg(long, default_value = "admin")]
        owner: String,
        /// Tenant of the bucket: a new one is assigned to it, an existing one must belong to it
        /// (default: a new bucket gets --owner's tenant, else "default").
        #[arg(long)]
        tenant: Option<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Directory of hub blobs; paths relative to it become object keys.
        dir: PathBuf,
    },
    /// Admin API client (users, keys, grants, tenants, quorum, status).
    Admin(admin::cli::AdminArgs),
    /// Audit ledger: verify the hash chain (database or mirror file), prune old events.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Evidence bundles: verify a bundle offline.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Verify the ledger's hash chain: exit 0 intact, 1 broken (the output names the first
    /// broken seq), 2 when it cannot be read.
    Verify {
        #[command(flatten)]
        settings: Settings,
        /// Verify this JSON-lines mirror file instead of the database.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Evidence public key (64 hex characters or a file holding them) that must have
        /// signed the checkpoint; default: the key in the data dir, if present.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Delete events older than the retention (or --before-days), writing a signed checkpoint.
    Prune {
        #[command(flatten)]
        settings: Settings,
        /// Prune events older than N days instead of audit_retention_days.
        #[arg(long)]
        before_days: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
enum EvidenceCommand {
    /// Verify an evidence bundle offline: exit 0 valid, 1 rejected (with the reason).
    Verify {
        /// The bundle file.
        bundle: PathBuf,
        /// Expected signer (64 hex characters or a file holding them); default: the key in
        /// the bundle (not pinned).
        #[arg(long)]
        public_key: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate the configuration and print it (secrets redacted); exit 1 if invalid.
    Check(Settings),
}

#[derive(Args, Debug)]
struct Settings {
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
    /// Fixed bootstrap secret key (prefer the env var over the flag).
    #[arg(long, env = "VAULTGATE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Master key, 64 hex chars (env alias BLOB_KEY).
    #[arg(long, env = "VAULTGATE_MASTER_KEY", hide_env_values = true)]
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
    /// HS256 secret of admin API tokens, >= 32 bytes (env alias ADMIN_JWT_SECRET).
    #[arg(long, env = "VAULTGATE_ADMIN_JWT_SECRET", hide_env_values = true)]
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
}

impl Settings {
    fn load(self) -> Result<Config, gateway::Error> {
        let mut cfg = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        let master = self
            .master_key
            .or_else(|| std::env::var("BLOB_KEY").ok().filter(|v| !v.is_empty()));
        let log_level = self
            .log_level
            .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()));
        cfg.apply(Overrides {
            data_dir: self.data_dir,
            s3_addr: self.s3_addr,
            admin_addr: self.admin_addr,
            access_key: self.access_key,
            secret_key: self.secret_key.map(Secret::new),
            master_key: master.map(Secret::new),
            database_url: self.database_url,
            backend: self.backend,
            kms: self.kms,
            log_level,
            rate_s3_reads_per_min: self.rate_s3_reads_per_min,
            rate_s3_writes_per_min: self.rate_s3_writes_per_min,
            rate_admin_per_min: self.rate_admin_per_min,
            admin_jwt_secret: self
                .admin_jwt_secret
                .or_else(|| {
                    std::env::var("ADMIN_JWT_SECRET")
                        .ok()
                        .filter(|v| !v.is_empty())
                })
                .map(Secret::new),
            audit_source: self.audit_source,
            audit_read_policy: self.audit_read_policy,
            audit_retention_days: self.audit_retention_days,
            audit_mirror: self.audit_mirror,
            limits: self.limits,
        });
        cfg.validate()?;
        Ok(cfg)
    }
}

fn init_logging(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(gateway::config::effective_log_filter(filter))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let cfg = match settings.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&cfg.log_level);
    let server = match gateway::server::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            eprintln!("vaultgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    // machine-readable line for scripts (stdout, exactly one JSON object)
    println!(
        "{}",
        serde_json::json!({
            "msg": "listening",
            "s3_addr": server.s3_addr.to_string(),
            "admin_addr": server.admin_addr.to_string(),
        })
    );
    wait_for_signal().await;
    tracing::info!("signal received; shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

fn check(settings: Settings) -> ExitCode {
    match settings.load() {
        Ok(cfg) => {
            println!("# configuration is valid; effective settings (secrets redacted):");
            print!("{}", cfg.redacted_toml());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vaultgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one offline operation (`migrate`, `reindex`, `import-hub`): exit 0 when complete, 2 when
/// something was skipped or the run must be resumed, 1 on error.
async fn ops(command: Command) -> ExitCode {
    use gateway::ops::{self, OpsContext};
    let (settings, job) = match command {
        Command::Migrate {
            settings,
            to,
            stop_after,
            quiet,
        } => (settings, Op::Migrate(to, stop_after, quiet)),
        Command::Reindex {
            settings,
            owner,
            tenant,
            quiet,
        } => (
            settings,
            Op::Reindex {
                opts: ops::reindex::ReindexOptions { owner, quiet },
                tenant,
            },
        ),
        Command::ImportHub {
            settings,
            bucket,
            key_file,
            owner,
            tenant,
            quiet,
            dir,
        } => (
            settings,
            Op::Import {
                opts: ops::import_hub::ImportOptions {
                    bucket,
                    owner,
                    quiet,
                },
                key_file,
                tenant,
                dir,
            },
        ),
        _ => return ExitCode::FAILURE,
    };
    let cfg = match settings.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&cfg.log_level);
    let ctx = match OpsContext::open(&cfg).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match job {
        Op::Migrate(to, stop_after, quiet) => {
            let opts = ops::migrate::MigrateOptions { stop_after, quiet };
            ops::migrate::run(&ctx, &to, &opts)
                .await
                .map(|r| (r.summary(&to), r.switched))
        }
        Op::Reindex { opts, tenant } => ops::reindex::run_into(&ctx, &opts, tenant.as_deref())
            .await
            .map(|r| (r.summary(), r.unreadable.is_empty())),
        Op::Import {
            opts,
            key_file,
            tenant,
            dir,
        } => {
            let key = match key_file {
                Some(p) => ops::import_hub::hub_key_from_file(&p),
                None => match std::env::var("BLOB_KEY") {
                    Ok(v) if !v.trim().is_empty() => {
                        keys::HubKey::from_hex(v.trim()).map_err(gateway::Error::from)
                    }
                    _ => Err(gateway::Error::Config(
                        "import-hub needs the hub key: --key-file PATH or env BLOB_KEY".into(),
                    )),
                },
            };
            match key {
                Ok(key) => {
                    ops::import_hub::import_hub_into(&ctx, &key, &dir, &opts, tenant.as_deref())
                        .await
                        .map(|r| (r.summary(&opts.bucket), r.failed.is_empty()))
                }
                Err(e) => Err(e),
            }
        }
    };
    ctx.index.close().await;
    match outcome {
        Ok((summary, complete)) => {
            println!("{summary}");
            if complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("vaultgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `vaultgate audit verify`: 0 intact, 1 broken, 2 unreadable / bad usage.
async fn audit_verify(
    settings: Settings,
    file: Option<PathBuf>,
    public_key: Option<String>,
) -> ExitCode {
    use audit::cli::{verify_database, verify_file};
    use audit::evidence::{EvidenceKey, PublicKey};
    let report = if let Some(path) = file {
        verify_file(&path).await
    } else {
        let cfg = match settings.load() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("vaultgate: {e}");
                return ExitCode::from(2);
            }
        };
        let trusted = match public_key.as_deref().map(PublicKey::from_arg).transpose() {
            Ok(Some(pk)) => Some(pk),
            Ok(None) => EvidenceKey::load(&EvidenceKey::path_in(&cfg.data_dir))
                .ok()
                .map(|k| k.public_key()),
            Err(e) => {
                eprintln!("vaultgate: --public-key: {e}");
                return ExitCode::from(2);
            }
        };
        verify_database(&cfg.database_url(), trusted.as_ref()).await
    };
    match report {
        Ok(r) => {
            println!("{r}");
            if r.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("vaultgate: cannot verify the audit ledger: {e}");
            ExitCode::from(2)
        }
    }
}

/// `vaultgate audit prune`: 0 done, 1 refused (e.g. a broken ledger), 2 bad usage.
async fn audit_prune(settings: Settings, before_days: Option<u32>) -> ExitCode {
    use audit::evidence::EvidenceKey;
    use audit::{Ledger, now_ms, open_pool};
    let cfg = match settings.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultgate: {e}");
            return ExitCode::from(2);
        }
    };
    let key = match EvidenceKey::load(&EvidenceKey::path_in(&cfg.data_dir)) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("vaultgate: the evidence key signs the checkpoint: {e}");
            return ExitCode::from(2);
        }
    };
    let mut lcfg = match cfg.ledger_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vaultgate: {e}");
            return ExitCode::from(2);
        }
    };
    lcfg.source_secret = Some(key.source_secret());
    let ledger = match open_pool(&cfg.database_url(), false).await {
        Ok(pool) => Ledger::open(pool, lcfg).await,
        Err(e) => Err(e),
    };
    let ledger = match ledger {
        Ok(l) => l,
        Err(e) => {
            eprintln!("vaultgate: cannot open the audit ledger: {e}");
            return ExitCode::from(2);
        }
    };
    let now = now_ms();
    let result = match before_days {
        Some(d) => {
            let cutoff = now.saturating_sub(i64::from(d) * 24 * 3600 * 1000);
            ledger.prune_before(&key, cutoff, now).await
        }
        None => ledger.prune(&key, now).await,
    };
    let pool = ledger.pool().clone();
    drop(ledger);
    pool.close().await;
    match result {
        Ok(r) => {
            match &r.checkpoint {
                Some(c) => println!(
                    "pruned {} events; checkpoint at seq {} (hash {}), signed by {}",
                    r.deleted, c.seq, c.hash, c.public_key
                ),
                None => println!("pruned 0 events: nothing older than the cutoff"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vaultgate: prune refused: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `vaultgate evidence verify`: 0 valid, 1 rejected or unreadable.
fn evidence_verify(bundle: &std::path::Path, public_key: Option<&str>) -> ExitCode {
    use audit::evidence::{PublicKey, verify_bundle};
    let trusted = match public_key.map(PublicKey::from_arg).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("vaultgate: --public-key: {e}");
            return ExitCode::from(2);
        }
    };
    match verify_bundle(bundle, trusted.as_ref()) {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vaultgate: {}: {e}", bundle.display());
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("vaultgate: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

enum Op {
    Migrate(String, Option<usize>, bool),
    Reindex {
        opts: gateway::ops::reindex::ReindexOptions,
        tenant: Option<String>,
    },
    Import {
        opts: gateway::ops::import_hub::ImportOptions,
        key_file: Option<PathBuf>,
        tenant: Option<String>,
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        c @ (Command::Migrate { .. } | Command::Reindex { .. } | Command::ImportHub { .. }) => {
            match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(ops(c)),
                Err(e) => {
                    eprintln!("vaultgate: cannot start the runtime: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config {
            command: ConfigCommand::Check(s),
        } => check(s),
        Command::Audit { command } => match runtime() {
            Ok(rt) => match command {
                AuditCommand::Verify {
                    settings,
                    file,
                    public_key,
                } => rt.block_on(audit_verify(settings, file, public_key)),
                AuditCommand::Prune {
                    settings,
                    before_days,
                } => rt.block_on(audit_prune(settings, before_days)),
            },
            Err(code) => code,
        },
        Command::Evidence {
            command: EvidenceCommand::Verify { bundle, public_key },
        } => evidence_verify(&bundle, public_key.as_deref()),
        Command::Admin(args) => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("vaultgate: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(admin::cli::run(args, &mut std::io::stdout())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{}: {}", e.code, e.message);
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(s) => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("vaultgate: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(serve(s))
        }
    }
}
