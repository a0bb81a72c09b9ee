//! The organisation's life as the CLI and agent will drive it, through the public API only.

use std::io::Cursor;

use hearth_crypto::{
    DeviceKeys, EpochError, Fingerprint, JobDestination, JobVerifier, LinkAction, MemorySeenJobs,
    OpenError, OrgChain, PrivateMetadata, SealedEpochKey, Thumbnail, WrappedKeyBundle,
    derive_login_secret, open_verified, seal_job, seal_upload,
};

use crate::support::{NOW, Org, fast};

#[test]
fn founder_member_second_device_upload_download() {
    // Ada founds the organisation on her laptop and stores her wrapped keys on the server.
    let ada = DeviceKeys::generate();
    let (mut chain, epoch1) = OrgChain::create(&ada, "ada", "Acme", NOW);
    let pinned = chain.genesis_hash();
    let bundle_json =
        serde_json::to_string(&ada.to_wrapped("ada's passphrase", &fast()).unwrap()).unwrap();
    let login =
        derive_login_secret("ada's passphrase", "https://hearth.example", "ada", &fast()).unwrap();
    assert!(!bundle_json.contains(login.expose_hex().as_str()));

    // Bob creates keys on his machine and reads his fingerprint to Ada, who compares it to what
    // the server shows before signing the link.
    let bob = DeviceKeys::generate();
    let read_aloud = bob.fingerprint().to_string();
    let served_pub = bob.public();
    assert_eq!(
        read_aloud.parse::<Fingerprint>().unwrap(),
        served_pub.fingerprint()
    );
    chain
        .append(
            &ada,
            LinkAction::AddDevice {
                user: "bob".into(),
                device: served_pub,
                admin: false,
            },
            NOW,
        )
        .unwrap();

    // The chain travels through the server as JSON; clients verify it from the pinned genesis.
    let chain: OrgChain = serde_json::from_str(&serde_json::to_string(&chain).unwrap()).unwrap();
    let trusted = chain.verify(&pinned).unwrap();
    assert_eq!(trusted.members().count(), 2);
    assert_eq!(trusted.admins().count(), 1);
    let sealed_epoch: SealedEpochKey = serde_json::from_str(
        &serde_json::to_string(&epoch1.seal_for_members(&trusted).unwrap()).unwrap(),
    )
    .unwrap();

    // Ada logs in on a second machine: unwraps her keys there and opens the epoch key.
    let bundle: WrappedKeyBundle = serde_json::from_str(&bundle_json).unwrap();
    let ada2 = bundle.unwrap_keys("ada's passphrase", &fast()).unwrap();
    assert_eq!(ada2.public(), ada.public());
    let epoch_on_ada2 = sealed_epoch.open(&ada2, &trusted).unwrap();

    // Bob uploads; Ada downloads, verifies the manifest and opens file and metadata.
    let epoch_on_bob = sealed_epoch.open(&bob, &trusted).unwrap();
    let data = vec![42u8; 150_000];
    let meta = PrivateMetadata {
        name: "secret-part.3mf".into(),
        thumbnails: vec![Thumbnail {
            mime: "image/png".into(),
            width: 16,
            height: 16,
            data: vec![1, 2, 3],
        }],
        settings: vec![("layer_height".into(), "0.2".into())],
        note: Some("v2".into()),
    };
    let mut blob = Vec::new();
    let up = seal_upload(&trusted, &bob, "file-1", &data[..], &mut blob, &meta, NOW).unwrap();
    let manifest_json = serde_json::to_string(&up.manifest).unwrap();
    assert!(!manifest_json.contains("secret-part"));
    let m = up.manifest.verify(&trusted).unwrap();
    assert_eq!(up.metadata.open(m, &epoch_on_ada2).unwrap(), meta);
    let mut out = Vec::new();
    open_verified(
        &[&epoch_on_ada2],
        &m.blob_sha256,
        Cursor::new(&blob),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, data);
    drop(epoch_on_bob);
}

