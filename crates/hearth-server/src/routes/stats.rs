//! Fleet statistics: how each printer spent the last days (from the hourly history the server
//! keeps of printer states) and how the jobs that ended on it ended. Only what the server may see:
//! states and job outcomes, never what was printed.

use crate::auth::{OrgAccess, Viewer};
use crate::error::{ApiResult, Json};
use crate::state::AppState;
use axum::extract::State;
use hearth_proto::agent::JobState;
use hearth_proto::api::{FleetStats, JobCounts, PrinterStats};
use hearth_proto::ids::{OrgId, PrinterId};
use hearth_proto::time_fmt::{now_ms, rfc3339};
use std::collections::{BTreeMap, HashMap};

const HOUR_MS: i64 = 3_600_000;

/// The period of the statistics.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// The last N days (1-365, default 30), from the start of the hour N days ago.
    pub days: Option<u32>,
}

/// The fleet over the last days: per printer, the time in each state, its utilisation (printing
/// over all the time counted) and how the jobs that ended on it ended; and the same for the fleet.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/stats", tag = "printers",
    params(("org" = OrgId, Path), StatsQuery),
    responses((status = 200, body = FleetStats)))]
pub async fn fleet_stats(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    crate::error::Query(q): crate::error::Query<StatsQuery>,
) -> ApiResult<Json<FleetStats>> {
    let org = access.org.id;
    let days = q.days.unwrap_or(30).clamp(1, 365);
    // What telemetry summed in memory so far counts too.
    state.hub.flush_rollups(&state.store).await?;
    let since = now_ms() - i64::from(days) * 24 * HOUR_MS;
    let from = since - since.rem_euclid(HOUR_MS);
    let mut time: HashMap<PrinterId, BTreeMap<String, f64>> = HashMap::new();
    for (printer, s, ms) in state.store.fleet_time(org, from).await? {
        *time.entry(printer).or_default().entry(s).or_default() += ms as f64 / 1000.0;
    }
    let mut ends: HashMap<PrinterId, JobCounts> = HashMap::new();
    let mut jobs = JobCounts::default();
    for (printer, s, n) in state.store.job_ends(org, from).await? {
        let mut c = JobCounts::default();
        let n = u64::try_from(n).unwrap_or(0);
        match s {
            JobState::Completed => c.completed = n,
            JobState::Failed => c.failed = n,
            JobState::Cancelled => c.cancelled = n,
            _ => c.refused = n,
        }
        jobs.add(&c);
        if let Some(p) = printer {
            ends.entry(p).or_default().add(&c);
        }
    }
    let printers: Vec<PrinterStats> = state
        .store
        .printers(org)
        .await?
        .into_iter()
        .map(|p| {
            let seconds = time.remove(&p.id).unwrap_or_default();
            let jobs = ends.remove(&p.id).unwrap_or_default();
            PrinterStats {
                printer_id: p.id,
                printer: p.info.name,
                utilisation: utilisation(&seconds),
                success_rate: jobs.success_rate(),
                seconds,
                jobs,
            }
        })
        .collect();
    let mut all: BTreeMap<String, f64> = BTreeMap::new();
    for p in &printers {
        for (s, secs) in &p.seconds {
            *all.entry(s.clone()).or_default() += secs;
        }
    }
    Ok(Json(FleetStats {
        from: rfc3339(from),
        days,
        printing_hours: all.get("printing").copied().unwrap_or(0.0) / 3600.0,
        utilisation: utilisation(&all),
        seconds: all,
        success_rate: jobs.success_rate(),
        jobs,
        printers,
    }))
}

/// Printing over all the time counted; 0 when nothing was.
fn utilisation(seconds: &BTreeMap<String, f64>) -> f64 {
    let total: f64 = seconds.values().sum();
    if total <= 0.0 {
        return 0.0;
    }
    seconds.get("printing").copied().unwrap_or(0.0) / total
}
