//! Printer drivers for the Hearth edge agent.
//!
//! The agent holds each printer as a `Box<dyn Driver>` (see `driver`) built from a `DriverConfig`
//! (`config::build`). A driver uploads the opened G-code, starts, pauses, resumes and cancels jobs,
//! reports telemetry as a `PrinterStatus` (`model`), and finds the running job again after an agent
//! restart (`Driver::current_job`, by the file name the agent chose). Failures are one `DriverError`
//! whose variants tell "unreachable, retry" from "the printer refused" from "protocol mismatch".
//!
//! One module per protocol: `simulated` (in-process, with fault injection), `octoprint` (REST),
//! `moonraker` (JSON-RPC over WebSocket, HTTP upload), `marlin` (a USB serial port, the agent
//! streaming the G-code itself), `bambu` (Bambu Lab LAN mode: MQTT over TLS, implicit FTPS), `prusalink` (PrusaLink API v1 with
//! HTTP Digest). Only this crate knows printers' payload shapes.

pub mod bambu;
pub mod config;
pub mod driver;
pub mod error;
pub mod marlin;
pub mod model;
pub mod moonraker;
pub mod octoprint;
pub mod prusalink;
pub mod simulated;

mod http;
pub mod tls;

pub use config::{
    BambuConfig, DriverConfig, MarlinConfig, MoonrakerConfig, OctoPrintConfig, PrusaLinkConfig,
    SimulatedConfig, build,
};
pub use driver::{Driver, Upload};
pub use error::DriverError;
pub use model::{
    Capabilities, DriverInfo, DriverKind, Fault, HeatTargets, Heater, JobPhase, JobStatus, Macro,
    MaterialSlot, OwnAction, PrintHints, PrinterState, PrinterStatus, RunsWhen, Started,
};

/// Whether `id` names an action a driver offers of its own ([`Driver::own_actions`]): an agent's
/// configuration cannot give its G-code actions those ids.
pub fn is_own_action_id(id: &str) -> bool {
    bambu::OWN_ACTIONS.iter().any(|a| a.id == id)
}
