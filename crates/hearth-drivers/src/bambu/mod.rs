//! Bambu Lab printers in LAN mode (`kind = "bambu"`): MQTT over TLS to the broker on the printer
//! for status and commands, implicit FTPS to put files on its storage (PROTOCOLS.md §A4).
//!
//! - One MQTT session per printer (opened on first use, so building the driver contacts nothing),
//!   kept by a task that merges every `push_status` report into one JSON object. P1 and A1
//!   machines push only what changed, so the task asks for everything (`pushall`) after each
//!   connection, and restarts pushes (`pushing.start`) when they stop.
//! - Commands are requests with a `sequence_id`; the printer's reply (same id) says
//!   `result: success|failed`. A reply "mqtt message verify failed" means the printer is not in
//!   LAN-only developer mode and takes no orders: the driver then reports it read-only, in error
//!   while idle so no job is sent to it (so does a report whose `fun` field says developer mode
//!   is off).
//! - A job is the agent's file (`hearth-<job>.gcode`) uploaded as is (plain G-code, started with
//!   `gcode_file`) or, when it is a plate project, as `hearth-<job>.gcode.3mf` started with
//!   `project_file`: its plate, the plate G-code's MD5 and an AMS tray for each filament, chosen by
//!   material and colour among the spools the printer reports. `subtask_name` is the agent's file
//!   name, which is how the agent finds its job again after a restart: the print itself runs on
//!   the printer and does not depend on the agent.
//! - Trust: the printer's certificate must chain to the configured CA and name the serial, or be
//!   the pinned one (`tls`).

mod camera;
mod ftps;
pub mod project;
pub mod tls;

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, Transport};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, OnceCell, oneshot};

use crate::driver::{Driver, Upload};
use crate::error::DriverError;
use crate::model::{
    Capabilities, DriverInfo, DriverKind, HeatTargets, Heater, JobPhase, JobStatus, LIGHT_ACTIONS,
    MaterialSlot, OwnAction, PrinterState, PrinterStatus, RunsWhen, Started,
};
use ftps::{FtpError, Ftps};
use project::{EXTERNAL_SPOOL, Plate, Tray};

/// Settings of a Bambu Lab printer in LAN mode (`kind = "bambu"`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BambuConfig {
    /// The printer's address on the local network (IP or host name).
    pub host: String,
    /// Its serial number (printer screen: Settings > Device), e.g. `01P00A123456789`.
    pub serial: String,
    /// The LAN access code (printer screen: Settings > LAN Only), 8 characters.
    pub access_code: String,
    /// Printer model, e.g. `X1C`, `P1S`, `A1 mini`, `H2D`: it decides how a file is named to the
    /// printer (X1, P1 and A1 machines read `file:///sdcard/...`, newer ones `ftp:///...`).
    #[serde(default)]
    pub model: Option<String>,
    /// PEM file with Bambu Lab's CA certificates ("BBL CA"), which issue the printers'
    /// certificates. One of `ca_file` and `fingerprint` is required.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The SHA-256 of this printer's own certificate (`sha256:<hex>`), to trust exactly it; the
    /// agent's error message shows the fingerprint a printer presents.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Use the AMS: `auto` (default) maps each filament of a plate to a loaded tray of the same
    /// material and nearest colour; `off` prints from the external spool.
    #[serde(default)]
    pub ams: AmsMode,
    /// Level the bed before each print.
    #[serde(default = "yes")]
    pub bed_leveling: bool,
    /// Record a timelapse (on the printer's storage).
    #[serde(default)]
    pub timelapse: bool,
    /// MQTT port (8883 on every printer; other values are for tests).
    #[serde(default = "default_mqtt_port")]
    pub mqtt_port: u16,
    /// FTPS port (990 on every printer).
    #[serde(default = "default_ftps_port")]
    pub ftps_port: u16,
    /// The camera server's port on A1 and P1 machines (6000 on every printer).
    #[serde(default = "default_camera_port")]
    pub camera_port: u16,
    /// Seconds to wait for an answer (uploads get longer, in proportion to their size).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl std::fmt::Debug for BambuConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BambuConfig")
            .field("host", &self.host)
            .field("serial", &self.serial)
            .field("access_code", &"<redacted>")
            .field("model", &self.model)
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .field("ams", &self.ams)
            .field("bed_leveling", &self.bed_leveling)
            .field("timelapse", &self.timelapse)
            .field("mqtt_port", &self.mqtt_port)
            .field("ftps_port", &self.ftps_port)
            .field("camera_port", &self.camera_port)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Whether prints take their filament from the AMS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmsMode {
    /// From the AMS trays when the printer reports an AMS, else the external spool.
    #[default]
    Auto,
    /// Always the external spool.
    Off,
}

fn yes() -> bool {
    true
}
fn default_mqtt_port() -> u16 {
    8883
}
fn default_camera_port() -> u16 {
    6000
}
fn default_ftps_port() -> u16 {
    990
}
fn default_timeout_secs() -> u64 {
    10
}

/// `fun` bit that is *clear* when developer mode is on (PROTOCOLS.md §A4).
const FUN_NOT_DEVELOPER: u64 = 0x2000_0000;
/// The `sequence_id` of the developer-mode probe.
const PROBE_SEQUENCE: &str = "hearth-probe";

