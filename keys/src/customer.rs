//! Customer-provided keys (S3 SSE-C): parsing and checking the three request headers, and the
//! keyed check value that lets the gateway refuse a wrong key before opening any record.
//!
//! The customer key is mixed into the stream key derivation of the data records together with the
//! bucket data key (`stream.rs`, docs/FORMAT.md "SSE-C"), so neither the data key nor the customer
//! key alone opens an SSE-C object. The gateway never stores the customer key or a bare hash of
//! it: only its MD5 (which the client itself sends and S3 echoes) and a check value
//! `HMAC-SHA256(k, customer key)` with `k` derived from the bucket data key and a random salt.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use md5::Digest as _;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::envelope::{DataKeyId, StreamKey};
use crate::error::{Error, Result};

/// The only SSE-C algorithm S3 defines.
pub const ALGORITHM_AES256: &str = "AES256";

const CHECK_INFO: &[u8] = b"vaultgate/v1/sse-c-check";
const CHECK_PREFIX: &str = "v1";

/// A 32-byte customer-provided key. Zeroized on drop; Debug prints only the key's MD5 (which the
/// client sends in the clear anyway); never serialized.
#[derive(Clone)]
pub struct CustomerKey {
    key: Zeroizing<[u8; 32]>,
    md5_b64: String,
}

impl fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerKey")
            .field("key", &"[redacted]")
            .field("md5", &self.md5_b64)
            .finish()
    }
}

/// Why a set of SSE-C headers is refused (the gateway maps each to an S3 error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerKeyError {
    /// An algorithm other than `AES256`.
    #[error("the SSE-C algorithm must be AES256")]
    UnsupportedAlgorithm,
    /// A key or key MD5 without the algorithm header.
    #[error("the SSE-C algorithm header is missing")]
    MissingAlgorithm,
    /// The algorithm without a key.
    #[error("the SSE-C key header is missing")]
    MissingKey,
    /// The key without its MD5.
    #[error("the SSE-C key MD5 header is missing")]
    MissingMd5,
    /// The key is not base64 of exactly 32 bytes.
    #[error("the SSE-C key must be the base64 encoding of 32 bytes")]
    BadKey,
    /// The key MD5 does not match the key.
    #[error("the SSE-C key MD5 does not match the key")]
    Md5Mismatch,
}

impl CustomerKey {
    /// The customer key of a request from its three SSE-C headers (algorithm, base64 key, base64
    /// MD5 of the key): `Ok(None)` when none is present, an error for any incomplete or
    /// inconsistent set.
    pub fn from_headers(
        algorithm: Option<&str>,
        key_b64: Option<&str>,
        md5_b64: Option<&str>,
    ) -> std::result::Result<Option<CustomerKey>, CustomerKeyError> {
        let Some(algorithm) = algorithm else {
            if key_b64.is_some() || md5_b64.is_some() {
                return Err(CustomerKeyError::MissingAlgorithm);
            }
            return Ok(None);
        };
        if algorithm != ALGORITHM_AES256 {
            return Err(CustomerKeyError::UnsupportedAlgorithm);
        }
        let key_b64 = key_b64.ok_or(CustomerKeyError::MissingKey)?;
        let md5_b64 = md5_b64.ok_or(CustomerKeyError::MissingMd5)?;
        let raw = Zeroizing::new(
            B64.decode(key_b64.trim())
                .map_err(|_| CustomerKeyError::BadKey)?,
        );
        if raw.len() != 32 {
            return Err(CustomerKeyError::BadKey);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&raw);
        let digest = md5::Md5::digest(&key[..]);
        let given = B64
            .decode(md5_b64.trim())
            .map_err(|_| CustomerKeyError::Md5Mismatch)?;
        if given.len() != 16 || !bool::from(given.as_slice().ct_eq(digest.as_slice())) {
            return Err(CustomerKeyError::Md5Mismatch);
        }
        Ok(Some(CustomerKey {
            key,
            md5_b64: B64.encode(digest),
        }))
    }

    /// A key from raw bytes (tests, vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> CustomerKey {
        let digest = md5::Md5::digest(bytes);
        CustomerKey {
            key: Zeroizing::new(bytes),
            md5_b64: B64.encode(digest),
        }
    }

    /// Base64 of the key's MD5, as S3 echoes it in `x-amz-server-side-encryption-customer-key-MD5`.
    pub fn md5_b64(&self) -> &str {
        &self.md5_b64
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.key
    }
}

fn check_mac(key: &StreamKey, salt: &[u8; 16], ck: &CustomerKey) -> Result<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), key.material().expose())
        .expand(CHECK_INFO, &mut k[..])
        .map_err(|_| Error::Format("HKDF output length".into()))?;
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&k[..])
        .map_err(|_| Error::Format("HMAC key length".into()))?;
    m.update(ck.expose());
    Ok(m.finalize().into_bytes().into())
}

/// A new check value for `ck` under the data key `key`:
/// `"v1:" ‖ hex(data_key_id) ‖ ":" ‖ hex(salt[16]) ‖ ":" ‖ hex(HMAC-SHA256(k, customer key))` with
/// `k = HKDF-SHA256(ikm = data key, salt, info = "vaultgate/v1/sse-c-check")` and a random salt (so
/// two objects under one customer key do not show it).
pub fn customer_check(key: &StreamKey, ck: &CustomerKey) -> Result<String> {
    let mut salt = [0u8; 16];
    crate::random_fill(&mut salt)?;
    let mac = check_mac(key, &salt, ck)?;
    Ok(format!(
        "{CHECK_PREFIX}:{}:{}:{}",
        key.data_key_id().to_hex(),
        hex::encode(salt),
        hex::encode(mac)
    ))
}

