//! The offline operations (`vaultgate migrate`, `reindex`, `import-hub`; `gateway::ops`): each
//! loads the configuration, starts logging, opens the index, backend and keys, runs, closes the
//! index and prints its summary. Exit 0 when complete, 2 when something was skipped or the run
//! must be resumed, 1 on error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use gateway::ops::{self, OpsContext};

use crate::settings::{Settings, init_logging};

#[derive(Args, Debug)]
pub struct Migrate {
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
}

#[derive(Args, Debug)]
pub struct Reindex {
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
}

#[derive(Args, Debug)]
pub struct ImportHub {
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
}

/// Copies all ciphertext to `--to` (verified, resumable), then switches the index.
pub async fn migrate(args: Migrate) -> anyhow::Result<ExitCode> {
    let ctx = open(args.settings).await?;
    let opts = ops::migrate::MigrateOptions {
        stop_after: args.stop_after,
        quiet: args.quiet,
    };
    let outcome = ops::migrate::run(&ctx, &args.to, &opts)
        .await
        .map(|r| (r.summary(&args.to), r.switched));
    finish(ctx, outcome).await
}

/// Rebuilds an empty index from the backend and the key.
pub async fn reindex(args: Reindex) -> anyhow::Result<ExitCode> {
    let ctx = open(args.settings).await?;
    let opts = ops::reindex::ReindexOptions {
        owner: args.owner,
        quiet: args.quiet,
    };
    let outcome = ops::reindex::run_into(&ctx, &opts, args.tenant.as_deref())
        .await
        .map(|r| (r.summary(), r.unreadable.is_empty()));
    finish(ctx, outcome).await
}

/// Imports a directory of hub blobs into `--bucket`.
pub async fn import_hub(args: ImportHub) -> anyhow::Result<ExitCode> {
    let ctx = open(args.settings).await?;
    let opts = ops::import_hub::ImportOptions {
        bucket: args.bucket,
        owner: args.owner,
        quiet: args.quiet,
    };
    let outcome = match hub_key(args.key_file) {
        Ok(key) => {
            ops::import_hub::import_hub_into(&ctx, &key, &args.dir, &opts, args.tenant.as_deref())
                .await
                .map(|r| (r.summary(&opts.bucket), r.failed.is_empty()))
        }
        Err(e) => Err(e),
    };
    finish(ctx, outcome).await
}

/// The hub's key: from `--key-file`, else env `BLOB_KEY`.
fn hub_key(key_file: Option<PathBuf>) -> gateway::Result<keys::HubKey> {
    match key_file {
        Some(p) => ops::import_hub::hub_key_from_file(&p),
        None => match std::env::var("BLOB_KEY") {
            Ok(v) if !v.trim().is_empty() => {
                keys::HubKey::from_hex(v.trim()).map_err(gateway::Error::from)
            }
            _ => Err(gateway::Error::Config(
                "import-hub needs the hub key: --key-file PATH or env BLOB_KEY".into(),
            )),
        },
    }
}

/// Loads the configuration, starts logging and opens what the operations work on.
async fn open(settings: Settings) -> anyhow::Result<OpsContext> {
    let cfg = settings.load()?;
    init_logging(&cfg.log_level);
    Ok(OpsContext::open(&cfg).await?)
}

/// Closes the index, prints the summary: exit 0 when `complete`, else 2.
async fn finish(
    ctx: OpsContext,
    outcome: gateway::Result<(String, bool)>,
) -> anyhow::Result<ExitCode> {
    ctx.close().await;
    let (summary, complete) = outcome?;
    println!("{summary}");
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
