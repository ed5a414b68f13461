//! Plaintext digests computed while sealing: MD5 (the S3 ETag) always, and the optional
//! flexible checksums CRC32, CRC32C, SHA-1, SHA-256 and CRC64NVME; and the combination of the
//! CRCs of consecutive pieces into the CRC of the whole (`crc-fast`), which gives a multipart
//! object its FULL_OBJECT checksum from its parts' without reading them again.

use base64::Engine;
use md5::Digest;

/// One flexible checksum algorithm of S3. The names, headers and digest lengths live here
/// once; everything that handles checksums (requests, stored values, DTO fields) goes through
/// it, so a new algorithm is one new variant and a compile error wherever it must be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// CRC32 (ISO-HDLC).
    Crc32,
    /// CRC32C (Castagnoli).
    Crc32c,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// CRC64NVME.
    Crc64Nvme,
}

impl Algorithm {
    /// Every algorithm, in S3's order.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Sha1,
        Algorithm::Sha256,
        Algorithm::Crc64Nvme,
    ];

    /// Lower-case name (`crc32`, ..., `crc64nvme`): the key of stored checksum maps.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "crc32",
            Algorithm::Crc32c => "crc32c",
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Crc64Nvme => "crc64nvme",
        }
    }

    /// The header carrying a value (`x-amz-checksum-crc32`, ...).
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
        }
    }

    /// Bytes of a digest.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Crc64Nvme => 8,
        }
    }

    /// A CRC, whose values over consecutive pieces combine into the value of the whole (S3's
    /// FULL_OBJECT multipart checksums); the SHAs do not.
    pub fn is_crc(self) -> bool {
        self.crc_fast().is_some()
    }

    fn crc_fast(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// An algorithm by name, case-insensitive, with or without the `x-amz-checksum-` prefix
    /// (`CRC32C`, `x-amz-checksum-sha256`).
    pub fn parse(name: &str) -> Option<Algorithm> {
        let n = name.trim().to_ascii_lowercase();
        let n = n.strip_prefix("x-amz-checksum-").unwrap_or(&n);
        Algorithm::ALL.into_iter().find(|a| a.name() == n)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The CRC of `a ‖ b` from the CRC of `a`, the CRC of `b` and the length of `b` (values
/// big-endian, as S3 transmits them). None for a SHA or a value of the wrong length.
pub fn crc_combine(algo: Algorithm, crc_a: &[u8], crc_b: &[u8], len_b: u64) -> Option<Vec<u8>> {
    let crc = algo.crc_fast()?;
    let value = |v: &[u8]| {
        (v.len() == algo.digest_len())
            .then(|| v.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    };
    let both = crc_fast::checksum_combine(crc, value(crc_a)?, value(crc_b)?, len_b);
    let bytes = both.to_be_bytes();
    Some(bytes[bytes.len() - algo.digest_len()..].to_vec())
}

/// The one-shot digest of `data` under `algo` (big-endian, as S3 transmits it).
pub fn digest(algo: Algorithm, data: &[u8]) -> Vec<u8> {
    let mut set = ChecksumSet::default();
    set.enable(algo);
    let mut h = PlainHasher::new(set);
    h.update(data);
    let (_, _, sums) = h.finish();
    sums.get(algo).map(<[u8]>::to_vec).unwrap_or_default()
}

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
    /// Adds `a`.
    pub fn enable(&mut self, a: Algorithm) {
        *self.flag(a) = true;
    }

    /// Whether `a` is in the set.
    pub fn contains(&self, a: Algorithm) -> bool {
        match a {
            Algorithm::Crc32 => self.crc32,
            Algorithm::Crc32c => self.crc32c,
            Algorithm::Sha1 => self.sha1,
            Algorithm::Sha256 => self.sha256,
            Algorithm::Crc64Nvme => self.crc64nvme,
        }
    }

    /// Both sets together.
    pub fn union(self, other: ChecksumSet) -> ChecksumSet {
        let mut out = self;
        for a in Algorithm::ALL {
            if other.contains(a) {
                out.enable(a);
            }
        }
        out
    }

    fn flag(&mut self, a: Algorithm) -> &mut bool {
        match a {
            Algorithm::Crc32 => &mut self.crc32,
            Algorithm::Crc32c => &mut self.crc32c,
            Algorithm::Sha1 => &mut self.sha1,
            Algorithm::Sha256 => &mut self.sha256,
            Algorithm::Crc64Nvme => &mut self.crc64nvme,
        }
    }

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
    /// The digest of `a`, if computed.
    pub fn get(&self, a: Algorithm) -> Option<&[u8]> {
        match a {
            Algorithm::Crc32 => self.crc32.as_ref().map(|v| v.as_slice()),
            Algorithm::Crc32c => self.crc32c.as_ref().map(|v| v.as_slice()),
            Algorithm::Sha1 => self.sha1.as_ref().map(|v| v.as_slice()),
            Algorithm::Sha256 => self.sha256.as_ref().map(|v| v.as_slice()),
            Algorithm::Crc64Nvme => self.crc64nvme.as_ref().map(|v| v.as_slice()),
        }
    }

    /// Map of [`Algorithm::name`] to base64 value.
    pub fn to_base64_map(&self) -> std::collections::BTreeMap<String, String> {
        Algorithm::ALL
            .into_iter()
            .filter_map(|a| {
                self.get(a).map(|v| {
                    (
                        a.name().to_owned(),
                        base64::engine::general_purpose::STANDARD.encode(v),
                    )
                })
            })
            .collect()
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
    crc64: Option<crc_fast::Digest>,
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
            crc64: set
                .crc64nvme
                .then(|| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme)),
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
            h.update(data);
        }
    }

    /// (plaintext length, MD5, checksums)
    pub(crate) fn finish(self) -> (u64, [u8; 16], Checksums) {
        let sums = Checksums {
            crc32: self.crc32.map(|h| h.finalize().to_be_bytes()),
            crc32c: self.crc32c.map(|c| c.to_be_bytes()),
            sha1: self.sha1.map(|h| h.finalize().into()),
            sha256: self.sha256.map(|h| h.finalize().into()),
            crc64nvme: self.crc64.map(|h| h.finalize().to_be_bytes()),
        };
        (self.len, self.md5.finalize().into(), sums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_by_name_header_and_length() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.name()), Some(a));
            assert_eq!(Algorithm::parse(a.header()), Some(a));
            assert_eq!(Algorithm::parse(&a.name().to_ascii_uppercase()), Some(a));
            let mut set = ChecksumSet::default();
            set.enable(a);
            assert!(set.contains(a));
            let mut h = PlainHasher::new(set);
            h.update(b"x");
            let (_, _, sums) = h.finish();
            assert_eq!(sums.get(a).map(<[u8]>::len), Some(a.digest_len()), "{a}");
            assert_eq!(sums.to_base64_map().len(), 1);
        }
        assert_eq!(Algorithm::parse("md4"), None);
        assert!(!Algorithm::Sha256.is_crc() && Algorithm::Crc64Nvme.is_crc());
        assert_eq!(
            ChecksumSet::default().union(ChecksumSet::all()),
            ChecksumSet::all()
        );
    }

    #[test]
    fn crcs_of_pieces_combine_into_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + 3) as u8).collect();
        for a in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let whole = digest_of(a, &data);
            for cut in [0, 1, 4096, 99_999, 100_000] {
                let (x, y) = data.split_at(cut);
                let got = crc_combine(a, &digest_of(a, x), &digest_of(a, y), y.len() as u64);
                assert_eq!(got.as_deref(), Some(whole.as_slice()), "{a} cut {cut}");
            }
        }
        // the check values of the three CRCs ("123456789"), combined from "1234" and "56789"
        for (a, check) in [
            (Algorithm::Crc32, 0xCBF4_3926u64),
            (Algorithm::Crc32c, 0xE306_9283),
            (Algorithm::Crc64Nvme, 0xAE8B_1486_0A79_9888),
        ] {
            let got = crc_combine(a, &digest_of(a, b"1234"), &digest_of(a, b"56789"), 5).unwrap();
            let want = check.to_be_bytes();
            assert_eq!(got, want[8 - a.digest_len()..], "{a}");
        }
        // the check values one-shot too (CRC64NVME now through crc-fast)
        assert_eq!(
            digest(Algorithm::Crc64Nvme, b"123456789"),
            0xAE8B_1486_0A79_9888u64.to_be_bytes()
        );
        assert_eq!(crc_combine(Algorithm::Sha256, &[0; 32], &[0; 32], 1), None);
        assert_eq!(crc_combine(Algorithm::Crc32, &[0; 3], &[0; 4], 1), None);
    }

    fn digest_of(a: Algorithm, data: &[u8]) -> Vec<u8> {
        let d = digest(a, data);
        assert_eq!(d.len(), a.digest_len());
        d
    }
}
