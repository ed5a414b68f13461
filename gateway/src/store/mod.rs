//! The object layer: the S3 handlers' only way to the backend, the index and the keyring. Its
//! methods are named by S3 meaning: writes in [`write`] (`put_object`, `put_part`,
//! `complete_upload`, `delete_object`), reads in [`read`] (`open_object`), buckets, uploads and
//! listings in [`catalog`].
//!
//! Memory per stream is bounded by the sealer/opener (a few chunks); nothing here buffers an
//! object. The write protocol exists once ([`write`]): seal into a new backend id (held by an
//! [`write::Uncommitted`] guard that deletes it unless committed) → verify digests → record the
//! request's audit event (fail closed) → commit in the index → collect what was replaced.
//! Range reads fetch only the records covering the range (`Layout::cipher_range`), and for
//! multipart objects only the parts the range touches.

mod catalog;
pub mod inline;
pub mod lifecycle;
mod read;
pub mod tagging;
pub mod write;

pub use write::{NewVersion, Uncommitted, WriteCheck};

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;
use futures::stream::BoxStream;
use keys::envelope::Keyring;

use crate::backend::Backend;
use crate::index::Index;
use crate::metrics::Metrics;

/// Backend + index + keyring, shared by every request (cheap to clone).
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    index: Index,
    keyring: Keyring,
    metrics: Metrics,
    inline: Arc<inline::InlineStore>,
}

impl Store {
    /// The object layer over a backend, an index and a keyring.
    pub fn new(
        backend: Arc<dyn Backend>,
        index: Index,
        keyring: Keyring,
        metrics: Metrics,
    ) -> Store {
        Store {
            backend,
            index,
            keyring,
            metrics,
            inline: Arc::default(),
        }
    }

    /// The same store keeping single PUTs of at most `max_object` plaintext bytes inline in the
    /// index ([`inline`]; 0: none, as [`Store::new`]).
    pub fn with_inline(mut self, max_object: u64) -> Store {
        self.inline = Arc::new(inline::InlineStore::new(max_object));
        self
    }

    /// The metadata index (start-up, offline commands, the admin probes and tests; S3 handlers
    /// go through the methods of the object layer).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The backend (start-up, probes and tests).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The keyring (start-up, probes and tests).
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend.name())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch (the index's clock).
pub use crate::index::now_ms;

/// A body stream that is `Sync` (s3s requires it) without locking on the hot path.
pub struct SyncStream(Mutex<BoxStream<'static, std::io::Result<Bytes>>>);

impl SyncStream {
    /// Wraps a boxed stream.
    pub fn new(s: BoxStream<'static, std::io::Result<Bytes>>) -> SyncStream {
        SyncStream(Mutex::new(s))
    }
}

impl Stream for SyncStream {
    type Item = std::io::Result<Bytes>;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(s) => s.as_mut().poll_next(cx),
            Err(_) => std::task::Poll::Ready(Some(Err(std::io::Error::other("poisoned stream")))),
        }
    }
}
