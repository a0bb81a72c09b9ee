//! Marlin (and compatible) firmware on a USB serial port, with no OctoPrint in between: the agent is
//! the print host and streams the G-code itself (`kind = "marlin"`).
//!
//! The host protocol (`shared/peers/PROTOCOLS.md` §A5): every command goes as `N<n> <cmd>*<xor>`,
//! one at a time, the next after the firmware's `ok`; `Resend: <n>` makes the host send again from
//! line `n`; `busy:`/`wait` lines are keep-alives; `start` is a firmware reset. Temperatures come
//! unsolicited after `M155 S2` when the firmware reports `Cap:AUTOREPORT_TEMP:1`, else from `M105`.
//!
//! One task per printer owns the port (opened on first use, so building the driver contacts nothing)
//! and keeps the shared state the trait methods read. An uploaded file is kept *open* rather than
//! copied: the agent deletes its plaintext right after the upload, as for any printer, and the
//! bytes stay reachable only through this handle until the print ends. A print streamed by the host
//! cannot outlive it: if the connection drops or the firmware resets mid-print, the job fails (and
//! after an agent restart the printer knows no job, which the agent reports as failed).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::driver::{Driver, Upload};
use crate::error::DriverError;
use crate::model::{
    Capabilities, DriverInfo, DriverKind, HeatTargets, Heater, JobPhase, JobStatus, PrintHints,
    PrinterState, PrinterStatus, Started,
};

/// Settings of a printer on a serial port (`kind = "marlin"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarlinConfig {
    /// The serial device, e.g. `/dev/ttyACM0`; better a stable `/dev/serial/by-id/...` path.
    pub port: String,
    /// 115200 for most printers; some older boards use 250000.
    #[serde(default = "default_baudrate")]
    pub baudrate: u32,
    /// Printer model to report.
    #[serde(default)]
    pub model: Option<String>,
}

fn default_baudrate() -> u32 {
    115_200
}

/// Lines kept for `Resend` requests (firmware asks for recent lines only).
const HISTORY: usize = 128;
/// After the port opens, `M110` is repeated this often until the firmware answers (boards reset
/// when the port opens and take a moment to boot).
const HELLO_EVERY: Duration = Duration::from_secs(2);
/// A lost connection is tried again after this long.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);
/// A command unanswered this long (no `ok`, no `busy:` keep-alive) is taken as lost.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// An uploaded file, held open.
#[derive(Debug)]
struct Held {
    file: std::fs::File,
    len: u64,
    hints: PrintHints,
}

#[derive(Debug)]
struct Job {
    file: String,
    phase: JobPhase,
    total: u64,
    sent: u64,
    layer: u32,
    started: Instant,
    hints: PrintHints,
}

impl Job {
    fn status(&self) -> JobStatus {
        let progress = if self.total == 0 {
            1.0
        } else {
            (self.sent as f64 / self.total as f64).clamp(0.0, 1.0)
        };
        let elapsed = self.started.elapsed().as_secs();
        JobStatus {
            file: self.file.clone(),
            phase: self.phase,
            progress,
            layer: (self.layer > 0).then_some(self.layer),
            total_layers: self.hints.layers,
            elapsed_seconds: Some(elapsed),
            remaining_seconds: self
                .hints
                .estimated_seconds
                .map(|e| (e * (1.0 - progress)).max(0.0) as u64),
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    online: bool,
    offline_reason: String,
    heaters: Vec<Heater>,
    files: HashMap<String, Held>,
    job: Option<Job>,
    last: Option<JobStatus>,
    /// The firmware halted (thermal error, kill): it needs a reset at the printer.
    halted: Option<String>,
    /// Why the printer itself paused the print (a host action: filament runout, the knob).
    paused_by_printer: Option<String>,
}

enum Cmd {
    Start(Box<BufReader<std::fs::File>>),
    Pause,
    Resume,
    Cancel,
    /// Lines sent as soon as the firmware takes them (heater targets while idle).
    Gcode(Vec<String>),
}

/// A printer on a serial port.
#[derive(Debug)]
pub struct MarlinDriver {
    info: DriverInfo,
    cfg: MarlinConfig,
    shared: Arc<Mutex<Shared>>,
    conn: Mutex<Conn>,
}

#[derive(Debug, Default)]
struct Conn {
    tx: Option<mpsc::UnboundedSender<Cmd>>,
    last_try: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Start(_) => "Start",
            Cmd::Pause => "Pause",
            Cmd::Resume => "Resume",
            Cmd::Cancel => "Cancel",
            Cmd::Gcode(_) => "Gcode",
        })
    }
}

