//! Setup, login on two machines, passphrase change, upload, print to a scripted agent that verifies
//! and opens the job, fleet commands, `keys export` with the stock `age`, and a lying server.

use std::io::Cursor;

use hearth_crypto::{JobVerifier, MemorySeenJobs, SignedJobManifest};
use hearth_proto::agent::*;
use hearth_proto::api::{FileEntry, Printer};

use crate::support::*;

type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// The next JSON line of a child's output, within 20 s; `None` at its end.
async fn next(lines: &mut Lines) -> Option<serde_json::Value> {
    tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .map(|l| serde_json::from_str(&l).unwrap())
}

fn line_value<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {out}"))
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_login_on_a_second_machine_and_passphrase_change() {
    let server = TestServer::start().await;
    let laptop = Machine::new("correct horse battery");
    let out = laptop.setup(&server).await;
    let fp = line_value(&out, "device fingerprint:").to_owned();
    let org_fp = line_value(&out, "organisation fingerprint:").to_owned();
    // The profile and the device key are private files.
    for f in ["profile.json", "device.key"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(laptop.dir.path().join(f))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{f} is readable by others");
    }
    let show: serde_json::Value =
        serde_json::from_str(&laptop.run(&["org", "show", "--json"]).await).unwrap();
    assert_eq!(show["fingerprint"], org_fp.as_str());
    assert_eq!(show["members"][0]["fingerprint"], fp.as_str());

    // A second machine unwraps the same keys and pins the same organisation.
    let desktop = Machine::new("correct horse battery");
    let out = desktop.run(&["login", &server.url, "--login", "ada"]).await;
    assert_eq!(line_value(&out, "device fingerprint:"), fp);
    assert_eq!(line_value(&out, "organisation fingerprint:"), org_fp);
    assert_eq!(
        std::fs::read(desktop.dir.path().join("device.key")).unwrap(),
        std::fs::read(laptop.dir.path().join("device.key")).unwrap()
    );
    // Logging in again keeps the pin; a server now serving another genesis is refused, even at login.
    desktop.run(&["login", &server.url, "--login", "ada"]).await;
    let mut p = desktop.profile();
    p["genesis"] = serde_json::json!("00".repeat(32));
    std::fs::write(
        desktop.dir.path().join("profile.json"),
        serde_json::to_vec(&p).unwrap(),
    )
    .unwrap();
    for args in [
        vec!["org", "show"],
        vec!["login", server.url.as_str(), "--login", "ada"],
    ] {
        let out = desktop.try_run(&args).await;
        assert!(!out.status.success(), "{args:?} accepted another genesis");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not the pinned one"), "{err}");
    }
    // A wrong organisation fingerprint refuses to pin.
    let wrong = Machine::new("correct horse battery");
    let bad_fp = "00000 ".repeat(12);
    let out = wrong
        .try_run(&[
            "login",
            &server.url,
            "--login",
            "ada",
            "--org-fingerprint",
            bad_fp.trim(),
        ])
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to trust it"));

    // Passphrase change: the old one stops working, the new one unwraps the same keys.
    let out = laptop
        .command(&["passwd"])
        .env("HEARTH_NEW_PASSPHRASE", "new staple passphrase")
        .output()
        .await
        .unwrap();
    assert_success(&out);
    let old = Machine::new("correct horse battery");
    let out = old.try_run(&["login", &server.url, "--login", "ada"]).await;
    assert!(!out.status.success(), "the old passphrase still logs in");
    let new = Machine::new("new staple passphrase");
    let out = new.run(&["login", &server.url, "--login", "ada"]).await;
    assert_eq!(line_value(&out, "device fingerprint:"), fp);
    // The API tokens made before keep working (the change ends sessions, not tokens)...
    laptop.run(&["org", "show"]).await;
    // ...unless the change revokes them: every other machine logs in again, this one goes on.
    let out = new
        .command(&["passwd", "--revoke-tokens"])
        .env("HEARTH_NEW_PASSPHRASE", "third staple passphrase")
        .output()
        .await
        .unwrap();
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("every API token of your account is revoked")
    );
    let out = laptop.try_run(&["org", "show"]).await;
    assert!(!out.status.success(), "a token made before still works");
    new.run(&["org", "show"]).await;
}

