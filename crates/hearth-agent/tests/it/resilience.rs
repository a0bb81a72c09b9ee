//! The server, the agent or the printer goes away mid-print.

use std::sync::Arc;

use hearth_agent::KeyFileIdentity;
use hearth_drivers::{Driver, Fault};
use hearth_proto::agent::{JobState, PrinterState, ServerMsg};

use crate::support::{PRINTER, Rig, eventually};

#[tokio::test]
async fn the_print_continues_while_the_server_is_away_and_its_end_is_reported_after_reconnection() {
    let mut rig = Rig::new().await;
    rig.start_agent();
    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;

    rig.hub.set_down(true);
    rig.hub
        .wait("disconnect", |s| (s.open == 0).then_some(()))
        .await;
    rig.advance(39 + 40);
    rig.driver.pause().await.unwrap();
    // The agent keeps following the printer while the server is away.
    eventually("paused in the journal", || {
        (rig.journal_state(id).as_deref() == Some("paused")).then_some(())
    })
    .await;
    rig.driver.resume().await.unwrap();
    eventually("printing again in the journal", || {
        (rig.journal_state(id).as_deref() == Some("printing")).then_some(())
    })
    .await;
    rig.advance(100);
    eventually("completion in the journal", || {
        (rig.journal_state(id).as_deref() == Some("completed")).then_some(())
    })
    .await;
    let telemetry_before = rig.hub.with(|s| s.telemetry.len());

    rig.hub.set_down(false);
    rig.hub.wait_state(id, JobState::Completed).await;
    assert_eq!(
        rig.hub.with(|s| s.states_of(id)),
        vec![
            JobState::Transferring,
            JobState::Printing,
            JobState::Paused,
            JobState::Printing,
            JobState::Completed
        ],
        "every transition delivered, in order, after reconnection"
    );
    let t = rig
        .hub
        .wait("telemetry after reconnection", |s| {
            s.telemetry[telemetry_before..]
                .iter()
                .rev()
                .find(|t| t.0 == PRINTER)
                .map(|t| t.1.clone())
        })
        .await;
    assert_eq!(t.state, PrinterState::Idle);
    assert!(rig.hub.with(|s| s.connections) >= 2);
    assert_eq!(rig.driver.count("start"), 1);
    rig.stop_agent().await;
}

#[tokio::test]
async fn an_agent_killed_mid_print_reattaches_and_never_starts_the_job_twice() {
    let mut rig = Rig::new().await;
    // The printer feeds the job's two filaments from these slots.
    *rig.driver.feeding.lock().unwrap() = vec!["A2".into(), "Ext".into()];
    rig.start_agent();
    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    rig.advance(39 + 30);
    rig.kill_agent().await;
    rig.forget_telemetry().await;

    rig.start_agent();
    // The server re-sends the unfinished job; the agent knows it and finds it on the printer.
    rig.hub
        .wait("re-attached telemetry", |s| {
            (s.connections >= 2
                && s.last_telemetry(PRINTER)
                    .is_some_and(|t| t.job_id == Some(id) && t.progress.is_some_and(|p| p >= 0.3)))
            .then_some(())
        })
        .await;
    rig.advance(80);
    rig.hub.wait_state(id, JobState::Completed).await;
    // The driver was told which job it watches again (PrusaLink needs it when the job ends
    // before the printer is asked).
    assert_eq!(rig.driver.count(&format!("watching hearth-{id}.gcode")), 1);
    assert_eq!(
        rig.driver.count("start"),
        1,
        "{:?}",
        rig.driver.log.lock().unwrap()
    );
    assert_eq!(rig.driver.count("upload"), 1);
    assert_eq!(rig.hub.with(|s| s.ranges.len()), 1, "not downloaded again");
    assert!(rig.plain_files().is_empty());
    // The slots that fed it, kept in the journal across the restart, come with its end (and only
    // with its end), so the server takes each filament from its slot's spool.
    let (updates, slots) = rig.hub.with(|s| (s.updates.clone(), s.slots.clone()));
    let with_slots: Vec<JobState> = updates
        .iter()
        .zip(&slots)
        .filter(|(_, s)| !s.is_empty())
        .map(|(u, _)| u.1)
        .collect();
    assert_eq!(with_slots, [JobState::Completed], "{updates:?} {slots:?}");
    assert_eq!(slots.last().unwrap(), &["A2", "Ext"]);
    rig.stop_agent().await;
}

