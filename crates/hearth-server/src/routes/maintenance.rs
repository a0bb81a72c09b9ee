//! Maintenance reminders: operators set up tasks of a fixed kind on a printer (a nozzle every 300
//! hours of printing, rods greased every 30 days), mark them done, and everyone sees where each
//! stands. Hours of printing come from the printer's hourly history (`printer_rollups`).
//!
//! The minute sweep ([`sweep`]) reports a task that fell due once per round (`maintenance.due`
//! to the channels that follow it) and, for a task set to `hold_when_due`, holds the printer: no
//! new job goes to it (what it prints goes on) until the task is marked done, which releases it
//! unless another task still holds it. Setting up, changing, doing and removing a task are
//! audited (`maintenance.set`, `maintenance.done`, `maintenance.remove`; the sweep's hold as
//! `printer.hold` by `system`).

use crate::auth::{Operator, OrgAccess, Viewer};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::hub;
use crate::routes::fleet::printer_in;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hearth_proto::api::ErrorBody;
use hearth_proto::ids::{OrgId, PrinterId};
use hearth_proto::maintenance::{
    MaintenanceKind, MaintenanceSchedule, MaintenanceStatus, MaintenanceTask, standing,
};
use hearth_proto::notify::{Notification, NotifyEvent};
use hearth_proto::time_fmt::{now_ms, parse_rfc3339, rfc3339};
use hearth_store::maintenance::{MaintenanceRow, NewMaintenance};
use serde_json::json;
use std::collections::HashMap;

/// A stored task's intervals: every so many print hours, days.
fn intervals(row: &MaintenanceRow) -> (Option<u32>, Option<u32>) {
    (
        row.every_print_hours.and_then(|h| u32::try_from(h).ok()),
        row.every_days.and_then(|d| u32::try_from(d).ok()),
    )
}

/// Where a stored task stands `now`: (status, print hours left, due date).
fn standing_of(row: &MaintenanceRow, now: i64) -> (MaintenanceStatus, Option<f64>, Option<i64>) {
    let (hours, days) = intervals(row);
    standing(hours, days, row.done_at, row.printed_ms, now)
}

/// What the API shows of a task, `now`.
fn task(row: &MaintenanceRow, printer: &str, now: i64) -> MaintenanceTask {
    let (hours, days) = intervals(row);
    let (status, left, due_on) = standing_of(row, now);
    MaintenanceTask {
        printer_id: row.printer_id,
        printer: printer.to_owned(),
        kind: row.kind,
        every_print_hours: hours,
        every_days: days,
        hold_when_due: row.hold_when_due,
        last_done: rfc3339(row.done_at),
        done_by: row.done_by,
        print_hours_since: print_hours(row.printed_ms),
        print_hours_left: left.map(tenths),
        due_on: due_on.map(rfc3339),
        status,
    }
}

/// Hours to a tenth: what a person reads, and stable in tests.
fn tenths(h: f64) -> f64 {
    (h * 10.0).round() / 10.0
}

/// Milliseconds of printing as the API shows them: hours, to a tenth.
fn print_hours(ms: i64) -> f64 {
    tenths(ms as f64 / 3_600_000.0)
}

fn kind_of(s: &str) -> ApiResult<MaintenanceKind> {
    s.parse().map_err(ApiError::invalid)
}

/// An organisation's maintenance tasks and where each stands, by printer name.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/maintenance", tag = "printers",
    params(("org" = OrgId, Path)),
    responses((status = 200, body = Vec<MaintenanceTask>)))]
