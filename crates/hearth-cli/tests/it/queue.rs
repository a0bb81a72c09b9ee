//! The fleet queue from the CLI: jobs for a busy printer wait in the queue, `hearth queue` lists
//! them in the order they go out, `hearth queue top` moves one to the front, and the printer takes
//! that one next.

use crate::printer_chain::{simulated, start_chain_agent};
use crate::support::*;
use hearth_proto::agent::{JobState, PrinterState};
use hearth_proto::api::{Job, Printer};
use hearth_proto::ids::JobId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_printers_queue_is_listed_in_order_and_reordered() {
    // Real time: the first print lasts well beyond this test.
    let OnePrinter {
        server: _server,
        ada,
        agent,
        client,
        org,
    } = one_printer(1.0).await;
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
    printer_idle(&client, org).await;
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

/// A batch: `--copies 3` seals and uploads the file once (and its label once) and queues three
/// signed jobs over it, which the printer prints one after the other, each accepted once by the
/// agent; each copy's label is signed for that copy and opens to the file's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_a_file_are_one_upload_and_as_many_jobs() {
    let OnePrinter {
        server: _server,
        ada,
        agent,
        client,
        org,
    } = one_printer(50.0).await;
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "part.gcode", "batch");
    let printed = ada
        .run(&[
            "print",
            file.to_str().unwrap(),
            "--printer",
            "mk4",
            "--copies",
            "3",
        ])
        .await;
    let ids: Vec<JobId> = printed.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{printed}");
    let blobs: Vec<serde_json::Value> = client
        .raw_get(&format!("/api/v1/orgs/{org}/blobs"))
        .await
        .unwrap();
    assert_eq!(
        blobs.len(),
        2,
        "one sealed upload and one sealed label: {blobs:?}"
    );
    let jobs: Vec<Job> = jobs_by_id(&client, org, &ids).await;
    assert!(jobs.iter().all(|j| j.blob_sha256 == jobs[0].blob_sha256));
    let labels: Vec<_> = jobs.iter().map(|j| j.label.clone().unwrap()).collect();
    assert!(
        labels
            .iter()
            .all(|l| l.meta_sha256 == labels[0].meta_sha256)
    );
    assert!(
        labels[0].manifest != labels[1].manifest && labels[1].manifest != labels[2].manifest,
        "each copy's label is signed for it"
    );
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["jobs", "--json", "--all"]).await).unwrap();
    for id in &ids {
        let j = listed
            .iter()
            .find(|j| j["id"] == id.to_string())
            .expect("each copy listed");
        assert_eq!(j["name"], "part.gcode", "{j}");
    }
    eventually("every copy printed", || async {
        let jobs = jobs_by_id(&client, org, &ids).await;
        for j in &jobs {
            assert!(
                !matches!(j.state, JobState::Failed | JobState::Refused),
                "{j:?}"
            );
        }
        jobs.iter()
            .all(|j| j.state == JobState::Completed)
            .then_some(())
    })
    .await;
    // Out of range: refused before anything is sealed.
    let none = ada
        .try_run(&[
            "print",
            file.to_str().unwrap(),
            "--printer",
            "mk4",
            "--copies",
            "0",
        ])
        .await;
    assert!(!none.status.success());
    agent.shutdown().await;
}

