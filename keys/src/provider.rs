//! Key providers (the KEK side of the envelope): the [`KeyProvider`] trait, the local provider
//! (versioned KEKs from the key file `<data_dir>/master.key`, or one hex key passed in from the
//! environment, a systemd credential or a secret file, with optionally the previous key while a
//! rotation is under way), and [`provider_from_config`] which picks given key > KMS URL > key
//! file.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::{DataKeyMaterial, Secret};

/// A key-encryption-key provider. Wraps and unwraps bucket data keys; the wrap is bound to the bucket.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// "file", "env" or "aws-kms".
    fn kind(&self) -> &'static str;
    /// Id of the KEK new data keys are wrapped with.
    fn current_kek_id(&self) -> String;
    /// New random data key for `bucket` wrapped by the KMS key `kms_key` (a key ARN from
    /// [`KeyProvider::resolve_key`]; empty: the provider's configured key): (material, kek id,
    /// wrapped bytes).
    async fn generate_data_key(
        &self,
        bucket: &str,
        kms_key: &str,
    ) -> Result<(DataKeyMaterial, String, Vec<u8>)>;
    /// Unwraps a data key wrapped by KEK `kek_id` for `bucket`.
    async fn unwrap(&self, kek_id: &str, wrapped: &[u8], bucket: &str) -> Result<DataKeyMaterial>;
    /// Re-wraps a data key under the current KEK of its KMS key `kms_key` (empty: the
    /// provider's configured key; else that KMS key again, never the configured one):
    /// (new kek id, new wrapped bytes).
    async fn rewrap(
        &self,
        kek_id: &str,
        wrapped: &[u8],
        bucket: &str,
        kms_key: &str,
    ) -> Result<(String, Vec<u8>)>;
    /// The KEK id new data keys of `kms_key` are wrapped with (empty: [`KeyProvider::current_kek_id`]).
    fn kek_id_for(&self, kms_key: &str) -> String {
        if kms_key.is_empty() {
            self.current_kek_id()
        } else {
            format!("{}{kms_key}", crate::kms::KMS_KEK_PREFIX)
        }
    }
    /// The key ARN a KMS key id, ARN or `alias/…` named by a request stands for, checked usable
    /// (exists, enabled, for encryption); [`Error::KmsKey`] when it is not. Only a KMS provider
    /// has other keys than its own.
    async fn resolve_key(&self, key_id: &str) -> Result<String> {
        let _ = key_id;
        Err(Error::Config(format!(
            "the {} key provider has no KMS keys to choose from",
            self.kind()
        )))
    }
    /// Can the provider wrap and unwrap right now? (KMS: DescribeKey; also refreshes the current key id.)
    async fn health(&self) -> Result<()>;
    /// Adds a new KEK version and makes it current; returns its id. Only the key file provider rotates
    /// by itself (for AWS KMS, point the alias at a new key or use KMS automatic rotation).
    async fn rotate_kek(&self) -> Result<String> {
        Err(Error::Config(format!(
            "the {} key provider cannot rotate its KEK itself",
            self.kind()
        )))
    }
    /// Where the provider looks for its KEKs, for messages (a path, a setting, a KMS key and
    /// endpoint; never key material).
    fn location(&self) -> String {
        self.kind().to_owned()
    }
    /// The KEKs the provider holds: (version, kek id, is current). A KMS provider knows only the
    /// key it is configured with (version 0).
    fn keks(&self) -> Vec<(u32, String, bool)> {
        vec![(0, self.current_kek_id(), true)]
    }
    /// Probes the provider like [`KeyProvider::health`], telling an unreachable provider (worth
    /// waiting for) from one that answered with a refusal.
    async fn probe(&self) -> ProviderState {
        match self.health().await {
            Ok(()) => ProviderState::Ready,
            Err(e) => ProviderState::Refused(e.to_string()),
        }
    }
    /// Removes a non-current KEK version (after `rewrap_all` moved every data key off it).
    async fn retire_kek(&self, kek_id: &str) -> Result<()> {
        let _ = kek_id;
        Err(Error::Config(format!(
            "the {} key provider cannot retire KEKs",
            self.kind()
        )))
    }
}

/// A key provider's state as [`KeyProvider::probe`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderState {
    /// It answers and can wrap new data keys.
    Ready,
    /// It cannot be reached (network, timeout): cached data keys keep serving.
    Unreachable(String),
    /// It answered with a refusal (unknown or disabled key, access denied, bad configuration).
    Refused(String),
}

