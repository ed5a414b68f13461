//! Buckets, uploads and listings: the index reads and the changes that write no object data,
//! for the S3 handlers (which reach the index only through the object layer). Deleting an
//! object also collects the streams it leaves behind.

use super::Store;
use crate::index::{
    BucketRecord, IndexError, ListPage, ListQuery, ObjectRecord, PartRecord, UploadRecord,
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

    /// CreateBucket (`AlreadyExists` when it does).
    pub async fn create_bucket(&self, name: &str, owner: &str) -> IndexResult<()> {
        self.index.create_bucket(name, owner).await
    }

    /// Whether DeleteBucket could go through now (`NotFound`, `NotEmpty`).
    pub async fn check_bucket_deletable(&self, name: &str) -> IndexResult<()> {
        self.index.check_bucket_deletable(name).await
    }

    /// DeleteBucket (checked again inside its transaction).
    pub async fn delete_bucket(&self, name: &str) -> IndexResult<()> {
        self.index.delete_bucket(name).await
    }

    /// A page of ListObjects / ListObjectsV2.
    pub async fn list_objects(&self, q: &ListQuery) -> IndexResult<ListPage> {
        self.index.list_objects(q).await
    }

    /// The current object under a key.
    pub async fn get_object(&self, bucket: &str, key: &str) -> IndexResult<Option<ObjectRecord>> {
        self.index.get_object(bucket, key).await
    }

    /// DeleteObject: removes the key (true when there was an object) and collects its streams.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> IndexResult<bool> {
        match self.index.delete_object(bucket, key).await? {
            Some(garbage) => {
                self.collect(garbage).await;
                Ok(true)
            }
            None => Ok(false),
        }
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
