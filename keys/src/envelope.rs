//! Envelope keys: versioned bucket data keys wrapped by a [`KeyProvider`], the [`DataKeyStore`]
//! they live in, the moka cache of unwrapped keys (TTL + size bound; material zeroizes when the
//! last handle drops), rotation (re-wrap) and small sealed blobs for secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::customer::CustomerKey;
use crate::error::{Error, Result};
use crate::format::Header;
use crate::provider::{KeyProvider, now_ms};
use crate::secret::DataKeyMaterial;

/// Id of a bucket data key. Not secret: Debug/Display print lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataKeyId(pub [u8; 16]);

impl DataKeyId {
    /// A fresh random id.
    pub fn random() -> Result<DataKeyId> {
        let mut b = [0u8; 16];
        crate::random_fill(&mut b)?;
        Ok(DataKeyId(b))
    }
    /// Lower-case hex (32 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses 32 hex characters.
    pub fn from_hex(s: &str) -> Result<DataKeyId> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b)
            .map_err(|_| Error::Format(format!("bad data key id {s:?}")))?;
        Ok(DataKeyId(b))
    }
}

impl fmt::Debug for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Display for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A bucket data key as stored: wrapped by the KEK `kek_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// Key id (also written into every stream header).
    pub id: DataKeyId,
    /// Bucket the key belongs to (part of the wrap context).
    pub bucket: String,
    /// The KMS key (ARN) this data key is bound to: objects written with SSE-KMS naming that
    /// key are sealed under it, and a re-wrap keeps it under that key. Empty: the provider's
    /// configured key (every data key of a local-key gateway). A bucket has one version
    /// sequence per KMS key. Not recorded in stream headers (their `kek_id` names the key
    /// that unwraps).
    pub kms_key: String,
    /// Version of the bucket's data key (1, 2, ...).
    pub version: u32,
    /// KEK that wraps it (`local:<fingerprint>` or `aws-kms:<key arn>`).
    pub kek_id: String,
    /// Wrapped key bytes (opaque; only the provider can unwrap).
    pub wrapped: Vec<u8>,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

/// Persistent storage of wrapped data keys. Implemented by the gateway's index; [`MemoryDataKeyStore`] for tests.
#[async_trait]
pub trait DataKeyStore: Send + Sync {
    /// Newest version for the bucket and KMS key (empty: the provider's configured key).
    async fn current(&self, bucket: &str, kms_key: &str) -> Result<Option<WrappedDataKey>>;
    /// By id.
    async fn get(&self, id: &DataKeyId) -> Result<Option<WrappedDataKey>>;
    /// Adds a key.
    async fn insert(&self, key: &WrappedDataKey) -> Result<()>;
    /// Adds a key unless its bucket already has a key of its KMS key and version (created at the same
    /// moment by another process sharing the store, e.g. another gateway instance on one
    /// database); returns the key stored under that bucket, KMS key and version: `key`, or
    /// the other.
    /// The default inserts and returns `key` (a store only this process writes).
    async fn insert_first(&self, key: &WrappedDataKey) -> Result<WrappedDataKey> {
        self.insert(key).await?;
        Ok(key.clone())
    }
    /// Replaces the wrapping of a key (rotation).
    async fn update_wrapping(&self, id: &DataKeyId, kek_id: &str, wrapped: &[u8]) -> Result<()>;
    /// Every key.
    async fn list(&self) -> Result<Vec<WrappedDataKey>>;
}

/// In-memory [`DataKeyStore`].
#[derive(Default, Debug)]
pub struct MemoryDataKeyStore {
    keys: Mutex<BTreeMap<DataKeyId, WrappedDataKey>>,
}

impl MemoryDataKeyStore {
    /// Empty store.
    pub fn new() -> MemoryDataKeyStore {
        MemoryDataKeyStore::default()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<DataKeyId, WrappedDataKey>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl DataKeyStore for MemoryDataKeyStore {
    async fn current(&self, bucket: &str, kms_key: &str) -> Result<Option<WrappedDataKey>> {
        Ok(self
            .lock()
            .values()
            .filter(|k| k.bucket == bucket && k.kms_key == kms_key)
            .max_by_key(|k| k.version)
            .cloned())
    }
    async fn get(&self, id: &DataKeyId) -> Result<Option<WrappedDataKey>> {
        Ok(self.lock().get(id).cloned())
    }
    async fn insert(&self, key: &WrappedDataKey) -> Result<()> {
        self.lock().insert(key.id, key.clone());
        Ok(())
    }
    async fn insert_first(&self, key: &WrappedDataKey) -> Result<WrappedDataKey> {
        let mut g = self.lock();
        if let Some(there) = g.values().find(|k| {
            k.bucket == key.bucket && k.kms_key == key.kms_key && k.version == key.version
        }) {
            return Ok(there.clone());
        }
        g.insert(key.id, key.clone());
        Ok(key.clone())
    }
    async fn update_wrapping(&self, id: &DataKeyId, kek_id: &str, wrapped: &[u8]) -> Result<()> {
        let mut g = self.lock();
        let k = g
            .get_mut(id)
            .ok_or_else(|| Error::KeyUnavailable(format!("no data key {id}")))?;
        k.kek_id = kek_id.to_owned();
        k.wrapped = wrapped.to_vec();
        Ok(())
    }
    async fn list(&self) -> Result<Vec<WrappedDataKey>> {
        Ok(self.lock().values().cloned().collect())
    }
}

/// A bucket data key handle used to seal and open streams. Cheap to clone; the key bytes are
/// zeroized when the last clone drops; Debug prints no key material.
#[derive(Clone)]
pub struct StreamKey {
    inner: Arc<StreamKeyInner>,
    /// SSE-C: the customer-provided key mixed into the data records' derivation.
    customer: Option<Arc<CustomerKey>>,
}

struct StreamKeyInner {
    id: DataKeyId,
    version: u32,
    bucket: String,
    kek_id: String,
    wrapped: Vec<u8>,
    material: DataKeyMaterial,
}

impl StreamKey {
    /// A handle from a stored record and its unwrapped material.
    pub fn new(record: &WrappedDataKey, material: DataKeyMaterial) -> StreamKey {
        StreamKey {
            inner: Arc::new(StreamKeyInner {
                id: record.id,
                version: record.version,
                bucket: record.bucket.clone(),
                kek_id: record.kek_id.clone(),
                wrapped: record.wrapped.clone(),
                material,
            }),
            customer: None,
        }
    }

    /// The same data key with a customer-provided key (SSE-C): streams sealed with the result
    /// carry the customer-key flag, and their data records open only with the same customer key.
    pub fn with_customer_key(&self, ck: &CustomerKey) -> StreamKey {
        StreamKey {
            inner: self.inner.clone(),
            customer: Some(Arc::new(ck.clone())),
        }
    }

    /// The customer-provided key of this handle, if any.
    pub(crate) fn customer(&self) -> Option<&CustomerKey> {
        self.customer.as_deref()
    }
    /// Data key version.
    pub fn key_version(&self) -> u32 {
        self.inner.version
    }
    /// Data key id.
    pub fn data_key_id(&self) -> DataKeyId {
        self.inner.id
    }
    /// Bucket of the data key.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }
    /// KEK id of the wrapping written into new headers.
    pub fn kek_id(&self) -> &str {
        &self.inner.kek_id
    }
    /// Wrapped key written into new headers.
    pub fn wrapped(&self) -> &[u8] {
        &self.inner.wrapped
    }
    pub(crate) fn material(&self) -> &DataKeyMaterial {
        &self.inner.material
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamKey")
            .field("id", &self.inner.id)
            .field("version", &self.inner.version)
            .field("bucket", &self.inner.bucket)
            .field("kek_id", &self.inner.kek_id)
            .field("material", &"[redacted]")
            .field("customer_key", &self.customer.is_some())
            .finish()
    }
}

/// Cache of unwrapped data keys.
#[derive(Clone, Copy, Debug)]
pub struct CacheConfig {
    /// How long an unwrapped key stays usable without asking the provider again (default 5 min).
    pub ttl: Duration,
    /// Most keys kept (default 10 000).
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(300),
            max_entries: 10_000,
        }
    }
}

/// Outcome of [`Keyring::rewrap_all`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Keys in the store.
    pub total: usize,
    /// Keys re-wrapped under the current KEK now.
    pub rewrapped: usize,
    /// Keys already wrapped by the current KEK (skipped; makes the job resumable).
    pub already_current: usize,
    /// Keys that failed, with the reason (run again to retry them).
    pub failed: Vec<(DataKeyId, String)>,
}

/// Pseudo-bucket that owns the data key for [`Keyring::seal_blob`] (not a valid S3 bucket name).
pub const BLOB_KEY_BUCKET: &str = "__vaultgate_secrets";
const BLOB_MAGIC: &[u8; 4] = b"VGB1";
const BLOB_INFO: &[u8] = b"vaultgate/v1/blob";

/// Provider + store + moka cache. Clone is cheap (Arc inside).
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<KeyringInner>,
}

struct KeyringInner {
    provider: Arc<dyn KeyProvider>,
    store: Arc<dyn DataKeyStore>,
    by_id: moka::future::Cache<DataKeyId, StreamKey>,
    /// (bucket, KMS key) → its current data key.
    current: moka::future::Cache<(String, String), StreamKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("provider", &self.inner.provider)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring over `provider` and `store`.
    pub fn new(
        provider: Arc<dyn KeyProvider>,
        store: Arc<dyn DataKeyStore>,
        cfg: CacheConfig,
    ) -> Keyring {
        Keyring {
            inner: Arc::new(KeyringInner {
                provider,
                store,
                by_id: moka::future::Cache::builder()
                    .time_to_live(cfg.ttl)
                    .max_capacity(cfg.max_entries.max(1))
                    .build(),
                current: moka::future::Cache::builder()
                    .time_to_live(cfg.ttl)
                    .max_capacity(cfg.max_entries.max(1))
                    .build(),
            }),
        }
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.inner.provider
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn DataKeyStore> {
        &self.inner.store
    }

    /// Is the data key `id` unwrapped in the cache (usable while the provider is unreachable)?
    pub fn is_cached(&self, id: &DataKeyId) -> bool {
        self.inner.by_id.contains_key(id)
    }

    /// Drops every cached unwrapped key (their material zeroizes once no stream uses it).
    pub fn clear_cache(&self) {
        self.inner.by_id.invalidate_all();
        self.inner.current.invalidate_all();
    }

    async fn unwrap_record(&self, rec: &WrappedDataKey) -> Result<StreamKey> {
        let material = self
            .inner
            .provider
            .unwrap(&rec.kek_id, &rec.wrapped, &rec.bucket)
            .await?;
        Ok(StreamKey::new(rec, material))
    }

    /// Current data key of `bucket` under the provider's configured key, created (version 1)
    /// on first use.
    pub async fn sealing_key(&self, bucket: &str) -> Result<StreamKey> {
        self.sealing_key_under(bucket, "").await
    }

    /// Current data key of `bucket` bound to the KMS key `kms_key` (an ARN from
    /// [`Keyring::resolve_kms_key`]; empty: the configured key), created (version 1) on first
    /// use: one KMS GenerateDataKey per bucket and key per cache lifetime, as S3 Bucket Keys.
    pub async fn sealing_key_under(&self, bucket: &str, kms_key: &str) -> Result<StreamKey> {
        let this = self.clone();
        let b = bucket.to_owned();
        let k = kms_key.to_owned();
        self.inner
            .current
            .try_get_with((bucket.to_owned(), kms_key.to_owned()), async move {
                let key = match this.inner.store.current(&b, &k).await? {
                    Some(rec) => this.key_for_record(&rec).await?,
                    None => this.create_data_key(&b, &k, 1).await?,
                };
                Ok::<_, Error>(key)
            })
            .await
            .map_err(|e| e.duplicate())
    }

    /// The key ARN of a KMS key id, ARN or alias named by a request ([`KeyProvider::resolve_key`]).
    pub async fn resolve_kms_key(&self, key_id: &str) -> Result<String> {
        self.inner.provider.resolve_key(key_id).await
    }

    /// The KMS key a data key wrapped by `kek_id` belongs to, for a key known only from a
    /// stream header (`reindex`): empty when `kek_id` is the provider's configured key or not a
    /// KMS key, else its ARN.
    pub fn kms_key_of_kek(&self, kek_id: &str) -> String {
        match kek_id.strip_prefix(crate::kms::KMS_KEK_PREFIX) {
            Some(arn) if kek_id != self.inner.provider.current_kek_id() => arn.to_owned(),
            _ => String::new(),
        }
    }

    /// Adds a new data key version for `bucket` under the provider's configured key and makes
    /// it current for new streams (existing streams keep opening with their own version).
    pub async fn rotate_data_key(&self, bucket: &str) -> Result<StreamKey> {
        self.rotate_data_key_under(bucket, "", 0).await
    }

    /// [`Keyring::rotate_data_key`] for the data keys bound to the KMS key `kms_key`; the new
    /// version is at least `min_version` (a bucket's re-encryption brings every KMS key of
    /// the bucket to one target version).
    pub async fn rotate_data_key_under(
        &self,
        bucket: &str,
        kms_key: &str,
        min_version: u32,
    ) -> Result<StreamKey> {
        let next = match self.inner.store.current(bucket, kms_key).await? {
            Some(rec) => rec
                .version
                .checked_add(1)
                .ok_or_else(|| Error::Format("data key version overflow".into()))?,
            None => 1,
        }
        .max(min_version);
        let key = self.create_data_key(bucket, kms_key, next).await?;
        self.inner
            .current
            .insert((bucket.to_owned(), kms_key.to_owned()), key.clone())
            .await;
        Ok(key)
    }

    async fn create_data_key(
        &self,
        bucket: &str,
        kms_key: &str,
        version: u32,
    ) -> Result<StreamKey> {
        let (material, kek_id, wrapped) = self
            .inner
            .provider
            .generate_data_key(bucket, kms_key)
            .await?;
        let rec = WrappedDataKey {
            id: DataKeyId::random()?,
            bucket: bucket.to_owned(),
            kms_key: kms_key.to_owned(),
            version,
            kek_id,
            wrapped,
            created_ms: now_ms(),
        };
        let stored = self.inner.store.insert_first(&rec).await?;
        if stored.id != rec.id {
            // another instance created this version first: use its key (ours was never stored)
            tracing::info!(bucket, kms_key, version, data_key_id = %stored.id, "bucket data key created elsewhere meanwhile; using it");
            return self.key_for_record(&stored).await;
        }
        let key = StreamKey::new(&rec, material);
        self.inner.by_id.insert(rec.id, key.clone()).await;
        tracing::info!(bucket, kms_key, version, data_key_id = %rec.id, "created bucket data key");
        Ok(key)
    }

    pub(crate) async fn key_for_record(&self, rec: &WrappedDataKey) -> Result<StreamKey> {
        let this = self.clone();
        let r = rec.clone();
        self.inner
            .by_id
            .try_get_with(rec.id, async move { this.unwrap_record(&r).await })
            .await
            .map_err(|e| e.duplicate())
    }

    /// The data key with `id` (store, then cache, then provider).
    pub async fn key_by_id(&self, id: &DataKeyId) -> Result<StreamKey> {
        if let Some(k) = self.inner.by_id.get(id).await {
            return Ok(k);
        }
        let rec = self
            .inner
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::KeyUnavailable(format!("unknown data key {id}")))?;
        self.key_for_record(&rec).await
    }

    /// Whether `ck` matches the SSE-C check value `check` (see [`crate::customer::customer_check`]).
    /// The data key the check names is taken from `header` when it is that key (so an index
    /// rebuilt from the backend still checks), else from the key store.
    pub async fn verify_customer_key(
        &self,
        bucket: &str,
        check: &str,
        ck: &CustomerKey,
        header: Option<&Header>,
    ) -> Result<bool> {
        let parsed = crate::customer::parse_check(check)?;
        let key = match header {
            Some(h) if h.data_key_id() == parsed.data_key_id => self.opening_key(bucket, h).await?,
            _ => self.key_by_id(&parsed.data_key_id).await?,
        };
        crate::customer::verify_parsed(&key, &parsed, ck)
    }

    /// The key that opens the stream with `header`: by the header's data key id from the store,
    /// falling back to the wrapped key inside the header (index rebuilt from the backend).
    /// `bucket` is informational (the data key's own bucket, recorded in the header, is the
    /// wrap context), so streams shared between buckets by a shallow copy still open.
    pub async fn opening_key(&self, bucket: &str, header: &Header) -> Result<StreamKey> {
        let id = header.data_key_id();
        if let Some(k) = self.inner.by_id.get(&id).await {
            return Ok(k);
        }
        match self.inner.store.get(&id).await? {
            Some(rec) => self.key_for_record(&rec).await,
            None => {
                tracing::debug!(bucket, data_key_id = %id, "data key not in store; using the header's wrapped copy");
                self.key_for_record(&header.wrapped_data_key()).await
            }
        }
    }

    /// Rotation: re-wrap every stored data key not yet wrapped by the current KEK of its KMS
    /// key (the provider's configured key, or the KMS key the data key is bound to, never
    /// another). No object data is touched. Resumable: keys already current are skipped.
    pub async fn rewrap_all(&self) -> Result<RewrapReport> {
        self.inner.provider.health().await?;
        let keys = self.inner.store.list().await?;
        let mut report = RewrapReport {
            total: keys.len(),
            ..RewrapReport::default()
        };
        for k in keys {
            if k.kek_id == self.inner.provider.kek_id_for(&k.kms_key) {
                report.already_current += 1;
                continue;
            }
            match self
                .inner
                .provider
                .rewrap(&k.kek_id, &k.wrapped, &k.bucket, &k.kms_key)
                .await
            {
                Ok((kek_id, wrapped)) => {
                    self.inner
                        .store
                        .update_wrapping(&k.id, &kek_id, &wrapped)
                        .await?;
                    report.rewrapped += 1;
                }
                Err(e) => report.failed.push((k.id, e.to_string())),
            }
        }
        // Cached handles carry the old wrapping for new headers; refresh them.
        self.clear_cache();
        Ok(report)
    }

    fn blob_key(
        material: &DataKeyMaterial,
        salt: &[u8; 32],
        context: &str,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let mut info = BLOB_INFO.to_vec();
        info.extend_from_slice(context.as_bytes());
        let mut k = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), material.expose())
            .expand(&info, &mut k[..])
            .map_err(|_| Error::Format("HKDF output length".into()))?;
        Ok(k)
    }

    /// Seals a small secret bound to `context`: "VGB1" ‖ data key id 16 ‖ salt 32 ‖ ct ‖ tag.
    pub async fn seal_blob(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        let key = self.sealing_key(BLOB_KEY_BUCKET).await?;
        let mut salt = [0u8; 32];
        crate::random_fill(&mut salt)?;
        let k = Self::blob_key(key.material(), &salt, context)?;
        let id = key.data_key_id();
        let aad = [&BLOB_MAGIC[..], &id.0, context.as_bytes()].concat();
        let ct = crate::aead::seal_append(&k, [0u8; 12], &aad, plaintext)?;
        Ok([&BLOB_MAGIC[..], &id.0, &salt, &ct].concat())
    }

    /// Opens a blob from [`Keyring::seal_blob`] with the same `context`.
    pub async fn open_blob(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 4 + 16 + 32 + 16 || &sealed[..4] != BLOB_MAGIC {
            return Err(Error::Format("not a sealed blob".into()));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&sealed[4..20]);
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&sealed[20..52]);
        let key = self.key_by_id(&DataKeyId(id)).await?;
        let k = Self::blob_key(key.material(), &salt, context)?;
        let aad = [&BLOB_MAGIC[..], &id, context.as_bytes()].concat();
        crate::aead::open_append(&k, [0u8; 12], &aad, &sealed[52..]).map_err(|_| {
            Error::Integrity("sealed blob does not verify (tampered or wrong context)".into())
        })
    }
}
