//! The object layer: streams request bodies through the sealer into the backend and backend
//! bytes through the opener back to the client, commits objects in the index and collects
//! garbage.
//!
//! Memory per stream is bounded by the sealer/opener (a few chunks); nothing here buffers an
//! object. Write path: new backend id → `Backend::put` → caller verifies digests →
//! `Index::put_object` (or `complete_upload`) commit → delete replaced ids → `gc_done`.
//! Range reads fetch only the records covering the range (`Layout::cipher_range`), and for
//! multipart objects only the parts the range touches.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};
use keys::envelope::{Keyring, StreamKey};
use keys::format::{Header, Layout};
use keys::sealer::{SealParams, SealSummary};

use crate::backend::{Backend, new_backend_id};
use crate::error::{Error, Result};
use crate::index::{Index, ObjectRecord, StreamRecord};
use crate::metrics::Metrics;

/// A sealed stream that reached the backend but is not yet committed in the index.
#[derive(Debug)]
pub struct Sealed {
    /// backend object id
    pub backend_id: String,
    /// sizes, MD5, checksums and the header of the stream
    pub summary: SealSummary,
}

impl ObjectRecord {
    /// The index row of an object stored as one sealed stream (a PUT, a copy, an import): ETag and
    /// size from the seal summary, part number 0.
    pub fn single_stream(
        bucket: &str,
        key: &str,
        last_modified_ms: i64,
        headers: std::collections::BTreeMap<String, String>,
        user_metadata: std::collections::BTreeMap<String, String>,
        skey: &StreamKey,
        sealed: &Sealed,
    ) -> ObjectRecord {
        let s = &sealed.summary;
        let etag = hex::encode(s.md5);
        ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: s.plaintext_len,
            etag: etag.clone(),
            last_modified_ms,
            headers,
            user_metadata,
            checksums: s.checksums.to_base64_map(),
            data_key_id: skey.data_key_id().to_string(),
            key_version: skey.key_version(),
            streams: vec![StreamRecord {
                backend_id: sealed.backend_id.clone(),
                part_number: 0,
                header: s.header.clone(),
                plaintext_len: s.plaintext_len,
                md5_hex: etag,
            }],
            manifest_id: None,
        }
    }
}

/// Backend + index + keyring, shared by every request (cheap to clone).
#[derive(Clone)]
pub struct Store {
    /// where sealed bytes live
    pub backend: Arc<dyn Backend>,
    /// the metadata index
    pub index: Index,
    /// bucket data keys
    pub keyring: Keyring,
    /// metrics (bytes in)
    pub metrics: Metrics,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend.name())
            .finish_non_exhaustive()
    }
}

type ErrSlot = Arc<Mutex<Option<Error>>>;

fn remember(slot: &ErrSlot, e: Error) {
    if let Ok(mut g) = slot.lock()
        && g.is_none()
    {
        *g = Some(e);
    }
}

fn take(slot: &ErrSlot) -> Option<Error> {
    slot.lock().ok().and_then(|mut g| g.take())
}

