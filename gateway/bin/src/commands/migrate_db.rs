//! `vaultgate migrate-db`: without `--to`, applies the configured database's migrations and
//! says which; with `--to postgres://…`, copies the data dir's SQLite database into PostgreSQL
//! (offline: under the data dir lock; resumable; verified), `gateway::ops::migrate_db`. Exit 0
//! when applied / copied and verified, 1 on an error or a verification mismatch.

use std::process::ExitCode;

use clap::Args;
use gateway::ops::OpsContext;
use gateway::ops::migrate_db::{self, MigrateDbOptions};

use crate::settings::{Settings, init_logging};

#[derive(Args, Debug)]
pub struct MigrateDb {
    #[command(flatten)]
    settings: Settings,
    /// Copy the data dir's SQLite database into this empty PostgreSQL database
    /// (postgres://USER:PASSWORD@HOST[:PORT]/DATABASE; resumable, verified). Without it: apply
    /// the configured database's migrations. The variable keeps the password out of `ps`.
    #[arg(long, env = "VAULTGATE_MIGRATE_DB_TO", hide_env_values = true)]
    to: Option<String>,
    /// Rows per batch; each batch is one transaction on the target (with --to).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_rows: u32,
    /// Object versions read back through the new database at the end (with --to).
    #[arg(long, default_value_t = 100)]
    sample: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs `migrate-db`.
pub async fn run(args: MigrateDb) -> anyhow::Result<ExitCode> {
    let cfg = args.settings.load()?;
    init_logging(&cfg.log_level);
    let Some(to) = args.to else {
        return apply(&cfg).await;
    };
    // a bad URL is refused before the data dir is locked or anything opened
    migrate_db::check_target_url(&to)?;
    migrate_db::source_of(&cfg)?;
    let ctx = OpsContext::open(&cfg).await?;
    let opts = MigrateDbOptions {
        batch_rows: args.batch_rows as usize,
        sample: args.sample,
        quiet: args.quiet,
    };
    let outcome = migrate_db::run(&ctx, &cfg, &to, &opts).await;
    ctx.close().await;
    let report = outcome?;
    println!("{}", report.text);
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Applies the migrations; on SQLite under the data dir lock (the file is the data dir's), on
/// PostgreSQL without it (sqlx serialises migrations with an advisory lock, and serving
/// instances of the previous version may keep running).
async fn apply(cfg: &gateway::config::Config) -> anyhow::Result<ExitCode> {
    let _lock = match audit::db::Dialect::of_url(&cfg.database_url()) {
        Some(audit::db::Dialect::Sqlite) => {
            std::fs::create_dir_all(&cfg.data_dir)?;
            Some(gateway::lock::lock_data_dir(
                &cfg.data_dir,
                "vaultgate migrate-db",
            )?)
        }
        _ => None,
    };
    let applied = migrate_db::apply(cfg).await?;
    println!("{applied}");
    Ok(ExitCode::SUCCESS)
}
