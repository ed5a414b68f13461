//! `vaultgate audit verify|prune`: checks the audit ledger's hash chain (in the database or a
//! JSON-lines mirror) and deletes old events behind a signed checkpoint (`audit`).

use std::path::PathBuf;
use std::process::ExitCode;

use audit::cli::{verify_database, verify_file};
use audit::evidence::{EvidenceKey, PublicKey};
use audit::{Ledger, now_ms, open_pool};
use clap::Subcommand;

use super::OrExit;
use crate::settings::Settings;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
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

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            settings,
            file,
            public_key,
        } => verify(settings, file, public_key).await,
        AuditCommand::Prune {
            settings,
            before_days,
        } => prune(settings, before_days).await,
    }
}

/// `vaultgate audit verify`: 0 intact, 1 broken, 2 unreadable / bad usage.
async fn verify(
    settings: Settings,
    file: Option<PathBuf>,
    public_key: Option<String>,
) -> anyhow::Result<ExitCode> {
    let report = if let Some(path) = file {
        verify_file(&path).await
    } else {
        let cfg = settings.load().or_exit(2, "")?;
        let trusted = match public_key.as_deref().map(PublicKey::from_arg) {
            Some(pk) => Some(pk.or_exit(2, "--public-key")?),
            None => EvidenceKey::load(&EvidenceKey::path_in(&cfg.data_dir))
                .ok()
                .map(|k| k.public_key()),
        };
        verify_database(&cfg.database_url(), trusted.as_ref()).await
    };
    let report = report.or_exit(2, "cannot verify the audit ledger")?;
    println!("{report}");
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `vaultgate audit prune`: 0 done, 1 refused (e.g. a broken ledger), 2 bad usage.
async fn prune(settings: Settings, before_days: Option<u32>) -> anyhow::Result<ExitCode> {
    let cfg = settings.load().or_exit(2, "")?;
    let key = EvidenceKey::load(&EvidenceKey::path_in(&cfg.data_dir))
        .or_exit(2, "the evidence key signs the checkpoint")?;
    let mut lcfg = cfg.ledger_config().or_exit(2, "")?;
    lcfg.source_secret = Some(key.source_secret());
    let ledger = match open_pool(&cfg.database_url(), false).await {
        Ok(pool) => Ledger::open(pool, lcfg).await,
        Err(e) => Err(e),
    }
    .or_exit(2, "cannot open the audit ledger")?;
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
    let pruned = result.or_exit(1, "prune refused")?;
    match &pruned.checkpoint {
        Some(c) => println!(
            "pruned {} events; checkpoint at seq {} (hash {}), signed by {}",
            pruned.deleted, c.seq, c.hash, c.public_key
        ),
        None => println!("pruned 0 events: nothing older than the cutoff"),
    }
    Ok(ExitCode::SUCCESS)
}
