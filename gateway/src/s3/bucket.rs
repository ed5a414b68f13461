//! Bucket operations: ListBuckets (paged by `max-buckets` and a continuation token),
//! CreateBucket, HeadBucket, DeleteBucket (only when empty), GetBucketLocation. With a policy
//! store, CreateBucket assigns the bucket to the caller's tenant, DeleteBucket forgets it, and
//! ListBuckets shows only the caller's tenant's buckets. Re-creating a bucket of your own
//! tenant answers 200 in us-east-1 (S3's legacy behaviour) and 409 BucketAlreadyOwnedByYou in
//! other regions; another tenant's bucket name is 409 BucketAlreadyExists (the access check
//! refuses it and answers so to a caller whose role may create buckets, see
//! `auth::RoleAccess::name_taken`; a caller who may not gets its 403), as is a name no tenant
//! holds. `x-amz-object-ownership` is stored as the
//! bucket's ownership controls (see `ownership`).

use s3s::S3Request;
use s3s::dto::*;

use super::{Gateway, ts};
use crate::audit;
use crate::error::{Error, Result};
use crate::request::RequestCtx;

/// The caller's identity in the policy store.
async fn caller<T>(g: &Gateway, req: &S3Request<T>) -> Result<policy::Identity> {
    g.caller(req.credentials.as_ref())
        .await
        .map_err(Error::Client)
}

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
        // paging (`max-buckets`, 1 to 10000; the token is the last name of the page before,
        // which the caller already saw, so it tells nothing new)
        let max = match req.input.max_buckets {
            None => usize::MAX,
            Some(n) if (1..=10_000).contains(&n) => usize::try_from(n).unwrap_or(usize::MAX),
            Some(_) => {
                return Err(Error::InvalidArgument(
                    "max-buckets must be between 1 and 10000".into(),
                ));
            }
        };
        let after = req.input.continuation_token.clone().unwrap_or_default();
        let who = caller(self, &req).await?;
        let mut visible = Vec::new();
        let mut truncated = false;
        // the index lists buckets in name order
        for b in self.store.list_buckets().await? {
            if !b.name.starts_with(&prefix) || b.name <= after {
                continue;
            }
            if !self.policy.authz().bucket_visible(&who, &b.name).await? {
                continue;
            }
            if visible.len() == max {
                truncated = true;
                break;
            }
            visible.push(b);
        }
        let continuation_token = if truncated {
            visible.last().map(|b| b.name.clone())
        } else {
            None
        };
        let buckets = visible
            .into_iter()
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
            continuation_token,
        })
    }

    pub(super) async fn op_create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> Result<CreateBucketOutput> {
        let name = req.input.bucket.clone();
        if name.contains("-.") || name.contains(".-") {
            // s3s's name check lets these through; AWS refuses them (a dash next to a dot)
            return Err(Error::Client(s3s::s3_error!(
                InvalidBucketName,
                "The specified bucket is not valid."
            )));
        }
        // `x-amz-object-ownership`, validated before anything is created
        let ownership = match &req.input.object_ownership {
            Some(o) => Some(super::ownership::validated(o)?.to_owned()),
            None => None,
        };
        let who = caller(self, &req).await?;
        if self.store.get_bucket(&name).await?.is_some() {
            if !self.policy.authz().bucket_visible(&who, &name).await? {
                // bucket names are one namespace: another tenant's name is taken
                return Err(Error::Client(s3s::s3_error!(
                    BucketAlreadyExists,
                    "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
                )));
            }
            if self.region == "us-east-1" {
                // S3's legacy answer in us-east-1: re-creating your own bucket succeeds and
                // changes nothing
                return Ok(CreateBucketOutput {
                    location: Some(format!("/{name}")),
                });
            }
            return Err(Error::BucketAlreadyOwnedByYou(name));
        }
        audit::before_change(RequestCtx::of(&req.extensions).as_ref(), 0, None).await?;
        // object lock implies versioning Enabled, for good
        let object_lock = req.input.object_lock_enabled_for_bucket == Some(true);
        let owner = owner_of(&req);
        self.policy
            .authz()
            .store()
            .changing_tenancy(|| {
                self.store
                    .create_bucket(&name, &owner, &who.tenant, object_lock)
            })
            .await?;
        if let Some(o) = ownership {
            // part of this CreateBucket (its audit event covers it)
            self.store
                .set_bucket_setting(&name, super::ownership::SETTING_OWNERSHIP, Some(&o), None)
                .await?;
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
        self.store.check_bucket_deletable(&name).await?;
        audit::before_change(RequestCtx::of(&req.extensions).as_ref(), 0, None).await?;
        // the bucket row and its tenant go in one transaction
        self.policy
            .authz()
            .store()
            .changing_tenancy(|| self.store.delete_bucket(&name))
            .await?;
        tracing::info!(bucket = %name, "bucket deleted");
        Ok(DeleteBucketOutput::default())
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
