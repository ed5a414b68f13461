//! The local disk backend (the embedded default): sealed objects as files under a root directory.
//!
//! Layout: `<root>/ab/cd/abcd…` — two levels of fan-out directories named by the first four
//! characters of the opaque id (ids never carry user key names). A put streams into a randomly
//! named file in `<root>/.tmp/`, fsyncs it, renames it into place and fsyncs the directory, so an
//! object is either complete and durable or absent; fan-out directories are created (and their
//! parents fsynced) only when the rename finds them missing. File work runs on the blocking pool
//! in few, large steps: a put gathers the body into 1 MiB batches (written with `writev`, one
//! batch in flight while the next is gathered) and does its last write, the fsync, the rename and
//! the directory fsyncs in one blocking call, so a small object costs one hop to the pool. Reads
//! stream in 256 KiB pieces, each in a buffer of its own (the opener decrypts in place without a
//! copy), one piece read ahead; open, seek and the first read are one hop. Memory stays bounded
//! whatever the object size. Temp files left by a crash are removed when the backend is opened
//! (one gateway process per root).

use std::collections::HashMap;
use std::fs::File;
use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::task::JoinHandle;

use super::{
    Backend, BackendError, ByteStream, ObjectInfo, new_backend_id, system_time_ms, validate_id,
};

/// Size of each read from disk when streaming an object out (two are held per stream: the one
/// being consumed and the one read ahead). 256 KiB: with 512 KiB the server's peak RSS during
/// 16 concurrent 256 MiB GETs rose from 49–51 to 60–63 MiB for no gain in speed or CPU
/// (docs/PERFORMANCE.md, "Memory per stream").
pub const READ_CHUNK: usize = 256 * 1024;
/// A put writes once this many body bytes are gathered (one batch in flight, one gathering).
const WRITE_BATCH: usize = 1024 * 1024;
/// Most slices handed to one `writev` (below every platform's IOV_MAX).
const MAX_IOV: usize = 512;
/// Name of the temp directory under the root.
pub const TMP_DIR: &str = ".tmp";

/// Objects as files under a root directory.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    tmp: PathBuf,
    /// Fan-out directories created by a put whose parent directory is not fsynced yet: a put
    /// that renames into one of them makes the directory entries durable itself before it returns.
    /// (Counted: several puts may be creating the same directory at once.)
    unsynced_dirs: Arc<Mutex<HashMap<PathBuf, usize>>>,
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

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `syncfs(2)` of the filesystem holding `dir`: every dirty file, rename and directory on it
/// written and the journal committed.
fn sync_filesystem(dir: &Path) -> std::io::Result<()> {
    let d = File::open(dir)?;
    rustix::fs::syncfs(&d).map_err(std::io::Error::from)
}

fn join_error(e: tokio::task::JoinError) -> BackendError {
    BackendError::Io(std::io::Error::other(format!(
        "local backend file task failed: {e}"
    )))
}

/// Writes every byte of `batch` at the file's position, with as few `writev` calls as it takes.
fn write_batch(file: &mut File, batch: &[Bytes]) -> std::io::Result<()> {
    for group in batch.chunks(MAX_IOV) {
        let mut slices: Vec<IoSlice<'_>> = group
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| IoSlice::new(b))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = file.write_vectored(rest)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
    }
    Ok(())
}

/// Reads exactly `n` bytes at the file's position into a buffer of their own.
fn read_piece(file: &mut File, n: usize) -> std::io::Result<Bytes> {
    let mut v = Vec::with_capacity(n);
    file.take(n as u64).read_to_end(&mut v)?;
    if v.len() != n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "object file shorter than when it was opened",
        ));
    }
    Ok(Bytes::from(v))
}

/// The two fan-out directories of an object's path: `ab/` and `ab/cd/` of `ab/cd/<id>`.
fn fanout_dirs(final_path: &Path) -> Result<(&Path, &Path), BackendError> {
    let no_parent = || BackendError::InvalidId("object path has no parent".into());
    let parent = final_path.parent().ok_or_else(no_parent)?;
    let level1 = parent.parent().ok_or_else(no_parent)?;
    Ok((level1, parent))
}

/// Creates the fan-out directories `level1` and `parent` where missing and renames `tmp_path` to
/// `final_path` in `parent`, fsyncing nothing; Ok(true) if this call created `level1`.
fn make_dirs_and_rename(
    level1: &Path,
    parent: &Path,
    tmp_path: &Path,
    final_path: &Path,
) -> std::io::Result<bool> {
    let new_level1 = create_dir_once(level1)?;
    create_dir_once(parent)?;
    std::fs::rename(tmp_path, final_path)?;
    Ok(new_level1)
}

