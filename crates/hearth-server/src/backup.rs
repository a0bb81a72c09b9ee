//! Backups of a running server and verified restores.
//!
//! A backup directory has the layout of a data directory: `hearth.db` (a `VACUUM INTO` snapshot, consistent
//! even while `hearthd` writes) and `blobs/sha256/..` holding every blob the snapshot references, each
//! re-hashed as it is copied, `secret.key` (the key sealing secrets at rest, [`crate::at_rest`]),
//! plus `BACKUP.json` describing it. With PostgreSQL, `pg_dump` writes
//! `hearth.pgdump` instead. Restoring copies it into an empty data directory and verifies it: every audit
//! chain recomputes and every blob hashes to its name.

use crate::config::Settings;
use hearth_proto::ids::BlobHash;
use hearth_store::blobdir::{BlobDir, hash_file};
use hearth_store::{Backend, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists and is not empty; choose a new directory")]
    NotEmpty(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("blob {hash} is damaged: its bytes hash to {actual}")]
    Damaged { hash: BlobHash, actual: BlobHash },
    #[error("blob {0} is referenced but missing")]
    Missing(BlobHash),
    #[error("audit chain {scope} does not verify: {problem}")]
    Audit { scope: String, problem: String },
    #[error(
        "pg_dump failed: {0}. Back up PostgreSQL with: pg_dump --format=custom --file=BACKUP/hearth.pgdump DATABASE_URL"
    )]
    PgDump(String),
    #[error("{0} is not a Hearth backup (no hearth.db)")]
    NotABackup(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupSummary {
    pub created_at: String,
    pub hearth_version: String,
    pub database: String,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Whether the key sealing secrets at rest (`secret.key`) was copied too: without it, the
    /// members' authenticator apps cannot be checked after a restore (their recovery codes can).
    #[serde(default)]
    pub secret_key: bool,
}

fn ensure_empty(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(BackupError::NotEmpty(dir.to_owned()));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))
}

/// Copy `hashes` from one blob directory to another, verifying each copy's hash.
async fn copy_blobs(
    from: &BlobDir,
    to: &BlobDir,
    hashes: &[(BlobHash, i64)],
) -> Result<(u64, u64), BackupError> {
    let (mut n, mut bytes) = (0, 0);
    for (h, _) in hashes {
        let src = from.blob_path(h);
        let dst = to.blob_path(h);
        if !src.exists() {
            return Err(BackupError::Missing(h.clone()));
        }
        if let Some(parent) = dst.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io(parent))?;
        }
        bytes += tokio::fs::copy(&src, &dst).await.map_err(io(&src))?;
        let actual = hash_file(dst.clone()).await?;
        if &actual != h {
            return Err(BackupError::Damaged {
                hash: h.clone(),
                actual,
            });
        }
        n += 1;
    }
    Ok((n, bytes))
}

/// The key sealing secrets at rest, in a backup and in a restored data directory.
const SECRET_KEY: &str = "secret.key";

/// Copies `from` to `to` (with its permissions) if it exists; whether it did.
async fn copy_if_there(from: &Path, to: &Path) -> Result<bool, BackupError> {
    match tokio::fs::copy(from, to).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(from)(e)),
    }
}

/// Back up the server described by `settings` (which may be running) into the new directory `dest`.
pub async fn backup(settings: &Settings, dest: &Path) -> Result<BackupSummary, BackupError> {
    ensure_empty(dest)?;
    let store = Store::open(&settings.effective_database_url()).await?;
    let source_blobs = BlobDir::open(settings.data_dir.join("blobs")).await?;
    let dest_blobs = BlobDir::open(dest.join("blobs")).await?;
    let (database, hashes) = match store.backend() {
        Backend::Sqlite => {
            let snapshot = dest.join("hearth.db");
            store.snapshot_sqlite(&snapshot).await?;
            // Copy what the snapshot references, not what the live database references now.
            let snap = Store::open_sqlite(&snapshot).await?;
            let hashes = snap.all_blob_hashes().await?;
            snap.close().await;
            ("sqlite".to_owned(), hashes)
        }
        Backend::Postgres => {
            let out = dest.join("hearth.pgdump");
            let status = tokio::process::Command::new("pg_dump")
                .arg("--format=custom")
                .arg(format!("--file={}", out.display()))
                .arg(settings.effective_database_url())
                .status()
                .await
                .map_err(|e| BackupError::PgDump(e.to_string()))?;
            if !status.success() {
                return Err(BackupError::PgDump(format!("exit status {status}")));
            }
            (
                "postgres (hearth.pgdump; restore with pg_restore)".to_owned(),
                store.all_blob_hashes().await?,
            )
        }
    };
    store.close().await;
    let (blobs, blob_bytes) = copy_blobs(&source_blobs, &dest_blobs, &hashes).await?;
    let secret_key = copy_if_there(&settings.secret_key_path(), &dest.join(SECRET_KEY)).await?;
    let summary = BackupSummary {
        created_at: hearth_proto::time_fmt::rfc3339(hearth_proto::time_fmt::now_ms()),
        hearth_version: env!("CARGO_PKG_VERSION").to_owned(),
        database,
        blobs,
        blob_bytes,
        secret_key,
    };
    let manifest = dest.join("BACKUP.json");
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    tokio::fs::write(&manifest, text)
        .await
        .map_err(io(&manifest))?;
    Ok(summary)
}

/// Result of checking a data directory.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub audit_entries: i64,
    pub scopes: usize,
    pub blobs: u64,
}

/// Verify every audit chain and every blob of the data directory `settings` describes.
pub async fn verify(settings: &Settings) -> Result<VerifyReport, BackupError> {
    let store = Store::open(&settings.effective_database_url()).await?;
    let blobs = BlobDir::open(settings.data_dir.join("blobs")).await?;
    let mut report = VerifyReport {
        audit_entries: 0,
        scopes: 0,
        blobs: 0,
    };
    for scope in store.audit_scopes().await? {
        let check = store.verify_audit(&scope).await?;
        if let Err(b) = check.result {
            return Err(BackupError::Audit {
                scope,
                problem: b.to_string(),
            });
        }
        report.audit_entries += check.entries_checked;
        report.scopes += 1;
    }
    for (h, _) in store.all_blob_hashes().await? {
        if !blobs.blob_exists(&h).await? {
            return Err(BackupError::Missing(h));
        }
        let actual = blobs.hash_blob(&h).await?;
        if actual != h {
            return Err(BackupError::Damaged { hash: h, actual });
        }
        report.blobs += 1;
    }
    store.close().await;
    Ok(report)
}

/// Restore the SQLite backup `src` into the empty data directory `data_dir`, then verify it.
pub async fn restore(src: &Path, data_dir: &Path) -> Result<VerifyReport, BackupError> {
    let db = src.join("hearth.db");
    if !db.exists() {
        return Err(BackupError::NotABackup(src.to_owned()));
    }
    ensure_empty(data_dir)?;
    let dest_db = data_dir.join("hearth.db");
    tokio::fs::copy(&db, &dest_db).await.map_err(io(&db))?;
    let snap = Store::open_sqlite(&dest_db).await?;
    let hashes = snap.all_blob_hashes().await?;
    snap.close().await;
    let from = BlobDir::open(src.join("blobs")).await?;
    let to = BlobDir::open(data_dir.join("blobs")).await?;
    copy_blobs(&from, &to, &hashes).await?;
    copy_if_there(&src.join(SECRET_KEY), &data_dir.join(SECRET_KEY)).await?;
    let settings = Settings {
        data_dir: data_dir.to_owned(),
        ..Settings::default()
    };
    verify(&settings).await
}
