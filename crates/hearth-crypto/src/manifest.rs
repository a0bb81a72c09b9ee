//! Signed manifests that wrap sealed objects: uploaded files and print jobs.
//!
//! The sealed blob itself is a plain age v1 file (so the stock `age` tool opens it); the manifest
//! beside it names the suite and format version, the SHA-256 and size of the ciphertext, the
//! epoch, and who signed it. The server stores both and can read only the manifest.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::chain::{TrustError, TrustedState};
use crate::encoding::{
    DOMAIN_FILE_MANIFEST, DOMAIN_JOB_MANIFEST, Sha256Digest, SignatureBytes, Suite,
    UnsupportedSuite, b64, random_hex, signing_bytes,
};
use crate::epoch::EpochKey;
use crate::keys::{DeviceKeys, Recipient, SigningPublic};
use crate::seal::{OpenError, SealError, open_bytes, seal_bytes, seal_file};

/// What an uploading device signs about one sealed file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileManifest {
    /// Cryptographic suite.
    pub suite: String,
    /// Format version.
    pub version: u32,
    /// Organisation id.
    pub org_id: String,
    /// Id the uploader chose for the file (unique in the organisation).
    pub file_id: String,
    /// Epoch whose key the file and its metadata are sealed to.
    pub epoch: u64,
    /// SHA-256 of the sealed file (ciphertext).
    pub blob_sha256: Sha256Digest,
    /// Size of the sealed file in bytes.
    pub blob_size: u64,
    /// SHA-256 of the sealed private metadata object.
    pub meta_sha256: Sha256Digest,
    /// Size of the sealed private metadata object.
    pub meta_size: u64,
    /// The uploading member device.
    pub uploader: SigningPublic,
    /// Upload time, Unix seconds.
    pub created_at: i64,
}

/// A file manifest with the uploader's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedFileManifest {
    /// The signed content.
    pub manifest: FileManifest,
    /// Ed25519 signature by `manifest.uploader` over `hearth/file-manifest/v1\n` + JSON.
    pub signature: SignatureBytes,
}

/// A manifest failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Unknown suite or version.
    #[error(transparent)]
    UnsupportedSuite(#[from] UnsupportedSuite),
    /// Another organisation's manifest.
    #[error("the manifest belongs to another organisation")]
    WrongOrganisation,
    /// Signed by a key the verified chain does not know.
    #[error("the manifest is signed by {signer}, which is not a member device of the organisation")]
    UnknownSigner {
        /// The signer.
        signer: SigningPublic,
    },
    /// The signature is invalid (altered manifest).
    #[error("the manifest signature is invalid: the manifest was altered")]
    BadSignature,
    /// The epoch is not in the verified chain.
    #[error("the manifest names epoch {0}, which the organisation chain never announced")]
    UnknownEpoch(u64),
    /// A job label signed for another job, or another payload, than the one it is served with.
    #[error("the label is signed for {signed_for}, not for this job and its payload")]
    NotThisJob {
        /// The `file_id` it was signed for.
        signed_for: String,
    },
    /// A job manifest served for another job, or another payload, than the one it was signed for.
    #[error("the job manifest is signed for job {signed_for} and its payload, not this one")]
    OtherJob {
        /// The job id it was signed for.
        signed_for: String,
    },
}

/// What every manifest a member reads back must satisfy: a suite this build implements, this
/// organisation, a signer the verified chain knows (a current or a removed member device: what a
/// device removed later signed stays readable), a valid signature, and an epoch of the chain.
fn check_member_signed(
    trusted: &TrustedState,
    (suite, version): (&str, u32),
    org_id: &str,
    signer: &SigningPublic,
    epoch: u64,
    signature_valid: impl FnOnce() -> bool,
) -> Result<(), ManifestError> {
    Suite::parse(suite, version)?;
    if org_id != trusted.org_id() {
        return Err(ManifestError::WrongOrganisation);
    }
    if trusted.member(signer).is_none() && !trusted.is_removed(signer) {
        return Err(ManifestError::UnknownSigner { signer: *signer });
    }
    if !signature_valid() {
        return Err(ManifestError::BadSignature);
    }
    if trusted.epoch(epoch).is_none() {
        return Err(ManifestError::UnknownEpoch(epoch));
    }
    Ok(())
}

