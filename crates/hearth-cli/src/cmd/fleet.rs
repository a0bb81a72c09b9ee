//! `hearth printers`, `hearth status`, `hearth jobs`, `hearth pause|resume|cancel JOB`: readable
//! tables by default, `--json` for scripts.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal as _, Write as _};

use anyhow::{Context, bail};
use hearth_proto::agent::ActionWhen;
use hearth_proto::agent::{JobState, PrinterState};
use hearth_proto::api::{Event, HeatRequest, Job, JobPriority, LoadedRequest, Printer};
use hearth_proto::ids::{JobId, PrinterId};

use crate::cmd::files::{Label, Opened, job_labels};
use crate::cmd::upload::pool_misfit;
use crate::ctx::Ctx;
use hearth_crypto::TrustedState;

/// A plain text table with columns sized to their content.
#[derive(Debug)]
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Self {
        Self {
            head: head.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }

    pub fn render(&self) -> String {
        let mut w: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(x) = w.get_mut(i) {
                    *x = (*x).max(c.chars().count());
                }
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.head).chain(&self.rows) {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<width$}", width = w.get(i).copied().unwrap_or(0)))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn snake<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn hms(s: u64) -> String {
    let (h, m) = (s / 3600, s / 60 % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{:02}s", s % 60)
    }
}

fn printers_table(printers: &[&Printer]) -> Table {
    let mut t = Table::new(&[
        "NAME",
        "MODEL",
        "STATE",
        "PROGRESS",
        "REMAINING",
        "TEMPS",
        "MATERIAL",
        "POOLS",
        "CAMERA",
    ]);
    for p in printers {
        let tl = &p.telemetry;
        let temps = tl
            .heaters
            .iter()
            .map(|h| match h.target {
                Some(t) => format!("{} {:.0}/{:.0}", h.name, h.actual, t),
                None => format!("{} {:.0}", h.name, h.actual),
            })
            .collect::<Vec<_>>()
            .join(" ");
        let mut state = snake(&tl.state);
        if let Some(e) = &tl.error {
            state.push_str(&format!(" ({e})"));
        }
        if p.held {
            state.push_str(&format!(" (held: `hearth printers release {}`)", p.name));
        }
        if p.bed.to_clear.is_some() {
            state.push_str(&format!(
                " (bed to clear: `hearth printers bed {} --cleared`)",
                p.name
            ));
        }
        t.row(vec![
            p.name.clone(),
            p.model.clone(),
            state,
            tl.progress
                .map(|x| format!("{:.0}%", x * 100.0))
                .unwrap_or_else(|| "-".into()),
            tl.remaining_seconds.map(hms).unwrap_or_else(|| "-".into()),
            if temps.is_empty() { "-".into() } else { temps },
            // "(set)": a member said so with `hearth printers load`, not the agent's configuration.
            [
                p.material.clone(),
                p.color.clone(),
                p.loaded_by_member.then(|| "(set)".to_owned()),
                p.spool.as_ref().map(|s| {
                    format!(
                        "[{} left]",
                        crate::cmd::inventory::grams(f64::from(s.remaining_grams))
                    )
                }),
                // An AMS: each slot as the printer names it, with its material and what is left
                // on the inventory spool in it.
                (!tl.slots.is_empty() || !p.slot_spools.is_empty()).then(|| {
                    let cell = |name: &str, material: &str| {
                        let left = p
                            .slot_spools
                            .iter()
                            .find(|s| s.slot == name)
                            .map(|s| {
                                let g = f64::from(s.remaining_grams);
                                format!(" [{} left]", crate::cmd::inventory::grams(g))
                            })
                            .unwrap_or_default();
                        format!("{name} {material}{left}")
                    };
                    let reported = tl.slots.iter().map(|s| cell(&s.name, &s.material));
                    // Spools in slots the printer does not report (now).
                    let unreported = p
                        .slot_spools
                        .iter()
                        .filter(|s| !tl.slots.iter().any(|t| t.name == s.slot))
                        .map(|s| cell(&s.slot, &s.material));
                    let slots: Vec<String> = reported.chain(unreported).collect();
                    format!("slots {}", slots.join(", "))
                }),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
            p.pools.join(","),
            camera_cell(p),
        ]);
    }
    t
}

/// How old the printer's latest sealed camera frame is (`hearth camera NAME` opens it).
fn camera_cell(p: &Printer) -> String {
    let Some(c) = &p.camera else {
        return "-".into();
    };
    match c
        .snapshot_at
        .as_deref()
        .and_then(hearth_proto::time_fmt::parse_rfc3339)
    {
        Some(at) => format!(
            "frame {} ago",
            crate::cmd::camera::ago((hearth_proto::time_fmt::now_ms() - at) / 1000)
        ),
        None => "no frame yet".into(),
    }
}

/// The queued jobs among `jobs` in the fleet queue's order: higher priority first, then older
/// (the order the server hands them out in); those waiting for an admin's approval, which no
/// printer takes yet, are left out.
pub(crate) fn in_queue_order<'a>(jobs: &[&'a Job]) -> Vec<&'a Job> {
    let mut queued: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| j.state == JobState::Queued && !j.awaits_approval())
        .collect();
    queued.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.created_at.cmp(&b.created_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    queued
}

/// A queued job's place: `#2`, with its priority when it is not the default.
fn queue_place(position: usize, priority: i64) -> String {
    if priority == 0 {
        format!("#{position}")
    } else {
        format!("#{position} (priority {priority})")
    }
}

/// The jobs, with their place in the queue and why a queued job waits (`all`: every job known,
/// for the queue and the jobs on each printer).
/// What each job's NAME says: its label opened here ([`job_names`]).
pub(crate) type Names = HashMap<JobId, Result<String, String>>;

/// The names of the files `jobs` print, from their sealed labels opened on this device
/// ([`job_labels`]). Without the device key or a verified chain there are none, and a warning says
/// why (the rest of the table needs neither).
pub(crate) async fn job_names(ctx: &mut Ctx, jobs: &[&Job]) -> Names {
    LabelCache::default().names(ctx, jobs).await
}

/// Opens job labels as they come (`hearth status`): the organisation chain is read and verified
/// once, and read again only when a label does not check out against it (signed by a member who
/// joined meanwhile, say); each sealed label is opened once.
#[derive(Default)]
pub(crate) struct LabelCache {
    trusted: Option<TrustedState>,
    opened: Opened,
}

