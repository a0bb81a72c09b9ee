//! Notification channels of an organisation (admins): create, list, test, see deliveries, delete.

use crate::auth::{Admin, OrgAccess};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::notify::{self, delivery_view, email, guard, render};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hearth_proto::api::ErrorBody;
use hearth_proto::ids::{ChannelId, OrgId};
use hearth_proto::notify::{
    Channel, ChannelKind, ChannelUpdate, CreatedChannel, Delivery, NewChannel, NotifyEvent,
    QuietHours,
};
use hearth_proto::time_fmt::{now_ms, rfc3339};
use hearth_store::notify::ChannelRow;
use serde_json::json;

/// Deliveries `GET .../deliveries` shows.
const DELIVERIES_SHOWN: i64 = 50;

async fn channel_view(state: &AppState, c: &ChannelRow) -> ApiResult<Channel> {
    let (pending, last) = state.store.channel_status(c.id).await?;
    Ok(Channel {
        id: c.id,
        name: c.name.clone(),
        kind: c.kind,
        destination: guard::shown(&c.url),
        events: c.events.clone(),
        pools: c.pools.clone(),
        quiet_hours: c.quiet.clone(),
        created_by: c.created_by,
        created_at: rfc3339(c.created_at),
        pending,
        last_delivery: last.as_ref().map(delivery_view),
    })
}

/// Quiet hours as the API keeps them, once checked.
fn quiet_hours(q: Option<&QuietHours>) -> ApiResult<Option<QuietHours>> {
    q.map(crate::notify::quiet::Quiet::normalised)
        .transpose()
        .map_err(ApiError::invalid)
}

fn channel_name(name: &str) -> ApiResult<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("a channel name must be 1-100 characters"));
    }
    Ok(name)
}

/// Pool names as printers are configured with them: trimmed, not empty, once each.
fn pool_names(pools: Vec<String>) -> ApiResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in pools {
        let p = p.trim().to_owned();
        if p.is_empty() || p.len() > 100 || p.contains(',') {
            return Err(ApiError::invalid(format!(
                "{p:?} is not a pool name (1-100 characters, no comma)"
            )));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The events a channel may follow, sorted, once each.
fn followed(mut events: Vec<NotifyEvent>) -> ApiResult<Vec<NotifyEvent>> {
    if events.is_empty() {
        return Err(ApiError::invalid("a channel follows at least one event"));
    }
    if events.contains(&NotifyEvent::Test) {
        return Err(ApiError::invalid(
            "`test` is not an event to follow; send one with POST .../test",
        ));
    }
    events.sort();
    events.dedup();
    Ok(events)
}

async fn channel_in(state: &AppState, org: OrgId, id: ChannelId) -> ApiResult<ChannelRow> {
    let c = state.store.channel(id).await?;
    if c.org_id != org {
        return Err(ApiError::not_found(format!("notification channel {id}")));
    }
    Ok(c)
}

/// The organisation's notification channels, with how their latest delivery went.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/notifications", tag = "notifications", params(("org" = OrgId, Path)),
    responses((status = 200, body = Vec<Channel>), (status = 403, body = ErrorBody)))]
pub async fn list_channels(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
) -> ApiResult<Json<Vec<Channel>>> {
    let mut out = Vec::new();
    for c in state.store.channels(access.org.id).await? {
        out.push(channel_view(&state, &c).await?);
    }
    Ok(Json(out))
}

