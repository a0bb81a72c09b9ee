//! Jobs signed and sealed by `hearth-crypto` (as a member device does) go through the agent with the
//! real `CryptoOpener`: printed when valid, refused with the verifier's code when not.

use std::sync::Arc;

use hearth_agent::crypto::CryptoOpener;
use hearth_crypto::{DeviceKeys, JobDestination, LinkAction, OrgChain, TrustedState, seal_job};
use hearth_proto::agent::{AgentJob, JobState};
use hearth_proto::ids::JobId;

use crate::support::{PRINTER, Rig};

struct Org {
    member: DeviceKeys,
    agent: Arc<DeviceKeys>,
    trusted: TrustedState,
}

fn now() -> i64 {
    hearth_agent::journal::now_ms() / 1000
}

fn org() -> Org {
    let member = DeviceKeys::generate();
    let (mut chain, _epoch) = OrgChain::create(&member, "ada", "Acme", now());
    let agent = DeviceKeys::generate();
    chain
        .append(
            &member,
            LinkAction::AddAgent {
                name: "pi".into(),
                pool: None,
                agent: agent.public(),
            },
            now(),
        )
        .unwrap();
    let trusted = chain.verify(&chain.genesis_hash()).unwrap();
    Org {
        member,
        agent: Arc::new(agent),
        trusted,
    }
}

fn signed_job(rig: &Rig, org: &Org, printer: &str, window: (i64, i64)) -> (AgentJob, Vec<u8>) {
    let job_id = JobId::new();
    let plain = format!("; job {job_id}\nG28\n").repeat(10).into_bytes();
    let mut sealed = Vec::new();
    let agent_pub = org.agent.public();
    let signed = seal_job(
        &org.trusted,
        &org.member,
        &job_id.to_string(),
        JobDestination::Printer {
            agent: &agent_pub,
            printer,
        },
        &plain[..],
        &mut sealed,
        window.0,
        window.1,
    )
    .unwrap();
    let job = AgentJob {
        job_id,
        printer: printer.into(),
        blob_sha256: rig.hub.put_blob(sealed.clone()),
        blob_size: sealed.len() as i64,
        manifest: serde_json::to_value(&signed).unwrap(),
    };
    (job, plain)
}

fn message_of(rig: &Rig, id: JobId) -> String {
    rig.hub
        .with(|s| {
            s.updates
                .iter()
                .rev()
                .find(|u| u.0 == id)
                .unwrap()
                .2
                .clone()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn signed_sealed_jobs_print_and_forged_ones_are_refused_with_the_verifiers_code() {
    let mut rig = Rig::new().await;
    let org = org();
    rig.add_printer("sim-2");
    rig.opener_override = Some(Arc::new(CryptoOpener::new(
        org.trusted.clone(),
        org.agent.clone(),
    )));
    // The first upload fails: the job is opened a second time, which is not a replay.
    *rig.driver.fail_next_upload.lock().unwrap() = true;
    rig.start_agent();

    let (job, plain) = signed_job(&rig, &org, PRINTER, (now() - 10, now() + 600));
    let id = job.job_id;
    rig.hub.assign(job.clone());
    rig.hub.wait_state(id, JobState::Printing).await;
    let uploads = rig.driver.uploads.lock().unwrap().clone();
    assert_eq!(
        uploads.last().unwrap().1,
        plain,
        "the printer got the opened G-code"
    );
    assert_eq!(
        rig.driver.count("upload"),
        2,
        "{:?}",
        rig.driver.log.lock().unwrap()
    );
    rig.advance(200);
    rig.hub.wait_state(id, JobState::Completed).await;

    // Jobs are verified when their printer takes them; the printer is free again now.
    // Altered after signing: the signature no longer verifies.
    let (mut altered, _) = signed_job(&rig, &org, PRINTER, (now() - 10, now() + 600));
    altered.manifest["manifest"]["not_after"] = (now() + 100_000).into();
    rig.hub.assign(altered.clone());
    rig.hub.wait_state(altered.job_id, JobState::Refused).await;
    assert!(message_of(&rig, altered.job_id).starts_with("bad_signature"));

    // Expired.
    let (expired, _) = signed_job(&rig, &org, PRINTER, (now() - 4000, now() - 3000));
    rig.hub.assign(expired.clone());
    rig.hub.wait_state(expired.job_id, JobState::Refused).await;
    assert!(message_of(&rig, expired.job_id).starts_with("expired"));

    // Signed for one printer, offered for another one of the same agent.
    let (mut redirected, _) = signed_job(&rig, &org, PRINTER, (now() - 10, now() + 600));
    redirected.printer = "sim-2".into();
    rig.hub.assign(redirected.clone());
    rig.hub
        .wait_state(redirected.job_id, JobState::Refused)
        .await;
    assert!(message_of(&rig, redirected.job_id).starts_with("not_for_this_agent"));

    assert_eq!(rig.driver.count("start"), 1);
    assert!(rig.plain_files().is_empty());
    rig.stop_agent().await;
}
