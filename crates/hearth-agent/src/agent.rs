//! The agent's event loop: `run(setup, shutdown)`.
//!
//! One task owns all state (`Agent`) and handles a closed set of events: connection events from the
//! connection task (`conn`), results of the I/O it spawned (`Event`: printer samples, transfers, starts,
//! controls), a telemetry tick, and shutdown. Everything slow (network, printers, disk-heavy opening) runs in
//! spawned tasks that report back, so a slow printer never delays another one.
//!
//! A job's life on the agent (persisted in the `Journal` at every step):
//! `Assigned` (accepted, waiting for its printer) -> `Transferring` (download, verify and open, upload; the
//! plaintext exists only during the upload) -> `start_requested` is journalled *before* the printer is told
//! to start -> from then on the job is only observed on the printer (by its file name) and never started
//! again -> `Printing`/`Paused` -> `Completed`/`Failed`/`Cancelled`. A step that fails because the server or
//! the printer is away is retried; a job whose start may or may not have reached the printer is resolved by
//! looking at the printer, and reported failed rather than started twice when the printer has no trace of it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_drivers::{
    Driver, DriverError, DriverKind, HeatTargets, JobPhase, PrintHints, PrinterStatus, RunsWhen,
    Upload,
};
use hearth_proto::agent::{
    ActionWhen, AgentJob, AgentMsg, JobAction, JobState, PrinterAction, PrinterInfo, ServerMsg,
    Tune,
};
use hearth_proto::ids::JobId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::{AgentConfig, PrinterConfig, Timing};
use crate::conn::{self, ConnEvent, ConnSettings};
use crate::identity::AgentIdentity;
use crate::journal::{Admission, JobRecord, Journal, JournalError, fingerprint};
use crate::opener::{JobOpener, OpenError, Refusal};
use crate::spool::{DownloadError, Spool, job_of_file, printer_file_name};
use crate::telemetry::{Coalescer, JobUpdate, Outbox, to_wire};

/// Consecutive online samples without the job (and `Timing::lost_after`) before a started job counts as
/// gone from the printer.
const LOST_AFTER: u32 = 5;
/// Hash mismatches of a download before the job is refused.
const HASH_ATTEMPTS: u32 = 2;

/// A configured printer with its driver.
#[derive(Debug, Clone)]
pub struct Printer {
    pub config: PrinterConfig,
    pub driver: Arc<dyn Driver>,
}

impl Printer {
    /// Builds the driver the configuration names (contacts nothing yet).
    pub fn build(config: PrinterConfig) -> Result<Self, DriverError> {
        let driver = hearth_drivers::build(&config.driver)?;
        Ok(Self {
            config,
            driver: Arc::from(driver),
        })
    }
}

/// Everything `run` needs. The printers are given separately from `config.printers` so that tests (and
/// embedders) can pass drivers they keep a handle on.
#[derive(Debug)]
pub struct Setup {
    pub config: AgentConfig,
    pub identity: Arc<dyn AgentIdentity>,
    pub opener: Arc<dyn JobOpener>,
    pub printers: Vec<Printer>,
}

