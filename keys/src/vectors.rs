//! Deterministic whole-buffer sealing with a caller-chosen salt. Used to produce and check the
//! published test vectors in docs/FORMAT.md and to cross-check the streaming sealer byte for byte.
//! Never use a fixed salt for real data.

use crate::checksum::PlainHasher;
use crate::envelope::StreamKey;
use crate::error::Result;
use crate::format::{StreamKind, TRAILER_COUNTER, TRAILER_FLAG};
use crate::sealer::SealParams;
use crate::stream::StreamCipher;

/// Seals `plaintext` exactly like [`crate::seal`] would with the given `salt`.
pub fn seal_bytes_with_salt(
    key: &StreamKey,
    params: &SealParams,
    salt: [u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let (header, cipher) = StreamCipher::with_salt(
        key,
        params.kind,
        params.object_id,
        params.part_number,
        params.chunk_size,
        salt,
    )?;
    let mut out = header.as_bytes().to_vec();
    cipher.seal_all(params.chunk_size, plaintext, &mut out)?;
    if params.kind == StreamKind::Object {
        let mut h = PlainHasher::new(params.checksums);
        h.update(plaintext);
        let (len, md5, sums) = h.finish();
        let mut meta = params.meta.clone().unwrap_or_default();
        meta.size = len;
        meta.etag = hex::encode(md5);
        meta.checksums.extend(sums.to_base64_map());
        let trailer = if header.customer_key() {
            StreamCipher::for_meta(key, &header)?
        } else {
            cipher
        };
        let rec = trailer.seal_record(TRAILER_COUNTER, TRAILER_FLAG, &meta.encode()?)?;
        out.extend_from_slice(&rec);
        out.extend_from_slice(&(rec.len() as u32).to_be_bytes());
    }
    Ok(out)
}

/// Record-level access for benchmarks: seal/open single records of a Part stream exactly as the
/// streaming sealer and opener do, without hashing or stream plumbing.
pub struct RecordCipher {
    cipher: StreamCipher,
}

impl RecordCipher {
    /// Cipher for part 1 of a stream with `chunk_size` and a fixed salt.
    pub fn new(key: &StreamKey, chunk_size: u32) -> Result<RecordCipher> {
        let (_, cipher) =
            StreamCipher::with_salt(key, StreamKind::Part, [0; 16], 1, chunk_size, [0; 32])?;
        Ok(RecordCipher { cipher })
    }
    /// Seals record `counter` (not last).
    pub fn seal(&self, counter: u32, plaintext: &[u8]) -> Result<bytes::Bytes> {
        self.cipher.seal_record(counter, 0, plaintext)
    }
    /// Opens record `counter` (not last) in place.
    pub fn open(&self, counter: u32, record: bytes::BytesMut) -> Result<bytes::Bytes> {
        let plain_len = record
            .len()
            .saturating_sub(crate::format::RECORD_OVERHEAD as usize);
        self.cipher.open_record_owned(counter, 0, plain_len, record)
    }
}

impl RecordCipher {
    /// Raw AES-256-GCM in place over `buf` in `chunk`-sized pieces (benchmark reference).
    pub fn raw_seal_in_place(&self, buf: &mut [u8], chunk: usize) -> Result<()> {
        let mut tag = [0u8; 16];
        for (i, c) in buf.chunks_mut(chunk.max(1)).enumerate() {
            self.cipher.raw_seal_in_place(i as u32, c, &mut tag)?;
        }
        Ok(())
    }
}
