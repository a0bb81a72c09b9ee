//! What a driver reports, in one shape for every printer kind.
//!
//! These types are this crate's vocabulary, not the wire format: the agent maps them to `hearth-proto`
//! types. They are serde-serializable so that tests, logs and fixtures can show them as JSON.

use serde::{Deserialize, Serialize};

/// Which protocol a driver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    /// The in-process simulator (no hardware).
    Simulated,
    /// OctoPrint's REST API.
    Octoprint,
    /// Moonraker's JSON-RPC API in front of Klipper.
    Moonraker,
    /// Marlin firmware on a USB serial port, streamed by the agent.
    Marlin,
    /// A Bambu Lab printer in LAN mode (MQTT and FTPS on the printer).
    Bambu,
    /// PrusaLink API v1 (Prusa MK4, XL, MINI, Core One firmware, or PrusaLink on a Raspberry Pi).
    Prusalink,
}

/// What a driver can do beyond the basic job flow, so the agent and UI can hide what would fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// `pause` and `resume` are supported.
    pub pause: bool,
    /// Telemetry includes the current layer.
    pub layers: bool,
    /// `inject_fault` works (simulator only).
    pub fault_injection: bool,
    /// `set_temperatures` works: the nozzle's and the bed's targets can be set while no job runs.
    pub heat: bool,
    /// `run_gcode` works: lines of G-code (or Klipper commands and macros) are sent as they are.
    pub gcode: bool,
    /// `run_gcode` takes the standard M220 (speed), M221 (flow) and M106/M107 (part-cooling fan)
    /// while a job prints: the agent tunes a print with them.
    pub tune: bool,
}

/// An action a printer offers of its own, through its protocol (a Bambu's chamber light and
/// speed modes), beside the G-code actions of the agent's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnAction {
    /// `a-z`, `0-9` and `-`, e.g. `light-on`.
    pub id: &'static str,
    /// As buttons show it.
    pub label: &'static str,
    pub when: RunsWhen,
}

/// A G-code macro the printer's firmware defines (Klipper's `[gcode_macro NAME]`), for an admin
/// choosing actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macro {
    pub name: String,
    /// The parameters its template reads (`params.TEMP`), in the order it first reads them, each
    /// with the default the template gives it (`|default(220)`), if any.
    pub params: Vec<(String, Option<String>)>,
}

/// A printer's own light as actions: on and off, whenever it is online.
pub const LIGHT_ACTIONS: [OwnAction; 2] = [
    OwnAction {
        id: "light-on",
        label: "Light on",
        when: RunsWhen::Always,
    },
    OwnAction {
        id: "light-off",
        label: "Light off",
        when: RunsWhen::Always,
    },
];

/// In which states of its printer an action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsWhen {
    /// Only while it is idle.
    Idle,
    /// Whenever it is online.
    Always,
    /// Only while a job runs or is paused.
    Printing,
}

/// Heater targets to set while no job runs, °C: 0 switches a heater off, `None` leaves it as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HeatTargets {
    /// The (first) nozzle.
    pub nozzle_c: Option<f32>,
    pub bed_c: Option<f32>,
}

/// Static description of a configured printer, known without talking to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// Protocol.
    pub kind: DriverKind,
    /// Printer model as configured (e.g. "Prusa MK3S"), or a generic name of the kind.
    pub model: String,
    /// Where the driver talks to, for logs ("http://octopi.local"); never contains the API key.
    pub endpoint: String,
    /// Optional features.
    pub capabilities: Capabilities,
}

/// The printer's overall state, as an operator would name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    /// The printer (or its host software) cannot be reached, or the host has no connection to it.
    Offline,
    /// Connected and ready for a job.
    Idle,
    /// A job is running (including heating up for it).
    Printing,
    /// A pause was requested and the printer is getting there.
    Pausing,
    /// A job is paused (by command, or by the printer, e.g. filament runout: see `PrinterStatus::error`).
    Paused,
    /// A cancel was requested and the printer is getting there.
    Cancelling,
    /// The printer is in an error state and needs attention before it prints again.
    Error,
}

impl PrinterState {
    /// Whether a job occupies the printer in this state (running, paused or winding down).
    pub fn is_busy(self) -> bool {
        matches!(
            self,
            Self::Printing | Self::Pausing | Self::Paused | Self::Cancelling
        )
    }
}

/// One heater's temperatures in °C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heater {
    /// Normalised name: `tool0`, `tool1`, ... for nozzles, `bed`, `chamber`; other heaters keep the
    /// printer's own name.
    pub name: String,
    /// Measured temperature.
    pub actual: f64,
    /// Target temperature; 0 when off.
    pub target: f64,
}