/// Sealed private metadata: an age v1 file holding [`PrivateMetadata`] as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedMetadata {
    /// The age v1 ciphertext.
    #[serde(with = "b64")]
    pub sealed: Vec<u8>,
}

/// What must never reach the server in clear: the file's name, thumbnails, slicer settings and
/// notes. Sealed to the epoch key as a small object separate from the file itself, so a listing
/// can show names and thumbnails without downloading the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateMetadata {
    /// Original file name.
    pub name: String,
    /// Thumbnails found in the file.
    pub thumbnails: Vec<Thumbnail>,
    /// Slicer settings as (key, value) pairs, in file order.
    pub settings: Vec<(String, String)>,
    /// Free-text note.
    pub note: Option<String>,
}

/// One thumbnail image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thumbnail {
    /// Media type, e.g. `image/png`.
    pub mime: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Image bytes.
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

/// Sealing or opening private metadata failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Opening failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The hash is not the one the signed manifest names.
    #[error(
        "the private metadata does not match the signed manifest (SHA-256 {actual}, expected {expected})"
    )]
    HashMismatch {
        /// From the manifest.
        expected: Sha256Digest,
        /// Of what was served.
        actual: Sha256Digest,
    },
    /// Not valid metadata JSON.
    #[error("the private metadata is malformed")]
    Malformed(#[source] serde_json::Error),
}

impl PrivateMetadata {
    /// Seals to the given recipients (normally the current epoch's).
    pub fn seal(&self, recipients: &[&Recipient]) -> Result<SealedMetadata, MetadataError> {
        let json =
            zeroize::Zeroizing::new(serde_json::to_vec(self).map_err(MetadataError::Malformed)?);
        Ok(SealedMetadata {
            sealed: seal_bytes(recipients, &json)?,
        })
    }
}

impl SealedMetadata {
    /// Opens with the epoch key, after checking the hash the verified manifest names.
    pub fn open(
        &self,
        manifest: &FileManifest,
        epoch: &EpochKey,
    ) -> Result<PrivateMetadata, MetadataError> {
        let actual = Sha256Digest::of(&self.sealed);
        if actual != manifest.meta_sha256 {
            return Err(MetadataError::HashMismatch {
                expected: manifest.meta_sha256,
                actual,
            });
        }
        let json = zeroize::Zeroizing::new(open_bytes(&[epoch], &self.sealed)?);
        serde_json::from_slice(&json).map_err(MetadataError::Malformed)
    }
}

impl FileManifest {
    /// Signs with the uploading device (which must be `uploader`).
    pub fn sign(self, uploader: &DeviceKeys) -> SignedFileManifest {
        let signature = uploader.sign(&signing_bytes(DOMAIN_FILE_MANIFEST, &self));
        SignedFileManifest {
            manifest: self,
            signature,
        }
    }
}

impl SignedFileManifest {
    /// Checks suite, organisation, epoch and signature against the verified chain. A file
    /// uploaded by a device removed later stays readable, so the signer may be a current or a
    /// removed member device; [`TrustedState::is_removed`] tells which.
    /// (A removed device could still sign manifests for epochs it knew; the server refuses its
    /// uploads, and clients may flag files whose uploader `is_removed`.)
    pub fn verify<'a>(&'a self, trusted: &TrustedState) -> Result<&'a FileManifest, ManifestError> {
        let m = &self.manifest;
        check_member_signed(
            trusted,
            (&m.suite, m.version),
            &m.org_id,
            &m.uploader,
            m.epoch,
            || {
                m.uploader
                    .verify_strict(&signing_bytes(DOMAIN_FILE_MANIFEST, m), &self.signature)
            },
        )?;
        Ok(m)
    }

    /// Verifies a job's label ([`seal_job_label`]): as [`SignedFileManifest::verify`], and that it
    /// was signed for job `job_id` and its sealed payload `payload_sha256`.
    pub fn verify_job_label<'a>(
        &'a self,
        trusted: &TrustedState,
        job_id: &str,
        payload_sha256: &Sha256Digest,
    ) -> Result<&'a FileManifest, ManifestError> {
        let m = self.verify(trusted)?;
        if m.file_id != job_label_id(job_id) || m.blob_sha256 != *payload_sha256 {
            return Err(ManifestError::NotThisJob {
                signed_for: m.file_id.clone(),
            });
        }
        Ok(m)
    }

    /// The same label signed for another job over the same payload (a batch's copies share
    /// one payload and one sealed label, each copy its own signed manifest).
    pub fn for_copy(&self, submitter: &DeviceKeys, job_id: &str) -> SignedFileManifest {
        FileManifest {
            file_id: job_label_id(job_id),
            ..self.manifest.clone()
        }
        .sign(submitter)
    }
}