impl Setup {
    /// Builds every printer of `config`.
    pub fn from_config(
        config: AgentConfig,
        identity: Arc<dyn AgentIdentity>,
        opener: Arc<dyn JobOpener>,
    ) -> Result<Self, RunError> {
        let printers = config
            .printers
            .iter()
            .map(|p| {
                Printer::build(p.clone()).map_err(|source| RunError::Driver {
                    printer: p.name.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            config,
            identity,
            opener,
            printers,
        })
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("printer {printer}")]
    Driver {
        printer: String,
        #[source]
        source: DriverError,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("spool in {path}")]
    Spool {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Results of spawned work.
#[derive(Debug)]
enum Event {
    Sample {
        printer: usize,
        status: PrinterStatus,
    },
    Transferred {
        job: JobId,
        result: Result<(), StepError>,
    },
    Started {
        job: JobId,
        result: Result<hearth_drivers::Started, DriverError>,
    },
    Controlled {
        job: JobId,
        action: JobAction,
        result: Result<(), DriverError>,
    },
    /// The printer's copy of a finished job's file was deleted (or not).
    Removed {
        job: JobId,
        result: Result<(), DriverError>,
    },
    /// A camera frame was taken, sealed and sent or kept (or not).
    Snapshot {
        printer: usize,
        result: Result<crate::camera::Taken, String>,
    },
    /// The kept timelapse frames were sent (how many), or the server stopped answering.
    KeptSent { result: Result<usize, String> },
    /// A member's request to a printer (heating, an action) ended at the printer.
    Answered {
        printer: String,
        request: Option<String>,
        result: Result<(), String>,
    },
}

/// How a transfer step failed.
#[derive(Debug)]
enum StepError {
    /// The server or the printer is away: try again later.
    Retry(String),
    /// The download did not hash to the job's blob hash.
    HashMismatch(String),
    Refused(Refusal, String),
    Failed(String),
}

#[derive(Debug)]
struct PrinterRt {
    config: PrinterConfig,
    driver: Arc<dyn Driver>,
    /// A status request is in flight.
    polling: bool,
    online: bool,
    /// Its state in the last sample (`Offline` before the first); idle is free for the next job
    /// (not printing someone else's file, not in error).
    state: hearth_proto::agent::PrinterState,
    /// An online sample was seen since start: what the printer runs is known.
    attached: bool,
    active: Option<JobId>,
    queue: VecDeque<JobId>,
    /// Consecutive online samples that did not show the active, started job, and since when.
    misses: u32,
    missing_since: Option<Instant>,
    camera: Option<CameraRt>,
    /// The layer the printer reported in its last sample (while it has a job).
    layer: Option<u32>,
    /// When a member's preheat was set, until a job takes the heaters over or they are off: a
    /// preheat nothing follows is switched off after `[printer.heat] cool_after_seconds`.
    preheated_at: Option<Instant>,
}

impl PrinterRt {
    /// Idle in the last sample.
    fn idle(&self) -> bool {
        self.state == hearth_proto::agent::PrinterState::Idle
    }
}

/// A printer's camera between frames (its settings are the printer's `config.camera`).
#[derive(Debug, Default)]
struct CameraRt {
    /// A frame is being taken, sealed and sent.
    busy: bool,
    /// A member asked for a frame: take one as soon as possible.
    wanted: bool,
    /// When the last frame was taken (or failed); `None`: none yet, one is due at once.
    last: Option<Instant>,
    /// Why the last frame failed, so that a camera that stays down is logged once.
    failing: Option<String>,
    /// The layer of the last timelapse frame (the `layer` trigger takes one per new layer).
    timelapse_layer: Option<u32>,
}

#[derive(Debug, Default)]
struct JobRt {
    busy: bool,
    retry_at: Option<Instant>,
    hash_failures: u32,
    pending_control: Option<JobAction>,
}

#[derive(Debug)]
struct Conn {
    tx: mpsc::UnboundedSender<AgentMsg>,
    token: String,
    /// The last state sent for each job on this connection, so that answering the server's re-sends
    /// does not repeat what it just heard.
    reported: HashMap<JobId, JobState>,
}

struct Agent {
    timing: Timing,
    server: String,
    spool: Spool,
    journal: Journal,
    opener: Arc<dyn JobOpener>,
    http: reqwest::Client,
    printers: Vec<PrinterRt>,
    jobs: HashMap<JobId, JobRt>,
    conn: Option<Conn>,
    coalescer: Coalescer,
    outbox: Outbox,
    /// Answers to members' requests that came while the server was away, sent when it is back
    /// (the newest `UNSENT_ANSWERS`; a member waits for them a short while only).
    unsent_answers: VecDeque<AgentMsg>,
    tasks: JoinSet<()>,
    events: mpsc::UnboundedSender<Event>,
    /// Deletions from printers under way, and when a failed one may be tried again.
    removing: HashMap<JobId, Option<Instant>>,
    /// Timelapse frames kept while the server was away (`crate::frames`).
    kept: Arc<crate::frames::FrameBuffer>,
    /// The kept frames are being sent.
    sending_kept: bool,
    /// After a failed try while connected: when to try again.
    kept_retry_at: Option<Instant>,
}

/// How long kept timelapse frames wait after the server failed to take them on a live connection
/// (a new connection sends them at once).
const KEPT_RETRY: Duration = Duration::from_secs(30);

/// Runs the agent until `shutdown` resolves.
pub async fn run(setup: Setup, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let Setup {
        config,
        identity,
        opener,
        printers,
    } = setup;
    config.validate()?;
    let ca = config
        .ca_cert
        .as_deref()
        .map(crate::tls::read_ca)
        .transpose()?;
    let tls = crate::tls::client_config(ca.as_deref(), &crate::tls::system_roots())?;
    let http = crate::tls::http_client(&tls)?;
    std::fs::create_dir_all(&config.state_dir).map_err(|source| RunError::Spool {
        path: config.state_dir.clone(),
        source,
    })?;
    let spool = Spool::open(&config.state_dir).map_err(|source| RunError::Spool {
        path: config.state_dir.clone(),
        source,
    })?;
    let journal = Journal::open(&config.state_dir)?;
    let kept = crate::frames::FrameBuffer::open(&config.state_dir, crate::frames::MAX_KEPT_BYTES)
        .map_err(|source| RunError::Spool {
        path: config.state_dir.join("timelapse"),
        source,
    })?;

    // Plaintext never survives a restart; sealed files only for jobs that still need them.
    let keep = journal
        .unfinished()
        .filter(|r| !r.start_requested)
        .map(|r| r.job_id)
        .collect();
    let removed = spool
        .remove_leftovers(&keep)
        .map_err(|source| RunError::Spool {
            path: config.state_dir.clone(),
            source,
        })?;
    if !removed.is_empty() {
        tracing::info!(count = removed.len(), "removed spool leftovers");
    }

    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let mut agent = Agent {
        timing: config.timing.clone(),
        server: config.server.trim_end_matches('/').to_owned(),
        spool,
        journal,
        opener,
        http,
        printers: printers
            .into_iter()
            .map(|p| PrinterRt {
                camera: p.config.camera.as_ref().map(|_| CameraRt::default()),
                layer: None,
                preheated_at: None,
                config: p.config,
                driver: p.driver,
                polling: false,
                online: false,
                state: hearth_proto::agent::PrinterState::Offline,
                attached: false,
                active: None,
                queue: VecDeque::new(),
                misses: 0,
                missing_since: None,
            })
            .collect(),
        jobs: HashMap::new(),
        conn: None,
        coalescer: Coalescer::new(config.timing.telemetry_interval()),
        outbox: Outbox::new(config.timing.job_backlog),
        unsent_answers: VecDeque::new(),
        tasks: JoinSet::new(),
        events: events_tx,
        removing: HashMap::new(),
        kept: Arc::new(kept),
        sending_kept: false,
        kept_retry_at: None,
    };
    agent.resume_journal();
    for p in &agent.printers {
        if let Some(why) = p.config.camera.as_ref().and_then(|c| {
            crate::camera::layer_trigger_unsupported(c, p.driver.describe().capabilities)
        }) {
            tracing::warn!(printer = %p.config.name, "{why}");
        }
    }

    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let settings = ConnSettings {
        url: config.connect_url(),
        identity,
        tls: Arc::new(tls),
        timing: config.timing.clone(),
    };
    let conn_task = tokio::spawn(conn::run(settings, conn_tx, stop_rx));

    let mut tick = tokio::time::interval(config.timing.telemetry_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(ev) = conn_rx.recv() => agent.on_conn(ev),
            Some(ev) = events_rx.recv() => agent.on_event(ev),
            _ = tick.tick() => agent.on_tick(),
        }
        agent.pump_all();
    }

    tracing::info!("shutting down");
    agent.tasks.abort_all();
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), conn_task).await;
    Ok(())
}

impl Agent {
    fn printer_index(&self, name: &str) -> Option<usize> {
        self.printers.iter().position(|p| p.config.name == name)
    }

    /// After a (re)start: every unfinished job goes back to its printer; a job that may have been started
    /// becomes the printer's active job, to be found on the printer (never started again).
    fn resume_journal(&mut self) {
        let unfinished: Vec<JobRecord> = self.journal.unfinished().cloned().collect();
        for rec in unfinished {
            let Some(i) = self.printer_index(&rec.printer) else {
                self.set_state(
                    rec.job_id,
                    JobState::Failed,
                    Some(format!("printer {:?} is no longer configured", rec.printer)),
                );
                continue;
            };
            let p = &mut self.printers[i];
            if rec.start_requested && p.active.is_none() {
                p.active = Some(rec.job_id);
                p.driver.watching(&printer_file_name(rec.job_id));
            } else if rec.start_requested {
                p.queue.push_front(rec.job_id);
            } else {
                p.queue.push_back(rec.job_id);
            }
            tracing::info!(job = %rec.job_id, printer = %rec.printer, state = ?rec.state, "resuming job");
        }
    }

    fn on_conn(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Up { tx, http_token, .. } => {
                self.conn = Some(Conn {
                    tx,
                    token: http_token,
                    reported: HashMap::new(),
                });
                let printers = self.printers.iter().map(printer_info).collect();
                self.send(AgentMsg::Printers { printers });
                for u in self.outbox.drain() {
                    self.send_update(u);
                }
                for a in std::mem::take(&mut self.unsent_answers) {
                    self.send(a);
                }
                self.coalescer.reconnected();
                self.flush_telemetry();
                self.send_kept();
                for rt in self.jobs.values_mut() {
                    rt.retry_at = None;
                }
            }
            ConnEvent::Down { reason } => {
                tracing::info!(%reason, "disconnected from the server");
                self.conn = None;
            }
            ConnEvent::Msg(msg) => self.on_server(msg),
        }
    }

