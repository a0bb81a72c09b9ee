//! The whole chain with nothing scripted: `hearth print` seals and signs a file on the member's machine,
//! the real `hearthd` queues it, the real `hearth-agent` (trusting only the verified chain) opens it and
//! drives the real OctoPrint virtual printer (and the real Moonraker, with a fake Klippy behind it, and
//! the virtual Marlin firmware on a serial port with the agent as print host, and a simulated Bambu
//! Lab printer on the real Mosquitto, given a plate project); progress is visible through the API
//! while it prints, and the job completes.

use crate::bambu_sim::Printer as BambuPrinter;
use crate::peers::{Moonraker, OctoPrint, VirtualMarlin, sample_gcode};
use crate::support::*;
use hearth_agent::config::PrinterConfig;
use hearth_agent::crypto::{TrustFile, TrustingOpener};
use hearth_agent::{AgentConfig, KeyFileIdentity, Setup};
use hearth_proto::agent::{JobState, PrinterState};
use hearth_proto::api::{Job, Printer};
use std::path::PathBuf;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_printed_with_the_cli_completes_on_the_real_octoprint_with_progress_visible() {
    // A per-line delay makes the print last long enough to watch its progress.
    let Some(octo) = OctoPrint::start(0.002).await else {
        return;
    };
    print_through_the_chain(
        hearth_drivers::DriverConfig::Octoprint(octo.config()),
        None,
        &[],
    )
    .await
    .agent
    .shutdown()
    .await;
}

/// `hearth printers heat` through the server and the agent to the real OctoPrint: the preheat for
/// the loaded PLA, a bed of its own, cooling down; a target above the agent's limits is refused
/// with them named, and a printer named twice or unknown says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_printers_heat_preheats_and_cools_the_real_octoprint() {
    let Some(octo) = OctoPrint::start(0.0).await else {
        return;
    };
    let chain = chain_to(hearth_drivers::DriverConfig::Octoprint(octo.config())).await;
    let ada = &chain.ada;
    let targets_become = async |nozzle, bed| chain.targets_become(nozzle, bed).await;
    assert_eq!(
        ada.run(&["printers", "heat", "mk3"]).await.trim(),
        "mk3: nozzle 215 °C, bed 60 °C"
    );
    targets_become(215.0, 60.0).await;
    ada.run(&["printers", "heat", "mk3", "--bed", "70"]).await;
    targets_become(215.0, 70.0).await;
    assert_eq!(
        ada.run(&["printers", "heat", "mk3", "--off"]).await.trim(),
        "mk3: nozzle off, bed off"
    );
    targets_become(0.0, 0.0).await;
    let out = ada
        .try_run(&["printers", "heat", "mk3", "--nozzle", "400"])
        .await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("0 to 285 °C for the nozzle"), "{said}");
    let out = ada.try_run(&["printers", "heat", "nope"]).await;
    assert!(!out.status.success());
    chain.agent.shutdown().await;
}

