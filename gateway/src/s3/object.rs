//! Object operations: PutObject, GetObject (ranges, conditions, partNumber), HeadObject,
//! DeleteObject, DeleteObjects and CopyObject (re-sealed; metadata COPY/REPLACE).

use super::encryption::{customer_key_of, kms_request};
use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use keys::checksum::ChecksumSet;
use s3s::S3Request;
use s3s::dto::*;

use super::checksum::{
    ChecksumRequest, ChecksumValues, precheck_content_md5, set_of, verify_content_md5,
    with_checksums, with_checksums_if,
};
use super::versioning::{reported_version, written_version};
use super::{Gateway, etag, expires_out, metadata_out, ms_of, ts, user_metadata};
use crate::error::{Error, Result};
use crate::index::{
    BucketState, DeleteCondition, ETagMatch, ObjectRecord, VersionFacts, Versioning, WriteCondition,
};
use crate::request::RequestCtx;
use crate::store::{SyncStream, WriteCheck};

/// What a write must verify beyond sealing.
pub(super) struct WriteChecks {
    pub checksums: ChecksumRequest,
    pub content_md5: Option<String>,
    pub content_length: Option<u64>,
}

impl WriteCheck for WriteChecks {
    fn checksums(&self) -> ChecksumSet {
        self.checksums.set
    }

    fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// Checks a sealed body against what the request promised: its Content-Length (a shorter
    /// body is IncompleteBody), its Content-MD5 and its flexible checksums.
    fn verify(&self, s: &keys::sealer::SealSummary) -> Result<()> {
        if let Some(n) = self.content_length
            && s.plaintext_len != n
        {
            return Err(Error::IncompleteBody(format!(
                "You did not provide the number of bytes specified by the Content-Length HTTP header ({} of {n})",
                s.plaintext_len
            )));
        }
        verify_content_md5(self.content_md5.as_deref(), &s.md5)?;
        self.checksums.verify(&s.checksums)
    }
}

/// The object headers (with the tags of `x-amz-tagging`) and the write checks (checksums,
/// Content-MD5, Content-Length) of a PutObject.
fn put_checks(
    input: &PutObjectInput,
    raw_headers: &http::HeaderMap,
    trailing_headers: Option<s3s::TrailingHeaders>,
) -> Result<(BTreeMap<String, String>, WriteChecks)> {
    let checksums = ChecksumRequest::new(
        input
            .checksum_algorithm
            .as_ref()
            .map(ChecksumAlgorithm::as_str),
        input.checksum_values(),
        raw_headers,
        trailing_headers,
    )?;
    let mut headers = super::input_headers!(input);
    super::tagging::stash_header(&mut headers, input.tagging.as_deref())?;
    let checks = WriteChecks {
        checksums,
        content_md5: input.content_md5.clone(),
        content_length: content_length(input.content_length)?,
    };
    Ok((headers, checks))
}

pub(super) fn content_length(v: Option<i64>) -> Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(n) => u64::try_from(n)
            .map(Some)
            .map_err(|_| Error::InvalidArgument("negative Content-Length".into())),
    }
}

/// 304 Not Modified with the ETag and Last-Modified of the version the client has (RFC 9110
/// 15.4.5; S3 sends both).
fn not_modified(rec: &ObjectRecord) -> Error {
    let mut e = s3s::S3Error::new(s3s::S3ErrorCode::NotModified);
    let mut h = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", rec.etag)) {
        h.insert(http::header::ETAG, v);
    }
    let mut date = Vec::new();
    if ts(rec.last_modified_ms)
        .format(TimestampFormat::HttpDate, &mut date)
        .is_ok()
        && let Ok(v) = http::HeaderValue::from_bytes(&date)
    {
        h.insert(http::header::LAST_MODIFIED, v);
    }
    e.set_headers(h);
    Error::Client(e)
}

/// What a delete's conditions decided before its audit event.
enum DeleteGate {
    /// nothing there to delete: answered at once, nothing changes
    Nothing,
    /// delete; the index checks the condition again in the delete's transaction
    Go(Option<DeleteCondition>),
}

/// The conditions of one delete.
struct DeleteConditions<'a> {
    if_match: Option<ETagCondition>,
    last_modified: Option<&'a Timestamp>,
    size: Option<i64>,
}

