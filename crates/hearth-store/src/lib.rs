//! Hearth's storage layer. Only this crate knows SQL.
//!
//! - [`Store`]: the database, SQLite (a file in the data directory, WAL mode) or PostgreSQL (by URL), with
//!   one portable schema in `migrations/` applied at startup. Reads go straight to the pool; every write
//!   runs in a [`Tx`], so a multi-step change (a membership change and its audit entry) commits whole or
//!   not at all.
//! - [`audit`]: appends to the hash-chained audit log inside the caller's transaction, and reads it back.
//! - [`blobdir::BlobDir`]: sealed blobs on disk, content-addressed by SHA-256, written to a temp file,
//!   fsynced and renamed so a crash never leaves a partial blob visible; resumable upload files.
//!
//! Errors are [`StoreError`]: "not found", "conflict" and "database unavailable" are distinct variants so
//! the server can answer 404, 409 and 503 rather than a catch-all.

pub mod audit;
pub mod blobdir;
pub mod fleet;
pub mod inventory;
pub mod maintenance;
pub mod mfa;
#[doc(hidden)]
pub mod migrate;
pub mod models;
pub mod notify;
pub mod passkeys;
mod queries;
mod rows;
pub mod sso;
pub mod timelapse;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use models::*;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Failures of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("migration {version} ({name}) differs from the one applied to this database")]
    MigrationChanged { version: i64, name: String },
    #[error("blob storage I/O failed: {context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound("row".into()),
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(format!("already exists ({})", db.message()))
            }
            _ => StoreError::Database(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer; taking this in-process lock before `BEGIN` avoids the busy errors a
    /// deferred transaction gets when it upgrades from reading to writing. PostgreSQL needs none.
    write_lock: Option<Arc<Mutex<()>>>,
}

/// A write transaction. Dropping it without [`Tx::commit`] rolls back.
#[derive(Debug)]
pub struct Tx {
    pub(crate) inner: sqlx::Transaction<'static, sqlx::Any>,
    _write_guard: Option<OwnedMutexGuard<()>>,
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Connect to `url` (`sqlite://PATH` or `postgres://...`) and apply pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            opts = opts.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    for pragma in [
                        "PRAGMA journal_mode=WAL",
                        "PRAGMA synchronous=NORMAL",
                        "PRAGMA foreign_keys=ON",
                        "PRAGMA busy_timeout=10000",
                    ] {
                        conn.execute(pragma).await?;
                    }
                    Ok(())
                })
            });
        } else {
            opts = opts.max_connections(16);
        }
        let pool = opts.connect(url).await.map_err(StoreError::Unavailable)?;
        let store = Store {
            pool,
            backend,
            write_lock: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// Open (creating if needed) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &std::path::Path) -> Result<Self> {
        Self::open(&sqlite_url(path)).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for code in this crate.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Start a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let inner = self.pool.begin().await?;
        Ok(Tx {
            inner,
            _write_guard: guard,
        })
    }

    /// Readiness: a trivial query answers.
    pub async fn ping(&self) -> Result<()> {
        let row: AnyRow = sqlx::query("SELECT 1 AS one").fetch_one(&self.pool).await?;
        let _: i32 = row
            .try_get::<i32, _>("one")
            .or_else(|_| row.try_get::<i64, _>("one").map(|v| v as i32))?;
        Ok(())
    }

    /// Write a consistent snapshot of a SQLite database to `dest` while the server keeps running
    /// (`VACUUM INTO`). PostgreSQL deployments use `pg_dump` instead.
    pub async fn snapshot_sqlite(&self, dest: &std::path::Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Conflict(
                "online snapshots are for SQLite; back up PostgreSQL with pg_dump".into(),
            ));
        }
        let dest = dest.to_str().ok_or_else(|| {
            StoreError::io(
                "backup path",
                std::io::Error::other("backup path is not UTF-8"),
            )
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Close the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The `sqlite://` URL for a database file, created if missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A database URL fit for logs: the password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_logs_hide_passwords() {
        assert_eq!(
            super::redact_url("postgres://hearth:s3cret@db:5432/h"),
            "postgres://hearth:***@db:5432/h"
        );
        assert_eq!(super::redact_url("postgres://db/h"), "postgres://db/h");
    }
}
