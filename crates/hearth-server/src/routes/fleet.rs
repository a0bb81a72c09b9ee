//! Agents (enrollment, approval, the WebSocket they dial out on), printers, jobs and their controls, the
//! live event stream, the organisation's chain of signed links and users' wrapped key bundles.

use crate::auth::{Admin, Caller, Operator, OrgAccess, Viewer, random_token, token_hash};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::hub::{self, agent_offline, job_view, printer_view};
use crate::routes::accounts::Source;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use hearth_proto::agent::{self, AgentJob, AgentMsg, JobAction, JobState, ServerMsg};
use hearth_proto::api::*;
use hearth_proto::ids::{AgentId, BlobHash, JobId, OrgId, PrinterId, SpoolId};
use hearth_proto::time_fmt::{now_ms, rfc3339};
use hearth_store::audit::NewAuditEntry;
use hearth_store::fleet::{AgentRow, JobRow, PrinterRow};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const ENROLL_TOKEN_PREFIX: &str = "hae_";
const ENROLL_TOKEN_TTL_MS: i64 = 24 * 3_600_000;
/// How long an agent has to answer the challenge.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Ping an agent this often; drop it after three silent intervals.
const PING_EVERY: Duration = Duration::from_secs(15);

fn agent_view(state: &AppState, a: &AgentRow) -> Agent {
    Agent {
        id: a.id,
        name: a.name.clone(),
        status: a.status,
        signing_key: a.signing_key.clone(),
        age_recipient: a.age_recipient.clone(),
        created_at: rfc3339(a.created_at),
        last_seen_at: a.last_seen_at.map(rfc3339),
        connected: state.hub.is_connected(a.id),
    }
}

/// A one-time token for enrolling an agent into this organisation (valid 24 hours).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/agents/enrollment-tokens", tag = "agents", params(("org" = OrgId, Path)),
    responses((status = 201, body = EnrollmentToken), (status = 403, body = ErrorBody)))]
pub async fn create_enrollment_token(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
) -> ApiResult<(StatusCode, Json<EnrollmentToken>)> {
    let token = format!("{ENROLL_TOKEN_PREFIX}{}", random_token());
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    tx.insert_enrollment_token(
        &token_hash(&token),
        access.org.id,
        access.caller.user.id,
        now,
        now + ENROLL_TOKEN_TTL_MS,
    )
    .await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "agent.enrollment_token",
        None,
        json!({}),
    ))
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentToken {
            token,
            expires_at: rfc3339(now + ENROLL_TOKEN_TTL_MS),
        }),
    ))
}

/// An agent enrolls with a one-time token and its public keys; it stays `pending` until an admin approves
/// it after comparing fingerprints.
#[utoipa::path(post, path = "/api/v1/agents/enroll", tag = "agents", request_body = EnrollRequest,
    responses((status = 201, body = EnrollResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn enroll(
    State(state): State<AppState>,
    Source(source): Source,
    Json(req): Json<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    let key_ok = hub::agent_key(&req.signing_key)
        .is_some_and(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).is_ok());
    if !key_ok {
        return Err(ApiError::invalid(
            "signing_key must be a base64 Ed25519 public key (32 bytes)",
        ));
    }
    let recipient_ok = req.age_recipient.starts_with("age1")
        && req.age_recipient.len() < 200
        && req.age_recipient.bytes().all(|b| b.is_ascii_alphanumeric());
    if !recipient_ok {
        return Err(ApiError::invalid(
            "age_recipient must be an age X25519 recipient (age1...)",
        ));
    }
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("an agent name must be 1-100 characters"));
    }
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    let org = tx
        .consume_enrollment_token(&token_hash(&req.token), now)
        .await?
        .ok_or_else(|| ApiError::forbidden("the enrollment token is wrong, used or expired"))?;
    let row = AgentRow {
        id: AgentId::new(),
        org_id: org,
        name: name.to_owned(),
        signing_key: req.signing_key,
        age_recipient: req.age_recipient,
        status: AgentStatus::Pending,
        created_at: now,
        last_seen_at: None,
    };
    tx.insert_agent(&row).await?;
    tx.append_audit(NewAuditEntry {
        scope: org.to_string(),
        ts_ms: now,
        actor: format!("agent:{}", row.id),
        action: "agent.enroll".into(),
        target: Some(format!("agent:{}", row.id)),
        source,
        details: json!({ "name": row.name, "signing_key": row.signing_key, "age_recipient": row.age_recipient }),
    })
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            agent_id: row.id,
            org_id: org,
        }),
    ))
}

/// The organisation's agents, with their public keys (compare fingerprints before approving).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/agents", tag = "agents", params(("org" = OrgId, Path)), responses((status = 200, body = Vec<Agent>)))]
pub async fn list_agents(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<Vec<Agent>>> {
    let agents = state.store.agents(access.org.id).await?;
    Ok(Json(agents.iter().map(|a| agent_view(&state, a)).collect()))
}

async fn agent_in(state: &AppState, org: OrgId, id: AgentId) -> ApiResult<AgentRow> {
    let a = state.store.agent(id).await?;
    if a.org_id != org {
        return Err(ApiError::not_found(format!("agent {id}")));
    }
    Ok(a)
}

/// Approve an enrolled agent with the enrollment link the admin's device signed; the link is appended to
/// the organisation's chain.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/agents/{id}/approve", tag = "agents", params(("org" = OrgId, Path), ("id" = AgentId, Path)),
    request_body = ApproveAgentRequest, responses((status = 200, body = Agent), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve_agent(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, id)): Path<(OrgId, AgentId)>,
    Json(req): Json<ApproveAgentRequest>,
) -> ApiResult<Json<Agent>> {
    let a = agent_in(&state, access.org.id, id).await?;
    if a.status != AgentStatus::Pending {
        return Err(ApiError::conflict(
            format!("the agent is {:?}, not pending", a.status).to_lowercase(),
        ));
    }
    let org = access.org.id;
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    // The position is read inside the transaction; a concurrent append makes one of the two fail (409).
    let next = tx.next_org_link_seq(org).await?;
    if next == 0 {
        return Err(ApiError::conflict(
            "the organisation has no chain yet: create its genesis first (hearth org init)",
        ));
    }
    let seq = req.seq.unwrap_or(next);
    tx.append_org_link(org, seq, &req.link, access.caller.user.id, now)
        .await?;
    tx.set_agent_status(id, AgentStatus::Approved).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "agent.approve",
        Some(format!("agent:{id}")),
        json!({ "chain_seq": seq }),
    ))
    .await?;
    tx.commit().await?;
    Ok(Json(agent_view(&state, &state.store.agent(id).await?)))
}

/// Revoke an agent: it is disconnected and can no longer connect.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/agents/{id}/revoke", tag = "agents", params(("org" = OrgId, Path), ("id" = AgentId, Path)),
    responses((status = 200, body = Agent), (status = 404, body = ErrorBody)))]
pub async fn revoke_agent(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, id)): Path<(OrgId, AgentId)>,
) -> ApiResult<Json<Agent>> {
    agent_in(&state, access.org.id, id).await?;
    let mut tx = state.store.begin().await?;
    tx.set_agent_status(id, AgentStatus::Revoked).await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "agent.revoke",
        Some(format!("agent:{id}")),
        json!({}),
    ))
    .await?;
    tx.commit().await?;
    if let Some(tx) = state.hub.sender(id) {
        let _ = tx
            .send(ServerMsg::Error {
                code: "revoked".into(),
                message: "this agent was revoked".into(),
                fatal: true,
            })
            .await;
    }
    Ok(Json(agent_view(&state, &state.store.agent(id).await?)))
}