/// Evaluates If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since (RFC 9110 order,
/// with S3's combination rules). For copy sources every failure is 412.
pub(super) fn check_conditions(
    rec: &ObjectRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
    copy: bool,
) -> Result<()> {
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == rec.etag,
    };
    let lm_secs = rec.last_modified_ms.div_euclid(1000);
    let secs = |t: &Timestamp| ms_of(t).div_euclid(1000);
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(Error::PreconditionFailed);
        }
    } else if let Some(t) = if_unmodified_since
        && lm_secs > secs(t)
    {
        return Err(Error::PreconditionFailed);
    }
    let not_modified = if copy {
        Error::PreconditionFailed
    } else {
        not_modified(rec)
    };
    if let Some(c) = if_none_match {
        if matches(c) {
            return Err(not_modified);
        }
    } else if let Some(t) = if_modified_since
        && lm_secs <= secs(t)
    {
        return Err(not_modified);
    }
    Ok(())
}

/// The plaintext range a GET/HEAD selects: (range, is_partial, parts_count).
fn select_range(
    rec: &ObjectRecord,
    range: Option<&s3s::dto::Range>,
    part_number: Option<i32>,
) -> Result<(Range<u64>, bool, Option<i32>)> {
    let multipart = rec.manifest_id.is_some();
    let parts_count = if multipart {
        i32::try_from(rec.streams.len()).ok()
    } else {
        None
    };
    if let Some(n) = part_number {
        if range.is_some() {
            return Err(Error::InvalidRequest(
                "Cannot specify both Range header and partNumber".into(),
            ));
        }
        if !(1..=10_000).contains(&n) {
            return Err(Error::InvalidArgument(
                "Part number must be an integer between 1 and 10000, inclusive".into(),
            ));
        }
        let beyond = || Error::InvalidPart(format!("the object has no part {n}"));
        if !multipart {
            return if n == 1 {
                Ok((0..rec.size, false, Some(1)))
            } else {
                Err(beyond())
            };
        }
        // partNumber counts the object's parts in order (1..=PartsCount)
        let idx = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .ok_or_else(beyond)?;
        let s = rec.streams.get(idx).ok_or_else(beyond)?;
        let off: u64 = rec.streams[..idx].iter().map(|s| s.plaintext_len).sum();
        return Ok((off..off + s.plaintext_len, true, parts_count));
    }
    match range {
        None => Ok((0..rec.size, false, parts_count)),
        Some(r) => {
            let r = r.check(rec.size).map_err(|_| Error::InvalidRange)?;
            Ok((r, true, parts_count))
        }
    }
}

/// The checksums a GET or HEAD with checksum mode reports: the whole object's; a part's
/// (`partNumber` of a multipart object: the part's own, with its object's type, none for a
/// part completed before part checksums were kept); none for a range.
fn reported_checksums(
    rec: &ObjectRecord,
    partial: bool,
    part_number: Option<i32>,
) -> Option<(BTreeMap<String, String>, ChecksumType)> {
    let kind = super::checksum::checksum_type_of(rec)?;
    if !partial {
        return Some((rec.checksums.clone(), kind));
    }
    let idx = usize::try_from(part_number?).ok()?.checked_sub(1)?;
    let part = &rec.streams.get(idx)?.checksums;
    (rec.manifest_id.is_some() && !part.is_empty()).then(|| (part.clone(), kind))
}

fn content_range(r: &Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), size)
}

fn len_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn checksum_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// What a GET or HEAD input asks for beyond its key: conditions, range or part, checksums.
struct ReadSpec<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
    range: Option<&'a s3s::dto::Range>,
    part_number: Option<i32>,
    checksum_mode: Option<&'a ChecksumMode>,
    version_id: Option<&'a str>,
    /// SSE-C headers: algorithm, key, key MD5
    sse_c: [Option<&'a str>; 3],
}

/// The [`ReadSpec`] of a GET or HEAD input (the two DTOs name these fields alike).
macro_rules! read_spec {
    ($i:expr) => {
        ReadSpec {
            if_match: $i.if_match.as_ref(),
            if_none_match: $i.if_none_match.as_ref(),
            if_modified_since: $i.if_modified_since.as_ref(),
            if_unmodified_since: $i.if_unmodified_since.as_ref(),
            range: $i.range.as_ref(),
            part_number: $i.part_number,
            checksum_mode: $i.checksum_mode.as_ref(),
            version_id: $i.version_id.as_deref(),
            sse_c: [
                $i.sse_customer_algorithm.as_deref(),
                $i.sse_customer_key.as_deref(),
                $i.sse_customer_key_md5.as_deref(),
            ],
        }
    };
}

