//! The local disk backend (the embedded default): sealed objects as files under a root directory.
//!
//! Layout: `<root>/ab/cd/abcd…` — two levels of fan-out directories named by the first four
//! characters of the opaque id (ids never carry user key names). A put streams into a randomly
//! named file in `<root>/.tmp/`, fsyncs it, renames it into place and fsyncs the directory, so an
//! object is either complete and durable or absent. Reads stream in 256 KiB pieces and seek for
//! ranges, so memory stays bounded whatever the object size. Temp files left by a crash are
//! removed when the backend is opened (one gateway process per root).

use std::io::SeekFrom;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

use super::{
    Backend, BackendError, ByteStream, ObjectInfo, new_backend_id, system_time_ms, validate_id,
};

/// Size of each read from disk when streaming an object out.
pub const READ_CHUNK: usize = 256 * 1024;
/// Write buffer in front of the temp file.
const WRITE_BUFFER: usize = 256 * 1024;
/// Name of the temp directory under the root.
pub const TMP_DIR: &str = ".tmp";

/// Objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    tmp: PathBuf,
}

/// Removes a temp file when dropped (error paths and cancelled puts) unless disarmed.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Best effort: whatever is left is swept at the next start.
            let _ = std::fs::remove_file(path);
        }
    }
}

fn not_found_or_io(id: &str, e: std::io::Error) -> BackendError {
    if e.kind() == std::io::ErrorKind::NotFound {
        BackendError::NotFound(id.to_string())
    } else {
        BackendError::Io(e)
    }
}

async fn fsync_dir(dir: &Path) -> Result<(), BackendError> {
    let handle = tokio::fs::File::open(dir).await?;
    handle.sync_all().await?;
    Ok(())
}

impl LocalBackend {
    /// Opens (creating if needed) the backend rooted at `root` and removes temp files left over
    /// from an earlier run.
    pub async fn open(root: impl Into<PathBuf>) -> Result<LocalBackend, BackendError> {
        let root = root.into();
        let tmp = root.join(TMP_DIR);
        tokio::fs::create_dir_all(&tmp).await.map_err(|e| {
            BackendError::Other(format!(
                "cannot create backend directory {}: {e}",
                tmp.display()
            ))
        })?;
        let backend = LocalBackend { root, tmp };
        let swept = backend.sweep_temp(None).await?;
        if swept > 0 {
            tracing::info!(root = %backend.root.display(), swept, "removed temp files of interrupted writes");
        }
        Ok(backend)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file an id is stored in (`<root>/ab/cd/<id>`), after validating the id.
    pub fn path_of(&self, id: &str) -> Result<PathBuf, BackendError> {
        validate_id(id)?;
        Ok(self.root.join(&id[0..2]).join(&id[2..4]).join(id))
    }

    /// Removes files in the temp directory (all of them, or only those not modified within
    /// `older_than`). Returns how many were removed.
    pub async fn sweep_temp(
        &self,
        older_than: Option<std::time::Duration>,
    ) -> Result<usize, BackendError> {
        let mut removed = 0;
        let mut entries = tokio::fs::read_dir(&self.tmp).await?;
        let now = std::time::SystemTime::now();
        while let Some(entry) = entries.next_entry().await? {
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            if let Some(grace) = older_than {
                let young = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_none_or(|age| age < grace);
                if young {
                    continue;
                }
            }
            match tokio::fs::remove_file(entry.path()).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }

    async fn write_temp(
        &self,
        tmp_path: &Path,
        mut body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<u64, BackendError> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp_path)
            .await?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut written: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            written = written.saturating_add(chunk.len() as u64);
            if let Some(expected) = size_hint
                && written > expected
            {
                return Err(BackendError::Other(format!(
                    "body longer than the declared {expected} bytes"
                )));
            }
            out.write_all(&chunk).await?;
        }
        if let Some(expected) = size_hint
            && written != expected
        {
            return Err(BackendError::Other(format!(
                "body of {written} bytes, declared {expected}"
            )));
        }
        out.flush().await?;
        let file = out.into_inner();
        file.sync_all().await?;
        Ok(written)
    }