/// Printers of the organisation with their live state.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/printers", tag = "printers", params(("org" = OrgId, Path)), responses((status = 200, body = Vec<Printer>)))]
pub async fn list_printers(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<Vec<Printer>>> {
    let printers = state.store.printers(access.org.id).await?;
    Ok(Json(
        printers.iter().map(|p| printer_view(&state, p)).collect(),
    ))
}

/// A revealed text fact: absent, or one the server accepts ([`fact_text_ok`]).
fn fact_text_ok_or_absent(v: Option<&str>) -> bool {
    v.is_none_or(fact_text_ok)
}

/// Scheduling facts are compared with every printer on each dispatch: bounded, sane values only.
fn check_facts(f: &SchedulingFacts) -> ApiResult<()> {
    let texts = [&f.printer_model, &f.material, &f.color];
    if !texts.iter().all(|t| fact_text_ok_or_absent(t.as_deref())) {
        return Err(ApiError::invalid(format!(
            "printer model, material and colour are 1 to {MAX_FACT_CHARS} characters when given"
        )));
    }
    let positive = |v: Option<f32>| v.is_none_or(|n| n.is_finite() && n >= 0.0);
    if !positive(f.nozzle_mm) || !positive(f.filament_grams) {
        return Err(ApiError::invalid(
            "nozzle_mm and filament_grams are finite and not negative when given",
        ));
    }
    if f.filaments.len() > MAX_FILAMENT_FACTS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_FILAMENT_FACTS} filaments are listed"
        )));
    }
    for x in &f.filaments {
        if !fact_text_ok_or_absent(x.material.as_deref())
            || !fact_text_ok_or_absent(x.color.as_deref())
            || !positive(Some(x.grams))
        {
            return Err(ApiError::invalid(format!(
                "each filament's material and colour are 1 to {MAX_FACT_CHARS} characters when \
                 given, its grams finite and not negative"
            )));
        }
    }
    Ok(())
}

/// Holds a printer (no new job goes to it: maintenance, a nozzle change, a print by hand) or
/// releases it (operators; audited as `printer.hold` or `printer.release`). What it prints goes on.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/printers/{id}/hold", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path)), request_body = HoldRequest,
    responses((status = 200, body = Printer), (status = 404, body = ErrorBody)))]
pub async fn set_hold(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
    Json(req): Json<HoldRequest>,
) -> ApiResult<Json<Printer>> {
    let org = access.org.id;
    let p = printer_in(&state, org, id).await?;
    let mut tx = state.store.begin().await?;
    if tx.set_held(id, req.held).await? {
        tx.append_audit(access.caller.audit(
            org.to_string(),
            if req.held {
                "printer.hold"
            } else {
                "printer.release"
            },
            Some(format!("printer:{id}")),
            json!({ "name": p.info.name }),
        ))
        .await?;
    }
    tx.commit().await?;
    let view = hub::publish_printer(&state, org, id).await?;
    if !req.held {
        hub::dispatch(&state, org).await?;
    }
    Ok(Json(view))
}

/// Preheat an idle printer, or cool it down (operators; audited as `printer.heat`): its agent
/// sets the heaters' targets, which show in its telemetry. The agent checks its own limits and
/// that the printer is idle again, and logs what it refuses.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/printers/{id}/heat", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path)), request_body = HeatRequest,
    responses((status = 202, description = "sent to the printer's agent", body = Accepted), (status = 404, body = ErrorBody),
        (status = 409, description = "not heatable from here, not idle, or its agent is away", body = ErrorBody),
        (status = 422, description = "no target, or one above the printer's limits", body = ErrorBody)))]
pub async fn heat(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
    Json(req): Json<HeatRequest>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let org = access.org.id;
    let p = printer_in(&state, org, id).await?;
    let name = &p.info.name;
    let Some(limits) = p.info.heat else {
        return Err(ApiError::conflict(format!(
            "printer {name} cannot be heated from here: its driver cannot set temperatures, or \
             its agent's configuration has [printer.heat] remote = false"
        )));
    };
    if req.nozzle_c.is_none() && req.bed_c.is_none() {
        return Err(ApiError::invalid(
            "give nozzle_c, bed_c or both (0 switches a heater off)",
        ));
    }
    if !limits.allow(req.nozzle_c, req.bed_c) {
        return Err(ApiError::invalid(format!(
            "printer {name} takes 0 to {} °C for the nozzle and 0 to {} °C for the bed (its \
             agent's limits)",
            limits.max_nozzle_c, limits.max_bed_c
        )));
    }
    let (telemetry, _) = state.hub.telemetry(id);
    if telemetry.state != hearth_proto::agent::PrinterState::Idle {
        return Err(ApiError::conflict(format!(
            "printer {name} is {}: heaters are set only while it is idle",
            telemetry.state.as_str()
        )));
    }
    let detail = json!({ "name": name, "nozzle_c": req.nozzle_c, "bed_c": req.bed_c });
    let msg = |request| ServerMsg::Heat {
        printer: name.clone(),
        nozzle_c: req.nozzle_c,
        bed_c: req.bed_c,
        request: Some(request),
    };
    relay_to_agent(&state, &access, &p, "printer.heat", detail, msg).await
}

/// Tunes a printing printer (operators; audited as `printer.tune`): its speed (M220), flow
/// (M221) and part-cooling fan (M106), which show in its telemetry where the printer reports
/// them. The agent checks its own limits and that the printer prints again, and answers.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/printers/{id}/tune", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path)), request_body = agent::Tune,
    responses((status = 202, description = "sent to the printer's agent", body = Accepted), (status = 404, body = ErrorBody),
        (status = 409, description = "not tunable from here, not printing, or its agent is away", body = ErrorBody),
        (status = 422, description = "nothing to tune, or a value outside the printer's limits", body = ErrorBody)))]
pub async fn tune(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
    Json(req): Json<agent::Tune>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let p = printer_in(&state, access.org.id, id).await?;
    let name = &p.info.name;
    let Some(limits) = p.info.tune else {
        return Err(ApiError::conflict(format!(
            "printer {name} cannot be tuned from here: its driver cannot (Bambu Lab printers \
             change speed by their speed-mode actions; PrusaLink takes no G-code), or its agent's \
             configuration has [printer.tune] remote = false"
        )));
    };
    if req.is_empty() {
        return Err(ApiError::invalid(
            "give speed_percent, flow_percent, fan_percent or several",
        ));
    }
    limits
        .check(&req)
        .map_err(|why| ApiError::invalid(format!("printer {name}: {why} (its agent's limits)")))?;
    let (telemetry, _) = state.hub.telemetry(id);
    if !telemetry.state.job_running() {
        return Err(ApiError::conflict(format!(
            "printer {name} is {}: a print is tuned only while it prints",
            telemetry.state.as_str()
        )));
    }
    let detail = json!({ "name": name, "tune": req });
    let msg = |request| ServerMsg::Tune {
        printer: name.clone(),
        tune: req,
        request: Some(request),
    };
    relay_to_agent(&state, &access, &p, "printer.tune", detail, msg).await
}

/// Runs one of a printer's actions (operators; audited as `printer.action`): what its agent's
/// configuration defines under that id (homing, fans, Klipper macros) or its driver offers (a
/// chamber light). Only while idle, unless the action is one for printing too; the agent checks
/// that again and runs nothing the server names that its configuration does not define.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/printers/{id}/actions/{action}", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path), ("action" = String, Path)),
    responses((status = 202, description = "sent to the printer's agent", body = Accepted),
        (status = 404, description = "no such printer, or it has no such action", body = ErrorBody),
        (status = 409, description = "not idle (for an idle-only action), offline, or its agent is away", body = ErrorBody)))]
pub async fn run_action(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id, action)): Path<(OrgId, PrinterId, String)>,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let p = printer_in(&state, access.org.id, id).await?;
    let name = &p.info.name;
    let Some(a) = p.info.actions.iter().find(|a| a.id == action) else {
        let offered: Vec<&str> = p.info.actions.iter().map(|a| a.id.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "printer {name} has no action {action:?}; its agent offers {}",
                if offered.is_empty() {
                    "none".to_owned()
                } else {
                    offered.join(", ")
                }
            ),
        ));
    };
    if a.admins_only && access.role < hearth_proto::Role::Admin {
        return Err(ApiError::forbidden(format!(
            "{:?} on printer {name} is for the organisation's admins (its agent's configuration \
             says admins_only)",
            a.label
        )));
    }
    let (telemetry, _) = state.hub.telemetry(id);
    if !a.allowed_in(telemetry.state) {
        return Err(ApiError::conflict(format!(
            "printer {name} is {}: {:?} runs only while it is {}",
            telemetry.state.as_str(),
            a.label,
            match a.when {
                agent::ActionWhen::Idle => "idle",
                agent::ActionWhen::Always => "online",
                agent::ActionWhen::Printing => "printing or paused",
            }
        )));
    }
    let detail = json!({ "name": name, "action": a.id, "label": a.label });
    let msg = |request| ServerMsg::Action {
        printer: name.clone(),
        action: a.id.clone(),
        request: Some(request),
    };
    relay_to_agent(&state, &access, &p, "printer.action", detail, msg).await
}

