//! Who is calling, and what they may do.
//!
//! - [`Caller`]: a user authenticated by a session cookie (browser; state-changing requests must carry the
//!   session's CSRF token in `X-CSRF-Token`) or by an API token (`Authorization: Bearer hth_...`).
//! - [`OrgAccess<R>`]: a caller whose role in the organisation named by the `{org}` path parameter is at
//!   least `R` (one of [`Viewer`], [`Operator`], [`Admin`], [`Owner`]). A handler that takes
//!   `OrgAccess<Admin>` cannot run for an operator: the check is in the type. Non-members get 404, so an
//!   organisation's existence is not revealed to outsiders.
//! - [`SecretHasher`]: Argon2id hashes of login secrets. Clients derive the secret from the passphrase, so
//!   the server never receives the passphrase.
//! - [`LoginLimiter`]: failed logins throttled per account and per source address.

use crate::error::ApiError;
use crate::state::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{Method, header};
use base64::Engine;
use hearth_proto::Role;
use hearth_proto::ids::OrgId;
use hearth_proto::time_fmt::now_ms;
use hearth_store::{OrgRow, TokenRow, UserRow};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "hearth_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const TOKEN_PREFIX: &str = "hth_";

/// 32 random bytes, base64url: session ids, CSRF tokens, API and setup tokens.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How high-entropy tokens are stored: hex SHA-256 (a slow hash buys nothing for 256-bit random values).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Argon2id hashing of login secrets, off the async threads.
#[derive(Debug, Clone)]
pub struct SecretHasher {
    params: argon2::Params,
    /// A hash of a random secret, verified against when the login is unknown so that unknown and known
    /// accounts take the same time to refuse.
    dummy: String,
}

impl SecretHasher {
    pub fn new(memory_kib: u32, iterations: u32) -> Result<Self, argon2::Error> {
        let params = argon2::Params::new(memory_kib, iterations, 1, None)?;
        let mut h = Self {
            params,
            dummy: String::new(),
        };
        h.dummy = h
            .hash_blocking(&random_token())
            .map_err(|_| argon2::Error::AlgorithmInvalid)?;
        Ok(h)
    }

    fn argon(&self) -> argon2::Argon2<'static> {
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            self.params.clone(),
        )
    }

    fn hash_blocking(&self, secret: &str) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Ok(self
            .argon()
            .hash_password(secret.as_bytes(), &salt)?
            .to_string())
    }

    pub async fn hash(&self, secret: String) -> Result<String, ApiError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.hash_blocking(&secret))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::internal(std::io::Error::other(e.to_string())))
    }

    /// Check `secret` against a stored hash, or against the dummy when there is no account.
    pub async fn verify(&self, stored: Option<String>, secret: String) -> bool {
        let me = self.clone();
        let found = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.clone());
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored)
                .is_ok_and(|h| me.argon().verify_password(secret.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false);
        ok && found
    }
}

/// Sliding-window counters of failed logins.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    per_account: u32,
    per_ip: u32,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Upper bound on tracked keys, so a flood of random logins cannot exhaust memory.
const LIMITER_MAX_KEYS: usize = 100_000;

impl LoginLimiter {
    pub fn new(window: Duration, per_account: u32, per_ip: u32) -> Self {
        Self {
            window,
            per_account,
            per_ip,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(login: &str, ip: Option<&str>) -> [(String, bool); 2] {
        [
            (format!("acct:{}", login.to_lowercase()), true),
            (format!("ip:{}", ip.unwrap_or("-")), false),
        ]
    }

    /// `Err(seconds)` while either the account or the address has used up its failures.
    pub fn check(&self, login: &str, ip: Option<&str>) -> Result<(), u64> {
        self.check_keys(&Self::keys(login, ip))
    }

    /// `Err(seconds)` while the address has used up its failures (a login that names no account).
    pub fn check_address(&self, ip: Option<&str>) -> Result<(), u64> {
        self.check_keys(&Self::keys("", ip)[1..])
    }

    fn check_keys(&self, keys: &[(String, bool)]) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, is_account) in keys {
            let limit = if *is_account {
                self.per_account
            } else {
                self.per_ip
            } as usize;
            if let Some(q) = map.get_mut(key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.window)
                {
                    q.pop_front();
                }
                if q.len() >= limit {
                    let oldest = q.front().copied().unwrap_or(now);
                    let wait = self.window.saturating_sub(now.duration_since(oldest));
                    return Err(wait.as_secs().max(1));
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, login: &str, ip: Option<&str>) {
        self.record_keys(Self::keys(login, ip));
    }

    /// A failed login that named no account: counted for the address only.
    pub fn record_address_failure(&self, ip: Option<&str>) {
        let [_, address] = Self::keys("", ip);
        self.record_keys([address]);
    }

    fn record_keys<const N: usize>(&self, keys: [(String, bool); N]) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > LIMITER_MAX_KEYS {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= window));
        }
        for (key, _) in keys {
            map.entry(key).or_default().push_back(now);
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn record_success(&self, login: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("acct:{}", login.to_lowercase()));
    }