/// `hearth print JOB`: what a job printed, opened from its sealed payload on the member's device
/// and sealed again as a new signed job, by default for the printer it went to; named as before.
/// Once the server no longer keeps the payload, the member is told where to print it from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_printed_again_from_its_sealed_payload() {
    let OnePrinter {
        server: _server,
        ada,
        agent,
        client,
        org,
    } = one_printer(50.0).await;
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "bracket.gcode", "again");
    let first: JobId = ada
        .run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await
        .trim()
        .parse()
        .unwrap();
    let done = |id: JobId| {
        let client = client.clone();
        async move {
            eventually("the job completed", || async {
                let j = &jobs_by_id(&client, org, &[id]).await[0];
                assert!(
                    !matches!(j.state, JobState::Failed | JobState::Refused),
                    "{j:?}"
                );
                (j.state == JobState::Completed).then_some(j.clone())
            })
            .await
        }
    };
    let before = done(first).await;
    // The file is gone from this machine: the job's own payload is what prints again.
    std::fs::remove_file(&file).unwrap();
    let again: JobId = ada
        .run(&["print", &first.to_string()])
        .await
        .trim()
        .parse()
        .unwrap();
    assert_ne!(again, first);
    let after = done(again).await;
    assert_eq!(after.printer, before.printer, "where it went before");
    assert_ne!(after.blob_sha256, before.blob_sha256, "sealed anew");
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["jobs", "--json", "--all"]).await).unwrap();
    for id in [first, again] {
        let j = listed.iter().find(|j| j["id"] == id.to_string()).unwrap();
        assert_eq!(j["name"], "bracket.gcode", "{j}");
    }
    // With what `hearth print` takes besides: here a batch, for the printer named.
    let batch = ada
        .run(&[
            "print",
            &again.to_string(),
            "--printer",
            "mk4",
            "--copies",
            "2",
            "--json",
        ])
        .await;
    let batch: Vec<Job> = serde_json::from_str(&batch).unwrap();
    assert_eq!(batch.len(), 2);
    for j in &batch {
        done(j.id).await;
    }

    // The history as CSV for a spreadsheet, named from the labels opened here.
    let today = &before.created_at[..10];
    let csv = ada.run(&["jobs", "--csv", "--since", today]).await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "job,name,state,printer,pool,submitted_by,submitted_at,updated_at,material,colour,filament_g,estimated_s,message,approval,decided_by"
        )
    );
    let first_line = csv
        .lines()
        .find(|l| l.starts_with(&first.to_string()))
        .unwrap_or_default();
    assert!(
        first_line.starts_with(&format!("{first},bracket.gcode,completed,mk4,,ada,")),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    let none = ada.run(&["jobs", "--csv", "--until", today]).await;
    assert_eq!(none.lines().count(), 1, "{none}");
    let bad = ada.try_run(&["jobs", "--since", "last week"]).await;
    assert!(!bad.status.success());

    // Its payload deleted (as `job_payload_keep_days` after the job ended): said, not guessed.
    client.delete_blob(org, &before.blob_sha256).await.unwrap();
    let out = ada.try_run(&["print", &first.to_string()]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "the sealed payload of job {first} is no longer kept"
        )),
        "{err}"
    );
    // Neither a file, a library file nor a job.
    let out = ada
        .try_run(&["print", "0190b8a2-0000-7000-8000-000000000000"])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no file or job with that id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.shutdown().await;
}

async fn jobs_by_id(
    client: &hearth_client::Client,
    org: hearth_proto::ids::OrgId,
    ids: &[JobId],
) -> Vec<Job> {
    let mut out = Vec::new();
    for id in ids {
        out.push(
            client
                .raw_get(&format!("/api/v1/orgs/{org}/jobs/{id}"))
                .await
                .unwrap(),
        );
    }
    out
}

/// A printer set to wait for its bed: after a print the next job waits, `hearth printers` says
/// why, and `hearth printers bed NAME --cleared` lets it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_job_waits_until_the_bed_is_said_clear() {
    let OnePrinter {
        server: _server,
        ada,
        agent,
        client,
        org,
    } = one_printer(50.0).await;
    // Held, then released: `hearth printers` says how to release it.
    ada.run(&["printers", "hold", "mk4"]).await;
    let listed = ada.run(&["printers"]).await;
    assert!(
        listed.contains("(held: `hearth printers release mk4`)"),
        "{listed}"
    );
    ada.run(&["printers", "release", "mk4"]).await;
    assert!(!ada.run(&["printers"]).await.contains("(held"));
    ada.run(&["printers", "bed", "mk4", "--confirm", "on"])
        .await;
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "part.gcode", "part");
    let printed = ada
        .run(&[
            "print",
            file.to_str().unwrap(),
            "--printer",
            "mk4",
            "--copies",
            "2",
        ])
        .await;
    let ids: Vec<JobId> = printed.lines().map(|l| l.trim().parse().unwrap()).collect();
    eventually("the first printed, its part on the bed", || async {
        let jobs = jobs_by_id(&client, org, &ids).await;
        (jobs[0].state == JobState::Completed).then_some(())
    })
    .await;
    let listed = ada.run(&["printers"]).await;
    assert!(
        listed.contains("bed to clear: `hearth printers bed mk4 --cleared`"),
        "{listed}"
    );
    assert_eq!(
        jobs_by_id(&client, org, &ids).await[1].state,
        JobState::Queued
    );
    ada.run(&["printers", "bed", "mk4", "--cleared"]).await;
    eventually("the second printed", || async {
        let jobs = jobs_by_id(&client, org, &ids).await;
        (jobs[1].state == JobState::Completed).then_some(())
    })
    .await;
    agent.shutdown().await;
}

/// Waits until the organisation's one printer is online and idle.
/// A member's machine set up on a new server, and a real agent whose one simulated printer `mk4`
/// (at `time_scale` times real time) is idle.
pub(crate) struct OnePrinter {
    pub(crate) server: TestServer,
    pub(crate) ada: Machine,
    pub(crate) agent: crate::printer_chain::RunningAgent,
    pub(crate) client: hearth_client::Client,
    pub(crate) org: hearth_proto::ids::OrgId,
}

