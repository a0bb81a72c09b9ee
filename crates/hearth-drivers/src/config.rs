//! Driver configuration, TOML-friendly: a table with `kind = "..."` and that kind's fields.
//!
//! ```toml
//! [[printers]]
//! kind = "octoprint"
//! url = "http://octopi.local"
//! api_key = "..."
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::bambu::BambuConfig;
use crate::driver::Driver;
use crate::error::DriverError;
pub use crate::marlin::MarlinConfig;
pub use crate::prusalink::PrusaLinkConfig;
pub use crate::simulated::SimulatedConfig;

/// Which driver to build, and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DriverConfig {
    /// The in-process simulator.
    Simulated(SimulatedConfig),
    /// A printer behind OctoPrint.
    Octoprint(OctoPrintConfig),
    /// A Klipper printer behind Moonraker.
    Moonraker(MoonrakerConfig),
    /// A Marlin printer on a USB serial port, with no print server in between.
    Marlin(MarlinConfig),
    /// A Bambu Lab printer in LAN mode (developer mode on, to take jobs).
    Bambu(BambuConfig),
    /// A Prusa printer through PrusaLink (its own firmware's API, or PrusaLink on a Raspberry Pi).
    Prusalink(PrusaLinkConfig),
}

/// Settings of an OctoPrint printer (`kind = "octoprint"`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OctoPrintConfig {
    /// Base URL of OctoPrint, e.g. `http://octopi.local`, or `https://octopi.local` (see
    /// `ca_file` and `fingerprint`).
    pub url: String,
    /// An application or user API key (OctoPrint settings -> Application Keys).
    pub api_key: String,
    /// Printer model to report (OctoPrint does not know it).
    #[serde(default)]
    pub model: Option<String>,
    /// Serial port OctoPrint should connect to when it is not connected to the printer; unset lets
    /// OctoPrint choose (`AUTO`). `VIRTUAL` is OctoPrint's virtual printer.
    #[serde(default)]
    pub port: Option<String>,
    /// Baud rate for that connection; unset lets OctoPrint choose.
    #[serde(default)]
    pub baudrate: Option<u32>,
    /// For an `https://` url: the PEM file of the certificate authority that issued the host's
    /// certificate (instead of the system's); its name must match the url's host.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// For an `https://` url: the SHA-256 of exactly the certificate the host presents
    /// (`sha256:...`, as the agent's error shows it), e.g. OctoPi's self-signed one.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Per-request timeout in seconds (uploads get longer, in proportion to their size).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl std::fmt::Debug for OctoPrintConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OctoPrintConfig")
            .field("url", &self.url)
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .field("port", &self.port)
            .field("baudrate", &self.baudrate)
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// Settings of a Moonraker printer (`kind = "moonraker"`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoonrakerConfig {
    /// Base URL of Moonraker, e.g. `http://voron.local:7125`, or its `ssl_port`
    /// (`https://voron.local:7130`).
    pub url: String,
    /// API key, when the agent's address is not among Moonraker's `trusted_clients`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Printer model to report.
    #[serde(default)]
    pub model: Option<String>,
    /// For an `https://` url: the PEM file of the certificate authority that issued the host's
    /// certificate (instead of the system's); its name must match the url's host.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// For an `https://` url: the SHA-256 of exactly the certificate the host presents
    /// (`sha256:...`, as the agent's error shows it), e.g. OctoPi's self-signed one.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Per-request timeout in seconds (uploads get longer, in proportion to their size).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl std::fmt::Debug for MoonrakerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoonrakerConfig")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

fn default_timeout_secs() -> u64 {
    10
}

pub(crate) fn timeout(secs: u64) -> Duration {
    Duration::from_secs(secs.max(1))
}

/// Builds the driver a configuration describes. Talks to nothing yet: printers are contacted on the
/// first call, so an unreachable printer does not prevent the agent from starting.
pub fn build(config: &DriverConfig) -> Result<Box<dyn Driver>, DriverError> {
    Ok(match config {
        DriverConfig::Simulated(c) => Box::new(crate::simulated::SimulatedDriver::new(c.clone())),
        DriverConfig::Octoprint(c) => Box::new(crate::octoprint::OctoPrintDriver::new(c.clone())?),
        DriverConfig::Moonraker(c) => Box::new(crate::moonraker::MoonrakerDriver::new(c.clone())?),
        DriverConfig::Marlin(c) => Box::new(crate::marlin::MarlinDriver::new(c.clone())),
        DriverConfig::Bambu(c) => Box::new(crate::bambu::BambuDriver::new(c.clone())?),
        DriverConfig::Prusalink(c) => Box::new(crate::prusalink::PrusaLinkDriver::new(c.clone())?),
    })
}