impl ProviderState {
    /// "ready", "unreachable" or "refused".
    pub fn name(&self) -> &'static str {
        match self {
            ProviderState::Ready => "ready",
            ProviderState::Unreachable(_) => "unreachable",
            ProviderState::Refused(_) => "refused",
        }
    }
    /// The reason of a failed probe.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ProviderState::Ready => None,
            ProviderState::Unreachable(m) | ProviderState::Refused(m) => Some(m),
        }
    }
}

/// Where keys come from. The caller fills it from its config and environment
/// (`VAULTGATE_MASTER_KEY`, or `BLOB_KEY` as the original hub named it; `VAULTGATE_KMS_ACCESS_KEY`,
/// `VAULTGATE_KMS_SECRET_KEY`); `keys` reads no environment itself.
#[derive(Clone, Debug, Default)]
pub struct KeyConfig {
    /// Data directory; the key file is `<data_dir>/master.key`.
    pub data_dir: PathBuf,
    /// Hex master key (64 hex chars) from the environment, a systemd credential or a file.
    pub master_key_hex: Option<Secret>,
    /// The master key being rotated away from (64 hex chars): kept to unwrap data keys it
    /// wrapped, never to wrap new ones (see [`LocalProvider::from_hex_with_previous`]).
    pub previous_master_key_hex: Option<Secret>,
    /// `aws-kms://KEY_ID_OR_ALIAS?region=…&endpoint=…`
    pub kms_url: Option<String>,
    /// Static KMS access key id (else the standard AWS credential chain).
    pub kms_access_key: Option<String>,
    /// Static KMS secret access key.
    pub kms_secret_key: Option<Secret>,
}

/// File name of the key file inside the data dir.
pub const KEY_FILE_NAME: &str = "master.key";

/// env key > KMS URL > key file `<data_dir>/master.key` (generated with mode 0600 on first start;
/// a group/world-readable file is refused).
pub async fn provider_from_config(cfg: &KeyConfig) -> Result<Arc<dyn KeyProvider>> {
    if let Some(hex_key) = &cfg.master_key_hex {
        return Ok(Arc::new(LocalProvider::from_hex_with_previous(
            hex_key.expose(),
            cfg.previous_master_key_hex.as_ref().map(|p| p.expose()),
        )?));
    }
    if cfg.previous_master_key_hex.is_some() {
        return Err(Error::Config(
            "a previous master key is only used beside a current one (VAULTGATE_MASTER_KEY)".into(),
        ));
    }
    if let Some(url) = &cfg.kms_url {
        let creds = match (&cfg.kms_access_key, &cfg.kms_secret_key) {
            (Some(a), Some(s)) => Some((a.clone(), s.clone())),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "set both the KMS access key and secret key, or neither".into(),
                ));
            }
        };
        return Ok(Arc::new(
            crate::kms::KmsProvider::from_url(url, creds).await?,
        ));
    }
    Ok(Arc::new(LocalProvider::open_or_create(
        &cfg.data_dir.join(KEY_FILE_NAME),
    )?))
}

const KEK_ID_PREFIX: &str = "local:";
const DEK_WRAP_AAD: &[u8] = b"vaultgate/v1/dek";

/// Key id of a local KEK: "local:" + hex of the first 8 bytes of HMAC-SHA256(KEK, "vaultgate kek id").
pub fn local_kek_id(kek: &DataKeyMaterial) -> String {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(kek.expose())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(b"vaultgate kek id");
    let tag = m.finalize().into_bytes();
    format!("{KEK_ID_PREFIX}{}", hex::encode(&tag[..8]))
}

fn wrap_aad(bucket: &str) -> Vec<u8> {
    let mut a = DEK_WRAP_AAD.to_vec();
    a.extend_from_slice(&(bucket.len() as u64).to_be_bytes());
    a.extend_from_slice(bucket.as_bytes());
    a
}

/// Key file on disk (JSON, mode 0600).
#[derive(Serialize, Deserialize)]
struct KeyFile {
    format: u32,
    current: u32,
    keys: Vec<KeyFileEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyFileEntry {
    version: u32,
    #[serde(with = "crate::secret::stored")]
    hex: Secret,
    #[serde(default)]
    created_ms: i64,
}

struct LocalKek {
    version: u32,
    id: String,
    key: DataKeyMaterial,
    created_ms: i64,
}

struct LocalKeks {
    current: u32,
    keks: Vec<LocalKek>,
}

impl LocalKeks {
    fn current(&self) -> Result<&LocalKek> {
        self.keks
            .iter()
            .find(|k| k.version == self.current)
            .ok_or_else(|| Error::Config("current KEK version missing".into()))
    }
    fn by_id(&self, id: &str) -> Result<&LocalKek> {
        self.keks
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::KeyUnavailable(format!("KEK {id} is not in this key provider")))
    }
}