/// The speed modes of `print.print_speed`, levels 1 to 4, as action ids.
const SPEED_MODES: [&str; 4] = [
    "speed-silent",
    "speed-standard",
    "speed-sport",
    "speed-ludicrous",
];

/// What a Bambu printer offers of its own: its chamber light, and its speed mode while printing.
pub const OWN_ACTIONS: [OwnAction; 6] = [
    LIGHT_ACTIONS[0],
    LIGHT_ACTIONS[1],
    OwnAction {
        id: SPEED_MODES[0],
        label: "Speed: silent",
        when: RunsWhen::Printing,
    },
    OwnAction {
        id: SPEED_MODES[1],
        label: "Speed: standard",
        when: RunsWhen::Printing,
    },
    OwnAction {
        id: SPEED_MODES[2],
        label: "Speed: sport",
        when: RunsWhen::Printing,
    },
    OwnAction {
        id: SPEED_MODES[3],
        label: "Speed: ludicrous",
        when: RunsWhen::Printing,
    },
];
/// Reports older than this while connected: ask the printer to push again.
const STALE_AFTER: Duration = Duration::from_secs(60);
/// A pause, resume or stop shows as under way for at most this long.
const PENDING_FOR: Duration = Duration::from_secs(30);
/// Largest project read back from the printer (after an agent restart between upload and start).
const READ_BACK_LIMIT: u64 = 1 << 30;
const READ_ONLY: &str = "the printer is not in LAN-only developer mode, so it takes no commands \
    from Hearth (status only): on the printer, turn on LAN Only and Developer Mode";

/// A command under way, shown until the printer's state reflects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Pause,
    Resume,
    Stop,
}

#[derive(Debug, Default)]
struct State {
    /// Every field of `print` the printer pushed, merged.
    print: Map<String, Value>,
    connected: bool,
    /// Why the last connection attempt failed.
    last_error: Option<String>,
    last_push: Option<Instant>,
    /// Set when a command was refused for want of developer mode.
    refused: bool,
    pending: Option<(Pending, Instant)>,
    /// The `subtask_name` of the job this driver stopped (a stopped print reports FAILED).
    stopped: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    replies: Mutex<HashMap<String, oneshot::Sender<Map<String, Value>>>>,
    pushed: Notify,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One MQTT message from the printer.
    fn receive(&self, payload: &[u8]) {
        let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(payload) else {
            tracing::debug!("ignoring a report that is not a JSON object");
            return;
        };
        for (kind, body) in message {
            let Value::Object(body) = body else { continue };
            let command = body.get("command").and_then(Value::as_str).unwrap_or("");
            if kind == "print" && command == "push_status" {
                let mut state = self.state();
                merge(&mut state.print, body);
                state.last_push = Some(Instant::now());
                drop(state);
                self.pushed.notify_waiters();
            } else if body.contains_key("result") {
                let Some(seq) = body.get("sequence_id").map(text_of) else {
                    continue;
                };
                let refused = body
                    .get("reason")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.contains("verify failed"));
                if refused {
                    self.state().refused = true;
                } else if seq == PROBE_SEQUENCE {
                    self.state().refused = false;
                }
                let waiter = self
                    .replies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&seq);
                if let Some(tx) = waiter {
                    let _ = tx.send(body);
                }
            }
        }
    }
}

/// Merges a report into the state: objects field by field (P1 and A1 send only what changed),
/// anything else replaced.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// A string or number field as text (the printer sends ids either way).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A number the printer may send as a JSON number or as a string.
fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Developer mode as the report's `fun` field tells it (X1 machines); `None` without the field.
fn developer_mode(print: &Map<String, Value>) -> Option<bool> {
    let fun = print.get("fun")?.as_str()?;
    let bits = u64::from_str_radix(fun.trim(), 16).ok()?;
    Some(bits & FUN_NOT_DEVELOPER == 0)
}

