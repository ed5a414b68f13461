//! `vaultgate keys status|rotate|rewrap|retire|reencrypt`: key management against the data dir and index
//! of a stopped gateway (`gateway::ops::keys`; a running gateway does the same through
//! `vaultgate admin kek …`, which keeps its in-memory key file in step). Each change is recorded
//! in the audit ledger as an admin event of the local operator (`keys.RotateKek`, …). Exit 0
//! when done, 2 when a rewrap left data keys to retry, 1 on error or refusal.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use gateway::ops::OpsContext;
use gateway::ops::keys::{self as key_ops, KeyOpError};
use gateway::ops::reencrypt as reencrypt_ops;

use crate::settings::{Settings, init_logging};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Key provider, KEKs (current, held, what depends on each), every bucket data key version
    /// and the objects sealed under it.
    Status {
        #[command(flatten)]
        common: KeysArgs,
    },
    /// Add a KEK version to the key file and make it current, then re-wrap every data key under
    /// it (no object data is rewritten).
    Rotate {
        #[command(flatten)]
        common: KeysArgs,
    },
    /// Re-wrap every data key not yet under the current KEK (resumable: run it again after a
    /// failure; keys already current are skipped).
    Rewrap {
        #[command(flatten)]
        common: KeysArgs,
    },
    /// A new data key version for a bucket, then every version of every object in it re-sealed
    /// under it (verified, resumable: run it again after an interruption, it continues with the
    /// same data key version). SSE-C objects are skipped and counted. On a running gateway use
    /// `vaultgate admin kek reencrypt` instead.
    Reencrypt {
        #[command(flatten)]
        common: KeysArgs,
        /// The bucket.
        #[arg(long)]
        bucket: String,
        /// At most this many MB (10^6 bytes) of plaintext per second.
        #[arg(long, value_name = "MB_PER_SEC")]
        rate: Option<f64>,
        /// At most this many object versions per second.
        #[arg(long, value_name = "PER_SEC")]
        rate_objects: Option<f64>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Write the key material of the data dir (the key file, the sealed admin token secret, the
    /// evidence signing key; for KMS the key id only) to FILE, sealed under a passphrase read
    /// from a prompt or stdin. Refuses to overwrite FILE; written with mode 0600.
    Backup {
        #[command(flatten)]
        common: KeysArgs,
        /// The backup file to create.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        /// Read the passphrase from the first line of stdin instead of a prompt.
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// Restore the key material of a backup into the data dir (gateway stopped). Refuses a wrong
    /// passphrase or a damaged file, and a file that would replace a different existing one
    /// unless --force (which keeps the replaced file as `<name>.replaced-<ms>`).
    Restore {
        #[command(flatten)]
        common: KeysArgs,
        /// The backup file.
        #[arg(long = "in", value_name = "FILE")]
        input: std::path::PathBuf,
        /// Read the passphrase from the first line of stdin instead of a prompt.
        #[arg(long)]
        passphrase_stdin: bool,
        /// Replace existing key files that differ from the backup's.
        #[arg(long)]
        force: bool,
    },
    /// Replace the admin API's token signing secret (kept sealed in the data dir); every admin
    /// token then has to log in again. Takes effect when the gateway starts.
    RotateAdminSecret {
        #[command(flatten)]
        common: KeysArgs,
    },
    /// Remove a non-current KEK version from the key file: refused while a data key is wrapped
    /// by it, and while stored stream headers carry it unless --accept-header-copies.
    Retire {
        #[command(flatten)]
        common: KeysArgs,
        /// KEK id (`local:…`, see `vaultgate keys status`).
        kek_id: String,
        /// Retire although stream headers carry data keys wrapped by it (a reindex then needs
        /// the KEK from a backup of the key file).
        #[arg(long)]
        accept_header_copies: bool,
    },
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(flatten)]
    pub(crate) settings: Settings,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    format: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// aligned columns
    Table,
    /// JSON
    Json,
}

pub async fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Status { common } => {
            let ctx = open(common.settings).await?;
            let s = key_ops::status(&ctx.keyring, &ctx.index).await;
            ctx.index.close().await;
            print_status(&s?, common.format)?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate { common } => {
            let (ctx, audit) = open_audited(common.settings).await?;
            let r = key_ops::rotate(&ctx.keyring).await;
            finish_rewrap(ctx, audit, "keys.RotateKek", r, common.format).await
        }
        KeysCommand::Rewrap { common } => {
            let (ctx, audit) = open_audited(common.settings).await?;
            let r = key_ops::rewrap(&ctx.keyring).await;
            finish_rewrap(ctx, audit, "keys.RewrapDataKeys", r, common.format).await
        }
        KeysCommand::Reencrypt {
            common,
            bucket,
            rate,
            rate_objects,
            quiet,
        } => reencrypt(common, bucket, rate, rate_objects, quiet).await,
        KeysCommand::Backup {
            common,
            out,
            passphrase_stdin,
        } => crate::commands::key_backup::backup(common.settings, &out, passphrase_stdin),
        KeysCommand::Restore {
            common,
            input,
            passphrase_stdin,
            force,
        } => crate::commands::key_backup::restore(common.settings, &input, passphrase_stdin, force),
        KeysCommand::RotateAdminSecret { common } => {
            let (ctx, audit) = open_audited(common.settings).await?;
            let r = key_ops::rotate_admin_jwt_secret(&ctx.data_dir, &ctx.keyring)
                .await
                .map(|_| ())
                .map_err(KeyOpError::from);
            record(&audit, "keys.RotateAdminSecret", "", &r).await;
            ctx.index.close().await;
            r?;
            println!(
                "admin token signing secret replaced ({}); restart the gateway, then log in again \
                 (vaultgate admin login)",
                ctx.data_dir.join(key_ops::ADMIN_SECRET_FILE).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Retire {
            common,
            kek_id,
            accept_header_copies,
        } => {
            let (ctx, audit) = open_audited(common.settings).await?;
            let r = key_ops::retire(&ctx.keyring, &ctx.index, &kek_id, accept_header_copies).await;
            record(&audit, "keys.RetireKek", &kek_id, &r).await;
            ctx.index.close().await;
            let r = r?;
            match common.format {
                Output::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                Output::Table => println!(
                    "retired KEK {} ({} stream headers still carried it)",
                    r.kek_id, r.stream_headers
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn reencrypt(
    common: KeysArgs,
    bucket: String,
    rate: Option<f64>,
    rate_objects: Option<f64>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    for (flag, v) in [("--rate", rate), ("--rate-objects", rate_objects)] {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0)
        {
            anyhow::bail!("{flag} must be a positive number, not {v}");
        }
    }
    let rate = reencrypt_ops::Rate {
        bytes_per_sec: rate.map(|mb| (mb * 1e6) as u64),
        objects_per_sec: rate_objects,
    };
    let (ctx, audit) = open_audited(common.settings).await?;
    let store = gateway::store::Store::new(
        ctx.backend.clone(),
        ctx.index.clone(),
        ctx.keyring.clone(),
        gateway::metrics::Metrics::new(),
    );
    let begun = reencrypt_ops::begin(&store, &bucket)
        .await
        .map_err(|e| match e {
            gateway::error::Error::NoSuchBucket(_) => {
                KeyOpError::NotFound(format!("no bucket {bucket}"))
            }
            e => KeyOpError::Failed(e),
        });
    record(&audit, "keys.ReencryptBucket", &bucket, &begun).await;
    let begun = match begun {
        Ok(s) => s,
        Err(e) => {
            ctx.index.close().await;
            return Err(e.into());
        }
    };
    let pb = gateway::ops::bytes_progress_bar(0, "reencrypt", quiet);
    let r = reencrypt_ops::run(&store, begun, rate, None, Some(pb))
        .await
        .map_err(KeyOpError::from);
    record(&audit, "keys.ReencryptBucketFinished", &bucket, &r).await;
    ctx.index.close().await;
    let r = r?;
    match common.format {
        Output::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        Output::Table => {
            println!("{}", r.summary());
            for (k, v, e) in &r.errors {
                println!("  failed: {k} (version {v}): {e}");
            }
        }
    }
    Ok(if r.finished_ms.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn open(settings: Settings) -> anyhow::Result<OpsContext> {
    let cfg = settings.load()?;
    init_logging(&cfg.log_level);
    Ok(OpsContext::open(&cfg).await?)
}

async fn open_audited(settings: Settings) -> anyhow::Result<(OpsContext, gateway::audit::Audit)> {
    let cfg = settings.load()?;
    init_logging(&cfg.log_level);
    let ctx = OpsContext::open(&cfg).await?;
    let audit = gateway::audit::Audit::open(&cfg, &ctx.index)
        .await
        .context("the audit ledger must record key changes")?;
    Ok((ctx, audit))
}

/// One admin event in the ledger for an offline key operation (principal: the local operator).
async fn record<T>(
    audit: &gateway::audit::Audit,
    action: &str,
    target: &str,
    r: &Result<T, KeyOpError>,
) {
    let (outcome, status, code) = match r {
        Ok(_) => (audit::Outcome::Success, 200, None),
        Err(KeyOpError::Refused(_)) => (audit::Outcome::Error, 409, Some("Conflict")),
        Err(KeyOpError::NotFound(_)) => (audit::Outcome::Error, 404, Some("NotFound")),
        Err(KeyOpError::Failed(_)) => (audit::Outcome::Error, 503, Some("Unavailable")),
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    let ev = audit::AuditEvent {
        time_ms: audit::now_ms(),
        request_id: audit::new_request_id(),
        kind: audit::EventKind::Admin,
        principal: Some(format!("local:{user}")),
        tenant: None,
        action: action.to_owned(),
        bucket: None,
        key: Some(target.to_owned()).filter(|t| !t.is_empty()),
        outcome,
        status,
        error_code: code.map(str::to_owned),
        bytes_in: 0,
        bytes_out: 0,
        key_version: None,
        source: Some("vaultgate keys (offline)".into()),
        duration_us: 0,
    };
    if let Err(e) = audit.ledger.append(ev).await {
        tracing::error!(error = %e, action, "could not record the key operation in the audit ledger");
    }
}

async fn finish_rewrap(
    ctx: OpsContext,
    audit: gateway::audit::Audit,
    action: &str,
    r: Result<key_ops::RewrapOutcome, KeyOpError>,
    format: Output,
) -> anyhow::Result<ExitCode> {
    record(&audit, action, "", &r).await;
    ctx.index.close().await;
    let r = r?;
    match format {
        Output::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        Output::Table => {
            println!("{}", r.summary());
            for (id, e) in &r.failed {
                println!("  failed: data key {id}: {e}");
            }
        }
    }
    Ok(if r.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn print_status(s: &key_ops::KeysStatus, format: Output) -> anyhow::Result<()> {
    if format == Output::Json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let p = &s.provider;
    println!(
        "provider: {} ({}), {}{}",
        p.kind,
        p.location,
        p.state,
        p.error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    println!();
    let keks: Vec<serde_json::Value> = s
        .keks
        .iter()
        .map(|k| {
            serde_json::json!({
                "kek_id": k.kek_id,
                "version": k.version,
                "current": k.current,
                "held": k.held,
                "data_keys": k.data_keys,
                "stream_headers": k.stream_headers,
            })
        })
        .collect();
    print!(
        "{}",
        admin::cli::table(
            &[
                "kek_id",
                "version",
                "current",
                "held",
                "data_keys",
                "stream_headers"
            ],
            &keks
        )
    );
    println!();
    let dks: Vec<serde_json::Value> = s
        .data_keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "bucket": k.bucket,
                "version": k.version,
                "kek_id": k.kek_id,
                "created": admin::cli::format_ms(k.created_ms),
                "objects": k.objects,
                "bytes": k.bytes,
            })
        })
        .collect();
    print!(
        "{}",
        admin::cli::table(
            &["bucket", "version", "kek_id", "created", "objects", "bytes"],
            &dks
        )
    );
    Ok(())
}
