//! Index operations on objects: atomic put (insert or replace), get, delete; and the shared
//! transaction steps that replace an object's row and queue the backend ids it no longer needs.
//!
//! A put or delete is one transaction (a savepoint in the writer's group commit, see `writer.rs`): the old row and its streams go, the new ones come, and the
//! backend ids nobody references any more are written to `gc_queue` in the same transaction and
//! returned to the caller, who deletes them from the backend and then calls `gc_done`.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use audit::db::{Dialect, DialectTexts, flag, value_rows};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use super::locks::retrying;
use super::writer::Job;
use super::{
    DeleteCondition, Index, IndexError, Inline, LockMode, ObjectLock, ObjectRecord, Precondition,
    StreamRecord, VersionFacts, WriteCondition, map_from_json, map_to_json, now_ms, to_i64, to_u32,
    to_u64,
};

pub(crate) type Tx = Transaction<'static, Any>;

/// Fails with NotFound unless the bucket exists (inside a write transaction).
pub(crate) async fn require_bucket(
    conn: &mut AnyConnection,
    bucket: &str,
) -> Result<(), IndexError> {
    let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM buckets WHERE name = $1) AS present")
        .bind(bucket)
        .fetch_one(&mut *conn)
        .await?;
    if flag(&row, "present")? {
        Ok(())
    } else {
        Err(IndexError::NotFound(bucket.to_string()))
    }
}