pub(crate) async fn one_printer(time_scale: f64) -> OnePrinter {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let agent = start_chain_agent(&server, &ada, simulated("mk4", time_scale)).await;
    let (client, org) = ada.client();
    printer_idle(&client, org).await;
    OnePrinter {
        server,
        ada,
        agent,
        client,
        org,
    }
}

pub(crate) async fn printer_idle(client: &hearth_client::Client, org: hearth_proto::ids::OrgId) {
    eventually("the printer online", || async {
        let p: Vec<Printer> = client
            .raw_get(&format!("/api/v1/orgs/{org}/printers"))
            .await
            .unwrap();
        (p.len() == 1 && p[0].telemetry.state == PrinterState::Idle).then_some(())
    })
    .await;
}

/// `hearth org approval required`: an operator's job waits in the queue, listed as awaiting
/// approval, until an admin runs `hearth approve` (then it prints) or `hearth reject --reason`
/// (then it is cancelled, saying who and why).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_approves_or_rejects_an_operators_jobs() {
    let OnePrinter {
        server,
        ada,
        agent,
        client,
        org,
    } = one_printer(50.0).await;
    let said = ada.run(&["org", "approval", "required"]).await;
    assert!(said.contains("wait for an admin's approval"), "{said}");
    let shown = ada.run(&["org", "show"]).await;
    assert!(
        shown.contains("operators' jobs wait for an admin's approval"),
        "{shown}"
    );
    let bob = crate::members::operator(&server, &ada, "bob").await;
    let work = tempfile::tempdir().unwrap();
    let job_of = |id: JobId| {
        let client = client.clone();
        async move {
            client
                .raw_get::<Job>(&format!("/api/v1/orgs/{org}/jobs/{id}"))
                .await
                .unwrap()
        }
    };

    // Bob's job waits, listed as such, though the printer is idle; his print says so.
    let file = gcode(work.path(), "first.gcode", "first");
    let printed = bob
        .try_run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await;
    assert_success(&printed);
    let first: JobId = String::from_utf8_lossy(&printed.stdout)
        .trim()
        .parse()
        .unwrap();
    let note = String::from_utf8_lossy(&printed.stderr);
    assert!(
        note.contains(&format!(
            "asks for an admin's approval: no printer takes the job until an admin runs `hearth approve {first}`"
        )),
        "{note}"
    );
    let queue = ada.run(&["queue"]).await;
    let line = queue
        .lines()
        .find(|l| l.contains(&first.to_string()))
        .unwrap_or_else(|| panic!("{queue}"));
    assert!(line.contains("awaiting approval"), "{queue}");
    assert!(job_of(first).await.awaits_approval());
    // Bob cannot approve it himself.
    let refused = bob.try_run(&["approve", &first.to_string()]).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&format!("cannot approve job {first}")),
        "{err}"
    );

    // Approved by Ada, it goes to the printer.
    let said = ada.run(&["approve", &first.to_string()]).await;
    assert!(said.contains(&format!("job {first} approved")), "{said}");
    eventually("the approved job on the printer", || async {
        (job_of(first).await.state != JobState::Queued).then_some(())
    })
    .await;

    // Rejected, it is cancelled with who and why, which Bob sees.
    let file = gcode(work.path(), "second.gcode", "second");
    let second: JobId = bob
        .run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await
        .trim()
        .parse()
        .unwrap();
    let said = ada
        .run(&["reject", &second.to_string(), "--reason", "wrong material"])
        .await;
    assert!(
        said.contains("rejected and cancelled (rejected by ada: wrong material)"),
        "{said}"
    );
    assert_eq!(job_of(second).await.state, JobState::Cancelled);
    let jobs = bob.run(&["jobs", "--all"]).await;
    let line = jobs
        .lines()
        .find(|l| l.contains(&second.to_string()))
        .unwrap_or_else(|| panic!("{jobs}"));
    assert!(line.contains("rejected by ada: wrong material"), "{jobs}");

    // Two more wait; `approve --waiting` lets both go, and finds none the next time.
    let mut more = Vec::new();
    for name in ["third", "fourth"] {
        let file = gcode(work.path(), &format!("{name}.gcode"), name);
        let id: JobId = bob
            .run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
            .await
            .trim()
            .parse()
            .unwrap();
        assert!(job_of(id).await.awaits_approval());
        more.push(id);
    }
    let said = ada.run(&["approve", "--waiting"]).await;
    for id in &more {
        assert!(said.contains(&format!("job {id} approved")), "{said}");
        assert!(!job_of(*id).await.awaits_approval());
    }
    let said = ada.run(&["approve", "--waiting"]).await;
    assert_eq!(said.trim(), "no job waits for approval");
    agent.shutdown().await;
}
