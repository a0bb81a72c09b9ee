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

use crate::opener::{JobOpener, OpenError, OpenedJob, Refusal, SealSnapshotError};

/// [`JobOpener::seal_snapshot`] with these keys and this verified chain.
fn seal_frame(
    trusted: &TrustedState,
    keys: &DeviceKeys,
    printer: &str,
    image: &[u8],
    taken_at: i64,
    job: Option<&str>,
) -> Result<(Vec<u8>, serde_json::Value), SealSnapshotError> {
    let (sealed, signed) =
        hearth_crypto::seal_snapshot(trusted, keys, printer, image, taken_at, job)
            .map_err(|e| SealSnapshotError::Failed(format!("cannot seal the frame: {e}")))?;
    let manifest =
        serde_json::to_value(&signed).map_err(|e| SealSnapshotError::Failed(e.to_string()))?;
    Ok((sealed, manifest))
}

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
    fn seal_snapshot(
        &self,
        printer: &str,
        image: &[u8],
        taken_at: i64,
        job: Option<&str>,
    ) -> Result<(Vec<u8>, serde_json::Value), SealSnapshotError> {
        seal_frame(&self.trusted, &self.keys, printer, image, taken_at, job)
    }

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

/// What the agent remembers about its organisation's chain, in `<state_dir>/trust.json`: the genesis it
/// pinned (given at enrollment with `--genesis`, or the first one it saw) and the last checkpoint, so a
/// server can neither swap the organisation nor roll back a removal.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TrustFile {
    pub genesis: Option<hearth_crypto::Sha256Digest>,
    pub checkpoint: Option<hearth_crypto::Checkpoint>,
}

impl TrustFile {
    pub fn path(state_dir: &Path) -> std::path::PathBuf {
        state_dir.join("trust.json")
    }

