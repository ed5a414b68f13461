//! The sealed-stream byte format: header encode/decode, record nonces, and O(1) layout
//! arithmetic (plaintext size from stored size, plaintext range → ciphertext range).
//! docs/FORMAT.md is the normative description; the constants here must never change for version 1.

use std::ops::Range;

use crate::envelope::{DataKeyId, WrappedDataKey};
use crate::error::{Error, Result};

/// Magic bytes at offset 0 of every sealed stream.
pub const MAGIC: [u8; 4] = *b"VGSS";
/// Format version written and accepted.
pub const VERSION: u8 = 1;
/// Cipher id 1 = AES-256-GCM.
pub const CIPHER_AES_256_GCM: u8 = 1;
/// Default plaintext bytes per record.
pub const DEFAULT_CHUNK_SIZE: u32 = 65536;
/// Smallest accepted chunk size (small sizes only make sense in tests).
pub const MIN_CHUNK_SIZE: u32 = 16;
/// Largest accepted chunk size.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Bytes a record adds to its plaintext: nonce 12 + len 4 + tag 16.
pub const RECORD_OVERHEAD: u64 = 32;
/// Size of the fixed part of the header (everything before the variable-length fields).
pub const FIXED_HEADER_LEN: usize = 120;
/// Largest header accepted.
pub const MAX_HEADER_LEN: usize = 8192;
/// Highest part number (S3 limit; fits the nonce's u16).
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Header flag bit 0: the data records are sealed under a key that mixes a customer-provided key
/// (SSE-C) into the derivation; the metadata trailer is not (docs/FORMAT.md, "SSE-C").
pub const FLAG_CUSTOMER_KEY: u8 = 0x01;
/// Every header flag this version knows; any other bit is rejected.
pub const KNOWN_FLAGS: u8 = FLAG_CUSTOMER_KEY;
/// Record counter used by the metadata trailer record.
pub const TRAILER_COUNTER: u32 = 0xFFFF_FFFF;
/// Last-byte flag of the trailer record's nonce.
pub const TRAILER_FLAG: u8 = 2;
/// Size of the big-endian trailer length at the very end of a kind-Object stream.
pub const TRAILER_LEN_SIZE: u64 = 4;
/// Largest sealed metadata trailer record accepted (1 MiB).
pub const MAX_TRAILER_LEN: u64 = 1 << 20;
/// Largest number of data records in one stream (the counter 0xFFFFFFFF is the trailer's).
pub const MAX_RECORDS: u64 = 0xFFFF_FFFF;

const MAX_BUCKET_LEN: usize = 1024;
const MAX_KEK_ID_LEN: usize = 1024;
const MAX_WRAPPED_LEN: usize = 4096;

/// What a sealed stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StreamKind {
    /// A single-PUT object: records followed by the sealed metadata trailer.
    Object = 1,
    /// One part of a multipart upload (no trailer).
    Part = 2,
    /// The sealed manifest of a completed multipart upload (records hold ObjectMeta JSON).
    Manifest = 3,
}

impl StreamKind {
    fn from_u8(b: u8) -> Result<StreamKind> {
        match b {
            1 => Ok(StreamKind::Object),
            2 => Ok(StreamKind::Part),
            3 => Ok(StreamKind::Manifest),
            other => Err(Error::Format(format!("unknown stream kind {other}"))),
        }
    }
}

/// A decoded (and re-encodable) stream header. The raw bytes are kept: their SHA-256 is every record's AAD.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    bytes: Vec<u8>,
    kind: StreamKind,
    flags: u8,
    chunk_size: u32,
    part_number: u32,
    object_id: [u8; 16],
    salt: [u8; 32],
    commitment: [u8; 32],
    data_key_id: DataKeyId,
    data_key_version: u32,
    bucket: String,
    kek_id: String,
    wrapped: Vec<u8>,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("kind", &self.kind)
            .field("flags", &self.flags)
            .field("chunk_size", &self.chunk_size)
            .field("part_number", &self.part_number)
            .field("object_id", &hex::encode(self.object_id))
            .field("data_key_id", &self.data_key_id)
            .field("data_key_version", &self.data_key_version)
            .field("bucket", &self.bucket)
            .field("kek_id", &self.kek_id)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// The values a sealer puts into a header.
pub(crate) struct HeaderFields<'a> {
    pub kind: StreamKind,
    pub flags: u8,
    pub chunk_size: u32,
    pub part_number: u32,
    pub object_id: [u8; 16],
    pub salt: [u8; 32],
    pub commitment: [u8; 32],
    pub data_key_id: DataKeyId,
    pub data_key_version: u32,
    pub bucket: &'a str,
    pub kek_id: &'a str,
    pub wrapped: &'a [u8],
}

