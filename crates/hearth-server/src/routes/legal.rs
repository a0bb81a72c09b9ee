//! Legal requests (`hearth_proto::legal`): recorded by instance admins as `legal.request` entries
//! of the instance's audit chain and, for an organisation's data, of that organisation's chain in
//! the same transaction, with a `legal.request` notification to its channels. Listed from the
//! chains themselves, so the list is exactly what the verifiable record holds.

use crate::auth::{Admin, Caller, OrgAccess};
use crate::error::{ApiError, ApiResult, Json};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hearth_proto::api::ErrorBody;
use hearth_proto::audit::{AuditEntry, SYSTEM_SCOPE};
use hearth_proto::legal::{ACTION, LegalRequest, NewLegalRequest};
use hearth_proto::notify::{Notification, NotifyEvent};
use hearth_proto::time_fmt::{now_ms, rfc3339};
use std::sync::atomic::Ordering::Relaxed;

/// Record a legal request for data (instance admins): in the instance's audit chain and, when it
/// concerns an organisation, in that organisation's chain, whose channels following
/// `legal.request` are told.
#[utoipa::path(post, path = "/api/v1/system/legal-requests", tag = "audit", request_body = NewLegalRequest,
    responses((status = 201, body = LegalRequest), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn record(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<NewLegalRequest>,
) -> ApiResult<(StatusCode, Json<LegalRequest>)> {
    caller.require_instance_admin()?;
    if let Some(why) = req.problem() {
        return Err(ApiError::invalid(why));
    }
    let org = match req.org {
        Some(id) => Some(
            state
                .store
                .org_by_id(id)
                .await
                .map_err(|_| ApiError::invalid(format!("org: no organisation {id}")))?,
        ),
        None => None,
    };
    // Who recorded it is part of the record (an actor may be a token, named by its id only).
    let mut details = serde_json::to_value(&req).map_err(ApiError::internal)?;
    details["recorded_by"] = serde_json::json!(caller.user.login);
    let target = org.as_ref().map(|o| format!("org:{}", o.id));
    let mut tx = state.store.begin().await?;
    let entry = tx
        .append_audit(caller.audit(SYSTEM_SCOPE, ACTION, target.clone(), details.clone()))
        .await?;
    let recorded = listed(&entry)?;
    if let Some(o) = &org {
        tx.append_audit(caller.audit(o.id.to_string(), ACTION, target, details))
            .await?;
        let n = Notification {
            event: NotifyEvent::LegalRequest,
            org_id: o.id,
            org: o.name.clone(),
            at: rfc3339(now_ms()),
            title: format!("A legal request for {}'s data was recorded", o.name),
            message: format!(
                "{} asked{} on {} for: {}. Disclosed: {}. Recorded by {} in the audit log.",
                req.authority,
                req.reference
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                req.received_on,
                req.requested,
                req.disclosed,
                caller.user.login
            ),
            printer: None,
            job: None,
            spool: None,
            maintenance: None,
            legal: Some(recorded.clone()),
            link: crate::notify::link(&state),
        };
        crate::notify::enqueue(&mut tx, &n).await?;
    }
    tx.commit().await?;
    // The instance's entry, and the organisation's.
    let entries = 1 + u64::from(org.is_some());
    state.metrics.audit_entries.fetch_add(entries, Relaxed);
    state.notifier.wake();
    Ok((StatusCode::CREATED, Json(recorded)))
}

/// Every legal request recorded on this instance (instance admins), oldest first.
#[utoipa::path(get, path = "/api/v1/system/legal-requests", tag = "audit",
    responses((status = 200, body = Vec<LegalRequest>), (status = 403, body = ErrorBody)))]
pub async fn list_system(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<LegalRequest>>> {
    caller.require_instance_admin()?;
    list(&state, SYSTEM_SCOPE).await
}

/// The legal requests recorded for the organisation's data (admins), oldest first: the
/// `legal.request` entries of its audit chain, which `.../audit/verify` checks.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/legal-requests", tag = "audit", params(("org" = hearth_proto::ids::OrgId, Path)),
    responses((status = 200, body = Vec<LegalRequest>), (status = 403, body = ErrorBody)))]
pub async fn list_org(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
) -> ApiResult<Json<Vec<LegalRequest>>> {
    list(&state, &access.org.id.to_string()).await
}

async fn list(state: &AppState, scope: &str) -> ApiResult<Json<Vec<LegalRequest>>> {
    let entries = state.store.audit_by_action(scope, ACTION).await?;
    Ok(Json(entries.iter().map(listed).collect::<ApiResult<_>>()?))
}

/// A `legal.request` entry as listed: the request and who recorded it, from its details.
fn listed(e: &AuditEntry) -> ApiResult<LegalRequest> {
    let mut details = e.details.clone();
    let by = details
        .as_object_mut()
        .and_then(|d| d.remove("recorded_by"))
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| e.actor.clone());
    Ok(LegalRequest {
        scope: e.scope.clone(),
        seq: e.seq,
        recorded_at: rfc3339(e.ts_ms),
        recorded_by: by,
        request: serde_json::from_value(details).map_err(ApiError::internal)?,
    })
}
