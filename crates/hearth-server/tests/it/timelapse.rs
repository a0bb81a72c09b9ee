//! Timelapses through the server: frames an agent signed as frames of a printing job are kept
//! with that job (evenly spaced within the server's limit, within the organisation's quota), handed
//! to members as they were sent, deleted by the job's submitter or an admin (audited), and expired
//! some days after the job ended.

use crate::camera::{put, upload};
use crate::fleet::*;
use crate::inventory::{job_state, settled};
use crate::notify::job_update;
use crate::support::*;
use hearth_client::Client;
use hearth_proto::Role;
use hearth_proto::agent::{JobState, PrinterInfo};
use hearth_proto::api::Timelapse;
use hearth_proto::ids::{JobId, OrgId};
use hearth_proto::time_fmt::now_ms;

/// A distinct sealed frame (as far as the server can tell: an age file).
fn frame(n: usize) -> Vec<u8> {
    format!("age-encryption.org/v1\n-> X25519 stanza\nframe {n} ")
        .repeat(40)
        .into_bytes()
}

/// An agent's frame of `printer`, signed as a frame of `job`'s timelapse.
fn of_job(printer: &str, sealed: &[u8], job: &str) -> serde_json::Value {
    let mut body = upload(printer, 1, sealed);
    body["manifest"]["manifest"]["job"] = job.into();
    body
}

struct Printing {
    server: TestServer,
    owner: Client,
    org: OrgId,
    ws: Ws,
    token: String,
    job: JobId,
}

/// A server keeping at most 4 frames per timelapse, an agent whose printer `mk4` has a camera, and
/// a job of the owner's assigned to it (not printing yet).
async fn assigned() -> Printing {
    let server = TestServer::start_with(|s| {
        s.camera.timelapse_max_frames = 4;
        // Notifications may reach a receiver on this machine.
        s.notifications.allow_private_addresses = true;
    })
    .await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    owner
        .raw_post::<serde_json::Value>(
            &format!("/api/v1/orgs/{org}/epochs"),
            &serde_json::json!({"epoch": 1, "sealed": {"epoch": 1}}),
        )
        .await
        .unwrap();
    let mk4 = PrinterInfo {
        camera: true,
        ..printer_info("mk4", "farm")
    };
    let (agent, ws) = approved_agent(&server, &owner, org, 1, vec![mk4.clone()]).await;
    drop(ws);
    let (mut ws, token) = agent.connect(&server).await.unwrap();
    send(
        &mut ws,
        &hearth_proto::agent::AgentMsg::Printers {
            printers: vec![mk4],
        },
    )
    .await;
    // Idle on this connection: a pool job can go to it.
    report_idle(&mut ws, "mk4").await;
    settled(&mut ws).await;
    printers_until(&owner, org, "an idle mk4", |p| {
        p.len() == 1 && p[0].telemetry.state == hearth_proto::agent::PrinterState::Idle
    })
    .await;
    let blob = make_file(server.dir.path(), "job.age", 3000);
    let hash = owner.upload_file(org, &blob).await.unwrap();
    let job = pool_job("farm", &hash, pool_manifest("farm", &[&agent]));
    submit_job(&owner, org, &job).await;
    assert_eq!(offered(&mut ws).await.0, job.job_id);
    Printing {
        server,
        owner,
        org,
        ws,
        token,
        job: job.job_id,
    }
}

fn status(e: hearth_client::ClientError) -> u16 {
    e.status().expect("an API error")
}

