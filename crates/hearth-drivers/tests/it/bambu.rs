//! The Bambu Lab LAN driver against the simulated printer of `bambu_sim` (PROTOCOLS.md §A4). No
//! Bambu printer runs here, so the simulator is the peer; the TLS, MQTT (Mosquitto) and FTP stacks
//! on both sides are real.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_drivers::bambu::BambuDriver;
use hearth_drivers::{Driver, DriverError, JobPhase, PrinterState};

use crate::bambu_sim::{Printer, SERIAL, pki};
use crate::peers::{eventually, job_in_phase, upload_copy};

pub fn project() -> PathBuf {
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

async fn idle(driver: &BambuDriver) {
    eventually("the printer idle", Duration::from_secs(20), || async {
        let s = driver.status().await.unwrap();
        (s.state == PrinterState::Idle).then_some(s)
    })
    .await;
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
        "PETG:FFFFFFFF:a1b2c3d4e5f60718293a4b5c6d7e8f90,PLA:000000FF,PLA:FAFAFAFF,",
    ])
    .await
    else {
        return;
    };
    let driver = BambuDriver::new(printer.config("P1S")).unwrap();
    idle(&driver).await;
    let status = driver.status().await.unwrap();
    // A Bambu Lab spool's RFID tag names it and says what is left; other spools read zeros.
    let tags: Vec<_> = status.slots.iter().map(|s| s.tag.as_deref()).collect();
    assert_eq!(
        tags,
        [Some("A1B2C3D4E5F60718293A4B5C6D7E8F90"), None, None, None]
    );
    // The AMS trays and the external spool, as the printer's screen names them.
    let slots: Vec<_> = status
        .slots
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.material.as_str(),
                s.color.as_deref(),
                s.remain_percent,
            )
        })
        .collect();
    assert_eq!(
        slots,
        [
            ("A1", "PETG", Some("FFFFFF"), Some(80)),
            ("A2", "PLA", Some("000000"), None),
            ("A3", "PLA", Some("FAFAFA"), None),
            ("Ext", "PLA", Some("000000"), None),
        ]
    );
    let names: Vec<_> = status.heaters.iter().map(|h| h.name.as_str()).collect();
    assert!(
        names.contains(&"tool0") && names.contains(&"bed"),
        "{status:?}"
    );

    upload_copy(&driver, "hearth-job.gcode", &project())
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
    let done = job_in_phase(&driver, JobPhase::Completed).await;
    assert_eq!(done.progress, 1.0);
    assert_eq!(driver.current_job().await.unwrap(), None);

    // The plaintext does not stay on the printer's storage.
    driver.remove("hearth-job.gcode").await.unwrap();
    assert_eq!(
        printer.event("DELETE ").await,
        "DELETE hearth-job.gcode.3mf"
    );
    crate::peers::preheats_and_cools_down(&driver).await;
    crate::peers::runs_gcode(&driver).await;

    // Its own actions: the chamber light, off and on again (`system.ledctrl`), and a speed mode
    // (`print.print_speed`), each accepted by the printer.
    let ids: Vec<&str> = driver.own_actions().iter().map(|a| a.id).collect();
    assert_eq!(
        ids,
        [
            "light-on",
            "light-off",
            "speed-silent",
            "speed-standard",
            "speed-sport",
            "speed-ludicrous"
        ]
    );
    driver.run_own_action("light-off").await.unwrap();
    let off = printer.command("system.ledctrl").await;
    assert_eq!(
        (&off["led_node"], &off["led_mode"]),
        (
            &serde_json::json!("chamber_light"),
            &serde_json::json!("off")
        )
    );
    // What the printer then reports: the light off, then on again, and the sport mode's speed.
    let reported = async |want: (Option<bool>, Option<u16>)| {
        eventually(
            "the light and speed reported",
            Duration::from_secs(20),
            || async {
                let s = driver.status().await.unwrap();
                ((s.light, s.speed_percent) == want).then_some(())
            },
        )
        .await
    };
    reported((Some(false), Some(100))).await;
    driver.run_own_action("light-on").await.unwrap();
    assert_eq!(
        printer.nth_command("system.ledctrl", 1).await["led_mode"],
        "on"
    );
    driver.run_own_action("speed-sport").await.unwrap();
    assert_eq!(printer.command("print.print_speed").await["param"], "3");
    reported((Some(true), Some(124))).await;
    assert!(driver.run_own_action("speed-warp").await.is_err());
}