impl Store {
    /// Seals `body` into a new backend object. On error nothing is left under the new id.
    /// Input failures (client disconnects, bad aws-chunked signatures) come back as the client's
    /// error, backend failures as `Unavailable`.
    pub async fn seal_into_backend<S, E>(
        &self,
        key: &StreamKey,
        params: SealParams,
        body: S,
        plaintext_len: Option<u64>,
    ) -> Result<Sealed>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let input_err: ErrSlot = Arc::default();
        let seal_err: ErrSlot = Arc::default();
        let slot = input_err.clone();
        let counter = self.metrics.bytes_in.clone();
        let body = body.map(move |r| match r {
            Ok(b) => {
                counter.inc_by(b.len() as u64);
                Ok(b)
            }
            Err(e) => {
                let err = crate::error::body_error(e.into());
                remember(&slot, err);
                Err(std::io::Error::other("request body failed"))
            }
        });
        let hint = plaintext_len.map(|n| keys::sealer::sealed_len(n, &params, key));
        let (sealed, handle) = keys::sealer::seal(key, params, body);
        let slot = seal_err.clone();
        let sealed = sealed
            .map(move |r| {
                r.map_err(|e| {
                    let msg = e.to_string();
                    remember(&slot, Error::from(e));
                    std::io::Error::other(msg)
                })
            })
            .boxed();
        let id = new_backend_id();
        if let Err(be) = self.backend.put(&id, sealed, hint).await {
            self.delete_quietly(&id).await;
            if let Some(e) = take(&input_err) {
                return Err(e);
            }
            if let Some(e) = take(&seal_err) {
                return Err(e);
            }
            return Err(be.into());
        }
        match handle.summary().await {
            Ok(summary) => Ok(Sealed {
                backend_id: id,
                summary,
            }),
            Err(e) => {
                self.delete_quietly(&id).await;
                Err(take(&input_err).unwrap_or_else(|| e.into()))
            }
        }
    }

    /// Deletes a backend object, logging (not returning) failures; used on error paths where the
    /// object was never committed (an orphan sweep would catch it later anyway).
    pub async fn delete_quietly(&self, id: &str) {
        if let Err(e) = self.backend.delete(id).await {
            tracing::warn!(backend_id = id, error = %e, "could not delete uncommitted backend object");
        }
    }

    /// Commits a single-PUT or copied object and collects what it replaced. On failure the new
    /// streams are deleted.
    pub async fn commit(&self, rec: &ObjectRecord) -> Result<()> {
        match self.index.put_object(rec).await {
            Ok(garbage) => {
                self.collect(garbage).await;
                Ok(())
            }
            Err(e) => {
                for s in &rec.streams {
                    self.delete_quietly(&s.backend_id).await;
                }
                Err(e.into())
            }
        }
    }

    /// Deletes backend ids the index queued as garbage and acknowledges the deleted ones.
    pub async fn collect(&self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let (done, _failed) = crate::index::gc::delete_all(self.backend.as_ref(), ids).await;
        if let Err(e) = self.index.gc_done(&done).await {
            tracing::warn!(error = %e, "gc_done failed; ids stay queued (deletes are idempotent)");
        }
    }

    /// Opens plaintext `plain` of one sealed stream: fetches only the covering records.
    pub async fn open_stream(
        &self,
        bucket: &str,
        s: &StreamRecord,
        plain: Range<u64>,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        if plain.start >= plain.end {
            return Ok(stream::empty().boxed());
        }
        let header = Header::decode(&s.header)?;
        let key = self.keyring.opening_key(bucket, &header).await?;
        let layout = Layout {
            header_len: header.as_bytes().len() as u64,
            chunk_size: header.chunk_size(),
            plaintext_len: s.plaintext_len,
        };
        let cr = layout.cipher_range(plain.clone());
        let input = self
            .backend
            .get(&s.backend_id, Some(cr.start..cr.end))
            .await?;
        let backend_id = s.backend_id.clone();
        let out = keys::opener::open_range(&key, &header, layout, plain, input).map_err(move |e| {
            tracing::error!(backend_id = %backend_id, error = %e, "object stream failed while reading");
            std::io::Error::other("object stream failed")
        });
        Ok(out.boxed())
    }

    /// Opens plaintext `range` of an object (single or multipart). The first stream is opened
    /// before returning (so key/backend errors become proper S3 errors); later parts lazily.
    pub async fn open_object(
        &self,
        rec: &ObjectRecord,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        let mut segments = Vec::new();
        let mut offset = 0u64;
        for s in &rec.streams {
            let (start, end) = (offset, offset + s.plaintext_len);
            offset = end;
            let lo = range.start.max(start);
            let hi = range.end.min(end);
            if lo < hi {
                segments.push((s.clone(), (lo - start)..(hi - start)));
            }
        }
        let mut segs = segments.into_iter();
        let Some((first, first_range)) = segs.next() else {
            return Ok(stream::empty().boxed());
        };
        let mut head = self.open_stream(&rec.bucket, &first, first_range).await?;
        // Open the first record before answering, so a tampered/unreadable object is a clean
        // InternalError instead of a 200 whose body breaks off.
        let head = match head.next().await {
            None => stream::empty().boxed(),
            Some(Ok(chunk)) => stream::once(async move { Ok(chunk) }).chain(head).boxed(),
            Some(Err(e)) => {
                return Err(Error::Integrity(format!("{}/{}: {e}", rec.bucket, rec.key)));
            }
        };
        let store = self.clone();
        let bucket = rec.bucket.clone();
        let rest = stream::iter(segs)
            .then(move |(s, r)| {
                let store = store.clone();
                let bucket = bucket.clone();
                async move {
                    store.open_stream(&bucket, &s, r).await.map_err(|e| {
                        tracing::error!(error = %e, "could not open next part");
                        std::io::Error::other("could not open next part")
                    })
                }
            })
            .try_flatten();
        Ok(head.chain(rest).boxed())
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