/// The agent's file name of the job a report describes (`subtask_name`, as this driver set it).
fn job_file(print: &Map<String, Value>) -> Option<String> {
    let name = print
        .get("subtask_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?;
    let name = name.strip_suffix(".3mf").unwrap_or(name);
    Some(if name.ends_with(".gcode") {
        name.to_owned()
    } else {
        format!("{name}.gcode")
    })
}

/// `print_error` and the HMS list, as codes the printer's manual and Bambu's wiki look up.
fn printer_errors(print: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let code = number(print.get("print_error")).unwrap_or(0.0) as u64;
    if code != 0 {
        out.push(format!(
            "print error {:04X}_{:04X}",
            (code >> 16) & 0xFFFF,
            code & 0xFFFF
        ));
    }
    if let Some(Value::Array(hms)) = print.get("hms") {
        for h in hms {
            let (Some(attr), Some(code)) = (number(h.get("attr")), number(h.get("code"))) else {
                continue;
            };
            let (attr, code) = (attr as u64, code as u64);
            out.push(format!(
                "HMS_{:04X}_{:04X}_{:04X}_{:04X}",
                (attr >> 16) & 0xFFFF,
                attr & 0xFFFF,
                (code >> 16) & 0xFFFF,
                code & 0xFFFF
            ));
        }
    }
    out
}

/// The status a merged report describes. Pure, so the mapping is tested on recorded reports.
fn map_status(
    print: &Map<String, Value>,
    read_only: bool,
    pending: Option<Pending>,
    stopped: Option<&str>,
    now_unix: u64,
) -> PrinterStatus {
    let t = |k: &str| number(print.get(k));
    let mut heaters = Vec::new();
    if let Some(actual) = t("nozzle_temper") {
        heaters.push(Heater {
            name: "tool0".into(),
            actual,
            target: t("nozzle_target_temper").unwrap_or(0.0),
        });
    }
    if let Some(actual) = t("bed_temper") {
        heaters.push(Heater {
            name: "bed".into(),
            actual,
            target: t("bed_target_temper").unwrap_or(0.0),
        });
    }
    if let Some(actual) = t("chamber_temper") {
        heaters.push(Heater {
            name: "chamber".into(),
            actual,
            target: 0.0,
        });
    }

    let gcode_state = print
        .get("gcode_state")
        .and_then(Value::as_str)
        .unwrap_or("");
    let file = job_file(print);
    let errors = printer_errors(print);
    let stopped_here = file.is_some()
        && stopped.is_some_and(|s| Some(s) == print.get("subtask_name").and_then(Value::as_str));
    let (mut state, phase) = match gcode_state {
        "PREPARE" | "RUNNING" | "SLICING" => match pending {
            Some(Pending::Pause) => (PrinterState::Pausing, JobPhase::Pausing),
            Some(Pending::Stop) => (PrinterState::Cancelling, JobPhase::Cancelling),
            _ => (PrinterState::Printing, JobPhase::Printing),
        },
        "PAUSE" => match pending {
            Some(Pending::Stop) => (PrinterState::Cancelling, JobPhase::Cancelling),
            Some(Pending::Resume) => (PrinterState::Printing, JobPhase::Printing),
            _ => (PrinterState::Paused, JobPhase::Paused),
        },
        "FINISH" => (PrinterState::Idle, JobPhase::Completed),
        // A stopped print reports FAILED too; only this driver knows it asked.
        "FAILED" if stopped_here => (PrinterState::Idle, JobPhase::Cancelled),
        "FAILED" => (PrinterState::Idle, JobPhase::Failed),
        // IDLE, INIT and anything newer: no job.
        _ => (PrinterState::Idle, JobPhase::Completed),
    };
    let has_job = matches!(
        gcode_state,
        "PREPARE" | "RUNNING" | "SLICING" | "PAUSE" | "FINISH" | "FAILED"
    );
    let job = file.filter(|_| has_job).map(|file| {
        let percent = t("mc_percent").unwrap_or(0.0).clamp(0.0, 100.0);
        let started = t("gcode_start_time").unwrap_or(0.0) as u64;
        JobStatus {
            file,
            phase,
            progress: if phase == JobPhase::Completed {
                1.0
            } else {
                percent / 100.0
            },
            layer: t("layer_num").map(|l| l as u32).filter(|l| *l > 0),
            total_layers: t("total_layer_num").map(|l| l as u32).filter(|l| *l > 0),
            elapsed_seconds: (started > 0 && now_unix >= started).then(|| now_unix - started),
            remaining_seconds: t("mc_remaining_time").map(|m| (m.max(0.0) * 60.0) as u64),
        }
    });

    let mut error = (!errors.is_empty()).then(|| errors.join(", "));
    if phase == JobPhase::Failed && error.is_none() && has_job {
        error = Some("the printer stopped the print".into());
    }
    if read_only {
        if state == PrinterState::Idle {
            state = PrinterState::Error;
        }
        error = Some(match error {
            Some(e) => format!("{READ_ONLY}; {e}"),
            None => READ_ONLY.into(),
        });
    }
    let (ams, external) = trays(print);
    let slots = ams
        .iter()
        .chain(external.as_ref())
        .map(|t| MaterialSlot {
            name: slot_name(t.slot),
            material: t.kind.clone(),
            color: t.color.clone(),
            remain_percent: t.remain_percent,
            tag: t.tag.clone(),
        })
        .collect();
    // `lights_report` and `spd_mag` (PROTOCOLS.md §A4 report fields).
    let light = print
        .get("lights_report")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|l| l.get("node").and_then(Value::as_str) == Some("chamber_light"))
        .and_then(|l| match l.get("mode").and_then(Value::as_str)? {
            "off" => Some(false),
            _ => Some(true), // "on", or "flashing"
        });
    let speed_percent = print
        .get("spd_mag")
        .and_then(Value::as_u64)
        .and_then(|m| u16::try_from(m).ok())
        .filter(|m| *m > 0);
    PrinterStatus {
        state,
        heaters,
        job,
        error,
        slots,
        light,
        speed_percent,
        flow_percent: None,
        fan_percent: None,
    }
}

/// How the printer's screen names a slot: `A1`..`A4` for the first AMS, `B1`.. for the next,
/// `Ext` for the external spool.
fn slot_name(slot: i64) -> String {
    if slot == EXTERNAL_SPOOL {
        return "Ext".into();
    }
    let unit = u8::try_from(slot / 4)
        .ok()
        .filter(|u| *u < 26)
        .unwrap_or(25);
    format!("{}{}", char::from(b'A' + unit), slot % 4 + 1)
}