/// `hearth printers actions` and `hearth printers run` through the server and the agent to the
/// real Moonraker: the agent's configured action reaches Klipper as its G-code; an action the
/// printer does not have is refused with those it has named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_printers_run_sends_the_agents_action_to_the_real_moonraker() {
    let Some(moon) = Moonraker::start(5_000.0).await else {
        return;
    };
    let warm = hearth_agent::config::ActionConfig {
        id: "warm-bed".into(),
        label: Some("Warm the bed".into()),
        gcode: hearth_agent::config::GcodeLines::Many(vec!["M140 S44".into()]),
        while_printing: false,
        admins_only: false,
        confirm: Some("Is the bed clear?".into()),
    };
    let missing = hearth_agent::config::ActionConfig {
        id: "purge".into(),
        label: None,
        gcode: hearth_agent::config::GcodeLines::One("PURGE_LINE".into()),
        while_printing: false,
        admins_only: false,
        confirm: None,
    };
    let chain = chain_with(
        hearth_drivers::DriverConfig::Moonraker(moon.config()),
        vec![warm, missing],
    )
    .await;
    let ada = &chain.ada;
    let listed = ada.run(&["printers", "actions", "mk3"]).await;
    assert!(listed.starts_with("mk3:\n"), "{listed}");
    assert!(listed.contains("warm-bed"), "{listed}");
    assert!(listed.contains("Warm the bed"), "{listed}");
    assert!(listed.contains("while idle"), "{listed}");
    // It asks first: without a terminal to answer on, it is not run unless --yes says so.
    let out = ada.try_run(&["printers", "run", "warm-bed", "mk3"]).await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains(
            "mk3: Warm the bed: Is the bed clear? Not run (--yes runs it without asking)."
        ),
        "{said}"
    );
    // Said once the agent says Klipper ran it.
    assert_eq!(
        ada.run(&["printers", "run", "warm-bed", "mk3", "--yes"])
            .await
            .trim(),
        "mk3: Warm the bed"
    );
    chain.targets_become(0.0, 44.0).await;
    // A macro this Klipper does not have: its error, and a failure.
    let out = ada.try_run(&["printers", "run", "purge", "mk3"]).await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("mk3: purge: ") && said.contains("Unknown command"),
        "{said}"
    );
    assert_eq!(
        ada.run(&["printers", "run", "purge", "mk3", "--no-wait"])
            .await
            .trim(),
        "mk3: purge sent"
    );
    let out = ada.try_run(&["printers", "run", "format-sd", "mk3"]).await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("its agent offers warm-bed"), "{said}");
    chain.agent.shutdown().await;
}

/// `hearth printers tune` through the server and the agent to the real Moonraker while it prints:
/// Klipper takes the speed, flow and fan, and reports them back; a speed beyond the agent's
/// limits is refused with them named, and an idle printer has nothing to tune.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_printers_tune_tunes_a_print_on_the_real_moonraker() {
    // Slow enough to still be printing while it is tuned; cancelled after.
    let Some(moon) = Moonraker::start(1_000.0).await else {
        return;
    };
    let chain = chain_to(hearth_drivers::DriverConfig::Moonraker(moon.config())).await;
    let ada = &chain.ada;
    let out = ada
        .try_run(&["printers", "tune", "mk3", "--speed", "120"])
        .await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("is idle: a print is tuned only while it prints"),
        "{said}"
    );

    let cube = sample_gcode(30_000);
    let job = ada
        .run(&["print", cube.path().to_str().unwrap(), "--printer", "mk3"])
        .await;
    let (client, org) = ada.client();
    let printers_url = format!("/api/v1/orgs/{org}/printers");
    let telemetry = async || {
        let p: Vec<Printer> = client.raw_get(&printers_url).await.unwrap();
        p[0].telemetry.clone()
    };
    eventually("printing", || async {
        (telemetry().await.state == PrinterState::Printing).then_some(())
    })
    .await;
    assert_eq!(
        ada.run(&[
            "printers", "tune", "mk3", "--speed", "130", "--flow", "97", "--fan", "50"
        ])
        .await
        .trim(),
        "mk3: speed 130 %, flow 97 %, fan 50 %"
    );
    eventually("Klipper's factors and fan in the telemetry", || async {
        let t = telemetry().await;
        ((t.speed_percent, t.flow_percent, t.fan_percent) == (Some(130), Some(97), Some(50)))
            .then_some(())
    })
    .await;
    let out = ada
        .try_run(&["printers", "tune", "mk3", "--speed", "300"])
        .await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("speed 300 % is outside 25 to 200 %"),
        "{said}"
    );
    let out = ada.try_run(&["printers", "tune", "mk3"]).await;
    assert!(!out.status.success(), "nothing to tune is a usage error");
    ada.run(&["cancel", job.trim()]).await;
    chain.agent.shutdown().await;
}

