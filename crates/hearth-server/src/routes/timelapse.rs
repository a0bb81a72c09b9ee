//! Timelapses: the sealed camera frames an agent took of a job while it printed, kept with the
//! job. An agent with `[printer.camera] timelapse = true` signs the frames of its printing cadence
//! with the job's id (`SnapshotManifest::job`); the server keeps such a frame, besides showing it as
//! the printer's latest, when the job is that printer's and is printing or paused.
//!
//! The server cannot open a frame: members fetch the list and the sealed frames and open them on
//! their device (`hearth timelapse JOB`), checking that the printer's agent signed each one as a
//! frame of that job. Frames count towards the organisation's storage quota (a full quota stops
//! the timelapse, never an upload: frames are not kept and counted as `over_quota`), a timelapse
//! keeps at most `camera.timelapse_max_frames` evenly spaced frames, and it is deleted
//! `camera.timelapse_keep_days` after its job ended. Deleting one is audited; looking at one is
//! not (as with the live camera).

use crate::auth::{Operator, OrgAccess, Viewer};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_proto::Role;
use hearth_proto::agent::JobState;
use hearth_proto::api::{ErrorBody, Timelapse, TimelapseFrame, TimelapseSummary};
use hearth_proto::ids::{JobId, OrgId};
use hearth_proto::time_fmt::rfc3339;
use hearth_store::audit::NewAuditEntry;
use hearth_store::fleet::{JobRow, PrinterRow};
use hearth_store::timelapse::{FrameRow, TimelapseRow};
use serde_json::json;

use crate::routes::DAY_MS;

/// How long after its job ended (as the server recorded it) a late frame may have been taken, by
/// the agent's clock: the skew agents are allowed elsewhere (`JobVerifier`).
const LATE_SKEW_SECS: i64 = 120;

