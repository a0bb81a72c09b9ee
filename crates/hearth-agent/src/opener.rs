//! Opening a job: `JobOpener` verifies the signed manifest and decrypts the sealed payload.
//!
//! The real opener comes from `hearth-crypto` (`JobVerifier`: signature chains to an enrolled member,
//! expiry, the manifest names this job id and blob, age decryption with the agent's identity). The agent
//! only calls the trait, so it never sees a key and cannot get the plaintext file mode wrong: it creates
//! the 0600 output file itself and hands the opener a writer.

use std::fs::File;
use std::path::Path;

use hearth_drivers::PrintHints;
use hearth_proto::agent::AgentJob;

/// Why a job was refused. Reported to the server as `state: refused` with this in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The manifest's signature does not verify.
    BadSignature,
    /// The signer is not a member device the organisation's admins enrolled.
    UntrustedSigner,
    /// The manifest has expired.
    Expired,
    /// The job id was accepted before (with different contents), or the manifest is single-use and used.
    Replayed,
    /// The payload does not hash to what the manifest or the job says.
    HashMismatch,
    /// The manifest is for another agent, printer or job id.
    WrongTarget,
    /// The manifest or the payload cannot be parsed or decrypted.
    Malformed,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::UntrustedSigner => "untrusted_signer",
            Self::Expired => "expired",
            Self::Replayed => "replayed",
            Self::HashMismatch => "hash_mismatch",
            Self::WrongTarget => "wrong_target",
            Self::Malformed => "malformed",
        }
    }
}

/// What opening a job can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The job must not be printed (final; reported as refused).
    #[error("refused ({}): {detail}", .reason.code())]
    Refused { reason: Refusal, detail: String },
    /// Something local failed (disk full...): the job fails, it is not refused.
    #[error("cannot open the job")]
    Io(#[source] std::io::Error),
}

/// What the opener learned from a valid manifest that helps drive the printer.
#[derive(Debug, Clone, Default)]
pub struct OpenedJob {
    pub hints: PrintHints,
}

/// Verifies and opens jobs. Called on a blocking thread.
pub trait JobOpener: Send + Sync + std::fmt::Debug + 'static {
    /// Verifies `job.manifest` (signature, signer, expiry, that it names `job.job_id` and
    /// `job.blob_sha256`), decrypts the sealed file at `sealed`, and writes the plaintext to `out` (already
    /// created with mode 0600 in the spool). Must not write anything to `out` before the manifest verifies.
    fn open(&self, job: &AgentJob, sealed: &Path, out: &mut File) -> Result<OpenedJob, OpenError>;
}

/// Refuses every job: what the binary uses until `hearth-crypto` provides the real opener.
#[derive(Debug, Default)]
pub struct NoOpener;

impl JobOpener for NoOpener {
    fn open(&self, _: &AgentJob, _: &Path, _: &mut File) -> Result<OpenedJob, OpenError> {
        Err(OpenError::Refused {
            reason: Refusal::Malformed,
            detail: "this agent was built without a job verifier (hearth-crypto)".into(),
        })
    }
}