impl MarlinDriver {
    pub fn new(cfg: MarlinConfig) -> Self {
        Self {
            info: DriverInfo {
                kind: DriverKind::Marlin,
                model: cfg.model.clone().unwrap_or_else(|| "Marlin printer".into()),
                endpoint: cfg.port.clone(),
                capabilities: Capabilities {
                    pause: true,
                    layers: true,
                    fault_injection: false,
                    heat: true,
                    gcode: true,
                    tune: true,
                },
            },
            cfg,
            shared: Arc::new(Mutex::new(Shared {
                offline_reason: "not connected yet".into(),
                ..Shared::default()
            })),
            conn: Mutex::new(Conn::default()),
        }
    }

    /// The running connection task's channel, starting it when there is none (at most once every
    /// [`RECONNECT_AFTER`]).
    fn connection(&self) -> Option<mpsc::UnboundedSender<Cmd>> {
        let mut conn = lock(&self.conn);
        if let Some(tx) = &conn.tx
            && !tx.is_closed()
        {
            return Some(tx.clone());
        }
        if conn.last_try.is_some_and(|t| t.elapsed() < RECONNECT_AFTER) {
            return None;
        }
        conn.last_try = Some(Instant::now());
        let (tx, rx) = mpsc::unbounded_channel();
        conn.tx = Some(tx.clone());
        tokio::spawn(run_port(self.cfg.clone(), self.shared.clone(), rx));
        Some(tx)
    }

    fn unreachable(&self, why: String) -> DriverError {
        DriverError::Unreachable {
            endpoint: self.cfg.port.clone(),
            source: why.into(),
        }
    }

    /// The channel to a connected printer, or why there is none.
    fn online(&self) -> Result<mpsc::UnboundedSender<Cmd>, DriverError> {
        let tx = self.connection();
        let s = lock(&self.shared);
        match tx {
            Some(tx) if s.online => Ok(tx),
            _ => Err(self.unreachable(s.offline_reason.clone())),
        }
    }

    /// Hands `cmd` to the connection task behind `tx` (from [`Self::online`]).
    fn send(&self, tx: &mpsc::UnboundedSender<Cmd>, cmd: Cmd) -> Result<(), DriverError> {
        tx.send(cmd)
            .map_err(|_| self.unreachable("the connection to the printer ended".into()))
    }

    fn job_control(
        &self,
        operation: &'static str,
        from: &[JobPhase],
        to: JobPhase,
        cmd: Cmd,
    ) -> Result<(), DriverError> {
        let tx = self.online()?;
        {
            let mut s = lock(&self.shared);
            let Some(job) = s.job.as_mut().filter(|j| from.contains(&j.phase)) else {
                return Err(DriverError::Rejected {
                    operation,
                    code: None,
                    message: "no job in a state that allows it".into(),
                });
            };
            job.phase = to;
            s.paused_by_printer = None;
        }
        self.send(&tx, cmd)
    }
}