    fn on_server(&mut self, msg: ServerMsg) {
        match msg {
            ServerMsg::Job { job } => self.on_job(job),
            ServerMsg::Control { job_id, action } => self.on_control(job_id, action),
            ServerMsg::Heat {
                printer,
                nozzle_c,
                bed_c,
                request,
            } => self.on_heat(&printer, HeatTargets { nozzle_c, bed_c }, request),
            ServerMsg::Tune {
                printer,
                tune,
                request,
            } => self.on_tune(&printer, tune, request),
            ServerMsg::Action {
                printer,
                action,
                request,
            } => self.on_action(&printer, &action, request),
            ServerMsg::Snapshot { printer } => {
                match self
                    .printer_index(&printer)
                    .and_then(|i| self.printers[i].camera.as_mut())
                {
                    Some(cam) => cam.wanted = true,
                    None => {
                        tracing::warn!(%printer, "a snapshot was asked of a printer without a camera")
                    }
                }
                self.take_snapshots();
            }
            other => tracing::debug!(?other, "ignored server message"),
        }
    }

    fn on_job(&mut self, job: AgentJob) {
        let id = job.job_id;
        match self.journal.admit(&job) {
            Admission::Replayed => {
                tracing::warn!(job = %id, "refusing a replayed job id");
                self.report(
                    id,
                    JobState::Refused,
                    Some(format!(
                        "{}: job id {id} was already accepted with different contents",
                        Refusal::Replayed.code()
                    )),
                );
            }
            Admission::Known => {
                let Some(rec) = self.journal.get_mut(&id) else {
                    return;
                };
                if rec.fingerprint.is_none() {
                    // Adopted from the printer after the journal was lost: now we know the job.
                    rec.fingerprint = Some(fingerprint(&job));
                    if !rec.state.is_final() {
                        rec.job = Some(job);
                    }
                    self.save();
                }
                let Some(rec) = self.journal.get(&id) else {
                    return;
                };
                let already = self
                    .conn
                    .as_ref()
                    .and_then(|c| c.reported.get(&id))
                    .is_some_and(|s| *s == rec.state);
                if rec.state != JobState::Assigned && !already {
                    let (state, message) = (rec.state, rec.message.clone());
                    self.report(id, state, message);
                }
            }
            Admission::New => {
                let printer = self.printer_index(&job.printer);
                self.journal.insert(JobRecord {
                    job_id: id,
                    printer: job.printer.clone(),
                    fingerprint: Some(fingerprint(&job)),
                    state: JobState::Assigned,
                    job: Some(job.clone()),
                    start_requested: false,
                    cancel_requested: false,
                    message: None,
                    finished_at_ms: None,
                    remove_pending: false,
                    progress: None,
                    slots: Vec::new(),
                });
                match printer {
                    Some(i) => {
                        tracing::info!(job = %id, printer = %job.printer, "job accepted");
                        self.printers[i].queue.push_back(id);
                        self.save();
                    }
                    None => self.set_state(
                        id,
                        JobState::Failed,
                        Some(format!("this agent has no printer named {:?}", job.printer)),
                    ),
                }
            }
        }
    }

    /// A member's preheat or cool-down, relayed by the server: set only on a printer this
    /// configuration lets be heated, within its limits, with no job of ours on it and idle in
    /// its last sample (the server checked the same; it is not trusted with heaters).
    fn on_heat(&mut self, printer: &str, targets: HeatTargets, request: Option<String>) {
        let Some(i) = self.printer_index(printer) else {
            tracing::warn!(%printer, "heat asked for an unknown printer");
            return;
        };
        let p = &self.printers[i];
        let limits = &p.config.heat;
        let refused = if targets.nozzle_c.is_none() && targets.bed_c.is_none() {
            Some("no target given".to_owned())
        } else if !(p.driver.describe().capabilities.heat && limits.remote) {
            Some("its configuration or driver does not allow it".to_owned())
        } else if !limits.limits().allow(targets.nozzle_c, targets.bed_c) {
            Some(format!(
                "above its limits ({} °C nozzle, {} °C bed)",
                limits.max_nozzle_c, limits.max_bed_c
            ))
        } else if p.active.is_some() || !p.idle() {
            Some("it is not idle".to_owned())
        } else {
            None
        };
        if let Some(why) = refused {
            tracing::warn!(%printer, ?targets, "heat refused: {why}");
            self.refuse(printer, request, &why);
            return;
        }
        let on = [targets.nozzle_c, targets.bed_c]
            .into_iter()
            .flatten()
            .any(|t| t > 0.0);
        let all_off = targets.nozzle_c == Some(0.0) && targets.bed_c == Some(0.0);
        if on {
            self.printers[i].preheated_at = Some(Instant::now());
        } else if all_off {
            self.printers[i].preheated_at = None;
        }
        self.run_in_background(i, Run::Heat(targets), "heater targets", request);
    }

    /// A member's tuning of a print, relayed by the server: sent as M220, M221 and M106/M107
    /// only to a printer this configuration lets be tuned, within its limits, while its last
    /// sample shows it printing or paused (the server checked the same). Answered either way.
    fn on_tune(&mut self, printer: &str, tune: Tune, request: Option<String>) {
        let Some(i) = self.printer_index(printer) else {
            tracing::warn!(%printer, "tuning asked for an unknown printer");
            return;
        };
        let p = &self.printers[i];
        let refused = if tune.is_empty() {
            Some("nothing to tune given".to_owned())
        } else if !(p.driver.describe().capabilities.tune && p.config.tune.remote) {
            Some("its configuration or driver does not allow it".to_owned())
        } else if let Err(why) = p.config.tune.limits().check(&tune) {
            Some(format!("{why} (its limits)"))
        } else if !p.state.job_running() {
            Some("it is not printing".to_owned())
        } else {
            None
        };
        if let Some(why) = refused {
            tracing::warn!(%printer, ?tune, "tuning refused: {why}");
            self.refuse(printer, request, &why);
            return;
        }
        self.run_in_background(i, Run::Gcode(tune_gcode(&tune)), "tuning", request);
    }