#[tokio::test]
async fn pause_resume_and_cancel_reach_the_printer() {
    let Some(printer) = Printer::start(&["--model", "X1C", "--print-seconds", "60"]).await else {
        return;
    };
    let driver = BambuDriver::new(printer.config("X1C")).unwrap();
    idle(&driver).await;
    upload_copy(&driver, "hearth-j2.gcode", &project())
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
    let paused = job_in_phase(&driver, JobPhase::Paused).await;
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Paused);
    // A pause from a paused printer is refused by the printer, with its reason.
    let err = driver.pause().await.unwrap_err();
    assert!(matches!(err, DriverError::Rejected { .. }), "{err}");
    driver.resume().await.unwrap();
    job_in_phase(&driver, JobPhase::Printing).await;
    driver.cancel().await.unwrap();
    printer.command("print.stop").await;
    // A stopped print reports FAILED; this driver stopped it, so it is cancelled.
    let cancelled = job_in_phase(&driver, JobPhase::Cancelled).await;
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
    upload_copy(&driver, "hearth-j3.gcode", &project())
        .await
        .unwrap();
    driver.start("hearth-j3.gcode").await.unwrap();
    job_in_phase(&driver, JobPhase::Printing).await;
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
    let failed = job_in_phase(&driver, JobPhase::Failed).await;
    assert_eq!(failed.file, "hearth-j3.gcode");
}

#[tokio::test]
async fn without_developer_mode_the_printer_is_shown_read_only_and_takes_no_job() {
    // An X1C says so in its `fun` field; a P1S only by refusing a command, which the driver
    // sends (a G-code comment) as soon as the printer reports: before any job is sent to it.
    for model in ["X1C", "P1S"] {
        let Some(printer) = Printer::start(&["--model", model, "--dev-mode", "off"]).await else {
            return;
        };
        let driver = BambuDriver::new(printer.config(model)).unwrap();
        let status = eventually("read-only shown", Duration::from_secs(20), || async {
            let s = driver.status().await.unwrap();
            (s.state == PrinterState::Error).then_some(s)
        })
        .await;
        assert!(status.error.unwrap().contains("Developer Mode"), "{model}");
        if model == "P1S" {
            let probe = printer.command("print.gcode_line").await;
            assert!(probe["param"].as_str().unwrap().starts_with(';'), "{probe}");
        }
        upload_copy(&driver, "hearth-j4.gcode", &project())
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
    upload_copy(&driver, "hearth-j5.gcode", asa.path())
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
    let err = upload_copy(
        &driver,
        "hearth-b.gcode",
        &samples.join("mini_cube_b.bgcode"),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("binary G-code"), "{err}");
    upload_copy(
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
    let done = job_in_phase(&driver, JobPhase::Completed).await;
    assert_eq!(done.file, "hearth-j6.gcode");

    // Its camera server: one whole JPEG after the login packet; a wrong access code gets none.
    let frame = driver.camera_frame().await.unwrap().unwrap();
    assert_eq!(
        frame,
        std::fs::read(crate::bambu_sim::camera_jpeg()).unwrap()
    );
    assert_eq!(printer.event("CAMERA-").await, "CAMERA-LOGIN");
    let mut wrong = printer.config("A1");
    wrong.access_code = "00000000".into();
    let err = BambuDriver::new(wrong)
        .unwrap()
        .camera_frame()
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::Unauthorized { .. }), "{err}");
    assert_eq!(
        printer.event("CAMERA-REJECT").await,
        "CAMERA-REJECT bad-login"
    );
    // An X1 streams RTSPS, which the driver does not read.
    let x1 = BambuDriver::new(printer.config("X1C")).unwrap();
    assert!(matches!(
        x1.camera_frame().await,
        Err(DriverError::Unsupported { .. })
    ));
}

#[tokio::test]
async fn after_an_agent_restart_the_driver_finds_the_file_and_the_running_job() {
    let Some(printer) = Printer::start(&["--model", "P1S", "--print-seconds", "60"]).await else {
        return;
    };
    // Uploaded by one agent process ...
    let first = BambuDriver::new(printer.config("P1S")).unwrap();
    idle(&first).await;
    upload_copy(&first, "hearth-j7.gcode", &project())
        .await
        .unwrap();
    drop(first);
    // ... started by the next: the project is read back from the printer for its plate,
    // checksum and filaments.
    let second = BambuDriver::new(printer.config("P1S")).unwrap();
    second.start("hearth-j7.gcode").await.unwrap();
    let cmd = printer.command("print.project_file").await;
    assert_eq!(cmd["md5"].as_str().unwrap().len(), 32);
    assert_eq!(cmd["ams_mapping"], serde_json::json!([0]));
    job_in_phase(&second, JobPhase::Printing).await;
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
