//! The agent's settings: one TOML file (`hearth-agent.toml`), typed, unknown keys reported.
//!
//! ```toml
//! server = "https://hearth.example.org"
//! state_dir = "/var/lib/hearth-agent"
//!
//! [[printer]]
//! name = "mk4-left"
//! pools = ["pla"]
//! kind = "octoprint"
//! url = "http://octopi.local"
//! api_key = "..."
//! ```
//!
//! Each `[[printer]]` table holds Hearth's own keys (`name`, `pools`, `material`, `color`, `nozzle_mm`) and,
//! flattened beside them, the driver's configuration (`kind` and that driver's keys, see
//! `hearth_drivers::DriverConfig`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_drivers::DriverConfig;
use serde::{Deserialize, Serialize};

/// What `hearth-agent config example` prints; a test parses it back.
pub const EXAMPLE: &str = r#"# hearth-agent configuration.

# The Hearth server, as members open it in a browser. https:// uses TLS (rustls).
server = "https://hearth.example.org"

# Where the agent keeps its key, its job journal and its spool (sealed downloads; plaintext only
# for the moment of an upload, in files only the agent can read).
state_dir = "/var/lib/hearth-agent"

# A PEM file with the root certificate of a self-hosted server's own CA (optional; the machine's
# trust store and Mozilla's roots are trusted too).
# ca_cert = "/etc/hearth-agent/ca.pem"

# Timings, in milliseconds; the defaults suit real deployments.
# [timing]
# telemetry_interval_ms = 1000   # at most one telemetry message per printer per interval
# heartbeat_ms = 15000           # Ping the server this often
# dead_after_ms = 45000          # reconnect when nothing arrived for this long
# backoff_min_ms = 500           # first reconnection delay, doubling up to backoff_max_ms, +-20%
# backoff_max_ms = 30000
# stable_after_ms = 60000        # a connection that lasted this long resets the backoff
# retry_ms = 5000                # retry a job step that failed because a printer or the server was away
# lost_after_ms = 30000          # a started job the printer stops reporting for this long is failed

# One table per printer. `name` is how the server and members know it (unique on this agent);
# `kind` picks the driver, the other keys configure it (see the README's "Printers and drivers").
[[printer]]
name = "demo"
pools = ["pla"]
material = "PLA"
color = "orange"
nozzle_mm = 0.4
kind = "simulated"
model = "Demo printer"
time_scale = 60

# A camera for a printer: a [printer.camera] table after that printer's lines. Frames are sealed
# on this machine to the organisation's key and signed by the agent; the server cannot see them.
# [printer.camera]
# snapshot_url = "http://octopi.local/webcam/?action=snapshot"  # one JPEG or PNG per GET; leave it
#                                 # out for OctoPrint, Moonraker and Bambu Lab A1/P1 printers
# interval_seconds = 10           # while the printer has a job
# idle_interval_seconds = 60      # otherwise (0: only when a member asks)
# timelapse = false               # true: keep the frames taken while a job prints as its
#                                 # timelapse (sealed too; `hearth timelapse JOB`)
# timelapse_trigger = "interval"  # or "layer": a timelapse frame at each new layer

# Preheating and cooling a printer when a member asks (`hearth printers heat`, the dashboard's
# Preheat): only while it is idle, never above these limits, whatever the server says.
# [printer.heat]
# remote = true                   # false: never set this printer's heaters on the server's word
# max_nozzle_c = 285
# max_bed_c = 110
# cool_after_seconds = 1800       # a preheat no job follows within this long is switched off (0: never)

# Tuning a print when a member asks (`hearth printers tune`, the dashboard's Tune...): its speed
# (M220), flow (M221) and part-cooling fan (M106), only while it prints, never outside these.
# OctoPrint, Moonraker (Klipper) and Marlin printers; not Bambu Lab (its speed modes are actions)
# nor PrusaLink.
# [printer.tune]
# remote = true                   # false: never tune this printer on the server's word
# min_speed_percent = 25
# max_speed_percent = 200
# min_flow_percent = 75
# max_flow_percent = 125