impl LabelCache {
    /// [`job_names`], with what was read before.
    pub(crate) async fn names(&mut self, ctx: &mut Ctx, jobs: &[&Job]) -> Names {
        if jobs.iter().all(|j| j.label.is_none()) {
            return Names::new();
        }
        loop {
            let fresh = self.trusted.is_none();
            if fresh {
                match ctx.trusted().await {
                    Ok((_, t)) => self.trusted = Some(t),
                    Err(e) => return unnamed(&e),
                }
            }
            let Some(trusted) = &self.trusted else {
                return Names::new();
            };
            match job_labels(ctx, trusted, jobs, &mut self.opened).await {
                Ok(labels) if fresh || labels.values().all(Result::is_ok) => {
                    return names_of(labels);
                }
                Err(e) if fresh => return unnamed(&e),
                // Read the chain again, once.
                _ => self.trusted = None,
            }
        }
    }
}

/// No names, and why.
fn unnamed(e: &anyhow::Error) -> Names {
    eprintln!("warning: the jobs' names cannot be opened on this device: {e:#}");
    Names::new()
}

/// The names that `labels` ([`job_labels`]) give, or why each could not be opened.
pub(crate) fn names_of(labels: HashMap<JobId, Result<Label, String>>) -> Names {
    labels
        .into_iter()
        .map(|(id, l)| (id, l.map(|l| l.name)))
        .collect()
}

/// A job's NAME cell.
fn name_cell(names: &Names, id: JobId) -> String {
    match names.get(&id) {
        Some(Ok(n)) => n.clone(),
        Some(Err(p)) => format!("(cannot open: {p})"),
        None => "-".into(),
    }
}

/// Jobs as `--json` prints them: each with `name`, its label opened here (null when it has none
/// or it cannot be opened; then `label_problem` says why).
fn named_json(jobs: &[&Job], names: &Names) -> anyhow::Result<Vec<serde_json::Value>> {
    jobs.iter()
        .map(|j| {
            let mut v = serde_json::to_value(j)?;
            match names.get(&j.id) {
                Some(Ok(n)) => v["name"] = serde_json::json!(n),
                Some(Err(p)) => {
                    v["name"] = serde_json::Value::Null;
                    v["label_problem"] = serde_json::json!(p);
                }
                None => v["name"] = serde_json::Value::Null,
            }
            Ok(v)
        })
        .collect()
}

fn jobs_table(jobs: &[&Job], all: &[&Job], printers: &[&Printer], labels: &Names) -> Table {
    let names: BTreeMap<PrinterId, &str> =
        printers.iter().map(|p| (p.id, p.name.as_str())).collect();
    let places: BTreeMap<JobId, String> = in_queue_order(all)
        .iter()
        .enumerate()
        .map(|(i, j)| (j.id, queue_place(i + 1, j.priority)))
        .collect();
    let mut t = Table::new(&[
        "JOB",
        "NAME",
        "STATE",
        "QUEUE",
        "TARGET",
        "SUBMITTED",
        "MATERIAL",
        "TIME",
        "MESSAGE",
    ]);
    for j in jobs {
        let target = match (&j.printer, &j.pool) {
            (Some(p), _) => names
                .get(p)
                .map_or_else(|| p.to_string(), |n| (*n).to_owned()),
            (None, Some(pool)) => format!("pool {pool}"),
            (None, None) => "-".into(),
        };
        t.row(vec![
            j.id.to_string(),
            name_cell(labels, j.id),
            snake(&j.state),
            match places.get(&j.id) {
                Some(place) => place.clone(),
                None if j.awaits_approval() => "awaiting approval".into(),
                None => "-".into(),
            },
            target,
            j.created_at.clone(),
            j.facts.materials().unwrap_or_else(|| "-".into()),
            j.facts
                .estimated_seconds
                .map(hms)
                .unwrap_or_else(|| "-".into()),
            j.message
                .clone()
                .unwrap_or_else(|| match (&j.state, &j.pool, &j.printer) {
                    (JobState::Queued, Some(pool), _) => {
                        pool_misfit(&j.facts, pool, printers.iter().copied())
                            .map(|why| format!("waiting: {why}"))
                            .unwrap_or_default()
                    }
                    // A job for a named printer leaves the queue once the printer is free.
                    (JobState::Queued, None, Some(id)) => printers
                        .iter()
                        .find(|p| p.id == *id)
                        .and_then(|p| {
                            let on_it = all.iter().find(|o| {
                                o.printer == Some(p.id)
                                    && !o.state.is_final()
                                    && o.state != JobState::Queued
                            });
                            match (p.telemetry.state, on_it) {
                                (PrinterState::Offline, _) => Some(format!(
                                    "waiting: printer {:?} is offline (its agent is not connected)",
                                    p.name
                                )),
                                (_, Some(o)) => Some(format!(
                                    "waiting for printer {:?} to be free (job {} is {})",
                                    p.name,
                                    o.id,
                                    snake(&o.state)
                                )),
                                (PrinterState::Idle, None) => None,
                                (other, None) => Some(format!(
                                    "waiting for printer {:?} to be free ({})",
                                    p.name,
                                    snake(&other)
                                )),
                            }
                        })
                        .unwrap_or_default(),
                    _ => String::new(),
                }),
        ]);
    }
    t
}

/// The printer a member named, by name or id, among `printers`.
pub(crate) fn find_printer<'a>(printers: &'a [Printer], name: &str) -> anyhow::Result<&'a Printer> {
    let matches: Vec<&Printer> = printers
        .iter()
        .filter(|p| p.name == name || p.id.to_string() == name)
        .collect();
    match matches.as_slice() {
        [p] => Ok(p),
        [] => bail!("no printer named {name:?} (see `hearth printers`)"),
        _ => bail!("several printers are named {name:?}: give its id instead"),
    }
}

pub(crate) async fn printers_of(ctx: &Ctx) -> anyhow::Result<Vec<Printer>> {
    let org = ctx.org()?;
    Ok(ctx
        .client
        .raw_get(&format!("/api/v1/orgs/{org}/printers"))
        .await?)
}

