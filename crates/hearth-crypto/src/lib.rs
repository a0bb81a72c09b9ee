//! Hearth's keys, sealing, signatures and manifests. No I/O of its own: everything works on
//! `Read`/`Write` and byte slices, and the clock is always passed in.
//!
//! Main types, by who uses them:
//! - **Keys.** [`DeviceKeys`] (private: Ed25519 signing key + age X25519 identity; not
//!   `Serialize`, redacted `Debug`, wiped on drop) and its public half [`DevicePublic`];
//!   [`Fingerprint`] (12 groups of 5 digits) for comparing keys aloud or by QR;
//!   [`WrappedKeyBundle`] (keys sealed under a passphrase, stored by the server) and
//!   [`derive_login_secret`] (a separate Argon2id derivation sent at login instead of the
//!   passphrase); [`export_identity_file`] for opening one's own files with the stock `age` tool.
//! - **Organisation.** [`OrgChain`] (signed genesis + hash-linked signed links) and
//!   [`OrgChain::verify`] → [`TrustedState`], the only source of public keys to trust;
//!   [`EpochKey`] / [`SealedEpochKey`] for the organisation key each epoch's files are sealed to.
//! - **Sealing.** [`seal_file`] / [`open_file`] / [`open_verified`] stream age v1 files and return
//!   the ciphertext's SHA-256; [`seal_upload`] produces a sealed file, a [`SignedFileManifest`] and
//!   the sealed [`PrivateMetadata`]; [`seal_job`] produces a sealed job and a
//!   [`SignedJobManifest`]; [`seal_snapshot`] seals a camera frame to the current epoch and
//!   signs it with the agent's keys ([`SignedSnapshot::open`] checks and opens it).
//! - **Agents.** [`JobVerifier`] checks a job (chain, signature, target, expiry, single use via
//!   [`SeenJobs`], ciphertext hash) before opening it, refusing with a typed [`JobRefusal`].
//!
//! # Example: an organisation, an upload, a print job
//! ```
//! use std::io::Cursor;
//! use hearth_crypto::*;
//!
//! let now = 1_780_000_000; // the clock is always passed in
//! // The founder's device creates the organisation; clients pin the genesis hash.
//! let ada = DeviceKeys::generate();
//! let (mut chain, epoch) = OrgChain::create(&ada, "ada", "Acme", now);
//! let pinned = chain.genesis_hash();
//! // An agent made its keys on its own machine and printed its fingerprint; the admin compared
//! // it with the one the server shows, then signs the enrollment link.
//! let agent = AgentKeys::generate();
//! let agent_pub = agent.public(); // as the server reports it
//! assert_eq!(agent_pub.fingerprint(), agent.fingerprint());
//! let add = LinkAction::AddAgent { name: "pi".into(), pool: None, agent: agent_pub.clone() };
//! chain.append(&ada, add, now)?;
//! // Everyone trusts keys only through the verified chain.
//! let trusted = chain.verify(&pinned)?;
//! let sealed_epoch = epoch.seal_for_members(&trusted)?; // stored by the server
//!
//! // Upload: file sealed to the current epoch, metadata sealed apart, manifest signed.
//! let mut blob = Vec::new();
//! let meta = PrivateMetadata { name: "part.gcode".into(), ..Default::default() };
//! let upload = seal_upload(&trusted, &ada, "file-1", &b"G28\n"[..], &mut blob, &meta, now)?;
//! let manifest = upload.manifest.verify(&trusted)?;
//! let epoch_key = sealed_epoch.open(&ada, &trusted)?;
//! let mut plain = Vec::new();
//! open_verified(&[&epoch_key], &manifest.blob_sha256, Cursor::new(&blob), &mut plain)?;
//! assert_eq!(plain, b"G28\n");
//!
//! // Print job: sealed to the epoch and the agent, signed; the agent verifies, then opens.
//! let to = JobDestination::Printer { agent: &agent_pub, printer: "mk4" };
//! let mut job_blob = Vec::new();
//! let job = seal_job(&trusted, &ada, "job-1", to, &b"G28\n"[..], &mut job_blob, now, now + 600)?;
//! let mut verifier = JobVerifier::new(&trusted, &agent, MemorySeenJobs::default());
//! let mut gcode = Vec::new();
//! verifier.open(&job, now + 5, Cursor::new(&job_blob), &mut gcode)?;
//! assert_eq!(gcode, b"G28\n");
//! // The same job again is refused, with a stable code for the audit log.
//! let again = verifier.open(&job, now + 6, Cursor::new(&job_blob), &mut Vec::new());
//! assert_eq!(again.err().map(|e| e.code()), Some("replayed"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every manifest carries a suite id and format version ([`Suite`]); an unknown one is a clear
//! error, so new suites (post-quantum hybrid, FIPS-only) can be added without breaking old files.
//! Signatures cover a documented canonical encoding (see the `encoding` module docs): a
//! domain line per kind followed by the struct's compact JSON.

mod chain;
mod encoding;
mod epoch;
mod job;
mod keys;
mod manifest;
mod seal;
mod snapshot;
mod stream;
mod wrap;

pub use chain::{
    Agent, ChainError, Checkpoint, Genesis, Link, LinkAction, Member, OrgChain, SignedGenesis,
    SignedLink, TrustError, TrustedState,
};
pub use encoding::{BadDigest, Sha256Digest, SignatureBytes, Suite, UnsupportedSuite};
pub use epoch::{EpochError, EpochKey, EpochPublic, EpochSealError, SealedEpochKey};
pub use job::{
    JobRefusal, JobVerifier, MAX_JOB_WINDOW_SECS, MemorySeenJobs, OpenedJob, SeenJobs,
    SeenJobsError,
};
pub use keys::{
    AgentKeys, BadFingerprint, DeviceKeys, DevicePublic, Fingerprint, KeyError, Recipient,
    SigningPublic, export_identity_file,
};
pub use manifest::{
    FileManifest, JobDestination, JobManifest, JobTarget, ManifestError, MetadataError,
    PrivateMetadata, SealedMetadata, SealedUpload, SignedFileManifest, SignedJobManifest,
    Thumbnail, UploadError, job_label_id, seal_job, seal_job_label, seal_upload,
};
pub use seal::{
    __seal_unhashed_for_bench, OpenError, OpenSummary, OpeningKey, SealError, SealSummary,
    hash_ciphertext, open_bytes, open_file, open_verified, seal_bytes, seal_file,
};
pub use snapshot::{SignedSnapshot, SnapshotError, SnapshotManifest, seal_snapshot};
pub use wrap::{
    __open_with_passphrase_for_vectors, KdfError, KdfParams, LoginSecret, RewrapError, UnwrapError,
    WrappedKeyBundle, derive_login_secret,
};
