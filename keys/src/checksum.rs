//! Plaintext digests computed while sealing: MD5 (the S3 ETag) always, and the optional
//! flexible checksums CRC32, CRC32C, SHA-1, SHA-256 and CRC64NVME.

use base64::Engine;
use md5::Digest;

/// Which optional checksums to compute.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ChecksumSet {
    /// CRC32 (ISO-HDLC).
    pub crc32: bool,
    /// CRC32C (Castagnoli).
    pub crc32c: bool,
    /// SHA-1.
    pub sha1: bool,
    /// SHA-256.
    pub sha256: bool,
    /// CRC64NVME.
    pub crc64nvme: bool,
}

impl ChecksumSet {
    /// Every checksum.
    pub fn all() -> ChecksumSet {
        ChecksumSet {
            crc32: true,
            crc32c: true,
            sha1: true,
            sha256: true,
            crc64nvme: true,
        }
    }
}

/// Computed checksums (big-endian bytes, as S3 transmits them base64-encoded).
#[derive(Clone, Default, Debug, PartialEq)]
pub struct Checksums {
    /// CRC32.
    pub crc32: Option<[u8; 4]>,
    /// CRC32C.
    pub crc32c: Option<[u8; 4]>,
    /// SHA-1.
    pub sha1: Option<[u8; 20]>,
    /// SHA-256.
    pub sha256: Option<[u8; 32]>,
    /// CRC64NVME.
    pub crc64nvme: Option<[u8; 8]>,
}

impl Checksums {
    /// Map of lower-case algorithm name ("crc32", "crc32c", "sha1", "sha256", "crc64nvme") to base64 value.
    pub fn to_base64_map(&self) -> std::collections::BTreeMap<String, String> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let mut m = std::collections::BTreeMap::new();
        if let Some(v) = self.crc32 {
            m.insert("crc32".into(), b64(&v));
        }
        if let Some(v) = self.crc32c {
            m.insert("crc32c".into(), b64(&v));
        }
        if let Some(v) = self.sha1 {
            m.insert("sha1".into(), b64(&v));
        }
        if let Some(v) = self.sha256 {
            m.insert("sha256".into(), b64(&v));
        }
        if let Some(v) = self.crc64nvme {
            m.insert("crc64nvme".into(), b64(&v));
        }
        m
    }

    /// Placeholder values of the right sizes (for computing a sealed length in advance).
    pub(crate) fn placeholder(set: ChecksumSet) -> Checksums {
        Checksums {
            crc32: set.crc32.then_some([0; 4]),
            crc32c: set.crc32c.then_some([0; 4]),
            sha1: set.sha1.then_some([0; 20]),
            sha256: set.sha256.then_some([0; 32]),
            crc64nvme: set.crc64nvme.then_some([0; 8]),
        }
    }
}

/// Incremental MD5 + checksums over the plaintext.
pub(crate) struct PlainHasher {
    len: u64,
    md5: md5::Md5,
    crc32: Option<crc32fast::Hasher>,
    crc32c: Option<u32>,
    sha1: Option<sha1::Sha1>,
    sha256: Option<sha2::Sha256>,
    crc64: Option<crc64fast_nvme::Digest>,
}

impl PlainHasher {
    pub(crate) fn new(set: ChecksumSet) -> PlainHasher {
        PlainHasher {
            len: 0,
            md5: md5::Md5::new(),
            crc32: set.crc32.then(crc32fast::Hasher::new),
            crc32c: set.crc32c.then_some(0),
            sha1: set.sha1.then(sha1::Sha1::new),
            sha256: set.sha256.then(sha2::Sha256::new),
            crc64: set.crc64nvme.then(crc64fast_nvme::Digest::new),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        self.md5.update(data);
        if let Some(h) = &mut self.crc32 {
            h.update(data);
        }
        if let Some(c) = &mut self.crc32c {
            *c = crc32c::crc32c_append(*c, data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.crc64 {
            h.write(data);
        }
    }

    /// (plaintext length, MD5, checksums)
    pub(crate) fn finish(self) -> (u64, [u8; 16], Checksums) {
        let sums = Checksums {
            crc32: self.crc32.map(|h| h.finalize().to_be_bytes()),
            crc32c: self.crc32c.map(|c| c.to_be_bytes()),
            sha1: self.sha1.map(|h| h.finalize().into()),
            sha256: self.sha256.map(|h| h.finalize().into()),
            crc64nvme: self.crc64.map(|h| h.sum64().to_be_bytes()),
        };
        (self.len, self.md5.finalize().into(), sums)
    }
}
