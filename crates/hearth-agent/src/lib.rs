//! The Hearth edge agent: it runs next to the printers, dials out to `hearthd` over a WebSocket, receives
//! signed sealed jobs, verifies and opens them, and drives the printers through `hearth-drivers`.
//!
//! - `agent::run(Setup, shutdown)`: the one event loop (jobs, telemetry, controls), see `agent`.
//! - `conn`: the outbound connection (challenge signed by `AgentIdentity`, heartbeats, jittered
//!   exponential backoff from `backoff`).
//! - `journal::Journal`: every job id ever accepted and how far each unfinished job got, on disk, so a
//!   restart neither loses nor repeats a job and a replayed id is refused.
//! - `spool::Spool`: resumable sealed downloads; plaintext only in 0600 files, only while uploading.
//! - `telemetry`: mapping driver samples to the wire, per-printer coalescing (at most one message per
//!   interval, only on change), and the bounded job-update outbox used while disconnected.
//! - The two seams where `hearth-crypto` plugs in: `identity::AgentIdentity` (signs the connection
//!   challenge; `KeyFileIdentity` is a plain Ed25519 key file meanwhile) and `opener::JobOpener` (verifies
//!   the signed manifest and decrypts the payload; `crypto::CryptoOpener` is the real one, on
//!   `hearth_crypto::JobVerifier`).
//! - `enroll`: `hearth-agent enroll` (key, one-time token, id from the server).
//! - `config::AgentConfig`: the TOML file (`[[printer]]` tables with the driver's keys flattened in).
//! - `suggest`: `hearth-agent config actions`, actions to paste for a printer's firmware macros.

pub mod agent;
pub mod backoff;
pub mod camera;
pub mod config;
pub mod conn;
pub mod crypto;
pub mod enroll;
pub mod frames;
pub mod identity;
pub mod journal;
pub mod opener;
pub mod spool;
pub mod suggest;
pub mod telemetry;
pub mod tls;

pub use agent::{Printer, RunError, Setup, run};
pub use config::AgentConfig;
pub use identity::{AgentIdentity, KeyFileIdentity};
pub use opener::{JobOpener, NoOpener, OpenError, OpenedJob, Refusal, SealSnapshotError};
