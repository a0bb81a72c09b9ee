//! Agents, printers and jobs through the real WebSocket hub, with a scripted agent that signs its
//! challenge with a real Ed25519 key.

use crate::support::*;
use base64::Engine;
use ed25519_dalek::Signer;
use futures::{SinkExt, StreamExt};
use hearth_proto::agent::*;
use hearth_proto::api::{Job, LoadedRequest, Printer, SchedulingFacts, SubmitJobRequest};
use hearth_proto::ids::{AgentId, BlobHash, JobId, OrgId};
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct FakeAgent {
    pub(crate) id: AgentId,
    pub(crate) key: ed25519_dalek::SigningKey,
}

pub(crate) async fn recv(ws: &mut Ws) -> ServerMsg {
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("server answered")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let msg: ServerMsg = serde_json::from_str(&t).unwrap();
            if msg != ServerMsg::Ping {
                return msg;
            }
        }
    }
}

pub(crate) async fn send(ws: &mut Ws, m: &AgentMsg) {
    ws.send(Message::Text(serde_json::to_string(m).unwrap().into()))
        .await
        .unwrap();
}

impl FakeAgent {
    async fn enroll(server: &TestServer, owner: &hearth_client::Client, org: OrgId) -> FakeAgent {
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let http = reqwest::Client::new();
        let token: serde_json::Value = http_json(
            owner,
            &format!("/api/v1/orgs/{org}/agents/enrollment-tokens"),
            serde_json::json!(null),
        )
        .await;
        let resp = http
            .post(format!("{}/api/v1/agents/enroll", server.url))
            .json(&serde_json::json!({
                "token": token["token"],
                "name": "bench-pi",
                "signing_key": base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()),
                "age_recipient": "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: serde_json::Value = resp.json().await.unwrap();
        let again = http
            .post(format!("{}/api/v1/agents/enroll", server.url))
            .json(&serde_json::json!({"token": token["token"], "name": "x", "signing_key": "AAAA", "age_recipient": "age1x"}))
            .send()
            .await
            .unwrap();
        assert!(
            again.status().is_client_error(),
            "an enrollment token works once"
        );
        FakeAgent {
            id: body["agent_id"].as_str().unwrap().parse().unwrap(),
            key,
        }
    }

    pub(crate) async fn connect(&self, server: &TestServer) -> Result<(Ws, String), ServerMsg> {
        let url = format!(
            "{}/api/v1/agent/connect",
            server.url.replace("http://", "ws://")
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let ServerMsg::Challenge { nonce } = recv(&mut ws).await else {
            panic!("expected a challenge")
        };
        let sig = self.key.sign(&auth_message(&nonce));
        send(
            &mut ws,
            &AgentMsg::Auth {
                agent_id: self.id,
                signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
                agent_version: "test".into(),
            },
        )
        .await;
        match recv(&mut ws).await {
            ServerMsg::Welcome { http_token, .. } => Ok((ws, http_token)),
            other => Err(other),
        }
    }
}

/// A signed pool-job manifest as the server reads it: the pool and the agents' signing keys (hex).
pub(crate) fn pool_manifest(pool: &str, agents: &[&FakeAgent]) -> serde_json::Value {
    let keys: Vec<String> = agents
        .iter()
        .map(|a| hex::encode(a.key.verifying_key().as_bytes()))
        .collect();
    serde_json::json!({
        "manifest": {"target": {"pool": {"pool": pool, "agents": keys}}},
        "signature": "by the member device",
    })
}

/// Places the organisation chain's genesis (approvals need it first).
pub(crate) async fn genesis(owner: &hearth_client::Client, org: OrgId) {
    http_json(
        owner,
        &format!("/api/v1/orgs/{org}/chain"),
        serde_json::json!({"seq": 0, "link": {"kind": "genesis"}}),
    )
    .await;
}

/// An agent enrolled and approved at chain position `seq` (the genesis must be in place),
/// connected, with `printers` announced idle.
pub(crate) async fn approved_agent(
    server: &TestServer,
    owner: &hearth_client::Client,
    org: OrgId,
    seq: i64,
    printers: Vec<PrinterInfo>,
) -> (FakeAgent, Ws) {
    let agent = FakeAgent::enroll(server, owner, org).await;
    http_json(
        owner,
        &format!("/api/v1/orgs/{org}/agents/{}/approve", agent.id),
        serde_json::json!({"seq": seq, "link": {"kind": "test"}}),
    )
    .await;
    let (mut ws, _) = agent.connect(server).await.unwrap();
    let names: Vec<String> = printers.iter().map(|p| p.name.clone()).collect();
    send(&mut ws, &AgentMsg::Printers { printers }).await;
    for printer in names {
        let status = idle();
        send(&mut ws, &AgentMsg::Telemetry { printer, status }).await;
    }
    // Handled before the caller goes on (who may drop this connection at once).
    send(&mut ws, &AgentMsg::Ping).await;
    assert_eq!(recv(&mut ws).await, ServerMsg::Pong);
    (agent, ws)
}

/// A request for a new pool job of `blob`, revealing no facts.
pub(crate) fn pool_job(
    pool: &str,
    blob: &BlobHash,
    manifest: serde_json::Value,
) -> SubmitJobRequest {
    SubmitJobRequest {
        label: None,
        priority: 0,
        job_id: JobId::new(),
        printer: None,
        pool: Some(pool.into()),
        blob_sha256: blob.clone(),
        manifest,
        facts: SchedulingFacts::default(),
    }
}

/// Submits `job` and returns the queue's answer (after the dispatch the submission runs).
pub(crate) async fn submit_job(
    owner: &hearth_client::Client,
    org: OrgId,
    job: &SubmitJobRequest,
) -> Job {
    owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs"),
            &serde_json::to_value(job).unwrap(),
        )
        .await
        .unwrap()
}

/// The job the server offers next on `ws`, as (job id, printer name).
pub(crate) async fn offered(ws: &mut Ws) -> (JobId, String) {
    let ServerMsg::Job { job } = recv(ws).await else {
        panic!("expected a job")
    };
    (job.job_id, job.printer)
}

/// Lists the organisation's printers until `done` holds for them (10 s at most).
pub(crate) async fn printers_until(
    owner: &hearth_client::Client,
    org: OrgId,
    what: &str,
    done: impl Fn(&[Printer]) -> bool,
) -> Vec<Printer> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let printers: Vec<Printer> = owner
            .raw_get(&format!("/api/v1/orgs/{org}/printers"))
            .await
            .unwrap();
        if done(&printers) {
            return printers;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never showed: {printers:?}"
        );
        tokio::task::yield_now().await;
    }
}