#[tokio::test]
async fn without_its_journal_the_agent_still_finds_its_job_on_the_printer_by_file_name() {
    let mut rig = Rig::new().await;
    rig.start_agent();
    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    rig.kill_agent().await;
    rig.forget_telemetry().await;
    std::fs::remove_file(rig.state_dir().join("jobs.json")).unwrap();

    rig.start_agent();
    // Advance the printer's clock only once the new agent has found the job on it: finished
    // first, the print would leave nothing to find and the job would (rightly) start again.
    rig.hub
        .wait("re-attached telemetry", |s| {
            (s.connections >= 2
                && s.last_telemetry(PRINTER)
                    .is_some_and(|t| t.job_id == Some(id)))
            .then_some(())
        })
        .await;
    rig.advance(200);
    rig.hub.wait_state(id, JobState::Completed).await;
    assert_eq!(
        rig.driver.count("start"),
        1,
        "{:?}",
        rig.driver.log.lock().unwrap()
    );
    rig.stop_agent().await;
}

#[tokio::test]
async fn an_unreachable_printer_is_offline_and_its_job_is_neither_lost_nor_duplicated() {
    let mut rig = Rig::new().await;
    rig.driver.inject_fault(Fault::Disconnect).await.unwrap();
    rig.start_agent();
    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    let t = rig
        .hub
        .wait("offline", |s| s.last_telemetry(PRINTER).cloned())
        .await;
    assert_eq!(t.state, PrinterState::Offline);
    assert!(t.error.is_some());

    rig.driver.clear_faults().await.unwrap();
    rig.hub.wait_state(id, JobState::Printing).await;

    // Away mid-print: shown offline, the job stays printing, then completes once it is back.
    rig.driver.inject_fault(Fault::Disconnect).await.unwrap();
    rig.hub
        .wait("offline mid-print", |s| {
            s.last_telemetry(PRINTER)
                .filter(|t| t.state == PrinterState::Offline)
                .map(|_| ())
        })
        .await;
    rig.advance(200);
    rig.driver.clear_faults().await.unwrap();
    rig.hub.wait_state(id, JobState::Completed).await;
    assert_eq!(
        rig.hub.with(|s| s.states_of(id)),
        vec![
            JobState::Transferring,
            JobState::Printing,
            JobState::Completed
        ]
    );
    assert_eq!(rig.driver.count("start"), 1);
    rig.stop_agent().await;
}

#[tokio::test]
async fn an_agent_with_the_wrong_key_is_not_admitted_and_keeps_trying() {
    let mut rig = Rig::new().await;
    let agent_id = hearth_agent::AgentIdentity::agent_id(rig.identity.as_ref());
    rig.identity = Arc::new(KeyFileIdentity::generate(agent_id));
    rig.start_agent();
    rig.hub
        .wait("two refused attempts", |s| (s.bad_auth >= 2).then_some(()))
        .await;
    assert_eq!(rig.hub.with(|s| s.connections), 0);
    rig.stop_agent().await;
}

#[tokio::test]
async fn a_silent_connection_is_noticed_by_heartbeats_and_replaced() {
    let mut rig = Rig::new().await;
    rig.timing.heartbeat_ms = 50;
    rig.timing.dead_after_ms = 300;
    rig.start_agent();
    rig.hub
        .wait("first connection", |s| (s.connections >= 1).then_some(()))
        .await;
    rig.hub.mute_current();
    let job = rig.job(10.0, 2);
    let id = job.job_id;
    // Assigned while the old connection is silent: it reaches the agent when the server re-sends it on
    // the new connection.
    rig.hub.with(|s| {
        s.jobs.insert(id, (job, JobState::Assigned));
    });
    rig.hub
        .wait("second connection", |s| (s.connections >= 2).then_some(()))
        .await;
    rig.hub.wait_state(id, JobState::Printing).await;
    rig.stop_agent().await;
}