    /// The failed logins of an account counted now (within the window).
    pub fn account_failures(&self, login: &str) -> usize {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&format!("acct:{}", login.to_lowercase()))
            .map_or(0, |q| {
                q.iter()
                    .filter(|t| now.duration_since(**t) <= self.window)
                    .count()
            })
    }
}

/// What a session not opened through single sign-on is told in an organisation that requires it:
/// the dashboard's buttons and the command line of this server's providers.
fn sso_required(state: &AppState, org: &str) -> String {
    let providers: Vec<_> = state.sso.all().map(|p| &p.config).collect();
    if providers.is_empty() {
        return format!(
            "organisation {org:?} asks its members to log in through single sign-on, and this \
             server has no provider configured any more: ask its administrator"
        );
    }
    let buttons = providers
        .iter()
        .map(|p| format!("\"Log in with {}\"", p.label()))
        .collect::<Vec<_>>()
        .join(" or ");
    let ids = providers
        .iter()
        .map(|p| p.id.as_str())
        .collect::<Vec<_>>()
        .join("|");
    let server = state.settings.public_base().unwrap_or("SERVER");
    format!(
        "organisation {org:?} asks its members to log in through single sign-on: log in with the \
         dashboard's {buttons}, or `hearth login {server} --sso {ids}`"
    )
}

/// The source address of a request, when the server knows it.
pub fn source_addr(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<crate::tls::PeerAddr>>()
        .map(|ci| ci.0.0.ip().to_string())
}

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Via {
    /// Browser session; `token_hash` identifies it for logout; `opened_at` is when its login
    /// happened (Unix ms), for what only a fresh login may do.
    /// `sso` is the single sign-on provider its login went through, if one did, and `sso_sid`
    /// the provider's session it went through, if it said; `passkey`, that a passkey logged it
    /// in, alone or as the second factor (either way two factors).
    Session {
        token_hash: String,
        opened_at: i64,
        sso: Option<String>,
        sso_sid: Option<String>,
        passkey: bool,
    },
    /// API token, with its scope.
    Token(TokenRow),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRow,
    pub via: Via,
    pub source: Option<String>,
}

