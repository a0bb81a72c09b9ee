//! End to end against the real `hearthd` (in-process, SQLite in a temporary directory): enrollment and
//! approval, a job submitted through the API printed on the simulated printer, controls from the API,
//! the server stopped mid-print and started again on the same port and data, the agent killed mid-print.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hearth_agent::KeyFileIdentity;
use hearth_client::Client;
use hearth_proto::agent::JobState;
use hearth_proto::api::{Job, Printer, SchedulingFacts, SetupRequest, SubmitJobRequest};
use hearth_proto::ids::{JobId, OrgId};
use serde_json::json;

use crate::support::{PRINTER, Rig, eventually, seal};

const OWNER_SECRET: &str = "owner secret 0123";

/// `hearthd` on its own Tokio runtime and thread, so that stopping it drops *everything* it runs (its
/// listener and every open connection, WebSockets included) like killing the process would.
struct RealServer {
    addr: SocketAddr,
    data: std::path::PathBuf,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    setup_token: Option<String>,
}

fn settings(data: &Path) -> hearth_server::config::Settings {
    let mut s = hearth_server::config::Settings {
        data_dir: data.to_owned(),
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    s.auth.argon2_memory_kib = 64;
    s.auth.argon2_iterations = 1;
    s
}

impl RealServer {
    /// Starts on `addr` (`127.0.0.1:0` for a fresh port).
    async fn start(data: &Path, addr: SocketAddr) -> Self {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
        let settings = settings(data);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = hearth_server::start(settings).await.unwrap();
                let token = server.setup_token.clone();
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                let _ = ready_tx.send((listener.local_addr().unwrap(), token));
                tokio::spawn(server.run(listener, std::future::pending()));
            });
            let _ = stop_rx.recv();
            rt.shutdown_background();
        });
        let (addr, setup_token) = ready_rx.await.unwrap();
        Self {
            addr,
            data: data.to_owned(),
            stop: Some(stop),
            thread: Some(thread),
            setup_token,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Like `kill -9`: the runtime and every connection go at once.
    async fn stop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let thread = self.thread.take().unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    async fn restart(&mut self) {
        *self = Self::start(&self.data.clone(), self.addr).await;
    }
}

async fn bootstrap(server: &RealServer) -> (Client, OrgId) {
    let c = Client::new(&server.url()).unwrap();
    let out = c
        .setup(&SetupRequest {
            token: server.setup_token.clone().unwrap(),
            login: "owner".into(),
            secret: OWNER_SECRET.into(),
            org_name: "Acme Prototyping".into(),
        })
        .await
        .unwrap();
    let mut c = Client::new(&server.url()).unwrap();
    c.login("owner", OWNER_SECRET).await.unwrap();
    (c, out.org.id)
}

