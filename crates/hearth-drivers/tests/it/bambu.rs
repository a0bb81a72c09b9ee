//! The Bambu Lab LAN driver against `bambu_printer_sim.py`: a printer following PROTOCOLS.md §A4,
//! whose MQTT broker is the system's real Mosquitto (TLS, user `bblp`, the access code) and whose
//! implicit-FTPS server requires TLS session reuse on data connections, like the printers' own.
//! No Bambu printer runs here, so this simulator is the peer; the TLS, MQTT and FTP stacks on both
//! sides are real.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_drivers::bambu::BambuDriver;
use hearth_drivers::{
    BambuConfig, Driver, DriverError, JobPhase, PrintHints, PrinterState, Upload,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Notify;

use crate::peers::{absent, eventually, peers_dir};

const SERIAL: &str = "01P00A123456789";
const CODE: &str = "8c4f2a1d";

/// A CA shaped like Bambu's "BBL CA" (no key usage extension) and a printer certificate issued by
/// it to the serial, as CN only (no subjectAltName).
struct Pki {
    ca_pem: String,
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
}

fn pki(cn: &str) -> Pki {
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

/// One simulated printer, killed (with its Mosquitto) on drop.
struct Printer {
    child: Child,
    stdin: ChildStdin,
    mqtt: u16,
    ftps: u16,
    events: Arc<(Mutex<Vec<String>>, Notify)>,
    dir: tempfile::TempDir,
    pki: Pki,
}

impl Printer {
    async fn start(args: &[&str]) -> Option<Self> {
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
        let mut child = Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/bambu_printer_sim.py"))
            .args(["--serial", SERIAL, "--access-code", CODE])
            .arg("--cert")
            .arg(dir.path().join("printer.pem"))
            .arg("--key")
            .arg(dir.path().join("printer.key"))
            .arg("--state-dir")
            .arg(dir.path().join("printer"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the simulator did not get ready")
            .unwrap()
            .expect("the simulator exited before it was ready");
        let port = |key: &str| -> u16 {
            ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {ready:?}"))
        };
        let (mqtt, ftps) = (port("mqtt="), port("ftps="));
        let events: Arc<(Mutex<Vec<String>>, Notify)> = Arc::default();
        let sink = events.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.0.lock().unwrap().push(line);
                sink.1.notify_waiters();
            }
        });
        Some(Self {
            child,
            stdin,
            mqtt,
            ftps,
            events,
            dir,
            pki,
        })
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("bbl-ca.pem")
    }

    fn config(&self, model: &str) -> BambuConfig {
        serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1",
            "serial": SERIAL,
            "access_code": CODE,
            "model": model,
            "ca_file": self.ca_file(),
            "mqtt_port": self.mqtt,
            "ftps_port": self.ftps,
            "timeout_secs": 5,
        }))
        .unwrap()
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The first event line starting with `prefix`, waiting for it.
    async fn event(&self, prefix: &str) -> String {
        let (lines, notify) = &*self.events;
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let notified = notify.notified();
                if let Some(l) = lines.lock().unwrap().iter().find(|l| l.starts_with(prefix)) {
                    return l.clone();
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no event {prefix:?}; saw {:?}",
                self.events.0.lock().unwrap()
            )
        })
    }

    fn saw(&self, prefix: &str) -> bool {
        self.events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(prefix))
    }

    /// The request body of the first `COMMAND <what>` event.
    async fn command(&self, what: &str) -> Value {
        let line = self.event(&format!("COMMAND {what} ")).await;
        let json = line.splitn(3, ' ').nth(2).unwrap();
        serde_json::from_str(json).unwrap()
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hearth-printfile/test_data/samples/cube20_synthetic_bambu.gcode.3mf")
}

/// The sample project, its filament changed to `material`.
fn project_in(material: &str) -> tempfile::NamedTempFile {
    use std::io::{Read, Write};
    let mut from = zip::ZipArchive::new(std::fs::File::open(project()).unwrap()).unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut to = zip::ZipWriter::new(out.reopen().unwrap());
    for i in 0..from.len() {
        let mut entry = from.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        if name == "Metadata/slice_info.config" {
            body = String::from_utf8(body)
                .unwrap()
                .replace("type=\"PLA\"", &format!("type=\"{material}\""))
                .into_bytes();
        }
        to.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        to.write_all(&body).unwrap();
    }
    to.finish().unwrap();
    out
}

