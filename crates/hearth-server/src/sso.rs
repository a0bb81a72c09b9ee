//! Single sign-on through OpenID Connect providers: the authorization code flow with PKCE, a
//! nonce and a `state` bound to the browser, the ID token checked by `openidconnect` (issuer,
//! audience, expiry, signature against the provider's published keys). Login only: what comes
//! back names an account, never a key.
//!
//! The provider's discovery document (endpoints and signing keys) is fetched at first use and
//! kept an hour; an ID token whose signature does not check out against the kept keys is checked
//! once more against freshly fetched ones, so a provider rotating its keys is followed at once.

use crate::config::OidcProvider;
use openidconnect::core::{
    CoreAuthPrompt, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, IdToken, IdTokenClaims, IssuerUrl, JsonWebTokenType, LogoutRequest,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a provider's discovery document and keys are kept.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// A token whose signature does not check out fetches the provider's keys again, at most this
/// often: anyone may post a logout token, and a flood of forged ones must not become a flood of
/// requests to the provider.
const REFETCH_AFTER: Duration = Duration::from_secs(30);
/// The `events` member that makes a JWT a logout token (OpenID Connect Back-Channel Logout 1.0,
/// section 2.4).
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How far a provider's clock may be from this server's: a logout token's `iat` may be this far
/// ahead, and a logout ends what was opened up to this long after its `iat`.
pub const CLOCK_SKEW_MS: i64 = 60_000;
/// Every request to a provider gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to a provider, in words a member can act on.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("{provider} could not be reached or answered wrongly: {detail}")]
    Provider { provider: String, detail: String },
    #[error("{provider} vouched for nobody: {detail}")]
    Rejected { provider: String, detail: String },
    #[error("provider {provider:?}: {path}: {source}")]
    File {
        provider: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("provider {provider:?}: {detail}")]
    Config { provider: String, detail: String },
}

/// The configured providers.
#[derive(Debug, Default)]
pub struct Providers {
    list: Vec<Arc<Provider>>,
}

impl Providers {
    /// The providers of `[[auth.oidc]]`; their secret and CA files are read now, so a missing one
    /// stops the start rather than the first login.
    pub fn new(configured: &[OidcProvider]) -> Result<Self, SsoError> {
        let list = configured
            .iter()
            .map(|c| {
                let read = |path: &std::path::PathBuf| {
                    std::fs::read(path).map_err(|source| SsoError::File {
                        provider: c.id.clone(),
                        path: path.clone(),
                        source,
                    })
                };
                let secret = match &c.client_secret_file {
                    Some(path) => Some(ClientSecret::new(
                        String::from_utf8_lossy(&read(path)?).trim().to_owned(),
                    )),
                    None => None,
                };
                let ca = c.ca_file.as_ref().map(read).transpose()?;
                // No redirects (a provider's answer must not send the server anywhere), a timeout,
                // the system's roots plus the provider's CA file.
                let http = crate::notify::guard::client(true, TIMEOUT, ca.as_deref()).map_err(
                    |detail| SsoError::Config {
                        provider: c.id.clone(),
                        detail,
                    },
                )?;
                Ok(Arc::new(Provider {
                    config: c.clone(),
                    secret,
                    http,
                    metadata: Mutex::new(None),
                }))
            })
            .collect::<Result<_, SsoError>>()?;
        Ok(Self { list })
    }

    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.list.iter().find(|p| p.config.id == id).cloned()
    }

    pub fn all(&self) -> impl Iterator<Item = &Provider> {
        self.list.iter().map(|p| &**p)
    }
}

/// One provider and what the server keeps of it.
pub struct Provider {
    pub config: OidcProvider,
    secret: Option<ClientSecret>,
    http: reqwest::Client,
    metadata: Mutex<Option<(ProviderMetadataWithLogout, Instant)>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.config.id)
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// A login about to be sent to the provider: where to send the browser, and what to keep until
/// it comes back.
pub struct Started {
    pub url: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The claims read besides the standard ones: the provider's session (`sid`, which a provider
/// with back-channel logout puts in its ID tokens and logout tokens) and a logout token's
/// `events`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct SessionClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<serde_json::Map<String, serde_json::Value>>,
}

impl AdditionalClaims for SessionClaims {}

/// An ID token, or a logout token (a JWT of the same shape), with [`SessionClaims`].
type SessionIdToken = IdToken<
    SessionClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// What a provider's logout token asks: end what its session `sid`, or everything of its account
/// `subject`, opened here up to `issued_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutNotice {
    pub subject: String,
    pub sid: Option<String>,
    pub issued_at_ms: i64,
}

