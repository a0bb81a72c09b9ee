//! The adversarial-server suite: a server that lies, and the specific refusal each lie meets.
//!
//! `LyingServer` holds what an honest server would serve (the chain, sealed epoch keys, a job and
//! its payload) and each test makes it lie in one way. Keep this suite growing: every new way a
//! server could cheat gets a test here.

use std::io::Cursor;

use hearth_crypto::{
    ChainError, DeviceKeys, EpochError, EpochKey, JobDestination, JobRefusal, JobVerifier,
    LinkAction, ManifestError, MemorySeenJobs, MetadataError, OpenError, OrgChain, PrivateMetadata,
    SealedEpochKey, SignedJobManifest, TrustError, UploadError, open_bytes, seal_job, seal_upload,
};

use crate::support::{NOW, Org};

/// An organisation plus one job for agent g1 (printer "mk4"), as an honest server would hold them.
struct LyingServer {
    org: Org,
    job: SignedJobManifest,
    payload: Vec<u8>,
}

const GCODE: &[u8] = b"G28\nG1 Z0.2\n";

impl LyingServer {
    fn new() -> Self {
        let org = Org::new();
        let job_id = "job-1";
        let (job, payload) = Self::make_job(&org, &org.bob, job_id, NOW, NOW + 600);
        LyingServer { org, job, payload }
    }

    fn make_job(
        org: &Org,
        signer: &DeviceKeys,
        id: &str,
        nb: i64,
        na: i64,
    ) -> (SignedJobManifest, Vec<u8>) {
        let trusted = org.trusted();
        let g1 = org.g1.public();
        let mut payload = Vec::new();
        let job = seal_job(
            &trusted,
            signer,
            id,
            JobDestination::Printer {
                agent: &g1,
                printer: "mk4",
            },
            GCODE,
            &mut payload,
            nb,
            na,
        )
        .unwrap();
        (job, payload)
    }

    /// What the agent g1 does with a job the server delivers.
    fn deliver(
        &self,
        job: &SignedJobManifest,
        payload: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, JobRefusal> {
        let trusted = self.org.trusted();
        let mut v = JobVerifier::new(&trusted, &self.org.g1, MemorySeenJobs::default());
        let mut out = Vec::new();
        v.open(job, now, Cursor::new(payload), &mut out)?;
        Ok(out)
    }
}

/// Removes the `index`-th recipient stanza from an age file's header, leaving everything else
/// (including the MAC) as it was.
fn drop_stanza(age_file: &[u8], index: usize) -> Vec<u8> {
    let mac_at = age_file.windows(5).position(|w| w == b"\n--- ").unwrap() + 1;
    let header = std::str::from_utf8(&age_file[..mac_at]).unwrap();
    let mut lines: Vec<&str> = header.lines().collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("-> "))
        .map(|(i, _)| i)
        .collect();
    let start = starts[index];
    let end = starts.get(index + 1).copied().unwrap_or(lines.len());
    lines.drain(start..end);
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out.extend_from_slice(&age_file[mac_at..]);
    out
}

#[test]
fn honest_server_job_is_accepted() {
    let s = LyingServer::new();
    assert_eq!(s.deliver(&s.job, &s.payload, NOW + 5).unwrap(), GCODE);
}

