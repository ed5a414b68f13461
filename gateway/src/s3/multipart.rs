//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload
//! (InvalidPart / InvalidPartOrder / EntityTooSmall, sealed part manifest), AbortMultipartUpload,
//! ListParts and ListMultipartUploads. Each part is sealed independently with its own part number.

use super::encryption::{customer_key_of, kms_request};
use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use keys::checksum::Algorithm;
use keys::format::Header;
use keys::meta::{ObjectMeta, PartEntry};
use s3s::S3Request;
use s3s::dto::*;
use sha2::Digest;

use super::checksum::{ChecksumRequest, ChecksumValues, precheck_content_md5, with_checksums};
use super::object::{WriteChecks, content_length, copy_result};
use super::{Gateway, MIN_PART_SIZE, etag, ts, user_metadata};
use crate::audit;
use crate::error::{Error, Result};
use crate::index::{PartRecord, UploadRecord};
use crate::request::RequestCtx;
use crate::store::now_ms;
use crate::store::write::random_id;

fn part_number(n: i32) -> Result<u32> {
    match u32::try_from(n) {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(Error::InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive".into(),
        )),
    }
}

fn clamp_max(v: Option<i32>, default: u32) -> u32 {
    match v {
        Some(n) if n >= 0 => u32::try_from(n).unwrap_or(default).min(default),
        _ => default,
    }
}

/// Parses `bytes=a-b` of x-amz-copy-source-range against the source size.
fn copy_range(v: &str, size: u64) -> Result<std::ops::Range<u64>> {
    let bad = || {
        Error::InvalidArgument(format!(
            "invalid x-amz-copy-source-range {v:?}: expected bytes=first-last"
        ))
    };
    let (a, b) = v
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let a: u64 = a.parse().map_err(|_| bad())?;
    let b: u64 = b.parse().map_err(|_| bad())?;
    if a > b || b >= size {
        return Err(Error::InvalidRange);
    }
    Ok(a..b + 1)
}

impl Gateway {
    async fn require_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord> {
        match self.store.get_upload(bucket, upload_id).await? {
            Some(u) if u.key == key => Ok(u),
            _ => {
                self.require_bucket(bucket).await?;
                Err(Error::NoSuchUpload(upload_id.to_owned()))
            }
        }
    }

