//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket (only when empty),
//! GetBucketLocation.

use s3s::S3Request;
use s3s::dto::*;

use super::{Gateway, ts};
use crate::error::{Error, Result};
use crate::index::IndexError;

fn owner_of<T>(req: &S3Request<T>) -> String {
    req.credentials
        .as_ref()
        .map(|c| c.access_key.clone())
        .unwrap_or_default()
}

impl Gateway {
    pub(super) async fn op_list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> Result<ListBucketsOutput> {
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let buckets = self
            .store
            .index
            .list_buckets()
            .await?
            .into_iter()
            .filter(|b| b.name.starts_with(&prefix))
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(ts(b.created_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        let id = owner_of(&req);
        Ok(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some(id.clone()),
                id: Some(id),
            }),
            prefix: req.input.prefix,
            ..Default::default()
        })
    }

    pub(super) async fn op_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> Result<CreateBucketOutput> {
        let name = req.input.bucket.clone();
        match self.store.index.create_bucket(&name, &owner_of(&req)).await {
            Ok(()) => {}
            Err(IndexError::AlreadyExists(_)) => return Err(Error::BucketAlreadyOwnedByYou(name)),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(bucket = %name, "bucket created");
        Ok(CreateBucketOutput {
            location: Some(format!("/{name}")),
        })
    }

    pub(super) async fn op_head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> Result<HeadBucketOutput> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        })
    }

    pub(super) async fn op_delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> Result<DeleteBucketOutput> {
        let name = req.input.bucket;
        match self.store.index.delete_bucket(&name).await {
            Ok(()) => {
                tracing::info!(bucket = %name, "bucket deleted");
                Ok(DeleteBucketOutput::default())
            }
            Err(IndexError::NotFound(_)) => Err(Error::NoSuchBucket(name)),
            Err(IndexError::NotEmpty(_)) => Err(Error::BucketNotEmpty(name)),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn op_get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> Result<GetBucketLocationOutput> {
        self.require_bucket(&req.input.bucket).await?;
        // us-east-1 is reported as an empty LocationConstraint, as S3 does.
        let location_constraint = if self.region == "us-east-1" {
            None
        } else {
            Some(BucketLocationConstraint::from(self.region.clone()))
        };
        Ok(GetBucketLocationOutput {
            location_constraint,
        })
    }
}
