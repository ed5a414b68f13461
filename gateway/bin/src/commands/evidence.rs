//! `vaultgate evidence verify`: checks an evidence bundle offline (`audit::evidence`).

use std::path::PathBuf;
use std::process::ExitCode;

use audit::evidence::{PublicKey, verify_bundle};
use clap::Subcommand;

use super::OrExit;

#[derive(Subcommand, Debug)]
pub enum EvidenceCommand {
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

/// Exit 0 valid (the summary on stdout), 1 rejected or unreadable, 2 for a bad `--public-key`.
pub fn run(command: EvidenceCommand) -> anyhow::Result<ExitCode> {
    let EvidenceCommand::Verify { bundle, public_key } = command;
    let trusted = public_key
        .as_deref()
        .map(PublicKey::from_arg)
        .transpose()
        .or_exit(2, "--public-key")?;
    let summary =
        verify_bundle(&bundle, trusted.as_ref()).or_exit(1, &bundle.display().to_string())?;
    print!("{summary}");
    Ok(ExitCode::SUCCESS)
}
