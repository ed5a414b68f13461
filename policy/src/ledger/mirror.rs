//! The optional append-only JSON-lines mirror of the ledger: one [`StoredEvent`] per line,
//! in chain order, written by the single ledger writer after each committed batch.

use std::path::{Path, PathBuf};

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;

use super::error::{AuditError, AuditResult};
use super::event::StoredEvent;

/// An open mirror file (append mode, created 0600).
#[derive(Debug)]
pub(crate) struct Mirror {
    path: PathBuf,
    file: File,
    fsync: bool,
}

impl Mirror {
    /// Opens (creating if missing) the mirror at `path` for appending.
    pub(crate) async fn open(path: &Path, fsync: bool) -> AuditResult<Mirror> {
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let file = opts
            .open(path)
            .await
            .map_err(|e| AuditError::io(path.display(), e))?;
        Ok(Mirror {
            path: path.to_path_buf(),
            file,
            fsync,
        })
    }

    /// Appends `events` as JSON lines in one write.
    pub(crate) async fn append(&mut self, events: &[StoredEvent]) -> AuditResult<()> {
        let mut buf = String::with_capacity(events.len() * 400);
        for e in events {
            buf.push_str(&e.to_json_line());
            buf.push('\n');
        }
        let path = self.path.display().to_string();
        self.file
            .write_all(buf.as_bytes())
            .await
            .map_err(|e| AuditError::io(&path, e))?;
        self.file
            .flush()
            .await
            .map_err(|e| AuditError::io(&path, e))?;
        if self.fsync {
            self.file
                .sync_data()
                .await
                .map_err(|e| AuditError::io(&path, e))?;
        }
        Ok(())
    }
}
