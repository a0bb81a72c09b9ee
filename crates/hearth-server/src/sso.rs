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
    CoreAuthPrompt, CoreClient, CoreGenderClaim, CoreIdTokenClaims, CoreProviderMetadata,
    CoreResponseType,
};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a provider's discovery document and keys are kept.
const METADATA_TTL: Duration = Duration::from_secs(3600);
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
    metadata: Mutex<Option<(CoreProviderMetadata, Instant)>>,
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

/// Whom the provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    /// The provider's `sub`: stable, never reassigned.
    pub subject: String,
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

    /// The discovery document, fetched again when older than an hour or when `fresh`.
    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, SsoError> {
        let mut kept = self.metadata.lock().await;
        if let Some((m, at)) = kept.as_ref()
            && !fresh
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| self.fail(e))?;
        let m = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| self.fail(crate::error::ErrorChain(&e)))?;
        *kept = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    async fn client(
        &self,
        fresh: bool,
        redirect_uri: &str,
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
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| self.fail(e))?;
        Ok(CoreClient::from_provider_metadata(
            m,
            ClientId::new(self.config.client_id.clone()),
            self.secret.clone(),
        )
        .set_redirect_uri(redirect))
    }

    /// Where to send the browser to log in, with `state` (which the browser also keeps).
    pub async fn start(&self, redirect_uri: &str, state: &str) -> Result<Started, SsoError> {
        let client = self.client(false, redirect_uri).await?;
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
        let client = self.client(false, redirect_uri).await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| self.fail(e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| self.rejected(crate::error::ErrorChain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| self.fail("its token answer holds no ID token"))?;
        let nonce = Nonce::new(nonce.to_owned());
        let claims: CoreIdTokenClaims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            // Perhaps signed with a key published since: once more with fresh keys.
            Err(first) => {
                let fresh = self.client(true, redirect_uri).await?;
                id_token
                    .claims(&fresh.id_token_verifier(), &nonce)
                    .map_err(|_| {
                        self.fail(format!(
                            "its ID token does not check out: {}",
                            crate::error::ErrorChain(&first)
                        ))
                    })?
                    .clone()
            }
        };
        let subject = claims.subject().to_string();
        let from_id_token = self.vouched(
            &subject,
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
            info.preferred_username().map(|u| u.to_string()),
            info.email().map(|e| e.to_string()),
            info.email_verified(),
            info.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
        ))
    }

    fn vouched(
        &self,
        subject: &str,
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
            login,
            shown,
        }
    }
}