/// POST with the owner's session through the typed client's transport (CSRF included).
async fn http_json(
    c: &hearth_client::Client,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    c.raw_post(path, &body).await.unwrap()
}

pub(crate) fn printer_info(name: &str, pool: &str) -> PrinterInfo {
    PrinterInfo {
        name: name.into(),
        kind: "simulated".into(),
        model: "Prusa MK4".into(),
        nozzle_mm: Some(0.4),
        material: Some("PLA".into()),
        color: Some("black".into()),
        pools: vec![pool.into()],
        can_pause: true,
        camera: false,
        heat: None,
        tune: None,
        actions: Vec::new(),
    }
}

/// The agent reports `printer` idle.
/// `agent` connects (again) to `server`, announces `printer` (of pool `pool`) and reports it idle.
pub(crate) async fn reconnect_idle(
    agent: &FakeAgent,
    server: &TestServer,
    printer: &str,
    pool: &str,
) -> Ws {
    let (mut ws, _) = agent.connect(server).await.unwrap();
    send(
        &mut ws,
        &AgentMsg::Printers {
            printers: vec![printer_info(printer, pool)],
        },
    )
    .await;
    report_idle(&mut ws, printer).await;
    ws
}

pub(crate) async fn report_idle(ws: &mut Ws, printer: &str) {
    send(
        ws,
        &AgentMsg::Telemetry {
            printer: printer.into(),
            status: idle(),
        },
    )
    .await;
}