/// The spools a printer reports: AMS trays (`ams_id * 4 + tray_id`) and the external spool (254).
fn trays(print: &Map<String, Value>) -> (Vec<Tray>, Option<Tray>) {
    let tray = |slot: i64, t: &Value| -> Option<Tray> {
        let kind = t.get("tray_type")?.as_str()?.trim();
        (!kind.is_empty()).then(|| Tray {
            slot,
            remain_percent: t
                .get("remain")
                .and_then(Value::as_i64)
                .and_then(|r| u8::try_from(r).ok())
                .filter(|r| *r <= 100),
            kind: kind.to_owned(),
            color: t
                .get("tray_color")
                .and_then(Value::as_str)
                .and_then(project::rgb),
            // A spool without a Bambu Lab tag reports zeros.
            tag: t
                .get("tray_uuid")
                .and_then(Value::as_str)
                .map(|u| u.trim().to_ascii_uppercase())
                .filter(|u| {
                    u.len() == 32
                        && u.bytes().all(|b| b.is_ascii_hexdigit())
                        && u.bytes().any(|b| b != b'0')
                }),
        })
    };
    let mut ams = Vec::new();
    let units = print
        .get("ams")
        .and_then(|a| a.get("ams"))
        .and_then(Value::as_array);
    for unit in units.into_iter().flatten() {
        let Some(unit_id) = unit
            .get("id")
            .map(text_of)
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        for t in unit
            .get("tray")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(id) = t.get("id").map(text_of).and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            if let Some(tray) = tray(unit_id * 4 + id, t) {
                ams.push(tray);
            }
        }
    }
    let external = print.get("vt_tray").and_then(|t| tray(EXTERNAL_SPOOL, t));
    (ams, external)
}

/// A task and subtask id for a print: unique per job (observers merge jobs that reuse an id) and at
/// most 2^31 - 1, which some printers clamp to (PROTOCOLS.md §A4).
fn task_id(name: &str) -> u32 {
    // FNV-1a: stable across restarts, no dependency; uniqueness among a printer's recent jobs is
    // all that is needed.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff).max(1)
}

/// Whether a model reads files by `file:///sdcard/...` (ha-bambulab's `LEGACY_SDCARD_PRINTERS`).
fn sdcard_url(model: Option<&str>) -> bool {
    let m = model.unwrap_or("").trim().to_ascii_uppercase();
    let m = m.strip_prefix("BAMBU LAB ").unwrap_or(&m);
    ["X1", "P1", "A1"].iter().any(|p| m.starts_with(p))
}

/// What was uploaded under an agent file name.
#[derive(Debug, Clone)]
struct Uploaded {
    /// Name on the printer's storage.
    remote: String,
    /// For plate projects.
    plate: Option<Plate>,
}

/// The MQTT session: its client and the task that drives it.
#[derive(Debug)]
struct Session {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Bambu Lab printer in LAN mode.
#[derive(Debug)]
pub struct BambuDriver {
    info: DriverInfo,
    config: BambuConfig,
    tls: Arc<rustls::ClientConfig>,
    shared: Arc<Shared>,
    session: OnceCell<Session>,
    sequence: AtomicU64,
    uploads: Mutex<HashMap<String, Uploaded>>,
}

impl BambuDriver {
    /// Checks the configuration and reads the CA file; contacts nothing.
    pub fn new(config: BambuConfig) -> Result<Self, DriverError> {
        let bad = |m: String| DriverError::Config(format!("bambu printer {}: {m}", config.host));
        if config.serial.trim().is_empty() {
            return Err(bad("serial is empty".into()));
        }
        if config.access_code.trim().is_empty() {
            return Err(bad("access_code is empty".into()));
        }
        let trust = match (&config.ca_file, &config.fingerprint) {
            (Some(_), Some(_)) => {
                return Err(bad("set ca_file or fingerprint, not both".into()));
            }
            (None, None) => {
                return Err(bad(
                    "set ca_file (Bambu Lab's \"BBL CA\" certificates) or fingerprint (the SHA-256 of \
                     this printer's certificate) so the agent knows it talks to this printer"
                        .into(),
                ));
            }
            (None, Some(f)) => tls::Trust::Pinned(tls::parse_fingerprint(f).map_err(bad)?),
            (Some(path), None) => tls::Trust::Ca(crate::tls::read_ca_file(path).map_err(bad)?),
        };
        let tls = tls::client_config(config.serial.trim(), trust).map_err(bad)?;
        let info = DriverInfo {
            kind: DriverKind::Bambu,
            // "Bambu Lab P1S", as slicers and the fit check name it, from `model = "P1S"`.
            model: match config.model.as_deref().map(str::trim) {
                None | Some("") => "Bambu Lab printer".into(),
                Some(m) if m.to_ascii_lowercase().starts_with("bambu") => m.to_owned(),
                Some(m) => format!("Bambu Lab {m}"),
            },
            endpoint: format!("mqtts://{}:{}", config.host, config.mqtt_port),
            capabilities: Capabilities {
                pause: true,
                layers: true,
                fault_injection: false,
                heat: true,
                gcode: true,
                tune: false,
            },
        };
        Ok(Self {
            info,
            config,
            tls,
            shared: Arc::default(),
            session: OnceCell::new(),
            sequence: AtomicU64::new(1),
            uploads: Mutex::default(),
        })
    }

    fn timeout(&self) -> Duration {
        crate::config::timeout(self.config.timeout_secs)
    }

    fn report_topic(&self) -> String {
        format!("device/{}/report", self.config.serial.trim())
    }

