//! The agent-side check of a print job before anything is printed.
//!
//! [`JobVerifier::open`] accepts a job only if, in this order: the suite is known; it is for this
//! organisation; its signer is a *current* member device of the verified chain; the signature is
//! valid; this agent is a target; the clock (passed in, never read here) is inside
//! `not_before..=not_after` (with a small allowance for skew); the id was never seen; the spooled
//! ciphertext has the signed SHA-256; and only then is it opened. Each refusal is its own
//! [`JobRefusal`] variant with a stable [`JobRefusal::code`] for the audit log.
//!
//! Single use is per agent. A pool job is sealed to every agent of the pool, so each agent's
//! [`SeenJobs`] stops replays to it, but a lying server could still hand the same pool job to two
//! different agents of that pool, each of which accepts it once. Target a printer (one agent) when
//! that matters.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};

use crate::chain::TrustedState;
use crate::encoding::{Sha256Digest, Suite, UnsupportedSuite};
use crate::keys::{DeviceKeys, SigningPublic};
use crate::manifest::{JobManifest, JobTarget, SignedJobManifest};
use crate::seal::{OpenError, OpenSummary, hash_ciphertext, open_file};

/// The agent's record of job ids already accepted. The agent backs it with disk, so a restart
/// does not re-open the door to replays.
pub trait SeenJobs {
    /// Whether `job_id` was already accepted.
    fn contains(&self, job_id: &str) -> Result<bool, SeenJobsError>;
    /// Records `job_id` durably and returns `true`, or returns `false` if it was already there.
    /// `not_after` lets the store forget ids once a replay would be refused as expired anyway.
    fn insert(&mut self, job_id: &str, not_after: i64) -> Result<bool, SeenJobsError>;
}

/// The seen-jobs store failed.
#[derive(Debug, thiserror::Error)]
#[error("the seen-jobs store failed")]
pub struct SeenJobsError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// An in-memory [`SeenJobs`] (tests, or an agent that keeps no disk).
#[derive(Debug, Default, Clone)]
pub struct MemorySeenJobs {
    ids: HashMap<String, i64>,
}

impl MemorySeenJobs {
    /// Forgets ids whose job expired before `now - skew`.
    pub fn prune(&mut self, now: i64, skew: i64) {
        self.ids.retain(|_, not_after| *not_after + skew >= now);
    }
}

impl SeenJobs for MemorySeenJobs {
    fn contains(&self, job_id: &str) -> Result<bool, SeenJobsError> {
        Ok(self.ids.contains_key(job_id))
    }
    fn insert(&mut self, job_id: &str, not_after: i64) -> Result<bool, SeenJobsError> {
        Ok(self.ids.insert(job_id.to_owned(), not_after).is_none())
    }
}

/// Why an agent refused a job. Report the [`code`](JobRefusal::code) and message to the server;
/// the refusal is audited.
#[derive(Debug, thiserror::Error)]
pub enum JobRefusal {
    /// Unknown suite or version.
    #[error("job refused: {0}")]
    UnsupportedSuite(#[from] UnsupportedSuite),
    /// Another organisation's job.
    #[error("job refused: it belongs to another organisation")]
    WrongOrganisation,
    /// The signer was never enrolled (or is an agent, or the server substituted a key).
    #[error("job refused: signer {signer} is not a member device of the organisation")]
    UnknownSigner {
        /// The signer.
        signer: SigningPublic,
    },
    /// The signer was removed from the organisation.
    #[error("job refused: signer {signer} was removed from the organisation")]
    SignerRemoved {
        /// The signer.
        signer: SigningPublic,
    },
    /// The signature does not verify: the manifest was altered.
    #[error("job refused: invalid signature (the job manifest was altered)")]
    BadSignature,
    /// This agent is not among the job's targets.
    #[error("job refused: it is not addressed to this agent")]
    NotForThisAgent,
    /// The job's window has not started.
    #[error("job refused: not valid before {not_before} (now {now})")]
    NotYetValid {
        /// Start of the window.
        not_before: i64,
        /// The clock passed in.
        now: i64,
    },
    /// The job expired.
    #[error("job refused: expired at {not_after} (now {now})")]
    Expired {
        /// End of the window.
        not_after: i64,
        /// The clock passed in.
        now: i64,
    },
    /// The window is empty or absurd.
    #[error("job refused: validity window {not_before}..{not_after} is invalid")]
    BadWindow {
        /// Start.
        not_before: i64,
        /// End.
        not_after: i64,
    },
    /// The job id was already accepted once.
    #[error("job refused: job {job_id} was already accepted once (replay)")]
    Replayed {
        /// The job id.
        job_id: String,
    },
    /// The payload is not the one signed.
    #[error("job refused: payload SHA-256 {actual} does not match the signed {expected}")]
    CiphertextMismatch {
        /// Signed hash.
        expected: Sha256Digest,
        /// Hash of what was served.
        actual: Sha256Digest,
    },
    /// The payload could not be opened (not sealed to this agent, stanza dropped, altered).
    #[error("job refused: the payload could not be opened")]
    Open(#[source] OpenError),
    /// The seen-jobs store failed, so single use cannot be guaranteed.
    #[error("job refused: cannot check single use")]
    SeenStore(#[from] SeenJobsError),
}

impl JobRefusal {
    /// A stable machine-readable code for the audit log and the server.
    pub fn code(&self) -> &'static str {
        match self {
            JobRefusal::UnsupportedSuite(_) => "unsupported_suite",
            JobRefusal::WrongOrganisation => "wrong_organisation",
            JobRefusal::UnknownSigner { .. } => "unknown_signer",
            JobRefusal::SignerRemoved { .. } => "signer_removed",
            JobRefusal::BadSignature => "bad_signature",
            JobRefusal::NotForThisAgent => "not_for_this_agent",
            JobRefusal::NotYetValid { .. } => "not_yet_valid",
            JobRefusal::Expired { .. } => "expired",
            JobRefusal::BadWindow { .. } => "bad_window",
            JobRefusal::Replayed { .. } => "replayed",
            JobRefusal::CiphertextMismatch { .. } => "ciphertext_mismatch",
            JobRefusal::Open(_) => "open_failed",
            JobRefusal::SeenStore(_) => "seen_store_failed",
        }
    }
}

/// A job that passed every check and was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedJob {
    /// The verified manifest.
    pub manifest: JobManifest,
    /// Sizes and hash of what was opened.
    pub summary: OpenSummary,
}

/// Checks and opens print jobs on an agent.
#[derive(Debug)]
pub struct JobVerifier<'a, S: SeenJobs> {
    trusted: &'a TrustedState,
    agent: &'a DeviceKeys,
    seen: S,
    skew: i64,
}