#[tokio::test]
async fn a_start_request_lost_on_the_way_fails_the_job_rather_than_risk_printing_it_twice() {
    let mut rig = Rig::new().await;
    *rig.driver.lose_next_start.lock().unwrap() = Some(false);
    rig.start_agent();
    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Failed).await;
    let msg = rig
        .hub
        .with(|s| s.updates.last().unwrap().2.clone())
        .unwrap();
    assert!(msg.contains("not started again"), "{msg}");
    assert_eq!(rig.driver.count("start"), 1);
    assert_eq!(
        rig.hub.with(|s| s.states_of(id)),
        vec![JobState::Transferring, JobState::Failed]
    );
    rig.stop_agent().await;
}

#[tokio::test]
async fn a_start_whose_answer_was_lost_is_found_running_on_the_printer() {
    let mut rig = Rig::new().await;
    *rig.driver.lose_next_start.lock().unwrap() = Some(true);
    rig.start_agent();
    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    rig.advance(200);
    rig.hub.wait_state(id, JobState::Completed).await;
    assert_eq!(
        rig.hub.with(|s| s.states_of(id)),
        vec![
            JobState::Transferring,
            JobState::Printing,
            JobState::Completed
        ]
    );
    assert_eq!(rig.driver.count("start"), 1);
    rig.stop_agent().await;
}

#[tokio::test]
async fn an_enrolled_agent_connects_with_the_key_it_created() {
    let mut rig = Rig::new().await;
    let http = reqwest::Client::new();
    let refused =
        hearth_agent::enroll::enroll(&http, &rig.hub.url(), "hae_wrong", "pi", &rig.state_dir())
            .await
            .unwrap_err();
    assert!(
        matches!(
            refused,
            hearth_agent::enroll::EnrollError::Refused { status: 401, .. }
        ),
        "{refused}"
    );
    let enrolled = hearth_agent::enroll::enroll(
        &http,
        &rig.hub.url(),
        crate::hub::ENROLL_TOKEN,
        "pi",
        &rig.state_dir(),
    )
    .await
    .unwrap();
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(rig.state_dir().join("agent.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    let identity = KeyFileIdentity::load(&rig.state_dir()).unwrap();
    assert_eq!(identity.public_key_base64(), enrolled.signing_key);
    rig.identity = Arc::new(identity);
    rig.start_agent();
    rig.hub
        .wait("authenticated", |s| (s.connections >= 1).then_some(()))
        .await;
    rig.stop_agent().await;
}

/// The answer to a member's request that ends while the server is away is not lost: the agent
/// sends it once the server is back.
#[tokio::test]
async fn an_answer_that_ends_while_the_server_is_away_is_sent_when_it_is_back() {
    use hearth_agent::config::{ActionConfig, GcodeLines};
    let mut rig = Rig::new().await;
    rig.actions = vec![ActionConfig {
        id: "dwell".into(),
        label: None,
        gcode: GcodeLines::One("G4 P400".into()),
        while_printing: false,
        admins_only: false,
        confirm: None,
    }];
    rig.start_agent();
    rig.idle().await;
    rig.hub.send(ServerMsg::Action {
        printer: PRINTER.into(),
        action: "dwell".into(),
        request: Some("r-away".into()),
    });
    eventually("the dwell begun", || {
        (rig.driver.count("dwelling G4 P400") == 1).then_some(())
    })
    .await;
    rig.hub.set_down(true);
    // The agent knows the server is away once it tries to connect again.
    rig.hub
        .wait("a connection tried again", |s| {
            (s.open == 0 && s.refused > 0).then_some(())
        })
        .await;
    rig.driver.dwell.add_permits(1);
    eventually("the dwell done", || {
        (rig.driver.count("gcode G4 P400 true") == 1).then_some(())
    })
    .await;
    assert!(rig.hub.with(|s| s.outcomes.is_empty()));
    rig.hub.set_down(false);
    let answer = rig
        .hub
        .wait("the answer after reconnection", |s| {
            s.outcomes.first().cloned()
        })
        .await;
    assert_eq!(answer, ("r-away".into(), true, None));
    rig.stop_agent().await;
}