/// What a GET or HEAD selected (see `Gateway::select`).
struct Selected {
    rec: ObjectRecord,
    /// the request's customer key, checked against the object's (SSE-C)
    ck: Option<keys::CustomerKey>,
    range: Range<u64>,
    partial: bool,
    /// PartsCount, reported when the request named a part
    parts_count: Option<i32>,
    /// the stored checksums reported (checksum mode on): the whole object's, or a part's
    /// with `partNumber`; with their type (a part's is its object's)
    checksums: Option<(BTreeMap<String, String>, ChecksumType)>,
}

/// The answer of a GET or HEAD: one builder for both DTOs, which share every field but the
/// body (given in `{ ... }`).
macro_rules! object_answer {
    ($g:expr, $sel:expr, $ty:ident { $($extra:tt)* }) => {{
        let sel = $sel;
        let rec = &sel.rec;
        let h = |k: &str| rec.headers.get(k).cloned();
        let echo = super::encryption::Echo::of(&rec.headers, $g.sse());
        with_checksums_if(
            sel.checksums.as_ref().map(|(m, _)| m),
            $ty {
                $($extra)*
                accept_ranges: Some("bytes".into()),
                content_length: Some(len_i64(sel.range.end - sel.range.start)),
                content_range: sel.partial.then(|| content_range(&sel.range, rec.size)),
                e_tag: Some(etag(&rec.etag)),
                last_modified: Some(ts(rec.last_modified_ms)),
                metadata: metadata_out(&rec.user_metadata),
                content_type: h("content-type"),
                content_encoding: h("content-encoding"),
                cache_control: h("cache-control"),
                content_disposition: h("content-disposition"),
                content_language: h("content-language"),
                expires: expires_out(&rec.headers),
                checksum_type: sel.checksums.as_ref().map(|(_, t)| t.clone()),
                parts_count: sel.parts_count,
                server_side_encryption: echo.sse,
                sse_customer_algorithm: echo.algorithm,
                sse_customer_key_md5: echo.key_md5,
                ssekms_key_id: echo.kms_key_id,
                bucket_key_enabled: echo.bucket_key,
                version_id: reported_version(rec),
                object_lock_mode: rec
                    .lock
                    .retention
                    .map(|(m, _)| ObjectLockMode::from(m.as_str().to_owned())),
                object_lock_retain_until_date: rec.lock.retention.map(|(_, u)| ts(u)),
                object_lock_legal_hold_status: rec.lock.legal_hold.then(|| {
                    ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON)
                }),
                ..Default::default()
            },
        )
    }};
}