#[derive(Debug, clap::Subcommand)]
pub enum PrintersCmd {
    /// Say what a printer has loaded and fitted now, after a spool or nozzle change at the printer
    /// (in place of its agent's configuration, until that configuration changes).
    Load(LoadArgs),
    /// The printer's bed between jobs: say it is clear (`--cleared`, the part taken off), or
    /// whether it waits for that before its next job (`--confirm on|off`, admins).
    Bed(BedArgs),
    /// Hold a printer: no new job goes to it (maintenance, a nozzle change); what it prints goes on.
    Hold(PrinterArg),
    /// Release a held printer: it takes jobs again.
    Release(PrinterArg),
    /// Preheat idle printers (for their loaded material, or to the temperatures given) or cool
    /// them down (`--off`); each printer's agent sets the targets within its own limits.
    Heat(HeatArgs),
    /// A printer's temperatures over the last minutes (30 at most, a sample per 5 s), as the
    /// server keeps them for the dashboard's chart.
    Temps(TempsArgs),
    /// Tune printing printers: their speed, flow or part-cooling fan, within each printer's
    /// agent's limits (`[printer.tune]`).
    Tune(TuneArgs),
    /// Run one of the printers' actions (homing, fans, a light, a Klipper macro), as each
    /// printer's agent configuration defines it (`[[printer.action]]`).
    Run(RunArgs),
    /// List what each printer offers to `hearth printers run`.
    Actions(ActionsArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The action's id, e.g. `home` or `light-on` (`hearth printers actions` lists them).
    pub action: String,
    /// The printers, by name (or id).
    #[arg(required_unless_present = "pool")]
    pub printers: Vec<String>,
    /// Every printer of this pool that offers the action (the others are named and skipped).
    #[arg(long)]
    pub pool: Option<String>,
    /// Run it without asking what the action's configuration asks first ("Is the bed clear?").
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Whether to wait for the printers' agents to say how a request went.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Do not wait for the agents to say it was done: the server took the request.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the agents, seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub wait: u64,
}

/// Sends one request to a printer's agent with `send` and waits up to `within` for the agent's
/// answer on the organisation's event stream (subscribed first): `Some(Ok)` done, `Some(Err)`
/// refused or failed with why, `None` no answer in time.
pub(crate) async fn ask_agent(
    ctx: &Ctx,
    within: std::time::Duration,
    send: impl AsyncFnOnce() -> hearth_client::Result<hearth_proto::api::Accepted>,
) -> anyhow::Result<Option<Result<(), String>>> {
    let mut events = ctx.client.events(ctx.org()?).await?;
    let accepted = send().await?;
    let deadline = tokio::time::Instant::now() + within;
    while let Some((request, ok, message)) = next_answer(&mut events, deadline).await? {
        if request == accepted.request {
            return Ok(Some(match ok {
                true => Ok(()),
                false => Err(message.unwrap_or_else(|| "not done".into())),
            }));
        }
    }
    Ok(None)
}

/// The next answer of a printer's agent on `events` (request id, done, why not), skipping other
/// events; `None` once `deadline` passed or the server closed the stream.
async fn next_answer(
    events: &mut hearth_client::Events,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Option<(String, bool, Option<String>)>> {
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, events.next()).await else {
            return Ok(None);
        };
        match next.context("the live event stream broke")? {
            None => return Ok(None),
            Some(Event::Outcome {
                request,
                ok,
                message,
                ..
            }) => return Ok(Some((request, ok, message))),
            Some(_) => {}
        }
    }
}

/// Requests sent to printers' agents, each with what to say of it, waited for on the
/// organisation's event stream (subscribed before the first was sent).
struct Sent {
    events: Option<hearth_client::Events>,
    within: std::time::Duration,
    /// Request id, then the printer's name and what was asked, as said.
    waiting: Vec<(String, String, String)>,
}

impl Sent {
    async fn start(ctx: &Ctx, wait: &WaitArgs) -> anyhow::Result<Self> {
        let events = match wait.no_wait {
            true => None,
            false => Some(
                ctx.client
                    .events(ctx.org()?)
                    .await
                    .context("cannot follow the printers' answers (--no-wait does without)")?,
            ),
        };
        Ok(Self {
            events,
            within: std::time::Duration::from_secs(wait.wait),
            waiting: Vec::new(),
        })
    }

    /// How the server answered `what` for `printer`: taken (waited for, or said sent), or
    /// refused, which is said here; `false` when refused.
    fn sent(
        &mut self,
        printer: &str,
        what: String,
        answer: hearth_client::Result<hearth_proto::api::Accepted>,
    ) -> bool {
        match answer {
            Ok(_) if self.events.is_none() => println!("{printer}: {what} sent"),
            Ok(accepted) => self
                .waiting
                .push((accepted.request, printer.to_owned(), what)),
            Err(e) => {
                eprintln!("{printer}: {e}");
                return false;
            }
        }
        true
    }

    /// Waits for the agents' answers; says each; returns how many were not done (refused,
    /// failed, or not answered in time).
    async fn finish(mut self) -> anyhow::Result<usize> {
        let Some(events) = self.events.as_mut() else {
            return Ok(0);
        };
        let mut failed = 0;
        let deadline = tokio::time::Instant::now() + self.within;
        while !self.waiting.is_empty() {
            let Some((request, ok, message)) = next_answer(events, deadline).await? else {
                break;
            };
            let Some(i) = self.waiting.iter().position(|w| w.0 == request) else {
                continue;
            };
            let (_, printer, what) = self.waiting.remove(i);
            if ok {
                println!("{printer}: {what}");
            } else {
                eprintln!("{printer}: {what}: {}", message.unwrap_or_default());
                failed += 1;
            }
        }
        for (_, printer, what) in &self.waiting {
            eprintln!(
                "{printer}: {what}: sent, but its agent did not say within {} s how it went",
                self.within.as_secs()
            );
            failed += 1;
        }
        Ok(failed)
    }
}

#[derive(Debug, clap::Args)]
pub struct ActionsArgs {
    /// The printers, by name (or id); every printer when none is given.
    pub printers: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PrinterArg {
    /// The printer, by name (or id).
    pub printer: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct HeatArgs {
    /// The printers, by name (or id).
    #[arg(required_unless_present = "pool")]
    pub printers: Vec<String>,
    /// Every printer of this pool (those not idle, or not heatable from here, are named and
    /// skipped).
    #[arg(long)]
    pub pool: Option<String>,
    /// The nozzle's target, °C (0: off).
    #[arg(long)]
    pub nozzle: Option<f32>,
    /// The bed's target, °C (0: off).
    #[arg(long)]
    pub bed: Option<f32>,
    /// Cool down: both heaters off.
    #[arg(long, conflicts_with_all = ["nozzle", "bed"])]
    pub off: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["speed", "flow", "fan"])))]