/// Removes one version row (and, by cascade, its streams) if present. Returns None if there was
/// no such version, else the backend ids it referenced and whether it was the latest (the caller
/// then promotes the newest remaining version). `Locked` if object lock protects it at `now_ms`
/// (`bypass`: GOVERNANCE retention may be bypassed).
pub(crate) async fn remove_version_row(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
    version_id: &str,
    guard: Option<(i64, bool)>,
) -> Result<Option<Removed>, IndexError> {
    let row = sqlx::query(
        "SELECT CAST(is_latest AS BIGINT) AS is_latest, CAST(delete_marker AS BIGINT) AS delete_marker, lock_mode, lock_until_ms, CAST(legal_hold AS BIGINT) AS legal_hold FROM objects \
         WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
    )
    .bind(bucket)
    .bind(key)
    .bind(version_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if let Some((now, bypass)) = guard {
        let lock = lock_from_row(&row)?;
        if let Some(why) = lock.protects(now, bypass) {
            return Err(IndexError::Locked(format!(
                "{bucket}/{key} version {version_id}: {why}"
            )));
        }
    }
    let was_latest: bool = flag(&row, "is_latest")?;
    let delete_marker: bool = flag(&row, "delete_marker")?;
    let mut ids: Vec<String> = sqlx::query_scalar(
        "SELECT backend_id FROM object_streams \
         WHERE bucket = $1 AND object_key = $2 AND version_id = $3 ORDER BY seq",
    )
    .bind(bucket)
    .bind(key)
    .bind(version_id)
    .fetch_all(&mut *conn)
    .await?;
    let gone = sqlx::query(
        "DELETE FROM objects WHERE bucket = $1 AND object_key = $2 AND version_id = $3 \
         RETURNING manifest_id, lock_record_id, tag_record_id",
    )
    .bind(bucket)
    .bind(key)
    .bind(version_id)
    .fetch_one(&mut *conn)
    .await?;
    ids.extend(gone.try_get::<Option<String>, _>("manifest_id")?);
    ids.extend(gone.try_get::<Option<String>, _>("lock_record_id")?);
    ids.extend(gone.try_get::<Option<String>, _>("tag_record_id")?);
    Ok(Some(Removed {
        ids,
        was_latest,
        delete_marker,
    }))
}

/// A version row removed by [`remove_version_row`].
pub(crate) struct Removed {
    pub ids: Vec<String>,
    pub was_latest: bool,
    pub delete_marker: bool,
}

/// Makes the newest remaining version of a key its latest (after the latest was removed).
pub(crate) async fn promote_newest(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
) -> Result<(), IndexError> {
    sqlx::query(
        "UPDATE objects SET is_latest = 1 WHERE bucket = $1 AND object_key = $2 AND seq = \
         (SELECT MAX(seq) FROM objects WHERE bucket = $1 AND object_key = $2)",
    )
    .bind(bucket)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn lock_from_row(row: &AnyRow) -> Result<ObjectLock, IndexError> {
    let mode: Option<String> = row.try_get("lock_mode")?;
    let until: Option<i64> = row.try_get("lock_until_ms")?;
    let retention = match (mode, until) {
        (Some(m), Some(u)) => Some((
            LockMode::parse(&m)
                .ok_or_else(|| IndexError::Corrupt(format!("stored lock mode {m:?}")))?,
            u,
        )),
        _ => None,
    };
    Ok(ObjectLock {
        retention,
        legal_hold: flag(row, "legal_hold")?,
    })
}

/// Stream rows per `INSERT` (12 values each: within SQLite's and PostgreSQL's limits on bound
/// values).
const STREAM_ROWS: usize = 512;

/// Marks the key's current latest version noncurrent (arguments: bucket, key).
const UNSET_LATEST: &str =
    "UPDATE objects SET is_latest = 0 WHERE bucket = $1 AND object_key = $2 AND is_latest = 1";

/// Inserts a version row as the latest ([`bind_object`]'s 16 arguments). Its `seq`, after the
/// key's newest version, is computed in the INSERT itself (one round trip fewer on every write;
/// the key is locked by the write's transaction).
const INSERT_OBJECT: &str = "INSERT INTO objects (bucket, object_key, version_id, seq, is_latest, \
        delete_marker, size, etag, last_modified_ms, headers, user_metadata, checksums, \
        data_key_id, key_version, manifest_id, lock_mode, lock_until_ms, legal_hold) \
     VALUES ($1, $2, $3, \
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM objects WHERE bucket = $1 AND object_key = $2), \
             1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

/// `INSERT INTO object_streams … VALUES …` for `rows` stream rows of twelve values each
/// ([`bind_streams`]), numbered from `$first` or anonymous ([`value_rows`]).
fn insert_streams_text(rows: usize, first: Option<usize>) -> String {
    format!(
        "INSERT INTO object_streams (bucket, object_key, version_id, seq, part_number, backend_id, \
         header, plaintext_len, md5_hex, checksums, inline_data, inline_pending) VALUES {}",
        value_rows(rows, 12, first)
    )
}

type Query<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// [`INSERT_OBJECT`]'s arguments.
fn bind_object<'q>(q: Query<'q>, rec: &'q ObjectRecord) -> Result<Query<'q>, IndexError> {
    let (mode, until) = match rec.lock.retention {
        Some((m, u)) => (Some(m.as_str()), Some(u)),
        None => (None, None),
    };
    Ok(q.bind(&rec.bucket)
        .bind(&rec.key)
        .bind(&rec.version_id)
        .bind(i64::from(rec.delete_marker))
        .bind(to_i64(rec.size, "object size")?)
        .bind(&rec.etag)
        .bind(rec.last_modified_ms)
        .bind(map_to_json(&rec.headers)?)
        .bind(map_to_json(&rec.user_metadata)?)
        .bind(map_to_json(&rec.checksums)?)
        .bind(&rec.data_key_id)
        .bind(i64::from(rec.key_version))
        .bind(rec.manifest_id.as_deref())
        .bind(mode)
        .bind(until)
        .bind(i64::from(rec.lock.legal_hold)))
}

/// The values of version `rec`'s stream rows `streams`, the first of which is its stream number
/// `first_seq`.
fn bind_streams<'q>(
    mut q: Query<'q>,
    rec: &'q ObjectRecord,
    streams: &'q [StreamRecord],
    first_seq: usize,
) -> Result<Query<'q>, IndexError> {
    for (i, s) in streams.iter().enumerate() {
        q = q
            .bind(&rec.bucket)
            .bind(&rec.key)
            .bind(&rec.version_id)
            .bind(to_i64((first_seq + i) as u64, "stream index")?)
            .bind(i64::from(s.part_number))
            .bind(&s.backend_id)
            .bind(&s.header)
            .bind(to_i64(s.plaintext_len, "stream length")?)
            .bind(&s.md5_hex)
            .bind(stream_checksums_to_json(&s.checksums)?)
            .bind(s.inline.as_ref().map(|i| i.data.to_vec()))
            .bind(i64::from(s.inline.as_ref().is_some_and(|i| i.pending)));
    }
    Ok(q)
}

