//! `hearth stats`: the fleet over the last days: per printer, hours printing, idle, paused, in
//! error and offline, its utilisation, and how the jobs that ended on it ended.

use crate::cmd::fleet::{Table, hms, print_json};
use crate::ctx::Ctx;
use hearth_proto::api::{FleetStats, JobCounts};
use std::collections::BTreeMap;

pub async fn run(days: u32, json: bool) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let stats = ctx.client.fleet_stats(ctx.org()?, days).await?;
    if json {
        return print_json(&stats);
    }
    table(&stats).print();
    Ok(())
}

fn table(s: &FleetStats) -> Table {
    let mut t = Table::new(&[
        "PRINTER",
        "PRINTING",
        "IDLE",
        "PAUSED",
        "ERROR",
        "OFFLINE",
        "USE",
        "DONE",
        "FAILED",
        "CANCELLED",
        "SUCCESS",
    ]);
    for p in &s.printers {
        t.row(row(&p.printer, &p.seconds, p.utilisation, &p.jobs));
    }
    t.row(row(
        &format!("all, last {} days", s.days),
        &s.seconds,
        s.utilisation,
        &s.jobs,
    ));
    t
}

fn row(name: &str, secs: &BTreeMap<String, f64>, use_: f64, jobs: &JobCounts) -> Vec<String> {
    let time = |states: &[&str]| {
        let s: f64 = states.iter().filter_map(|k| secs.get(*k)).sum();
        if s > 0.0 {
            hms(s.round() as u64)
        } else {
            "-".into()
        }
    };
    vec![
        name.to_owned(),
        time(&["printing"]),
        time(&["idle"]),
        time(&["paused", "pausing"]),
        time(&["error"]),
        time(&["offline"]),
        format!("{:.0}%", use_ * 100.0),
        jobs.completed.to_string(),
        jobs.failed.to_string(),
        jobs.cancelled.to_string(),
        jobs.success_rate()
            .map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "-".into()),
    ]
}