/// Checks the kind/part-number/chunk-size combination.
pub(crate) fn check_params(kind: StreamKind, chunk_size: u32, part_number: u32) -> Result<()> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(Error::Format(format!(
            "chunk size {chunk_size} outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
        )));
    }
    match kind {
        StreamKind::Part if !(1..=MAX_PART_NUMBER).contains(&part_number) => Err(Error::Format(
            format!("part number {part_number} outside 1..={MAX_PART_NUMBER}"),
        )),
        StreamKind::Object | StreamKind::Manifest if part_number != 0 => Err(Error::Format(
            format!("part number must be 0 for {kind:?} streams"),
        )),
        _ => Ok(()),
    }
}

impl Header {
    /// Exact encoded length for the given variable fields.
    pub(crate) fn encoded_len(bucket: &str, kek_id: &str, wrapped: &[u8]) -> usize {
        FIXED_HEADER_LEN + 2 + bucket.len() + 2 + kek_id.len() + 2 + wrapped.len()
    }

    pub(crate) fn build(f: HeaderFields<'_>) -> Result<Header> {
        check_params(f.kind, f.chunk_size, f.part_number)?;
        if f.bucket.len() > MAX_BUCKET_LEN
            || f.kek_id.len() > MAX_KEK_ID_LEN
            || f.wrapped.len() > MAX_WRAPPED_LEN
        {
            return Err(Error::Format("header field too long".into()));
        }
        let len = Self::encoded_len(f.bucket, f.kek_id, f.wrapped);
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&MAGIC);
        b.push(VERSION);
        b.push(CIPHER_AES_256_GCM);
        b.push(f.kind as u8);
        b.push(f.flags);
        b.extend_from_slice(&(len as u32).to_be_bytes());
        b.extend_from_slice(&f.chunk_size.to_be_bytes());
        b.extend_from_slice(&f.part_number.to_be_bytes());
        b.extend_from_slice(&f.object_id);
        b.extend_from_slice(&f.salt);
        b.extend_from_slice(&f.commitment);
        b.extend_from_slice(&f.data_key_id.0);
        b.extend_from_slice(&f.data_key_version.to_be_bytes());
        for field in [f.bucket.as_bytes(), f.kek_id.as_bytes(), f.wrapped] {
            b.extend_from_slice(&(field.len() as u16).to_be_bytes());
            b.extend_from_slice(field);
        }
        debug_assert_eq!(b.len(), len);
        Header::decode(&b)
    }

    /// Total header length from the first 12 bytes of a stream (checks magic, version, cipher).
    pub fn encoded_len_from_prefix(prefix: &[u8]) -> Result<usize> {
        if prefix.len() < 12 {
            return Err(Error::Format(
                "need 12 bytes to read the header length".into(),
            ));
        }
        if prefix[0..4] != MAGIC {
            return Err(Error::Format(
                "bad magic (not a Vaultgate sealed stream)".into(),
            ));
        }
        if prefix[4] != VERSION {
            return Err(Error::Format(format!(
                "unsupported format version {}",
                prefix[4]
            )));
        }
        if prefix[5] != CIPHER_AES_256_GCM {
            return Err(Error::Format(format!("unsupported cipher {}", prefix[5])));
        }
        let len = u32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize;
        if !(FIXED_HEADER_LEN + 6..=MAX_HEADER_LEN).contains(&len) {
            return Err(Error::Format(format!("header length {len} out of bounds")));
        }
        Ok(len)
    }

    /// Decodes the header at the start of `buf` (bytes after the header are ignored).
    pub fn decode(buf: &[u8]) -> Result<Header> {
        let len = Self::encoded_len_from_prefix(buf)?;
        let b = buf.get(..len).ok_or_else(|| {
            Error::Format(format!("header needs {len} bytes, have {}", buf.len()))
        })?;
        let kind = StreamKind::from_u8(b[6])?;
        let flags = b[7];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::Format(format!("unknown header flags {flags:#x}")));
        }
        if flags & FLAG_CUSTOMER_KEY != 0 && kind == StreamKind::Manifest {
            return Err(Error::Format(
                "a manifest stream cannot carry the customer-key flag".into(),
            ));
        }
        let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let chunk_size = u32_at(12);
        let part_number = u32_at(16);
        check_params(kind, chunk_size, part_number)?;
        let arr16 = |o: usize| -> [u8; 16] {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[o..o + 16]);
            a
        };
        let arr32 = |o: usize| -> [u8; 32] {
            let mut a = [0u8; 32];
            a.copy_from_slice(&b[o..o + 32]);
            a
        };
        let mut pos = FIXED_HEADER_LEN;
        let mut take = |max: usize| -> Result<&[u8]> {
            let l = b
                .get(pos..pos + 2)
                .map(|s| u16::from_be_bytes([s[0], s[1]]) as usize)
                .ok_or_else(|| Error::Format("header truncated".into()))?;
            if l > max {
                return Err(Error::Format("header field too long".into()));
            }
            let v = b
                .get(pos + 2..pos + 2 + l)
                .ok_or_else(|| Error::Format("header truncated".into()))?;
            pos += 2 + l;
            Ok(v)
        };
        let bucket = std::str::from_utf8(take(MAX_BUCKET_LEN)?)
            .map_err(|_| Error::Format("bucket is not UTF-8".into()))?
            .to_owned();
        let kek_id = std::str::from_utf8(take(MAX_KEK_ID_LEN)?)
            .map_err(|_| Error::Format("kek id is not UTF-8".into()))?
            .to_owned();
        let wrapped = take(MAX_WRAPPED_LEN)?.to_vec();
        if pos != len {
            return Err(Error::Format(
                "header length does not match its fields".into(),
            ));
        }
        Ok(Header {
            bytes: b.to_vec(),
            kind,
            flags,
            chunk_size,
            part_number,
            object_id: arr16(20),
            salt: arr32(36),
            commitment: arr32(68),
            data_key_id: DataKeyId(arr16(100)),
            data_key_version: u32_at(116),
            bucket,
            kek_id,
            wrapped,
        })
    }

    /// The exact header bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Header length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Never true (a header has at least its fixed part); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Stream kind.
    pub fn kind(&self) -> StreamKind {
        self.kind
    }
    /// Header flags ([`FLAG_CUSTOMER_KEY`]).
    pub fn flags(&self) -> u8 {
        self.flags
    }
    /// The data records need a customer-provided key (SSE-C) besides the data key.
    pub fn customer_key(&self) -> bool {
        self.flags & FLAG_CUSTOMER_KEY != 0
    }
    /// Plaintext bytes per record.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// Part number (0 unless kind Part).
    pub fn part_number(&self) -> u32 {
        self.part_number
    }
    /// Object id shared by an upload's parts and manifest.
    pub fn object_id(&self) -> [u8; 16] {
        self.object_id
    }
    /// Per-stream HKDF salt.
    pub fn salt(&self) -> [u8; 32] {
        self.salt
    }
    /// Key commitment.
    pub fn commitment(&self) -> [u8; 32] {
        self.commitment
    }
    /// Id of the bucket data key.
    pub fn data_key_id(&self) -> DataKeyId {
        self.data_key_id
    }
    /// Version of the bucket data key.
    pub fn data_key_version(&self) -> u32 {
        self.data_key_version
    }
    /// Bucket the data key belongs to (the wrap context); not secret.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
    /// Id of the KEK that wrapped the data key when the stream was sealed.
    pub fn kek_id(&self) -> &str {
        &self.kek_id
    }
    /// The data key as wrapped when the stream was sealed.
    pub fn wrapped_key(&self) -> &[u8] {
        &self.wrapped
    }
    /// The header's copy of the wrapped data key, as a store record (for rebuilding the key
    /// store). Its `kms_key` is empty: a header does not record it (`reindex` derives it from
    /// the `kek_id` with `Keyring::kms_key_of_kek`); unwrapping needs only the `kek_id`.
    pub fn wrapped_data_key(&self) -> WrappedDataKey {
        WrappedDataKey {
            id: self.data_key_id,
            bucket: self.bucket.clone(),
            kms_key: String::new(),
            version: self.data_key_version,
            kek_id: self.kek_id.clone(),
            wrapped: self.wrapped.clone(),
            created_ms: 0,
        }
    }
    /// SHA-256 of the header bytes (the AAD of every record; also recorded in manifests).
    pub fn sha256(&self) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(&self.bytes).into()
    }
}

