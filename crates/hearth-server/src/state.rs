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
    /// Seals what the server must read back (authenticator secrets) in the database.
    pub at_rest: crate::at_rest::AtRest,
    pub limiter: LoginLimiter,
    pub metrics: Metrics,
    /// Uploads with a PATCH in progress: a second concurrent PATCH to the same upload is refused (409)
    /// instead of interleaving bytes.
    pub uploads_busy: Mutex<HashSet<UploadId>>,
    /// Connected agents, live telemetry, event fan-out.
    pub hub: crate::hub::Hub,
    /// Shutdown as the long-lived connections see it.
    pub stopping: Stopping,
    /// Wakes the notification sender; remembers printers' errors and absences.
    pub notifier: crate::notify::Notifier,
    /// The single sign-on providers (`[[auth.oidc]]`).
    pub sso: crate::sso::Providers,
    /// The passkey relying party (`public_url`'s host), when passkeys are on.
    pub passkeys: crate::passkeys::RelyingParty,
    /// How forwarding the audit log to syslog goes, as this instance sees it.
    pub syslog: crate::syslog::Status,
}

/// The server's shutdown as long-lived connections see it. The HTTP server's graceful shutdown waits
/// for responses in flight, and an event stream never ends by itself; it does not track agent
/// WebSockets at all once upgraded. So when shutdown begins, event streams end and agent sessions
/// close (WebSocket code 1001, "going away"), and the server waits for the sessions' last writes
/// before it closes the database.
#[derive(Debug)]
pub struct Stopping {
    /// Whether shutdown has begun, and how many agent sessions are running. One value, so that a
    /// session cannot start after the server has seen the count reach zero.
    state: tokio::sync::watch::Sender<(bool, usize)>,
}

impl Default for Stopping {
    fn default() -> Self {
        Self {
            state: tokio::sync::watch::Sender::new((false, 0)),
        }
    }
}

impl Stopping {
    pub fn begin(&self) {
        self.state.send_modify(|s| s.0 = true);
    }

    /// Whether shutdown has begun.
    pub fn has_begun(&self) -> bool {
        self.state.borrow().0
    }

    /// Resolves once shutdown has begun (at once if it has).
    pub async fn begun(&self) {
        let _ = self.state.subscribe().wait_for(|s| s.0).await;
    }

    /// Resolves once shutdown has begun and every agent session has ended.
    pub async fn sessions_ended(&self) {
        let _ = self.state.subscribe().wait_for(|s| s.0 && s.1 == 0).await;
    }
}

/// An agent session, counted for as long as it lives.
#[derive(Debug)]
pub struct AgentSession {
    state: AppState,
}

impl AppState {
    /// Counts a new agent session; `None` once shutdown has begun.
    pub fn agent_session(&self) -> Option<AgentSession> {
        self.stopping
            .state
            .send_if_modified(|s| {
                if s.0 {
                    return false;
                }
                s.1 += 1;
                true
            })
            .then(|| AgentSession {
                state: self.clone(),
            })
    }
}

impl Drop for AgentSession {
    fn drop(&mut self) {
        self.state.stopping.state.send_modify(|s| s.1 -= 1);
    }
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
