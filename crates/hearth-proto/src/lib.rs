//! Hearth's wire format: the types that cross the network between `hearthd`, the CLI, the agent and the
//! browser. Nothing here does I/O; it is serde types plus two pure functions that must agree on both sides
//! of the wire:
//!
//! - [`audit::entry_hash`]: the hash chain of the tamper-evident audit log, recomputed by clients.
//! - [`fit::misfits`]: whether a job fits a printer, judged by the CLI before it sends a job and by
//!   the server when it dispatches a pool job.
//! - [`inventory`]: the material library and spool inventory, and what a job that ended used.
//! - [`notify`]: notification channels, the events they can follow and the notification itself.
//! - [`ids`]: typed ids ([`ids::OrgId`], [`ids::UserId`], ...) so an org id is never passed where a user id
//!   is expected.
//!
//! Changing a type here is a protocol decision: the API is versioned under `/api/v1` and
//! [`PROTOCOL_VERSION`] names the revision.

pub mod agent;
pub mod api;
pub mod audit;
pub mod fit;
pub mod ids;
pub mod inventory;
pub mod legal;
pub mod maintenance;
pub mod notify;
pub mod role;
pub mod time_fmt;

pub use role::Role;

/// Revision of the `/api/v1` wire format, reported by `/api/v1/info`.
pub const PROTOCOL_VERSION: u32 = 1;

/// tus protocol version spoken by the resumable upload endpoints (<https://tus.io/protocols/resumable-upload>).
pub const TUS_VERSION: &str = "1.0.0";
