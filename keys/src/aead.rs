//! The one internal AEAD seam: AES-256-GCM with explicit 12-byte nonces, out of place.
//! Backed by aws-lc-rs (fastest measured on these machines); swap by changing [`ChunkAead`]'s impl.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::error::{Error, Result};

/// Tag length of the record cipher.
pub const TAG_LEN: usize = 16;
/// Nonce length of the record cipher.
pub const NONCE_LEN: usize = 12;

/// A keyed AEAD for records. Out-of-place so plaintext is never released before the tag checks.
pub(crate) trait ChunkAead: Send + Sync {
    /// Encrypts `plaintext` into `out` (same length) and writes the tag.
    fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
        tag: &mut [u8],
    ) -> Result<()>;
    /// Verifies `tag` and decrypts `ciphertext` into `out` (same length). On error `out` is garbage.
    fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<()>;
    /// Encrypts `in_out` in place and writes the tag.
    fn seal_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &mut [u8],
    ) -> Result<()>;
    /// Verifies and decrypts `ciphertext ‖ tag` in place; the plaintext is the first `len - 16` bytes.
    /// On error the buffer holds garbage that must not be released.
    fn open_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ct_and_tag: &mut [u8],
    ) -> Result<()>;
}

/// AES-256-GCM through aws-lc-rs. The key schedule lives inside aws-lc and is cleansed on drop.
pub(crate) struct AwsLcGcm(LessSafeKey);

impl AwsLcGcm {
    pub(crate) fn new(key: &[u8; 32]) -> Result<AwsLcGcm> {
        let k = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| Error::Format("bad AES-256 key".into()))?;
        Ok(AwsLcGcm(LessSafeKey::new(k)))
    }
}

impl ChunkAead for AwsLcGcm {
    fn seal_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &mut [u8],
    ) -> Result<()> {
        if tag.len() != TAG_LEN {
            return Err(Error::Format("tag buffer size".into()));
        }
        let t = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
            .map_err(|_| Error::Format("AEAD seal failed".into()))?;
        tag.copy_from_slice(t.as_ref());
        Ok(())
    }

    fn open_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ct_and_tag: &mut [u8],
    ) -> Result<()> {
        self.0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                ct_and_tag,
            )
            .map(|_| ())
            .map_err(|_| Error::Integrity("record authentication tag does not verify".into()))
    }

    fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
        tag: &mut [u8],
    ) -> Result<()> {
        self.0
            .seal_out_of_place_scatter(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                plaintext,
                out,
                &[],
                tag,
            )
            .map_err(|_| Error::Format("AEAD seal failed (buffer sizes)".into()))
    }

    fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        self.0
            .open_separate_gather(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                ciphertext,
                tag,
                out,
            )
            .map_err(|_| Error::Integrity("record authentication tag does not verify".into()))
    }
}

/// One-shot AES-256-GCM with the tag appended (used for wrapping data keys, blobs and hub records).
pub(crate) fn seal_append(
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let c = AwsLcGcm::new(key)?;
    let mut out = vec![0u8; plaintext.len() + TAG_LEN];
    let (ct, tag) = out.split_at_mut(plaintext.len());
    c.seal(nonce, aad, plaintext, ct, tag)?;
    Ok(out)
}

/// One-shot open of `ciphertext ‖ tag`. The result zeroizes on drop.
pub(crate) fn open_append(
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    ct_and_tag: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    if ct_and_tag.len() < TAG_LEN {
        return Err(Error::Format("ciphertext shorter than the tag".into()));
    }
    let c = AwsLcGcm::new(key)?;
    let (ct, tag) = ct_and_tag.split_at(ct_and_tag.len() - TAG_LEN);
    let mut out = zeroize::Zeroizing::new(vec![0u8; ct.len()]);
    c.open(nonce, aad, ct, tag, &mut out)?;
    Ok(out)
}