#[tokio::test]
async fn a_printing_jobs_frames_are_kept_evenly_spaced_and_its_submitter_deletes_them() {
    let Printing {
        server,
        owner,
        org,
        mut ws,
        token,
        job,
    } = assigned().await;
    let jid = job.to_string();
    let used_before = owner.usage(org).await.unwrap().used_bytes;

    // Not printing yet (the file is still transferring): the printer's latest frame only.
    assert_eq!(
        put(&server, &token, "mk4", &of_job("mk4", &frame(99), &jid))
            .await
            .0,
        204
    );
    assert_eq!(status(owner.timelapse(org, job).await.unwrap_err()), 404);
    // A frame naming a job that is not this printer's, or not a job at all, is refused.
    let other = JobId::new().to_string();
    assert_eq!(
        put(&server, &token, "mk4", &of_job("mk4", &frame(98), &other))
            .await
            .0,
        422
    );
    assert_eq!(
        put(&server, &token, "mk4", &of_job("mk4", &frame(97), "x"))
            .await
            .0,
        422
    );

    job_update(&mut ws, job, JobState::Printing, None).await;
    settled(&mut ws).await;
    // Ten frames arrive; four are kept at most: 0..3, then the fifth halves them to 0, 2, 4 and
    // every other frame is kept from then on, until the ninth halves them again.
    for n in 0..10 {
        let (code, body) = put(&server, &token, "mk4", &of_job("mk4", &frame(n), &jid)).await;
        assert_eq!(code, 204, "{body}");
    }
    // A frame of no job (a member asked for one between two timelapse frames) is not kept.
    assert_eq!(
        put(&server, &token, "mk4", &upload("mk4", 1, &frame(50)))
            .await
            .0,
        204
    );
    let tl: Timelapse = owner.timelapse(org, job).await.unwrap();
    let seqs: Vec<u64> = tl.frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [0, 4, 8], "{:?}", tl.summary);
    assert_eq!((tl.summary.arrived, tl.summary.stride), (10, 4));
    assert_eq!(tl.summary.frames, 3);
    assert_eq!(tl.summary.expires_at, None, "the job has not ended");
    for f in &tl.frames {
        let sealed = owner.timelapse_frame(org, job, f.seq).await.unwrap();
        assert_eq!(
            sealed,
            frame(f.seq as usize),
            "frame {} as the agent sent it",
            f.seq
        );
        assert_eq!(f.manifest["manifest"]["job"], jid.as_str());
        assert_eq!(f.size, sealed.len() as u64);
    }
    assert_eq!(
        status(owner.timelapse_frame(org, job, 1).await.unwrap_err()),
        404
    );
    // The kept frames are counted in the organisation's storage; the dropped ones are gone.
    let kept_bytes: u64 = tl.frames.iter().map(|f| f.size).sum();
    assert_eq!(tl.summary.bytes, kept_bytes);
    let used = owner.usage(org).await.unwrap().used_bytes;
    assert_eq!(used, used_before + kept_bytes as i64);
    assert_eq!(
        blob_files(&server),
        1 + 3,
        "the job's file and three frames"
    );

    // A full quota stops the timelapse, not the live frame: the frame is counted as not kept.
    owner.set_quota(org, used).await.unwrap();
    for n in 10..13 {
        assert_eq!(
            put(&server, &token, "mk4", &of_job("mk4", &frame(n), &jid))
                .await
                .0,
            204
        );
    }
    let tl = owner.timelapse(org, job).await.unwrap();
    assert_eq!((tl.summary.frames, tl.summary.over_quota), (3, 1));

    // The job ends: its notification says how to open the timelapse (the frames are sealed).
    let mut hook =
        crate::notify::webhook(&owner, org, hearth_proto::notify::NotifyEvent::JobCompleted).await;
    job_update(&mut ws, job, JobState::Completed, None).await;
    settled(&mut ws).await;
    assert_eq!(job_state(&owner, org, job).await, JobState::Completed);
    let said = hook.next("job.completed").await.json();
    let message = said["data"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "Its timelapse (3 frames): `hearth timelapse {job}`"
        )),
        "{said}"
    );
    let listed = owner.timelapses(org).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].job_id, job);
    assert!(
        listed[0].expires_at.is_some(),
        "30 days after the job ended"
    );

    // Other organisations and viewers: not found, and a viewer cannot delete.
    let stranger = owner.create_org("other", None, None).await.unwrap();
    assert_eq!(
        status(owner.timelapse(stranger.id, job).await.unwrap_err()),
        404
    );
    let viewer = member(&server, &owner, org, "vera", Role::Viewer).await;
    assert_eq!(viewer.timelapse(org, job).await.unwrap().frames.len(), 3);
    assert_eq!(
        status(viewer.delete_timelapse(org, job).await.unwrap_err()),
        403
    );
    let operator = member(&server, &owner, org, "otto", Role::Operator).await;
    assert_eq!(
        status(operator.delete_timelapse(org, job).await.unwrap_err()),
        403
    );

    // The submitter deletes it: audited, its bytes gone, the storage given back.
    owner.delete_timelapse(org, job).await.unwrap();
    assert_eq!(status(owner.timelapse(org, job).await.unwrap_err()), 404);
    assert_eq!(
        status(owner.delete_timelapse(org, job).await.unwrap_err()),
        404
    );
    assert_eq!(owner.usage(org).await.unwrap().used_bytes, used_before);
    assert_eq!(blob_files(&server), 1);
    let audit = owner.audit_page(Some(org), 0, 100).await.unwrap();
    let entry = audit
        .entries
        .iter()
        .find(|e| e.action == "timelapse.delete")
        .expect("the deletion is audited");
    assert_eq!(entry.target.as_deref(), Some(format!("job:{job}").as_str()));
    assert_eq!(entry.details["frames"], 3);
    assert!(owner.audit_verify_on_server(Some(org)).await.unwrap().ok);
}