# Actions members can run on a printer from the dashboard or `hearth printers run` (homing, fans,
# Klipper macros): one [[printer.action]] table each, after that printer's lines. The server knows
# only their ids and labels; what they send is this file's. Each runs only while the printer is
# idle unless while_printing = true. A Bambu Lab printer also offers its own: its chamber light
# (light-on, light-off) and, while printing, its speed modes (speed-silent, speed-standard,
# speed-sport, speed-ludicrous), unless the printer has `builtin_actions = false`.
# `hearth-agent config actions` prints a table for each macro of a Klipper printer.
# [[printer.action]]
# id = "home"                     # a-z, 0-9 and -, at most 32
# label = "Home all axes"
# gcode = "G28"                   # one line, or several: ["G28", "G1 Z50 F600"]
# confirm = "Is the bed clear?"   # asked before it runs (dashboards, hearth printers run)
# [[printer.action]]
# id = "fan-off"
# label = "Part fan off"
# gcode = "M107"
# while_printing = true           # also while a job runs or is paused
# admins_only = false             # true: only the organisation's admins may run it

# A printer on this machine's USB port, with the agent as its print host (no OctoPrint):
# [[printer]]
# name = "ender"
# kind = "marlin"
# port = "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0"
# baudrate = 115200

# A Bambu Lab printer in LAN mode with Developer Mode on (see the README's "Printers and drivers"):
# [[printer]]
# name = "p1s-1"
# kind = "bambu"
# host = "192.168.1.50"
# serial = "01P00A123456789"
# access_code = "12345678"
# model = "P1S"
# ca_file = "/etc/hearth-agent/bbl-ca.pem"

# A Prusa MK4, XL, MINI or Core One (PrusaLink in its firmware):
# [[printer]]
# name = "mk4-1"
# kind = "prusalink"
# url = "http://192.168.1.60"
# password = "..."
"#;

/// The agent's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Base URL of the server (`https://...` or `http://...`); the WebSocket URL is derived from it.
    pub server: String,
    /// Key, journal and spool live here.
    pub state_dir: PathBuf,
    /// Extra root certificate (PEM) for a server with its own CA.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    #[serde(default)]
    pub timing: Timing,
    /// The printers this agent drives.
    #[serde(default, rename = "printer")]
    pub printers: Vec<PrinterConfig>,
}

/// Setting a printer's heaters' targets when a member asks through the server (`hearth printers
/// heat`, the dashboard's *Preheat*): never while a job runs, never above these limits, whatever
/// the server says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeatConfig {
    /// Whether members may preheat and cool it down at all.
    pub remote: bool,
    /// The highest nozzle target set when asked, °C.
    pub max_nozzle_c: f32,
    /// The highest bed target set when asked, °C.
    pub max_bed_c: f32,
    /// A preheat no job follows within this long is switched off (heaters left on at an
    /// unattended printer); 0: never.
    pub cool_after_seconds: u64,
}

impl HeatConfig {
    /// The limits the agent announces and holds the server's requests to.
    pub fn limits(&self) -> hearth_proto::agent::HeatLimits {
        hearth_proto::agent::HeatLimits {
            max_nozzle_c: self.max_nozzle_c,
            max_bed_c: self.max_bed_c,
        }
    }
}

impl Default for HeatConfig {
    fn default() -> Self {
        Self {
            remote: true,
            max_nozzle_c: 285.0,
            max_bed_c: 110.0,
            cool_after_seconds: 1800,
        }
    }
}

/// Tuning a print when a member asks through the server (`hearth printers tune`, the dashboard's
/// *Tune…*): its speed, flow and part-cooling fan, only while it prints, never outside these
/// limits, whatever the server says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuneConfig {
    /// Whether members may tune its prints at all.
    pub remote: bool,
    /// The speed factor's range, percent of the file's.
    pub min_speed_percent: u16,
    pub max_speed_percent: u16,
    /// The flow factor's range, percent of the file's.
    pub min_flow_percent: u16,
    pub max_flow_percent: u16,
}