    /// A member's action, relayed by the server: run only if this configuration defines it for
    /// this printer (or it is one of the driver's own), in a state it runs in as the last sample
    /// shows (an idle-only one also with no job of ours on it). Answered either way.
    fn on_action(&mut self, printer: &str, id: &str, request: Option<String>) {
        let Some(i) = self.printer_index(printer) else {
            tracing::warn!(%printer, action = id, "action asked for an unknown printer");
            return;
        };
        let p = &self.printers[i];
        let found = offered_actions(p).into_iter().find(|(a, _)| a.id == id);
        let refused = match &found {
            None => Some("this printer has no action of that id"),
            // An idle-only action also waits for a job of ours that the printer has not begun.
            Some((a, _))
                if !a.allowed_in(p.state) || (a.when == ActionWhen::Idle && p.active.is_some()) =>
            {
                Some(match a.when {
                    ActionWhen::Idle => "it runs only while the printer is idle",
                    ActionWhen::Printing => "it runs only while the printer prints",
                    ActionWhen::Always => "the printer is offline",
                })
            }
            Some(_) => None,
        };
        let (Some((announced, run)), None) = (found, refused) else {
            let why = refused.unwrap_or_default();
            tracing::warn!(%printer, action = id, "action refused: {why}");
            self.refuse(printer, request, why);
            return;
        };
        self.run_in_background(i, run, &format!("action {}", announced.id), request);
    }

    /// Runs `run` on printer `i` in the background; logs `what` with how it went, and answers a
    /// member's `request`.
    fn run_in_background(&mut self, i: usize, run: Run, what: &str, request: Option<String>) {
        let driver = self.printers[i].driver.clone();
        let printer = self.printers[i].config.name.clone();
        let events = self.events.clone();
        let what = what.to_owned();
        self.tasks.spawn(async move {
            let done = match &run {
                Run::Heat(targets) => driver.set_temperatures(*targets).await,
                Run::Gcode(lines) => driver.run_gcode(lines).await,
                Run::Own(id) => driver.run_own_action(id).await,
            };
            let result = match done {
                Ok(()) => {
                    tracing::info!(%printer, ?run, "{what}: done");
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(%printer, ?run, error = %chain(&e), "{what}: failed");
                    Err(chain(&e))
                }
            };
            let _ = events.send(Event::Answered {
                printer,
                request,
                result,
            });
        });
    }

    /// Answers a member's request to `printer` that this agent will not carry out, saying `why`.
    fn refuse(&mut self, printer: &str, request: Option<String>, why: &str) {
        self.answer(
            printer,
            request,
            Err(format!("refused by its agent: {why}")),
        );
    }

    /// Tells the server how a member's request to `printer` ended, when it came with an id.
    fn answer(&mut self, printer: &str, request: Option<String>, result: Result<(), String>) {
        let Some(request) = request else { return };
        let (ok, message) = match result {
            Ok(()) => (true, None),
            Err(m) => (false, Some(m)),
        };
        let msg = AgentMsg::Outcome {
            printer: printer.to_owned(),
            request,
            ok,
            message,
        };
        // Kept when the connection is down, or turns out to be gone as it is sent.
        let unsent = match &self.conn {
            Some(c) => c.tx.send(msg).err().map(|e| e.0),
            None => Some(msg),
        };
        if let Some(msg) = unsent {
            self.conn = None;
            if self.unsent_answers.len() == UNSENT_ANSWERS {
                self.unsent_answers.pop_front();
            }
            self.unsent_answers.push_back(msg);
        }
    }

    /// A member's preheat that no job followed within `cool_after_seconds` is switched off; one a
    /// job took over is forgotten.
    fn cool_forgotten_preheat(&mut self, i: usize) {
        let p = &self.printers[i];
        let Some(at) = p.preheated_at else {
            return;
        };
        if !p.idle() || p.active.is_some() {
            self.printers[i].preheated_at = None;
            return;
        }
        let after = p.config.heat.cool_after_seconds;
        if after == 0 || at.elapsed() < Duration::from_secs(after) {
            return;
        }
        self.printers[i].preheated_at = None;
        let off = HeatTargets {
            nozzle_c: Some(0.0),
            bed_c: Some(0.0),
        };
        self.run_in_background(
            i,
            Run::Heat(off),
            "switching off a preheat no job followed",
            None,
        );
    }

