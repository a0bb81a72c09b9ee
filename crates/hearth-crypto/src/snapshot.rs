//! Camera snapshots: a frame an agent took of one of its printers, sealed to the organisation's
//! current epoch (so every member device can open it and the server cannot) and signed by the
//! agent (so a member can tell it was taken by that agent, of that printer, at that time, and the
//! server cannot substitute another frame).
//!
//! The frame is an ordinary age v1 file (the same format as every sealed file), and the signature
//! covers a [`SnapshotManifest`] with the domain line `hearth/snapshot-manifest/v1\n`, as the other
//! manifests are signed. The image format (JPEG, PNG...) is whatever the camera gave; it is only
//! known inside the sealed bytes.

use serde::{Deserialize, Serialize};

use crate::chain::TrustedState;
use crate::encoding::{
    DOMAIN_SNAPSHOT_MANIFEST, Sha256Digest, SignatureBytes, Suite, UnsupportedSuite, signing_bytes,
};
use crate::epoch::EpochKey;
use crate::keys::{DeviceKeys, SigningPublic};
use crate::seal::{OpenError, SealError, open_bytes, seal_bytes};

/// What an agent signs about one sealed camera frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotManifest {
    /// Cryptographic suite.
    pub suite: String,
    /// Format version.
    pub version: u32,
    /// Organisation id.
    pub org_id: String,
    /// The printer's name on the agent that took the frame.
    pub printer: String,
    /// Epoch whose key the frame is sealed to.
    pub epoch: u64,
    /// SHA-256 of the sealed frame (ciphertext).
    pub blob_sha256: Sha256Digest,
    /// Size of the sealed frame in bytes.
    pub blob_size: u64,
    /// The agent that took it.
    pub agent: SigningPublic,
    /// When it was taken, Unix seconds (the agent's clock).
    pub taken_at: i64,
    /// The job the printer was printing, when the frame belongs to that job's timelapse. Absent
    /// from a frame of no job's timelapse, so frames signed before timelapses existed verify as
    /// they were signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// A snapshot manifest with the agent's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedSnapshot {
    /// The signed content.
    pub manifest: SnapshotManifest,
    /// Ed25519 signature by `manifest.agent` over `hearth/snapshot-manifest/v1\n` + JSON.
    pub signature: SignatureBytes,
}

/// Why a snapshot is not shown.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Unknown suite or version.
    #[error(transparent)]
    UnsupportedSuite(#[from] UnsupportedSuite),
    /// Another organisation's snapshot.
    #[error("the snapshot belongs to another organisation")]
    WrongOrganisation,
    /// Not signed by an agent the verified chain enrolled (or one removed since).
    #[error(
        "the snapshot is signed by {signer}, which is not an enrolled agent of the organisation"
    )]
    UnknownAgent {
        /// The signer.
        signer: SigningPublic,
    },
    /// Signed by an enrolled agent, but not the one that drives the printer asked for.
    #[error("the snapshot was taken by another agent than the printer's")]
    OtherAgent,
    /// The manifest names another printer than the one asked for.
    #[error("the snapshot is of printer {actual:?}, not {expected:?}")]
    OtherPrinter {
        /// The printer asked for.
        expected: String,
        /// The printer the agent signed.
        actual: String,
    },
    /// The signature is invalid (altered manifest).
    #[error("the snapshot's signature is invalid: its manifest was altered")]
    BadSignature,
    /// The epoch is not in the verified chain.
    #[error("the snapshot names epoch {0}, which the organisation chain never announced")]
    UnknownEpoch(u64),
    /// The sealed bytes are not the ones the agent signed.
    #[error("the sealed frame does not hash to what its agent signed: it was replaced or altered")]
    CiphertextMismatch,
    /// A timelapse frame of another job than the one asked for (or of no job).
    #[error("the frame belongs to {actual}, not to job {expected}")]
    OtherJob {
        /// The job asked for.
        expected: String,
        /// What the agent signed: `job X` or `no job's timelapse`.
        actual: String,
    },
    /// The epoch key given is not the snapshot's epoch.
    #[error("the snapshot is sealed to epoch {snapshot}, and the key given is of epoch {key}")]
    WrongEpochKey {
        /// The snapshot's epoch.
        snapshot: u64,
        /// The key's epoch.
        key: u64,
    },
    /// Opening failed (altered ciphertext).
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Seals `image`, a frame of the agent's printer `printer` taken at `taken_at`, to the current
/// epoch of `trusted`, and signs its manifest with the agent's keys; `job` binds it to that job's
/// timelapse. Returns the sealed bytes and the signed manifest.
pub fn seal_snapshot(
    trusted: &TrustedState,
    agent: &DeviceKeys,
    printer: &str,
    image: &[u8],
    taken_at: i64,
    job: Option<&str>,
) -> Result<(Vec<u8>, SignedSnapshot), SealError> {
    let epoch = trusted.current_epoch();
    let sealed = seal_bytes(&[&epoch.recipient], image)?;
    let manifest = SnapshotManifest {
        suite: Suite::CURRENT.as_str().into(),
        version: Suite::FORMAT_VERSION,
        org_id: trusted.org_id().into(),
        printer: printer.into(),
        epoch: epoch.epoch,
        blob_sha256: Sha256Digest::of(&sealed),
        blob_size: sealed.len() as u64,
        agent: agent.public().signing,
        taken_at,
        job: job.map(str::to_owned),
    };
    let signature = agent.sign(&signing_bytes(DOMAIN_SNAPSHOT_MANIFEST, &manifest));
    Ok((
        sealed,
        SignedSnapshot {
            manifest,
            signature,
        },
    ))
}

