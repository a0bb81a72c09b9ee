//! Two `hearthd` instances sharing one PostgreSQL database and one blob directory, joined through
//! a real NATS server: an agent connected to one is seen and driven through the other (printer
//! listings, live events, job offers, controls, the agent's own HTTP calls), and is seen gone
//! when it disconnects. Needs `HEARTH_TEST_DATABASE_URL` and NATS (`HEARTH_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`); under `HEARTH_REQUIRE_PEERS=1` their absence fails the test.

use crate::fleet::*;
use crate::inventory::settled;
use crate::notify::job_update;
use crate::support::*;
use hearth_proto::agent::{AgentMsg, JobAction, JobState, PrinterState, ServerMsg};
use hearth_proto::api::Job;
use hearth_proto::ids::BlobHash;

/// Reads the live event stream `events` until it has said `needle` (within `secs`).
async fn until_event(events: &mut reqwest::Response, needle: &str, secs: u64, what: &str) {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(secs), events.chunk())
            .await
            .unwrap_or_else(|_| panic!("{what} never came"))
            .unwrap()
            .expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// A fresh PostgreSQL database and the NATS URL, or `None` (a skip) when either is missing.
async fn peers() -> Option<(String, String)> {
    let require = std::env::var("HEARTH_REQUIRE_PEERS").as_deref() == Ok("1");
    let nats =
        std::env::var("HEARTH_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let addr = nats.trim_start_matches("nats://").to_owned();
    if tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(
            !require,
            "HEARTH_REQUIRE_PEERS=1 but no NATS server answers at {nats}"
        );
        eprintln!("skipping: no NATS server at {nats}");
        return None;
    }
    Some((fresh_postgres().await?, nats))
}