    async fn walk(
        root: PathBuf,
        tx: tokio::sync::mpsc::Sender<Result<ObjectInfo, BackendError>>,
    ) -> Result<(), BackendError> {
        let mut level1 = tokio::fs::read_dir(&root).await?;
        while let Some(d1) = level1.next_entry().await? {
            let n1 = d1.file_name();
            let Some(n1) = n1.to_str().filter(|n| is_fanout(n)) else {
                continue;
            };
            let mut level2 = match tokio::fs::read_dir(d1.path()).await {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
                Err(e) => return Err(e.into()),
            };
            while let Some(d2) = level2.next_entry().await? {
                let n2 = d2.file_name();
                let Some(n2) = n2.to_str().filter(|n| is_fanout(n)) else {
                    continue;
                };
                let mut files = match tokio::fs::read_dir(d2.path()).await {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
                    Err(e) => return Err(e.into()),
                };
                while let Some(f) = files.next_entry().await? {
                    let name = f.file_name();
                    let Some(id) = name.to_str() else { continue };
                    if validate_id(id).is_err() || id[0..2] != *n1 || id[2..4] != *n2 {
                        continue;
                    }
                    let meta = match f.metadata().await {
                        Ok(m) if m.is_file() => m,
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e.into()),
                    };
                    let info = ObjectInfo {
                        id: id.to_string(),
                        size: meta.len(),
                        modified_ms: meta.modified().map(system_time_ms).unwrap_or(0),
                    };
                    if tx.send(Ok(info)).await.is_err() {
                        return Ok(()); // the lister went away
                    }
                }
            }
        }
        Ok(())
    }
}

