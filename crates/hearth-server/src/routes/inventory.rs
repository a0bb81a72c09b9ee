//! The material library and the spool inventory (`hearth_proto::inventory`): materials and spools
//! (operators change them, every member sees them), what each spool's jobs used, and the filament
//! used per material. A spool is loaded on a printer through the printer's `loaded` endpoint
//! (`fleet::set_loaded` with `spool`).
//!
//! A spool goes in one of a printer's slots (AMS trays, the external holder) through
//! `PUT .../printers/{id}/slots/{slot}` ([`load_slot`]).
//!
//! [`job_ended`] takes what a job used from the spools that fed it, in the transaction that
//! records the job's end, and queues `spool.low` when that takes a spool below its threshold.

use crate::auth::{Operator, OrgAccess, Viewer};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hearth_proto::agent::JobState;
use hearth_proto::api::{ErrorBody, Printer};
use hearth_proto::ids::{MaterialId, OrgId, PrinterId, SpoolId};
use hearth_proto::inventory::{
    self, DEFAULT_DIAMETER_MM, DEFAULT_LOW_GRAMS, DEFAULT_SPOOL_GRAMS, MAX_SLOT_CHARS, Material,
    MaterialUpdate, MaterialUsage, MemberUsage, NewMaterial, NewSpool, SlotLoadRequest, Spool,
    SpoolUpdate, SpoolUse,
};
use hearth_proto::notify::{Notification, NotifiedSpool, NotifyEvent};
use hearth_proto::time_fmt::{now_ms, rfc3339};
use hearth_store::Tx;
use hearth_store::fleet::JobRow;
use hearth_store::inventory::{MaterialRow, SpoolRow, UseRow};
use serde_json::json;

/// Uses `GET .../spools/{id}/usage` shows.
const USES_SHOWN: i64 = 200;

fn trimmed(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned())
}

async fn material_in(state: &AppState, org: OrgId, id: MaterialId) -> ApiResult<MaterialRow> {
    let m = state.store.material(id).await?;
    if m.org_id != org {
        return Err(ApiError::not_found(format!("material {id}")));
    }
    Ok(m)
}

pub(crate) async fn spool_in(state: &AppState, org: OrgId, id: SpoolId) -> ApiResult<SpoolRow> {
    let s = state.store.spool(id).await?;
    if s.org_id != org {
        return Err(ApiError::not_found(format!("spool {id}")));
    }
    Ok(s)
}

/// The organisation's material library.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/materials", tag = "inventory",
    params(("org" = OrgId, Path)), responses((status = 200, body = Vec<Material>)))]
pub async fn list_materials(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<Vec<Material>>> {
    let rows = state.store.materials(access.org.id).await?;
    Ok(Json(rows.iter().map(MaterialRow::to_api).collect()))
}

/// Add a material to the library.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/materials", tag = "inventory",
    params(("org" = OrgId, Path)), request_body = NewMaterial,
    responses((status = 201, body = Material), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_material(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Json(req): Json<NewMaterial>,
) -> ApiResult<(StatusCode, Json<Material>)> {
    let row = material_row(access.org.id, req)?;
    let mut tx = state.store.begin().await?;
    tx.insert_material(&row).await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "material.create",
        Some(format!("material:{}", row.id)),
        json!({ "name": row.name, "material": row.material, "color": row.color }),
    ))
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.to_api())))
}

/// A new material of `org`'s library as `req` describes it (the type's density and the usual
/// diameter when not given), checked.
fn material_row(org: OrgId, req: NewMaterial) -> ApiResult<MaterialRow> {
    let material = req.material.trim().to_owned();
    let m = Material {
        id: MaterialId::new(),
        name: req.name.trim().to_owned(),
        brand: trimmed(req.brand),
        density_g_cm3: req
            .density_g_cm3
            .unwrap_or_else(|| inventory::default_density(&material)),
        material,
        color: trimmed(req.color),
        diameter_mm: req.diameter_mm.unwrap_or(DEFAULT_DIAMETER_MM),
        price_per_kg: req.price_per_kg,
        created_at: String::new(),
    };
    inventory::check_material(&m).map_err(ApiError::invalid)?;
    Ok(MaterialRow::from_api(org, &m, now_ms()))
}

