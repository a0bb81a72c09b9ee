//! `hearth-agent enroll`: create the agent's keys (if needed), present their public half with a one-time
//! token, and record the id the server assigns. An admin then compares the fingerprint the agent prints
//! with the one Hearth shows, and approves the agent.

use std::path::Path;

use hearth_proto::api::{EnrollRequest, EnrollResponse};

use crate::identity::{IdentityError, KeyFileIdentity, signing_key_base64};

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
    /// Base64 Ed25519 public key as sent.
    pub signing_key: String,
    /// `hearth_crypto::Fingerprint` of the agent's public keys, for the admin to compare.
    pub fingerprint: String,
}

/// Enrolls the agent whose state lives in `state_dir` with `server` (base URL).
pub async fn enroll(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    name: &str,
    state_dir: &Path,
) -> Result<Enrolled, EnrollError> {
    let public = KeyFileIdentity::ensure_key(state_dir)?;
    let signing_key = signing_key_base64(&public);
    let request = EnrollRequest {
        token: token.to_owned(),
        name: name.to_owned(),
        signing_key: signing_key.clone(),
        age_recipient: public.recipient.to_string(),
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
        fingerprint: public.fingerprint().to_string(),
        signing_key,
        response,
    })
}