impl Gateway {
    pub(super) async fn op_put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> Result<PutObjectOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let S3Request {
            input,
            headers: raw_headers,
            trailing_headers,
            credentials,
            ..
        } = req;
        let state = self.bucket_state(&input.bucket).await?;
        self.gate_overwrite(credentials.as_ref(), &input.bucket, &input.key, &state)
            .await?;
        precheck_content_md5(input.content_md5.as_deref())?;
        let version = self
            .new_version(
                credentials.as_ref(),
                &input.bucket,
                &input.key,
                &state,
                super::versioning::lock_headers!(input),
            )
            .await?;
        let cond = self
            .write_conditions(
                &input.bucket,
                &input.key,
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
            )
            .await?;
        let (mut headers, checks) = put_checks(&input, &raw_headers, trailing_headers)?;
        let meta = user_metadata(input.metadata);
        let ck = customer_key_of!(self, input)?;
        super::encryption::one_mode(ck.as_ref(), input.server_side_encryption.as_ref())?;
        let sse = input.server_side_encryption.as_ref();
        self.stamp_sse(
            &input.bucket,
            sse,
            kms_request!(input),
            ck.is_some(),
            &mut headers,
        )
        .await?;
        let body = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<
                std::result::Result<Bytes, std::io::Error>,
            >())
        });
        let rec = self
            .store
            .put_object(
                &input.bucket,
                &input.key,
                headers,
                meta,
                body,
                &checks,
                &version,
                ck.as_ref(),
                cond.as_ref(),
                audit.as_ref(),
            )
            .await?;
        let echo = super::encryption::Echo::of(&rec.headers, self.sse());
        let expiration = self.expiration_header(&rec).await;
        Ok(with_checksums(
            &rec.checksums,
            PutObjectOutput {
                expiration,
                e_tag: Some(etag(&rec.etag)),
                server_side_encryption: echo.sse,
                sse_customer_algorithm: echo.algorithm,
                sse_customer_key_md5: echo.key_md5,
                ssekms_key_id: echo.kms_key_id,
                bucket_key_enabled: echo.bucket_key,
                ssekms_encryption_context: echo.context,
                size: Some(len_i64(rec.size)),
                version_id: written_version(&rec, &state),
                ..Default::default()
            },
        ))
    }

    /// Where versioning is not Enabled a write replaces the key's current object, so it passes
    /// the quorum gate of a delete (with versioning Enabled a write adds a version and destroys
    /// nothing).
    pub(super) async fn gate_overwrite(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
        bucket: &str,
        key: &str,
        state: &BucketState,
    ) -> Result<()> {
        if state.versioning != Versioning::Enabled {
            self.gate_replace(credentials, bucket, key)
                .await
                .map_err(Error::Client)?;
        }
        Ok(())
    }

    pub(super) async fn op_get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> Result<GetObjectOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let credentials = req.credentials;
        let i = req.input;
        let read = self
            .select(
                credentials.as_ref(),
                &i.bucket,
                &i.key,
                read_spec!(i),
                audit.as_ref(),
            )
            .await?;
        let body = self
            .store
            .open_object(&read.rec, read.range.clone(), read.ck.as_ref())
            .await?;
        let tag_count = super::tagging::count_of(&read.rec.headers);
        let expiration = self.expiration_header(&read.rec).await;
        Ok(object_answer!(
            self,
            read,
            GetObjectOutput {
                body: Some(StreamingBlob::wrap(SyncStream::new(body))),
                tag_count,
                expiration,
            }
        ))
    }

    pub(super) async fn op_head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> Result<(HeadObjectOutput, Option<i32>)> {
        let credentials = req.credentials;
        let i = req.input;
        let read = self
            .select(credentials.as_ref(), &i.bucket, &i.key, read_spec!(i), None)
            .await?;
        let tag_count = super::tagging::count_of(&read.rec.headers);
        let expiration = self.expiration_header(&read.rec).await;
        let mut out = object_answer!(self, read, HeadObjectOutput {});
        out.expiration = expiration;
        Ok((out, tag_count))
    }

    /// If-Match / If-None-Match of a write (PutObject, CompleteMultipartUpload), against the
    /// current object of the key (its latest version unless that is a delete marker; a write
    /// cannot name a version): If-None-Match `*` or a matching ETag is 412, If-Match on a key
    /// without a current object is 404 NoSuchKey, a non-matching If-Match 412. Checked twice:
    /// here, before the body is read (a write bound to fail uploads nothing), and by the index
    /// in the commit's transaction under the key's lock (the condition returned, for the
    /// store), so that of racing writes only those the condition still admits succeed.
    pub(super) async fn write_conditions(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> Result<Option<WriteCondition>> {
        let cond = WriteCondition {
            if_match: if_match.map(etag_match),
            if_none_match: if_none_match.map(etag_match),
        };
        if cond.is_empty() {
            return Ok(None);
        }
        let existing = self.store.get_object(bucket, key).await?;
        cond.check(key, existing.as_ref().map(|r| r.etag.as_str()))?;
        Ok(Some(cond))
    }

    /// What GET and HEAD share: the record (its key version recorded in the audit event of a
    /// GET), its conditions, the selected range and whether the stored checksums are reported.
    async fn select(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
        bucket: &str,
        key: &str,
        spec: ReadSpec<'_>,
        audit: Option<&RequestCtx>,
    ) -> Result<Selected> {
        if spec.version_id.is_some() {
            // reading an older version is a right of its own (s3:GetObjectVersion)
            let identity = self.caller(credentials).await.map_err(Error::Client)?;
            self.policy
                .authorize_item(
                    &identity,
                    policy::Action::GetObjectVersion,
                    Some(bucket),
                    Some(key),
                )
                .await
                .map_err(Error::Client)?;
        }
        let [alg, ck, md5] = spec.sse_c;
        let ck = self.customer_key(alg, ck, md5, false)?;
        let rec = self.require_version(bucket, key, spec.version_id).await?;
        // S3 answers a part number beyond the object's parts before it checks the SSE-C key
        let selected = select_range(&rec, spec.range, spec.part_number);
        if let Err(e @ Error::InvalidPart(_)) = selected {
            return Err(e);
        }
        self.store
            .require_customer_key(
                bucket,
                &rec.headers,
                rec.streams.first().map(|s| s.header.as_slice()),
                ck.as_ref(),
            )
            .await?;
        if let Some(a) = audit {
            a.set_key_version(rec.key_version);
        }
        check_conditions(
            &rec,
            spec.if_match,
            spec.if_none_match,
            spec.if_modified_since,
            spec.if_unmodified_since,
            false,
        )?;
        let (range, partial, parts_count) = selected?;
        let checksums = checksum_enabled(spec.checksum_mode)
            .then(|| reported_checksums(&rec, partial, spec.part_number))
            .flatten();
        Ok(Selected {
            rec,
            ck,
            range,
            partial,
            parts_count: spec.part_number.and(parts_count),
            checksums,
        })
    }

    /// The version a GetObjectAttributes names, selected as a HEAD without conditions selects
    /// it (s3:GetObjectVersion for a `versionId`, the SSE-C key checked as HEAD checks it).
    pub(super) async fn select_version(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        sse_c: [Option<&str>; 3],
    ) -> Result<ObjectRecord> {
        let spec = ReadSpec {
            if_match: None,
            if_none_match: None,
            if_modified_since: None,
            if_unmodified_since: None,
            range: None,
            part_number: None,
            checksum_mode: None,
            version_id,
            sse_c,
        };
        Ok(self.select(credentials, bucket, key, spec, None).await?.rec)
    }

    /// The per-key rights of a delete beyond DeleteObject: a version delete needs
    /// s3:DeleteObjectVersion, a governance bypass s3:BypassGovernanceRetention (with its quorum
    /// rules, like every gated action).
    async fn authorize_delete(
        &self,
        identity: &policy::Identity,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass: bool,
    ) -> Result<()> {
        if version_id.is_some() {
            self.policy
                .authorize_item(
                    identity,
                    policy::Action::DeleteObjectVersion,
                    Some(bucket),
                    Some(key),
                )
                .await
                .map_err(Error::Client)?;
        }
        if bypass {
            self.policy
                .authorize_item(
                    identity,
                    policy::Action::BypassGovernanceRetention,
                    Some(bucket),
                    Some(key),
                )
                .await
                .map_err(Error::Client)?;
        }
        Ok(())
    }

    /// The conditions of a delete (`If-Match`, `x-amz-if-match-last-modified-time`,
    /// `x-amz-if-match-size`; the `ETag`, `LastModifiedTime` and `Size` of a DeleteObjects key),
    /// checked against what would be deleted: the named version, else the current one (a delete
    /// marker too, which matches only `*`). Nothing there is deleted already, which is no error
    /// whatever the condition, and changes nothing (no delete marker is written): as RGW
    /// answers; AWS has these conditions on directory buckets only. Checked here, before the
    /// audit event, and again by the index in the delete's transaction under the key's lock
    /// (the condition returned for `delete_one`), so a write racing the delete cannot slip in
    /// between the check and the change.
    async fn delete_gate(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        c: &DeleteConditions<'_>,
    ) -> Result<DeleteGate> {
        let cond = DeleteCondition {
            if_match: c.if_match.as_ref().map(etag_match),
            last_modified_s: c.last_modified.map(|t| ms_of(t).div_euclid(1000)),
            size: c.size.map(|n| u64::try_from(n).unwrap_or(u64::MAX)),
        };
        if cond.is_empty() {
            return Ok(DeleteGate::Go(None));
        }
        let rec = self.store.get_version(bucket, key, version_id).await?;
        let target = rec.map(|r| VersionFacts {
            etag: r.etag,
            delete_marker: r.delete_marker,
            last_modified_ms: r.last_modified_ms,
            size: r.size,
        });
        Ok(if cond.check(target.as_ref())? {
            DeleteGate::Go(Some(cond))
        } else {
            DeleteGate::Nothing
        })
    }

    pub(super) async fn op_delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> Result<DeleteObjectOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let credentials = req.credentials;
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        let version_id = input.version_id.as_deref();
        let bypass = input.bypass_governance_retention.unwrap_or(false);
        if version_id.is_some() || bypass {
            let identity = self
                .caller(credentials.as_ref())
                .await
                .map_err(Error::Client)?;
            self.authorize_delete(&identity, &input.bucket, &input.key, version_id, bypass)
                .await?;
        }
        let gate = self
            .delete_gate(
                &input.bucket,
                &input.key,
                version_id,
                &DeleteConditions {
                    if_match: input.if_match.clone(),
                    last_modified: input.if_match_last_modified_time.as_ref(),
                    size: input.if_match_size,
                },
            )
            .await?;
        let DeleteGate::Go(cond) = gate else {
            return Ok(DeleteObjectOutput::default());
        };
        let d = self
            .delete_one(
                &input.bucket,
                &input.key,
                version_id,
                bypass,
                cond.as_ref(),
                audit.as_ref(),
            )
            .await?;
        Ok(DeleteObjectOutput {
            delete_marker: d.delete_marker,
            version_id: d.version_id,
            ..Default::default()
        })
    }

    pub(super) async fn op_delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> Result<DeleteObjectsOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let identity = self
            .caller(req.credentials.as_ref())
            .await
            .map_err(Error::Client)?;
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        if input.delete.objects.len() > 1000 {
            return Err(Error::MalformedXml(
                "at most 1000 keys per DeleteObjects request".into(),
            ));
        }
        let bypass = input.bypass_governance_retention.unwrap_or(false);
        let quiet = input.delete.quiet.unwrap_or(false);
        let head = super::bucket_policy::RequestHead {
            op: "DeleteObjects",
            headers: &req.headers,
            query: req.uri.query(),
            peer: audit.as_ref().and_then(RequestCtx::peer),
        };
        let facts = || head.facts();
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            let result = self
                .delete_item(
                    &identity,
                    &input.bucket,
                    &obj,
                    bypass,
                    &facts,
                    audit.as_ref(),
                )
                .await;
            match result {
                Ok(d) => {
                    if !quiet {
                        deleted.push(d);
                    }
                }
                // nothing may be deleted without its event: stop here
                Err(e @ Error::AuditUnavailable(_)) => return Err(e),
                Err(e) => {
                    let s3: s3s::S3Error = e.into();
                    errors.push(s3s::dto::Error {
                        key: Some(obj.key),
                        version_id: obj.version_id,
                        code: Some(s3.code().as_str().to_owned()),
                        message: s3.message().map(str::to_owned),
                    });
                }
            }
        }
        Ok(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        })
    }

    /// One key of a DeleteObjects: authorised on its own (a prefix grant deletes only under its
    /// prefix; the request as a whole took its one rate-limit token when it was admitted), then
    /// its conditions; a key whose conditions do not hold is reported deleted, untouched. The
    /// bucket policy sees each key as a DeleteObject of its own (`facts`: the request's).
    async fn delete_item(
        &self,
        identity: &policy::Identity,
        bucket: &str,
        obj: &ObjectIdentifier,
        bypass: bool,
        facts: &(dyn Fn() -> super::bucket_policy::Facts + Send + Sync),
        audit: Option<&RequestCtx>,
    ) -> Result<DeletedObject> {
        let version_id = obj.version_id.as_deref();
        self.policy
            .authorize_item(
                identity,
                policy::Action::DeleteObject,
                Some(bucket),
                Some(&obj.key),
            )
            .await
            .map_err(Error::Client)?;
        self.bucket_policies
            .enforce(
                identity,
                bucket,
                Some(&obj.key),
                super::bucket_policy::permissions_of("DeleteObject", version_id.is_some()),
                facts,
            )
            .await
            .map_err(Error::Client)?;
        self.authorize_delete(identity, bucket, &obj.key, version_id, bypass)
            .await?;
        let conditions = DeleteConditions {
            if_match: obj.e_tag.as_ref().map(|e| match e.value() {
                "*" => ETagCondition::Any,
                _ => ETagCondition::ETag(e.clone()),
            }),
            last_modified: obj.last_modified_time.as_ref(),
            size: obj.size,
        };
        match self
            .delete_gate(bucket, &obj.key, version_id, &conditions)
            .await?
        {
            DeleteGate::Go(cond) => {
                self.delete_one(bucket, &obj.key, version_id, bypass, cond.as_ref(), audit)
                    .await
            }
            DeleteGate::Nothing => Ok(DeletedObject {
                key: Some(obj.key.clone()),
                version_id: obj.version_id.clone(),
                ..Default::default()
            }),
        }
    }

    /// Source object of a copy, after its conditions.
    pub(super) async fn copy_source(
        &self,
        src: &CopySource,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
        if_modified_since: Option<&Timestamp>,
        if_unmodified_since: Option<&Timestamp>,
    ) -> Result<ObjectRecord> {
        let (bucket, key, version_id) = match src {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => (
                bucket.to_string(),
                key.to_string(),
                version_id.as_deref().map(str::to_owned),
            ),
            _ => {
                return Err(Error::InvalidArgument(
                    "access-point copy sources are not supported".into(),
                ));
            }
        };
        if key.len() > 1024 {
            return Err(Error::KeyTooLong);
        }
        let rec = self
            .require_version(&bucket, &key, version_id.as_deref())
            .await
            .map_err(|e| match (&e, version_id.is_some()) {
                // S3: a copy naming a delete marker is 400 InvalidRequest, not 405
                (Error::Client(c), true) if c.code() == &s3s::S3ErrorCode::MethodNotAllowed => {
                    Error::InvalidRequest(
                        "The source of a copy request may not specifically refer to a delete marker by version id.".into(),
                    )
                }
                _ => e,
            })?;
        check_conditions(
            &rec,
            if_match,
            if_none_match,
            if_modified_since,
            if_unmodified_since,
            true,
        )?;
        Ok(rec)
    }

    pub(super) async fn op_copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> Result<CopyObjectOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let credentials = req.credentials;
        let [dst_if_match, dst_if_none_match] = destination_conditions(&req.headers)?;
        let input = req.input;
        let src_ck = customer_key_of!(self, input, copy_source)?;
        let dst_ck = customer_key_of!(self, input)?;
        super::encryption::one_mode(dst_ck.as_ref(), input.server_side_encryption.as_ref())?;
        let src = self
            .copy_source(
                &input.copy_source,
                input.copy_source_if_match.as_ref(),
                input.copy_source_if_none_match.as_ref(),
                input.copy_source_if_modified_since.as_ref(),
                input.copy_source_if_unmodified_since.as_ref(),
            )
            .await?;
        self.store
            .require_customer_key(
                &src.bucket,
                &src.headers,
                src.streams.first().map(|s| s.header.as_slice()),
                src_ck.as_ref(),
            )
            .await?;
        let state = self.bucket_state(&input.bucket).await?;
        self.gate_overwrite(credentials.as_ref(), &input.bucket, &input.key, &state)
            .await?;
        let version = self
            .new_version(
                credentials.as_ref(),
                &input.bucket,
                &input.key,
                &state,
                super::versioning::lock_headers!(input),
            )
            .await?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str().eq_ignore_ascii_case(MetadataDirective::REPLACE));
        let cond = self
            .write_conditions(
                &input.bucket,
                &input.key,
                dst_if_match.as_ref(),
                dst_if_none_match.as_ref(),
            )
            .await?;
        refuse_copy_to_itself(&input, &src, replace, dst_ck.as_ref())?;
        let (mut headers, meta) = copied_metadata(&input, &src, replace)?;
        let sse = input.server_side_encryption.as_ref();
        self.stamp_sse(
            &input.bucket,
            sse,
            kms_request!(input),
            dst_ck.is_some(),
            &mut headers,
        )
        .await?;
        let checks = copy_checks(&input, &src)?;
        let plaintext = self
            .store
            .open_object(&src, 0..src.size, src_ck.as_ref())
            .await?;
        let rec = self
            .store
            .put_object(
                &input.bucket,
                &input.key,
                headers,
                meta,
                plaintext,
                &checks,
                &version,
                dst_ck.as_ref(),
                cond.as_ref(),
                audit.as_ref(),
            )
            .await?;
        if src.manifest_id.is_none() && rec.etag != src.etag {
            tracing::error!(bucket = %src.bucket, key = %src.key, "copy produced a different MD5 than the source ETag");
        }
        let echo = super::encryption::Echo::of(&rec.headers, self.sse());
        Ok(CopyObjectOutput {
            copy_object_result: Some(copy_result(&rec.checksums, &rec.etag, rec.last_modified_ms)),
            server_side_encryption: echo.sse,
            sse_customer_algorithm: echo.algorithm,
            sse_customer_key_md5: echo.key_md5,
            ssekms_key_id: echo.kms_key_id,
            bucket_key_enabled: echo.bucket_key,
            ssekms_encryption_context: echo.context,
            copy_source_version_id: reported_version(&src),
            version_id: written_version(&rec, &state),
            ..Default::default()
        })
    }
}