#[async_trait]
impl Driver for MarlinDriver {
    fn describe(&self) -> &DriverInfo {
        &self.info
    }

    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        self.connection();
        let s = lock(&self.shared);
        if !s.online {
            return Ok(PrinterStatus::offline(s.offline_reason.clone()));
        }
        let job = s.job.as_ref().map(Job::status).or_else(|| s.last.clone());
        let state = match (&s.halted, s.job.as_ref().map(|j| j.phase)) {
            (Some(_), _) => PrinterState::Error,
            (None, Some(JobPhase::Printing)) => PrinterState::Printing,
            (None, Some(JobPhase::Pausing)) => PrinterState::Pausing,
            (None, Some(JobPhase::Paused)) => PrinterState::Paused,
            (None, Some(JobPhase::Cancelling)) => PrinterState::Cancelling,
            _ => PrinterState::Idle,
        };
        Ok(PrinterStatus {
            state,
            heaters: s.heaters.clone(),
            job,
            error: s.halted.clone().or_else(|| {
                s.job
                    .as_ref()
                    .filter(|j| j.phase == JobPhase::Paused)
                    .and(s.paused_by_printer.clone())
            }),
            slots: Vec::new(),
            light: None,
            speed_percent: None,
            flow_percent: None,
            fan_percent: None,
        })
    }

    async fn upload(&self, upload: Upload<'_>) -> Result<(), DriverError> {
        let file = std::fs::File::open(upload.path).map_err(|source| DriverError::File {
            path: upload.path.to_owned(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| DriverError::File {
                path: upload.path.to_owned(),
                source,
            })?
            .len();
        lock(&self.shared).files.insert(
            upload.name.to_owned(),
            Held {
                file,
                len,
                hints: upload.hints,
            },
        );
        Ok(())
    }

    async fn start(&self, name: &str) -> Result<Started, DriverError> {
        let tx = self.online()?;
        let reader = {
            let mut s = lock(&self.shared);
            if let Some(why) = &s.halted {
                return Err(DriverError::Rejected {
                    operation: "start",
                    code: None,
                    message: format!("the printer halted ({why}); reset it at the printer first"),
                });
            }
            if s.job.is_some() {
                return Err(DriverError::Rejected {
                    operation: "start",
                    code: None,
                    message: "the printer is busy with another job".into(),
                });
            }
            let Some(held) = s.files.remove(name) else {
                return Err(DriverError::Rejected {
                    operation: "start",
                    code: None,
                    message: format!("no file {name:?} was uploaded"),
                });
            };
            s.job = Some(Job {
                file: name.to_owned(),
                phase: JobPhase::Printing,
                total: held.len,
                sent: 0,
                layer: 0,
                started: Instant::now(),
                hints: held.hints,
            });
            s.last = None;
            s.paused_by_printer = None;
            BufReader::new(held.file)
        };
        let sent = self.send(&tx, Cmd::Start(Box::new(reader)));
        if sent.is_err() {
            // The connection ended between the check and now, after its task had failed what it
            // was printing: this job would otherwise wait for a stream that never comes.
            let mut s = lock(&self.shared);
            if let Some(mut job) = s.job.take() {
                job.phase = JobPhase::Failed;
                s.last = Some(job.status());
            }
        }
        sent.map(|()| Started::default())
    }

    async fn set_temperatures(&self, targets: HeatTargets) -> Result<(), DriverError> {
        let tx = self.online()?;
        if lock(&self.shared)
            .job
            .as_ref()
            .is_some_and(|j| !j.phase.is_finished())
        {
            return Err(DriverError::Rejected {
                operation: "set_temperatures",
                code: None,
                message: "a job is running".into(),
            });
        }
        // M104 and M140 set the targets without waiting for them (M109/M190 would block).
        let lines: Vec<String> = [("M104", targets.nozzle_c), ("M140", targets.bed_c)]
            .into_iter()
            .filter_map(|(code, t)| t.map(|t| format!("{code} S{}", t.round())))
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        self.send(&tx, Cmd::Gcode(lines))
    }

    async fn run_gcode(&self, lines: &[String]) -> Result<(), DriverError> {
        let tx = self.online()?;
        // Urgent lines go out before the job's next line, as a terminal's would.
        self.send(&tx, Cmd::Gcode(lines.to_vec()))
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.job_control("pause", &[JobPhase::Printing], JobPhase::Paused, Cmd::Pause)
    }

    async fn resume(&self) -> Result<(), DriverError> {
        self.job_control(
            "resume",
            &[JobPhase::Paused, JobPhase::Pausing],
            JobPhase::Printing,
            Cmd::Resume,
        )
    }

    async fn cancel(&self) -> Result<(), DriverError> {
        self.job_control(
            "cancel",
            &[JobPhase::Printing, JobPhase::Pausing, JobPhase::Paused],
            JobPhase::Cancelling,
            Cmd::Cancel,
        )
    }

    async fn current_job(&self) -> Result<Option<JobStatus>, DriverError> {
        self.online()?;
        let s = lock(&self.shared);
        Ok(s.job.as_ref().map(Job::status).or_else(|| s.last.clone()))
    }

    async fn remove(&self, name: &str) -> Result<(), DriverError> {
        let mut s = lock(&self.shared);
        s.files.remove(name);
        if s.last.as_ref().is_some_and(|l| l.file == name) {
            s.last = None;
        }
        Ok(())
    }
}

/// `N<n> <cmd>*<checksum>`: the checksum is the XOR of every byte before `*`.
pub fn frame(n: u64, cmd: &str) -> String {
    let body = format!("N{n} {cmd}");
    let cs = body.bytes().fold(0u8, |a, b| a ^ b);
    format!("{body}*{cs}")
}

/// A G-code line as sent: comments and surrounding space removed (`None` if nothing is left).
pub fn command_of(line: &str) -> Option<&str> {
    let code = line.split(';').next().unwrap_or("").trim();
    (!code.is_empty()).then_some(code)
}

/// Whether a line of the file starts a new layer (PrusaSlicer, SuperSlicer and Orca write
/// `;LAYER_CHANGE`, Cura `;LAYER:<n>`).
fn is_layer_change(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with(";LAYER_CHANGE") || t.starts_with(";LAYER:")
}

/// Temperatures in a report such as `ok T:210.0 /210.0 B:60.0 /60.0 @:127` or
/// `T:21.30/ 0.00 B:21.30/ 0.00 @:64` (`T0:`/`T1:` for several tools, `C:` for the chamber).
pub fn parse_temperatures(line: &str) -> Vec<Heater> {
    let mut out: Vec<Heater> = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let label = &line[start..i];
        if i < bytes.len() && bytes[i] == b':' && start < i {
            let name = match label {
                "T" => Some("tool0".to_owned()),
                "B" => Some("bed".to_owned()),
                "C" => Some("chamber".to_owned()),
                l if l.len() > 1
                    && l.starts_with('T')
                    && l[1..].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    Some(format!("tool{}", &l[1..]))
                }
                _ => None,
            };
            i += 1;
            let (actual, mut rest) = number(&line[i..]);
            let mut target = 0.0;
            if let Some(after) = rest.trim_start().strip_prefix('/') {
                let (t, r) = number(after);
                target = t.unwrap_or(0.0);
                rest = r;
            }
            i = line.len() - rest.len();
            if let (Some(name), Some(actual)) = (name, actual) {
                // `T:` repeats the active tool when `T0:`.. are given too.
                if let Some(h) = out.iter_mut().find(|h| h.name == name) {
                    if label != "T" {
                        *h = Heater {
                            name,
                            actual,
                            target,
                        };
                    }
                } else {
                    out.push(Heater {
                        name,
                        actual,
                        target,
                    });
                }
            }
            continue;
        }
        i = i.max(start + 1);
    }
    out
}

