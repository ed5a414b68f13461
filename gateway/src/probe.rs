//! `vaultgate config check --connect`: after the offline validation, one probe each of the
//! index database (connect and `SELECT 1`, nothing created or migrated), the backend (the
//! start-up step `serve` runs: S3 HeadBucket and a probe object written, read and deleted;
//! Azure likewise; a local directory: a probe file) and the key provider (the key file or the
//! master key opened; a KMS asked DescribeKey on the configured key). A failure is the same
//! one line `serve` prints for it, naming the setting to change; passwords are masked.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{Config, redact_url, setting};
use crate::error::Error;

/// How long one probe may take before it counts as "no answer".
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// One probe's outcome: what was probed and how long it took, or the one-line error.
#[derive(Debug)]
pub struct Probe {
    /// `database`, `backend` or `keys`
    pub what: &'static str,
    /// the probed thing, for the `ok` line (passwords masked)
    pub target: String,
    /// elapsed time and a note (e.g. "created at first start"), or the error `serve` reports
    pub outcome: Result<(Duration, Option<&'static str>), Error>,
}

impl Probe {
    /// The `ok …` line of a probe that succeeded, else its error.
    pub fn line(&self) -> Result<String, &Error> {
        let (took, note) = self.outcome.as_ref()?;
        let note = note.map_or_else(String::new, |n| format!("; {n}"));
        Ok(format!(
            "ok {} {} ({} ms{note})",
            self.what,
            self.target,
            took.as_millis()
        ))
    }
}

/// Probes the database, the backend and the key provider, in that order; every probe runs
/// even when an earlier one failed.
pub async fn connect(config: &Config) -> Vec<Probe> {
    let db_url = config.database_url();
    let backend_url = config.backend_url();
    vec![
        timed("database", redact_url(&db_url), database(&db_url)).await,
        timed("backend", redact_url(&backend_url), backend(config)).await,
        timed("keys", key_target(config), key_provider(config)).await,
    ]
}

async fn timed(
    what: &'static str,
    target: String,
    probe: impl Future<Output = Result<Option<&'static str>, Error>>,
) -> Probe {
    let start = Instant::now();
    let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(r) => r.map(|note| (start.elapsed(), note)),
        Err(_) => Err(Error::Start(format!(
            "{what} {target}: no answer within {} s; check {} and that the service is up",
            PROBE_TIMEOUT.as_secs(),
            setting(match what {
                "database" => "database_url",
                "backend" => "backend",
                _ => "kms",
            })
        ))),
    };
    Probe {
        what,
        target,
        outcome,
    }
}

/// The file of a `sqlite://` URL (not an in-memory database).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !audit::db::is_memory_url(p))
        .map(PathBuf::from)
}

/// Connects without creating or migrating anything and runs `SELECT 1`.
async fn database(url: &str) -> Result<Option<&'static str>, Error> {
    if sqlite_file(url).is_some_and(|p| !p.exists()) {
        return Ok(Some("the file does not exist yet: serve creates it"));
    }
    let failed = |e: sqlx::Error| {
        Error::Start(format!(
            "cannot open the index {}: {}; check {}",
            redact_url(url),
            crate::index::IndexError::Database(e),
            setting("database_url")
        ))
    };
    let pool = audit::db::connect(
        url,
        audit::db::PoolShape {
            max: 1,
            min: 0,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: None,
            create: false,
        },
    )
    .await
    .map_err(failed)?;
    let answer = sqlx::query("SELECT 1").fetch_one(&pool).await;
    pool.close().await;
    answer.map_err(failed)?;
    Ok(None)
}

/// The start-up step `serve` runs for a remote backend; a local directory gets a probe file
/// (opening it would sweep the temporary files of a gateway that serves from it).
async fn backend(config: &Config) -> Result<Option<&'static str>, Error> {
    let url = config.backend_url();
    if let Some(rest) = url.strip_prefix("file://") {
        let dir = Path::new(rest);
        if !dir.exists() {
            return Ok(Some("the directory does not exist yet: serve creates it"));
        }
        let probe = dir.join(".vaultgate-write-probe");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| crate::server::backend_start_error(config, e.into()))?;
        return Ok(None);
    }
    crate::backend::open_backend(&url, &config.data_dir)
        .await
        .map_err(|e| crate::server::backend_start_error(config, e))?;
    Ok(None)
}

/// What the key probe names: the KMS key, the master key's source, or the key file.
fn key_target(config: &Config) -> String {
    if let Some(kms) = &config.kms {
        return redact_url(kms);
    }
    match config
        .secret_sources
        .iter()
        .find(|(n, _)| n == "master_key")
    {
        Some((_, source)) => format!("master key from {source}"),
        None if config.master_key.is_some() => "master key from the config file".to_owned(),
        None => format!(
            "key file {}",
            config.data_dir.join(keys::KEY_FILE_NAME).display()
        ),
    }
}

/// Opens the master key or the key file (never generating one), or asks the KMS DescribeKey.
async fn key_provider(config: &Config) -> Result<Option<&'static str>, Error> {
    let kc = config.key_config();
    if kc.master_key_hex.is_none() && kc.kms_url.is_none() {
        let path = config.data_dir.join(keys::KEY_FILE_NAME);
        if !path.exists() {
            return Ok(Some(
                "the file does not exist yet: serve generates it for a new data dir",
            ));
        }
        keys::provider::LocalProvider::open(&path).map_err(Error::from)?;
        return Ok(None);
    }
    let provider = keys::provider_from_config(&kc).await?;
    let location = crate::ops::keys::provider_location(config, provider.as_ref());
    match provider.probe().await {
        keys::ProviderState::Ready => Ok(None),
        keys::ProviderState::Refused(reason) => Err(Error::Config(format!(
            "key custody: {location} refused: {reason}; check VAULTGATE_KMS and the KMS credentials"
        ))),
        keys::ProviderState::Unreachable(reason) => Err(Error::Unavailable(format!(
            "key custody: {location} is unreachable ({reason}); check {} and that the KMS is up",
            setting("kms")
        ))),
    }
}
