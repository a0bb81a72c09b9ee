//! The quick start's first command: `hearth-demo` comes up with a live fleet, survives a restart on the
//! same data directory, and stops cleanly on Ctrl-C.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Demo {
    child: Child,
    token: String,
    printers_url: String,
    /// The part the banner suggests printing.
    part: Option<std::path::PathBuf>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the demo and read its banner (it is printed once everything is set up: no sleeping).
fn start(data: &std::path::Path) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth-demo"))
        .args(["--listen", "127.0.0.1:0", "--time-scale", "5", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut token = None;
    let mut printers_url = None;
    let mut part = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(i) = line.find("Bearer ") {
            let rest = &line[i + 7..];
            token = Some(rest[..rest.find('\'').unwrap()].to_owned());
            printers_url = line.split_whitespace().last().map(str::to_owned);
        }
        if let Some(rest) = line.split("try `hearth print ").nth(1) {
            part = rest.split_whitespace().next().map(Into::into);
        }
        if line.contains("Stop with Ctrl-C") {
            break;
        }
    }
    Demo {
        child,
        token: token.expect("the banner shows an API token"),
        printers_url: printers_url.unwrap(),
        part,
    }
}

/// A list from the API with the banner's token, as its `curl` line does.
fn list(d: &Demo, url: &str) -> Vec<serde_json::Value> {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            &format!("Authorization: Bearer {}", d.token),
            url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{url} answered");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn printers(d: &Demo) -> Vec<serde_json::Value> {
    list(d, &d.printers_url)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[test]
fn the_demo_shows_a_live_fleet_and_restarts_on_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hearth-data");
    let d = start(&data);
    wait_until("six printers, some printing sealed jobs", || {
        let p = printers(&d);
        p.len() == 6
            && p.iter()
                .filter(|p| p["telemetry"]["state"] == "printing")
                .count()
                >= 2
    });
    // The demo's jobs reveal what `hearth print` reveals of a file, from the same analysis: the
    // queue shows their estimated time.
    let jobs = list(&d, &d.printers_url.replace("/printers", "/jobs"));
    assert!(jobs.len() >= 2, "{jobs:?}");
    for j in &jobs {
        let secs = j["facts"]["estimated_seconds"].as_u64();
        assert!(
            secs.is_some_and(|s| s > 0),
            "a job without an estimate: {j}"
        );
    }
    // The part the banner suggests fits the printers of pool "pla", as `hearth print` judges it
    // from the file (the server places the job by the same rule).
    let part = d.part.clone().expect("the banner suggests a part to print");
    let report =
        hearth_printfile::analyze(std::fs::File::open(&part).unwrap(), &Default::default())
            .unwrap()
            .scheduling_facts();
    let facts = hearth_proto::api::SchedulingFacts {
        printer_model: report.printer_model,
        nozzle_mm: report.nozzle_diameter_mm.map(|n| n as f32),
        material: report.material_type,
        ..Default::default()
    };
    assert_eq!(facts.material.as_deref(), Some("PLA"));
    let mut fitting: Vec<String> = printers(&d)
        .into_iter()
        .map(|p| serde_json::from_value::<hearth_proto::api::Printer>(p).unwrap())
        .filter(|p| p.pools.iter().any(|q| q == "pla"))
        .filter(|p| hearth_proto::fit::misfits(&facts, p.into()).is_empty())
        .map(|p| p.name)
        .collect();
    fitting.sort();
    assert_eq!(fitting, ["mk4-left", "mk4-right"], "{facts:?}");
    let mut d = d;
    let pid = d.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = d.child.wait().unwrap();
    assert!(status.success(), "Ctrl-C stops the demo cleanly: {status}");

    // Same data directory: the organisation, agent and printers are reused, not created again.
    let d = start(&data);
    wait_until("the same six printers back online", || {
        let p = printers(&d);
        p.len() == 6 && p.iter().all(|p| p["telemetry"]["state"] != "offline")
    });
}