/// A job for a printer whose agent is not connected waits in the queue, and the queue says so.
#[tokio::test]
async fn a_job_for_an_offline_printer_says_why_it_waits() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let (agent, ws, _) = enrolled_agent(&server, &ada, "bench-pi", "mk4").await;
    drop((agent, ws));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = ada.run(&["printers", "--json"]).await;
        let printers: serde_json::Value = serde_json::from_str(&listed).unwrap();
        if printers[0]["telemetry"]["state"] == "offline" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{listed}");
    }
    let file = gcode(work.path(), "part.gcode", "part");
    let job = ada
        .run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await;
    let jobs = ada.run(&["jobs"]).await;
    let line = jobs
        .lines()
        .find(|l| l.starts_with(job.trim()))
        .unwrap_or_default();
    assert!(
        line.contains(" queued ")
            && line.ends_with("waiting: printer \"mk4\" is offline (its agent is not connected)"),
        "{jobs}"
    );
}

/// After a spool change at the printer, `hearth printers load` says so: a pool job waiting for that
/// material goes out, and `--reset` goes back to the agent's configuration.
#[tokio::test]
async fn loading_a_spool_lets_a_waiting_pool_job_go() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let _agent = enrolled_agent(&server, &ada, "bench-pi", "mk4").await;
    let text = std::fs::read_to_string(gcode(work.path(), "part.gcode", "part")).unwrap();
    let petg = work.path().join("petg.gcode");
    std::fs::write(
        &petg,
        text.replace("filament_type = PLA", "filament_type = PETG"),
    )
    .unwrap();
    let job = ada
        .run(&["print", petg.to_str().unwrap(), "--pool", "pla"])
        .await;
    let job = job.trim();
    let state = |jobs: &str| -> String {
        let line = jobs
            .lines()
            .find(|l| l.starts_with(job))
            .unwrap_or_default();
        line.split_whitespace()
            .nth(2) // JOB NAME STATE
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(state(&ada.run(&["jobs"]).await), "queued");

    let out = ada
        .run(&[
            "printers",
            "load",
            "mk4",
            "--material",
            "PETG",
            "--color",
            "blue",
        ])
        .await;
    assert!(out.contains("PETG blue (set)"), "{out}");
    let jobs = ada.run(&["jobs"]).await;
    assert_eq!(state(&jobs), "assigned", "{jobs}");
    let listed = ada.run(&["printers"]).await;
    assert!(listed.contains("PETG blue (set)"), "{listed}");

    // A nozzle change keeps the material; --reset goes back to the configuration.
    let out = ada
        .run(&["printers", "load", "mk4", "--nozzle", "0.6"])
        .await;
    assert!(out.contains("PETG blue (set)"), "{out}");
    let json = ada
        .run(&["printers", "load", "mk4", "--reset", "--json"])
        .await;
    let p: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (&p["material"], &p["nozzle_mm"], &p["loaded_by_member"]),
        (
            &serde_json::json!("PLA"),
            &serde_json::json!(0.4),
            &serde_json::json!(false)
        )
    );
    let out = ada
        .try_run(&["printers", "load", "nope", "--material", "PLA"])
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no printer named \"nope\""));
}