/// Audits a member's request to a printer (`what`, with `detail` and the request's new id) and
/// sends `msg(id)` to its agent: `202 Accepted` with the id, as the agent acts on it later and
/// says how it went ([`AgentMsg::Outcome`], published as [`Event::Outcome`]).
async fn relay_to_agent(
    state: &AppState,
    access: &OrgAccess<Operator>,
    p: &PrinterRow,
    what: &str,
    mut detail: serde_json::Value,
    msg: impl FnOnce(String) -> ServerMsg,
) -> ApiResult<(StatusCode, Json<Accepted>)> {
    let request = format!("{:032x}", rand::random::<u128>());
    detail["request"] = json!(request);
    let tx = state.hub.sender(p.agent_id).ok_or_else(|| {
        ApiError::conflict(format!(
            "the agent of printer {} is not connected",
            p.info.name
        ))
    })?;
    let mut db = state.store.begin().await?;
    db.append_audit(access.caller.audit(
        access.org.id.to_string(),
        what,
        Some(format!("printer:{}", p.id)),
        detail,
    ))
    .await?;
    db.commit().await?;
    tx.send(msg(request.clone()))
        .await
        .map_err(|_| ApiError::conflict("the agent disconnected"))?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { request })))
}

/// Whether a printer waits for its bed to be cleared between jobs (admins; audited).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/printers/{id}/bed", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path)), request_body = BedSettings,
    responses((status = 200, body = Printer), (status = 404, body = ErrorBody)))]
pub async fn set_bed(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
    Json(req): Json<BedSettings>,
) -> ApiResult<Json<Printer>> {
    let org = access.org.id;
    let p = printer_in(&state, org, id).await?;
    let mut tx = state.store.begin().await?;
    tx.set_confirm_clear_bed(id, req.confirm_between_jobs)
        .await?;
    if !req.confirm_between_jobs {
        // Nobody will be asked any more: a part said to be on it no longer holds the queue.
        tx.bed_cleared(id).await?;
    }
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "printer.bed",
        Some(format!("printer:{id}")),
        json!({ "name": p.info.name, "confirm_between_jobs": req.confirm_between_jobs }),
    ))
    .await?;
    tx.commit().await?;
    let view = hub::publish_printer(&state, org, id).await?;
    hub::dispatch(&state, org).await?;
    Ok(Json(view))
}

/// A member says the printer's bed is clear (the part of its last job taken off): it takes its next
/// job (operators; audited).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/printers/{id}/bed/cleared", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path)),
    responses((status = 200, body = Printer), (status = 404, body = ErrorBody)))]
pub async fn bed_cleared(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
) -> ApiResult<Json<Printer>> {
    let org = access.org.id;
    let p = printer_in(&state, org, id).await?;
    let mut tx = state.store.begin().await?;
    let job = tx.bed_cleared(id).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "printer.bed_cleared",
        Some(format!("printer:{id}")),
        json!({ "name": p.info.name, "job": job }),
    ))
    .await?;
    tx.commit().await?;
    let view = hub::publish_printer(&state, org, id).await?;
    hub::dispatch(&state, org).await?;
    Ok(Json(view))
}

/// Set what a printer has loaded and fitted now (a spool or nozzle change at the printer), in
/// place of its agent's configuration; pool jobs waiting for that material or nozzle go out.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/printers/{id}/loaded", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path)), request_body = LoadedRequest,
    responses((status = 200, body = Printer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_loaded(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
    Json(req): Json<LoadedRequest>,
) -> ApiResult<Json<Printer>> {
    if !fact_text_ok_or_absent(req.material.as_deref())
        || !fact_text_ok_or_absent(req.color.as_deref())
    {
        return Err(ApiError::invalid(format!(
            "material and colour are 1 to {MAX_FACT_CHARS} characters when given"
        )));
    }
    if req
        .nozzle_mm
        .is_some_and(|n| !(n.is_finite() && n > 0.0 && n <= 5.0))
    {
        return Err(ApiError::invalid(
            "nozzle_mm is a diameter above 0 and at most 5 mm",
        ));
    }
    let spool = match req.spool {
        Some(spool) => {
            if req.material.is_some() || req.color.is_some() {
                return Err(ApiError::invalid(
                    "a spool brings its material and colour: give spool, or material and colour",
                ));
            }
            let s = crate::routes::inventory::spool_in(&state, access.org.id, spool).await?;
            if s.archived {
                return Err(ApiError::conflict(format!(
                    "spool {spool} is archived; restore it first"
                )));
            }
            Some(s)
        }
        None => None,
    };
    // What is stored as loaded is the spool's material and colour; the spool itself is the
    // inventory's (`spools.printer_id`), so it cannot drift from it.
    let loaded = LoadedRequest {
        spool: None,
        material: spool
            .as_ref()
            .map(|s| s.material.material.clone())
            .or(req.material),
        color: spool
            .as_ref()
            .map_or(req.color, |s| s.material.color.clone()),
        nozzle_mm: req.nozzle_mm,
    };
    loaded_changed(&state, &access, id, Some(&loaded), spool.map(|s| s.id)).await
}

/// Go back to the material, colour and nozzle of the printer's agent configuration.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/printers/{id}/loaded", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path)),
    responses((status = 200, body = Printer), (status = 404, body = ErrorBody)))]
pub async fn reset_loaded(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
) -> ApiResult<Json<Printer>> {
    loaded_changed(&state, &access, id, None, None).await
}

/// Stores what `id` has loaded now; with `spool`, that spool of the inventory is put on it, and
/// without, any spool it had is taken off (the member described it by hand, or went back to the
/// configuration).
async fn loaded_changed(
    state: &AppState,
    access: &OrgAccess<Operator>,
    id: PrinterId,
    loaded: Option<&LoadedRequest>,
    spool: Option<SpoolId>,
) -> ApiResult<Json<Printer>> {
    let org = access.org.id;
    printer_in(state, org, id).await?;
    let mut tx = state.store.begin().await?;
    tx.set_printer_loaded(id, loaded).await?;
    match spool {
        Some(s) => tx.load_spool(s, id).await?,
        None => tx.unload_printer(id).await?,
    }
    tx.append_audit(access.caller.audit(
        org.to_string(),
        if loaded.is_some() {
            "printer.load"
        } else {
            "printer.load_reset"
        },
        Some(format!("printer:{id}")),
        json!({ "loaded": loaded, "spool": spool }),
    ))
    .await?;
    tx.commit().await?;
    let view = hub::publish_printer(state, org, id).await?;
    hub::dispatch(state, org).await?;
    Ok(Json(view))
}

/// Paging for printer history.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// How far back, in hours (1-2160, default 24).
    pub hours: Option<i64>,
}

/// A printer's history: time spent in each state, per hour.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/printers/{id}/history", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path), HistoryQuery),
    responses((status = 200, body = Vec<HistoryBucket>), (status = 404, body = ErrorBody)))]
pub async fn printer_history(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
    crate::error::Query(q): crate::error::Query<HistoryQuery>,
) -> ApiResult<Json<Vec<HistoryBucket>>> {
    printer_in(&state, access.org.id, id).await?;
    state.hub.flush_rollups(&state.store).await?;
    let from = now_ms() - q.hours.unwrap_or(24).clamp(1, 2160) * 3_600_000;
    let rows = state
        .store
        .printer_history(id, from - from.rem_euclid(3_600_000))
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(bucket, state, ms)| HistoryBucket {
                hour: rfc3339(bucket),
                state,
                seconds: ms as f64 / 1000.0,
            })
            .collect(),
    ))
}

/// How far back a printer's temperatures go.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TemperaturesQuery {
    /// Minutes (1-30, default 30).
    pub minutes: Option<i64>,
}

/// A printer's recent temperatures, for a chart: a sample every 5 seconds at most, the last 30
/// minutes at most, oldest first. Kept in memory only, as the telemetry is: a restarted server
/// starts again from its agents' next reports.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/printers/{id}/temperatures", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path), TemperaturesQuery),
    responses((status = 200, body = Vec<TemperatureSample>), (status = 404, body = ErrorBody)))]
pub async fn printer_temperatures(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id)): Path<(OrgId, PrinterId)>,
    crate::error::Query(q): crate::error::Query<TemperaturesQuery>,
) -> ApiResult<Json<Vec<TemperatureSample>>> {
    printer_in(&state, access.org.id, id).await?;
    Ok(Json(temperature_samples(
        &state,
        id,
        temperatures_since(&q),
    )))
}

