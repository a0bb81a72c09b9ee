//! Maintenance reminders from the CLI: `hearth maintenance set` on a real agent's printer, the
//! list with what is due, `hearth printers` naming it, `done` and `remove`, and clear refusals.

use crate::queue::{OnePrinter, one_printer};

use hearth_proto::maintenance::{MaintenanceKind, MaintenanceStatus, MaintenanceTask};
use hearth_proto::time_fmt::{now_ms, rfc3339};

const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printers_maintenance_is_set_up_listed_and_marked_done() {
    let OnePrinter {
        server: _server,
        ada,
        agent,
        client,
        ..
    } = one_printer(1.0).await;
    assert!(
        ada.run(&["maintenance"])
            .await
            .contains("no maintenance tasks")
    );

    // Rods greased every 30 days, last 40 days ago: due. The build plate every 300 hours of
    // printing, holding the printer when due: not yet.
    let greased = now_ms() - 40 * DAY;
    let greased_on = &rfc3339(greased)[..10];
    ada.run(&[
        "maintenance",
        "set",
        "mk4",
        "lubrication",
        "--every-days",
        "30",
        "--last-done",
        greased_on,
    ])
    .await;
    ada.run(&[
        "maintenance",
        "set",
        "mk4",
        "build-plate",
        "--every-hours",
        "300",
        "--hold-when-due",
    ])
    .await;
    let table = ada.run(&["maintenance"]).await;
    let line = |what: &str| {
        table
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what} in {table}"))
            .to_owned()
    };
    let due_by = &rfc3339(greased - greased % DAY + 30 * DAY)[..10];
    assert!(
        line("lubrication").contains(&format!("DUE: by {due_by}"))
            && line("lubrication").contains(&format!("on {greased_on}")),
        "{table}"
    );
    assert!(
        line("build plate").contains("300 h printing (holds)")
            && line("build plate").contains("ok: 300.0 h left"),
        "{table}"
    );
    let printers = ada.run(&["printers"]).await;
    assert!(
        printers.contains(
            "maintenance due on mk4: lubrication (`hearth maintenance done mk4 lubrication`)"
        ),
        "{printers}"
    );
    assert!(!printers.contains("build plate"), "{printers}");

    // Done now: counted again from today, by whoever said so.
    let done: Vec<MaintenanceTask> = serde_json::from_str(
        &ada.run(&["maintenance", "done", "mk4", "lubrication", "--json"])
            .await,
    )
    .unwrap();
    assert_eq!(
        (done[0].kind, done[0].status, done[0].every_days),
        (
            MaintenanceKind::Lubrication,
            MaintenanceStatus::Ok,
            Some(30)
        )
    );
    assert_eq!(done[0].done_by, Some(client.me().await.unwrap().user.id));

    // Refused with a reason.
    for (args, says) in [
        (
            &["maintenance", "set", "mk4", "grease", "--every-days", "3"][..],
            "one of nozzle, lubrication",
        ),
        (
            &["maintenance", "set", "mk4", "nozzle"][..],
            "--every-hours HOURS, --every-days DAYS or both",
        ),
        (
            &[
                "maintenance",
                "set",
                "mk4",
                "nozzle",
                "--every-days",
                "3",
                "--last-done",
                "yesterday",
            ][..],
            "give a date (2026-11-02)",
        ),
        (
            &["maintenance", "set", "mk3", "nozzle", "--every-days", "3"][..],
            "no printer named \"mk3\"",
        ),
        (
            &["maintenance", "done", "mk4", "nozzle"][..],
            "cannot mark nozzle done on \"mk4\"",
        ),
    ] {
        let out = ada.try_run(args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
    }

    let said = ada
        .run(&["maintenance", "remove", "mk4", "build_plate"])
        .await;
    assert!(said.contains("removed build plate from mk4"), "{said}");
    let left: Vec<MaintenanceTask> =
        serde_json::from_str(&ada.run(&["maintenance", "--json"]).await).unwrap();
    assert_eq!(left.len(), 1);
    agent.shutdown().await;
}

/// `hearth printers` still shows the printers when the maintenance list fails, and says that it
/// failed (a server error is not "nothing due"); a server that has no maintenance endpoint (404,
/// older than reminders) is simply nothing due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearth_printers_says_when_it_cannot_list_maintenance() {
    use axum::http::StatusCode;
    for (status, said) in [
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("cannot list the maintenance tasks due"),
        ),
        (StatusCode::NOT_FOUND, None),
    ] {
        let org = hearth_proto::ids::OrgId::new();
        let app = axum::Router::new()
            .route(
                &format!("/api/v1/orgs/{org}/printers"),
                axum::routing::get(|| async { axum::Json(serde_json::json!([])) }),
            )
            .route(
                &format!("/api/v1/orgs/{org}/maintenance"),
                axum::routing::get(move || async move {
                    (
                        status,
                        axum::Json(serde_json::json!({ "error": "the database is down" })),
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let ada = crate::support::Machine::new("unused");
        std::fs::write(
            ada.dir.path().join("profile.json"),
            serde_json::to_vec(&serde_json::json!({
                "server": url,
                "login": "ada",
                "token": "hth_test",
                "org_id": org,
            }))
            .unwrap(),
        )
        .unwrap();
        let out = ada.try_run(&["printers"]).await;
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        match said {
            Some(s) => assert!(
                stderr.contains(s) && stderr.contains("the database is down"),
                "{stderr}"
            ),
            None => assert!(stderr.is_empty(), "{stderr}"),
        }
    }
}