/// The agent reports `printer` as printing, and the API shows it so.
pub(crate) async fn report_printing(
    ws: &mut Ws,
    owner: &hearth_client::Client,
    org: OrgId,
    printer: &str,
) {
    let status = PrinterTelemetry {
        state: PrinterState::Printing,
        ..idle()
    };
    send(
        ws,
        &AgentMsg::Telemetry {
            printer: printer.into(),
            status,
        },
    )
    .await;
    printers_until(owner, org, "printing", |p| {
        p.iter()
            .any(|p| p.name == printer && p.telemetry.state == PrinterState::Printing)
    })
    .await;
}

/// The next message the agent is sent that is not a keep-alive or a job.
pub(crate) async fn next_command(ws: &mut Ws) -> ServerMsg {
    loop {
        match recv(ws).await {
            ServerMsg::Ping | ServerMsg::Job { .. } => {}
            other => return other,
        }
    }
}

pub(crate) fn idle() -> PrinterTelemetry {
    PrinterTelemetry {
        state: PrinterState::Idle,
        heaters: vec![Heater {
            name: "bed".into(),
            actual: 24.0,
            target: None,
        }],
        job_id: None,
        progress: None,
        layer: None,
        total_layers: None,
        elapsed_seconds: None,
        remaining_seconds: None,
        error: None,
        slots: Vec::new(),
        light: None,
        speed_percent: None,
        flow_percent: None,
        fan_percent: None,
    }
}

