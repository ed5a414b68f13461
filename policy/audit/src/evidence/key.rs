//! The gateway's Ed25519 evidence key: generated on first start as `<data dir>/evidence.key`
//! (mode 0600, 64 hex characters of the secret seed, refused when group/world accessible),
//! never printed; and its exportable public half ([`PublicKey`], 64 hex characters).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{AuditError, AuditResult, SourceSecret};

/// File name of the evidence key inside the data directory.
pub const KEY_FILE: &str = "evidence.key";

/// The signing key. Zeroized on drop (ed25519-dalek `zeroize`), Debug shows only the
/// public key fingerprint.
pub struct EvidenceKey {
    signing: SigningKey,
}

impl fmt::Debug for EvidenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EvidenceKey([redacted], public {})",
            self.public_key().fingerprint()
        )
    }
}

impl EvidenceKey {
    /// A fresh random key (not stored).
    pub fn generate() -> AuditResult<EvidenceKey> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice())
            .map_err(|e| AuditError::Key(format!("no randomness: {e}")))?;
        Ok(EvidenceKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The key from a 32-byte seed (tests, imports).
    pub fn from_seed(seed: &[u8; 32]) -> EvidenceKey {
        EvidenceKey {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// `<data_dir>/evidence.key`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(KEY_FILE)
    }

    /// Loads `<data_dir>/evidence.key`, generating it (0600) if it does not exist.
    /// Returns the key and whether it was generated now (the caller logs the path).
    pub fn load_or_generate(data_dir: &Path) -> AuditResult<(EvidenceKey, bool)> {
        let path = Self::path_in(data_dir);
        match Self::load(&path) {
            Ok(k) => return Ok((k, false)),
            Err(AuditError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(e) => return Err(e),
        }
        let key = Self::generate()?;
        match key.store(&path) {
            Ok(()) => Ok((key, true)),
            // Another process created it first: use theirs.
            Err(AuditError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                Ok((Self::load(&path)?, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Loads a key file; refuses one that group or others may access.
    pub fn load(path: &Path) -> AuditResult<EvidenceKey> {
        let meta = std::fs::metadata(path).map_err(|e| AuditError::io(path.display(), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(AuditError::Key(format!(
                    "{} has mode {mode:04o}; it must not be accessible by group or others (chmod 600)",
                    path.display()
                )));
            }
        }
        if !meta.is_file() {
            return Err(AuditError::Key(format!("{} is not a file", path.display())));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| AuditError::io(path.display(), e))?,
        );
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), seed.as_mut_slice()).map_err(|_| {
            AuditError::Key(format!(
                "{} must hold 64 hex characters (the Ed25519 seed)",
                path.display()
            ))
        })?;
        Ok(EvidenceKey::from_seed(&seed))
    }

    /// Writes the key to `path` (must not exist), mode 0600, fsynced.
    pub fn store(&self, path: &Path) -> AuditResult<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts
            .open(path)
            .map_err(|e| AuditError::io(path.display(), e))?;
        let text = Zeroizing::new(format!("{}\n", hex::encode(self.signing.as_bytes())));
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| AuditError::io(path.display(), e))
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// Ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// The HMAC key for hashed source addresses, derived from this key (so it is not in the
    /// database): SHA-256("vaultgate-audit-source-v1" || seed).
    pub fn source_secret(&self) -> SourceSecret {
        let mut h = Sha256::new();
        h.update(b"vaultgate-audit-source-v1");
        h.update(self.signing.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(&h.finalize());
        SourceSecret::from_bytes(out)
    }
}

/// An Ed25519 public key: exported and parsed as 64 lower-case hex characters.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn parse(text: &str) -> AuditResult<PublicKey> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| AuditError::Key("a public key is 64 hex characters (32 bytes)".into()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| AuditError::Key("not a valid Ed25519 public key".into()))
    }

    /// Reads a public key file (64 hex characters) or, if `arg` is not a file, parses it.
    pub fn from_arg(arg: &str) -> AuditResult<PublicKey> {
        let p = Path::new(arg);
        if p.is_file() {
            let text = std::fs::read_to_string(p).map_err(|e| AuditError::io(p.display(), e))?;
            PublicKey::parse(&text)
        } else {
            PublicKey::parse(arg)
        }
    }

    /// 64 lower-case hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// `sha256:` + first 16 hex characters of SHA-256 of the key bytes (for messages).
    pub fn fingerprint(&self) -> String {
        let d = Sha256::digest(self.0.as_bytes());
        format!("sha256:{}", &hex::encode(d)[..16])
    }

    /// Strict Ed25519 verification of `sig` over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(bytes) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.0
            .verify_strict(msg, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_0600_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, created) = EvidenceKey::load_or_generate(dir.path()).unwrap();
        assert!(created);
        let (k2, created) = EvidenceKey::load_or_generate(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(k1.public_key(), k2.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(EvidenceKey::path_in(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = k1.sign(b"hello");
        assert!(k2.public_key().verify(b"hello", &sig));
        assert!(!k2.public_key().verify(b"hellp", &sig));
        assert!(!k2.public_key().verify(b"hello", &sig[..63]));
    }

    #[cfg(unix)]
    #[test]
    fn group_readable_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (_k, _) = EvidenceKey::load_or_generate(dir.path()).unwrap();
        let path = EvidenceKey::path_in(dir.path());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = EvidenceKey::load_or_generate(dir.path()).unwrap_err();
        assert!(
            matches!(err, AuditError::Key(ref m) if m.contains("0640")),
            "{err}"
        );
    }

    #[test]
    fn malformed_key_file_is_refused_and_debug_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = EvidenceKey::from_seed(&[7u8; 32]);
        key.store(&path).unwrap();
        assert!(key.store(&path).is_err(), "store must not overwrite");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), "07".repeat(32));
        let dbg = format!("{key:?}");
        assert!(!dbg.contains(&"07".repeat(32)), "{dbg}");
        assert!(dbg.contains("[redacted]"));
        std::fs::write(&path, "zz\n").unwrap();
        assert!(matches!(EvidenceKey::load(&path), Err(AuditError::Key(_))));
    }

    #[test]
    fn public_key_parses_and_rejects() {
        let k = EvidenceKey::from_seed(&[1u8; 32]).public_key();
        assert_eq!(PublicKey::parse(&format!(" {}\n", k.to_hex())).unwrap(), k);
        assert!(PublicKey::parse("abcd").is_err());
        assert!(PublicKey::parse(&"g".repeat(64)).is_err());
        assert!(k.fingerprint().starts_with("sha256:"));
        assert_eq!(k.fingerprint().len(), 7 + 16);
    }
}