/// The agent's plaintext spool file: a copy, deleted after the upload as the agent does.
fn spool_copy(of: &Path) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(of, f.path()).unwrap();
    f
}

async fn upload(driver: &BambuDriver, name: &str, file: &Path) -> Result<(), DriverError> {
    let spool = spool_copy(file);
    driver
        .upload(Upload {
            name,
            path: spool.path(),
            hints: PrintHints::default(),
        })
        .await
}

async fn idle(driver: &BambuDriver) {
    eventually("the printer idle", Duration::from_secs(20), || async {
        let s = driver.status().await.unwrap();
        (s.state == PrinterState::Idle).then_some(s)
    })
    .await;
}

async fn phase(driver: &BambuDriver, want: JobPhase) -> hearth_drivers::JobStatus {
    eventually(
        &format!("the job {want:?}"),
        Duration::from_secs(30),
        || async {
            driver
                .status()
                .await
                .unwrap()
                .job
                .filter(|j| j.phase == want)
        },
    )
    .await
}

#[tokio::test]
async fn a_plate_project_prints_to_the_end_from_the_matching_ams_tray() {
    // A P1S pushes only what changed: the driver must ask for everything and merge.
    let Some(printer) = Printer::start(&[
        "--model",
        "P1S",
        "--print-seconds",
        "3",
        "--ams",
        "PETG:FFFFFFFF,PLA:000000FF,PLA:FAFAFAFF,",
    ])
    .await
    else {
        return;
    };
    let driver = BambuDriver::new(printer.config("P1S")).unwrap();
    idle(&driver).await;
    let status = driver.status().await.unwrap();
    let names: Vec<_> = status.heaters.iter().map(|h| h.name.as_str()).collect();
    assert!(
        names.contains(&"tool0") && names.contains(&"bed"),
        "{status:?}"
    );

    upload(&driver, "hearth-job.gcode", &project())
        .await
        .unwrap();
    let uploaded = printer.event("UPLOAD ").await;
    let md5_in_file = {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(project()).unwrap()).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(
            &mut zip.by_name("Metadata/plate_1.gcode.md5").unwrap(),
            &mut s,
        )
        .unwrap();
        s.trim().to_ascii_lowercase()
    };
    assert!(
        uploaded.starts_with("UPLOAD hearth-job.gcode.3mf "),
        "{uploaded}"
    );
    assert!(
        !printer.saw("FTPS-REJECT"),
        "the data channel resumed the TLS session"
    );

    driver.start("hearth-job.gcode").await.unwrap();
    let cmd = printer.command("print.project_file").await;
    assert_eq!(cmd["param"], "Metadata/plate_1.gcode");
    assert_eq!(cmd["url"], "file:///sdcard/hearth-job.gcode.3mf");
    assert_eq!(cmd["md5"], md5_in_file.as_str());
    assert_eq!(cmd["subtask_name"], "hearth-job.gcode");
    // White PLA: the white PLA tray (3rd, slot 2), not the white PETG or the black PLA.
    assert_eq!(cmd["use_ams"], true);
    assert_eq!(cmd["ams_mapping"], serde_json::json!([2]));
    let id: u64 = cmd["task_id"].as_str().unwrap().parse().unwrap();
    assert!(id > 0 && id < 1 << 31);

    let running = eventually("progress", Duration::from_secs(20), || async {
        driver
            .current_job()
            .await
            .unwrap()
            .filter(|j| j.phase == JobPhase::Printing && j.progress > 0.0)
    })
    .await;
    assert_eq!(running.file, "hearth-job.gcode");
    assert!(running.total_layers.is_some_and(|l| l > 1), "{running:?}");
    let done = phase(&driver, JobPhase::Completed).await;
    assert_eq!(done.progress, 1.0);
    assert_eq!(driver.current_job().await.unwrap(), None);

    // The plaintext does not stay on the printer's storage.
    driver.remove("hearth-job.gcode").await.unwrap();
    assert_eq!(
        printer.event("DELETE ").await,
        "DELETE hearth-job.gcode.3mf"
    );
}