#[tokio::test]
async fn a_timelapse_expires_some_days_after_its_job_ended_and_backups_hold_it() {
    let Printing {
        server,
        owner,
        org,
        mut ws,
        token,
        job,
    } = assigned().await;
    job_update(&mut ws, job, JobState::Printing, None).await;
    settled(&mut ws).await;
    let jid = job.to_string();
    for n in 0..2 {
        assert_eq!(
            put(&server, &token, "mk4", &of_job("mk4", &frame(n), &jid))
                .await
                .0,
            204
        );
    }
    // A backup copies the frames with the files, and verifies them.
    let dest = server.dir.path().join("backup");
    let summary = hearth_server::backup::backup(&server.state.settings, &dest)
        .await
        .unwrap();
    assert_eq!(summary.blobs, 1 + 2);

    let expire = |days: i64| {
        let state = server.state.clone();
        async move {
            hearth_server::routes::timelapse::expire_timelapses(
                &state,
                now_ms() + days * 86_400_000,
            )
            .await
            .unwrap()
        }
    };
    // Still printing: kept however old.
    expire(400).await;
    assert_eq!(owner.timelapse(org, job).await.unwrap().frames.len(), 2);
    job_update(&mut ws, job, JobState::Failed, Some("spaghetti")).await;
    settled(&mut ws).await;
    // The agent was cut off for the last minutes of the print: the frames it kept arrive late.
    // One taken before the job ended is kept; one taken long after is not; neither replaces
    // the printer's latest frame; a late frame must be a timelapse frame.
    let late = |n: usize, taken_at: i64| {
        let mut body = of_job("mk4", &frame(n), &jid);
        body["manifest"]["manifest"]["taken_at"] = taken_at.into();
        body
    };
    let put_late = |body: serde_json::Value| {
        let (url, token) = (server.url.clone(), token.clone());
        async move {
            reqwest::Client::new()
                .put(format!(
                    "{url}/api/v1/agent/printers/mk4/snapshot?late=true"
                ))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let latest = |c: Client| async move {
        c.printer_snapshot(org, mk4_id(&c, org).await)
            .await
            .unwrap()
            .sealed
    };
    let before = latest(owner.clone()).await;
    let now_s = now_ms() / 1000;
    assert_eq!(put_late(late(7, now_s - 30)).await, 204);
    assert_eq!(put_late(late(8, now_s + 3600)).await, 204);
    assert_eq!(put_late(upload("mk4", 1, &frame(9))).await, 422);
    let tl = owner.timelapse(org, job).await.unwrap();
    assert_eq!(
        tl.frames.len(),
        3,
        "the late frame taken during the print joined"
    );
    assert_eq!(
        owner
            .timelapse_frame(org, job, tl.frames[2].seq)
            .await
            .unwrap(),
        frame(7)
    );
    assert_eq!(
        latest(owner.clone()).await,
        before,
        "the printer's latest frame stays"
    );
    expire(29).await;
    assert_eq!(owner.timelapse(org, job).await.unwrap().frames.len(), 3);
    expire(31).await;
    assert_eq!(status(owner.timelapse(org, job).await.unwrap_err()), 404);
    assert_eq!(blob_files(&server), 1);
    let audit = owner.audit_page(Some(org), 0, 100).await.unwrap();
    let entry = audit
        .entries
        .iter()
        .find(|e| e.action == "timelapse.expire")
        .expect("the expiry is audited");
    assert_eq!(
        (entry.actor.as_str(), &entry.details["frames"]),
        ("system", &3.into())
    );
}

async fn mk4_id(c: &Client, org: OrgId) -> hearth_proto::ids::PrinterId {
    let printers: Vec<hearth_proto::api::Printer> = c
        .raw_get(&format!("/api/v1/orgs/{org}/printers"))
        .await
        .unwrap();
    printers.iter().find(|p| p.name == "mk4").unwrap().id
}

/// Files under the server's `blobs/sha256`.
fn blob_files(server: &TestServer) -> usize {
    walk(&server.data_dir().join("blobs").join("sha256"))
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p) } else { 1 }
        })
        .sum()
}
