//! The job journal: every job id this agent ever accepted (`SeenJobs`) and, for unfinished jobs, how far
//! each got. Persisted (`<state_dir>/jobs.json`, written to a temporary file, synced and renamed) at every
//! step, so that after a restart the agent knows which jobs it must finish, which it may have started
//! (and must therefore never start again), and which ids are spent.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use hearth_proto::agent::{AgentJob, JobState};
use hearth_proto::ids::JobId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the agent knows of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: JobId,
    pub printer: String,
    /// SHA-256 over the job as first received (printer, blob hash, manifest): a job id that comes back
    /// with anything else is a replay. `None` for a job adopted from a printer without its message.
    pub fingerprint: Option<String>,
    /// Latest state. `Assigned` means accepted and waiting for its printer (nothing reported yet).
    pub state: JobState,
    /// The job as received, kept until it is finished (a restart needs it to download and open again).
    pub job: Option<AgentJob>,
    /// `start` was (about to be) sent to the printer: from here on the job is never started again, only
    /// observed on the printer.
    pub start_requested: bool,
    /// A member asked to cancel it.
    #[serde(default)]
    pub cancel_requested: bool,
    /// Why it failed or was refused.
    #[serde(default)]
    pub message: Option<String>,
    /// When it reached its final state (Unix milliseconds); finished records are forgotten after
    /// `KEEP_FINISHED_MS`, when a replay would be refused as expired by the job verifier anyway.
    #[serde(default)]
    pub finished_at_ms: Option<i64>,
    /// The job's file is still to be deleted from its printer (its job ended and the deletion has
    /// not been confirmed yet): retried until it is, also after a restart.
    #[serde(default)]
    pub remove_pending: bool,
    /// The furthest the printer got with the job (0 to 1) as last observed: sent with its final
    /// state, for the share of filament a stopped job used. Saved with the record's other changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f32>,
    /// The printer slot (`A1`, `Ext`) that fed each of the job's filaments, in the slicer's order,
    /// as the driver chose them when it started the job: sent with its final state, so the server
    /// takes each filament from the inventory spool in its slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<String>,
}

/// How long a finished job's id is remembered: longer than the longest job validity window
/// (`hearth_crypto::MAX_JOB_WINDOW_SECS`, a week) plus clock skew.
pub const KEEP_FINISHED_MS: i64 = 8 * 24 * 3600 * 1000;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How a job message relates to what the journal holds.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Never seen: accept it.
    New,
    /// The same job again (the server re-sends unfinished jobs on every connection).
    Known,
    /// The id was seen with different contents: refuse.
    Replayed,
}

/// Fingerprint of a job message (see `JobRecord::fingerprint`).
pub fn fingerprint(job: &AgentJob) -> String {
    let mut h = Sha256::new();
    h.update(job.printer.as_bytes());
    h.update([0]);
    h.update(job.blob_sha256.as_str().as_bytes());
    h.update([0]);
    // serde_json's map is sorted by key, so this is canonical for a given manifest value.
    h.update(job.manifest.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The persistent set of jobs.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    jobs: BTreeMap<JobId, JobRecord>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    jobs: Vec<JobRecord>,
}

impl Journal {
    /// Opens `<state_dir>/jobs.json` (empty when absent).
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let path = state_dir.join("jobs.json");
        let jobs = match std::fs::read(&path) {
            Ok(bytes) => {
                let d: OnDisk =
                    serde_json::from_slice(&bytes).map_err(|source| JournalError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                let horizon = now_ms() - KEEP_FINISHED_MS;
                d.jobs
                    .into_iter()
                    .filter(|r| r.finished_at_ms.is_none_or(|t| t >= horizon))
                    .map(|r| (r.job_id, r))
                    .collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(JournalError::Io { path, source }),
        };
        Ok(Self { path, jobs })
    }

    pub fn admit(&self, job: &AgentJob) -> Admission {
        match self.jobs.get(&job.job_id) {
            None => Admission::New,
            Some(r) if r.fingerprint.is_none() || r.fingerprint == Some(fingerprint(job)) => {
                Admission::Known
            }
            Some(_) => Admission::Replayed,
        }
    }

    pub fn get(&self, id: &JobId) -> Option<&JobRecord> {
        self.jobs.get(id)
    }

    pub fn get_mut(&mut self, id: &JobId) -> Option<&mut JobRecord> {
        self.jobs.get_mut(id)
    }

    pub fn insert(&mut self, record: JobRecord) {
        self.jobs.insert(record.job_id, record);
    }

    /// Unfinished jobs, oldest id first (ids are time-ordered UUIDv7).
    pub fn unfinished(&self) -> impl Iterator<Item = &JobRecord> {
        self.jobs.values().filter(|r| !r.state.is_final())
    }

    /// Finished jobs whose file is still on their printer.
    pub fn removals(&self) -> impl Iterator<Item = &JobRecord> {
        self.jobs.values().filter(|r| r.remove_pending)
    }

    /// Writes the journal durably (temporary file, fsync, rename).
    pub fn save(&self) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let disk = OnDisk {
            version: 1,
            jobs: self.jobs.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec(&disk).map_err(|source| JournalError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            // Make the rename itself durable.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hearth_proto::ids::BlobHash;

    fn job(manifest: serde_json::Value) -> AgentJob {
        AgentJob {
            job_id: JobId::new(),
            printer: "p".into(),
            blob_sha256: BlobHash::of(b"x"),
            blob_size: 1,
            manifest,
        }
    }

    #[test]
    fn seen_jobs_survive_a_restart_and_a_changed_job_is_a_replay() {
        let dir = tempfile::tempdir().unwrap();
        let j = job(serde_json::json!({"b": 1, "a": [1, 2]}));
        let mut journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.admit(&j), Admission::New);
        journal.insert(JobRecord {
            job_id: j.job_id,
            printer: "p".into(),
            fingerprint: Some(fingerprint(&j)),
            state: JobState::Completed,
            job: None,
            start_requested: true,
            cancel_requested: false,
            message: None,
            finished_at_ms: Some(now_ms()),
            remove_pending: false,
            progress: None,
            slots: Vec::new(),
        });
        let old = job(serde_json::json!({}));
        journal.insert(JobRecord {
            job_id: old.job_id,
            printer: "p".into(),
            fingerprint: Some(fingerprint(&old)),
            state: JobState::Completed,
            job: None,
            start_requested: true,
            cancel_requested: false,
            message: None,
            finished_at_ms: Some(now_ms() - KEEP_FINISHED_MS - 1),
            remove_pending: false,
            progress: None,
            slots: Vec::new(),
        });
        journal.save().unwrap();

        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.admit(&j), Admission::Known);
        assert!(
            journal.get(&old.job_id).is_none(),
            "long finished: forgotten"
        );
        let mut other = j.clone();
        other.manifest = serde_json::json!({"b": 2});
        assert_eq!(journal.admit(&other), Admission::Replayed);
        let mut moved = j.clone();
        moved.printer = "q".into();
        assert_eq!(journal.admit(&moved), Admission::Replayed);
        assert_eq!(journal.unfinished().count(), 0);
    }
}
