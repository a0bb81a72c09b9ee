//! The real `JobOpener`: `hearth_crypto::JobVerifier` behind the agent's trait.
//!
//! What the agent's loop provides and the verifier does not check by itself, this adapter does: that the
//! signed manifest names the job id and the blob of the message it came in, and, for a job aimed at one
//! printer, that it is the printer the server asked for (a server must not redirect a job to another
//! printer of the same agent). Single use is the agent's `Journal`'s job (see `opener::JobOpener`), so each
//! call gets a fresh `MemorySeenJobs`: opening the same accepted job again after a failed upload is not a
//! replay.
//!
//! Where the `TrustedState` comes from (the organisation chain, verified against a genesis hash the admin
//! pins at enrollment) is decided by the caller; this type only uses it.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use hearth_crypto::{
    DeviceKeys, JobRefusal, JobTarget, JobVerifier, MemorySeenJobs, SignedJobManifest, TrustedState,
};
use hearth_proto::agent::AgentJob;

use crate::opener::{JobOpener, OpenError, OpenedJob, Refusal};

/// Verifies and opens jobs with the agent's keys, trusting `trusted` only.
pub struct CryptoOpener {
    trusted: TrustedState,
    keys: Arc<DeviceKeys>,
    /// Allowed clock skew, seconds.
    skew: i64,
}

impl std::fmt::Debug for CryptoOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoOpener")
            .field("org", &self.trusted.org_id())
            .field("agent", &self.keys.fingerprint())
            .finish_non_exhaustive()
    }
}

impl CryptoOpener {
    pub fn new(trusted: TrustedState, keys: Arc<DeviceKeys>) -> Self {
        Self {
            trusted,
            keys,
            skew: 120,
        }
    }
}

fn refused(reason: Refusal, detail: impl Into<String>) -> OpenError {
    OpenError::Refused {
        reason,
        detail: detail.into(),
    }
}

/// The agent's name for a verifier refusal.
pub fn refusal_of(r: &JobRefusal) -> Refusal {
    match r {
        JobRefusal::UnsupportedSuite(_) => Refusal::UnsupportedSuite,
        JobRefusal::WrongOrganisation => Refusal::WrongOrganisation,
        JobRefusal::UnknownSigner { .. } => Refusal::UnknownSigner,
        JobRefusal::SignerRemoved { .. } => Refusal::SignerRemoved,
        JobRefusal::BadSignature => Refusal::BadSignature,
        JobRefusal::NotForThisAgent => Refusal::NotForThisAgent,
        JobRefusal::NotYetValid { .. } => Refusal::NotYetValid,
        JobRefusal::Expired { .. } => Refusal::Expired,
        JobRefusal::BadWindow { .. } => Refusal::BadWindow,
        JobRefusal::Replayed { .. } => Refusal::Replayed,
        JobRefusal::CiphertextMismatch { .. } => Refusal::CiphertextMismatch,
        JobRefusal::Open(_) => Refusal::OpenFailed,
        JobRefusal::SeenStore(_) => Refusal::SeenStoreFailed,
    }
}

impl JobOpener for CryptoOpener {
    fn open(&self, job: &AgentJob, sealed: &Path, out: &mut File) -> Result<OpenedJob, OpenError> {
        let signed: SignedJobManifest =
            serde_json::from_value(job.manifest.clone()).map_err(|e| {
                refused(
                    Refusal::OpenFailed,
                    format!("not a signed job manifest: {e}"),
                )
            })?;
        let m = &signed.manifest;
        if m.job_id != job.job_id.to_string() {
            return Err(refused(
                Refusal::NotForThisAgent,
                format!("the manifest is for job {}, not {}", m.job_id, job.job_id),
            ));
        }
        if m.blob_sha256.to_hex() != job.blob_sha256.as_str() {
            return Err(refused(
                Refusal::CiphertextMismatch,
                "the manifest signs another payload than the one offered",
            ));
        }
        if let JobTarget::Printer { printer, .. } = &m.target
            && printer != &job.printer
        {
            return Err(refused(
                Refusal::NotForThisAgent,
                format!(
                    "the job was signed for printer {printer:?}, not {:?}",
                    job.printer
                ),
            ));
        }
        let now = crate::journal::now_ms() / 1000;
        let ciphertext = File::open(sealed).map_err(OpenError::Io)?;
        let mut verifier = JobVerifier::new(&self.trusted, &self.keys, MemorySeenJobs::default())
            .with_clock_skew(self.skew);
        verifier
            .open(&signed, now, ciphertext, out)
            .map_err(|r| refused(refusal_of(&r), r.to_string()))?;
        Ok(OpenedJob::default())
    }
}
