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
//! made through this process's store directly; writes of other gateway instances on the same
//! database are seen through the database's write counter `pol_generation` (advanced by
//! triggers in the writing transaction), which [`crate::PolicyStore::follow_other_instances`]
//! polls: when it moved, every entry becomes stale (`AccessCache`'s `CounterFollower::stale`).
//!
//! Every map is bounded by count *and* by weight: an entry weighs its estimated size in bytes,
//! but at least [`MAX_BYTES`] / [`CAPACITY`], so a map holds at most [`CAPACITY`] entries and
//! about [`MAX_BYTES`] bytes, whatever callers put in keys (negative lookups of unknown access
//! key ids are cached under the caller's id; ids longer than the store allows never get here).

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::future::Cache;

use crate::Result;
use crate::grants::ResolvedGrant;
use crate::quorum::QuorumRule;
use crate::ratelimit::LimitOverrides;
use crate::store::PrincipalRecord;

/// Most entries per kind (LRU beyond).
pub(crate) const CAPACITY: u64 = 10_000;
/// Most bytes (estimated) per kind.
pub(crate) const MAX_BYTES: u64 = 8 << 20;
/// The least an entry weighs, so that the weight bound implies the count bound.
const MIN_WEIGHT: u64 = MAX_BYTES.div_ceil(CAPACITY);

/// Estimated size in bytes of a cached value (beyond the fixed part of its slot).
pub(crate) trait Weight {
    fn weight(&self) -> usize;
}

impl<T: Weight> Weight for Option<T> {
    fn weight(&self) -> usize {
        self.as_ref().map_or(0, Weight::weight)
    }
}

impl<T: Weight> Weight for Vec<T> {
    fn weight(&self) -> usize {
        self.iter().map(Weight::weight).sum::<usize>() + 24
    }
}

impl Weight for String {
    fn weight(&self) -> usize {
        self.len() + 24
    }
}

impl Weight for KeyRow {
    fn weight(&self) -> usize {
        self.sealed_secret.len() + self.principal.len() + self.tenant.len() + self.role.len() + 128
    }
}

impl Weight for ResolvedGrant {
    fn weight(&self) -> usize {
        self.bucket.len() + self.prefix.len() + self.actions.len() + 64
    }
}

impl Weight for QuorumRule {
    fn weight(&self) -> usize {
        self.name.len() + self.action.len() + self.bucket_pattern.len() + 128
    }
}

impl Weight for PrincipalRecord {
    fn weight(&self) -> usize {
        self.name.len() + self.kind.len() + self.tenant.len() + self.role.len() + 128
    }
}

/// A map bounded by [`CAPACITY`] entries and [`MAX_BYTES`] (see the module docs).
fn bounded<K, T>() -> Cache<K, Slot<T>>
where
    K: Hash + Eq + Send + Sync + KeyWeight + 'static,
    T: Weight + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(MAX_BYTES)
        .weigher(|k: &K, v: &Slot<T>| {
            let bytes = (k.key_weight() + v.1.weight() + 64) as u64;
            u32::try_from(bytes.max(MIN_WEIGHT)).unwrap_or(u32::MAX)
        })
        .build()
}

/// Estimated size in bytes of a cache key.
pub(crate) trait KeyWeight {
    fn key_weight(&self) -> usize;
}

impl KeyWeight for String {
    fn key_weight(&self) -> usize {
        self.len() + 24
    }
}

impl KeyWeight for () {
    fn key_weight(&self) -> usize {
        0
    }
}

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
    /// the database's write counter cannot be read (see [`audit::db::follow_counter`])
    unreadable: std::sync::atomic::AtomicBool,
    pub keys: Cache<String, Slot<Option<KeyRow>>>,
    pub grants: Cache<String, Slot<Vec<ResolvedGrant>>>,
    pub tenants: Cache<String, Slot<Option<String>>>,
    pub rules: Cache<(), Slot<Vec<QuorumRule>>>,
    pub principals: Cache<String, Slot<Option<PrincipalRecord>>>,
    pub limits: Cache<(), Slot<LimitOverrides>>,
}

impl AccessCache {
    pub fn new() -> AccessCache {
        AccessCache {
            generation: AtomicU64::new(0),
            unreadable: std::sync::atomic::AtomicBool::new(false),
            keys: bounded(),
            grants: bounded(),
            tenants: bounded(),
            rules: Cache::new(1),
            principals: bounded(),
            limits: Cache::new(1),
        }
    }

    /// A guard that advances the generation when dropped (after the writes it covers).
    pub fn writing(&self) -> Writing<'_> {
        Writing(&self.generation)
    }
}

/// Another writer on the database (another gateway instance) changed what the entries were
/// loaded from: every entry becomes stale at once. While the counter is unreadable, every tick
/// makes them stale again, so answers are at most one tick old.
impl audit::db::CounterFollower for AccessCache {
    fn stale(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn set_unreadable(&self, unreadable: bool) -> bool {
        self.unreadable.swap(unreadable, Ordering::AcqRel)
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
        return audit::db::timed(audit::db::DbOp::PolicyAccessLoad, load()).await;
    };
    let map = kind(c);
    let generation = c.generation.load(Ordering::Acquire);
    if let Some(slot) = map.get(&key).await
        && slot.0 == generation
    {
        return Ok(slot.1.clone());
    }
    // a miss: the access check's rows read from the database
    let value = audit::db::timed(audit::db::DbOp::PolicyAccessLoad, load()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn maps_are_bounded_by_weight_and_by_count() {
        let c = AccessCache::new();
        // large keys: the byte bound acts long before the count bound
        for i in 0..2000 {
            let key = format!("{i}-{}", "x".repeat(16 * 1024));
            c.keys.insert(key, Arc::new((0, None))).await;
        }
        c.keys.run_pending_tasks().await;
        assert!(
            c.keys.weighted_size() <= MAX_BYTES,
            "{}",
            c.keys.weighted_size()
        );
        assert!(c.keys.entry_count() < 2000);
        // small keys: at most CAPACITY entries
        for i in 0..(CAPACITY + 5000) {
            c.tenants.insert(format!("b{i}"), Arc::new((0, None))).await;
        }
        c.tenants.run_pending_tasks().await;
        assert!(
            c.tenants.entry_count() <= CAPACITY,
            "{}",
            c.tenants.entry_count()
        );
    }
}