/// A new PostgreSQL database of its own on `HEARTH_TEST_DATABASE_URL`'s server, or `None` (a
/// skip) when that is not set.
pub(crate) async fn fresh_postgres() -> Option<String> {
    let Ok(admin) = std::env::var("HEARTH_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("HEARTH_REQUIRE_PEERS").as_deref() != Ok("1"),
            "HEARTH_REQUIRE_PEERS=1 but HEARTH_TEST_DATABASE_URL is not set"
        );
        eprintln!("skipping: HEARTH_TEST_DATABASE_URL is not set");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("hearth_cluster_{}", hex::encode(rand::random::<[u8; 8]>()));
    let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

/// One instance's settings: the shared database, NATS and data directory under `shared`.
fn instance_settings(
    shared: &std::path::Path,
    db: &str,
    nats: &str,
) -> hearth_server::config::Settings {
    let mut s = test_settings(&shared.join("data"));
    s.database_url = Some(db.to_owned());
    s.cluster.nats_url = Some(nats.to_owned());
    s
}

#[tokio::test]
async fn an_agent_on_one_instance_is_seen_and_driven_through_another() {
    let Some((db, nats)) = peers().await else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let settings = || instance_settings(shared.path(), &db, &nats);
    // Instance A first: its owner is created before B starts (B then issues no setup token).
    let a = TestServer::start_in(tempfile::tempdir().unwrap(), settings()).await;
    let (owner_a, org) = a.bootstrap().await;
    genesis(&owner_a, org).await;
    let b = TestServer::start_in(tempfile::tempdir().unwrap(), settings()).await;
    let mut owner_b = b.client();
    owner_b.login("owner", OWNER_SECRET).await.unwrap();

    // The agent connects to A; B lists its printer, live and idle.
    let mk4_info = hearth_proto::agent::PrinterInfo {
        camera: true,
        ..printer_info("mk4", "farm")
    };
    let (agent, ws) = approved_agent(&a, &owner_a, org, 1, vec![mk4_info.clone()]).await;
    drop(ws);
    let (mut ws, http_token) = agent.connect(&a).await.unwrap();
    send(
        &mut ws,
        &AgentMsg::Printers {
            printers: vec![mk4_info],
        },
    )
    .await;
    report_idle(&mut ws, "mk4").await;
    settled(&mut ws).await;
    printers_until(&owner_b, org, "mk4 idle, seen through B", |p| {
        p.len() == 1 && p[0].telemetry.state == PrinterState::Idle
    })
    .await;

    // A job submitted through B reaches the agent on A; its file downloads through B too.
    let blob = make_file(shared.path(), "job.age", 4000);
    let hash = owner_b.upload_file(org, &blob).await.unwrap();
    let job = pool_job("farm", &hash, pool_manifest("farm", &[&agent]));
    submit_job(&owner_b, org, &job).await;
    assert_eq!(offered(&mut ws).await, (job.job_id, "mk4".to_owned()));
    let bytes = reqwest::Client::new()
        .get(format!("{}/api/v1/agent/blobs/{hash}", b.url))
        .bearer_auth(&http_token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(BlobHash::of(&bytes), hash);

    // B's live events show what the agent tells A.
    let mut events = owner_b
        .raw_get_response(&format!("/api/v1/orgs/{org}/events"))
        .await
        .unwrap();
    job_update(&mut ws, job.job_id, JobState::Printing, None).await;
    crate::inventory::printing(&mut ws, "mk4", job.job_id, 0.1).await;
    until_event(
        &mut events,
        "\"state\":\"printing\"",
        10,
        "a printing event through B",
    )
    .await;
    drop(events);

    // A camera frame the agent sends to A is handed out by B (fetched from A).
    owner_a
        .raw_post::<serde_json::Value>(
            &format!("/api/v1/orgs/{org}/epochs"),
            &serde_json::json!({"epoch": 1, "sealed": {"epoch": 1}}),
        )
        .await
        .unwrap();
    let sealed = b"age-encryption.org/v1\n-> X25519 stanza\nframe of mk4".repeat(30);
    let (status, body) = crate::camera::put(
        &a,
        &http_token,
        "mk4",
        &crate::camera::upload("mk4", 1, &sealed),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let mk4 = printers_until(&owner_b, org, "a frame of mk4, seen through B", |p| {
        p[0].camera
            .as_ref()
            .is_some_and(|c| c.snapshot_at.is_some())
    })
    .await[0]
        .id;
    let frame = owner_b.printer_snapshot(org, mk4).await.unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(frame.sealed)
            .unwrap(),
        sealed
    );

    // B charts the temperatures the agent reported to A (B recorded the printer events A sent).
    let temps: Vec<hearth_proto::api::TemperatureSample> = owner_b
        .raw_get(&format!("/api/v1/orgs/{org}/printers/{mk4}/temperatures"))
        .await
        .unwrap();
    assert!(
        temps.first().is_some_and(|s| !s.heaters.is_empty()),
        "{temps:?}"
    );

    // A pause through B reaches the agent on A.
    let j: Job = owner_b
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs/{}/pause", job.job_id),
            &serde_json::Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(j.state, JobState::Printing);
    assert_eq!(
        recv(&mut ws).await,
        ServerMsg::Control {
            job_id: job.job_id,
            action: JobAction::Pause
        }
    );

    // The agent goes away: B sees it offline, and its token no longer opens anything there.
    drop(ws);
    printers_until(&owner_b, org, "mk4 offline, seen through B", |p| {
        p[0].telemetry.state == PrinterState::Offline
    })
    .await;
    let refused = reqwest::Client::new()
        .get(format!("{}/api/v1/agent/blobs/{hash}", b.url))
        .bearer_auth(&http_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    b.stop().await;
    a.stop().await;
}

/// Failed logins count on every instance: spreading guesses over instances does not multiply
/// what the throttle allows.
#[tokio::test]
async fn failed_logins_on_one_instance_throttle_the_account_on_another() {
    let Some((db, nats)) = peers().await else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let settings = || {
        let mut s = instance_settings(shared.path(), &db, &nats);
        s.auth.max_failures_per_account = 3;
        s
    };
    let a = TestServer::start_in(tempfile::tempdir().unwrap(), settings()).await;
    a.bootstrap().await;
    let b = TestServer::start_in(tempfile::tempdir().unwrap(), settings()).await;
    let heard = |what: &str, failures: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let limiter = &b.state.limiter;
        let what = what.to_owned();
        async move {
            while limiter.account_failures("owner") != failures {
                assert!(std::time::Instant::now() < deadline, "B never heard {what}");
                tokio::task::yield_now().await;
            }
        }
    };
    // Two failures on A, then the right secret on A: B clears them as A did (a success clears
    // the account's failures on every instance).
    for _ in 0..2 {
        let err = a
            .client()
            .login("owner", "a wrong guess 0123")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(401));
    }
    heard("of A's failed logins", 2).await;
    a.client().login("owner", OWNER_SECRET).await.unwrap();
    heard("of A's successful login", 0).await;
    for _ in 0..3 {
        let err = a
            .client()
            .login("owner", "a wrong guess 0123")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(401));
    }
    // B counts A's failures (it hears of them through NATS, in a moment).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.state.limiter.check("owner", None).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "B never heard of A's failed logins"
        );
        tokio::task::yield_now().await;
    }
    let err = b.client().login("owner", OWNER_SECRET).await.unwrap_err();
    assert_eq!(err.status(), Some(429), "{err}");
}