/// The parts of a check value: the data key it was made under, its salt and its MAC.
pub(crate) struct ParsedCheck {
    pub data_key_id: DataKeyId,
    salt: [u8; 16],
    mac: [u8; 32],
}

/// Parses a check value written by [`customer_check`].
pub(crate) fn parse_check(check: &str) -> Result<ParsedCheck> {
    let bad = || Error::Integrity("malformed SSE-C check value".into());
    let mut it = check.split(':');
    if it.next() != Some(CHECK_PREFIX) {
        return Err(bad());
    }
    let data_key_id = DataKeyId::from_hex(it.next().ok_or_else(bad)?).map_err(|_| bad())?;
    let mut salt = [0u8; 16];
    hex::decode_to_slice(it.next().ok_or_else(bad)?, &mut salt).map_err(|_| bad())?;
    let mut mac = [0u8; 32];
    hex::decode_to_slice(it.next().ok_or_else(bad)?, &mut mac).map_err(|_| bad())?;
    if it.next().is_some() {
        return Err(bad());
    }
    Ok(ParsedCheck {
        data_key_id,
        salt,
        mac,
    })
}

/// Whether `ck` matches a parsed check value; `key` must be the data key it names.
pub(crate) fn verify_parsed(key: &StreamKey, p: &ParsedCheck, ck: &CustomerKey) -> Result<bool> {
    if key.data_key_id() != p.data_key_id {
        return Err(Error::Integrity(
            "SSE-C check value names another data key".into(),
        ));
    }
    let mac = check_mac(key, &p.salt, ck)?;
    Ok(bool::from(mac.ct_eq(&p.mac)))
}

/// Whether `ck` matches `check` (made under `key`, see [`customer_check`]).
pub fn verify_customer_check(key: &StreamKey, check: &str, ck: &CustomerKey) -> Result<bool> {
    verify_parsed(key, &parse_check(check)?, ck)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=";
    const MD5_B64: &str = "DWygnHRtgiJ77HCm+1rvHw==";

    #[test]
    fn parses_the_three_headers() {
        let k = CustomerKey::from_headers(Some("AES256"), Some(KEY_B64), Some(MD5_B64))
            .unwrap()
            .unwrap();
        assert_eq!(k.md5_b64(), MD5_B64);
        assert!(
            CustomerKey::from_headers(None, None, None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn refuses_bad_sets() {
        use CustomerKeyError::*;
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            CustomerKeyError,
        );
        let cases: [Case; 7] = [
            (
                Some("AES128"),
                Some(KEY_B64),
                Some(MD5_B64),
                UnsupportedAlgorithm,
            ),
            (None, Some(KEY_B64), Some(MD5_B64), MissingAlgorithm),
            (None, None, Some(MD5_B64), MissingAlgorithm),
            (Some("AES256"), None, Some(MD5_B64), MissingKey),
            (Some("AES256"), Some(KEY_B64), None, MissingMd5),
            (Some("AES256"), Some("AAAA"), Some(MD5_B64), BadKey),
            (
                Some("AES256"),
                Some(KEY_B64),
                Some("AAAAAAAAAAAAAAAAAAAAAA=="),
                Md5Mismatch,
            ),
        ];
        for (a, k, m, want) in cases {
            assert_eq!(CustomerKey::from_headers(a, k, m).unwrap_err(), want);
        }
    }

    fn data_key(id: u8) -> StreamKey {
        let rec = crate::envelope::WrappedDataKey {
            id: DataKeyId([id; 16]),
            bucket: "b".into(),
            kms_key: String::new(),
            version: 1,
            kek_id: "local:0".into(),
            wrapped: vec![1],
            created_ms: 0,
        };
        StreamKey::new(
            &rec,
            crate::secret::DataKeyMaterial::from_hex(&"ab".repeat(32)).unwrap(),
        )
    }

    #[test]
    fn check_value_accepts_only_the_same_key_and_hides_it() {
        let dk = data_key(1);
        let ck = CustomerKey::from_bytes([0x42; 32]);
        let c1 = customer_check(&dk, &ck).unwrap();
        let c2 = customer_check(&dk, &ck).unwrap();
        assert_ne!(
            c1, c2,
            "salted: one customer key gives unlinkable check values"
        );
        assert!(verify_customer_check(&dk, &c1, &ck).unwrap());
        assert!(!verify_customer_check(&dk, &c1, &CustomerKey::from_bytes([0x43; 32])).unwrap());
        // the check names its data key; another data key is an error, not a match
        assert!(verify_customer_check(&data_key(2), &c1, &ck).is_err());
        // neither the key nor its bare hashes appear in the check value
        assert!(!c1.contains(&hex::encode([0x42; 32])));
        let sha: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest([0x42; 32]).into();
        assert!(!c1.contains(&hex::encode(sha)));
        for bad in ["", "v1:zz", "v2:00:00:00", &format!("{c1}:x")] {
            assert!(verify_customer_check(&dk, bad, &ck).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        let k = CustomerKey::from_bytes([0x42; 32]);
        let d = format!("{k:?}");
        assert!(d.contains("[redacted]"));
        assert!(!d.contains("42, 42"));
        assert!(!d.contains(&B64.encode([0x42; 32])));
    }
}