/// A leading decimal number (after spaces) and what follows it.
fn number(s: &str) -> (Option<f64>, &str) {
    let t = s.trim_start();
    let end = t
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == '-'))
        .map_or(t.len(), |(i, _)| i);
    (t[..end].parse().ok(), &t[end..])
}

/// The line number in `Resend: 7`, `Resend:7` or `rs 7`.
fn resend_line(line: &str) -> Option<u64> {
    let rest = line
        .strip_prefix("Resend:")
        .or_else(|| line.strip_prefix("rs "))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Whether an `Error:` line means the firmware stopped (it needs a reset at the printer).
fn is_fatal(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    [
        "halted",
        "kill",
        "maxtemp",
        "mintemp",
        "thermal runaway",
        "heating failed",
    ]
    .iter()
    .any(|w| e.contains(w))
}

/// The connection task: owns the port until it fails; the next driver call starts another.
async fn run_port(
    cfg: MarlinConfig,
    shared: Arc<Mutex<Shared>>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    let why = match port_session(&cfg, &shared, &mut rx).await {
        Ok(()) => "the connection to the printer ended".to_owned(),
        Err(e) => e,
    };
    let mut s = lock(&shared);
    s.online = false;
    s.offline_reason = why.clone();
    if let Some(mut job) = s.job.take() {
        job.phase = JobPhase::Failed;
        tracing::warn!(port = %cfg.port, %why, "a print streamed to the printer was cut off");
        s.last = Some(job.status());
    }
}

struct Streamer {
    /// When the firmware last showed it works on what was sent (`ok`, `Resend`, `busy:`).
    heard: Instant,
    next: u64,
    history: VecDeque<(u64, String)>,
    inflight: bool,
    resend_from: Option<u64>,
    urgent: VecDeque<String>,
    file: Option<Box<BufReader<std::fs::File>>>,
    paused: bool,
    autoreport: bool,
    greeted: bool,
}

async fn port_session(
    cfg: &MarlinConfig,
    shared: &Arc<Mutex<Shared>>,
    rx: &mut mpsc::UnboundedReceiver<Cmd>,
) -> Result<(), String> {
    use tokio_serial::SerialPortBuilderExt;
    let port = tokio_serial::new(&cfg.port, cfg.baudrate)
        .open_native_async()
        .map_err(|e| format!("cannot open {}: {e}", cfg.port))?;
    let (reader, mut writer) = tokio::io::split(port);
    let mut reader = tokio::io::BufReader::new(reader);
    let mut st = Streamer {
        heard: Instant::now(),
        next: 1,
        history: VecDeque::new(),
        inflight: false,
        resend_from: None,
        urgent: VecDeque::new(),
        file: None,
        paused: false,
        autoreport: false,
        greeted: false,
    };
    let mut hello = tokio::time::interval(HELLO_EVERY);
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    let mut buf = Vec::new();
    loop {
        tokio::select! {
            read = reader.read_until(b'\n', &mut buf) => {
                match read {
                    Ok(0) => return Err("the printer's port closed".into()),
                    Ok(_) => {}
                    Err(e) => return Err(format!("reading {}: {e}", cfg.port)),
                }
                let line = String::from_utf8_lossy(&buf).trim().to_owned();
                buf.clear();
                tracing::trace!(port = %cfg.port, "<<< {line}");
                on_line(&line, &mut st, shared);
            }
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return Ok(()) };
                on_cmd(cmd, &mut st);
            }
            _ = hello.tick(), if !st.greeted => {
                // Unnumbered, so it works whatever line number the firmware expects.
                write_line(&mut writer, "M110 N0").await?;
            }
            _ = poll.tick(), if st.greeted => {
                if st.inflight && st.heard.elapsed() > ANSWER_WITHIN {
                    poke(&mut st);
                } else if !st.autoreport && !st.inflight && st.urgent.is_empty() {
                    st.urgent.push_back("M105".into());
                }
            }
        }
        if let Some(text) = next_to_send(&mut st, shared)? {
            write_line(&mut writer, &text).await?;
        }
    }
}