/// Where a job is in its life, as far as the printer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Running (heating up, printing).
    Printing,
    /// Pause requested.
    Pausing,
    /// Paused.
    Paused,
    /// Cancel requested.
    Cancelling,
    /// Finished successfully.
    Completed,
    /// Cancelled before the end.
    Cancelled,
    /// Stopped by an error.
    Failed,
}

impl JobPhase {
    /// Whether the job has ended (the printer no longer works on it).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Failed)
    }
}

/// The job the printer is on, or last finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// File name on the printer, as given to `Driver::upload` (e.g. `hearth-<jobid>.gcode`). This is
    /// how the agent re-attaches to its own job after a restart.
    pub file: String,
    /// Where the job is.
    pub phase: JobPhase,
    /// Fraction done, 0.0..=1.0.
    pub progress: f64,
    /// Current layer, 1-based, when the printer reports it.
    pub layer: Option<u32>,
    /// Total layers, when known.
    pub total_layers: Option<u32>,
    /// Seconds spent printing so far.
    pub elapsed_seconds: Option<u64>,
    /// Estimated seconds left.
    pub remaining_seconds: Option<u64>,
}

/// A telemetry sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrinterStatus {
    /// Overall state.
    pub state: PrinterState,
    /// Every heater the printer reports.
    pub heaters: Vec<Heater>,
    /// The current or last job, if the printer knows one.
    pub job: Option<JobStatus>,
    /// The printer's own message when something is wrong (error text, pause reason, why offline).
    pub error: Option<String>,
    /// The filament slots it reports with what is loaded (a Bambu Lab AMS and external spool);
    /// empty when it reports none.
    pub slots: Vec<MaterialSlot>,
    /// Its own light (a Bambu's chamber light), on or off, when it reports one.
    pub light: Option<bool>,
    /// The speed it prints at, percent of the file's (a Bambu's speed mode), when it reports it.
    pub speed_percent: Option<u16>,
    /// Its flow (extrusion factor), percent of the file's, when it reports it (Klipper).
    pub flow_percent: Option<u16>,
    /// Its part-cooling fan, percent of full, when it reports it (Klipper, the simulator).
    pub fan_percent: Option<u8>,
}

/// A filament slot a printer reports, with what is loaded in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaterialSlot {
    /// As the printer's screen names it: `A1`..`A4`, `B1`.. for AMS units, `Ext` for the external
    /// spool.
    pub name: String,
    /// Material, e.g. `PLA`.
    pub material: String,
    /// `RRGGBB`, when known.
    pub color: Option<String>,
    /// Filament left, percent, when the printer knows (Bambu Lab RFID spools).
    pub remain_percent: Option<u8>,
    /// The spool's own identity read from its RFID tag (a Bambu Lab spool's `tray_uuid`), when
    /// it has one: the same spool wherever it is put.
    #[serde(default)]
    pub tag: Option<String>,
}

impl PrinterStatus {
    /// The status to report when the printer cannot be reached; `why` says what failed.
    pub fn offline(why: impl Into<String>) -> Self {
        Self {
            state: PrinterState::Offline,
            heaters: Vec::new(),
            job: None,
            error: Some(why.into()),
            slots: Vec::new(),
            light: None,
            speed_percent: None,
            flow_percent: None,
            fan_percent: None,
        }
    }
}

/// Facts about a file that the print-file library (or the submitter) computed, used by the simulator to
/// decide how long a print takes and by drivers to estimate what the printer does not report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PrintHints {
    /// Estimated print time in seconds.
    pub estimated_seconds: Option<f64>,
    /// Number of layers.
    pub layers: Option<u32>,
}

/// What a printer was told when a job started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Started {
    /// The slot, as [`MaterialSlot::name`] names it, that each of the file's filaments is fed
    /// from, in the slicer's order, when the driver chose them (a Bambu printer's AMS mapping),
    /// or that feeds each of the printer's tools (a Happy Hare MMU's tool-to-gate map). Empty
    /// when the printer has one holder.
    pub slots: Vec<String>,
}

/// A fault the simulator can be told to have, to test and demonstrate the system without hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Filament ran out: the job pauses with an error message; `resume` continues it.
    FilamentRunout,
    /// Thermal runaway: the job fails, heaters switch off, the printer is in error until `clear`ed.
    ThermalError,
    /// The printer stops answering: status is offline and commands fail as unreachable.
    Disconnect,
}
