//! Liveness, readiness, metrics and server info.

use crate::error::{ApiResult, Json};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use hearth_proto::api::{ErrorBody, ServerInfo};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers and the blob directory is writable.
#[utoipa::path(get, path = "/readyz", tag = "system", responses(
    (status = 200, description = "ready", body = String),
    (status = 503, description = "not ready", body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %crate::error::ErrorChain(&e), "not ready: database");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n");
    }
    let probe = state.blobs.root().join(".ready-probe");
    if let Err(e) = tokio::fs::write(&probe, b"ok").await {
        tracing::warn!(error = %e, "not ready: blob directory not writable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "blob storage not writable\n",
        );
    }
    let _ = tokio::fs::remove_file(&probe).await;
    (StatusCode::OK, "ready\n")
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let blobs = state.store.all_blob_hashes().await?.len() as i64;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(blobs),
    ))
}

/// What this server is, and whether it still awaits its first owner.
#[utoipa::path(get, path = "/api/v1/info", tag = "system", responses((status = 200, body = ServerInfo)))]
pub async fn info(State(state): State<AppState>) -> ApiResult<Json<ServerInfo>> {
    Ok(Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: hearth_proto::PROTOCOL_VERSION,
        setup_required: state.store.user_count().await? == 0,
        public_url: state.settings.public_base().map(str::to_owned),
        sso: state
            .sso
            .all()
            .map(|p| hearth_proto::api::SsoProvider {
                id: p.config.id.clone(),
                name: p.config.label().to_owned(),
            })
            .collect(),
        passkeys: state.passkeys.get().is_some(),
    }))
}
