//! The spool: sealed downloads (resumable) and, for the moment of an upload, plaintext in 0600 files.
//!
//! ```text
//! <state_dir>/spool/sealed/<job id>.part     download in progress (its length is the resume offset)
//! <state_dir>/spool/sealed/<job id>.sealed   complete, SHA-256 checked
//! <state_dir>/spool/plain/hearth-<job id>.gcode   plaintext, 0600, deleted once the printer has it
//! ```
//! At startup everything in `plain/` is deleted (a crash may have left plaintext behind), and sealed files
//! of jobs the journal does not list as unfinished are deleted too.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use hearth_proto::ids::{BlobHash, JobId};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Paths of the spool.
#[derive(Debug, Clone)]
pub struct Spool {
    sealed: PathBuf,
    plain: PathBuf,
}

/// The file name a job has on the printer: the agent finds its job again from this name alone.
pub fn printer_file_name(job: JobId) -> String {
    format!("hearth-{job}.gcode")
}

/// The job id in a printer file name written by `printer_file_name`.
pub fn job_of_file(name: &str) -> Option<JobId> {
    let base = name.rsplit('/').next()?;
    base.strip_prefix("hearth-")?
        .strip_suffix(".gcode")?
        .parse()
        .ok()
}

/// Writes a new private file (0600), replacing an existing one, and syncs it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl Spool {
    /// Creates the directories (0700).
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let root = state_dir.join("spool");
        let spool = Self {
            sealed: root.join("sealed"),
            plain: root.join("plain"),
        };
        for d in [&root, &spool.sealed, &spool.plain] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)?;
        }
        Ok(spool)
    }

    pub fn partial(&self, job: JobId) -> PathBuf {
        self.sealed.join(format!("{job}.part"))
    }
    pub fn sealed(&self, job: JobId) -> PathBuf {
        self.sealed.join(format!("{job}.sealed"))
    }
    pub fn plaintext(&self, job: JobId) -> PathBuf {
        self.plain.join(printer_file_name(job))
    }
    pub fn plain_dir(&self) -> &Path {
        &self.plain
    }

    /// Creates the plaintext file of a job: new, mode 0600, only the agent can read it.
    pub fn create_plaintext(&self, job: JobId) -> std::io::Result<(PathBuf, File)> {
        let path = self.plaintext(job);
        let _ = std::fs::remove_file(&path);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok((path, f))
    }

    /// Deletes the sealed files of a job.
    pub fn forget(&self, job: JobId) {
        let _ = std::fs::remove_file(self.partial(job));
        let _ = std::fs::remove_file(self.sealed(job));
        let _ = std::fs::remove_file(self.plaintext(job));
    }

    /// Startup cleaning: every plaintext file, and sealed files of jobs not in `keep`. Returns what was
    /// removed.
    pub fn remove_leftovers(&self, keep: &HashSet<JobId>) -> std::io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&self.plain)? {
            let path = entry?.path();
            std::fs::remove_file(&path)?;
            removed.push(path);
        }
        for entry in std::fs::read_dir(&self.sealed)? {
            let path = entry?.path();
            let job = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<JobId>().ok());
            if !job.is_some_and(|j| keep.contains(&j)) {
                std::fs::remove_file(&path)?;
                removed.push(path);
            }
        }
        Ok(removed)
    }
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Network or server trouble: retry later from where it stopped.
    #[error("download interrupted")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the server answered {status} for the job's blob")]
    Status { status: u16 },
    /// The bytes do not hash to the job's `blob_sha256` (the partial file was deleted).
    #[error("downloaded blob hashes to {actual}, expected {expected}")]
    HashMismatch { expected: BlobHash, actual: String },
    #[error("spool I/O")]
    Io(#[source] std::io::Error),
}

/// Downloads `/api/v1/agent/blobs/{sha256}` into the spool, resuming a partial file with `Range`, and
/// checks the hash. Returns the path of the complete sealed file.
pub async fn download(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    spool: &Spool,
    job: JobId,
    hash: &BlobHash,
) -> Result<PathBuf, DownloadError> {
    let done = spool.sealed(job);
    if tokio::fs::try_exists(&done).await.unwrap_or(false) {
        return Ok(done);
    }
    let part = spool.partial(job);
    let have = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let url = format!(
        "{}/api/v1/agent/blobs/{}",
        server.trim_end_matches('/'),
        hash.as_str()
    );
    let mut rb = http.get(url).bearer_auth(token);
    if have > 0 {
        rb = rb.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| DownloadError::Transient(e.into()))?;
    let status = resp.status();
    let append = status == reqwest::StatusCode::PARTIAL_CONTENT;
    if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
        // The partial file is complete (or longer than the blob): check it below.
    } else if !status.is_success() {
        return Err(DownloadError::Status {
            status: status.as_u16(),
        });
    } else {
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .mode(0o600)
            .open(&part)
            .await
            .map_err(DownloadError::Io)?;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| DownloadError::Transient(e.into()))?;
            f.write_all(&chunk).await.map_err(DownloadError::Io)?;
        }
        f.sync_all().await.map_err(DownloadError::Io)?;
    }
    let actual = hash_file(&part).await.map_err(DownloadError::Io)?;
    if actual != hash.as_str() {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(DownloadError::HashMismatch {
            expected: hash.clone(),
            actual,
        });
    }
    tokio::fs::rename(&part, &done)
        .await
        .map_err(DownloadError::Io)?;
    Ok(done)
}

async fn hash_file(path: &Path) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut f = File::open(path)?;
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h)?;
        Ok(hex::encode(h.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn printer_file_names_carry_the_job_id() {
        let id = JobId::new();
        let name = printer_file_name(id);
        assert_eq!(job_of_file(&name), Some(id));
        assert_eq!(job_of_file(&format!("local/{name}")), Some(id));
        assert_eq!(job_of_file("benchy.gcode"), None);
        assert_eq!(job_of_file("hearth-nope.gcode"), None);
    }
}
