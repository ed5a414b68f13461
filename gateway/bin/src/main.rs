//! The `vaultgate` binary, Vaultgate's composition root: parses the command line, starts one
//! runtime, runs the command (`commands/*`) and reports its failure in one place
//! ([`commands::report`]). The commands that need them load the configuration
//! ([`settings::Settings::load`]) and start JSON logging ([`settings::init_logging`]); all
//! logic lives in the libraries (`gateway`, `admin`, `policy`), which only [`compose`] joins.

mod commands;
mod compose;
mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use commands::{audit, config, evidence, keys, migrate_db, ops, serve};

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
    Serve(settings::Settings),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// Offline: copy all ciphertext to another backend (verified, resumable), then switch the index.
    Migrate(ops::Migrate),
    /// Offline: rebuild an empty index from the backend and the key.
    Reindex(ops::Reindex),
    /// Apply the database migrations; with --to, offline: copy the SQLite database into
    /// PostgreSQL (verified, resumable).
    MigrateDb(migrate_db::MigrateDb),
    /// Import a directory of original hub blobs (key: --key-file or env BLOB_KEY) into a bucket.
    ImportHub(ops::ImportHub),
    /// Key management on the data dir of a stopped gateway: status, rotate, rewrap, retire
    /// (a running gateway: `vaultgate admin kek …`).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Admin API client (users, keys, grants, tenants, quorum, status).
    Admin(admin::cli::AdminArgs),
    /// Audit ledger: verify the hash chain (database or mirror file), prune old events.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Evidence bundles: verify a bundle offline.
    Evidence {
        #[command(subcommand)]
        command: evidence::EvidenceCommand,
    },
}

impl Command {
    /// Runs the command to its exit code (an `Err` is reported by [`commands::report`]).
    async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Serve(settings) => serve::run(settings).await,
            Command::Config { command } => config::run(command).await,
            Command::Migrate(args) => ops::migrate(args).await,
            Command::Reindex(args) => ops::reindex(args).await,
            Command::MigrateDb(args) => migrate_db::run(args).await,
            Command::ImportHub(args) => ops::import_hub(args).await,
            Command::Keys { command } => keys::run(command).await,
            Command::Admin(args) => commands::admin::run(args).await,
            Command::Audit { command } => audit::run(command).await,
            Command::Evidence { command } => evidence::run(command),
        }
    }
}

fn main() -> ExitCode {
    let matches =
        settings::offline_help(Cli::command().long_version(commands::long_version())).get_matches();
    let command = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli.command,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return commands::report(&anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    runtime
        .block_on(command.run())
        .unwrap_or_else(|e| commands::report(&e))
}
