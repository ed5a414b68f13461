//! One module per command family, each returning the process's exit code, [`report`], the
//! one place a failed command is printed and turned into its exit code, and the
//! `--version` text ([`long_version`]).

pub mod admin;
pub mod audit;
pub mod config;
pub mod evidence;
pub mod key_backup;
pub mod keys;
pub mod migrate_db;
pub mod ops;
pub mod serve;

use std::fmt::Display;
use std::process::ExitCode;

/// `vaultgate --version`: the version, the commit and date `deploy/build-release.sh` stamps in
/// (`VAULTGATE_BUILD_COMMIT`, `VAULTGATE_BUILD_DATE` at compile time; "unknown" for a plain
/// `cargo build`), the profile and target, and the TLS stack.
pub fn long_version() -> &'static str {
    let text = format!(
        "{}\ncommit: {}\nbuilt: {}\nprofile: {}\ntarget: {}-{}\ntls: rustls (aws-lc-rs), TLS 1.2/1.3, ALPN h2 and http/1.1",
        env!("CARGO_PKG_VERSION"),
        option_env!("VAULTGATE_BUILD_COMMIT").unwrap_or("unknown"),
        option_env!("VAULTGATE_BUILD_DATE").unwrap_or("unknown"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::env::consts::ARCH,
        std::env::consts::OS,
    );
    // parsed once per process; clap keeps a &'static str
    Box::leak(text.into_boxed_str())
}

/// A failure that ends the process with `code` rather than 1 (e.g. `audit verify`'s 2 for a
/// ledger it cannot read).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    code: u8,
    message: String,
}

/// Turns an error into an [`Exit`] with `code`, its message prefixed by `what` (unless empty).
pub trait OrExit<T> {
    fn or_exit(self, code: u8, what: &str) -> anyhow::Result<T>;
}

impl<T, E: Display> OrExit<T> for Result<T, E> {
    fn or_exit(self, code: u8, what: &str) -> anyhow::Result<T> {
        self.map_err(|e| {
            let message = if what.is_empty() {
                e.to_string()
            } else {
                format!("{what}: {e}")
            };
            Exit { code, message }.into()
        })
    }
}

/// Prints a failed command's error on stderr as `vaultgate: {error}` (an answer of the admin
/// API as `{code}: {message}`, as `vaultgate admin` prints it) and returns its exit code: the
/// [`Exit`] code, else 1.
pub fn report(e: &anyhow::Error) -> ExitCode {
    if let Some(api) = e.downcast_ref::<::admin::ApiError>() {
        eprintln!("{}: {}", api.code, api.message);
        return ExitCode::FAILURE;
    }
    eprintln!("vaultgate: {e}");
    ExitCode::from(e.downcast_ref::<Exit>().map_or(1, |x| x.code))
}
