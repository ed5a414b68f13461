//! An in-memory cache of the access check's reads (access-key rows, a principal's resolved
//! grants, bucket tenants, quorum rules), so that authorising an S3 request does not cost four
//! or five database round trips.
//!
//! Correctness rests on a generation counter, not on expiry: every entry remembers the
//! generation current when its query *started*, and is used only while that is still the
//! current generation. Every mutating method of [`crate::PolicyStore`] holds a [`Writing`]
//! guard that advances the generation when it drops, i.e. after the method's writes committed
//! and before it returns. So a revoke, disable, grant change or bucket reassignment that the
//! admin API has acknowledged is seen by the very next request; an entry loaded from a snapshot
//! taken before such a write can be inserted late but is never used. The cache sees only writes
//! made through this process's store (the gateway is the database's only writer while it runs;
//! offline commands run with it stopped).

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::future::Cache;

use crate::Result;
use crate::grants::ResolvedGrant;
use crate::quorum::QuorumRule;

/// Most entries per kind (LRU beyond).
const CAPACITY: u64 = 10_000;

/// The stored columns of an access key and its principal (the secret stays sealed).
#[derive(Clone)]
pub(crate) struct KeyRow {
    pub sealed_secret: Vec<u8>,
    pub expires_ms: Option<i64>,
    pub revoked: bool,
    pub principal: String,
    pub tenant: String,
    pub role: String,
    pub disabled: bool,
}

pub(crate) type Slot<T> = Arc<(u64, T)>;

pub(crate) struct AccessCache {
    generation: AtomicU64,
    pub keys: Cache<String, Slot<Option<KeyRow>>>,
    pub grants: Cache<String, Slot<Vec<ResolvedGrant>>>,
    pub tenants: Cache<String, Slot<Option<String>>>,
    pub rules: Cache<(), Slot<Vec<QuorumRule>>>,
}

impl AccessCache {
    pub fn new() -> AccessCache {
        AccessCache {
            generation: AtomicU64::new(0),
            keys: Cache::new(CAPACITY),
            grants: Cache::new(CAPACITY),
            tenants: Cache::new(CAPACITY),
            rules: Cache::new(1),
        }
    }

    /// A guard that advances the generation when dropped (after the writes it covers).
    pub fn writing(&self) -> Writing<'_> {
        Writing(&self.generation)
    }
}

/// `load()`'s value, or, with the cache on (`Some`), the value of `key` in the map `kind` picks
/// if it was loaded in the current generation (else `load()`'s, then cached under the generation
/// read before loading).
pub(crate) async fn through<K, T, Fut>(
    cache: Option<&AccessCache>,
    kind: for<'a> fn(&'a AccessCache) -> &'a Cache<K, Slot<T>>,
    key: K,
    load: impl FnOnce() -> Fut,
) -> Result<T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<T>>,
{
    let Some(c) = cache else {
        return load().await;
    };
    let map = kind(c);
    let generation = c.generation.load(Ordering::Acquire);
    if let Some(slot) = map.get(&key).await
        && slot.0 == generation
    {
        return Ok(slot.1.clone());
    }
    let value = load().await?;
    map.insert(key, Arc::new((generation, value.clone()))).await;
    Ok(value)
}

/// Held by a mutating method for its whole duration; see the module docs.
pub(crate) struct Writing<'a>(&'a AtomicU64);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}
