//! Importer for the original hub's blob format: bare `[nonce 12][len 4 BE][ct ‖ tag 16]` records,
//! AES-256-GCM under a 32-byte key (hex `BLOB_KEY`), empty AAD, no header, `len` = length of ct ‖ tag.
//! The format has no record order or end marker, so a blob truncated at a record boundary or with
//! records reordered cannot be detected; each record's tag is still checked before release.

use std::fmt;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, Stream, StreamExt};

use crate::aead::{AwsLcGcm, ChunkAead, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::secret::DataKeyMaterial;

/// Largest hub record accepted (64 MiB of ciphertext).
pub const MAX_HUB_RECORD: usize = 64 << 20;

/// The hub's blob key. Zeroizes on drop, prints `[redacted]`.
#[derive(Clone)]
pub struct HubKey(DataKeyMaterial);

impl HubKey {
    /// From 64 hex characters (the hub's `BLOB_KEY`).
    pub fn from_hex(s: &str) -> Result<HubKey> {
        DataKeyMaterial::from_hex(s)
            .map(HubKey)
            .map_err(|_| Error::Config("BLOB_KEY must be 64 hex characters".into()))
    }
    /// From raw bytes.
    pub fn from_bytes(b: [u8; 32]) -> HubKey {
        HubKey(DataKeyMaterial::from_bytes(b))
    }
}

impl fmt::Debug for HubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HubKey([redacted])")
    }
}

struct HubReader {
    input: BoxStream<'static, std::io::Result<Bytes>>,
    pending: Bytes,
    buf: BytesMut,
    aead: AwsLcGcm,
    index: u64,
}

impl HubReader {
    /// Returns false at a clean end of input (nothing buffered).
    async fn read_exact(&mut self, need: usize, out_rec: &mut Option<Bytes>) -> Result<bool> {
        loop {
            if self.buf.is_empty() && self.pending.len() >= need {
                *out_rec = Some(self.pending.split_to(need));
                return Ok(true);
            }
            if !self.pending.is_empty() {
                let take = (need - self.buf.len()).min(self.pending.len());
                self.buf.extend_from_slice(&self.pending.split_to(take));
                if self.buf.len() == need {
                    *out_rec = Some(self.buf.split().freeze());
                    return Ok(true);
                }
                continue;
            }
            match self.input.next().await {
                Some(Ok(b)) => self.pending = b,
                Some(Err(e)) => return Err(Error::Io(e)),
                None if self.buf.is_empty() => return Ok(false),
                None => {
                    return Err(Error::Integrity(format!(
                        "hub blob truncated inside record {}",
                        self.index
                    )));
                }
            }
        }
    }

    async fn step(&mut self) -> Result<Option<Bytes>> {
        let mut head = None;
        if !self.read_exact(NONCE_LEN + 4, &mut head).await? {
            return Ok(None);
        }
        let head = head.ok_or_else(|| Error::Format("hub reader state".into()))?;
        let len = u32::from_be_bytes([head[12], head[13], head[14], head[15]]) as usize;
        if !(TAG_LEN..=MAX_HUB_RECORD).contains(&len) {
            return Err(Error::Format(format!(
                "hub record {} has invalid length {len}",
                self.index
            )));
        }
        let mut body = None;
        if !self.read_exact(len, &mut body).await? {
            return Err(Error::Integrity(format!(
                "hub blob truncated inside record {}",
                self.index
            )));
        }
        let body = body.ok_or_else(|| Error::Format("hub reader state".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&head[..NONCE_LEN]);
        let (ct, tag) = body.split_at(len - TAG_LEN);
        let mut out = BytesMut::zeroed(ct.len());
        self.aead
            .open(nonce, &[], ct, tag, &mut out)
            .map_err(|_| Error::Integrity(format!("hub record {} does not verify", self.index)))?;
        self.index += 1;
        Ok(Some(out.freeze()))
    }
}

/// Opens a hub blob as a plaintext stream.
pub fn open_hub_blob<S>(key: &HubKey, input: S) -> BoxStream<'static, Result<Bytes>>
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    let aead = match AwsLcGcm::new(key.0.expose()) {
        Ok(a) => a,
        Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
    };
    let st = HubReader {
        input: input.boxed(),
        pending: Bytes::new(),
        buf: BytesMut::new(),
        aead,
        index: 0,
    };
    futures::stream::unfold(Some(st), |st| async move {
        let mut st = st?;
        loop {
            match st.step().await {
                Ok(Some(b)) if b.is_empty() => continue,
                Ok(Some(b)) => return Some((Ok(b), Some(st))),
                Ok(None) => return None,
                Err(e) => return Some((Err(e), None)),
            }
        }
    })
    .boxed()
}
