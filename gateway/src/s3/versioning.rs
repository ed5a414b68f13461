//! Versioning: PutBucketVersioning / GetBucketVersioning, ListObjectVersions, and what the object
//! operations share about versions: the version a write creates (id and object lock state, from
//! the bucket's state and the request's headers), the version a read or copy names, and the one
//! delete (a version for good, or a delete marker) behind DeleteObject and DeleteObjects.

use s3s::S3Request;
use s3s::dto::*;

use super::{Gateway, etag, ts};
use crate::audit;
use crate::error::{Error, Result};
use crate::index::{
    BucketState, DeleteCondition, IndexError, LockMode, NULL_VERSION, ObjectLock, ObjectRecord,
    VersionQuery, Versioning,
};
use crate::request::RequestCtx;
use crate::store::NewVersion;

/// The object lock headers of a write (`x-amz-object-lock-mode`, `-retain-until-date`,
/// `-legal-hold`).
pub(super) struct LockHeaders<'a> {
    pub mode: Option<&'a ObjectLockMode>,
    pub until: Option<&'a Timestamp>,
    pub hold: Option<&'a ObjectLockLegalHoldStatus>,
}

/// The [`LockHeaders`] of a write input (PutObject, CopyObject and CreateMultipartUpload name
/// them alike).
macro_rules! lock_headers {
    ($i:expr) => {
        super::versioning::LockHeaders {
            mode: $i.object_lock_mode.as_ref(),
            until: $i.object_lock_retain_until_date.as_ref(),
            hold: $i.object_lock_legal_hold_status.as_ref(),
        }
    };
}
pub(super) use lock_headers;

/// S3's 405 for a GET/HEAD/copy naming a delete marker, or its 404 for a key whose latest
/// version is one; both say `x-amz-delete-marker: true` (and the version id).
pub(super) fn delete_marker_error(rec: &ObjectRecord, named: bool) -> Error {
    let mut e = if named {
        s3s::s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against this resource."
        )
    } else {
        s3s::s3_error!(NoSuchKey, "The specified key does not exist.")
    };
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&rec.version_id) {
        h.insert("x-amz-version-id", v);
    }
    e.set_headers(h);
    Error::Client(e)
}

fn no_such_version() -> Error {
    Error::Client(s3s::s3_error!(
        NoSuchVersion,
        "The specified version does not exist."
    ))
}

/// The version id as reported on reads: None for the `null` version (S3 sends no
/// `x-amz-version-id` for objects of a bucket that never had versioning).
pub(super) fn reported_version(rec: &ObjectRecord) -> Option<String> {
    (rec.version_id != NULL_VERSION).then(|| rec.version_id.clone())
}

/// The version id as reported on writes: as on reads (a write while versioning is suspended
/// reports none, as S3 and Ceph do; its version is listed as `null`).
pub(super) fn written_version(rec: &ObjectRecord, _state: &BucketState) -> Option<String> {
    reported_version(rec)
}

/// Parses a `versionId` parameter: `null` or an id this gateway could have issued (32
/// lower-case hex digits); anything else is a version that cannot exist.
fn check_version_id(v: &str) -> Result<()> {
    let ok = v == NULL_VERSION
        || (v.len() == 32
            && v.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(
            "Invalid version id specified".into(),
        ))
    }
}

/// The retain-until date of a lock header or retention document, as ms since the epoch.
pub(super) fn until_ms(t: &Timestamp) -> i64 {
    super::ms_of(t)
}

impl Gateway {
    /// Versioning and object lock settings of a bucket, or NoSuchBucket.
    pub(super) async fn bucket_state(&self, bucket: &str) -> Result<BucketState> {
        self.store
            .bucket_state(bucket)
            .await?
            .ok_or_else(|| Error::NoSuchBucket(bucket.to_owned()))
    }

