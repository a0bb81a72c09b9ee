//! What the server keeps, and for how long: a file deleted from the library takes its sealed
//! bytes with it unless something else uses them; a job's sealed payload goes some days after the
//! last job printing it ended, while the job stays in the history.

use crate::fleet::*;
use crate::support::*;
use hearth_proto::Role;
use hearth_proto::api::{CreateFileRequest, FileEntry, Job, JobLabel, SchedulingFacts};
use hearth_proto::ids::{BlobHash, FileId, OrgId};
use hearth_proto::time_fmt::now_ms;

fn on_disk(server: &TestServer, hash: &BlobHash) -> bool {
    server
        .data_dir()
        .join("blobs/sha256")
        .join(&hash.as_str()[..2])
        .join(hash.as_str())
        .exists()
}

/// A library entry over `blob` and `meta` (the server reads neither; the manifest is opaque).
async fn add_file(
    client: &hearth_client::Client,
    org: OrgId,
    blob: &BlobHash,
    meta: &BlobHash,
) -> FileId {
    let id = FileId::new();
    let _: FileEntry = client
        .raw_post(
            &format!("/api/v1/orgs/{org}/files"),
            &serde_json::to_value(CreateFileRequest {
                id,
                blob_sha256: blob.clone(),
                meta_sha256: Some(meta.clone()),
                manifest: serde_json::json!({ "signed": "by the member device" }),
                facts: SchedulingFacts::default(),
            })
            .unwrap(),
        )
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_deleted_file_takes_its_sealed_bytes_unless_another_file_uses_them() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let bob = member(&server, &owner, org, "bob", Role::Operator).await;
    let dir = tempfile::tempdir().unwrap();
    let up = |name: &str, len: usize| {
        let path = make_file(dir.path(), name, len);
        let owner = owner.clone();
        async move { owner.upload_file(org, &path).await.unwrap() }
    };
    let (bytes, meta1, meta2) = (
        up("part", 5000).await,
        up("m1", 300).await,
        up("m2", 301).await,
    );
    // Two files of the same sealed bytes (one upload, each with its own sealed name).
    let first = add_file(&owner, org, &bytes, &meta1).await;
    let second = add_file(&owner, org, &bytes, &meta2).await;
    let used = owner.usage(org).await.unwrap().used_bytes;

    // Bytes a file uses cannot be deleted from under it; nor may an operator delete another's file.
    let refused = owner.delete_blob(org, &bytes).await.unwrap_err();
    assert_eq!(refused.status(), Some(409), "{refused}");
    let refused = bob.delete_file(org, first).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");

    // The first goes with its own metadata; the bytes the second uses stay.
    owner.delete_file(org, first).await.unwrap();
    let listed = |files: Vec<FileEntry>| files.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let files: Vec<FileEntry> = owner
        .raw_get(&format!("/api/v1/orgs/{org}/files"))
        .await
        .unwrap();
    assert_eq!(listed(files), [second]);
    assert!(!on_disk(&server, &meta1) && on_disk(&server, &meta2) && on_disk(&server, &bytes));
    assert_eq!(owner.usage(org).await.unwrap().used_bytes, used - 300);
    assert_eq!(
        owner.delete_file(org, first).await.unwrap_err().status(),
        Some(404)
    );

    // The second takes the bytes with it: the quota is free again.
    owner.delete_file(org, second).await.unwrap();
    assert!(!on_disk(&server, &bytes) && !on_disk(&server, &meta2));
    assert_eq!(owner.usage(org).await.unwrap().used_bytes, 0);
    let audit = owner.audit_page(Some(org), 0, 100).await.unwrap().entries;
    let deletions: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "file.delete")
        .map(|e| e.target.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        deletions.len(),
        2,
        "each deletion is in the audit log: {deletions:?}"
    );
}

/// A server keeping ended jobs' payloads 7 days, and printer mk4 of pool `farm`, held: jobs for it
/// wait in the queue.
struct HeldPrinter {
    server: TestServer,
    owner: hearth_client::Client,
    org: OrgId,
    agent: FakeAgent,
    _ws: Ws,
}

async fn held_printer() -> HeldPrinter {
    let server = TestServer::start_with(|s| s.limits.job_payload_keep_days = 7).await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let (agent, _ws) =
        approved_agent(&server, &owner, org, 1, vec![printer_info("mk4", "farm")]).await;
    let mk4 = printers_until(&owner, org, "mk4", |p| p.len() == 1).await[0].id;
    owner.hold_printer(org, mk4, true).await.unwrap();
    HeldPrinter {
        server,
        owner,
        org,
        agent,
        _ws,
    }
}