async fn write_line(
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    text: &str,
) -> Result<(), String> {
    tracing::trace!(">>> {text}");
    w.write_all(format!("{text}\n").as_bytes())
        .await
        .map_err(|e| format!("writing to the printer: {e}"))
}

/// The answer to the command in flight was lost (the firmware is idle, or silent too long): send a
/// numbered `M105` after it. If the firmware never got that command it asks for it again (`Resend`);
/// if only its `ok` was lost, the `M105` is answered and streaming goes on. (OctoPrint recovers the
/// same way.)
fn poke(st: &mut Streamer) {
    tracing::debug!(
        line = st.next - 1,
        "no answer from the printer; asking again"
    );
    st.inflight = false;
    st.heard = Instant::now();
    st.urgent.push_front("M105".into());
}

fn on_line(line: &str, st: &mut Streamer, shared: &Arc<Mutex<Shared>>) {
    if line.is_empty() {
        return;
    }
    if line.starts_with("ok") || line.starts_with("echo:busy") || line.starts_with("busy:") {
        st.heard = Instant::now();
    }
    // `wait`: the firmware is idle and waiting for input, so what is in flight was lost.
    if line == "wait" && st.inflight && st.heard.elapsed() > Duration::from_secs(1) {
        poke(st);
        return;
    }
    if let Some(action) = host_action(line) {
        on_host_action(action, st, shared);
        return;
    }
    if line.contains("T:") || line.contains("T0:") {
        let heaters = parse_temperatures(line);
        if !heaters.is_empty() {
            lock(shared).heaters = heaters;
        }
    }
    if line.starts_with("ok") {
        st.inflight = false;
        if !st.greeted {
            st.greeted = true;
            st.next = 1;
            let mut s = lock(shared);
            s.online = true;
            s.offline_reason.clear();
            drop(s);
            st.urgent.push_back("M115".into());
        }
    } else if let Some(n) = resend_line(line) {
        st.heard = Instant::now();
        st.resend_from = Some(n);
    } else if line == "start" {
        // The firmware restarted: line numbers begin again, and a streamed print is lost.
        st.greeted = false;
        st.inflight = false;
        st.history.clear();
        st.resend_from = None;
        st.file = None;
        let mut s = lock(shared);
        if let Some(mut job) = s.job.take() {
            job.phase = JobPhase::Failed;
            s.last = Some(job.status());
        }
    } else if line == "Cap:AUTOREPORT_TEMP:1" && !st.autoreport {
        st.autoreport = true;
        st.urgent.push_back("M155 S2".into());
    } else if let Some(error) = line.strip_prefix("Error:") {
        if is_fatal(error) {
            st.file = None;
            let mut s = lock(shared);
            s.halted = Some(error.trim().to_owned());
            if let Some(mut job) = s.job.take() {
                job.phase = JobPhase::Failed;
                s.last = Some(job.status());
            }
        } else {
            tracing::debug!(error, "the printer reported an error (a resend follows)");
        }
    }
}

