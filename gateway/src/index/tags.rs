//! Index operations on tags and bucket settings: the tag set of one version (kept in its
//! `headers` map under [`TAGGING_HEADER`], the sealed tag record that last changed it in
//! `tag_record_id`), and per-bucket configuration documents (`bucket_settings`: bucket tags,
//! lifecycle rules, CORS rules), stored as JSON of the gateway's own types, and their cache,
//! kept true to other instances' writes by [`Index::follow_other_instances`].

use audit::db::flag;
use sqlx::Row;

use super::locks::retrying;
use super::objects::queue_garbage;
use super::{Index, IndexError, map_from_json, map_to_json, now_ms};

/// The name under which a version's tag set is kept in its headers map: the URL-encoded tag
/// set, as the `x-amz-tagging` request header carries it (never sent back as a header).
pub const TAGGING_HEADER: &str = "x-amz-tagging";

/// Name of the bucket setting holding the bucket's tag set.
pub const SETTING_TAGGING: &str = "tagging";
/// Name of the bucket setting holding the bucket's lifecycle configuration.
pub const SETTING_LIFECYCLE: &str = "lifecycle";
/// Name of the bucket setting holding the bucket's CORS configuration.
pub const SETTING_CORS: &str = "cors";
/// Name of the bucket setting holding the bucket's versioning and object lock state as last
/// set (a copy of the `buckets` columns, kept for its sealed record).
pub const SETTING_STATE: &str = "state";

impl Index {
    /// Replaces the tag set of one version (`tagging`: the URL-encoded tag set, None or empty
    /// removes it) and makes `record_id` (the sealed tag record of this change) the version's
    /// tag record; the previous record becomes garbage (queued, returned). `NoSuchVersion` if
    /// the version does not exist or is a delete marker.
    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        tagging: Option<&str>,
        record_id: &str,
    ) -> Result<Vec<String>, IndexError> {
        retrying!(self.set_object_tags_once(bucket, key, version_id, tagging, record_id))
    }

    async fn set_object_tags_once(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        tagging: Option<&str>,
        record_id: &str,
    ) -> Result<Vec<String>, IndexError> {
        let mut tx = self.begin_write(self.locks().object(bucket, key)).await?;
        let row = sqlx::query(
            "SELECT CAST(delete_marker AS BIGINT) AS delete_marker, headers, tag_record_id FROM objects \
             WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
        )
        .bind(bucket)
        .bind(key)
        .bind(version_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(IndexError::NoSuchVersion(format!("{bucket}/{key}")));
        };
        if flag(&row, "delete_marker")? {
            return Err(IndexError::NoSuchVersion(format!(
                "{bucket}/{key} is a delete marker"
            )));
        }
        let mut headers = map_from_json(&row.try_get::<String, _>("headers")?, "headers")?;
        match tagging.filter(|t| !t.is_empty()) {
            Some(t) => headers.insert(TAGGING_HEADER.to_owned(), t.to_owned()),
            None => headers.remove(TAGGING_HEADER),
        };
        let old: Option<String> = row.try_get("tag_record_id")?;
        sqlx::query(
            "UPDATE objects SET headers = $4, tag_record_id = $5 \
             WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
        )
        .bind(bucket)
        .bind(key)
        .bind(version_id)
        .bind(map_to_json(&headers)?)
        .bind(record_id)
        .execute(&mut *tx)
        .await?;
        let garbage = match old {
            Some(old) => queue_garbage(&mut tx, vec![old]).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        Ok(garbage)
    }

    /// A bucket setting (None when not set). `NotFound` if the bucket does not exist.
    pub async fn bucket_setting(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<Option<String>, IndexError> {
        let key = (bucket.to_owned(), name.to_owned());
        if let Some(hit) = self.settings.get(&key) {
            return Ok(hit);
        }
        let generation = self.settings.generation();
        if !self.bucket_exists(bucket).await? {
            return Err(IndexError::NotFound(bucket.to_owned()));
        }
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM bucket_settings WHERE bucket = $1 AND name = $2")
                .bind(bucket)
                .bind(name)
                .fetch_optional(&self.read)
                .await?;
        self.settings.put(generation, key, value.clone());
        Ok(value)
    }

    /// Sets (`Some`) or removes (`None`) a bucket setting; `record_id`: the sealed bucket
    /// record carrying the new value. Returns the backend ids now garbage (the setting's
    /// previous record, also queued). `NotFound` if the bucket does not exist.
    pub async fn set_bucket_setting(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&str>,
        record_id: Option<&str>,
    ) -> Result<Vec<String>, IndexError> {
        let garbage = retrying!(self.set_bucket_setting_once(bucket, name, value, record_id))?;
        self.settings.clear();
        Ok(garbage)
    }

    async fn set_bucket_setting_once(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&str>,
        record_id: Option<&str>,
    ) -> Result<Vec<String>, IndexError> {
        let locks = self.locks().bucket_shared(bucket).setting(bucket, name);
        let mut tx = self.begin_write(locks).await?;
        super::objects::require_bucket(&mut tx, bucket).await?;
        let old: Option<Option<String>> = sqlx::query_scalar(
            "SELECT record_id FROM bucket_settings WHERE bucket = $1 AND name = $2",
        )
        .bind(bucket)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO bucket_settings (bucket, name, value, updated_ms, record_id) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value, \
                         updated_ms = excluded.updated_ms, record_id = excluded.record_id",
                )
                .bind(bucket)
                .bind(name)
                .bind(v)
                .bind(now_ms())
                .bind(record_id)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM bucket_settings WHERE bucket = $1 AND name = $2")
                    .bind(bucket)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let garbage = match old.flatten() {
            Some(id) if Some(id.as_str()) != record_id => queue_garbage(&mut tx, vec![id]).await?,
            _ => Vec::new(),
        };
        tx.commit().await?;
        Ok(garbage)
    }

    /// Every bucket that has the setting `name`, with its value (bucket order).
    pub async fn buckets_with_setting(
        &self,
        name: &str,
    ) -> Result<Vec<(String, String)>, IndexError> {
        let rows = sqlx::query(
            "SELECT bucket, value FROM bucket_settings WHERE name = $1 ORDER BY bucket",
        )
        .bind(name)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("bucket")?, r.try_get("value")?)))
            .collect()
    }
}