/// Printers' absences are reported once across the cluster: while an agent is held by one
/// instance the other does not call its printer offline; when the instance holding it stops and
/// the agent does not come back, the one left reports it offline once (and its live view says
/// so), and back online when the agent reconnects to it.
#[tokio::test]
async fn a_printer_is_reported_offline_once_when_the_instance_holding_its_agent_stops() {
    let Some((db, nats)) = peers().await else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let settings = || {
        let mut s = instance_settings(shared.path(), &db, &nats);
        s.notifications.allow_private_addresses = true;
        s.notifications.offline_after_secs = 1;
        s
    };
    let a = TestServer::start_in(tempfile::tempdir().unwrap(), settings()).await;
    let (owner_a, org) = a.bootstrap().await;
    genesis(&owner_a, org).await;
    let mut ntfy = crate::notify::Receiver::start().await;
    let channel = crate::notify::channel(
        &owner_a,
        org,
        hearth_proto::notify::ChannelKind::Ntfy,
        format!("{}/farm", ntfy.url),
        &[
            hearth_proto::notify::NotifyEvent::PrinterOffline,
            hearth_proto::notify::NotifyEvent::PrinterOnline,
        ],
        None,
    )
    .await
    .channel
    .id;
    let (agent, mut ws) =
        approved_agent(&a, &owner_a, org, 1, vec![printer_info("mk4", "farm")]).await;
    settled(&mut ws).await;
    // B starts while the agent is held by A: every printer counts as away on B until seen, and
    // mk4 is seen, through A.
    let b = TestServer::start_in(tempfile::tempdir().unwrap(), settings()).await;
    let mut owner_b = b.client();
    owner_b.login("owner", OWNER_SECRET).await.unwrap();
    printers_until(&owner_b, org, "mk4 idle, seen through B", |p| {
        p.len() == 1 && p[0].telemetry.state == PrinterState::Idle
    })
    .await;
    let mut events = owner_b
        .raw_get_response(&format!("/api/v1/orgs/{org}/events"))
        .await
        .unwrap();

    // A stops; its agent does not come back. B's live view says mk4 is offline, and B reports it.
    a.stop().await;
    drop(ws);
    until_event(
        &mut events,
        "\"state\":\"offline\"",
        20,
        "an offline event through B",
    )
    .await;
    drop(events);
    let offline = ntfy.next("printer.offline").await.json();
    assert_eq!(offline["title"], "mk4 is offline");
    assert!(
        offline["message"]
            .as_str()
            .unwrap()
            .contains("the hearthd instance its agent was connected to stopped answering"),
        "{offline}"
    );

    // The agent reconnects, to B: back online, said once.
    let _ws = reconnect_idle(&agent, &b, "mk4", "farm").await;
    assert_eq!(
        ntfy.next("printer.online").await.json()["title"],
        "mk4 is back online"
    );
    // Everything B queued since it started is in its deliveries: one absence and one return,
    // nothing for the time mk4 was held by A (B had counted it away from its start).
    let events: Vec<_> = owner_b
        .notification_deliveries(org, channel)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event)
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.contains(&hearth_proto::notify::NotifyEvent::PrinterOffline));
    assert!(events.contains(&hearth_proto::notify::NotifyEvent::PrinterOnline));
    b.stop().await;
}
