//! The report mapping, on reports shaped as PROTOCOLS.md §A4 lists their fields.

use super::*;

fn report(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn running() -> Map<String, Value> {
    report(json!({
        "command": "push_status",
        "gcode_state": "RUNNING",
        "mc_percent": 42,
        "mc_remaining_time": 12,
        "layer_num": 30,
        "total_layer_num": 100,
        "nozzle_temper": 219.5, "nozzle_target_temper": 220,
        "bed_temper": "59.8", "bed_target_temper": 60,
        "chamber_temper": 31,
        "subtask_name": "hearth-abc.gcode",
        "gcode_start_time": "1000",
        "print_error": 0,
        "hms": [],
    }))
}

#[test]
fn a_running_print_maps_to_the_agents_job_with_progress_and_heaters() {
    let st = map_status(&running(), false, None, None, 1600);
    assert_eq!(st.state, PrinterState::Printing);
    assert_eq!(st.error, None);
    let job = st.job.unwrap();
    assert_eq!(job.file, "hearth-abc.gcode");
    assert_eq!(job.phase, JobPhase::Printing);
    assert!((job.progress - 0.42).abs() < 1e-9);
    assert_eq!((job.layer, job.total_layers), (Some(30), Some(100)));
    // mc_remaining_time is in minutes.
    assert_eq!(job.remaining_seconds, Some(720));
    assert_eq!(job.elapsed_seconds, Some(600));
    let names: Vec<_> = st.heaters.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["tool0", "bed", "chamber"]);
    assert_eq!(st.heaters[1].actual, 59.8);
}

#[test]
fn deltas_merge_into_the_state_field_by_field() {
    let mut state = running();
    merge(
        &mut state,
        report(json!({"mc_percent": 43, "ams": {"tray_now": "1"}})),
    );
    merge(&mut state, report(json!({"ams": {"ams": []}})));
    assert_eq!(state["mc_percent"], 43);
    assert_eq!(state["layer_num"], 30);
    assert_eq!(state["ams"]["tray_now"], "1");
    assert_eq!(state["ams"]["ams"], json!([]));
}

#[test]
fn states_and_pending_commands() {
    let mut r = running();
    let phase = |r: &Map<String, Value>, pending, stopped: Option<&str>| {
        let st = map_status(r, false, pending, stopped, 0);
        (st.state, st.job.map(|j| j.phase))
    };
    assert_eq!(
        phase(&r, Some(Pending::Pause), None),
        (PrinterState::Pausing, Some(JobPhase::Pausing))
    );
    r.insert("gcode_state".into(), json!("PAUSE"));
    assert_eq!(
        phase(&r, None, None),
        (PrinterState::Paused, Some(JobPhase::Paused))
    );
    assert_eq!(
        phase(&r, Some(Pending::Stop), None),
        (PrinterState::Cancelling, Some(JobPhase::Cancelling))
    );
    r.insert("gcode_state".into(), json!("FINISH"));
    assert_eq!(
        phase(&r, None, None),
        (PrinterState::Idle, Some(JobPhase::Completed))
    );
    // A stopped print reports FAILED: cancelled if this driver stopped it, failed otherwise.
    r.insert("gcode_state".into(), json!("FAILED"));
    assert_eq!(
        phase(&r, None, Some("hearth-abc.gcode")),
        (PrinterState::Idle, Some(JobPhase::Cancelled))
    );
    assert_eq!(
        phase(&r, None, Some("hearth-other.gcode")),
        (PrinterState::Idle, Some(JobPhase::Failed))
    );
    r.insert("gcode_state".into(), json!("IDLE"));
    assert_eq!(phase(&r, None, None), (PrinterState::Idle, None));
}

#[test]
fn printer_errors_show_as_codes() {
    let mut r = running();
    r.insert("gcode_state".into(), json!("PAUSE"));
    r.insert("print_error".into(), json!(117_473_297)); // 0x07008011
    r.insert(
        "hms".into(),
        json!([{"attr": 0x0700_2000u32, "code": 0x0002_0001u32}]),
    );
    let st = map_status(&r, false, None, None, 0);
    assert_eq!(st.state, PrinterState::Paused);
    assert_eq!(
        st.error.as_deref(),
        Some("print error 0700_8011, HMS_0700_2000_0002_0001")
    );
}