/// Everything an upload produces besides the sealed file bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedUpload {
    /// The signed manifest to send with the file.
    pub manifest: SignedFileManifest,
    /// The sealed private metadata to send with the file.
    pub metadata: SealedMetadata,
}

/// Seals a file for upload: the file to the verified current epoch (streamed into `sealed_out`),
/// its private metadata as a separate small object, and a manifest signed by `uploader`.
pub fn seal_upload<R: Read, W: Write>(
    trusted: &TrustedState,
    uploader: &DeviceKeys,
    file_id: &str,
    plaintext: R,
    sealed_out: W,
    metadata: &PrivateMetadata,
    now: i64,
) -> Result<SealedUpload, UploadError> {
    let me = uploader.public();
    trusted
        .require_member(&me)
        .map_err(UploadError::NotAMember)?;
    let epoch = trusted.current_epoch();
    let summary = seal_file(&[&epoch.recipient], plaintext, sealed_out)?;
    let meta = metadata.seal(&[&epoch.recipient])?;
    let manifest = FileManifest {
        suite: Suite::CURRENT.as_str().to_owned(),
        version: Suite::FORMAT_VERSION,
        org_id: trusted.org_id().to_owned(),
        file_id: file_id.to_owned(),
        epoch: epoch.epoch,
        blob_sha256: summary.ciphertext_sha256,
        blob_size: summary.ciphertext_len,
        meta_sha256: Sha256Digest::of(&meta.sealed),
        meta_size: meta.sealed.len() as u64,
        uploader: me.signing,
        created_at: now,
    };
    Ok(SealedUpload {
        manifest: manifest.sign(uploader),
        metadata: meta,
    })
}

/// The `file_id` a job's label is signed under: `job:` and the job id. A library file's id is a
/// plain id, so a label is never taken for a file, nor a file's manifest for a label.
pub fn job_label_id(job_id: &str) -> String {
    format!("job:{job_id}")
}

/// Seals a job's label: what members see of the file a job prints (its name and a thumbnail, as
/// [`PrivateMetadata`]), sealed to the verified current epoch like a library file's metadata, with
/// a [`FileManifest`] signed by `submitter` that names the job ([`job_label_id`]) and the job's
/// sealed payload (`payload_sha256`, `payload_size`) as its bytes. The server keeps it beside the
/// job and cannot read it, nor pass one job's label off as another's
/// ([`SignedFileManifest::verify_job_label`]).
pub fn seal_job_label(
    trusted: &TrustedState,
    submitter: &DeviceKeys,
    job_id: &str,
    payload_sha256: &Sha256Digest,
    payload_size: u64,
    label: &PrivateMetadata,
    now: i64,
) -> Result<SealedUpload, UploadError> {
    let me = submitter.public();
    trusted
        .require_member(&me)
        .map_err(UploadError::NotAMember)?;
    let epoch = trusted.current_epoch();
    let meta = label.seal(&[&epoch.recipient])?;
    let manifest = FileManifest {
        suite: Suite::CURRENT.as_str().to_owned(),
        version: Suite::FORMAT_VERSION,
        org_id: trusted.org_id().to_owned(),
        file_id: job_label_id(job_id),
        epoch: epoch.epoch,
        blob_sha256: *payload_sha256,
        blob_size: payload_size,
        meta_sha256: Sha256Digest::of(&meta.sealed),
        meta_size: meta.sealed.len() as u64,
        uploader: me.signing,
        created_at: now,
    };
    Ok(SealedUpload {
        manifest: manifest.sign(submitter),
        metadata: meta,
    })
}