#[tokio::test]
async fn an_approved_agent_receives_jobs_reports_progress_and_takes_controls() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let agent = FakeAgent::enroll(&server, &owner, org).await;

    // Pending agents are refused until an admin approves them.
    match agent.connect(&server).await {
        Err(ServerMsg::Error {
            code, fatal: true, ..
        }) => assert_eq!(code, "forbidden"),
        _ => panic!("a pending agent must be refused"),
    }
    // A wrong key is refused too.
    let impostor = FakeAgent {
        id: agent.id,
        key: ed25519_dalek::SigningKey::from_bytes(&rand::random()),
    };
    // Approval needs the organisation's genesis first, and lands exactly where it was signed for.
    let approve = format!("/api/v1/orgs/{org}/agents/{}/approve", agent.id);
    let early = owner
        .raw_post::<serde_json::Value>(&approve, &serde_json::json!({"link": {"kind": "test"}}))
        .await;
    assert_eq!(early.unwrap_err().status(), Some(409));
    genesis(&owner, org).await;
    let stale = owner
        .raw_post::<serde_json::Value>(
            &approve,
            &serde_json::json!({"seq": 3, "link": {"kind": "test"}}),
        )
        .await;
    assert_eq!(stale.unwrap_err().status(), Some(409));
    http_json(
        &owner,
        &approve,
        serde_json::json!({"seq": 1, "link": {"kind": "test"}}),
    )
    .await;
    assert!(matches!(
        impostor.connect(&server).await,
        Err(ServerMsg::Error { fatal: true, .. })
    ));

    let (mut ws, http_token) = agent.connect(&server).await.unwrap();
    send(
        &mut ws,
        &AgentMsg::Printers {
            printers: vec![printer_info("mk4-left", "pla")],
        },
    )
    .await;
    report_idle(&mut ws, "mk4-left").await;

    let blob = make_file(server.dir.path(), "job.age", 5000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let job_id = JobId::new();
    let submit = SubmitJobRequest {
        label: None,
        priority: 0,
        job_id,
        printer: None,
        pool: Some("pla".into()),
        blob_sha256: hash.clone(),
        manifest: pool_manifest("pla", &[&agent]),
        facts: SchedulingFacts {
            material: Some("PLA".into()),
            filament_grams: Some(12.5),
            ..Default::default()
        },
    };
    let job: Job = serde_json::from_value(
        http_json(
            &owner,
            &format!("/api/v1/orgs/{org}/jobs"),
            serde_json::to_value(&submit).unwrap(),
        )
        .await,
    )
    .unwrap();
    assert_eq!(job.id, job_id);

    // The pool job reaches the idle printer's agent with its manifest untouched.
    let ServerMsg::Job { job: offered } = recv(&mut ws).await else {
        panic!("expected the job")
    };
    assert_eq!(
        (offered.job_id, offered.printer.as_str(), offered.blob_size),
        (job_id, "mk4-left", 5000)
    );
    assert_eq!(offered.manifest, submit.manifest);

    // The agent downloads the sealed payload with its connection token.
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/agent/blobs/{}", server.url, hash);
    let bytes = http
        .get(&url)
        .bearer_auth(&http_token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(BlobHash::of(&bytes), hash);
    assert_eq!(
        http.get(&url)
            .bearer_auth("nope")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    for st in [JobState::Transferring, JobState::Printing] {
        send(
            &mut ws,
            &AgentMsg::JobUpdate {
                job_id,
                state: st,
                message: None,
                progress: None,
                slots: Vec::new(),
            },
        )
        .await;
    }
    let mut printing = idle();
    printing.state = PrinterState::Printing;
    printing.job_id = Some(job_id);
    printing.progress = Some(0.25);
    send(
        &mut ws,
        &AgentMsg::Telemetry {
            printer: "mk4-left".into(),
            status: printing,
        },
    )
    .await;

    // Members see progress; a pause reaches the agent.
    let printers = printers_until(&owner, org, "the job's progress", |p| {
        p.first()
            .is_some_and(|p| p.telemetry.progress == Some(0.25))
    })
    .await;
    assert_eq!(printers[0].material.as_deref(), Some("PLA"));
    let j: Job = serde_json::from_value(
        http_json(
            &owner,
            &format!("/api/v1/orgs/{org}/jobs/{job_id}/pause"),
            serde_json::json!(null),
        )
        .await,
    )
    .unwrap();
    assert_eq!(j.state, JobState::Printing);
    assert_eq!(
        recv(&mut ws).await,
        ServerMsg::Control {
            job_id,
            action: JobAction::Pause
        }
    );

    // History is kept as hourly rollups of time per state.
    let printers: Vec<Printer> = owner
        .raw_get(&format!("/api/v1/orgs/{org}/printers"))
        .await
        .unwrap();
    let history: Vec<hearth_proto::api::HistoryBucket> = owner
        .raw_get(&format!(
            "/api/v1/orgs/{org}/printers/{}/history?hours=2",
            printers[0].id
        ))
        .await
        .unwrap();
    assert!(
        history
            .iter()
            .any(|b| b.state == "printing" && b.seconds > 0.0),
        "{history:?}"
    );

    // A dropped connection: the unfinished job is offered again on reconnect, printers show offline meanwhile.
    drop(ws);
    printers_until(&owner, org, "the printer offline", |p| {
        p.first()
            .is_some_and(|p| p.telemetry.state == PrinterState::Offline)
    })
    .await;
    let (mut ws, _) = agent.connect(&server).await.unwrap();
    let ServerMsg::Job { job: again } = recv(&mut ws).await else {
        panic!("expected the job again")
    };
    assert_eq!(again.job_id, job_id);
    send(
        &mut ws,
        &AgentMsg::JobUpdate {
            job_id,
            state: JobState::Completed,
            message: None,
            progress: None,
            slots: Vec::new(),
        },
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let j: Job = owner
            .raw_get(&format!("/api/v1/orgs/{org}/jobs/{job_id}"))
            .await
            .unwrap();
        if j.state == JobState::Completed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "job never completed");
        tokio::task::yield_now().await;
    }
    let actions: Vec<String> = owner
        .audit_page(Some(org), 0, 200)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "agent.enroll",
        "agent.approve",
        "job.submit",
        "job.dispatch",
        "job.pause",
        "job.printing",
        "job.completed",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    // Finished jobs cannot be controlled.
    let e = owner
        .raw_post::<serde_json::Value>(
            &format!("/api/v1/orgs/{org}/jobs/{job_id}/cancel"),
            &serde_json::json!(null),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
}

/// Stopping the server (SIGTERM, or a restart) must not wait for a dashboard's event stream, which
/// never ends by itself, and must tell agents it is going away, so they reconnect; their sessions
/// end before the database closes.
#[tokio::test]
async fn stopping_the_server_ends_event_streams_and_agent_sessions() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let agent = FakeAgent::enroll(&server, &owner, org).await;
    genesis(&owner, org).await;
    http_json(
        &owner,
        &format!("/api/v1/orgs/{org}/agents/{}/approve", agent.id),
        serde_json::json!({"seq": 1, "link": {"kind": "test"}}),
    )
    .await;
    let (mut ws, _) = agent.connect(&server).await.unwrap();
    let mut events = owner
        .raw_get_response(&format!("/api/v1/orgs/{org}/events"))
        .await
        .unwrap();

    server.stop().await;

    // The agent is told why the connection ends.
    let close = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("the agent's session is closed");
    let frame = close.expect("a close frame with a code");
    assert_eq!(
        frame.code,
        tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away
    );
    // The event stream ended cleanly rather than being cut.
    while let Some(chunk) = events.chunk().await.expect("the event stream ends cleanly") {
        let _ = chunk;
    }
}

/// A printer that reports filament slots (a Bambu Lab AMS) has every slot's material loaded: a
/// pool job for a material its configuration does not name goes to it when a slot holds it, and
/// waits when none does, until a slot is loaded with it.
#[tokio::test]
async fn a_pool_job_fits_a_material_in_any_reported_slot() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let (agent, mut ws) =
        approved_agent(&server, &owner, org, 1, vec![printer_info("p1s", "farm")]).await;
    let slot = |name: &str, material: &str| hearth_proto::agent::MaterialSlot {
        name: name.into(),
        material: material.into(),
        color: Some("FFFFFF".into()),
        remain_percent: Some(80),
        tag: None,
    };
    let with_slots = |slots| {
        let mut t = idle();
        t.slots = slots;
        AgentMsg::Telemetry {
            printer: "p1s".into(),
            status: t,
        }
    };
    send(
        &mut ws,
        &with_slots(vec![slot("A1", "PLA"), slot("A2", "PETG")]),
    )
    .await;
    let seen = printers_until(&owner, org, "the AMS slots", |p| {
        p.len() == 1 && p[0].telemetry.slots.len() == 2
    })
    .await;
    assert_eq!(seen[0].telemetry.slots[1].remain_percent, Some(80));
    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let job = |material: &str| SubmitJobRequest {
        label: None,
        priority: 0,
        facts: SchedulingFacts {
            material: Some(material.into()),
            ..SchedulingFacts::default()
        },
        ..pool_job("farm", &hash, pool_manifest("farm", &[&agent]))
    };
    // The printer's configuration says PLA; PETG sits in slot A2.
    let petg = submit_job(&owner, org, &job("PETG")).await;
    assert_eq!(offered(&mut ws).await, (petg.id, "p1s".into()));
    send(
        &mut ws,
        &AgentMsg::JobUpdate {
            job_id: petg.id,
            state: JobState::Completed,
            message: None,
            progress: None,
            slots: Vec::new(),
        },
    )
    .await;
    // No slot holds ABS: the job waits, and goes once A1 is loaded with it.
    let abs = submit_job(&owner, org, &job("ABS")).await;
    assert_eq!(abs.state, JobState::Queued, "{abs:?}");
    send(
        &mut ws,
        &with_slots(vec![slot("A1", "ABS"), slot("A2", "PETG")]),
    )
    .await;
    assert_eq!(offered(&mut ws).await, (abs.id, "p1s".into()));
}