    fn on_control(&mut self, id: JobId, action: JobAction) {
        let Some(rec) = self.journal.get_mut(&id) else {
            tracing::warn!(job = %id, ?action, "control for an unknown job");
            return;
        };
        if rec.state.is_final() {
            let (state, message) = (rec.state, rec.message.clone());
            self.report(id, state, message);
            return;
        }
        let started = rec.start_requested;
        match action {
            JobAction::Cancel => {
                rec.cancel_requested = true;
                self.save();
                if started {
                    self.spawn_control(id, action);
                } else if !self.jobs.get(&id).is_some_and(|rt| rt.busy) {
                    self.set_state(id, JobState::Cancelled, None);
                }
                // A transfer in flight sees `cancel_requested` when it ends.
            }
            JobAction::Pause | JobAction::Resume => {
                if started {
                    self.spawn_control(id, action);
                } else {
                    tracing::warn!(job = %id, ?action, "job not started yet; ignored");
                }
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Sample { printer, status } => self.on_sample(printer, status),
            Event::Transferred { job, result } => self.on_transferred(job, result),
            Event::Removed { job, result } => self.on_removed(job, result),
            Event::Snapshot { printer, result } => self.on_snapshot(printer, result),
            Event::KeptSent { result } => self.on_kept_sent(result),
            Event::Answered {
                printer,
                request,
                result,
            } => self.answer(&printer, request, result),
            Event::Started { job, result } => {
                if let Some(rt) = self.jobs.get_mut(&job) {
                    rt.busy = false;
                }
                match result {
                    Ok(started) => {
                        let Some(rec) = self.journal.get_mut(&job) else {
                            return;
                        };
                        let (cancel, transferring) =
                            (rec.cancel_requested, rec.state == JobState::Transferring);
                        if !started.slots.is_empty() {
                            // Reported with the final state, for the spools of those slots.
                            rec.slots = started.slots;
                            self.save();
                        }
                        if transferring {
                            self.set_state(job, JobState::Printing, None);
                        }
                        if cancel {
                            // Cancelled while the start was on its way.
                            self.spawn_control(job, JobAction::Cancel);
                        }
                    }
                    // It may or may not have started: the printer will tell (see `observe`).
                    Err(e) if e.is_unreachable() => {
                        tracing::warn!(%job, error = %e, "start may not have reached the printer");
                    }
                    Err(e) => self.set_state(job, JobState::Failed, Some(chain(&e))),
                }
            }
            Event::Controlled {
                job,
                action,
                result,
            } => match result {
                Ok(()) => tracing::info!(%job, ?action, "control reached the printer"),
                Err(e) if e.is_unreachable() => {
                    if let Some(rt) = self.jobs.get_mut(&job) {
                        rt.pending_control = Some(action);
                        rt.retry_at = Some(Instant::now() + self.timing.retry());
                    }
                }
                Err(e) => tracing::warn!(%job, ?action, error = %chain(&e), "printer refused"),
            },
        }
    }

    fn on_transferred(&mut self, id: JobId, result: Result<(), StepError>) {
        let retry = self.timing.retry();
        let rt = self.jobs.entry(id).or_default();
        rt.busy = false;
        let Some(rec) = self.journal.get(&id) else {
            return;
        };
        if rec.state.is_final() {
            return;
        }
        match result {
            Ok(()) if rec.cancel_requested => self.set_state(id, JobState::Cancelled, None),
            Ok(()) => {
                if let Some(rec) = self.journal.get_mut(&id) {
                    rec.start_requested = true;
                }
                // Durable before the printer hears of it: a restart must never start it again.
                self.save();
                let Some(driver) = self.driver_of(id) else {
                    return;
                };
                rt_busy(&mut self.jobs, id);
                let events = self.events.clone();
                self.tasks.spawn(async move {
                    let result = driver.start(&printer_file_name(id)).await;
                    let _ = events.send(Event::Started { job: id, result });
                });
            }
            Err(StepError::Retry(why)) => {
                tracing::info!(job = %id, %why, "transfer will be retried");
                rt.retry_at = Some(Instant::now() + retry);
            }
            Err(StepError::HashMismatch(why)) => {
                rt.hash_failures += 1;
                if rt.hash_failures >= HASH_ATTEMPTS {
                    let msg = format!("{}: {why}", Refusal::CiphertextMismatch.code());
                    self.set_state(id, JobState::Refused, Some(msg));
                } else {
                    tracing::warn!(job = %id, %why, "download corrupt; downloading again");
                }
            }
            Err(StepError::Refused(reason, why)) => self.set_state(
                id,
                JobState::Refused,
                Some(format!("{}: {why}", reason.code())),
            ),
            Err(StepError::Failed(why)) => self.set_state(id, JobState::Failed, Some(why)),
        }
    }

    fn on_sample(&mut self, i: usize, status: PrinterStatus) {
        let name = self.printers[i].config.name.clone();
        self.printers[i].polling = false;
        self.coalescer.offer(&name, to_wire(&status));
        self.flush_telemetry();
        self.printers[i].state = crate::telemetry::wire_state(status.state);
        self.printers[i].layer = status.job.as_ref().and_then(|j| j.layer);
        if status.state == hearth_drivers::PrinterState::Offline {
            self.printers[i].online = false;
            return;
        }
        self.printers[i].online = true;
        self.printers[i].attached = true;
        self.adopt(i, &status);
        self.observe(i, &status);
        self.cool_forgotten_preheat(i);
    }

    /// The job the printer works on, recognised by its file name, is the printer's active job, even if
    /// this agent lost its journal or had not seen it running yet (some printers report a job a few
    /// samples late): a job found running on the printer is never started again.
    fn adopt(&mut self, i: usize, status: &PrinterStatus) {
        let Some(job) = status.job.as_ref().filter(|j| !j.phase.is_finished()) else {
            return;
        };
        let Some(id) = job_of_file(&job.file) else {
            return;
        };
        if self.journal.get(&id).is_some_and(|r| r.state.is_final()) {
            // Already reported final (e.g. declared lost): never revived, so the server's view stays
            // consistent; telemetry still names the job the printer runs.
            tracing::warn!(job = %id, "the printer runs a job this agent already reported finished");
            return;
        }
        let p = &mut self.printers[i];
        if p.active == Some(id) {
            return;
        }
        tracing::info!(job = %id, printer = %p.config.name, "re-attached to the printer's running job");
        if let Some(prev) = p.active.take() {
            p.queue.push_front(prev);
        }
        p.queue.retain(|j| *j != id);
        p.active = Some(id);
        let printer = p.config.name.clone();
        match self.journal.get_mut(&id) {
            Some(rec) => {
                rec.start_requested = true;
                if rec.state == JobState::Assigned {
                    rec.state = JobState::Transferring;
                }
            }
            None => self.journal.insert(JobRecord {
                job_id: id,
                printer,
                fingerprint: None,
                state: JobState::Transferring,
                job: None,
                start_requested: true,
                cancel_requested: false,
                message: None,
                finished_at_ms: None,
                remove_pending: false,
                progress: None,
                slots: Vec::new(),
            }),
        }
        self.save();
    }

    /// Follows the active, started job on the printer.
    fn observe(&mut self, i: usize, status: &PrinterStatus) {
        let Some(id) = self.printers[i].active else {
            return;
        };
        let busy = self.jobs.get(&id).is_some_and(|rt| rt.busy);
        let Some(rec) = self.journal.get_mut(&id) else {
            return;
        };
        if !rec.start_requested || busy {
            return;
        }
        let file = printer_file_name(id);
        let current = rec.state;
        let (next, message) = match status.job.as_ref().filter(|j| j.file == file) {
            Some(job) => {
                // The furthest seen: a printer may report 0 again once a print is stopped.
                let done = job.progress.clamp(0.0, 1.0) as f32;
                if done.is_finite() {
                    rec.progress = Some(rec.progress.map_or(done, |p| p.max(done)));
                }
                self.printers[i].misses = 0;
                self.printers[i].missing_since = None;
                let next = observed_state(current, job.phase);
                let message = (next == JobState::Failed).then(|| {
                    status
                        .error
                        .clone()
                        .unwrap_or_else(|| "the printer stopped the job".into())
                });
                (next, message)
            }
            None => {
                let lost_after = self.timing.lost_after();
                let p = &mut self.printers[i];
                p.misses += 1;
                let since = *p.missing_since.get_or_insert_with(Instant::now);
                if p.misses < LOST_AFTER || since.elapsed() < lost_after {
                    return;
                }
                p.misses = 0;
                p.missing_since = None;
                if rec.cancel_requested {
                    (JobState::Cancelled, None)
                } else {
                    (
                        JobState::Failed,
                        Some(
                            "the printer no longer reports this job; it is not started again"
                                .into(),
                        ),
                    )
                }
            }
        };
        if next != current {
            self.set_state(id, next, message);
        }
    }

    fn on_tick(&mut self) {
        while self.tasks.try_join_next().is_some() {}
        self.retry_removals();
        for i in 0..self.printers.len() {
            if self.printers[i].polling {
                continue;
            }
            self.printers[i].polling = true;
            let driver = self.printers[i].driver.clone();
            let events = self.events.clone();
            self.tasks.spawn(async move {
                let status = match driver.status().await {
                    Ok(s) => s,
                    Err(e) => PrinterStatus::offline(chain(&e)),
                };
                let _ = events.send(Event::Sample { printer: i, status });
            });
        }
        self.flush_telemetry();
        self.take_snapshots();
        if self.kept_retry_at.is_some_and(|t| Instant::now() >= t) {
            self.send_kept();
        }
    }

    /// Starts a frame for every camera that is due or was asked for. While disconnected, only
    /// timelapse frames are taken, and kept until the server is back; while kept frames wait to be
    /// sent, new timelapse frames are kept behind them, so they reach the server in order.
    fn take_snapshots(&mut self) {
        let token = self.conn.as_ref().map(|c| c.token.clone());
        let keep_timelapse = token.is_none() || self.sending_kept || !self.kept.is_empty();
        let now = Instant::now();
        for i in 0..self.printers.len() {
            let p = &mut self.printers[i];
            let printing = p.active.is_some();
            let (Some(config), Some(cam)) = (p.config.camera.as_ref(), p.camera.as_mut()) else {
                continue;
            };
            let plan = crate::camera::plan(
                config,
                cam.last,
                now,
                printing,
                p.layer,
                cam.timelapse_layer,
            );
            if cam.busy || !(cam.wanted || plan.take) || (token.is_none() && !plan.timelapse) {
                continue;
            }
            // Frames on the printing cadence (or at a new layer) make the job's timelapse; one a
            // member asked for between them does not, so the timelapse stays evenly spaced.
            let job = p.active.filter(|_| plan.timelapse);
            if plan.timelapse {
                cam.timelapse_layer = p.layer;
            }
            cam.busy = true;
            cam.wanted = false;
            let shot = crate::camera::Shot {
                http: self.http.clone(),
                server: self.server.clone(),
                token: token.clone(),
                kept: self.kept.clone(),
                keep: job.is_some() && keep_timelapse,
                opener: self.opener.clone(),
                printer: p.config.name.clone(),
                url: config.snapshot_url.clone(),
                driver: p.driver.clone(),
                now: hearth_proto::time_fmt::now_ms() / 1000,
                job,
            };
            let events = self.events.clone();
            self.tasks.spawn(async move {
                let result = shot.take().await;
                let _ = events.send(Event::Snapshot { printer: i, result });
            });
        }
    }

    fn on_snapshot(&mut self, i: usize, result: Result<crate::camera::Taken, String>) {
        let p = &mut self.printers[i];
        let Some(cam) = p.camera.as_mut() else {
            return;
        };
        cam.busy = false;
        cam.last = Some(Instant::now());
        match result {
            Ok(taken) => {
                if cam.failing.take().is_some() {
                    tracing::info!(printer = %p.config.name, "the camera works again");
                }
                if taken == crate::camera::Taken::Kept {
                    self.send_kept();
                }
            }
            Err(why) => {
                if cam.failing.as_deref() != Some(why.as_str()) {
                    tracing::warn!(printer = %p.config.name, error = %why, "camera frame not sent");
                }
                cam.failing = Some(why);
            }
        }
    }

    /// Sends the kept timelapse frames, once connected and unless already under way.
    fn send_kept(&mut self) {
        let Some(token) = self.conn.as_ref().map(|c| c.token.clone()) else {
            return;
        };
        if self.sending_kept || self.kept.is_empty() {
            return;
        }
        self.sending_kept = true;
        self.kept_retry_at = None;
        let (http, server, kept) = (self.http.clone(), self.server.clone(), self.kept.clone());
        let events = self.events.clone();
        self.tasks.spawn(async move {
            let result = crate::camera::send_kept(&http, &server, &token, &kept).await;
            let _ = events.send(Event::KeptSent { result });
        });
    }

    fn on_kept_sent(&mut self, result: Result<usize, String>) {
        self.sending_kept = false;
        match result {
            Ok(n) => {
                tracing::info!(
                    frames = n,
                    "timelapse frames kept while the server was away are sent"
                );
                // Frames kept meanwhile go too.
                self.send_kept();
            }
            Err(why) => {
                tracing::warn!(error = %why, "kept timelapse frames wait for the server");
                self.kept_retry_at = Some(Instant::now() + KEPT_RETRY);
            }
        }
    }

    fn flush_telemetry(&mut self) {
        if self.conn.is_none() {
            return;
        }
        for (printer, status) in self.coalescer.due(Instant::now()) {
            self.send(AgentMsg::Telemetry { printer, status });
        }
    }

    fn pump_all(&mut self) {
        for i in 0..self.printers.len() {
            self.pump(i);
        }
    }

    /// Moves the printer's jobs forward as far as possible now.
    fn pump(&mut self, i: usize) {
        loop {
            let p = &mut self.printers[i];
            let id = match p.active {
                Some(id) => id,
                None => match p.queue.pop_front() {
                    Some(id) => {
                        p.active = Some(id);
                        p.misses = 0;
                        p.missing_since = None;
                        id
                    }
                    None => return,
                },
            };
            if self.journal.get(&id).is_none_or(|r| r.state.is_final()) {
                self.printers[i].active = None;
                continue;
            }
            if !self.drive(i, id) {
                return;
            }
        }
    }

    /// One step of the active job; `true` when it finished (the next job may go).
    fn drive(&mut self, i: usize, id: JobId) -> bool {
        let now = Instant::now();
        let rt = self.jobs.entry(id).or_default();
        if rt.busy || rt.retry_at.is_some_and(|t| t > now) {
            return false;
        }
        rt.retry_at = None;
        let Some(rec) = self.journal.get(&id) else {
            return true;
        };
        if rec.start_requested {
            if let Some(action) = rt.pending_control.take() {
                self.spawn_control(id, action);
            }
            return false;
        }
        if rec.cancel_requested {
            self.set_state(id, JobState::Cancelled, None);
            return true;
        }
        let p = &self.printers[i];
        if !p.attached || !p.online || (rec.state == JobState::Assigned && !p.idle()) {
            // A transfer begins only on an idle printer; one under way is retried whatever happens.
            return false;
        }
        let Some(job) = rec.job.clone() else {
            // Adopted without its message and not started: wait for the server to send it again.
            return false;
        };
        let sealed_ready = self.spool.sealed(id).exists();
        let token = self.conn.as_ref().map(|c| c.token.clone());
        if token.is_none() && !sealed_ready {
            return false;
        }
        if rec.state == JobState::Assigned {
            self.set_state(id, JobState::Transferring, None);
        }
        rt_busy(&mut self.jobs, id);
        let ctx = TransferCtx {
            http: self.http.clone(),
            server: self.server.clone(),
            token,
            spool: self.spool.clone(),
            opener: self.opener.clone(),
            driver: self.printers[i].driver.clone(),
            job,
        };
        let events = self.events.clone();
        self.tasks.spawn(async move {
            let result = ctx.transfer().await;
            let _ = events.send(Event::Transferred { job: id, result });
        });
        false
    }

    fn spawn_control(&mut self, id: JobId, action: JobAction) {
        let Some(driver) = self.driver_of(id) else {
            return;
        };
        let events = self.events.clone();
        self.tasks.spawn(async move {
            let result = match action {
                JobAction::Pause => driver.pause().await,
                JobAction::Resume => driver.resume().await,
                JobAction::Cancel => driver.cancel().await,
            };
            let _ = events.send(Event::Controlled {
                job: id,
                action,
                result,
            });
        });
    }

    fn driver_of(&self, id: JobId) -> Option<Arc<dyn Driver>> {
        let rec = self.journal.get(&id)?;
        let i = self.printer_index(&rec.printer)?;
        Some(self.printers[i].driver.clone())
    }

    /// Records and reports a new state. Final states free the printer and clean up.
    fn set_state(&mut self, id: JobId, state: JobState, message: Option<String>) {
        let Some(rec) = self.journal.get_mut(&id) else {
            return;
        };
        rec.state = state;
        rec.message = message.clone();
        let mut remove_from = None;
        if state.is_final() {
            rec.job = None;
            rec.finished_at_ms = Some(crate::journal::now_ms());
            if rec.start_requested || state == JobState::Cancelled {
                remove_from = Some(rec.printer.clone());
            }
            let printer = rec.printer.clone();
            self.jobs.remove(&id);
            self.spool.forget(id);
            if let Some(i) = self.printer_index(&printer) {
                let p = &mut self.printers[i];
                if p.active == Some(id) {
                    p.active = None;
                    p.misses = 0;
                    p.missing_since = None;
                }
                p.queue.retain(|j| *j != id);
            }
        }
        self.save();
        tracing::info!(job = %id, ?state, message = message.as_deref().unwrap_or(""), "job state");
        self.report(id, state, message);
        // The printer keeps no copy of a design once its job is over: deleted now, and again after
        // a restart or when the printer is back, until it is confirmed (`remove_pending`).
        if remove_from.is_some() {
            if let Some(rec) = self.journal.get_mut(&id) {
                rec.remove_pending = true;
            }
            self.save();
            self.spawn_removal(id);
        }
    }

    /// Deletes a finished job's file from its printer, once at a time per job.
    fn spawn_removal(&mut self, id: JobId) {
        if matches!(self.removing.get(&id), Some(None)) {
            return;
        }
        let Some(driver) = self.driver_of(id) else {
            return;
        };
        self.removing.insert(id, None);
        let events = self.events.clone();
        self.tasks.spawn(async move {
            let result = driver.remove(&printer_file_name(id)).await;
            let _ = events.send(Event::Removed { job: id, result });
        });
    }

    fn on_removed(&mut self, id: JobId, result: Result<(), DriverError>) {
        match result {
            Ok(()) => {
                self.removing.remove(&id);
                if let Some(rec) = self.journal.get_mut(&id) {
                    rec.remove_pending = false;
                }
                self.save();
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %chain(&e), "could not delete the job's file from the printer; will try again");
                self.removing
                    .insert(id, Some(Instant::now() + self.timing.retry()));
            }
        }
    }

