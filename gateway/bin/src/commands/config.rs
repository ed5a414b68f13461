//! `vaultgate config check`: validates the configuration, refuses what this build cannot serve
//! yet, and prints the effective settings, secrets redacted.

use std::process::ExitCode;

use clap::Subcommand;

use crate::settings::Settings;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration and print it (secrets redacted); exit 1 if invalid.
    Check(Settings),
}

/// Exit 0 with the effective configuration on stdout, 1 when it is invalid or names what this
/// build cannot serve (a PostgreSQL index).
pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check(settings) = command;
    let cfg = settings.load()?;
    cfg.check_supported()?;
    println!("# configuration is valid; effective settings (secrets redacted):");
    print!("{}", cfg.redacted_toml());
    Ok(ExitCode::SUCCESS)
}