/// Most streams a version may have for its row to go as one script with them (the script's
/// values are named, see [`Dialect::first_value`]); a version with more (a multipart object of
/// many parts) sends its streams apart, with anonymous values.
const SCRIPT_STREAMS: usize = 16;

/// Inserts a version row and its streams as the latest version of its key (the previous latest
/// stays as a noncurrent version; the caller removed a version with the same id first).
///
/// Where the database runs scripts ([`Dialect::runs_scripts`]: SQLite), the three statements
/// (the old latest's flag, the row, its streams) go as one, one round trip to the connection's
/// thread instead of three, for a version of at most [`SCRIPT_STREAMS`] streams; the script of
/// a version with one stream (every small PUT) is built once.
pub(crate) async fn insert_object_row(
    conn: &mut AnyConnection,
    rec: &ObjectRecord,
) -> Result<(), IndexError> {
    let n = rec.streams.len();
    if Dialect::of_connection(conn).runs_scripts() && n <= SCRIPT_STREAMS {
        static ONE_STREAM: LazyLock<String> = LazyLock::new(|| script(1));
        fn script(streams: usize) -> String {
            let mut text = format!("{UNSET_LATEST}; {INSERT_OBJECT}");
            if streams > 0 {
                text.push_str("; ");
                text.push_str(&insert_streams_text(streams, Some(17)));
            }
            text
        }
        let built;
        let text = if n == 1 {
            ONE_STREAM.as_str()
        } else {
            built = script(n);
            built.as_str()
        };
        let q = bind_object(sqlx::query(text), rec)?;
        bind_streams(q, rec, &rec.streams, 0)?
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    sqlx::query(UNSET_LATEST)
        .bind(&rec.bucket)
        .bind(&rec.key)
        .execute(&mut *conn)
        .await?;
    bind_object(sqlx::query(INSERT_OBJECT), rec)?
        .execute(&mut *conn)
        .await?;
    insert_streams(conn, rec).await
}

/// Inserts the stream rows of version `rec` (in order, `seq` 0..), [`STREAM_ROWS`] per
/// statement, their values named as the database names many ([`Dialect::first_value`]); the
/// texts for one row and a full chunk stay prepared ([`audit::db::SizedText`]).
pub(crate) async fn insert_streams(
    conn: &mut AnyConnection,
    rec: &ObjectRecord,
) -> Result<(), IndexError> {
    static TEXTS: LazyLock<DialectTexts> = LazyLock::new(|| {
        DialectTexts::new(STREAM_ROWS, |dialect, n| {
            insert_streams_text(n, dialect.first_value())
        })
    });
    let texts = TEXTS.of(Dialect::of_connection(conn));
    for (chunk_no, chunk) in rec.streams.chunks(STREAM_ROWS).enumerate() {
        let (text, kept) = texts.for_rows(chunk.len());
        bind_streams(
            sqlx::query(text.as_ref()).persistent(kept),
            rec,
            chunk,
            chunk_no * STREAM_ROWS,
        )?
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Writes `rec` as the new latest version of its key: a `null` version replaces the key's
/// `null` version (refused with `Locked` while object lock protects that one at `now_ms`), any
/// other id is added. Returns the backend ids of what was replaced (candidates for garbage).
pub(crate) async fn write_version(
    conn: &mut AnyConnection,
    rec: &ObjectRecord,
    now_ms: i64,
) -> Result<Vec<String>, IndexError> {
    let old = remove_version_row(
        conn,
        &rec.bucket,
        &rec.key,
        &rec.version_id,
        Some((now_ms, false)),
    )
    .await?
    .map(|r| r.ids)
    .unwrap_or_default();
    insert_object_row(conn, rec).await?;
    Ok(old)
}

/// Whether an object, a manifest or a part still references `id` (the gc queue not counted).
pub(crate) async fn referenced_by_data(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<bool, IndexError> {
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM object_streams WHERE backend_id = $1) \
             OR EXISTS (SELECT 1 FROM objects WHERE manifest_id = $1) \
             OR EXISTS (SELECT 1 FROM objects WHERE lock_record_id = $1) \
             OR EXISTS (SELECT 1 FROM objects WHERE tag_record_id = $1) \
             OR EXISTS (SELECT 1 FROM bucket_settings WHERE record_id = $1) \
             OR EXISTS (SELECT 1 FROM parts WHERE backend_id = $1) AS used",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(flag(&row, "used")?)
}

/// Queues those of `candidates` that nothing references any more for garbage collection and
/// returns them (deduplicated, in first-seen order).
pub(crate) async fn queue_garbage(
    conn: &mut AnyConnection,
    candidates: Vec<String>,
) -> Result<Vec<String>, IndexError> {
    let mut seen = HashSet::new();
    let mut garbage = Vec::new();
    let queued_ms = now_ms();
    for id in candidates {
        if !seen.insert(id.clone()) || referenced_by_data(conn, &id).await? {
            continue;
        }
        sqlx::query("INSERT INTO gc_queue (backend_id, queued_ms) VALUES ($1, $2) ON CONFLICT (backend_id) DO NOTHING")
            .bind(&id)
            .bind(queued_ms)
            .execute(&mut *conn)
            .await?;
        garbage.push(id);
    }
    Ok(garbage)
}

fn object_from_rows(
    bucket: &str,
    key: &str,
    rows: &[AnyRow],
) -> Result<Option<ObjectRecord>, IndexError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let headers: String = first.try_get("headers")?;
    let user_metadata: String = first.try_get("user_metadata")?;
    let checksums: String = first.try_get("checksums")?;
    let mut rec = ObjectRecord {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: first.try_get("version_id")?,
        is_latest: flag(first, "is_latest")?,
        delete_marker: flag(first, "delete_marker")?,
        lock: lock_from_row(first)?,
        size: to_u64(first.try_get("size")?, "object size")?,
        etag: first.try_get("etag")?,
        last_modified_ms: first.try_get("last_modified_ms")?,
        headers: map_from_json(&headers, "headers")?,
        user_metadata: map_from_json(&user_metadata, "user metadata")?,
        checksums: map_from_json(&checksums, "checksums")?,
        data_key_id: first.try_get("data_key_id")?,
        key_version: to_u32(first.try_get("key_version")?, "key version")?,
        streams: Vec::with_capacity(rows.len()),
        manifest_id: first.try_get("manifest_id")?,
    };
    for row in rows {
        // LEFT JOIN: an object without streams yields one row of NULLs.
        let Some(backend_id) = row.try_get::<Option<String>, _>("backend_id")? else {
            continue;
        };
        rec.streams.push(StreamRecord {
            backend_id,
            part_number: to_u32(
                row.try_get::<Option<i64>, _>("part_number")?.unwrap_or(0),
                "part number",
            )?,
            header: row
                .try_get::<Option<Vec<u8>>, _>("header")?
                .unwrap_or_default(),
            plaintext_len: to_u64(
                row.try_get::<Option<i64>, _>("plaintext_len")?.unwrap_or(0),
                "stream length",
            )?,
            md5_hex: row
                .try_get::<Option<String>, _>("md5_hex")?
                .unwrap_or_default(),
            checksums: stream_checksums_from_json(row.try_get("stream_checksums")?)?,
            inline: match row.try_get::<Option<Vec<u8>>, _>("inline_data")? {
                Some(data) => Some(Inline {
                    data: data.into(),
                    pending: row
                        .try_get::<Option<i64>, _>("inline_pending")?
                        .unwrap_or(0)
                        != 0,
                }),
                None => None,
            },
        });
    }
    Ok(Some(rec))
}

/// A stream's checksums as stored: NULL when there are none (as every stream written before
/// the column existed).
pub(crate) fn stream_checksums_to_json(
    m: &BTreeMap<String, String>,
) -> Result<Option<String>, IndexError> {
    if m.is_empty() {
        return Ok(None);
    }
    map_to_json(m).map(Some)
}

/// The checksums of a stream row (NULL: none).
pub(crate) fn stream_checksums_from_json(
    v: Option<String>,
) -> Result<BTreeMap<String, String>, IndexError> {
    match v {
        Some(v) => map_from_json(&v, "stream checksums"),
        None => Ok(BTreeMap::new()),
    }
}

/// The columns of a version row with its streams (`o` joined with `s`).
const VERSION_SELECT: &str = "SELECT o.version_id, CAST(o.is_latest AS BIGINT) AS is_latest, CAST(o.delete_marker AS BIGINT) AS delete_marker, o.lock_mode, \
        o.lock_until_ms, CAST(o.legal_hold AS BIGINT) AS legal_hold, o.size, o.etag, o.last_modified_ms, o.headers, \
        o.user_metadata, o.checksums, o.data_key_id, o.key_version, o.manifest_id, \
        s.part_number, s.backend_id, s.header, s.plaintext_len, s.md5_hex, \
        s.checksums AS stream_checksums, s.inline_data, s.inline_pending \
     FROM objects o \
     LEFT JOIN object_streams s ON s.bucket = o.bucket AND s.object_key = o.object_key \
                               AND s.version_id = o.version_id";

/// The rows of a key's latest version (`$1` bucket, `$2` key). The latest version's id comes
/// from a subquery, so the version row is found by its primary key: one row, whose streams come
/// in `seq` order from theirs. With `o.is_latest = 1` in the WHERE, SQLite could not tell that
/// only one version matches and sorted the rows in a temporary B-tree on every GET (a sorter
/// allocated and freed per read).
static LATEST_VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{VERSION_SELECT} WHERE o.bucket = $1 AND o.object_key = $2 AND o.version_id = \
         (SELECT version_id FROM objects WHERE bucket = $1 AND object_key = $2 \
          AND is_latest = 1) \
         ORDER BY s.seq"
    )
});

