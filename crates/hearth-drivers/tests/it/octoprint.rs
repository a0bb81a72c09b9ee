//! The OctoPrint driver against the real OctoPrint with its virtual printer.

use std::time::Duration;

use hearth_drivers::{Driver, DriverConfig, JobPhase, PrintHints, PrinterState, Upload, build};

use crate::peers::{OctoPrint, eventually, free_port, sample_gcode};

fn driver(peer: &OctoPrint) -> Box<dyn Driver> {
    build(&DriverConfig::Octoprint(peer.config())).unwrap()
}

async fn upload_and_start(driver: &dyn Driver, name: &str, file: &tempfile::NamedTempFile) {
    let upload = Upload {
        name,
        path: file.path(),
        hints: PrintHints::default(),
    };
    driver.upload(upload).await.unwrap();
    driver.start(name).await.unwrap();
}

/// Waits until the job's progress passes `at_least` (0..1) while printing.
async fn progress_past(driver: &dyn Driver, at_least: f64) -> f64 {
    eventually("progress", Duration::from_secs(60), || async {
        let status = driver.status().await.unwrap();
        let job = status.job?;
        (status.state == PrinterState::Printing && job.progress > at_least).then_some(job.progress)
    })
    .await
}

#[tokio::test]
async fn a_file_prints_to_completion_with_progress_visible_while_it_runs() {
    let Some(peer) = OctoPrint::start(0.0005).await else {
        return;
    };
    let octoprint = hearth_drivers::octoprint::OctoPrintDriver::new(peer.config()).unwrap();
    let driver: &dyn Driver = &octoprint;
    let file = sample_gcode(30_000);
    upload_and_start(driver, "hearth-complete.gcode", &file).await;
    // The first sample comes over REST and opens the push socket; later ones come from it.
    eventually("push telemetry", Duration::from_secs(15), || async {
        driver.status().await.unwrap();
        octoprint.push_active().await.then_some(())
    })
    .await;

    let first = progress_past(driver, 0.0).await;
    let later = progress_past(driver, first).await;
    assert!(later > first, "progress rises: {first} -> {later}");
    eventually("temperatures", Duration::from_secs(30), || async {
        let heaters = driver.status().await.unwrap().heaters;
        heaters
            .iter()
            .any(|h| h.name == "tool0" && h.actual > 0.0)
            .then_some(())
    })
    .await;

    let done = eventually("completion", Duration::from_secs(90), || async {
        let job = driver.status().await.unwrap().job?;
        (job.phase == JobPhase::Completed).then_some(job)
    })
    .await;
    assert_eq!(done.file, "hearth-complete.gcode");
    assert_eq!(done.progress, 1.0);
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Idle);
    assert!(driver.current_job().await.unwrap().is_none());
    driver.remove("hearth-complete.gcode").await.unwrap();

    // The camera: none configured, then OctoPi's usual mjpg-streamer URL, which is on the
    // OctoPrint machine (127.0.0.1 there, its address from here).
    assert_eq!(driver.camera_snapshot_url().await.unwrap(), None);
    let set = reqwest::Client::new()
        .post(format!("{}/api/settings", peer.url))
        .header("X-Api-Key", crate::peers::OCTOPRINT_KEY)
        .json(&serde_json::json!({"plugins": {"classicwebcam": {
            "snapshot": "http://localhost:8080/?action=snapshot"}}}))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{}", set.text().await.unwrap());
    assert_eq!(
        driver.camera_snapshot_url().await.unwrap().as_deref(),
        Some("http://127.0.0.1:8080/?action=snapshot")
    );
    crate::peers::preheats_and_cools_down(driver).await;
    crate::peers::runs_gcode(driver).await;
}