/// Sealing an upload or a job failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// This device is not a member of the verified chain.
    #[error("this device is not a current member of the organisation")]
    NotAMember(#[source] TrustError),
    /// A target agent is not enrolled (or the server substituted its key).
    #[error("target agent refused")]
    Target(#[source] TrustError),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Sealing the metadata failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// Where a job should print.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JobTarget {
    /// One printer behind one agent.
    Printer {
        /// The agent that drives it.
        agent: SigningPublic,
        /// The printer's name at that agent.
        printer: String,
    },
    /// Any agent of a pool; the job is sealed to all of them.
    Pool {
        /// Pool name.
        pool: String,
        /// The pool's agents when the job was signed.
        agents: Vec<SigningPublic>,
    },
}

impl JobTarget {
    /// The agents that may open the job.
    pub fn agents(&self) -> Vec<SigningPublic> {
        match self {
            JobTarget::Printer { agent, .. } => vec![*agent],
            JobTarget::Pool { agents, .. } => agents.clone(),
        }
    }
}

/// What a member device signs about one print job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobManifest {
    /// Cryptographic suite.
    pub suite: String,
    /// Format version.
    pub version: u32,
    /// Organisation id.
    pub org_id: String,
    /// Unique job id; an agent accepts each id once.
    pub job_id: String,
    /// Where to print.
    pub target: JobTarget,
    /// Epoch whose key the payload is also sealed to.
    pub epoch: u64,
    /// SHA-256 of the sealed payload (ciphertext).
    pub blob_sha256: Sha256Digest,
    /// Size of the sealed payload.
    pub blob_size: u64,
    /// Not valid before, Unix seconds.
    pub not_before: i64,
    /// Not valid after, Unix seconds.
    pub not_after: i64,
    /// 128 random bits (hex), so two jobs never share a signed body.
    pub nonce: String,
    /// The submitting member device.
    pub signer: SigningPublic,
}

/// A job manifest with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedJobManifest {
    /// The signed content.
    pub manifest: JobManifest,
    /// Ed25519 signature by `manifest.signer` over `hearth/job-manifest/v1\n` + JSON.
    pub signature: SignatureBytes,
}

impl SignedJobManifest {
    pub(crate) fn signature_valid(&self) -> bool {
        self.manifest.signer.verify_strict(
            &signing_bytes(DOMAIN_JOB_MANIFEST, &self.manifest),
            &self.signature,
        )
    }

    /// Checks a job as a member reads it back (to open its payload with the epoch key and print it
    /// again): as [`SignedFileManifest::verify`] (suite, organisation, a current or removed member
    /// device as signer, signature, epoch), and that it is job `job_id` over the sealed payload
    /// `payload_sha256` the server serves with it. Agents use [`crate::JobVerifier`], which also
    /// checks the target, the validity window and replays.
    pub fn verify_for_member<'a>(
        &'a self,
        trusted: &TrustedState,
        job_id: &str,
        payload_sha256: &Sha256Digest,
    ) -> Result<&'a JobManifest, ManifestError> {
        let m = &self.manifest;
        check_member_signed(
            trusted,
            (&m.suite, m.version),
            &m.org_id,
            &m.signer,
            m.epoch,
            || self.signature_valid(),
        )?;
        if m.job_id != job_id || m.blob_sha256 != *payload_sha256 {
            return Err(ManifestError::OtherJob {
                signed_for: m.job_id.clone(),
            });
        }
        Ok(m)
    }

    /// Another copy of this job: the same sealed payload, target and validity under a new job id
    /// and nonce, signed by `signer`, which must be the device that signed this one (so a batch of
    /// copies uploads its file once and each copy is still accepted once). `None` for another
    /// signer.
    pub fn copy_as(&self, signer: &DeviceKeys, job_id: &str) -> Option<SignedJobManifest> {
        if signer.public().signing != self.manifest.signer {
            return None;
        }
        let manifest = JobManifest {
            job_id: job_id.to_owned(),
            nonce: random_hex(16),
            ..self.manifest.clone()
        };
        let signature = signer.sign(&signing_bytes(DOMAIN_JOB_MANIFEST, &manifest));
        Some(SignedJobManifest {
            manifest,
            signature,
        })
    }
}