    /// The version a write to `bucket` creates: a new id while versioning is Enabled, else
    /// `null`; its object lock from the request's lock headers (checked: both mode and date or
    /// neither, a date in the future, a bucket with object lock, and the caller's right to set
    /// retention / legal hold) or else the bucket's default retention.
    pub(super) async fn new_version(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
        bucket: &str,
        key: &str,
        state: &BucketState,
        headers: LockHeaders<'_>,
    ) -> Result<NewVersion> {
        let LockHeaders { mode, until, hold } = headers;
        let version_id = match state.versioning {
            Versioning::Enabled => NewVersion::new_id()?,
            _ => NULL_VERSION.to_owned(),
        };
        let now = crate::index::now_ms();
        let mut lock = ObjectLock::default();
        if mode.is_some() || until.is_some() || hold.is_some() {
            if !state.object_lock {
                return Err(Error::InvalidRequest(
                    "Bucket is missing Object Lock Configuration".into(),
                ));
            }
            let identity = self.caller(credentials).await.map_err(Error::Client)?;
            match (mode, until) {
                (None, None) => {}
                (Some(m), Some(u)) => {
                    let m = LockMode::parse(m.as_str()).ok_or_else(|| {
                        Error::InvalidArgument("Unknown wormMode directive.".into())
                    })?;
                    let u = until_ms(u);
                    if u <= now {
                        return Err(Error::InvalidArgument(
                            "The retain until date must be in the future!".into(),
                        ));
                    }
                    self.policy
                        .authorize_item(
                            &identity,
                            policy::Action::PutObjectRetention,
                            Some(bucket),
                            Some(key),
                        )
                        .await
                        .map_err(Error::Client)?;
                    lock.retention = Some((m, u));
                }
                _ => {
                    return Err(Error::InvalidArgument(
                        "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied".into(),
                    ));
                }
            }
            if let Some(h) = hold {
                lock.legal_hold = parse_hold(h.as_str())?;
                self.policy
                    .authorize_item(
                        &identity,
                        policy::Action::PutObjectLegalHold,
                        Some(bucket),
                        Some(key),
                    )
                    .await
                    .map_err(Error::Client)?;
            }
        }
        if lock.retention.is_none()
            && state.object_lock
            && let Some(d) = state.default_retention
        {
            lock.retention = Some((d.mode, d.until(now)));
        }
        Ok(NewVersion { version_id, lock })
    }

    /// The version a GET/HEAD/copy names (`version_id` None: the latest), or NoSuchKey /
    /// NoSuchVersion / the delete-marker errors / NoSuchBucket.
    pub(super) async fn require_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectRecord> {
        if let Some(v) = version_id {
            check_version_id(v)?;
        }
        match self.store.get_version(bucket, key, version_id).await? {
            Some(r) if r.delete_marker => Err(delete_marker_error(&r, version_id.is_some())),
            Some(r) => Ok(r),
            None => {
                self.require_bucket(bucket).await?;
                match version_id {
                    Some(_) => Err(no_such_version()),
                    None => Err(Error::NoSuchKey(key.to_owned())),
                }
            }
        }
    }

    /// One delete of DeleteObject / DeleteObjects, after authorisation and the audit event
    /// (`cond`: its conditions, checked again by the index in the delete's transaction):
    /// with a version id, that version goes for good (object lock permitting); without one, an
    /// unversioned bucket loses the key's `null` version and a versioned one gets a delete
    /// marker. Returns what the response reports.
    pub(super) async fn delete_one(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass: bool,
        cond: Option<&DeleteCondition>,
        audit: Option<&RequestCtx>,
    ) -> Result<DeletedObject> {
        match version_id {
            Some(v) => {
                check_version_id(v)?;
                // a refused delete is refused before its event says "allowed" (the index
                // checks again in the transaction, for a change racing this one)
                if let Some(rec) = self.store.get_version(bucket, key, Some(v)).await?
                    && let Some(why) = rec.lock.protects(crate::index::now_ms(), bypass)
                {
                    return Err(lock_error(IndexError::Locked(format!(
                        "{bucket}/{key} version {v}: {why}"
                    ))));
                }
                audit::before_change(audit, 0, None).await?;
                let deleted = self
                    .store
                    .delete_version_matching(bucket, key, v, bypass, cond)
                    .await
                    .map_err(lock_error)?;
                Ok(DeletedObject {
                    key: Some(key.to_owned()),
                    version_id: Some(v.to_owned()),
                    delete_marker: deleted
                        .as_ref()
                        .is_some_and(|d| d.delete_marker)
                        .then_some(true),
                    delete_marker_version_id: deleted
                        .filter(|d| d.delete_marker)
                        .map(|_| v.to_owned()),
                })
            }
            None => {
                let state = self.bucket_state(bucket).await?;
                if state.versioning == Versioning::Unversioned {
                    audit::before_change(audit, 0, None).await?;
                    self.store
                        .delete_version_matching(bucket, key, NULL_VERSION, false, cond)
                        .await
                        .map_err(lock_error)?;
                    return Ok(DeletedObject {
                        key: Some(key.to_owned()),
                        ..Default::default()
                    });
                }
                let version = NewVersion {
                    version_id: match state.versioning {
                        Versioning::Enabled => NewVersion::new_id()?,
                        _ => NULL_VERSION.to_owned(),
                    },
                    lock: ObjectLock::default(),
                };
                let Some(marker) = self
                    .store
                    .put_delete_marker_if(bucket, key, &version, cond, audit)
                    .await?
                else {
                    // the condition found nothing to delete in the transaction: no marker
                    return Ok(DeletedObject {
                        key: Some(key.to_owned()),
                        ..Default::default()
                    });
                };
                Ok(DeletedObject {
                    key: Some(key.to_owned()),
                    version_id: Some(marker.version_id.clone()),
                    delete_marker: Some(true),
                    delete_marker_version_id: Some(marker.version_id),
                })
            }
        }
    }