    fn request_topic(&self) -> String {
        format!("device/{}/request", self.config.serial.trim())
    }

    fn unreachable(&self, what: impl Into<String>) -> DriverError {
        DriverError::Unreachable {
            endpoint: self.info.endpoint.clone(),
            source: what.into().into(),
        }
    }

    /// The MQTT session, started on first use.
    async fn session(&self) -> &Session {
        self.session
            .get_or_init(|| async {
                let id = format!("hearth-{:08x}", rand_suffix());
                let mut options =
                    MqttOptions::new(id, self.config.host.clone(), self.config.mqtt_port);
                options
                    .set_credentials("bblp", self.config.access_code.trim())
                    .set_keep_alive(Duration::from_secs(30))
                    .set_clean_session(true)
                    // X1 machines push the whole state, some kilobytes with an AMS.
                    .set_max_packet_size(1 << 20, 1 << 20)
                    .set_transport(Transport::tls_with_config(
                        rumqttc::TlsConfiguration::Rustls(self.tls.clone()),
                    ));
                let (client, eventloop) = AsyncClient::new(options, 32);
                let task = tokio::spawn(run(
                    eventloop,
                    client.clone(),
                    self.shared.clone(),
                    self.report_topic(),
                    self.request_topic(),
                ));
                Session { client, task }
            })
            .await
    }

    /// Waits (bounded) until the printer has pushed a report on the current connection.
    async fn reported(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let pushed = self.shared.pushed.notified();
            {
                let s = self.shared.state();
                if s.connected && s.last_push.is_some() {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, pushed).await.is_err() {
                return false;
            }
        }
    }

    /// The session, once the printer has reported on it (bounded by the timeout); unreachable,
    /// with the connection's error, otherwise.
    async fn reporting(&self) -> Result<&Session, DriverError> {
        let session = self.session().await;
        if self.reported(self.timeout()).await {
            return Ok(session);
        }
        let why = self.shared.state().last_error.clone();
        Err(self.unreachable(why.unwrap_or_else(|| "no report from the printer".into())))
    }

    fn read_only(state: &State) -> bool {
        state.refused || developer_mode(&state.print) == Some(false)
    }

