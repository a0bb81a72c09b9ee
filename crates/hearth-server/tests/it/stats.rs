//! Fleet statistics: time per state from the printers' history and how the jobs that ended on
//! each printer ended, over the last days.

use crate::fleet::*;
use crate::queue::{Fleet, named_job, one_idle_printer};
use crate::support::*;
use hearth_proto::agent::JobState;
use hearth_proto::api::JobCounts;
use hearth_proto::time_fmt::now_ms;

const H: i64 = 3_600_000;

#[tokio::test]
async fn the_fleets_time_and_job_outcomes_over_the_last_days() {
    let server = TestServer::start().await;
    let Fleet {
        owner,
        org,
        mut ws,
        mk4,
    } = one_idle_printer(&server).await;
    // History from before: half an hour printing and half an hour idle two hours ago, and ten
    // hours of printing forty days ago.
    let hour = now_ms() - now_ms() % H;
    let mut tx = server.state.store.begin().await.unwrap();
    tx.add_rollup(mk4, hour - 2 * H, "printing", H / 2)
        .await
        .unwrap();
    tx.add_rollup(mk4, hour - 2 * H, "idle", H / 2)
        .await
        .unwrap();
    tx.add_rollup(mk4, hour - 40 * 24 * H, "printing", 10 * H)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Three jobs: one completes, one fails, one is cancelled at the printer.
    let blob = make_file(server.dir.path(), "job.age", 2000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    for end in [JobState::Completed, JobState::Failed, JobState::Cancelled] {
        let job = named_job(mk4, &hash);
        submit_job(&owner, org, &job).await;
        assert_eq!(offered(&mut ws).await.0, job.job_id);
        crate::notify::job_update(&mut ws, job.job_id, JobState::Printing, None).await;
        crate::inventory::printing(&mut ws, "mk4", job.job_id, 0.5).await;
        crate::notify::job_update(&mut ws, job.job_id, end, None).await;
        report_idle(&mut ws, "mk4").await;
        crate::inventory::settled(&mut ws).await;
    }

    let viewer = member(&server, &owner, org, "vera", hearth_proto::Role::Viewer).await;
    let stats = viewer.fleet_stats(org, 30).await.unwrap();
    assert_eq!(stats.days, 30);
    assert_eq!(stats.printers.len(), 1);
    let p = &stats.printers[0];
    assert_eq!((p.printer_id, p.printer.as_str()), (mk4, "mk4"));
    let printing = p.seconds["printing"];
    assert!(
        (1800.0..1900.0).contains(&printing),
        "half an hour and the three jobs' moments, not the ten hours of forty days ago: {p:?}"
    );
    assert!(p.seconds["idle"] >= 1800.0, "{p:?}");
    assert!((p.utilisation - 0.5).abs() < 0.02, "{p:?}");
    assert_eq!(
        p.jobs,
        JobCounts {
            completed: 1,
            failed: 1,
            cancelled: 1,
            refused: 0
        }
    );
    assert_eq!(p.success_rate, Some(1.0 / 3.0));
    assert_eq!(stats.jobs, p.jobs);
    assert_eq!(
        stats.seconds, p.seconds,
        "one printer: the fleet is that printer"
    );
    assert!((stats.printing_hours - printing / 3600.0).abs() < 1e-9);

    // Over sixty days, the ten hours count too (the jobs' moments, milliseconds each, are
    // measured again: a few may differ).
    let longer = owner.fleet_stats(org, 60).await.unwrap();
    assert!(
        longer.printers[0].seconds["printing"] >= printing + 36_000.0 - 1.0,
        "{longer:?}"
    );
    // Out of range is clamped, not refused.
    assert_eq!(owner.fleet_stats(org, 5000).await.unwrap().days, 365);
}
