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
use crate::index::{IndexError, TAGGING_HEADER, now_ms};
use crate::request::RequestCtx;

/// Header of a sealed record's metadata naming what kind of record it is (tag records say
/// `tags`; lock records carry no such header).
pub const RECORD_KIND_HEADER: &str = "x-vaultgate-record";
/// [`RECORD_KIND_HEADER`] value of a tag record.
pub const RECORD_KIND_TAGS: &str = "tags";

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

    /// Sets or removes a bucket setting, after the request's audit event (fail closed).
    pub async fn set_bucket_setting(
        &self,
        bucket: &str,
        name: &str,
        value: Option<&str>,
        audit: Option<&RequestCtx>,
    ) -> Result<()> {
        audit::before_change(audit, 0, None).await?;
        self.index
            .set_bucket_setting(bucket, name, value)
            .await
            .map_err(|e| not_found_bucket(e, bucket))
    }
}

fn not_found_bucket(e: IndexError, bucket: &str) -> Error {
    match e {
        IndexError::NotFound(_) => Error::NoSuchBucket(bucket.to_owned()),
        e => e.into(),
    }
}