/// S3's refusal of a copy of the current version onto itself that changes neither metadata
/// nor encryption (copying an older version over its key, restoring it, is fine).
fn refuse_copy_to_itself(
    input: &CopyObjectInput,
    src: &ObjectRecord,
    replace: bool,
    dst_ck: Option<&keys::CustomerKey>,
) -> Result<()> {
    let src_md5 = super::encryption::sse_c_of(&src.headers).map(|(_, m, _)| m);
    let encryption_changed = src_md5 != dst_ck.map(keys::CustomerKey::md5_b64);
    if src.bucket == input.bucket
        && src.key == input.key
        && !replace
        && !encryption_changed
        && src.is_latest
    {
        return Err(Error::InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.".into(),
        ));
    }
    Ok(())
}

/// The headers and user metadata of a copy: the request's (metadata directive REPLACE) or the
/// source's; the tags follow x-amz-tagging-directive (default COPY), whatever the metadata
/// directive.
fn copied_metadata(
    input: &CopyObjectInput,
    src: &ObjectRecord,
    replace: bool,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let (mut headers, meta) = if replace {
        (
            super::input_headers!(input),
            user_metadata(input.metadata.clone()),
        )
    } else {
        (src.headers.clone(), src.user_metadata.clone())
    };
    headers.remove(crate::index::TAGGING_HEADER);
    let replace_tags = input
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str().eq_ignore_ascii_case(TaggingDirective::REPLACE));
    if replace_tags {
        super::tagging::stash_header(&mut headers, input.tagging.as_deref())?;
    } else if let Some(t) = src.headers.get(crate::index::TAGGING_HEADER) {
        headers.insert(crate::index::TAGGING_HEADER.to_owned(), t.clone());
    }
    Ok((headers, meta))
}