/// Every printer's recent temperatures at once (what [`printer_temperatures`] gives one by one),
/// for a dashboard charting a whole fleet with one request.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/temperatures", tag = "printers",
    params(("org" = OrgId, Path), TemperaturesQuery),
    responses((status = 200, body = Vec<PrinterTemperatures>)))]
pub async fn fleet_temperatures(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    crate::error::Query(q): crate::error::Query<TemperaturesQuery>,
) -> ApiResult<Json<Vec<PrinterTemperatures>>> {
    let since = temperatures_since(&q);
    let printers = state.store.printers(access.org.id).await?;
    Ok(Json(
        printers
            .iter()
            .map(|p| PrinterTemperatures {
                printer_id: p.id,
                samples: temperature_samples(&state, p.id, since),
            })
            .collect(),
    ))
}

/// When the window `q` asks for begins (Unix milliseconds).
fn temperatures_since(q: &TemperaturesQuery) -> i64 {
    now_ms() - q.minutes.unwrap_or(30).clamp(1, 30) * 60_000
}

fn temperature_samples(state: &AppState, printer: PrinterId, since: i64) -> Vec<TemperatureSample> {
    state
        .hub
        .temperatures(printer, since)
        .into_iter()
        .map(|(at, heaters)| TemperatureSample {
            at: rfc3339(at),
            heaters,
        })
        .collect()
}

/// Queue a signed, sealed job for a printer or for any printer of a pool.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/jobs", tag = "jobs", params(("org" = OrgId, Path)), request_body = SubmitJobRequest,
    responses((status = 201, body = Job), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn submit_job(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Json(req): Json<SubmitJobRequest>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let org = access.org.id;
    check_facts(&req.facts)?;
    match (&req.printer, &req.pool) {
        (Some(p), None) => {
            let printer = state
                .store
                .printer(*p)
                .await
                .map_err(|_| ApiError::invalid(format!("no printer {p}")))?;
            if printer.org_id != org {
                return Err(ApiError::invalid(format!("no printer {p}")));
            }
        }
        (None, Some(pool)) if !pool.trim().is_empty() => {
            // Only the agents a pool job is sealed to can open it: the signed manifest names them,
            // and the job goes to a printer of one of them.
            let Some((sealed_pool, sealed_to)) = hub::pool_job_target(&req.manifest) else {
                return Err(ApiError::invalid(
                    "a pool job's manifest must name its pool and the agents it is sealed to",
                ));
            };
            if sealed_pool != pool {
                return Err(ApiError::invalid(format!(
                    "the job is for pool {pool:?} but its manifest names pool {sealed_pool:?}"
                )));
            }
            let ours = state.store.agents(org).await?;
            if !ours
                .iter()
                .any(|a| hub::agent_key(&a.signing_key).is_some_and(|k| sealed_to.contains(&k)))
            {
                return Err(ApiError::invalid(
                    "the job is sealed to no agent of this organisation",
                ));
            }
        }
        _ => return Err(ApiError::invalid("give exactly one of printer and pool")),
    }
    state.store.blob(org, &req.blob_sha256).await.map_err(|_| {
        ApiError::invalid(format!(
            "upload the sealed job first: no blob {}",
            req.blob_sha256
        ))
    })?;
    if let Some(label) = &req.label {
        state
            .store
            .blob(org, &label.meta_sha256)
            .await
            .map_err(|_| {
                ApiError::invalid(format!(
                    "upload the sealed label first: no blob {}",
                    label.meta_sha256
                ))
            })?;
    }
    let now = now_ms();
    let row = JobRow {
        id: req.job_id,
        org_id: org,
        printer_id: req.printer,
        pool: req.pool.clone(),
        blob_sha256: req.blob_sha256.clone(),
        manifest: req.manifest,
        facts: req.facts,
        state: JobState::Queued,
        message: None,
        submitted_by: access.caller.user.id,
        created_at: now,
        updated_at: now,
        priority: req.priority,
        label: req.label,
        // Members below admin wait for an admin where the organisation asks for approval.
        approval: (access.org.require_approval && access.role < hearth_proto::Role::Admin)
            .then_some(hearth_store::fleet::ApprovalRow {
                state: ApprovalState::Pending,
                decided: None,
            }),
    };
    let mut tx = state.store.begin().await?;
    tx.insert_job(&row).await?;
    if row.awaits_approval() {
        crate::notify::job_awaiting_approval(&state, &mut tx, &row).await?;
    }
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "job.submit",
        Some(format!("job:{}", row.id)),
        json!({ "printer": row.printer_id, "pool": row.pool, "blob": row.blob_sha256, "facts": row.facts, "priority": row.priority,
                "label": row.label.as_ref().map(|l| &l.meta_sha256) }),
    ))
    .await?;
    tx.commit().await?;
    state.notifier.wake();
    hub::publish_job(&state, row.id).await?;
    hub::dispatch(&state, org).await?;
    Ok((
        StatusCode::CREATED,
        Json(job_view(&state.store.job(row.id).await?)),
    ))
}

/// Which jobs to list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// Submitted at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Submitted before this time (RFC 3339).
    pub until: Option<String>,
    /// At most this many, newest first (1-10000, default 500). A full page may have more after
    /// it: ask again with `before` set to its last job.
    pub limit: Option<i64>,
    /// The next page: the jobs listed after this one (a job of the organisation), in the same
    /// order; jobs submitted meanwhile do not shift it.
    pub before: Option<JobId>,
}

/// The organisation's jobs, newest first: the 500 newest, or those submitted in a period (for a
/// history or an export), a page at a time (`limit`, then `before` the last one listed).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/jobs", tag = "jobs", params(("org" = OrgId, Path), JobsQuery),
    responses((status = 200, body = Vec<Job>), (status = 422, body = ErrorBody)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    crate::error::Query(q): crate::error::Query<JobsQuery>,
) -> ApiResult<Json<Vec<Job>>> {
    let time = |name: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        v.as_deref()
            .map(|s| {
                hearth_proto::time_fmt::parse_rfc3339(s).ok_or_else(|| {
                    ApiError::invalid(format!("{name}: {s:?} is not an RFC 3339 time"))
                })
            })
            .transpose()
    };
    let since = time("since", &q.since)?.unwrap_or(i64::MIN);
    let until = time("until", &q.until)?.unwrap_or(i64::MAX);
    let limit = q.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit: 1 to 10000"));
    }
    let after = match q.before {
        Some(id) => {
            let j = job_in(&state, access.org.id, id)
                .await
                .map_err(|_| ApiError::invalid(format!("before: no job {id} here")))?;
            Some((j.created_at, j.id))
        }
        None => None,
    };
    Ok(Json(
        state
            .store
            .jobs_between(access.org.id, since, until, after, limit)
            .await?
            .iter()
            .map(job_view)
            .collect(),
    ))
}

pub(crate) async fn printer_in(
    state: &AppState,
    org: OrgId,
    id: PrinterId,
) -> ApiResult<PrinterRow> {
    let p = state.store.printer(id).await?;
    if p.org_id != org {
        return Err(ApiError::not_found(format!("printer {id}")));
    }
    Ok(p)
}

pub(crate) async fn job_in(state: &AppState, org: OrgId, id: JobId) -> ApiResult<JobRow> {
    let j = state.store.job(id).await?;
    if j.org_id != org {
        return Err(ApiError::not_found(format!("job {id}")));
    }
    Ok(j)
}

/// One job.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/jobs/{id}", tag = "jobs", params(("org" = OrgId, Path), ("id" = JobId, Path)),
    responses((status = 200, body = Job), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id)): Path<(OrgId, JobId)>,
) -> ApiResult<Json<Job>> {
    Ok(Json(job_view(&job_in(&state, access.org.id, id).await?)))
}

/// A job's signed manifest, untouched (members verify it before opening the job's payload).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/jobs/{id}/manifest", tag = "jobs", params(("org" = OrgId, Path), ("id" = JobId, Path)),
    responses((status = 200, body = SignedJob), (status = 404, body = ErrorBody)))]
pub async fn get_job_manifest(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id)): Path<(OrgId, JobId)>,
) -> ApiResult<Json<SignedJob>> {
    let job = job_in(&state, access.org.id, id).await?;
    Ok(Json(SignedJob {
        manifest: job.manifest,
    }))
}

