//! Sealed blobs on the local disk.
//!
//! Layout under the root (the data directory's `blobs/`):
//! - `sha256/ab/abcdef…`: finished blobs, named by the SHA-256 of their bytes, never modified.
//! - `uploads/<upload id>.part`: resumable uploads in progress. Their length *is* the upload offset, so a
//!   server killed mid-write resumes exactly where the bytes on disk end.
//!
//! A finished upload is hashed, fsynced, then renamed into place and the directory fsynced: readers see a
//! complete, verified blob or nothing.

use crate::{Result, StoreError};
use hearth_proto::ids::{BlobHash, UploadId};
use sha2::{Digest, Sha256};
use std::any::Any;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The blob directory.
#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

/// Why a finished upload was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("the uploaded bytes hash to {actual}, not the announced {expected}")]
    HashMismatch {
        expected: BlobHash,
        actual: BlobHash,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An upload file opened for appending at a known offset.
///
/// Each write runs on a blocking thread, which keeps going if the request that started it is
/// dropped (a client that disconnects mid-body). What [`UploadFile::holding`] was given is held by
/// that thread too, until its write has reached the operating system: an upload lock handed here
/// is therefore released only when the file's length is its true offset, so a client resuming at
/// once cannot be told a length that a write still in flight then grows (its resent bytes would
/// land twice).
pub struct UploadFile {
    /// `None` only while a write or sync has it, or after one was abandoned.
    file: Option<std::fs::File>,
    offset: u64,
    guard: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for UploadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadFile")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl UploadFile {
    /// Bytes on disk so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Holds `guard` until this file is dropped and every write started on it has finished,
    /// whether or not anyone still waits for that write.
    #[must_use]
    pub fn holding(mut self, guard: Arc<dyn Any + Send + Sync>) -> Self {
        self.guard = guard;
        self
    }

    /// Runs `op` on the file on a blocking thread, which also holds the guard.
    async fn on_file<T: Send + 'static>(
        &mut self,
        what: &'static str,
        op: impl FnOnce(&mut std::fs::File) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let mut file = self.file.take().ok_or_else(|| {
            StoreError::io(
                what,
                std::io::Error::other("an earlier write on this upload was abandoned"),
            )
        })?;
        let guard = Arc::clone(&self.guard);
        let (file, r) = tokio::task::spawn_blocking(move || {
            let r = op(&mut file);
            drop(guard);
            (file, r)
        })
        .await
        .map_err(|e| StoreError::io(what, std::io::Error::other(e)))?;
        self.file = Some(file);
        r.map_err(|e| StoreError::io(what, e))
    }

    /// Appends `chunk` and returns once the operating system has it.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let owned = chunk.to_vec();
        self.on_file("writing upload", move |f| f.write_all(&owned))
            .await?;
        self.offset += chunk.len() as u64;
        Ok(())
    }

    /// Make what was received durable; the client is told this offset only after it is on disk.
    pub async fn sync(mut self) -> Result<u64> {
        self.on_file("syncing upload", |f| f.sync_data()).await?;
        Ok(self.offset)
    }
}

impl BlobDir {
    /// Open (creating) the blob directory at `root`.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["sha256", "uploads"] {
            let dir = root.join(sub);
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a finished blob lives.
    pub fn blob_path(&self, h: &BlobHash) -> PathBuf {
        let s = h.as_str();
        self.root.join("sha256").join(&s[..2]).join(s)
    }

    fn upload_path(&self, id: UploadId) -> PathBuf {
        self.root.join("uploads").join(format!("{id}.part"))
    }

    pub async fn blob_exists(&self, h: &BlobHash) -> Result<bool> {
        tokio::fs::try_exists(self.blob_path(h))
            .await
            .map_err(|e| StoreError::io("checking blob", e))
    }

