//! The PrusaLink driver against the real PrusaLink 0.8.1 (authentication, storage, upload, delete:
//! its printer side cannot come up here) and against `prusalink_printer_sim.py`, a Prusa printer's
//! own PrusaLink (Buddy firmware, which cannot run here) following PROTOCOLS.md §A3, for printing.

use std::path::Path;
use std::time::Duration;

use hearth_drivers::prusalink::PrusaLinkDriver;
use hearth_drivers::{Driver, DriverError, JobPhase, PrinterState, PrusaLinkConfig};
use tokio::process::Command;

use crate::peers::{LinePeer, absent, eventually, job_in_phase, peers_dir, upload_copy};

const PASSWORD: &str = "jK3xQ9mfT2";

/// A PrusaLink process (real or simulated), killed on drop, with its event lines.
struct Link {
    peer: LinePeer,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Link {
    async fn spawn(cmd: Command, dir: tempfile::TempDir) -> Self {
        let peer = LinePeer::spawn(cmd, "PrusaLink", Duration::from_secs(90)).await;
        Self {
            port: peer.port("port="),
            peer,
            _dir: dir,
        }
    }

    /// The simulated printer; `args` are the simulator's own.
    async fn printer(args: &[&str]) -> Self {
        let mut cmd = Command::new("python3");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/prusalink_printer_sim.py"))
            .args(["--user", "maker", "--password", PASSWORD])
            .args(args);
        Self::spawn(cmd, tempfile::tempdir().unwrap()).await
    }

    /// The real PrusaLink 0.8.1, installed by `scripts/peers.sh`.
    async fn real() -> Option<Self> {
        let python = peers_dir().join("prusalink/bin/python");
        if !python.exists() {
            return absent(format!("PrusaLink 0.8.1 ({})", python.display()));
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/prusalink_peer.py"))
            .arg("--dir")
            .arg(dir.path())
            .args(["--user", "maker", "--password", PASSWORD]);
        Some(Self::spawn(cmd, dir).await)
    }

    fn config(&self) -> PrusaLinkConfig {
        serde_json::from_value(serde_json::json!({
            "url": format!("http://127.0.0.1:{}", self.port),
            "password": PASSWORD,
            "model": "MK4S",
            "timeout_secs": 10,
        }))
        .unwrap()
    }

    async fn send(&mut self, line: &str) {
        self.peer.send(line).await;
    }

    async fn event(&self, prefix: &str) -> String {
        self.peer.event(prefix).await
    }
}

fn sample(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hearth-printfile/test_data/samples")
        .join(name)
}

/// The error a driver with a wrong password gets.
async fn with_wrong_password(link: &Link) -> DriverError {
    let mut config = link.config();
    config.password = Some("wrong".into());
    PrusaLinkDriver::new(config)
        .unwrap()
        .status()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_file_prints_to_the_end_on_a_printers_own_prusalink() {
    // The printers' firmware: RFC 2069 digest with nonces that go stale after 5 s.
    for auth in ["buddy", "prusalink"] {
        let link = Link::printer(&["--auth-style", auth, "--print-seconds", "2"]).await;
        let driver = PrusaLinkDriver::new(link.config()).unwrap();
        let status = driver.status().await.unwrap();
        assert_eq!(status.state, PrinterState::Idle, "{auth}: {status:?}");
        assert!(status.heaters.iter().any(|h| h.name == "bed"));
        upload_copy(
            &driver,
            "hearth-j1.gcode",
            &sample("cube20_prusaslicer_mk3s.gcode"),
        )
        .await
        .unwrap();
        assert!(
            link.event("UPLOAD usb/hearth-j1.gcode ").await.len() > 20,
            "{auth}"
        );
        driver.start("hearth-j1.gcode").await.unwrap();
        assert_eq!(link.event("START ").await, "START usb/hearth-j1.gcode");
        let running = eventually("progress", Duration::from_secs(20), || async {
            driver
                .current_job()
                .await
                .unwrap()
                .filter(|j| j.progress > 0.0)
        })
        .await;
        assert_eq!(running.file, "hearth-j1.gcode");
        // The firmware forgets the job when it ends; the printer's state says it finished.
        let done = job_in_phase(&driver, JobPhase::Completed).await;
        assert_eq!(
            (done.file.as_str(), done.progress),
            ("hearth-j1.gcode", 1.0)
        );
        assert_eq!(driver.current_job().await.unwrap(), None);
        driver.remove("hearth-j1.gcode").await.unwrap();
        assert_eq!(link.event("DELETE ").await, "DELETE usb/hearth-j1.gcode");
    }
}

/// The agent restarts while its job ends: the firmware has forgotten the job and only its state
/// says FINISHED. Told which job it watches again, a new driver reports that one completed, so it
/// is not failed as lost.
#[tokio::test]
async fn a_job_that_ended_while_the_agent_was_away_is_reported_as_it_ended() {
    let link = Link::printer(&["--print-seconds", "2"]).await;
    let first = PrusaLinkDriver::new(link.config()).unwrap();
    upload_copy(
        &first,
        "hearth-j3.gcode",
        &sample("cube20_prusaslicer_mk3s.gcode"),
    )
    .await
    .unwrap();
    first.start("hearth-j3.gcode").await.unwrap();
    assert_eq!(link.event("START ").await, "START usb/hearth-j3.gcode");
    drop(first);
    assert_eq!(link.event("JOB FINISHED").await, "JOB FINISHED");
    let second = PrusaLinkDriver::new(link.config()).unwrap();
    let status = second.status().await.unwrap();
    assert_eq!(
        status.job, None,
        "nothing says which job finished: {status:?}"
    );
    second.watching("hearth-j3.gcode");
    let done = job_in_phase(&second, JobPhase::Completed).await;
    assert_eq!(
        (done.file.as_str(), done.progress),
        ("hearth-j3.gcode", 1.0)
    );
}

#[tokio::test]
async fn binary_gcode_is_stored_as_bgcode_and_found_again_after_a_restart() {
    let link = Link::printer(&["--print-seconds", "60"]).await;
    let first = PrusaLinkDriver::new(link.config()).unwrap();
    let err = upload_copy(
        &first,
        "hearth-p.gcode",
        &sample("cube20_synthetic_bambu.gcode.3mf"),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not 3MF"), "{err}");
    upload_copy(&first, "hearth-j2.gcode", &sample("mini_cube_b.bgcode"))
        .await
        .unwrap();
    assert!(link.event("UPLOAD usb/hearth-j2.bgcode ").await.len() > 20);
    drop(first);
    // A new agent process starts it: the driver asks the printer which name it has.
    let second = PrusaLinkDriver::new(link.config()).unwrap();
    second.start("hearth-j2.gcode").await.unwrap();
    assert_eq!(link.event("START ").await, "START usb/hearth-j2.bgcode");
    let job = job_in_phase(&second, JobPhase::Printing).await;
    assert_eq!(job.file, "hearth-j2.gcode");
    let err = second.start("hearth-missing.gcode").await.unwrap_err();
    assert!(err.to_string().contains("not on the printer"), "{err}");
}

#[tokio::test]
async fn pause_attention_resume_and_stop() {
    let mut link = Link::printer(&["--print-seconds", "60"]).await;
    let driver = PrusaLinkDriver::new(link.config()).unwrap();
    upload_copy(
        &driver,
        "hearth-j3.gcode",
        &sample("cube20_prusaslicer_mk3s.gcode"),
    )
    .await
    .unwrap();
    driver.start("hearth-j3.gcode").await.unwrap();
    job_in_phase(&driver, JobPhase::Printing).await;
    driver.pause().await.unwrap();
    job_in_phase(&driver, JobPhase::Paused).await;
    let err = driver.pause().await.unwrap_err();
    assert!(
        matches!(
            err,
            DriverError::Rejected {
                code: Some(409),
                ..
            }
        ),
        "{err}"
    );
    driver.resume().await.unwrap();
    job_in_phase(&driver, JobPhase::Printing).await;
    // Filament runout: the printer asks for attention; resuming from Hearth continues.
    link.send("attention filament runout").await;
    let status = eventually("attention", Duration::from_secs(20), || async {
        let s = driver.status().await.unwrap();
        (s.state == PrinterState::Paused).then_some(s)
    })
    .await;
    assert!(status.error.unwrap().contains("attention"));
    driver.resume().await.unwrap();
    job_in_phase(&driver, JobPhase::Printing).await;
    driver.cancel().await.unwrap();
    assert_eq!(link.event("JOB STOPPED").await, "JOB STOPPED");
    let stopped = job_in_phase(&driver, JobPhase::Cancelled).await;
    assert_eq!(stopped.file, "hearth-j3.gcode");
}

#[tokio::test]
async fn wrong_credentials_are_reported_as_such() {
    let link = Link::printer(&["--auth-style", "buddy"]).await;
    let err = with_wrong_password(&link).await;
    assert!(matches!(err, DriverError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn the_real_prusalink_takes_files_with_its_digest_and_refuses_a_wrong_password() {
    let Some(link) = Link::real().await else {
        return;
    };
    let driver = PrusaLinkDriver::new(link.config()).unwrap();
    // Its printer side is down here: reported as PrusaLink says, once it has given up on the
    // serial port (until then it says BUSY, which the driver shows as busy with a message).
    let status = eventually("PrusaLink's error", Duration::from_secs(30), || async {
        let s = driver.status().await.unwrap();
        (s.state == PrinterState::Error).then_some(s)
    })
    .await;
    assert!(status.error.is_some());
    // MD5-sess digest, its storage (`/local`), an upload it accepts, a delete.
    upload_copy(
        &driver,
        "hearth-j4.gcode",
        &sample("cube20_prusaslicer_mk3s.gcode"),
    )
    .await
    .unwrap();
    let err = driver.start("hearth-j4.gcode").await.unwrap_err();
    assert!(
        matches!(
            err,
            DriverError::Rejected {
                code: Some(409),
                ..
            }
        ),
        "no printer to print on: {err}"
    );
    driver.remove("hearth-j4.gcode").await.unwrap();
    let err = with_wrong_password(&link).await;
    assert!(matches!(err, DriverError::Unauthorized { .. }), "{err}");
}