/// Moves a queued job in the fleet queue: a new priority (higher goes first, then older), or
/// `top`, one above the highest queued. A job already sent to a printer keeps its place (409).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/jobs/{id}/priority", tag = "jobs",
    params(("org" = OrgId, Path), ("id" = JobId, Path)), request_body = JobPriority,
    responses((status = 200, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_priority(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, JobId)>,
    Json(req): Json<JobPriority>,
) -> ApiResult<Json<Job>> {
    let org = access.org.id;
    let job = job_in(&state, org, id).await?;
    let priority = match (req.priority, req.top) {
        (Some(p), false) => p,
        (None, true) => {
            let queued = state.store.queued_jobs(org).await?;
            match queued.first() {
                // Already first: it stays (repeated clicks do not climb forever).
                Some(first) if first.id == id => first.priority,
                Some(first) => first.priority.saturating_add(1),
                None => job.priority,
            }
        }
        _ => return Err(ApiError::invalid("give exactly one of priority and top")),
    };
    let mut tx = state.store.begin().await?;
    if !tx.set_job_priority(id, priority, now_ms()).await? {
        return Err(ApiError::conflict(format!(
            "job {id} is {}: only a queued job can move in the queue",
            hearth_store::fleet::job_state_str(job.state)
        )));
    }
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "job.priority",
        Some(format!("job:{id}")),
        json!({ "from": job.priority, "to": priority }),
    ))
    .await?;
    tx.commit().await?;
    hub::publish_job(&state, id).await?;
    Ok(Json(job_view(&state.store.job(id).await?)))
}

/// Approve a job waiting for an admin's approval (admins): it takes its place in the queue and
/// goes to a printer like any other.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/jobs/{id}/approve", tag = "jobs",
    params(("org" = OrgId, Path), ("id" = JobId, Path)),
    responses((status = 200, body = Job), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve_job(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, id)): Path<(OrgId, JobId)>,
) -> ApiResult<Json<Job>> {
    decide(&state, &access, id, ApprovalState::Approved, None).await
}

/// Reject a job waiting for an admin's approval (admins): it is cancelled, with the reason as its
/// message for the submitter.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/jobs/{id}/reject", tag = "jobs",
    params(("org" = OrgId, Path), ("id" = JobId, Path)), request_body = RejectJob,
    responses((status = 200, body = Job), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reject_job(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, id)): Path<(OrgId, JobId)>,
    Json(body): Json<RejectJob>,
) -> ApiResult<Json<Job>> {
    let reason = body
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if reason
        .as_deref()
        .is_some_and(|r| r.chars().count() > 500 || r.contains(char::is_control))
    {
        return Err(ApiError::invalid(
            "reason: at most 500 characters, on one line",
        ));
    }
    decide(&state, &access, id, ApprovalState::Rejected, reason).await
}

/// Approves or rejects (cancels) a job whose approval is pending, audited as `job.approve` or
/// `job.reject`.
async fn decide(
    state: &AppState,
    access: &OrgAccess<Admin>,
    id: JobId,
    decision: ApprovalState,
    reason: Option<String>,
) -> ApiResult<Json<Job>> {
    let org = access.org.id;
    let job = job_in(state, org, id).await?;
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    if !job.awaits_approval()
        || !tx
            .decide_approval(id, decision, access.caller.user.id, now)
            .await?
    {
        return Err(ApiError::conflict(match (&job.approval, job.state) {
            (None, _) => "the job needs no approval".to_owned(),
            // Pending when read: another admin's decision or a cancel came first.
            (Some(a), JobState::Queued) if a.state == ApprovalState::Pending => {
                "the job was decided or cancelled meanwhile".to_owned()
            }
            (Some(a), JobState::Queued) => format!("the job is {} already", a.state.as_str()),
            _ => format!(
                "the job is {} already",
                hearth_store::fleet::job_state_str(job.state)
            ),
        }));
    }
    if decision == ApprovalState::Rejected {
        let message = match &reason {
            Some(r) => format!("rejected by {}: {r}", access.caller.user.login),
            None => format!("rejected by {}", access.caller.user.login),
        };
        if tx
            .update_job(id, JobState::Cancelled, None, Some(&message), now)
            .await?
        {
            crate::notify::job_changed(state, &mut tx, &job, JobState::Cancelled, Some(&message))
                .await?;
        }
    } else {
        crate::notify::job_approved(state, &mut tx, &job, &access.caller.user.login).await?;
    }
    tx.append_audit(access.caller.audit(
        org.to_string(),
        match decision {
            ApprovalState::Rejected => "job.reject",
            _ => "job.approve",
        },
        Some(format!("job:{id}")),
        json!({ "reason": reason }),
    ))
    .await?;
    tx.commit().await?;
    state.notifier.wake();
    hub::publish_job(state, id).await?;
    if decision == ApprovalState::Approved {
        hub::dispatch(state, org).await?;
    }
    Ok(Json(job_view(&state.store.job(id).await?)))
}

/// Pause, resume or cancel a job. A queued job is cancelled at once; others need their agent connected.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/jobs/{id}/{action}", tag = "jobs",
    params(("org" = OrgId, Path), ("id" = JobId, Path), ("action" = JobAction, Path)),
    responses((status = 202, body = Job), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn control_job(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id, action)): Path<(OrgId, JobId, JobAction)>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let org = access.org.id;
    let job = job_in(&state, org, id).await?;
    if job.state.is_final() {
        return Err(ApiError::conflict(format!(
            "the job is already {}",
            hearth_store::fleet::job_state_str(job.state)
        )));
    }
    let verb = match action {
        JobAction::Pause => "job.pause",
        JobAction::Resume => "job.resume",
        JobAction::Cancel => "job.cancel",
    };
    let mut tx = state.store.begin().await?;
    if job.state == JobState::Queued {
        if action != JobAction::Cancel {
            return Err(ApiError::conflict(
                "the job has not started; it can only be cancelled",
            ));
        }
        let message = "cancelled before it started";
        if tx
            .update_job(id, JobState::Cancelled, None, Some(message), now_ms())
            .await?
        {
            crate::notify::job_changed(&state, &mut tx, &job, JobState::Cancelled, Some(message))
                .await?;
        }
    } else {
        let printer = job.printer_id.ok_or_else(agent_offline)?;
        let agent_id = state.store.printer(printer).await?.agent_id;
        let sender = state.hub.sender(agent_id).ok_or_else(agent_offline)?;
        sender
            .send(ServerMsg::Control { job_id: id, action })
            .await
            .map_err(|_| agent_offline())?;
    }
    tx.append_audit(access.caller.audit(
        org.to_string(),
        verb,
        Some(format!("job:{id}")),
        json!({}),
    ))
    .await?;
    tx.commit().await?;
    state.notifier.wake();
    hub::publish_job(&state, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(job_view(&state.store.job(id).await?)),
    ))
}

/// Live changes (printers, jobs, agents) as Server-Sent Events; no polling needed.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events", tag = "printers", params(("org" = OrgId, Path)),
    responses((status = 200, content_type = "text/event-stream", body = Event)))]
pub async fn events(State(state): State<AppState>, access: OrgAccess<Viewer>) -> impl IntoResponse {
    let org = access.org.id;
    let rx = state.hub.subscribe();
    let stream = futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok((o, ev)) if o == org => {
                    let data = serde_json::to_string(&ev).unwrap_or_default();
                    return Some((
                        Ok::<_, std::convert::Infallible>(SseEvent::default().data(data)),
                        rx,
                    ));
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let ev = SseEvent::default().event("lagged").data(n.to_string());
                    return Some((Ok(ev), rx));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    // Ends when the server shuts down, which would otherwise wait for it forever. Browsers'
    // EventSource reconnects by itself.
    let stopping = state.clone();
    let stream = stream.take_until(async move { stopping.stopping.begun().await });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Register an uploaded sealed file (and its sealed metadata) in the organisation's library.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/files", tag = "files", params(("org" = OrgId, Path)), request_body = CreateFileRequest,
    responses((status = 201, body = FileEntry), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_file(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Json(req): Json<CreateFileRequest>,
) -> ApiResult<(StatusCode, Json<FileEntry>)> {
    let org = access.org.id;
    check_facts(&req.facts)?;
    for h in std::iter::once(&req.blob_sha256).chain(req.meta_sha256.iter()) {
        state
            .store
            .blob(org, h)
            .await
            .map_err(|_| ApiError::invalid(format!("upload blob {h} first")))?;
    }
    let row = hearth_store::fleet::FileRow {
        id: req.id,
        org_id: org,
        blob_sha256: req.blob_sha256,
        meta_sha256: req.meta_sha256,
        manifest: req.manifest,
        facts: req.facts,
        uploaded_by: access.caller.user.id,
        created_at: now_ms(),
    };
    let mut tx = state.store.begin().await?;
    tx.insert_file(&row).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "file.create",
        Some(format!("file:{}", row.id)),
        json!({ "blob": row.blob_sha256, "meta": row.meta_sha256, "facts": row.facts }),
    ))
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(file_view(&row))))
}