    /// Tries again the deletions that failed or were cut short (by a restart), for printers that
    /// answer.
    fn retry_removals(&mut self) {
        let now = Instant::now();
        let due: Vec<JobId> = self
            .journal
            .removals()
            .filter(|r| match self.removing.get(&r.job_id) {
                None => true,
                Some(None) => false,
                Some(Some(at)) => *at <= now,
            })
            .filter(|r| {
                self.printer_index(&r.printer)
                    .is_some_and(|i| self.printers[i].online)
            })
            .map(|r| r.job_id)
            .collect();
        for id in due {
            self.spawn_removal(id);
        }
    }

    fn save(&mut self) {
        if let Err(e) = self.journal.save() {
            // The in-memory state stays right; a crash before the next successful save could forget
            // this step. Nothing better can be done than to say so loudly.
            tracing::error!(error = %chain(&e), "cannot write the job journal");
        }
    }

    fn report(&mut self, job_id: JobId, state: JobState, message: Option<String>) {
        let (progress, slots) = match self.journal.get(&job_id) {
            Some(r) if state.is_final() => (r.progress, r.slots.clone()),
            _ => (None, Vec::new()),
        };
        self.send_update(JobUpdate {
            job_id,
            state,
            message,
            progress,
            slots,
        });
    }

    fn send_update(&mut self, u: JobUpdate) {
        match &mut self.conn {
            Some(c) => {
                c.reported.insert(u.job_id, u.state);
                let msg = AgentMsg::JobUpdate {
                    job_id: u.job_id,
                    state: u.state,
                    message: u.message.clone(),
                    progress: u.progress,
                    slots: u.slots.clone(),
                };
                if c.tx.send(msg).is_err() {
                    self.conn = None;
                    self.outbox.push(u);
                }
            }
            None => self.outbox.push(u),
        }
    }

