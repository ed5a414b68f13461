//! Which flexible checksums a request asks for (x-amz-checksum-* headers, x-amz-sdk-checksum-algorithm,
//! aws-chunked trailers) and their verification against what the sealer computed over the
//! plaintext, plus Content-MD5.

use std::collections::BTreeMap;

use base64::Engine;
use http::HeaderMap;
use keys::checksum::{Algorithm, ChecksumSet, Checksums};
use s3s::TrailingHeaders;
use s3s::dto::*;

use crate::error::{Error, Result};

/// The checksums a write must compute and the values it must match.
#[derive(Debug, Default)]
pub(crate) struct ChecksumRequest {
    /// algorithms to compute
    pub set: ChecksumSet,
    /// algorithm -> base64 value sent in a header
    pub expected: Vec<(Algorithm, String)>,
    /// algorithm whose value arrives in the aws-chunked trailer
    pub trailer: Option<Algorithm>,
    pub trailing: Option<TrailingHeaders>,
}

/// The `x-amz-checksum-*` values of an s3s input DTO, in [`Algorithm::ALL`] order.
pub(crate) trait ChecksumValues {
    fn checksum_values(&self) -> [Option<&String>; 5];
}

/// The `checksum_*` fields of an s3s output DTO, filled from an object's (or part's) stored
/// checksums: one builder for every answer that reports them.
pub(crate) trait ChecksumFields {
    fn set_checksums(&mut self, stored: &BTreeMap<String, String>);
    fn checksum_of(&self, a: Algorithm) -> Option<&String>;
}

macro_rules! checksum_dtos {
    (inputs: $($i:ty),*; outputs: $($o:ty),*) => {
        $(impl ChecksumValues for $i {
            fn checksum_values(&self) -> [Option<&String>; 5] {
                [
                    self.checksum_crc32.as_ref(),
                    self.checksum_crc32c.as_ref(),
                    self.checksum_sha1.as_ref(),
                    self.checksum_sha256.as_ref(),
                    self.checksum_crc64nvme.as_ref(),
                ]
            }
        })*
        $(impl ChecksumFields for $o {
            fn set_checksums(&mut self, m: &BTreeMap<String, String>) {
                self.checksum_crc32 = stored(m, Algorithm::Crc32);
                self.checksum_crc32c = stored(m, Algorithm::Crc32c);
                self.checksum_sha1 = stored(m, Algorithm::Sha1);
                self.checksum_sha256 = stored(m, Algorithm::Sha256);
                self.checksum_crc64nvme = stored(m, Algorithm::Crc64Nvme);
            }
            fn checksum_of(&self, a: Algorithm) -> Option<&String> {
                match a {
                    Algorithm::Crc32 => self.checksum_crc32.as_ref(),
                    Algorithm::Crc32c => self.checksum_crc32c.as_ref(),
                    Algorithm::Sha1 => self.checksum_sha1.as_ref(),
                    Algorithm::Sha256 => self.checksum_sha256.as_ref(),
                    Algorithm::Crc64Nvme => self.checksum_crc64nvme.as_ref(),
                }
            }
        })*
    };
}

/// `t` with its checksum fields filled from `stored`.
pub(crate) fn with_checksums<T: ChecksumFields>(stored: &BTreeMap<String, String>, mut t: T) -> T {
    t.set_checksums(stored);
    t
}

/// `t` with its checksum fields filled from `stored` when there is something to report.
pub(crate) fn with_checksums_if<T: ChecksumFields>(
    stored: Option<&BTreeMap<String, String>>,
    t: T,
) -> T {
    match stored {
        Some(m) => with_checksums(m, t),
        None => t,
    }
}

checksum_dtos! {
    inputs: PutObjectInput, UploadPartInput, CompleteMultipartUploadInput, CompletedPart;
    outputs: PutObjectOutput, GetObjectOutput, HeadObjectOutput, CopyObjectResult,
        UploadPartOutput, CopyPartResult, Part, Checksum, CompleteMultipartUploadOutput,
        ObjectPart
}

/// The type of an object's stored checksums: COMPOSITE for a multipart object whose values are
/// the digest of its parts' digests (`<b64>-<n>`: base64 has no `-`), FULL_OBJECT for a single
/// PUT and for a multipart upload created with that type (a plain `<b64>`, the CRC of the
/// whole). The value itself says which, in the index and in the sealed metadata alike, so
/// reindex restores the type with the value. None: none stored.
pub(crate) fn checksum_type_of(rec: &crate::index::ObjectRecord) -> Option<ChecksumType> {
    if rec.checksums.is_empty() {
        return None;
    }
    let composite = rec.manifest_id.is_some() && rec.checksums.values().all(|v| v.contains('-'));
    Some(ChecksumType::from_static(if composite {
        ChecksumType::COMPOSITE
    } else {
        ChecksumType::FULL_OBJECT
    }))
}