pub struct TuneArgs {
    /// The printers, by name (or id).
    #[arg(required_unless_present = "pool")]
    pub printers: Vec<String>,
    /// Every printer of this pool (those not printing, or not tunable from here, are named and
    /// skipped).
    #[arg(long)]
    pub pool: Option<String>,
    /// Speed, percent of the file's (M220; 100: as sliced).
    #[arg(long, value_name = "PERCENT")]
    pub speed: Option<u16>,
    /// Flow, percent of the file's (M221; 100: as sliced).
    #[arg(long, value_name = "PERCENT")]
    pub flow: Option<u16>,
    /// The part-cooling fan, percent of full (M106; 0: off).
    #[arg(long, value_name = "PERCENT")]
    pub fan: Option<u8>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
pub struct TempsArgs {
    /// The printer, by name (or id).
    pub printer: String,
    /// How far back, minutes (1 to 30).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=30))]
    pub minutes: i64,
    /// One line per heater and sample (`time,heater,actual,target`), for a spreadsheet.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    #[arg(long)]
    pub json: bool,
}

/// `hearth printers temps NAME`: the printer's recent temperatures, oldest first; a line per
/// sample with each heater's `actual/target`.
pub async fn temps(args: &TempsArgs) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let p = find_printer(&printers, &args.printer)?;
    let samples: Vec<hearth_proto::api::TemperatureSample> = ctx
        .client
        .raw_get(&format!(
            "/api/v1/orgs/{org}/printers/{}/temperatures?minutes={}",
            p.id, args.minutes
        ))
        .await?;
    if args.json {
        return print_json(&samples);
    }
    if args.csv {
        println!("time,heater,actual,target");
        for s in &samples {
            for h in &s.heaters {
                let target = h.target.map(|t| t.to_string()).unwrap_or_default();
                println!("{},{},{},{target}", s.at, csv_field(&h.name), h.actual);
            }
        }
        return Ok(());
    }
    if samples.is_empty() {
        println!(
            "{}: no temperatures in the last {} min (the server keeps what the printer's agent \
             reported since the server started)",
            p.name, args.minutes
        );
        return Ok(());
    }
    for s in &samples {
        let heaters: Vec<String> = s
            .heaters
            .iter()
            .map(|h| match h.target {
                Some(t) if t > 0.0 => format!("{} {:.1}/{:.0}", h.name, h.actual, t),
                _ => format!("{} {:.1}", h.name, h.actual),
            })
            .collect();
        println!("{}  {}", s.at, heaters.join("  "));
    }
    Ok(())
}

/// `hearth printers tune`: tunes printing printers; fails if a printer named did not take it
/// (one of the pool's that is not printing or not tunable is skipped).
pub async fn tune(args: &TuneArgs) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let chosen = chosen_printers(&printers, &args.printers, args.pool.as_deref())?;
    let req = hearth_proto::agent::Tune {
        speed_percent: args.speed,
        flow_percent: args.flow,
        fan_percent: args.fan,
    };
    let mut sent = Sent::start(&ctx, &args.wait).await?;
    let mut failed = 0;
    for (p, from_pool) in chosen {
        if from_pool && (p.tune.is_none() || !p.telemetry.state.job_running()) {
            println!(
                "{}: skipped, {}",
                p.name,
                match p.tune {
                    None => "it cannot be tuned from here",
                    Some(_) => "it is not printing",
                }
            );
            continue;
        }
        let answer = ctx.client.tune_printer(org, p.id, &req).await;
        if !sent.sent(&p.name, tune_said(&req), answer) {
            failed += 1;
        }
    }
    failed += sent.finish().await?;
    if failed > 0 {
        anyhow::bail!("{failed} printer(s) not tuned");
    }
    Ok(())
}

/// "speed 120 %, flow 95 %, fan off", as sent.
pub(crate) fn tune_said(req: &hearth_proto::agent::Tune) -> String {
    let fan = req.fan_percent.map(|f| match f {
        0 => "fan off".to_owned(),
        f => format!("fan {f} %"),
    });
    [
        req.speed_percent.map(|s| format!("speed {s} %")),
        req.flow_percent.map(|f| format!("flow {f} %")),
        fan,
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

/// `hearth printers heat`: preheat or cool down printers; fails if any printer was not reached.
pub async fn heat(args: &HeatArgs) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let chosen = chosen_printers(&printers, &args.printers, args.pool.as_deref())?;
    let mut sent = Sent::start(&ctx, &args.wait).await?;
    let mut failed = 0;
    for (p, _) in chosen {
        let req = if args.off {
            HeatRequest {
                nozzle_c: Some(0.0),
                bed_c: Some(0.0),
            }
        } else if args.nozzle.is_some() || args.bed.is_some() {
            HeatRequest {
                nozzle_c: args.nozzle,
                bed_c: args.bed,
            }
        } else if let Some(preset) = &p.preheat {
            preset.clone()
        } else {
            eprintln!(
                "{}: no preheat for its material ({}): give --nozzle and --bed",
                p.name,
                p.material.as_deref().unwrap_or("none set")
            );
            failed += 1;
            continue;
        };
        let answer = ctx.client.heat_printer(org, p.id, &req).await;
        if !sent.sent(&p.name, heat_said(&req), answer) {
            failed += 1;
        }
    }
    failed += sent.finish().await?;
    if failed > 0 {
        anyhow::bail!("{failed} printer(s) not set");
    }
    Ok(())
}

/// The printers named (by name or id), then those of `pool` not named, each once, with whether
/// it came from the pool.
fn chosen_printers<'a>(
    printers: &'a [Printer],
    names: &[String],
    pool: Option<&str>,
) -> anyhow::Result<Vec<(&'a Printer, bool)>> {
    let mut chosen: Vec<(&Printer, bool)> = names
        .iter()
        .map(|n| Ok((find_printer(printers, n)?, false)))
        .collect::<anyhow::Result<_>>()?;
    if let Some(pool) = pool {
        if !printers.iter().any(|p| p.pools.iter().any(|q| q == pool)) {
            anyhow::bail!("no printer is in pool {pool:?}");
        }
        for p in printers {
            if p.pools.iter().any(|q| q == pool) && !chosen.iter().any(|(c, _)| c.id == p.id) {
                chosen.push((p, true));
            }
        }
    }
    Ok(chosen)
}

