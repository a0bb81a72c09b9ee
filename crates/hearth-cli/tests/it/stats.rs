//! `hearth stats` on a real agent's printer: the time it has spent idle since it connected counts
//! at once (the server writes what it summed in memory before answering).

use crate::queue::{OnePrinter, one_printer};
use crate::support::*;
use hearth_proto::api::FleetStats;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleets_statistics_count_a_printers_time_at_once() {
    let OnePrinter {
        server: _server,
        ada,
        agent,
        ..
    } = one_printer(1.0).await;
    let stats: FleetStats = eventually("idle time counted", || async {
        let s: FleetStats =
            serde_json::from_str(&ada.run(&["stats", "--days", "7", "--json"]).await).unwrap();
        (s.printers[0].seconds.get("idle").copied().unwrap_or(0.0) > 0.0).then_some(s)
    })
    .await;
    assert_eq!((stats.days, stats.printers.len()), (7, 1));
    assert_eq!(stats.printers[0].printer, "mk4");
    assert_eq!(stats.success_rate, None, "no job ended");
    let table = ada.run(&["stats"]).await;
    let mk4 = table.lines().find(|l| l.starts_with("mk4")).unwrap();
    assert!(mk4.contains("0%"), "idle, not printing: {table}");
    assert!(table.contains("all, last 30 days"), "{table}");

    // Per member: none ended yet; a job printed and cancelled is then counted as ada's.
    let none = ada.run(&["stats", "--members"]).await;
    assert!(none.contains("No job ended in the last 30 days"), "{none}");
    let cube = crate::sample("cube20_prusaslicer_mk3s.gcode");
    let job = ada
        .run(&["print", cube.to_str().unwrap(), "--printer", "mk4"])
        .await;
    ada.run(&["cancel", job.trim()]).await;
    let csv = eventually("the cancelled job counted", || async {
        let csv = ada.run(&["stats", "--members", "--csv"]).await;
        csv.lines().nth(1).is_some().then_some(csv)
    })
    .await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "member,completed,failed,cancelled,refused,spool_g,cost,revealed_g,revealed_g_jobs,estimated_s"
        )
    );
    assert!(lines.next().unwrap().starts_with("ada,0,0,1,0,"), "{csv}");
    let table = ada.run(&["stats", "--members"]).await;
    assert!(table.lines().any(|l| l.starts_with("ada")), "{table}");
    agent.shutdown().await;
}