/// Delete a file from the library: its entry, and its sealed bytes and metadata unless another
/// file or a job that has not ended uses them. Its uploader (an operator) or an admin.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/files/{id}", tag = "files", params(("org" = OrgId, Path), ("id" = hearth_proto::ids::FileId, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_file(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, hearth_proto::ids::FileId)>,
) -> ApiResult<StatusCode> {
    let org = access.org.id;
    let mut tx = state.store.begin().await?;
    // Deleted in the transaction, which is dropped (undone) when the caller may not.
    let row = tx.delete_file(org, id).await?;
    if access.role < hearth_proto::Role::Admin && row.uploaded_by != access.caller.user.id {
        return Err(ApiError::forbidden(
            "only its uploader or an admin may delete this file",
        ));
    }
    let mut released = Vec::new();
    for h in std::iter::once(&row.blob_sha256).chain(row.meta_sha256.iter()) {
        released.push((h, crate::routes::blobs::release_in(&mut tx, org, h).await?));
    }
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "file.delete",
        Some(format!("file:{id}")),
        json!({
            "blob": row.blob_sha256,
            "meta": row.meta_sha256,
            "released": released.iter().filter(|(_, r)| r.is_some()).count(),
        }),
    ))
    .await?;
    tx.commit().await?;
    state
        .metrics
        .audit_entries
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::routes::blobs::remove_bytes(&state, released).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn file_view(f: &hearth_store::fleet::FileRow) -> FileEntry {
    FileEntry {
        id: f.id,
        blob_sha256: f.blob_sha256.clone(),
        meta_sha256: f.meta_sha256.clone(),
        manifest: f.manifest.clone(),
        facts: f.facts.clone(),
        uploaded_by: f.uploaded_by,
        created_at: rfc3339(f.created_at),
    }
}

/// The organisation's file library, newest first: hashes, signed manifests and revealed facts only.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/files", tag = "files", params(("org" = OrgId, Path)), responses((status = 200, body = Vec<FileEntry>)))]
pub async fn list_files(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<Vec<FileEntry>>> {
    Ok(Json(
        state
            .store
            .files(access.org.id, 1000)
            .await?
            .iter()
            .map(file_view)
            .collect(),
    ))
}

/// The organisation's chain of signed links (genesis first). Clients verify it; the server cannot.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/chain", tag = "keys", params(("org" = OrgId, Path)), responses((status = 200, body = Vec<ChainLink>)))]
pub async fn get_chain(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<Vec<ChainLink>>> {
    let links = state.store.org_links(access.org.id).await?;
    Ok(Json(
        links
            .into_iter()
            .map(|(seq, link)| ChainLink { seq, link })
            .collect(),
    ))
}

/// Append a signed link at the chain's next position (409 if someone appended first).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/chain", tag = "keys", params(("org" = OrgId, Path)), request_body = ChainLink,
    responses((status = 201, body = ChainLink), (status = 409, body = ErrorBody)))]
pub async fn append_chain(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Json(link): Json<ChainLink>,
) -> ApiResult<(StatusCode, Json<ChainLink>)> {
    let org = access.org.id;
    let mut tx = state.store.begin().await?;
    tx.append_org_link(org, link.seq, &link.link, access.caller.user.id, now_ms())
        .await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "chain.append",
        None,
        json!({ "seq": link.seq }),
    ))
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// Change the login secret (a passphrase change on the client). Needs the current secret and a session;
/// other sessions of the user end. The re-wrapped key bundle can be stored in the same step.
#[utoipa::path(put, path = "/api/v1/me/secret", tag = "keys", request_body = ChangeSecretRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_secret(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<ChangeSecretRequest>,
) -> ApiResult<StatusCode> {
    caller.require_session("change the login secret")?;
    if !(12..=1024).contains(&req.new_secret.len()) {
        return Err(ApiError::invalid("the login secret must be 12-1024 bytes"));
    }
    if !state
        .hasher
        .verify(Some(caller.user.secret_hash.clone()), req.current_secret)
        .await
    {
        return Err(ApiError::unauthenticated("the current secret is wrong"));
    }
    let hash = state.hasher.hash(req.new_secret).await?;
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    tx.set_user_secret(caller.user.id, &hash).await?;
    let ended = tx
        .delete_sessions_of(caller.user.id, caller.session_hash())
        .await?;
    let revoked = if req.revoke_tokens {
        tx.revoke_tokens_of(caller.user.id, now).await?
    } else {
        0
    };
    if let Some(bundle) = &req.key_bundle {
        tx.put_key_bundle(caller.user.id, bundle, now).await?;
    }
    tx.append_audit(caller.audit(
        hearth_proto::audit::SYSTEM_SCOPE,
        "auth.secret_change",
        None,
        json!({ "other_sessions_ended": ended, "tokens_revoked": revoked, "key_bundle": req.key_bundle.is_some() }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publish the caller's device public keys, for admins to add to the chain after comparing fingerprints.
#[utoipa::path(put, path = "/api/v1/me/device", tag = "keys", request_body = DeviceKey, responses((status = 204)))]
pub async fn put_device(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<DeviceKey>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    tx.put_device_key(caller.user.id, &req.public, now_ms())
        .await?;
    tx.append_audit(caller.audit(
        hearth_proto::audit::SYSTEM_SCOPE,
        "keys.device",
        None,
        json!({ "public": req.public }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member's published device public keys.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/members/{user}/device", tag = "keys", params(("org" = OrgId, Path), ("user" = hearth_proto::ids::UserId, Path)),
    responses((status = 200, body = DeviceKey), (status = 404, body = ErrorBody)))]
pub async fn member_device(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, user)): Path<(OrgId, hearth_proto::ids::UserId)>,
) -> ApiResult<Json<DeviceKey>> {
    if state.store.role_in(access.org.id, user).await?.is_none() {
        return Err(ApiError::not_found(format!("member {user}")));
    }
    let public = state
        .store
        .device_key(user)
        .await?
        .ok_or_else(|| ApiError::not_found("device keys of that member"))?;
    Ok(Json(DeviceKey { public }))
}

/// The organisation's latest sealed epoch key.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/epochs/latest", tag = "keys", params(("org" = OrgId, Path)),
    responses((status = 200, body = SealedEpoch), (status = 404, body = ErrorBody)))]
pub async fn latest_epoch(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<SealedEpoch>> {
    let (epoch, sealed) = state
        .store
        .org_epoch(access.org.id, None)
        .await?
        .ok_or_else(|| ApiError::not_found("epoch key"))?;
    Ok(Json(SealedEpoch { epoch, sealed }))
}

/// One sealed epoch key (older files stay readable with older epochs).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/epochs/{epoch}", tag = "keys", params(("org" = OrgId, Path), ("epoch" = i64, Path)),
    responses((status = 200, body = SealedEpoch), (status = 404, body = ErrorBody)))]
pub async fn get_epoch(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, epoch)): Path<(OrgId, i64)>,
) -> ApiResult<Json<SealedEpoch>> {
    let (epoch, sealed) = state
        .store
        .org_epoch(access.org.id, Some(epoch))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("epoch {epoch}")))?;
    Ok(Json(SealedEpoch { epoch, sealed }))
}

/// Store a new sealed epoch key (admins; after the chain link that opens the epoch). Written once.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/epochs", tag = "keys", params(("org" = OrgId, Path)), request_body = SealedEpoch,
    responses((status = 201, body = SealedEpoch), (status = 409, body = ErrorBody)))]
pub async fn put_epoch(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Json(req): Json<SealedEpoch>,
) -> ApiResult<(StatusCode, Json<SealedEpoch>)> {
    let org = access.org.id;
    let mut tx = state.store.begin().await?;
    tx.insert_org_epoch(org, req.epoch, &req.sealed, access.caller.user.id, now_ms())
        .await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "epoch.create",
        None,
        json!({ "epoch": req.epoch }),
    ))
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(req)))
}