    pub(super) async fn op_create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> Result<CreateMultipartUploadOutput> {
        let audit = RequestCtx::of(&req.extensions);
        // ListParts and ListMultipartUploads show the initiator: its principal name, never
        // the access key id it signed with
        let owner = self
            .caller(req.credentials.as_ref())
            .await
            .map_err(Error::Client)?
            .principal;
        let credentials = req.credentials;
        let input = req.input;
        let ck = customer_key_of!(self, input)?;
        super::encryption::one_mode(ck.as_ref(), input.server_side_encryption.as_ref())?;
        let state = self.bucket_state(&input.bucket).await?;
        // the object lock the completed object gets, checked now (rights, dates) and kept with
        // the upload; the version id is chosen at completion
        let planned = self
            .new_version(
                credentials.as_ref(),
                &input.bucket,
                &input.key,
                &state,
                super::versioning::lock_headers!(input),
            )
            .await?;
        let explicit_lock =
            input.object_lock_mode.is_some() || input.object_lock_legal_hold_status.is_some();
        let (checksum_algorithm, checksum_type) = upload_checksum(&input)?;
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let rec = UploadRecord {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: upload_id.clone(),
            object_id_hex: hex::encode(random_id()?),
            initiated_ms: now_ms(),
            headers: super::input_headers!(input),
            user_metadata: user_metadata(input.metadata),
            checksum_algorithm,
            checksum_type,
            owner,
        };
        let mut rec = rec;
        super::tagging::stash_header(&mut rec.headers, input.tagging.as_deref())?;
        if explicit_lock {
            super::lock::stash_lock(&mut rec.headers, &planned.lock);
        }
        if let Some(ck) = &ck {
            self.store
                .sse_c_upload_entries(&rec.bucket, ck, &mut rec.headers)
                .await?;
        }
        let sse = input.server_side_encryption.as_ref();
        self.stamp_sse(
            &rec.bucket,
            sse,
            kms_request!(input),
            ck.is_some(),
            &mut rec.headers,
        )
        .await?;
        let echo = super::encryption::Echo::of(&rec.headers, self.sse());
        audit::before_change(audit.as_ref(), 0, None).await?;
        self.store.create_upload(&rec).await?;
        Ok(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_type: upload_checksum_type(&rec),
            checksum_algorithm: input.checksum_algorithm,
            server_side_encryption: echo.sse,
            sse_customer_algorithm: echo.algorithm,
            sse_customer_key_md5: echo.key_md5,
            ssekms_key_id: echo.kms_key_id,
            bucket_key_enabled: echo.bucket_key,
            ssekms_encryption_context: echo.context,
            ..Default::default()
        })
    }

    pub(super) async fn op_upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> Result<UploadPartOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let S3Request {
            input,
            headers: raw_headers,
            trailing_headers,
            ..
        } = req;
        let number = part_number(input.part_number)?;
        precheck_content_md5(input.content_md5.as_deref())?;
        let ck = customer_key_of!(self, input)?;
        let upload = self
            .require_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let mut checksums = ChecksumRequest::new(
            input
                .checksum_algorithm
                .as_ref()
                .map(ChecksumAlgorithm::as_str),
            input.checksum_values(),
            &raw_headers,
            trailing_headers,
        )?;
        // every part of an upload with a checksum algorithm keeps its digest for the composite
        if let Some(a) = upload
            .checksum_algorithm
            .as_deref()
            .and_then(Algorithm::parse)
        {
            checksums.set.enable(a);
        }
        let checks = WriteChecks {
            checksums,
            content_md5: input.content_md5.clone(),
            content_length: content_length(input.content_length)?,
        };
        let part = match input.body {
            Some(body) => {
                self.store
                    .put_part(&upload, number, body, &checks, ck.as_ref(), audit.as_ref())
                    .await?
            }
            None => {
                let empty = futures::stream::empty::<std::result::Result<Bytes, std::io::Error>>();
                self.store
                    .put_part(&upload, number, empty, &checks, ck.as_ref(), audit.as_ref())
                    .await?
            }
        };
        let echo = super::encryption::Echo::of(&upload.headers, self.sse());
        Ok(with_checksums(
            &part.checksums,
            UploadPartOutput {
                e_tag: Some(etag(&part.md5_hex)),
                server_side_encryption: echo.sse,
                sse_customer_algorithm: echo.algorithm,
                sse_customer_key_md5: echo.key_md5,
                ssekms_key_id: echo.kms_key_id,
                bucket_key_enabled: echo.bucket_key,
                ..Default::default()
            },
        ))
    }

    pub(super) async fn op_upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> Result<UploadPartCopyOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let input = req.input;
        let number = part_number(input.part_number)?;
        let src_ck = customer_key_of!(self, input, copy_source)?;
        let dst_ck = customer_key_of!(self, input)?;
        let upload = self
            .require_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let src = self
            .copy_source(
                &input.copy_source,
                input.copy_source_if_match.as_ref(),
                input.copy_source_if_none_match.as_ref(),
                input.copy_source_if_modified_since.as_ref(),
                input.copy_source_if_unmodified_since.as_ref(),
            )
            .await?;
        let range = match input.copy_source_range.as_deref() {
            Some(r) => copy_range(r, src.size)?,
            None => 0..src.size,
        };
        let len = range.end - range.start;
        // both keys are checked before anything is read or sealed
        self.store
            .require_customer_key(&upload.bucket, &upload.headers, None, dst_ck.as_ref())
            .await?;
        let body = self.store.open_object(&src, range, src_ck.as_ref()).await?;
        let mut checksums = ChecksumRequest::default();
        if let Some(a) = upload.checksum_algorithm.as_deref() {
            checksums = ChecksumRequest::new(Some(a), [None; 5], &http::HeaderMap::new(), None)?;
        }
        let checks = WriteChecks {
            checksums,
            content_md5: None,
            content_length: Some(len),
        };
        let part = self
            .store
            .put_part(
                &upload,
                number,
                body,
                &checks,
                dst_ck.as_ref(),
                audit.as_ref(),
            )
            .await?;
        let echo = super::encryption::Echo::of(&upload.headers, self.sse());
        Ok(UploadPartCopyOutput {
            copy_part_result: Some(copy_result(
                &part.checksums,
                &part.md5_hex,
                part.last_modified_ms,
            )),
            server_side_encryption: echo.sse,
            sse_customer_algorithm: echo.algorithm,
            sse_customer_key_md5: echo.key_md5,
            ssekms_key_id: echo.kms_key_id,
            bucket_key_enabled: echo.bucket_key,
            ..Default::default()
        })
    }

    pub(super) async fn op_complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> Result<CompleteMultipartUploadOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let credentials = req.credentials;
        let input = req.input;
        let upload = match self
            .require_upload(&input.bucket, &input.key, &input.upload_id)
            .await
        {
            Ok(u) => u,
            Err(e @ Error::NoSuchUpload(_)) => {
                return match self.completed_before(&input).await? {
                    Some(out) => Ok(out),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let state = self.bucket_state(&input.bucket).await?;
        self.gate_overwrite(credentials.as_ref(), &input.bucket, &input.key, &state)
            .await?;
        let cond = self
            .write_conditions(
                &input.bucket,
                &input.key,
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
            )
            .await?;
        // SSE-C: S3 does not require the key on completion (SDKs resend it); when sent it must
        // be the upload's
        let ck = customer_key_of!(self, input)?;
        if ck.is_some() {
            self.store
                .require_customer_key(&upload.bucket, &upload.headers, None, ck.as_ref())
                .await?;
        }
        let mut upload = upload;
        let version = super::lock::version_of_upload(&state, &mut upload.headers)?;
        let requested = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.clone())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::MalformedXml("You must specify at least one part".into()))?;
        let numbers = requested_numbers(&requested)?;
        let stored_parts: HashMap<u32, PartRecord> = self
            .store
            .list_parts(&input.bucket, &input.upload_id, 0, 10_000)
            .await?
            .into_iter()
            .map(|p| (p.part_number, p))
            .collect();
        let chosen = chosen_parts(&requested, &numbers, &stored_parts)?;
        let mut meta = manifest_meta(&upload, &chosen)?;
        meta.checksums = completed_checksum(&upload, &requested, &chosen, input.checksum_values())?;
        let rec = self
            .store
            .complete_upload(
                &upload,
                &chosen,
                &meta,
                &version,
                cond.as_ref(),
                audit.as_ref(),
            )
            .await?;
        Ok(completed(&input, &rec, &state, self.sse()))
    }

    /// A CompleteMultipartUpload sent again after it succeeded (a client retrying a response it
    /// lost): when the key's current version is the multipart object these very parts made
    /// (same part numbers and ETags, in order), the first answer again, as S3 gives it; else
    /// None (NoSuchUpload). Nothing is written.
    async fn completed_before(
        &self,
        input: &CompleteMultipartUploadInput,
    ) -> Result<Option<CompleteMultipartUploadOutput>> {
        let Some(requested) = input
            .multipart_upload
            .as_ref()
            .and_then(|m| m.parts.as_ref())
            .filter(|p| !p.is_empty())
        else {
            return Ok(None);
        };
        let Some(rec) = self
            .store
            .get_version(&input.bucket, &input.key, None)
            .await?
            .filter(|r| !r.delete_marker && r.manifest_id.is_some())
        else {
            return Ok(None);
        };
        let same = rec.streams.len() == requested.len()
            && rec.streams.iter().zip(requested).all(|(s, p)| {
                p.part_number.and_then(|n| u32::try_from(n).ok()) == Some(s.part_number)
                    && p.e_tag
                        .as_ref()
                        .is_none_or(|e| e.value().trim_matches('"') == s.md5_hex)
            });
        if !same {
            return Ok(None);
        }
        let state = self.bucket_state(&input.bucket).await?;
        Ok(Some(completed(input, &rec, &state, self.sse())))
    }

    pub(super) async fn op_abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> Result<AbortMultipartUploadOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let input = req.input;
        self.require_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        audit::before_change(audit.as_ref(), 0, None).await?;
        self.store
            .abort_upload(&input.bucket, &input.upload_id)
            .await?;
        Ok(AbortMultipartUploadOutput::default())
    }

    pub(super) async fn op_list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> Result<ListPartsOutput> {
        let input = req.input;
        let upload = self
            .require_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let max = clamp_max(input.max_parts, 1000);
        let after = input
            .part_number_marker
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(0);
        let mut parts = self
            .store
            .list_parts(
                &input.bucket,
                &input.upload_id,
                after,
                max.saturating_add(1),
            )
            .await?;
        let truncated = parts.len() > max as usize;
        parts.truncate(max as usize);
        let next = parts
            .last()
            .map(|p| i32::try_from(p.part_number).unwrap_or(i32::MAX));
        let owner = Owner {
            display_name: Some(upload.owner.clone()),
            id: Some(upload.owner.clone()),
        };
        Ok(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: i32::try_from(max).ok(),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            is_truncated: Some(truncated),
            checksum_algorithm: upload
                .checksum_algorithm
                .clone()
                .map(ChecksumAlgorithm::from),
            checksum_type: upload_checksum_type(&upload),
            initiator: Some(Initiator {
                display_name: owner.display_name.clone(),
                id: owner.id.clone(),
            }),
            owner: Some(owner),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            parts: Some(
                parts
                    .into_iter()
                    .map(|p| {
                        with_checksums(
                            &p.checksums,
                            Part {
                                part_number: i32::try_from(p.part_number).ok(),
                                e_tag: Some(etag(&p.md5_hex)),
                                size: i64::try_from(p.size).ok(),
                                last_modified: Some(ts(p.last_modified_ms)),
                                ..Default::default()
                            },
                        )
                    })
                    .collect(),
            ),
            ..Default::default()
        })
    }

    pub(super) async fn op_list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> Result<ListMultipartUploadsOutput> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        let max = clamp_max(input.max_uploads, 1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        let mut uploads = self
            .store
            .list_uploads(
                &input.bucket,
                &prefix,
                input.key_marker.as_deref(),
                input.upload_id_marker.as_deref(),
                max.saturating_add(1),
            )
            .await?;
        let truncated = uploads.len() > max as usize;
        uploads.truncate(max as usize);
        let (next_key, next_id) = match uploads.last() {
            Some(u) if truncated => (Some(u.key.clone()), Some(u.upload_id.clone())),
            _ => (None, None),
        };
        Ok(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: i32::try_from(max).ok(),
            is_truncated: Some(truncated),
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            uploads: Some(
                uploads
                    .into_iter()
                    .map(|u| {
                        let who = Some(u.owner.clone());
                        let checksum_type = upload_checksum_type(&u);
                        MultipartUpload {
                            key: Some(u.key),
                            upload_id: Some(u.upload_id),
                            initiated: Some(ts(u.initiated_ms)),
                            checksum_type,
                            checksum_algorithm: u.checksum_algorithm.map(ChecksumAlgorithm::from),
                            initiator: Some(Initiator {
                                display_name: who.clone(),
                                id: who.clone(),
                            }),
                            owner: Some(Owner {
                                display_name: who.clone(),
                                id: who,
                            }),
                            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        }
                    })
                    .collect(),
            ),
            ..Default::default()
        })
    }
}