    /// Start an upload's file (empty).
    pub async fn create_upload(&self, id: UploadId) -> Result<()> {
        let path = self.upload_path(id);
        let f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| StoreError::io("creating upload file", e))?;
        f.sync_all()
            .await
            .map_err(|e| StoreError::io("syncing upload file", e))?;
        sync_dir(&self.root.join("uploads")).await
    }

    /// Bytes received so far, or `None` if the upload's file is gone.
    pub async fn upload_offset(&self, id: UploadId) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.upload_path(id)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("reading upload offset", e)),
        }
    }

    /// Open an upload to append at its current end.
    pub async fn append_upload(&self, id: UploadId) -> Result<UploadFile> {
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(self.upload_path(id))
            .await
            .map_err(|e| StoreError::io("opening upload file", e))?;
        let offset = file
            .metadata()
            .await
            .map_err(|e| StoreError::io("reading upload file", e))?
            .len();
        Ok(UploadFile {
            file: Some(file.into_std().await),
            offset,
            guard: Arc::new(()),
        })
    }

    /// Verify the finished upload against `expected` and move it into place atomically. On a hash
    /// mismatch the upload's bytes are discarded (they cannot become the blob the client meant).
    pub async fn finish_upload(
        &self,
        id: UploadId,
        expected: &BlobHash,
    ) -> Result<(), FinishError> {
        let part = self.upload_path(id);
        let actual = hash_file(part.clone()).await?;
        if &actual != expected {
            self.remove_upload(id).await?;
            return Err(FinishError::HashMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let dest = self.blob_path(expected);
        let dir = dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| StoreError::io("creating blob directory", e))?;
        let f = tokio::fs::File::open(&part)
            .await
            .map_err(|e| StoreError::io("opening upload", e))?;
        f.sync_all()
            .await
            .map_err(|e| StoreError::io("syncing upload", e))?;
        drop(f);
        tokio::fs::rename(&part, &dest)
            .await
            .map_err(|e| StoreError::io("moving blob into place", e))?;
        sync_dir(&dir).await?;
        sync_dir(&self.root.join("uploads")).await?;
        Ok(())
    }

    pub async fn remove_upload(&self, id: UploadId) -> Result<()> {
        match tokio::fs::remove_file(self.upload_path(id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("removing upload", e)),
        }
    }

    /// Store `bytes`, already in memory and hashing to `h` (a camera frame), as that blob: written
    /// under an upload's name (a crash leaves a file the startup cleanup removes), made durable, then
    /// moved into place. A blob already there is kept as it is.
    pub async fn put_blob(&self, h: &BlobHash, bytes: bytes::Bytes) -> Result<()> {
        if self.blob_exists(h).await? {
            return Ok(());
        }
        let part = self.upload_path(UploadId::new());
        let dest = self.blob_path(h);
        let dir = dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        let (p, d) = (part.clone(), dest.clone());
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut f = std::fs::File::create_new(&p)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::create_dir_all(d.parent().unwrap_or(Path::new(".")))?;
            std::fs::rename(&p, &d)
        })
        .await
        .map_err(|e| StoreError::io("writing blob", std::io::Error::other(e)))?;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(StoreError::io("writing blob", e));
        }
        sync_dir(&dir).await
    }

    pub async fn remove_blob(&self, h: &BlobHash) -> Result<()> {
        match tokio::fs::remove_file(self.blob_path(h)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("removing blob", e)),
        }
    }

    /// Recompute a stored blob's hash (backups, restores, `hearthd verify`).
    pub async fn hash_blob(&self, h: &BlobHash) -> Result<BlobHash> {
        hash_file(self.blob_path(h)).await
    }

    /// Upload files whose id the database no longer knows (left by a crash between the two).
    pub async fn upload_ids_on_disk(&self) -> Result<Vec<UploadId>> {
        let mut out = Vec::new();
        let mut rd = tokio::fs::read_dir(self.root.join("uploads"))
            .await
            .map_err(|e| StoreError::io("listing uploads", e))?;
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| StoreError::io("listing uploads", e))?
        {
            let name = entry.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(|n| n.parse().ok())
            {
                out.push(id);
            }
        }
        Ok(out)
    }
}