/// Give a member the key of an epoch that began before they joined (admins): the key sealed by an
/// admin device to that member's device, so they can open the organisation's older files. Replaces
/// an earlier grant of the same epoch to the same member.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/members/{user}/epochs/{epoch}", tag = "keys",
    params(("org" = OrgId, Path), ("user" = hearth_proto::ids::UserId, Path), ("epoch" = i64, Path)),
    request_body = SealedEpoch,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn grant_epoch(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, user, epoch)): Path<(OrgId, hearth_proto::ids::UserId, i64)>,
    Json(req): Json<SealedEpoch>,
) -> ApiResult<StatusCode> {
    let org = access.org.id;
    if req.epoch != epoch {
        return Err(ApiError::invalid(format!(
            "the body grants epoch {}, the path names epoch {epoch}",
            req.epoch
        )));
    }
    if state.store.org_epoch(org, Some(epoch)).await?.is_none() {
        return Err(ApiError::not_found(format!("epoch {epoch}")));
    }
    let mut tx = state.store.begin().await?;
    if tx.role_in(org, user).await?.is_none() {
        return Err(ApiError::not_found(format!("member {user}")));
    }
    tx.put_epoch_grant(
        org,
        epoch,
        user,
        &req.sealed,
        access.caller.user.id,
        now_ms(),
    )
    .await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "epoch.grant",
        Some(format!("user:{user}")),
        json!({ "epoch": epoch }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The key of an epoch from before the caller joined, as an admin granted it to the caller.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/epochs/{epoch}/grant", tag = "keys", params(("org" = OrgId, Path), ("epoch" = i64, Path)),
    responses((status = 200, body = SealedEpoch), (status = 404, body = ErrorBody)))]
pub async fn my_epoch_grant(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, epoch)): Path<(OrgId, i64)>,
) -> ApiResult<Json<SealedEpoch>> {
    let sealed = state
        .store
        .epoch_grant(access.org.id, epoch, access.caller.user.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("a grant of epoch {epoch} for you")))?;
    Ok(Json(SealedEpoch { epoch, sealed }))
}

/// The caller's wrapped device-key bundle (useless without the passphrase, which the server never sees).
#[utoipa::path(get, path = "/api/v1/me/key-bundle", tag = "keys", responses((status = 200, body = KeyBundle), (status = 404, body = ErrorBody)))]
pub async fn get_key_bundle(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<KeyBundle>> {
    let bundle = state
        .store
        .key_bundle(caller.user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("key bundle"))?;
    Ok(Json(KeyBundle { bundle }))
}

/// Store (or replace, after a passphrase change) the caller's wrapped key bundle. Needs a login session.
#[utoipa::path(put, path = "/api/v1/me/key-bundle", tag = "keys", request_body = KeyBundle, responses((status = 204), (status = 403, body = ErrorBody)))]
pub async fn put_key_bundle(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<KeyBundle>,
) -> ApiResult<StatusCode> {
    caller.require_session("store your wrapped device keys")?;
    let mut tx = state.store.begin().await?;
    tx.put_key_bundle(caller.user.id, &req.bundle, now_ms())
        .await?;
    tx.append_audit(caller.audit(
        hearth_proto::audit::SYSTEM_SCOPE,
        "keys.bundle",
        None,
        json!({}),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's chain for an agent (bearer token from `Welcome`), so it can verify who signed a
/// job against the genesis it pinned at enrollment.
#[utoipa::path(get, path = "/api/v1/agent/chain", tag = "agents",
    responses((status = 200, body = Vec<ChainLink>), (status = 401, body = ErrorBody)))]
pub async fn agent_chain(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Vec<ChainLink>>> {
    let (_, org) = agent_from_bearer(&state, &headers)?;
    let links = state.store.org_links(org).await?;
    Ok(Json(
        links
            .into_iter()
            .map(|(seq, link)| ChainLink { seq, link })
            .collect(),
    ))
}

pub(crate) fn agent_from_bearer(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> ApiResult<(AgentId, OrgId)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthenticated("agents send the token from Welcome as a Bearer token")
        })?;
    state
        .hub
        .agent_for_http_token(&token_hash(bearer))
        .ok_or_else(|| ApiError::unauthenticated("unknown agent token; reconnect to get a new one"))
}

/// Agents download sealed job payloads here with the bearer token from `Welcome`. Supports `Range`.
#[utoipa::path(get, path = "/api/v1/agent/blobs/{sha256}", tag = "agents", params(("sha256" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn agent_blob(
    State(state): State<AppState>,
    Path(sha256): Path<BlobHash>,
    req: Request,
) -> ApiResult<Response> {
    let (agent_id, org) = agent_from_bearer(&state, req.headers())?;
    crate::routes::blobs::serve_blob(&state, org, &sha256, req, format!("agent:{agent_id}"), None)
        .await
}

/// The WebSocket edge agents dial out to (protocol: `hearth_proto::agent`).
#[utoipa::path(get, path = "/api/v1/agent/connect", tag = "agents", responses((status = 101, description = "WebSocket upgrade")))]
pub async fn agent_connect(
    State(state): State<AppState>,
    Source(source): Source,
    ws: WebSocketUpgrade,
) -> Response {
    ws.read_buffer_size(4096)
        .on_upgrade(move |mut socket| async move {
            let Some(_counted) = state.agent_session() else {
                let _ = socket.send(going_away()).await;
                return;
            };
            if let Err(e) = agent_session(state, socket, source).await {
                tracing::info!(error = %e.message, code = e.code, "agent session ended");
            }
        })
}

/// Tells an agent the server is shutting down (WebSocket close code 1001), so it reconnects.
fn going_away() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::AWAY,
        reason: "server shutting down".into(),
    }))
}

/// The agent's side of the socket went away mid-send.
fn agent_left() -> ApiError {
    ApiError::bad_request("gone", "agent left")
}

fn text(msg: &ServerMsg) -> Message {
    Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
}

async fn agent_session(
    state: AppState,
    socket: WebSocket,
    source: Option<String>,
) -> ApiResult<()> {
    let (mut sink, mut stream) = socket.split();
    let nonce = random_token();
    sink.send(text(&ServerMsg::Challenge {
        nonce: nonce.clone(),
    }))
    .await
    .map_err(|_| agent_left())?;
    let first = tokio::time::timeout(AUTH_TIMEOUT, stream.next())
        .await
        .map_err(|_| ApiError::unauthenticated("no answer to the challenge"))?;
    let Some(Ok(Message::Text(first))) = first else {
        return Err(ApiError::unauthenticated("expected an auth message"));
    };
    let refuse = |code: &'static str, message: String| ServerMsg::Error {
        code: code.into(),
        message,
        fatal: true,
    };
    let (agent, signature, agent_version) = match serde_json::from_str::<AgentMsg>(&first) {
        Ok(AgentMsg::Auth {
            agent_id,
            signature,
            agent_version,
        }) => (agent_id, signature, agent_version),
        _ => {
            let _ = sink
                .send(text(&refuse(
                    "unauthenticated",
                    "the first message must be auth".into(),
                )))
                .await;
            return Err(ApiError::unauthenticated("first message was not auth"));
        }
    };
    let row = match state.store.agent(agent).await {
        Ok(r)
            if r.status == AgentStatus::Approved
                && verify_sig(&r.signing_key, &nonce, &signature) =>
        {
            r
        }
        Ok(r) if r.status != AgentStatus::Approved => {
            let msg = format!(
                "this agent is {:?}; an admin must approve it first",
                r.status
            )
            .to_lowercase();
            let _ = sink.send(text(&refuse("forbidden", msg))).await;
            return Err(ApiError::forbidden("agent not approved"));
        }
        _ => {
            let _ = sink
                .send(text(&refuse(
                    "unauthenticated",
                    "unknown agent or bad signature".into(),
                )))
                .await;
            tracing::warn!(agent = %agent, source = ?source, "agent authentication failed");
            return Err(ApiError::unauthenticated("bad agent signature"));
        }
    };
    let org = row.org_id;
    tracing::info!(agent = %agent, version = %agent_version, source = ?source, "agent connected");
    let http_token = random_token();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ServerMsg>(64);
    let conn_id = state
        .hub
        .connect(agent, org, tx.clone(), token_hash(&http_token));
    let mut t = state.store.begin().await?;
    t.touch_agent(agent, now_ms()).await?;
    t.commit().await?;
    let welcome = ServerMsg::Welcome {
        agent_id: agent,
        org_id: org,
        http_token,
    };
    let result = async {
        sink.send(text(&welcome)).await.map_err(|_| agent_left())?;
        // Jobs not finished are sent again after every reconnection; the agent recognises ids it knows.
        for (job, printer) in state.store.open_jobs_of_agent(agent).await? {
            let size = state.store.blob(org, &job.blob_sha256).await.map(|b| b.size).unwrap_or(0);
            let msg = ServerMsg::Job {
                job: AgentJob { job_id: job.id, printer, blob_sha256: job.blob_sha256, blob_size: size, manifest: job.manifest },
            };
            sink.send(text(&msg)).await.map_err(|_| agent_left())?;
        }
        let mut names: HashMap<String, PrinterId> =
            state.store.printers_of_agent(agent).await?.into_iter().map(|p| (p.info.name.clone(), p.id)).collect();
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut silent = 0u32;
        loop {
            tokio::select! {
                out = rx.recv() => {
                    let Some(out) = out else { break };
                    let fatal = matches!(out, ServerMsg::Error { fatal: true, .. });
                    sink.send(text(&out)).await.map_err(|_| agent_left())?;
                    if fatal { break; }
                }
                () = state.stopping.begun() => {
                    let _ = sink.send(going_away()).await;
                    break;
                }
                _ = ping.tick() => {
                    silent += 1;
                    if silent > 3 { break; }
                    sink.send(text(&ServerMsg::Ping)).await.map_err(|_| agent_left())?;
                }
                incoming = stream.next() => {
                    let Some(Ok(incoming)) = incoming else { break };
                    silent = 0;
                    let Message::Text(body) = incoming else { continue };
                    match serde_json::from_str::<AgentMsg>(&body) {
                        Ok(m) => handle_agent_msg(&state, agent, org, m, &mut names, &tx).await?,
                        Err(e) => {
                            let _ = tx.send(ServerMsg::Error { code: "invalid_input".into(), message: e.to_string(), fatal: false }).await;
                        }
                    }
                }
            }
        }
        Ok::<(), ApiError>(())
    }
    .await;
    if state.hub.disconnect(agent, conn_id) {
        let printers: Vec<PrinterId> = names_of(&state, agent).await;
        state.hub.clear_telemetry(&printers);
        crate::notify::printers_away(&state, org, &printers, Some("its agent disconnected"));
        for p in state
            .store
            .printers_of_agent(agent)
            .await
            .unwrap_or_default()
        {
            state.hub.publish(
                org,
                Event::Printer {
                    printer: printer_view(&state, &p),
                },
            );
        }
    }
    if let Ok(mut t) = state.store.begin().await {
        let _ = t.touch_agent(agent, now_ms()).await;
        let _ = t.commit().await;
    }
    result
}

