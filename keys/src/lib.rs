//! Vaultgate key material: the sealed-stream format (`format`, `sealer`, `opener`), envelope keys
//! and their cache (`envelope`), key providers (`provider` for file/env KEKs, `kms` for AWS KMS),
//! plaintext checksums, sealed object metadata and the importer for original hub blobs.
//! Raw key bytes never leave this crate except inside [`StreamKey`] handles.

mod aead;
pub mod backup;
pub mod checksum;
pub mod custody;
pub mod customer;
pub mod envelope;
pub mod error;
pub mod format;
pub mod hub;
pub mod kms;
pub mod meta;
pub mod opener;
pub mod provider;
pub mod sealer;
pub mod secret;
mod stream;
#[doc(hidden)]
pub mod vectors;

pub use checksum::{ChecksumSet, Checksums};
pub use custody::{Custody, CustodyReport, KekDependency};
pub use customer::{CustomerKey, CustomerKeyError};
pub use envelope::{
    CacheConfig, DataKeyId, DataKeyStore, Keyring, MemoryDataKeyStore, RewrapReport, StreamKey,
    WrappedDataKey,
};
pub use error::{Error, Result};
pub use format::{CipherRange, DEFAULT_CHUNK_SIZE, Header, Layout, RECORD_OVERHEAD, StreamKind};
pub use hub::{HubKey, open_hub_blob};
pub use kms::KmsProvider;
pub use meta::{ObjectMeta, PartEntry, multipart_etag, verify_parts};
pub use opener::{Opened, open_manifest, open_range, open_sealed_bytes, read_meta};
pub use provider::{
    KEY_FILE_NAME, KeyConfig, KeyProvider, LocalProvider, ProviderState, provider_from_config,
};
pub use sealer::{SealHandle, SealParams, SealSummary, seal, seal_manifest, sealed_len};
pub use secret::{DataKeyMaterial, ExposeForStorage, Secret};

/// Fills `buf` from the OS random source.
pub(crate) fn random_fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::KeyUnavailable(format!("OS random source failed: {e}")))
}