/// The 12-byte nonce of a record: prefix[5] ‖ part u16 ‖ counter u32 ‖ flag u8.
pub(crate) fn record_nonce(prefix: &[u8; 5], part: u16, counter: u32, flag: u8) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..5].copy_from_slice(prefix);
    n[5..7].copy_from_slice(&part.to_be_bytes());
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = flag;
    n
}

/// O(1) layout arithmetic for one sealed stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Header length in bytes.
    pub header_len: u64,
    /// Plaintext bytes per record.
    pub chunk_size: u32,
    /// Plaintext length of the stream's data records.
    pub plaintext_len: u64,
}

/// Backend byte range holding exactly the records that cover a plaintext range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CipherRange {
    /// Index of the first covering record.
    pub first_record: u64,
    /// Index of the last covering record (inclusive).
    pub last_record: u64,
    /// First backend byte (inclusive).
    pub start: u64,
    /// End backend byte (exclusive).
    pub end: u64,
}

impl Layout {
    /// Layout of a stream with `header`'s length and chunk size.
    pub fn new(header: &Header, plaintext_len: u64) -> Layout {
        Layout {
            header_len: header.len() as u64,
            chunk_size: header.chunk_size(),
            plaintext_len,
        }
    }

    fn chunk(&self) -> u64 {
        u64::from(self.chunk_size.max(1))
    }