    fn send(&mut self, msg: AgentMsg) {
        if let Some(c) = &self.conn
            && c.tx.send(msg).is_err()
        {
            self.conn = None;
        }
    }
}

/// The state of a started job, given the phase the printer reports for its file. Transitional phases
/// (pausing, cancelling) keep the current state, except that a job the printer works on is printing.
pub fn observed_state(current: JobState, phase: JobPhase) -> JobState {
    match phase {
        JobPhase::Printing => JobState::Printing,
        JobPhase::Paused => JobState::Paused,
        JobPhase::Pausing | JobPhase::Cancelling => {
            if current == JobState::Transferring {
                JobState::Printing
            } else {
                current
            }
        }
        JobPhase::Completed => JobState::Completed,
        JobPhase::Cancelled => JobState::Cancelled,
        JobPhase::Failed => JobState::Failed,
    }
}

fn rt_busy(jobs: &mut HashMap<JobId, JobRt>, id: JobId) {
    jobs.entry(id).or_default().busy = true;
}

fn printer_info(p: &PrinterRt) -> PrinterInfo {
    let info = p.driver.describe();
    PrinterInfo {
        name: p.config.name.clone(),
        kind: match info.kind {
            DriverKind::Simulated => "simulated",
            DriverKind::Octoprint => "octoprint",
            DriverKind::Moonraker => "moonraker",
            DriverKind::Marlin => "marlin",
            DriverKind::Bambu => "bambu",
            DriverKind::Prusalink => "prusalink",
        }
        .into(),
        model: info.model.clone(),
        nozzle_mm: p.config.nozzle_mm,
        material: p.config.material.clone(),
        color: p.config.color.clone(),
        pools: p.config.pools.clone(),
        can_pause: info.capabilities.pause,
        camera: p.config.camera.is_some(),
        heat: (info.capabilities.heat && p.config.heat.remote).then(|| p.config.heat.limits()),
        tune: (info.capabilities.tune && p.config.tune.remote).then(|| p.config.tune.limits()),
        actions: offered_actions(p).into_iter().map(|(a, _)| a).collect(),
    }
}

/// How many answers to members' requests wait for the server at most.
const UNSENT_ANSWERS: usize = 64;

/// What a member's request (or the agent itself) does on the printer.
#[derive(Debug)]
enum Run {
    /// Heater targets (a preheat, a cool-down).
    Heat(HeatTargets),
    /// Lines of G-code (an action of the configuration, a tuning).
    Gcode(Vec<String>),
    /// One of the driver's own actions, by id.
    Own(&'static str),
}

/// The standard G-code a tuning is sent as: M220 (speed), M221 (flow), M106 S0..255 or M107
/// (the part-cooling fan), in that order, for what it sets.
fn tune_gcode(tune: &Tune) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(s) = tune.speed_percent {
        lines.push(format!("M220 S{s}"));
    }
    if let Some(f) = tune.flow_percent {
        lines.push(format!("M221 S{f}"));
    }
    match tune.fan_percent {
        Some(0) => lines.push("M107".to_owned()),
        Some(f) => lines.push(format!("M106 S{}", (u16::from(f) * 255 + 50) / 100)),
        None => {}
    }
    lines
}