/// What the copy's write verifies: the source's length, and its checksums plus the one the
/// request asks for.
fn copy_checks(input: &CopyObjectInput, src: &ObjectRecord) -> Result<WriteChecks> {
    let mut set = set_of(&src.checksums);
    if let Some(a) = input.checksum_algorithm.as_ref() {
        let extra =
            ChecksumRequest::new(Some(a.as_str()), [None; 5], &http::HeaderMap::new(), None)?;
        set = set.union(extra.set);
    }
    Ok(WriteChecks {
        checksums: ChecksumRequest {
            set,
            ..Default::default()
        },
        content_md5: None,
        content_length: Some(src.size),
    })
}

/// The result DTO of a copy (CopyObject's `CopyObjectResult`, UploadPartCopy's
/// `CopyPartResult`): the ETag, time and checksums of what was written.
pub(super) fn copy_result<T: CopyResult>(
    checksums: &BTreeMap<String, String>,
    md5_hex: &str,
    last_modified_ms: i64,
) -> T {
    with_checksums(checksums, T::stamped(etag(md5_hex), ts(last_modified_ms)))
}

/// A copy's result DTO, built from its ETag and time.
pub(super) trait CopyResult: super::checksum::ChecksumFields {
    /// The result with `e_tag` and `last_modified` set, nothing else.
    fn stamped(e_tag: ETag, last_modified: Timestamp) -> Self;
}

