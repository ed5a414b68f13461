//! Key backups sealed under a passphrase (`vaultgate keys backup|restore`, docs/FORMAT.md "Key
//! backup file"): PBKDF2-HMAC-SHA256 (aws-lc-rs) stretches the passphrase into an AES-256-GCM
//! key and a verifier; the header is authenticated as the AAD of the one sealed record.
//!
//! ```text
//! file     = "VGKB" ‖ version u8 (1) ‖ kdf u8 (1 = PBKDF2-HMAC-SHA256) ‖ iterations u32
//!            ‖ salt[16] ‖ verifier[32] ‖ nonce[12] ‖ ciphertext ‖ tag[16]
//! okm      = PBKDF2-HMAC-SHA256(passphrase, salt, iterations, 64 bytes)
//! key      = okm[0..32]      verifier = okm[32..64]
//! AAD      = every byte before the ciphertext
//! ```
//!
//! The verifier tells a wrong passphrase (verifier differs) from a damaged file (verifier
//! matches, the tag does not). It is no weaker than the ciphertext against guessing: both need
//! the full PBKDF2 per guess.

use std::num::NonZeroU32;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// First bytes of a key backup file.
pub const MAGIC: &[u8; 4] = b"VGKB";
/// The format version written.
pub const VERSION: u8 = 1;
/// KDF id of PBKDF2-HMAC-SHA256.
pub const KDF_PBKDF2_SHA256: u8 = 1;
/// PBKDF2 iterations written (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
pub const ITERATIONS: u32 = 600_000;
/// Fewest iterations a file may name (a weaker file is refused, not opened).
pub const MIN_ITERATIONS: u32 = 100_000;
/// Most iterations a file may name (a larger count would only stall the reader).
pub const MAX_ITERATIONS: u32 = 20_000_000;
/// Shortest passphrase accepted when sealing.
pub const MIN_PASSPHRASE: usize = 12;

const SALT_LEN: usize = 16;
const VERIFIER_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 4 + 1 + 1 + 4 + SALT_LEN + VERIFIER_LEN + NONCE_LEN;

fn derive(passphrase: &[u8], salt: &[u8], iterations: u32) -> Result<Zeroizing<[u8; 64]>> {
    let n = NonZeroU32::new(iterations)
        .ok_or_else(|| Error::Format("key backup: zero PBKDF2 iterations".into()))?;
    let mut okm = Zeroizing::new([0u8; 64]);
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        n,
        salt,
        passphrase,
        &mut okm[..],
    );
    Ok(okm)
}

/// Seals `payload` under `passphrase` (at least [`MIN_PASSPHRASE`] characters) with `iterations`
/// ([`ITERATIONS`] unless a test needs speed; at least [`MIN_ITERATIONS`]).
pub fn seal_backup(passphrase: &str, payload: &[u8], iterations: u32) -> Result<Vec<u8>> {
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(Error::Format(format!(
            "the passphrase must have at least {MIN_PASSPHRASE} characters"
        )));
    }
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(Error::Format(format!(
            "PBKDF2 iterations must be {MIN_ITERATIONS}..={MAX_ITERATIONS}"
        )));
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    crate::random_fill(&mut salt)?;
    crate::random_fill(&mut nonce)?;
    let okm = derive(passphrase.as_bytes(), &salt, iterations)?;
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(VERSION);
    header.push(KDF_PBKDF2_SHA256);
    header.extend_from_slice(&iterations.to_be_bytes());
    header.extend_from_slice(&salt);
    header.extend_from_slice(&okm[32..64]);
    header.extend_from_slice(&nonce);
    let ct = crate::aead::seal_append(&key, nonce, &header, payload)?;
    header.extend_from_slice(&ct);
    Ok(header)
}

/// Opens a file from [`seal_backup`]. `Format`: not a key backup, an unknown version or KDF,
/// an iteration count out of bounds; `Integrity`: a wrong passphrase (the message says so), or
/// a damaged file (the tag does not verify).
pub fn open_backup(passphrase: &str, file: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if file.len() < 4 || &file[..4] != MAGIC {
        return Err(Error::Format("not a vaultgate key backup".into()));
    }
    if file.len() < HEADER_LEN + 16 {
        return Err(Error::Format("key backup is truncated".into()));
    }
    if file[4] != VERSION {
        return Err(Error::Format(format!(
            "key backup format version {} is not supported (this build reads {VERSION})",
            file[4]
        )));
    }
    if file[5] != KDF_PBKDF2_SHA256 {
        return Err(Error::Format(format!(
            "key backup names an unknown key derivation ({})",
            file[5]
        )));
    }
    let mut it = [0u8; 4];
    it.copy_from_slice(&file[6..10]);
    let iterations = u32::from_be_bytes(it);
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(Error::Format(format!(
            "key backup names {iterations} PBKDF2 iterations (accepted: {MIN_ITERATIONS}..={MAX_ITERATIONS}); the file is damaged"
        )));
    }
    let salt = &file[10..10 + SALT_LEN];
    let verifier = &file[10 + SALT_LEN..10 + SALT_LEN + VERIFIER_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&file[HEADER_LEN - NONCE_LEN..HEADER_LEN]);
    let okm = derive(passphrase.as_bytes(), salt, iterations)?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(&okm[32..64], verifier).is_err() {
        return Err(Error::Integrity(
            "wrong passphrase for this key backup (or its header is damaged)".into(),
        ));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    crate::aead::open_append(&key, nonce, &file[..HEADER_LEN], &file[HEADER_LEN..]).map_err(|_| {
        Error::Integrity(
            "the key backup is damaged: it does not verify (the passphrase is right)".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery staple";

    #[test]
    fn round_trip_and_refusals() {
        let payload = br#"{"files":{"master.key":"c2VjcmV0"}}"#;
        let file = seal_backup(PASS, payload, MIN_ITERATIONS).unwrap();
        assert_eq!(&file[..4], MAGIC);
        assert_eq!(file.len(), HEADER_LEN + payload.len() + 16);
        assert!(!file.windows(6).any(|w| w == b"master"), "sealed");
        assert_eq!(open_backup(PASS, &file).unwrap().as_slice(), payload);

        let e = open_backup("correct horse battery stapl3", &file).unwrap_err();
        assert!(e.to_string().contains("wrong passphrase"), "{e}");
        // every part matters: magic, version, KDF, iterations, salt, verifier, nonce,
        // ciphertext, tag (one PBKDF2 each: a few bytes only)
        for i in [0, 4, 5, 8, 10, 26, 58, 70, HEADER_LEN, file.len() - 1] {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(open_backup(PASS, &bad).is_err(), "byte {i} flipped");
        }
        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        let e = open_backup(PASS, &bad).unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
        assert!(open_backup(PASS, &file[..HEADER_LEN + 10]).is_err());
        assert!(open_backup(PASS, b"{\"files\":{}}").is_err());

        assert!(seal_backup("short", payload, ITERATIONS).is_err());
        assert!(seal_backup(PASS, payload, 1000).is_err());
        // two seals of the same payload differ (salt and nonce)
        assert_ne!(file, seal_backup(PASS, payload, MIN_ITERATIONS).unwrap());
    }
}