/// Most bucket settings kept in memory (the cache starts over when full).
const SETTINGS_CACHED: usize = 10_000;

/// How often a serving gateway reads the database's settings write counter
/// ([`Index::follow_other_instances`]).
pub use audit::db::FOLLOW_INTERVAL;

/// The bucket settings cache of [`Index::bucket_setting`]. A value read from the database is
/// kept only if no write cleared the cache while it was being read (the generation did not
/// move), so a reader racing a write never keeps the old value. While `bypass` is set (the
/// write counter of other instances' writes cannot be read) nothing is served from memory.
#[derive(Debug, Default)]
pub(crate) struct SettingsCache {
    generation: std::sync::atomic::AtomicU64,
    cached: std::sync::Mutex<Cached>,
    bypass: std::sync::atomic::AtomicBool,
}

/// What [`SettingsCache`] holds, under one lock, one generation and one bypass.
#[derive(Debug, Default)]
struct Cached {
    /// (bucket, setting name) → the setting's value, `None` when it is not set
    settings: std::collections::HashMap<(String, String), Option<String>>,
    /// versioning and object lock state of existing buckets ([`Index::bucket_state`], read by
    /// every object request)
    states: std::collections::HashMap<String, super::BucketState>,
}

/// Inserts into one of the cache's maps, which starts over when full.
fn insert_bounded<K: std::hash::Hash + Eq, V>(
    map: &mut std::collections::HashMap<K, V>,
    key: K,
    value: V,
) {
    if map.len() >= SETTINGS_CACHED {
        map.clear();
    }
    map.insert(key, value);
}

impl Index {
    /// Keeps the bucket settings cache true to writes made by other processes on the same
    /// database (other gateway instances on one PostgreSQL) through the write counter
    /// `idx_settings_generation`, advanced by triggers on `bucket_settings` and on updates and
    /// deletes of `buckets` ([`audit::db::follow_counter`]); while it cannot be read the cache is
    /// bypassed.
    /// Needs a Tokio runtime.
    pub fn follow_other_instances(&self, every: std::time::Duration) {
        audit::db::follow_counter(
            self.read.clone(),
            "SELECT value FROM idx_settings_generation WHERE id = 1",
            "bucket settings write counter",
            every,
            std::sync::Arc::downgrade(&self.settings),
        );
    }
}

/// The counter moved: clear; unreadable: bypass (nothing served from memory).
impl audit::db::CounterFollower for SettingsCache {
    fn stale(&self) {
        self.clear();
    }

    fn set_unreadable(&self, unreadable: bool) -> bool {
        self.set_bypass(unreadable)
    }
}

impl SettingsCache {
    fn cached(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cache, unless it is bypassed.
    fn served(&self) -> Option<std::sync::MutexGuard<'_, Cached>> {
        if self.bypass.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        Some(self.cached())
    }

    fn get(&self, key: &(String, String)) -> Option<Option<String>> {
        self.served()?.settings.get(key).cloned()
    }

    pub(crate) fn state(&self, bucket: &str) -> Option<super::BucketState> {
        self.served()?.states.get(bucket).copied()
    }

    /// Sets or lifts the bypass; returns whether it was set before.
    fn set_bypass(&self, on: bool) -> bool {
        self.bypass.swap(on, std::sync::atomic::Ordering::AcqRel)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keeps what was read at `generation`, unless a write cleared the cache meanwhile or it is
    /// bypassed.
    fn keep(&self, generation: u64, keep: impl FnOnce(&mut Cached)) {
        let mut cached = self.cached();
        if self.generation() != generation || self.bypass.load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        keep(&mut cached);
    }

    fn put(&self, generation: u64, key: (String, String), value: Option<String>) {
        self.keep(generation, |c| insert_bounded(&mut c.settings, key, value));
    }

    /// Keeps a bucket's state read at `generation`.
    pub(crate) fn put_state(&self, generation: u64, bucket: &str, state: super::BucketState) {
        self.keep(generation, |c| {
            insert_bounded(&mut c.states, bucket.to_owned(), state)
        });
    }

    /// After a write of a setting, of a bucket's versioning or object lock state, or a bucket
    /// delete (once committed).
    pub(crate) fn clear(&self) {
        let mut cached = self.cached();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        cached.settings.clear();
        cached.states.clear();
    }
}
