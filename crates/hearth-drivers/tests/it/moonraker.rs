//! The Moonraker driver against the real Moonraker, with a fake Klippy behind it.

use std::time::Duration;

use hearth_drivers::{
    Driver, DriverConfig, DriverError, JobPhase, PrintHints, PrinterState, Upload, build,
};

use crate::peers::{Moonraker, eventually, free_port, sample_gcode};

fn driver(peer: &Moonraker) -> Box<dyn Driver> {
    build(&DriverConfig::Moonraker(peer.config())).unwrap()
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

async fn progress_past(driver: &dyn Driver, at_least: f64) -> f64 {
    eventually("progress", Duration::from_secs(30), || async {
        let status = driver.status().await.unwrap();
        let job = status.job?;
        (status.state == PrinterState::Printing && job.progress > at_least).then_some(job.progress)
    })
    .await
}

#[tokio::test]
async fn a_file_prints_to_completion_with_progress_layers_and_heaters() {
    let Some(peer) = Moonraker::start(20_000.0).await else {
        return;
    };
    let driver = driver(&peer);
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Idle);
    // The camera: none in Moonraker's webcam list, then crowsnest's usual one, whose relative
    // URL is served by the web UI on the printer's host (not Moonraker's own port).
    assert_eq!(driver.camera_snapshot_url().await.unwrap(), None);
    peer.add_webcam("/webcam/?action=stream", "/webcam/?action=snapshot")
        .await;
    assert_eq!(
        driver.camera_snapshot_url().await.unwrap().as_deref(),
        Some("http://127.0.0.1/webcam/?action=snapshot")
    );
    let file = sample_gcode(60_000);
    upload_and_start(driver.as_ref(), "hearth-complete.gcode", &file).await;

    let first = progress_past(driver.as_ref(), 0.0).await;
    let later = progress_past(driver.as_ref(), first).await;
    assert!(later > first);
    let status = driver.status().await.unwrap();
    let job = status.job.unwrap();
    assert_eq!(job.file, "hearth-complete.gcode");
    assert!(
        job.layer.is_some() && job.total_layers.is_some_and(|n| n > 1),
        "{job:?}"
    );
    let tool = status.heaters.iter().find(|h| h.name == "tool0").unwrap();
    assert_eq!(tool.target, 215.0);
    assert!(status.heaters.iter().any(|h| h.name == "bed"));

    let done = eventually("completion", Duration::from_secs(30), || async {
        let job = driver.status().await.unwrap().job?;
        (job.phase == JobPhase::Completed).then_some(job)
    })
    .await;
    assert_eq!(
        (done.file.as_str(), done.progress),
        ("hearth-complete.gcode", 1.0)
    );
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Idle);
    assert!(driver.current_job().await.unwrap().is_none());
    driver.remove("hearth-complete.gcode").await.unwrap();
    driver.remove("hearth-complete.gcode").await.unwrap();
    crate::peers::preheats_and_cools_down(driver.as_ref()).await;
    crate::peers::runs_gcode(driver.as_ref()).await;
    // The printer's macros, for an admin choosing actions; one runs.
    let macros = driver.macros().await.unwrap();
    let names: Vec<&str> = macros.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CLEAN_NOZZLE",
            "LOAD_FILAMENT",
            "PAUSE",
            "RESUME",
            "_HOME_IF_NEEDED"
        ]
    );
    // What each reads, from its template in Klipper's settings.
    assert_eq!(
        macros[0].params,
        [("TEMP".into(), Some("170".into())), ("X".into(), None)]
    );
    assert!(macros[1].params.is_empty());
    driver.run_gcode(&["CLEAN_NOZZLE".into()]).await.unwrap();
    // Klipper's speed factor, set by M220 (as an action would), as the printer reports it.
    assert_eq!(driver.status().await.unwrap().speed_percent, Some(100));
    driver.run_gcode(&["M220 S150".into()]).await.unwrap();
    crate::peers::eventually("the speed factor", Duration::from_secs(15), || async {
        (driver.status().await.unwrap().speed_percent == Some(150)).then_some(())
    })
    .await;
    // Its extrusion factor (M221) and part-cooling fan (M106 S0..255, M107), as a tuning sends
    // them.
    assert!(driver.describe().capabilities.tune);
    let flow_and_fan = async || {
        let s = driver.status().await.unwrap();
        (s.flow_percent, s.fan_percent)
    };
    assert_eq!(flow_and_fan().await, (Some(100), Some(0)));
    driver
        .run_gcode(&["M221 S95".into(), "M106 S204".into()])
        .await
        .unwrap();
    crate::peers::eventually("flow and fan", Duration::from_secs(15), || async {
        (flow_and_fan().await == (Some(95), Some(80))).then_some(())
    })
    .await;
    driver.run_gcode(&["M107".into()]).await.unwrap();
    crate::peers::eventually("the fan off", Duration::from_secs(15), || async {
        (flow_and_fan().await.1 == Some(0)).then_some(())
    })
    .await;
    // A macro the printer does not have: Klipper's own error, through Moonraker.
    let err = driver
        .run_gcode(&["NO_SUCH_MACRO".into()])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Unknown command"), "{err}");
}