    /// Number of data records: max(1, ceil(len/chunk)).
    pub fn records(&self) -> u64 {
        self.plaintext_len.div_ceil(self.chunk()).max(1)
    }

    /// Plaintext length of record `i`.
    pub fn record_plain_len(&self, i: u64) -> u64 {
        let n = self.records();
        if i + 1 < n {
            self.chunk()
        } else {
            self.plaintext_len - (n - 1) * self.chunk()
        }
    }

    /// Backend offset of record `i`.
    pub fn record_offset(&self, i: u64) -> u64 {
        self.header_len + i * (self.chunk() + RECORD_OVERHEAD)
    }

    /// header_len + plaintext_len + records·32: the offset of the trailer, if any.
    pub fn data_end(&self) -> u64 {
        self.header_len + self.plaintext_len + self.records() * RECORD_OVERHEAD
    }

    /// Plaintext range → backend range of exactly the covering records. `end` is clamped to
    /// `plaintext_len`. An empty range maps to record 0 for a 0-byte stream (so opening it still
    /// authenticates the one empty record) and to an empty backend range otherwise.
    pub fn cipher_range(&self, plain: Range<u64>) -> CipherRange {
        let end = plain.end.min(self.plaintext_len);
        if plain.start >= end {
            if self.plaintext_len == 0 {
                return CipherRange {
                    first_record: 0,
                    last_record: 0,
                    start: self.header_len,
                    end: self.data_end(),
                };
            }
            return CipherRange {
                first_record: 0,
                last_record: 0,
                start: self.header_len,
                end: self.header_len,
            };
        }
        let first = plain.start / self.chunk();
        let last = (end - 1) / self.chunk();
        CipherRange {
            first_record: first,
            last_record: last,
            start: self.record_offset(first),
            end: self.record_offset(last) + RECORD_OVERHEAD + self.record_plain_len(last),
        }
    }

    /// Inverse of [`Layout::data_end`]: the layout whose data records occupy `data_len` bytes after the header.
    /// Errors if no plaintext length produces exactly that size.
    pub fn from_data_len(header_len: u64, chunk_size: u32, data_len: u64) -> Result<Layout> {
        let chunk = u64::from(chunk_size.max(1));
        let full = chunk + RECORD_OVERHEAD;
        if data_len < RECORD_OVERHEAD {
            return Err(Error::Integrity(format!(
                "stream data section of {data_len} bytes is too short"
            )));
        }
        let n = data_len.div_ceil(full);
        let plaintext_len = data_len - n * RECORD_OVERHEAD;
        let l = Layout {
            header_len,
            chunk_size,
            plaintext_len,
        };
        if l.records() != n || l.data_end() != header_len + data_len || n > MAX_RECORDS {
            return Err(Error::Integrity(format!(
                "stream data section of {data_len} bytes has no valid layout"
            )));
        }
        Ok(l)
    }

    /// Layout of a stream from its total stored size. `trailer_len` is the trailer record length
    /// (from the last 4 bytes) for kind Object, `None` for parts and manifests.
    pub fn from_stored_len(
        header: &Header,
        total_len: u64,
        trailer_len: Option<u64>,
    ) -> Result<Layout> {
        let header_len = header.len() as u64;
        let tail = match (header.kind(), trailer_len) {
            (StreamKind::Object, Some(t)) => {
                if !(RECORD_OVERHEAD..=MAX_TRAILER_LEN).contains(&t) {
                    return Err(Error::Integrity(format!(
                        "trailer length {t} out of bounds"
                    )));
                }
                t + TRAILER_LEN_SIZE
            }
            (StreamKind::Object, None) => {
                return Err(Error::Format(
                    "an Object stream needs its trailer length".into(),
                ));
            }
            (_, _) => 0,
        };
        let data_len = total_len.checked_sub(header_len + tail).ok_or_else(|| {
            Error::Integrity("stored stream shorter than its header and trailer".into())
        })?;
        Layout::from_data_len(header_len, header.chunk_size(), data_len)
    }
}

/// Reads the trailer length from the last 4 bytes of a kind-Object stream.
pub fn trailer_len_from_suffix(suffix: &[u8]) -> Result<u64> {
    let s: [u8; 4] = suffix
        .get(suffix.len().saturating_sub(4)..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| Error::Format("need the last 4 bytes of the stream".into()))?;
    Ok(u64::from(u32::from_be_bytes(s)))
}