impl TuneConfig {
    /// The limits the agent announces and holds the server's requests to.
    pub fn limits(&self) -> hearth_proto::agent::TuneLimits {
        hearth_proto::agent::TuneLimits {
            min_speed_percent: self.min_speed_percent,
            max_speed_percent: self.max_speed_percent,
            min_flow_percent: self.min_flow_percent,
            max_flow_percent: self.max_flow_percent,
        }
    }
}

impl Default for TuneConfig {
    fn default() -> Self {
        Self {
            remote: true,
            min_speed_percent: 25,
            max_speed_percent: 200,
            min_flow_percent: 75,
            max_flow_percent: 125,
        }
    }
}

/// A named action members can run on a printer (`[[printer.action]]`): lines of G-code (or
/// Klipper commands and macros) sent as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// What members ask for: `a-z`, `0-9` and `-`, at most 32.
    pub id: String,
    /// As buttons show it; the id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The lines sent: one string (which may hold several lines) or a list of lines.
    pub gcode: GcodeLines,
    /// Also while a job runs or is paused (a light, a fan); otherwise only while idle.
    #[serde(default)]
    pub while_printing: bool,
    /// Only the organisation's admins may run it; otherwise operators too.
    #[serde(default)]
    pub admins_only: bool,
    /// What the dashboards and the CLI ask before running it ("Is the bed clear?").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
}

/// One or more lines of G-code as a configuration writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GcodeLines {
    One(String),
    Many(Vec<String>),
}

impl GcodeLines {
    /// The lines, trimmed, without empty ones.
    pub fn lines(&self) -> Vec<String> {
        let all: Vec<&str> = match self {
            Self::One(s) => s.lines().collect(),
            Self::Many(v) => v.iter().flat_map(|s| s.lines()).collect(),
        };
        all.into_iter()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl ActionConfig {
    /// What the agent announces of it.
    pub fn announced(&self) -> hearth_proto::agent::PrinterAction {
        use hearth_proto::agent::ActionWhen;
        hearth_proto::agent::PrinterAction {
            id: self.id.clone(),
            label: self.label.clone().unwrap_or_else(|| self.id.clone()),
            when: match self.while_printing {
                true => ActionWhen::Always,
                false => ActionWhen::Idle,
            },
            admins_only: self.admins_only,
            confirm: self.confirm.clone(),
        }
    }
}

/// One printer: Hearth's facts about it plus its driver's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrinterConfig {
    /// Unique among this agent's printers; the server's name for it.
    pub name: String,
    /// Pools it belongs to ("any printer with PLA").
    #[serde(default)]
    pub pools: Vec<String>,
    /// Loaded material, revealed to the server for scheduling.
    #[serde(default)]
    pub material: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub nozzle_mm: Option<f32>,
    /// Its camera, if it has one (`[printer.camera]`): frames are sealed on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraConfig>,
    /// Preheating and cooling it when a member asks (`[printer.heat]`).
    #[serde(default)]
    pub heat: HeatConfig,
    /// Tuning its prints when a member asks (`[printer.tune]`).
    #[serde(default)]
    pub tune: TuneConfig,
    /// Actions members can run on it (`[[printer.action]]`).
    #[serde(default, rename = "action", skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionConfig>,
    /// Whether the actions its driver offers of its own (a Bambu's chamber light and speed
    /// modes) are offered to members.
    #[serde(default = "yes")]
    pub builtin_actions: bool,
    /// The driver (`kind = "..."` and its keys).
    #[serde(flatten)]
    pub driver: DriverConfig,
}

/// A printer's camera: anything that answers an HTTP GET with one JPEG or PNG image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// The still-image URL, e.g. `http://octopi.local/webcam/?action=snapshot` (mjpg-streamer,
    /// ustreamer, crowsnest), an IP camera's snapshot URL, an ESP32-CAM's `/capture`. Absent: the
    /// one OctoPrint (its webcam settings) or Moonraker (its webcam list) has configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_url: Option<String>,
    /// Seconds between frames while the printer has a job (default 10).
    #[serde(default = "default_camera_interval")]
    pub interval_seconds: f64,
    /// Seconds between frames otherwise (default 60; 0: only when a member asks).
    #[serde(default = "default_camera_idle_interval")]
    pub idle_interval_seconds: f64,
    /// Keep a timelapse of every job this printer prints: the frames taken every
    /// `interval_seconds` during a job are bound to it (signed with its id) and the server keeps
    /// them, sealed, with the job (`hearth timelapse JOB`). Default false: the server keeps only
    /// the latest frame.
    #[serde(default)]
    pub timelapse: bool,
    /// When a timelapse frame is taken: `interval` (every `interval_seconds`, the default) or
    /// `layer` (each time the printer reports a new layer, as Bambu Studio's and Octolapse's
    /// layer timelapses do; a printer that reports no layers falls back to the interval).
    #[serde(default)]
    pub timelapse_trigger: TimelapseTrigger,
}

