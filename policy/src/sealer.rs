//! Sealing of access-key secrets at rest: the [`SecretSealer`] trait the store
//! uses, and [`AesGcmSealer`], an AES-256-GCM implementation (aws-lc-rs) used in
//! tests and wherever no `keys::Keyring` is at hand, and the implementation for
//! `keys::Keyring` (`seal_blob`/`open_blob`), which the gateway passes in.

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::{Error, Result, random_bytes};

/// Seals small secrets bound to a context string (e.g. `access-key:AKID`).
#[async_trait]
pub trait SecretSealer: Send + Sync {
    /// Encrypts and authenticates `plaintext` under `context`.
    async fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>>;
    /// Opens what [`SecretSealer::seal`] returned for the same context.
    async fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

const VERSION: u8 = 1;

/// AES-256-GCM sealer: `[version 1][nonce 12][ciphertext][tag 16]`, the context as AAD.
pub struct AesGcmSealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for AesGcmSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesGcmSealer([redacted])")
    }
}

impl AesGcmSealer {
    /// A sealer under a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Result<AesGcmSealer> {
        let k = UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::Seal("bad key".into()))?;
        Ok(AesGcmSealer {
            key: LessSafeKey::new(k),
        })
    }

    /// A sealer under a fresh random key (secrets die with the process; tests).
    pub fn random() -> Result<AesGcmSealer> {
        let k = Zeroizing::new(random_bytes::<32>()?);
        AesGcmSealer::new(&k)
    }
}

#[async_trait]
impl SecretSealer for AesGcmSealer {
    async fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| Error::Seal("seal failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    async fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(Error::Seal("malformed sealed secret".into()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let mut buf = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                buf.as_mut_slice(),
            )
            .map_err(|_| Error::Seal("sealed secret failed authentication".into()))?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[async_trait]
impl SecretSealer for keys::Keyring {
    async fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.seal_blob(context, plaintext)
            .await
            .map_err(|e| Error::Seal(e.to_string()))
    }

    async fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.open_blob(context, sealed)
            .await
            .map_err(|e| Error::Seal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn keyring_sealer_round_trip_and_store_use() {
        let provider = keys::LocalProvider::from_hex(&"42".repeat(32)).unwrap();
        let ring = keys::Keyring::new(
            Arc::new(provider),
            Arc::new(keys::MemoryDataKeyStore::new()),
            keys::CacheConfig::default(),
        );
        let sealed = SecretSealer::seal(&ring, "access-key:A", b"s3cret-value")
            .await
            .unwrap();
        assert_eq!(
            SecretSealer::open(&ring, "access-key:A", &sealed)
                .await
                .unwrap()
                .as_slice(),
            b"s3cret-value"
        );
        assert!(matches!(
            SecretSealer::open(&ring, "access-key:B", &sealed).await,
            Err(Error::Seal(_))
        ));
        // The policy store works on top of the keyring.
        let store = crate::PolicyStore::in_memory(Arc::new(ring)).await.unwrap();
        let k = store.bootstrap(None).await.unwrap().unwrap();
        let (secret, _) = store
            .lookup_key(&k.access_key_id, crate::now_ms())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(secret, k.secret);
    }

    #[tokio::test]
    async fn seal_open_round_trip_and_tamper() {
        let s = AesGcmSealer::new(&[7u8; 32]).unwrap();
        let sealed = s.seal("access-key:A", b"top secret").await.unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"top secret"));
        assert_eq!(
            s.open("access-key:A", &sealed).await.unwrap().as_slice(),
            b"top secret"
        );
        assert!(matches!(
            s.open("access-key:B", &sealed).await,
            Err(Error::Seal(_))
        ));
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(s.open("access-key:A", &bad).await.is_err());
        assert!(s.open("access-key:A", &sealed[..10]).await.is_err());
        let other = AesGcmSealer::new(&[8u8; 32]).unwrap();
        assert!(other.open("access-key:A", &sealed).await.is_err());
        assert_eq!(format!("{s:?}"), "AesGcmSealer([redacted])");
    }
}