/// A pool job goes to a printer of the pool that it fits (material, nozzle and model revealed by
/// its submitter against the printer's configuration), and one that fits none waits until a
/// printer is reconfigured.
#[tokio::test]
async fn a_pool_job_goes_to_a_printer_of_the_pool_that_it_fits() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let pla = printer_info("mk4-pla", "farm");
    let petg = PrinterInfo {
        material: Some("PETG".into()),
        ..printer_info("mk4-petg", "farm")
    };
    let (agent, mut ws) =
        approved_agent(&server, &owner, org, 1, vec![pla.clone(), petg.clone()]).await;
    printers_until(&owner, org, "two idle printers", |p| {
        p.len() == 2 && p.iter().all(|p| p.telemetry.state == PrinterState::Idle)
    })
    .await;

    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let submit = |facts: SchedulingFacts| async {
        let job = SubmitJobRequest {
            label: None,
            priority: 0,
            facts,
            ..pool_job("farm", &hash, pool_manifest("farm", &[&agent]))
        };
        submit_job(&owner, org, &job).await
    };

    // Facts that every dispatch compares must be bounded and sane.
    for (facts, why) in [
        (
            SchedulingFacts {
                printer_model: Some("MK4 ".repeat(40)),
                ..SchedulingFacts::default()
            },
            "a 160-character model",
        ),
        (
            SchedulingFacts {
                material: Some("PLA\n".into()),
                ..SchedulingFacts::default()
            },
            "a control character",
        ),
        (
            SchedulingFacts {
                nozzle_mm: Some(-0.4),
                ..SchedulingFacts::default()
            },
            "a negative nozzle",
        ),
    ] {
        let job = SubmitJobRequest {
            label: None,
            priority: 0,
            facts,
            ..pool_job("farm", &hash, pool_manifest("farm", &[&agent]))
        };
        let r = owner
            .raw_post::<serde_json::Value>(
                &format!("/api/v1/orgs/{org}/jobs"),
                &serde_json::to_value(&job).unwrap(),
            )
            .await;
        assert_eq!(r.unwrap_err().status(), Some(422), "{why}");
    }

    // PETG, sliced for an MK4 with a 0.4 mm nozzle: the PETG printer, listed second, takes it.
    let first = submit(SchedulingFacts {
        printer_model: Some("MK4".into()),
        material: Some("PETG".into()),
        nozzle_mm: Some(0.4),
        ..SchedulingFacts::default()
    })
    .await;
    assert_eq!(offered(&mut ws).await, (first.id, "mk4-petg".into()));

    // PLA for a 0.6 mm nozzle: the PLA printer is idle but has a 0.4 mm one, so the job waits.
    let wide = SchedulingFacts {
        material: Some("PLA".into()),
        nozzle_mm: Some(0.6),
        ..SchedulingFacts::default()
    };
    let second = submit(wide).await;
    assert_eq!(second.state, JobState::Queued, "{second:?}");
    // An MK3S file waits too, whatever its material.
    let mk3s = submit(SchedulingFacts {
        printer_model: Some("MK3S".into()),
        ..SchedulingFacts::default()
    })
    .await;
    assert_eq!(mk3s.state, JobState::Queued, "{mk3s:?}");

    // The PLA printer gets a 0.6 mm nozzle: the waiting 0.6 mm job goes to it.
    let refitted = PrinterInfo {
        nozzle_mm: Some(0.6),
        ..pla
    };
    send(
        &mut ws,
        &AgentMsg::Printers {
            printers: vec![refitted, petg],
        },
    )
    .await;
    assert_eq!(offered(&mut ws).await, (second.id, "mk4-pla".into()));
    let listed: Job = owner
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{}", mk3s.id))
        .await
        .unwrap();
    assert_eq!(listed.state, JobState::Queued);
}