/// Change a material of the library (its spools follow: name, colour, price...).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/materials/{id}", tag = "inventory",
    params(("org" = OrgId, Path), ("id" = MaterialId, Path)), request_body = MaterialUpdate,
    responses((status = 200, body = Material), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_material(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, MaterialId)>,
    Json(req): Json<MaterialUpdate>,
) -> ApiResult<Json<Material>> {
    let before = material_in(&state, access.org.id, id).await?;
    let req = MaterialUpdate {
        name: trimmed(req.name),
        brand: req.brand.map(trimmed),
        material: trimmed(req.material),
        color: req.color.map(trimmed),
        ..req
    };
    let m = req.apply(&before.to_api());
    inventory::check_material(&m).map_err(ApiError::invalid)?;
    let row = MaterialRow::from_api(access.org.id, &m, before.created_at);
    let mut tx = state.store.begin().await?;
    tx.update_material(&row).await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "material.update",
        Some(format!("material:{id}")),
        json!({ "changed": req }),
    ))
    .await?;
    tx.commit().await?;
    Ok(Json(row.to_api()))
}

/// Remove a material no spool is made of.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/materials/{id}", tag = "inventory",
    params(("org" = OrgId, Path), ("id" = MaterialId, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_material(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, MaterialId)>,
) -> ApiResult<StatusCode> {
    let m = material_in(&state, access.org.id, id).await?;
    let mut tx = state.store.begin().await?;
    tx.delete_material(id).await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "material.delete",
        Some(format!("material:{id}")),
        json!({ "name": m.name }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which spools to list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SpoolsQuery {
    /// Also the archived ones (used up or given away).
    pub archived: Option<bool>,
}

/// The organisation's spools, newest first, with what is left on each and where it is.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/spools", tag = "inventory",
    params(("org" = OrgId, Path), SpoolsQuery), responses((status = 200, body = Vec<Spool>)))]
pub async fn list_spools(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Query(q): Query<SpoolsQuery>,
) -> ApiResult<Json<Vec<Spool>>> {
    let rows = state
        .store
        .spools(access.org.id, q.archived.unwrap_or(false))
        .await?;
    Ok(Json(rows.iter().map(SpoolRow::to_api).collect()))
}

/// Add a spool to the inventory.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/spools", tag = "inventory",
    params(("org" = OrgId, Path)), request_body = NewSpool,
    responses((status = 201, body = Spool), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_spool(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Json(req): Json<NewSpool>,
) -> ApiResult<(StatusCode, Json<Spool>)> {
    let material = material_in(&state, access.org.id, req.material).await?;
    let row = spool_row(material, req)?;
    let mut tx = state.store.begin().await?;
    tx.insert_spool(&row).await?;
    tx.append_audit(access.caller.audit(
        access.org.id.to_string(),
        "spool.create",
        Some(format!("spool:{}", row.id)),
        json!({ "material": row.material.id, "initial_grams": row.initial_grams, "remaining_grams": row.remaining_grams }),
    ))
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.to_api())))
}

/// A new spool of `material` as `req` describes it (a full 1 kg spool when not given), checked.
fn spool_row(material: MaterialRow, req: NewSpool) -> ApiResult<SpoolRow> {
    let initial = req.initial_grams.unwrap_or(DEFAULT_SPOOL_GRAMS);
    let row = SpoolRow {
        id: SpoolId::new(),
        org_id: material.org_id,
        material,
        initial_grams: initial,
        remaining_grams: req.remaining_grams.unwrap_or(initial),
        empty_spool_grams: req.empty_spool_grams,
        low_grams: req.low_grams.unwrap_or(DEFAULT_LOW_GRAMS),
        location: trimmed(req.location),
        printer_id: None,
        slot: None,
        rfid: None,
        archived: false,
        created_at: now_ms(),
        last_used_at: None,
    };
    inventory::check_spool(&row.to_api()).map_err(ApiError::invalid)?;
    Ok(row)
}

/// One spool.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/spools/{id}", tag = "inventory",
    params(("org" = OrgId, Path), ("id" = SpoolId, Path)),
    responses((status = 200, body = Spool), (status = 404, body = ErrorBody)))]
