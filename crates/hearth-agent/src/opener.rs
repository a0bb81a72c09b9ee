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

/// Why a job was refused. Reported to the server as `state: refused` with `code: detail` as the message.
/// The variants and codes are those of `hearth_crypto::JobRefusal`, so the real opener maps 1:1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown manifest suite or version.
    UnsupportedSuite,
    /// Another organisation's job.
    WrongOrganisation,
    /// The signer is not a member device the organisation's admins enrolled.
    UnknownSigner,
    /// The signer was removed from the organisation.
    SignerRemoved,
    /// The manifest's signature does not verify.
    BadSignature,
    /// The manifest is for another agent (or names another job id than the message).
    NotForThisAgent,
    NotYetValid,
    Expired,
    /// The validity window is empty or too long.
    BadWindow,
    /// The job id was accepted before with different contents.
    Replayed,
    /// The payload does not hash to the signed SHA-256 (or to the job's `blob_sha256`).
    CiphertextMismatch,
    /// The payload cannot be opened (not sealed to this agent, altered).
    OpenFailed,
    /// Single use cannot be guaranteed because the seen-jobs store failed.
    SeenStoreFailed,
}

impl Refusal {
    /// Stable machine-readable code (the same strings as `hearth_crypto::JobRefusal::code`).
    pub fn code(self) -> &'static str {
        match self {
            Self::UnsupportedSuite => "unsupported_suite",
            Self::WrongOrganisation => "wrong_organisation",
            Self::UnknownSigner => "unknown_signer",
            Self::SignerRemoved => "signer_removed",
            Self::BadSignature => "bad_signature",
            Self::NotForThisAgent => "not_for_this_agent",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::BadWindow => "bad_window",
            Self::Replayed => "replayed",
            Self::CiphertextMismatch => "ciphertext_mismatch",
            Self::OpenFailed => "open_failed",
            Self::SeenStoreFailed => "seen_store_failed",
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
///
/// Single use is enforced by the agent before `open` is called: its `Journal` admits a job id once
/// (a re-sent identical job is the same job, never started twice; the same id with other contents is
/// refused as replayed). `open` may therefore be called **again for the same job** (after an upload
/// failed because the printer was away, or after a restart before the print started). An adapter around
/// `hearth_crypto::JobVerifier` must not refuse that second call as a replay: give the verifier a
/// `SeenJobs` that is fresh per call, or one that accepts an id already recorded for this same job.
pub trait JobOpener: Send + Sync + std::fmt::Debug + 'static {
    /// Verifies `job.manifest` (signature, signer, expiry, that it names `job.job_id` and
    /// `job.blob_sha256`), decrypts the sealed file at `sealed`, and writes the plaintext to `out` (already
    /// created with mode 0600 in the spool). Must not write anything to `out` before the manifest verifies.
    fn open(&self, job: &AgentJob, sealed: &Path, out: &mut File) -> Result<OpenedJob, OpenError>;

    /// Whether the opener needs the organisation's chain (fetched from the server before each open, so
    /// a job signed by a member added a minute ago verifies).
    fn wants_chain(&self) -> bool {
        false
    }

    /// The chain as the server serves it. An opener that cannot verify it against the genesis it pinned
    /// returns why; the job is then refused, never opened on trust.
    fn update_chain(&self, _links: Vec<hearth_proto::api::ChainLink>) -> Result<(), String> {
        Ok(())
    }

    /// Seals a camera frame of `printer`, taken at `taken_at` (Unix seconds), to the organisation's
    /// current epoch and signs it with the agent's keys (`job`: as a frame of that job's
    /// timelapse): the sealed bytes and the signed manifest (`hearth_crypto::SignedSnapshot`) as
    /// JSON.
    fn seal_snapshot(
        &self,
        _printer: &str,
        _image: &[u8],
        _taken_at: i64,
        _job: Option<&str>,
    ) -> Result<(Vec<u8>, serde_json::Value), SealSnapshotError> {
        Err(SealSnapshotError::Failed(
            "this agent cannot seal camera frames (no keys)".into(),
        ))
    }
}

/// Why a camera frame could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealSnapshotError {
    /// No verified organisation chain yet: fetch it, then seal again.
    #[error("no verified organisation chain yet")]
    NoChain,
    #[error("{0}")]
    Failed(String),
}

/// Refuses every job: what the binary uses until `hearth-crypto` provides the real opener.
#[derive(Debug, Default)]
pub struct NoOpener;

impl JobOpener for NoOpener {
    fn open(&self, _: &AgentJob, _: &Path, _: &mut File) -> Result<OpenedJob, OpenError> {
        Err(OpenError::Refused {
            reason: Refusal::OpenFailed,
            detail: "this agent was built without a job verifier (hearth-crypto)".into(),
        })
    }
}
