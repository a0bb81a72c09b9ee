//! `hearth stats`: the fleet over the last days: per printer, hours printing, idle, paused, in
//! error and offline, its utilisation, and how the jobs that ended on it ended.

use crate::cmd::fleet::{Table, csv_field, hms, print_json};
use crate::ctx::Ctx;
use hearth_proto::api::{FleetStats, JobCounts};
use hearth_proto::inventory::MemberUsage;
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

/// `hearth stats --members`: per member, what a makerspace or a print bureau bills by.
pub async fn members(days: u32, csv: bool, json: bool) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let usage = ctx.client.member_usage(ctx.org()?, i64::from(days)).await?;
    if json {
        return print_json(&usage);
    }
    if csv {
        print!("{}", members_csv(&usage));
        return Ok(());
    }
    if usage.is_empty() {
        println!("No job ended in the last {days} days.");
        return Ok(());
    }
    let mut t = Table::new(&[
        "MEMBER",
        "DONE",
        "FAILED",
        "CANCELLED",
        "SPOOLS",
        "COST",
        "REVEALED",
        "TIME",
    ]);
    for u in &usage {
        t.row(vec![
            shown_login(u),
            u.jobs.completed.to_string(),
            u.jobs.failed.to_string(),
            u.jobs.cancelled.to_string(),
            format!("{:.0} g", u.spool_grams),
            u.cost.map_or("-".into(), |c| format!("{c:.2}")),
            revealed(u),
            hms(u.estimated_seconds as u64),
        ]);
    }
    t.print();
    println!(
        "SPOOLS: taken from the inventory's spools by jobs that ended (a failed job's share done \
         too). REVEALED and TIME: what completed jobs' senders revealed (grams, slicer's time)."
    );
    Ok(())
}

fn shown_login(u: &MemberUsage) -> String {
    if u.login.is_empty() {
        u.user_id.to_string()
    } else {
        u.login.clone()
    }
}

/// "120 g", or "120 g (2 of 3 jobs)" when some completed jobs did not reveal their grams.
fn revealed(u: &MemberUsage) -> String {
    let completed = u32::try_from(u.jobs.completed).unwrap_or(u32::MAX);
    match u.revealed_grams_jobs {
        0 if completed > 0 => "not revealed".into(),
        n if n < completed => format!("{:.0} g ({n} of {completed} jobs)", u.revealed_grams),
        _ => format!("{:.0} g", u.revealed_grams),
    }
}

/// The members' usage as CSV (RFC 4180), for a spreadsheet.
fn members_csv(usage: &[MemberUsage]) -> String {
    let mut out = String::from(
        "member,completed,failed,cancelled,refused,spool_g,cost,revealed_g,revealed_g_jobs,estimated_s\r\n",
    );
    for u in usage {
        out.push_str(&format!(
            "{},{},{},{},{},{:.1},{},{:.1},{},{:.0}\r\n",
            csv_field(&shown_login(u)),
            u.jobs.completed,
            u.jobs.failed,
            u.jobs.cancelled,
            u.jobs.refused,
            u.spool_grams,
            u.cost.map_or(String::new(), |c| format!("{c:.2}")),
            u.revealed_grams,
            u.revealed_grams_jobs,
            u.estimated_seconds,
        ));
    }
    out
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
