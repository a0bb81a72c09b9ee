//! Integration tests of hearth-drivers: the simulator through the public API, and the OctoPrint,
//! Moonraker and Marlin serial drivers against the real peers (see `peers`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_klippy;
mod marlin;
mod moonraker;
mod octoprint;
mod peers;
mod simulated;
