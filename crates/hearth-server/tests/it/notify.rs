//! Notifications end to end: a scripted agent's job and printer changes reach a real HTTP receiver
//! on 127.0.0.1 as a Standard Webhooks POST (checked with the specification's reference library),
//! an ntfy publish or a Slack message; failures are retried and survive a restart.

use crate::fleet::*;
use crate::support::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hearth_client::Client;
use hearth_proto::agent::{AgentMsg, JobState, PrinterState};
use hearth_proto::ids::{ChannelId, OrgId};
use hearth_proto::notify::{
    ChannelKind, ChannelUpdate, CreatedChannel, DeliveryState, NewChannel, NotifyEvent,
};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug)]
pub(crate) struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// A destination on 127.0.0.1: records every request and answers the queued statuses in turn
/// (then 200).
pub(crate) struct Receiver {
    pub(crate) url: String,
    rx: mpsc::UnboundedReceiver<Received>,
    answers: Arc<Mutex<VecDeque<(u16, &'static str)>>>,
}

type Shared = (
    mpsc::UnboundedSender<Received>,
    Arc<Mutex<VecDeque<(u16, &'static str)>>>,
);

async fn record(
    State((tx, answers)): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let _ = tx.send(Received {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    let (status, text) = answers.lock().unwrap().pop_front().unwrap_or((200, "ok"));
    (StatusCode::from_u16(status).unwrap(), text)
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let answers = Arc::new(Mutex::new(VecDeque::new()));
        let app = axum::Router::new()
            .fallback(record)
            .with_state((tx, answers.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, rx, answers }
    }

    fn answer_next(&self, status: u16, text: &'static str) {
        self.answers.lock().unwrap().push_back((status, text));
    }

    pub(crate) async fn next(&mut self, what: &str) -> Received {
        tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} never arrived"))
            .unwrap()
    }
}

/// A server that may post to 127.0.0.1, retrying quickly.
pub(crate) async fn server() -> TestServer {
    TestServer::start_with(|s| {
        s.notifications.allow_private_addresses = true;
        s.notifications.first_retry_ms = 100;
        s.notifications.offline_after_secs = 1;
        s.public_url = Some("https://hearth.example.org".into());
    })
    .await
}

/// A server with its owner, and an approved agent connected with one idle printer of pool `pla`.
struct Farm {
    server: TestServer,
    owner: Client,
    org: OrgId,
    agent: FakeAgent,
    ws: Ws,
}

async fn farm(server: TestServer, printer: &str) -> Farm {
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let (agent, ws) =
        approved_agent(&server, &owner, org, 1, vec![printer_info(printer, "pla")]).await;
    Farm {
        server,
        owner,
        org,
        agent,
        ws,
    }
}

/// A webhook receiver on this machine, and a channel of `org` posting `event` to it.
pub(crate) async fn webhook(owner: &Client, org: OrgId, event: NotifyEvent) -> Receiver {
    let hook = Receiver::start().await;
    channel(
        owner,
        org,
        ChannelKind::Webhook,
        format!("{}/hook", hook.url),
        &[event],
        None,
    )
    .await;
    hook
}

pub(crate) async fn channel(
    owner: &Client,
    org: OrgId,
    kind: ChannelKind,
    url: String,
    events: &[NotifyEvent],
    token: Option<&str>,
) -> CreatedChannel {
    owner
        .create_notification_channel(
            org,
            &NewChannel {
                name: format!("{kind:?} {}", ChannelId::new()),
                kind,
                url,
                events: Some(events.to_vec()),
                token: token.map(str::to_owned),
                pools: None,
                quiet_hours: None,
            },
        )
        .await
        .unwrap()
}

/// The Python of a peer `scripts/peers.sh` installed; `None` when it is not there (a failure under
/// `HEARTH_REQUIRE_PEERS=1`).
fn peer_python(peer: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("HEARTH_PEERS_DIR").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/hearth-peers")
        },
        std::path::PathBuf::from,
    );
    let python = dir.join(peer).join("bin/python");
    if python.exists() {
        return Some(python);
    }
    assert!(
        std::env::var("HEARTH_REQUIRE_PEERS").as_deref() != Ok("1"),
        "HEARTH_REQUIRE_PEERS=1 but the peer {peer} is not in {} (run scripts/peers.sh)",
        python.display()
    );
    eprintln!("SKIPPED: the peer {peer} is not installed (run scripts/peers.sh)");
    None
}

/// Verifies a received webhook with the Standard Webhooks reference library (Python); `None` when
/// it is not installed.
fn reference_verifies(secret: &str, r: &Received) -> Option<bool> {
    let python = peer_python("standardwebhooks")?;
    let tmp = tempfile::tempdir().unwrap();
    let body = tmp.path().join("body");
    let headers = tmp.path().join("headers.json");
    std::fs::write(&body, &r.body).unwrap();
    std::fs::write(&headers, serde_json::to_vec(&r.headers).unwrap()).unwrap();
    let status = std::process::Command::new(python)
        .args([
            "-c",
            "import json, sys\n\
             from standardwebhooks import Webhook\n\
             Webhook(sys.argv[1]).verify(open(sys.argv[3], 'rb').read(), json.load(open(sys.argv[2])))",
        ])
        .arg(secret)
        .arg(&headers)
        .arg(&body)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    Some(status.success())
}

/// A job for the agent's pool, offered to it; returns the job's id.
async fn start_job(
    server: &TestServer,
    owner: &Client,
    org: OrgId,
    agent: &FakeAgent,
    ws: &mut Ws,
) -> hearth_proto::ids::JobId {
    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let mut job = pool_job("pla", &hash, pool_manifest("pla", &[agent]));
    job.facts.material = Some("PLA".into());
    job.facts.filament_grams = Some(21.0);
    submit_job(owner, org, &job).await;
    let (id, _) = offered(ws).await;
    id
}

pub(crate) async fn job_update(
    ws: &mut Ws,
    job_id: hearth_proto::ids::JobId,
    state: JobState,
    message: Option<&str>,
) {
    send(
        ws,
        &AgentMsg::JobUpdate {
            job_id,
            state,
            message: message.map(str::to_owned),
            progress: None,
            slots: Vec::new(),
        },
    )
    .await;
}

#[tokio::test]
async fn job_events_reach_a_signed_webhook_and_a_refused_try_is_retried() {
    let Farm {
        server,
        owner,
        org,
        agent,
        mut ws,
    } = farm(server().await, "mk4-left").await;
    let mut hook = Receiver::start().await;
    let created = channel(
        &owner,
        org,
        ChannelKind::Webhook,
        format!("{}/hooks/hearth", hook.url),
        &[NotifyEvent::JobStarted, NotifyEvent::JobFailed],
        None,
    )
    .await;
    // Another team's channel, limited to the printers of its pool, hears nothing of this one.
    let other_team = owner
        .create_notification_channel(
            org,
            &NewChannel {
                name: "petg team".into(),
                kind: ChannelKind::Webhook,
                url: format!("{}/hooks/petg", hook.url),
                events: Some(vec![NotifyEvent::JobStarted, NotifyEvent::JobFailed]),
                token: None,
                pools: Some(vec![" petg ".into(), "petg".into()]),
                quiet_hours: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(other_team.channel.pools, ["petg"]);
    let secret = created
        .signing_secret
        .clone()
        .expect("a webhook has a secret");
    assert!(secret.starts_with("whsec_"));
    assert_eq!(
        created.channel.destination, hook.url,
        "the path is not shown"
    );

    let job_id = start_job(&server, &owner, org, &agent, &mut ws).await;
    job_update(&mut ws, job_id, JobState::Transferring, None).await;
    job_update(&mut ws, job_id, JobState::Printing, None).await;
    let started = hook.next("job.started").await;
    assert_eq!(started.path, "/hooks/hearth");
    assert_eq!(started.header("content-type"), "application/json");
    let body = started.json();
    assert_eq!(body["type"], "job.started");
    assert_eq!(body["data"]["job"]["id"], job_id.to_string());
    assert_eq!(body["data"]["job"]["submitted_by"], "owner");
    assert_eq!(body["data"]["printer"]["name"], "mk4-left");
    assert_eq!(body["data"]["org"], "Acme Prototyping");
    assert_eq!(body["data"]["title"], "Printing on mk4-left");
    assert_eq!(body["data"]["link"], "https://hearth.example.org/");
    assert!(
        body["data"]["message"]
            .as_str()
            .unwrap()
            .contains("PLA, 21 g"),
        "{body}"
    );
    if let Some(ok) = reference_verifies(&secret, &started) {
        assert!(ok, "the reference library refused our signature");
        let mut tampered = Received {
            path: started.path.clone(),
            headers: started.headers.clone(),
            body: started.body.clone(),
        };
        tampered.body.push(b' ');
        assert_eq!(reference_verifies(&secret, &tampered), Some(false));
    }

    // The destination fails the first try of the next event; it comes again, as the same message.
    hook.answer_next(503, "busy");
    job_update(
        &mut ws,
        job_id,
        JobState::Failed,
        Some("thermal runaway on the hotend"),
    )
    .await;
    let first = hook.next("job.failed").await;
    let again = hook.next("job.failed, retried").await;
    assert_eq!(first.json()["type"], "job.failed");
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"));
    assert!(
        again.json()["data"]["message"]
            .as_str()
            .unwrap()
            .contains("thermal runaway on the hotend")
    );
    if let Some(ok) = reference_verifies(&secret, &again) {
        assert!(ok);
    }

    let channel_id = created.channel.id;
    let deliveries = eventually_deliveries(&owner, org, channel_id, |d| {
        d.len() == 2 && d.iter().all(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    let failed = &deliveries[0];
    assert_eq!(failed.event, NotifyEvent::JobFailed);
    assert_eq!(failed.attempts, 2);
    assert_eq!(failed.response_status, Some(200));
    assert_eq!(deliveries[1].attempts, 1);
    // Events the channel does not follow are not sent: nothing more arrived, and nothing for the
    // other team's pool.
    assert!(hook.rx.try_recv().is_err());
    assert!(
        owner
            .notification_deliveries(org, other_team.channel.id)
            .await
            .unwrap()
            .is_empty()
    );
    // The tries are counted for the administrator's monitoring.
    server
        .assert_metrics(&[
            "hearth_notification_tries_total{result=\"delivered\"} 2",
            "hearth_notification_tries_total{result=\"retry\"} 1",
            "hearth_notification_tries_total{result=\"failed\"} 0",
        ])
        .await;
}

async fn eventually_deliveries(
    owner: &Client,
    org: OrgId,
    channel: ChannelId,
    done: impl Fn(&[hearth_proto::notify::Delivery]) -> bool,
) -> Vec<hearth_proto::notify::Delivery> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let d = owner.notification_deliveries(org, channel).await.unwrap();
        if done(&d) {
            return d;
        }
        assert!(std::time::Instant::now() < deadline, "deliveries: {d:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What an agent says of `printer` when it reports an error.
fn in_error(printer: &str, message: &str) -> AgentMsg {
    let mut t = idle();
    t.state = PrinterState::Error;
    t.error = Some(message.into());
    AgentMsg::Telemetry {
        printer: printer.into(),
        status: t,
    }
}

#[tokio::test]
async fn printer_errors_and_absences_are_published_to_ntfy_once_each() {
    let Farm {
        server,
        owner,
        org,
        agent,
        mut ws,
    } = farm(server().await, "mk4-right").await;
    let mut ntfy = Receiver::start().await;
    channel(
        &owner,
        org,
        ChannelKind::Ntfy,
        format!("{}/farm-alerts", ntfy.url),
        &[
            NotifyEvent::PrinterError,
            NotifyEvent::PrinterOffline,
            NotifyEvent::PrinterOnline,
        ],
        Some("tk_farmtoken"),
    )
    .await;
    let error = |message: &str| in_error("mk4-right", message);
    // Reported once while it stays in error, again after it recovered and failed anew.
    send(&mut ws, &error("heater fault: bed")).await;
    send(&mut ws, &error("heater fault: bed")).await;
    let first = ntfy.next("printer.error").await;
    assert_eq!(
        first.path, "/",
        "ntfy's JSON publishing goes to the server's root"
    );
    assert_eq!(first.header("authorization"), "Bearer tk_farmtoken");
    let body = first.json();
    assert_eq!(body["topic"], "farm-alerts");
    assert_eq!(body["title"], "mk4-right reports an error");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("heater fault: bed")
    );
    assert_eq!(body["priority"], 4);
    assert_eq!(body["tags"], serde_json::json!(["warning"]));
    assert_eq!(body["click"], "https://hearth.example.org/");
    report_idle(&mut ws, "mk4-right").await;
    send(&mut ws, &error("MINTEMP")).await;
    let second = ntfy.next("the second printer.error").await;
    assert!(
        second.json()["message"]
            .as_str()
            .unwrap()
            .contains("MINTEMP")
    );

    // The agent goes away: reported once the outage lasted offline_after_secs, and back after.
    drop(ws);
    let offline = ntfy.next("printer.offline").await.json();
    assert_eq!(offline["title"], "mk4-right is offline");
    assert!(
        offline["message"]
            .as_str()
            .unwrap()
            .contains("its agent disconnected"),
        "{offline}"
    );
    let _ws = reconnect_idle(&agent, &server, "mk4-right", "pla").await;
    let online = ntfy.next("printer.online").await.json();
    assert_eq!(online["title"], "mk4-right is back online");
    assert_eq!(online["priority"], 3);
}

#[tokio::test]
async fn channels_are_checked_tested_listed_and_removed_by_admins_only() {
    // By default the server refuses to post into its own network.
    let strict = TestServer::start().await;
    let (owner, org) = strict.bootstrap().await;
    let refused = owner
        .create_notification_channel(
            org,
            &NewChannel {
                name: "lan".into(),
                kind: ChannelKind::Webhook,
                url: "http://127.0.0.1:9/hook".into(),
                events: None,
                token: None,
                pools: None,
                quiet_hours: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422));
    assert!(
        refused.to_string().contains("allow_private_addresses"),
        "{refused}"
    );

    let server = server().await;
    let (owner, org) = server.bootstrap().await;
    let mut slack = Receiver::start().await;
    let new =
        |name: &str, kind, url: String, events: Option<Vec<NotifyEvent>>, token: Option<&str>| {
            NewChannel {
                name: name.into(),
                kind,
                url,
                events,
                token: token.map(str::to_owned),
                pools: None,
                quiet_hours: None,
            }
        };
    for (bad, why) in [
        (
            new(
                "x",
                ChannelKind::Slack,
                "ftp://example.org/".into(),
                None,
                None,
            ),
            "https://",
        ),
        (
            new(
                "x",
                ChannelKind::Slack,
                format!("{}/s", slack.url),
                Some(vec![]),
                None,
            ),
            "at least one",
        ),
        (
            new(
                "x",
                ChannelKind::Slack,
                format!("{}/s", slack.url),
                None,
                Some("tk"),
            ),
            "only ntfy",
        ),
        (
            new(
                "x",
                ChannelKind::Ntfy,
                format!("{}/", slack.url),
                None,
                None,
            ),
            "topic",
        ),
        (
            new(
                " ",
                ChannelKind::Slack,
                format!("{}/s", slack.url),
                None,
                None,
            ),
            "name",
        ),
    ] {
        let e = owner
            .create_notification_channel(org, &bad)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(422), "{bad:?}");
        assert!(e.to_string().contains(why), "{e}");
    }

    let created = owner
        .create_notification_channel(
            org,
            &new(
                "ops chat",
                ChannelKind::Slack,
                format!("{}/services/T0/B0/secretpart", slack.url),
                None,
                None,
            ),
        )
        .await
        .unwrap();
    assert_eq!(created.signing_secret, None);
    assert_eq!(created.channel.events, NotifyEvent::DEFAULT.to_vec());
    let dup = owner
        .create_notification_channel(
            org,
            &new(
                "ops chat",
                ChannelKind::Slack,
                format!("{}/x", slack.url),
                None,
                None,
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(dup.status(), Some(409));

    // A test that the destination refuses says what it answered.
    slack.answer_next(404, "no_service");
    let id = created.channel.id;
    let tried = owner.test_notification_channel(org, id).await.unwrap();
    assert_eq!(tried.state, DeliveryState::Failed);
    assert_eq!(tried.response_status, Some(404));
    assert!(
        tried.error.as_deref().unwrap().contains("no_service"),
        "{tried:?}"
    );
    let got = slack.next("the test message").await;
    assert_eq!(got.path, "/services/T0/B0/secretpart");
    let text = got.json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with("*Test notification from Hearth*"),
        "{text}"
    );
    let tried = owner.test_notification_channel(org, id).await.unwrap();
    assert_eq!(tried.state, DeliveryState::Delivered);
    let listed = owner.notification_channels(org).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].destination, slack.url,
        "no path: it is the credential"
    );
    assert_eq!(
        listed[0].last_delivery.as_ref().map(|d| d.state),
        Some(DeliveryState::Delivered)
    );
    let body = serde_json::to_string(&listed).unwrap();
    assert!(!body.contains("secretpart"), "{body}");

    // Renamed, and set to follow other events; a name in use or no event at all is refused.
    let edited = owner
        .update_notification_channel(
            org,
            created.channel.id,
            &ChannelUpdate {
                name: Some("ops".into()),
                events: Some(vec![NotifyEvent::JobCompleted, NotifyEvent::JobCompleted]),
                pools: None,
                quiet_hours: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(edited.name, "ops");
    assert_eq!(edited.events, vec![NotifyEvent::JobCompleted]);
    assert_eq!(edited.destination, created.channel.destination);
    let other = owner
        .create_notification_channel(
            org,
            &new(
                "other",
                ChannelKind::Slack,
                format!("{}/y", slack.url),
                None,
                None,
            ),
        )
        .await
        .unwrap();
    let taken = owner
        .update_notification_channel(
            org,
            other.channel.id,
            &ChannelUpdate {
                name: Some("ops".into()),
                events: None,
                pools: None,
                quiet_hours: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(taken.status(), Some(409));
    let empty = owner
        .update_notification_channel(
            org,
            other.channel.id,
            &ChannelUpdate {
                name: None,
                events: Some(vec![]),
                pools: None,
                quiet_hours: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(empty.status(), Some(422));
    owner
        .delete_notification_channel(org, other.channel.id)
        .await
        .unwrap();

    // A destination that is down: the test says it could not connect, and to what.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = owner
        .create_notification_channel(
            org,
            &new(
                "down",
                ChannelKind::Discord,
                format!("http://{closed}/api/webhooks/1/x"),
                None,
                None,
            ),
        )
        .await
        .unwrap();
    let tried = owner
        .test_notification_channel(org, down.channel.id)
        .await
        .unwrap();
    assert_eq!(
        (tried.state, tried.response_status),
        (DeliveryState::Failed, None)
    );
    let error = tried.error.unwrap();
    assert!(
        error.starts_with(&format!("could not connect to http://{closed}: ")),
        "{error}"
    );
    owner
        .delete_notification_channel(org, down.channel.id)
        .await
        .unwrap();

    // Operators and viewers neither see nor change channels.
    let operator = member(&server, &owner, org, "op", hearth_proto::Role::Operator).await;
    assert_eq!(
        operator
            .notification_channels(org)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    assert_eq!(
        operator
            .test_notification_channel(org, id)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );

    owner.delete_notification_channel(org, id).await.unwrap();
    assert_eq!(
        owner
            .notification_deliveries(org, id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    let audit: serde_json::Value = owner
        .raw_get(&format!("/api/v1/orgs/{org}/audit?limit=20"))
        .await
        .unwrap();
    let actions = audit.to_string();
    assert!(actions.contains("notify.channel.create"), "{actions}");
    assert!(actions.contains("notify.channel.update"), "{actions}");
    assert!(actions.contains("notify.channel.delete"), "{actions}");
}

#[tokio::test]
async fn a_printer_whose_agent_does_not_come_back_after_a_server_restart_is_reported() {
    let Farm {
        server,
        owner,
        org,
        agent,
        ws,
    } = farm(server().await, "xl-1").await;
    let mut ntfy = Receiver::start().await;
    channel(
        &owner,
        org,
        ChannelKind::Ntfy,
        format!("{}/farm", ntfy.url),
        &[NotifyEvent::PrinterOffline, NotifyEvent::PrinterOnline],
        None,
    )
    .await;
    // The server restarts while the agent is away, and the agent stays away.
    drop(ws);
    let server = server.restart().await;
    let offline = ntfy.next("printer.offline after the restart").await.json();
    assert_eq!(offline["title"], "xl-1 is offline");
    assert!(
        offline["message"]
            .as_str()
            .unwrap()
            .contains("not seen since the server started"),
        "{offline}"
    );
    // When it comes back, that is said too.
    let _ws = reconnect_idle(&agent, &server, "xl-1", "pla").await;
    assert_eq!(
        ntfy.next("printer.online").await.json()["title"],
        "xl-1 is back online"
    );
}

/// An absence is reported once, even when the server restarts while it lasts (the report stands
/// in the database); the printer's return after the restart is reported.
#[tokio::test]
async fn an_absence_reported_before_a_restart_is_not_reported_again_after_it() {
    let Farm {
        server,
        owner,
        org,
        agent,
        ws,
    } = farm(server().await, "xl-1").await;
    // A second printer, online until the restart. After it both count as away since the start,
    // looked at together: xl-2's report says that look has been taken.
    let (_xl2, xl2_ws) =
        approved_agent(&server, &owner, org, 2, vec![printer_info("xl-2", "pla")]).await;
    let mut ntfy = Receiver::start().await;
    let channel_id = channel(
        &owner,
        org,
        ChannelKind::Ntfy,
        format!("{}/farm", ntfy.url),
        &[NotifyEvent::PrinterOffline, NotifyEvent::PrinterOnline],
        None,
    )
    .await
    .channel
    .id;
    drop(ws);
    assert_eq!(
        ntfy.next("xl-1's printer.offline").await.json()["title"],
        "xl-1 is offline"
    );
    // Recorded as delivered before the restart (a try cut short by it would be made again).
    eventually_deliveries(&owner, org, channel_id, |d| {
        d.iter()
            .any(|d| d.state == hearth_proto::notify::DeliveryState::Delivered)
    })
    .await;
    let server = server.restart().await;
    drop(xl2_ws);
    assert_eq!(
        ntfy.next("xl-2's printer.offline after the restart")
            .await
            .json()["title"],
        "xl-2 is offline"
    );
    let mut owner = server.client();
    owner.login("owner", OWNER_SECRET).await.unwrap();
    let titles = |d: &[hearth_proto::notify::Delivery]| {
        d.iter().map(|d| d.title.clone()).collect::<Vec<_>>()
    };
    let d = owner
        .notification_deliveries(org, channel_id)
        .await
        .unwrap();
    assert_eq!(
        titles(&d)
            .iter()
            .filter(|t| *t == "xl-1 is offline")
            .count(),
        1,
        "{:?}",
        titles(&d)
    );
    // Back after the restart: said, since a report stood.
    let _ws = reconnect_idle(&agent, &server, "xl-1", "pla").await;
    assert_eq!(
        ntfy.next("printer.online").await.json()["title"],
        "xl-1 is back online"
    );
}

/// An error is reported once while it lasts, even when the server restarts (or the agent comes
/// back through another instance) meanwhile: the report stands in the database. Once the printer
/// recovered, its next error is reported.
#[tokio::test]
async fn an_error_reported_before_a_restart_is_not_reported_again_after_it() {
    let Farm {
        server,
        owner,
        org,
        agent,
        mut ws,
    } = farm(server().await, "mk4-right").await;
    let mut ntfy = Receiver::start().await;
    let channel_id = channel(
        &owner,
        org,
        ChannelKind::Ntfy,
        format!("{}/farm", ntfy.url),
        &[NotifyEvent::PrinterError],
        None,
    )
    .await
    .channel
    .id;
    let error = |message: &str| in_error("mk4-right", message);
    send(&mut ws, &error("heater fault: bed")).await;
    let first = ntfy.next("printer.error").await.json();
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("heater fault: bed"),
        "{first}"
    );
    eventually_deliveries(&owner, org, channel_id, |d| {
        d.iter()
            .any(|d| d.state == hearth_proto::notify::DeliveryState::Delivered)
    })
    .await;
    drop(ws);
    let server = server.restart().await;
    // Back, still in error: not news. Then it recovers and fails anew: that is.
    let (mut ws, _) = agent.connect(&server).await.unwrap();
    send(
        &mut ws,
        &AgentMsg::Printers {
            printers: vec![printer_info("mk4-right", "pla")],
        },
    )
    .await;
    send(&mut ws, &error("heater fault: bed")).await;
    report_idle(&mut ws, "mk4-right").await;
    send(&mut ws, &error("MINTEMP")).await;
    let next = ntfy.next("the next printer.error").await.json();
    assert!(
        next["message"].as_str().unwrap().contains("MINTEMP"),
        "the standing error was reported again: {next}"
    );
    let mut owner = server.client();
    owner.login("owner", OWNER_SECRET).await.unwrap();
    let d = owner
        .notification_deliveries(org, channel_id)
        .await
        .unwrap();
    assert_eq!(d.len(), 2, "{d:?}");
}

#[tokio::test]
async fn a_notification_that_could_not_be_delivered_is_sent_after_a_restart() {
    let Farm {
        server,
        owner,
        org,
        agent,
        mut ws,
    } = farm(server().await, "mk4-left").await;
    let mut hook = Receiver::start().await;
    channel(
        &owner,
        org,
        ChannelKind::Discord,
        format!("{}/api/webhooks/1/abc", hook.url),
        &[NotifyEvent::JobCompleted],
        None,
    )
    .await;
    // The destination is down for the first tries (and the retries the server makes meanwhile).
    for _ in 0..8 {
        hook.answer_next(502, "bad gateway");
    }
    let job_id = start_job(&server, &owner, org, &agent, &mut ws).await;
    job_update(&mut ws, job_id, JobState::Printing, None).await;
    job_update(&mut ws, job_id, JobState::Completed, None).await;
    let mut last = hook.next("job.completed (refused)").await;
    drop(ws);
    let server = server.restart().await;
    hook.answers.lock().unwrap().clear();
    // Whatever tries the old server still made, the restarted one delivers it.
    let mut c = server.client();
    c.login("owner", OWNER_SECRET).await.unwrap();
    let channels = c.notification_channels(org).await.unwrap();
    let delivered = eventually_deliveries(&c, org, channels[0].id, |d| {
        d.iter().any(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    assert_eq!(delivered.len(), 1, "one notification, however many tries");
    // The try cut short by the stop may not have been recorded; the receiver saw both.
    let mut received = 1;
    while let Ok(r) = hook.rx.try_recv() {
        assert_eq!(r.body, last.body, "the same notification each time");
        last = r;
        received += 1;
    }
    assert!(received >= 2, "sent again after the restart");
    let body = last.json();
    assert!(
        body["content"]
            .as_str()
            .unwrap()
            .starts_with("**Print finished on mk4-left**"),
        "{body}"
    );
    assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
}

/// aiosmtpd, a real SMTP server, on 127.0.0.1 (`smtp_peer.py`), and the messages it accepted.
struct SmtpPeer {
    port: u16,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    _child: tokio::process::Child,
}

impl SmtpPeer {
    async fn start() -> Option<SmtpPeer> {
        Self::start_with(&[]).await
    }

    async fn start_with(args: &[&std::path::Path]) -> Option<SmtpPeer> {
        use tokio::io::AsyncBufReadExt;
        let python = peer_python("aiosmtpd")?;
        let mut child = tokio::process::Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/it/smtp_peer.py"
            ))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("aiosmtpd starts")
            .unwrap()
            .expect("aiosmtpd printed its port");
        let port = first.strip_prefix("listening ").unwrap().parse().unwrap();
        Some(SmtpPeer {
            port,
            lines,
            _child: child,
        })
    }

    /// The next message accepted: (envelope recipients, the message as sent).
    async fn next(&mut self, what: &str) -> (Vec<String>, String) {
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what} never arrived"))
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let to = v["to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        (to, quoted_printable_decoded(v["data"].as_str().unwrap()))
    }
}

/// The message with a quoted-printable body decoded (soft line breaks joined, `=XX` bytes
/// restored), so assertions read the text a mail client shows.
fn quoted_printable_decoded(message: &str) -> String {
    if !message.contains("Content-Transfer-Encoding: quoted-printable") {
        return message.to_owned();
    }
    let joined = message.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn email_goes_through_the_smtp_server_and_a_deferred_recipient_is_retried() {
    let Some(mut smtp) = SmtpPeer::start().await else {
        return;
    };
    let port = smtp.port;
    let server = TestServer::start_with(move |s| {
        s.notifications.first_retry_ms = 100;
        s.notifications.smtp.host = "127.0.0.1".into();
        s.notifications.smtp.port = i64::from(port);
        s.notifications.smtp.security = "none".into();
        s.notifications.smtp.from = "Hearth <hearth@farm.example>".into();
        s.public_url = Some("https://hearth.example.org".into());
    })
    .await;
    let Farm {
        server,
        owner,
        org,
        agent,
        mut ws,
    } = farm(server, "mk4-left").await;
    let email = |name: &str, url: &str, events: Vec<NotifyEvent>| NewChannel {
        name: name.into(),
        kind: ChannelKind::Email,
        url: url.into(),
        events: Some(events),
        token: None,
        pools: None,
        quiet_hours: None,
    };

    // A test message, as the SMTP server received it.
    let ops = owner
        .create_notification_channel(
            org,
            &email(
                "ops",
                "mailto:ops@farm.example, lead@farm.example",
                vec![NotifyEvent::JobFailed],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        ops.channel.destination,
        "mailto:ops@farm.example,lead@farm.example"
    );
    let tried = owner
        .test_notification_channel(org, ops.channel.id)
        .await
        .unwrap();
    assert_eq!(tried.state, DeliveryState::Delivered, "{tried:?}");
    assert_eq!(tried.response_status, Some(250));
    let (to, data) = smtp.next("the test e-mail").await;
    assert_eq!(to, ["ops@farm.example", "lead@farm.example"]);
    assert!(
        data.contains("From: Hearth <hearth@farm.example>"),
        "{data}"
    );
    assert!(
        data.contains("Subject: [Hearth] Test notification from Hearth"),
        "{data}"
    );
    assert!(
        data.contains(&format!("Message-ID: <{}@farm.example>", tried.id)),
        "{data}"
    );
    assert!(
        data.contains("Dashboard:    https://hearth.example.org/"),
        "{data}"
    );

    // A recipient the server refuses for good fails at once, with its answer.
    let refused = owner
        .create_notification_channel(
            org,
            &email(
                "gone",
                "mailto:refused@farm.example",
                vec![NotifyEvent::JobFailed],
            ),
        )
        .await
        .unwrap();
    let tried = owner
        .test_notification_channel(org, refused.channel.id)
        .await
        .unwrap();
    assert_eq!(
        (tried.state, tried.response_status),
        (DeliveryState::Failed, Some(550))
    );
    assert!(tried.error.unwrap().contains("no such mailbox"));
    owner
        .delete_notification_channel(org, refused.channel.id)
        .await
        .unwrap();

    // A job's failure: the deferred recipient is tried again, and the mail goes out once accepted.
    let later = owner
        .create_notification_channel(
            org,
            &email(
                "night shift",
                "mailto:later@farm.example",
                vec![NotifyEvent::JobFailed],
            ),
        )
        .await
        .unwrap();
    let job_id = start_job(&server, &owner, org, &agent, &mut ws).await;
    job_update(&mut ws, job_id, JobState::Printing, None).await;
    job_update(&mut ws, job_id, JobState::Failed, Some("filament tangled")).await;
    let mut got = vec![
        smtp.next("the failure e-mail").await,
        smtp.next("the other").await,
    ];
    got.sort();
    assert_eq!(got[0].0, ["later@farm.example"]);
    assert_eq!(got[1].0, ["ops@farm.example", "lead@farm.example"]);
    for (_, data) in &got {
        assert!(
            data.contains("Subject: [Hearth] Print failed on mk4-left"),
            "{data}"
        );
        assert!(data.contains("filament tangled"), "{data}");
        assert!(data.contains(&job_id.to_string()), "{data}");
    }
    let d = eventually_deliveries(&owner, org, later.channel.id, |d| {
        d.len() == 1 && d[0].state == DeliveryState::Delivered
    })
    .await;
    assert_eq!(d[0].attempts, 2, "deferred once, then accepted: {d:?}");

    // A server without SMTP settings refuses e-mail channels, saying what is missing.
    let plain = TestServer::start().await;
    let (owner, org) = plain.bootstrap().await;
    let e = owner
        .create_notification_channel(
            org,
            &email("x", "mailto:ops@farm.example", vec![NotifyEvent::JobFailed]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(422));
    assert!(e.to_string().contains("[notifications.smtp]"), "{e}");
}

/// A server sending e-mail through `smtp_port` with STARTTLS required, trusting `ca`.
async fn starttls_server(smtp_port: u16, ca: std::path::PathBuf) -> (TestServer, Client, OrgId) {
    let server = TestServer::start_with(move |s| {
        s.notifications.smtp.host = "127.0.0.1".into();
        s.notifications.smtp.port = i64::from(smtp_port);
        s.notifications.smtp.security = "starttls".into();
        s.notifications.smtp.from = "Hearth <hearth@farm.example>".into();
        s.notifications.ca_file = Some(ca);
    })
    .await;
    let (owner, org) = server.bootstrap().await;
    (server, owner, org)
}

async fn test_email(owner: &Client, org: OrgId) -> hearth_proto::notify::Delivery {
    let c = owner
        .create_notification_channel(
            org,
            &NewChannel {
                name: "ops".into(),
                kind: ChannelKind::Email,
                url: "mailto:ops@farm.example".into(),
                events: None,
                token: None,
                pools: None,
                quiet_hours: None,
            },
        )
        .await
        .unwrap();
    owner
        .test_notification_channel(org, c.channel.id)
        .await
        .unwrap()
}

/// With STARTTLS, mail goes only over TLS to a certificate the server trusts (its system store or
/// `notifications.ca_file`); a mail server that offers no STARTTLS gets nothing.
#[tokio::test]
async fn email_with_starttls_is_encrypted_and_refused_without_it() {
    let pki = crate::pki::Pki::new();
    let (cert, key) = (
        std::path::PathBuf::from(pki.path("cert.pem")),
        std::path::PathBuf::from(pki.path("key.pem")),
    );
    let Some(mut smtp) = SmtpPeer::start_with(&["--starttls".as_ref(), &cert, &key]).await else {
        return;
    };
    let (_server, owner, org) =
        starttls_server(smtp.port, std::path::PathBuf::from(pki.path("ca.pem"))).await;
    let d = test_email(&owner, org).await;
    assert_eq!(d.state, DeliveryState::Delivered, "{d:?}");
    let (to, data) = smtp.next("the e-mail over STARTTLS").await;
    assert_eq!(to, ["ops@farm.example"]);
    assert!(
        data.contains("Subject: [Hearth] Test notification"),
        "{data}"
    );

    // Another authority's certificate: refused, nothing sent.
    let (_server, owner, org) = starttls_server(
        smtp.port,
        std::path::PathBuf::from(pki.path("other-ca.pem")),
    )
    .await;
    let d = test_email(&owner, org).await;
    assert_eq!(d.state, DeliveryState::Failed, "{d:?}");
    assert!(
        d.error
            .as_deref()
            .unwrap_or("")
            .to_lowercase()
            .contains("certificate"),
        "{d:?}"
    );

    // A mail server without STARTTLS: refused before any address or text is sent.
    let Some(mut plain) = SmtpPeer::start().await else {
        return;
    };
    let (_server, owner, org) =
        starttls_server(plain.port, std::path::PathBuf::from(pki.path("ca.pem"))).await;
    let d = test_email(&owner, org).await;
    assert_eq!(d.state, DeliveryState::Failed, "{d:?}");
    let nothing = tokio::time::timeout(Duration::from_millis(200), plain.lines.next_line()).await;
    assert!(
        nothing.is_err(),
        "the plain server received a message: {nothing:?}"
    );
}

/// An HTTPS webhook on a server with a certificate from the organisation's own CA: trusted through
/// `notifications.ca_file`, refused without it.
#[tokio::test]
async fn an_https_destination_with_an_internal_ca_is_trusted_through_ca_file() {
    let pki = crate::pki::Pki::new();
    let config = hearth_server::tls::server_config(
        &std::path::PathBuf::from(pki.path("cert.pem")),
        &std::path::PathBuf::from(pki.path("key.pem")),
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let answers = Arc::new(Mutex::new(VecDeque::new()));
    let app = axum::Router::new()
        .fallback(record)
        .with_state((tx, answers));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", tcp.local_addr().unwrap());
    let listener = hearth_server::tls::TlsListener::new(tcp, config);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    for (ca, delivered) in [
        (None, false),
        (Some(std::path::PathBuf::from(pki.path("ca.pem"))), true),
    ] {
        let server = TestServer::start_with(move |s| {
            s.notifications.allow_private_addresses = true;
            s.notifications.ca_file = ca;
        })
        .await;
        let (owner, org) = server.bootstrap().await;
        let c = channel(
            &owner,
            org,
            ChannelKind::Webhook,
            url.clone(),
            &[NotifyEvent::JobFailed],
            None,
        )
        .await;
        let d = owner
            .test_notification_channel(org, c.channel.id)
            .await
            .unwrap();
        if delivered {
            assert_eq!(d.state, DeliveryState::Delivered, "{d:?}");
            assert_eq!(rx.recv().await.unwrap().json()["type"], "test");
        } else {
            assert_eq!(d.state, DeliveryState::Failed, "{d:?}");
            let e = d.error.unwrap();
            assert!(
                e.starts_with("could not connect to https://127.0.0.1:"),
                "{e}"
            );
            assert!(e.to_lowercase().contains("certificate"), "{e}");
        }
    }
}

/// Quiet hours: what is not an alert waits for their end (in the channel's time zone), an alert
/// goes out at once; the hours are checked and can be removed.
#[tokio::test]
async fn in_quiet_hours_only_alerts_go_out_and_the_rest_waits_for_their_end() {
    use hearth_proto::notify::{ChannelUpdate, QuietHours};
    let Farm {
        server,
        owner,
        org,
        agent,
        mut ws,
    } = farm(server().await, "mk4-left").await;
    let mut hook = Receiver::start().await;
    // An hour either side of now, in UTC.
    let now = hearth_proto::time_fmt::now_ms();
    let hm = |ms: i64| {
        let m = ms.rem_euclid(86_400_000) / 60_000;
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let quiet = QuietHours {
        from: hm(now - 3_600_000),
        to: hm(now + 3_600_000),
        time_zone: "UTC".into(),
    };
    let mut new = NewChannel {
        name: "night shift".into(),
        kind: ChannelKind::Webhook,
        url: format!("{}/hooks/quiet", hook.url),
        events: Some(vec![NotifyEvent::JobStarted, NotifyEvent::JobFailed]),
        token: None,
        pools: None,
        quiet_hours: Some(QuietHours {
            time_zone: "Mars/Olympus".into(),
            ..quiet.clone()
        }),
    };
    let refused = owner
        .create_notification_channel(org, &new)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422));
    assert!(
        refused.to_string().contains("unknown time zone"),
        "{refused}"
    );
    new.quiet_hours = Some(quiet.clone());
    let created = owner.create_notification_channel(org, &new).await.unwrap();
    assert_eq!(created.channel.quiet_hours, Some(quiet.clone()));

    let job_id = start_job(&server, &owner, org, &agent, &mut ws).await;
    job_update(&mut ws, job_id, JobState::Printing, None).await;
    job_update(&mut ws, job_id, JobState::Failed, Some("nozzle clog")).await;
    // The failure is an alert: it is the first (and only) thing that arrives.
    let first = hook.next("job.failed").await.json();
    assert_eq!(first["type"], "job.failed");
    let deliveries = owner
        .notification_deliveries(org, created.channel.id)
        .await
        .unwrap();
    let started = deliveries
        .iter()
        .find(|d| d.event == NotifyEvent::JobStarted)
        .unwrap();
    assert_eq!(started.state, DeliveryState::Pending);
    let due =
        hearth_proto::time_fmt::parse_rfc3339(started.next_attempt_at.as_deref().unwrap()).unwrap();
    assert!(
        (now + 3_500_000..=now + 3_600_000).contains(&due),
        "waits for {} (quiet until {}): {started:?}",
        started.next_attempt_at.as_deref().unwrap(),
        quiet.to
    );

    // Removed with null; the change is in the audit log.
    let updated = owner
        .update_notification_channel(
            org,
            created.channel.id,
            &ChannelUpdate {
                quiet_hours: Some(None),
                ..ChannelUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.quiet_hours, None);
    let audit = owner.audit_page(Some(org), 0, 200).await.unwrap();
    let create = audit
        .entries
        .iter()
        .find(|e| e.action == "notify.channel.create")
        .unwrap();
    assert_eq!(create.details["quiet_hours"]["time_zone"], "UTC");
}

/// The dashboard's channel form offers every event a channel can follow, ticked as the server's
/// default (`EVENTS` in web/app.js against `NotifyEvent::FOLLOWABLE` and `DEFAULT`).
#[test]
fn the_dashboards_events_are_the_servers() {
    let app =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/app.js")).unwrap();
    let list = app
        .split_once("const EVENTS = [")
        .and_then(|(_, rest)| rest.split_once("];"))
        .map(|(list, _)| list)
        .expect("EVENTS in web/app.js");
    let offered: Vec<(String, bool)> = list
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("[\"")?;
            let (event, rest) = l.split_once('"')?;
            Some((event.to_owned(), rest.trim_end().ends_with("true],")))
        })
        .collect();
    let expected: Vec<(String, bool)> = NotifyEvent::FOLLOWABLE
        .iter()
        .map(|e| (e.as_str().to_owned(), NotifyEvent::DEFAULT.contains(e)))
        .collect();
    assert_eq!(offered, expected);
}