#[tokio::test]
async fn a_jobs_sealed_payload_goes_days_after_the_last_job_printing_it_ended() {
    let HeldPrinter {
        server,
        owner,
        org,
        agent,
        _ws,
    } = held_printer().await;
    let dir = tempfile::tempdir().unwrap();
    let once = owner
        .upload_file(org, &make_file(dir.path(), "once.age", 4000))
        .await
        .unwrap();
    let twice = owner
        .upload_file(org, &make_file(dir.path(), "twice.age", 4001))
        .await
        .unwrap();
    let submit = |blob: &BlobHash| pool_job("farm", blob, pool_manifest("farm", &[&agent]));
    let ended = submit_job(&owner, org, &submit(&once)).await.id;
    let copy1 = submit_job(&owner, org, &submit(&twice)).await.id;
    let _copy2 = submit_job(&owner, org, &submit(&twice)).await.id;
    for job in [ended, copy1] {
        let j: Job = owner
            .raw_post(
                &format!("/api/v1/orgs/{org}/jobs/{job}/cancel"),
                &serde_json::Value::Null,
            )
            .await
            .unwrap();
        assert!(j.state.is_final());
    }
    let expire = |days: i64| {
        let state = server.state.clone();
        async move {
            hearth_server::routes::blobs::expire_job_payloads(&state, now_ms() + days * 86_400_000)
                .await
                .unwrap()
        }
    };
    // Not yet: ended today.
    expire(0).await;
    assert!(on_disk(&server, &once) && on_disk(&server, &twice));
    // A week on: the ended job's payload goes; the one a queued copy still needs stays.
    expire(8).await;
    assert!(
        !on_disk(&server, &once),
        "the ended job's payload is deleted"
    );
    assert!(on_disk(&server, &twice), "a queued job's payload stays");
    let blobs: Vec<BlobHash> = owner
        .blobs(org)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.sha256)
        .collect();
    assert_eq!(blobs, std::slice::from_ref(&twice));
    // The job stays in the history; its deletion is in the audit log, by the server.
    let j: Job = owner
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{ended}"))
        .await
        .unwrap();
    assert_eq!(j.blob_sha256, once);
    let audit = owner.audit_page(Some(org), 0, 100).await.unwrap().entries;
    let expired = audit
        .iter()
        .find(|e| e.action == "blob.expire")
        .expect("a blob.expire entry");
    assert_eq!(expired.actor, "system");
    assert_eq!(expired.target.as_deref(), Some(&*format!("blob:{once}")));
}

#[tokio::test]
async fn a_jobs_sealed_label_is_kept_beside_it_while_needed_and_goes_with_its_payload() {
    let HeldPrinter {
        server,
        owner,
        org,
        agent,
        _ws,
    } = held_printer().await;
    let dir = tempfile::tempdir().unwrap();
    let payload = owner
        .upload_file(org, &make_file(dir.path(), "job.age", 4000))
        .await
        .unwrap();
    let sealed_label = owner
        .upload_file(org, &make_file(dir.path(), "label.age", 600))
        .await
        .unwrap();
    let signed = serde_json::json!({ "manifest": { "file_id": "job:..." }, "signature": "opaque" });
    let mut job = pool_job("farm", &payload, pool_manifest("farm", &[&agent]));

    // A label whose sealed object was not uploaded is refused, and nothing is queued.
    job.label = Some(JobLabel {
        meta_sha256: BlobHash::of(b"never uploaded"),
        manifest: signed.clone(),
    });
    let refused = owner
        .raw_post::<Job>(
            &format!("/api/v1/orgs/{org}/jobs"),
            &serde_json::to_value(&job).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422), "{refused}");
    assert!(refused.to_string().contains("sealed label"), "{refused}");

    // Kept untouched beside the job, and served with it to members.
    let label = JobLabel {
        meta_sha256: sealed_label.clone(),
        manifest: signed,
    };
    job.label = Some(label.clone());
    let queued = submit_job(&owner, org, &job).await;
    assert_eq!(queued.label.as_ref(), Some(&label));
    let listed: Vec<Job> = owner
        .raw_get(&format!("/api/v1/orgs/{org}/jobs"))
        .await
        .unwrap();
    assert_eq!(listed[0].label.as_ref(), Some(&label));

    // While the job may still print, its label cannot be deleted.
    let in_use = owner.delete_blob(org, &sealed_label).await.unwrap_err();
    assert_eq!(in_use.status(), Some(409), "{in_use}");

    // Ended a week ago: label and payload go together; the job stays in the history with both
    // hashes, so members see what it was while they can still open it.
    let _: Job = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs/{}/cancel", queued.id),
            &serde_json::Value::Null,
        )
        .await
        .unwrap();
    hearth_server::routes::blobs::expire_job_payloads(&server.state, now_ms())
        .await
        .unwrap();
    assert!(on_disk(&server, &sealed_label) && on_disk(&server, &payload));
    hearth_server::routes::blobs::expire_job_payloads(&server.state, now_ms() + 8 * 86_400_000)
        .await
        .unwrap();
    assert!(!on_disk(&server, &sealed_label), "the label is deleted");
    assert!(!on_disk(&server, &payload), "the payload is deleted");
    assert!(owner.blobs(org).await.unwrap().is_empty());
    let j: Job = owner
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{}", queued.id))
        .await
        .unwrap();
    assert_eq!(j.label, Some(label));
}

