//! The index side of inline objects (docs/FORMAT.md, "Inline objects"): the streams whose sealed
//! bytes are still only in the index (`inline_pending = 1`), and marking them written back once
//! the backend holds them. The write-back task itself is in `store::writeback`.

use bytes::Bytes;
use sqlx::{AnyConnection, Row};

use super::writer::Job;
use super::{Index, IndexError, to_i64};

/// A sealed stream the backend does not hold yet: its backend id and bytes.
#[derive(Clone)]
pub struct PendingInline {
    pub backend_id: String,
    pub data: Bytes,
}

impl std::fmt::Debug for PendingInline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingInline")
            .field("backend_id", &self.backend_id)
            .field("len", &self.data.len())
            .finish()
    }
}

impl Index {
    /// Up to `limit` streams still only in the index, at most about `max_bytes` of them (at least
    /// one), each backend id once.
    pub async fn pending_inline(
        &self,
        limit: u64,
        max_bytes: u64,
    ) -> Result<Vec<PendingInline>, IndexError> {
        let rows = sqlx::query(
            "SELECT backend_id, inline_data FROM object_streams \
             WHERE inline_pending = 1 AND inline_data IS NOT NULL LIMIT $1",
        )
        .bind(to_i64(limit, "write-back batch")?)
        .fetch_all(&self.read)
        .await?;
        let mut out: Vec<PendingInline> = Vec::with_capacity(rows.len());
        let mut bytes = 0u64;
        for row in rows {
            let backend_id: String = row.try_get("backend_id")?;
            if out.iter().any(|p| p.backend_id == backend_id) {
                continue;
            }
            let data: Vec<u8> = row.try_get("inline_data")?;
            if !out.is_empty() && bytes + data.len() as u64 > max_bytes {
                break;
            }
            bytes += data.len() as u64;
            out.push(PendingInline {
                backend_id,
                data: data.into(),
            });
        }
        Ok(out)
    }

    /// Bytes of sealed streams still only in the index (every instance's).
    pub async fn pending_inline_bytes(&self) -> Result<u64, IndexError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(LENGTH(inline_data)), 0) AS BIGINT) FROM object_streams \
             WHERE inline_pending = 1",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Records that the backend now holds `ids` (durably): their streams are no longer pending.
    /// Answers those of `ids` that no stream references any more (deleted or replaced while
    /// being written back): the caller deletes them from the backend again. Group-committed.
    pub async fn inline_written(&self, ids: &[String]) -> Result<Vec<String>, IndexError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.writer
            .submit(|reply| Job::InlineWritten { ids, reply })
            .await
    }
}

/// [`Index::inline_written`] in the writer's transaction.
pub(crate) async fn inline_written_in(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<String>, IndexError> {
    let mut gone = Vec::new();
    for id in ids {
        sqlx::query(
            "UPDATE object_streams SET inline_pending = 0 \
             WHERE backend_id = $1 AND inline_pending = 1",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
        if !super::objects::referenced_by_data(conn, id).await? {
            gone.push(id.clone());
        }
    }
    Ok(gone)
}