/// What a version delete removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedVersion {
    /// backend ids now garbage (also queued in `gc_queue`)
    pub garbage: Vec<String>,
    /// the removed version was a delete marker
    pub delete_marker: bool,
}

impl Index {
    /// Writes a version (an object or a delete marker) as the latest of its key: a `null`
    /// version replaces the key's `null` version, any other id adds a version. Readers see the
    /// old state or the new one, never a mix. Returns the backend ids of the replaced `null`
    /// version that are now garbage (also queued in `gc_queue` in the same transaction).
    /// `NotFound` if the bucket does not exist; `Locked` if object lock protects the `null`
    /// version it would replace. Group-committed by the index writer: returns once the
    /// transaction holding it has committed.
    pub async fn put_object(&self, rec: &ObjectRecord) -> Result<Vec<String>, IndexError> {
        self.put_object_if(rec, None).await
    }

    /// `put_object` when `cond` holds over the key's current object, checked in the same
    /// transaction under the key's lock (`PreconditionFailed` / `NoCurrentObject` otherwise,
    /// and nothing is written).
    pub async fn put_object_if(
        &self,
        rec: &ObjectRecord,
        cond: Option<&Precondition>,
    ) -> Result<Vec<String>, IndexError> {
        Ok(self.put_object_audited(rec, cond, None).await?.0)
    }