/// Polls the API (no event to wait on across a process boundary), bounded.
async fn job_state(owner: &Client, org: OrgId, id: JobId, want: JobState) -> Job {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(job) = owner
            .raw_get::<Job>(&format!("/api/v1/orgs/{org}/jobs/{id}"))
            .await
            && job.state == want
        {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} never became {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn submit(rig: &Rig, owner: &Client, org: OrgId, printer: &Printer, seconds: f64) -> JobId {
    let job_id = JobId::new();
    let plain = format!("; job {job_id}\nG28\n").repeat(30);
    let path = rig.dir.path().join(format!("{job_id}.age"));
    std::fs::write(&path, seal(plain.as_bytes())).unwrap();
    let hash = owner.upload_file(org, &path).await.unwrap();
    let req = SubmitJobRequest {
        label: None,
        priority: 0,
        job_id,
        printer: Some(printer.id),
        pool: None,
        blob_sha256: hash,
        manifest: json!({"job_id": job_id.to_string(), "seconds": seconds, "layers": 10}),
        facts: SchedulingFacts::default(),
    };
    let _: Job = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs"),
            &serde_json::to_value(&req).unwrap(),
        )
        .await
        .unwrap();
    job_id
}

#[tokio::test]
async fn with_the_real_server_jobs_survive_server_and_agent_restarts() {
    let mut rig = Rig::new().await;
    let mut server = RealServer::start(
        &rig.dir.path().join("server"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let (owner, org) = bootstrap(&server).await;

    // Enroll with a one-time token, then an admin approves.
    let token: serde_json::Value = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/agents/enrollment-tokens"),
            &json!(null),
        )
        .await
        .unwrap();
    let enrolled = hearth_agent::enroll::enroll(
        &reqwest::Client::new(),
        &server.url(),
        token["token"].as_str().unwrap(),
        "pi",
        &rig.state_dir(),
    )
    .await
    .unwrap();
    let agent_id = enrolled.response.agent_id;
    // The server keeps links opaque; this test's agent opens jobs with a test opener, so a placeholder
    // genesis stands in for the organisation's real one.
    let _: serde_json::Value = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/chain"),
            &json!({"seq": 0, "link": {"kind": "genesis"}}),
        )
        .await
        .unwrap();
    let _: serde_json::Value = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/agents/{agent_id}/approve"),
            &json!({"link": {"kind": "test"}}),
        )
        .await
        .unwrap();
    rig.identity = Arc::new(KeyFileIdentity::load(&rig.state_dir()).unwrap());
    rig.server = Some(server.url());
    rig.start_agent();

    let printer = eventually_printer(&owner, org).await;
    assert_eq!(printer.kind, "simulated");

    // A job through the API, paused and resumed from the API.
    let first = submit(&rig, &owner, org, &printer, 100.0).await;
    job_state(&owner, org, first, JobState::Printing).await;
    let _: Job = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs/{first}/pause"),
            &json!(null),
        )
        .await
        .unwrap();
    job_state(&owner, org, first, JobState::Paused).await;
    let _: Job = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs/{first}/resume"),
            &json!(null),
        )
        .await
        .unwrap();
    job_state(&owner, org, first, JobState::Printing).await;

    // The server goes away mid-print; the print finishes meanwhile; after the restart the job's final
    // state is right.
    rig.advance(39 + 20);
    server.stop().await;
    rig.advance(200);
    eventually("completion noted by the agent", || {
        (rig.journal_state(first).as_deref() == Some("completed")).then_some(())
    })
    .await;
    server.restart().await;
    let mut owner = Client::new(&server.url()).unwrap();
    owner.login("owner", OWNER_SECRET).await.unwrap();
    job_state(&owner, org, first, JobState::Completed).await;
    assert_eq!(rig.driver.count("start"), 1);

    // The agent is killed mid-print and restarted: it re-attaches, the job is not started twice, and a
    // cancel from the API reaches the printer.
    let second = submit(&rig, &owner, org, &printer, 100.0).await;
    job_state(&owner, org, second, JobState::Printing).await;
    rig.advance(39 + 30);
    rig.kill_agent().await;
    rig.start_agent();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p = eventually_printer(&owner, org).await;
        if p.telemetry.job_id == Some(second) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never re-attached: {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _: Job = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs/{second}/cancel"),
            &json!(null),
        )
        .await
        .unwrap();
    job_state(&owner, org, second, JobState::Cancelled).await;
    assert_eq!(
        rig.driver.count("start"),
        2,
        "{:?}",
        rig.driver.log.lock().unwrap()
    );
    assert_eq!(rig.driver.count("cancel true"), 1);
    assert!(rig.plain_files().is_empty());
    rig.stop_agent().await;
    server.stop().await;
}

async fn eventually_printer(owner: &Client, org: OrgId) -> Printer {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(printers) = owner
            .raw_get::<Vec<Printer>>(&format!("/api/v1/orgs/{org}/printers"))
            .await
            && let Some(p) = printers.into_iter().find(|p| p.name == PRINTER)
        {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "printer never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
