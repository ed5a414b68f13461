//! Buckets, uploads and listings: the index reads and the changes that write no object data,
//! for the S3 handlers (which reach the index only through the object layer). Deleting an
//! object also collects the streams it leaves behind.

use super::Store;
use crate::index::{
    BucketRecord, BucketState, DefaultRetention, DeleteCondition, DeletedVersion, IndexError,
    ListPage, ListQuery, ObjectRecord, PartRecord, UploadRecord, VersionPage, VersionQuery,
    Versioning,
};

type IndexResult<T> = std::result::Result<T, IndexError>;

impl Store {
    /// Every bucket, by name.
    pub async fn list_buckets(&self) -> IndexResult<Vec<BucketRecord>> {
        self.index.list_buckets().await
    }

    /// One bucket.
    pub async fn get_bucket(&self, name: &str) -> IndexResult<Option<BucketRecord>> {
        self.index.get_bucket(name).await
    }

    /// CreateBucket: the bucket and its tenant in one transaction (`AlreadyExists` when it
    /// does); with `object_lock`, versioning is Enabled for good.
    pub async fn create_bucket(
        &self,
        name: &str,
        owner: &str,
        tenant: &str,
        object_lock: bool,
    ) -> IndexResult<()> {
        self.index
            .create_bucket_in_tenant(name, owner, tenant, object_lock)
            .await
    }

    /// Whether DeleteBucket could go through now (`NotFound`, `NotEmpty`).
    pub async fn check_bucket_deletable(&self, name: &str) -> IndexResult<()> {
        self.index.check_bucket_deletable(name).await
    }

    /// DeleteBucket (checked again inside its transaction); the parts of uploads still in
    /// progress are collected.
    pub async fn delete_bucket(&self, name: &str) -> IndexResult<()> {
        let garbage = self.index.delete_bucket(name).await?;
        self.collect(garbage).await;
        Ok(())
    }

    /// A page of ListObjects / ListObjectsV2.
    pub async fn list_objects(&self, q: &ListQuery) -> IndexResult<ListPage> {
        self.index.list_objects(q).await
    }

    /// The current object under a key.
    pub async fn get_object(&self, bucket: &str, key: &str) -> IndexResult<Option<ObjectRecord>> {
        self.index.get_object(bucket, key).await
    }

    /// One version of a key, delete markers included (`None`: the latest).
    pub async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> IndexResult<Option<ObjectRecord>> {
        self.index.get_version(bucket, key, version_id).await
    }

    /// Deletes one version for good (DeleteObject in an unversioned bucket deletes the `null`
    /// version; with a versionId, that version) and collects its streams. None if there was no
    /// such version; `Locked` while object lock protects it.
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        bypass_governance: bool,
    ) -> IndexResult<Option<DeletedVersion>> {
        self.delete_version_matching(bucket, key, version_id, bypass_governance, None)
            .await
    }

    /// `delete_version` when `cond` holds over that version (checked by the index in the
    /// delete's transaction): None when the version is not there.
    pub async fn delete_version_matching(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        bypass_governance: bool,
        cond: Option<&DeleteCondition>,
    ) -> IndexResult<Option<DeletedVersion>> {
        let deleted = self
            .index
            .delete_version_matching(bucket, key, version_id, bypass_governance, cond)
            .await?;
        if let Some(d) = &deleted {
            self.collect(d.garbage.clone()).await;
        }
        Ok(deleted)
    }

    /// A page of ListObjectVersions.
    pub async fn list_versions(&self, q: &VersionQuery) -> IndexResult<VersionPage> {
        self.index.list_versions(q).await
    }

    /// Versioning and object lock settings of a bucket.
    pub async fn bucket_state(&self, name: &str) -> IndexResult<Option<BucketState>> {
        self.index.bucket_state(name).await
    }

    /// PutBucketVersioning.
    pub async fn set_versioning(&self, name: &str, state: Versioning) -> IndexResult<()> {
        self.index.set_versioning(name, state).await
    }

    /// PutObjectLockConfiguration.
    pub async fn set_object_lock(
        &self,
        name: &str,
        default_retention: Option<DefaultRetention>,
    ) -> IndexResult<()> {
        self.index.set_object_lock(name, default_retention).await
    }

    /// One open multipart upload.
    pub async fn get_upload(
        &self,
        bucket: &str,
        upload_id: &str,
    ) -> IndexResult<Option<UploadRecord>> {
        self.index.get_upload(bucket, upload_id).await
    }

    /// CreateMultipartUpload.
    pub async fn create_upload(&self, rec: &UploadRecord) -> IndexResult<()> {
        self.index.create_upload(rec).await
    }

    /// The parts of an upload after `after`, at most `max`.
    pub async fn list_parts(
        &self,
        bucket: &str,
        upload_id: &str,
        after: u32,
        max: u32,
    ) -> IndexResult<Vec<PartRecord>> {
        self.index.list_parts(bucket, upload_id, after, max).await
    }

    /// AbortMultipartUpload: removes the upload and collects its parts.
    pub async fn abort_upload(&self, bucket: &str, upload_id: &str) -> IndexResult<()> {
        let garbage = self.index.abort_upload(bucket, upload_id).await?;
        self.collect(garbage).await;
        Ok(())
    }

    /// A page of ListMultipartUploads.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: u32,
    ) -> IndexResult<Vec<UploadRecord>> {
        self.index
            .list_uploads(bucket, prefix, key_marker, upload_id_marker, max)
            .await
    }
}