impl SignedSnapshot {
    /// Checks suite, organisation, signer (an agent the verified chain enrolls now), signature and
    /// epoch.
    pub fn verify<'a>(
        &'a self,
        trusted: &TrustedState,
    ) -> Result<&'a SnapshotManifest, SnapshotError> {
        let m = &self.manifest;
        Suite::parse(&m.suite, m.version)?;
        if m.org_id != trusted.org_id() {
            return Err(SnapshotError::WrongOrganisation);
        }
        if trusted.agent(&m.agent).is_none() {
            return Err(SnapshotError::UnknownAgent { signer: m.agent });
        }
        if !m
            .agent
            .verify_strict(&signing_bytes(DOMAIN_SNAPSHOT_MANIFEST, m), &self.signature)
        {
            return Err(SnapshotError::BadSignature);
        }
        if trusted.epoch(m.epoch).is_none() {
            return Err(SnapshotError::UnknownEpoch(m.epoch));
        }
        Ok(m)
    }

    /// Verifies the snapshot as [`SignedSnapshot::verify`] does, checks that it is of `printer`,
    /// taken by `agent` (the agent that drives that printer), and that `sealed` is what the agent
    /// signed, then opens it with the key of its epoch. Returns the image bytes.
    pub fn open(
        &self,
        trusted: &TrustedState,
        agent: &SigningPublic,
        printer: &str,
        epoch_key: &EpochKey,
        sealed: &[u8],
    ) -> Result<Vec<u8>, SnapshotError> {
        let m = self.verify(trusted)?;
        if m.agent != *agent {
            return Err(SnapshotError::OtherAgent);
        }
        if m.printer != printer {
            return Err(SnapshotError::OtherPrinter {
                expected: printer.into(),
                actual: m.printer.clone(),
            });
        }
        if sealed.len() as u64 != m.blob_size || Sha256Digest::of(sealed) != m.blob_sha256 {
            return Err(SnapshotError::CiphertextMismatch);
        }
        if epoch_key.epoch() != m.epoch {
            return Err(SnapshotError::WrongEpochKey {
                snapshot: m.epoch,
                key: epoch_key.epoch(),
            });
        }
        Ok(open_bytes(&[epoch_key], sealed)?)
    }

    /// Opens a frame of `job`'s timelapse as [`SignedSnapshot::open`] does, and checks that the
    /// agent signed it as a frame of that job: a server cannot pass one job's frames (or a live
    /// frame) off as another job's timelapse.
    pub fn open_of_job(
        &self,
        trusted: &TrustedState,
        agent: &SigningPublic,
        printer: &str,
        job: &str,
        epoch_key: &EpochKey,
        sealed: &[u8],
    ) -> Result<Vec<u8>, SnapshotError> {
        let m = self.verify(trusted)?;
        if m.job.as_deref() != Some(job) {
            return Err(SnapshotError::OtherJob {
                expected: job.into(),
                actual: m
                    .job
                    .as_ref()
                    .map_or_else(|| "no job's timelapse".into(), |j| format!("job {j}")),
            });
        }
        self.open(trusted, agent, printer, epoch_key, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentKeys, LinkAction, OrgChain};

    const NOW: i64 = 1_780_000_000;

    struct Org {
        trusted: TrustedState,
        epoch: EpochKey,
        agent: AgentKeys,
        other: AgentKeys,
    }

    fn org() -> Org {
        let ada = DeviceKeys::generate();
        let (mut chain, epoch) = OrgChain::create(&ada, "ada", "Acme", NOW);
        let agent = AgentKeys::generate();
        let other = AgentKeys::generate();
        for (name, a) in [("pi", &agent), ("pi-2", &other)] {
            let add = LinkAction::AddAgent {
                name: name.into(),
                pool: None,
                agent: a.public(),
            };
            chain.append(&ada, add, NOW).unwrap();
        }
        let trusted = chain.verify(&chain.genesis_hash()).unwrap();
        Org {
            trusted,
            epoch,
            agent,
            other,
        }
    }

    #[test]
    fn a_member_opens_what_the_agent_sealed_and_the_ciphertext_hides_the_frame() {
        let o = org();
        let frame = b"\xff\xd8\xff\xe0 a JPEG of the bed \xff\xd9".repeat(50);
        let (sealed, signed) =
            seal_snapshot(&o.trusted, &o.agent, "mk4", &frame, NOW, None).unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
        assert!(!sealed.windows(12).any(|w| w == &frame[..12]));
        let who = o.agent.public().signing;
        let opened = signed
            .open(&o.trusted, &who, "mk4", &o.epoch, &sealed)
            .unwrap();
        assert_eq!(opened, frame);
        assert_eq!(signed.manifest.taken_at, NOW);
        assert_eq!(signed.manifest.epoch, 1);
    }

    #[test]
    fn a_frame_swapped_altered_or_relabelled_is_refused() {
        let o = org();
        let who = o.agent.public().signing;
        let (sealed, signed) =
            seal_snapshot(&o.trusted, &o.agent, "mk4", b"frame", NOW, None).unwrap();
        // Another printer's name on the same agent.
        assert!(matches!(
            signed.open(&o.trusted, &who, "xl", &o.epoch, &sealed),
            Err(SnapshotError::OtherPrinter { .. })
        ));
        // Another enrolled agent's frame passed off as this agent's printer.
        let (theirs, theirs_signed) =
            seal_snapshot(&o.trusted, &o.other, "mk4", b"elsewhere", NOW, None).unwrap();
        assert!(matches!(
            theirs_signed.open(&o.trusted, &who, "mk4", &o.epoch, &theirs),
            Err(SnapshotError::OtherAgent)
        ));
        // Other sealed bytes under this manifest (anyone can seal to the epoch's public key).
        assert!(matches!(
            signed.open(&o.trusted, &who, "mk4", &o.epoch, &theirs),
            Err(SnapshotError::CiphertextMismatch)
        ));
        // A manifest edited after signing (an older frame made to look new).
        let mut edited = signed.clone();
        edited.manifest.taken_at += 600;
        assert!(matches!(
            edited.open(&o.trusted, &who, "mk4", &o.epoch, &sealed),
            Err(SnapshotError::BadSignature)
        ));
        // Signed by a key the chain does not know.
        let stranger = AgentKeys::generate();
        let (s, forged) = seal_snapshot(&o.trusted, &stranger, "mk4", b"fake", NOW, None).unwrap();
        assert!(matches!(
            forged.open(&o.trusted, &stranger.public().signing, "mk4", &o.epoch, &s),
            Err(SnapshotError::UnknownAgent { .. })
        ));
    }

    #[test]
    fn a_timelapse_frame_opens_only_as_a_frame_of_its_own_job() {
        let o = org();
        let who = o.agent.public().signing;
        let (sealed, signed) =
            seal_snapshot(&o.trusted, &o.agent, "mk4", b"layer 12", NOW, Some("job-a")).unwrap();
        let opened = signed
            .open_of_job(&o.trusted, &who, "mk4", "job-a", &o.epoch, &sealed)
            .unwrap();
        assert_eq!(opened, b"layer 12");
        assert!(matches!(
            signed.open_of_job(&o.trusted, &who, "mk4", "job-b", &o.epoch, &sealed),
            Err(SnapshotError::OtherJob { .. })
        ));
        // A live frame (of no job) passed off as a timelapse frame.
        let (live, live_signed) =
            seal_snapshot(&o.trusted, &o.agent, "mk4", b"idle bed", NOW, None).unwrap();
        let err = live_signed
            .open_of_job(&o.trusted, &who, "mk4", "job-a", &o.epoch, &live)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the frame belongs to no job's timelapse, not to job job-a"
        );
        // The job is signed: relabelling it breaks the signature.
        let mut relabelled = live_signed.clone();
        relabelled.manifest.job = Some("job-a".into());
        assert!(matches!(
            relabelled.open_of_job(&o.trusted, &who, "mk4", "job-a", &o.epoch, &live),
            Err(SnapshotError::BadSignature)
        ));
        // A frame of no job signs no `job` key, as frames did before timelapses.
        let json = serde_json::to_value(&live_signed).unwrap();
        assert!(json["manifest"].get("job").is_none());
    }

    #[test]
    fn the_manifest_travels_as_json() {
        let o = org();
        let (_, signed) = seal_snapshot(&o.trusted, &o.agent, "mk4", b"frame", NOW, None).unwrap();
        let json = serde_json::to_value(&signed).unwrap();
        assert_eq!(json["manifest"]["printer"], "mk4");
        let back: SignedSnapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, signed);
    }
}
