//! Secret newtypes: 32-byte key material and secret strings. They zeroize on drop,
//! compare in constant time and print as `[redacted]`.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// 32 bytes of key material (a bucket data key or a KEK). Never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKeyMaterial([u8; 32]);

impl DataKeyMaterial {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> DataKeyMaterial {
        DataKeyMaterial(bytes)
    }

    /// Copies key bytes from a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<DataKeyMaterial> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Format(format!("key must be 32 bytes, got {}", bytes.len())))?;
        Ok(DataKeyMaterial(arr))
    }

    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(hex_str: &str) -> Result<DataKeyMaterial> {
        let mut out = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_str.trim(), &mut out[..])
            .map_err(|_| Error::Config("key must be 64 hex characters (32 bytes)".into()))?;
        Ok(DataKeyMaterial(*out))
    }

    /// Fresh random key material from the OS.
    pub fn random() -> Result<DataKeyMaterial> {
        let mut k = DataKeyMaterial([0u8; 32]);
        crate::random_fill(&mut k.0)?;
        Ok(k)
    }

    /// The raw bytes; only for key derivation and wrapping inside this crate.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex of the key (for writing the key file). The result zeroizes on drop.
    pub(crate) fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }
}

impl PartialEq for DataKeyMaterial {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for DataKeyMaterial {}

impl fmt::Debug for DataKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
impl fmt::Display for DataKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A secret string (a hex master key, a KMS secret access key). Zeroizes on drop, prints `[redacted]`.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> SecretString {
        SecretString(s.into())
    }
    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}
impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString(s.to_owned())
    }
}
impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for SecretString {}
impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl serde::Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(SecretString)
    }
}