pub async fn get_spool(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id)): Path<(OrgId, SpoolId)>,
) -> ApiResult<Json<Spool>> {
    Ok(Json(spool_in(&state, access.org.id, id).await?.to_api()))
}

/// Correct what is left (set it, or weigh the spool), the empty spool's weight, the threshold of
/// `spool.low`, where it is kept, or archive it (which takes it off its printer).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/spools/{id}", tag = "inventory",
    params(("org" = OrgId, Path), ("id" = SpoolId, Path)), request_body = SpoolUpdate,
    responses((status = 200, body = Spool), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_spool(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id)): Path<(OrgId, SpoolId)>,
    Json(req): Json<SpoolUpdate>,
) -> ApiResult<Json<Spool>> {
    let org = access.org.id;
    let before = spool_in(&state, org, id).await?;
    let mut s = before.clone();
    if req.remaining_grams.is_some() && req.weighed_grams.is_some() {
        return Err(ApiError::invalid(
            "give remaining_grams or weighed_grams, not both",
        ));
    }
    if let Some(e) = req.empty_spool_grams {
        s.empty_spool_grams = e;
    }
    if let Some(w) = req.weighed_grams {
        s.remaining_grams =
            inventory::weighed_remaining(w, s.empty_spool_grams).map_err(ApiError::invalid)?;
    }
    if let Some(r) = req.remaining_grams {
        s.remaining_grams = r;
    }
    if let Some(l) = req.low_grams {
        s.low_grams = l;
    }
    if let Some(l) = req.location.clone() {
        s.location = trimmed(l);
    }
    if let Some(a) = req.archived {
        s.archived = a;
        if a {
            s.printer_id = None;
        }
    }
    inventory::check_spool(&s.to_api()).map_err(ApiError::invalid)?;
    let mut tx = state.store.begin().await?;
    tx.update_spool(&s).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        if req.archived == Some(true) && !before.archived {
            "spool.archive"
        } else {
            "spool.update"
        },
        Some(format!("spool:{id}")),
        json!({ "changed": req, "remaining_grams": s.remaining_grams }),
    ))
    .await?;
    tx.commit().await?;
    // The printer it was on shows what is left (or that it is gone), and a pool job waiting for
    // more filament than it had may fit now.
    if let Some(p) = before.printer_id {
        crate::hub::publish_printer(&state, org, p).await?;
        crate::hub::dispatch(&state, org).await?;
    }
    Ok(Json(s.to_api()))
}

/// What the jobs printed from a spool used, newest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/spools/{id}/usage", tag = "inventory",
    params(("org" = OrgId, Path), ("id" = SpoolId, Path)),
    responses((status = 200, body = Vec<SpoolUse>), (status = 404, body = ErrorBody)))]
pub async fn spool_usage(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, id)): Path<(OrgId, SpoolId)>,
) -> ApiResult<Json<Vec<SpoolUse>>> {
    spool_in(&state, access.org.id, id).await?;
    let uses = state.store.spool_uses(id, USES_SHOWN).await?;
    Ok(Json(uses.iter().map(UseRow::to_api).collect()))
}

/// The period of the material statistics.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// How far back, in days (1-3650, default 30).
    pub days: Option<i64>,
}

impl UsageQuery {
    /// The period's start (Unix ms); `days` out of range is refused.
    fn since(&self) -> ApiResult<i64> {
        let days = self.days.unwrap_or(30);
        if !(1..=3650).contains(&days) {
            return Err(ApiError::invalid("days is 1 to 3650"));
        }
        Ok(now_ms() - days * 86_400_000)
    }
}

/// Filament the organisation's jobs used per material and colour (from spools of the inventory,
/// or as the job's sender revealed it), with its cost where the materials have a price.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/usage/materials", tag = "inventory",
    params(("org" = OrgId, Path), UsageQuery), responses((status = 200, body = Vec<MaterialUsage>), (status = 422, body = ErrorBody)))]
pub async fn material_usage(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<Json<Vec<MaterialUsage>>> {
    let since = q.since()?;
    Ok(Json(
        state.store.material_usage(access.org.id, since).await?,
    ))
}

/// Per member, the jobs they submitted that ended in the period, the filament those took from
/// the inventory's spools with its cost, and the grams and print time their completed jobs
/// revealed: what a makerspace or a print bureau bills by. Most filament first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/usage/members", tag = "inventory",
    params(("org" = OrgId, Path), UsageQuery), responses((status = 200, body = Vec<MemberUsage>), (status = 422, body = ErrorBody)))]