/// Longest validity window accepted (a week), so a leaked job cannot stay valid for years.
pub const MAX_JOB_WINDOW_SECS: i64 = 7 * 24 * 3600;

impl<'a, S: SeenJobs> JobVerifier<'a, S> {
    /// A verifier for `agent`, trusting only `trusted` (a verified chain), recording ids in `seen`.
    /// Allows 120 s of clock skew.
    pub fn new(trusted: &'a TrustedState, agent: &'a DeviceKeys, seen: S) -> Self {
        Self {
            trusted,
            agent,
            seen,
            skew: 120,
        }
    }

    /// Sets the allowed clock skew in seconds.
    pub fn with_clock_skew(mut self, secs: i64) -> Self {
        self.skew = secs.max(0);
        self
    }

    /// The seen-jobs store (for example to prune it).
    pub fn seen_mut(&mut self) -> &mut S {
        &mut self.seen
    }

    /// Every check that needs no payload: suite, organisation, signer, signature, target, window,
    /// and whether the id was seen. Does not record the id.
    pub fn check<'m>(
        &self,
        job: &'m SignedJobManifest,
        now: i64,
    ) -> Result<&'m JobManifest, JobRefusal> {
        let m = &job.manifest;
        Suite::parse(&m.suite, m.version)?;
        if m.org_id != self.trusted.org_id() {
            return Err(JobRefusal::WrongOrganisation);
        }
        if self.trusted.member(&m.signer).is_none() {
            return Err(if self.trusted.is_removed(&m.signer) {
                JobRefusal::SignerRemoved { signer: m.signer }
            } else {
                JobRefusal::UnknownSigner { signer: m.signer }
            });
        }
        if !job.signature_valid() {
            return Err(JobRefusal::BadSignature);
        }
        let me = self.agent.public().signing;
        let Some(entry) = self.trusted.agent(&me) else {
            return Err(JobRefusal::NotForThisAgent);
        };
        // A pool job names its agents; one an admin restricted to another pool takes none of
        // them, whoever signed it.
        let outside_pool = matches!(&m.target, JobTarget::Pool { pool, .. } if !entry.serves(pool));
        if !m.target.agents().contains(&me) || outside_pool {
            return Err(JobRefusal::NotForThisAgent);
        }
        if m.not_after < m.not_before || m.not_after - m.not_before > MAX_JOB_WINDOW_SECS {
            return Err(JobRefusal::BadWindow {
                not_before: m.not_before,
                not_after: m.not_after,
            });
        }
        if now + self.skew < m.not_before {
            return Err(JobRefusal::NotYetValid {
                not_before: m.not_before,
                now,
            });
        }
        if now - self.skew > m.not_after {
            return Err(JobRefusal::Expired {
                not_after: m.not_after,
                now,
            });
        }
        if self.seen.contains(&m.job_id)? {
            return Err(JobRefusal::Replayed {
                job_id: m.job_id.clone(),
            });
        }
        Ok(m)
    }

    /// Runs [`check`](Self::check), checks the spooled ciphertext's hash, records the id as used,
    /// and opens the payload into `plaintext`. If this returns an error, discard what was written.
    pub fn open<R: Read + Seek, W: Write>(
        &mut self,
        job: &SignedJobManifest,
        now: i64,
        mut ciphertext: R,
        plaintext: W,
    ) -> Result<OpenedJob, JobRefusal> {
        let m = self.check(job, now)?;
        ciphertext
            .seek(SeekFrom::Start(0))
            .map_err(|e| JobRefusal::Open(OpenError::Input(e)))?;
        let (actual, _) =
            hash_ciphertext(&mut ciphertext).map_err(|e| JobRefusal::Open(OpenError::Input(e)))?;
        if actual != m.blob_sha256 {
            return Err(JobRefusal::CiphertextMismatch {
                expected: m.blob_sha256,
                actual,
            });
        }
        // Record before opening: from here on the id is spent even if opening fails, so a failure
        // cannot be retried into a second acceptance.
        if !self.seen.insert(&m.job_id, m.not_after)? {
            return Err(JobRefusal::Replayed {
                job_id: m.job_id.clone(),
            });
        }
        ciphertext
            .seek(SeekFrom::Start(0))
            .map_err(|e| JobRefusal::Open(OpenError::Input(e)))?;
        let summary = open_file(&[self.agent], ciphertext, plaintext).map_err(JobRefusal::Open)?;
        if summary.ciphertext_sha256 != m.blob_sha256 {
            return Err(JobRefusal::Open(OpenError::ChangedWhileOpening {
                expected: m.blob_sha256,
                actual: summary.ciphertext_sha256,
            }));
        }
        Ok(OpenedJob {
            manifest: m.clone(),
            summary,
        })
    }
}
