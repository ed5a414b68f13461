//! Tags and bucket settings in the object layer. A version's tag set changes through a sealed
//! tag record (an empty stream whose metadata names the version, says `lock_record` like the
//! lock records so that no reader takes it for an object, and carries the new tag set in its
//! headers beside [`RECORD_KIND_HEADER`]` = tags`), so that `vaultgate reindex` restores tags
//! as last changed; then the request's audit event (fail closed), then the index commit.

use std::collections::BTreeMap;

use keys::meta::ObjectMeta;

use super::Store;
use super::write::Uncommitted;
use crate::audit;
use crate::error::{Error, Result};
use crate::index::{IndexError, SETTING_STATE, TAGGING_HEADER, now_ms};
use crate::request::RequestCtx;

/// Header of a sealed record's metadata naming what kind of record it is (tag records say
/// `tags`; lock records carry no such header).
pub const RECORD_KIND_HEADER: &str = "x-vaultgate-record";
/// [`RECORD_KIND_HEADER`] value of a tag record.
pub const RECORD_KIND_TAGS: &str = "tags";
/// [`RECORD_KIND_HEADER`] value of a bucket record (a bucket setting's value).
pub const RECORD_KIND_BUCKET: &str = "bucket-setting";
/// Header of a bucket record naming the setting.
pub const RECORD_SETTING_HEADER: &str = "x-vaultgate-setting";
/// Header of a bucket record holding the setting's value.
pub const RECORD_VALUE_HEADER: &str = "x-vaultgate-value";

impl Store {
    /// PutObjectTagging / DeleteObjectTagging: the new tag set (`tagging`: URL-encoded, empty
    /// to remove every tag) of one version of `key` (not a delete marker).
    pub async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        tagging: &str,
        audit: Option<&RequestCtx>,
    ) -> Result<()> {
        let skey = self.keyring.sealing_key(bucket).await?;
        let mut headers = BTreeMap::new();
        headers.insert(RECORD_KIND_HEADER.to_owned(), RECORD_KIND_TAGS.to_owned());
        headers.insert(TAGGING_HEADER.to_owned(), tagging.to_owned());
        let meta = ObjectMeta {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            last_modified_ms: now_ms(),
            lock_record: true,
            version_id: (version_id != crate::index::NULL_VERSION).then(|| version_id.to_owned()),
            headers,
            ..Default::default()
        };
        let sealed = self.seal_empty(&skey, meta).await?;
        let record_id = sealed.backend_id.clone();
        let guard = Uncommitted::new(self.backend.clone(), record_id.clone());
        if let Err(e) = audit::before_change(audit, 0, None).await {
            guard.discard().await;
            return Err(e);
        }
        match self
            .index
            .set_object_tags(bucket, key, version_id, Some(tagging), &record_id)
            .await
        {
            Ok(garbage) => {
                guard.committed();
                self.collect(garbage).await;
                Ok(())
            }
            Err(e) => {
                guard.discard().await;
                Err(match e {
                    IndexError::NoSuchVersion(_) => Error::NoSuchKey(key.to_owned()),
                    e => e.into(),
                })
            }
        }
    }

    /// A bucket setting (`NoSuchBucket` if the bucket does not exist).
    pub async fn bucket_setting(&self, bucket: &str, name: &str) -> Result<Option<String>> {
        self.index
            .bucket_setting(bucket, name)
            .await
            .map_err(|e| not_found_bucket(e, bucket))
    }

    /// Sets or removes a bucket setting: a new value is first sealed as a bucket record (an
    /// empty stream whose metadata names the bucket, no key, and carries the setting's name and
    /// value), so that `vaultgate reindex` restores it; then the request's audit event (fail
    /// closed), then the index commit, which replaces the setting's previous record.
    pub async fn set_bucket_setting(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&str>,
        audit: Option<&RequestCtx>,
    ) -> Result<()> {
        let guard = match value {
            Some(v) => Some(self.seal_bucket_record(bucket, name, v).await?),
            None => None,
        };
        if let Err(e) = audit::before_change(audit, 0, None).await {
            if let Some((g, _)) = guard {
                g.discard().await;
            }
            return Err(e);
        }
        let record_id = guard.as_ref().map(|(_, id)| id.clone());
        match self
            .index
            .set_bucket_setting(bucket, name, value, record_id.as_deref())
            .await
        {
            Ok(garbage) => {
                if let Some((g, _)) = guard {
                    g.committed();
                }
                self.collect(garbage).await;
                Ok(())
            }
            Err(e) => {
                if let Some((g, _)) = guard {
                    g.discard().await;
                }
                Err(not_found_bucket(e, bucket))
            }
        }
    }

    /// Seals a bucket record (setting `name` = `value`) into the backend.
    async fn seal_bucket_record(
        &self,
        bucket: &str,
        name: &str,
        value: &str,
    ) -> Result<(Uncommitted, String)> {
        let skey = self.keyring.sealing_key(bucket).await?;
        let mut headers = BTreeMap::new();
        headers.insert(RECORD_KIND_HEADER.to_owned(), RECORD_KIND_BUCKET.to_owned());
        headers.insert(RECORD_SETTING_HEADER.to_owned(), name.to_owned());
        headers.insert(RECORD_VALUE_HEADER.to_owned(), value.to_owned());
        let meta = ObjectMeta {
            bucket: bucket.to_owned(),
            last_modified_ms: now_ms(),
            lock_record: true,
            headers,
            ..Default::default()
        };
        let sealed = self.seal_empty(&skey, meta).await?;
        let id = sealed.backend_id.clone();
        Ok((Uncommitted::new(self.backend.clone(), id.clone()), id))
    }

    /// Records the bucket's versioning and object lock state as last set (after
    /// PutBucketVersioning / PutObjectLockConfiguration changed it; their audit event is
    /// already recorded), so that reindex restores a Suspended state and a default retention.
    /// A failure is logged: reindex then infers the state from the versions, as before.
    pub async fn record_bucket_state(&self, bucket: &str) {
        let state = match self.index.bucket_state(bucket).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%bucket, error = %e, "bucket state not recorded");
                return;
            }
        };
        let value = serde_json::json!({
            "versioning": state.versioning.as_status(),
            "object_lock": state.object_lock,
            "default_mode": state.default_retention.map(|d| d.mode.as_str()),
            "default_days": state.default_retention.and_then(|d| d.days),
            "default_years": state.default_retention.and_then(|d| d.years),
        })
        .to_string();
        if let Err(e) = self
            .set_bucket_setting(bucket, SETTING_STATE, Some(&value), None)
            .await
        {
            tracing::warn!(%bucket, error = %e, "bucket state not recorded");
        }
    }
}

fn not_found_bucket(e: IndexError, bucket: &str) -> Error {
    match e {
        IndexError::NotFound(_) => Error::NoSuchBucket(bucket.to_owned()),
        e => e.into(),
    }
}