#[test]
fn substituted_member_key_is_detected() {
    let s = LyingServer::new();
    let trusted = s.org.trusted();
    // The server hands out its own recipient under Bob's signing key.
    let mut fake = s.org.bob.public();
    fake.recipient = DeviceKeys::generate().public().recipient;
    assert!(matches!(
        trusted.require_member(&fake),
        Err(TrustError::KeySubstituted { .. })
    ));
    // ... or an entirely unknown key as "Bob".
    assert!(matches!(
        trusted.require_member(&DeviceKeys::generate().public()),
        Err(TrustError::UnknownKey { .. })
    ));
    // ... or rewrites the AddDevice link in the chain: the admin's signature breaks.
    let mut chain = s.org.chain.clone();
    if let LinkAction::AddDevice { device, .. } = &mut chain.links[0].link.action {
        *device = DeviceKeys::generate().public();
    }
    assert_eq!(
        chain.verify(&s.org.pinned),
        Err(ChainError::BadSignature { seq: 1 })
    );
    // ... or appends a link it signed with its own key.
    let server_key = DeviceKeys::generate();
    let mut forged = s.org.chain.clone();
    let mut link = forged.links[0].clone();
    link.link.seq = forged.links.len() as u64 + 1;
    link.link.prev = forged.links.last().unwrap().hash();
    link.link.signer = server_key.public().signing;
    link.link.action = LinkAction::AddDevice {
        user: "mallory".into(),
        device: server_key.public(),
        admin: true,
    };
    forged.links.push(link);
    assert!(matches!(
        forged.verify(&s.org.pinned),
        Err(ChainError::SignerNotAdmin { seq: 4, .. })
    ));
    // ... or serves a whole different organisation (its own genesis).
    let (other, _) = OrgChain::create(&server_key, "mallory", "Acme", NOW);
    assert!(matches!(
        other.verify(&s.org.pinned),
        Err(ChainError::GenesisMismatch { .. })
    ));
}

#[test]
fn substituted_agent_key_is_detected() {
    let s = LyingServer::new();
    let trusted = s.org.trusted();
    let mut fake_g1 = s.org.g1.public();
    fake_g1.recipient = DeviceKeys::generate().public().recipient;
    let r = seal_job(
        &trusted,
        &s.org.bob,
        "job-x",
        JobDestination::Printer {
            agent: &fake_g1,
            printer: "mk4",
        },
        GCODE,
        &mut Vec::new(),
        NOW,
        NOW + 60,
    );
    assert!(matches!(
        r,
        Err(UploadError::Target(TrustError::KeySubstituted { .. }))
    ));
    // An unenrolled "agent" the server made up.
    let made_up = DeviceKeys::generate().public();
    let r = seal_job(
        &trusted,
        &s.org.bob,
        "job-y",
        JobDestination::Printer {
            agent: &made_up,
            printer: "mk4",
        },
        GCODE,
        &mut Vec::new(),
        NOW,
        NOW + 60,
    );
    assert!(matches!(
        r,
        Err(UploadError::Target(TrustError::UnknownKey { .. }))
    ));
    // A member's key offered as an agent.
    let bob = s.org.bob.public();
    let r = seal_job(
        &trusted,
        &s.org.bob,
        "job-z",
        JobDestination::Printer {
            agent: &bob,
            printer: "mk4",
        },
        GCODE,
        &mut Vec::new(),
        NOW,
        NOW + 60,
    );
    assert!(matches!(
        r,
        Err(UploadError::Target(TrustError::WrongRole { .. }))
    ));
}

#[test]
fn replayed_job_is_refused() {
    let s = LyingServer::new();
    let trusted = s.org.trusted();
    let mut v = JobVerifier::new(&trusted, &s.org.g1, MemorySeenJobs::default());
    v.open(&s.job, NOW + 5, Cursor::new(&s.payload), &mut Vec::new())
        .unwrap();
    let e = v
        .open(&s.job, NOW + 50, Cursor::new(&s.payload), &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(e, JobRefusal::Replayed { ref job_id } if job_id == "job-1"),
        "{e}"
    );
    assert_eq!(e.code(), "replayed");
}

#[test]
fn copies_of_a_job_share_its_payload_and_each_is_accepted_once() {
    let s = LyingServer::new();
    let trusted = s.org.trusted();
    let mut v = JobVerifier::new(&trusted, &s.org.g1, MemorySeenJobs::default());
    let copy = s
        .job
        .copy_as(&s.org.bob, "job-2")
        .expect("the signer copies its job");
    assert_eq!(copy.manifest.blob_sha256, s.job.manifest.blob_sha256);
    assert_ne!(copy.manifest.nonce, s.job.manifest.nonce);
    for j in [&s.job, &copy] {
        let mut out = Vec::new();
        v.open(j, NOW + 5, Cursor::new(&s.payload), &mut out)
            .unwrap();
        assert_eq!(out, GCODE);
    }
    // Each copy once; and only the job's own signer makes copies of it.
    let again = v
        .open(&copy, NOW + 6, Cursor::new(&s.payload), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(again, JobRefusal::Replayed { .. }), "{again}");
    assert!(s.job.copy_as(&s.org.ada, "job-3").is_none());
}

