//! The whole job flow on the real OctoPrint: download, open, upload, start, telemetry, an agent killed
//! mid-print that re-attaches, completion; the job is started once.

use std::sync::Arc;

use hearth_agent::Printer;
use hearth_drivers::DriverConfig;
use hearth_proto::agent::{JobState, PrinterState};

use crate::peers::{OctoPrint, sample_gcode};
use crate::support::{Recording, Rig, eventually, printer_config};

#[tokio::test]
async fn a_job_prints_on_octoprint_and_survives_an_agent_restart() {
    let Some(peer) = OctoPrint::start(0.001).await else {
        return;
    };
    let mut rig = Rig::new().await;
    // OctoPrint takes a moment to report a job it just started.
    rig.timing.lost_after_ms = 10_000;
    let mut config = printer_config("octo");
    config.driver = DriverConfig::Octoprint(peer.config());
    let octoprint = Printer::build(config.clone()).unwrap();
    let driver = Arc::new(Recording::new(octoprint.driver));
    rig.extra_printers.push(Printer {
        config,
        driver: driver.clone(),
    });
    rig.start_agent();

    let gcode = std::fs::read(sample_gcode(25_000).path()).unwrap();
    let mut job = rig.job_with(&gcode, serde_json::json!({}));
    job.printer = "octo".into();
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    rig.hub
        .wait_long("progress on OctoPrint", |s| {
            s.last_telemetry("octo")
                .filter(|t| t.job_id == Some(id) && t.progress.is_some_and(|p| p > 0.05))
                .map(|_| ())
        })
        .await;

    rig.kill_agent().await;
    rig.start_agent();
    rig.hub
        .wait_long("re-attached", |s| {
            (s.connections >= 2
                && s.last_telemetry("octo")
                    .is_some_and(|t| t.job_id == Some(id) && t.state == PrinterState::Printing))
            .then_some(())
        })
        .await;
    rig.hub
        .wait_long("completion", |s| {
            s.states_of(id).contains(&JobState::Completed).then_some(())
        })
        .await;
    // The restarted agent answers the server's re-send with the state it finds (printing again).
    let mut states = rig.hub.with(|s| s.states_of(id));
    states.dedup();
    assert_eq!(
        states,
        vec![
            JobState::Transferring,
            JobState::Printing,
            JobState::Completed
        ]
    );
    assert_eq!(driver.count("start"), 1, "{:?}", driver.log.lock().unwrap());
    assert_eq!(driver.count("upload"), 1);
    assert!(rig.plain_files().is_empty());
    eventually("file removed from OctoPrint", || {
        (driver.count("remove hearth-") == 1).then_some(())
    })
    .await;
    rig.stop_agent().await;
}
