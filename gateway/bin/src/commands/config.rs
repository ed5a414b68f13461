//! `vaultgate config check`: validates the configuration, refuses what this build cannot serve
//! yet, loads the TLS certificates as `serve` would (chain, key match, validity; a warning 30
//! days before expiry) and prints the effective settings, secrets redacted; with `--connect` it
//! then probes the database, the backend and the key provider (`gateway::probe`).

use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, Subcommand};

use crate::settings::Settings;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration and certificates and print it (secrets redacted); exit 1 if
    /// invalid. Certificates expiring within 30 days are warned about on stderr (exit 0).
    Check(Box<Check>),
    /// Print the settings reference (every TOML key, variable, flag and default) as Markdown.
    Reference,
}

/// `config check`'s options.
#[derive(Args, Debug)]
pub struct Check {
    /// Then probe the database, the backend and the key provider (KMS DescribeKey) with the
    /// configured credentials: one line each, `ok …` or the error `serve` would print.
    #[arg(long)]
    connect: bool,
    #[command(flatten)]
    settings: Settings,
}

/// Exit 0 with the effective configuration on stdout, 1 when it is invalid (every check `serve`
/// makes short of binding ports and reaching the network, including what this build cannot
/// serve, such as a PostgreSQL index) or a certificate is unusable (unreadable, mismatched key,
/// broken chain, expired, not yet valid) or, with `--connect`, a probe fails (every probe runs;
/// `ok` lines on stdout, the errors on stderr as `serve` prints them).
pub async fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let Check { connect, settings } = match command {
        ConfigCommand::Check(check) => *check,
        ConfigCommand::Reference => {
            print!("{}", gateway::config::reference_markdown());
            return Ok(ExitCode::SUCCESS);
        }
    };
    let cfg = settings.load()?;
    let (listeners, warnings) = gateway::server::tls::check(&cfg, SystemTime::now())?;
    for w in cfg.warnings.iter().chain(&warnings) {
        eprintln!("vaultgate: warning: {w}");
    }
    println!("# configuration is valid; effective settings (secrets redacted):");
    for l in &listeners {
        println!("# {l}");
    }
    for (name, source) in &cfg.secret_sources {
        println!("# {name} from {source}");
    }
    print!("{}", cfg.redacted_toml());
    if !connect {
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for probe in gateway::probe::connect(&cfg).await {
        match probe.line() {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed = true;
                eprintln!("vaultgate: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
