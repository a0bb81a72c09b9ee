//! `hearth maintenance ...`: printers' maintenance reminders. A task of a fixed kind is due every
//! so many hours of printing (counted from the printer's history) and/or days since it was last
//! done; the server reports it (`maintenance.due`) and can hold the printer until it is done.

use anyhow::{Context, bail};
use hearth_proto::api::Printer;
use hearth_proto::maintenance::{
    MaintenanceKind, MaintenanceSchedule, MaintenanceStatus, MaintenanceTask,
};

use crate::cmd::fleet::{Table, find_printer, print_json, printers_of};
use crate::ctx::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum MaintenanceCmd {
    /// Every task and where it stands (also what `hearth maintenance` alone shows).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set up a task on one or more printers, or change its schedule (operators).
    Set(SetArgs),
    /// The task was done now: its hours and days count again from here (operators). A printer it
    /// held takes jobs again.
    Done(TaskArgs),
    /// Remove a task (operators).
    Remove(TaskArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The printer, by name or id; several separated by commas (mk4-left,mk4-right).
    pub printer: String,
    /// nozzle, lubrication, belts, build_plate, hotend, extruder, fans, filter, calibration or
    /// service.
    pub kind: MaintenanceKind,
    /// Due after this many hours of printing.
    #[arg(long, value_name = "HOURS")]
    pub every_hours: Option<u32>,
    /// Due this many days after it was done.
    #[arg(long, value_name = "DAYS")]
    pub every_days: Option<u32>,
    /// Hold the printer (no new job; what it prints goes on) once the task is due, until it is
    /// marked done.
    #[arg(long)]
    pub hold_when_due: bool,
    /// When it was last done (2026-11-02, or an RFC 3339 time), to count from the printer's
    /// history; by default a new task counts from now.
    #[arg(long, value_name = "DATE")]
    pub last_done: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct TaskArgs {
    /// The printer, by name or id.
    pub printer: String,
    pub kind: MaintenanceKind,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: &MaintenanceCmd) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    match cmd {
        MaintenanceCmd::List { json } => list(&ctx, *json).await,
        MaintenanceCmd::Set(a) => {
            let printers = printers_of(&ctx).await?;
            let targets = a
                .printer
                .split(',')
                .map(|n| find_printer(&printers, n.trim()))
                .collect::<anyhow::Result<Vec<&Printer>>>()?;
            let schedule = MaintenanceSchedule {
                every_print_hours: a.every_hours,
                every_days: a.every_days,
                hold_when_due: a.hold_when_due,
                last_done: a.last_done.as_deref().map(last_done).transpose()?,
            };
            if schedule.every_print_hours.is_none() && schedule.every_days.is_none() {
                bail!("say when the task is due: --every-hours HOURS, --every-days DAYS or both");
            }
            let mut set = Vec::new();
            for p in targets {
                set.push(
                    ctx.client
                        .set_maintenance(org, p.id, a.kind, &schedule)
                        .await
                        .with_context(|| {
                            format!("cannot set up {} on printer {:?}", a.kind.words(), p.name)
                        })?,
                );
            }
            show(&set, a.json)
        }
        MaintenanceCmd::Done(a) => {
            let printers = printers_of(&ctx).await?;
            let p = find_printer(&printers, &a.printer)?;
            let t = ctx
                .client
                .maintenance_done(org, p.id, a.kind)
                .await
                .with_context(|| format!("cannot mark {} done on {:?}", a.kind.words(), p.name))?;
            show(&[t], a.json)
        }
        MaintenanceCmd::Remove(a) => {
            let printers = printers_of(&ctx).await?;
            let p = find_printer(&printers, &a.printer)?;
            ctx.client
                .remove_maintenance(org, p.id, a.kind)
                .await
                .with_context(|| format!("cannot remove {} from {:?}", a.kind.words(), p.name))?;
            if !a.json {
                println!("removed {} from {}", a.kind.words(), p.name);
            }
            Ok(())
        }
    }
}

/// A date (the start of that day, UTC) or an RFC 3339 time, as the API takes it.
fn last_done(s: &str) -> anyhow::Result<String> {
    let s = s.trim();
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    match hearth_proto::time_fmt::parse_rfc3339(&full) {
        Some(ms) => Ok(hearth_proto::time_fmt::rfc3339(ms)),
        None => bail!("--last-done {s:?}: give a date (2026-11-02) or an RFC 3339 time"),
    }
}

async fn list(ctx: &Ctx, json: bool) -> anyhow::Result<()> {
    let tasks = ctx.client.maintenance(ctx.org()?).await?;
    if tasks.is_empty() && !json {
        println!(
            "no maintenance tasks: `hearth maintenance set PRINTER nozzle --every-hours 300` sets one up"
        );
        return Ok(());
    }
    show(&tasks, json)
}

fn show(tasks: &[MaintenanceTask], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&tasks);
    }
    let mut t = Table::new(&["PRINTER", "TASK", "EVERY", "SINCE LAST DONE", "STATUS"]);
    for m in tasks {
        t.row(vec![
            m.printer.clone(),
            m.kind.words(),
            every(m),
            format!(
                "{} h printing, on {}",
                m.print_hours_since,
                day(&m.last_done)
            ),
            status(m),
        ]);
    }
    t.print();
    Ok(())
}

fn every(m: &MaintenanceTask) -> String {
    let mut parts = Vec::new();
    if let Some(h) = m.every_print_hours {
        parts.push(format!("{h} h printing"));
    }
    if let Some(d) = m.every_days {
        parts.push(format!("{d} days"));
    }
    let mut s = parts.join(" or ");
    if m.hold_when_due {
        s.push_str(" (holds)");
    }
    s
}

fn day(rfc3339: &str) -> &str {
    rfc3339.get(..10).unwrap_or(rfc3339)
}

/// `due: 0.5 h over`, `soon: 12 h left`, `ok: 80 h left, by 2026-12-30`.
fn status(m: &MaintenanceTask) -> String {
    let mut when = Vec::new();
    if let Some(left) = m.print_hours_left {
        when.push(if left < 0.0 {
            format!("{:.1} h over", -left)
        } else {
            format!("{left:.1} h left")
        });
    }
    if let Some(on) = &m.due_on {
        when.push(format!("by {}", day(on)));
    }
    let word = match m.status {
        MaintenanceStatus::Due => "DUE",
        MaintenanceStatus::Soon => "soon",
        MaintenanceStatus::Ok => "ok",
    };
    format!("{word}: {}", when.join(", "))
}
