#![allow(clippy::unwrap_used)]
//! Integration tests of the agent against a fake hub speaking the real protocol, driving the simulated
//! printer on a manual clock (a print takes no real time).

mod crypto;
mod hub;
mod jobs;
mod octoprint;
mod peers;
mod resilience;
mod server;
mod support;
mod tls;
