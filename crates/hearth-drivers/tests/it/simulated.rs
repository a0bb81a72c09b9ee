//! The simulator as the agent sees it: built from configuration, driven through `dyn Driver`.

use hearth_drivers::{
    DriverConfig, DriverKind, Fault, JobPhase, PrintHints, PrinterState, Upload, build,
};

#[tokio::test]
async fn a_configured_simulator_prints_a_file_at_its_time_scale() {
    // The agent's TOML table, here as JSON: `kind` picks the driver, the rest are its settings.
    let config: DriverConfig =
        serde_json::from_str(r#"{"kind": "simulated", "time_scale": 10000, "model": "Demo MK3S"}"#)
            .unwrap();
    let driver = build(&config).unwrap();
    assert_eq!(driver.describe().kind, DriverKind::Simulated);
    assert_eq!(driver.describe().model, "Demo MK3S");
    assert!(driver.describe().capabilities.fault_injection);

    let file = crate::peers::sample_gcode(10_000);
    let hints = PrintHints {
        estimated_seconds: Some(1200.0),
        layers: Some(100),
    };
    driver
        .upload(Upload {
            name: "hearth-sim.gcode",
            path: file.path(),
            hints,
        })
        .await
        .unwrap();
    driver.start("hearth-sim.gcode").await.unwrap();
    // 20 simulated minutes at 10 000x take about 0.13 s.
    let done =
        crate::peers::eventually("completion", std::time::Duration::from_secs(10), || async {
            let job = driver.status().await.unwrap().job?;
            (job.phase == JobPhase::Completed).then_some(job)
        })
        .await;
    assert_eq!((done.layer, done.total_layers), (Some(100), Some(100)));

    driver.inject_fault(Fault::Disconnect).await.unwrap();
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Offline);
    driver.clear_faults().await.unwrap();
    assert_eq!(driver.status().await.unwrap().state, PrinterState::Idle);
    crate::peers::preheats_and_cools_down(driver.as_ref()).await;
    crate::peers::runs_gcode(driver.as_ref()).await;
}

#[tokio::test]
async fn unknown_config_keys_are_refused() {
    let parsed = serde_json::from_str::<DriverConfig>(r#"{"kind": "simulated", "time_scael": 2}"#);
    assert!(parsed.is_err());
    let parsed =
        serde_json::from_str::<DriverConfig>(r#"{"kind": "octoprint", "url": "http://x"}"#);
    assert!(parsed.is_err(), "an OctoPrint needs its API key");
}

#[tokio::test]
async fn real_printers_refuse_fault_injection() {
    let config = hearth_drivers::OctoPrintConfig {
        url: "http://127.0.0.1:9".into(),
        api_key: "k".into(),
        model: None,
        port: None,
        baudrate: None,
        ca_file: None,
        fingerprint: None,
        timeout_secs: 1,
    };
    let driver = build(&DriverConfig::Octoprint(config)).unwrap();
    let err = driver.inject_fault(Fault::ThermalError).await.unwrap_err();
    assert!(
        matches!(
            err,
            hearth_drivers::DriverError::Unsupported {
                kind: DriverKind::Octoprint,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_printer_url_is_http_or_https_and_nothing_else() {
    let config = |url: &str| -> DriverConfig {
        serde_json::from_value(serde_json::json!({"kind": "moonraker", "url": url})).unwrap()
    };
    for url in ["ftp://voron.local", "voron.local:7125", "ws://voron.local"] {
        let err = build(&config(url)).unwrap_err();
        assert!(
            matches!(&err, hearth_drivers::DriverError::Config(m) if m.contains("http:// or https://")),
            "{url}: {err}"
        );
    }
    for url in ["http://voron.local:7125", "HTTPS://voron.local:7130"] {
        assert!(build(&config(url)).is_ok(), "{url}");
    }
}

/// A simulated printer configured with a light offers it as its own actions and reports it; one
/// without offers none and refuses them.
#[tokio::test]
async fn a_simulated_light_is_switched_and_reported() {
    use hearth_drivers::Driver;
    use hearth_drivers::simulated::{SimulatedConfig, SimulatedDriver};
    let lit = SimulatedDriver::new(SimulatedConfig {
        light: true,
        ..Default::default()
    });
    let ids: Vec<&str> = lit.own_actions().iter().map(|a| a.id).collect();
    assert_eq!(ids, ["light-on", "light-off"]);
    assert_eq!(lit.status().await.unwrap().light, Some(true));
    lit.run_own_action("light-off").await.unwrap();
    assert_eq!(lit.status().await.unwrap().light, Some(false));
    lit.run_own_action("light-on").await.unwrap();
    assert_eq!(lit.status().await.unwrap().light, Some(true));

    let dark = SimulatedDriver::new(SimulatedConfig::default());
    assert!(dark.own_actions().is_empty());
    assert_eq!(dark.status().await.unwrap().light, None);
    assert!(dark.run_own_action("light-on").await.is_err());
}