pub async fn member_usage(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<Json<Vec<MemberUsage>>> {
    let since = q.since()?;
    let mut usage = state.store.member_usage(access.org.id, since).await?;
    let logins: std::collections::HashMap<_, _> = state
        .store
        .members(access.org.id)
        .await?
        .into_iter()
        .map(|(u, _)| (u.id, u.login))
        .collect();
    for u in &mut usage {
        u.login = match logins.get(&u.user_id) {
            Some(l) => l.clone(),
            // A member who left since: their account still names them.
            None => match state.store.user_by_id(u.user_id).await {
                Ok(user) => user.login,
                Err(hearth_store::StoreError::NotFound(_)) => String::new(),
                Err(e) => return Err(e.into()),
            },
        };
    }
    Ok(Json(usage))
}

/// Put a spool of the inventory in one of a printer's slots (an AMS tray as the printer's screen
/// names it, `A1`..`D4`, the external holder `Ext`, or a tool's holder), taking it from wherever it
/// was and the spool that was in that slot out (operators; audited as `printer.slot_load`). What
/// a job fed from that slot used is taken from this spool when the job ends.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/printers/{id}/slots/{slot}", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path), ("slot" = String, Path)),
    request_body = SlotLoadRequest,
    responses((status = 200, body = Printer), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn load_slot(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id, slot)): Path<(OrgId, PrinterId, String)>,
    Json(req): Json<SlotLoadRequest>,
) -> ApiResult<Json<Printer>> {
    let org = access.org.id;
    let slot = checked_slot(&slot)?;
    crate::routes::fleet::printer_in(&state, org, id).await?;
    let spool = spool_in(&state, org, req.spool).await?;
    if spool.archived {
        return Err(ApiError::conflict(format!(
            "spool {} is archived; restore it first",
            spool.id
        )));
    }
    let mut tx = state.store.begin().await?;
    tx.load_spool_slot(spool.id, id, slot).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "printer.slot_load",
        Some(format!("printer:{id}")),
        json!({ "slot": slot, "spool": spool.id, "was_on": spool.printer_id, "was_in": spool.slot }),
    ))
    .await?;
    tx.commit().await?;
    if let Some(other) = spool.printer_id.filter(|p| *p != id) {
        crate::hub::publish_printer(&state, org, other).await?;
    }
    Ok(Json(crate::hub::publish_printer(&state, org, id).await?))
}

