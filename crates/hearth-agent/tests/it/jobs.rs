//! The job flow: assignment to completion, controls, refusals, the spool.

use hearth_drivers::Driver;
use hearth_proto::agent::{JobAction, JobState, PrinterState, ServerMsg};
use hearth_proto::ids::JobId;

use crate::support::{PRINTER, Rig, eventually};

#[tokio::test]
async fn a_job_goes_from_assignment_to_completion_with_updates_in_order() {
    let mut rig = Rig::new().await;
    rig.start_agent();
    let printers = rig.announced().await;
    assert_eq!(printers[0].name, PRINTER);
    assert_eq!(printers[0].kind, "simulated");
    assert_eq!(printers[0].pools, vec!["pla".to_owned()]);
    assert!(printers[0].can_pause);

    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;

    // The printer got the plaintext from a 0600 file in the spool, which is gone now.
    let uploads = rig.driver.uploads.lock().unwrap().clone();
    assert_eq!(uploads.len(), 1);
    let (mode, bytes, path) = &uploads[0];
    assert_eq!(*mode, 0o600);
    assert!(String::from_utf8_lossy(bytes).starts_with(&format!("; job {id}")));
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        format!("hearth-{id}.gcode")
    );
    assert!(!path.exists(), "plaintext deleted once the printer has it");
    assert!(rig.plain_files().is_empty());
    assert_eq!(*rig.opener.modes.lock().unwrap(), vec![0o600]);

    // Telemetry names the job and shows the heaters.
    rig.advance(39 + 50);
    let t = rig
        .hub
        .wait("telemetry at half", |s| {
            s.last_telemetry(PRINTER)
                .filter(|t| t.progress.is_some_and(|p| p >= 0.5))
                .cloned()
        })
        .await;
    assert_eq!(t.state, PrinterState::Printing);
    assert_eq!(t.job_id, Some(id));
    assert_eq!(t.layer, Some(6));
    assert!(
        t.heaters
            .iter()
            .any(|h| h.name == "tool0" && h.actual > 200.0)
    );

    rig.advance(60);
    rig.hub.wait_state(id, JobState::Completed).await;
    assert_eq!(
        rig.hub.with(|s| s.states_of(id)),
        vec![
            JobState::Transferring,
            JobState::Printing,
            JobState::Completed
        ]
    );
    eventually("file removed from the printer", || {
        (rig.driver.count("remove") == 1).then_some(())
    })
    .await;
    assert_eq!(rig.driver.count("start"), 1);
    let idle = rig.idle().await;
    assert_eq!(idle.job_id, None);
    rig.stop_agent().await;
}

#[tokio::test]
async fn pause_resume_and_cancel_from_the_server_reach_the_printer() {
    let mut rig = Rig::new().await;
    rig.start_agent();
    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    rig.advance(50);

    let control = |action| ServerMsg::Control { job_id: id, action };
    assert!(rig.hub.send(control(JobAction::Pause)));
    rig.hub.wait_state(id, JobState::Paused).await;
    assert_eq!(rig.driver.count("pause true"), 1);

    assert!(rig.hub.send(control(JobAction::Resume)));
    rig.hub
        .wait("printing again", |s| {
            (s.states_of(id)
                == [
                    JobState::Transferring,
                    JobState::Printing,
                    JobState::Paused,
                    JobState::Printing,
                ])
            .then_some(())
        })
        .await;
    assert_eq!(rig.driver.count("resume true"), 1);

    assert!(rig.hub.send(control(JobAction::Cancel)));
    rig.hub.wait_state(id, JobState::Cancelled).await;
    assert_eq!(rig.driver.count("cancel true"), 1);
    assert_eq!(
        rig.hub.with(|s| s.states_of(id)).last(),
        Some(&JobState::Cancelled)
    );
    // The final report says how far the print got (the server takes that share of its
    // filament from the spool); the others say nothing of it.
    // It is the furthest the printer reported for the job in its telemetry.
    let progress = rig.hub.with(|s| s.progress.clone());
    let (last, before) = progress.split_last().unwrap();
    assert!(before.iter().all(Option::is_none), "{progress:?}");
    let reported = rig.hub.with(|s| {
        s.telemetry
            .iter()
            .filter(|(_, t)| t.job_id == Some(id))
            .filter_map(|(_, t)| t.progress)
            .fold(0.0f32, f32::max)
    });
    assert!(reported > 0.0, "the print had started");
    let last = last.expect("the cancelled report says how far it got");
    assert!((last - reported).abs() < 0.02, "{last} vs {reported}");

    // The printer is free for the next job.
    let next = rig.job(10.0, 2);
    let next_id = next.job_id;
    rig.hub.assign(next);
    rig.hub.wait_state(next_id, JobState::Printing).await;
    rig.stop_agent().await;
}