/// The action in a host action command (`//action:pause`, `// action:paused filament_runout`).
fn host_action(line: &str) -> Option<&str> {
    line.strip_prefix("//")?
        .trim_start()
        .strip_prefix("action:")
}

/// What the printer asks of its host (Marlin's HOST_ACTION_COMMANDS): pause on a filament runout or
/// from its menu, resume from its knob, or cancel.
fn on_host_action(action: &str, st: &mut Streamer, shared: &Arc<Mutex<Shared>>) {
    let mut words = action.split_whitespace();
    let verb = words.next().unwrap_or("");
    let reason = words.collect::<Vec<_>>().join(" ");
    let mut s = lock(shared);
    let Some(job) = s.job.as_mut() else { return };
    match verb {
        "pause" | "paused" if job.phase == JobPhase::Printing => {
            job.phase = JobPhase::Paused;
            st.paused = true;
            s.paused_by_printer = Some(if reason.is_empty() {
                "the printer paused the print".into()
            } else {
                format!("the printer paused the print: {}", reason.replace('_', " "))
            });
        }
        "resume" | "resumed" if job.phase == JobPhase::Paused => {
            job.phase = JobPhase::Printing;
            st.paused = false;
            s.paused_by_printer = None;
        }
        "cancel" if !job.phase.is_finished() => {
            job.phase = JobPhase::Cancelling;
            drop(s);
            on_cmd(Cmd::Cancel, st);
        }
        _ => {}
    }
}

fn on_cmd(cmd: Cmd, st: &mut Streamer) {
    match cmd {
        Cmd::Start(reader) => {
            st.file = Some(reader);
            st.paused = false;
        }
        Cmd::Pause => st.paused = true,
        Cmd::Resume => st.paused = false,
        Cmd::Gcode(lines) => st.urgent.extend(lines),
        Cmd::Cancel => {
            st.file = None;
            st.paused = false;
            // Heaters and the part fan off; what is in the printer's buffer finishes.
            for c in ["M104 S0", "M140 S0", "M107"] {
                st.urgent.push_back(c.into());
            }
        }
    }
}

/// The next framed line to write, if the firmware is ready for one.
fn next_to_send(st: &mut Streamer, shared: &Arc<Mutex<Shared>>) -> Result<Option<String>, String> {
    if st.inflight || !st.greeted {
        return Ok(None);
    }
    // Some firmware asks "again" for the very line it expects next: nothing to send twice.
    if st.resend_from == Some(st.next) {
        st.resend_from = None;
    }
    if let Some(n) = st.resend_from {
        let Some((_, text)) = st.history.iter().find(|(k, _)| *k == n) else {
            return Err(format!(
                "the printer asked for line {n} again, which is too old to resend"
            ));
        };
        let text = text.clone();
        st.resend_from = (n + 1 < st.next).then_some(n + 1);
        st.inflight = true;
        st.heard = Instant::now();
        return Ok(Some(text));
    }
    let cmd = if let Some(c) = st.urgent.pop_front() {
        Some(c)
    } else if !st.paused && st.file.is_some() {
        next_file_command(st, shared)?
    } else {
        None
    };
    let Some(cmd) = cmd else {
        finish_if_drained(st, shared);
        return Ok(None);
    };
    let text = frame(st.next, &cmd);
    st.history.push_back((st.next, text.clone()));
    if st.history.len() > HISTORY {
        st.history.pop_front();
    }
    st.next += 1;
    st.inflight = true;
    st.heard = Instant::now();
    Ok(Some(text))
}