#[test]
fn expired_and_not_yet_valid_jobs_are_refused() {
    let s = LyingServer::new();
    let e = s.deliver(&s.job, &s.payload, NOW + 600 + 121).unwrap_err();
    assert!(matches!(e, JobRefusal::Expired { .. }), "{e}");
    let e = s.deliver(&s.job, &s.payload, NOW - 121).unwrap_err();
    assert!(matches!(e, JobRefusal::NotYetValid { .. }), "{e}");
    // Within the allowed clock skew it is accepted.
    assert!(s.deliver(&s.job, &s.payload, NOW + 600 + 100).is_ok());
    // A window longer than a week is refused whatever the clock says.
    let (long, payload) = LyingServer::make_job(&s.org, &s.org.bob, "long", NOW, NOW + 30 * 86400);
    assert!(matches!(
        s.deliver(&long, &payload, NOW).unwrap_err(),
        JobRefusal::BadWindow { .. }
    ));
}

#[test]
fn flipped_byte_of_ciphertext_is_refused() {
    let s = LyingServer::new();
    for pos in [10, s.payload.len() / 2, s.payload.len() - 1] {
        let mut bad = s.payload.clone();
        bad[pos] ^= 0x40;
        let e = s.deliver(&s.job, &bad, NOW).unwrap_err();
        assert!(matches!(e, JobRefusal::CiphertextMismatch { .. }), "{e}");
        // Without the manifest's hash, age's own authentication catches it too.
        assert!(open_bytes(&[&s.org.g1], &bad).is_err());
    }
}

#[test]
fn flipped_byte_of_manifest_is_refused() {
    let s = LyingServer::new();
    // Extending the window, retargeting, or swapping the hash: all break the signature.
    let mut later = s.job.clone();
    later.manifest.not_after += 3600;
    assert!(matches!(
        s.deliver(&later, &s.payload, NOW).unwrap_err(),
        JobRefusal::BadSignature
    ));
    let mut other_hash = s.job.clone();
    other_hash.manifest.blob_sha256.0[0] ^= 1;
    assert!(matches!(
        s.deliver(&other_hash, &s.payload, NOW).unwrap_err(),
        JobRefusal::BadSignature
    ));
    let mut sig = s.job.clone();
    sig.signature.0[5] ^= 1;
    assert!(matches!(
        s.deliver(&sig, &s.payload, NOW).unwrap_err(),
        JobRefusal::BadSignature
    ));
    // Byte flips of the JSON the server relays.
    let json = serde_json::to_vec(&s.job).unwrap();
    for pos in 0..json.len() {
        let mut bad = json.clone();
        bad[pos] ^= 0x01;
        if let Ok(job) = serde_json::from_slice::<SignedJobManifest>(&bad)
            && job != s.job
        {
            assert!(
                s.deliver(&job, &s.payload, NOW).is_err(),
                "flip at {pos} accepted"
            );
        }
    }
}

#[test]
fn dropped_recipient_stanza_is_refused() {
    let s = LyingServer::new();
    // Stanza 0 is the epoch key's, stanza 1 the agent's.
    let without_agent = drop_stanza(&s.payload, 1);
    let without_epoch = drop_stanza(&s.payload, 0);
    for bad in [&without_agent, &without_epoch] {
        let e = s.deliver(&s.job, bad, NOW).unwrap_err();
        assert!(matches!(e, JobRefusal::CiphertextMismatch { .. }), "{e}");
    }
    // At the age layer: no stanza for us, or a header whose MAC no longer matches.
    assert!(matches!(
        open_bytes(&[&s.org.g1], &without_agent),
        Err(OpenError::NotARecipient)
    ));
    assert!(matches!(
        open_bytes(&[&s.org.g1], &without_epoch),
        Err(OpenError::HeaderTampered)
    ));
}