/// A member tells Hearth what a printer has loaded after a spool change: pool jobs are placed by
/// it at once, it survives the agent re-announcing the same configuration, and a changed
/// configuration (or `DELETE`) takes over again.
#[tokio::test]
async fn a_member_sets_what_a_printer_has_loaded() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let configured = printer_info("mk4", "farm");
    let (agent, mut ws) = approved_agent(&server, &owner, org, 1, vec![configured.clone()]).await;
    let printers = printers_until(&owner, org, "an idle printer", |p| {
        p.len() == 1 && p[0].telemetry.state == PrinterState::Idle
    })
    .await;
    let id = printers[0].id;
    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let petg_job = SubmitJobRequest {
        label: None,
        priority: 0,
        facts: SchedulingFacts {
            material: Some("PETG".into()),
            ..SchedulingFacts::default()
        },
        ..pool_job("farm", &hash, pool_manifest("farm", &[&agent]))
    };
    assert_eq!(
        submit_job(&owner, org, &petg_job).await.state,
        JobState::Queued
    );

    // Nonsense is refused and changes nothing.
    for bad in [
        serde_json::json!({"material": ""}),
        serde_json::json!({"nozzle_mm": -0.4}),
        serde_json::json!({"material": "PLA", "spool": 3}),
    ] {
        let r = owner
            .raw_put(&format!("/api/v1/orgs/{org}/printers/{id}/loaded"), &bad)
            .await;
        assert!(matches!(r.unwrap_err().status(), Some(400 | 422)), "{bad}");
    }

    let petg = LoadedRequest {
        spool: None,
        material: Some("PETG".into()),
        color: Some("blue".into()),
        nozzle_mm: Some(0.4),
    };
    let view = owner.set_printer_loaded(org, id, &petg).await.unwrap();
    assert_eq!(
        (
            view.material.as_deref(),
            view.color.as_deref(),
            view.loaded_by_member
        ),
        (Some("PETG"), Some("blue"), true)
    );
    assert_eq!(offered(&mut ws).await, (petg_job.job_id, "mk4".into()));
    let audit: serde_json::Value = owner
        .raw_get(&format!("/api/v1/orgs/{org}/audit"))
        .await
        .unwrap();
    let target = serde_json::json!(format!("printer:{id}"));
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "printer.load" && e["target"] == target),
        "{audit}"
    );

    // The agent announces the same configuration again (a reconnection): the member's word stays.
    let announce = |info: PrinterInfo| AgentMsg::Printers {
        printers: vec![info],
    };
    send(&mut ws, &announce(configured.clone())).await;
    send(&mut ws, &AgentMsg::Ping).await;
    assert_eq!(recv(&mut ws).await, ServerMsg::Pong);
    let listed = printers_until(&owner, org, "the printer", |p| p.len() == 1).await;
    assert_eq!(listed[0].material.as_deref(), Some("PETG"));

    // The configuration itself changes: it takes over.
    let abs = PrinterInfo {
        material: Some("ABS".into()),
        ..configured.clone()
    };
    send(&mut ws, &announce(abs)).await;
    let listed = printers_until(&owner, org, "ABS from the configuration", |p| {
        p[0].material.as_deref() == Some("ABS")
    })
    .await;
    assert!(!listed[0].loaded_by_member);

    // Set again, then back to the configuration on request.
    owner.set_printer_loaded(org, id, &petg).await.unwrap();
    let view = owner.reset_printer_loaded(org, id).await.unwrap();
    assert_eq!(
        (view.material.as_deref(), view.loaded_by_member),
        (Some("ABS"), false)
    );
}