    /// `put_object_if` with the request's audit `event` (see `audit::RequestAudit::
    /// event_for_change`) appended to the audit chain in the same transaction: the object and
    /// its event become durable together, with one COMMIT. Answers the garbage ids and the
    /// event's receipt. When the event cannot be appended nothing of the write's batch is
    /// committed ([`IndexError::Unavailable`]: fail closed); when the write fails, no event is
    /// appended for it.
    pub async fn put_object_audited(
        &self,
        rec: &ObjectRecord,
        cond: Option<&Precondition>,
        event: Option<audit::AuditEvent>,
    ) -> Result<(Vec<String>, Option<audit::Receipt>), IndexError> {
        let rec = Box::new(rec.clone());
        let cond = cond.cloned();
        let event = event.map(Box::new);
        self.writer
            .submit(|reply| Job::PutObject {
                rec,
                cond,
                event,
                reply,
            })
            .await
    }

    /// The current object under a key: its latest version unless that is a delete marker.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, IndexError> {
        Ok(self
            .get_version(bucket, key, None)
            .await?
            .filter(|r| !r.delete_marker))
    }

    /// One version of a key (delete markers included): `version_id` None is the latest.
    pub async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectRecord>, IndexError> {
        let rows = audit::db::timed(audit::db::DbOp::IndexGetVersion, async {
            self.rows_of_version(bucket, key, version_id).await
        })
        .await?;
        object_from_rows(bucket, key, &rows)
    }

    /// The rows (one per stream) of one version of a key: `version_id` None is the latest.
    async fn rows_of_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Vec<sqlx::any::AnyRow>, IndexError> {
        static ONE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "{VERSION_SELECT} WHERE o.bucket = $1 AND o.object_key = $2 \
                 AND o.version_id = $3 ORDER BY s.seq"
            )
        });
        let query = match version_id {
            None => sqlx::query(LATEST_VERSION.as_str()).bind(bucket).bind(key),
            Some(v) => sqlx::query(ONE.as_str()).bind(bucket).bind(key).bind(v),
        };
        match &self.kept {
            Some(kept) => kept.fetch_all(query).await,
            None => Ok(query.fetch_all(&self.read).await?),
        }
    }

    /// Deletes the `null` version of a key (DeleteObject in a bucket that never had
    /// versioning). None if it did not exist; otherwise the backend ids now garbage.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<String>>, IndexError> {
        Ok(self
            .delete_version(bucket, key, super::NULL_VERSION, false)
            .await?
            .map(|d| d.garbage))
    }

    /// Deletes one version (an object version or a delete marker) for good; if it was the
    /// latest, the newest remaining version becomes the latest. None if there is no such
    /// version. `Locked` while object lock protects it (`bypass`: a GOVERNANCE retention does
    /// not). Group-committed like `put_object`.
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        bypass_governance: bool,
    ) -> Result<Option<DeletedVersion>, IndexError> {
        self.delete_version_matching(bucket, key, version_id, bypass_governance, None)
            .await
    }

    /// `delete_version` when `cond` holds over that version, checked in the same transaction
    /// under the key's lock: None (nothing deleted) when the version is not there,
    /// `PreconditionFailed` when it does not match.
    pub async fn delete_version_matching(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        bypass_governance: bool,
        cond: Option<&DeleteCondition>,
    ) -> Result<Option<DeletedVersion>, IndexError> {
        let (bucket, key, version_id) =
            (bucket.to_string(), key.to_string(), version_id.to_string());
        let cond = cond.cloned();
        self.writer
            .submit(|reply| Job::DeleteVersion {
                bucket,
                key,
                version_id,
                bypass_governance,
                cond,
                reply,
            })
            .await
    }

    /// Sets the retention and legal hold of one version, under S3's rules: a COMPLIANCE
    /// retention in force may only be kept or extended (never shortened, removed or turned
    /// into GOVERNANCE), a GOVERNANCE retention in force may be shortened or removed only with
    /// `bypass_governance`. `record_id`: the sealed lock record of this change (it replaces the
    /// version's previous one). Returns the lock before the change and the backend ids now
    /// garbage (the previous lock record, also queued). `NoSuchVersion` / `Locked`.
    pub async fn set_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        lock: ObjectLock,
        bypass_governance: bool,
        record_id: Option<&str>,
    ) -> Result<(ObjectLock, Vec<String>), IndexError> {
        retrying!({
            self.set_lock_once(bucket, key, version_id, lock, bypass_governance, record_id)
        })
    }

    async fn set_lock_once(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        lock: ObjectLock,
        bypass_governance: bool,
        record_id: Option<&str>,
    ) -> Result<(ObjectLock, Vec<String>), IndexError> {
        let mut tx = self.begin_write(self.locks().object(bucket, key)).await?;
        let row = match version_id {
            Some(v) => {
                sqlx::query(
                    "SELECT version_id, CAST(delete_marker AS BIGINT) AS delete_marker, lock_mode, lock_until_ms, CAST(legal_hold AS BIGINT) AS legal_hold, \
                        lock_record_id FROM objects \
                 WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
                )
                .bind(bucket)
                .bind(key)
                .bind(v)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT version_id, CAST(delete_marker AS BIGINT) AS delete_marker, lock_mode, lock_until_ms, CAST(legal_hold AS BIGINT) AS legal_hold, \
                        lock_record_id FROM objects \
                 WHERE bucket = $1 AND object_key = $2 AND is_latest = 1",
                )
                .bind(bucket)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let Some(row) = row else {
            return Err(IndexError::NoSuchVersion(format!("{bucket}/{key}")));
        };
        if flag(&row, "delete_marker")? {
            return Err(IndexError::NoSuchVersion(format!(
                "{bucket}/{key} is a delete marker"
            )));
        }
        let vid: String = row.try_get("version_id")?;
        let old = lock_from_row(&row)?;
        check_lock_change(&old, &lock, now_ms(), bypass_governance)
            .map_err(|why| IndexError::Locked(format!("{bucket}/{key} version {vid}: {why}")))?;
        let (mode, until) = match lock.retention {
            Some((m, u)) => (Some(m.as_str()), Some(u)),
            None => (None, None),
        };
        let old_record: Option<String> = row.try_get("lock_record_id")?;
        sqlx::query(
            "UPDATE objects SET lock_mode = $4, lock_until_ms = $5, legal_hold = $6, \
                                lock_record_id = COALESCE($7, lock_record_id) \
             WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
        )
        .bind(bucket)
        .bind(key)
        .bind(&vid)
        .bind(mode)
        .bind(until)
        .bind(i64::from(lock.legal_hold))
        .bind(record_id)
        .execute(&mut *tx)
        .await?;
        let garbage = match (record_id, old_record) {
            (Some(_), Some(old)) => queue_garbage(&mut tx, vec![old]).await?,
            _ => Vec::new(),
        };
        tx.commit().await?;
        Ok((old, garbage))
    }
}

