//! Legal requests: demands for data from an authority (a court order, a warrant, a subpoena)
//! that the instance's operator records. Each is an entry `legal.request` in the tamper-evident
//! audit log — the instance's chain and, when it concerns an organisation, that organisation's
//! chain, which its admins read and verify — so a request cannot later be left out of the record
//! without breaking a chain that members have pinned. What the server could disclose is only what
//! it may see (DESIGN.md): accounts, sessions, times, job states, the facts members revealed, and
//! ciphertext it cannot open.

use crate::ids::OrgId;
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// The audit action a legal request is recorded as.
pub const ACTION: &str = "legal.request";

/// Longest text of a field, characters.
pub const MAX_TEXT: usize = 2000;

/// `POST /api/v1/system/legal-requests` (instance admins): a request to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewLegalRequest {
    /// The organisation whose data it asks for; none: the instance as a whole.
    #[serde(default)]
    pub org: Option<OrgId>,
    /// Who asks: the court, agency or police force.
    pub authority: String,
    /// Its case, warrant or file number, when it has one.
    #[serde(default)]
    pub reference: Option<String>,
    /// The day it arrived, `YYYY-MM-DD`.
    pub received_on: String,
    /// What it asks for.
    pub requested: String,
    /// What was handed over (`nothing`, `account logins and job times`, ...). A later answer
    /// is recorded as a new entry with the same reference.
    pub disclosed: String,
}

impl NewLegalRequest {
    /// Why the server refuses it, if it does.
    pub fn problem(&self) -> Option<String> {
        let text = |name: &str, v: &str| -> Option<String> {
            if v.trim().is_empty() {
                return Some(format!("{name}: say it (it is what the record is for)"));
            }
            if v.chars().count() > MAX_TEXT {
                return Some(format!("{name}: at most {MAX_TEXT} characters"));
            }
            None
        };
        text("authority", &self.authority)
            .or_else(|| text("requested", &self.requested))
            .or_else(|| text("disclosed", &self.disclosed))
            .or_else(|| self.reference.as_deref().and_then(|r| text("reference", r)))
            .or_else(|| {
                crate::time_fmt::parse_rfc3339(&format!("{}T00:00:00Z", self.received_on))
                    .is_none()
                    .then(|| {
                        format!(
                            "received_on: {:?} is not a day (YYYY-MM-DD)",
                            self.received_on
                        )
                    })
            })
    }
}

/// A recorded legal request, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LegalRequest {
    /// Its audit entry: the chain (`system` or the organisation's id) and position there.
    pub scope: String,
    pub seq: i64,
    /// When it was recorded.
    pub recorded_at: String,
    /// The instance admin who recorded it.
    pub recorded_by: String,
    #[serde(flatten)]
    pub request: NewLegalRequest,
}
