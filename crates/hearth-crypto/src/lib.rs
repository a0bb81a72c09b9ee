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
//!   [`SignedJobManifest`].
//! - **Agents.** [`JobVerifier`] checks a job (chain, signature, target, expiry, single use via
//!   [`SeenJobs`], ciphertext hash) before opening it, refusing with a typed [`JobRefusal`].
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
    Thumbnail, UploadError, seal_job, seal_upload,
};
pub use seal::{
    __seal_unhashed_for_bench, OpenError, OpenSummary, OpeningKey, SealError, SealSummary,
    hash_ciphertext, open_bytes, open_file, open_verified, seal_bytes, seal_file,
};
pub use wrap::{
    __open_with_passphrase_for_vectors, KdfError, KdfParams, LoginSecret, RewrapError, UnwrapError,
    WrappedKeyBundle, derive_login_secret,
};
