//! Reading and verifying the audit log. Organisation admins see their organisation's chain; instance
//! admins see the instance-wide (`system`) chain. Clients can recompute every hash themselves
//! (`hearth_proto::audit::ChainVerifier`); the verify endpoints do the same on the server.

use crate::auth::{Admin, Caller, OrgAccess};
use crate::error::{ApiResult, Json, Query};
use crate::state::AppState;
use axum::extract::State;
use hearth_proto::api::{AuditForwarding, AuditPage, AuditVerification, ErrorBody};
use hearth_proto::audit::SYSTEM_SCOPE;
use hearth_proto::time_fmt::rfc3339;
use serde::Deserialize;

/// Paging: entries after `after` (a `seq`), at most `limit` (1-1000, default 100).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

async fn page(state: &AppState, scope: &str, q: PageQuery) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let entries = state
        .store
        .audit_page(scope, q.after.unwrap_or(0), limit)
        .await?;
    let next_after = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let head = state.store.audit_head(scope).await?;
    Ok(Json(AuditPage {
        entries,
        next_after,
        head,
    }))
}

async fn verify(state: &AppState, scope: &str) -> ApiResult<Json<AuditVerification>> {
    let check = state.store.verify_audit(scope).await?;
    Ok(Json(match check.result {
        Ok(head) => AuditVerification {
            ok: true,
            entries_checked: check.entries_checked,
            message: format!(
                "{} entries verified up to the recorded head",
                check.entries_checked
            ),
            verified_head: Some(head),
            first_break: None,
        },
        Err(b) => {
            tracing::error!(scope, problem = %b, "audit chain verification failed");
            AuditVerification {
                ok: false,
                entries_checked: check.entries_checked,
                message: b.to_string(),
                verified_head: None,
                first_break: Some(b),
            }
        }
    }))
}

/// A page of an organisation's audit log (admins).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit", tag = "audit", params(("org" = hearth_proto::ids::OrgId, Path), PageQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
pub async fn org_audit(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<AuditPage>> {
    page(&state, &access.org.id.to_string(), q).await
}

/// Recompute an organisation's audit chain and name the first entry altered, removed or reordered.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit/verify", tag = "audit", params(("org" = hearth_proto::ids::OrgId, Path)),
    responses((status = 200, body = AuditVerification), (status = 403, body = ErrorBody)))]
pub async fn org_audit_verify(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
) -> ApiResult<Json<AuditVerification>> {
    verify(&state, &access.org.id.to_string()).await
}

/// A page of the instance-wide audit log: logins, accounts, tokens (instance admins).
#[utoipa::path(get, path = "/api/v1/system/audit", tag = "audit", params(PageQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)))]
pub async fn system_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<AuditPage>> {
    caller.require_instance_admin()?;
    page(&state, SYSTEM_SCOPE, q).await
}

/// Where the audit log is forwarded (`[audit] syslog`), how many entries wait, and how the last
/// tries went as the answering instance saw them (instance admins).
#[utoipa::path(get, path = "/api/v1/system/audit/forwarding", tag = "audit",
    responses((status = 200, body = AuditForwarding), (status = 403, body = ErrorBody)))]
pub async fn system_audit_forwarding(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AuditForwarding>> {
    caller.require_instance_admin()?;
    let seen = state.syslog.seen();
    let syslog = state
        .settings
        .audit
        .syslog
        .clone()
        .filter(|s| !s.trim().is_empty());
    Ok(Json(AuditForwarding {
        waiting: if syslog.is_some() {
            state.store.audit_forward_backlog().await?
        } else {
            0
        },
        syslog,
        last_sent_at: seen.last_sent_at.map(rfc3339),
        error: seen.error,
        failing_since: seen.failing_since.map(rfc3339),
    }))
}

/// Recompute the instance-wide audit chain (instance admins).
#[utoipa::path(get, path = "/api/v1/system/audit/verify", tag = "audit",
    responses((status = 200, body = AuditVerification), (status = 403, body = ErrorBody)))]
pub async fn system_audit_verify(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AuditVerification>> {
    caller.require_instance_admin()?;
    verify(&state, SYSTEM_SCOPE).await
}