/// The actions printer `p` offers, as announced and as run: its configuration's, when its driver
/// sends G-code, then its driver's own, unless the configuration says `builtin_actions = false`.
fn offered_actions(p: &PrinterRt) -> Vec<(PrinterAction, Run)> {
    let caps = p.driver.describe().capabilities;
    let mut offered: Vec<(PrinterAction, Run)> = Vec::new();
    if caps.gcode {
        offered.extend(
            p.config
                .actions
                .iter()
                .map(|a| (a.announced(), Run::Gcode(a.gcode.lines()))),
        );
    }
    if p.config.builtin_actions {
        for a in p.driver.own_actions() {
            let action = PrinterAction {
                id: a.id.into(),
                label: a.label.into(),
                when: match a.when {
                    RunsWhen::Idle => ActionWhen::Idle,
                    RunsWhen::Always => ActionWhen::Always,
                    RunsWhen::Printing => ActionWhen::Printing,
                },
                admins_only: false,
                confirm: None,
            };
            offered.push((action, Run::Own(a.id)));
        }
    }
    offered
}

/// An error and its causes on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Print time and layers from our own analysis of the opened file (the simulator times prints with them;
/// real printers ignore them). A file the analyser cannot read simply gives no hints.
fn hints_from_analysis(path: &std::path::Path) -> hearth_drivers::PrintHints {
    let report = std::fs::File::open(path).ok().and_then(|f| {
        hearth_printfile::analyze(
            std::io::BufReader::new(f),
            &hearth_printfile::Options::default(),
        )
        .ok()
    });
    match report.and_then(|r| r.analysis) {
        Some(a) => hearth_drivers::PrintHints {
            estimated_seconds: (a.estimated_time_s > 0.0).then_some(a.estimated_time_s),
            layers: u32::try_from(a.layers.count).ok().filter(|l| *l > 0),
        },
        None => hearth_drivers::PrintHints::default(),
    }
}

/// The organisation's chain, with this connection's token.
pub(crate) async fn fetch_chain(
    http: &reqwest::Client,
    server: &str,
    token: &str,
) -> Result<Vec<hearth_proto::api::ChainLink>, String> {
    let url = format!("{}/api/v1/agent/chain", server.trim_end_matches('/'));
    let resp = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("fetching the chain: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("fetching the chain: HTTP {}", resp.status()));
    }
    resp.json()
        .await
        .map_err(|e| format!("reading the chain: {e}"))
}

struct TransferCtx {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
    spool: Spool,
    opener: Arc<dyn JobOpener>,
    driver: Arc<dyn Driver>,
    job: AgentJob,
}

impl TransferCtx {
    /// Download (resumable), verify and open into a 0600 file, upload, delete the plaintext.
    async fn transfer(self) -> Result<(), StepError> {
        let id = self.job.job_id;
        let sealed = if self.spool.sealed(id).exists() {
            self.spool.sealed(id)
        } else {
            let Some(token) = &self.token else {
                return Err(StepError::Retry("waiting for the server".into()));
            };
            crate::spool::download(
                &self.http,
                &self.server,
                token,
                &self.spool,
                id,
                &self.job.blob_sha256,
            )
            .await
            .map_err(|e| match e {
                DownloadError::Transient(_) => StepError::Retry(chain(&e)),
                DownloadError::Status { status } if status == 401 || status >= 500 => {
                    StepError::Retry(chain(&e))
                }
                DownloadError::HashMismatch { .. } => StepError::HashMismatch(chain(&e)),
                DownloadError::Status { .. } | DownloadError::Io(_) => StepError::Failed(chain(&e)),
            })?
        };

        if self.opener.wants_chain() {
            let Some(token) = &self.token else {
                return Err(StepError::Retry("waiting for the server".into()));
            };
            let links = fetch_chain(&self.http, &self.server, token)
                .await
                .map_err(StepError::Retry)?;
            self.opener.update_chain(links).map_err(|why| {
                StepError::Refused(Refusal::UnknownSigner, format!("untrusted chain: {why}"))
            })?;
        }
        let opener = self.opener.clone();
        let spool = self.spool.clone();
        let job = self.job.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let (path, mut file) = spool
                .create_plaintext(id)
                .map_err(|e| StepError::Failed(format!("cannot create the spool file: {e}")))?;
            let result = opener.open(&job, &sealed, &mut file).and_then(|o| {
                file.sync_all().map_err(OpenError::Io)?;
                Ok(o)
            });
            match result {
                Ok(mut o) => {
                    if o.hints.estimated_seconds.is_none() {
                        o.hints = hints_from_analysis(&path);
                    }
                    Ok((path, o))
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    Err(match e {
                        OpenError::Refused { reason, detail } => StepError::Refused(reason, detail),
                        OpenError::Io(e) => StepError::Failed(format!("cannot open the job: {e}")),
                    })
                }
            }
        })
        .await
        .map_err(|e| StepError::Failed(format!("opening the job crashed: {e}")))??;
        let (plain, opened) = opened;

        let name = printer_file_name(id);
        let upload = self
            .driver
            .upload(Upload {
                name: &name,
                path: &plain,
                hints: PrintHints {
                    estimated_seconds: opened.hints.estimated_seconds,
                    layers: opened.hints.layers,
                },
            })
            .await;
        // The printer has it (or will get it again from the sealed copy): no plaintext stays here.
        let _ = tokio::fs::remove_file(&plain).await;
        match upload {
            Ok(()) => Ok(()),
            Err(e) if e.is_unreachable() => Err(StepError::Retry(chain(&e))),
            Err(e) => Err(StepError::Failed(chain(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_phases_map_to_job_states() {
        use JobState as S;
        let cases = [
            (S::Transferring, JobPhase::Printing, S::Printing),
            (S::Transferring, JobPhase::Pausing, S::Printing),
            (S::Printing, JobPhase::Pausing, S::Printing),
            (S::Paused, JobPhase::Cancelling, S::Paused),
            (S::Printing, JobPhase::Paused, S::Paused),
            (S::Paused, JobPhase::Printing, S::Printing),
            (S::Printing, JobPhase::Completed, S::Completed),
            (S::Paused, JobPhase::Cancelled, S::Cancelled),
            (S::Printing, JobPhase::Failed, S::Failed),
        ];
        for (current, phase, want) in cases {
            assert_eq!(
                observed_state(current, phase),
                want,
                "{current:?} + {phase:?}"
            );
        }
    }
}
