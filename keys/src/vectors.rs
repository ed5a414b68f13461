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
        let rec = cipher.seal_record(TRAILER_COUNTER, TRAILER_FLAG, &meta.encode()?)?;
        out.extend_from_slice(&rec);
        out.extend_from_slice(&(rec.len() as u32).to_be_bytes());
    }
    Ok(out)
}
