//! The `Driver` trait every printer protocol implements.

use std::path::Path;

use async_trait::async_trait;

use crate::error::DriverError;
use crate::model::{
    DriverInfo, Fault, HeatTargets, JobStatus, OwnAction, PrintHints, PrinterStatus, Started,
};

/// A file to put on the printer.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    /// Name on the printer. The agent chooses names it can recognise after a restart
    /// (`hearth-<jobid>.gcode`); it must be a plain file name (no `/`).
    pub name: &'a str,
    /// Local file holding the plaintext G-code (the agent's spool).
    pub path: &'a Path,
    /// What is known about the file (used by the simulator; real printers analyse files themselves).
    pub hints: PrintHints,
}

/// One printer, driven over its protocol.
///
/// Object-safe: the agent holds `Box<dyn Driver>`. Every method may be called concurrently; drivers
/// synchronise internally. Only `status` hides an unreachable printer (as `PrinterState::Offline`);
/// commands fail with `DriverError::Unreachable` so the agent can retry them.
#[async_trait]
pub trait Driver: Send + Sync + std::fmt::Debug {
    /// What this printer is; known without talking to it.
    fn describe(&self) -> &DriverInfo;

    /// One telemetry sample. An unreachable printer is `Ok` with state `Offline`, never an error; errors
    /// are kept for answers the driver cannot understand.
    async fn status(&self) -> Result<PrinterStatus, DriverError>;

    /// Copies a file to the printer under `upload.name`, replacing a file of that name.
    async fn upload(&self, upload: Upload<'_>) -> Result<(), DriverError>;

    /// Starts printing a file uploaded earlier; says which slots feed it when the driver chose them.
    async fn start(&self, name: &str) -> Result<Started, DriverError>;

    /// Pauses the running job.
    async fn pause(&self) -> Result<(), DriverError>;

    /// Resumes a paused job.
    async fn resume(&self) -> Result<(), DriverError>;

    /// Cancels the running or paused job.
    async fn cancel(&self) -> Result<(), DriverError>;

    /// The job the printer is working on (printing, pausing, paused, cancelling), read from the printer
    /// alone, so an agent that restarted can re-attach to it by its file name. `None` when idle.
    /// Unlike `status`, an unreachable printer is an error here: "no job" must not be guessed.
    async fn current_job(&self) -> Result<Option<JobStatus>, DriverError>;

    /// The agent, after its own restart, watches again a job it started under `name` on this
    /// printer. A printer that forgets a job as soon as it ends (PrusaLink) can then still say how
    /// that job ended, instead of it being lost. Others find the job by name and need nothing.
    fn watching(&self, _name: &str) {}

    /// Deletes a file from the printer (the agent removes plaintext it no longer needs).
    async fn remove(&self, name: &str) -> Result<(), DriverError>;

    /// The still-image URL of the printer's camera as the printer's own software has it
    /// configured (OctoPrint's webcam settings, Moonraker's webcam list), resolved against the
    /// printer's address; `None` when none is configured there. Printers without such a setting
    /// answer `Unsupported`.
    async fn camera_snapshot_url(&self) -> Result<Option<String>, DriverError> {
        Err(DriverError::Unsupported {
            operation: "camera_snapshot_url",
            kind: self.describe().kind,
        })
    }

    /// The HTTP client to fetch a camera `url` with: for an `https://` URL on the printer's own
    /// host, one that trusts that host as the printer's table says (`ca_file`, `fingerprint`), so
    /// an OctoPi's self-signed webcam is trusted like its OctoPrint; `None` (any other URL, or a
    /// printer reached otherwise): the agent's own client.
    fn camera_client(&self, url: &str) -> Option<reqwest::Client> {
        let _ = url;
        None
    }

    /// One frame of the printer's own camera, read over the printer's protocol (the A1's and P1's
    /// camera server); `None` when it has none. Printers whose camera is reached by URL, or that
    /// have none the driver can read, answer `Unsupported`.
    async fn camera_frame(&self) -> Result<Option<Vec<u8>>, DriverError> {
        Err(DriverError::Unsupported {
            operation: "camera_frame",
            kind: self.describe().kind,
        })
    }

    /// Sets the nozzle's and the bed's targets (preheating, cooling down) while no job runs; the
    /// agent checks its limits and that no job runs first. Drivers that cannot (see
    /// `Capabilities::heat`) answer `Unsupported`.
    async fn set_temperatures(&self, targets: HeatTargets) -> Result<(), DriverError> {
        let _ = targets;
        Err(DriverError::Unsupported {
            operation: "set_temperatures",
            kind: self.describe().kind,
        })
    }

    /// Sends lines of G-code as they are (the agent's configured actions: homing, fans, Klipper
    /// macros), after what the printer is doing now. The agent decides whether a job may be
    /// running. Drivers that cannot (see `Capabilities::gcode`) answer `Unsupported`.
    async fn run_gcode(&self, lines: &[String]) -> Result<(), DriverError> {
        let _ = lines;
        Err(DriverError::Unsupported {
            operation: "run_gcode",
            kind: self.describe().kind,
        })
    }

    /// The G-code macros the printer's firmware defines (Klipper's `[gcode_macro NAME]`), by name
    /// with the parameters each reads, for an admin to choose actions from; others answer
    /// `Unsupported`.
    async fn macros(&self) -> Result<Vec<crate::Macro>, DriverError> {
        Err(DriverError::Unsupported {
            operation: "macros",
            kind: self.describe().kind,
        })
    }

    /// The actions the printer offers of its own (a Bambu's chamber light and speed modes).
    fn own_actions(&self) -> &'static [OwnAction] {
        &[]
    }

    /// Runs one of [`Driver::own_actions`] by its id; the agent checks the printer's state first.
    async fn run_own_action(&self, id: &str) -> Result<(), DriverError> {
        let _ = id;
        Err(DriverError::Unsupported {
            operation: "run_own_action",
            kind: self.describe().kind,
        })
    }

    /// Makes the (simulated) printer have a fault. Real printers answer `Unsupported`.
    async fn inject_fault(&self, fault: Fault) -> Result<(), DriverError> {
        let _ = fault;
        Err(DriverError::Unsupported {
            operation: "inject_fault",
            kind: self.describe().kind,
        })
    }

    /// Clears injected faults (simulator only).
    async fn clear_faults(&self) -> Result<(), DriverError> {
        Err(DriverError::Unsupported {
            operation: "clear_faults",
            kind: self.describe().kind,
        })
    }
}