#[tokio::test]
async fn pause_resume_cancel_and_reattach_after_an_agent_restart() {
    let Some(peer) = Moonraker::start(10_000.0).await else {
        return;
    };
    let driver = driver(&peer);
    let file = sample_gcode(1_000_000);
    upload_and_start(driver.as_ref(), "hearth-job7.gcode", &file).await;
    progress_past(driver.as_ref(), 0.01).await;

    let restarted = self::driver(&peer);
    let job = restarted
        .current_job()
        .await
        .unwrap()
        .expect("a running job");
    assert_eq!(
        (job.file.as_str(), job.phase),
        ("hearth-job7.gcode", JobPhase::Printing)
    );
    let busy = restarted.start("hearth-job7.gcode").await.unwrap_err();
    assert!(matches!(busy, DriverError::Rejected { .. }), "{busy}");

    restarted.pause().await.unwrap();
    let paused = eventually("paused", Duration::from_secs(10), || async {
        let status = restarted.status().await.unwrap();
        (status.state == PrinterState::Paused).then_some(status.job?.progress)
    })
    .await;
    restarted.resume().await.unwrap();
    progress_past(restarted.as_ref(), paused).await;

    restarted.cancel().await.unwrap();
    let cancelled = eventually("cancelled", Duration::from_secs(10), || async {
        let status = restarted.status().await.unwrap();
        (status.state == PrinterState::Idle).then_some(status.job?)
    })
    .await;
    assert_eq!(cancelled.phase, JobPhase::Cancelled);
    assert!(restarted.current_job().await.unwrap().is_none());
}

#[tokio::test]
async fn without_klipper_or_moonraker_the_printer_is_offline() {
    let Some(mut peer) = Moonraker::start(10_000.0).await else {
        return;
    };
    let driver = driver(&peer);
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Idle);

    peer.klippy = None; // Klipper goes away; Moonraker stays.
    let status = eventually(
        "offline without Klipper",
        Duration::from_secs(10),
        || async {
            let status = driver.status().await.unwrap();
            (status.state == PrinterState::Offline).then_some(status)
        },
    )
    .await;
    assert!(status.error.is_some());
    assert!(
        driver.current_job().await.unwrap_err().is_unreachable(),
        "re-attach must not guess"
    );
    assert!(driver.start("x.gcode").await.unwrap_err().is_unreachable());

    peer.proc.kill();
    let status = eventually(
        "offline without Moonraker",
        Duration::from_secs(10),
        || async {
            let status = driver.status().await.unwrap();
            (status.state == PrinterState::Offline).then_some(status)
        },
    )
    .await;
    assert!(status.error.unwrap().contains("unreachable"));
    assert!(driver.pause().await.unwrap_err().is_unreachable());
}

#[tokio::test]
async fn nothing_listening_is_offline() {
    let config = hearth_drivers::MoonrakerConfig {
        url: format!("http://127.0.0.1:{}", free_port()),
        api_key: None,
        model: None,
        ca_file: None,
        fingerprint: None,
        timeout_secs: 2,
    };
    let driver = build(&DriverConfig::Moonraker(config)).unwrap();
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Offline);
}

#[tokio::test]
async fn a_wrong_api_key_is_unauthorized_not_offline() {
    let Some(peer) = Moonraker::start_with(10_000.0, false).await else {
        return;
    };
    let mut config = peer.config();
    config.api_key = Some("WRONGKEY".into());
    let driver = build(&DriverConfig::Moonraker(config)).unwrap();
    let err = driver.status().await.unwrap_err();
    assert!(matches!(err, DriverError::Unauthorized { .. }), "{err:?}");
}

/// A certificate authority and a certificate it issued to 127.0.0.1 and localhost: (CA PEM,
/// certificate, its key PEM).
fn issued_certificate() -> (String, rcgen::Certificate, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Print farm CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert, key.serialize_pem())
}

