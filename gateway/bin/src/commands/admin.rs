//! `vaultgate admin …`: the admin API client (`admin::cli`), printing to stdout.

use std::process::ExitCode;

/// Exit 0 when the API answered, 1 with its error (`{code}: {message}`, see
/// [`super::report`]).
pub async fn run(args: admin::cli::AdminArgs) -> anyhow::Result<ExitCode> {
    admin::cli::run(args, &mut std::io::stdout()).await?;
    Ok(ExitCode::SUCCESS)
}