    /// Sends a request and waits for the printer's reply. A printer that does not answer within
    /// the timeout is taken to have accepted (not every firmware answers every command); the
    /// state it reports then tells.
    async fn request(
        &self,
        operation: &'static str,
        kind: &str,
        command: &str,
        fields: Value,
    ) -> Result<(), DriverError> {
        let session = self.reporting().await?;
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed).to_string();
        let mut body = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        body.insert("sequence_id".into(), Value::String(seq.clone()));
        body.insert("command".into(), Value::String(command.into()));
        let payload = serde_json::to_vec(&json!({ kind: body })).unwrap_or_default();
        let (tx, rx) = oneshot::channel();
        self.shared
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seq.clone(), tx);
        let sent = session
            .client
            .publish(self.request_topic(), QoS::AtLeastOnce, false, payload)
            .await;
        let reply = match sent {
            Err(e) => Err(self.unreachable(e.to_string())),
            Ok(()) => match tokio::time::timeout(self.timeout(), rx).await {
                Ok(Ok(reply)) => Ok(Some(reply)),
                _ => Ok(None),
            },
        };
        self.shared
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&seq);
        let Some(reply) = reply? else {
            tracing::debug!(printer = %self.info.endpoint, command, "no reply; watching the state");
            return Ok(());
        };
        let result = reply.get("result").and_then(Value::as_str).unwrap_or("");
        if result.eq_ignore_ascii_case("success") {
            return Ok(());
        }
        let reason = reply
            .get("reason")
            .map(text_of)
            .unwrap_or_else(|| "no reason given".into());
        let code = number(reply.get("err_code")).map(|c| c as i64);
        if reason.contains("verify failed") || code == Some(84_033_543) {
            self.shared.state().refused = true;
            return Err(DriverError::Rejected {
                operation,
                code,
                message: READ_ONLY.into(),
            });
        }
        Err(DriverError::Rejected {
            operation,
            code,
            message: reason,
        })
    }

    fn ftps_addr(&self) -> Result<SocketAddr, DriverError> {
        self.addr(self.config.ftps_port)
    }

    fn addr(&self, port: u16) -> Result<SocketAddr, DriverError> {
        (self.config.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| self.unreachable(format!("cannot resolve {}: {e}", self.config.host)))?
            .next()
            .ok_or_else(|| self.unreachable(format!("{} has no address", self.config.host)))
    }

    async fn ftps(&self) -> Result<Ftps, DriverError> {
        let addr = self.ftps_addr()?;
        let name = rustls::pki_types::ServerName::try_from(self.config.host.clone())
            .map_err(|e| DriverError::Config(format!("host {:?}: {e}", self.config.host)))?;
        Ftps::login(
            addr,
            self.tls.clone(),
            name,
            self.config.access_code.trim(),
            self.timeout(),
        )
        .await
        .map_err(|e| self.ftp_error("upload", e))
    }

    fn ftp_error(&self, operation: &'static str, e: FtpError) -> DriverError {
        match e {
            FtpError::Io(e) => DriverError::Unreachable {
                endpoint: format!("ftps://{}:{}", self.config.host, self.config.ftps_port),
                source: Box::new(e),
            },
            FtpError::Login(message) => DriverError::Unauthorized {
                endpoint: format!("ftps://{}:{}", self.config.host, self.config.ftps_port),
                message,
            },
            FtpError::Reply { code, text, .. } => DriverError::Rejected {
                operation,
                code: Some(i64::from(code)),
                message: text,
            },
            FtpError::Protocol(message) => DriverError::Protocol {
                operation,
                message,
                source: None,
            },
        }
    }

    /// What is on the printer under an agent file name, read back from it when this process did
    /// not upload it (the agent restarted in between).
    async fn uploaded(&self, name: &str) -> Result<Uploaded, DriverError> {
        if let Some(u) = self
            .uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(u.clone());
        }
        let mut ftp = self.ftps().await?;
        let project = format!("{name}.3mf");
        let found = async {
            if ftp.size(&project).await?.is_some() {
                let bytes = ftp.retrieve(&project, READ_BACK_LIMIT).await?;
                return Ok(Some((project.clone(), Some(bytes))));
            }
            Ok(ftp.size(name).await?.map(|_| (name.to_owned(), None)))
        }
        .await;
        ftp.quit().await;
        let found = found.map_err(|e| self.ftp_error("start", e))?;
        let Some((remote, bytes)) = found else {
            return Err(DriverError::Rejected {
                operation: "start",
                code: None,
                message: format!("{name} is not on the printer"),
            });
        };
        let plate = match bytes {
            Some(b) => Some(project::read_plate(std::io::Cursor::new(b)).map_err(|e| {
                DriverError::Rejected {
                    operation: "start",
                    code: None,
                    message: e.to_string(),
                }
            })?),
            None => None,
        };
        Ok(Uploaded { remote, plate })
    }

    /// The `project_file` request for a plate project.
    fn project_request(
        &self,
        name: &str,
        up: &Uploaded,
        plate: &Plate,
    ) -> Result<(Value, Started), DriverError> {
        let (ams, external) = trays(&self.shared.state().print);
        let use_ams = self.config.ams == AmsMode::Auto && !ams.is_empty();
        let mut loaded: Vec<Tray> = if use_ams { ams } else { Vec::new() };
        loaded.extend(external);
        let mapping = if loaded.is_empty() {
            // Nothing reported about the spools: one filament from the external spool is all the
            // printer can do without an AMS.
            if plate.filaments.len() > 1 {
                return Err(DriverError::Rejected {
                    operation: "start",
                    code: None,
                    message: format!(
                        "the plate uses {} filaments and the printer reports no AMS",
                        plate.filaments.len()
                    ),
                });
            }
            vec![EXTERNAL_SPOOL; plate.filaments.len()]
        } else {
            project::map_trays(&plate.filaments, &loaded).map_err(|e| DriverError::Rejected {
                operation: "start",
                code: None,
                message: e.0,
            })?
        };
        let use_ams = mapping.iter().any(|s| *s != EXTERNAL_SPOOL);
        let url = if sdcard_url(self.config.model.as_deref()) {
            format!("file:///sdcard/{}", up.remote)
        } else {
            format!("ftp:///{}", up.remote)
        };
        let id = task_id(name).to_string();
        let started = Started {
            slots: mapping.iter().map(|s| slot_name(*s)).collect(),
        };
        let request = json!({
            "param": plate.gcode,
            "url": url,
            "file": up.remote,
            "md5": plate.md5,
            "subtask_name": name,
            "project_id": "0",
            "profile_id": "0",
            "task_id": id,
            "subtask_id": id,
            "timelapse": self.config.timelapse,
            "bed_type": "auto",
            "bed_leveling": self.config.bed_leveling,
            "flow_cali": true,
            "vibration_cali": true,
            "layer_inspect": false,
            "use_ams": use_ams,
            "ams_mapping": mapping,
            "cfg": "0",
        });
        Ok((request, started))
    }

    async fn control(
        &self,
        operation: &'static str,
        command: &str,
        pending: Pending,
    ) -> Result<(), DriverError> {
        if pending == Pending::Stop {
            let mut s = self.shared.state();
            s.stopped = s
                .print
                .get("subtask_name")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        self.request(operation, "print", command, json!({ "param": "" }))
            .await?;
        self.shared.state().pending = Some((pending, Instant::now()));
        Ok(())
    }
}

