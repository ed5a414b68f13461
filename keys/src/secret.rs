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

/// A secret string, the one type for every secret the project handles: an access key's secret
/// key, a hex master key, a KMS, backend or Azure secret, the admin token secret.
///
/// It zeroizes on drop, compares in constant time, and prints and serializes as `[redacted]`:
/// writing the value itself takes an explicit [`ExposeForStorage`] (or `#[serde(with =
/// "keys::secret::stored")]` on a field), so a secret can only reach a file or a wire where the
/// code says so.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret value (for signing checks, sealing, handing to a client library).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A 40-character secret (standard base64 of 30 random bytes the caller supplies, so that
    /// crates without an RNG can use it).
    pub fn from_random(bytes: &[u8; 30]) -> Secret {
        use base64::Engine;
        Secret(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}
impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for Secret {}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Serializes as `[redacted]`: a config or a status printed as JSON or TOML never shows a secret.
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A secret to be written as its value (the key file): the one way to serialize one in clear.
pub struct ExposeForStorage<'a>(pub &'a Secret);

impl serde::Serialize for ExposeForStorage<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose())
    }
}

/// `#[serde(with = "keys::secret::stored")]`: a [`Secret`] field stored as its value.
pub mod stored {
    use super::{ExposeForStorage, Secret};

    /// Writes the value.
    pub fn serialize<S: serde::Serializer>(
        secret: &Secret,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&ExposeForStorage(secret), s)
    }

    /// Reads the value.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Secret, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_shown_only_where_the_code_asks() {
        let s = Secret::new("wJalrXUtnFEMI/K7MDENG");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(
            serde_json::to_string(&ExposeForStorage(&s)).unwrap(),
            "\"wJalrXUtnFEMI/K7MDENG\""
        );
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Stored {
            #[serde(with = "stored")]
            hex: Secret,
        }
        let json = serde_json::to_string(&Stored { hex: s.clone() }).unwrap();
        assert_eq!(json, "{\"hex\":\"wJalrXUtnFEMI/K7MDENG\"}");
        let back: Stored = serde_json::from_str(&json).unwrap();
        assert_eq!(back.hex, s);
        assert_ne!(Secret::new("wJalrXUtnFEMI/K7MDENH"), s);
    }

    #[test]
    fn random_secrets_are_standard_base64_of_30_bytes() {
        // the same 40 characters as the hand-written encoder this replaced
        assert_eq!(
            Secret::from_random(&[0xA5; 30]).expose(),
            "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWl"
        );
        assert_eq!(Secret::from_random(&[0xFF; 30]).expose(), "/".repeat(40));
    }
}