#[test]
fn job_signed_by_removed_member_is_refused() {
    let mut s = LyingServer::new();
    // Bob signs a job, then is removed; the server delivers Bob's job anyway.
    let (job, payload) = LyingServer::make_job(&s.org, &s.org.bob, "job-bob", NOW, NOW + 600);
    s.org
        .chain
        .remove_device(&s.org.ada, &s.org.bob.public().signing, NOW)
        .unwrap();
    let e = s.deliver(&job, &payload, NOW).unwrap_err();
    assert!(matches!(e, JobRefusal::SignerRemoved { .. }), "{e}");
    assert_eq!(e.code(), "signer_removed");
    // A job signed by a key that was never enrolled.
    let stranger = DeviceKeys::generate();
    let mut forged = s.job.clone();
    forged.manifest.signer = stranger.public().signing;
    assert!(matches!(
        s.deliver(&forged, &s.payload, NOW).unwrap_err(),
        JobRefusal::UnknownSigner { .. }
    ));
    // A job signed by an agent's key (agents are not members).
    let mut by_agent = s.job.clone();
    by_agent.manifest.signer = s.org.g2.public().signing;
    assert!(matches!(
        s.deliver(&by_agent, &s.payload, NOW).unwrap_err(),
        JobRefusal::UnknownSigner { .. }
    ));
}

#[test]
fn stale_epoch_key_is_detected() {
    let mut org = Org::new();
    let trusted1 = org.trusted();
    let seen = trusted1.checkpoint();
    let epoch1_pub = org.epoch.public();
    let stale_sealed = org.epoch.seal_for_members(&trusted1).unwrap();

    let epoch2 = org.chain.rotate_epoch(&org.ada, NOW).unwrap();
    let trusted2 = org.chain.verify_extending(&org.pinned, &seen).unwrap();

    // The server says "seal to epoch 1" after the rotation.
    assert_eq!(
        trusted2.check_current_epoch(&epoch1_pub),
        Err(TrustError::StaleEpoch {
            served: 1,
            current: 2
        })
    );
    trusted2.check_current_epoch(&epoch2.public()).unwrap();

    // The server serves the old chain (without the rotation) to a client that saw the new one.
    let mut rolled_back = org.chain.clone();
    rolled_back.links.pop();
    assert_eq!(
        rolled_back.verify_extending(&org.pinned, &trusted2.checkpoint()),
        Err(ChainError::Rollback {
            known: 4,
            served: 3
        })
    );

    // The server serves the epoch 1 key labelled as epoch 2.
    let mut relabelled: SealedEpochKey = stale_sealed.clone();
    relabelled.epoch = 2;
    assert!(matches!(
        relabelled.open(&org.bob, &trusted2),
        Err(EpochError::NotTheAnnouncedKey { epoch: 2 })
    ));
    // The server makes its own "epoch 2" key and seals it to Bob's public key.
    let fake = EpochKey::generate(2);
    let fake_sealed = fake.seal_to(&[&org.bob.public().recipient]).unwrap();
    assert!(matches!(
        fake_sealed.open(&org.bob, &trusted2),
        Err(EpochError::NotTheAnnouncedKey { epoch: 2 })
    ));
    // Uploads go to the chain's current epoch, whatever the server says.
    let mut blob = Vec::new();
    let up = seal_upload(
        &trusted2,
        &org.bob,
        "f",
        &b"x"[..],
        &mut blob,
        &PrivateMetadata::default(),
        NOW,
    )
    .unwrap();
    assert_eq!(up.manifest.manifest.epoch, 2);
    assert!(open_bytes(&[&org.epoch], &blob).is_err());
}