/// Whom the provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    /// The provider's `sub`: stable, never reassigned.
    pub subject: String,
    /// The provider's session the login happened in (`sid`), when it said.
    pub sid: Option<String>,
    /// The ID token it vouched with, as the provider signed it (sent back as `id_token_hint`).
    pub id_token: Option<String>,
    /// The claim naming the Hearth account (`login_claim`), when the provider gave it (an e-mail
    /// address only when the provider says it verified it).
    pub login: Option<String>,
    /// What to show the member of this identity: the login claim, else the e-mail, else the name.
    pub shown: String,
}

impl Provider {
    fn fail(&self, detail: impl std::fmt::Display) -> SsoError {
        SsoError::Provider {
            provider: self.config.label().to_owned(),
            detail: detail.to_string(),
        }
    }

    fn rejected(&self, detail: impl std::fmt::Display) -> SsoError {
        SsoError::Rejected {
            provider: self.config.label().to_owned(),
            detail: detail.to_string(),
        }
    }

    /// The discovery document, fetched again when older than an hour or when `fresh` (unless
    /// fetched in the last [`REFETCH_AFTER`]).
    async fn metadata(&self, fresh: bool) -> Result<ProviderMetadataWithLogout, SsoError> {
        let mut kept = self.metadata.lock().await;
        if let Some((m, at)) = kept.as_ref()
            && at.elapsed() < if fresh { REFETCH_AFTER } else { METADATA_TTL }
        {
            return Ok(m.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| self.fail(e))?;
        let m = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| self.fail(crate::error::ErrorChain(&e)))?;
        *kept = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    async fn client(
        &self,
        fresh: bool,
        redirect_uri: Option<&str>,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        SsoError,
    > {
        let m = self.metadata(fresh).await?;
        let client = CoreClient::from_provider_metadata(
            m,
            ClientId::new(self.config.client_id.clone()),
            self.secret.clone(),
        );
        Ok(match redirect_uri {
            Some(uri) => {
                client.set_redirect_uri(RedirectUrl::new(uri.to_owned()).map_err(|e| self.fail(e))?)
            }
            None => client,
        })
    }

    /// Where to send the browser to log in, with `state` (which the browser also keeps).
    pub async fn start(&self, redirect_uri: &str, state: &str) -> Result<Started, SsoError> {
        let client = self.client(false, Some(redirect_uri)).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let mut req = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state),
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in &self.config.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        match self.config.prompt.as_str() {
            "login" => req = req.add_prompt(CoreAuthPrompt::Login),
            "select_account" => req = req.add_prompt(CoreAuthPrompt::SelectAccount),
            _ => {}
        }
        let (url, _, nonce) = req.url();
        Ok(Started {
            url: url.to_string(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Trades the provider's code for an ID token, checks it, and says whom it names.
    pub async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<Vouched, SsoError> {
        let client = self.client(false, Some(redirect_uri)).await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| self.fail(e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| self.rejected(crate::error::ErrorChain(&e)))?;
        // Read again with the session claims (`sid`) the crate's core type leaves out.
        let raw = token
            .id_token()
            .ok_or_else(|| self.fail("its token answer holds no ID token"))?
            .to_string();
        let id_token: SessionIdToken = raw
            .parse()
            .map_err(|e| self.fail(format!("its ID token cannot be read: {e}")))?;
        let nonce = Nonce::new(nonce.to_owned());
        let claims = self.checked("ID token", &id_token, &[], &nonce).await?;
        let subject = claims.subject().to_string();
        let sid = claims.additional_claims().sid.clone();
        let from_id_token = self.vouched(
            &subject,
            (sid.clone(), Some(raw.clone())),
            claims.preferred_username().map(|u| u.to_string()),
            claims.email().map(|e| e.to_string()),
            claims.email_verified(),
            claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
        );
        if from_id_token.login.is_some() {
            return Ok(from_id_token);
        }
        // Some providers keep the profile out of the ID token: ask their userinfo endpoint.
        let Some(info) = client
            .user_info(token.access_token().clone(), Some(claims.subject().clone()))
            .ok()
        else {
            return Ok(from_id_token);
        };
        let info: UserInfoClaims<EmptyAdditionalClaims, CoreGenderClaim> = info
            .request_async(&self.http)
            .await
            .map_err(|e| self.fail(crate::error::ErrorChain(&e)))?;
        Ok(self.vouched(
            &subject,
            (sid, Some(raw)),
            info.preferred_username().map(|u| u.to_string()),
            info.email().map(|e| e.to_string()),
            info.email_verified(),
            info.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
        ))
    }

    /// `token`'s claims once its signature (against the provider's keys, fetched again once if
    /// they do not check out: a key published since), issuer, audience and expiry check out, its
    /// `typ` is absent, `JWT` or one of `types`, and `nonce` accepts its nonce; else the refusal
    /// of this `what`.
    async fn checked(
        &self,
        what: &str,
        token: &SessionIdToken,
        types: &[&str],
        nonce: impl openidconnect::NonceVerifier + Copy,
    ) -> Result<IdTokenClaims<SessionClaims, CoreGenderClaim>, SsoError> {
        let jose_types = ["JWT"]
            .iter()
            .chain(types)
            .filter_map(|t| JsonWebTokenType::new((*t).to_owned()).normalize().ok())
            .collect::<Vec<_>>();
        let mut first = None;
        for fresh in [false, true] {
            let client = self.client(fresh, None).await?;
            let verifier = client
                .id_token_verifier()
                .set_allowed_jose_types(jose_types.clone());
            match token.claims(&verifier, nonce) {
                Ok(c) => return Ok(c.clone()),
                Err(e) => {
                    first.get_or_insert_with(|| crate::error::ErrorChain(&e).to_string());
                }
            }
        }
        Err(self.rejected(format!(
            "its {what} does not check out: {}",
            first.unwrap_or_default()
        )))
    }

    /// Where to send a browser that logs out of Hearth so it logs out at the provider too (its
    /// RP-Initiated Logout `end_session_endpoint`, with this client's id and `back_to` to come
    /// back to), when the provider publishes one.
    pub async fn end_session_url(
        &self,
        back_to: &str,
        id_token: Option<&str>,
    ) -> Result<Option<String>, SsoError> {
        let m = self.metadata(false).await?;
        let Some(end) = m.additional_metadata().end_session_endpoint.clone() else {
            return Ok(None);
        };
        let back = PostLogoutRedirectUrl::new(back_to.to_owned()).map_err(|e| self.fail(e))?;
        let mut request = LogoutRequest::from(end)
            .set_client_id(ClientId::new(self.config.client_id.clone()))
            .set_post_logout_redirect_uri(back);
        if let Some(hint) = id_token.and_then(|t| t.parse::<SessionIdToken>().ok()) {
            request = request.set_id_token_hint(&hint);
        }
        Ok(Some(request.http_get_url().to_string()))
    }

    /// Checks a logout token this provider posted to the back-channel logout address (OpenID
    /// Connect Back-Channel Logout 1.0, section 2.6): a JWT signed by the provider's keys, issued
    /// by it for this client (`iss`, `aud`), not expired nor issued in the future, typed
    /// `logout+jwt` or untyped, with the logout event and no nonce (so no ID token passes as one),
    /// naming an account (`sub`; a `sid` narrows it to one of the provider's sessions).
    pub async fn logout_token(&self, jwt: &str) -> Result<LogoutNotice, SsoError> {
        let token: SessionIdToken = jwt
            .parse()
            .map_err(|e| self.rejected(format!("the logout token cannot be read: {e}")))?;
        let no_nonce = |n: Option<&Nonce>| match n {
            None => Ok(()),
            Some(_) => Err("a logout token carries no nonce".to_owned()),
        };
        let claims = self
            .checked("logout token", &token, &["logout+jwt"], no_nonce)
            .await?;
        let extra = claims.additional_claims();
        if !extra
            .events
            .as_ref()
            .is_some_and(|e| e.get(LOGOUT_EVENT).is_some_and(|v| v.is_object()))
        {
            return Err(self.rejected(format!("the logout token has no {LOGOUT_EVENT} event")));
        }
        let issued_at_ms = claims.issue_time().timestamp_millis();
        if issued_at_ms > hearth_proto::time_fmt::now_ms() + CLOCK_SKEW_MS {
            return Err(self.rejected("the logout token is issued in the future"));
        }
        Ok(LogoutNotice {
            subject: claims.subject().to_string(),
            sid: extra.sid.clone().filter(|s| !s.is_empty()),
            issued_at_ms,
        })
    }

    fn vouched(
        &self,
        subject: &str,
        (sid, id_token): (Option<String>, Option<String>),
        username: Option<String>,
        email: Option<String>,
        email_verified: Option<bool>,
        name: Option<String>,
    ) -> Vouched {
        let verified_email = email.clone().filter(|_| email_verified == Some(true));
        let login = match self.config.login_claim.as_str() {
            "email" => verified_email,
            _ => username.clone(),
        };
        let shown = login
            .clone()
            .or(username)
            .or(email)
            .or(name)
            .unwrap_or_else(|| subject.to_owned());
        Vouched {
            subject: subject.to_owned(),
            sid,
            id_token,
            login,
            shown,
        }
    }
}