impl Caller {
    /// `user:<id>` or `token:<id>`, as recorded in the audit log.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Session { .. } => format!("user:{}", self.user.id),
            Via::Token(t) => format!("token:{}", t.id),
        }
    }

    /// The token's scope, if the caller used a token.
    pub fn token(&self) -> Option<&TokenRow> {
        match &self.via {
            Via::Token(t) => Some(t),
            Via::Session { .. } => None,
        }
    }

    /// Instance-wide administration: an instance admin in a session, or through an unrestricted token
    /// whose ceiling is at least admin.
    pub fn require_instance_admin(&self) -> Result<(), ApiError> {
        let token_allows = self
            .token()
            .is_none_or(|t| t.org_id.is_none() && t.max_role >= Role::Admin);
        if self.user.instance_admin && token_allows {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs an instance administrator"))
        }
    }

    /// Managing credentials (`what`) needs an interactive session, so a leaked token cannot mint
    /// more tokens, change the secret or the keys, or remove the second factor it stands behind.
    pub fn require_session(&self, what: &str) -> Result<(), ApiError> {
        match self.via {
            Via::Session { .. } => Ok(()),
            Via::Token(_) => Err(ApiError::forbidden(format!(
                "log in to {what}: an API token cannot"
            ))),
        }
    }

    /// The single sign-on provider the caller's login went through: their session's, or that of
    /// the session their API token was made in.
    pub fn sso(&self) -> Option<&str> {
        match &self.via {
            Via::Session { sso, .. } => sso.as_deref(),
            Via::Token(t) => t.sso_provider.as_deref(),
        }
    }

    /// The provider's session (`sid`) the caller's login went through, when it said: a token made
    /// now inherits it, so that session's back-channel logout revokes the token.
    pub fn sso_sid(&self) -> Option<&str> {
        match &self.via {
            Via::Session { sso_sid, .. } => sso_sid.as_deref(),
            Via::Token(t) => t.sso_sid.as_deref(),
        }
    }

    /// The caller came with a session a passkey opened, alone or after the passphrase: two
    /// factors, whatever else the account has.
    pub fn passkey_session(&self) -> bool {
        matches!(self.via, Via::Session { passkey: true, .. })
    }

    /// The hash naming the caller's login session, if they came with one (not a token).
    pub fn session_hash(&self) -> Option<&str> {
        match &self.via {
            Via::Session { token_hash, .. } => Some(token_hash),
            Via::Token(_) => None,
        }
    }
}

/// The value of the cookie `name` the request carries.
pub(crate) fn cookie_value<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Minimum seconds between two `last_used_at` writes for one token.
const TOKEN_TOUCH_INTERVAL_MS: i64 = 60_000;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let source = source_addr(parts);
        let now = now_ms();
        let caller = if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
            let auth = auth
                .to_str()
                .map_err(|_| ApiError::unauthenticated("unreadable Authorization header"))?;
            let token = auth
                .strip_prefix("Bearer ")
                .filter(|t| t.starts_with(TOKEN_PREFIX))
                .ok_or_else(|| {
                    ApiError::unauthenticated("expected Authorization: Bearer hth_...")
                })?;
            let row = state
                .store
                .token_by_hash(&token_hash(token))
                .await?
                .filter(|t| t.is_live(now))
                .ok_or_else(|| {
                    ApiError::unauthenticated("the API token is unknown, expired or revoked")
                })?;
            if row
                .last_used_at
                .is_none_or(|t| now - t > TOKEN_TOUCH_INTERVAL_MS)
                && let Err(e) = state.store.touch_token(row.id, now).await
            {
                tracing::warn!(token = %row.id, error = %crate::error::ErrorChain(&e), "could not record token use");
            }
            let user = state.store.user_by_id(row.user_id).await?;
            Caller {
                user,
                via: Via::Token(row),
                source,
            }
        } else if let Some(session) = cookie_value(&parts.headers, SESSION_COOKIE) {
            let hash = token_hash(session);
            let row = state.store.session(&hash, now).await?.ok_or_else(|| {
                ApiError::unauthenticated("the session has expired; log in again")
            })?;
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            if !safe {
                let sent = parts
                    .headers
                    .get(CSRF_HEADER)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default();
                if !constant_time_eq(sent, row.csrf_token.as_bytes()) {
                    return Err(ApiError::forbidden(
                        "missing or wrong X-CSRF-Token header (needed with session cookies)",
                    ));
                }
            }
            let user = state.store.user_by_id(row.user_id).await?;
            Caller {
                user,
                via: Via::Session {
                    token_hash: hash,
                    opened_at: row.created_at,
                    sso: row.sso_provider,
                    sso_sid: row.sso_sid,
                    passkey: row.passkey.is_some(),
                },
                source,
            }
        } else {
            return Err(ApiError::unauthenticated("log in or send an API token"));
        };
        // A provider taken out of the configuration (distrusted, or its tenant closed) no longer
        // vouches for what it let in: its sessions and the tokens made in them stop here, and
        // work again if it comes back.
        if let Some(provider) = caller.sso()
            && state.sso.get(provider).is_none()
        {
            let what = match caller.via {
                Via::Session { .. } => "this session was opened",
                Via::Token(_) => "this API token was made in a login",
            };
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "sso_provider_removed",
                format!(
                    "{what} through the single sign-on provider {provider:?}, which this server \
                     no longer has: log in again"
                ),
            ));
        }
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// A minimum role, as a type.
pub trait MinRole: Send + Sync + 'static {
    const ROLE: Role;
}