#[tokio::test]
async fn a_job_cancelled_before_it_reaches_the_printer_is_never_uploaded() {
    let mut rig = Rig::new().await;
    // The printer is away, so the job waits on the agent.
    rig.driver
        .inject_fault(hearth_drivers::Fault::Disconnect)
        .await
        .unwrap();
    rig.start_agent();
    rig.hub
        .wait("offline telemetry", |s| {
            s.last_telemetry(PRINTER)
                .filter(|t| t.state == PrinterState::Offline)
                .map(|_| ())
        })
        .await;
    let job = rig.job(10.0, 2);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.send(ServerMsg::Control {
        job_id: id,
        action: JobAction::Cancel,
    });
    rig.hub.wait_state(id, JobState::Cancelled).await;
    rig.driver.clear_faults().await.unwrap();
    rig.idle().await;
    assert_eq!(rig.driver.count("upload"), 0);
    assert_eq!(rig.driver.count("start"), 0);
    rig.stop_agent().await;
}

#[tokio::test]
async fn replayed_and_unverifiable_jobs_are_refused_and_reported() {
    let mut rig = Rig::new().await;
    rig.start_agent();
    let job = rig.job(10.0, 2);
    let id = job.job_id;
    rig.hub.assign(job.clone());
    rig.hub.wait_state(id, JobState::Printing).await;
    rig.advance(60);
    rig.hub.wait_state(id, JobState::Completed).await;

    // The same job again (a server re-send) is recognised: not printed again, and (on this connection,
    // which already carried its final state) not re-reported. The same id with other contents is a
    // replay; it is processed after the re-send, so its refusal also tells the re-send was handled.
    rig.hub.send(ServerMsg::Job { job: job.clone() });
    let mut replay = rig.job(10.0, 2);
    replay.job_id = id;
    replay.manifest["job_id"] = id.to_string().into();
    rig.hub.send(ServerMsg::Job { job: replay });
    rig.hub.wait_state(id, JobState::Refused).await;
    assert_eq!(
        rig.hub.with(|s| s.states_of(id)),
        vec![
            JobState::Transferring,
            JobState::Printing,
            JobState::Completed,
            JobState::Refused
        ]
    );
    let msg = rig
        .hub
        .with(|s| s.updates.last().unwrap().2.clone())
        .unwrap();
    assert!(msg.starts_with("replayed"), "{msg}");

    // The opener's refusals are final and reported with their reason.
    let mut expired = rig.job(10.0, 2);
    expired.manifest["refuse"] = "expired".into();
    let expired_id = expired.job_id;
    rig.hub.assign(expired);
    rig.hub.wait_state(expired_id, JobState::Refused).await;
    let msg = rig
        .hub
        .with(|s| {
            s.updates
                .iter()
                .rev()
                .find(|u| u.0 == expired_id)
                .unwrap()
                .2
                .clone()
        })
        .unwrap();
    assert!(msg.starts_with("expired"), "{msg}");

    // A manifest for another job id is refused too.
    let mut other = rig.job(10.0, 2);
    other.manifest["job_id"] = JobId::new().to_string().into();
    let other_id = other.job_id;
    rig.hub.assign(other);
    rig.hub.wait_state(other_id, JobState::Refused).await;

    assert_eq!(
        rig.driver.count("start"),
        1,
        "only the first job ever started"
    );
    assert!(rig.plain_files().is_empty());

    // Still refused after a restart: the seen ids are on disk.
    rig.stop_agent().await;
    rig.start_agent();
    let mut replay = rig.job(10.0, 2);
    replay.job_id = id;
    rig.hub
        .send_when_connected(ServerMsg::Job { job: replay }, 2)
        .await;
    rig.hub
        .wait("second refusal", |s| {
            (s.states_of(id)
                .iter()
                .filter(|st| **st == JobState::Refused)
                .count()
                == 2)
                .then_some(())
        })
        .await;
    assert_eq!(rig.driver.count("start"), 1);
    rig.stop_agent().await;
}

