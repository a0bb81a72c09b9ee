//! The material library and spool inventory end to end: a spool loaded on a printer is what pool
//! jobs are fitted to, jobs that end take what they used from it (all of it when completed, the
//! printed share when cancelled), `spool.low` reaches a real webhook receiver once, and the
//! statistics add it up with the material's price.

use crate::fleet::*;
use crate::notify::{job_update, server, webhook};
use crate::support::*;
use hearth_client::Client;
use hearth_proto::agent::{AgentMsg, JobState, PrinterState, ServerMsg};
use hearth_proto::api::{Job, LoadedRequest, Printer};
use hearth_proto::ids::{JobId, OrgId, PrinterId};
use hearth_proto::inventory::{MaterialUpdate, NewMaterial, NewSpool, Spool, SpoolUpdate};
use hearth_proto::notify::NotifyEvent;

fn api_status(e: hearth_client::ClientError) -> u16 {
    match e {
        hearth_client::ClientError::Api { status, .. } => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The agent's messages so far have been handled (the session answers in order).
pub(crate) async fn settled(ws: &mut Ws) {
    send(ws, &AgentMsg::Ping).await;
    assert_eq!(recv(ws).await, ServerMsg::Pong);
}

/// `job` is submitted, offered on `ws` and printed, then ends in `state` as the agent says it
/// (how far it got, which slots fed it); handled before this returns.
async fn printed_until(
    owner: &Client,
    org: OrgId,
    ws: &mut Ws,
    job: &hearth_proto::api::SubmitJobRequest,
    state: JobState,
    progress: Option<f32>,
    slots: &[&str],
) {
    submit_job(owner, org, job).await;
    assert_eq!(offered(ws).await.0, job.job_id);
    job_update(ws, job.job_id, JobState::Printing, None).await;
    send(
        ws,
        &AgentMsg::JobUpdate {
            job_id: job.job_id,
            state,
            message: None,
            progress,
            slots: slots.iter().map(|s| (*s).to_owned()).collect(),
        },
    )
    .await;
    settled(ws).await;
}

async fn spool_now(owner: &Client, org: OrgId, spool: &Spool) -> Spool {
    owner.spool(org, spool.id).await.unwrap()
}

pub(crate) async fn job_state(owner: &Client, org: OrgId, id: JobId) -> JobState {
    let j: Job = owner
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{id}"))
        .await
        .unwrap();
    j.state
}

/// The printer reports `job` printing at `progress`.
pub(crate) async fn printing(ws: &mut Ws, printer: &str, job: JobId, progress: f32) {
    let mut t = idle();
    t.state = PrinterState::Printing;
    t.job_id = Some(job);
    t.progress = Some(progress);
    send(
        ws,
        &AgentMsg::Telemetry {
            printer: printer.into(),
            status: t,
        },
    )
    .await;
}

#[tokio::test]
async fn a_loaded_spool_is_what_jobs_fit_and_what_they_take_filament_from() {
    let server = server().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let mut hook = webhook(&owner, org, NotifyEvent::SpoolLow).await;

    // The library: the type's density when none is given; names are unique; nonsense refused.
    let galaxy = NewMaterial {
        name: "Prusament PETG Galaxy Black".into(),
        brand: Some("Prusa".into()),
        material: "PETG".into(),
        color: Some("#1a1a1a".into()),
        price_per_kg: Some(30.0),
        ..NewMaterial::default()
    };
    let petg = owner.create_material(org, &galaxy).await.unwrap();
    assert_eq!((petg.density_g_cm3, petg.diameter_mm), (1.27, 1.75));
    assert_eq!(
        api_status(owner.create_material(org, &galaxy).await.unwrap_err()),
        409
    );
    for bad in [
        NewMaterial {
            name: "x".into(),
            material: String::new(),
            ..NewMaterial::default()
        },
        NewMaterial {
            name: "y".into(),
            material: "PLA".into(),
            diameter_mm: Some(0.4),
            ..NewMaterial::default()
        },
    ] {
        assert_eq!(
            api_status(owner.create_material(org, &bad).await.unwrap_err()),
            422
        );
    }
    assert_eq!(owner.materials(org).await.unwrap(), vec![petg.clone()]);

    // A spool of it: weighed on a scale, what is left is the weight less the empty spool.
    let spool = owner
        .create_spool(
            org,
            &NewSpool {
                material: petg.id,
                empty_spool_grams: Some(250.0),
                low_grams: Some(150.0),
                location: Some("dry box 2".into()),
                ..NewSpool::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(spool.remaining_grams, 1000.0);
    let weigh = |g| SpoolUpdate {
        weighed_grams: Some(g),
        ..SpoolUpdate::default()
    };
    let spool = owner
        .update_spool(org, spool.id, &weigh(1150.0))
        .await
        .unwrap();
    assert_eq!(spool.remaining_grams, 900.0);
    assert!(
        (spool.remaining_m - 297.0).abs() < 3.0,
        "{}",
        spool.remaining_m
    );
    assert_eq!(
        api_status(
            owner
                .update_spool(org, spool.id, &weigh(100.0))
                .await
                .unwrap_err()
        ),
        422,
        "less than the empty spool"
    );

    // A printer of pool "farm" configured with PLA; the PETG spool goes on it.
    let (agent, mut ws) =
        approved_agent(&server, &owner, org, 1, vec![printer_info("mk4", "farm")]).await;
    let printers = printers_until(&owner, org, "an idle printer", |p| {
        p.len() == 1 && p[0].telemetry.state == PrinterState::Idle
    })
    .await;
    let mk4: PrinterId = printers[0].id;
    let with_spool = LoadedRequest {
        spool: Some(spool.id),
        ..LoadedRequest::default()
    };
    let both = LoadedRequest {
        material: Some("PLA".into()),
        ..with_spool.clone()
    };
    assert_eq!(
        api_status(owner.set_printer_loaded(org, mk4, &both).await.unwrap_err()),
        422
    );
    let view: Printer = owner
        .set_printer_loaded(org, mk4, &with_spool)
        .await
        .unwrap();
    assert_eq!(
        (view.material.as_deref(), view.color.as_deref()),
        (Some("PETG"), Some("#1a1a1a"))
    );
    assert_eq!(
        view.spool.as_ref().map(|s| (s.id, s.remaining_grams)),
        Some((spool.id, 900.0))
    );
    assert_eq!(spool_now(&owner, org, &spool).await.printer, Some(mk4));

    // A pool job needing more than is left waits; one that fits goes out.
    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let petg_job = |grams: f32| {
        let mut j = pool_job("farm", &hash, pool_manifest("farm", &[&agent]));
        j.facts.material = Some("PETG".into());
        j.facts.filament_grams = Some(grams);
        j
    };
    let big = petg_job(950.0);
    assert_eq!(submit_job(&owner, org, &big).await.state, JobState::Queued);
    let small = petg_job(120.0);
    submit_job(&owner, org, &small).await;
    assert_eq!(offered(&mut ws).await, (small.job_id, "mk4".into()));
    assert_eq!(job_state(&owner, org, big.job_id).await, JobState::Queued);

    // It completes: all it revealed is taken from the spool, once, and the audit says so.
    job_update(&mut ws, small.job_id, JobState::Printing, None).await;
    printing(&mut ws, "mk4", small.job_id, 0.6).await;
    job_update(&mut ws, small.job_id, JobState::Completed, None).await;
    job_update(&mut ws, small.job_id, JobState::Completed, None).await;
    report_idle(&mut ws, "mk4").await;
    settled(&mut ws).await;
    let after = spool_now(&owner, org, &spool).await;
    assert_eq!(after.remaining_grams, 780.0);
    assert!(after.last_used_at.is_some());
    let audit: serde_json::Value = owner
        .raw_get(&format!("/api/v1/orgs/{org}/audit"))
        .await
        .unwrap();
    let done = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "job.completed")
        .expect("the completion is in the audit log");
    assert_eq!(done["details"]["grams"], 120.0);

    // A cancelled job takes the share its printer last reported done.
    let named = {
        let mut j = petg_job(700.0);
        j.pool = None;
        j.printer = Some(mk4);
        j
    };
    submit_job(&owner, org, &named).await;
    // The big pool job still waits (the named one took the printer).
    assert_eq!(offered(&mut ws).await.0, named.job_id);
    job_update(&mut ws, named.job_id, JobState::Printing, None).await;
    printing(&mut ws, "mk4", named.job_id, 0.25).await;
    printing(&mut ws, "mk4", named.job_id, 0.75).await;
    job_update(&mut ws, named.job_id, JobState::Cancelled, None).await;
    report_idle(&mut ws, "mk4").await;
    settled(&mut ws).await;
    let after = spool_now(&owner, org, &spool).await;
    assert_eq!(after.remaining_grams, 255.0);
    // Still above 150 g, so nothing was sent; the next job takes it below: spool.low.
    let third = {
        let mut j = named.clone();
        j.job_id = JobId::new();
        j.facts.filament_grams = Some(130.0);
        j
    };
    submit_job(&owner, org, &third).await;
    assert_eq!(offered(&mut ws).await.0, third.job_id);
    job_update(&mut ws, third.job_id, JobState::Printing, None).await;
    job_update(&mut ws, third.job_id, JobState::Completed, None).await;
    report_idle(&mut ws, "mk4").await;
    settled(&mut ws).await;
    let low = hook.next("spool.low").await;
    let body = low.json();
    assert_eq!(body["type"], "spool.low");
    assert_eq!(body["data"]["spool"]["id"], spool.id.to_string());
    assert_eq!(body["data"]["spool"]["remaining_grams"], 125.0);
    assert_eq!(body["data"]["printer"]["name"], "mk4");
    assert!(
        body["data"]["message"]
            .as_str()
            .unwrap()
            .contains("125 g left"),
        "{body}"
    );

    // What each job took, newest first; the statistics with the price (30 per kg).
    let uses = owner.spool_usage(org, spool.id).await.unwrap();
    let grams: Vec<f32> = uses.iter().map(|u| u.grams).collect();
    assert_eq!(grams, [130.0, 525.0, 120.0]);
    assert_eq!(uses[1].state, JobState::Cancelled);
    let usage = owner.material_usage(org, 30).await.unwrap();
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!(usage[0].material.as_deref(), Some("PETG"));
    assert_eq!((usage[0].grams, usage[0].jobs), (775.0, 3));
    assert!((usage[0].cost.unwrap() - 23.25).abs() < 1e-6, "{usage:?}");
    // Per member (all three the owner's): how they ended, what the spool gave, what was revealed.
    let members = owner.member_usage(org, 30).await.unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
    let m = &members[0];
    assert_eq!(m.login, "owner");
    assert_eq!(
        (m.jobs.completed, m.jobs.cancelled, m.jobs.failed),
        (2, 1, 0)
    );
    assert_eq!(m.spool_grams, 775.0);
    assert!((m.cost.unwrap() - 23.25).abs() < 1e-6, "{m:?}");
    assert_eq!((m.revealed_grams, m.revealed_grams_jobs), (250.0, 2));
    let estimated: u64 = [&small, &third]
        .iter()
        .map(|j| j.facts.estimated_seconds.unwrap_or(0))
        .sum();
    assert_eq!(m.estimated_seconds, estimated as f64);
    let refused = owner
        .raw_get::<serde_json::Value>(&format!("/api/v1/orgs/{org}/usage/members?days=0"))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422));

    // A new spool weighed in: the waiting 950 g job fits it and goes out at once.
    let fresh = owner
        .update_spool(
            org,
            spool.id,
            &SpoolUpdate {
                remaining_grams: Some(1000.0),
                ..SpoolUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fresh.remaining_grams, 1000.0);
    assert_eq!(offered(&mut ws).await.0, big.job_id);

    // The material's name changes for its spools; it cannot be deleted while a spool is of it.
    let renamed = owner
        .update_material(
            org,
            petg.id,
            &MaterialUpdate {
                name: Some("Galaxy Black".into()),
                ..MaterialUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.material, "PETG");
    // A field sent as null is forgotten; the absent ones stay.
    let priced = renamed.price_per_kg;
    assert!(priced.is_some() && renamed.color.is_some());
    let cleared = owner
        .update_material(
            org,
            petg.id,
            &MaterialUpdate {
                price_per_kg: Some(None),
                ..MaterialUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.price_per_kg, None);
    assert_eq!(cleared.color, renamed.color);
    assert_eq!(cleared.name, "Galaxy Black");
    owner
        .update_material(
            org,
            petg.id,
            &MaterialUpdate {
                price_per_kg: priced.map(Some),
                ..MaterialUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        spool_now(&owner, org, &spool).await.material.name,
        "Galaxy Black"
    );
    assert_eq!(
        api_status(owner.delete_material(org, petg.id).await.unwrap_err()),
        409
    );

    // Archived: off the printer and out of the list (unless asked), kept for the history.
    owner
        .update_spool(
            org,
            spool.id,
            &SpoolUpdate {
                archived: Some(true),
                ..SpoolUpdate::default()
            },
        )
        .await
        .unwrap();
    let listed = printers_until(&owner, org, "the printer without its spool", |p| {
        p[0].spool.is_none()
    })
    .await;
    assert_eq!(
        listed[0].material.as_deref(),
        Some("PETG"),
        "what is loaded stays"
    );
    assert!(owner.spools(org, false).await.unwrap().is_empty());
    assert_eq!(owner.spools(org, true).await.unwrap().len(), 1);
    assert_eq!(
        api_status(
            owner
                .set_printer_loaded(org, mk4, &with_spool)
                .await
                .unwrap_err()
        ),
        409,
        "an archived spool is not loaded"
    );
}

/// A material "Generic PLA" and a new spool of it.
async fn generic_pla_spool(
    owner: &Client,
    org: OrgId,
) -> (hearth_proto::inventory::Material, Spool) {
    let m = owner
        .create_material(
            org,
            &NewMaterial {
                name: "Generic PLA".into(),
                material: "PLA".into(),
                ..NewMaterial::default()
            },
        )
        .await
        .unwrap();
    let spool = owner
        .create_spool(
            org,
            &NewSpool {
                material: m.id,
                ..NewSpool::default()
            },
        )
        .await
        .unwrap();
    (m, spool)
}

#[tokio::test]
async fn spools_belong_to_their_organisation_and_viewers_only_look() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let (m, spool) = generic_pla_spool(&owner, org).await;
    let viewer = member(&server, &owner, org, "vera", hearth_proto::Role::Viewer).await;
    assert_eq!(
        viewer.spools(org, false).await.unwrap(),
        vec![spool.clone()]
    );
    let change = SpoolUpdate {
        remaining_grams: Some(1.0),
        ..SpoolUpdate::default()
    };
    assert_eq!(
        api_status(
            viewer
                .update_spool(org, spool.id, &change)
                .await
                .unwrap_err()
        ),
        403
    );
    // Another organisation's spool is not found, not forbidden.
    let other = owner.create_org("other", None, None).await.unwrap();
    assert_eq!(
        api_status(owner.spool(other.id, spool.id).await.unwrap_err()),
        404
    );
    let nothing = NewSpool {
        material: m.id,
        initial_grams: Some(0.0),
        ..NewSpool::default()
    };
    assert_eq!(
        api_status(owner.create_spool(org, &nothing).await.unwrap_err()),
        422
    );
}

/// A fresh server whose owner's organisation has one approved agent with one idle printer `name`,
/// of pool `farm`.
struct OnePrinter {
    server: TestServer,
    owner: Client,
    org: OrgId,
    agent: FakeAgent,
    ws: Ws,
    printer: PrinterId,
}

async fn one_idle_printer(name: &str) -> OnePrinter {
    let server = server().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let (agent, ws) =
        approved_agent(&server, &owner, org, 1, vec![printer_info(name, "farm")]).await;
    let printer = printers_until(&owner, org, "an idle printer", |p| {
        p.len() == 1 && p[0].telemetry.state == PrinterState::Idle
    })
    .await[0]
        .id;
    OnePrinter {
        server,
        owner,
        org,
        agent,
        ws,
        printer,
    }
}

/// The share a stopped job used comes with its agent's final report: a server restarted since the
/// last telemetry (which it keeps in memory only) still takes it from the spool.
#[tokio::test]
async fn a_job_stopped_after_a_server_restart_takes_the_share_its_agent_reports() {
    let OnePrinter {
        server,
        owner,
        org,
        agent,
        mut ws,
        printer: mk4,
    } = one_idle_printer("mk4").await;
    let (_, spool) = generic_pla_spool(&owner, org).await;
    let load = LoadedRequest {
        spool: Some(spool.id),
        ..LoadedRequest::default()
    };
    owner.set_printer_loaded(org, mk4, &load).await.unwrap();
    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let mut job = pool_job("farm", &hash, pool_manifest("farm", &[&agent]));
    job.facts.material = Some("PLA".into());
    job.facts.filament_grams = Some(200.0);
    submit_job(&owner, org, &job).await;
    assert_eq!(offered(&mut ws).await.0, job.job_id);
    job_update(&mut ws, job.job_id, JobState::Printing, None).await;
    printing(&mut ws, "mk4", job.job_id, 0.1).await;
    settled(&mut ws).await;

    // The server restarts; the agent comes back and reports the print cancelled at 60%, before
    // any telemetry.
    drop(ws);
    let server = server.restart().await;
    let (mut ws, _) = agent.connect(&server).await.unwrap();
    send(
        &mut ws,
        &AgentMsg::Printers {
            printers: vec![printer_info("mk4", "farm")],
        },
    )
    .await;
    send(
        &mut ws,
        &AgentMsg::JobUpdate {
            job_id: job.job_id,
            state: JobState::Cancelled,
            message: None,
            progress: Some(0.6),
            slots: Vec::new(),
        },
    )
    .await;
    // Handled once the Pong comes (the restarted server may first offer the job again).
    send(&mut ws, &AgentMsg::Ping).await;
    while recv(&mut ws).await != ServerMsg::Pong {}
    let mut c = server.client();
    c.login("owner", OWNER_SECRET).await.unwrap();
    assert_eq!(job_state(&c, org, job.job_id).await, JobState::Cancelled);
    let uses = c.spool_usage(org, spool.id).await.unwrap();
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert!((uses[0].grams - 120.0).abs() < 1e-3, "{uses:?}");
    assert!((spool_now(&c, org, &spool).await.remaining_grams - 880.0).abs() < 1e-3);
}

/// Spools in a printer's slots: a job of two filaments that its agent fed from two slots takes
/// each filament's share from the spool in its slot; the same job without slots (an agent that
/// chose none) is taken as one from the printer's holder. Slot names and archived spools are
/// refused with a reason.
#[tokio::test]
async fn each_filament_is_taken_from_the_spool_in_the_slot_that_fed_it() {
    use hearth_proto::api::FilamentFact;
    let OnePrinter {
        server,
        owner,
        org,
        agent,
        mut ws,
        printer: x1c,
    } = one_idle_printer("x1c").await;
    let (m, holder) = generic_pla_spool(&owner, org).await;
    let new = || NewSpool {
        material: m.id,
        ..NewSpool::default()
    };
    let (a1, b2) = (
        owner.create_spool(org, &new()).await.unwrap(),
        owner.create_spool(org, &new()).await.unwrap(),
    );
    let load = LoadedRequest {
        spool: Some(holder.id),
        ..LoadedRequest::default()
    };
    owner.set_printer_loaded(org, x1c, &load).await.unwrap();
    owner.load_slot(org, x1c, "A1", a1.id).await.unwrap();
    let p = owner.load_slot(org, x1c, "B2", b2.id).await.unwrap();
    assert_eq!(
        p.slot_spools
            .iter()
            .map(|s| (s.slot.as_str(), s.id))
            .collect::<Vec<_>>(),
        [("A1", a1.id), ("B2", b2.id)]
    );
    assert_eq!(p.spool.map(|s| s.id), Some(holder.id));
    for bad in ["A%201", "A:1", &"A".repeat(17)] {
        let e = owner.load_slot(org, x1c, bad, a1.id).await.unwrap_err();
        assert_eq!(api_status(e), 422, "{bad}");
    }

    let job_of = |hash, grams: &[f32]| {
        let mut job = pool_job("farm", hash, pool_manifest("farm", &[&agent]));
        job.facts.filament_grams = Some(grams.iter().sum());
        job.facts.filaments = grams
            .iter()
            .map(|g| FilamentFact {
                material: Some("PLA".into()),
                color: None,
                grams: *g,
            })
            .collect();
        job
    };
    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    // Cancelled at half way, fed from B2 and A1: half of each filament from its slot's spool.
    let job = job_of(&hash, &[40.0, 10.0]);
    // One slot per tool of the printer (an MMU's tool-to-gate map): the file's two filaments
    // are the first two tools.
    let slots = ["B2", "A1", "G7"];
    printed_until(
        &owner,
        org,
        &mut ws,
        &job,
        JobState::Cancelled,
        Some(0.5),
        &slots,
    )
    .await;
    let left = |s: Spool| {
        let owner = &owner;
        async move { spool_now(owner, org, &s).await.remaining_grams }
    };
    assert_eq!(left(b2.clone()).await, 980.0);
    assert_eq!(left(a1.clone()).await, 995.0);
    assert_eq!(left(holder.clone()).await, 1000.0);
    let uses = owner.spool_usage(org, b2.id).await.unwrap();
    assert_eq!(
        uses.iter()
            .map(|u| (u.slot.as_deref(), u.grams, u.state))
            .collect::<Vec<_>>(),
        [(Some("B2"), 20.0, JobState::Cancelled)]
    );

    // A plate using two of its project's four filaments, fed from B2 and A1: the slots go to the
    // filaments it uses, in order.
    let job = job_of(&hash, &[0.0, 20.0, 4.0, 0.0]);
    let slots = ["B2", "A1"];
    printed_until(
        &owner,
        org,
        &mut ws,
        &job,
        JobState::Completed,
        None,
        &slots,
    )
    .await;
    assert_eq!(left(b2.clone()).await, 960.0);
    assert_eq!(left(a1.clone()).await, 991.0);

    // Completed without slots: all of it from the holder's spool.
    let job = job_of(&hash, &[40.0, 10.0]);
    printed_until(&owner, org, &mut ws, &job, JobState::Completed, None, &[]).await;
    assert_eq!(left(holder.clone()).await, 950.0);
    assert_eq!(left(b2.clone()).await, 960.0);

    // A printer with tools whose spools sit in slots named after them (T0, T1): without slots
    // said, filament N is taken from slot TN; a spool it takes below its threshold is notified
    // with its slot.
    let mut hook = webhook(&owner, org, NotifyEvent::SpoolLow).await;
    let nearly_empty = NewSpool {
        remaining_grams: Some(103.0),
        ..new()
    };
    let (t0, t1) = (
        owner.create_spool(org, &new()).await.unwrap(),
        owner.create_spool(org, &nearly_empty).await.unwrap(),
    );
    owner.load_slot(org, x1c, "T0", t0.id).await.unwrap();
    owner.load_slot(org, x1c, "T1", t1.id).await.unwrap();
    let job = job_of(&hash, &[30.0, 6.0]);
    printed_until(&owner, org, &mut ws, &job, JobState::Completed, None, &[]).await;
    assert_eq!(left(t0.clone()).await, 970.0);
    assert_eq!(left(t1.clone()).await, 97.0);
    let low = hook.next("spool.low").await.json();
    assert_eq!(low["data"]["spool"]["id"], t1.id.to_string());
    assert_eq!(
        low["data"]["title"], "Spool running low on x1c (T1)",
        "{low}"
    );
    assert_eq!(low["data"]["spool"]["slot"], "T1", "{low}");
    assert_eq!(left(holder.clone()).await, 950.0, "nothing from the holder");
    let uses = owner.spool_usage(org, t1.id).await.unwrap();
    assert_eq!(uses[0].slot.as_deref(), Some("T1"));

    // Archived, it leaves its slot, and goes in none; emptying a slot is said once.
    owner
        .update_spool(
            org,
            a1.id,
            &SpoolUpdate {
                archived: Some(true),
                ..SpoolUpdate::default()
            },
        )
        .await
        .unwrap();
    let e = owner.load_slot(org, x1c, "A3", a1.id).await.unwrap_err();
    assert_eq!(api_status(e), 409);
    let p = owner.unload_slot(org, x1c, "B2").await.unwrap();
    let left_in: Vec<&str> = p.slot_spools.iter().map(|s| s.slot.as_str()).collect();
    assert_eq!(left_in, ["T0", "T1"], "A1's spool archived, B2's taken out");
    owner.unload_slot(org, x1c, "B2").await.unwrap();
    let log = owner.audit_page(Some(org), 0, 100).await.unwrap();
    let unloads = log
        .entries
        .iter()
        .filter(|e| e.action == "printer.slot_unload")
        .count();
    assert_eq!(unloads, 1);
}