/// `hearth printers temps`: the printer's temperatures as the server kept them from its agent's
/// reports, as lines, CSV and JSON; out of range is refused by the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_printers_temps_lists_what_the_printer_reported() {
    let chain = chain_to(hearth_drivers::DriverConfig::Simulated(
        hearth_drivers::simulated::SimulatedConfig::default(),
    ))
    .await;
    let ada = &chain.ada;
    // The simulator's idle heaters, at room temperature.
    let lines = ada.run(&["printers", "temps", "mk3"]).await;
    let first = lines.lines().next().unwrap_or_default();
    assert!(first.contains("Z  tool0 21.0  bed 21.0"), "{lines}");
    let csv = ada
        .run(&["printers", "temps", "mk3", "--csv", "--minutes", "5"])
        .await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "time,heater,actual,target");
    assert!(
        rows[1].ends_with(",tool0,21,0") && rows[2].ends_with(",bed,21,0"),
        "{csv}"
    );
    let json: Vec<hearth_proto::api::TemperatureSample> =
        serde_json::from_str(&ada.run(&["printers", "temps", "mk3", "--json"]).await).unwrap();
    assert_eq!(json[0].heaters.len(), 2);
    let out = ada
        .try_run(&["printers", "temps", "mk3", "--minutes", "31"])
        .await;
    assert!(!out.status.success());
    chain.agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_flow_works_on_the_real_moonraker() {
    // The fake Klippy behind the real Moonraker "prints" 5 kB of G-code per second.
    let Some(moon) = Moonraker::start(5_000.0).await else {
        return;
    };
    print_through_the_chain(
        hearth_drivers::DriverConfig::Moonraker(moon.config()),
        None,
        &[],
    )
    .await
    .agent
    .shutdown()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_flow_works_on_a_marlin_printer_on_a_serial_port() {
    // The agent streams the file itself; a per-line delay makes the print last long enough to watch.
    let Some(marlin) = VirtualMarlin::start(&["throttle=0.003"]) else {
        return;
    };
    print_through_the_chain(
        hearth_drivers::DriverConfig::Marlin(marlin.config()),
        None,
        &[],
    )
    .await
    .agent
    .shutdown()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_flow_prints_a_plate_project_on_a_bambu_lab_printer() {
    let Some(printer) = BambuPrinter::start(&["--model", "P1S", "--print-seconds", "4"]).await
    else {
        return;
    };
    let agent = print_through_the_chain(
        hearth_drivers::DriverConfig::Bambu(printer.config("P1S")),
        Some(crate::sample("cube20_synthetic_bambu.gcode.3mf")),
        &[],
    )
    .await
    .agent;
    // The printer got the project under the job's name, printed it from the matching tray, and the
    // agent deleted it from the printer's storage when the job ended.
    let uploaded = printer.event("UPLOAD ").await;
    assert!(uploaded.contains(".gcode.3mf "), "{uploaded}");
    let command = printer.command("print.project_file").await;
    assert_eq!(command["ams_mapping"], serde_json::json!([0]));
    let name = uploaded.split_whitespace().nth(1).unwrap();
    assert_eq!(printer.event("DELETE ").await, format!("DELETE {name}"));
    agent.shutdown().await;
}

/// The one-plate sample made a project of two sliced plates, as Bambu Studio exports "all
/// plates": plate 2 the same G-code (and checksum) and summary.
pub(crate) fn two_plate_project(dir: &std::path::Path) -> PathBuf {
    use std::io::{Read as _, Write as _};
    let sample = std::fs::File::open(crate::sample("cube20_synthetic_bambu.gcode.3mf")).unwrap();
    let mut zip = zip::ZipArchive::new(sample).unwrap();
    let path = dir.join("two plates.gcode.3mf");
    let mut out = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..zip.len() {
        let name = zip.by_index(i).unwrap().name().unwrap().into_owned();
        if name == "Metadata/slice_info.config" {
            let mut xml = String::new();
            zip.by_index(i).unwrap().read_to_string(&mut xml).unwrap();
            let (start, end) = (xml.find("<plate>").unwrap(), xml.find("</config>").unwrap());
            let second = xml[start..end].replace(r#""index" value="1""#, r#""index" value="2""#);
            xml.insert_str(end, &second);
            out.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            out.write_all(xml.as_bytes()).unwrap();
            continue;
        }
        if let Some(rest) = name.strip_prefix("Metadata/plate_1.") {
            let copy = zip.by_index_raw(i).unwrap();
            out.raw_copy_file_rename(copy, format!("Metadata/plate_2.{rest}"))
                .unwrap();
        }
        out.raw_copy_file(zip.by_index_raw(i).unwrap()).unwrap();
    }
    out.finish().unwrap();
    path
}

/// The one-plate sample made a project of two filaments, as Bambu Studio writes one: PLA #29B2B2
/// (3.00 g) and PETG #000000 (0.47 g), in the G-code's own summary and in `slice_info.config`, with
/// the G-code's MD5 made anew.
fn two_filament_project(dir: &std::path::Path) -> PathBuf {
    use std::io::{Read as _, Write as _};
    let sample = std::fs::File::open(crate::sample("cube20_synthetic_bambu.gcode.3mf")).unwrap();
    let mut zip = zip::ZipArchive::new(sample).unwrap();
    let read = |zip: &mut zip::ZipArchive<std::fs::File>, name: &str| {
        let mut s = String::new();
        zip.by_name(name).unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let mut gcode = read(&mut zip, "Metadata/plate_1.gcode");
    for (from, to) in [
        (
            "; filament used [mm] = 1164.31",
            "; filament used [mm] = 1006.00, 158.31",
        ),
        (
            "; filament used [cm3] = 2.80",
            "; filament used [cm3] = 2.42, 0.38",
        ),
        (
            "; filament used [g] = 3.47",
            "; filament used [g] = 3.00, 0.47",
        ),
        (
            "; filament_colour = #29B2B2",
            "; filament_colour = #29B2B2;#000000",
        ),
        (
            "; filament_density = 1.24",
            "; filament_density = 1.24;1.27",
        ),
        (
            "; filament_diameter = 1.75",
            "; filament_diameter = 1.75,1.75",
        ),
        ("; filament_type = PLA", "; filament_type = PLA;PETG"),
    ] {
        assert!(gcode.contains(from), "{from}");
        gcode = gcode.replacen(from, to, 1);
    }
    let plain = dir.join("plate_1.gcode");
    std::fs::write(&plain, &gcode).unwrap();
    let md5 = std::process::Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.md5(open(sys.argv[1],'rb').read()).hexdigest().upper(), end='')",
        ])
        .arg(&plain)
        .output()
        .unwrap();
    let md5 = String::from_utf8(md5.stdout).unwrap();
    assert_eq!(md5.len(), 32, "{md5}");
    let info = read(&mut zip, "Metadata/slice_info.config").replacen(
        r#"used_m="1.16" used_g="3.47" />"#,
        r##"used_m="1.01" used_g="3.00" />
    <filament id="2" tray_info_idx="GFG99" type="PETG" color="#000000" used_m="0.16" used_g="0.47" />"##,
        1,
    );
    let path = dir.join("two filaments.gcode.3mf");
    let mut out = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..zip.len() {
        let name = zip.by_index(i).unwrap().name().unwrap().into_owned();
        let ours = match name.as_str() {
            "Metadata/plate_1.gcode" => gcode.as_str(),
            "Metadata/plate_1.gcode.md5" => md5.as_str(),
            "Metadata/slice_info.config" => info.as_str(),
            _ => {
                out.raw_copy_file(zip.by_index_raw(i).unwrap()).unwrap();
                continue;
            }
        };
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(ours.as_bytes()).unwrap();
    }
    out.finish().unwrap();
    path
}

/// A job of two filaments on a printer with an AMS: the agent feeds each filament from a tray of
/// its material, says which with the job's end, and each inventory spool in those trays loses what
/// its own filament used, as the submitter revealed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filament_of_a_job_is_taken_from_the_spool_in_its_ams_tray() {
    let Some(printer) = BambuPrinter::start(&[
        "--model",
        "P1S",
        "--print-seconds",
        "3",
        "--ams",
        "PETG:000000FF,PLA:29B2B2FF,,",
    ])
    .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let project = two_filament_project(dir.path());
    let chain = chain_to(hearth_drivers::DriverConfig::Bambu(printer.config("P1S"))).await;
    let ada = &chain.ada;
    let mut spools = Vec::new();
    for (name, material, color, slot) in [
        ("Black PETG", "PETG", "#000000", "A1"),
        ("Teal PLA", "PLA", "#29B2B2", "A2"),
    ] {
        ada.run(&[
            "materials",
            "add",
            name,
            "--material",
            material,
            "--color",
            color,
        ])
        .await;
        let json = ada.run(&["spools", "add", name, "--json"]).await;
        let spool: hearth_proto::inventory::Spool = serde_json::from_str(&json).unwrap();
        let id = spool.id.to_string();
        let out = ada
            .run(&[
                "printers",
                "load",
                "mk3",
                "--slot",
                slot,
                "--spool",
                &id[..13],
            ])
            .await;
        assert!(
            out.contains(&format!("{slot} {material} [1.00 kg left]")),
            "{out}"
        );
        spools.push(spool.id);
    }
    let listed = ada.run(&["spools"]).await;
    assert!(listed.contains("on mk3 (A2)"), "{listed}");
    // A slot the printer does not report is taken, with a note (a typo, most likely).
    let id = spools[0].to_string();
    let out = ada
        .try_run(&[
            "printers",
            "load",
            "mk3",
            "--slot",
            "A5",
            "--spool",
            &id[..13],
        ])
        .await;
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{note}");
    assert!(
        note.contains("printer \"mk3\" reports the slots A1, A2, Ext, not A5"),
        "{note}"
    );
    ada.run(&[
        "printers",
        "load",
        "mk3",
        "--slot",
        "A1",
        "--spool",
        &id[..13],
    ])
    .await;

    chain.print(Some(project), &[]).await;
    // The printer was told PLA from A2 and PETG from A1: the trays of their materials.
    let command = printer.command("print.project_file").await;
    assert_eq!(
        command["ams_mapping"],
        serde_json::json!([1, 0]),
        "{command}"
    );
    let (client, org) = ada.client();
    let left = |id| {
        let client = client.clone();
        async move {
            client
                .spool(org, id)
                .await
                .map(|s: hearth_proto::inventory::Spool| s.remaining_grams)
                .unwrap()
        }
    };
    assert_eq!(left(spools[0]).await, 1000.0 - 0.47, "PETG in A1");
    assert_eq!(left(spools[1]).await, 1000.0 - 3.0, "PLA in A2");
    let used = client.spool_usage(org, spools[0]).await.unwrap();
    assert_eq!(
        used.iter()
            .map(|u| (u.slot.as_deref(), u.material.as_deref(), u.grams))
            .collect::<Vec<_>>(),
        [(Some("A1"), Some("PETG"), 0.47)]
    );
    let listed = ada.run(&["jobs", "--all"]).await;
    assert!(
        listed.contains("PLA+PETG"),
        "both materials revealed: {listed}"
    );
    let csv = ada.run(&["jobs", "--since", "2020-01-01", "--csv"]).await;
    assert!(csv.contains(",PLA+PETG,"), "{csv}");
    // The log says what the job took, per filament.
    let audit: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["audit", "--json"]).await).unwrap();
    let ended = audit
        .iter()
        .find(|e| e["action"] == "job.completed")
        .unwrap();
    let uses: Vec<_> = ended["details"]["uses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["slot"].as_str().unwrap(), u["spool"].as_str().unwrap()))
        .collect();
    let (petg, pla) = (spools[0].to_string(), spools[1].to_string());
    assert_eq!(uses, [("A2", pla.as_str()), ("A1", petg.as_str())]);
    chain.agent.shutdown().await;
}