/// The part numbers a CompleteMultipartUpload names, each present, in range and in ascending
/// order.
fn requested_numbers(requested: &[CompletedPart]) -> Result<Vec<u32>> {
    let mut numbers = Vec::with_capacity(requested.len());
    for p in requested {
        let n = p
            .part_number
            .ok_or_else(|| Error::MalformedXml("every part needs a PartNumber".into()))?;
        let n = part_number(n)
            .map_err(|_| Error::InvalidPart(format!("part number {n} is out of range")))?;
        if numbers.last().is_some_and(|last| *last >= n) {
            return Err(Error::InvalidPartOrder);
        }
        numbers.push(n);
    }
    Ok(numbers)
}

/// The stored parts a CompleteMultipartUpload names: each uploaded, with the ETag it gives (if
/// any), and all but the last at least 5 MiB.
fn chosen_parts<'a>(
    requested: &[CompletedPart],
    numbers: &[u32],
    stored_parts: &'a HashMap<u32, PartRecord>,
) -> Result<Vec<&'a PartRecord>> {
    let mut chosen: Vec<&PartRecord> = Vec::with_capacity(requested.len());
    for (p, n) in requested.iter().zip(numbers) {
        let part = stored_parts
            .get(n)
            .ok_or_else(|| Error::InvalidPart(format!("part {n} has not been uploaded")))?;
        if let Some(e) = &p.e_tag
            && e.value().trim_matches('"') != part.md5_hex
        {
            return Err(Error::InvalidPart(format!(
                "the ETag of part {n} does not match"
            )));
        }
        chosen.push(part);
    }
    if let Some((_, all_but_last)) = chosen.split_last() {
        for p in all_but_last {
            if p.size < MIN_PART_SIZE {
                return Err(Error::EntityTooSmall(format!(
                    "part {} is {} bytes; every part but the last must be at least 5 MiB",
                    p.part_number, p.size
                )));
            }
        }
    }
    Ok(chosen)
}