#[test]
fn swapped_file_blob_metadata_or_manifest_is_detected() {
    let org = Org::new();
    let trusted = org.trusted();
    let meta = PrivateMetadata {
        name: "a.gcode".into(),
        ..Default::default()
    };
    let mut blob = Vec::new();
    let up = seal_upload(&trusted, &org.bob, "f1", &b"A"[..], &mut blob, &meta, NOW).unwrap();
    let mut blob2 = Vec::new();
    let up2 = seal_upload(&trusted, &org.bob, "f2", &b"B"[..], &mut blob2, &meta, NOW).unwrap();
    let m = up.manifest.verify(&trusted).unwrap();
    // Another (valid) blob served under f1's manifest.
    let e = hearth_crypto::open_verified(
        &[&org.epoch],
        &m.blob_sha256,
        Cursor::new(&blob2),
        &mut Vec::new(),
    );
    assert!(matches!(e, Err(OpenError::HashMismatch { .. })));
    // Another file's metadata.
    assert!(matches!(
        up2.metadata.open(m, &org.epoch),
        Err(MetadataError::HashMismatch { .. })
    ));
    // A manifest re-attributed to Ada.
    let mut reattributed = up.manifest.clone();
    reattributed.manifest.uploader = org.ada.public().signing;
    assert_eq!(
        reattributed.verify(&trusted),
        Err(ManifestError::BadSignature)
    );
    // A manifest from an unknown suite is a clear error, not a silent fallback.
    let mut future = up.manifest.clone();
    future.manifest.suite = "mlkem768x25519+mldsa65".into();
    let e = future.verify(&trusted).unwrap_err();
    assert!(e.to_string().contains("mlkem768x25519+mldsa65"), "{e}");
}

#[test]
fn dropped_or_reordered_links_are_detected() {
    let s = LyingServer::new();
    // Dropping a link from the middle (hiding Bob's enrollment) breaks the sequence.
    let mut dropped = s.org.chain.clone();
    dropped.links.remove(0);
    assert!(matches!(
        dropped.verify(&s.org.pinned),
        Err(ChainError::BadSequence {
            expected: 1,
            found: 2
        })
    ));
    // Swapping two links breaks it too.
    let mut swapped = s.org.chain.clone();
    swapped.links.swap(1, 2);
    assert!(matches!(
        swapped.verify(&s.org.pinned),
        Err(ChainError::BadSequence { .. })
    ));
    // Renumbering the links to hide the swap breaks the hash chain (and the signatures).
    swapped.links[1].link.seq = 2;
    swapped.links[2].link.seq = 3;
    assert!(matches!(
        swapped.verify(&s.org.pinned),
        Err(ChainError::BrokenLink { seq: 2 })
    ));
}

#[test]
fn job_from_another_organisation_is_refused() {
    let s = LyingServer::new();
    // Bob is also a member of another organisation; its server hands his job from there to g1.
    let (mut other, _) = OrgChain::create(&s.org.ada, "ada", "Other Co", NOW);
    other
        .append(
            &s.org.ada,
            LinkAction::AddDevice {
                user: "bob".into(),
                device: s.org.bob.public(),
                admin: false,
            },
            NOW,
        )
        .unwrap();
    let mut job = s.job.clone();
    job.manifest.org_id = other.genesis.genesis.org_id.clone();
    let e = s.deliver(&job, &s.payload, NOW).unwrap_err();
    assert!(matches!(e, JobRefusal::WrongOrganisation), "{e}");
    assert_eq!(e.code(), "wrong_organisation");
}

#[test]
fn forked_history_is_detected() {
    // The admin's device signed a rotation; the server keeps it from one client and shows it a
    // different link at the same position (here: another rotation it had the admin sign earlier).
    let org = Org::new();
    let mut seen_by_client = org.chain.clone();
    seen_by_client.rotate_epoch(&org.ada, NOW).unwrap();
    let checkpoint = seen_by_client.verify(&org.pinned).unwrap().checkpoint();
    let mut other = org.chain.clone();
    other.rotate_epoch(&org.ada, NOW + 1).unwrap();
    other.rotate_epoch(&org.ada, NOW + 2).unwrap();
    assert_eq!(
        other.verify_extending(&org.pinned, &checkpoint),
        Err(ChainError::Forked { seq: 4 })
    );
    // The honest extension is accepted.
    seen_by_client.rotate_epoch(&org.ada, NOW + 3).unwrap();
    assert!(
        seen_by_client
            .verify_extending(&org.pinned, &checkpoint)
            .is_ok()
    );
}

