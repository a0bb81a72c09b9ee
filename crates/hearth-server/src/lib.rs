//! `hearthd`, Hearth's server. It stores sealed blobs and signed manifests, accounts, organisations and
//! the audit log, and serves the `/api/v1` JSON API. It never links the code that opens sealed data nor
//! any printer driver (a test reads `cargo metadata` to keep it so).
//!
//! - [`config::Settings`]: layered configuration.
//! - [`start`] prepares storage (migrations, crash leftovers, the first-owner setup token) and returns a
//!   [`Server`]; [`Server::run`] serves it on a listener until a shutdown future resolves.
//! - [`routes`]: the API; [`auth`]: callers, roles as types, sessions, tokens; [`error`]: the single
//!   error-to-HTTP mapping.
//! - [`tls`]: HTTPS with rustls; [`backup`]: consistent online backups and verified restores.
//! - [`notify`]: notifications to webhooks, Slack, Discord, ntfy and e-mail, queued with the change they report.

pub mod at_rest;
pub mod auth;
pub mod backup;
pub mod cluster;
pub mod config;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod mfa;
pub mod notify;
pub mod passkeys;
pub mod routes;
pub mod sso;
pub mod state;
pub mod syslog;
pub mod temps;
pub mod tls;

use crate::auth::{LoginLimiter, SecretHasher, random_token, token_hash};
use crate::config::Settings;
use crate::state::{AppState, Inner};
use hearth_proto::time_fmt::now_ms;
use hearth_store::blobdir::BlobDir;
use hearth_store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open storage")]
    Store(#[from] StoreError),
    #[error("the key sealing secrets at rest: {0}")]
    AtRest(#[from] at_rest::AtRestError),
    #[error("invalid Argon2 settings: {0}")]
    Argon2(argon2::Error),
    #[error("TLS setup failed")]
    Tls(#[from] tls::TlsError),
    #[error("notifications: {0}")]
    Notifications(String),
    #[error("{0}")]
    Audit(String),
    #[error("single sign-on: {0}")]
    Sso(#[from] sso::SsoError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(
        "cluster.nats_url is set but the database is SQLite: several instances share one PostgreSQL database (database_url)"
    )]
    ClusterNeedsPostgres,
    #[error("serving failed")]
    Serve(#[source] std::io::Error),
}

/// A server ready to serve.
#[derive(Debug)]
pub struct Server {
    pub state: AppState,
    /// Set when no account exists yet: the one-time token that creates the first owner. Print it.
    pub setup_token: Option<String>,
    /// The link to the other instances (`cluster.nats_url`).
    cluster: Option<Arc<cluster::Cluster>>,
    /// Where the audit log is sent on to (`[audit] syslog`).
    syslog: Option<syslog::Forwarder>,
}

/// Open storage, clean up what a crash left behind, and issue a setup token if there is no user yet.
pub async fn start(settings: Settings) -> Result<Server, StartError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartError::DataDir {
        path: settings.data_dir.clone(),
        source,
    })?;
    let store = Store::open(&settings.effective_database_url()).await?;
    let blobs = BlobDir::open(settings.data_dir.join("blobs")).await?;
    clean_uploads(&store, &blobs).await?;
    let at_rest = at_rest::AtRest::load_or_create(&settings.secret_key_path())?;
    let secrets = at_rest::seal_stored_totp_secrets(&store, &at_rest).await?;
    if secrets.sealed_now > 0 {
        tracing::info!(
            sealed = secrets.sealed_now,
            "sealed the authenticator secrets stored in clear before"
        );
    }
    if secrets.unopenable > 0 {
        // Said at start, not at the first member's failed login: the file is the wrong one.
        tracing::error!(
            key_file = %settings.secret_key_path().display(),
            unopenable = secrets.unopenable,
            "the key file does not open the authenticator secrets stored in the database: it is \
             not the file they were sealed with (another instance's, or a new one after the old \
             was lost). Members with a second factor cannot log in until the right file is back \
             (from a backup, or another instance of the cluster) or their factor is reset \
             (hearth mfa reset LOGIN)"
        );
    }
    let setup_token = if store.user_count().await? == 0 {
        // Prefixed so it never starts with '-', which command lines would take for an option.
        let token = format!("hst_{}", random_token());
        let mut tx = store.begin().await?;
        tx.replace_setup_token(&token_hash(&token), now_ms())
            .await?;
        tx.commit().await?;
        Some(token)
    } else {
        None
    };
    let a = &settings.auth;
    let hasher =
        SecretHasher::new(a.argon2_memory_kib, a.argon2_iterations).map_err(StartError::Argon2)?;
    let limiter = LoginLimiter::new(
        Duration::from_secs(a.failure_window_secs),
        a.max_failures_per_account,
        a.max_failures_per_ip,
    );
    let sso = sso::Providers::new(&settings.auth.oidc)?;
    let passkeys = passkeys::RelyingParty::new(settings.public_base());
    let notifier =
        notify::Notifier::new(&settings.notifications).map_err(StartError::Notifications)?;
    let syslog = syslog::Forwarder::new(&settings.audit, settings.public_url.as_deref())
        .map_err(StartError::Audit)?;
    let cluster = match settings
        .cluster
        .nats_url
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        Some(_) if store.backend() != hearth_store::Backend::Postgres => {
            return Err(StartError::ClusterNeedsPostgres);
        }
        Some(url) => Some(Arc::new(cluster::Cluster::connect(url).await?)),
        None => None,
    };
    let state = AppState {
        inner: Arc::new(Inner {
            notifier,
            settings,
            store,
            blobs,
            hasher,
            at_rest,
            limiter,
            metrics: Default::default(),
            uploads_busy: Default::default(),
            hub: Default::default(),
            stopping: Default::default(),
            sso,
            passkeys,
            syslog: Default::default(),
        }),
    };
    state.metrics.secrets_unopenable.store(
        secrets.unopenable as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    if let Some(c) = &cluster {
        tracing::info!(instance = %c.instance, "joined the other instances through NATS");
        state.hub.set_cluster(c.clone());
    }
    Ok(Server {
        state,
        setup_token,
        cluster,
        syslog,
    })
}

