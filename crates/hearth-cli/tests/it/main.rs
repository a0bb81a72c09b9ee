//! The `hearth` binary, run as a user would.
#![allow(clippy::unwrap_used)]

mod audit;
// The drivers' simulated Bambu Lab printer, shared rather than copied.
#[path = "../../../hearth-drivers/tests/it/bambu_sim.rs"]
mod bambu_sim;
mod bridge;
// Whether Chromium, Node.js and playwright-core are here, shared with hearth-demo's tests.
#[path = "../../../hearth-demo/tests/it/browser.rs"]
mod browser;
#[path = "../../../hearth-server/tests/it/browser_run.rs"]
mod browser_run;
mod camera;
mod canary;
mod e2e;
mod mfa;
mod notify;
#[path = "../../../hearth-server/tests/it/oathtool.rs"]
mod oathtool;
mod passkeys;
mod printer_chain;
mod queue;
// The drivers' real-peer harness (OctoPrint with its virtual printer), shared rather than copied.
#[allow(dead_code)]
#[path = "../../../hearth-drivers/tests/it/fake_klippy.rs"]
mod fake_klippy;
mod inspect;
mod maintenance;
mod members;
#[allow(dead_code)]
#[path = "../../../hearth-drivers/tests/it/peers.rs"]
mod peers;
#[path = "../../../hearth-server/tests/it/pki.rs"]
mod pki;
// The real OpenID Connect provider and the test browser of hearthd's single sign-on tests.
#[allow(dead_code)]
#[path = "../../../hearth-server/tests/it/oidc_peer.rs"]
mod oidc_peer;
mod sso;
mod stats;
mod submit;
mod support;
mod tls;
mod ui;

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hearth-printfile/test_data/samples")
        .join(name)
}

pub fn hearth(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .output()
        .unwrap()
}