/// `hearth printers run ACTION`: runs an action on printers; fails if a printer named did not
/// take it (one of the pool's that does not offer it is skipped).
pub async fn run_action(args: &RunArgs) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let chosen = chosen_printers(&printers, &args.printers, args.pool.as_deref())?;
    let mut sent = Sent::start(&ctx, &args.wait).await?;
    let mut failed = 0;
    for (p, from_pool) in chosen {
        let offered = p.actions.iter().find(|a| a.id == args.action);
        if from_pool && offered.is_none() {
            println!("{}: skipped, it has no action {:?}", p.name, args.action);
            continue;
        }
        if let Some((a, question)) = offered.and_then(|a| Some((a, a.confirm.as_deref()?))) {
            let asked = format!("{}: {}: {question}", p.name, a.label);
            let yes =
                args.yes || (std::io::stdin().is_terminal() && crate::profile::confirm_tty(&asked));
            if !yes {
                eprintln!("{asked} Not run (--yes runs it without asking).");
                failed += 1;
                continue;
            }
        }
        let answer = ctx.client.run_printer_action(org, p.id, &args.action).await;
        let label = offered.map_or(args.action.as_str(), |a| a.label.as_str());
        if !sent.sent(&p.name, label.to_owned(), answer) {
            failed += 1;
        }
    }
    failed += sent.finish().await?;
    if failed > 0 {
        anyhow::bail!("{failed} printer(s) did not take the action");
    }
    Ok(())
}

/// `hearth printers actions`: what each printer offers to `hearth printers run`.
pub async fn list_actions(args: &ActionsArgs) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let printers = printers_of(&ctx).await?;
    let chosen: Vec<&Printer> = if args.printers.is_empty() {
        printers.iter().collect()
    } else {
        chosen_printers(&printers, &args.printers, None)?
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    };
    if args.json {
        let out: Vec<_> = chosen
            .iter()
            .map(|p| serde_json::json!({ "printer": p.name, "id": p.id, "actions": p.actions }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for p in chosen {
        if p.actions.is_empty() {
            println!(
                "{}: no actions (its agent's configuration has no [[printer.action]])",
                p.name
            );
            continue;
        }
        println!("{}:", p.name);
        for a in &p.actions {
            let when = match a.when {
                ActionWhen::Idle => "while idle",
                ActionWhen::Always => "also while printing",
                ActionWhen::Printing => "while printing",
            };
            let who = if a.admins_only { ", admins only" } else { "" };
            println!("  {:<16} {:<28} {when}{who}", a.id, a.label);
        }
    }
    Ok(())
}

/// "nozzle 215 °C, bed off", as sent.
pub(crate) fn heat_said(req: &HeatRequest) -> String {
    let one = |what: &str, t: Option<f32>| {
        t.map(|t| {
            if t == 0.0 {
                format!("{what} off")
            } else {
                format!("{what} {t} °C")
            }
        })
    };
    [one("nozzle", req.nozzle_c), one("bed", req.bed_c)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}

/// `hearth printers hold|release NAME`.
pub async fn hold(args: &PrinterArg, held: bool) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let p = find_printer(&printers, &args.printer)?;
    let updated = ctx
        .client
        .hold_printer(org, p.id, held)
        .await
        .with_context(|| {
            format!(
                "cannot {} printer {:?}",
                if held { "hold" } else { "release" },
                p.name
            )
        })?;
    if args.json {
        return print_json(&updated);
    }
    printers_table(&[&updated]).print();
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct BedArgs {
    /// The printer, by name (or id).
    pub printer: String,
    /// The bed is clear: the printer takes its next job.
    #[arg(long, required_unless_present = "confirm")]
    pub cleared: bool,
    /// Whether the printer waits for its bed to be said clear after each job that printed.
    #[arg(long, value_parser = ["on", "off"], conflicts_with = "cleared")]
    pub confirm: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `hearth printers bed`: a printer's bed said clear, or whether it waits for that.
pub async fn bed(args: &BedArgs) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let p = find_printer(&printers, &args.printer)?;
    let updated = match args.confirm.as_deref() {
        Some(on) => ctx.client.set_printer_bed(org, p.id, on == "on").await,
        None => ctx.client.printer_bed_cleared(org, p.id).await,
    }
    .with_context(|| format!("cannot change the bed of printer {:?}", p.name))?;
    if args.json {
        return print_json(&updated);
    }
    printers_table(&[&updated]).print();
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The printer, by name (or id).
    pub printer: String,
    /// A spool of the inventory (`hearth spools`), by id or its first characters: material and
    /// colour come from it, and jobs are taken from what is left on it.
    #[arg(long, conflicts_with_all = ["material", "color"])]
    pub spool: Option<String>,
    /// Into (with --spool) or out of (with --reset) one of the printer's slots, as the printer
    /// names it: an AMS tray A1..D4, the external holder Ext. What a job fed from that slot uses
    /// is taken from its spool.
    #[arg(long, conflicts_with_all = ["material", "color", "nozzle"])]
    pub slot: Option<String>,
    /// The material now loaded (PLA, PETG...); its colour goes with it.
    #[arg(long, required_unless_present_any = ["nozzle", "reset", "spool"])]
    pub material: Option<String>,
    /// The colour of the material now loaded.
    #[arg(long, requires = "material")]
    pub color: Option<String>,
    /// The nozzle diameter now fitted, in mm.
    #[arg(long)]
    pub nozzle: Option<f32>,
    /// Back to what the agent's configuration says; with --slot, that slot's spool taken out.
    #[arg(long, conflicts_with_all = ["material", "color", "nozzle", "spool"])]
    pub reset: bool,
    #[arg(long)]
    pub json: bool,
}

/// `hearth printers load`: a new spool replaces material and colour together; the nozzle stays as
/// it is unless given, and the material likewise when only the nozzle changed.
pub async fn load(args: &LoadArgs) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let p = find_printer(&printers, &args.printer)?;
    let updated = if let Some(slot) = &args.slot {
        if !hearth_proto::inventory::slot_name_ok(slot) {
            anyhow::bail!(
                "{slot:?} is not a slot name: as the printer names it, e.g. A1..D4 for AMS trays, \
                 Ext for the external holder"
            );
        }
        // A printer that reports its slots names them all: another name is likely a typo (a
        // tool's T0 on such a printer is still taken).
        let reported = &p.telemetry.slots;
        if args.spool.is_some() && !reported.is_empty() && !reported.iter().any(|s| s.name == *slot)
        {
            let names: Vec<&str> = reported.iter().map(|s| s.name.as_str()).collect();
            eprintln!(
                "note: printer {:?} reports the slots {}, not {slot}",
                p.name,
                names.join(", ")
            );
        }
        match &args.spool {
            Some(spool) => {
                let spool = crate::cmd::inventory::find_spool(&ctx, spool).await?.id;
                ctx.client.load_slot(org, p.id, slot, spool).await
            }
            None if args.reset => ctx.client.unload_slot(org, p.id, slot).await,
            None => anyhow::bail!("--slot takes --spool (put it in) or --reset (take it out)"),
        }
    } else if args.reset {
        ctx.client.reset_printer_loaded(org, p.id).await
    } else {
        let nozzle_mm = args.nozzle.or(p.nozzle_mm);
        let loaded = match (&args.spool, &args.material) {
            (Some(spool), _) => LoadedRequest {
                spool: Some(crate::cmd::inventory::find_spool(&ctx, spool).await?.id),
                material: None,
                color: None,
                nozzle_mm,
            },
            (None, Some(m)) => LoadedRequest {
                spool: None,
                material: Some(m.clone()),
                color: args.color.clone(),
                nozzle_mm,
            },
            // Only the nozzle changed: the spool (or the material) stays.
            (None, None) => LoadedRequest {
                spool: p.spool.as_ref().map(|s| s.id),
                material: p.spool.is_none().then(|| p.material.clone()).flatten(),
                color: p.spool.is_none().then(|| p.color.clone()).flatten(),
                nozzle_mm,
            },
        };
        ctx.client.set_printer_loaded(org, p.id, &loaded).await
    }
    .with_context(|| format!("cannot change what printer {:?} has loaded", p.name))?;
    if args.json {
        return print_json(&updated);
    }
    printers_table(&[&updated]).print();
    Ok(())
}

pub async fn printers(json: bool) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let printers = printers_of(&ctx).await?;
    if json {
        return print_json(&printers);
    }
    printers_table(&printers.iter().collect::<Vec<_>>()).print();
    // Tasks due, under the table. A server older than maintenance reminders (404) has none to
    // say; any other failure is said, without hiding the table above.
    let tasks = match ctx.client.maintenance(ctx.org()?).await {
        Ok(tasks) => tasks,
        Err(e) if e.status() == Some(404) => Vec::new(),
        Err(e) => {
            eprintln!("warning: cannot list the maintenance tasks due: {e}");
            Vec::new()
        }
    };
    let due = tasks
        .into_iter()
        .filter(|m| m.status == hearth_proto::maintenance::MaintenanceStatus::Due);
    for m in due {
        println!(
            "maintenance due on {}: {} (`hearth maintenance done {} {}`)",
            m.printer,
            m.kind.words(),
            m.printer,
            m.kind
        );
    }
    Ok(())
}

/// `hearth jobs` arguments.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Every job, ended ones too (implied by --since, --until and --csv).
    #[arg(long)]
    pub all: bool,
    /// Jobs submitted on or after this day (`2026-11-01`) or time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Jobs submitted before this day or time.
    #[arg(long)]
    pub until: Option<String>,
    /// As CSV, one line per job with its name opened here, for a spreadsheet or accounting.
    #[arg(long)]
    pub csv: bool,
}