    pub(super) async fn op_put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> Result<PutBucketVersioningOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        let cfg = i.versioning_configuration;
        if cfg
            .mfa_delete
            .as_ref()
            .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
        {
            return Err(Error::Client(s3s::s3_error!(
                NotImplemented,
                "MFA delete is not supported by this gateway (use quorum rules on s3:DeleteObjectVersion)."
            )));
        }
        let state = match cfg.status.as_ref().map(BucketVersioningStatus::as_str) {
            Some("Enabled") => Versioning::Enabled,
            Some("Suspended") => Versioning::Suspended,
            _ => {
                return Err(Error::MalformedXml(
                    "The versioning Status must be Enabled or Suspended".into(),
                ));
            }
        };
        let current = self.bucket_state(&i.bucket).await?;
        if current.object_lock && state != Versioning::Enabled {
            return Err(Error::Client(s3s::s3_error!(
                InvalidBucketState,
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
            )));
        }
        audit::before_change(audit.as_ref(), 0, None).await?;
        self.store
            .set_versioning(&i.bucket, state)
            .await
            .map_err(|e| match e {
                IndexError::Locked(_) => Error::Client(s3s::s3_error!(
                    InvalidBucketState,
                    "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
                )),
                e => e.into(),
            })?;
        self.store.record_bucket_state(&i.bucket).await;
        tracing::info!(bucket = %i.bucket, state = ?state, "bucket versioning changed");
        Ok(PutBucketVersioningOutput::default())
    }

    pub(super) async fn op_get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> Result<GetBucketVersioningOutput> {
        let state = self.bucket_state(&req.input.bucket).await?;
        Ok(GetBucketVersioningOutput {
            status: state
                .versioning
                .as_status()
                .map(BucketVersioningStatus::from_static),
            mfa_delete: None,
        })
    }

    pub(super) async fn op_list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> Result<ListObjectVersionsOutput> {
        let i = req.input;
        let (q, url) = version_query(&i)?;
        let max = q.max_keys;
        let page = match self.store.list_versions(&q).await {
            Ok(p) => p,
            Err(IndexError::NotFound(_)) => return Err(Error::NoSuchBucket(i.bucket)),
            Err(e) => return Err(e.into()),
        };
        let enc = |s: &str| {
            if url {
                urlencoding::encode(s).replace("%2F", "/")
            } else {
                s.to_owned()
            }
        };
        let id = req
            .credentials
            .as_ref()
            .map(|c| c.access_key.clone())
            .unwrap_or_default();
        let owner = Owner {
            display_name: Some(id.clone()),
            id: Some(id),
        };
        let (versions, markers) = version_entries(page.versions, &owner, enc);
        let prefixes: Vec<CommonPrefix> = page
            .common_prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p)),
            })
            .collect();
        Ok(ListObjectVersionsOutput {
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            delete_markers: (!markers.is_empty()).then_some(markers),
            delimiter: i.delimiter.map(|d| enc(&d)),
            encoding_type: i.encoding_type,
            is_truncated: Some(page.is_truncated),
            key_marker: Some(i.key_marker.map(|k| enc(&k)).unwrap_or_default()),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            name: Some(i.bucket),
            next_key_marker: page.next_key_marker.map(|k| enc(&k)),
            next_version_id_marker: page.next_version_id_marker,
            prefix: Some(i.prefix.map(|p| enc(&p)).unwrap_or_default()),
            version_id_marker: Some(i.version_id_marker.unwrap_or_default()),
            versions: (!versions.is_empty()).then_some(versions),
            ..Default::default()
        })
    }
}

