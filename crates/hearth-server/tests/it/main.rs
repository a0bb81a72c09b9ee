//! hearthd end to end: in-process servers on 127.0.0.1:0 driven through the real typed client, and the
//! real `hearthd` binary where a process boundary matters (kill -9, memory, signals, TLS).
#![allow(clippy::unwrap_used)]

mod accounts;
mod backup;
// Whether Chromium and playwright-core are here (hearth-demo's), and running a test of web/tests.
mod actions;
#[path = "../../../hearth-demo/tests/it/browser.rs"]
mod browser;
mod browser_run;
mod camera;
mod cluster;
mod deps;
mod fleet;
mod heat;
mod inventory;
mod legal;
mod library;
mod maintenance;
mod malformed;
mod mfa;
mod notify;
mod oathtool;
mod oidc_peer;
mod openapi;
mod passkeys;
mod pki;
mod process;
mod queue;
mod sso;
mod stats;
mod support;
mod syslog;
mod temperatures;
mod timelapse;
mod tune;
mod ui;
mod uploads;