    pub fn load(state_dir: &Path) -> std::io::Result<Self> {
        match std::fs::read(Self::path(state_dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Write atomically (temp file, fsync, rename).
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = state_dir.join("trust.json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(tmp, Self::path(state_dir))
    }
}

/// The agent's real opener: it trusts only what the organisation chain, verified against the pinned
/// genesis, says, and refreshes that chain from the server before every job.
pub struct TrustingOpener {
    keys: Arc<DeviceKeys>,
    state_dir: std::path::PathBuf,
    inner: std::sync::Mutex<(TrustFile, Option<TrustedState>)>,
}

impl std::fmt::Debug for TrustingOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustingOpener")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl TrustingOpener {
    pub fn load(state_dir: &Path, keys: Arc<DeviceKeys>) -> std::io::Result<Self> {
        let file = TrustFile::load(state_dir)?;
        Ok(Self {
            keys,
            state_dir: state_dir.to_owned(),
            inner: std::sync::Mutex::new((file, None)),
        })
    }
}

/// Rebuild the chain from the server's numbered links (0 = genesis), refusing gaps.
pub fn chain_from_links(
    mut links: Vec<hearth_proto::api::ChainLink>,
) -> Result<hearth_crypto::OrgChain, String> {
    links.sort_by_key(|l| l.seq);
    let mut it = links.into_iter();
    let first = it.next().ok_or("the organisation has no chain yet")?;
    if first.seq != 0 {
        return Err(format!(
            "the chain starts at {}, not at its genesis",
            first.seq
        ));
    }
    let genesis = serde_json::from_value(first.link).map_err(|e| format!("genesis: {e}"))?;
    let mut out = Vec::new();
    for (i, l) in it.enumerate() {
        if l.seq != i as i64 + 1 {
            return Err(format!("link {} is missing", i + 1));
        }
        out.push(serde_json::from_value(l.link).map_err(|e| format!("link {}: {e}", l.seq))?);
    }
    Ok(hearth_crypto::OrgChain {
        genesis,
        links: out,
    })
}

impl JobOpener for TrustingOpener {
    fn wants_chain(&self) -> bool {
        true
    }

    fn update_chain(&self, links: Vec<hearth_proto::api::ChainLink>) -> Result<(), String> {
        let chain = chain_from_links(links)?;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (file, trusted) = &mut *inner;
        let pinned = match file.genesis {
            Some(g) => g,
            None => {
                let g = chain.genesis_hash();
                tracing::warn!(
                    genesis = %g.to_hex(),
                    "no genesis was pinned at enrollment (--genesis); trusting the first one served"
                );
                g
            }
        };
        let state = match &file.checkpoint {
            Some(seen) => chain.verify_extending(&pinned, seen),
            None => chain.verify(&pinned),
        }
        .map_err(|e| e.to_string())?;
        let updated = TrustFile {
            genesis: Some(pinned),
            checkpoint: Some(state.checkpoint()),
        };
        updated
            .save(&self.state_dir)
            .map_err(|e| format!("cannot record the chain checkpoint: {e}"))?;
        *file = updated;
        *trusted = Some(state);
        Ok(())
    }

    fn seal_snapshot(
        &self,
        printer: &str,
        image: &[u8],
        taken_at: i64,
        job: Option<&str>,
    ) -> Result<(Vec<u8>, serde_json::Value), SealSnapshotError> {
        let trusted = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
            .ok_or(SealSnapshotError::NoChain)?;
        seal_frame(&trusted, &self.keys, printer, image, taken_at, job)
    }

    fn open(&self, job: &AgentJob, sealed: &Path, out: &mut File) -> Result<OpenedJob, OpenError> {
        let trusted = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone();
        let trusted = trusted
            .ok_or_else(|| refused(Refusal::UnknownSigner, "no verified organisation chain yet"))?;
        CryptoOpener::new(trusted, self.keys.clone()).open(job, sealed, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_crypto::{AgentKeys, LinkAction, OrgChain};
    use hearth_proto::api::ChainLink;

    fn served(chain: &OrgChain) -> Vec<ChainLink> {
        std::iter::once(serde_json::to_value(&chain.genesis).unwrap())
            .chain(chain.links.iter().map(|l| serde_json::to_value(l).unwrap()))
            .enumerate()
            .map(|(i, link)| ChainLink {
                seq: i as i64,
                link,
            })
            .collect()
    }

    #[test]
    fn the_pinned_genesis_and_the_last_checkpoint_bind_every_later_chain() {
        let dir = tempfile::tempdir().unwrap();
        let admin = DeviceKeys::generate();
        let agent = Arc::new(AgentKeys::generate());
        let now = 1_780_000_000;
        let (mut chain, _epoch) = OrgChain::create(&admin, "ada", "Acme", now);
        let add = LinkAction::AddAgent {
            name: "pi".into(),
            pool: None,
            agent: agent.public(),
        };
        chain.append(&admin, add, now).unwrap();
        TrustFile {
            genesis: Some(chain.genesis_hash()),
            checkpoint: None,
        }
        .save(dir.path())
        .unwrap();

        let opener = TrustingOpener::load(dir.path(), agent.clone()).unwrap();
        opener.update_chain(served(&chain)).unwrap();
        assert_eq!(
            TrustFile::load(dir.path()).unwrap().checkpoint.unwrap().seq,
            1
        );

        // Another organisation's chain (a server swapping keys) is refused.
        let (other, _) = OrgChain::create(&DeviceKeys::generate(), "eve", "Acme", now);
        assert!(opener.update_chain(served(&other)).is_err());
        // A chain cut back before the agent's approval (a rollback) is refused too, even after a restart.
        let mut rolled = chain.clone();
        rolled.links.clear();
        let reloaded = TrustingOpener::load(dir.path(), agent).unwrap();
        let err = reloaded.update_chain(served(&rolled)).unwrap_err();
        assert!(!err.is_empty());
        // Gaps in the served numbering are refused before any verification.
        let mut gappy = served(&chain);
        gappy[1].seq = 5;
        assert!(chain_from_links(gappy).unwrap_err().contains("missing"));
    }
}