/// Add a channel. The destination must resolve to public addresses unless the server allows
/// private ones; a webhook channel's signing secret is in this response only.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/notifications", tag = "notifications", params(("org" = OrgId, Path)),
    request_body = NewChannel,
    responses((status = 201, body = CreatedChannel), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_channel(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Json(req): Json<NewChannel>,
) -> ApiResult<(StatusCode, Json<CreatedChannel>)> {
    let name = channel_name(&req.name)?;
    let url = if req.kind == ChannelKind::Email {
        if !state.notifier.sends_email() {
            return Err(ApiError::invalid(notify::NO_SMTP));
        }
        email::mailto(&email::parse_mailto(&req.url).map_err(ApiError::invalid)?)
    } else {
        let url = guard::parse_destination(&req.url).map_err(ApiError::invalid)?;
        if req.kind == ChannelKind::Ntfy {
            render::ntfy_split(url.as_str()).map_err(ApiError::invalid)?;
        }
        guard::check_destination(&url, state.notifier.allow_private())
            .await
            .map_err(ApiError::invalid)?;
        url.to_string()
    };
    let events = followed(
        req.events
            .clone()
            .unwrap_or_else(|| NotifyEvent::DEFAULT.to_vec()),
    )?;
    let token = req.token.as_deref().map(str::trim).unwrap_or_default();
    if !token.is_empty() && req.kind != ChannelKind::Ntfy {
        return Err(ApiError::invalid("only ntfy channels take an access token"));
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(ApiError::invalid(
            "the access token has spaces or control characters",
        ));
    }
    let signing_secret = (req.kind == ChannelKind::Webhook).then(render::new_signing_secret);
    let row = ChannelRow {
        id: ChannelId::new(),
        org_id: access.org.id,
        name: name.to_owned(),
        kind: req.kind,
        url,
        secret: signing_secret.clone().unwrap_or_else(|| token.to_owned()),
        events,
        pools: pool_names(req.pools.clone().unwrap_or_default())?,
        quiet: quiet_hours(req.quiet_hours.as_ref())?,
        created_by: access.caller.user.id,
        created_at: now_ms(),
    };
    let mut tx = state.store.begin().await?;
    tx.insert_channel(&row).await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "notify.channel.create",
        Some(format!("channel:{}", row.id)),
        json!({ "name": row.name, "kind": row.kind, "destination": guard::shown(&row.url), "events": row.events, "pools": row.pools, "quiet_hours": row.quiet }),
    ))
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedChannel {
            channel: channel_view(&state, &row).await?,
            signing_secret,
        }),
    ))
}

/// Rename a channel or change the events it follows.
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/notifications/{id}", tag = "notifications",
    params(("org" = OrgId, Path), ("id" = ChannelId, Path)), request_body = ChannelUpdate,
    responses((status = 200, body = Channel), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_channel(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, id)): Path<(OrgId, ChannelId)>,
    Json(req): Json<ChannelUpdate>,
) -> ApiResult<Json<Channel>> {
    let mut c = channel_in(&state, access.org.id, id).await?;
    if let Some(name) = &req.name {
        c.name = channel_name(name)?.to_owned();
    }
    if let Some(events) = req.events {
        c.events = followed(events)?;
    }
    if let Some(pools) = req.pools {
        c.pools = pool_names(pools)?;
    }
    if let Some(quiet) = &req.quiet_hours {
        c.quiet = quiet_hours(quiet.as_ref())?;
    }
    let mut tx = state.store.begin().await?;
    tx.update_channel(&c).await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "notify.channel.update",
        Some(format!("channel:{id}")),
        json!({ "name": c.name, "events": c.events, "pools": c.pools, "quiet_hours": c.quiet }),
    ))
    .await?;
    tx.commit().await?;
    Ok(Json(channel_view(&state, &c).await?))
}

/// Remove a channel; what was waiting for it is dropped.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/notifications/{id}", tag = "notifications",
    params(("org" = OrgId, Path), ("id" = ChannelId, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_channel(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, id)): Path<(OrgId, ChannelId)>,
) -> ApiResult<StatusCode> {
    let c = channel_in(&state, access.org.id, id).await?;
    let mut tx = state.store.begin().await?;
    tx.delete_channel(access.org.id, id).await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "notify.channel.delete",
        Some(format!("channel:{id}")),
        json!({ "name": c.name }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test notification now (tried once) and answer how it went.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/notifications/{id}/test", tag = "notifications",
    params(("org" = OrgId, Path), ("id" = ChannelId, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = ErrorBody)))]
pub async fn test_channel(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, id)): Path<(OrgId, ChannelId)>,
) -> ApiResult<Json<Delivery>> {
    let c = channel_in(&state, access.org.id, id).await?;
    let d = notify::send_test(&state, &c).await?;
    Ok(Json(delivery_view(&d)))
}

/// A channel's latest deliveries, newest first: what was sent, when, and what the destination said.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/notifications/{id}/deliveries", tag = "notifications",
    params(("org" = OrgId, Path), ("id" = ChannelId, Path)),
    responses((status = 200, body = Vec<Delivery>), (status = 404, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, id)): Path<(OrgId, ChannelId)>,
) -> ApiResult<Json<Vec<Delivery>>> {
    channel_in(&state, access.org.id, id).await?;
    let rows = state.store.deliveries(id, DELIVERIES_SHOWN).await?;
    Ok(Json(rows.iter().map(delivery_view).collect()))
}