/// Local KEKs: the key file provider (versioned, rotatable) or one env hex key.
pub struct LocalProvider {
    kind: &'static str,
    path: Option<PathBuf>,
    state: RwLock<LocalKeks>,
}

impl fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalProvider")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("current_kek_id", &self.current_kek_id_inner())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch (wall clock); the crate's one clock.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn check_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Config(format!("cannot stat {}: {e}", path.display())))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "key file {} is accessible by group/others (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

fn write_key_file(path: &Path, file: &KeyFile, create_new: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let json = Zeroizing::new(
        serde_json::to_vec_pretty(file)
            .map_err(|e| Error::Config(format!("cannot encode key file: {e}")))?,
    );
    let cfg_err =
        |what: &str, e: std::io::Error| Error::Config(format!("{what} {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| cfg_err("cannot create the directory of", e))?;
    }
    let target = if create_new {
        path.to_path_buf()
    } else {
        path.with_extension("key.tmp")
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    let mut f = opts.open(&target).map_err(|e| cfg_err("cannot write", e))?;
    f.write_all(&json).map_err(|e| cfg_err("cannot write", e))?;
    f.sync_all().map_err(|e| cfg_err("cannot sync", e))?;
    if !create_new {
        std::fs::rename(&target, path).map_err(|e| cfg_err("cannot replace", e))?;
    }
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

impl LocalProvider {
    /// The given master key as the current KEK (version 2), and `previous` (version 1), the key
    /// being rotated away from, kept only to unwrap what it wrapped until
    /// [`crate::Keyring::rewrap_all`] has moved every data key to the current one. Without
    /// `previous`, the same as [`LocalProvider::from_hex`]. Kind "env".
    pub fn from_hex_with_previous(hex_key: &str, previous: Option<&str>) -> Result<LocalProvider> {
        let current = Self::from_hex(hex_key)?;
        let Some(previous) = previous else {
            return Ok(current);
        };
        let old = DataKeyMaterial::from_hex(previous).map_err(|_| {
            Error::Config("previous master key must be 64 hex characters (32 bytes)".into())
        })?;
        let old_id = local_kek_id(&old);
        let mut state = current
            .state
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let mut kek = state.keks.remove(0);
        if kek.id == old_id {
            return Err(Error::Config(
                "the previous master key is the current one; give the new key as the master key"
                    .into(),
            ));
        }
        kek.version = 2;
        Ok(LocalProvider {
            kind: "env",
            path: None,
            state: RwLock::new(LocalKeks {
                current: 2,
                keks: vec![
                    LocalKek {
                        version: 1,
                        id: old_id,
                        key: old,
                        created_ms: 0,
                    },
                    kek,
                ],
            }),
        })
    }

    /// One KEK from 64 hex characters (env `VAULTGATE_MASTER_KEY` / `BLOB_KEY`). Kind "env".
    pub fn from_hex(hex_key: &str) -> Result<LocalProvider> {
        let key = DataKeyMaterial::from_hex(hex_key)
            .map_err(|_| Error::Config("master key must be 64 hex characters (32 bytes)".into()))?;
        let id = local_kek_id(&key);
        Ok(LocalProvider {
            kind: "env",
            path: None,
            state: RwLock::new(LocalKeks {
                current: 1,
                keks: vec![LocalKek {
                    version: 1,
                    id,
                    key,
                    created_ms: 0,
                }],
            }),
        })
    }

    /// Loads the key file at `path`, creating it (mode 0600, one random KEK) if it does not exist.
    /// Refuses a file readable or writable by group or others. Kind "file".
    pub fn open_or_create(path: &Path) -> Result<LocalProvider> {
        if !path.exists() {
            let key = DataKeyMaterial::random()?;
            let file = KeyFile {
                format: 1,
                current: 1,
                keys: vec![KeyFileEntry {
                    version: 1,
                    hex: Secret::new(key.to_hex().as_str()),
                    created_ms: now_ms(),
                }],
            };
            write_key_file(path, &file, true)?;
            tracing::warn!(path = %path.display(), "no key configured: generated a new key file (mode 0600); back it up");
        }
        Self::open(path)
    }

    /// Loads an existing key file.
    pub fn open(path: &Path) -> Result<LocalProvider> {
        check_mode(path)?;
        let raw =
            Zeroizing::new(std::fs::read(path).map_err(|e| {
                Error::Config(format!("cannot read key file {}: {e}", path.display()))
            })?);
        let file: KeyFile = serde_json::from_slice(&raw).map_err(|e| {
            Error::Config(format!(
                "key file {} is malformed ({:?} error at line {} column {})",
                path.display(),
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if file.format != 1 {
            return Err(Error::Config(format!(
                "key file format {} not supported",
                file.format
            )));
        }
        let mut keks = Vec::with_capacity(file.keys.len());
        for e in &file.keys {
            let key = DataKeyMaterial::from_hex(e.hex.expose()).map_err(|_| {
                Error::Config(format!(
                    "key file: version {} is not 64 hex characters",
                    e.version
                ))
            })?;
            if keks.iter().any(|k: &LocalKek| k.version == e.version) {
                return Err(Error::Config(format!(
                    "key file: duplicate version {}",
                    e.version
                )));
            }
            keks.push(LocalKek {
                version: e.version,
                id: local_kek_id(&key),
                key,
                created_ms: e.created_ms,
            });
        }
        let state = LocalKeks {
            current: file.current,
            keks,
        };
        state.current()?;
        Ok(LocalProvider {
            kind: "file",
            path: Some(path.to_path_buf()),
            state: RwLock::new(state),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, LocalKeks> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn current_kek_id_inner(&self) -> String {
        self.read()
            .current()
            .map(|k| k.id.clone())
            .unwrap_or_default()
    }

    /// KEK versions and ids: (version, kek id, is current).
    pub fn versions(&self) -> Vec<(u32, String, bool)> {
        let s = self.read();
        s.keks
            .iter()
            .map(|k| (k.version, k.id.clone(), k.version == s.current))
            .collect()
    }

    fn persist(&self, s: &LocalKeks) -> Result<()> {
        let Some(path) = &self.path else {
            return Err(Error::Config(
                "an env master key cannot be rotated; use a key file or KMS".into(),
            ));
        };
        let file = KeyFile {
            format: 1,
            current: s.current,
            keys: s
                .keks
                .iter()
                .map(|k| KeyFileEntry {
                    version: k.version,
                    hex: Secret::new(k.key.to_hex().as_str()),
                    created_ms: k.created_ms,
                })
                .collect(),
        };
        write_key_file(path, &file, false)
    }

    fn wrap_with(kek: &LocalKek, material: &DataKeyMaterial, bucket: &str) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 12];
        crate::random_fill(&mut nonce)?;
        let ct = crate::aead::seal_append(
            kek.key.expose(),
            nonce,
            &wrap_aad(bucket),
            material.expose(),
        )?;
        Ok([&nonce[..], &ct].concat())
    }

    fn unwrap_with(kek: &LocalKek, wrapped: &[u8], bucket: &str) -> Result<DataKeyMaterial> {
        if wrapped.len() != 12 + 32 + 16 {
            return Err(Error::Integrity(
                "wrapped data key has the wrong length".into(),
            ));
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&wrapped[..12]);
        let pt =
            crate::aead::open_append(kek.key.expose(), nonce, &wrap_aad(bucket), &wrapped[12..])
                .map_err(|_| {
                    Error::Integrity(
                        "wrapped data key does not verify (tampered or wrong bucket)".into(),
                    )
                })?;
        DataKeyMaterial::from_slice(&pt)
    }
}

/// A local provider holds no KMS keys: a data key bound to one cannot be made or re-wrapped here.
fn no_kms_key(kms_key: &str) -> Result<()> {
    if kms_key.is_empty() {
        return Ok(());
    }
    Err(Error::KeyUnavailable(format!(
        "data keys of KMS key {kms_key} need a gateway configured with a KMS"
    )))
}

#[async_trait]
impl KeyProvider for LocalProvider {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn current_kek_id(&self) -> String {
        self.current_kek_id_inner()
    }

    fn location(&self) -> String {
        match &self.path {
            Some(p) => format!("key file {}", p.display()),
            None => "the configured master key".into(),
        }
    }

    fn keks(&self) -> Vec<(u32, String, bool)> {
        self.versions()
    }

    async fn generate_data_key(
        &self,
        bucket: &str,
        kms_key: &str,
    ) -> Result<(DataKeyMaterial, String, Vec<u8>)> {
        no_kms_key(kms_key)?;
        let material = DataKeyMaterial::random()?;
        let s = self.read();
        let kek = s.current()?;
        let wrapped = Self::wrap_with(kek, &material, bucket)?;
        Ok((material, kek.id.clone(), wrapped))
    }

    async fn unwrap(&self, kek_id: &str, wrapped: &[u8], bucket: &str) -> Result<DataKeyMaterial> {
        let s = self.read();
        Self::unwrap_with(s.by_id(kek_id)?, wrapped, bucket)
    }

    async fn rewrap(
        &self,
        kek_id: &str,
        wrapped: &[u8],
        bucket: &str,
        kms_key: &str,
    ) -> Result<(String, Vec<u8>)> {
        no_kms_key(kms_key)?;
        let s = self.read();
        let material = Self::unwrap_with(s.by_id(kek_id)?, wrapped, bucket)?;
        let cur = s.current()?;
        Ok((cur.id.clone(), Self::wrap_with(cur, &material, bucket)?))
    }

    async fn health(&self) -> Result<()> {
        self.read().current().map(|_| ())
    }

    async fn rotate_kek(&self) -> Result<String> {
        let mut s = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.path.is_none() {
            return Err(Error::Config(
                "an env master key cannot be rotated; use a key file or KMS".into(),
            ));
        }
        let version = s.keks.iter().map(|k| k.version).max().unwrap_or(0) + 1;
        let key = DataKeyMaterial::random()?;
        let id = local_kek_id(&key);
        let prev = s.current;
        s.keks.push(LocalKek {
            version,
            id: id.clone(),
            key,
            created_ms: now_ms(),
        });
        s.current = version;
        if let Err(e) = self.persist(&s) {
            s.keks.pop();
            s.current = prev;
            return Err(e);
        }
        tracing::info!(version, kek_id = %id, "rotated local KEK");
        Ok(id)
    }

    async fn retire_kek(&self, kek_id: &str) -> Result<()> {
        let mut s = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = s.by_id(kek_id)?.version;
        if v == s.current {
            return Err(Error::Config("cannot retire the current KEK".into()));
        }
        if self.path.is_none() {
            return Err(Error::Config(
                "an env master key has no versions to retire".into(),
            ));
        }
        let idx = s
            .keks
            .iter()
            .position(|k| k.version == v)
            .ok_or_else(|| Error::Config("no such KEK".into()))?;
        let removed = s.keks.remove(idx);
        if let Err(e) = self.persist(&s) {
            s.keks.insert(idx, removed);
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotation_keeps_the_previous_key_for_unwrapping_only() {
        let a = "11".repeat(32);
        let b = "22".repeat(32);
        let old = LocalProvider::from_hex(&a).unwrap();
        let (dk, kek, wrapped) = old.generate_data_key("bkt", "").await.unwrap();
        let rotating = LocalProvider::from_hex_with_previous(&b, Some(&a)).unwrap();
        assert_ne!(
            rotating.current_kek_id(),
            kek,
            "new data keys use the new key"
        );
        let back = rotating.unwrap(&kek, &wrapped, "bkt").await.unwrap();
        assert_eq!(back.expose(), dk.expose());
        let (kek2, wrapped2) = rotating.rewrap(&kek, &wrapped, "bkt", "").await.unwrap();
        assert_eq!(kek2, rotating.current_kek_id());
        let new = LocalProvider::from_hex(&b).unwrap();
        assert_eq!(
            new.unwrap(&kek2, &wrapped2, "bkt").await.unwrap().expose(),
            dk.expose()
        );
        assert!(new.unwrap(&kek, &wrapped, "bkt").await.is_err());
        // the same key twice, or a bad previous key, is refused
        let e = LocalProvider::from_hex_with_previous(&a, Some(&a)).unwrap_err();
        assert!(
            e.to_string()
                .contains("previous master key is the current one"),
            "{e}"
        );
        assert!(LocalProvider::from_hex_with_previous(&a, Some("xyz")).is_err());
        let cfg = KeyConfig {
            previous_master_key_hex: Some(Secret::new(a.as_str())),
            ..KeyConfig::default()
        };
        assert!(provider_from_config(&cfg).await.is_err());
    }
}