/// S3's COMPOSITE checksum of a multipart object: the `algo` digest of its parts' digests
/// (stored base64 values, in part order), base64, then `-<number of parts>`.
pub(crate) fn composite(algo: Algorithm, parts: &[&str]) -> Result<String> {
    let mut raw = Vec::with_capacity(parts.len() * algo.digest_len());
    for v in parts {
        let d = base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|_| Error::InvalidPart(format!("a stored {algo} checksum is not base64")))?;
        raw.extend_from_slice(&d);
    }
    Ok(format!(
        "{}-{}",
        base64::engine::general_purpose::STANDARD.encode(keys::checksum::digest(algo, &raw)),
        parts.len()
    ))
}

/// S3's FULL_OBJECT checksum of a multipart object: the CRC of its whole plaintext, combined
/// from its parts' CRCs (stored base64 values with the parts' sizes, in part order), base64.
pub(crate) fn full_object(algo: Algorithm, parts: &[(&str, u64)]) -> Result<String> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let mut acc: Option<Vec<u8>> = None;
    for (v, len) in parts {
        let d = b64
            .decode(v)
            .map_err(|_| Error::InvalidPart(format!("a stored {algo} checksum is not base64")))?;
        acc = Some(match acc {
            None => d,
            Some(a) => keys::checksum::crc_combine(algo, &a, &d, *len).ok_or_else(|| {
                Error::InvalidPart(format!("{algo} part checksums cannot be combined"))
            })?,
        });
    }
    let whole = acc.ok_or_else(|| Error::InvalidPart("no parts".into()))?;
    Ok(b64.encode(whole))
}