/// Bambu Lab spools with their RFID tags join the inventory by themselves, in the tray they are
/// seen in; the same spool follows when it is moved to another tray, leaves its slot when taken
/// out, and is found again when put back, never added twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spools_with_rfid_tags_join_the_inventory_and_follow_their_tray() {
    const TAG: &str = "0F1E2D3C4B5A69788796A5B4C3D2E1F0";
    let Some(mut printer) = BambuPrinter::start(&[
        "--model",
        "P1S",
        "--ams",
        &format!("PLA:29B2B2FF:{TAG},PETG:000000FF,,"),
    ])
    .await
    else {
        return;
    };
    let chain = chain_to(hearth_drivers::DriverConfig::Bambu(printer.config("P1S"))).await;
    let (client, org) = chain.ada.client();
    let tagged = || async {
        let spools = client.spools(org, true).await.unwrap();
        let tagged: Vec<_> = spools
            .into_iter()
            .filter(|s| s.rfid.as_deref() == Some(TAG))
            .collect();
        assert!(tagged.len() <= 1, "one spool per tag: {tagged:?}");
        tagged.into_iter().next()
    };
    let first = eventually("the tagged spool in the inventory, in A1", || async {
        tagged().await.filter(|s| s.slot.as_deref() == Some("A1"))
    })
    .await;
    assert_eq!(first.material.name, "Bambu PLA #29B2B2");
    assert_eq!(first.material.material, "PLA");
    assert_eq!(
        first.remaining_grams, 800.0,
        "the 80 % its tag says is left"
    );
    let listed = chain.ada.run(&["printers"]).await;
    assert!(listed.contains("A1 PLA [800 g left]"), "{listed}");
    let spools = chain.ada.run(&["spools"]).await;
    assert!(
        spools.contains("on mk3 (A1)") && spools.contains("RFID"),
        "{spools}"
    );
    // Moved to the third tray: the same spool, there.
    printer.send("tray 0 empty").await;
    printer.send(&format!("tray 2 PLA:29B2B2FF:{TAG}")).await;
    let moved = eventually("the spool in A3", || async {
        tagged().await.filter(|s| s.slot.as_deref() == Some("A3"))
    })
    .await;
    assert_eq!(moved.id, first.id);
    // Taken out: out of the slot, still in the inventory; put back: the same one again.
    printer.send("tray 2 empty").await;
    eventually("the spool out of its slot", || async {
        tagged()
            .await
            .filter(|s| s.printer.is_none() && s.slot.is_none())
    })
    .await;
    printer.send(&format!("tray 1 PLA:29B2B2FF:{TAG}")).await;
    let back = eventually("the spool back, in A2", || async {
        tagged().await.filter(|s| s.slot.as_deref() == Some("A2"))
    })
    .await;
    assert_eq!(back.id, first.id);
    let materials = client.materials(org).await.unwrap();
    assert_eq!(materials.len(), 1, "{materials:?}");
    // The agent did it, and the log says so.
    let log = client.audit_page(Some(org), 0, 100).await.unwrap();
    let by_agent: Vec<&str> = log
        .entries
        .iter()
        .filter(|e| e.actor.starts_with("agent:"))
        .map(|e| e.action.as_str())
        .filter(|a| a.starts_with("spool.") || a.starts_with("printer.slot"))
        .collect();
    assert_eq!(
        by_agent,
        [
            "spool.create",
            "printer.slot_load",
            "printer.slot_unload",
            "printer.slot_load",
            "printer.slot_unload",
            "printer.slot_load"
        ]
    );
    chain.agent.shutdown().await;
}

