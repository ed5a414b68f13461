//! The index side of inline objects (docs/FORMAT.md, "Inline objects"): the streams whose sealed
//! bytes are still only in the index (`inline_pending = 1`), and marking them written back once
//! the backend holds them. The write-back task itself is in `store::inline`.

use std::sync::LazyLock;

use audit::db::{Dialect, DialectTexts};
use bytes::Bytes;
use sqlx::{AnyConnection, Row};

use super::gc::REF_BATCH;
use super::writer::Job;
use super::{Index, IndexError, to_i64};

impl Index {
    /// Up to `limit` streams still only in the index, at most about `max_bytes` of them (at least
    /// one), each backend id once with its sealed bytes; and whether more may be pending behind
    /// them (the query reached `limit`, or `max_bytes` stopped the batch).
    pub async fn pending_inline(
        &self,
        limit: u64,
        max_bytes: u64,
    ) -> Result<(Vec<(String, Bytes)>, bool), IndexError> {
        let rows = sqlx::query(
            "SELECT backend_id, inline_data FROM object_streams \
             WHERE inline_pending = 1 AND inline_data IS NOT NULL LIMIT $1",
        )
        .bind(to_i64(limit, "write-back batch")?)
        .fetch_all(&self.read)
        .await?;
        let mut more = rows.len() as u64 >= limit;
        let mut out: Vec<(String, Bytes)> = Vec::with_capacity(rows.len());
        let mut bytes = 0u64;
        for row in rows {
            let backend_id: String = row.try_get("backend_id")?;
            if out.iter().any(|(id, _)| *id == backend_id) {
                continue;
            }
            let data: Vec<u8> = row.try_get("inline_data")?;
            if !out.is_empty() && bytes + data.len() as u64 > max_bytes {
                more = true;
                break;
            }
            bytes += data.len() as u64;
            out.push((backend_id, data.into()));
        }
        Ok((out, more))
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
    /// being written back): the caller deletes them from the backend again. The flags are
    /// group-committed; the references are read after that commit (an id is never referenced
    /// again once its row went, and a row deleted later queues its id for the gc as usual).
    pub async fn inline_written(&self, ids: &[String]) -> Result<Vec<String>, IndexError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let written = ids.to_vec();
        self.writer
            .submit(|reply| Job::InlineWritten {
                ids: written,
                reply,
            })
            .await?;
        let live = self.referenced_among(ids, false).await?;
        Ok(ids
            .iter()
            .filter(|id| !live.contains(*id))
            .cloned()
            .collect())
    }
}

/// [`Index::inline_written`]'s flags in the writer's transaction: one statement per
/// [`REF_BATCH`] ids.
pub(crate) async fn inline_written_in(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<(), IndexError> {
    static TEXTS: LazyLock<DialectTexts> =
        LazyLock::new(|| DialectTexts::new(REF_BATCH, written_text));
    let texts = TEXTS.of(Dialect::of_connection(conn));
    for chunk in ids.chunks(REF_BATCH) {
        let (sql, kept) = texts.for_rows(chunk.len());
        let mut query = sqlx::query(sql.as_ref()).persistent(kept);
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// [`inline_written_in`]'s statement for `ids` ids, named as `dialect` names many values.
fn written_text(dialect: Dialect, ids: usize) -> String {
    format!(
        "UPDATE object_streams SET inline_pending = 0 \
         WHERE inline_pending = 1 AND backend_id IN {}",
        audit::db::value_rows(1, ids, dialect.first_value())
    )
}