#[tokio::test]
async fn jobs_are_listed_for_a_period() {
    let HeldPrinter {
        server: _server,
        owner,
        org,
        agent,
        _ws,
    } = held_printer().await;
    let dir = tempfile::tempdir().unwrap();
    let blob = owner
        .upload_file(org, &make_file(dir.path(), "job.age", 1000))
        .await
        .unwrap();
    let submit = || async {
        let job = pool_job("farm", &blob, pool_manifest("farm", &[&agent]));
        submit_job(&owner, org, &job).await
    };
    for _ in 0..5 {
        submit().await;
    }
    let list = |q: String| {
        let owner = owner.clone();
        async move {
            owner
                .raw_get::<Vec<Job>>(&format!("/api/v1/orgs/{org}/jobs?{q}"))
                .await
        }
    };
    let at = |ms: i64| hearth_proto::time_fmt::rfc3339(ms).replace('+', "%2B");
    let hour = 3_600_000;
    let all = list(format!("since={}", at(now_ms() - hour)))
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(
        list(format!("since={}", at(now_ms() + hour)))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        list(format!("until={}", at(now_ms() - hour)))
            .await
            .unwrap()
            .len(),
        0
    );
    // Page by page (several jobs share a millisecond: the id orders them), the pages make up the
    // whole listing, and a job submitted meanwhile does not shift the next page.
    let mut paged: Vec<Job> = list("limit=2".into()).await.unwrap();
    assert_eq!(paged.len(), 2);
    submit().await;
    loop {
        let before = paged.last().unwrap().id;
        let page = list(format!("limit=2&before={before}")).await.unwrap();
        assert!(page.len() <= 2);
        let last = page.len() < 2;
        paged.extend(page);
        if last {
            break;
        }
    }
    let ids = |jobs: &[Job]| jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&all));
    // A period's page, and a job of no listing.
    let since = format!("since={}", at(now_ms() - hour));
    let second = list(format!("{since}&limit=3&before={}", all[1].id))
        .await
        .unwrap();
    assert_eq!(ids(&second), ids(&all[2..]));
    let e = list(format!("before={}", hearth_proto::ids::JobId::new()))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(422), "{e}");
    for bad in [
        "since=yesterday",
        "limit=0",
        "limit=10001",
        "sort=name",
        "before=x",
    ] {
        let e = list(bad.into()).await.unwrap_err();
        assert!(matches!(e.status(), Some(400 | 422)), "{bad}: {e}");
    }
}

#[tokio::test]
async fn a_blob_nothing_used_a_day_after_its_upload_is_deleted() {
    let HeldPrinter {
        server,
        owner,
        org,
        agent,
        _ws,
    } = held_printer().await;
    let dir = tempfile::tempdir().unwrap();
    let upload = |name: &'static str, size| {
        let (owner, path) = (owner.clone(), make_file(dir.path(), name, size));
        async move { owner.upload_file(org, &path).await.unwrap() }
    };
    // A client stopped between uploading `left` and creating what was to use it.
    let left = upload("left.age", 3000).await;
    let (file, meta) = (
        upload("file.age", 3001).await,
        upload("meta.age", 300).await,
    );
    add_file(&owner, org, &file, &meta).await;
    let payload = upload("job.age", 3002).await;
    let job = submit_job(
        &owner,
        org,
        &pool_job("farm", &payload, pool_manifest("farm", &[&agent])),
    )
    .await;
    let _: Job = owner
        .raw_post(
            &format!("/api/v1/orgs/{org}/jobs/{}/cancel", job.id),
            &serde_json::Value::Null,
        )
        .await
        .unwrap();
    let expire = |hours: i64| {
        let state = server.state.clone();
        async move {
            hearth_server::routes::blobs::expire_unused_blobs(&state, now_ms() + hours * 3_600_000)
                .await
                .unwrap()
        }
    };

    // Not within the day: the client may still be about to use it.
    expire(23).await;
    assert!(on_disk(&server, &left));
    // A day on, it goes; the file's bytes and sealed metadata stay, and so does the ended job's
    // payload (kept for printing it again, until `job_payload_keep_days`).
    expire(25).await;
    assert!(!on_disk(&server, &left), "the unused blob is deleted");
    let mut kept: Vec<BlobHash> = owner
        .blobs(org)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.sha256)
        .collect();
    kept.sort();
    let mut used = vec![file.clone(), meta.clone(), payload.clone()];
    used.sort();
    assert_eq!(kept, used);
    assert!(used.iter().all(|b| on_disk(&server, b)));
    // Said in the audit log, by the server, with why.
    let audit = owner.audit_page(Some(org), 0, 100).await.unwrap().entries;
    let expired: Vec<_> = audit.iter().filter(|e| e.action == "blob.expire").collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].actor, "system");
    assert_eq!(expired[0].target.as_deref(), Some(&*format!("blob:{left}")));
    assert_eq!(
        expired[0].details["why"],
        "no file or job used it within 24 hours of its upload"
    );
}