macro_rules! role_marker {
    ($name:ident, $role:expr) => {
        #[doc = concat!("At least `", stringify!($name), "`.")]
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl MinRole for $name {
            const ROLE: Role = $role;
        }
    };
}
role_marker!(Viewer, Role::Viewer);
role_marker!(Operator, Role::Operator);
role_marker!(Admin, Role::Admin);
role_marker!(Owner, Role::Owner);

/// A caller allowed to act in an organisation with at least role `R`.
#[derive(Debug, Clone)]
pub struct OrgAccess<R: MinRole> {
    pub caller: Caller,
    pub org: OrgRow,
    /// The caller's effective role: their membership, capped by their token's ceiling.
    pub role: Role,
    _min: PhantomData<R>,
}

impl<R: MinRole> FromRequestParts<AppState> for OrgAccess<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
        let raw = params
            .iter()
            .find(|(k, _)| *k == "org")
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| {
                ApiError::internal(std::io::Error::other("route has no {org} parameter"))
            })?;
        let org_id: OrgId = raw.parse().map_err(|_| {
            ApiError::bad_request("invalid_id", format!("{raw:?} is not an organisation id"))
        })?;
        let not_found = || ApiError::not_found(format!("organisation {org_id}"));
        let member_role = state
            .store
            .role_in(org_id, caller.user.id)
            .await?
            .ok_or_else(not_found)?;
        let role = match caller.token() {
            Some(t) if t.org_id.is_some_and(|o| o != org_id) => {
                return Err(ApiError::forbidden(
                    "this API token is restricted to another organisation",
                ));
            }
            Some(t) => member_role.min(t.max_role),
            None => member_role,
        };
        if role < R::ROLE {
            return Err(ApiError::forbidden(format!(
                "this needs the {} role or higher; you have {role}",
                R::ROLE
            )));
        }
        let org = state.store.org_by_id(org_id).await?;
        if org.require_sso && caller.sso().is_none() {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "sso_required_by_org",
                sso_required(state, &org.name),
            ));
        }
        if org.require_mfa && !crate::mfa::two_factors(&state.store, &caller).await? {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "mfa_required_by_org",
                format!(
                    "organisation {:?} asks its members for a second factor: set one up \
                     (`hearth mfa on`, then `hearth mfa confirm CODE`), or log in to the \
                     dashboard with a passkey, to act in it",
                    org.name
                ),
            ));
        }
        Ok(Self {
            caller,
            org,
            role,
            _min: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_throttles_an_account_after_its_failures_and_success_clears_it() {
        let l = LoginLimiter::new(Duration::from_secs(60), 3, 100);
        for _ in 0..3 {
            assert!(l.check("alice", Some("10.0.0.1")).is_ok());
            l.record_failure("alice", Some("10.0.0.1"));
        }
        let wait = l.check("Alice", Some("10.0.0.2")).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(
            l.check("bob", Some("10.0.0.1")).is_ok(),
            "other accounts from the address still work"
        );
        l.record_success("alice");
        assert!(l.check("alice", Some("10.0.0.1")).is_ok());
    }

    #[test]
    fn limiter_throttles_an_address_across_accounts() {
        let l = LoginLimiter::new(Duration::from_secs(60), 100, 2);
        l.record_failure("a", Some("10.0.0.9"));
        l.record_failure("b", Some("10.0.0.9"));
        assert!(l.check("c", Some("10.0.0.9")).is_err());
        assert!(l.check("c", Some("10.0.0.10")).is_ok());
    }

    #[tokio::test]
    async fn secrets_verify_only_against_their_own_hash() {
        let h = SecretHasher::new(64, 1).unwrap();
        let stored = h.hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify(Some(stored.clone()), "correct horse".into()).await);
        assert!(!h.verify(Some(stored), "wrong".into()).await);
        assert!(!h.verify(None, "anything".into()).await);
    }
}