/// Where to send a job, as the submitter names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobDestination<'a> {
    /// One printer of one agent (the agent's public keys as the server listed them; checked
    /// against the verified chain).
    Printer {
        /// The agent.
        agent: &'a crate::DevicePublic,
        /// Printer name.
        printer: &'a str,
    },
    /// Any printer of a pool: sealed to the agents that drive the pool's printers (as the
    /// server lists them), each checked against the verified chain: enrolled, and restricted to
    /// no pool or to this one.
    Pool {
        /// Pool name.
        pool: &'a str,
        /// The agents' public keys as the server listed them.
        agents: &'a [crate::DevicePublic],
    },
}

/// Seals a print job's payload to the current epoch and the target agent(s), streaming into
/// `sealed_out`, and returns the manifest signed by `signer`.
#[allow(clippy::too_many_arguments)]
pub fn seal_job<R: Read, W: Write>(
    trusted: &TrustedState,
    signer: &DeviceKeys,
    job_id: &str,
    destination: JobDestination<'_>,
    plaintext: R,
    sealed_out: W,
    not_before: i64,
    not_after: i64,
) -> Result<SignedJobManifest, UploadError> {
    let me = signer.public();
    trusted
        .require_member(&me)
        .map_err(UploadError::NotAMember)?;
    let (target, agents): (JobTarget, Vec<&Recipient>) = match destination {
        JobDestination::Printer { agent, printer } => {
            let a = trusted.require_agent(agent).map_err(UploadError::Target)?;
            (
                JobTarget::Printer {
                    agent: a.agent.signing,
                    printer: printer.to_owned(),
                },
                vec![&a.agent.recipient],
            )
        }
        JobDestination::Pool { pool, agents } => {
            let mut members: Vec<&crate::chain::Agent> = Vec::with_capacity(agents.len());
            for key in agents {
                let a = trusted.require_agent(key).map_err(UploadError::Target)?;
                if !a.serves(pool) {
                    return Err(UploadError::Target(TrustError::OutsidePool {
                        agent: a.name.clone(),
                        serves: a.pool.clone().unwrap_or_default(),
                        pool: pool.to_owned(),
                    }));
                }
                if !members.iter().any(|m| m.agent.signing == a.agent.signing) {
                    members.push(a);
                }
            }
            if members.is_empty() {
                return Err(UploadError::Target(TrustError::EmptyPool(pool.to_owned())));
            }
            (
                JobTarget::Pool {
                    pool: pool.to_owned(),
                    agents: members.iter().map(|a| a.agent.signing).collect(),
                },
                members.iter().map(|a| &a.agent.recipient).collect(),
            )
        }
    };
    let epoch = trusted.current_epoch();
    let mut recipients = vec![&epoch.recipient];
    recipients.extend(agents);
    let summary = seal_file(&recipients, plaintext, sealed_out)?;
    let manifest = JobManifest {
        suite: Suite::CURRENT.as_str().to_owned(),
        version: Suite::FORMAT_VERSION,
        org_id: trusted.org_id().to_owned(),
        job_id: job_id.to_owned(),
        target,
        epoch: epoch.epoch,
        blob_sha256: summary.ciphertext_sha256,
        blob_size: summary.ciphertext_len,
        not_before,
        not_after,
        nonce: random_hex(16),
        signer: me.signing,
    };
    let signature = signer.sign(&signing_bytes(DOMAIN_JOB_MANIFEST, &manifest));
    Ok(SignedJobManifest {
        manifest,
        signature,
    })
}