/// Jobs asked for per page of a period's listing (the server's most).
const PAGE: usize = 10_000;

/// A day (`2026-11-01`, UTC midnight) or an RFC 3339 time, as the server takes it.
fn time_arg(name: &str, v: &str) -> anyhow::Result<String> {
    let t = if v.len() == 10 {
        format!("{v}T00:00:00Z")
    } else {
        v.to_owned()
    };
    if hearth_proto::time_fmt::parse_rfc3339(&t).is_none() {
        bail!("--{name} {v:?}: give a day (2026-11-01) or an RFC 3339 time");
    }
    Ok(t)
}

/// The jobs submitted in a period (days or RFC 3339 times), newest first: all of them, a page at
/// a time, when `ranged`; else the server's default listing (the 500 newest).
pub(crate) async fn jobs_in_period(
    ctx: &Ctx,
    since: Option<&str>,
    until: Option<&str>,
    ranged: bool,
) -> anyhow::Result<Vec<Job>> {
    let org = ctx.org()?;
    let mut query = Vec::new();
    if let Some(s) = since {
        query.push(format!("since={}", time_arg("since", s)?));
    }
    if let Some(u) = until {
        query.push(format!("until={}", time_arg("until", u)?));
    }
    if ranged {
        query.push(format!("limit={PAGE}"));
    }
    let path = |query: &[String]| match query.is_empty() {
        true => format!("/api/v1/orgs/{org}/jobs"),
        false => format!(
            "/api/v1/orgs/{org}/jobs?{}",
            query.join("&").replace('+', "%2B")
        ),
    };
    let mut jobs: Vec<Job> = ctx.client.raw_get(&path(&query)).await?;
    if !ranged {
        return Ok(jobs);
    }
    let mut page = jobs.len();
    while page >= PAGE {
        let last = jobs.last().map(|j| j.id).expect("a full page");
        let mut next = query.clone();
        next.push(format!("before={last}"));
        let more: Vec<Job> = ctx.client.raw_get(&path(&next)).await?;
        page = more.len();
        jobs.extend(more);
    }
    Ok(jobs)
}

/// `jobs` as CSV ([`jobs_csv`]), their printers and submitters named as the server lists them.
pub(crate) async fn csv_of(ctx: &Ctx, jobs: &[&Job], names: &Names) -> anyhow::Result<String> {
    let printers = printers_of(ctx).await?;
    let logins: BTreeMap<_, _> = match ctx.client.members(ctx.org()?).await {
        Ok(m) => m.into_iter().map(|m| (m.user.id, m.user.login)).collect(),
        Err(_) => BTreeMap::new(),
    };
    Ok(jobs_csv(jobs, &printers, &logins, names))
}

