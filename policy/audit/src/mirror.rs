//! The optional append-only JSON-lines mirror of the ledger: one [`StoredEvent`] per line,
//! in chain order, written by the single ledger writer after each committed batch, caught up
//! from the database at open and after a failed write.

use std::path::{Path, PathBuf};

use sqlx::AnyPool;
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::{AuditError, AuditResult};
use crate::event::StoredEvent;
use crate::{COLUMNS, row_to_event};

/// How far from the end of the file the last line is looked for.
const TAIL_WINDOW: u64 = 1 << 20;
/// Events copied per query while catching up.
const CATCH_UP_PAGE: i64 = 1000;

/// An open mirror file (append mode, created 0600).
#[derive(Debug)]
pub(crate) struct Mirror {
    path: PathBuf,
    file: File,
    fsync: bool,
    /// seq of the last complete line in the file
    last_seq: i64,
    /// a write failed part-way: the file may end inside a line
    torn: bool,
}

impl Mirror {
    /// Opens (creating if missing) the mirror at `path` for appending and reads the seq of
    /// its last line. A torn last line (crash mid-write) is terminated so that later lines
    /// stay separate (verification reports it as malformed); a non-empty file whose tail holds
    /// no readable event is refused.
    pub(crate) async fn open(path: &Path, fsync: bool) -> AuditResult<Mirror> {
        let shown = path.display().to_string();
        let io = |e| AuditError::io(&shown, e);
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let file = opts.open(path).await.map_err(io)?;
        if !file.metadata().await.map_err(io)?.is_file() {
            return Err(AuditError::Config(format!(
                "audit mirror {shown} is not a regular file"
            )));
        }
        let mut reader = File::open(path).await.map_err(io)?;
        let len = reader.metadata().await.map_err(io)?.len();
        reader
            .seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL_WINDOW)))
            .await
            .map_err(io)?;
        let mut tail = Vec::new();
        reader.read_to_end(&mut tail).await.map_err(io)?;
        let last_seq = tail
            .split(|b| *b == b'\n')
            .rev()
            .find_map(|line| serde_json::from_slice::<StoredEvent>(line).ok())
            .map_or(0, |e| e.seq);
        if len > 0 && last_seq == 0 {
            return Err(AuditError::Corrupt(format!(
                "{shown}: no readable event in the last {TAIL_WINDOW} bytes; refusing to append"
            )));
        }
        let torn = !tail.is_empty() && !tail.ends_with(b"\n");
        if torn {
            tracing::warn!(path = %shown, "audit mirror ends with a torn line; terminating it");
        }
        Ok(Mirror {
            path: path.to_path_buf(),
            file,
            fsync,
            last_seq,
            torn,
        })
    }

    /// Appends every database event after the mirror's last line and before `before`
    /// (all remaining ones when `None`).
    pub(crate) async fn catch_up(
        &mut self,
        pool: &AnyPool,
        before: Option<i64>,
    ) -> AuditResult<()> {
        let from = self.last_seq;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 AND seq < $2 ORDER BY seq ASC LIMIT $3"
            ))
            .bind(self.last_seq)
            .bind(before.unwrap_or(i64::MAX))
            .bind(CATCH_UP_PAGE)
            .fetch_all(pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            let events = rows
                .iter()
                .map(row_to_event)
                .collect::<AuditResult<Vec<_>>>()?;
            self.write(&events).await?;
        }
        if self.last_seq > from {
            tracing::info!(path = %self.path.display(), from = from + 1, to = self.last_seq,
                "audit mirror caught up from the database");
        }
        Ok(())
    }

    /// Appends a committed batch, first filling any gap left by an earlier failed write.
    pub(crate) async fn append(
        &mut self,
        pool: &AnyPool,
        events: &[StoredEvent],
    ) -> AuditResult<()> {
        if let Some(first) = events.first()
            && first.seq > self.last_seq + 1
        {
            self.catch_up(pool, Some(first.seq)).await?;
        }
        self.write(events).await
    }

    async fn write(&mut self, events: &[StoredEvent]) -> AuditResult<()> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut buf = String::with_capacity(events.len() * 400 + 1);
        if self.torn {
            buf.push('\n');
        }
        for e in events {
            buf.push_str(&e.to_json_line());
            buf.push('\n');
        }
        let shown = self.path.display().to_string();
        self.torn = true;
        self.file
            .write_all(buf.as_bytes())
            .await
            .map_err(|e| AuditError::io(&shown, e))?;
        self.file
            .flush()
            .await
            .map_err(|e| AuditError::io(&shown, e))?;
        if self.fsync {
            self.file
                .sync_data()
                .await
                .map_err(|e| AuditError::io(&shown, e))?;
        }
        self.torn = false;
        self.last_seq = last.seq;
        Ok(())
    }
}