fn rand_suffix() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The MQTT session's task: keeps the connection (rumqttc reconnects on the next poll), asks for the
/// full state after each connection and when pushes stop, and feeds every message to `Shared`.
async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    shared: Arc<Shared>,
    report: String,
    request: String,
) {
    let pushall = || {
        json!({"pushing": {"sequence_id": "0", "command": "pushall", "version": 1, "push_target": 1}})
            .to_string()
    };
    // P1 and A1 machines have no `fun` field telling developer mode: a command that does nothing
    // (a G-code comment) is refused with "verify failed" without it (PROTOCOLS.md §A4), so the
    // printer shows as read-only before a job is sent to it, not after.
    let probe = || {
        json!({"print": {"sequence_id": PROBE_SEQUENCE, "command": "gcode_line",
            "param": "; hearth: developer mode check\n"}})
        .to_string()
    };
    let mut probed = false;
    let mut backoff = Duration::from_secs(1);
    let mut check = tokio::time::interval(STALE_AFTER / 2);
    loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_secs(1);
                    {
                        let mut s = shared.state();
                        s.connected = true;
                        s.last_error = None;
                        s.last_push = None;
                        s.refused = false;
                    }
                    let _ = client.try_subscribe(report.clone(), QoS::AtMostOnce);
                    let _ = client.try_publish(request.clone(), QoS::AtMostOnce, false, pushall());
                    probed = false;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    shared.receive(&p.payload);
                    if !probed {
                        let s = shared.state();
                        if s.last_push.is_some() {
                            probed = true;
                            if !s.print.contains_key("fun") {
                                let _ = client.try_publish(request.clone(), QoS::AtLeastOnce, false, probe());
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let why = connection_error(&e);
                    tracing::debug!(error = %why, "printer connection failed");
                    {
                        let mut s = shared.state();
                        s.connected = false;
                        s.last_error = Some(why);
                    }
                    shared.pushed.notify_waiters();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            },
            _ = check.tick() => {
                let stale = {
                    let s = shared.state();
                    s.connected && s.last_push.is_none_or(|t| t.elapsed() > STALE_AFTER)
                };
                if stale {
                    let start = json!({"pushing": {"sequence_id": "0", "command": "start"}}).to_string();
                    let _ = client.try_publish(request.clone(), QoS::AtMostOnce, false, start);
                    let _ = client.try_publish(request.clone(), QoS::AtMostOnce, false, pushall());
                }
            }
        }
    }
}

/// A connection error in an operator's words.
fn connection_error(e: &rumqttc::ConnectionError) -> String {
    use rumqttc::{ConnectReturnCode, ConnectionError};
    match e {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => "the printer refused the access code (printer screen: Settings > LAN Only)".into(),
        other => {
            let mut s = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(e) = source {
                let m = e.to_string();
                if !s.contains(&m) {
                    s.push_str(": ");
                    s.push_str(&m);
                }
                source = e.source();
            }
            s
        }
    }
}

#[async_trait]
impl Driver for BambuDriver {
    fn describe(&self) -> &DriverInfo {
        &self.info
    }