pub async fn list_maintenance(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<Vec<MaintenanceTask>>> {
    let org = access.org.id;
    let names: HashMap<PrinterId, String> = state
        .store
        .printers(org)
        .await?
        .into_iter()
        .map(|p| (p.id, p.info.name))
        .collect();
    let now = now_ms();
    let mut tasks: Vec<MaintenanceTask> = state
        .store
        .maintenance(org)
        .await?
        .iter()
        .map(|r| task(r, names.get(&r.printer_id).map_or("", |n| n), now))
        .collect();
    tasks.sort_by(|a, b| (&a.printer, a.kind).cmp(&(&b.printer, b.kind)));
    Ok(Json(tasks))
}

/// Sets up a maintenance task on a printer or changes its schedule (operators; audited as
/// `maintenance.set`). The sweep looks at it again within a minute.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/printers/{id}/maintenance/{kind}", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path), ("kind" = MaintenanceKind, Path)),
    request_body = MaintenanceSchedule,
    responses((status = 200, body = MaintenanceTask), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_maintenance(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id, kind)): Path<(OrgId, PrinterId, String)>,
    Json(req): Json<MaintenanceSchedule>,
) -> ApiResult<Json<MaintenanceTask>> {
    let org = access.org.id;
    let kind = kind_of(&kind)?;
    let p = printer_in(&state, org, id).await?;
    let now = now_ms();
    let last_done = check_schedule(&req, now)?;
    let mut tx = state.store.begin().await?;
    let set = tx
        .set_maintenance(&NewMaintenance {
            org,
            printer: id,
            kind,
            every_print_hours: req.every_print_hours.map(i64::from),
            every_days: req.every_days.map(i64::from),
            hold_when_due: req.hold_when_due,
            last_done,
            by: access.caller.user.id,
            now,
        })
        .await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "maintenance.set",
        Some(format!("printer:{id}")),
        json!({
            "name": p.info.name,
            "kind": kind,
            "new": set.created,
            "every_print_hours": req.every_print_hours,
            "every_days": req.every_days,
            "hold_when_due": req.hold_when_due,
            "last_done": last_done.map(rfc3339),
        }),
    ))
    .await?;
    let released = set.release && tx.set_held(id, false).await?;
    tx.commit().await?;
    if released {
        released_printer(&state, org, id).await?;
    }
    let row = state.store.maintenance_task(id, kind).await?;
    Ok(Json(task(&row, &p.info.name, now_ms())))
}

/// The schedule's intervals are sane and its last time is not in the future; returns that time.
fn check_schedule(req: &MaintenanceSchedule, now: i64) -> ApiResult<Option<i64>> {
    if req.every_print_hours.is_none() && req.every_days.is_none() {
        return Err(ApiError::invalid(
            "a maintenance task needs every_print_hours, every_days or both",
        ));
    }
    if req
        .every_print_hours
        .is_some_and(|h| !(1..=100_000).contains(&h))
    {
        return Err(ApiError::invalid("every_print_hours is 1 to 100000"));
    }
    if req.every_days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(ApiError::invalid("every_days is 1 to 3650"));
    }
    req.last_done
        .as_deref()
        .map(|s| {
            let at = parse_rfc3339(s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "last_done {s:?} is not an RFC 3339 time (2026-11-02T09:00:00Z)"
                ))
            })?;
            // A minute of clock skew between the member's device and the server.
            if at > now + 60_000 {
                return Err(ApiError::invalid(format!("last_done {s} is in the future")));
            }
            Ok(at.min(now))
        })
        .transpose()
}

/// Marks a task done now: its hours and days count again from here (operators; audited as
/// `maintenance.done`). A printer the task held is released.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/printers/{id}/maintenance/{kind}/done", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path), ("kind" = MaintenanceKind, Path)),
    responses((status = 200, body = MaintenanceTask), (status = 404, body = ErrorBody)))]
pub async fn maintenance_done(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id, kind)): Path<(OrgId, PrinterId, String)>,
) -> ApiResult<Json<MaintenanceTask>> {
    let org = access.org.id;
    let kind = kind_of(&kind)?;
    let p = printer_in(&state, org, id).await?;
    let before = state.store.maintenance_task(id, kind).await?;
    let mut tx = state.store.begin().await?;
    let release = tx
        .maintenance_done(id, kind, now_ms(), access.caller.user.id)
        .await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "maintenance.done",
        Some(format!("printer:{id}")),
        json!({
            "name": p.info.name,
            "kind": kind,
            "print_hours_since": print_hours(before.printed_ms),
            "released": release,
        }),
    ))
    .await?;
    let released = release && tx.set_held(id, false).await?;
    tx.commit().await?;
    if released {
        released_printer(&state, org, id).await?;
    }
    let row = state.store.maintenance_task(id, kind).await?;
    Ok(Json(task(&row, &p.info.name, now_ms())))
}

