//! A simulated Bambu Lab printer for tests (`bambu_printer_sim.py`, PROTOCOLS.md §A4): its broker is
//! the system's real Mosquitto, with TLS and the access code; its implicit-FTPS server requires TLS
//! session reuse on data connections, like the printers' own. Shared with hearth-cli's whole-chain
//! test through `#[path]`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_drivers::BambuConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;
use tokio::process::Command;

use crate::peers::{LinePeer, absent, peers_dir};

pub const SERIAL: &str = "01P00A123456789";
pub const CODE: &str = "8c4f2a1d";

/// A CA shaped like Bambu's "BBL CA" (no key usage extension) and a printer certificate issued by
/// it to the serial, as CN only (no subjectAltName).
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
}

pub fn pki(cn: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "BBL CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "BBL Technologies Co., Ltd");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
    }
}

/// The JPEG the simulated A1/P1 camera sends (tests/fixtures/bambu/README.md).
pub fn camera_jpeg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hearth-drivers/tests/fixtures/bambu/camera.jpg")
}

/// One simulated printer, killed (with its Mosquitto) on drop.
pub struct Printer {
    peer: LinePeer,
    pub mqtt: u16,
    pub ftps: u16,
    /// 0 when the model has no camera server (X1C).
    pub camera: u16,
    pub dir: tempfile::TempDir,
    pub pki: Pki,
}

impl Printer {
    pub async fn start(args: &[&str]) -> Option<Self> {
        let python = peers_dir().join("bambusim/bin/python");
        if !python.exists() {
            return absent(format!(
                "paho-mqtt for the Bambu simulator ({})",
                python.display()
            ));
        }
        if !Path::new("/usr/sbin/mosquitto").exists() {
            return absent("Mosquitto (/usr/sbin/mosquitto)".into());
        }
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(SERIAL);
        std::fs::write(dir.path().join("printer.pem"), &pki.cert_pem).unwrap();
        std::fs::write(dir.path().join("printer.key"), &pki.key_pem).unwrap();
        std::fs::write(dir.path().join("bbl-ca.pem"), &pki.ca_pem).unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../hearth-drivers/tests/it/bambu_printer_sim.py"),
        )
        .args(["--serial", SERIAL, "--access-code", CODE])
        .arg("--cert")
        .arg(dir.path().join("printer.pem"))
        .arg("--key")
        .arg(dir.path().join("printer.key"))
        .arg("--state-dir")
        .arg(dir.path().join("printer"))
        .arg("--camera-jpeg")
        .arg(camera_jpeg())
        .args(args);
        let peer = LinePeer::spawn(cmd, "the Bambu simulator", Duration::from_secs(30)).await;
        Some(Self {
            mqtt: peer.port("mqtt="),
            ftps: peer.port("ftps="),
            camera: peer.port("camera="),
            peer,
            dir,
            pki,
        })
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("bbl-ca.pem")
    }

    pub fn config(&self, model: &str) -> BambuConfig {
        serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1",
            "serial": SERIAL,
            "access_code": CODE,
            "model": model,
            "ca_file": self.ca_file(),
            "mqtt_port": self.mqtt,
            "ftps_port": self.ftps,
            "camera_port": self.camera,
            "timeout_secs": 5,
        }))
        .unwrap()
    }

    pub async fn send(&mut self, line: &str) {
        self.peer.send(line).await;
    }

    /// The first event line starting with `prefix`, waiting for it.
    pub async fn event(&self, prefix: &str) -> String {
        self.peer.event(prefix).await
    }

    pub fn saw(&self, prefix: &str) -> bool {
        self.peer.saw(prefix)
    }

    /// The request body of the first `COMMAND <what>` event.
    pub async fn command(&self, what: &str) -> Value {
        self.nth_command(what, 0).await
    }

    /// The request body of the `n`th (from 0) `COMMAND <what>` event.
    pub async fn nth_command(&self, what: &str, n: usize) -> Value {
        let line = self.peer.nth_event(&format!("COMMAND {what} "), n).await;
        let json = line.splitn(3, ' ').nth(2).unwrap();
        serde_json::from_str(json).unwrap()
    }
}
