//! Printer cameras. The agent sends the latest frame of a printer's camera sealed to the
//! organisation's current epoch and signed by it (`hearth_crypto::seal_snapshot`); the server
//! keeps the latest one per printer, in memory only (`Hub::snapshot`), and hands it to members, who
//! check the agent's signature and open it on their device. The server cannot see a frame.
//!
//! What the server checks of an upload is what it can without keys: the printer is the agent's,
//! the bytes are an age file of at most `MAX_SNAPSHOT_BYTES` that hash to the manifest's
//! `blob_sha256`, the manifest names that printer, and it is sealed to the organisation's current
//! epoch (a frame sealed to an older epoch could be opened by a member removed since: refused with
//! `409 stale_epoch`, upon which the agent refreshes its chain and seals again).
//!
//! Looking at a camera is not written to the audit log (a dashboard would write an entry every
//! few seconds); frames are not kept, so there is no history to hand over.

use crate::auth::{OrgAccess, Viewer};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::hub::StoredSnapshot;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hearth_proto::agent::ServerMsg;
use hearth_proto::api::{ErrorBody, MAX_SNAPSHOT_BYTES, Snapshot, SnapshotUpload};
use hearth_proto::ids::{OrgId, PrinterId};
use hearth_proto::time_fmt::now_ms;
use sha2::Digest;

/// The header every age v1 file starts with.
const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";

/// Largest request body of a snapshot upload: the sealed frame in base64, with its manifest.
pub const SNAPSHOT_BODY_LIMIT: usize = MAX_SNAPSHOT_BYTES / 3 * 4 + 64 * 1024;

/// `?late=true`: a timelapse frame the agent kept while the server was out of reach, sent once it
/// is back. It goes to its job's timelapse only; the printer's latest frame stays as it is.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FrameQuery {
    #[serde(default)]
    pub late: bool,
}

/// An agent sends the latest sealed frame of one of its printers' cameras (or, `late`, a
/// timelapse frame it kept while the server was out of reach).
#[utoipa::path(put, path = "/api/v1/agent/printers/{name}/snapshot", tag = "agents",
    params(("name" = String, Path), FrameQuery), request_body = SnapshotUpload,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn agent_snapshot(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<FrameQuery>,
    headers: HeaderMap,
    Json(up): Json<SnapshotUpload>,
) -> ApiResult<StatusCode> {
    let (agent, org) = crate::routes::fleet::agent_from_bearer(&state, &headers)?;
    let kept = keep(&state, agent, org, &name, up, q.late).await;
    let counter = match &kept {
        Ok(()) => &state.metrics.camera_frames,
        Err(e) if e.status.is_client_error() => &state.metrics.camera_frames_refused,
        Err(_) => return kept.map(|()| StatusCode::NO_CONTENT),
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    kept.map(|()| StatusCode::NO_CONTENT)
}

/// Checks a frame an agent sent and keeps it as its printer's latest.
async fn keep(
    state: &AppState,
    agent: hearth_proto::ids::AgentId,
    org: OrgId,
    name: &str,
    up: SnapshotUpload,
    late: bool,
) -> ApiResult<()> {
    let printer = state
        .store
        .printers_of_agent(agent)
        .await?
        .into_iter()
        .find(|p| p.info.name == *name)
        .ok_or_else(|| ApiError::not_found(format!("printer {name:?} of this agent")))?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(up.sealed.as_bytes())
        .map_err(|e| ApiError::invalid(format!("sealed is not base64: {e}")))?;
    if sealed.len() > MAX_SNAPSHOT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a sealed frame is at most {MAX_SNAPSHOT_BYTES} bytes"),
        ));
    }
    if !sealed.starts_with(AGE_HEADER) {
        return Err(ApiError::invalid("sealed is not an age v1 file"));
    }
    let m = &up.manifest["manifest"];
    if m["printer"].as_str() != Some(name) {
        return Err(ApiError::invalid(
            "the manifest names another printer than the path",
        ));
    }
    if m["blob_sha256"].as_str() != Some(hex::encode(sha2::Sha256::digest(&sealed)).as_str()) {
        return Err(ApiError::invalid(
            "the sealed frame does not hash to the manifest's blob_sha256",
        ));
    }
    let current = state.store.org_epoch(org, None).await?.map(|(e, _)| e);
    if current.is_none() || m["epoch"].as_i64() != current {
        return Err(ApiError::bad_request(
            "stale_epoch",
            format!(
                "frames are sealed to the organisation's current epoch ({}); refresh the chain and seal again",
                current.map_or_else(|| "none yet".to_owned(), |e| e.to_string())
            ),
        )
        .with_status(StatusCode::CONFLICT));
    }
    let (sealed, received_at) = (bytes::Bytes::from(sealed), now_ms());
    if let Some(job) = m["job"].as_str() {
        crate::routes::timelapse::keep_frame(
            state,
            &printer,
            job,
            &sealed,
            &up.manifest,
            received_at,
            late,
        )
        .await?;
    } else if late {
        return Err(ApiError::invalid(
            "a late frame is a timelapse frame: its manifest names no job",
        ));
    }
    if late {
        return Ok(());
    }
    state.hub.set_snapshot(
        printer.id,
        StoredSnapshot {
            manifest: up.manifest,
            sealed,
            received_at,
        },
    );
    crate::hub::publish_printer(state, org, printer.id).await?;
    Ok(())
}

/// The latest sealed frame of a printer's camera, as its agent signed it. Open it on a member
/// device (`hearth camera`): the server cannot.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/printers/{id}/snapshot", tag = "fleet",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path)),
    responses((status = 200, body = Snapshot), (status = 404, body = ErrorBody)))]
pub async fn get_snapshot(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
) -> ApiResult<Json<Snapshot>> {
    let p = crate::routes::fleet::printer_in(&state, access.org.id, id).await?;
    let s = state.hub.snapshot(p.id).await.ok_or_else(|| {
        ApiError::not_found(format!(
            "a camera frame of printer {} (none arrived since the server started{})",
            p.info.name,
            if p.info.camera {
                ""
            } else {
                "; its agent has no camera configured for it"
            }
        ))
    })?;
    Ok(Json(s.to_api()))
}

/// Ask the printer's agent for a fresh frame now; it arrives as a printer event (and under
/// `GET .../snapshot`) within a few seconds.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/printers/{id}/snapshot", tag = "fleet",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path)),
    responses((status = 202), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn request_snapshot(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
) -> ApiResult<StatusCode> {
    let p = crate::routes::fleet::printer_in(&state, access.org.id, id).await?;
    if !p.info.camera {
        return Err(ApiError::conflict(format!(
            "printer {} has no camera: configure one for it in its agent's configuration",
            p.info.name
        )));
    }
    let tx = state.hub.sender(p.agent_id).ok_or_else(|| {
        ApiError::conflict(format!(
            "the agent of printer {} is not connected",
            p.info.name
        ))
    })?;
    tx.send(ServerMsg::Snapshot {
        printer: p.info.name.clone(),
    })
    .await
    .map_err(|_| ApiError::conflict("the agent disconnected"))?;
    Ok(StatusCode::ACCEPTED)
}
