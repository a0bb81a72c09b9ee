//! `hearth-agent enroll`: create the agent's key (if needed), present it with a one-time token, and record
//! the id the server assigns. An admin then compares fingerprints and approves the agent.
//!
//! The age recipient jobs are sealed to comes from `hearth-crypto`; until it is linked the caller passes
//! what it has (the binary sends `PLACEHOLDER_AGE_RECIPIENT`, so no job can be sealed to this agent yet).

use std::path::Path;

use hearth_proto::api::{EnrollRequest, EnrollResponse};

use crate::identity::{IdentityError, KeyFileIdentity};

/// Sent as the age recipient until `hearth-crypto` provides the agent's real one.
pub const PLACEHOLDER_AGE_RECIPIENT: &str = "age1placeholderuntilhearthcryptoislinked";

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("cannot reach the server")]
    Http(#[from] reqwest::Error),
    #[error("the server refused the enrollment ({status}): {body}")]
    Refused { status: u16, body: String },
}

/// What enrollment produced.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub response: EnrollResponse,
    /// Base64 Ed25519 public key, and its fingerprint for the admin to compare.
    pub signing_key: String,
    pub fingerprint: String,
}

/// Enrolls the agent whose state lives in `state_dir` with `server` (base URL).
pub async fn enroll(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    name: &str,
    age_recipient: &str,
    state_dir: &Path,
) -> Result<Enrolled, EnrollError> {
    let signing_key = KeyFileIdentity::ensure_key(state_dir)?;
    let request = EnrollRequest {
        token: token.to_owned(),
        name: name.to_owned(),
        signing_key: signing_key.clone(),
        age_recipient: age_recipient.to_owned(),
    };
    let url = format!("{}/api/v1/agents/enroll", server.trim_end_matches('/'));
    let resp = http.post(url).json(&request).send().await?;
    let status = resp.status();
    if !status.is_success() {
        return Err(EnrollError::Refused {
            status: status.as_u16(),
            body: resp.text().await.unwrap_or_default(),
        });
    }
    let response: EnrollResponse = resp.json().await?;
    KeyFileIdentity::save_id(state_dir, response.agent_id)?;
    Ok(Enrolled {
        fingerprint: crate::identity::fingerprint(&signing_key),
        signing_key,
        response,
    })
}
