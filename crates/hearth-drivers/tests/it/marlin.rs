//! The Marlin serial driver against OctoPrint's virtual Marlin firmware on a pseudo-terminal
//! (`virtual_marlin_pty.py`, run with the OctoPrint venv that `scripts/peers.sh` installs): the
//! driver is the print host, as it is on a Raspberry Pi with a printer on USB.

use std::io::Write;
use std::time::Duration;

use hearth_drivers::marlin::MarlinDriver;
use hearth_drivers::{Driver, DriverError, JobPhase, PrintHints, PrinterState, Upload};

use crate::peers::{VirtualMarlin, eventually, sample_gcode};

/// A print file: the real PrusaSlicer cube without heating waits, after `prefix` lines.
fn print_file(prefix: &str, max_bytes: usize) -> tempfile::NamedTempFile {
    let body = std::fs::read_to_string(sample_gcode(max_bytes).path()).unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(f, "{prefix}{body}").unwrap();
    f.flush().unwrap();
    f
}

async fn idle(driver: &MarlinDriver) {
    eventually(
        "the printer idle with its temperatures",
        Duration::from_secs(30),
        || async {
            let s = driver.status().await.unwrap();
            (s.state == PrinterState::Idle && s.heaters.iter().any(|h| h.name == "bed"))
                .then_some(())
        },
    )
    .await;
}

async fn upload_and_start(driver: &MarlinDriver, file: tempfile::NamedTempFile) {
    driver
        .upload(Upload {
            name: "hearth-job.gcode",
            path: file.path(),
            hints: PrintHints {
                estimated_seconds: Some(600.0),
                layers: Some(100),
            },
        })
        .await
        .unwrap();
    // The agent deletes its plaintext as soon as the printer has the file.
    drop(file);
    driver.start("hearth-job.gcode").await.unwrap();
}

async fn phase_until(
    driver: &MarlinDriver,
    what: &str,
    phase: JobPhase,
) -> hearth_drivers::JobStatus {
    eventually(what, Duration::from_secs(60), || async {
        driver
            .current_job()
            .await
            .unwrap()
            .filter(|j| j.phase == phase)
    })
    .await
}

#[tokio::test]
async fn a_file_is_streamed_to_the_printer_to_the_end() {
    let Some(vm) = VirtualMarlin::start(&["throttle=0"]) else {
        return;
    };
    let driver = MarlinDriver::new(vm.config());
    assert_eq!(driver.describe().endpoint, vm.port);
    idle(&driver).await;
    let status = driver.status().await.unwrap();
    let tool = status.heaters.iter().find(|h| h.name == "tool0").unwrap();
    assert!(tool.actual > 10.0 && tool.actual < 40.0, "{status:?}");

    upload_and_start(&driver, print_file("", 40_000)).await;
    let done = phase_until(&driver, "the print completed", JobPhase::Completed).await;
    assert_eq!(done.file, "hearth-job.gcode");
    assert_eq!(done.progress, 1.0);
    assert!(done.layer.unwrap() >= 2, "layers counted: {done:?}");
    let status = driver.status().await.unwrap();
    assert_eq!(status.state, PrinterState::Idle);
    assert_eq!(status.job.map(|j| j.phase), Some(JobPhase::Completed));
    // A new print may start at once; an unknown file is refused.
    let err = driver.start("nothing.gcode").await.unwrap_err();
    assert!(matches!(err, DriverError::Rejected { .. }), "{err}");
    crate::peers::preheats_and_cools_down(&driver).await;
    crate::peers::runs_gcode(&driver).await;
}