/// Whether a version's lock may change from `old` to `new` at `now` (S3's rules; the legal
/// hold may always be set or cleared by whoever may change it).
pub fn check_lock_change(
    old: &ObjectLock,
    new: &ObjectLock,
    now: i64,
    bypass: bool,
) -> Result<(), &'static str> {
    match (old.retention, new.retention) {
        (Some((LockMode::Compliance, until)), next) if until > now => match next {
            Some((LockMode::Compliance, u)) if u >= until => Ok(()),
            _ => Err("a COMPLIANCE retention in force can only be extended"),
        },
        (Some((LockMode::Governance, until)), next) if until > now && !bypass => match next {
            Some((LockMode::Governance, u)) if u >= until => Ok(()),
            _ => Err(
                "a GOVERNANCE retention in force can only be shortened, removed or changed to COMPLIANCE with x-amz-bypass-governance-retention",
            ),
        },
        _ => Ok(()),
    }
}

/// The statements of `Index::put_object_if`, inside the writer's transaction.
pub(crate) async fn put_object_in(
    conn: &mut AnyConnection,
    rec: &ObjectRecord,
    cond: Option<&Precondition>,
) -> Result<Vec<String>, IndexError> {
    // A missing bucket: the row's foreign key refuses the INSERT (below); a conditional write
    // checks first, so that it answers NoSuchBucket rather than a failed condition.
    if let Some(cond) = cond {
        require_bucket(conn, &rec.bucket).await?;
        match cond {
            Precondition::Write(c) => check_condition(conn, &rec.bucket, &rec.key, Some(c)).await?,
            Precondition::Delete(c) => {
                let latest = version_facts(conn, &rec.bucket, &rec.key, None).await?;
                if !c.check(latest.as_ref())? {
                    return Err(IndexError::NothingToDelete(rec.key.clone()));
                }
            }
        }
    }
    let old = match write_version(conn, rec, now_ms()).await {
        Err(IndexError::Database(sqlx::Error::Database(e))) if e.is_foreign_key_violation() => {
            return Err(IndexError::NotFound(rec.bucket.clone()));
        }
        other => other?,
    };
    queue_garbage(conn, old).await
}