fn is_fanout(name: &str) -> bool {
    name.len() == 2
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &str {
        "file"
    }

    async fn put(
        &self,
        id: &str,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<u64, BackendError> {
        let final_path = self.path_of(id)?;
        let tmp_path = self.tmp.join(format!("{}.tmp", new_backend_id()));
        let mut guard = TempGuard(Some(tmp_path.clone()));
        let written = self.write_temp(&tmp_path, body, size_hint).await?;

        let parent = final_path
            .parent()
            .ok_or_else(|| BackendError::Other("object path has no parent".into()))?;
        let fresh_dirs = !tokio::fs::try_exists(parent).await?;
        if fresh_dirs {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&tmp_path, &final_path).await?;
        guard.disarm();
        fsync_dir(parent).await?;
        if fresh_dirs {
            // Make the new fan-out directory entries durable too.
            if let Some(level1) = parent.parent() {
                fsync_dir(level1).await?;
            }
            fsync_dir(&self.root).await?;
        }
        Ok(written)
    }

    async fn get(&self, id: &str, range: Option<Range<u64>>) -> Result<ByteStream, BackendError> {
        let path = self.path_of(id)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| not_found_or_io(id, e))?;
        let len = file.metadata().await?.len();
        let (start, end) = match range {
            None => (0, len),
            Some(r) => {
                if r.start > r.end || r.end > len {
                    return Err(BackendError::Other(format!(
                        "range {}..{} is outside object {id} of {len} bytes",
                        r.start, r.end
                    )));
                }
                (r.start, r.end)
            }
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await?;
        }
        let reader = file.take(end - start);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK);
        Ok(stream.boxed())
    }

    async fn head(&self, id: &str) -> Result<ObjectInfo, BackendError> {
        let path = self.path_of(id)?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| not_found_or_io(id, e))?;
        if !meta.is_file() {
            return Err(BackendError::NotFound(id.to_string()));
        }
        Ok(ObjectInfo {
            id: id.to_string(),
            size: meta.len(),
            modified_ms: meta.modified().map(system_time_ms).unwrap_or(0),
        })
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        let path = self.path_of(id)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(
        &self,
    ) -> Result<BoxStream<'static, Result<ObjectInfo, BackendError>>, BackendError> {
        // Fail early if the root is gone rather than yielding an empty listing.
        tokio::fs::metadata(&self.root).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let root = self.root.clone();
        tokio::spawn(async move {
            if let Err(e) = LocalBackend::walk(root, tx.clone()).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(stream.boxed())
    }

    async fn check(&self) -> Result<(), BackendError> {
        let id = new_backend_id();
        let probe = Bytes::from(format!("vaultgate readiness probe {id}"));
        let body = futures::stream::iter([Ok(probe.clone())]).boxed();
        self.put(&id, body, Some(probe.len() as u64)).await?;
        let mut read = Vec::with_capacity(probe.len());
        let mut stream = self.get(&id, None).await?;
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&chunk?);
        }
        self.delete(&id).await?;
        if read != probe {
            return Err(BackendError::Other(
                "probe object read back differently".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: Vec<std::io::Result<Bytes>>) -> ByteStream {
        futures::stream::iter(parts).boxed()
    }

    #[tokio::test]
    async fn files_land_in_fanout_dirs_and_temp_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        let b = LocalBackend::open(&root).await.unwrap();
        let id = "abcdef0123456789abcdef0123456789";
        b.put(id, body(vec![Ok(Bytes::from_static(b"hello"))]), Some(5))
            .await
            .unwrap();
        let path = root.join("ab").join("cd").join(id);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(root.join(TMP_DIR)).unwrap().count(), 0);

        // A crash leaves a temp file behind: reopening removes it, the object stays.
        std::fs::write(root.join(TMP_DIR).join("leftover.tmp"), b"partial").unwrap();
        let b = LocalBackend::open(&root).await.unwrap();
        assert_eq!(std::fs::read_dir(root.join(TMP_DIR)).unwrap().count(), 0);
        assert_eq!(b.head(id).await.unwrap().size, 5);

        // sweep_temp with a grace period keeps young files.
        std::fs::write(root.join(TMP_DIR).join("young.tmp"), b"x").unwrap();
        assert_eq!(
            b.sweep_temp(Some(std::time::Duration::from_secs(3600)))
                .await
                .unwrap(),
            0
        );
        assert_eq!(b.sweep_temp(None).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn failed_and_mis_sized_puts_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        let id = new_backend_id();
        let err = b
            .put(
                &id,
                body(vec![
                    Ok(Bytes::from_static(b"abc")),
                    Err(std::io::Error::other("client went away")),
                ]),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Io(_)), "{err:?}");
        let err = b
            .put(&id, body(vec![Ok(Bytes::from_static(b"abc"))]), Some(4))
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Other(_)), "{err:?}");
        let err = b
            .put(&id, body(vec![Ok(Bytes::from_static(b"abcde"))]), Some(4))
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Other(_)), "{err:?}");
        assert!(matches!(b.head(&id).await, Err(BackendError::NotFound(_))));
        assert_eq!(
            std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn invalid_ids_and_ranges_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        for bad in ["../../etc/passwd", "ab/cd", "x"] {
            assert!(matches!(
                b.get(bad, None).await,
                Err(BackendError::Other(_))
            ));
            assert!(matches!(b.delete(bad).await, Err(BackendError::Other(_))));
            assert!(matches!(
                b.put(bad, body(vec![]), None).await,
                Err(BackendError::Other(_))
            ));
        }
        let id = new_backend_id();
        b.put(&id, body(vec![Ok(Bytes::from_static(b"0123456789"))]), None)
            .await
            .unwrap();
        for r in [5..11, 11..12] {
            assert!(matches!(
                b.get(&id, Some(r)).await,
                Err(BackendError::Other(_))
            ));
        }
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 6..5;
        assert!(matches!(
            b.get(&id, Some(reversed)).await,
            Err(BackendError::Other(_))
        ));
    }

    #[tokio::test]
    async fn a_cancelled_put_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        let id = new_backend_id();
        // A client that sends some bytes and then stalls; the request is dropped mid-put.
        let stalled = futures::stream::iter([Ok(Bytes::from(vec![7u8; 300_000]))])
            .chain(futures::stream::pending())
            .boxed();
        let r = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            b.put(&id, stalled, None),
        )
        .await;
        assert!(r.is_err(), "the put should still be waiting for the body");
        assert!(matches!(b.head(&id).await, Err(BackendError::NotFound(_))));
        assert_eq!(
            std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn a_reader_keeps_its_version_across_overwrite_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        let id = new_backend_id();
        let old: Vec<u8> = (0..3 * READ_CHUNK).map(|i| (i % 251) as u8).collect();
        b.put(&id, body(vec![Ok(Bytes::from(old.clone()))]), None)
            .await
            .unwrap();
        let mut reading = b.get(&id, None).await.unwrap();
        let mut got = reading.next().await.unwrap().unwrap().to_vec();
        b.put(&id, body(vec![Ok(Bytes::from_static(b"new"))]), None)
            .await
            .unwrap();
        b.delete(&id).await.unwrap();
        while let Some(chunk) = reading.next().await {
            got.extend_from_slice(&chunk.unwrap());
        }
        assert!(
            got == old,
            "an open GET must finish with the bytes it started with"
        );
    }

    #[tokio::test]
    async fn listing_ignores_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        let id = new_backend_id();
        b.put(&id, body(vec![Ok(Bytes::from_static(b"x"))]), None)
            .await
            .unwrap();
        std::fs::write(dir.path().join("README"), b"not an object").unwrap();
        std::fs::create_dir_all(dir.path().join("zz").join("yy")).unwrap();
        std::fs::write(dir.path().join("zz").join("yy").join("zzyy0000"), b"x").unwrap();
        // A valid-looking id in the wrong fan-out dir is not an object of this backend either.
        let other = dir.path().join(&id[0..2]).join(&id[2..4]).join("00000000");
        std::fs::write(other, b"misplaced").unwrap();
        let listed: Vec<_> = b.list().await.unwrap().collect().await;
        let ids: Vec<String> = listed.into_iter().map(|r| r.unwrap().id).collect();
        assert_eq!(ids, vec![id]);
    }
}
