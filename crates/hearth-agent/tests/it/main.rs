#![allow(clippy::unwrap_used)]
//! Integration tests of the agent against a fake hub speaking the real protocol, driving the simulated
//! printer on a manual clock (a print takes no real time).

mod crypto;
mod hub;
mod jobs;
mod octoprint;
// The real-peer harness (OctoPrint with its virtual printer, Moonraker with a fake Klippy) is the one the
// drivers' tests use; sharing the file keeps one copy of how a peer is started and torn down.
#[allow(dead_code)]
#[path = "../../../hearth-drivers/tests/it/fake_klippy.rs"]
mod fake_klippy;
#[allow(dead_code)]
#[path = "../../../hearth-drivers/tests/it/peers.rs"]
mod peers;
mod resilience;
mod server;
mod suggest;
mod support;
mod tls;