impl ChecksumRequest {
    /// Builds the request from the operation's checksum fields and the raw headers.
    pub(crate) fn new(
        algorithm: Option<&str>,
        values: [Option<&String>; 5],
        headers: &HeaderMap,
        trailing: Option<TrailingHeaders>,
    ) -> Result<ChecksumRequest> {
        let mut r = ChecksumRequest::default();
        if let Some(a) = algorithm {
            let a = Algorithm::parse(a).ok_or_else(|| {
                Error::InvalidArgument(format!("unsupported checksum algorithm {a}"))
            })?;
            r.set.enable(a);
        }
        for (algo, v) in Algorithm::ALL.into_iter().zip(values) {
            if let Some(v) = v {
                // a value that is no digest at all (not base64, wrong length) is what AWS
                // answers 400 InvalidRequest to, with this message; a well-formed value that
                // does not match is BadDigest (`verify`)
                let invalid = || {
                    Error::InvalidRequest(format!(
                        "Value for x-amz-checksum-{algo} header is invalid."
                    ))
                };
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .map_err(|_| invalid())?;
                if raw.len() != algo.digest_len() {
                    return Err(invalid());
                }
                r.set.enable(algo);
                r.expected.push((algo, v.trim().to_owned()));
            }
        }
        if let Some(t) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            for name in t.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                // a trailer the gateway would not check is refused, never ignored
                let a = Algorithm::parse(name).ok_or_else(|| {
                    Error::InvalidRequest(format!(
                        "x-amz-trailer names {name}, which is not a checksum this gateway checks"
                    ))
                })?;
                r.set.enable(a);
                r.trailer = Some(a);
            }
            r.trailing = trailing;
        }
        Ok(r)
    }

    /// Compares the computed checksums with the header values and the trailer value.
    pub(crate) fn verify(&self, computed: &Checksums) -> Result<()> {
        let got = computed.to_base64_map();
        for (algo, want) in &self.expected {
            check(*algo, want, got.get(algo.name()))?;
        }
        if let Some(algo) = self.trailer {
            let name = algo.header();
            let want = self
                .trailing
                .as_ref()
                .and_then(|t| {
                    t.read(|h| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned))
                })
                .flatten();
            match want {
                Some(want) => check(algo, want.trim(), got.get(algo.name()))?,
                None => {
                    return Err(Error::InvalidRequest(format!(
                        "x-amz-trailer announced {name} but the body carried no such trailer"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn check(algo: Algorithm, want: &str, got: Option<&String>) -> Result<()> {
    match got {
        Some(g) if g == want => Ok(()),
        _ => Err(Error::BadDigest(format!(
            "The {} you specified did not match the calculated checksum.",
            algo.name().to_ascii_uppercase()
        ))),
    }
}

/// Checks a Content-MD5 header against the MD5 of the plaintext.
pub(crate) fn verify_content_md5(content_md5: Option<&str>, md5: &[u8; 16]) -> Result<()> {
    let Some(v) = content_md5 else { return Ok(()) };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| Error::InvalidDigest("The Content-MD5 you specified was invalid.".into()))?;
    if raw.len() != 16 {
        return Err(Error::InvalidDigest(
            "The Content-MD5 you specified was invalid.".into(),
        ));
    }
    if raw.as_slice() != md5.as_slice() {
        return Err(Error::BadDigest(
            "The Content-MD5 you specified did not match what we received.".into(),
        ));
    }
    Ok(())
}

/// Validates a Content-MD5 header before any data is read (InvalidDigest for bad syntax).
pub(crate) fn precheck_content_md5(content_md5: Option<&str>) -> Result<()> {
    let Some(v) = content_md5 else { return Ok(()) };
    match base64::engine::general_purpose::STANDARD.decode(v.trim()) {
        Ok(raw) if raw.len() == 16 => Ok(()),
        _ => Err(Error::InvalidDigest(
            "The Content-MD5 you specified was invalid.".into(),
        )),
    }
}

/// The stored base64 value of `algo`, for an output field.
pub(crate) fn stored(map: &BTreeMap<String, String>, algo: Algorithm) -> Option<String> {
    map.get(algo.name()).cloned()
}

/// The algorithms whose values `map` holds (a copy recomputes them).
pub(crate) fn set_of(map: &BTreeMap<String, String>) -> ChecksumSet {
    let mut set = ChecksumSet::default();
    for a in Algorithm::ALL {
        if map.contains_key(a.name()) {
            set.enable(a);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_checks() {
        let md5: [u8; 16] = [
            0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8,
            0x42, 0x7e,
        ];
        verify_content_md5(Some("1B2M2Y8AsgTpgAmY7PhCfg=="), &md5).unwrap();
        assert!(matches!(
            verify_content_md5(Some("AAAAAAAAAAAAAAAAAAAAAA=="), &md5),
            Err(Error::BadDigest(_))
        ));
        assert!(matches!(
            verify_content_md5(Some("not base64!"), &md5),
            Err(Error::InvalidDigest(_))
        ));
        assert!(matches!(
            verify_content_md5(Some("AAAA"), &md5),
            Err(Error::InvalidDigest(_))
        ));
        verify_content_md5(None, &md5).unwrap();
    }

    #[test]
    fn header_checksum_mismatch_is_bad_digest() {
        let want = "AAAAAA==".to_string();
        let r = ChecksumRequest::new(
            None,
            [Some(&want), None, None, None, None],
            &HeaderMap::new(),
            None,
        )
        .unwrap();
        assert!(r.set.crc32);
        let computed = Checksums {
            crc32: Some([1, 2, 3, 4]),
            ..Default::default()
        };
        assert!(matches!(r.verify(&computed), Err(Error::BadDigest(_))));
        let ok = Checksums {
            crc32: Some([0, 0, 0, 0]),
            ..Default::default()
        };
        r.verify(&ok).unwrap();
    }

    #[test]
    fn malformed_checksum_header_is_invalid_request() {
        for v in ["zz", "bad", "AAAA"] {
            let v = v.to_string();
            match ChecksumRequest::new(
                None,
                [None, None, None, Some(&v), None],
                &HeaderMap::new(),
                None,
            ) {
                Err(Error::InvalidRequest(m)) => {
                    assert_eq!(m, "Value for x-amz-checksum-sha256 header is invalid.")
                }
                other => panic!("{v}: {other:?}"),
            }
        }
        assert!(matches!(
            ChecksumRequest::new(Some("MD4"), [None; 5], &HeaderMap::new(), None),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn composite_checksums_match_s3s_vectors() {
        // the vectors of s3-tests' test_multipart_checksum_sha256 and
        // test_multipart_reupload_checksum_and_etag (RGW and AWS agree on them)
        assert_eq!(
            composite(
                Algorithm::Sha256,
                &["arcu6553sHVAiX4MjW0j7I7vD4w6R+Gz9Ok0Q9lTa+0="]
            )
            .unwrap(),
            "Ok6Cs5b96ux6+MWQkJO7UBT5sKPBeXBLwvj/hK89smg=-1"
        );
        assert_eq!(
            composite(
                Algorithm::Sha256,
                &[
                    "275VF5loJr1YYawit0XSHREhkFXYkkPKGuoK0x9VKxI=",
                    "mrHwOfjTL5Zwfj74F05HOQGLdUb7E5szdCbxgUSq6NM=",
                    "Vw7oB/nKQ5xWb3hNgbyfkvDiivl+U+/Dft48nfJfDow="
                ]
            )
            .unwrap(),
            "uWBwpe1dxI4Vw8Gf0X9ynOdw/SS6VBzfWm9giiv1sf4=-3"
        );
        // CRC32 of the 8 bytes 00 00 00 00 00 00 00 00 is 0x6522DF69
        assert_eq!(
            composite(Algorithm::Crc32, &["AAAAAA==", "AAAAAA=="]).unwrap(),
            format!(
                "{}-2",
                base64::engine::general_purpose::STANDARD.encode(0x6522_DF69u32.to_be_bytes())
            )
        );
        assert!(matches!(
            composite(Algorithm::Sha1, &["not base64!"]),
            Err(Error::InvalidPart(_))
        ));
    }

    #[test]
    fn an_unknown_trailer_is_refused() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-trailer", "x-amz-checksum-md5".parse().unwrap());
        assert!(matches!(
            ChecksumRequest::new(None, [None; 5], &h, None),
            Err(Error::InvalidRequest(_))
        ));
        h.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
        let r = ChecksumRequest::new(None, [None; 5], &h, None).unwrap();
        assert_eq!(r.trailer, Some(Algorithm::Crc32));
    }
}
