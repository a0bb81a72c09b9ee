//! Integration tests of hearth-drivers: the simulator through the public API, and the OctoPrint,
//! Moonraker and Marlin serial drivers against the real peers (see `peers`), and the Bambu Lab LAN
//! driver against a simulated printer on the real Mosquitto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bambu;
mod bambu_sim;
mod fake_klippy;
mod marlin;
mod moonraker;
mod octoprint;
mod peers;
mod prusalink;
mod simulated;