    /// One frame of the A1's or P1's camera server (`camera.rs`). X1 and H2 machines stream RTSPS
    /// instead: `Unsupported` (give the agent a snapshot URL, e.g. of a go2rtc relay).
    async fn camera_frame(&self) -> Result<Option<Vec<u8>>, DriverError> {
        let model = self
            .config
            .model
            .as_deref()
            .unwrap_or("")
            .to_ascii_uppercase();
        if ["X1", "H2", "P2"].iter().any(|m| model.contains(m)) {
            return Err(DriverError::Unsupported {
                operation: "camera_frame (X1 and H2 printers stream RTSPS)",
                kind: self.info.kind,
            });
        }
        let name = rustls::pki_types::ServerName::try_from(self.config.host.clone())
            .map_err(|e| DriverError::Config(format!("host {:?}: {e}", self.config.host)))?;
        let endpoint = format!("tls://{}:{}", self.config.host, self.config.camera_port);
        match camera::frame(
            self.addr(self.config.camera_port)?,
            self.tls.clone(),
            name,
            self.config.access_code.trim(),
            self.timeout(),
        )
        .await
        {
            Ok(jpeg) => Ok(Some(jpeg)),
            Err(camera::CameraError::Io(e)) => Err(DriverError::Unreachable {
                endpoint,
                source: Box::new(e),
            }),
            Err(e @ camera::CameraError::Closed) => Err(DriverError::Unauthorized {
                endpoint,
                message: e.to_string(),
            }),
            Err(camera::CameraError::Protocol(message)) => Err(DriverError::Protocol {
                operation: "camera_frame",
                message,
                source: None,
            }),
        }
    }

    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        self.session().await;
        if !self.reported(Duration::from_secs(2)).await {
            let s = self.shared.state();
            return Ok(PrinterStatus::offline(match (&s.last_error, s.connected) {
                (Some(e), _) => format!("cannot reach the printer: {e}"),
                (None, true) => "connected; waiting for the printer's first report".into(),
                (None, false) => "connecting to the printer".into(),
            }));
        }
        let mut s = self.shared.state();
        if s.pending.is_some_and(|(_, at)| at.elapsed() > PENDING_FOR) {
            s.pending = None;
        }
        // A command under way ends when the printer's state shows it.
        let gcode_state = s
            .print
            .get("gcode_state")
            .and_then(Value::as_str)
            .unwrap_or("");
        let done = match s.pending.map(|(p, _)| p) {
            Some(Pending::Pause) => gcode_state == "PAUSE",
            Some(Pending::Resume) => gcode_state == "RUNNING",
            Some(Pending::Stop) => !matches!(gcode_state, "RUNNING" | "PREPARE" | "PAUSE"),
            None => false,
        };
        if done {
            s.pending = None;
        }
        Ok(map_status(
            &s.print,
            Self::read_only(&s),
            s.pending.map(|(p, _)| p),
            s.stopped.as_deref(),
            now_unix(),
        ))
    }

    async fn upload(&self, upload: Upload<'_>) -> Result<(), DriverError> {
        let file_error = |e| DriverError::File {
            path: upload.path.to_owned(),
            source: e,
        };
        let path = upload.path.to_owned();
        let (plate, len) = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&path)?;
            let len = f.metadata()?.len();
            let mut head = [0u8; 4];
            let n = f.read(&mut head)?;
            let head = &head[..n];
            if head == b"GCDE" {
                return Ok(Err(
                    "Bambu Lab printers print plain G-code or plate projects (.gcode.3mf), not Prusa binary G-code"
                        .to_owned(),
                ));
            }
            if head != b"PK\x03\x04" {
                return Ok(Ok((None, len)));
            }
            Ok(project::read_plate(std::fs::File::open(&path)?)
                .map(|p| (Some(p), len))
                .map_err(|e| e.to_string()))
        })
        .await
        .map_err(|e| file_error(std::io::Error::other(e)))?
        .map_err(file_error)?
        .map_err(|message| DriverError::Rejected {
            operation: "upload",
            code: None,
            message,
        })?;
        let remote = if plate.is_some() {
            format!("{}.3mf", upload.name)
        } else {
            upload.name.to_owned()
        };
        let body = tokio::fs::File::open(upload.path)
            .await
            .map_err(file_error)?;
        // At least 1 MB/s, whatever the timeout.
        let budget = self.timeout() + Duration::from_secs(len / 1_000_000);
        let mut ftp = self.ftps().await?;
        let stored = ftp.store(&remote, body, budget).await;
        ftp.quit().await;
        stored.map_err(|e| self.ftp_error("upload", e))?;
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(upload.name.to_owned(), Uploaded { remote, plate });
        Ok(())
    }

    async fn start(&self, name: &str) -> Result<Started, DriverError> {
        self.reporting().await?;
        if Self::read_only(&self.shared.state()) {
            return Err(DriverError::Rejected {
                operation: "start",
                code: None,
                message: READ_ONLY.into(),
            });
        }
        let up = self.uploaded(name).await?;
        let (command, (fields, started)) = match &up.plate {
            Some(plate) => ("project_file", self.project_request(name, &up, plate)?),
            None => (
                "gcode_file",
                (
                    json!({
                        "param": format!("/sdcard/{}", up.remote),
                        "subtask_name": name,
                    }),
                    Started::default(),
                ),
            ),
        };
        {
            let mut s = self.shared.state();
            s.pending = None;
            s.stopped = None;
        }
        self.request("start", "print", command, fields).await?;
        Ok(started)
    }

    async fn set_temperatures(&self, targets: HeatTargets) -> Result<(), DriverError> {
        // `print.gcode_line` (PROTOCOLS.md §A4): M104 sets the nozzle's target, M140 the bed's.
        let lines: String = [("M104", targets.nozzle_c), ("M140", targets.bed_c)]
            .into_iter()
            .filter_map(|(code, t)| t.map(|t| format!("{code} S{} \n", t.round())))
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        self.request(
            "set_temperatures",
            "print",
            "gcode_line",
            json!({ "param": lines }),
        )
        .await
    }

    async fn run_gcode(&self, lines: &[String]) -> Result<(), DriverError> {
        // `print.gcode_line` (PROTOCOLS.md §A4): the lines, each ended by a newline.
        let param: String = lines.iter().map(|l| format!("{l}\n")).collect();
        self.request(
            "run_gcode",
            "print",
            "gcode_line",
            json!({ "param": param }),
        )
        .await
    }

    fn own_actions(&self) -> &'static [OwnAction] {
        &OWN_ACTIONS
    }

    async fn run_own_action(&self, id: &str) -> Result<(), DriverError> {
        if let Some(on) = match id {
            "light-on" => Some(true),
            "light-off" => Some(false),
            _ => None,
        } {
            // `system.ledctrl` on the chamber light, steady (the blink fields as Bambu's apps
            // send them for a steady light).
            let fields = json!({
                "led_node": "chamber_light",
                "led_mode": if on { "on" } else { "off" },
                "led_on_time": 500,
                "led_off_time": 500,
                "loop_times": 0,
                "interval_time": 0,
            });
            return self
                .request("run_own_action", "system", "ledctrl", fields)
                .await;
        }
        // `print.print_speed` (PROTOCOLS.md §A4): "1" to "4", silent to ludicrous.
        let level = SPEED_MODES
            .iter()
            .position(|m| *m == id)
            .ok_or(DriverError::Unsupported {
                operation: "run_own_action",
                kind: DriverKind::Bambu,
            })?;
        self.request(
            "run_own_action",
            "print",
            "print_speed",
            json!({ "param": (level + 1).to_string() }),
        )
        .await
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.control("pause", "pause", Pending::Pause).await
    }

    async fn resume(&self) -> Result<(), DriverError> {
        self.control("resume", "resume", Pending::Resume).await
    }

    async fn cancel(&self) -> Result<(), DriverError> {
        self.control("cancel", "stop", Pending::Stop).await
    }

    async fn current_job(&self) -> Result<Option<JobStatus>, DriverError> {
        self.reporting().await?;
        let status = self.status().await?;
        Ok(status.job.filter(|j| !j.phase.is_finished()))
    }

    async fn remove(&self, name: &str) -> Result<(), DriverError> {
        let mut ftp = self.ftps().await?;
        let project = format!("{name}.3mf");
        let result = async {
            ftp.delete(&project).await?;
            ftp.delete(name).await
        }
        .await;
        ftp.quit().await;
        result.map_err(|e| self.ftp_error("remove", e))?;
        self.uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
