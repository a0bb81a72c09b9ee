//! The fleet queue: a named printer's jobs wait at the server until it is free and go out in the
//! queue's order (priority, then age), which operators change; each move is audited.

use crate::fleet::*;
use crate::inventory::settled;
use crate::notify::job_update;
use crate::support::*;
use hearth_proto::Role;
use hearth_proto::agent::{JobState, PrinterState, ServerMsg};
use hearth_proto::api::{ApprovalState, Job, JobPriority, SubmitJobRequest};
use hearth_proto::ids::{BlobHash, JobId, OrgId, PrinterId};

pub(crate) fn named_job(printer: PrinterId, blob: &BlobHash) -> SubmitJobRequest {
    SubmitJobRequest {
        label: None,
        priority: 0,
        job_id: JobId::new(),
        printer: Some(printer),
        pool: None,
        blob_sha256: blob.clone(),
        manifest: serde_json::json!({"signed": "by the member"}),
        facts: Default::default(),
    }
}

/// The owner's organisation, with an agent connected whose printer mk4 is idle.
pub(crate) struct Fleet {
    pub(crate) owner: hearth_client::Client,
    pub(crate) org: OrgId,
    pub(crate) ws: Ws,
    pub(crate) mk4: PrinterId,
}

pub(crate) async fn one_idle_printer(server: &TestServer) -> Fleet {
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let (_agent, ws) =
        approved_agent(server, &owner, org, 1, vec![printer_info("mk4", "farm")]).await;
    let mk4 = printers_until(&owner, org, "an idle mk4", |p| {
        p.len() == 1 && p[0].telemetry.state == PrinterState::Idle
    })
    .await[0]
        .id;
    Fleet {
        owner,
        org,
        ws,
        mk4,
    }
}

async fn set_priority(
    c: &hearth_client::Client,
    org: OrgId,
    job: JobId,
    body: &JobPriority,
) -> Result<Job, hearth_client::ClientError> {
    c.set_job_priority(org, job, body).await
}