/// Removes a task (operators; audited as `maintenance.remove`). A printer it held stays held
/// until released (`hearth printers release`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/printers/{id}/maintenance/{kind}", tag = "printers",
    params(("org" = OrgId, Path), ("id" = PrinterId, Path), ("kind" = MaintenanceKind, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_maintenance(
    State(state): State<AppState>,
    access: OrgAccess<Operator>,
    Path((_, id, kind)): Path<(OrgId, PrinterId, String)>,
) -> ApiResult<StatusCode> {
    let org = access.org.id;
    let kind = kind_of(&kind)?;
    let p = printer_in(&state, org, id).await?;
    let mut tx = state.store.begin().await?;
    tx.remove_maintenance(id, kind).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "maintenance.remove",
        Some(format!("printer:{id}")),
        json!({ "name": p.info.name, "kind": kind }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A printer a task held was released: members see it, and it may take a job.
async fn released_printer(state: &AppState, org: OrgId, id: PrinterId) -> ApiResult<()> {
    hub::publish_printer(state, org, id).await?;
    hub::dispatch(state, org).await
}

/// Once a minute: every task that fell due since its last round is reported once
/// (`maintenance.due`), and its printer held when the task says so. Several instances may sweep
/// at once: the report is claimed in the database, so it goes out once.
pub async fn sweep(state: &AppState, now: i64) -> ApiResult<()> {
    for row in state.store.maintenance_unreported().await? {
        if standing_of(&row, now).0 != MaintenanceStatus::Due {
            continue;
        }
        let Ok(p) = state.store.printer(row.printer_id).await else {
            continue;
        };
        let t = task(&row, &p.info.name, now);
        let mut tx = state.store.begin().await?;
        if !tx
            .claim_maintenance_report(row.printer_id, row.kind, now)
            .await?
        {
            continue;
        }
        let held = row.hold_when_due && tx.set_held(row.printer_id, true).await?;
        if held {
            tx.maintenance_placed_hold(row.printer_id, row.kind).await?;
            tx.append_audit(crate::routes::system_audit(
                row.org_id.to_string(),
                "printer.hold",
                Some(format!("printer:{}", row.printer_id)),
                json!({ "name": p.info.name, "maintenance": row.kind }),
            ))
            .await?;
        }
        crate::notify::enqueue(&mut tx, &due_notification(state, &t, &row, held).await).await?;
        tx.commit().await?;
        state.notifier.wake();
        if held {
            hub::publish_printer(state, row.org_id, row.printer_id).await?;
        }
    }
    Ok(())
}

async fn due_notification(
    state: &AppState,
    t: &MaintenanceTask,
    row: &MaintenanceRow,
    held: bool,
) -> Notification {
    let what = t.kind.words();
    let mut why = Vec::new();
    if let Some(h) = t.every_print_hours {
        why.push(format!(
            "{:.0} h of printing since it was last done (every {h} h)",
            t.print_hours_since
        ));
    }
    if let Some(d) = t.every_days {
        why.push(format!("last done {} (every {d} days)", &t.last_done[..10]));
    }
    let hold = if held {
        " The printer is held (no new job) until it is marked done."
    } else {
        ""
    };
    Notification {
        event: NotifyEvent::MaintenanceDue,
        org_id: row.org_id,
        org: crate::notify::org_name(state, row.org_id).await,
        at: rfc3339(now_ms()),
        title: format!("Maintenance due on {}: {what}", t.printer),
        message: format!(
            "{} is due on {}: {}.{hold} Mark it done with `hearth maintenance done {} {}` or on the dashboard.",
            capitalised(&what),
            t.printer,
            why.join("; "),
            t.printer,
            t.kind
        ),
        printer: crate::notify::notified_printer(state, row.printer_id).await,
        job: None,
        spool: None,
        maintenance: Some(t.clone()),
        legal: None,
        link: crate::notify::link(state),
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
