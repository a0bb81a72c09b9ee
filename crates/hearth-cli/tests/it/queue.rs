//! The fleet queue from the CLI: jobs for a busy printer wait in the queue, `hearth queue` lists
//! them in the order they go out, `hearth queue top` moves one to the front, and the printer takes
//! that one next.

use crate::printer_chain::start_chain_agent;
use crate::support::*;
use hearth_agent::config::PrinterConfig;
use hearth_proto::agent::{JobState, PrinterState};
use hearth_proto::api::{Job, Printer};
use hearth_proto::ids::JobId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_printers_queue_is_listed_in_order_and_reordered() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let agent = start_chain_agent(
        &server,
        &ada,
        PrinterConfig {
            name: "mk4".into(),
            pools: vec![],
            material: None,
            color: None,
            nozzle_mm: None,
            camera: None,
            // Real time: the first print lasts well beyond this test.
            driver: hearth_drivers::DriverConfig::Simulated(Default::default()),
        },
    )
    .await;
    let (client, org) = ada.client();
    let state_of = |id: JobId| {
        let client = client.clone();
        async move {
            let j: Job = client
                .raw_get(&format!("/api/v1/orgs/{org}/jobs/{id}"))
                .await
                .unwrap();
            j.state
        }
    };
    eventually("the printer online", || async {
        let p: Vec<Printer> = client
            .raw_get(&format!("/api/v1/orgs/{org}/printers"))
            .await
            .unwrap();
        (p.len() == 1 && p[0].telemetry.state == PrinterState::Idle).then_some(())
    })
    .await;
    assert!(ada.run(&["queue"]).await.contains("the queue is empty"));

    let work = tempfile::tempdir().unwrap();
    let print = |marker: &'static str, extra: &'static [&'static str]| {
        let file = gcode(work.path(), &format!("{marker}.gcode"), marker);
        let ada = &ada;
        async move {
            let mut args = vec!["print", file.to_str().unwrap(), "--printer", "mk4"];
            args.extend_from_slice(extra);
            let id: JobId = ada.run(&args).await.trim().parse().unwrap();
            id
        }
    };
    let first = print("first", &[]).await;
    eventually("the first job on the printer", || async {
        (state_of(first).await != JobState::Queued).then_some(())
    })
    .await;
    let second = print("second", &[]).await;
    let third = print("third", &[]).await;
    let urgent = print("urgent", &["--priority", "5"]).await;
    for j in [second, third, urgent] {
        assert_eq!(state_of(j).await, JobState::Queued, "the printer is busy");
    }

    // Listed in the order they go out: the urgent one first, then by age.
    let listed = ada.run(&["queue", "--json"]).await;
    let order: Vec<JobId> = serde_json::from_str::<Vec<Job>>(&listed)
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(order, [urgent, second, third]);
    let table = ada.run(&["queue"]).await;
    let line = |id: JobId| {
        table
            .lines()
            .find(|l| l.contains(&id.to_string()))
            .unwrap()
            .to_owned()
    };
    assert!(line(urgent).contains("#1 (priority 5)"), "{table}");
    assert!(
        line(third).contains("#3")
            && line(third).contains("waiting for printer \"mk4\" to be free (job "),
        "{table}"
    );

    // The third goes to the front; it is what the printer takes once the first is cancelled.
    let said = ada.run(&["queue", "top", &third.to_string()]).await;
    assert!(said.contains("priority 6, #1 in the queue"), "{said}");
    ada.run(&["cancel", &first.to_string()]).await;
    eventually("the moved job on the printer", || async {
        (state_of(third).await != JobState::Queued).then_some(())
    })
    .await;
    assert_eq!(state_of(urgent).await, JobState::Queued);
    assert_eq!(state_of(second).await, JobState::Queued);
    // A job no longer queued keeps its place.
    let refused = ada.try_run(&["queue", "top", &third.to_string()]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("only a queued job can move"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    for j in [third, urgent, second] {
        ada.run(&["cancel", &j.to_string()]).await;
    }
    agent.shutdown().await;
}