/// Keeps a frame the agent signed as a frame of `job` (already checked as a live frame: the
/// agent's printer, an age file hashing to the manifest's hash, the current epoch) in that job's
/// timelapse, when the job is the printer's and prints. A frame of a job that is not printing (the
/// file still transferring, or the job just ended) is only the printer's latest frame. A `late`
/// frame (kept by the agent while the server was away) is also kept for a job that ended since,
/// when it was taken before the job ended.
pub(crate) async fn keep_frame(
    state: &AppState,
    printer: &PrinterRow,
    job: &str,
    sealed: &bytes::Bytes,
    manifest: &serde_json::Value,
    received_at: i64,
    late: bool,
) -> ApiResult<()> {
    let Ok(job_id) = job.parse::<JobId>() else {
        return Err(ApiError::invalid(format!(
            "the manifest's job {job:?} is not a job id"
        )));
    };
    let j = match state.store.job(job_id).await {
        Ok(j) => j,
        Err(hearth_store::StoreError::NotFound(_)) => {
            return Err(ApiError::invalid(format!(
                "the manifest names job {job_id}, which does not exist"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if j.org_id != printer.org_id || j.printer_id != Some(printer.id) {
        return Err(ApiError::invalid(format!(
            "job {job_id} is not a job of printer {}",
            printer.info.name
        )));
    }
    let taken_at = manifest["manifest"]["taken_at"]
        .as_i64()
        .unwrap_or(i64::MAX);
    let printing = matches!(j.state, JobState::Printing | JobState::Paused);
    let ended_since =
        late && matches!(
            j.state,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        ) && taken_at <= j.updated_at / 1000 + LATE_SKEW_SECS;
    if !(printing || ended_since) {
        return Ok(());
    }
    let sha256 = manifest["manifest"]["blob_sha256"]
        .as_str()
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| ApiError::invalid("the manifest has no blob_sha256"))?;
    let frame = FrameRow {
        job_id,
        seq: 0,
        org_id: j.org_id,
        sha256,
        size: sealed.len() as i64,
        manifest: manifest.to_string(),
        received_at,
    };
    let mut tx = state.store.begin().await?;
    let quota = tx.quota(j.org_id).await?;
    let added = tx
        .add_timelapse_frame(&frame, quota, state.settings.camera.timelapse_max_frames)
        .await?;
    if added.kept.is_some() {
        // Written before the row commits: a failed write rolls the frame back.
        state.blobs.put_blob(&frame.sha256, sealed.clone()).await?;
    }
    // A frame not kept is counted as arrived all the same.
    tx.commit().await?;
    if added.over_quota {
        // Counted in the timelapse (`over_quota`), which members see: not a log line every frame.
        tracing::debug!(job = %job_id, "a timelapse frame was not kept: the organisation's storage quota is full");
    }
    remove_unreferenced(state, added.dropped.iter()).await
}

/// Removes the bytes of frames no longer kept, unless something else still references them.
async fn remove_unreferenced(
    state: &AppState,
    hashes: impl Iterator<Item = &hearth_proto::ids::BlobHash>,
) -> ApiResult<()> {
    for h in hashes {
        let mut tx = state.store.begin().await?;
        let used = tx.blob_referenced(h).await?;
        tx.commit().await?;
        if !used {
            state.blobs.remove_blob(h).await?;
        }
    }
    Ok(())
}

fn summary(state: &AppState, t: &TimelapseRow) -> TimelapseSummary {
    let keep_days = state.settings.camera.timelapse_keep_days;
    let expires_at = t
        .ended_at
        .filter(|_| keep_days > 0)
        .map(|ended| rfc3339(ended + keep_days * DAY_MS));
    TimelapseSummary {
        job_id: t.job_id,
        frames: t.frames.max(0) as u64,
        bytes: t.bytes.max(0) as u64,
        first_at: t.first_at.map(rfc3339),
        last_at: t.last_at.map(rfc3339),
        arrived: t.arrived.max(0) as u64,
        stride: t.stride.max(1) as u64,
        over_quota: t.over_quota.max(0) as u64,
        expires_at,
    }
}

/// The organisation's timelapses, newest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/timelapses", tag = "jobs",
    params(("org" = OrgId, Path)),
    responses((status = 200, body = [TimelapseSummary]), (status = 404, body = ErrorBody)))]
pub async fn list_timelapses(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<Vec<TimelapseSummary>>> {
    let all = state.store.timelapses(access.org.id).await?;
    Ok(Json(all.iter().map(|t| summary(&state, t)).collect()))
}

/// A job's timelapse: its frames in order, each with the manifest its agent signed.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/jobs/{id}/timelapse", tag = "jobs",
    params(("org" = OrgId, Path), ("id" = JobId, Path)),
    responses((status = 200, body = Timelapse), (status = 404, body = ErrorBody)))]
pub async fn get_timelapse(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id)): Path<(OrgId, JobId)>,
) -> ApiResult<Json<Timelapse>> {
    let job = crate::routes::fleet::job_in(&state, access.org.id, id).await?;
    let t = state
        .store
        .timelapse(id)
        .await
        .map_err(|e| no_timelapse(e, &job))?;
    let frames = state
        .store
        .timelapse_frames(id)
        .await?
        .into_iter()
        .map(|f| {
            Ok(TimelapseFrame {
                seq: f.seq.max(0) as u64,
                size: f.size.max(0) as u64,
                received_at: rfc3339(f.received_at),
                manifest: serde_json::from_str(&f.manifest).map_err(ApiError::internal)?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Timelapse {
        summary: summary(&state, &t),
        frames,
    }))
}

/// A job with no timelapse says why there is none.
fn no_timelapse(e: hearth_store::StoreError, job: &JobRow) -> ApiError {
    match e {
        hearth_store::StoreError::NotFound(_) => ApiError::not_found(format!(
            "a timelapse of job {} (none was kept: its printer's agent keeps timelapses with \
             [printer.camera] timelapse = true, from the moment the job prints)",
            job.id
        )),
        e => e.into(),
    }
}

/// One sealed frame of a job's timelapse (an age file; open it on a member device).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/jobs/{id}/timelapse/{seq}", tag = "jobs",
    params(("org" = OrgId, Path), ("id" = JobId, Path), ("seq" = u64, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub async fn get_timelapse_frame(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id, seq)): Path<(OrgId, JobId, i64)>,
) -> ApiResult<Response> {
    crate::routes::fleet::job_in(&state, access.org.id, id).await?;
    let f = state.store.timelapse_frame(id, seq).await?;
    let bytes = tokio::fs::read(state.blobs.blob_path(&f.sha256))
        .await
        .map_err(|e| {
            ApiError::internal(std::io::Error::other(format!(
                "frame {seq} of job {id} is recorded but its bytes cannot be read: {e}"
            )))
        })?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// Deletes a job's timelapse. Its submitter (an operator) or an admin may.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/jobs/{id}/timelapse", tag = "jobs",
    params(("org" = OrgId, Path), ("id" = JobId, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_timelapse(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, JobId)>,
) -> ApiResult<StatusCode> {
    let job = crate::routes::fleet::job_in(&state, access.org.id, id).await?;
    if access.role < Role::Admin && job.submitted_by != access.caller.user.id {
        return Err(ApiError::forbidden(
            "only the job's submitter or an admin may delete its timelapse",
        ));
    }
    state
        .store
        .timelapse(id)
        .await
        .map_err(|e| no_timelapse(e, &job))?;
    let entry = access.caller.audit(
        access.org.id.to_string(),
        "timelapse.delete",
        Some(format!("job:{id}")),
        json!({}),
    );
    delete(&state, id, entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a timelapse with its audit entry (the frames and bytes it held are added to the
/// entry's details), then the frames' bytes.
async fn delete(state: &AppState, job: JobId, mut entry: NewAuditEntry) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    let frames = tx.delete_timelapse(job).await?;
    entry.details = json!({
        "frames": frames.len(),
        "bytes": frames.iter().map(|(_, s)| s).sum::<i64>(),
    });
    tx.append_audit(entry).await?;
    tx.commit().await?;
    remove_unreferenced(state, frames.iter().map(|(h, _)| h)).await
}

/// Deletes the timelapses of jobs that ended more than `camera.timelapse_keep_days` before `now`
/// (Unix ms; the server runs it once a minute; 0 days keeps them).
pub async fn expire_timelapses(state: &AppState, now: i64) -> ApiResult<()> {
    let days = state.settings.camera.timelapse_keep_days;
    if days <= 0 {
        return Ok(());
    }
    for (org, job) in state
        .store
        .timelapses_ended_before(now - days * DAY_MS)
        .await?
    {
        let entry = crate::routes::system_audit(
            org.to_string(),
            "timelapse.expire",
            Some(format!("job:{job}")),
            json!({}),
        );
        match delete(state, job, entry).await {
            Ok(()) => {}
            // Deleted by a member meanwhile.
            Err(e) if e.status == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