#[tokio::test]
async fn pause_resume_cancel_and_reattach_after_an_agent_restart() {
    let Some(peer) = OctoPrint::start(0.001).await else {
        return;
    };
    let driver = driver(&peer);
    let file = sample_gcode(1_000_000);
    upload_and_start(driver.as_ref(), "hearth-job42.gcode", &file).await;
    progress_past(driver.as_ref(), 0.02).await;

    // A new driver instance knows nothing but what OctoPrint tells it.
    let restarted = self::driver(&peer);
    let job = restarted
        .current_job()
        .await
        .unwrap()
        .expect("a running job");
    assert_eq!(
        (job.file.as_str(), job.phase),
        ("hearth-job42.gcode", JobPhase::Printing)
    );

    // A second start while busy is refused by the printer, with its message.
    let busy = restarted.start("hearth-job42.gcode").await.unwrap_err();
    assert!(
        matches!(
            busy,
            hearth_drivers::DriverError::Rejected {
                code: Some(409),
                ..
            }
        ),
        "{busy}"
    );

    restarted.pause().await.unwrap();
    let paused = eventually("paused", Duration::from_secs(30), || async {
        let status = restarted.status().await.unwrap();
        (status.state == PrinterState::Paused).then_some(status.job?.progress)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await; // a paused print must not advance
    let still = restarted.status().await.unwrap().job.unwrap();
    assert_eq!((still.phase, still.progress), (JobPhase::Paused, paused));

    restarted.resume().await.unwrap();
    progress_past(restarted.as_ref(), paused).await;

    restarted.cancel().await.unwrap();
    eventually("idle after cancel", Duration::from_secs(30), || async {
        (restarted.status().await.unwrap().state == PrinterState::Idle).then_some(())
    })
    .await;
    assert!(restarted.current_job().await.unwrap().is_none());
    let refused = restarted.cancel().await.unwrap_err();
    assert!(
        matches!(refused, hearth_drivers::DriverError::Rejected { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn a_stopped_octoprint_is_offline_not_an_error() {
    let Some(mut peer) = OctoPrint::start(0.0).await else {
        return;
    };
    let driver = driver(&peer);
    let file = sample_gcode(10_000);
    let upload = Upload {
        name: "hearth-offline.gcode",
        path: file.path(),
        hints: PrintHints::default(),
    };
    driver.upload(upload).await.unwrap();
    driver.status().await.unwrap(); // opens the push socket too
    peer.proc.kill();

    let status = eventually("offline", Duration::from_secs(10), || async {
        let status = driver.status().await.unwrap();
        (status.state == PrinterState::Offline).then_some(status)
    })
    .await;
    assert!(status.error.is_some());
    assert!(
        driver
            .start("hearth-offline.gcode")
            .await
            .unwrap_err()
            .is_unreachable()
    );
    assert!(
        driver.current_job().await.unwrap_err().is_unreachable(),
        "re-attach must not guess"
    );
}

#[tokio::test]
async fn octoprint_without_a_printer_connection_is_offline_and_a_bad_key_is_unauthorized() {
    let Some(peer) = OctoPrint::start(0.0).await else {
        return;
    };
    let mut config = peer.config();
    config.port = Some("/dev/nonexistent-printer".into());
    let driver = build(&DriverConfig::Octoprint(config.clone())).unwrap();
    let status = driver.status().await.unwrap();
    assert_eq!(status.state, PrinterState::Offline, "{status:?}");

    config.api_key = "WRONG".into();
    let driver = build(&DriverConfig::Octoprint(config)).unwrap();
    let err = driver.status().await.unwrap_err();
    assert!(
        matches!(err, hearth_drivers::DriverError::Unauthorized { .. }),
        "a wrong key is no outage: {err}"
    );
    let err = driver.pause().await.unwrap_err();
    assert!(
        matches!(err, hearth_drivers::DriverError::Unauthorized { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_listening_is_offline() {
    let config = hearth_drivers::OctoPrintConfig {
        url: format!("http://127.0.0.1:{}", free_port()),
        api_key: "k".into(),
        model: None,
        port: None,
        baudrate: None,
        ca_file: None,
        fingerprint: None,
        timeout_secs: 2,
    };
    let driver = build(&DriverConfig::Octoprint(config)).unwrap();
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Offline);
}