/// A project of several sliced plates: refused before anything is sealed unless a plate is
/// chosen; with `--plate 2`, the printer gets a project of plate 2 alone and prints it, and the
/// job's label names the plate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plate_of_a_project_of_several_prints_on_a_bambu_lab_printer() {
    let Some(printer) = BambuPrinter::start(&["--model", "P1S", "--print-seconds", "4"]).await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let project = two_plate_project(dir.path());
    let chain = print_through_the_chain(
        hearth_drivers::DriverConfig::Bambu(printer.config("P1S")),
        Some(project.clone()),
        &["--plate", "2"],
    )
    .await;
    let command = printer.command("print.project_file").await;
    assert_eq!(command["param"], "Metadata/plate_2.gcode", "{command}");
    assert_eq!(command["ams_mapping"], serde_json::json!([0]));
    let listed = chain.ada.run(&["jobs", "--all", "--json"]).await;
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed[0]["name"], "two plates.gcode.3mf (plate 2)",
        "the job's sealed label names the plate: {listed}"
    );

    let file = project.to_str().unwrap();
    for (args, said) in [
        (
            &[][..],
            "two plates.gcode.3mf holds the sliced plates 1, 2, and a job prints one",
        ),
        (
            &["--plate", "3"][..],
            "two plates.gcode.3mf has no sliced plate 3: its sliced plates are 1, 2",
        ),
    ] {
        let out = chain
            .ada
            .try_run(&[&["print", file, "--printer", "mk3"][..], args].concat())
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(said), "{stderr}");
    }
    let cube = crate::sample("cube20_prusaslicer_mk3s.gcode");
    let out = chain
        .ada
        .try_run(&[
            "print",
            cube.to_str().unwrap(),
            "--printer",
            "mk3",
            "--plate",
            "1",
        ])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--plate is for a 3MF plate project"),
        "{stderr}"
    );
    let (client, org) = chain.ada.client();
    let jobs: Vec<Job> = client
        .raw_get(&format!("/api/v1/orgs/{org}/jobs"))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "nothing refused was queued: {jobs:?}");
    chain.agent.shutdown().await;
}