/// The answer of a CompleteMultipartUpload that made `rec` (also the answer to a retry): its
/// ETag, version and COMPOSITE checksum.
fn completed(
    input: &CompleteMultipartUploadInput,
    rec: &crate::index::ObjectRecord,
    state: &crate::index::BucketState,
    sse: Option<ServerSideEncryption>,
) -> CompleteMultipartUploadOutput {
    let echo = super::encryption::Echo::of(&rec.headers, sse);
    with_checksums(
        &rec.checksums,
        CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&rec.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            server_side_encryption: echo.sse,
            ssekms_key_id: echo.kms_key_id,
            bucket_key_enabled: echo.bucket_key,
            version_id: super::versioning::written_version(rec, state),
            checksum_type: super::checksum::checksum_type_of(rec),
            ..Default::default()
        },
    )
}

/// The checksum of a new upload: its algorithm (`x-amz-checksum-algorithm`, lower-case name)
/// and `FULL_OBJECT` when its object's checksum is the CRC of the whole (`x-amz-checksum-type`;
/// CRC64NVME has no other type, the other CRCs are COMPOSITE unless asked). As S3: a type
/// without an algorithm, an unknown type, FULL_OBJECT with a SHA or COMPOSITE with CRC64NVME
/// is 400 InvalidRequest.
fn upload_checksum(input: &CreateMultipartUploadInput) -> Result<(Option<String>, Option<String>)> {
    let asked = input.checksum_type.as_ref().map(|t| t.as_str().to_owned());
    let Some(a) = input.checksum_algorithm.as_ref() else {
        if asked.is_some() {
            return Err(Error::InvalidRequest(
                "x-amz-checksum-type requires x-amz-checksum-algorithm".into(),
            ));
        }
        return Ok((None, None));
    };
    let algo = Algorithm::parse(a.as_str()).ok_or_else(|| {
        Error::InvalidArgument(format!("unsupported checksum algorithm {}", a.as_str()))
    })?;
    let full_object = match asked.as_deref() {
        None => algo == Algorithm::Crc64Nvme,
        Some(ChecksumType::FULL_OBJECT) => true,
        Some(ChecksumType::COMPOSITE) => false,
        Some(other) => {
            return Err(Error::InvalidRequest(format!(
                "Value for x-amz-checksum-type header is invalid: {other}"
            )));
        }
    };
    let refused = (full_object && !algo.is_crc()) || (!full_object && algo == Algorithm::Crc64Nvme);
    if refused {
        let kind = if full_object {
            "FULL_OBJECT"
        } else {
            "COMPOSITE"
        };
        return Err(Error::InvalidRequest(format!(
            "The {} checksum algorithm does not support the {kind} checksum type.",
            algo.name().to_ascii_uppercase()
        )));
    }
    Ok((
        Some(algo.name().to_owned()),
        full_object.then(|| ChecksumType::FULL_OBJECT.to_owned()),
    ))
}