/// `org` with two more agents: `open` (restricted to no pool) and `vault` (restricted to pool
/// "vault"), as `chain` records them.
fn with_pool_agents(org: &Org, vault_pool: Option<&str>) -> (OrgChain, DeviceKeys, DeviceKeys) {
    let mut chain = org.chain.clone();
    let (open, vault) = (DeviceKeys::generate(), DeviceKeys::generate());
    for (name, pool, keys) in [("open", None, &open), ("vault", vault_pool, &vault)] {
        chain
            .append(
                &org.ada,
                LinkAction::AddAgent {
                    name: name.into(),
                    pool: pool.map(str::to_owned),
                    agent: keys.public(),
                },
                NOW,
            )
            .unwrap();
    }
    (chain, open, vault)
}

#[test]
fn a_pool_job_is_sealed_only_to_agents_that_serve_the_pool() {
    let org = Org::new();
    let (chain, open, vault) = with_pool_agents(&org, Some("vault"));
    let trusted = chain.verify(&org.pinned).unwrap();
    let seal = |agents: &[hearth_crypto::DevicePublic]| {
        let mut payload = Vec::new();
        seal_job(
            &trusted,
            &org.bob,
            "job-pool",
            JobDestination::Pool {
                pool: "farm",
                agents,
            },
            GCODE,
            &mut payload,
            NOW,
            NOW + 600,
        )
        .map(|job| (job, payload))
    };
    // An agent of the pool and one restricted to none: both may open it, and only they.
    let (job, payload) = seal(&[org.g1.public(), open.public(), open.public()]).unwrap();
    assert_eq!(
        job.manifest.target.agents(),
        vec![org.g1.public().signing, open.public().signing]
    );
    for (agent, opens) in [(&org.g1, true), (&open, true), (&org.g2, false)] {
        let mut v = JobVerifier::new(&trusted, agent, MemorySeenJobs::default());
        let r = v.open(&job, NOW, Cursor::new(&payload), &mut Vec::new());
        assert_eq!(r.is_ok(), opens, "{:?}", r.err());
    }
    // An agent an admin restricted to another pool is refused, as are no agents and a key the
    // server made up.
    assert!(matches!(
        seal(&[org.g1.public(), vault.public()]),
        Err(UploadError::Target(TrustError::OutsidePool { ref agent, ref serves, .. }))
            if agent == "vault" && serves == "vault"
    ));
    assert!(matches!(
        seal(&[]),
        Err(UploadError::Target(TrustError::EmptyPool(_)))
    ));
    assert!(matches!(
        seal(&[DeviceKeys::generate().public()]),
        Err(UploadError::Target(TrustError::UnknownKey { .. }))
    ));
}

#[test]
fn an_agent_restricted_to_another_pool_refuses_a_pool_job_naming_it() {
    // A member sealed for "farm" from a chain where "vault" serves every pool (here: a fork the
    // server showed them); the agent's own verified chain restricts it to "vault".
    let org = Org::new();
    let (shown, _, vault) = with_pool_agents(&org, None);
    let mut real = org.chain.clone();
    real.append(
        &org.ada,
        LinkAction::AddAgent {
            name: "open".into(),
            pool: None,
            agent: DeviceKeys::generate().public(),
        },
        NOW,
    )
    .unwrap();
    real.append(
        &org.ada,
        LinkAction::AddAgent {
            name: "vault".into(),
            pool: Some("vault".into()),
            agent: vault.public(),
        },
        NOW,
    )
    .unwrap();
    let mut payload = Vec::new();
    let job = seal_job(
        &shown.verify(&org.pinned).unwrap(),
        &org.bob,
        "job-farm",
        JobDestination::Pool {
            pool: "farm",
            agents: &[vault.public()],
        },
        GCODE,
        &mut payload,
        NOW,
        NOW + 600,
    )
    .unwrap();
    let trusted = real.verify(&org.pinned).unwrap();
    let mut v = JobVerifier::new(&trusted, &vault, MemorySeenJobs::default());
    let e = v
        .open(&job, NOW, Cursor::new(&payload), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(e, JobRefusal::NotForThisAgent), "{e}");
}

