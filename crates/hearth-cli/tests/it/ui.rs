//! `hearth ui`, the member's own dashboard on this machine, against a real `hearthd` and a real
//! `hearth-agent` whose printer has a camera: the page's API opens what the server cannot (the
//! camera frame, the library's names, notes and thumbnails), uploads and prints as the CLI does,
//! and refuses what a local web server must refuse (no token, a rebound host name, another
//! site). Then the page itself in a real Chromium (`web/tests/member-ui.test.mjs`) when the
//! browser is installed, and there an admin's decisions on jobs waiting for approval
//! (`web/tests/member-ui-approval.test.mjs`).

use std::sync::{Arc, Mutex};

use hearth_proto::agent::JobState;
use hearth_proto::api::{ApprovalState, FileEntry, Job, Printer};
use hearth_proto::ids::JobId;
use reqwest::Method;
use tokio::io::AsyncBufReadExt as _;

use crate::browser_run::browser_test;
use crate::camera::{camera, first_frame, pictures, print_to_the_end, timelapse_printer};
use crate::printer_chain::start_chain_agent;
use crate::support::*;

/// A running `hearth ui`: its base address and the link with its token.
struct RunningUi {
    base: String,
    link: String,
    token: String,
    _child: tokio::process::Child,
}

impl RunningUi {
    /// A request to the page's API, with the token as a bearer token (as scripts send it).
    fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// The JSON the API answers `GET path` with (200).
    async fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let res = self.api(Method::GET, path).send().await.unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }
}