/// The checksum type an upload's object gets (None: the upload has no algorithm).
fn upload_checksum_type(u: &UploadRecord) -> Option<ChecksumType> {
    u.checksum_algorithm.as_ref()?;
    Some(ChecksumType::from_static(if is_full_object(u) {
        ChecksumType::FULL_OBJECT
    } else {
        ChecksumType::COMPOSITE
    }))
}

fn is_full_object(u: &UploadRecord) -> bool {
    u.checksum_type.as_deref() == Some(ChecksumType::FULL_OBJECT)
}

/// The checksum of a completed upload created with a checksum algorithm: each part the client
/// lists with a checksum must match the part's stored one (InvalidPart); the object's value is
/// the COMPOSITE (`<b64>-<n>`) or, for a FULL_OBJECT upload, the parts' CRCs combined, and a
/// checksum of the whole request must match it (BadDigest; a COMPOSITE one with or without its
/// `-<n>`). An upload without an algorithm gets none, and a checksum on its completion is
/// refused.
fn completed_checksum(
    upload: &UploadRecord,
    requested: &[CompletedPart],
    chosen: &[&PartRecord],
    claimed: [Option<&String>; 5],
) -> Result<BTreeMap<String, String>> {
    let Some(algo) = upload_algorithm(upload) else {
        if claimed.iter().any(Option::is_some) {
            return Err(Error::InvalidRequest(
                "The upload was created without x-amz-checksum-algorithm, so its completion cannot carry a checksum.".into(),
            ));
        }
        return Ok(BTreeMap::new());
    };
    let values = part_checksums(algo, requested, chosen)?;
    let value = if is_full_object(upload) {
        let sized: Vec<(&str, u64)> = values
            .iter()
            .copied()
            .zip(chosen.iter().map(|p| p.size))
            .collect();
        super::checksum::full_object(algo, &sized)?
    } else {
        super::checksum::composite(algo, &values)?
    };
    for (a, v) in Algorithm::ALL.into_iter().zip(claimed) {
        let Some(v) = v else { continue };
        let whole = value.split('-').next().unwrap_or_default();
        if a != algo || (v.trim() != value && v.trim() != whole) {
            return Err(Error::BadDigest(format!(
                "The x-amz-checksum-{a} you specified did not match the calculated checksum."
            )));
        }
    }
    Ok(BTreeMap::from([(algo.name().to_owned(), value)]))
}

