//! Reads: plaintext ranges of objects, opening only the records (and, for multipart objects,
//! only the parts) that cover the range.

use std::ops::Range;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use keys::format::{Header, Layout};

use super::Store;
use crate::error::{Error, Result};
use crate::index::{ObjectRecord, StreamRecord};

impl Store {
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
