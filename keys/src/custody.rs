//! Key custody: which key-encryption keys the stored bucket data keys depend on, and whether the
//! configured provider holds each of them (checked by unwrapping one data key per KEK, the only
//! proof a KMS gives). The gateway runs [`Keyring::check_custody`] at start and refuses to serve
//! data it cannot open; `vaultgate keys status` and `/ready` show the same facts.

use std::collections::BTreeMap;

use crate::envelope::{Keyring, WrappedDataKey};
use crate::error::Result;
use crate::provider::ProviderState;

/// The data keys one KEK wraps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KekDependency {
    /// KEK id (`local:<fingerprint>` or `aws-kms:<arn>`).
    pub kek_id: String,
    /// Data keys wrapped by it.
    pub data_keys: usize,
    /// Buckets of those data keys (sorted, distinct).
    pub buckets: Vec<String>,
    /// One of them (probed by [`Keyring::check_custody`]).
    pub sample: WrappedDataKey,
}

/// Whether the provider holds a KEK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Custody {
    /// A data key it wraps was unwrapped.
    Held,
    /// The provider answered but cannot unwrap with it (a different master key, a missing key
    /// file version, a deleted or foreign KMS key): the reason.
    Missing(String),
    /// The provider could not be reached; nothing is known.
    Unreachable(String),
}

/// Outcome of [`Keyring::check_custody`].
#[derive(Clone, Debug)]
pub struct CustodyReport {
    /// The provider's probe.
    pub provider: ProviderState,
    /// Every KEK the stored data keys depend on, with its custody.
    pub keks: Vec<(KekDependency, Custody)>,
}

impl CustodyReport {
    /// The KEKs the provider answered it cannot unwrap with.
    pub fn missing(&self) -> impl Iterator<Item = (&KekDependency, &str)> {
        self.keks.iter().filter_map(|(d, c)| match c {
            Custody::Missing(m) => Some((d, m.as_str())),
            _ => None,
        })
    }
}

impl Keyring {
    /// The KEKs the stored data keys depend on, by KEK id.
    pub async fn kek_dependencies(&self) -> Result<Vec<KekDependency>> {
        let mut by_kek: BTreeMap<String, KekDependency> = BTreeMap::new();
        for k in self.store().list().await? {
            let d = by_kek
                .entry(k.kek_id.clone())
                .or_insert_with(|| KekDependency {
                    kek_id: k.kek_id.clone(),
                    data_keys: 0,
                    buckets: Vec::new(),
                    sample: k.clone(),
                });
            d.data_keys += 1;
            if !d.buckets.contains(&k.bucket) {
                d.buckets.push(k.bucket.clone());
            }
        }
        let mut out: Vec<KekDependency> = by_kek.into_values().collect();
        for d in &mut out {
            d.buckets.sort();
        }
        Ok(out)
    }

    /// Probes the provider, then unwraps one data key per KEK the store depends on (which also
    /// puts it in the cache). An unreachable provider marks every KEK unreachable.
    pub async fn check_custody(&self) -> Result<CustodyReport> {
        let provider = self.provider().probe().await;
        let deps = self.kek_dependencies().await?;
        let mut keks = Vec::with_capacity(deps.len());
        for d in deps {
            let custody = match &provider {
                ProviderState::Unreachable(m) => Custody::Unreachable(m.clone()),
                _ => match self.key_for_record(&d.sample).await {
                    Ok(_) => Custody::Held,
                    Err(e) => Custody::Missing(e.to_string()),
                },
            };
            keks.push((d, custody));
        }
        Ok(CustodyReport { provider, keks })
    }

    /// Buckets with a stored data key that is not unwrapped in the cache: what cannot be served
    /// while the provider is unreachable.
    pub async fn uncached_buckets(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for k in self.store().list().await? {
            if !self.is_cached(&k.id) && !out.contains(&k.bucket) {
                out.push(k.bucket);
            }
        }
        out.sort();
        Ok(out)
    }
}