#[tokio::test]
async fn pause_resume_and_cancel_reach_the_printer_and_cancel_cools_it() {
    let Some(vm) = VirtualMarlin::start(&["throttle=0.003"]) else {
        return;
    };
    let driver = MarlinDriver::new(vm.config());
    idle(&driver).await;
    // Heaters set without waiting, so the print runs at once and cancel has something to switch off.
    upload_and_start(&driver, print_file("M104 S45\nM140 S35\n", 400_000)).await;
    // 1 % of the file is ~160 lines at 3 ms each; the deadline is for a loaded CI machine, where
    // the virtual printer (Python) once needed more than 30 s to start streaming.
    let running = eventually("progress", Duration::from_secs(90), || async {
        driver
            .current_job()
            .await
            .unwrap()
            .filter(|j| j.phase == JobPhase::Printing && j.progress > 0.01)
    })
    .await;
    driver.pause().await.unwrap();
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Paused);
    let err = driver.pause().await.unwrap_err();
    assert!(matches!(err, DriverError::Rejected { .. }), "{err}");
    driver.resume().await.unwrap();
    eventually(
        "progress after resuming",
        Duration::from_secs(30),
        || async {
            let j = driver.current_job().await.unwrap()?;
            (j.phase == JobPhase::Printing && j.progress > running.progress + 0.01).then_some(())
        },
    )
    .await;
    // The file's first lines set the heaters (reported every 2 s by the firmware).
    eventually(
        "the file's targets reported",
        Duration::from_secs(30),
        || async {
            let s = driver.status().await.unwrap();
            s.heaters
                .iter()
                .any(|h| h.name == "tool0" && h.target == 45.0)
                .then_some(())
        },
    )
    .await;
    driver.cancel().await.unwrap();
    let cancelled = phase_until(&driver, "the print cancelled", JobPhase::Cancelled).await;
    assert!(cancelled.progress < 1.0);
    eventually("heaters off", Duration::from_secs(30), || async {
        let s = driver.status().await.unwrap();
        (s.state == PrinterState::Idle && s.heaters.iter().all(|h| h.target == 0.0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn lines_the_printer_asks_for_again_are_resent_and_the_print_completes() {
    // The virtual firmware asks for a resend of 10 % of the lines.
    let Some(vm) = VirtualMarlin::start(&["throttle=0", "resend_ratio=10"]) else {
        return;
    };
    let driver = MarlinDriver::new(vm.config());
    idle(&driver).await;
    upload_and_start(&driver, print_file("", 30_000)).await;
    let done = phase_until(
        &driver,
        "the print completed despite resends",
        JobPhase::Completed,
    )
    .await;
    assert_eq!(done.progress, 1.0);
}

#[tokio::test]
async fn an_unplugged_printer_is_offline_and_commands_say_so() {
    let Some(vm) = VirtualMarlin::start(&["throttle=0.003"]) else {
        return;
    };
    let driver = MarlinDriver::new(vm.config());
    idle(&driver).await;
    upload_and_start(&driver, print_file("", 400_000)).await;
    phase_until(&driver, "printing", JobPhase::Printing).await;
    drop(vm);
    eventually("offline", Duration::from_secs(30), || async {
        let s = driver.status().await.unwrap();
        (s.state == PrinterState::Offline).then_some(())
    })
    .await;
    let err = driver.current_job().await.unwrap_err();
    assert!(matches!(err, DriverError::Unreachable { .. }), "{err}");
    let err = driver.pause().await.unwrap_err();
    assert!(matches!(err, DriverError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn a_pause_the_printer_asks_for_is_shown_with_its_reason_and_resumed_by_the_agent() {
    // Halfway, the virtual firmware sends `// action:pause`, as Marlin does on a filament runout.
    let Some(vm) = VirtualMarlin::start(&["throttle=0"]) else {
        return;
    };
    let driver = MarlinDriver::new(vm.config());
    idle(&driver).await;
    let first = print_file("", 15_000);
    let rest = std::fs::read_to_string(sample_gcode(30_000).path()).unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(
        f,
        "{}!!DEBUG:action_pause\n{rest}",
        std::fs::read_to_string(first.path()).unwrap()
    )
    .unwrap();
    f.flush().unwrap();
    upload_and_start(&driver, f).await;
    let paused = eventually("paused by the printer", Duration::from_secs(60), || async {
        let s = driver.status().await.unwrap();
        (s.state == PrinterState::Paused).then_some(s)
    })
    .await;
    assert_eq!(
        paused.error.as_deref(),
        Some("the printer paused the print"),
        "{paused:?}"
    );
    let progress = paused.job.unwrap().progress;
    assert!(progress > 0.0 && progress < 1.0);
    driver.resume().await.unwrap();
    assert_eq!(driver.status().await.unwrap().error, None);
    phase_until(
        &driver,
        "the print completed after resuming",
        JobPhase::Completed,
    )
    .await;
}