pub async fn jobs(args: &JobsArgs) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let ranged = args.since.is_some() || args.until.is_some() || args.csv;
    let jobs = jobs_in_period(&ctx, args.since.as_deref(), args.until.as_deref(), ranged).await?;
    let all = args.all || ranged;
    let shown: Vec<&Job> = jobs
        .iter()
        .filter(|j| all || !j.state.is_final() || j.state == JobState::Refused)
        .collect();
    let names = job_names(&mut ctx, &shown).await;
    if args.json {
        return print_json(&named_json(&shown, &names)?);
    }
    if args.csv {
        print!("{}", csv_of(&ctx, &shown, &names).await?);
        return Ok(());
    }
    let printers = printers_of(&ctx).await?;
    let all: Vec<&Job> = jobs.iter().collect();
    jobs_table(&shown, &all, &printers.iter().collect::<Vec<_>>(), &names).print();
    Ok(())
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The jobs as CSV (RFC 4180): a header line, then one line per job.
fn jobs_csv(
    jobs: &[&Job],
    printers: &[Printer],
    logins: &BTreeMap<hearth_proto::ids::UserId, String>,
    names: &Names,
) -> String {
    let field = csv_field;
    let opt = |v: Option<String>| v.unwrap_or_default();
    let login =
        |id: &hearth_proto::ids::UserId| logins.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut out = String::from(
        "job,name,state,printer,pool,submitted_by,submitted_at,updated_at,material,colour,filament_g,estimated_s,message,approval,decided_by\r\n",
    );
    for j in jobs {
        let printer = j.printer.map(|id| {
            printers
                .iter()
                .find(|p| p.id == id)
                .map_or_else(|| id.to_string(), |p| p.name.clone())
        });
        let row = [
            j.id.to_string(),
            names
                .get(&j.id)
                .and_then(|n| n.as_ref().ok())
                .cloned()
                .unwrap_or_default(),
            snake(&j.state),
            opt(printer),
            opt(j.pool.clone()),
            login(&j.submitted_by),
            j.created_at.clone(),
            j.updated_at.clone(),
            // Every filament's material for a job of several (PLA+PETG).
            opt(j.facts.materials()),
            opt(j.facts.color.clone()),
            opt(j.facts.filament_grams.map(|g| format!("{g:.1}"))),
            opt(j.facts.estimated_seconds.map(|s| s.to_string())),
            opt(j.message.clone()),
            // Where an admin's approval was asked: pending, approved or rejected, and by whom.
            opt(j.approval.as_ref().map(|a| a.state.as_str().to_owned())),
            opt(j.approval.as_ref().and_then(|a| a.by.as_ref()).map(login)),
        ];
        out.push_str(&row.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

#[derive(Debug, clap::Subcommand)]
pub enum QueueCmd {
    /// Move a queued job to the front of the queue.
    Top {
        /// Job id.
        job: String,
        #[arg(long)]
        json: bool,
    },
    /// Give a queued job a priority: higher goes first, then older (default 0; negative: after
    /// the others).
    Priority {
        /// Job id.
        job: String,
        #[arg(allow_negative_numbers = true)]
        priority: i64,
        #[arg(long)]
        json: bool,
    },
}

/// `hearth queue`: the queued jobs in the order the server hands them out; `top` and `priority`
/// move one (operators; audited).
pub async fn queue(cmd: Option<&QueueCmd>, json: bool) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let org = ctx.org()?;
    let (job, body, json) = match cmd {
        None => {
            let jobs: Vec<Job> = ctx
                .client
                .raw_get(&format!("/api/v1/orgs/{org}/jobs"))
                .await?;
            let all: Vec<&Job> = jobs.iter().collect();
            // Then the jobs waiting for an admin's approval, oldest first.
            let mut queued = in_queue_order(&all);
            let mut pending: Vec<&Job> = all
                .iter()
                .copied()
                .filter(|j| j.awaits_approval())
                .collect();
            pending.sort_by(|a, b| {
                a.created_at
                    .cmp(&b.created_at)
                    .then_with(|| a.id.cmp(&b.id))
            });
            queued.extend(pending);
            let names = job_names(&mut ctx, &queued).await;
            if json {
                return print_json(&named_json(&queued, &names)?);
            }
            if queued.is_empty() {
                println!("the queue is empty: every job is on a printer or done");
                return Ok(());
            }
            let printers = printers_of(&ctx).await?;
            jobs_table(&queued, &all, &printers.iter().collect::<Vec<_>>(), &names).print();
            return Ok(());
        }
        Some(QueueCmd::Top { job, json }) => (
            job,
            JobPriority {
                top: true,
                ..JobPriority::default()
            },
            *json,
        ),
        Some(QueueCmd::Priority {
            job,
            priority,
            json,
        }) => (
            job,
            JobPriority {
                priority: Some(*priority),
                top: false,
            },
            *json,
        ),
    };
    let id: JobId = job
        .parse()
        .with_context(|| format!("{job:?} is not a job id"))?;
    let moved = ctx
        .client
        .set_job_priority(org, id, &body)
        .await
        .with_context(|| format!("cannot move job {id} in the queue"))?;
    if json {
        return print_json(&moved);
    }
    let jobs: Vec<Job> = ctx
        .client
        .raw_get(&format!("/api/v1/orgs/{org}/jobs"))
        .await?;
    let place = in_queue_order(&jobs.iter().collect::<Vec<_>>())
        .iter()
        .position(|j| j.id == id)
        .map_or_else(
            || "out of the queue already".to_owned(),
            |i| format!("#{}", i + 1),
        );
    println!(
        "job {id}: priority {}, {place} in the queue",
        moved.priority
    );
    Ok(())
}

pub async fn control(action: &str, job: &str, json: bool) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let id: JobId = job
        .parse()
        .with_context(|| format!("{job:?} is not a job id"))?;
    let j = job_action(&ctx, id, action).await?;
    if json {
        return print_json(&j);
    }
    println!("{action} sent; job {} is {}", j.id, snake(&j.state));
    Ok(())
}

/// `hearth approve JOB...` / `hearth reject JOB --reason`: an admin's decision on jobs waiting for
/// approval. Every job is tried; the command fails if one could not be decided.
/// `hearth approve --waiting`: every job of the organisation waiting for approval now.
pub async fn approve_waiting(json: bool) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    // A waiting job expires with its signed validity (a week at most): the newest 10 000 jobs
    // hold every one that can still print.
    let jobs: Vec<Job> = ctx
        .client
        .raw_get(&format!("/api/v1/orgs/{org}/jobs?limit=10000"))
        .await
        .context("cannot list the jobs")?;
    let waiting: Vec<String> = jobs
        .iter()
        .filter(|j| j.awaits_approval())
        .map(|j| j.id.to_string())
        .collect();
    if waiting.is_empty() {
        if json {
            return print_json(&Vec::<Job>::new());
        }
        println!("no job waits for approval");
        return Ok(());
    }
    decide(&waiting, true, None, json).await
}

