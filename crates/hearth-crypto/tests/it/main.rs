#![allow(clippy::unwrap_used)]
//! Integration tests of hearth-crypto: public vectors, interop with the stock `age` tool, the
//! organisation story, tamper tests and the adversarial-server suite.

mod adversarial;
mod cctv;
mod interop_age_cli;
mod story;
mod support;
mod tamper;
