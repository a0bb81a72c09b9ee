//! The quick start's first command: `hearth-demo` comes up with a live fleet, survives a restart on the
//! same data directory, and stops cleanly on Ctrl-C.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod browser;
use browser::browser;

struct Demo {
    child: Child,
    token: String,
    printers_url: String,
    /// The part the banner suggests printing.
    part: Option<std::path::PathBuf>,
    /// The server's address and the owner's login and passphrase, as the banner shows them.
    url: String,
    login: String,
    passphrase: String,
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
    let mut url = None;
    let mut owner = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(i) = line.find("Bearer ") {
            let rest = &line[i + 7..];
            token = Some(rest[..rest.find('\'').unwrap()].to_owned());
            printers_url = line.split_whitespace().last().map(str::to_owned);
        }
        if let Some(rest) = line.split("is running at ").nth(1) {
            url = Some(rest.trim().to_owned());
        }
        if let Some(rest) = line.split("owner login: ").nth(1) {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let [login, "passphrase:", pass] = words[..] {
                owner = Some((login.to_owned(), pass.to_owned()));
            }
        }
        if let Some(rest) = line.split("try `hearth print ").nth(1) {
            part = rest.split_whitespace().next().map(Into::into);
        }
        if line.contains("Stop with Ctrl-C") {
            break;
        }
    }
    let (login, passphrase) = owner.expect("the banner shows the owner's login and passphrase");
    Demo {
        child,
        token: token.expect("the banner shows an API token"),
        printers_url: printers_url.unwrap(),
        part,
        url: url.expect("the banner shows the server's address"),
        login,
        passphrase,
    }
}

/// A list from the API with the banner's token, as its `curl` line does.
fn list(d: &Demo, url: &str) -> Vec<serde_json::Value> {
    let out = Command::new("curl")
        .args([
            "-sSf",
            "-H",
            &format!("Authorization: Bearer {}", d.token),
            url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{url} did not answer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    // One printer has a second job, which waits in the fleet queue for it.
    assert!(
        jobs.iter().any(|j| j["state"] == "queued"),
        "a job waiting in the queue: {jobs:?}"
    );
    for j in &jobs {
        let secs = j["facts"]["estimated_seconds"].as_u64();
        assert!(
            secs.is_some_and(|s| s > 0),
            "a job without an estimate: {j}"
        );
        // Each carries its sealed label, as `hearth print` attaches one (`hearth ui` opens it);
        // the server's view names no part.
        assert!(j["label"]["meta_sha256"].is_string(), "no label: {j}");
        assert!(!j.to_string().contains(".gcode"), "a name in clear: {j}");
    }
    // A spool of the library on every printer, two spares on the shelf; the printers show
    // what is left on theirs.
    // And the Bambu Lab spool the x1c's AMS reports by its RFID tag, added by itself in A2.
    let spools_url = d.printers_url.replace("/printers", "/spools");
    wait_until("the RFID spool in the inventory", || {
        list(&d, &spools_url).len() == 9
    });
    let spools = list(&d, &spools_url);
    assert_eq!(
        spools.iter().filter(|s| s["printer"].is_string()).count(),
        7,
        "{spools:?}"
    );
    let tagged = spools.iter().find(|s| s["rfid"].is_string()).unwrap();
    assert_eq!(
        (tagged["slot"].as_str(), tagged["remaining_grams"].as_f64()),
        (Some("A2"), Some(450.0))
    );
    for p in printers(&d) {
        // The x1c's is in its AMS's first tray.
        let left = p["spool"]["remaining_grams"]
            .as_f64()
            .or(p["slot_spools"][0]["remaining_grams"].as_f64());
        assert!(left.is_some_and(|g| g > 0.0), "no spool on {p}");
    }
    // Maintenance reminders: a nozzle every 300 hours of printing on every printer, the voron's
    // lubrication due and the x1c's build plate soon; none holds its printer.
    let tasks = list(&d, &d.printers_url.replace("/printers", "/maintenance"));
    assert_eq!(tasks.len(), 8, "{tasks:?}");
    let status = |printer: &str, kind: &str| {
        tasks
            .iter()
            .find(|t| t["printer"] == printer && t["kind"] == kind)
            .map(|t| t["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("voron", "lubrication").as_deref(), Some("due"));
    assert_eq!(status("x1c", "build_plate").as_deref(), Some("soon"));
    for p in ["mk4-left", "mk4-right", "voron", "x1c", "xl", "ender"] {
        assert_eq!(status(p, "nozzle").as_deref(), Some("ok"), "{p}");
    }
    assert!(tasks.iter().all(|t| t["hold_when_due"] == false));
    // Every printer has a (simulated) camera whose sealed frames reach the server.
    wait_until("a sealed camera frame of every printer", || {
        printers(&d)
            .iter()
            .all(|p| p["camera"]["snapshot_at"].is_string())
    });
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
    let spools = list(&d, &d.printers_url.replace("/printers", "/spools"));
    assert_eq!(spools.len(), 9, "the stock is not added twice");
    let tasks = list(&d, &d.printers_url.replace("/printers", "/maintenance"));
    assert_eq!(tasks.len(), 8, "the maintenance tasks are not set up twice");
}

/// The quick start's promise, "the dashboard is alive": the web dashboard in a real Chromium logs
/// in with the banner's passphrase (derived in the browser, never sent), shows the six printers
/// moving live, cancels a job and finds it in the verified audit log, and logs out
/// (`web/tests/dashboard.test.mjs` holds the steps).
#[test]
fn the_dashboard_works_in_a_real_browser() {
    let Some((web, chromium)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = start(&dir.path().join("hearth-data"));
    let out = Command::new("node")
        .arg("dashboard.test.mjs")
        .current_dir(&web)
        .env("HEARTH_URL", &d.url)
        .env("HEARTH_LOGIN", &d.login)
        .env("HEARTH_PASSPHRASE", &d.passphrase)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