#[tokio::test]
async fn a_busy_printers_jobs_wait_in_the_queue_and_go_out_in_its_order() {
    let server = TestServer::start().await;
    let Fleet {
        owner,
        org,
        mut ws,
        mk4,
    } = one_idle_printer(&server).await;
    let blob = make_file(server.dir.path(), "job.age", 2000);
    let hash = owner.upload_file(org, &blob).await.unwrap();

    // The first job goes out at once; the printer starts it.
    let first = named_job(mk4, &hash);
    submit_job(&owner, org, &first).await;
    assert_eq!(offered(&mut ws).await.0, first.job_id);
    job_update(&mut ws, first.job_id, JobState::Printing, None).await;
    crate::inventory::printing(&mut ws, "mk4", first.job_id, 0.1).await;
    settled(&mut ws).await;

    // Three more wait at the server, in the order they came.
    let (a, b) = (named_job(mk4, &hash), named_job(mk4, &hash));
    let mut c = named_job(mk4, &hash);
    c.priority = -1;
    for j in [&a, &b, &c] {
        assert_eq!(submit_job(&owner, org, j).await.state, JobState::Queued);
    }
    // Nothing was offered meanwhile: the ping's answer is the next message.
    settled(&mut ws).await;

    // An operator moves b to the front; a viewer may not; a job not queued cannot move.
    let operator = member(&server, &owner, org, "otto", Role::Operator).await;
    let viewer = member(&server, &owner, org, "vera", Role::Viewer).await;
    let top = JobPriority {
        top: true,
        ..JobPriority::default()
    };
    let err = set_priority(&viewer, org, b.job_id, &top)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    let moved = set_priority(&operator, org, b.job_id, &top).await.unwrap();
    assert_eq!(moved.priority, 1);
    let again = set_priority(&operator, org, b.job_id, &top).await.unwrap();
    assert_eq!(again.priority, 1, "already first: it stays");
    let err = set_priority(&operator, org, first.job_id, &top)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    let both = JobPriority {
        priority: Some(3),
        top: true,
    };
    let err = set_priority(&operator, org, a.job_id, &both)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));

    // The printer finishes: b goes next, then a, then c (its priority below the default).
    let mut current = first.job_id;
    for next in [b.job_id, a.job_id, c.job_id] {
        job_update(&mut ws, current, JobState::Completed, None).await;
        report_idle(&mut ws, "mk4").await;
        let (got, printer) = loop {
            match recv(&mut ws).await {
                ServerMsg::Job { job } => break (job.job_id, job.printer),
                _ => continue,
            }
        };
        assert_eq!((got, printer.as_str()), (next, "mk4"));
        job_update(&mut ws, next, JobState::Printing, None).await;
        current = next;
    }

    let audit = owner.audit_page(Some(org), 0, 200).await.unwrap();
    let moves: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action == "job.priority")
        .map(|e| {
            (
                e.target.clone(),
                e.details["from"].clone(),
                e.details["to"].clone(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (Some(format!("job:{}", b.job_id)), 0.into(), 1.into()),
            (Some(format!("job:{}", b.job_id)), 1.into(), 1.into()),
        ]
    );
}

/// A printer set to wait for its bed to be cleared takes no next job after one that printed until
/// an operator says the bed is clear; both are audited, and the printer says which job's part is
/// on it.
#[tokio::test]
async fn a_printer_waits_for_its_bed_to_be_cleared_before_the_next_job() {
    // One that may notify a receiver on this machine.
    let server = crate::notify::server().await;
    let Fleet {
        owner,
        org,
        mut ws,
        mk4,
    } = one_idle_printer(&server).await;
    let operator = member(&server, &owner, org, "otto", Role::Operator).await;
    // Only an admin sets it.
    assert_eq!(
        operator
            .set_printer_bed(org, mk4, true)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    let p = owner.set_printer_bed(org, mk4, true).await.unwrap();
    assert!(p.bed.confirm_between_jobs && p.bed.to_clear.is_none());

    let blob = make_file(server.dir.path(), "job.age", 2000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let (first, second) = (named_job(mk4, &hash), named_job(mk4, &hash));
    submit_job(&owner, org, &first).await;
    assert_eq!(offered(&mut ws).await.0, first.job_id);
    job_update(&mut ws, first.job_id, JobState::Printing, None).await;
    crate::inventory::printing(&mut ws, "mk4", first.job_id, 0.5).await;
    submit_job(&owner, org, &second).await;
    let mut hook =
        crate::notify::webhook(&owner, org, hearth_proto::notify::NotifyEvent::JobCompleted).await;
    // The first ends; the printer is idle again, but its bed holds the part, as the notification
    // says.
    job_update(&mut ws, first.job_id, JobState::Completed, None).await;
    let said = hook.next("job.completed").await.json();
    assert!(
        said["data"]["message"].as_str().unwrap().contains(
            "mk4 takes no next job until its bed is said clear: `hearth printers bed mk4 --cleared`"
        ),
        "{said}"
    );
    report_idle(&mut ws, "mk4").await;
    settled(&mut ws).await;
    let p = printers_until(&owner, org, "mk4 waiting for its bed", |p| {
        p[0].bed.to_clear == Some(first.job_id)
    })
    .await;
    assert_eq!(p[0].telemetry.state, PrinterState::Idle);
    let j: Job = owner
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{}", second.job_id))
        .await
        .unwrap();
    assert_eq!(j.state, JobState::Queued, "the next job waits");
    // A viewer cannot say so; an operator does, and the next job goes out.
    let viewer = member(&server, &owner, org, "vera", Role::Viewer).await;
    assert_eq!(
        viewer
            .printer_bed_cleared(org, mk4)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    let p = operator.printer_bed_cleared(org, mk4).await.unwrap();
    assert_eq!(p.bed.to_clear, None);
    assert_eq!(offered(&mut ws).await.0, second.job_id);

    let audit = owner.audit_page(Some(org), 0, 200).await.unwrap();
    let cleared = audit
        .entries
        .iter()
        .find(|e| e.action == "printer.bed_cleared")
        .expect("audited");
    assert_eq!(cleared.details["job"], first.job_id.to_string());
    assert!(audit.entries.iter().any(|e| e.action == "printer.bed"));
}

/// A held printer takes no new job until released; a viewer may not hold one; both moves are
/// audited.
#[tokio::test]
async fn a_held_printer_takes_no_job_until_released() {
    let server = TestServer::start().await;
    let Fleet {
        owner,
        org,
        mut ws,
        mk4,
    } = one_idle_printer(&server).await;
    let viewer = member(&server, &owner, org, "vera", Role::Viewer).await;
    assert_eq!(
        viewer
            .hold_printer(org, mk4, true)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    assert!(owner.hold_printer(org, mk4, true).await.unwrap().held);
    let blob = make_file(server.dir.path(), "job.age", 2000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let job = named_job(mk4, &hash);
    assert_eq!(submit_job(&owner, org, &job).await.state, JobState::Queued);
    settled(&mut ws).await;
    assert!(!owner.hold_printer(org, mk4, false).await.unwrap().held);
    assert_eq!(offered(&mut ws).await.0, job.job_id);
    let audit = owner.audit_page(Some(org), 0, 200).await.unwrap();
    let moves: Vec<&str> = audit
        .entries
        .iter()
        .filter(|e| e.action.starts_with("printer.hold") || e.action == "printer.release")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(moves, ["printer.hold", "printer.release"]);
}

#[tokio::test]
async fn where_approval_is_required_an_operators_job_prints_once_an_admin_approves_it() {
    let server = crate::notify::server().await;
    let Fleet {
        owner,
        org,
        mut ws,
        mk4,
    } = one_idle_printer(&server).await;
    let mut hook = crate::notify::Receiver::start().await;
    crate::notify::channel(
        &owner,
        org,
        hearth_proto::notify::ChannelKind::Webhook,
        format!("{}/hook", hook.url),
        &[
            hearth_proto::notify::NotifyEvent::JobAwaitingApproval,
            hearth_proto::notify::NotifyEvent::JobApproved,
        ],
        None,
    )
    .await;
    let otto = member(&server, &owner, org, "otto", Role::Operator).await;
    let policy = |c: &hearth_client::Client, on: bool| {
        let c = c.clone();
        async move { c.set_approval_policy(org, on).await }
    };
    assert_eq!(policy(&otto, true).await.unwrap_err().status(), Some(403));
    assert!(policy(&owner, true).await.unwrap().require_approval);
    let blob = make_file(server.dir.path(), "job.age", 2000);
    let hash = otto.upload_file(org, &blob).await.unwrap();

    // Otto's job waits, though mk4 is idle: queued, pending, offered to no printer.
    let first = named_job(mk4, &hash);
    let queued = submit_job(&otto, org, &first).await;
    assert_eq!(queued.state, JobState::Queued);
    let pending = queued.approval.clone().expect("an approval");
    assert_eq!(pending.state, ApprovalState::Pending);
    assert_eq!((pending.by, pending.at), (None, None));
    settled(&mut ws).await;
    // The admins hear of it.
    let said = hook.next("job.awaiting_approval").await.json();
    assert_eq!(said["type"], "job.awaiting_approval");
    assert_eq!(said["data"]["title"], "Job waiting for approval for mk4");
    assert_eq!(said["data"]["job"]["id"], first.job_id.to_string());
    assert_eq!(said["data"]["job"]["submitted_by"], "otto");
    let text = said["data"]["message"].as_str().unwrap();
    assert!(
        text.contains(&format!("hearth approve {}", first.job_id)),
        "{text}"
    );
    // Only an admin decides, even for their own job.
    let act = |c: &hearth_client::Client, id: JobId, what: &'static str| {
        let c = c.clone();
        async move {
            match what {
                "approve" => c.approve_job(org, id).await,
                _ => c.reject_job(org, id, Some("too much PETG")).await,
            }
        }
    };
    assert_eq!(
        act(&otto, first.job_id, "approve")
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    // Approved: it goes to the printer at once.
    let approved = act(&owner, first.job_id, "approve").await.unwrap();
    let owner_id = owner.me().await.unwrap().user.id;
    let a = approved.approval.unwrap();
    assert_eq!((a.state, a.by), (ApprovalState::Approved, Some(owner_id)));
    assert!(a.at.is_some());
    assert_eq!(offered(&mut ws).await.0, first.job_id);
    // Whoever heard it was waiting hears it goes on, and who decided.
    let said = hook.next("job.approved").await.json();
    assert_eq!(said["data"]["title"], "Job approved for mk4");
    assert_eq!(said["data"]["job"]["id"], first.job_id.to_string());
    let text = said["data"]["message"].as_str().unwrap();
    assert!(text.contains("was approved by owner"), "{text}");
    let again = act(&owner, first.job_id, "approve").await.unwrap_err();
    assert_eq!(again.status(), Some(409), "{again}");

    // Rejected: cancelled, with who and why for the submitter; it cannot be approved after.
    let second = named_job(mk4, &hash);
    submit_job(&otto, org, &second).await;
    let rejected = act(&owner, second.job_id, "reject").await.unwrap();
    assert_eq!(rejected.state, JobState::Cancelled);
    assert_eq!(rejected.approval.unwrap().state, ApprovalState::Rejected);
    assert_eq!(
        rejected.message.as_deref(),
        Some("rejected by owner: too much PETG")
    );
    let late = act(&owner, second.job_id, "approve").await.unwrap_err();
    assert_eq!(late.status(), Some(409), "{late}");

    // An admin's own job needs none; nor does a job once the policy is off.
    let own = submit_job(&owner, org, &named_job(mk4, &hash)).await;
    assert_eq!(own.approval, None);
    policy(&owner, false).await.unwrap();
    let later = submit_job(&otto, org, &named_job(mk4, &hash)).await;
    assert_eq!(later.approval, None);
    let e = act(&owner, later.id, "approve").await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");

    // Each decision is in the audit log, by the admin.
    let audit = owner.audit_page(Some(org), 0, 200).await.unwrap().entries;
    for (action, job) in [("job.approve", first.job_id), ("job.reject", second.job_id)] {
        let e = audit
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("no {action}"));
        assert_eq!(e.actor, format!("user:{owner_id}"));
        assert_eq!(e.target.as_deref(), Some(&*format!("job:{job}")));
    }
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "org.approval_policy")
            .count(),
        2
    );
}