/// The index query of a ListObjectVersions, and whether keys are URL-encoded: max-keys
/// (default and cap 1000), encoding-type and the markers checked.
fn version_query(i: &ListObjectVersionsInput) -> Result<(VersionQuery, bool)> {
    let max = match i.max_keys {
        None => 1000,
        Some(n) if n < 0 => {
            return Err(Error::InvalidArgument(
                "max-keys must be a non-negative integer".into(),
            ));
        }
        Some(n) => u32::try_from(n).unwrap_or(1000).min(1000),
    };
    let url = match i.encoding_type.as_ref() {
        None => false,
        Some(e) if e.as_str().eq_ignore_ascii_case(EncodingType::URL) => true,
        Some(e) => {
            return Err(Error::InvalidArgument(format!(
                "invalid encoding-type {:?}",
                e.as_str()
            )));
        }
    };
    if i.version_id_marker
        .as_deref()
        .is_some_and(|v| !v.is_empty())
        && i.key_marker.as_deref().is_none_or(str::is_empty)
    {
        return Err(Error::InvalidArgument(
            "A version-id marker cannot be specified without a key marker.".into(),
        ));
    }
    if let Some(v) = i.version_id_marker.as_deref().filter(|v| !v.is_empty()) {
        check_version_id(v)?;
    }
    let q = VersionQuery {
        bucket: i.bucket.clone(),
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone(),
        key_marker: i.key_marker.clone(),
        version_id_marker: i.version_id_marker.clone(),
        max_keys: max,
    };
    Ok((q, url))
}

/// A page's entries as S3 lists them: the versions, and apart the delete markers (keys through
/// `enc`).
fn version_entries(
    entries: Vec<crate::index::VersionEntry>,
    owner: &Owner,
    enc: impl Fn(&str) -> String,
) -> (Vec<ObjectVersion>, Vec<DeleteMarkerEntry>) {
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for v in entries {
        if v.delete_marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(v.is_latest),
                key: Some(enc(&v.key)),
                last_modified: Some(ts(v.last_modified_ms)),
                owner: Some(owner.clone()),
                version_id: Some(v.version_id),
            });
        } else {
            versions.push(ObjectVersion {
                e_tag: Some(etag(&v.etag)),
                is_latest: Some(v.is_latest),
                key: Some(enc(&v.key)),
                last_modified: Some(ts(v.last_modified_ms)),
                owner: Some(owner.clone()),
                size: Some(i64::try_from(v.size).unwrap_or(i64::MAX)),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id: Some(v.version_id),
                ..Default::default()
            });
        }
    }
    (versions, markers)
}

/// `ON` / `OFF`.
pub(super) fn parse_hold(s: &str) -> Result<bool> {
    match s {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(Error::MalformedXml(
            "legal hold status must be ON or OFF".into(),
        )),
    }
}

/// Index errors of a version delete or lock change: object lock refusals are AccessDenied (as
/// S3 answers them), a missing version NoSuchVersion.
pub(super) fn lock_error(e: IndexError) -> Error {
    match e {
        IndexError::Locked(m) => {
            tracing::info!(reason = %m, "refused by object lock");
            Error::Client(s3s::s3_error!(
                AccessDenied,
                "Access Denied because object protected by object lock."
            ))
        }
        IndexError::NoSuchVersion(_) => no_such_version(),
        e => e.into(),
    }
}