/// A chain that printed a job, still running.
struct Chain {
    agent: RunningAgent,
    ada: Machine,
    _server: TestServer,
}

/// The agent of a chain, still running.
pub(crate) struct RunningAgent {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), hearth_agent::RunError>>,
    /// Its state directory, kept as long as it runs.
    _state: tempfile::TempDir,
}

/// A simulated printer `name` at `time_scale` times real time, stating nothing else.
pub(crate) fn simulated(name: &str, time_scale: f64) -> PrinterConfig {
    PrinterConfig {
        name: name.into(),
        pools: vec![],
        material: None,
        color: None,
        nozzle_mm: None,
        camera: None,
        heat: Default::default(),
        tune: Default::default(),
        actions: Vec::new(),
        builtin_actions: true,
        driver: hearth_drivers::DriverConfig::Simulated(
            hearth_drivers::simulated::SimulatedConfig {
                time_scale,
                ..Default::default()
            },
        ),
    }
}

impl RunningAgent {
    /// The agent's state directory.
    pub(crate) fn state_dir(&self) -> &std::path::Path {
        self._state.path()
    }

    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Prints `file` (by default a slice of the PrusaSlicer cube) through the chain to `driver`'s printer,
/// `hearth print` given `args` too. Returns once the job completed, with the agent still running.
async fn print_through_the_chain(
    driver: hearth_drivers::DriverConfig,
    file: Option<PathBuf>,
    args: &[&str],
) -> Chain {
    let chain = chain_to(driver).await;
    chain.print(file, args).await;
    chain
}

/// A server, `ada`'s organisation and an agent driving `driver`'s printer `mk3`, online.
async fn chain_to(driver: hearth_drivers::DriverConfig) -> Chain {
    chain_with(driver, Vec::new()).await
}

/// [`chain_to`], the printer offering `actions`.
async fn chain_with(
    driver: hearth_drivers::DriverConfig,
    actions: Vec<hearth_agent::config::ActionConfig>,
) -> Chain {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;

    let agent = start_chain_agent(
        &server,
        &ada,
        PrinterConfig {
            name: "mk3".into(),
            pools: vec![],
            material: Some("PLA".into()),
            color: None,
            nozzle_mm: Some(0.4),
            camera: None,
            driver,
            heat: Default::default(),
            tune: Default::default(),
            actions,
            builtin_actions: true,
        },
    )
    .await;

    let (client, org) = ada.client();
    let printers_url = format!("/api/v1/orgs/{org}/printers");
    eventually("the printer online", || async {
        let p: Vec<Printer> = client.raw_get(&printers_url).await.unwrap();
        (p.len() == 1 && p[0].telemetry.state == PrinterState::Idle).then_some(())
    })
    .await;
    Chain {
        agent,
        ada,
        _server: server,
    }
}

impl Chain {
    /// Waits until the printer's telemetry shows these targets (°C; none counts as 0).
    async fn targets_become(&self, nozzle: f32, bed: f32) {
        let (client, org) = self.ada.client();
        let printers_url = format!("/api/v1/orgs/{org}/printers");
        eventually("the targets in the printer's telemetry", || async {
            let p: Vec<Printer> = client.raw_get(&printers_url).await.unwrap();
            let target = |name: &str| {
                p[0].telemetry
                    .heaters
                    .iter()
                    .find(|h| h.name == name)
                    .and_then(|h| h.target)
            };
            (target("tool0").unwrap_or(0.0) == nozzle && target("bed").unwrap_or(0.0) == bed)
                .then_some(())
        })
        .await
    }