impl CopyResult for CopyObjectResult {
    fn stamped(e_tag: ETag, last_modified: Timestamp) -> Self {
        CopyObjectResult {
            e_tag: Some(e_tag),
            last_modified: Some(last_modified),
            ..Default::default()
        }
    }
}

impl CopyResult for CopyPartResult {
    fn stamped(e_tag: ETag, last_modified: Timestamp) -> Self {
        CopyPartResult {
            e_tag: Some(e_tag),
            last_modified: Some(last_modified),
            ..Default::default()
        }
    }
}

/// CopyObject's conditions on its destination (`If-Match` / `If-None-Match`, as on PutObject;
/// s3s models only the `x-amz-copy-source-if-*` ones): read from the request's headers, a
/// malformed value is 400 InvalidArgument rather than ignored.
fn destination_conditions(h: &http::HeaderMap) -> Result<[Option<ETagCondition>; 2]> {
    let parse = |name: &str| {
        h.get(name)
            .map(|v| {
                ETagCondition::parse_http_header(v.as_bytes()).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "{name} must be \"*\" or one entity tag on CopyObject."
                    ))
                })
            })
            .transpose()
    };
    Ok([parse("if-match")?, parse("if-none-match")?])
}

/// An s3s ETag condition as the index's.
fn etag_match(c: &ETagCondition) -> ETagMatch {
    match c {
        ETagCondition::Any => ETagMatch::Any,
        ETagCondition::ETag(e) => ETagMatch::ETag(e.value().to_owned()),
    }
}