/// SHA-256 of a file, computed off the async threads in 1 MiB reads.
pub async fn hash_file(path: PathBuf) -> Result<BlobHash> {
    tokio::task::spawn_blocking(move || -> Result<BlobHash> {
        let mut f = std::fs::File::open(&path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| StoreError::io("reading for hash", e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(BlobHash::from_digest(h.finalize().into()))
    })
    .await
    .map_err(|e| StoreError::io("hashing task", std::io::Error::other(e)))?
}

/// fsync a directory so a rename or create inside it survives a crash.
async fn sync_dir(dir: &Path) -> Result<()> {
    let d = tokio::fs::File::open(dir)
        .await
        .map_err(|e| StoreError::io("opening directory", e))?;
    d.sync_all()
        .await
        .map_err(|e| StoreError::io("syncing directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports the upload file's length when it is dropped: the moment a lock it stood for would
    /// be released.
    struct Probe {
        path: PathBuf,
        tell: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<u64>>>,
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            let len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
            if let Some(tx) = self.tell.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(len);
            }
        }
    }

    /// A blob directory in a fresh temporary directory (kept alive by the first value) with one
    /// empty upload.
    async fn new_upload() -> (tempfile::TempDir, BlobDir, UploadId) {
        let dir = tempfile::tempdir().expect("temp dir");
        let blobs = BlobDir::open(dir.path()).await.expect("blob dir");
        let id = UploadId::new();
        blobs.create_upload(id).await.expect("upload");
        (dir, blobs, id)
    }

    /// A request dropped in the middle of a write (a client gone mid-body) must not release the
    /// upload before the write has landed: a client resuming at once would read a length that
    /// then grows, and send those bytes again.
    #[tokio::test]
    async fn an_abandoned_write_holds_its_guard_until_its_bytes_are_written() {
        let (_dir, blobs, id) = new_upload().await;
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let probe = Probe {
            path: blobs.upload_path(id),
            tell: std::sync::Mutex::new(Some(tx)),
        };
        let mut f = blobs
            .append_upload(id)
            .await
            .expect("open")
            .holding(Arc::new(probe));
        // The write waits on a gate, so it is certainly under way when it is abandoned.
        let (open_gate, gate) = std::sync::mpsc::channel::<()>();
        let chunk = vec![7u8; 1 << 20];
        {
            let bytes = chunk.clone();
            let write = f.on_file("writing upload", move |file| {
                let _ = gate.recv();
                file.write_all(&bytes)
            });
            futures::pin_mut!(write);
            assert!(futures::FutureExt::now_or_never(write.as_mut()).is_none());
        }
        drop(f);
        assert!(
            matches!(
                rx.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty)
            ),
            "the guard was released while the write was still pending"
        );
        open_gate.send(()).expect("the write waits");
        let len_at_release = rx.await.expect("the guard is dropped in the end");
        assert_eq!(len_at_release, chunk.len() as u64);
        assert_eq!(
            blobs.upload_offset(id).await.expect("offset"),
            Some(chunk.len() as u64)
        );
    }

    /// After an abandoned write, the same handle refuses to go on rather than guess its offset.
    #[tokio::test]
    async fn a_handle_whose_write_was_abandoned_refuses_more() {
        let (_dir, blobs, id) = new_upload().await;
        let mut f = blobs.append_upload(id).await.expect("open");
        let (open_gate, gate) = std::sync::mpsc::channel::<()>();
        {
            let write = f.on_file("writing upload", move |file| {
                let _ = gate.recv();
                file.write_all(b"abc")
            });
            futures::pin_mut!(write);
            assert!(futures::FutureExt::now_or_never(write.as_mut()).is_none());
        }
        let refused = f.write(b"def").await;
        open_gate.send(()).expect("the write waits");
        assert!(
            refused.is_err(),
            "a second write went on after an abandoned one"
        );
    }
}
