//! Shared state of a running server.

use crate::auth::{LoginLimiter, SecretHasher};
use crate::config::Settings;
use crate::metrics::Metrics;
use hearth_proto::ids::UploadId;
use hearth_store::Store;
use hearth_store::blobdir::BlobDir;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Everything handlers share. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

#[derive(Debug)]
pub struct Inner {
    pub settings: Settings,
    pub store: Store,
    pub blobs: BlobDir,
    pub hasher: SecretHasher,
    pub limiter: LoginLimiter,
    pub metrics: Metrics,
    /// Uploads with a PATCH in progress: a second concurrent PATCH to the same upload is refused (409)
    /// instead of interleaving bytes.
    pub uploads_busy: Mutex<HashSet<UploadId>>,
    /// Connected agents, live telemetry, event fan-out.
    pub hub: crate::hub::Hub,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// Marks an upload busy for as long as it lives.
#[derive(Debug)]
pub struct UploadLock {
    state: AppState,
    id: UploadId,
}

impl AppState {
    /// Claim an upload for one PATCH; `None` if another request holds it.
    pub fn lock_upload(&self, id: UploadId) -> Option<UploadLock> {
        let mut busy = self.uploads_busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.insert(id).then(|| UploadLock {
            state: self.clone(),
            id,
        })
    }
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        let mut busy = self
            .state
            .uploads_busy
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.id);
    }
}