/// Checks a conditional write's `cond` against the key's current object, read in the write's
/// own transaction (the key is locked: nothing changes it until the commit).
pub(crate) async fn check_condition(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
    cond: Option<&WriteCondition>,
) -> Result<(), IndexError> {
    let Some(cond) = cond.filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    // the current object: the latest version unless that is a delete marker
    let current = version_facts(conn, bucket, key, None)
        .await?
        .filter(|v| !v.delete_marker);
    cond.check(key, current.as_ref().map(|v| v.etag.as_str()))
}

/// What a conditional write or delete is checked against: the version `version_id`, else the
/// key's latest (a delete marker too); None if there is none. Read in the change's transaction.
pub(crate) async fn version_facts(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<VersionFacts>, IndexError> {
    const COLS: &str = "SELECT etag, CAST(delete_marker AS BIGINT) AS delete_marker, \
                        last_modified_ms, size FROM objects WHERE bucket = $1 AND object_key = $2";
    let row = match version_id {
        Some(v) => {
            sqlx::query(&format!("{COLS} AND version_id = $3"))
                .bind(bucket)
                .bind(key)
                .bind(v)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => {
            sqlx::query(&format!("{COLS} AND is_latest = 1"))
                .bind(bucket)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(VersionFacts {
        etag: row.try_get("etag")?,
        delete_marker: flag(&row, "delete_marker")?,
        last_modified_ms: row.try_get("last_modified_ms")?,
        size: to_u64(row.try_get("size")?, "object size")?,
    }))
}

/// The statements of `Index::delete_version_matching`, inside the writer's transaction: with a
/// condition, nothing is deleted (`Ok(None)`) when the version is not there, and
/// `PreconditionFailed` when it does not match.
pub(crate) async fn delete_version_in(
    conn: &mut AnyConnection,
    bucket: &str,
    key: &str,
    version_id: &str,
    bypass: bool,
    cond: Option<&DeleteCondition>,
) -> Result<Option<DeletedVersion>, IndexError> {
    if let Some(c) = cond.filter(|c| !c.is_empty()) {
        let target = version_facts(conn, bucket, key, Some(version_id)).await?;
        if !c.check(target.as_ref())? {
            return Ok(None);
        }
    }
    let Some(removed) =
        remove_version_row(conn, bucket, key, version_id, Some((now_ms(), bypass))).await?
    else {
        return Ok(None);
    };
    if removed.was_latest {
        promote_newest(conn, bucket, key).await?;
    }
    Ok(Some(DeletedVersion {
        garbage: queue_garbage(conn, removed.ids).await?,
        delete_marker: removed.delete_marker,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading a key's latest version sorts nothing on SQLite: the version row is found by its
    /// primary key and its streams come in `seq` order (no temporary B-tree on every GET).
    #[tokio::test]
    async fn the_latest_version_read_needs_no_sort_on_sqlite() {
        let ix = Index::open("sqlite::memory:").await.unwrap();
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", *LATEST_VERSION))
            .bind("b")
            .bind("k")
            .fetch_all(ix.write_pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>("detail").unwrap())
            .collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("sqlite_autoindex_objects_1")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:?}");
        ix.close().await;
    }
}
