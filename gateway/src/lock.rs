//! The data dir lock, `<data_dir>/vaultgate.lock`: a serving gateway and every offline command
//! that changes data (`migrate`, `migrate-db` (on SQLite), `reindex`, `import-hub`,
//! `keys rotate|rewrap|retire`) hold it exclusively for as long as they run, so neither starts
//! against the other. Commands that only read (`audit verify`, `keys status`, `config check`)
//! take no lock.
//!
//! Exclusive for the gateway too, not shared: two gateways on one data dir share one SQLite
//! index, and each one's start-up orphan sweep (with no grace period, docs/OPERATIONS.md) would
//! delete the blobs the other is writing. The lock is an OS file lock (`flock`), released when
//! the process ends, however it ends: a crash leaves nothing to clean up.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::{Error, Result};

/// How a serving gateway names itself in the lock file.
pub const SERVE: &str = "a vaultgate gateway (serve)";

/// The name of the lock file in the data dir.
pub const LOCK_FILE: &str = "vaultgate.lock";

/// Held while the lock is held; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the data dir's lock for `what` (`vaultgate serve`, `vaultgate reindex`, …), or says
/// who holds it and what to do instead. The data dir must exist.
pub fn lock_data_dir(dir: &Path, what: &str) -> Result<DataDirLock> {
    use std::io::Write;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Start(format!("cannot open the lock file {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process"
            } else {
                holder
            };
            let hint = if holder.starts_with(SERVE) {
                " (while a gateway serves, use the online commands: vaultgate admin …)"
            } else {
                ""
            };
            return Err(Error::Start(format!(
                "the data dir {} is in use by {holder}; {what} needs it alone: stop that process first{hint}",
                dir.display()
            )));
        }
        Err(TryLockError::Error(e)) => {
            return Err(Error::Start(format!(
                "cannot lock the data dir {}: {e}",
                path.display()
            )));
        }
    }
    // who holds it, for the message another process prints (best effort)
    let _ = file.set_len(0);
    let _ = write!(file, "{what} (pid {})", std::process::id());
    Ok(DataDirLock { _file: file })
}