async fn names_of(state: &AppState, agent: AgentId) -> Vec<PrinterId> {
    state
        .store
        .printers_of_agent(agent)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.id)
        .collect()
}

fn verify_sig(signing_key_b64: &str, nonce: &str, signature_b64: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(key) = hub::agent_key(signing_key_b64) else {
        return false;
    };
    let Some(sig) = b64
        .decode(signature_b64)
        .ok()
        .and_then(|s| <[u8; 64]>::try_from(s).ok())
    else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
        return false;
    };
    key.verify_strict(
        &agent::auth_message(nonce),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .is_ok()
}

async fn handle_agent_msg(
    state: &AppState,
    agent: AgentId,
    org: OrgId,
    msg: AgentMsg,
    names: &mut HashMap<String, PrinterId>,
    tx: &tokio::sync::mpsc::Sender<ServerMsg>,
) -> ApiResult<()> {
    match msg {
        AgentMsg::Auth { .. } => {}
        AgentMsg::Ping => {
            let _ = tx.send(ServerMsg::Pong).await;
        }
        AgentMsg::Pong => {}
        AgentMsg::Outcome {
            printer,
            request,
            ok,
            message,
        } => {
            // Only for a printer of this agent's; members wait for it on the event stream.
            if let Some(&printer_id) = names.get(&printer) {
                let outcome = Event::Outcome {
                    printer_id,
                    request,
                    ok,
                    message,
                };
                state.hub.publish(org, outcome);
            }
        }
        AgentMsg::Printers { printers } => {
            let now = now_ms();
            let mut t = state.store.begin().await?;
            let mut ids = Vec::with_capacity(printers.len());
            for info in &printers {
                let id = t.upsert_printer(org, agent, info, now).await?;
                names.insert(info.name.clone(), id);
                ids.push(id);
            }
            t.commit().await?;
            // Away until its agent reports it reachable: its return is then noticed here, whichever
            // instance reported it offline.
            crate::notify::printers_away(
                state,
                org,
                &ids,
                Some("its agent connected but has not reported it reachable"),
            );
            for p in state.store.printers_of_agent(agent).await? {
                state.hub.publish(
                    org,
                    Event::Printer {
                        printer: printer_view(state, &p),
                    },
                );
            }
            hub::dispatch(state, org).await?;
        }
        AgentMsg::Telemetry { printer, status } => {
            let Some(&id) = names.get(&printer) else {
                let _ = tx
                    .send(ServerMsg::Error {
                        code: "unknown_printer".into(),
                        message: format!("announce {printer:?} first"),
                        fatal: false,
                    })
                    .await;
                return Ok(());
            };
            let idle = status.state == hearth_proto::agent::PrinterState::Idle;
            let (reported, error) = (status.state, status.error.clone());
            if let Err(e) =
                crate::routes::inventory::slots_seen(state, org, agent, id, &status.slots).await
            {
                // Tried again at the next report; telemetry goes on.
                state.hub.forget_tags(id);
                tracing::warn!(printer = %id, error = ?e, "cannot follow the RFID spools it reports");
            }
            state.hub.set_telemetry(id, status);
            crate::notify::printer_reported(state, org, id, reported, error.as_deref()).await?;
            hub::publish_printer(state, org, id).await?;
            if idle {
                hub::dispatch(state, org).await?;
            }
        }
        AgentMsg::JobUpdate {
            job_id,
            state: new_state,
            message,
            progress,
            slots,
        } => {
            let job = state.store.job(job_id).await?;
            let on_this_agent = match job.printer_id {
                Some(p) => state.store.printer(p).await?.agent_id == agent,
                None => false,
            };
            if job.org_id != org || !on_this_agent {
                let _ = tx
                    .send(ServerMsg::Error {
                        code: "not_found".into(),
                        message: format!("job {job_id} is not yours"),
                        fatal: false,
                    })
                    .await;
                return Ok(());
            }
            if matches!(new_state, JobState::Queued | JobState::Assigned) {
                return Ok(());
            }
            let mut t = state.store.begin().await?;
            let changed = t
                .update_job(job_id, new_state, None, message.as_deref(), now_ms())
                .await?;
            let mut taken = Vec::new();
            let mut bed_used = false;
            if changed {
                crate::notify::job_changed(state, &mut t, &job, new_state, message.as_deref())
                    .await?;
                if new_state.is_final() {
                    taken = crate::routes::inventory::job_ended(
                        state, &mut t, &job, new_state, progress, &slots,
                    )
                    .await?;
                    if let (true, Some(p)) = (job.state.left_a_part(new_state), job.printer_id) {
                        bed_used = t.bed_used(p, job_id).await?;
                    }
                }
            }
            if changed && (new_state.is_final() || new_state == JobState::Printing) {
                t.append_audit(NewAuditEntry {
                    scope: org.to_string(),
                    ts_ms: now_ms(),
                    actor: format!("agent:{agent}"),
                    action: format!("job.{}", hearth_store::fleet::job_state_str(new_state)),
                    target: Some(format!("job:{job_id}")),
                    source: None,
                    details: match taken.as_slice() {
                        [] => json!({ "message": message }),
                        [u] => json!({ "message": message, "grams": u.grams, "spool": u.spool }),
                        uses => json!({
                            "message": message,
                            "grams": uses.iter().map(|u| u.grams).sum::<f32>(),
                            "uses": uses.iter().map(|u| json!({
                                "slot": u.slot, "spool": u.spool, "grams": u.grams,
                            })).collect::<Vec<_>>(),
                        }),
                    },
                })
                .await?;
            }
            t.commit().await?;
            // The printer shows what is left on its spool, and that its bed waits to be cleared.
            let printer_changed = taken.iter().any(|u| u.spool.is_some()) || bed_used;
            if let (true, Some(p)) = (printer_changed, job.printer_id) {
                hub::publish_printer(state, org, p).await?;
            }
            if changed {
                state.notifier.wake();
                hub::publish_job(state, job_id).await?;
                if new_state.is_final() {
                    hub::dispatch(state, org).await?;
                }
            }
        }
    }
    Ok(())
}