/// The algorithm of an upload created with one.
fn upload_algorithm(upload: &UploadRecord) -> Option<Algorithm> {
    upload
        .checksum_algorithm
        .as_deref()
        .and_then(Algorithm::parse)
}

/// The stored `algo` checksums of the chosen parts, in order; a part listed with another value
/// than its stored one is InvalidPart.
fn part_checksums<'a>(
    algo: Algorithm,
    requested: &[CompletedPart],
    chosen: &[&'a PartRecord],
) -> Result<Vec<&'a str>> {
    let mut values = Vec::with_capacity(chosen.len());
    for (p, part) in requested.iter().zip(chosen) {
        let stored = part.checksums.get(algo.name()).ok_or_else(|| {
            Error::InvalidPart(format!(
                "part {} has no {algo} checksum (uploaded before the algorithm was known?)",
                part.part_number
            ))
        })?;
        let listed = Algorithm::ALL
            .into_iter()
            .zip(p.checksum_values())
            .find_map(|(a, v)| (a == algo).then_some(v).flatten());
        if let Some(v) = listed
            && v.trim() != stored
        {
            return Err(Error::InvalidPart(format!(
                "the {algo} checksum of part {} does not match",
                part.part_number
            )));
        }
        values.push(stored.as_str());
    }
    Ok(values)
}

