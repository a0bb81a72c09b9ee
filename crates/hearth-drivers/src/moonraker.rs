//! Moonraker (stub while being written).
use crate::config::MoonrakerConfig;
use crate::error::DriverError;

/// A Klipper printer behind Moonraker.
#[derive(Debug)]
pub struct MoonrakerDriver;

impl MoonrakerDriver {
    /// Stub.
    pub fn new(_config: MoonrakerConfig) -> Result<Self, DriverError> {
        Err(DriverError::Config("moonraker not yet".into()))
    }
}