#[test]
fn without_developer_mode_an_idle_printer_is_in_error_and_says_why() {
    let mut r = running();
    r.insert("gcode_state".into(), json!("IDLE"));
    r.insert("fun".into(), json!("3EC1AFFF9CFF"));
    assert_eq!(developer_mode(&r), Some(false));
    let st = map_status(&r, true, None, None, 0);
    assert_eq!(st.state, PrinterState::Error);
    assert!(st.error.unwrap().contains("Developer Mode"));
    r.insert("fun".into(), json!("3EC18FFF9CFF"));
    assert_eq!(developer_mode(&r), Some(true));
    // Someone else's print on a read-only printer is still shown as printing.
    let st = map_status(&running(), true, None, None, 0);
    assert_eq!(st.state, PrinterState::Printing);
}

#[test]
fn job_files_come_back_as_the_agents_names() {
    for (subtask, want) in [
        ("hearth-abc.gcode", Some("hearth-abc.gcode")),
        ("hearth-abc.gcode.3mf", Some("hearth-abc.gcode")),
        ("hearth-abc", Some("hearth-abc.gcode")),
        ("", None),
    ] {
        let r = report(json!({ "subtask_name": subtask }));
        assert_eq!(job_file(&r).as_deref(), want, "{subtask}");
    }
}

#[test]
fn trays_are_read_from_the_ams_and_the_external_spool() {
    let r = report(json!({
        "ams": {"ams": [
            {"id": "0", "tray": [
                {"id": "0", "tray_type": "PLA", "tray_color": "FFFFFFFF"},
                {"id": "1"},
                {"id": "2", "tray_type": "PETG", "tray_color": "FF0000FF"}
            ]},
            {"id": "1", "tray": [{"id": "3", "tray_type": "ABS", "tray_color": "000000FF"}]}
        ]},
        "vt_tray": {"id": "254", "tray_type": "TPU", "tray_color": "00FF00FF"}
    }));
    let (ams, external) = trays(&r);
    let slots: Vec<(i64, &str)> = ams.iter().map(|t| (t.slot, t.kind.as_str())).collect();
    assert_eq!(slots, [(0, "PLA"), (2, "PETG"), (7, "ABS")]);
    let external = external.unwrap();
    assert_eq!(
        (external.slot, external.color.as_deref()),
        (EXTERNAL_SPOOL, Some("00FF00"))
    );
}

#[test]
fn task_ids_fit_in_31_bits_and_differ_per_job() {
    let a = task_id("hearth-0193a1b2-0000-7000-8000-000000000001.gcode");
    let b = task_id("hearth-0193a1b2-0000-7000-8000-000000000002.gcode");
    assert_ne!(a, b);
    assert!(a <= 0x7fff_ffff && a > 0);
}

#[test]
fn file_urls_follow_the_model() {
    assert!(sdcard_url(Some("X1C")));
    assert!(sdcard_url(Some("Bambu Lab P1S")));
    assert!(sdcard_url(Some("a1 mini")));
    assert!(!sdcard_url(Some("H2D")));
    assert!(!sdcard_url(None));
}

#[test]
fn configurations_without_a_way_to_trust_the_printer_are_refused() {
    let mut c: BambuConfig = toml_like(json!({
        "host": "192.0.2.7", "serial": "01P00A123456789", "access_code": "s3cr3tAC"
    }));
    let e = BambuDriver::new(c.clone()).unwrap_err().to_string();
    assert!(e.contains("ca_file") && e.contains("fingerprint"), "{e}");
    c.fingerprint = Some("sha256:00".into());
    assert!(BambuDriver::new(c.clone()).is_err());
    c.fingerprint = Some(format!("sha256:{}", "ab".repeat(32)));
    let d = BambuDriver::new(c.clone()).unwrap();
    assert_eq!(d.describe().endpoint, "mqtts://192.0.2.7:8883");
    assert_eq!(d.describe().model, "Bambu Lab printer");
    c.model = Some("P1S".into());
    assert_eq!(
        BambuDriver::new(c.clone()).unwrap().describe().model,
        "Bambu Lab P1S"
    );
    c.model = Some("Bambu Lab X1 Carbon".into());
    assert_eq!(
        BambuDriver::new(c.clone()).unwrap().describe().model,
        "Bambu Lab X1 Carbon"
    );
    assert!(!format!("{c:?}").contains("s3cr3tAC"));
}

fn toml_like<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[test]
fn slots_are_named_as_the_printer_screen_names_them() {
    assert_eq!(slot_name(0), "A1");
    assert_eq!(slot_name(3), "A4");
    assert_eq!(slot_name(4), "B1");
    assert_eq!(slot_name(EXTERNAL_SPOOL), "Ext");
}