/// The sealed metadata of the multipart object `chosen` make: its parts (each bound to its
/// header's SHA-256), size, multipart ETag and the upload's headers, dated now.
fn manifest_meta(upload: &UploadRecord, chosen: &[&PartRecord]) -> Result<ObjectMeta> {
    let algo = upload_algorithm(upload);
    let mut entries = Vec::with_capacity(chosen.len());
    for p in chosen {
        let header = Header::decode(&p.header)?;
        // the part's checksum of the upload's algorithm (the object's parts report it)
        let checksums = algo
            .and_then(|a| p.checksums.get_key_value(a.name()))
            .map(|(k, v)| BTreeMap::from([(k.clone(), v.clone())]))
            .unwrap_or_default();
        entries.push(PartEntry {
            part_number: p.part_number,
            size: p.size,
            md5_hex: p.md5_hex.clone(),
            backend_id: p.backend_id.clone(),
            header_sha256_hex: hex::encode(sha2::Sha256::digest(header.as_bytes())),
            checksums,
        });
    }
    let etag_value = keys::meta::multipart_etag(&entries)?;
    let size: u64 = chosen.iter().map(|p| p.size).sum();
    Ok(ObjectMeta {
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        size,
        etag: etag_value,
        last_modified_ms: now_ms(),
        headers: upload.headers.clone(),
        user_metadata: upload.user_metadata.clone(),
        checksums: BTreeMap::new(),
        parts: entries,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_range_parses_and_checks_bounds() {
        assert_eq!(copy_range("bytes=0-9", 100).unwrap(), 0..10);
        assert_eq!(copy_range("bytes=90-99", 100).unwrap(), 90..100);
        assert!(matches!(
            copy_range("bytes=90-100", 100),
            Err(Error::InvalidRange)
        ));
        assert!(matches!(
            copy_range("bytes=9-3", 100),
            Err(Error::InvalidRange)
        ));
        assert!(matches!(
            copy_range("bytes=-3", 100),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            copy_range("0-3", 100),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn part_numbers_are_bounded() {
        assert_eq!(part_number(1).unwrap(), 1);
        assert_eq!(part_number(10_000).unwrap(), 10_000);
        assert!(part_number(0).is_err());
        assert!(part_number(10_001).is_err());
        assert!(part_number(-1).is_err());
    }

    fn upload(algo: Option<&str>) -> UploadRecord {
        UploadRecord {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "u".into(),
            object_id_hex: String::new(),
            initiated_ms: 0,
            headers: BTreeMap::new(),
            user_metadata: BTreeMap::new(),
            checksum_algorithm: algo.map(str::to_owned),
            checksum_type: None,
            owner: "o".into(),
        }
    }

    fn part(n: u32, sha256: Option<&str>) -> PartRecord {
        PartRecord {
            bucket: "b".into(),
            upload_id: "u".into(),
            part_number: n,
            backend_id: String::new(),
            header: Vec::new(),
            size: 1024,
            md5_hex: String::new(),
            checksums: sha256
                .map(|v| BTreeMap::from([("sha256".to_owned(), v.to_owned())]))
                .unwrap_or_default(),
            last_modified_ms: 0,
        }
    }

    #[test]
    fn completion_checks_the_composite_checksum() {
        const PART: &str = "arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0=";
        const WHOLE: &str = "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1";
        let listed = |v: Option<&str>| {
            vec![CompletedPart {
                part_number: Some(1),
                checksum_sha256: v.map(str::to_owned),
                ..Default::default()
            }]
        };
        let stored = part(1, Some(PART));
        let chosen = vec![&stored];
        let up = upload(Some("sha256"));
        let whole = WHOLE.to_owned();
        let got = completed_checksum(&up, &listed(Some(PART)), &chosen, [None; 5]).unwrap();
        assert_eq!(got.get("sha256").map(String::as_str), Some(WHOLE));
        // the whole-request checksum, with or without its part count
        let bare = WHOLE.trim_end_matches("-1").to_owned();
        for ok in [&whole, &bare] {
            completed_checksum(
                &up,
                &listed(None),
                &chosen,
                [None, None, None, Some(ok), None],
            )
            .unwrap();
        }
        let bad = "bad".to_owned();
        assert!(matches!(
            completed_checksum(
                &up,
                &listed(Some(PART)),
                &chosen,
                [None, None, None, Some(&bad), None]
            ),
            Err(Error::BadDigest(_))
        ));
        // another algorithm than the upload's
        assert!(matches!(
            completed_checksum(
                &up,
                &listed(None),
                &chosen,
                [Some(&whole), None, None, None, None]
            ),
            Err(Error::BadDigest(_))
        ));
        // a part listed with another checksum than it was uploaded with
        let other = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        assert!(matches!(
            completed_checksum(&up, &listed(Some(other)), &chosen, [None; 5]),
            Err(Error::InvalidPart(_))
        ));
        // a part without the upload's checksum
        let bare_part = part(1, None);
        assert!(matches!(
            completed_checksum(&up, &listed(None), &[&bare_part], [None; 5]),
            Err(Error::InvalidPart(_))
        ));
        // an upload without an algorithm: nothing, and a checksum on completion is refused
        let plain = upload(None);
        assert!(
            completed_checksum(&plain, &listed(None), &chosen, [None; 5])
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            completed_checksum(
                &plain,
                &listed(None),
                &chosen,
                [None, None, None, Some(&whole), None]
            ),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn full_object_uploads_combine_their_parts_crcs() {
        use base64::Engine;
        let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let (x, y) = data.split_at(1024);
        for algo in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let mut up = upload(Some(algo.name()));
            up.checksum_type = Some(ChecksumType::FULL_OBJECT.to_owned());
            let mut parts = Vec::new();
            for (i, piece) in [x, y].into_iter().enumerate() {
                let mut p = part(i as u32 + 1, None);
                p.size = piece.len() as u64;
                let v = b64(&keys::checksum::digest(algo, piece));
                p.checksums = BTreeMap::from([(algo.name().to_owned(), v)]);
                parts.push(p);
            }
            let chosen: Vec<&PartRecord> = parts.iter().collect();
            let listed: Vec<CompletedPart> = (1..=2)
                .map(|n| CompletedPart {
                    part_number: Some(n),
                    ..Default::default()
                })
                .collect();
            let whole = b64(&keys::checksum::digest(algo, &data));
            let got = completed_checksum(&up, &listed, &chosen, [None; 5]).unwrap();
            assert_eq!(got.get(algo.name()), Some(&whole), "{algo}");
            // the client's value of the whole object is checked
            let mut claimed: [Option<&String>; 5] = [None; 5];
            let idx = Algorithm::ALL.iter().position(|a| *a == algo).unwrap();
            claimed[idx] = Some(&whole);
            completed_checksum(&up, &listed, &chosen, claimed).unwrap();
            let wrong = b64(&keys::checksum::digest(algo, x));
            claimed[idx] = Some(&wrong);
            assert!(matches!(
                completed_checksum(&up, &listed, &chosen, claimed),
                Err(Error::BadDigest(_))
            ));
            // a composite-looking value is not the full-object one
            let composite = format!("{whole}-2");
            claimed[idx] = Some(&composite);
            assert!(matches!(
                completed_checksum(&up, &listed, &chosen, claimed),
                Err(Error::BadDigest(_))
            ));
        }
    }

    #[test]
    fn upload_checksum_types_as_s3() {
        let input = |algo: Option<&str>, kind: Option<&str>| CreateMultipartUploadInput {
            bucket: "b".into(),
            key: "k".into(),
            checksum_algorithm: algo.map(|a| ChecksumAlgorithm::from(a.to_owned())),
            checksum_type: kind.map(|t| ChecksumType::from(t.to_owned())),
            ..Default::default()
        };
        let full = Some(ChecksumType::FULL_OBJECT.to_owned());
        let ok = |a, t| upload_checksum(&input(a, t)).unwrap();
        assert_eq!(ok(None, None), (None, None));
        assert_eq!(ok(Some("SHA256"), None), (Some("sha256".into()), None));
        assert_eq!(
            ok(Some("CRC32"), Some("COMPOSITE")),
            (Some("crc32".into()), None)
        );
        assert_eq!(
            ok(Some("CRC32"), Some("FULL_OBJECT")),
            (Some("crc32".into()), full.clone())
        );
        assert_eq!(
            ok(Some("CRC32C"), Some("FULL_OBJECT")),
            (Some("crc32c".into()), full.clone())
        );
        // CRC64NVME is FULL_OBJECT whether asked or not
        assert_eq!(
            ok(Some("CRC64NVME"), None),
            (Some("crc64nvme".into()), full.clone())
        );
        assert_eq!(
            ok(Some("CRC64NVME"), Some("FULL_OBJECT")),
            (Some("crc64nvme".into()), full)
        );
        for (a, t) in [
            (Some("SHA256"), Some("FULL_OBJECT")),
            (Some("SHA1"), Some("FULL_OBJECT")),
            (Some("CRC64NVME"), Some("COMPOSITE")),
            (Some("CRC32"), Some("WHOLE")),
            (None, Some("FULL_OBJECT")),
        ] {
            assert!(
                matches!(upload_checksum(&input(a, t)), Err(Error::InvalidRequest(_))),
                "{a:?} {t:?}"
            );
        }
    }
}