/// Drop expired uploads and upload files the database does not know (a crash between creating the file
/// and committing its row).
async fn clean_uploads(store: &Store, blobs: &BlobDir) -> Result<(), StoreError> {
    for up in store.expired_uploads(now_ms()).await? {
        let mut tx = store.begin().await?;
        tx.delete_upload(up.id).await?;
        tx.commit().await?;
        blobs.remove_upload(up.id).await?;
        tracing::info!(upload = %up.id, "discarded an expired upload");
    }
    for id in blobs.upload_ids_on_disk().await? {
        if matches!(store.upload(id).await, Err(StoreError::NotFound(_))) {
            blobs.remove_upload(id).await?;
            tracing::info!(upload = %id, "removed an orphaned upload file");
        }
    }
    Ok(())
}

impl Server {
    /// The API router (for in-process tests).
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Serve on `listener` (plain HTTP, or HTTPS when TLS is configured) until `shutdown` resolves, then
    /// finish in-flight requests and close the database.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let app = self
            .router()
            .into_make_service_with_connect_info::<tls::PeerAddr>();
        let rollups = tokio::spawn(flush_rollups_every(
            self.state.clone(),
            Duration::from_secs(60),
        ));
        let notifications = tokio::spawn(notify::run(self.state.clone()));
        let syslog = self
            .syslog
            .clone()
            .map(|f| tokio::spawn(syslog::run(self.state.clone(), f)));
        let cluster = self.cluster.clone().map(|c| {
            let state = self.state.clone();
            tokio::spawn(async move {
                let stop = state.stopping.begun();
                if let Err(e) = cluster::run(c, &state, stop).await {
                    tracing::error!(error = %e, "lost the other instances (NATS)");
                }
            })
        });
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            // Event streams end and agent sessions close now, or the wait for requests in
            // flight below would never end while a dashboard is open.
            state.stopping.begin();
        };
        let settings = &self.state.settings;
        if let (Some(cert), Some(key)) = (&settings.tls.cert, &settings.tls.key) {
            let config = tls::server_config(cert, key)?;
            let listener = tls::TlsListener::new(listener, config);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(StartError::Serve)?;
        } else {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(StartError::Serve)?;
        }
        // Agent sessions are upgraded connections, which the HTTP server no longer waits for:
        // their last writes (the agent's last-seen time) must land before the database closes.
        if tokio::time::timeout(SESSIONS_DRAIN, self.state.stopping.sessions_ended())
            .await
            .is_err()
        {
            tracing::warn!("agent sessions still open at shutdown; closing anyway");
        }
        rollups.abort();
        // It returns once shutdown has begun; a try in flight ends with it (the lease lapses and
        // the delivery is tried again after a restart).
        let _ = notifications.await;
        if let Some(s) = syslog {
            // It stops between pages: what it wrote is marked sent.
            let _ = s.await;
        }
        if let Some(c) = cluster {
            // Tells the others this instance's agents are gone with it.
            let _ = c.await;
        }
        if let Err(e) = self.state.hub.flush_rollups(&self.state.store).await {
            tracing::warn!(error = %error::ErrorChain(&e), "could not write the last printer history");
        }
        self.state.store.close().await;
        Ok(())
    }
}

/// How long shutdown waits for agent sessions to finish what they were doing.
const SESSIONS_DRAIN: Duration = Duration::from_secs(10);

/// Once a minute: telemetry summed in memory is written as hourly rollups (never per message),
/// every organisation's queue is swept, so a queued job whose validity ends fails then even when no
/// printer or member does anything that would dispatch it, expired timelapses and the sealed
/// payloads of jobs that ended long enough ago are deleted, as are blobs no file or job ever used,
/// and
/// maintenance tasks that fell due are reported (and hold their printer when set to).
async fn flush_rollups_every(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = state.hub.flush_rollups(&state.store).await {
            tracing::warn!(error = %error::ErrorChain(&e), "could not write printer history");
        }
        if let Err(e) = sweep_queues(&state).await {
            tracing::warn!(error = %e.message, source = ?e.source, "could not sweep the job queues");
        }
        if let Err(e) =
            routes::timelapse::expire_timelapses(&state, hearth_proto::time_fmt::now_ms()).await
        {
            tracing::warn!(error = %e.message, source = ?e.source, "could not delete expired timelapses");
        }
        if let Err(e) =
            routes::blobs::expire_job_payloads(&state, hearth_proto::time_fmt::now_ms()).await
        {
            tracing::warn!(error = %e.message, source = ?e.source, "could not delete ended jobs' payloads");
        }
        if let Err(e) =
            routes::blobs::expire_unused_blobs(&state, hearth_proto::time_fmt::now_ms()).await
        {
            tracing::warn!(error = %e.message, source = ?e.source, "could not delete unused blobs");
        }
        if let Err(e) = routes::maintenance::sweep(&state, hearth_proto::time_fmt::now_ms()).await {
            tracing::warn!(error = %e.message, source = ?e.source, "could not look at maintenance tasks");
        }
    }
}

/// Dispatches every organisation's queue: jobs that a printer can take go out, and queued jobs whose
/// validity has ended fail with the reason. The server runs it once a minute.
pub async fn sweep_queues(state: &AppState) -> error::ApiResult<()> {
    for org in state.store.orgs_with_queued_jobs().await? {
        hub::dispatch(state, org).await?;
    }
    Ok(())
}