#[test]
fn a_job_label_is_bound_to_its_job_and_its_payload() {
    use hearth_crypto::{Sha256Digest, seal_job_label};
    let org = Org::new();
    let trusted = org.trusted();
    let label = PrivateMetadata {
        name: "bracket.gcode".into(),
        ..Default::default()
    };
    let payload = Sha256Digest::of(b"the job's sealed payload");
    let up = seal_job_label(&trusted, &org.bob, "job-1", &payload, 24, &label, NOW).unwrap();
    let m = up
        .manifest
        .verify_job_label(&trusted, "job-1", &payload)
        .unwrap();
    assert_eq!(up.metadata.open(m, &org.epoch).unwrap(), label);
    // A server serving it with another job, or another payload, is caught.
    assert!(matches!(
        up.manifest.verify_job_label(&trusted, "job-2", &payload),
        Err(ManifestError::NotThisJob { .. })
    ));
    assert!(matches!(
        up.manifest
            .verify_job_label(&trusted, "job-1", &Sha256Digest::of(b"another payload")),
        Err(ManifestError::NotThisJob { .. })
    ));
    // Re-pointed at another job by hand: the signature no longer holds.
    let mut moved = up.manifest.clone();
    moved.manifest.file_id = "job:job-2".into();
    assert!(matches!(
        moved.verify_job_label(&trusted, "job-2", &payload),
        Err(ManifestError::BadSignature)
    ));
    // A batch's copy has its own signed label over the same payload and sealed label.
    let copy = up.manifest.for_copy(&org.bob, "job-1b");
    assert!(copy.verify_job_label(&trusted, "job-1b", &payload).is_ok());
    assert!(copy.verify_job_label(&trusted, "job-1", &payload).is_err());
    // Only a member device labels jobs (not the server, which has no member key).
    let stranger = DeviceKeys::generate();
    assert!(matches!(
        seal_job_label(&trusted, &stranger, "job-3", &payload, 24, &label, NOW),
        Err(UploadError::NotAMember(_))
    ));
}

#[test]
fn a_member_reads_a_job_back_only_as_it_was_signed() {
    use hearth_crypto::{Sha256Digest, open_verified};
    let org = Org::new();
    let trusted = org.trusted();
    let (job, payload) = LyingServer::make_job(&org, &org.bob, "job-1", NOW, NOW + 600);
    let hash = Sha256Digest::of(&payload);
    // Verified as bob's job over these bytes, it opens with the epoch key to the very file.
    let m = job.verify_for_member(&trusted, "job-1", &hash).unwrap();
    let mut plain = Vec::new();
    open_verified(
        &[&org.epoch],
        &m.blob_sha256,
        Cursor::new(&payload),
        &mut plain,
    )
    .unwrap();
    assert_eq!(plain, GCODE);
    // Served for another job, or with another payload: caught.
    assert!(matches!(
        job.verify_for_member(&trusted, "job-2", &hash),
        Err(ManifestError::OtherJob { .. })
    ));
    assert!(matches!(
        job.verify_for_member(&trusted, "job-1", &Sha256Digest::of(b"other bytes")),
        Err(ManifestError::OtherJob { .. })
    ));
    // Altered (here its validity stretched): the signature no longer holds.
    let mut altered = job.clone();
    altered.manifest.not_after += 3600;
    assert!(matches!(
        altered.verify_for_member(&trusted, "job-1", &hash),
        Err(ManifestError::BadSignature)
    ));
    // Signed by a key that is no member device (the server forging a job): refused.
    let mut forged = job.clone();
    forged.manifest.signer = DeviceKeys::generate().public().signing;
    assert!(matches!(
        forged.verify_for_member(&trusted, "job-1", &hash),
        Err(ManifestError::UnknownSigner { .. })
    ));
}
