//! Reads: plaintext ranges of objects, opening only the records (and, for multipart objects,
//! only the parts) that cover the range.

use std::ops::Range;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use keys::CustomerKey;
use keys::format::{Header, Layout};

use super::Store;
use crate::backend::ByteStream;
use crate::error::{Error, Result};
use crate::index::{ObjectRecord, StreamRecord};
use crate::s3::encryption;

impl Store {
    /// SSE-C: refuses a read of an object (or a copy from it) unless the request brings exactly
    /// the key the object needs: none for an object under the gateway's keys, the customer key
    /// whose check value the object recorded for an SSE-C object (checked before any record is
    /// opened).
    pub async fn require_customer_key(
        &self,
        bucket: &str,
        headers: &std::collections::BTreeMap<String, String>,
        first_header: Option<&[u8]>,
        ck: Option<&CustomerKey>,
    ) -> Result<()> {
        let check = encryption::sse_c_of(headers).map(|(_, _, c)| c);
        match (check, ck) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(encryption::not_applicable()),
            (Some(_), None) => Err(encryption::key_required()),
            (Some(check), Some(ck)) => {
                let header = first_header.map(Header::decode).transpose()?;
                if self
                    .keyring
                    .verify_customer_key(bucket, check, ck, header.as_ref())
                    .await?
                {
                    Ok(())
                } else {
                    Err(encryption::key_mismatch())
                }
            }
        }
    }

    /// The sealed bytes `range` of a stream: sliced from its row when it is inline (written
    /// back or not), else fetched from the backend. Every reader of a stream's raw bytes goes
    /// through here.
    pub async fn sealed_range(&self, s: &StreamRecord, range: Range<u64>) -> Result<ByteStream> {
        let Some(inline) = &s.inline else {
            return Ok(self.backend.get(&s.backend_id, Some(range)).await?);
        };
        let (start, end) = (
            usize::try_from(range.start).unwrap_or(usize::MAX),
            usize::try_from(range.end).unwrap_or(usize::MAX),
        );
        if start > end || end > inline.data.len() {
            return Err(Error::Integrity(format!(
                "{}: inline stream shorter than its records",
                s.backend_id
            )));
        }
        let piece = inline.data.slice(start..end);
        Ok(stream::once(async move { Ok(piece) }).boxed())
    }

    /// The sealed size of a stream (its row's bytes when inline, else the backend object's).
    pub async fn sealed_size(&self, s: &StreamRecord) -> Result<u64> {
        Ok(match &s.inline {
            Some(inline) => inline.data.len() as u64,
            None => self.backend.head(&s.backend_id).await?.size,
        })
    }

    /// Opens plaintext `plain` of one sealed stream: fetches only the covering records. `ck`:
    /// the customer key of an SSE-C stream.
    pub async fn open_stream(
        &self,
        bucket: &str,
        s: &StreamRecord,
        plain: Range<u64>,
        ck: Option<&CustomerKey>,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        if plain.start >= plain.end {
            return Ok(stream::empty().boxed());
        }
        let header = Header::decode(&s.header)?;
        let key = self.keyring.opening_key(bucket, &header).await?;
        let key = match ck {
            Some(ck) => key.with_customer_key(ck),
            None => key,
        };
        let layout = Layout {
            header_len: header.as_bytes().len() as u64,
            chunk_size: header.chunk_size(),
            plaintext_len: s.plaintext_len,
        };
        let cr = layout.cipher_range(plain.clone());
        let input = self.sealed_range(s, cr.start..cr.end).await?;
        let backend_id = s.backend_id.clone();
        let out = keys::opener::open_range(&key, &header, layout, plain, input).map_err(move |e| {
            tracing::error!(backend_id = %backend_id, error = %e, "object stream failed while reading");
            std::io::Error::other("object stream failed")
        });
        Ok(out.boxed())
    }

    /// Opens plaintext `range` of an object (single or multipart). The first stream is opened
    /// before returning (so key/backend errors become proper S3 errors); later parts lazily.
    /// `ck` must be the object's customer key for an SSE-C object and `None` otherwise
    /// ([`Store::require_customer_key`], checked here again).
    pub async fn open_object(
        &self,
        rec: &ObjectRecord,
        range: Range<u64>,
        ck: Option<&CustomerKey>,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>> {
        self.require_customer_key(
            &rec.bucket,
            &rec.headers,
            rec.streams.first().map(|s| s.header.as_slice()),
            ck,
        )
        .await?;
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
        let mut head = self
            .open_stream(&rec.bucket, &first, first_range, ck)
            .await?;
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
        let ck = ck.cloned();
        let rest = stream::iter(segs)
            .then(move |(s, r)| {
                let store = store.clone();
                let bucket = bucket.clone();
                let ck = ck.clone();
                async move {
                    store
                        .open_stream(&bucket, &s, r, ck.as_ref())
                        .await
                        .map_err(|e| {
                            tracing::error!(error = %e, "could not open next part");
                            std::io::Error::other("could not open next part")
                        })
                }
            })
            .try_flatten();
        Ok(head.chain(rest).boxed())
    }
}