/// Take the spool in one of a printer's slots out (operators; audited as `printer.slot_unload`
/// when one was there). Nothing in the slot is not an error.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/printers/{id}/slots/{slot}", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path), ("slot" = String, Path)),
    responses((status = 200, body = Printer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn unload_slot(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id, slot)): Path<(OrgId, PrinterId, String)>,
) -> ApiResult<Json<Printer>> {
    let org = access.org.id;
    let slot = checked_slot(&slot)?;
    crate::routes::fleet::printer_in(&state, org, id).await?;
    let mut tx = state.store.begin().await?;
    let was = tx.spool_in_slot(id, slot).await?;
    if let Some(s) = &was {
        tx.unload_slot(id, slot).await?;
        tx.append_audit(access.caller.audit(
            org.to_string(),
            "printer.slot_unload",
            Some(format!("printer:{id}")),
            json!({ "slot": slot, "spool": s.id }),
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(Json(crate::hub::publish_printer(&state, org, id).await?))
}

/// Most slots of one printer whose tags are followed (four AMS units of four trays and the
/// external holder are 17; eight units with HT trays stay below): an agent cannot make the server
/// add spools without bound.
const MAX_TAGGED_SLOTS: usize = 64;

/// A printer reported its slots: a spool with an RFID tag (a Bambu Lab spool) is the inventory's
/// spool of that tag, added the first time it is seen (its material, `Bambu PLA #FFFFFF`, added to
/// the library when missing; what is left from the printer's estimate), and kept in the slot it
/// is seen in; a tagged spool no longer seen in its slot is taken out. Acts only when the tags
/// change; an archived spool is left alone. Audited as the agent. Called before the report's
/// telemetry is kept and the printer published, so what changed goes out with it.
pub async fn slots_seen(
    state: &AppState,
    org: OrgId,
    agent: hearth_proto::ids::AgentId,
    printer: PrinterId,
    slots: &[hearth_proto::agent::MaterialSlot],
) -> ApiResult<()> {
    // A printer that reports no slots (offline, or not yet) says nothing of what is in them.
    if slots.is_empty() {
        return Ok(());
    }
    let seen: crate::hub::SlotTags = slots
        .iter()
        .filter(|s| inventory::slot_name_ok(&s.name))
        .take(MAX_TAGGED_SLOTS)
        .map(|s| (s.name.clone(), s.tag.clone().filter(|t| rfid_ok(t))))
        .collect();
    if !state.hub.tags_changed(printer, &seen) {
        return Ok(());
    }
    let audit = |action: &str, target: String, details: serde_json::Value| {
        hearth_store::audit::NewAuditEntry {
            scope: org.to_string(),
            ts_ms: now_ms(),
            actor: format!("agent:{agent}"),
            action: action.into(),
            target: Some(target),
            source: None,
            details,
        }
    };
    let mut tx = state.store.begin().await?;
    // Tagged spools out of the slots where another tag, or none, is seen now.
    for row in tx.spools_in_slots(printer).await? {
        let (Some(tag), Some(slot)) = (&row.rfid, &row.slot) else {
            continue;
        };
        if !seen
            .iter()
            .any(|(s, t)| s == slot && t.as_ref() == Some(tag))
        {
            tx.unload_slot(printer, slot).await?;
            tx.append_audit(audit(
                "printer.slot_unload",
                format!("printer:{printer}"),
                json!({ "slot": slot, "spool": row.id, "rfid": tag }),
            ))
            .await?;
        }
    }
    for (slot, tag) in &seen {
        let Some(tag) = tag else { continue };
        let spool = match tx.spool_by_rfid(org, tag).await? {
            Some(s) if s.archived => continue,
            Some(s) if s.printer_id == Some(printer) && s.slot.as_deref() == Some(slot) => {
                continue;
            }
            Some(s) => s,
            None => {
                let Some(reported) = slots.iter().find(|s| s.name == *slot) else {
                    continue;
                };
                let s = rfid_spool(&mut tx, org, reported, tag).await?;
                tx.append_audit(audit(
                    "spool.create",
                    format!("spool:{}", s.id),
                    json!({ "material": s.material.id, "rfid": tag, "remaining_grams": s.remaining_grams }),
                ))
                .await?;
                s
            }
        };
        tx.load_spool_slot(spool.id, printer, slot).await?;
        tx.append_audit(audit(
            "printer.slot_load",
            format!("printer:{printer}"),
            json!({ "slot": slot, "spool": spool.id, "rfid": tag, "was_on": spool.printer_id, "was_in": spool.slot }),
        ))
        .await?;
    }
    tx.commit().await?;
    // The caller publishes the printer with this report's telemetry: its slot spools go with it.
    Ok(())
}

/// A Bambu Lab `tray_uuid`: 32 hex digits.
fn rfid_ok(t: &str) -> bool {
    t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A new spool of the inventory for the tagged spool `reported` in a slot: a full spool less what
/// the printer estimates is gone, of the material `Bambu TYPE #RRGGBB` (added to the library when
/// missing).
async fn rfid_spool(
    tx: &mut Tx,
    org: OrgId,
    reported: &hearth_proto::agent::MaterialSlot,
    tag: &str,
) -> ApiResult<SpoolRow> {
    let kind = reported.material.trim();
    let color = reported.color.as_ref().map(|c| format!("#{c}"));
    let name = match &color {
        Some(c) => format!("Bambu {kind} {c}"),
        None => format!("Bambu {kind}"),
    };
    let material = match tx.material_named(org, &name).await? {
        Some(m) => m,
        None => {
            let row = material_row(
                org,
                NewMaterial {
                    name,
                    brand: Some("Bambu Lab".into()),
                    material: kind.to_owned(),
                    color,
                    ..NewMaterial::default()
                },
            )?;
            tx.insert_material(&row).await?;
            row
        }
    };
    let material_id = material.id;
    let mut row = spool_row(
        material,
        NewSpool {
            material: material_id,
            remaining_grams: reported
                .remain_percent
                .map(|p| DEFAULT_SPOOL_GRAMS * f32::from(p.min(100)) / 100.0),
            ..NewSpool::default()
        },
    )?;
    row.rfid = Some(tag.to_owned());
    tx.insert_spool(&row).await?;
    Ok(row)
}

fn checked_slot(slot: &str) -> ApiResult<&str> {
    if inventory::slot_name_ok(slot) {
        Ok(slot)
    } else {
        Err(ApiError::invalid(format!(
            "{slot:?} is not a slot name: 1 to {MAX_SLOT_CHARS} letters, digits, '-', '_' or '.' \
             (an AMS tray is A1..D4, the external holder Ext)"
        )))
    }
}

/// What a job that ended took of one filament, and from which spool.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub spool: Option<SpoolId>,
    pub slot: Option<String>,
    pub grams: f32,
}

/// The filaments a job's submitter revealed, as (material, colour, grams) in the slicer's order:
/// the per-filament facts of a multi-material file, else the job's one material and its grams.
fn revealed_filaments(job: &JobRow) -> Vec<(Option<String>, Option<String>, f32)> {
    let f = &job.facts;
    if !f.filaments.is_empty() {
        return f
            .filaments
            .iter()
            .map(|x| (x.material.clone(), x.color.clone(), x.grams))
            .collect();
    }
    f.filament_grams
        .map(|g| (f.material.clone(), f.color.clone(), g))
        .into_iter()
        .collect()
}

/// Record what `job`, which just ended in `end`, used, inside `tx`, once per job: per filament its
/// submitter revealed, the grams (all of them when it completed, otherwise the share done that its
/// agent `reported` with the final state or, from an older agent, that its printer last reported
/// in telemetry), taken from the inventory spool in the slot its agent said fed that filament
/// (`slots`, in the same order, or in the order of the filaments it used when the file lists more)
/// or, when it said none and the printer has spools in slots named
/// after its tools, from slot `TN` for filament N; for a job of one filament otherwise from the
/// spool on its printer's holder. Without either, a multi-material job is taken as one from that
/// holder. Queues `spool.low` for a spool this takes below its threshold. Empty when the job
/// used nothing known.
pub async fn job_ended(
    state: &AppState,
    tx: &mut Tx,
    job: &JobRow,
    end: JobState,
    reported: Option<f32>,
    slots: &[String],
) -> ApiResult<Vec<Taken>> {
    // The agent's own last observation of the job, else the last telemetry this server saw.
    let seen = state.hub.take_progress(job.id);
    let progress = reported.or(seen);
    let Some(printer) = job.printer_id else {
        return Ok(Vec::new());
    };
    let mut filaments = revealed_filaments(job);
    let n = filaments.len();
    let used: Vec<usize> = (0..n).filter(|&i| filaments[i].2 > 0.0).collect();
    let said = !slots.is_empty() && slots.iter().all(|s| inventory::slot_name_ok(s));
    // The slot each filament was fed from, by its index.
    let mut slot_of: Option<Vec<Option<String>>> = if said && slots.len() >= n {
        // One slot per filament (a Bambu printer's AMS mapping), or one per tool of the printer
        // (a Happy Hare MMU's tool-to-gate map), of which the file's filaments are the first.
        Some(slots.iter().take(n).cloned().map(Some).collect())
    } else if said && slots.len() == used.len() {
        // One slot per filament the plate uses, in order, where the file lists every filament of
        // its project (a Bambu Lab plate using two of four).
        let mut of = vec![None; n];
        for (slot, &i) in slots.iter().zip(&used) {
            of[i] = Some(slot.clone());
        }
        Some(of)
    } else {
        None
    };
    let in_slots = tx.spools_in_slots(printer).await?;
    let in_slot = |name: &str| in_slots.iter().find(|s| s.slot.as_deref() == Some(name));
    if slot_of.is_none() && n > 0 {
        // No slots said: a printer with tools (a Prusa XL, an MMU, an IDEX) whose spools sit in
        // slots named after them takes filament N from slot `TN`, the G-code's own tool number.
        let tools: Vec<String> = (0..n).map(|i| format!("T{i}")).collect();
        if tools.iter().any(|t| in_slot(t).is_some()) {
            slot_of = Some(tools.into_iter().map(Some).collect());
        }
    }
    // One filament fed from a slot with no spool of the inventory in it: the holder's spool, as
    // for a printer without slots.
    let one = used.len() <= 1 || slots.len() == 1;
    if slot_of.is_none() && n > 1 {
        let grams = job
            .facts
            .filament_grams
            .unwrap_or_else(|| filaments.iter().map(|f| f.2).sum());
        filaments = vec![(job.facts.material.clone(), job.facts.color.clone(), grams)];
    }
    let at = now_ms();
    let mut uses = Vec::new();
    let mut spools: Vec<SpoolRow> = Vec::new();
    for (part, (material, color, revealed)) in filaments.into_iter().enumerate() {
        let Some(grams) = inventory::used_grams(Some(revealed), end, progress) else {
            continue;
        };
        let slot = slot_of
            .as_ref()
            .and_then(|of| of.get(part).cloned().flatten());
        let mut spool = slot.as_deref().and_then(in_slot).cloned();
        if spool.is_none() && (slot.is_none() || one) {
            spool = tx.spool_on(printer).await?;
        }
        let (material, color) = match &spool {
            Some(s) => (Some(s.material.material.clone()), s.material.color.clone()),
            None => (material, color),
        };
        let cost = spool
            .as_ref()
            .and_then(|s| s.material.price_per_kg)
            .map(|p| f64::from(grams) / 1000.0 * f64::from(p));
        uses.push(UseRow {
            job_id: job.id,
            part: part as i64,
            org_id: job.org_id,
            spool_id: spool.as_ref().map(|s| s.id),
            printer_id: Some(printer),
            slot,
            material,
            color,
            grams,
            cost,
            state: end,
            at,
        });
        if let Some(s) = spool
            && !spools.iter().any(|x| x.id == s.id)
        {
            spools.push(s);
        }
    }
    if !tx.record_uses(&uses).await? {
        return Ok(Vec::new());
    }
    for s in &spools {
        let taken: f32 = uses
            .iter()
            .filter(|u| u.spool_id == Some(s.id))
            .map(|u| u.grams)
            .sum();
        let left = (s.remaining_grams - taken).max(0.0);
        if s.remaining_grams >= s.low_grams && left < s.low_grams {
            spool_low(state, tx, s, printer, left).await?;
        }
    }
    Ok(uses
        .into_iter()
        .map(|u| Taken {
            spool: u.spool_id,
            slot: u.slot,
            grams: u.grams,
        })
        .collect())
}

async fn spool_low(
    state: &AppState,
    tx: &mut Tx,
    s: &SpoolRow,
    printer: PrinterId,
    left: f32,
) -> ApiResult<()> {
    let p = crate::notify::notified_printer(state, printer).await;
    let on = p
        .as_ref()
        .map(|p| match &s.slot {
            Some(slot) => format!(" on {} ({slot})", p.name),
            None => format!(" on {}", p.name),
        })
        .unwrap_or_default();
    let n = Notification {
        event: NotifyEvent::SpoolLow,
        org_id: s.org_id,
        org: crate::notify::org_name(state, s.org_id).await,
        at: rfc3339(now_ms()),
        title: format!("Spool running low{on}"),
        message: format!(
            "{} ({}) has {left:.0} g left (about {:.0} m), below {:.0} g. Spool {}.",
            s.material.name,
            s.material.material,
            inventory::length_m(left, s.material.density, s.material.diameter),
            s.low_grams,
            s.id
        ),
        printer: p,
        job: None,
        spool: Some(NotifiedSpool {
            id: s.id,
            name: s.material.name.clone(),
            material: s.material.material.clone(),
            color: s.material.color.clone(),
            remaining_grams: left,
            low_grams: s.low_grams,
            slot: s.slot.clone(),
        }),
        maintenance: None,
        legal: None,
        link: crate::notify::link(state),
    };
    crate::notify::enqueue(tx, &n).await
}