#[tokio::test]
async fn pause_resume_and_cancel_reach_the_printer() {
    let Some(printer) = Printer::start(&["--model", "X1C", "--print-seconds", "60"]).await else {
        return;
    };
    let driver = BambuDriver::new(printer.config("X1C")).unwrap();
    idle(&driver).await;
    upload(&driver, "hearth-j2.gcode", &project())
        .await
        .unwrap();
    driver.start("hearth-j2.gcode").await.unwrap();
    // Past PREPARE (heating, levelling), which the printer cannot pause.
    eventually("progress", Duration::from_secs(20), || async {
        driver
            .current_job()
            .await
            .unwrap()
            .filter(|j| j.progress > 0.0)
    })
    .await;
    driver.pause().await.unwrap();
    printer.command("print.pause").await;
    let paused = phase(&driver, JobPhase::Paused).await;
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Paused);
    // A pause from a paused printer is refused by the printer, with its reason.
    let err = driver.pause().await.unwrap_err();
    assert!(matches!(err, DriverError::Rejected { .. }), "{err}");
    driver.resume().await.unwrap();
    phase(&driver, JobPhase::Printing).await;
    driver.cancel().await.unwrap();
    printer.command("print.stop").await;
    // A stopped print reports FAILED; this driver stopped it, so it is cancelled.
    let cancelled = phase(&driver, JobPhase::Cancelled).await;
    assert_eq!(cancelled.file, paused.file);
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Idle);
}

#[tokio::test]
async fn printer_faults_show_with_their_codes_and_a_failed_print_fails() {
    let Some(mut printer) = Printer::start(&["--model", "X1C", "--print-seconds", "60"]).await
    else {
        return;
    };
    let driver = BambuDriver::new(printer.config("X1C")).unwrap();
    idle(&driver).await;
    upload(&driver, "hearth-j3.gcode", &project())
        .await
        .unwrap();
    driver.start("hearth-j3.gcode").await.unwrap();
    phase(&driver, JobPhase::Printing).await;
    // Filament runout: the printer pauses itself.
    printer.send("error 117473297").await;
    let status = eventually("the runout pause", Duration::from_secs(20), || async {
        let s = driver.status().await.unwrap();
        (s.state == PrinterState::Paused).then_some(s)
    })
    .await;
    assert!(
        status.error.as_deref().unwrap_or("").contains("0700_8011"),
        "{status:?}"
    );
    printer.send("fail").await;
    let failed = phase(&driver, JobPhase::Failed).await;
    assert_eq!(failed.file, "hearth-j3.gcode");
}

#[tokio::test]
async fn without_developer_mode_the_printer_is_shown_read_only_and_takes_no_job() {
    // An X1C says so in its `fun` field; a P1S only by refusing a command.
    for model in ["X1C", "P1S"] {
        let Some(printer) = Printer::start(&["--model", model, "--dev-mode", "off"]).await else {
            return;
        };
        let driver = BambuDriver::new(printer.config(model)).unwrap();
        let status = eventually("a report", Duration::from_secs(20), || async {
            let s = driver.status().await.unwrap();
            (s.state != PrinterState::Offline).then_some(s)
        })
        .await;
        if model == "X1C" {
            assert_eq!(status.state, PrinterState::Error, "{status:?}");
        }
        upload(&driver, "hearth-j4.gcode", &project())
            .await
            .unwrap();
        let err = driver.start("hearth-j4.gcode").await.unwrap_err();
        assert!(err.to_string().contains("Developer Mode"), "{model}: {err}");
        let status = driver.status().await.unwrap();
        assert_eq!(status.state, PrinterState::Error, "{model}: {status:?}");
        assert!(status.error.unwrap().contains("LAN Only"));
    }
}

#[tokio::test]
async fn a_material_no_spool_holds_is_refused_before_printing() {
    let Some(printer) = Printer::start(&["--model", "P1S", "--ams", "PETG:FFFFFFFF,,,"]).await
    else {
        return;
    };
    let driver = BambuDriver::new(printer.config("P1S")).unwrap();
    idle(&driver).await;
    let asa = project_in("ASA");
    upload(&driver, "hearth-j5.gcode", asa.path())
        .await
        .unwrap();
    let err = driver.start("hearth-j5.gcode").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no loaded spool holds ASA for filament 1"),
        "{msg}"
    );
    // What is loaded is listed, the external spool's PLA too.
    assert!(msg.contains("PETG #FFFFFF in AMS 1 tray 1"), "{msg}");
    assert!(msg.contains("PLA #000000 in external spool"), "{msg}");
    assert!(!printer.saw("COMMAND print.project_file"));
}