#[tokio::test]
async fn a_finished_jobs_file_is_deleted_from_the_printer_through_failures_and_restarts() {
    let mut rig = Rig::new().await;
    // The printer refuses deletions for now (unreachable).
    *rig.driver.fail_removals.lock().unwrap() = u32::MAX;
    rig.start_agent();
    let job = rig.job(10.0, 1);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    // Heating up, then the print.
    rig.advance(200);
    rig.hub.wait_state(id, JobState::Completed).await;
    eventually("the deletion tried again", || {
        (rig.driver.count("remove") >= 2).then_some(())
    })
    .await;
    // Stopped before it could delete: the journal remembers the deletion is owed.
    rig.stop_agent().await;
    let record = rig.journal_record(id).unwrap();
    assert_eq!(record["remove_pending"], true, "{record}");

    *rig.driver.fail_removals.lock().unwrap() = 0;
    rig.start_agent();
    let name = format!("remove hearth-{id}.gcode true");
    eventually("the file deleted after the restart", || {
        (rig.driver.count(&name) == 1).then_some(())
    })
    .await;
    eventually("the deletion recorded", || {
        (rig.journal_record(id)?["remove_pending"] == false).then_some(())
    })
    .await;
    // Once done, never again, also not after another restart.
    rig.stop_agent().await;
    rig.forget_telemetry().await;
    rig.start_agent();
    rig.hub
        .wait("the printer seen again", |s| {
            s.last_telemetry(PRINTER).cloned()
        })
        .await;
    rig.stop_agent().await;
    assert_eq!(
        rig.driver.count("remove"),
        rig.driver.count("remove hearth")
    );
    assert_eq!(rig.driver.count(&name), 1);
}

