//! Subcommands, one module each.

pub mod agents;
pub mod audit;
pub mod bridge;
pub mod camera;
pub mod files;
pub mod fleet;
pub mod inspect;
pub mod inventory;
pub mod keys;
pub mod legal;
pub mod local;
pub mod login;
pub mod maintenance;
pub mod members;
pub mod mfa;
pub mod notify;
pub mod passkeys;
pub mod sso;
pub mod stats;
pub mod timelapse;
pub mod tokens;
pub mod ui;
pub mod upload;