#[test]
fn agent_enrollment_job_and_agents_never_hold_the_epoch_key() {
    let org = Org::new();
    let trusted = org.trusted();
    // The agent prints its fingerprint; the admin sees the same one from the chain.
    let enrolled = trusted.require_agent(&org.g1.public()).unwrap();
    assert_eq!(enrolled.agent.fingerprint(), org.g1.fingerprint());

    let sealed_epoch = org.epoch.seal_for_members(&trusted).unwrap();
    assert!(matches!(
        sealed_epoch.open(&org.g1, &trusted),
        Err(EpochError::Open(OpenError::NotARecipient))
    ));

    let mut blob = Vec::new();
    let g1_pub = org.g1.public();
    let job = seal_job(
        &trusted,
        &org.bob,
        "job-1",
        JobDestination::Printer {
            agent: &g1_pub,
            printer: "mk4",
        },
        &b"G28\nG1 X10\n"[..],
        &mut blob,
        NOW,
        NOW + 600,
    )
    .unwrap();
    let job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
    let mut v = JobVerifier::new(&trusted, &org.g1, MemorySeenJobs::default());
    let mut gcode = Vec::new();
    let opened = v
        .open(&job, NOW + 10, Cursor::new(&blob), &mut gcode)
        .unwrap();
    assert_eq!(gcode, b"G28\nG1 X10\n");
    assert_eq!(opened.manifest.job_id, "job-1");
    // Members can open jobs too (sealed to the epoch), g2 cannot (not a target).
    let mut v2 = JobVerifier::new(&trusted, &org.g2, MemorySeenJobs::default());
    assert_eq!(
        v2.open(&job, NOW, Cursor::new(&blob), &mut Vec::new())
            .unwrap_err()
            .code(),
        "not_for_this_agent"
    );
}

#[test]
fn removal_rotates_the_epoch_and_the_removed_device_cannot_open_new_files() {
    let mut org = Org::new();
    let trusted = org.trusted();
    let old_sealed = org.epoch.seal_for_members(&trusted).unwrap();
    let bob_old_epoch = old_sealed.open(&org.bob, &trusted).unwrap();

    let epoch2 = org
        .chain
        .remove_device(&org.ada, &org.bob.public().signing, NOW)
        .unwrap();
    let trusted = org.trusted();
    assert_eq!(trusted.current_epoch().epoch, 2);
    assert!(trusted.is_removed(&org.bob.public().signing));
    let sealed2 = epoch2.seal_for_members(&trusted).unwrap();
    assert!(sealed2.open(&org.bob, &trusted).is_err());
    let ada_epoch2 = sealed2.open(&org.ada, &trusted).unwrap();

    let mut blob = Vec::new();
    seal_upload(
        &trusted,
        &org.ada,
        "f2",
        &b"new design"[..],
        &mut blob,
        &PrivateMetadata::default(),
        NOW,
    )
    .unwrap();
    assert!(hearth_crypto::open_bytes(&[&bob_old_epoch], &blob).is_err());
    assert_eq!(
        hearth_crypto::open_bytes(&[&ada_epoch2], &blob).unwrap(),
        b"new design"
    );

    // The last admin cannot be removed.
    let e = org
        .chain
        .remove_device(&org.ada, &org.ada.public().signing, NOW)
        .unwrap_err();
    assert!(matches!(e, hearth_crypto::ChainError::LastAdmin { .. }));
}

#[test]
fn a_device_added_later_gets_the_epoch_key_but_an_agent_never_does() {
    let mut org = Org::new();
    let carol = DeviceKeys::generate();
    org.chain
        .append(
            &org.ada,
            LinkAction::AddDevice {
                user: "carol".into(),
                device: carol.public(),
                admin: false,
            },
            NOW,
        )
        .unwrap();
    let trusted = org.trusted();
    let sealed = org
        .epoch
        .seal_for_member(&trusted, &carol.public())
        .unwrap();
    assert_eq!(
        sealed.open(&carol, &trusted).unwrap().public(),
        org.epoch.public()
    );
    assert!(matches!(
        org.epoch.seal_for_member(&trusted, &org.g1.public()),
        Err(hearth_crypto::EpochSealError::NotAMember(
            hearth_crypto::TrustError::WrongRole { .. }
        ))
    ));
    let mut future = sealed.clone();
    future.suite = "mlkem768x25519+mldsa65".into();
    assert!(matches!(
        future.open(&carol, &trusted),
        Err(EpochError::UnsupportedSuite(_))
    ));
}