#[tokio::test]
async fn leftovers_in_the_spool_are_removed_at_startup() {
    let mut rig = Rig::new().await;
    let plain = rig.state_dir().join("spool/plain");
    let sealed = rig.state_dir().join("spool/sealed");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::create_dir_all(&sealed).unwrap();
    let leftover = plain.join(format!("hearth-{}.gcode", JobId::new()));
    std::fs::write(&leftover, b"G28 secret design").unwrap();
    let stale = sealed.join(format!("{}.part", JobId::new()));
    std::fs::write(&stale, b"ciphertext").unwrap();
    rig.start_agent();
    rig.hub
        .wait("connection", |s| (s.connections >= 1).then_some(()))
        .await;
    assert!(!leftover.exists(), "plaintext leftover removed");
    assert!(!stale.exists(), "sealed file of no known job removed");
    rig.stop_agent().await;
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_range() {
    let mut rig = Rig::new().await;
    rig.hub.with(|s| s.cut_next_blob = Some(100));
    rig.start_agent();
    let job = rig.job(10.0, 2);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    let ranges = rig.hub.with(|s| s.ranges.clone());
    assert_eq!(ranges, vec![None, Some("bytes=100-".to_owned())]);
    rig.stop_agent().await;
}

#[tokio::test]
async fn one_agent_drives_several_printers_at_once() {
    let mut rig = Rig::new().await;
    let second = rig.add_printer("sim-2");
    rig.start_agent();
    let names = rig
        .hub
        .wait("printers", |s| {
            (s.printers.len() == 2).then(|| {
                s.printers
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>()
            })
        })
        .await;
    assert_eq!(names, vec![PRINTER.to_owned(), "sim-2".to_owned()]);

    let a = rig.job(100.0, 10);
    let mut b = rig.job(100.0, 10);
    b.printer = "sim-2".into();
    let mut nowhere = rig.job(10.0, 1);
    nowhere.printer = "sim-9".into();
    let (a_id, b_id, nowhere_id) = (a.job_id, b.job_id, nowhere.job_id);
    rig.hub.assign(a);
    rig.hub.assign(b);
    rig.hub.assign(nowhere);
    rig.hub.wait_state(a_id, JobState::Printing).await;
    rig.hub.wait_state(b_id, JobState::Printing).await;
    rig.hub.wait_state(nowhere_id, JobState::Failed).await;
    rig.hub
        .wait("telemetry of both", |s| {
            (s.last_telemetry(PRINTER)
                .is_some_and(|t| t.job_id == Some(a_id))
                && s.last_telemetry("sim-2")
                    .is_some_and(|t| t.job_id == Some(b_id)))
            .then_some(())
        })
        .await;
    rig.advance(200);
    rig.hub.wait_state(a_id, JobState::Completed).await;
    rig.hub.wait_state(b_id, JobState::Completed).await;
    assert_eq!((rig.driver.count("start"), second.count("start")), (1, 1));
    rig.stop_agent().await;
}

/// The agent announces its printer as heatable up to its configuration's limits and sets the
/// targets a member asks for, but not above those limits nor while a job runs, whatever the
/// server sends (it is not trusted with heaters).
#[tokio::test]
async fn heater_targets_are_set_within_the_agents_limits_and_never_during_a_job() {
    let mut rig = Rig::new().await;
    rig.start_agent();
    let printers = rig.announced().await;
    assert_eq!(
        printers[0].heat,
        Some(hearth_proto::agent::HeatLimits {
            max_nozzle_c: 285.0,
            max_bed_c: 110.0
        })
    );
    rig.idle().await;
    let heat = |nozzle_c, bed_c, request: &str| ServerMsg::Heat {
        printer: PRINTER.into(),
        nozzle_c,
        bed_c,
        request: Some(request.into()),
    };
    let heats = || rig.driver.entries("heat ");
    // Messages are handled in order: the first three are refused, the fourth is set; each is
    // answered.
    rig.hub.send(heat(Some(300.0), None, "r1"));
    rig.hub.send(heat(None, Some(-5.0), "r2"));
    rig.hub.send(heat(None, None, "r3"));
    rig.hub.send(heat(Some(200.0), Some(60.0), "r4"));
    eventually("the targets set", || (!heats().is_empty()).then_some(())).await;
    assert_eq!(heats(), ["heat Some(200.0) Some(60.0) true"]);
    let answers = rig
        .hub
        .wait("four answers", |s| {
            (s.outcomes.len() == 4).then(|| s.outcomes.clone())
        })
        .await;
    let refused = |why: &str| Some(format!("refused by its agent: {why}"));
    assert_eq!(
        answers,
        [
            (
                "r1".into(),
                false,
                refused("above its limits (285 °C nozzle, 110 °C bed)")
            ),
            (
                "r2".into(),
                false,
                refused("above its limits (285 °C nozzle, 110 °C bed)")
            ),
            ("r3".into(), false, refused("no target given")),
            ("r4".into(), true, None),
        ]
    );

    // During a job: refused; after it, set again.
    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    rig.hub.send(heat(Some(0.0), Some(0.0), "r5"));
    rig.hub
        .wait("refused while printing", |s| {
            (s.outcomes.get(4)? == &("r5".into(), false, refused("it is not idle"))).then_some(())
        })
        .await;
    rig.advance(200);
    rig.hub.wait_state(id, JobState::Completed).await;
    rig.idle().await;
    rig.hub.send(heat(None, Some(0.0), "r6"));
    eventually("the bed off", || (heats().len() == 2).then_some(())).await;
    assert_eq!(heats()[1], "heat None Some(0.0) true");
    rig.stop_agent().await;
}

/// The agent announces its printer as tunable within its configuration's limits and sends a
/// member's speed, flow and fan as M220, M221 and M106/M107, but only while a job prints and
/// within those limits, whatever the server sends; the printer's telemetry then shows them.
#[tokio::test]
async fn a_print_is_tuned_within_the_agents_limits_and_only_while_it_prints() {
    use hearth_proto::agent::{Tune, TuneLimits};
    let mut rig = Rig::new().await;
    rig.tune.max_speed_percent = 150;
    rig.start_agent();
    assert_eq!(
        rig.announced().await[0].tune,
        Some(TuneLimits {
            min_speed_percent: 25,
            max_speed_percent: 150,
            min_flow_percent: 75,
            max_flow_percent: 125,
        })
    );
    rig.idle().await;
    let tune = |speed_percent, flow_percent, fan_percent, request: &str| ServerMsg::Tune {
        printer: PRINTER.into(),
        tune: Tune {
            speed_percent,
            flow_percent,
            fan_percent,
        },
        request: Some(request.into()),
    };
    let gcode = || rig.driver.entries("gcode ");
    let refused = |why: &str| Some(format!("refused by its agent: {why}"));
    rig.hub.send(tune(Some(120), None, None, "idle"));
    rig.hub
        .wait("refused while idle", |s| {
            (s.outcomes.first()? == &("idle".into(), false, refused("it is not printing")))
                .then_some(())
        })
        .await;

    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    // Handled in order: the first three are refused, the last two sent.
    rig.hub.send(tune(Some(151), None, None, "too-fast"));
    rig.hub.send(tune(None, Some(70), None, "too-thin"));
    rig.hub.send(tune(None, None, None, "nothing"));
    rig.hub.send(tune(Some(120), Some(95), Some(80), "r1"));
    rig.hub.send(tune(None, None, Some(0), "r2"));
    let answers = rig
        .hub
        .wait("six answers", |s| {
            (s.outcomes.len() == 6).then(|| s.outcomes[1..].to_vec())
        })
        .await;
    assert_eq!(
        answers,
        [
            (
                "too-fast".into(),
                false,
                refused("speed 151 % is outside 25 to 150 % (its limits)")
            ),
            (
                "too-thin".into(),
                false,
                refused("flow 70 % is outside 75 to 125 % (its limits)")
            ),
            ("nothing".into(), false, refused("nothing to tune given")),
            ("r1".into(), true, None),
            ("r2".into(), true, None),
        ]
    );
    assert_eq!(
        gcode(),
        ["gcode M220 S120|M221 S95|M106 S204 true", "gcode M107 true"]
    );
    // The simulated printer reports what it was set to.
    rig.hub
        .wait("the tuned telemetry", |s| {
            let t = s.last_telemetry(PRINTER)?;
            ((t.speed_percent, t.flow_percent, t.fan_percent) == (Some(120), Some(95), Some(0)))
                .then_some(())
        })
        .await;
    rig.advance(200);
    rig.hub.wait_state(id, JobState::Completed).await;
    rig.stop_agent().await;
}

/// A preheat no job follows is switched off after `cool_after_seconds`, by the agent alone: a
/// printer preheated from afar and forgotten does not stay hot.
#[tokio::test]
async fn a_preheat_no_job_follows_is_switched_off() {
    let mut rig = Rig::new().await;
    rig.heat.cool_after_seconds = 1;
    rig.start_agent();
    rig.idle().await;
    rig.hub.send(ServerMsg::Heat {
        printer: PRINTER.into(),
        nozzle_c: Some(215.0),
        bed_c: Some(60.0),
        request: None,
    });
    let log = || rig.driver.entries("heat ");
    eventually("switched off", || (log().len() == 2).then_some(())).await;
    assert_eq!(
        log(),
        [
            "heat Some(215.0) Some(60.0) true",
            "heat Some(0.0) Some(0.0) true"
        ]
    );
    let t = rig
        .hub
        .wait("the targets off in telemetry", |s| {
            s.last_telemetry(PRINTER)
                .filter(|t| t.heaters.iter().all(|h| h.target.unwrap_or(0.0) == 0.0))
                .cloned()
        })
        .await;
    assert_eq!(t.state, PrinterState::Idle);
    rig.stop_agent().await;
}

/// The agent announces its configuration's actions and its printer's own, runs them by id when
/// the server asks, and runs nothing its configuration does not define; an action runs only in
/// the states it is for (idle, always, printing), whatever the server sends.
#[tokio::test]
async fn actions_run_as_the_agents_configuration_defines_them() {
    use hearth_agent::config::{ActionConfig, GcodeLines};
    let mut rig = Rig::new().await;
    rig.actions = vec![
        ActionConfig {
            id: "home".into(),
            label: Some("Home all axes".into()),
            gcode: GcodeLines::Many(vec!["G28".into(), "M140 S40".into()]),
            while_printing: false,
            admins_only: false,
            confirm: None,
        },
        ActionConfig {
            id: "fan-off".into(),
            label: None,
            gcode: GcodeLines::One("M107".into()),
            while_printing: true,
            admins_only: false,
            confirm: None,
        },
        ActionConfig {
            id: "typo".into(),
            label: None,
            gcode: GcodeLines::One("M104 T0".into()),
            while_printing: false,
            admins_only: false,
            confirm: None,
        },
    ];
    rig.start_agent();
    use hearth_proto::agent::ActionWhen::{Always, Idle, Printing};
    let announced: Vec<_> = rig.announced().await[0]
        .actions
        .iter()
        .map(|a| (a.id.clone(), a.label.clone(), a.when))
        .collect();
    let row = |id: &str, label: &str, when| (id.to_owned(), label.to_owned(), when);
    assert_eq!(
        announced,
        [
            row("home", "Home all axes", Idle),
            row("fan-off", "fan-off", Always),
            row("typo", "typo", Idle),
            row("light-off", "Light off", Always),
            row("speed-sport", "Speed: sport", Printing),
        ]
    );
    rig.idle().await;
    let run = |action: &str| ServerMsg::Action {
        printer: PRINTER.into(),
        action: action.into(),
        request: Some(action.into()),
    };
    let gcode = || rig.driver.entries("gcode ");
    let answer = async |request: &str| {
        rig.hub
            .wait("the answer", |s| {
                s.outcomes
                    .iter()
                    .find(|o| o.0 == request)
                    .map(|o| (o.1, o.2.clone()))
            })
            .await
    };
    // Handled in order: the first is none of its actions and runs nothing, the second is for
    // printing only.
    rig.hub.send(run("format-sd"));
    rig.hub.send(ServerMsg::Action {
        printer: PRINTER.into(),
        action: "speed-sport".into(),
        request: Some("speed-while-idle".into()),
    });
    rig.hub.send(run("home"));
    eventually("home run", || (!gcode().is_empty()).then_some(())).await;
    assert_eq!(gcode(), ["gcode G28|M140 S40 true"]);
    assert_eq!(
        answer("format-sd").await,
        (
            false,
            Some("refused by its agent: this printer has no action of that id".into())
        )
    );
    assert_eq!(
        answer("speed-while-idle").await,
        (
            false,
            Some("refused by its agent: it runs only while the printer prints".into())
        )
    );
    assert_eq!(answer("home").await, (true, None));
    // What the printer refuses is answered with its words.
    rig.hub.send(run("typo"));
    let (ok, why) = answer("typo").await;
    assert!(!ok);
    assert!(why.unwrap().contains("no S<value> in \"M104 T0\""));
    rig.hub
        .wait("the bed's target from the action", |s| {
            s.last_telemetry(PRINTER)?
                .heaters
                .iter()
                .any(|h| h.name == "bed" && h.target == Some(40.0))
                .then_some(())
        })
        .await;

    // During a job: homing is refused; the fan, the light and the speed run.
    let job = rig.job(100.0, 10);
    let id = job.job_id;
    rig.hub.assign(job);
    rig.hub.wait_state(id, JobState::Printing).await;
    rig.hub.send(ServerMsg::Action {
        printer: PRINTER.into(),
        action: "home".into(),
        request: Some("home-while-printing".into()),
    });
    rig.hub.send(run("fan-off"));
    rig.hub.send(run("light-off"));
    rig.hub.send(run("speed-sport"));
    eventually("fan, light and speed", || {
        (gcode().len() == 3 && rig.driver.count("own ") == 2).then_some(())
    })
    .await;
    assert_eq!(gcode()[2], "gcode M107 true");
    assert_eq!(
        answer("home-while-printing").await,
        (
            false,
            Some("refused by its agent: it runs only while the printer is idle".into())
        )
    );
    assert_eq!(answer("light-off").await, (true, None));
    assert_eq!(answer("speed-sport").await, (true, None));
    assert_eq!(
        rig.driver.entries("own "),
        ["own light-off", "own speed-sport"]
    );
    rig.advance(200);
    rig.hub.wait_state(id, JobState::Completed).await;
    assert_eq!(gcode().len(), 3, "homing was not run later either");
    rig.stop_agent().await;
}