/// Moonraker at its `ssl_port`: trusted through the CA that issued its certificate (`ca_file`) a
/// whole print goes through (HTTPS uploads and requests, the WebSocket over TLS), and through the
/// certificate's fingerprint too; trusted by nothing else, it shows offline saying which
/// certificate it presented, and nothing is uploaded.
#[tokio::test]
async fn moonraker_over_https_is_trusted_by_its_ca_or_its_fingerprint_and_nothing_else() {
    let (ca_pem, cert, key) = issued_certificate();
    let Some(peer) = Moonraker::start_tls(20_000.0, &cert.pem(), &key).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("farm-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let https = peer.https_url.clone().unwrap();
    let over_tls = |ca_file: Option<std::path::PathBuf>, fingerprint: Option<String>| {
        build(&DriverConfig::Moonraker(hearth_drivers::MoonrakerConfig {
            url: https.clone(),
            ca_file,
            fingerprint,
            ..peer.config()
        }))
        .unwrap()
    };

    let driver = over_tls(Some(ca_file), None);
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Idle);
    let file = sample_gcode(20_000);
    upload_and_start(driver.as_ref(), "hearth-tls.gcode", &file).await;
    let done = eventually("completion", Duration::from_secs(30), || async {
        let job = driver.status().await.unwrap().job?;
        (job.phase == JobPhase::Completed).then_some(job)
    })
    .await;
    assert_eq!(done.file, "hearth-tls.gcode");

    let presented = hearth_drivers::tls::fingerprint(cert.der());
    let pinned = over_tls(None, Some(presented.clone()));
    assert_eq!(pinned.status().await.unwrap().state, PrinterState::Idle);
    pinned.remove("hearth-tls.gcode").await.unwrap();

    // A webcam on the printer's host over https (a file Moonraker serves stands in for the
    // snapshot): fetched with the printer's trust, which the agent's own client lacks.
    let frame = b"\xff\xd8\xff a frame";
    std::fs::write(peer.dir.path().join("data/gcodes/frame.jpg"), frame).unwrap();
    let snapshot = format!("{https}/server/files/gcodes/frame.jpg");
    let client = pinned
        .camera_client(&snapshot)
        .expect("the printer's own host");
    let got = client.get(&snapshot).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), frame);
    assert!(reqwest::Client::new().get(&snapshot).send().await.is_err());
    for elsewhere in [
        "https://camera.local/snapshot.jpg".to_owned(),
        snapshot.replacen("https://", "http://", 1),
    ] {
        assert!(pinned.camera_client(&elsewhere).is_none(), "{elsewhere}");
    }

    let another = hearth_drivers::tls::fingerprint(b"another certificate");
    for (driver, why) in [
        (over_tls(None, None), "certificate not trusted"),
        (over_tls(None, Some(another)), "not the pinned certificate"),
    ] {
        let status = driver.status().await.unwrap();
        assert_eq!(status.state, PrinterState::Offline);
        let said = status.error.unwrap_or_default();
        assert!(
            said.contains(why) && said.contains(&format!("the printer presented {presented}")),
            "{said}"
        );
        let upload = Upload {
            name: "hearth-refused.gcode",
            path: file.path(),
            hints: PrintHints::default(),
        };
        assert!(driver.upload(upload).await.unwrap_err().is_unreachable());
    }
    // Nothing reached Moonraker's storage through an untrusted connection.
    assert!(
        !peer
            .dir
            .path()
            .join("data/gcodes/hearth-refused.gcode")
            .exists()
    );
}

#[test]
fn trust_settings_are_checked_when_the_driver_is_made() {
    let config = |url: &str, fingerprint: Option<&str>| hearth_drivers::MoonrakerConfig {
        url: url.into(),
        api_key: None,
        model: None,
        ca_file: None,
        fingerprint: fingerprint.map(str::to_owned),
        timeout_secs: 2,
    };
    let pin = hearth_drivers::tls::fingerprint(b"c");
    let e = build(&DriverConfig::Moonraker(config(
        "http://voron:7125",
        Some(&pin),
    )))
    .err()
    .unwrap();
    assert!(e.to_string().contains("plain http://"), "{e}");
    let e = build(&DriverConfig::Moonraker(config(
        "https://voron:7130",
        Some("sha256:12"),
    )))
    .err()
    .unwrap();
    assert!(e.to_string().contains("64 hex digits"), "{e}");
    assert!(
        build(&DriverConfig::Moonraker(config(
            "https://voron:7130",
            Some(&pin)
        )))
        .is_ok()
    );
}

/// A printer with an MMU driven by Happy Hare: the gates holding filament are its slots `G0`,
/// `G1`, ... with the material and colour of Happy Hare's gate map, and a started job says which
/// gate feeds each tool (its tool-to-gate map), for the inventory's spools in those gates.
#[tokio::test]
async fn a_happy_hare_mmu_reports_its_gates_and_the_gate_of_each_tool() {
    let Some(peer) = Moonraker::start(20_000.0).await else {
        return;
    };
    peer.klippy.as_ref().unwrap().set_mmu(serde_json::json!({
        "num_gates": 4,
        "gate_status": [1, 2, 0, -1],
        "gate_material": ["PLA", "PETG", "ABS", "ASA"],
        "gate_color": ["ff8000", "#1A1A1AFF", "", "red"],
        "ttg_map": [1, 0, 2, 3],
    }));
    let driver = driver(&peer);
    let status = driver.status().await.unwrap();
    let slots: Vec<_> = status
        .slots
        .iter()
        .map(|s| (s.name.as_str(), s.material.as_str(), s.color.as_deref()))
        .collect();
    // The empty gate and the one of unknown state are left out.
    assert_eq!(
        slots,
        [
            ("G0", "PLA", Some("FF8000")),
            ("G1", "PETG", Some("1A1A1A"))
        ]
    );
    let file = sample_gcode(20_000);
    let upload = Upload {
        name: "hearth-mmu.gcode",
        path: file.path(),
        hints: PrintHints::default(),
    };
    driver.upload(upload).await.unwrap();
    let started = driver.start("hearth-mmu.gcode").await.unwrap();
    assert_eq!(started.slots, ["G1", "G0", "G2", "G3"]);
    driver.cancel().await.unwrap();
}