#[tokio::test]
async fn plain_gcode_is_printed_by_path_and_binary_gcode_refused() {
    let Some(printer) = Printer::start(&["--model", "A1", "--print-seconds", "2"]).await else {
        return;
    };
    let driver = BambuDriver::new(printer.config("A1")).unwrap();
    idle(&driver).await;
    let samples =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hearth-printfile/test_data/samples");
    let err = upload(
        &driver,
        "hearth-b.gcode",
        &samples.join("mini_cube_b.bgcode"),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("binary G-code"), "{err}");
    upload(
        &driver,
        "hearth-j6.gcode",
        &samples.join("cube20_prusaslicer_mk3s.gcode"),
    )
    .await
    .unwrap();
    assert!(
        printer
            .event("UPLOAD ")
            .await
            .starts_with("UPLOAD hearth-j6.gcode ")
    );
    driver.start("hearth-j6.gcode").await.unwrap();
    let cmd = printer.command("print.gcode_file").await;
    assert_eq!(cmd["param"], "/sdcard/hearth-j6.gcode");
    let done = phase(&driver, JobPhase::Completed).await;
    assert_eq!(done.file, "hearth-j6.gcode");
}

#[tokio::test]
async fn after_an_agent_restart_the_driver_finds_the_file_and_the_running_job() {
    let Some(printer) = Printer::start(&["--model", "P1S", "--print-seconds", "60"]).await else {
        return;
    };
    // Uploaded by one agent process ...
    let first = BambuDriver::new(printer.config("P1S")).unwrap();
    idle(&first).await;
    upload(&first, "hearth-j7.gcode", &project()).await.unwrap();
    drop(first);
    // ... started by the next: the project is read back from the printer for its plate,
    // checksum and filaments.
    let second = BambuDriver::new(printer.config("P1S")).unwrap();
    second.start("hearth-j7.gcode").await.unwrap();
    let cmd = printer.command("print.project_file").await;
    assert_eq!(cmd["md5"].as_str().unwrap().len(), 32);
    assert_eq!(cmd["ams_mapping"], serde_json::json!([0]));
    phase(&second, JobPhase::Printing).await;
    drop(second);
    // ... and followed by a third, from the printer's report alone.
    let third = BambuDriver::new(printer.config("P1S")).unwrap();
    let job = third.current_job().await.unwrap().unwrap();
    assert_eq!(job.file, "hearth-j7.gcode");
    assert_eq!(job.phase, JobPhase::Printing);
    let err = third.start("hearth-missing.gcode").await.unwrap_err();
    assert!(err.to_string().contains("not on the printer"), "{err}");
}

#[tokio::test]
async fn only_the_right_printer_with_the_right_access_code_is_trusted() {
    let Some(printer) = Printer::start(&["--model", "X1C"]).await else {
        return;
    };
    let offline = |driver: BambuDriver| async move {
        let s = driver.status().await.unwrap();
        assert_eq!(s.state, PrinterState::Offline, "{s:?}");
        // The reason is the connection's, once the first attempt has failed.
        eventually("the reason", Duration::from_secs(20), || async {
            let s = driver.status().await.unwrap();
            s.error
                .filter(|e| e.starts_with("cannot reach the printer"))
        })
        .await
    };
    let mut config = printer.config("X1C");
    config.access_code = "00000000".into();
    let why = offline(BambuDriver::new(config).unwrap()).await;
    assert!(why.contains("access code"), "{why}");

    // Another CA: a certificate that is not Bambu's (a machine in the printer's place).
    let other = pki(SERIAL);
    let other_ca = printer.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other.ca_pem).unwrap();
    let mut config = printer.config("X1C");
    config.ca_file = Some(other_ca);
    let why = offline(BambuDriver::new(config).unwrap()).await;
    assert!(why.contains("not trusted"), "{why}");
    let fingerprint = hearth_drivers::bambu::tls::fingerprint(&printer.pki.cert_der);
    assert!(
        why.contains(&fingerprint),
        "the presented fingerprint is shown: {why}"
    );

    // The right CA, but a certificate issued to another printer.
    let mut config = printer.config("X1C");
    config.serial = "01S00C000000001".into();
    let why = offline(BambuDriver::new(config).unwrap()).await;
    assert!(
        why.contains("not issued to serial 01S00C000000001"),
        "{why}"
    );

    // Pinned: exactly this certificate, and no other.
    let mut config = printer.config("X1C");
    config.ca_file = None;
    config.fingerprint = Some(fingerprint);
    idle(&BambuDriver::new(config.clone()).unwrap()).await;
    config.fingerprint = Some(hearth_drivers::bambu::tls::fingerprint(&other.cert_der));
    let why = offline(BambuDriver::new(config).unwrap()).await;
    assert!(why.contains("not the pinned certificate"), "{why}");
}