/// The material library and spool inventory from the command line: a spool weighed in and loaded
/// on a printer is what `hearth print` checks a file's grams against.
#[tokio::test]
async fn spools_are_added_weighed_loaded_and_checked_before_printing() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let mut agent = enrolled_agent(&server, &ada, "bench-pi", "mk4").await;
    let out = ada
        .run(&[
            "materials",
            "add",
            "Prusament PLA Orange",
            "--material",
            "PLA",
            "--color",
            "#FF8000",
            "--price-per-kg",
            "25",
        ])
        .await;
    assert!(
        out.contains("Prusament PLA Orange") && out.contains("1.24"),
        "{out}"
    );
    let json = ada
        .run(&[
            "spools",
            "add",
            "prusament pla orange",
            "--empty-spool",
            "200",
            "--location",
            "dry box",
            "--json",
        ])
        .await;
    let spool: hearth_proto::inventory::Spool = serde_json::from_str(&json).unwrap();
    assert_eq!(spool.remaining_grams, 1000.0);
    let id = spool.id.to_string();
    let short = &id[..13];

    // On the scale: 201 g with a 200 g spool leaves 1 g.
    let out = ada.run(&["spools", "weigh", short, "201"]).await;
    assert!(out.contains("1.0 g of 1.00 kg"), "{out}");
    let out = ada
        .run(&["printers", "load", "mk4", "--spool", short])
        .await;
    assert!(out.contains("PLA #FF8000 (set) [1.0 g left]"), "{out}");
    let listed = ada.run(&["spools"]).await;
    assert!(
        listed.contains("on mk4") && listed.contains("LOW"),
        "{listed}"
    );

    // An AMS reporting its slots: the printer list names what each holds.
    let mut t = telemetry(PrinterState::Idle);
    t.slots = vec![hearth_proto::agent::MaterialSlot {
        name: "A1".into(),
        material: "PETG".into(),
        color: None,
        remain_percent: Some(40),
        tag: None,
    }];
    send(
        &mut agent.1,
        &AgentMsg::Telemetry {
            printer: "mk4".into(),
            status: t,
        },
    )
    .await;
    let listed = eventually("the slots listed", || async {
        let out = ada.run(&["printers"]).await;
        out.contains("slots A1 PETG").then_some(out)
    })
    .await;
    assert!(listed.contains("[1.0 g left]"), "{listed}");

    // The file needs 1.25 g: printing to mk4 warns before the job goes.
    let file = gcode(work.path(), "part.gcode", "part");
    let out = ada
        .try_run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await;
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs 1.2 g of filament, and the spool on printer \"mk4\" has 1.0 g left"),
        "{stderr}"
    );

    // Forgetting where it is kept, and the brand it never had: the other fields stay.
    let json = ada
        .run(&[
            "spools", "set", short, "--clear", "location", "--low", "50", "--json",
        ])
        .await;
    let set: hearth_proto::inventory::Spool = serde_json::from_str(&json).unwrap();
    assert_eq!((set.location, set.low_grams), (None, 50.0));
    assert_eq!(set.empty_spool_grams, Some(200.0));
    let out = ada
        .try_run(&[
            "spools",
            "set",
            short,
            "--location",
            "a",
            "--clear",
            "location",
        ])
        .await;
    assert!(!out.status.success(), "given and cleared at once");
    let json = ada
        .run(&[
            "materials",
            "edit",
            "Prusament PLA Orange",
            "--clear",
            "price-per-kg",
            "--json",
        ])
        .await;
    let m: hearth_proto::inventory::Material = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (m.price_per_kg, m.color.as_deref()),
        (None, Some("#FF8000"))
    );

    // A nozzle change keeps the spool; archiving it takes it off the printer.
    let out = ada
        .run(&["printers", "load", "mk4", "--nozzle", "0.6"])
        .await;
    assert!(out.contains("[1.0 g left]"), "{out}");
    ada.run(&["spools", "archive", short]).await;
    let left: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["spools", "list", "--json"]).await).unwrap();
    assert!(left.is_empty());
    let out = ada.run(&["printers"]).await;
    assert!(!out.contains("left]"), "{out}");
    let out = ada
        .try_run(&["materials", "remove", "Prusament PLA Orange"])
        .await;
    assert!(!out.status.success(), "a spool of it is in the history");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spool(s) of the inventory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--reveal` chooses which scheduling facts leave the machine in clear: the server stores only
/// those, for files and for jobs, and a pool job is placed by them alone.
#[tokio::test]
async fn only_the_facts_a_member_reveals_reach_the_server() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let _agent = enrolled_agent(&server, &ada, "bench-pi", "mk4").await;
    let file = gcode(work.path(), "part.gcode", "part");
    let stored = |json: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(json).unwrap()["facts"].clone()
    };

    let all = ada.run(&["upload", file.to_str().unwrap(), "--json"]).await;
    assert_eq!(stored(&all)["material"], "PLA", "{all}");
    assert_eq!(stored(&all)["printer_model"], "MK4", "{all}");

    let none = ada
        .run(&[
            "upload",
            file.to_str().unwrap(),
            "--json",
            "--reveal",
            "none",
        ])
        .await;
    assert!(
        stored(&none)
            .as_object()
            .unwrap()
            .values()
            .all(serde_json::Value::is_null),
        "{none}"
    );

    let job = ada
        .run(&[
            "print",
            file.to_str().unwrap(),
            "--pool",
            "pla",
            "--json",
            "--reveal",
            "material,time",
        ])
        .await;
    let facts = stored(&job);
    assert_eq!(facts["material"], "PLA", "{job}");
    assert_eq!(facts["estimated_seconds"], 65, "{job}");
    for hidden in ["printer_model", "nozzle_mm", "color", "filament_grams"] {
        assert!(facts[hidden].is_null(), "{hidden} revealed: {job}");
    }

    // A fact the server would refuse (a 200-character model) stays sealed; the upload goes on.
    let long = work.path().join("long.gcode");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &long,
        text.replace(
            "printer_model = MK4",
            &format!("printer_model = {}", "M".repeat(200)),
        ),
    )
    .unwrap();
    let up = ada.run(&["upload", long.to_str().unwrap(), "--json"]).await;
    assert!(stored(&up)["printer_model"].is_null(), "{up}");
    assert_eq!(stored(&up)["material"], "PLA", "{up}");

    let out = ada
        .try_run(&[
            "print",
            file.to_str().unwrap(),
            "--pool",
            "pla",
            "--reveal",
            "name",
        ])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"name\" is not a scheduling fact"), "{err}");
}

/// The login secret is salted with the address typed, so logging in through another address of
/// the same server fails; the member is told which address to use (the server's configured public
/// address) or, without one, what to check.
#[tokio::test]
async fn a_login_through_another_address_names_the_right_one() {
    let server = TestServer::start_with(|s, url| s.public_url = Some(format!("{url}/"))).await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let other_address = server.url.replace("127.0.0.1", "localhost");
    let laptop = Machine::new("correct horse battery");
    let out = laptop
        .try_run(&["login", &other_address, "--login", "ada"])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "This server's address is {0}, not {other_address}: the login secret depends on the \
             address the account was created through, usually that one, so try `hearth login {0}`",
            server.url
        )),
        "{err}"
    );
    laptop.run(&["login", &server.url, "--login", "ada"]).await;

    // At the right address, a wrong passphrase is told to check both.
    let wrong = Machine::new("wrong horse battery");
    let out = wrong
        .try_run(&["login", &server.url, "--login", "ada"])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Check the passphrase, and that the account was created through this same address"
        ),
        "{err}"
    );
}

/// Enrolls an agent with `hearth agents token`, approves it with `hearth agents approve` after
/// comparing fingerprints (restricted to pool "pla"); returns it connected, with its printer
/// announced in pool "pla".
pub async fn enrolled_agent(
    server: &TestServer,
    m: &Machine,
    name: &str,
    printer: &str,
) -> (TestAgent, Ws, String) {
    enrolled_agent_in(server, m, name, printer, Some("pla"), "pla").await
}

/// [`enrolled_agent`] with the pool an admin restricts the agent to (`None`: none) and the pool
/// its printer is in.
pub async fn enrolled_agent_in(
    server: &TestServer,
    m: &Machine,
    name: &str,
    printer: &str,
    restricted_to: Option<&str>,
    printer_pool: &str,
) -> (TestAgent, Ws, String) {
    let token = m.run(&["agents", "token"]).await;
    let agent = TestAgent::enroll(&server.url, token.trim(), name).await;
    let fp = agent.keys.fingerprint().to_string();
    let mut approve = vec!["agents", "approve", name, "--fingerprint", &fp];
    if let Some(pool) = restricted_to {
        approve.extend(["--pool", pool]);
    }
    let out = m.run(&approve).await;
    assert!(out.contains(&fp), "{out}");
    let (mut ws, http_token) = agent.connect(&server.url).await;
    send(
        &mut ws,
        &AgentMsg::Printers {
            printers: vec![printer_info(printer, printer_pool)],
        },
    )
    .await;
    send(
        &mut ws,
        &AgentMsg::Telemetry {
            printer: printer.into(),
            status: telemetry(PrinterState::Idle),
        },
    )
    .await;
    let (c, org) = m.client();
    eventually("the printer to be listed", || {
        let c = c.clone();
        async move {
            let ps: Vec<Printer> = c
                .raw_get(&format!("/api/v1/orgs/{org}/printers"))
                .await
                .ok()?;
            ps.iter()
                .any(|p| p.name == printer && p.telemetry.state == PrinterState::Idle)
                .then_some(())
        }
    })
    .await;
    (agent, ws, http_token)
}

/// The agent side: receive the job, download it, verify it against the chain and open it.
pub async fn agent_opens_job(
    server: &TestServer,
    m: &Machine,
    agent: &TestAgent,
    ws: &mut Ws,
    http_token: &str,
) -> (AgentJob, Vec<u8>) {
    let ServerMsg::Job { job } = recv(ws).await else {
        panic!("expected a job")
    };
    let blob = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/agent/blobs/{}",
            server.url, job.blob_sha256
        ))
        .bearer_auth(http_token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let manifest: SignedJobManifest = serde_json::from_value(job.manifest.clone()).unwrap();
    assert_eq!(manifest.manifest.job_id, job.job_id.to_string());
    let trusted = m.trusted().await;
    let mut verifier = JobVerifier::new(&trusted, &agent.keys, MemorySeenJobs::default());
    let mut plain = Vec::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    verifier
        .open(&manifest, now, Cursor::new(&blob[..]), &mut plain)
        .unwrap();
    (job, plain)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_print_to_an_agent_control_and_open_with_stock_age() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "bracket.gcode", "a bracket");
    let original = std::fs::read(&file).unwrap();

    // A wrong fingerprint is not approved.
    let token = ada.run(&["agents", "token"]).await;
    let evil = TestAgent::enroll(&server.url, token.trim(), "evil").await;
    let other = hearth_crypto::AgentKeys::generate()
        .fingerprint()
        .to_string();
    let out = ada
        .try_run(&["agents", "approve", "evil", "--fingerprint", &other])
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
    drop(evil);

    let (agent, mut ws, http_token) = enrolled_agent(&server, &ada, "bench-pi", "mk4").await;
    let agents = ada.run(&["agents", "list"]).await;
    assert!(
        agents.contains("bench-pi") && agents.contains("approved"),
        "{agents}"
    );

    // Upload: the library gets the sealed file, sealed metadata and clear scheduling facts only.
    let file_id = ada.run(&["upload", file.to_str().unwrap()]).await;
    let (c, org) = ada.client();
    let files: Vec<FileEntry> = c
        .raw_get(&format!("/api/v1/orgs/{org}/files"))
        .await
        .unwrap();
    let entry = files
        .iter()
        .find(|f| f.id.to_string() == file_id.trim())
        .unwrap();
    assert_eq!(entry.facts.material.as_deref(), Some("PLA"));
    assert_eq!(entry.facts.printer_model.as_deref(), Some("MK4"));
    assert!(!serde_json::to_string(entry).unwrap().contains("bracket"));
    // Members see the name (opened locally) and can download and open the file.
    let listed = ada.run(&["files"]).await;
    assert!(
        listed.contains("bracket.gcode") && listed.contains("ada"),
        "{listed}"
    );
    let back = work.path().join("back.gcode");
    ada.run(&["download", file_id.trim(), "--out", back.to_str().unwrap()])
        .await;
    assert_eq!(std::fs::read(&back).unwrap(), original);

    // Print the library file by its id: opened on ada's device and sealed for the printer's
    // agent, which verifies the signed job against the chain and opens the exact bytes.
    let job_id = ada
        .run(&["print", file_id.trim(), "--printer", "mk4"])
        .await
        .trim()
        .to_owned();
    let (job, plain) = agent_opens_job(&server, &ada, &agent, &mut ws, &http_token).await;
    assert_eq!(job.job_id.to_string(), job_id);
    assert_eq!(plain, original);
    let out = ada
        .try_run(&["print", "no-such-part.gcode", "--printer", "mk4"])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "no file no-such-part.gcode here, and no file or job with that id in the organisation"
        ),
        "{out:?}"
    );

    // Live status: a bounded read of the event stream sees the job start printing. The snapshot
    // lines come after `status` subscribed, so the update is sent once the first one shows.
    let mut status = ada
        .command(&["status", "--json", "--max-events", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(status.stdout.take().unwrap()));
    let snapshot = next(&mut lines).await.unwrap();
    assert_eq!(snapshot["type"], "printer");
    assert_eq!(snapshot["printer"]["name"], "mk4");
    send(
        &mut ws,
        &AgentMsg::JobUpdate {
            job_id: job.job_id,
            state: JobState::Printing,
            message: None,
            progress: None,
            slots: Vec::new(),
        },
    )
    .await;
    let mut last = None;
    while let Some(v) = next(&mut lines).await {
        last = Some(v);
    }
    let last = last.unwrap();
    assert_eq!(last["type"], "job", "{last}");
    assert_eq!(last["job"]["state"], "printing", "{last}");
    assert!(status.wait().await.unwrap().success());

    let jobs: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["jobs", "--json"]).await).unwrap();
    assert_eq!(jobs[0]["id"], job_id.as_str());
    assert_eq!(jobs[0]["state"], "printing");
    // What the job prints is named from its sealed label, opened on ada's device; the server
    // holds the label sealed and its view of the job names nothing.
    assert_eq!(jobs[0]["name"], "bracket.gcode", "{}", jobs[0]);
    let table = ada.run(&["jobs"]).await;
    assert!(
        table.contains("printing") && table.contains("mk4") && table.contains("bracket.gcode"),
        "{table}"
    );
    let served: serde_json::Value = c
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{job_id}"))
        .await
        .unwrap();
    let label = &served["label"];
    assert!(label["meta_sha256"].is_string(), "{served}");
    assert!(!served.to_string().contains("bracket"), "{served}");
    let sealed_label = tempfile::NamedTempFile::new().unwrap();
    c.download_blob(
        org,
        &label["meta_sha256"].as_str().unwrap().parse().unwrap(),
        sealed_label.path(),
    )
    .await
    .unwrap();
    let sealed_label = std::fs::read(sealed_label.path()).unwrap();
    assert!(sealed_label.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        !sealed_label.windows(7).any(|w| w == b"bracket"),
        "the label's name is sealed"
    );
    let printers = ada.run(&["printers"]).await;
    assert!(printers.contains("Prusa MK4"), "{printers}");
    let printers: Vec<Printer> =
        serde_json::from_str(&ada.run(&["printers", "--json"]).await).unwrap();
    assert_eq!(printers[0].name, "mk4");

    // Controls reach the agent.
    ada.run(&["pause", &job_id]).await;
    assert_eq!(
        recv(&mut ws).await,
        ServerMsg::Control {
            job_id: job.job_id,
            action: JobAction::Pause
        }
    );
    ada.run(&["cancel", &job_id]).await;
    assert_eq!(
        recv(&mut ws).await,
        ServerMsg::Control {
            job_id: job.job_id,
            action: JobAction::Cancel
        }
    );

    // A pool job is sealed to the pool's agents from the verified chain.
    ada.run(&["print", file.to_str().unwrap(), "--pool", "pla"])
        .await;

    // `hearth keys export` + the stock `age` opens the uploaded file.
    let ids = work.path().join("identity.txt");
    ada.run(&["keys", "export", "--out", ids.to_str().unwrap()])
        .await;
    let sealed = work.path().join("sealed.age");
    c.download_blob(org, &entry.blob_sha256, &sealed)
        .await
        .unwrap();
    match tokio::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&ids)
        .arg(&sealed)
        .output()
        .await
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout, original);
        }
        Err(e) => {
            assert!(
                std::env::var("HEARTH_REQUIRE_PEERS").as_deref() != Ok("1"),
                "the stock age tool is required (scripts/install-age.sh): {e}"
            );
            eprintln!("skipping the stock age check: {e}");
        }
    }

    // Deleting from the library asks first (no terminal here: not deleted), names the file, and
    // takes its sealed bytes.
    let asked = ada.try_run(&["files", "delete", file_id.trim()]).await;
    assert!(!asked.status.success());
    assert!(String::from_utf8_lossy(&asked.stderr).contains("not deleted"));
    let said = ada.run(&["files", "delete", file_id.trim(), "--yes"]).await;
    assert!(said.contains("deleted bracket.gcode"), "{said}");
    assert!(!ada.run(&["files"]).await.contains("bracket.gcode"));
    assert_eq!(
        c.download_blob(org, &entry.blob_sha256, &sealed)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_serving_a_tampered_chain_is_refused() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "part.gcode", "part");

    // The server (here: anyone with its database) slips in an agent of its own, signed by a key
    // that is not an admin of this organisation.
    let (c, org) = ada.client();
    let mallory = hearth_crypto::DeviceKeys::generate();
    let (mut fake, _) = hearth_crypto::OrgChain::create(&mallory, "mallory", "Acme", 1);
    let rogue = hearth_crypto::AgentKeys::generate();
    let link = fake
        .append(
            &mallory,
            hearth_crypto::LinkAction::AddAgent {
                name: "rogue".into(),
                pool: Some("pla".into()),
                agent: rogue.public(),
            },
            1,
        )
        .unwrap()
        .clone();
    let _: serde_json::Value = c
        .raw_post(
            &format!("/api/v1/orgs/{org}/chain"),
            &serde_json::json!({"seq": 1, "link": link}),
        )
        .await
        .unwrap();
    for args in [
        vec!["upload", file.to_str().unwrap()],
        vec!["print", file.to_str().unwrap(), "--pool", "pla"],
        vec!["org", "show"],
    ] {
        let out = ada.try_run(&args).await;
        assert!(!out.status.success(), "{args:?} trusted a tampered chain");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("does not verify"), "{err}");
    }
    // Nothing was uploaded.
    let (c, org) = ada.client();
    assert!(c.blobs(org).await.unwrap().is_empty());
}

/// Peak RSS in KiB of `hearth upload` of a `mib`-MiB G-code file, as GNU time reports it.
async fn upload_peak_kib(m: &Machine, dir: &std::path::Path, mib: usize) -> u64 {
    let path = dir.join(format!("big-{mib}.gcode"));
    let line = b"G1 X10.123 Y20.456 E0.0123 F1800\n";
    let mut data = b"; generated by PrusaSlicer 2.7.0\n; filament_type = PLA\n".to_vec();
    while data.len() < mib << 20 {
        data.extend_from_slice(line);
    }
    std::fs::write(&path, &data).unwrap();
    drop(data);
    let out = tokio::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("maxrss_kib=%M")
        .arg(env!("CARGO_BIN_EXE_hearth"))
        .arg("upload")
        .arg(&path)
        .env("HEARTH_CONFIG_DIR", m.dir.path())
        .env("HEARTH_INSECURE_TEST_KDF", "1")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    err.lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `hearth upload` streams: the peak memory of a 96 MiB upload is about that of a 16 MiB one
/// (skipped where /usr/bin/time is missing). Both sizes take the same path: sealing uses fixed
/// pools of blocks for anything larger than a few MiB, while tiny files are sealed in buffers
/// sized to them, so comparing with a tiny file would measure the pools, not growth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_memory_does_not_grow_with_the_file() {
    if !std::path::Path::new("/usr/bin/time").exists() {
        eprintln!("skipping: /usr/bin/time is missing");
        return;
    }
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let small = upload_peak_kib(&ada, work.path(), 16).await;
    let big = upload_peak_kib(&ada, work.path(), 96).await;
    eprintln!("peak RSS of hearth upload: 16 MiB file {small} KiB, 96 MiB file {big} KiB");
    assert!(
        big < small + 16 * 1024,
        "peak RSS grew from {small} KiB to {big} KiB with the file"
    );
    let (c, org) = ada.client();
    let blobs = c.blobs(org).await.unwrap();
    assert!(blobs.iter().any(|b| b.size > 96 << 20), "{blobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_serving_a_substituted_epoch_key_is_refused() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    // The chain announces epoch 2 (a genuine rotation signed by ada's device) ...
    let device = hearth_crypto::DeviceKeys::from_key_file(
        &std::fs::read_to_string(ada.dir.path().join("device.key")).unwrap(),
    )
    .unwrap();
    let (c, org) = ada.client();
    let links: Vec<hearth_proto::api::ChainLink> = c
        .raw_get(&format!("/api/v1/orgs/{org}/chain"))
        .await
        .unwrap();
    let mut chain = hearth_crypto::OrgChain {
        genesis: serde_json::from_value(links[0].link.clone()).unwrap(),
        links: Vec::new(),
    };
    chain.rotate_epoch(&device, 2).unwrap();
    let _: serde_json::Value = c
        .raw_post(
            &format!("/api/v1/orgs/{org}/chain"),
            &serde_json::json!({"seq": 1, "link": chain.links[0]}),
        )
        .await
        .unwrap();
    // ... but the server serves a key of its own choosing for it, sealed to ada's device.
    let substitute = hearth_crypto::EpochKey::generate(2)
        .seal_to(&[&device.public().recipient])
        .unwrap();
    let _: serde_json::Value = c
        .raw_post(
            &format!("/api/v1/orgs/{org}/epochs"),
            &serde_json::json!({"epoch": 2, "sealed": substitute}),
        )
        .await
        .unwrap();
    let out = ada.try_run(&["keys", "export"]).await;
    assert!(
        !out.status.success(),
        "a substituted epoch key was exported"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match the recipient"), "{err}");
    // Uploads seal to the epoch the verified chain announced, never to the served key.
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "p.gcode", "p");
    ada.run(&["upload", file.to_str().unwrap()]).await;
    let files: Vec<FileEntry> = c
        .raw_get(&format!("/api/v1/orgs/{org}/files"))
        .await
        .unwrap();
    assert_eq!(files[0].manifest["manifest"]["epoch"], 2);
}

/// A pool is the printers tagged with it: a job for it is sealed to the agents behind them (not to
/// one an admin restricted to another pool), reaches one of their printers and opens there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_job_is_sealed_to_the_agents_of_the_pools_printers() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "part.gcode", "pool part");
    let original = std::fs::read(&file).unwrap();
    let (open, mut ws, http_token) =
        enrolled_agent_in(&server, &ada, "open-pi", "xl", None, "petg").await;
    let _vault = enrolled_agent_in(&server, &ada, "vault-pi", "mk4-s", Some("vault"), "abs").await;

    ada.run(&["print", file.to_str().unwrap(), "--pool", "petg"])
        .await;
    let (job, plain) = agent_opens_job(&server, &ada, &open, &mut ws, &http_token).await;
    assert_eq!(job.printer, "xl");
    assert_eq!(plain, original);
    let manifest: SignedJobManifest = serde_json::from_value(job.manifest).unwrap();
    assert_eq!(
        manifest.manifest.target.agents(),
        vec![open.keys.public().signing]
    );

    for (pool, says) in [
        (
            "abs",
            "no printer of pool \"abs\" may take its jobs: mk4-s (agent \"vault-pi\", which an admin restricted to pool \"vault\")",
        ),
        ("nylon", "no printer is in pool \"nylon\""),
    ] {
        let out = ada
            .try_run(&["print", file.to_str().unwrap(), "--pool", pool])
            .await;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
}

/// A file sliced for another material or nozzle than the printer's is still sent, with a warning
/// naming both; a file that fits gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printing_a_file_that_does_not_fit_the_printer_warns() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    // The printer: PLA loaded, 0.4 mm nozzle (`printer_info`).
    let _agent = enrolled_agent(&server, &ada, "bench-pi", "mk4").await;
    let fits = gcode(work.path(), "fits.gcode", "fits");
    let text = std::fs::read_to_string(&fits).unwrap();
    let other = work.path().join("petg.gcode");
    std::fs::write(
        &other,
        text.replace("filament_type = PLA", "filament_type = PETG")
            .replace("nozzle_diameter = 0.4", "nozzle_diameter = 0.6"),
    )
    .unwrap();
    let mk3s = work.path().join("mk3s.gcode");
    std::fs::write(
        &mk3s,
        text.replace("printer_model = MK4", "printer_model = MK3S"),
    )
    .unwrap();
    for (file, says) in [
        (&fits, vec![]),
        (
            &mk3s,
            vec!["warning: mk3s.gcode is sliced for a MK3S, and printer \"mk4\" is a Prusa MK4"],
        ),
        (
            &other,
            vec![
                "warning: petg.gcode is sliced for PETG, and printer \"mk4\" has PLA loaded",
                "warning: petg.gcode is sliced for a 0.6 mm nozzle, and printer \"mk4\" has a 0.4 mm one",
            ],
        ),
    ] {
        let out = ada
            .try_run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
            .await;
        assert!(out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(warnings, says, "{err}");
    }
    // A pool job that fits no printer of the pool is queued to wait, and the member is told why.
    let out = ada
        .try_run(&["print", other.to_str().unwrap(), "--pool", "pla"])
        .await;
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "warning: petg.gcode fits no printer of pool \"pla\": it is sliced for PETG, and \
             printer \"mk4\" has PLA loaded. The job waits in the queue until one does"
        ),
        "{err}"
    );
    // Only the model stands in the way: the warning says how to send it anyway.
    let out = ada
        .try_run(&["print", mk3s.to_str().unwrap(), "--pool", "pla"])
        .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "until one does (if \"MK3S\" is your own name for the printer profile, not its \
             model, print with `--reveal` leaving out `model`)"
        ),
        "{err}"
    );
    let out = ada
        .try_run(&[
            "print",
            mk3s.to_str().unwrap(),
            "--pool",
            "pla",
            "--reveal",
            "material,nozzle",
        ])
        .await;
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning:"));
    let fits_pool = ada
        .try_run(&["print", fits.to_str().unwrap(), "--pool", "pla"])
        .await;
    assert!(fits_pool.status.success(), "{fits_pool:?}");
    assert!(!String::from_utf8_lossy(&fits_pool.stderr).contains("warning:"));
    // The queue says why the PETG job waits (the MK3S one waits too, for its model).
    let jobs = ada.run(&["jobs"]).await;
    let waiting: Vec<&str> = jobs
        .lines()
        .filter(|l| l.contains("waiting:") && l.contains(" PETG "))
        .collect();
    assert_eq!(waiting.len(), 1, "{jobs}");
    assert!(
        waiting[0].contains(" queued ")
            && waiting[0].contains(" pool pla ")
            && waiting[0].ends_with(
            "waiting: fits no printer of pool \"pla\": it is sliced for PETG, and printer \"mk4\" has PLA loaded"
        ),
        "{jobs}"
    );
}

/// A print whose second upload (the job's sealed label) is refused, here by the organisation's
/// quota, deletes the sealed job it had uploaded: it stops counting against the quota at once
/// instead of a day later, and the member is told what failed.
#[tokio::test]
async fn a_print_that_cannot_be_queued_deletes_what_it_uploaded() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let _agent = enrolled_agent(&server, &ada, "bench-pi", "mk4").await;
    let file = gcode(work.path(), "part.gcode", "part");
    let (client, org) = ada.client();
    let used = || async { client.usage(org).await.unwrap().used_bytes };

    // One print stores the sealed job and its sealed label: so many bytes each time.
    let before = used().await;
    ada.run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await;
    let both = used().await - before;
    assert!(both > 0);

    // Room for the job again but not for its label too.
    let now = used().await;
    client.set_quota(org, now + both - 1).await.unwrap();
    let out = ada
        .try_run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("uploading the job's sealed label failed"),
        "{said}"
    );
    assert!(!said.contains("could not delete"), "{said}");
    assert_eq!(used().await, now, "the sealed job it uploaded is deleted");
    assert_eq!(client.usage(org).await.unwrap().reserved_bytes, 0);
}