/// A queued job whose signed validity has ended is not offered to an agent (which would refuse it):
/// it fails in the queue with the reason, and the next job goes out.
#[tokio::test]
async fn a_job_that_expires_in_the_queue_fails_with_the_reason() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let (agent, mut ws) =
        approved_agent(&server, &owner, org, 1, vec![printer_info("mk4", "pla")]).await;
    printers_until(&owner, org, "an idle printer", |p| {
        p.len() == 1 && p[0].telemetry.state == PrinterState::Idle
    })
    .await;
    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let submit = |not_after: i64| {
        let mut manifest = pool_manifest("pla", &[&agent]);
        manifest["manifest"]["not_after"] = not_after.into();
        pool_job("pla", &hash, manifest)
    };
    // A manifest with an absurd validity is ended like any other, without upsetting the server.
    let absurd = submit(i64::MIN);
    assert_eq!(
        submit_job(&owner, org, &absurd).await.state,
        JobState::Failed
    );
    let stale = submit(now - 60);
    let answered = submit_job(&owner, org, &stale).await;
    assert_eq!(answered.state, JobState::Failed, "{answered:?}");
    let message = answered.message.unwrap_or_default();
    assert!(
        message.starts_with("expired in the queue before a printer could take it (valid until "),
        "{message}"
    );
    let audit: serde_json::Value = owner
        .raw_get(&format!("/api/v1/orgs/{org}/audit"))
        .await
        .unwrap();
    let expired = serde_json::json!(format!("job:{}", stale.job_id));
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "job.expire" && e["target"] == expired),
        "{audit}"
    );

    // A job that was queued while valid and whose validity ended since, with nothing happening
    // in the organisation that would dispatch it: the server's periodic sweep ends it.
    let waited = submit(now - 1);
    let mut t = server.state.store.begin().await.unwrap();
    t.insert_job(&hearth_store::fleet::JobRow {
        label: None,
        approval: None,
        priority: 0,
        id: waited.job_id,
        org_id: org,
        printer_id: None,
        pool: waited.pool.clone(),
        blob_sha256: waited.blob_sha256.clone(),
        manifest: waited.manifest.clone(),
        facts: SchedulingFacts::default(),
        state: JobState::Queued,
        message: None,
        submitted_by: answered.submitted_by,
        created_at: (now - 3600) * 1000,
        updated_at: (now - 3600) * 1000,
    })
    .await
    .unwrap();
    t.commit().await.unwrap();
    hearth_server::sweep_queues(&server.state).await.unwrap();
    let swept: Job = owner
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{}", waited.job_id))
        .await
        .unwrap();
    assert_eq!(swept.state, JobState::Failed, "{swept:?}");

    let fresh = submit(now + 3600);
    http_json(
        &owner,
        &format!("/api/v1/orgs/{org}/jobs"),
        serde_json::to_value(&fresh).unwrap(),
    )
    .await;
    assert_eq!(offered(&mut ws).await, (fresh.job_id, "mk4".into()));
}

