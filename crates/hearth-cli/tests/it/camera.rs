//! A printer's camera through the whole chain: the real `hearth-agent` takes a frame from the
//! camera's snapshot URL, seals it to the organisation's epoch and signs it; the real `hearthd`
//! keeps it without being able to read it; `hearth camera` checks and opens it on the member's
//! machine, and `--fresh` asks the agent for a new one.

use crate::printer_chain::start_chain_agent;
use crate::support::*;
use base64::Engine;
use hearth_agent::config::{CameraConfig, PrinterConfig};
use hearth_proto::api::Printer;
use std::sync::{Arc, Mutex};

/// A camera: `GET /snapshot` answers the current picture (as mjpg-streamer's `?action=snapshot`
/// does), `GET /stream` a multipart stream (what a snapshot URL must not be).
pub(crate) async fn camera(picture: Arc<Mutex<Vec<u8>>>) -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/snapshot",
            get(move || {
                let p = picture.lock().unwrap().clone();
                async move { ([("content-type", "image/png")], p) }
            }),
        )
        .route(
            "/stream",
            get(|| async {
                (
                    [("content-type", "multipart/x-mixed-replace;boundary=frame")],
                    "--frame\r\ncontent-type: image/jpeg\r\n\r\n",
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A printer with a camera at `snapshot_url` (`None`: the one its software has), which sends a
/// first frame once connected and then only the frames members ask for.
pub(crate) fn with_camera(
    name: &str,
    snapshot_url: Option<String>,
    driver: hearth_drivers::DriverConfig,
) -> PrinterConfig {
    PrinterConfig {
        name: name.into(),
        pools: vec![],
        material: None,
        color: None,
        nozzle_mm: None,
        camera: Some(CameraConfig {
            snapshot_url,
            interval_seconds: 10.0,
            idle_interval_seconds: 0.0,
            timelapse: false,
            timelapse_trigger: Default::default(),
        }),
        driver,
        heat: Default::default(),
        tune: Default::default(),
        actions: Vec::new(),
        builtin_actions: true,
    }
}

/// Waits until a printer's first sealed frame has reached the server; returns that printer.
pub(crate) async fn first_frame(ada: &Machine) -> Printer {
    let (client, org) = ada.client();
    eventually("the first frame", || async {
        let p: Vec<Printer> = client
            .raw_get(&format!("/api/v1/orgs/{org}/printers"))
            .await
            .unwrap();
        p.into_iter()
            .find(|p| p.camera.as_ref().is_some_and(|c| c.snapshot_at.is_some()))
    })
    .await
}

/// The pictures embedded in a real slicer's file, as a camera would send them (PNG).
pub(crate) fn pictures() -> Vec<Vec<u8>> {
    let f = std::fs::File::open(crate::sample("wavy_small_prusaslicer_mk3s.gcode")).unwrap();
    let report = hearth_printfile::inspect_metadata(f, &Default::default()).unwrap();
    let pngs: Vec<Vec<u8>> = report
        .thumbnails
        .into_iter()
        .map(|t| t.data)
        .filter(|d| d.starts_with(b"\x89PNG"))
        .collect();
    assert!(pngs.len() >= 2, "the sample has several PNG thumbnails");
    pngs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_frame_is_sealed_by_the_agent_and_opened_only_on_the_members_machine() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    let org_fp = crate::members::org_fingerprint(&ada.setup(&server).await);
    let pics = pictures();
    let picture = Arc::new(Mutex::new(pics[0].clone()));
    let cam = camera(picture.clone()).await;
    let agent = start_chain_agent(
        &server,
        &ada,
        with_camera(
            "mk4",
            Some(format!("{cam}/snapshot")),
            hearth_drivers::DriverConfig::Simulated(Default::default()),
        ),
    )
    .await;

    // The agent sends a first frame once connected; the printer says when it arrived.
    let (client, org) = ada.client();
    let printer = first_frame(&ada).await;
    let listed = ada.run(&["printers"]).await;
    assert!(
        listed.contains("CAMERA") && listed.contains("frame ") && listed.contains(" s ago"),
        "{listed}"
    );
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("frame.png");
    let said = ada
        .run(&["camera", "mk4", "-o", out.to_str().unwrap()])
        .await;
    assert!(
        said.contains("frame taken") && said.contains("by agent octopi"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        pics[0],
        "the camera's picture, opened"
    );

    // What the server holds is an age file that does not contain the picture.
    let held = client.printer_snapshot(org, printer.id).await.unwrap();
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(held.sealed)
        .unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    assert!(!sealed.windows(32).any(|w| w == &pics[0][100..132]));

    // The camera shows something else: --fresh asks the agent and waits for the new frame.
    *picture.lock().unwrap() = pics[1].clone();
    let json = ada
        .run(&[
            "camera",
            "mk4",
            "--fresh",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["bytes"], pics[1].len());
    assert_eq!(std::fs::read(&out).unwrap(), pics[1]);

    // Watching: fresh frames into one file, replaced whole each time.
    let watched = work.path().join("live.png");
    let lines = ada
        .run(&[
            "camera",
            "mk4",
            "--watch",
            "0",
            "--frames",
            "2",
            "--json",
            "-o",
            watched.to_str().unwrap(),
        ])
        .await;
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert_eq!(std::fs::read(&watched).unwrap(), pics[1]);
    assert!(!watched.with_extension("part").exists());

    // A member joins and later leaves: each change moves the organisation to a new key. The agent
    // still seals to the key it knew, the server refuses that frame as sealed to a stale epoch,
    // the agent reads the chain again and seals to the new key; the member who left cannot open
    // the frames taken after.
    let epoch_of = |s: hearth_proto::api::Snapshot| s.manifest["manifest"]["epoch"].as_u64();
    assert_eq!(
        epoch_of(client.printer_snapshot(org, printer.id).await.unwrap()),
        Some(1)
    );
    let (bob, bob_fp) = crate::members::join(&server, &ada, &org_fp, "bob").await;
    ada.run(&["members", "add", "bob", "--fingerprint", &bob_fp])
        .await;
    let bobs = work.path().join("bob.png");
    bob.run(&["camera", "mk4", "--fresh", "-o", bobs.to_str().unwrap()])
        .await;
    assert_eq!(std::fs::read(&bobs).unwrap(), pics[1]);
    assert_eq!(
        epoch_of(client.printer_snapshot(org, printer.id).await.unwrap()),
        Some(2)
    );
    ada.run(&["members", "remove", "bob", "--yes"]).await;
    ada.run(&["camera", "mk4", "--fresh", "-o", out.to_str().unwrap()])
        .await;
    assert_eq!(
        epoch_of(client.printer_snapshot(org, printer.id).await.unwrap()),
        Some(3)
    );
    std::fs::remove_file(&bobs).unwrap();
    let refused = bob
        .try_run(&["camera", "mk4", "-o", bobs.to_str().unwrap()])
        .await;
    assert!(
        !refused.status.success(),
        "a removed member opens no new frame"
    );
    assert!(!bobs.exists());

    // A printer without a camera says so.
    let out = ada.try_run(&["camera", "nope"]).await;
    assert!(!out.status.success());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_sends_no_picture_is_reported_not_sealed() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let cam = camera(Arc::new(Mutex::new(Vec::new()))).await;
    let agent = start_chain_agent(
        &server,
        &ada,
        // A stream URL where a snapshot URL belongs.
        with_camera(
            "mk4",
            Some(format!("{cam}/stream")),
            hearth_drivers::DriverConfig::Simulated(Default::default()),
        ),
    )
    .await;
    let (client, org) = ada.client();
    eventually("the printer announced", || async {
        let p: Vec<Printer> = client
            .raw_get(&format!("/api/v1/orgs/{org}/printers"))
            .await
            .unwrap();
        (p.len() == 1 && p[0].camera.is_some()).then_some(())
    })
    .await;
    let out = ada
        .try_run(&["camera", "mk4", "--fresh", "--wait", "3"])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no new frame of mk4 within 3 s"), "{err}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_finds_the_camera_in_moonrakers_webcam_list() {
    let Some(moon) = crate::peers::Moonraker::start(5_000.0).await else {
        return;
    };
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let pics = pictures();
    let cam = camera(Arc::new(Mutex::new(pics[0].clone()))).await;
    moon.add_webcam(&format!("{cam}/stream"), &format!("{cam}/snapshot"))
        .await;
    let agent = start_chain_agent(
        &server,
        &ada,
        // No URL: the one Moonraker has.
        with_camera(
            "voron",
            None,
            hearth_drivers::DriverConfig::Moonraker(moon.config()),
        ),
    )
    .await;
    first_frame(&ada).await;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("voron.png");
    ada.run(&["camera", "voron", "-o", out.to_str().unwrap()])
        .await;
    assert_eq!(std::fs::read(&out).unwrap(), pics[0]);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bambu_lab_p1s_camera_is_read_over_its_own_protocol() {
    let Some(printer) = crate::bambu_sim::Printer::start(&["--model", "P1S"]).await else {
        return;
    };
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let agent = start_chain_agent(
        &server,
        &ada,
        // No URL: the printer's camera server, with its access code.
        with_camera(
            "p1s",
            None,
            hearth_drivers::DriverConfig::Bambu(printer.config("P1S")),
        ),
    )
    .await;
    first_frame(&ada).await;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("p1s.jpg");
    ada.run(&["camera", "p1s", "-o", out.to_str().unwrap()])
        .await;
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(crate::bambu_sim::camera_jpeg()).unwrap()
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_come_every_interval_while_a_job_prints() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let cam = camera(Arc::new(Mutex::new(pictures()[0].clone()))).await;
    let mut printer = with_camera(
        "mk4",
        Some(format!("{cam}/snapshot")),
        hearth_drivers::DriverConfig::Simulated(hearth_drivers::simulated::SimulatedConfig {
            time_scale: 10.0,
            ..Default::default()
        }),
    );
    // Idle: only the first frame (and those asked for); printing: one every 0.2 s.
    if let Some(c) = printer.camera.as_mut() {
        c.interval_seconds = 0.2;
    }
    let agent = start_chain_agent(&server, &ada, printer).await;
    let first = first_frame(&ada).await.camera.unwrap().snapshot_at.unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "part.gcode", "part");
    ada.run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await;
    let (client, org) = ada.client();
    // The arrival times of the frames taken since, seen while the printer printed.
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    eventually("frames while printing", || {
        let (client, seen, first) = (client.clone(), seen.clone(), first.clone());
        async move {
            let p: Vec<Printer> = client
                .raw_get(&format!("/api/v1/orgs/{org}/printers"))
                .await
                .unwrap();
            let at = p[0].camera.as_ref()?.snapshot_at.clone()?;
            let mut seen = seen.lock().unwrap();
            if p[0].telemetry.state == hearth_proto::agent::PrinterState::Printing && at != first {
                seen.insert(at);
            }
            (seen.len() >= 3).then_some(())
        }
    })
    .await;
    agent.shutdown().await;
}

/// The timelapse through the whole chain: the agent binds the frames it takes while a job prints
/// to that job, the server keeps them with it, and `hearth timelapse` checks every one as a frame
/// of that job by the printer's agent, opens them into numbered images, lists and deletes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_timelapse_is_kept_sealed_and_opened_into_numbered_frames() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let pics = pictures();
    let cam = camera(Arc::new(Mutex::new(pics[0].clone()))).await;
    let agent = start_chain_agent(&server, &ada, timelapse_printer(&cam)).await;
    first_frame(&ada).await;
    assert!(
        ada.run(&["timelapse"]).await.contains("no timelapses"),
        "none before a job"
    );
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "part.gcode", "part");
    let id = print_to_the_end(&ada, &file, "mk4", 3).await;
    let job = id.to_string();
    let (client, org) = ada.client();
    let listed = ada.run(&["timelapse"]).await;
    assert!(listed.contains(&job) && listed.contains("mk4"), "{listed}");
    let kept = client.timelapse(org, id).await.unwrap();
    assert!(kept.frames.len() >= 3, "{:?}", kept.summary);

    let dir = work.path().join("tl");
    let said = ada
        .run(&["timelapse", &job, "-o", dir.to_str().unwrap(), "--json"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(v["frames"], kept.frames.len());
    assert_eq!(v["pattern"], "frame-%05d.png");
    for n in 1..=kept.frames.len() {
        let f = dir.join(format!("frame-{n:05}.png"));
        assert_eq!(std::fs::read(&f).unwrap(), pics[0], "{}", f.display());
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), kept.frames.len());
    let human = ada
        .run(&["timelapse", &job, "-o", dir.to_str().unwrap()])
        .await;
    assert!(human.contains("ffmpeg -framerate 30 -i"), "{human}");

    ada.run(&["timelapse", &job, "--delete"]).await;
    assert!(ada.run(&["timelapse"]).await.contains("no timelapses"));
    let gone = ada
        .try_run(&["timelapse", &job, "-o", dir.to_str().unwrap()])
        .await;
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("none was kept"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    agent.shutdown().await;
}

/// Printer mk4, simulated at 20 times real time, with the camera at `cam` keeping a timelapse of
/// every job: a frame every 0.2 s while it prints.
pub(crate) fn timelapse_printer(cam: &str) -> PrinterConfig {
    let mut printer = with_camera(
        "mk4",
        Some(format!("{cam}/snapshot")),
        hearth_drivers::DriverConfig::Simulated(hearth_drivers::simulated::SimulatedConfig {
            time_scale: 20.0,
            ..Default::default()
        }),
    );
    if let Some(c) = printer.camera.as_mut() {
        c.interval_seconds = 0.2;
        c.timelapse = true;
    }
    printer
}

/// Prints `file` on `printer` with the CLI and waits until the job completed. With `frames`, the
/// job is paused once printing until the server holds that many frames of its timelapse, then
/// resumed (a paused job's camera keeps its cadence), so a short simulated print has them however
/// busy the machine is.
pub(crate) async fn print_to_the_end(
    ada: &Machine,
    file: &std::path::Path,
    printer: &str,
    frames: usize,
) -> hearth_proto::ids::JobId {
    use hearth_proto::agent::JobState;
    let id: hearth_proto::ids::JobId = ada
        .run(&["print", file.to_str().unwrap(), "--printer", printer])
        .await
        .trim()
        .parse()
        .unwrap();
    let (client, org) = ada.client();
    let job = || async {
        let j: hearth_proto::api::Job = client
            .raw_get(&format!("/api/v1/orgs/{org}/jobs/{id}"))
            .await
            .unwrap();
        j
    };
    if frames > 0 {
        eventually("the job printing", || async {
            let j = job().await;
            assert!(!j.state.is_final(), "{j:?}");
            (j.state == JobState::Printing).then_some(())
        })
        .await;
        ada.run(&["pause", &id.to_string()]).await;
        eventually("the timelapse's frames", || async {
            let kept = client.timelapse(org, id).await.ok()?;
            (kept.frames.len() >= frames).then_some(())
        })
        .await;
        ada.run(&["resume", &id.to_string()]).await;
    }
    eventually("the job completed", || async {
        let j = job().await;
        assert!(
            !matches!(j.state, JobState::Failed | JobState::Refused),
            "{j:?}"
        );
        (j.state == JobState::Completed).then_some(())
    })
    .await;
    id
}

/// With the `layer` trigger a timelapse frame comes at each new layer the printer reports, and
/// no more often (the cadence here is an hour, so every frame of the timelapse is a layer's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_timelapse_takes_one_frame_per_new_layer() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let cam = camera(Arc::new(Mutex::new(pictures()[0].clone()))).await;
    let mut printer = timelapse_printer(&cam);
    if let Some(c) = printer.camera.as_mut() {
        c.interval_seconds = 3600.0;
        c.timelapse_trigger = hearth_agent::config::TimelapseTrigger::Layer;
    }
    let agent = start_chain_agent(&server, &ada, printer).await;
    first_frame(&ada).await;
    let work = tempfile::tempdir().unwrap();
    let file = layered_gcode(work.path());
    let id = print_to_the_end(&ada, &file, "mk4", 0).await;
    let (client, org) = ada.client();
    let kept = client.timelapse(org, id).await.unwrap();
    let n = kept.frames.len();
    assert!(
        (3..=8).contains(&n),
        "one frame per new layer, {n} for 8 layers: {:?}",
        kept.summary
    );
    agent.shutdown().await;
}

/// Eight layers of two 50 mm moves at 5 mm/s: 20 s a layer as the agent's analysis times them
/// (a second at 20 times real time), 160 s in all.
fn layered_gcode(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("layers.gcode");
    let mut g = String::from(
        "; generated by PrusaSlicer 2.7.0 on 2024-01-01 at 00:00:00 UTC\n; layer_height = 0.2\nM83\nG28\n",
    );
    for layer in 1..=8 {
        g.push_str(&format!("G1 Z{:.1} F3000\n", f64::from(layer) * 0.2));
        g.push_str(&format!(
            "G1 X60 Y{layer} E2 F300\nG1 X10 Y{layer} E2 F300\n"
        ));
    }
    std::fs::write(&file, g).unwrap();
    file
}

/// Frames the agent keeps under its state directory while the server is away.
fn kept_frames(agent: &crate::printer_chain::RunningAgent) -> usize {
    std::fs::read_dir(agent.state_dir().join("timelapse"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .count()
        })
        .unwrap_or(0)
}

/// The server is stopped in the middle of a print and started again: the agent keeps the
/// timelapse frames it takes meanwhile (sealed, on disk) and sends them once the server is back,
/// so the job's timelapse has no gap; `hearth timelapse` opens them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timelapse_has_no_gap_when_the_server_restarts_during_the_print() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let pics = pictures();
    let cam = camera(Arc::new(Mutex::new(pics[0].clone()))).await;
    let agent = start_chain_agent(&server, &ada, timelapse_printer(&cam)).await;
    first_frame(&ada).await;
    let work = tempfile::tempdir().unwrap();
    let file = layered_gcode(work.path());
    let id: hearth_proto::ids::JobId = ada
        .run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await
        .trim()
        .parse()
        .unwrap();
    let (client, org) = ada.client();
    eventually("a first timelapse frame", || async {
        client
            .timelapse(org, id)
            .await
            .ok()
            .filter(|t| !t.frames.is_empty())
            .map(|_| ())
    })
    .await;

    // Away while the agent keeps three frames.
    let arrived_before = client.timelapse(org, id).await.unwrap().summary.arrived;
    let away_from = hearth_proto::time_fmt::now_ms() / 1000;
    let _server = server
        .restart_after(eventually("frames kept by the agent", || async {
            (kept_frames(&agent) >= 3).then_some(())
        }))
        .await;
    let away_until = hearth_proto::time_fmt::now_ms() / 1000;

    eventually("the job completed and every kept frame sent", || async {
        let j: hearth_proto::api::Job = client
            .raw_get(&format!("/api/v1/orgs/{org}/jobs/{id}"))
            .await
            .ok()?;
        (j.state == hearth_proto::agent::JobState::Completed && kept_frames(&agent) == 0)
            .then_some(())
    })
    .await;
    // A frame taken just before the job ended may still be on its way (kept behind the ones
    // being sent, then sent late, as it should): stopping the agent first means the timelapse
    // read here is the one `hearth timelapse` opens below.
    agent.shutdown().await;
    let tl = client.timelapse(org, id).await.unwrap();
    assert!(
        tl.summary.arrived >= arrived_before + 3,
        "the kept frames arrived: {:?} ({arrived_before} before the restart)",
        tl.summary
    );
    let taken: Vec<i64> = tl
        .frames
        .iter()
        .map(|f| f.manifest["manifest"]["taken_at"].as_i64().unwrap())
        .collect();
    assert!(
        taken
            .iter()
            .filter(|t| (away_from..=away_until).contains(*t))
            .count()
            >= 3,
        "frames taken while the server was away: {taken:?} (away {away_from}..={away_until})"
    );
    assert!(
        taken.windows(2).all(|w| w[0] <= w[1]),
        "in the order taken: {taken:?}"
    );
    let dir = work.path().join("tl");
    let said = ada
        .run(&[
            "timelapse",
            &id.to_string(),
            "-o",
            dir.to_str().unwrap(),
            "--json",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(v["frames"], tl.frames.len());
}