/// The next command of the file being printed; at its end the file is closed.
fn next_file_command(
    st: &mut Streamer,
    shared: &Arc<Mutex<Shared>>,
) -> Result<Option<String>, String> {
    let Some(file) = st.file.as_mut() else {
        return Ok(None);
    };
    let mut line = String::new();
    loop {
        line.clear();
        let n = file
            .read_line(&mut line)
            .map_err(|e| format!("reading the print file: {e}"))?;
        if n == 0 {
            st.file = None;
            return Ok(None);
        }
        let mut s = lock(shared);
        if let Some(job) = s.job.as_mut() {
            job.sent += n as u64;
            if is_layer_change(&line) {
                job.layer += 1;
            }
        }
        drop(s);
        if let Some(cmd) = command_of(&line) {
            return Ok(Some(cmd.to_owned()));
        }
    }
}

/// Once everything was sent and acknowledged, a printing job is completed and a cancelling one
/// cancelled.
fn finish_if_drained(st: &Streamer, shared: &Arc<Mutex<Shared>>) {
    if st.file.is_some() || st.inflight || !st.urgent.is_empty() {
        return;
    }
    let mut s = lock(shared);
    let phase = match s.job.as_ref().map(|j| j.phase) {
        Some(JobPhase::Printing) => JobPhase::Completed,
        Some(JobPhase::Cancelling) => JobPhase::Cancelled,
        _ => return,
    };
    if let Some(mut job) = s.job.take() {
        job.phase = phase;
        if phase == JobPhase::Completed {
            job.sent = job.total;
        }
        s.last = Some(job.status());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_framed_with_the_xor_checksum() {
        // From the captured transcript (shared/peers/fixtures/marlin_virtual_transcript.txt).
        assert_eq!(frame(1, "M115"), "N1 M115*39");
        assert_eq!(frame(2, "M105"), "N2 M105*37");
        assert_eq!(frame(7, "M117 hello"), "N7 M117 hello*97");
        assert_eq!(frame(5, "M155 S1"), "N5 M155 S1*101");
    }

    #[test]
    fn comments_and_blank_lines_are_not_sent() {
        assert_eq!(command_of("G1 X10 Y10 ; move\n"), Some("G1 X10 Y10"));
        assert_eq!(command_of(";LAYER_CHANGE\n"), None);
        assert_eq!(command_of("   \n"), None);
    }

    #[test]
    fn temperatures_are_read_in_every_spelling() {
        let h = parse_temperatures("ok T:21.30/ 0.00 B:21.30/ 0.00 @:64");
        assert_eq!(
            h,
            vec![
                Heater {
                    name: "tool0".into(),
                    actual: 21.3,
                    target: 0.0
                },
                Heater {
                    name: "bed".into(),
                    actual: 21.3,
                    target: 0.0
                },
            ]
        );
        let h = parse_temperatures("ok T:210.0 /215.0 B:60.0 /60.0 @:127 B@:0");
        assert_eq!(
            h[0],
            Heater {
                name: "tool0".into(),
                actual: 210.0,
                target: 215.0
            }
        );
        assert_eq!(
            h[1],
            Heater {
                name: "bed".into(),
                actual: 60.0,
                target: 60.0
            }
        );
        let h = parse_temperatures(
            "T:200.0 /200.0 T0:200.0 /200.0 T1:150.0 /0.0 B:60.0 /60.0 C:30.0 /0.0",
        );
        let names: Vec<&str> = h.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["tool0", "tool1", "bed", "chamber"]);
        assert_eq!(h[1].actual, 150.0);
        assert!(parse_temperatures("echo:busy: processing").is_empty());
    }

    #[test]
    fn host_actions_are_read_in_both_spellings() {
        assert_eq!(host_action("//action:pause"), Some("pause"));
        assert_eq!(
            host_action("// action:paused filament_runout"),
            Some("paused filament_runout")
        );
        assert_eq!(host_action("echo:action:pause"), None);
    }

    #[test]
    fn resend_requests_and_fatal_errors_are_recognised() {
        assert_eq!(resend_line("Resend:7"), Some(7));
        assert_eq!(resend_line("Resend: 12"), Some(12));
        assert_eq!(resend_line("rs 3"), Some(3));
        assert_eq!(resend_line("ok"), None);
        assert!(is_fatal(" Printer halted. kill() called!"));
        assert!(is_fatal(" MAXTEMP triggered, system stopped! Heater_ID: 0"));
        assert!(!is_fatal(" Missing checksum"));
        assert!(!is_fatal(" expected line 7 got 8"));
    }
}