    /// Prints `file` (by default a slice of the PrusaSlicer cube) on `mk3` with `hearth print`
    /// given `args` too; returns once the job completed.
    async fn print(&self, file: Option<PathBuf>, args: &[&str]) {
        let ada = &self.ada;
        let (client, org) = ada.client();
        let printers_url = format!("/api/v1/orgs/{org}/printers");
        let cube = sample_gcode(30_000);
        let file = file.unwrap_or_else(|| cube.path().to_owned());
        let print = [
            &["print", file.to_str().unwrap(), "--printer", "mk3"][..],
            args,
        ]
        .concat();
        let job_id: hearth_proto::ids::JobId = ada.run(&print).await.trim().parse().unwrap();
        let progress = eventually("progress visible through the API", || async {
            let p: Vec<Printer> = client.raw_get(&printers_url).await.unwrap();
            let t = &p[0].telemetry;
            (t.state == PrinterState::Printing && t.job_id == Some(job_id))
                .then_some(t.progress)
                .flatten()
                .filter(|x| *x > 0.0 && *x < 1.0)
        })
        .await;
        assert!(progress > 0.0);
        // The virtual printer runs the file line by line; on a loaded machine that takes a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let j: Job = client
                .raw_get(&format!("/api/v1/orgs/{org}/jobs/{job_id}"))
                .await
                .unwrap();
            assert!(
                !matches!(j.state, JobState::Failed | JobState::Refused),
                "{j:?}"
            );
            if j.state == JobState::Completed {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the job never completed: {j:?}"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// A real `hearth-agent` for `printer`, enrolled with its own keys by `ada`'s organisation, with
/// the genesis pinned and approved by `ada` (fingerprints compared), running with the
/// `TrustingOpener` (it trusts only the verified chain).
pub(crate) async fn start_chain_agent(
    server: &TestServer,
    ada: &Machine,
    printer: PrinterConfig,
) -> RunningAgent {
    // The agent enrolls with its own keys, pins the organisation's genesis, and an admin approves it.
    let state = tempfile::tempdir().unwrap();
    let token = ada.run(&["agents", "token"]).await;
    let enrolled = hearth_agent::enroll::enroll(
        &reqwest::Client::new(),
        &server.url,
        token.trim(),
        "octopi",
        state.path(),
    )
    .await
    .unwrap();
    let genesis = ada.profile()["genesis"].as_str().unwrap().parse().unwrap();
    TrustFile {
        genesis: Some(genesis),
        checkpoint: None,
    }
    .save(state.path())
    .unwrap();
    ada.run(&[
        "agents",
        "approve",
        "octopi",
        "--fingerprint",
        &enrolled.fingerprint,
    ])
    .await;

    let config = AgentConfig {
        server: server.url.clone(),
        state_dir: state.path().to_owned(),
        ca_cert: None,
        timing: Default::default(),
        printers: vec![printer],
    };
    let identity = KeyFileIdentity::load(state.path()).unwrap();
    let opener = TrustingOpener::load(state.path(), identity.keys()).unwrap();
    let setup = Setup::from_config(config, Arc::new(identity), Arc::new(opener)).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(hearth_agent::run(setup, async {
        let _ = stopped.await;
    }));
    RunningAgent {
        stop,
        task,
        _state: state,
    }
}