async fn start_ui(ada: &Machine) -> RunningUi {
    let mut child = ada
        .command(&["ui", "--listen", "127.0.0.1:0", "--no-open"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("hearth ui says where it listens")
            .unwrap()
            .expect("hearth ui stopped")
    };
    let base = next()
        .await
        .strip_prefix("hearth ui listening on ")
        .unwrap()
        .to_owned();
    let link = next().await.strip_prefix("open ").unwrap().to_owned();
    let token = link.split_once("token=").unwrap().1.to_owned();
    RunningUi {
        base,
        link,
        token,
        _child: child,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_members_own_dashboard_opens_what_the_server_cannot() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let pics = pictures();
    let cam = camera(Arc::new(Mutex::new(pics[0].clone()))).await;
    // A printer whose camera keeps a timelapse of each job, and one job printed to the end; it
    // has a light of its own and an action for while it prints.
    let mut mk4 = timelapse_printer(&cam);
    if let hearth_drivers::DriverConfig::Simulated(s) = &mut mk4.driver {
        s.light = true;
    }
    mk4.actions = vec![hearth_agent::config::ActionConfig {
        id: "fan-off".into(),
        label: Some("Part fan off".into()),
        gcode: hearth_agent::config::GcodeLines::One("M107".into()),
        while_printing: true,
        admins_only: false,
        confirm: Some("Turn it off mid-print?".into()),
    }];
    let _agent = start_chain_agent(&server, &ada, mk4).await;
    let printer = first_frame(&ada).await;
    let work = tempfile::tempdir().unwrap();
    let part = gcode(work.path(), "part.gcode", "part");
    let lapsed = print_to_the_end(&ada, &part, "mk4", 3).await;
    let ui = start_ui(&ada).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // What a local web server must refuse: the API without the token, a wrong token, a host name
    // other than its own (a rebound name) even with the token, a request from another site.
    let no_token = http
        .get(format!("{}/api/files", ui.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let wrong = http
        .get(format!("{}/api/files", ui.base))
        .header("authorization", "Bearer 00")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let port = ui.base.rsplit(':').next().unwrap();
    let rebound = ui
        .api(Method::GET, "/api/files")
        .header("host", format!("attacker.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let cross = ui
        .api(Method::POST, "/api/files?name=x.gcode")
        .header("origin", "https://attacker.example")
        .body("G28\n")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    // The printed link turns the token into a cookie only the page's own requests carry.
    let stale = http
        .get(format!("{}/open?token=0000", ui.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    let opened = http.get(&ui.link).send().await.unwrap();
    assert_eq!(opened.status(), 303);
    let cookie = opened.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with(&format!("hearth_ui={};", ui.token))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let page = http.get(format!("{}/", ui.base)).send().await.unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let me: serde_json::Value = http
        .get(format!("{}/api/me", ui.base))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["login"], "ada");
    assert_eq!(me["role"], "owner", "the role the server decides with");
    assert_eq!(me["org"]["name"], "Acme");

    // The camera frame the agent sealed, checked and opened here.
    let printers: Vec<Printer> = ui.json("/api/printers").await;
    assert_eq!(printers.len(), 1);
    assert_eq!(printers[0].id, printer.id);
    let frame = ui
        .api(Method::GET, "/api/printers/mk4/frame")
        .send()
        .await
        .unwrap();
    assert_eq!(frame.status(), 200);
    assert_eq!(frame.headers()["content-type"], "image/png");
    assert_eq!(frame.headers()["x-agent"], "octopi");
    assert_eq!(
        frame.bytes().await.unwrap(),
        pics[0],
        "the camera's picture"
    );
    let none = ui
        .api(Method::GET, "/api/printers/nope/frame")
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
    let said: serde_json::Value = none.json().await.unwrap();
    assert!(
        said["error"].as_str().unwrap().contains("no printer named"),
        "{said}"
    );

    // An upload: analysed, sealed and signed here; the library lists it with its name, note and
    // thumbnail, which the server holds only sealed.
    let sample = std::fs::read(crate::sample("wavy_small_prusaslicer_mk3s.gcode")).unwrap();
    let up = ui
        .api(
            Method::POST,
            "/api/files?name=wavy%20%C3%A9t%C3%A9.gcode&note=for%20the%20NDA%20client",
        )
        .body(sample.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201, "{}", up.text().await.unwrap());
    let up: serde_json::Value = up.json().await.unwrap();
    let id = up["id"].as_str().unwrap().to_owned();
    assert_eq!(up["bytes"], sample.len());
    let files: Vec<serde_json::Value> = ui.json("/api/files").await;
    let f = files.iter().find(|f| f["id"] == id.as_str()).unwrap();
    assert_eq!(f["name"], "wavy été.gcode");
    assert_eq!(f["note"], "for the NDA client");
    assert_eq!(f["uploaded_by"], "ada");
    assert!(
        f["thumbnail"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    assert_eq!(f["facts"]["material"], "PLA");
    let (client, org) = ada.client();
    // Listed again, the library is not opened again: its sealed metadata was fetched once (each
    // fetch is a blob.download in the audit log).
    let downloads = || async {
        client
            .audit_page(Some(org), 0, 1000)
            .await
            .unwrap()
            .entries
            .iter()
            .filter(|e| e.action == "blob.download")
            .count()
    };
    let before = downloads().await;
    let again: Vec<serde_json::Value> = ui.json("/api/files").await;
    assert_eq!(again, files);
    assert_eq!(downloads().await, before);
    let held: Vec<FileEntry> = client
        .raw_get(&format!("/api/v1/orgs/{org}/files"))
        .await
        .unwrap();
    let held = serde_json::to_string(&held).unwrap();
    assert!(held.contains(&id) && !held.contains("wavy") && !held.contains("NDA"));
    let empty = ui
        .api(Method::POST, "/api/files?name=empty.gcode")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 400);

    // Downloaded: the very bytes, under the file's own name.
    let down = ui
        .api(Method::GET, &format!("/api/files/{id}/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 200);
    let disposition = down.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.contains("filename*=UTF-8''wavy%20%C3%A9t%C3%A9.gcode"),
        "{disposition}"
    );
    assert_eq!(down.bytes().await.unwrap(), sample);

    // Printed: opened here, sealed to the printer's agent, signed; the agent accepts and prints it.
    let refused = ui
        .api(Method::POST, &format!("/api/files/{id}/print"))
        .json(&serde_json::json!({ "printer": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    // A library project of two sliced plates prints one, which the page must choose.
    let plates = crate::printer_chain::two_plate_project(work.path());
    let project = ada.run(&["upload", plates.to_str().unwrap()]).await;
    for (plate, said) in [
        (None, "holds the sliced plates 1, 2, and a job prints one"),
        (Some(3), "has no sliced plate 3: its sliced plates are 1, 2"),
    ] {
        let refused = ui
            .api(
                Method::POST,
                &format!("/api/files/{}/print", project.trim()),
            )
            .json(&serde_json::json!({ "printer": "mk4", "plate": plate }))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 422);
        let text = refused.text().await.unwrap();
        assert!(text.contains(said), "{text}");
    }
    let jobs = ui
        .api(Method::POST, &format!("/api/files/{id}/print"))
        .json(&serde_json::json!({ "printer": "mk4" }))
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), 201, "{}", jobs.text().await.unwrap());
    let printed: serde_json::Value = jobs.json().await.unwrap();
    // What the CLI says on its error output, the page is told.
    assert!(
        printed["warnings"][0]
            .as_str()
            .unwrap()
            .contains("sliced for a MK3S"),
        "{printed}"
    );
    let jobs: Vec<Job> = serde_json::from_value(printed["jobs"].clone()).unwrap();
    assert_eq!(jobs.len(), 1);
    let job: JobId = jobs[0].id;
    eventually("the agent prints the job", || async {
        let p: Vec<Printer> = client
            .raw_get(&format!("/api/v1/orgs/{org}/printers"))
            .await
            .unwrap();
        (p[0].telemetry.job_id == Some(job)).then_some(())
    })
    .await;
    // The printer's card names what it prints, from the job's sealed label opened here; so does
    // the Jobs tab, with who signed it.
    let shown: Vec<serde_json::Value> = ui.json("/api/printers").await;
    assert_eq!(shown[0]["job"]["id"], job.to_string(), "{}", shown[0]);
    assert_eq!(shown[0]["job"]["name"], "wavy été.gcode");
    assert!(
        shown[0]["job"]["thumbnail"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    let all: Vec<serde_json::Value> = ui.json("/api/jobs").await;
    let row = all.iter().find(|j| j["id"] == job.to_string()).unwrap();
    assert_eq!(
        (&row["name"], &row["by"], &row["printer_name"]),
        (
            &serde_json::json!("wavy été.gcode"),
            &serde_json::json!("ada"),
            &serde_json::json!("mk4")
        ),
        "{row}"
    );
    let held: serde_json::Value = client
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{job}"))
        .await
        .unwrap();
    assert!(held["label"].is_object() && !held.to_string().contains("wavy"));
    // A finished job printed again: its payload opened here, sealed anew, where it went before.
    let again = ui
        .api(Method::POST, &format!("/api/jobs/{lapsed}/again"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201, "{}", again.text().await.unwrap());
    let again: serde_json::Value = again.json().await.unwrap();
    let again: Vec<Job> = serde_json::from_value(again["jobs"].clone()).unwrap();
    assert_eq!(again[0].printer, Some(printer.id));
    let all: Vec<serde_json::Value> = ui.json("/api/jobs").await;
    let row = all
        .iter()
        .find(|j| j["id"] == again[0].id.to_string())
        .unwrap();
    assert_eq!(row["name"], "part.gcode", "{row}");
    let _: Job = client
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs/{}/cancel", again[0].id),
            &serde_json::Value::Null,
        )
        .await
        .unwrap();
    // A period's jobs as CSV, with the names opened here.
    let csv = ui
        .api(Method::GET, "/api/jobs.csv?since=2000-01-01&until=")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.headers()["content-disposition"],
        "attachment; filename=\"hearth-jobs-from-2000-01-01.csv\""
    );
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("job,name,state,printer,"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("{job},wavy été.gcode,printing,mk4,,ada,"))),
        "{csv}"
    );
    let bad = ui
        .api(Method::GET, "/api/jobs.csv?since=last%20week")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    // The labels are opened once: listing the jobs again fetches no sealed object.
    let before = downloads().await;
    let again: Vec<serde_json::Value> = ui.json("/api/jobs").await;
    assert!(again.iter().any(|j| j["name"] == "wavy été.gcode"));
    assert_eq!(downloads().await, before);
    let missing = ui
        .api(
            Method::POST,
            "/api/files/0190b8a2-0000-7000-8000-000000000000/print",
        )
        .json(&serde_json::json!({ "printer": "mk4" }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Where jobs need an admin's approval, Ada approves or rejects an operator's job here.
    client.set_approval_policy(org, true).await.unwrap();
    client
        .create_user("otto", "otto's secret 0123", false)
        .await
        .unwrap();
    client
        .add_member(org, "otto", hearth_proto::Role::Operator)
        .await
        .unwrap();
    let mut otto = hearth_client::Client::new(&server.url).unwrap();
    otto.login("otto", "otto's secret 0123").await.unwrap();
    let submit = || async {
        let j: Job = otto
            .raw_post(
                &format!("/api/v1/orgs/{org}/jobs"),
                &serde_json::json!({
                    "job_id": JobId::new(), "printer": printer.id, "blob_sha256": held["blob_sha256"],
                    "manifest": {"signed": "by otto"}, "facts": {}, "priority": 0,
                }),
            )
            .await
            .unwrap();
        assert!(j.awaits_approval());
        j.id
    };
    let (first, second) = (submit().await, submit().await);
    let listed: Vec<serde_json::Value> = ui.json("/api/jobs").await;
    let row = listed
        .iter()
        .find(|j| j["id"] == first.to_string())
        .unwrap();
    assert_eq!(row["approval"]["state"], "pending", "{row}");
    let decide = |id: JobId, action: &'static str, body: serde_json::Value| {
        let req = ui
            .api(Method::POST, &format!("/api/jobs/{id}/{action}"))
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    let approved = decide(first, "approve", serde_json::Value::Null).await;
    assert_eq!(approved.status(), 200);
    let approved: Job = approved.json().await.unwrap();
    assert_eq!(approved.approval.unwrap().state, ApprovalState::Approved);
    let rejected: Job = decide(second, "reject", serde_json::json!({"reason": "not today"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rejected.state, JobState::Cancelled);
    assert_eq!(
        rejected.message.as_deref(),
        Some("rejected by ada: not today")
    );
    let twice = decide(second, "approve", serde_json::Value::Null).await;
    assert_eq!(twice.status(), 409, "{}", twice.text().await.unwrap());
    // Out of the way of what follows (its payload is the wavy job's, signed for another job id: an
    // agent given it refuses it, so it may have ended already).
    let _ = client
        .raw_post::<Job>(
            &format!("/api/v1/orgs/{org}/jobs/{first}/cancel"),
            &serde_json::Value::Null,
        )
        .await;
    client.set_approval_policy(org, false).await.unwrap();

    // The job's timelapse: listed with its printer, every frame checked as a frame of that job
    // by that printer's agent, and opened.
    let listed: Vec<serde_json::Value> = ui.json("/api/timelapses").await;
    let t = listed
        .iter()
        .find(|t| t["job_id"] == lapsed.to_string().as_str())
        .unwrap();
    assert_eq!(
        (&t["printer"], &t["name"]),
        (&serde_json::json!("mk4"), &serde_json::json!("part.gcode")),
        "{t}"
    );
    let reel: serde_json::Value = ui.json(&format!("/api/timelapses/{lapsed}")).await;
    let frames = reel["frames"].as_array().unwrap().len();
    assert!(frames >= 3, "{reel}");
    for i in [0, frames - 1] {
        let f = ui
            .api(Method::GET, &format!("/api/timelapses/{lapsed}/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(f.status(), 200);
        assert!(f.headers().contains_key("x-taken-at"));
        assert_eq!(f.bytes().await.unwrap(), pics[0]);
    }
    let past = ui
        .api(Method::GET, &format!("/api/timelapses/{lapsed}/{frames}"))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), 404);

    // A slicer set up for `hearth bridge` sends here too (one process, one address): the same
    // OctoPrint calls and key; the page's token is not what lets it in.
    let key = ada.run(&["bridge", "--show-key"]).await.trim().to_owned();
    crate::bridge::answers_as_octoprint(&ui.base, &key).await;
    let octoprint = reqwest::Client::new();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(sample.clone()).file_name("from-the-slicer.gcode"),
    );
    let sent = octoprint
        .post(format!("{}/api/files/local", ui.base))
        .header("X-Api-Key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201, "{}", sent.text().await.unwrap());
    let listed: Vec<serde_json::Value> = ui.json("/api/files").await;
    assert!(listed.iter().any(|f| f["name"] == "from-the-slicer.gcode"));

    // A spool of the inventory in the printer's first tool slot: its card names it.
    ada.run(&[
        "materials",
        "add",
        "Galaxy Black",
        "--material",
        "PETG",
        "--color",
        "#1a1a1a",
    ])
    .await;
    let json = ada.run(&["spools", "add", "Galaxy Black", "--json"]).await;
    let spool: hearth_proto::inventory::Spool = serde_json::from_str(&json).unwrap();
    ada.run(&[
        "printers",
        "load",
        "mk4",
        "--slot",
        "T0",
        "--spool",
        &spool.id.to_string(),
    ])
    .await;

    // An action the printer does not have: the server's refusal, with those it has.
    let nope = ui
        .api(Method::POST, "/api/printers/mk4/actions/format-sd")
        .send()
        .await
        .unwrap();
    assert_eq!(nope.status(), 404);
    let said: serde_json::Value = nope.json().await.unwrap();
    assert!(
        said["error"]
            .as_str()
            .unwrap()
            .contains("its agent offers fan-off, light-on, light-off"),
        "{said}"
    );

    // The page itself, in a real browser, when one is installed here.
    let sample = crate::sample("cube20_prusaslicer_mk3s.gcode");
    let browsed = browser_test(
        "member-ui.test.mjs",
        &[
            ("HEARTH_UI_LINK", &ui.link),
            ("HEARTH_SAMPLE", sample.to_str().unwrap()),
        ],
    )
    .await;
    if browsed {
        // The page's actions, each sent once: the part fan's only after its question was
        // accepted (declined first, which sent nothing).
        let audit = client.audit_page(Some(org), 0, 500).await.unwrap();
        let runs: Vec<&str> = audit
            .entries
            .iter()
            .filter(|e| e.action == "printer.action")
            .filter_map(|e| e.details["action"].as_str())
            .collect();
        assert_eq!(runs, ["fan-off", "light-off"], "{runs:?}");
    }

    // Deleted from the library through the page: gone for the server too.
    let gone = ui
        .api(Method::DELETE, &format!("/api/files/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let held: Vec<FileEntry> = client
        .raw_get(&format!("/api/v1/orgs/{org}/files"))
        .await
        .unwrap();
    assert!(held.iter().all(|f| f.id.to_string() != id));
}

/// `hearth org approval required`, in the pages of `hearth ui`: Bob, an operator, prints two
/// files, which wait; his page lists them as awaiting approval, without the buttons that decide.
/// In Ada's page (the owner) one is approved with a click and goes to the printer, the other is
/// rejected with the reason she types, and is cancelled saying who and why, for Bob too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_approves_and_rejects_waiting_jobs_in_the_page() {
    let crate::queue::OnePrinter {
        server,
        ada,
        agent,
        client,
        org,
    } = crate::queue::one_printer(50.0).await;
    ada.run(&["org", "approval", "required"]).await;
    let bob = crate::members::operator(&server, &ada, "bob").await;
    let work = tempfile::tempdir().unwrap();
    let print = async |name: &str| -> JobId {
        let file = gcode(work.path(), name, name);
        bob.run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
            .await
            .trim()
            .parse()
            .unwrap()
    };
    let (kept, dropped) = (print("keep.gcode").await, print("drop.gcode").await);
    let job_of = async |id: JobId| -> Job {
        client
            .raw_get(&format!("/api/v1/orgs/{org}/jobs/{id}"))
            .await
            .unwrap()
    };
    assert!(job_of(kept).await.awaits_approval());
    assert!(job_of(dropped).await.awaits_approval());
    let (ada_ui, bob_ui) = (start_ui(&ada).await, start_ui(&bob).await);
    let reason = "PETG on mk4 this week, not PLA — ask first";

    if !browser_test(
        "member-ui-approval.test.mjs",
        &[
            ("HEARTH_UI_LINK", &ada_ui.link),
            ("HEARTH_OPERATOR_UI_LINK", &bob_ui.link),
            ("HEARTH_APPROVE_JOB", &kept.to_string()),
            ("HEARTH_REJECT_JOB", &dropped.to_string()),
            ("HEARTH_REJECT_REASON", reason),
        ],
    )
    .await
    {
        return;
    }

    // What the server holds: Ada's decisions, and the approved job printed on mk4.
    let ada_id = client.me().await.unwrap().user.id;
    let approved = eventually("the approved job printed", || async {
        let j = job_of(kept).await;
        (j.state == JobState::Completed).then_some(j)
    })
    .await;
    let approval = approved.approval.unwrap();
    assert_eq!(
        (approval.state, approval.by),
        (ApprovalState::Approved, Some(ada_id))
    );
    let rejected = job_of(dropped).await;
    assert_eq!(rejected.state, JobState::Cancelled);
    assert_eq!(
        rejected.message.as_deref(),
        Some(format!("rejected by ada: {reason}").as_str())
    );
    let approval = rejected.approval.unwrap();
    assert_eq!(
        (approval.state, approval.by),
        (ApprovalState::Rejected, Some(ada_id))
    );
    agent.shutdown().await;
}