/// Creates directory `dir`; Ok(true) if this call created it, Ok(false) if it already existed.
fn create_dir_once(dir: &Path) -> std::io::Result<bool> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

impl LocalBackend {
    /// Opens (creating if needed) the backend rooted at `root` and removes temp files left over
    /// from an earlier run.
    pub async fn open(root: impl Into<PathBuf>) -> Result<LocalBackend, BackendError> {
        let root = root.into();
        let tmp = root.join(TMP_DIR);
        tokio::fs::create_dir_all(&tmp).await.map_err(|e| {
            BackendError::Config(format!(
                "cannot create backend directory {}: {e}",
                tmp.display()
            ))
        })?;
        let backend = LocalBackend {
            root,
            tmp,
            unsynced_dirs: Arc::default(),
        };
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

    /// Renames the finished temp file to `final_path` and makes the rename durable: fsyncs the
    /// fan-out directory, creates it first when missing (fsyncing the directories whose entries
    /// changed). Runs on the blocking pool.
    fn place(&self, tmp_path: &Path, final_path: &Path) -> Result<(), BackendError> {
        let (level1, parent) = fanout_dirs(final_path)?;
        match std::fs::rename(tmp_path, final_path) {
            Ok(()) => {
                let unsynced = self
                    .unsynced_dirs
                    .lock()
                    .map(|set| set.contains_key(parent))
                    .unwrap_or(true);
                if unsynced {
                    // Another put created this directory and has not fsynced its parents yet.
                    fsync_dir(level1)?;
                    fsync_dir(&self.root)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.mark_unsynced(parent);
                let made = (|| {
                    let new_level1 = make_dirs_and_rename(level1, parent, tmp_path, final_path)?;
                    // The new entries: `parent` in `level1`, and `level1` in the root if new.
                    fsync_dir(level1)?;
                    if new_level1 {
                        fsync_dir(&self.root)?;
                    }
                    Ok::<_, std::io::Error>(())
                })();
                self.unmark_unsynced(parent);
                made?;
            }
            Err(e) => return Err(e.into()),
        }
        fsync_dir(parent)?;
        Ok(())
    }

    fn put_batch_blocking(&self, items: Vec<(String, Bytes)>) -> Vec<Result<(), BackendError>> {
        // Fan-out directories this batch created: durable only at its `syncfs`, so counted
        // unsynced until then (a concurrent `put` renaming into one fsyncs its parents itself).
        let mut created: Vec<PathBuf> = Vec::new();
        let mut results: Vec<Result<(), BackendError>> = items
            .iter()
            .map(|(id, data)| {
                let final_path = self.path_of(id)?;
                let mut t = TempFile::create(self.tmp.join(format!("{}.tmp", new_backend_id())))?;
                t.file.write_all(data)?;
                let TempFile { file, mut guard } = t;
                drop(file);
                if let Some(path) = &guard.0 {
                    match std::fs::rename(path, &final_path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            self.place_unsynced(path, &final_path, &mut created)?
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                guard.disarm();
                Ok(())
            })
            .collect();
        if results.iter().any(Result::is_ok)
            && let Err(e) = sync_filesystem(&self.root)
        {
            let msg = format!("syncing the filesystem of {}: {e}", self.root.display());
            for r in results.iter_mut() {
                *r = Err(BackendError::Io(std::io::Error::other(msg.clone())));
            }
        }
        for parent in &created {
            self.unmark_unsynced(parent);
        }
        results
    }

    /// A batch's rename into a fan-out directory that does not exist yet: creates it (and its
    /// first level) without fsyncing anything, since the batch's `syncfs` makes the entries
    /// durable before any of its puts is answered; `created` collects the directory, counted
    /// in `unsynced_dirs` until then.
    fn place_unsynced(
        &self,
        tmp_path: &Path,
        final_path: &Path,
        created: &mut Vec<PathBuf>,
    ) -> Result<(), BackendError> {
        let (level1, parent) = fanout_dirs(final_path)?;
        self.mark_unsynced(parent);
        created.push(parent.to_path_buf());
        make_dirs_and_rename(level1, parent, tmp_path, final_path)?;
        Ok(())
    }

    /// Counts fan-out directory `dir` as created and not yet durable in its parents (several
    /// puts may be creating it at once).
    fn mark_unsynced(&self, dir: &Path) {
        if let Ok(mut set) = self.unsynced_dirs.lock() {
            *set.entry(dir.to_path_buf()).or_insert(0) += 1;
        }
    }

    /// Takes back one [`LocalBackend::mark_unsynced`] of `dir`.
    fn unmark_unsynced(&self, dir: &Path) {
        if let Ok(mut set) = self.unsynced_dirs.lock()
            && let Some(n) = set.get_mut(dir)
        {
            *n -= 1;
            if *n == 0 {
                set.remove(dir);
            }
        }
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

/// A temp file being written and the guard that removes it unless disarmed.
struct TempFile {
    file: File,
    guard: TempGuard,
}

impl TempFile {
    fn create(path: PathBuf) -> std::io::Result<TempFile> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(TempFile {
            file,
            guard: TempGuard(Some(path)),
        })
    }
}

/// Length of the next piece to read of `remaining` bytes.
fn piece_len(remaining: u64) -> usize {
    usize::try_from(remaining)
        .unwrap_or(READ_CHUNK)
        .min(READ_CHUNK)
}

/// The rest of a GET: the next piece is always being read on the blocking pool while the
/// consumer handles the current one.
struct Reader {
    ahead: Option<JoinHandle<std::io::Result<(File, Bytes)>>>,
    remaining: u64,
}

impl Reader {
    fn read_ahead(&mut self, mut file: File) {
        if self.remaining == 0 {
            return;
        }
        let n = piece_len(self.remaining);
        self.remaining -= n as u64;
        self.ahead = Some(tokio::task::spawn_blocking(move || {
            let piece = read_piece(&mut file, n)?;
            Ok((file, piece))
        }));
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
        mut body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<u64, BackendError> {
        let final_path = self.path_of(id)?;
        let tmp_path = self.tmp.join(format!("{}.tmp", new_backend_id()));
        // The temp file with the guard that removes it, created by the first batch written; or
        // the write of a batch in flight, which hands both back. Whoever drops the guard without
        // disarming it (an error, a cancelled put, a dropped task result) removes the file.
        let mut temp: Option<TempFile> = None;
        let mut inflight: Option<JoinHandle<std::io::Result<TempFile>>> = None;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batched = 0usize;
        let mut written: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            written = written.saturating_add(chunk.len() as u64);
            if let Some(expected) = size_hint
                && written > expected
            {
                return Err(BackendError::SizeMismatch(format!(
                    "body longer than the declared {expected} bytes"
                )));
            }
            batched += chunk.len();
            batch.push(chunk);
            if batched >= WRITE_BATCH {
                if let Some(h) = inflight.take() {
                    temp = Some(h.await.map_err(join_error)??);
                }
                let (t, b, path) = (temp.take(), std::mem::take(&mut batch), tmp_path.clone());
                batched = 0;
                inflight = Some(tokio::task::spawn_blocking(move || {
                    let mut t = match t {
                        Some(t) => t,
                        None => TempFile::create(path)?,
                    };
                    write_batch(&mut t.file, &b)?;
                    Ok(t)
                }));
            }
        }
        if let Some(expected) = size_hint
            && written != expected
        {
            return Err(BackendError::SizeMismatch(format!(
                "body of {written} bytes, declared {expected}"
            )));
        }
        if let Some(h) = inflight.take() {
            temp = Some(h.await.map_err(join_error)??);
        }
        // Last batch, fsync, rename and directory fsyncs in one blocking call: a put cancelled
        // from here on still completes or cleans up as one unit.
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut t = match temp {
                Some(t) => t,
                None => TempFile::create(tmp_path)?,
            };
            write_batch(&mut t.file, &batch)?;
            t.file.sync_all()?;
            let TempFile { file, mut guard } = t;
            drop(file);
            if let Some(path) = &guard.0 {
                this.place(path, &final_path)?;
            }
            guard.disarm();
            Ok::<_, BackendError>(())
        })
        .await
        .map_err(join_error)??;
        Ok(written)
    }

    /// Every file written and renamed into place without an fsync of its own, then one
    /// `syncfs` of the filesystem makes the whole batch durable (files, renames, directories):
    /// one journal commit instead of three fsyncs per object. A missing fan-out directory is
    /// created as by `put` (fsynced at once). If the sync fails, every item fails.
    async fn put_batch(&self, items: Vec<(String, Bytes)>) -> Vec<Result<(), BackendError>> {
        let n = items.len();
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.put_batch_blocking(items)).await {
            Ok(r) => r,
            Err(e) => {
                let msg = join_error(e).to_string();
                (0..n)
                    .map(|_| Err(BackendError::Io(std::io::Error::other(msg.clone()))))
                    .collect()
            }
        }
    }

    async fn get(&self, id: &str, range: Option<Range<u64>>) -> Result<ByteStream, BackendError> {
        let path = self.path_of(id)?;
        let id = id.to_string();
        // Open, size check, seek and the first piece in one blocking call.
        let (file, first, remaining) = tokio::task::spawn_blocking(move || {
            let mut file = File::open(&path).map_err(|e| not_found_or_io(&id, e))?;
            let len = file.metadata()?.len();
            let (start, end) = match range {
                None => (0, len),
                Some(r) => {
                    if r.start > r.end || r.end > len {
                        return Err(BackendError::InvalidRange(format!(
                            "range {}..{} is outside object {id} of {len} bytes",
                            r.start, r.end
                        )));
                    }
                    (r.start, r.end)
                }
            };
            if start > 0 {
                file.seek(SeekFrom::Start(start))?;
            }
            let total = end - start;
            let n = piece_len(total);
            let first = read_piece(&mut file, n)?;
            Ok::<_, BackendError>((file, first, total - n as u64))
        })
        .await
        .map_err(join_error)??;
        let mut reader = Reader {
            ahead: None,
            remaining,
        };
        reader.read_ahead(file);
        let first = (!first.is_empty()).then_some(Ok(first));
        let rest = futures::stream::unfold(reader, |mut r| async move {
            let h = r.ahead.take()?;
            match h.await {
                Ok(Ok((file, piece))) => {
                    r.read_ahead(file);
                    Some((Ok(piece), r))
                }
                Ok(Err(e)) => Some((Err(e), r)),
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), r)),
            }
        });
        Ok(futures::stream::iter(first).chain(rest).boxed())
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
            return Err(BackendError::Refused(
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
    async fn a_batch_lands_whole_per_item_and_replaces_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        let ids: Vec<String> = (0..50).map(|_| new_backend_id()).collect();
        // one id already holds other bytes (a write-back run twice): the batch replaces them
        b.put(&ids[0], body(vec![Ok(Bytes::from_static(b"old"))]), Some(3))
            .await
            .unwrap();
        let mut items: Vec<(String, Bytes)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), Bytes::from(vec![i as u8; 100 + i])))
            .collect();
        items.push(("../escape".to_owned(), Bytes::from_static(b"x")));
        let results = b.put_batch(items).await;
        assert_eq!(results.len(), 51);
        assert!(results[..50].iter().all(Result::is_ok), "{results:?}");
        assert!(matches!(results[50], Err(BackendError::InvalidId(_))));
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(read_all(&b, id, None).await, vec![i as u8; 100 + i]);
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
            0
        );
        // the fan-out directories the batch made were counted unsynced until its syncfs only
        assert!(b.unsynced_dirs.lock().unwrap().is_empty());
    }

    /// A batch and single puts creating the same new fan-out directory at once all land, and
    /// none of the directories stays counted unsynced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_and_puts_into_one_new_fanout_dir_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        let batch: Vec<(String, Bytes)> = (0..16)
            .map(|i| (format!("cafe{i:028x}"), Bytes::from(pattern(300, i))))
            .collect();
        let singles: Vec<String> = (16..32).map(|i| format!("cafe{i:028x}")).collect();
        let puts = singles.iter().enumerate().map(|(i, id)| {
            let b = b.clone();
            let data = Bytes::from(pattern(300, 16 + i as u32));
            async move { b.put(id, body(vec![Ok(data)]), Some(300)).await.map(|_| ()) }
        });
        let (batched, single) =
            tokio::join!(b.put_batch(batch.clone()), futures::future::join_all(puts));
        assert!(batched.iter().chain(&single).all(Result::is_ok));
        for i in 0..32u32 {
            let id = format!("cafe{i:028x}");
            assert_eq!(read_all(&b, &id, None).await, pattern(300, i));
        }
        assert!(b.unsynced_dirs.lock().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("ca").join("fe"))
                .unwrap()
                .count(),
            32
        );
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
        assert!(matches!(err, BackendError::SizeMismatch(_)), "{err:?}");
        let err = b
            .put(&id, body(vec![Ok(Bytes::from_static(b"abcde"))]), Some(4))
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::SizeMismatch(_)), "{err:?}");
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
                Err(BackendError::InvalidId(_))
            ));
            assert!(matches!(
                b.delete(bad).await,
                Err(BackendError::InvalidId(_))
            ));
            assert!(matches!(
                b.put(bad, body(vec![]), None).await,
                Err(BackendError::InvalidId(_))
            ));
        }
        let id = new_backend_id();
        b.put(&id, body(vec![Ok(Bytes::from_static(b"0123456789"))]), None)
            .await
            .unwrap();
        for r in [5..11, 11..12] {
            assert!(matches!(
                b.get(&id, Some(r)).await,
                Err(BackendError::InvalidRange(_))
            ));
        }
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 6..5;
        assert!(matches!(
            b.get(&id, Some(reversed)).await,
            Err(BackendError::InvalidRange(_))
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

    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as u8)
            .collect()
    }

    async fn read_all(b: &LocalBackend, id: &str, range: Option<Range<u64>>) -> Vec<u8> {
        let mut s = b.get(id, range).await.unwrap();
        let mut out = Vec::new();
        while let Some(piece) = s.next().await {
            let piece = piece.unwrap();
            assert!(!piece.is_empty() && piece.len() <= READ_CHUNK);
            // Each piece is a buffer of its own, which the opener decrypts in place.
            let piece = piece.try_into_mut().expect("a piece of its own");
            out.extend_from_slice(&piece);
        }
        out
    }

    async fn tmp_dir_empties(dir: &Path) {
        for _ in 0..200 {
            if std::fs::read_dir(dir.join(TMP_DIR)).unwrap().count() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("temp files left behind");
    }

    #[tokio::test]
    async fn large_puts_in_batches_read_back_whole_and_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        let id = new_backend_id();
        let len = 3 * WRITE_BATCH + 12_345;
        let data = pattern(len, 7);
        // Odd-sized pieces, some larger than a batch, one empty.
        let mut parts = Vec::new();
        let mut at = 0;
        for (i, size) in [1, 70_000, 0, WRITE_BATCH + 3, 65_568, 999_999]
            .iter()
            .cycle()
            .enumerate()
        {
            if at >= len {
                break;
            }
            let end = (at + size + i % 3).min(len);
            parts.push(Ok(Bytes::copy_from_slice(&data[at..end])));
            at = end;
        }
        let n = b.put(&id, body(parts), Some(len as u64)).await.unwrap();
        assert_eq!(n, len as u64);
        assert!(read_all(&b, &id, None).await == data);
        for r in [
            0..1,
            READ_CHUNK as u64 - 3..READ_CHUNK as u64 + 5,
            1_000..(3 * READ_CHUNK as u64 + 17),
            len as u64 - 10..len as u64,
            7..7,
        ] {
            let got = read_all(&b, &id, Some(r.clone())).await;
            assert!(got[..] == data[r.start as usize..r.end as usize], "{r:?}");
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(),
            0
        );
        // Empty object: no pieces at all.
        let empty = new_backend_id();
        b.put(&empty, body(vec![]), Some(0)).await.unwrap();
        assert!(read_all(&b, &empty, None).await.is_empty());
    }

    #[tokio::test]
    async fn a_put_failing_or_cancelled_after_batches_were_written_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        let id = new_backend_id();
        let big = Bytes::from(pattern(WRITE_BATCH + 1, 1));
        let err = b
            .put(
                &id,
                body(vec![
                    Ok(big.clone()),
                    Ok(big.clone()),
                    Err(std::io::Error::other("client went away")),
                ]),
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Io(_)), "{err:?}");
        let err = b
            .put(&id, body(vec![Ok(big.clone()), Ok(big.clone())]), Some(5))
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::SizeMismatch(_)), "{err:?}");
        tmp_dir_empties(dir.path()).await;
        let stalled = futures::stream::iter([Ok(big.clone()), Ok(big.clone())])
            .chain(futures::stream::pending())
            .boxed();
        let r = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            b.put(&id, stalled, None),
        )
        .await;
        assert!(r.is_err(), "the put should still be waiting for the body");
        tmp_dir_empties(dir.path()).await;
        assert!(matches!(b.head(&id).await, Err(BackendError::NotFound(_))));
    }

    #[tokio::test]
    async fn concurrent_puts_into_one_new_fanout_dir_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).await.unwrap();
        let ids: Vec<String> = (0..16).map(|i| format!("beef{i:028x}")).collect();
        let puts = ids.iter().enumerate().map(|(i, id)| {
            let b = b.clone();
            let data = Bytes::from(pattern(4096, i as u32));
            async move { b.put(id, body(vec![Ok(data)]), Some(4096)).await }
        });
        for r in futures::future::join_all(puts).await {
            r.unwrap();
        }
        for (i, id) in ids.iter().enumerate() {
            assert!(read_all(&b, id, None).await == pattern(4096, i as u32));
        }
        assert!(b.unsynced_dirs.lock().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path().join("be").join("ef"))
                .unwrap()
                .count(),
            16
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
