//! Object metadata sealed inside every object (trailer of a single-PUT object, body of a multipart
//! manifest), the part list of a manifest, and the checks a reader runs against that part list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::{Header, StreamKind};

/// Sealed inside every object; enough to rebuild the index from the backend alone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ObjectMeta {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Plaintext size of the whole object.
    pub size: u64,
    /// S3 ETag without quotes.
    pub etag: String,
    /// Last-modified time, ms since the epoch.
    pub last_modified_ms: i64,
    /// content-type, content-encoding, cache-control, content-disposition, content-language, expires (lower-case names).
    pub headers: BTreeMap<String, String>,
    /// x-amz-meta-* without the prefix.
    pub user_metadata: BTreeMap<String, String>,
    /// "crc32" -> base64, ...
    pub checksums: BTreeMap<String, String>,
    /// Parts of a multipart object (empty for single-PUT objects).
    pub parts: Vec<PartEntry>,
    /// Version id (absent: the `null` version, as every stream written before versioning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// This stream is a delete marker (no data), not an object.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
    /// Object lock retention at write time: `GOVERNANCE` / `COMPLIANCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<String>,
    /// Retain-until of that retention, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_until_ms: Option<i64>,
    /// Legal hold on at write time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legal_hold: bool,
    /// This stream is a lock record (no data): the retention and legal hold that
    /// PutObjectRetention / PutObjectLegalHold set on version `version_id` of `key`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lock_record: bool,
}

/// One part of a multipart object, as recorded in its sealed manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PartEntry {
    /// 1-based part number.
    pub part_number: u32,
    /// Plaintext size of the part.
    pub size: u64,
    /// MD5 of the part's plaintext, lower-case hex.
    pub md5_hex: String,
    /// Backend id of the part stream.
    pub backend_id: String,
    /// SHA-256 of the part stream's header, lower-case hex.
    pub header_sha256_hex: String,
    /// The part's flexible checksum of the upload's algorithm ("crc32" -> base64), kept so
    /// that GetObjectAttributes and `GET ?partNumber` report it and reindex restores it. Empty
    /// (and absent from the encoding, so older manifests read unchanged) for an upload without
    /// a checksum algorithm.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// Canonical encoding sealed into streams (JSON, field order as declared).
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| Error::Format(format!("cannot encode object metadata: {e}")))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<ObjectMeta> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Format(format!("bad sealed object metadata: {e}")))
    }
}

/// S3 multipart ETag (without quotes): hex(MD5(concat of part MD5s)) + "-" + number of parts.
pub fn multipart_etag(parts: &[PartEntry]) -> Result<String> {
    use md5::Digest;
    let mut h = md5::Md5::new();
    for p in parts {
        let mut raw = [0u8; 16];
        hex::decode_to_slice(&p.md5_hex, &mut raw)
            .map_err(|_| Error::Format(format!("part {} has a bad MD5", p.part_number)))?;
        h.update(raw);
    }
    let d: [u8; 16] = h.finalize().into();
    Ok(format!("{}-{}", hex::encode(d), parts.len()))
}

/// Checks that `parts` (the headers of the part streams the index points at, in object order, with
/// their stored sizes) are exactly the parts the manifest lists: same count, order, part numbers,
/// header hashes, sizes, and the manifest's object id. Detects a dropped, extra, swapped or
/// substituted part. `manifest_header` is the header of the manifest stream.
pub fn verify_parts(
    manifest_header: &Header,
    meta: &ObjectMeta,
    parts: &[(Header, u64)],
) -> Result<()> {
    if manifest_header.kind() != StreamKind::Manifest {
        return Err(Error::Integrity("not a manifest stream".into()));
    }
    if parts.len() != meta.parts.len() {
        return Err(Error::Integrity(format!(
            "manifest lists {} parts, {} present",
            meta.parts.len(),
            parts.len()
        )));
    }
    let mut total = 0u64;
    let mut prev = 0u32;
    for (entry, (h, size)) in meta.parts.iter().zip(parts) {
        if entry.part_number <= prev {
            return Err(Error::Integrity(
                "manifest part numbers are not increasing".into(),
            ));
        }
        prev = entry.part_number;
        if h.kind() != StreamKind::Part || h.part_number() != entry.part_number {
            return Err(Error::Integrity(format!(
                "part {} is missing or out of order",
                entry.part_number
            )));
        }
        if h.object_id() != manifest_header.object_id() {
            return Err(Error::Integrity(format!(
                "part {} belongs to another upload",
                entry.part_number
            )));
        }
        if hex::encode(h.sha256()) != entry.header_sha256_hex {
            return Err(Error::Integrity(format!(
                "part {} header does not match the manifest",
                entry.part_number
            )));
        }
        if *size != entry.size {
            return Err(Error::Integrity(format!(
                "part {} size does not match the manifest",
                entry.part_number
            )));
        }
        total = total
            .checked_add(entry.size)
            .ok_or_else(|| Error::Integrity("part sizes overflow".into()))?;
    }
    if total != meta.size {
        return Err(Error::Integrity(
            "part sizes do not add up to the object size".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_checksums_are_optional_in_the_encoding() {
        // a manifest entry written before part checksums were kept
        let old = r#"{"part_number":1,"size":5,"md5_hex":"00","backend_id":"b","header_sha256_hex":"11"}"#;
        let e: PartEntry = serde_json::from_str(old).unwrap();
        assert!(e.checksums.is_empty());
        // and an entry without checksums is encoded exactly as before
        assert_eq!(serde_json::to_string(&e).unwrap(), old);
        let mut with = e.clone();
        with.checksums.insert("crc32".into(), "NhCmhg==".into());
        let enc = serde_json::to_string(&with).unwrap();
        assert!(
            enc.ends_with(r#","checksums":{"crc32":"NhCmhg=="}}"#),
            "{enc}"
        );
        assert_eq!(serde_json::from_str::<PartEntry>(&enc).unwrap(), with);
    }
}