pub async fn decide(
    jobs: &[String],
    approve: bool,
    reason: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let (mut decided, mut failed) = (Vec::new(), 0);
    for job in jobs {
        let id: JobId = match job.parse() {
            Ok(id) => id,
            Err(_) => {
                eprintln!("error: {job:?} is not a job id");
                failed += 1;
                continue;
            }
        };
        let answer = match approve {
            true => ctx.client.approve_job(org, id).await,
            false => ctx.client.reject_job(org, id, reason).await,
        };
        match answer {
            Ok(j) if json => decided.push(j),
            Ok(j) if approve => println!(
                "job {} approved: {}",
                j.id,
                match j.state {
                    JobState::Queued => "it waits for its printer in the queue",
                    _ => "it went to its printer",
                }
            ),
            Ok(j) => println!(
                "job {} rejected and cancelled ({})",
                j.id,
                j.message.as_deref().unwrap_or("no reason given")
            ),
            Err(e) => {
                let verb = if approve { "approve" } else { "reject" };
                eprintln!("error: cannot {verb} job {id}: {e}");
                failed += 1;
            }
        }
    }
    if json {
        print_json(&decided)?;
    }
    if failed > 0 {
        bail!("{failed} of {} jobs not decided", jobs.len());
    }
    Ok(())
}

/// Sends `action` (pause, resume or cancel) for job `id`; the job as the server then has it.
pub(crate) async fn job_action(ctx: &Ctx, id: JobId, action: &str) -> anyhow::Result<Job> {
    let org = ctx.org()?;
    ctx.client
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs/{id}/{action}"),
            &serde_json::Value::Null,
        )
        .await
        .with_context(|| format!("cannot {action} job {id}"))
}

/// `hearth status`: printers and active jobs, redrawn in place as the server's live events arrive
/// (`--json`: one event per line, starting with the current state of every printer).
pub async fn status(json: bool, max_events: Option<u64>) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let org = ctx.org()?;
    // Subscribe first, then read the snapshot, so nothing between the two is missed.
    let mut events = ctx
        .client
        .events(org)
        .await
        .context("cannot follow live events")?;
    let mut printers: BTreeMap<PrinterId, Printer> = printers_of(&ctx)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let mut jobs: BTreeMap<JobId, Job> = ctx
        .client
        .raw_get::<Vec<Job>>(&format!("/api/v1/orgs/{org}/jobs"))
        .await?
        .into_iter()
        .filter(|j| !j.state.is_final())
        .map(|j| (j.id, j))
        .collect();
    let mut labels = LabelCache::default();
    let mut names = match json {
        true => Names::new(),
        false => {
            labels
                .names(&mut ctx, &jobs.values().collect::<Vec<_>>())
                .await
        }
    };
    let tty = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout();
    let draw = |printers: &BTreeMap<PrinterId, Printer>,
                jobs: &BTreeMap<JobId, Job>,
                names: &Names,
                out: &mut std::io::Stdout|
     -> anyhow::Result<()> {
        let ps: Vec<&Printer> = printers.values().collect();
        // Newest first, as `hearth jobs` lists them (ids are time-ordered).
        let js: Vec<&Job> = jobs.values().rev().collect();
        let mut s = String::new();
        if tty {
            s.push_str("\x1b[H\x1b[2J");
        }
        s.push_str(&printers_table(&ps).render());
        s.push('\n');
        s.push_str(&jobs_table(&js, &js, &ps, names).render());
        if !tty {
            s.push_str("--\n");
        }
        out.write_all(s.as_bytes())?;
        out.flush()?;
        Ok(())
    };
    if json {
        for p in printers.values() {
            let e = Event::Printer { printer: p.clone() };
            writeln!(stdout, "{}", serde_json::to_string(&e)?)?;
        }
        stdout.flush()?;
    } else {
        draw(&printers, &jobs, &names, &mut stdout)?;
    }
    let mut seen = 0u64;
    if max_events == Some(0) {
        return Ok(());
    }
    while let Some(ev) = events.next().await.context("the live event stream broke")? {
        if json {
            writeln!(stdout, "{}", serde_json::to_string(&ev)?)?;
            stdout.flush()?;
        } else {
            match &ev {
                Event::Printer { printer } => {
                    printers.insert(printer.id, printer.clone());
                }
                Event::Job { job } if job.state.is_final() => {
                    jobs.remove(&job.id);
                }
                Event::Job { job } => {
                    if !names.contains_key(&job.id) {
                        names.extend(labels.names(&mut ctx, &[job]).await);
                    }
                    jobs.insert(job.id, job.clone());
                }
                Event::Agent {
                    agent_id,
                    connected,
                } if !connected => {
                    for p in printers.values_mut().filter(|p| p.agent_id == *agent_id) {
                        p.telemetry.state = PrinterState::Offline;
                    }
                }
                Event::Agent { .. } | Event::Outcome { .. } => {}
            }
            draw(&printers, &jobs, &names, &mut stdout)?;
        }
        seen += 1;
        if max_events.is_some_and(|m| seen >= m) {
            return Ok(());
        }
    }
    bail!("the server closed the live event stream")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::api::SchedulingFacts;
    use hearth_proto::ids::{BlobHash, UserId};

    #[test]
    fn a_csv_line_quotes_what_a_spreadsheet_would_split() {
        let ines = UserId::new();
        let job = Job {
            id: JobId::new(),
            state: JobState::Failed,
            printer: None,
            pool: Some("pla".into()),
            blob_sha256: BlobHash::of(b"sealed"),
            submitted_by: UserId::new(),
            created_at: "2026-12-06T10:00:00.000Z".into(),
            updated_at: "2026-12-06T11:00:00.000Z".into(),
            message: Some("heater fault: \"bed\"\nMINTEMP".into()),
            facts: SchedulingFacts {
                filament_grams: Some(12.345),
                ..SchedulingFacts::default()
            },
            priority: 0,
            label: None,
            approval: Some(hearth_proto::api::JobApproval {
                state: hearth_proto::api::ApprovalState::Approved,
                by: Some(ines),
                at: Some("2026-12-06T10:05:00.000Z".into()),
            }),
        };
        let mut names = Names::new();
        names.insert(job.id, Ok("bracket, left.gcode".into()));
        let logins = BTreeMap::from([(ines, "ines".to_owned())]);
        let csv = jobs_csv(&[&job], &[], &logins, &names);
        let line = csv.split("\r\n").nth(1).unwrap();
        assert_eq!(
            line,
            format!(
                "{},\"bracket, left.gcode\",failed,,pla,{},2026-12-06T10:00:00.000Z,\
                 2026-12-06T11:00:00.000Z,,,12.3,,\"heater fault: \"\"bed\"\"\nMINTEMP\",approved,ines",
                job.id, job.submitted_by
            )
        );
        assert!(csv.ends_with("\r\n"));
    }
}
