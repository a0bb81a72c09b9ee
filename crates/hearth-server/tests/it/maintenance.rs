//! Maintenance reminders: operators set up tasks on a printer; hours of printing come from its
//! history; the minute sweep reports a task that fell due once (`maintenance.due`) and holds the
//! printer when the task says so, until an operator marks it done.

use crate::fleet::*;
use crate::inventory::settled;
use crate::queue::{Fleet, named_job, one_idle_printer};
use crate::support::*;
use hearth_proto::Role;
use hearth_proto::agent::JobState;
use hearth_proto::maintenance::MaintenanceKind::{Lubrication, Nozzle};
use hearth_proto::maintenance::{MaintenanceSchedule, MaintenanceStatus};
use hearth_proto::notify::NotifyEvent;
use hearth_proto::time_fmt::{now_ms, rfc3339};

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;

#[tokio::test]
async fn a_due_task_is_reported_once_holds_its_printer_and_is_released_when_done() {
    let server = crate::notify::server().await;
    let Fleet {
        owner,
        org,
        mut ws,
        mk4,
    } = one_idle_printer(&server).await;
    let mut hook = crate::notify::webhook(&owner, org, NotifyEvent::MaintenanceDue).await;
    let operator = member(&server, &owner, org, "otto", Role::Operator).await;
    let viewer = member(&server, &owner, org, "vera", Role::Viewer).await;
    let every_2h = MaintenanceSchedule {
        every_print_hours: Some(2),
        hold_when_due: true,
        ..Default::default()
    };
    assert_eq!(
        viewer
            .set_maintenance(org, mk4, Nozzle, &every_2h)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );

    // A nozzle every 2 hours of printing, changed three hours ago; rods greased every 30 days,
    // last done 40 days ago.
    let hour = now_ms() - now_ms() % H;
    let nozzle = operator
        .set_maintenance(
            org,
            mk4,
            Nozzle,
            &MaintenanceSchedule {
                last_done: Some(rfc3339(hour - 3 * H)),
                ..every_2h.clone()
            },
        )
        .await
        .unwrap();
    let otto = operator.me().await.unwrap().user.id;
    assert_eq!(
        (
            nozzle.status,
            nozzle.print_hours_since,
            nozzle.print_hours_left,
            nozzle.done_by,
            nozzle.printer.as_str()
        ),
        (MaintenanceStatus::Ok, 0.0, Some(2.0), Some(otto), "mk4")
    );
    let last_greased = now_ms() - 40 * DAY;
    let lube = operator
        .set_maintenance(
            org,
            mk4,
            Lubrication,
            &MaintenanceSchedule {
                every_days: Some(30),
                last_done: Some(rfc3339(last_greased)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(lube.status, MaintenanceStatus::Due);
    assert_eq!(lube.due_on, Some(rfc3339(last_greased + 30 * DAY)));

    // Two and a half hours of printing since reach the printer's history (an hour of pause does
    // not count).
    let mut tx = server.state.store.begin().await.unwrap();
    for (bucket, state, ms) in [
        (hour - 2 * H, "printing", H),
        (hour - H, "printing", H),
        (hour - H, "paused", H),
        (hour, "printing", H / 2),
    ] {
        tx.add_rollup(mk4, bucket, state, ms).await.unwrap();
    }
    tx.commit().await.unwrap();
    let tasks = viewer.maintenance(org).await.unwrap();
    let nozzle = tasks.iter().find(|t| t.kind == Nozzle).unwrap();
    assert_eq!(
        (
            nozzle.status,
            nozzle.print_hours_since,
            nozzle.print_hours_left
        ),
        (MaintenanceStatus::Due, 2.5, Some(-0.5))
    );

    // The sweep reports both once; the nozzle holds the printer, the grease does not.
    hearth_server::routes::maintenance::sweep(&server.state, now_ms())
        .await
        .unwrap();
    let mut said = Vec::new();
    for _ in 0..2 {
        let body = hook.next("maintenance.due").await.json();
        assert_eq!(body["type"], "maintenance.due");
        assert_eq!(body["data"]["printer"]["name"], "mk4");
        said.push((
            body["data"]["maintenance"]["kind"]
                .as_str()
                .unwrap()
                .to_owned(),
            body["data"]["title"].as_str().unwrap().to_owned(),
            body["data"]["message"].as_str().unwrap().to_owned(),
        ));
    }
    said.sort();
    assert_eq!(said[0].1, "Maintenance due on mk4: lubrication");
    assert!(said[0].2.contains("every 30 days"), "{}", said[0].2);
    assert!(!said[0].2.contains("held"), "{}", said[0].2);
    assert_eq!(said[1].1, "Maintenance due on mk4: nozzle");
    assert!(
        said[1].2.contains("2 h of printing") && said[1].2.contains("every 2 h"),
        "{}",
        said[1].2
    );
    assert!(
        said[1]
            .2
            .contains("held (no new job) until it is marked done"),
        "{}",
        said[1].2
    );
    assert!(
        said[1].2.contains("`hearth maintenance done mk4 nozzle`"),
        "{}",
        said[1].2
    );
    let printers: Vec<hearth_proto::api::Printer> = owner
        .raw_get(&format!("/api/v1/orgs/{org}/printers"))
        .await
        .unwrap();
    assert!(printers[0].held, "the nozzle held the printer");

    // Swept again: nothing more to report.
    hearth_server::routes::maintenance::sweep(&server.state, now_ms())
        .await
        .unwrap();
    let channel = owner.notification_channels(org).await.unwrap().remove(0);
    assert_eq!(
        owner
            .notification_deliveries(org, channel.id)
            .await
            .unwrap()
            .len(),
        2
    );

    // A job for the held printer waits; the nozzle done, the printer takes it.
    let blob = make_file(server.dir.path(), "job.age", 2000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let job = named_job(mk4, &hash);
    assert_eq!(submit_job(&owner, org, &job).await.state, JobState::Queued);
    settled(&mut ws).await;
    assert_eq!(
        viewer
            .maintenance_done(org, mk4, Nozzle)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    let done = operator.maintenance_done(org, mk4, Nozzle).await.unwrap();
    assert_eq!(
        (done.status, done.print_hours_since, done.print_hours_left),
        (MaintenanceStatus::Ok, 0.0, Some(2.0))
    );
    assert_eq!(done.done_by, Some(otto));
    assert_eq!(offered(&mut ws).await.0, job.job_id);
    printers_until(&owner, org, "the printer released", |p| !p[0].held).await;

    // The printer's own telemetry counts: once it prints, the time reaches the task through the
    // history the server writes.
    crate::notify::job_update(&mut ws, job.job_id, JobState::Printing, None).await;
    crate::inventory::printing(&mut ws, "mk4", job.job_id, 0.1).await;
    settled(&mut ws).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        server
            .state
            .hub
            .flush_rollups(&server.state.store)
            .await
            .unwrap();
        let t = server
            .state
            .store
            .maintenance_task(mk4, Nozzle)
            .await
            .unwrap();
        if t.printed_ms > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "printing never counted"
        );
        tokio::task::yield_now().await;
    }

    // Every step is in the audit log.
    let audit = owner.audit_page(Some(org), 0, 200).await.unwrap();
    let steps: Vec<(&str, &str)> = audit
        .entries
        .iter()
        .filter(|e| e.action.starts_with("maintenance.") || e.action.starts_with("printer."))
        .map(|e| (e.action.as_str(), e.actor.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("maintenance.set", "user"),
            ("maintenance.set", "user"),
            ("printer.hold", "system"),
            ("maintenance.done", "user"),
        ]
    );
}

#[tokio::test]
async fn a_task_is_refused_clearly_and_removed() {
    let server = TestServer::start().await;
    let Fleet {
        owner, org, mk4, ..
    } = one_idle_printer(&server).await;
    fn refused<T: std::fmt::Debug>(
        r: Result<T, hearth_client::ClientError>,
    ) -> (Option<u16>, String) {
        let e = r.unwrap_err();
        (e.status(), e.to_string())
    }
    let raw = owner
        .raw_put(
            &format!("/api/v1/orgs/{org}/printers/{mk4}/maintenance/grease"),
            &serde_json::json!({ "every_days": 30 }),
        )
        .await;
    let (status, why) = refused(raw);
    assert_eq!(status, Some(422));
    assert!(why.contains("lubrication"), "{why}");
    for (schedule, says) in [
        (
            MaintenanceSchedule::default(),
            "every_print_hours, every_days or both",
        ),
        (
            MaintenanceSchedule {
                every_days: Some(0),
                ..Default::default()
            },
            "every_days is 1 to 3650",
        ),
        (
            MaintenanceSchedule {
                every_days: Some(30),
                last_done: Some(rfc3339(now_ms() + DAY)),
                ..Default::default()
            },
            "in the future",
        ),
        (
            MaintenanceSchedule {
                every_days: Some(30),
                last_done: Some("last tuesday".into()),
                ..Default::default()
            },
            "not an RFC 3339 time",
        ),
    ] {
        let (status, why) = refused(owner.set_maintenance(org, mk4, Nozzle, &schedule).await);
        assert_eq!(status, Some(422), "{why}");
        assert!(why.contains(says), "{why}");
    }
    assert_eq!(
        refused(owner.maintenance_done(org, mk4, Nozzle).await).0,
        Some(404)
    );
    assert!(owner.maintenance(org).await.unwrap().is_empty());

    // Changed, then removed.
    let weekly = MaintenanceSchedule {
        every_days: Some(7),
        ..Default::default()
    };
    owner
        .set_maintenance(org, mk4, Nozzle, &weekly)
        .await
        .unwrap();
    let changed = owner
        .set_maintenance(
            org,
            mk4,
            Nozzle,
            &MaintenanceSchedule {
                every_print_hours: Some(300),
                ..weekly
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (changed.every_print_hours, changed.every_days),
        (Some(300), Some(7))
    );
    owner.remove_maintenance(org, mk4, Nozzle).await.unwrap();
    assert_eq!(
        refused(owner.remove_maintenance(org, mk4, Nozzle).await).0,
        Some(404)
    );
    assert!(owner.maintenance(org).await.unwrap().is_empty());
}