/// What triggers a timelapse frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimelapseTrigger {
    /// Every `interval_seconds` while the job prints.
    #[default]
    Interval,
    /// Each new layer the printer reports.
    Layer,
}

fn yes() -> bool {
    true
}

fn default_camera_interval() -> f64 {
    10.0
}

fn default_camera_idle_interval() -> f64 {
    60.0
}

/// Timings, configurable so that tests run fast without sleeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Timing {
    pub telemetry_interval_ms: u64,
    pub heartbeat_ms: u64,
    pub dead_after_ms: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    pub stable_after_ms: u64,
    pub retry_ms: u64,
    /// How long a started job may be missing from an online printer's reports before it is declared
    /// lost (printers take a moment to show a job they just started).
    pub lost_after_ms: u64,
    /// Job updates kept while disconnected before intermediate ones are collapsed (the latest of every
    /// job is always kept).
    pub job_backlog: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            telemetry_interval_ms: 1000,
            heartbeat_ms: 15_000,
            dead_after_ms: 45_000,
            backoff_min_ms: 500,
            backoff_max_ms: 30_000,
            stable_after_ms: 60_000,
            retry_ms: 5000,
            lost_after_ms: 30_000,
            job_backlog: 256,
        }
    }
}

impl Timing {
    pub fn telemetry_interval(&self) -> Duration {
        Duration::from_millis(self.telemetry_interval_ms.max(1))
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.max(1))
    }
    pub fn dead_after(&self) -> Duration {
        Duration::from_millis(self.dead_after_ms.max(1))
    }
    pub fn retry(&self) -> Duration {
        Duration::from_millis(self.retry_ms.max(1))
    }
    pub fn lost_after(&self) -> Duration {
        Duration::from_millis(self.lost_after_ms)
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl AgentConfig {
    /// Reads and validates a config file; unknown keys are returned (the binary warns about them).
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            e => e,
        })
    }

    /// Parses TOML text; returns the settings and the unknown keys that were ignored.
    pub fn parse(text: &str) -> Result<(Self, Vec<String>), ConfigError> {
        let mut unknown = Vec::new();
        let de = toml::Deserializer::new(text);
        let config: Self = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()))
            .map_err(|source| ConfigError::Parse {
                path: PathBuf::from("<text>"),
                source,
            })?;
        config.validate()?;
        Ok((config, unknown))
    }

    /// Checks what serde cannot: a usable server URL, unique printer names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.server.starts_with("https://") || self.server.starts_with("http://")) {
            return Err(ConfigError::Invalid(format!(
                "server must be an http:// or https:// URL, not {:?}",
                self.server
            )));
        }
        let mut names = std::collections::HashSet::new();
        for p in &self.printers {
            if p.name.is_empty() || p.name.contains(['/', '\\']) {
                return Err(ConfigError::Invalid(format!(
                    "printer name {:?} must be non-empty and contain no slash",
                    p.name
                )));
            }
            if !names.insert(p.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "printer name {:?} is used twice",
                    p.name
                )));
            }
            let h = &p.heat;
            if !(h.max_nozzle_c.is_finite()
                && (0.0..=500.0).contains(&h.max_nozzle_c)
                && h.max_bed_c.is_finite()
                && (0.0..=200.0).contains(&h.max_bed_c))
            {
                return Err(ConfigError::Invalid(format!(
                    "printer {:?}: heat.max_nozzle_c is 0 to 500 °C and heat.max_bed_c 0 to 200 °C",
                    p.name
                )));
            }
            let t = &p.tune;
            if !(1 <= t.min_speed_percent
                && t.min_speed_percent <= t.max_speed_percent
                && t.max_speed_percent <= 500
                && 1 <= t.min_flow_percent
                && t.min_flow_percent <= t.max_flow_percent
                && t.max_flow_percent <= 200)
            {
                return Err(ConfigError::Invalid(format!(
                    "printer {:?}: tune.min_speed_percent to tune.max_speed_percent is within 1 \
                     to 500 %, and tune.min_flow_percent to tune.max_flow_percent within 1 to \
                     200 %, each minimum at most its maximum",
                    p.name
                )));
            }
            if !p.actions.is_empty() && matches!(p.driver, DriverConfig::Prusalink(_)) {
                return Err(ConfigError::Invalid(format!(
                    "printer {:?}: PrusaLink takes no G-code from outside the printer, so it can \
                     have no [[printer.action]]",
                    p.name
                )));
            }
            let mut ids = std::collections::HashSet::new();
            for a in &p.actions {
                let bad = |why: &str| {
                    Err(ConfigError::Invalid(format!(
                        "printer {:?}: action {:?}: {why}",
                        p.name, a.id
                    )))
                };
                if !hearth_proto::agent::PrinterAction::valid_id(&a.id) {
                    return bad("an id is 1 to 32 of a-z, 0-9 and -");
                }
                if hearth_drivers::is_own_action_id(&a.id) {
                    return bad("that id is one a printer offers of its own (builtin_actions)");
                }
                if !ids.insert(a.id.as_str()) {
                    return bad("the id is used twice");
                }
                if a.label
                    .as_deref()
                    .is_some_and(|l| l.trim().is_empty() || l.len() > 64)
                {
                    return bad("a label is 1 to 64 characters");
                }
                if a.confirm
                    .as_deref()
                    .is_some_and(|c| c.trim().is_empty() || c.len() > 200)
                {
                    return bad("confirm is a question of 1 to 200 characters");
                }
                let lines = a.gcode.lines();
                if lines.is_empty() || lines.len() > 100 {
                    return bad("gcode is 1 to 100 lines");
                }
            }
            if let Some(c) = &p.camera {
                if c.snapshot_url
                    .as_deref()
                    .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
                {
                    return Err(ConfigError::Invalid(format!(
                        "printer {:?}: camera.snapshot_url must be an http:// or https:// URL",
                        p.name
                    )));
                }
                let ok = |s: f64| s.is_finite() && s >= 0.0;
                if !(ok(c.interval_seconds)
                    && c.interval_seconds > 0.0
                    && ok(c.idle_interval_seconds))
                {
                    return Err(ConfigError::Invalid(format!(
                        "printer {:?}: camera intervals are seconds (interval_seconds above 0, \
                         idle_interval_seconds 0 or more)",
                        p.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// `wss://host/api/v1/agent/connect` for `https://host`, `ws://` for `http://`.
    pub fn connect_url(&self) -> String {
        connect_url(&self.server)
    }
}

/// The WebSocket URL of a server base URL.
pub fn connect_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/api/v1/agent/connect")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_example_parses_with_a_flattened_driver_and_no_unknown_keys() {
        let (c, unknown) = AgentConfig::parse(EXAMPLE).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(c.printers.len(), 1);
        let p = &c.printers[0];
        assert_eq!((p.name.as_str(), p.nozzle_mm), ("demo", Some(0.4)));
        match &p.driver {
            DriverConfig::Simulated(s) => assert_eq!(s.time_scale, 60.0),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.connect_url(),
            "wss://hearth.example.org/api/v1/agent/connect"
        );
    }

    #[test]
    fn a_camera_table_belongs_to_the_printer_before_it() {
        let text = r#"
server = "http://127.0.0.1:8080"
state_dir = "/tmp/x"

[[printer]]
name = "octopi"
kind = "octoprint"
url = "http://octopi.local"
api_key = "K"

[printer.camera]
snapshot_url = "http://octopi.local/webcam/?action=snapshot"
idle_interval_seconds = 0
timelapse = true
timelapse_trigger = "layer"

[[printer]]
name = "voron"
kind = "moonraker"
url = "http://voron.local:7125"

[printer.camera]

[[printer]]
name = "none"
kind = "simulated"
"#;
        let (c, unknown) = AgentConfig::parse(text).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        c.validate().unwrap();
        let cam = c.printers[0].camera.as_ref().unwrap();
        assert_eq!(
            cam.snapshot_url.as_deref(),
            Some("http://octopi.local/webcam/?action=snapshot")
        );
        assert_eq!(
            (
                cam.interval_seconds,
                cam.idle_interval_seconds,
                cam.timelapse
            ),
            (10.0, 0.0, true)
        );
        let found = c.printers[1].camera.as_ref().unwrap();
        assert_eq!(found.snapshot_url, None, "taken from Moonraker");
        assert!(!found.timelapse, "no timelapse unless asked for");
        assert_eq!(
            (cam.timelapse_trigger, found.timelapse_trigger),
            (TimelapseTrigger::Layer, TimelapseTrigger::Interval)
        );
        assert!(c.printers[2].camera.is_none());
        let bad = text.replace("http://octopi.local/webcam", "rtsp://octopi.local/webcam");
        let err = AgentConfig::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("snapshot_url"), "{err}");
        let typo = text.replace("idle_interval_seconds", "idle_seconds");
        assert!(
            AgentConfig::parse(&typo).is_err(),
            "unknown camera keys are refused"
        );
    }

    #[test]
    fn octoprint_printers_and_errors() {
        let text = r#"
server = "http://127.0.0.1:8080/"
state_dir = "/tmp/x"
[[printer]]
name = "a"
kind = "octoprint"
url = "http://octopi.local"
api_key = "k"
"#;
        let (c, _) = AgentConfig::parse(text).unwrap();
        assert!(matches!(c.printers[0].driver, DriverConfig::Octoprint(_)));
        assert_eq!(c.connect_url(), "ws://127.0.0.1:8080/api/v1/agent/connect");

        let dup = format!("{text}[[printer]]\nname = \"a\"\nkind = \"simulated\"\n");
        assert!(matches!(
            AgentConfig::parse(&dup),
            Err(ConfigError::Invalid(_))
        ));
        let bad_key = text.replace("api_key = \"k\"", "api_key = \"k\"\nbogus = 1");
        assert!(
            AgentConfig::parse(&bad_key).is_err(),
            "driver keys are checked"
        );
        let extra = format!("colour = 1\n{text}");
        let (_, unknown) = AgentConfig::parse(&extra).unwrap();
        assert_eq!(unknown, vec!["colour".to_owned()]);
        let no_kind = "server = \"http://x\"\nstate_dir = \"/x\"\n[[printer]]\nname = \"a\"\n";
        assert!(AgentConfig::parse(no_kind).is_err());
    }

    #[test]
    fn a_printers_tune_table_sets_its_limits_and_is_checked() {
        let config = |tune: &str| {
            format!(
                "server = \"http://127.0.0.1:8080\"\nstate_dir = \"/tmp/x\"\n\n[[printer]]\n\
                 name = \"voron\"\nkind = \"moonraker\"\nurl = \"http://voron.local:7125\"\n\n\
                 [printer.tune]\n{tune}"
            )
        };
        let (c, unknown) =
            AgentConfig::parse(&config("max_speed_percent = 300\nmin_flow_percent = 90\n"))
                .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(
            c.printers[0].tune.limits(),
            hearth_proto::agent::TuneLimits {
                min_speed_percent: 25,
                max_speed_percent: 300,
                min_flow_percent: 90,
                max_flow_percent: 125,
            }
        );
        assert!(c.printers[0].tune.remote, "on unless said otherwise");
        let (c, _) = AgentConfig::parse(&config("remote = false\n")).unwrap();
        assert!(!c.printers[0].tune.remote);
        for bad in [
            "min_speed_percent = 0\n",
            "max_speed_percent = 501\n",
            "min_speed_percent = 150\nmax_speed_percent = 120\n",
            "max_flow_percent = 201\n",
            "min_flow_percent = 130\n",
        ] {
            match AgentConfig::parse(&config(bad)) {
                Err(ConfigError::Invalid(e)) => {
                    assert!(e.contains("tune.min_speed_percent"), "{e}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn actions_belong_to_the_printer_before_them_and_are_checked() {
        let text = r#"
server = "http://127.0.0.1:8080"
state_dir = "/tmp/x"

[[printer]]
name = "voron"
kind = "moonraker"
url = "http://voron.local:7125"

[[printer.action]]
id = "home"
label = "Home all axes"
gcode = "G28"
confirm = "Is the bed clear?"

[[printer.action]]
id = "purge"
gcode = """
G28
  G1 Z50 F600

CLEAN_NOZZLE
"""

[[printer.action]]
id = "fan-off"
label = "Part fan off"
gcode = ["M107", "M106 P2 S0"]
while_printing = true
admins_only = true

[[printer]]
name = "x1c"
kind = "bambu"
host = "192.168.1.50"
serial = "01S00A000000000"
access_code = "12345678"
builtin_actions = false
"#;
        let (c, unknown) = AgentConfig::parse(text).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let voron = &c.printers[0];
        let lines: Vec<Vec<String>> = voron.actions.iter().map(|a| a.gcode.lines()).collect();
        assert_eq!(
            lines,
            [
                vec!["G28".to_owned()],
                vec!["G28".into(), "G1 Z50 F600".into(), "CLEAN_NOZZLE".into()],
                vec!["M107".into(), "M106 P2 S0".into()],
            ]
        );
        let announced: Vec<_> = voron.actions.iter().map(ActionConfig::announced).collect();
        assert_eq!(
            (announced[1].label.as_str(), announced[1].when),
            ("purge", hearth_proto::agent::ActionWhen::Idle),
            "the id is the label when none is given"
        );
        assert_eq!(announced[2].when, hearth_proto::agent::ActionWhen::Always);
        assert!(announced[2].admins_only && !announced[0].admins_only);
        assert_eq!(announced[0].confirm.as_deref(), Some("Is the bed clear?"));
        assert_eq!(announced[1].confirm, None);
        assert!(voron.builtin_actions, "on unless said otherwise");
        assert!(c.printers[1].actions.is_empty());
        assert!(!c.printers[1].builtin_actions);

        let first = "id = \"home\"\nlabel = \"Home all axes\"\ngcode = \"G28\"\nconfirm = \"Is the bed clear?\"\n";
        for (bad, why) in [
            ("id = \"Home\"\ngcode = \"G28\"\n", "a-z"),
            ("id = \"light-on\"\ngcode = \"G28\"\n", "of its own"),
            ("id = \"fan-off\"\ngcode = \"G28\"\n", "twice"),
            ("id = \"h\"\nlabel = \" \"\ngcode = \"G28\"\n", "label"),
            (
                "id = \"h\"\ngcode = \"G28\"\nconfirm = \"\"\n",
                "confirm is a question",
            ),
            ("id = \"h\"\ngcode = \" \\n \"\n", "1 to 100 lines"),
        ] {
            assert!(text.contains(first));
            let changed = text.replacen(first, bad, 1);
            match AgentConfig::parse(&changed) {
                Err(ConfigError::Invalid(m)) => assert!(m.contains(why), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let prusa = text.replace(
            "kind = \"moonraker\"\nurl = \"http://voron.local:7125\"",
            "kind = \"prusalink\"\nurl = \"http://mk4.local\"\npassword = \"p\"",
        );
        match AgentConfig::parse(&prusa) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("PrusaLink takes no G-code"), "{m}"),
            other => panic!("{other:?}"),
        }
        let unknown_key = text.replace("while_printing = true", "while_printing = true\nspeed = 1");
        assert!(
            AgentConfig::parse(&unknown_key).is_err(),
            "action keys are checked"
        );
    }
}