/// A pool job can be opened only by the agents it is sealed to: it goes to an idle printer of the
/// pool behind one of them, never to another agent's (which would refuse it), and the server
/// refuses a pool job whose manifest names no agent of the organisation.
#[tokio::test]
async fn a_pool_job_goes_only_to_printers_of_the_agents_it_is_sealed_to() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let mut agents = Vec::new();
    for (seq, printer) in [(1, "a-pla"), (2, "b-pla")] {
        let printers = vec![printer_info(printer, "pla")];
        agents.push(approved_agent(&server, &owner, org, seq, printers).await);
    }
    // Both printers are idle in the pool before any job is submitted.
    printers_until(&owner, org, "two idle printers", |p| {
        p.len() == 2 && p.iter().all(|p| p.telemetry.state == PrinterState::Idle)
    })
    .await;

    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let submit = |manifest: serde_json::Value| pool_job("pla", &hash, manifest);
    let stranger = FakeAgent {
        id: AgentId::new(),
        key: ed25519_dalek::SigningKey::from_bytes(&rand::random()),
    };
    for (manifest, why) in [
        (serde_json::json!({"signed": "x"}), "names no pool target"),
        (pool_manifest("petg", &[&agents[1].0]), "names another pool"),
        (
            pool_manifest("pla", &[&stranger]),
            "sealed to no agent of ours",
        ),
    ] {
        let r = owner
            .raw_post::<serde_json::Value>(
                &format!("/api/v1/orgs/{org}/jobs"),
                &serde_json::to_value(submit(manifest)).unwrap(),
            )
            .await;
        assert_eq!(r.unwrap_err().status(), Some(422), "a manifest that {why}");
    }

    // Sealed to the second agent only: its printer gets the job, though the first is idle too.
    let job = submit(pool_manifest("pla", &[&agents[1].0]));
    http_json(
        &owner,
        &format!("/api/v1/orgs/{org}/jobs"),
        serde_json::to_value(&job).unwrap(),
    )
    .await;
    assert_eq!(
        offered(&mut agents[1].1).await,
        (job.job_id, "b-pla".into())
    );
    let listed: Job = owner
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{}", job.job_id))
        .await
        .unwrap();
    assert_eq!(listed.state, JobState::Assigned);
}
