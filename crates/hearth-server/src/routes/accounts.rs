//! First-owner setup, login sessions, users, organisations and memberships.

use crate::auth::{
    Admin, Caller, OrgAccess, SESSION_COOKIE, Via, Viewer, random_token, source_addr, token_hash,
};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_proto::Role;
use hearth_proto::api::*;
use hearth_proto::audit::SYSTEM_SCOPE;
use hearth_proto::ids::{OrgId, UserId};
use hearth_proto::time_fmt::{now_ms, rfc3339};
use hearth_store::audit::NewAuditEntry;
use hearth_store::{OrgPolicy, OrgRow, SessionRow, UserRow};
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;

const MAX_LOGIN_LEN: usize = 64;
const MIN_SECRET_LEN: usize = 12;
const MAX_SECRET_LEN: usize = 1024;

pub(crate) fn check_login(login: &str) -> ApiResult<()> {
    let ok = !login.is_empty()
        && login.len() <= MAX_LOGIN_LEN
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "login must be 1-{MAX_LOGIN_LEN} characters of letters, digits and . _ - @"
        )))
    }
}

fn check_secret(secret: &str) -> ApiResult<()> {
    if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "the login secret must be {MIN_SECRET_LEN}-{MAX_SECRET_LEN} bytes"
        )))
    }
}

/// `name` trimmed, when that is 1 to `max` characters and none a control character; `None`
/// otherwise. One rule for what members name (organisations, passkeys), each saying it its way.
pub(crate) fn printable_name(name: &str, max: usize) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty() && name.chars().count() <= max && !name.chars().any(char::is_control))
        .then_some(name)
}

fn check_name(name: &str) -> ApiResult<String> {
    printable_name(name, 100)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::invalid("a name must be 1-100 printable characters"))
}

/// A handle on the request's source address for handlers that run before anyone is authenticated.
#[derive(Debug, Clone)]
pub struct Source(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(source_addr(parts)))
    }
}

/// Create the first owner and organisation with the one-time token `hearthd` printed at first start.
#[utoipa::path(post, path = "/api/v1/setup", tag = "accounts", request_body = SetupRequest, responses(
    (status = 201, body = SetupResponse),
    (status = 403, description = "wrong or used token", body = ErrorBody),
    (status = 409, description = "already set up", body = ErrorBody),
    (status = 422, body = ErrorBody)))]
pub async fn setup(
    State(state): State<AppState>,
    Source(source): Source,
    Json(req): Json<SetupRequest>,
) -> ApiResult<(StatusCode, Json<SetupResponse>)> {
    check_login(&req.login)?;
    check_secret(&req.secret)?;
    let org_name = check_name(&req.org_name)?;
    let secret_hash = state.hasher.hash(req.secret).await?;
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    if tx.user_count().await? > 0 {
        return Err(ApiError::conflict(
            "this server is already set up; log in instead",
        ));
    }
    if !tx.consume_setup_token(&token_hash(&req.token)).await? {
        return Err(ApiError::forbidden(
            "the setup token is wrong or was already used",
        ));
    }
    let user = UserRow {
        id: UserId::new(),
        login: req.login,
        secret_hash,
        instance_admin: true,
        created_at: now,
    };
    let org = OrgRow {
        require_mfa: false,
        require_approval: false,
        require_sso: false,
        id: OrgId::new(),
        name: org_name,
        quota_bytes: state.settings.limits.default_quota_bytes,
        created_at: now,
    };
    tx.insert_user(&user).await?;
    tx.insert_org(&org).await?;
    tx.set_membership(org.id, user.id, Role::Owner, now).await?;
    let actor = format!("user:{}", user.id);
    tx.append_audit(NewAuditEntry {
        scope: SYSTEM_SCOPE.into(),
        ts_ms: now,
        actor: "setup".into(),
        action: "setup.owner_created".into(),
        target: Some(actor.clone()),
        source: source.clone(),
        details: json!({ "login": user.login }),
    })
    .await?;
    tx.append_audit(NewAuditEntry {
        scope: org.id.to_string(),
        ts_ms: now,
        actor,
        action: "org.create".into(),
        target: Some(format!("org:{}", org.id)),
        source,
        details: json!({ "name": org.name, "owner": user.id }),
    })
    .await?;
    tx.commit().await?;
    state.metrics.audit_entries.fetch_add(2, Relaxed);
    tracing::info!(login = %user.login, org = %org.id, "first owner created; setup token consumed");
    Ok((
        StatusCode::CREATED,
        Json(SetupResponse {
            user: user.to_api(),
            org: org.to_api(),
        }),
    ))
}

/// Log in with a login secret; opens a browser session (HttpOnly cookie) and returns its CSRF token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse, headers(("Set-Cookie" = String, description = "hearth_session, HttpOnly, SameSite=Strict"))),
    (status = 401, body = ErrorBody),
    (status = 429, description = "too many failures for this account or address", body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Response> {
    // Kept with the session for the member's list of where they are logged in.
    let user_agent = user_agent(&headers);
    let user = check_passphrase(&state, &req.login, req.secret, &source).await?;
    // The second factor, for an account that has one: asked for once the secret is right, and a
    // wrong one counts as a failed login (the same throttling).
    let second = second_factor(&state, &user, req.code.as_deref(), req.passkey, &source).await?;
    open_session(
        &state,
        &user,
        By::Passphrase,
        second,
        source,
        user_agent,
        json!({}),
        async |_| Ok(()),
    )
    .await
}

/// The account `login` names when `secret` is its login secret; a wrong one is refused, counted
/// by the throttle and audited, and a throttled login or address refused before any check.
pub(crate) async fn check_passphrase(
    state: &AppState,
    login: &str,
    secret: String,
    source: &Option<String>,
) -> ApiResult<UserRow> {
    if let Err(wait) = state.limiter.check(login, source.as_deref()) {
        state.metrics.logins_throttled.fetch_add(1, Relaxed);
        return Err(ApiError::rate_limited(wait));
    }
    let user = state.store.user_by_login(login).await?;
    let ok = state
        .hasher
        .verify(user.as_ref().map(|u| u.secret_hash.clone()), secret)
        .await;
    match user.filter(|_| ok) {
        Some(user) => Ok(user),
        None => {
            login_failed(state, login, source.clone(), now_ms(), None).await?;
            Err(ApiError::unauthenticated("wrong login or secret"))
        }
    }
}

/// The User-Agent a session is listed with: printable, short.
pub(crate) fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect())
}

/// The second factor a login gave after its passphrase or single sign-on.
pub(crate) enum Second {
    /// A code of the authenticator app.
    Totp,
    /// A recovery code; `left` remain.
    Recovery { left: usize },
    /// One of the account's passkeys answered (`passkeys::second_factor`).
    Passkey(UsedPasskey),
}

/// A passkey that answered a second factor: its credential id and name, and its stored
/// credential with the signature counter moved on.
pub(crate) struct UsedPasskey {
    pub id: String,
    pub name: String,
    pub credential: String,
}

impl Second {
    /// As the session keeps it (`sessions.second_factor`, `SessionInfo::second_factor`).
    fn as_str(&self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Recovery { .. } => "recovery_code",
            Self::Passkey(_) => "passkey",
        }
    }

    /// What the `auth.login` entry says of it.
    fn details(&self) -> serde_json::Value {
        match self {
            Self::Recovery { left } => json!({ "mfa": self.as_str(), "recovery_codes_left": left }),
            Self::Passkey(p) => json!({ "mfa": self.as_str(), "passkey": p.id, "name": p.name }),
            Self::Totp => json!({ "mfa": self.as_str() }),
        }
    }
}

/// Checks `user`'s second factor: `passkey`, when the login gives one (whether or not the account
/// asks for a second factor: an answer given is never ignored), else `code` when the account has
/// an authenticator app; `Ok(None)` when it asks for none. No answer, or a wrong one, is refused
/// (a wrong one counts as a failed login of theirs).
pub(crate) async fn second_factor(
    state: &AppState,
    user: &UserRow,
    code: Option<&str>,
    passkey: Option<PasskeyLoginFinish>,
    source: &Option<String>,
) -> ApiResult<Option<Second>> {
    let now = now_ms();
    if let Some(answer) = passkey {
        return super::passkeys::second_factor(state, user, answer, source, now)
            .await
            .map(|p| Some(Second::Passkey(p)));
    }
    let Some(mfa) = state
        .store
        .mfa(user.id)
        .await?
        .filter(|m| m.enabled_at.is_some())
    else {
        return Ok(None);
    };
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
        let passkeys =
            state.passkeys.get().is_some() && !state.store.passkeys_of(user.id).await?.is_empty();
        let or_passkey = if passkeys {
            ", one of its recovery codes, or one of its passkeys (from the dashboard)"
        } else {
            ", or one of its recovery codes"
        };
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "mfa_required",
            format!(
                "this account asks for a second factor: the code of its authenticator app{or_passkey}"
            ),
        ));
    };
    let secs = u64::try_from(now / 1000).unwrap_or_default();
    match crate::mfa::take(state, user.id, &mfa, code, secs).await? {
        Some(crate::mfa::Used::Totp) => Ok(Some(Second::Totp)),
        Some(crate::mfa::Used::Recovery) => Ok(Some(Second::Recovery {
            left: mfa.recovery.len().saturating_sub(1),
        })),
        None => {
            login_failed(
                state,
                &user.login,
                source.clone(),
                now,
                Some("second factor"),
            )
            .await?;
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_invalid",
                "wrong code, or a code already used (each code logs in once)",
            ))
        }
    }
}

/// How a login proved who it is, as its session remembers it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum By<'a> {
    Passphrase,
    /// Through this single sign-on provider, in its session `sid` when it said, with the ID token
    /// it vouched with.
    Sso {
        provider: &'a str,
        sid: Option<&'a str>,
        id_token: Option<&'a str>,
    },
    /// With the passkey of this credential id.
    Passkey(&'a str),
}

/// Opens a browser session for `user`, whose login succeeded `by` a way and with a `second`
/// factor: the throttle forgets their failures, the session (remembering both; a passkey that
/// answered the second factor names the session as one it opened, and its counter moves on) and
/// its `auth.login` entry (with `details` and the second factor's) are stored in one transaction
/// with what `also` adds to it, and the answer carries the session cookie and its CSRF token.
#[allow(clippy::too_many_arguments)] // each is one fact of the login, named at the call
pub(crate) async fn open_session(
    state: &AppState,
    user: &UserRow,
    by: By<'_>,
    second: Option<Second>,
    source: Option<String>,
    user_agent: Option<String>,
    mut details: serde_json::Value,
    also: impl AsyncFnOnce(&mut hearth_store::Tx) -> ApiResult<()>,
) -> ApiResult<Response> {
    let now = now_ms();
    state.limiter.record_success(&user.login);
    if let Some(c) = state.hub.cluster() {
        c.login_succeeded(&user.login);
    }
    let session = random_token();
    let ttl_ms = state.settings.auth.session_ttl_hours * 3_600_000;
    let row = SessionRow {
        sso_provider: match by {
            By::Sso { provider, .. } => Some(provider.to_owned()),
            _ => None,
        },
        sso_sid: match by {
            By::Sso { sid, .. } => sid.map(str::to_owned),
            _ => None,
        },
        sso_id_token: match by {
            By::Sso { id_token, .. } => id_token.map(str::to_owned),
            _ => None,
        },
        passkey: match (by, &second) {
            (By::Passkey(id), _) => Some(id.to_owned()),
            (_, Some(Second::Passkey(p))) => Some(p.id.clone()),
            _ => None,
        },
        second_factor: second.as_ref().map(|s| s.as_str().to_owned()),
        user_id: user.id,
        csrf_token: random_token(),
        created_at: now,
        expires_at: now + ttl_ms,
    };
    if let (Some(s), Some(d)) = (&second, details.as_object_mut()) {
        d.extend(
            s.details()
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    let mut tx = state.store.begin().await?;
    if let Some(Second::Passkey(p)) = &second {
        tx.use_passkey(&p.id, &p.credential, now).await?;
    }
    tx.insert_session(
        &token_hash(&session),
        &row,
        source.as_deref(),
        user_agent.as_deref(),
    )
    .await?;
    tx.append_audit(NewAuditEntry {
        scope: SYSTEM_SCOPE.into(),
        ts_ms: now,
        actor: format!("user:{}", user.id),
        action: "auth.login".into(),
        target: None,
        source,
        details,
    })
    .await?;
    also(&mut tx).await?;
    let _ = tx.delete_expired_sessions(now).await?;
    tx.commit().await?;
    state.metrics.logins_ok.fetch_add(1, Relaxed);
    state.metrics.audit_entries.fetch_add(1, Relaxed);
    let secure = state.settings.cookie_secure();
    let cookie = format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        ttl_ms / 1000
    );
    let body = LoginResponse {
        user: user.to_api(),
        csrf_token: row.csrf_token,
        expires_at: rfc3339(row.expires_at),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(std::io::Error::other(e)))?,
    );
    Ok(resp)
}

/// A login that failed (wrong login or secret, or `reason`): counted by the throttle here and
/// across the cluster, and audited.
pub(crate) async fn login_failed(
    state: &AppState,
    login: &str,
    source: Option<String>,
    now: i64,
    reason: Option<&str>,
) -> ApiResult<()> {
    state.limiter.record_failure(login, source.as_deref());
    if let Some(c) = state.hub.cluster() {
        c.login_failed(login, source.as_deref());
    }
    let mut details = json!({ "login": login.chars().take(MAX_LOGIN_LEN).collect::<String>() });
    if let Some(r) = reason {
        details["failed"] = json!(r);
    }
    audit_failed_login(state, source, now, details).await
}

/// Counts a failed login and appends its `auth.login_failed` entry with `details`.
pub(crate) async fn audit_failed_login(
    state: &AppState,
    source: Option<String>,
    now: i64,
    details: serde_json::Value,
) -> ApiResult<()> {
    state.metrics.logins_failed.fetch_add(1, Relaxed);
    let mut tx = state.store.begin().await?;
    tx.append_audit(NewAuditEntry {
        scope: SYSTEM_SCOPE.into(),
        ts_ms: now,
        actor: "anonymous".into(),
        action: "auth.login_failed".into(),
        target: None,
        source,
        details,
    })
    .await?;
    tx.commit().await?;
    state.metrics.audit_entries.fetch_add(1, Relaxed);
    Ok(())
}

/// End the current browser session. One opened through a single sign-on provider set to
/// `logout_at_provider` is answered with where to send the browser to log out there too.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts", responses((status = 204),
    (status = 200, description = "also log out at the provider: send the browser there", body = LogoutResponse),
    (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    request_headers: HeaderMap,
) -> ApiResult<Response> {
    let Some(token_hash) = caller.session_hash() else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "API tokens are revoked, not logged out",
        ));
    };
    // The ID token of its login, if it kept one: the provider's hint of whose session ends.
    let id_token = match caller.sso() {
        Some(_) => state
            .store
            .session(token_hash, now_ms())
            .await?
            .and_then(|s| s.sso_id_token),
        None => None,
    };
    let mut tx = state.store.begin().await?;
    tx.delete_session(token_hash).await?;
    tx.append_audit(caller.audit(SYSTEM_SCOPE, "auth.logout", None, json!({})))
        .await?;
    tx.commit().await?;
    let provider_logout = match caller.sso() {
        Some(p) => {
            super::sso::provider_logout_url(&state, &request_headers, p, id_token.as_deref()).await
        }
        None => None,
    };
    let mut resp = match provider_logout {
        Some(url) => Json(LogoutResponse {
            provider_logout: url,
        })
        .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("hearth_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(resp)
}

/// Who the caller is and where they belong.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Me>> {
    let memberships = state
        .store
        .memberships_of(caller.user.id)
        .await?
        .into_iter()
        .map(|(org, role)| Membership {
            org: org.to_api(),
            role,
        })
        .collect();
    let mfa = state
        .store
        .mfa(caller.user.id)
        .await?
        .filter(|m| m.enabled_at.is_some());
    Ok(Json(Me {
        user: caller.user.to_api(),
        memberships,
        token: caller.token().map(|t| t.to_api()),
        mfa: mfa.is_some(),
        recovery_codes_left: mfa.map(|m| u32::try_from(m.recovery.len()).unwrap_or(u32::MAX)),
    }))
}

/// Where this account is logged in: its sessions not yet expired, newest first.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "accounts", responses((status = 200, body = Vec<SessionInfo>)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SessionInfo>>> {
    let current = caller.session_hash();
    Ok(Json(
        state
            .store
            .sessions_of(caller.user.id, now_ms())
            .await?
            .into_iter()
            .map(|s| SessionInfo {
                current: current == Some(s.token_hash.as_str()),
                created_at: rfc3339(s.created_at),
                expires_at: rfc3339(s.expires_at),
                source: s.source,
                user_agent: s.user_agent,
                sso: s.sso_provider,
                passkey: s.passkey,
                second_factor: s.second_factor,
                id: s.token_hash,
            })
            .collect(),
    ))
}

/// End one of this account's sessions (a browser left logged in elsewhere).
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "accounts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn end_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    if !tx.delete_session_of(caller.user.id, &id).await? {
        return Err(ApiError::not_found("that session"));
    }
    tx.append_audit(caller.audit(SYSTEM_SCOPE, "auth.session_end", None, json!({})))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of this account but the caller's own ("log out everywhere else").
#[utoipa::path(delete, path = "/api/v1/me/sessions", tag = "accounts", responses((status = 204)))]
pub async fn end_other_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let ended = tx
        .delete_sessions_of(caller.user.id, caller.session_hash())
        .await?;
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "auth.session_end",
        None,
        json!({ "others": ended }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start setting up an authenticator app as this account's second factor (replacing one being set
/// up). It is asked for at login once confirmed with its first code (`POST /me/mfa/confirm`).
#[utoipa::path(post, path = "/api/v1/me/mfa", tag = "accounts", responses(
    (status = 200, body = MfaSetup), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn begin_mfa(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<MfaSetup>> {
    caller.require_session("set up or change the second factor")?;
    let secret = crate::mfa::new_secret();
    let sealed = state.at_rest.seal(caller.user.id, &secret);
    if !state.store.begin_totp(caller.user.id, &sealed).await? {
        return Err(ApiError::conflict(
            "a second factor is on already: turn it off first (with one of its codes)",
        ));
    }
    let host = state
        .settings
        .public_url
        .as_deref()
        .and_then(|u| u.split("://").nth(1))
        .map(|h| h.trim_end_matches('/').to_owned());
    let issuer = match host {
        Some(h) => format!("Hearth ({h})"),
        None => "Hearth".to_owned(),
    };
    let uri = crate::mfa::otpauth_uri(&issuer, &caller.user.login, &secret);
    Ok(Json(MfaSetup {
        qr_svg: crate::mfa::qr_svg(&uri),
        uri,
        secret,
    }))
}

/// Confirm the authenticator being set up with its current code: from now on logins ask for a code.
/// Answers the recovery codes, shown this once.
#[utoipa::path(post, path = "/api/v1/me/mfa/confirm", tag = "accounts", request_body = MfaCode, responses(
    (status = 200, body = RecoveryCodes), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn confirm_mfa(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<MfaCode>,
) -> ApiResult<Json<RecoveryCodes>> {
    caller.require_session("set up or change the second factor")?;
    let Some(mfa) = state
        .store
        .mfa(caller.user.id)
        .await?
        .filter(|m| m.enabled_at.is_none())
    else {
        return Err(ApiError::conflict(
            "no authenticator is being set up: start with POST /api/v1/me/mfa",
        ));
    };
    let now = now_ms();
    let secs = u64::try_from(now / 1000).unwrap_or_default();
    let secret = state
        .at_rest
        .open(caller.user.id, &mfa.totp_secret)
        .map_err(ApiError::internal)?;
    let Some(step) = crate::mfa::code_step(&secret, &req.code, secs) else {
        return Err(ApiError::invalid(
            "that is not the authenticator's current code: check the app's clock and try again",
        ));
    };
    let (codes, hashes) = crate::mfa::recovery_codes(&state.at_rest, caller.user.id);
    let mut tx = state.store.begin().await?;
    if !tx
        .confirm_totp(caller.user.id, &mfa.totp_secret, step, &hashes, now)
        .await?
    {
        return Err(ApiError::conflict(
            "another setup replaced this one meanwhile: start again",
        ));
    }
    tx.append_audit(caller.audit(SYSTEM_SCOPE, "auth.mfa_on", None, json!({})))
        .await?;
    tx.commit().await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// How recent a login must be to turn the second factor off without giving a code again.
const FRESH_LOGIN_MS: i64 = 5 * 60 * 1000;

/// The caller is a session whose login happened less than five minutes before `now`.
pub(crate) fn fresh_session(caller: &Caller, now: i64) -> bool {
    matches!(caller.via, Via::Session { opened_at, .. } if now - opened_at < FRESH_LOGIN_MS)
}

/// What changing a confirmed second factor takes: a session whose login (which passed it) is
/// fresh, or one of its codes, which is then used up.
async fn fresh_or_code(
    state: &AppState,
    caller: &Caller,
    mfa: &hearth_store::mfa::MfaRow,
    code: Option<&str>,
) -> ApiResult<()> {
    let now = now_ms();
    if fresh_session(caller, now) {
        return Ok(());
    }
    let secs = u64::try_from(now / 1000).unwrap_or_default();
    let taken = match code {
        Some(c) => crate::mfa::take(state, caller.user.id, mfa, c, secs).await?,
        None => None,
    };
    match taken {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(
            "log in again, or give the app's current code (or a recovery code): this session is \
             older than five minutes",
        )),
    }
}

/// A code from an optional JSON body `{"code": ...}`.
fn body_code(body: &[u8]) -> ApiResult<Option<String>> {
    if body.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice::<MfaCode>(body)
        .map(|c| Some(c.code))
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
}

/// New recovery codes for this account's second factor, the old ones void: in a fresh session, or
/// with one of its codes. Shown this once.
#[utoipa::path(post, path = "/api/v1/me/mfa/recovery-codes", tag = "accounts", request_body = Option<MfaCode>, responses(
    (status = 200, body = RecoveryCodes), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn new_recovery_codes(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> ApiResult<Json<RecoveryCodes>> {
    caller.require_session("set up or change the second factor")?;
    let code = body_code(&body)?;
    let Some(mfa) = state
        .store
        .mfa(caller.user.id)
        .await?
        .filter(|m| m.enabled_at.is_some())
    else {
        return Err(ApiError::not_found("a second factor of this account"));
    };
    fresh_or_code(&state, &caller, &mfa, code.as_deref()).await?;
    let (codes, hashes) = crate::mfa::recovery_codes(&state.at_rest, caller.user.id);
    let mut tx = state.store.begin().await?;
    if !tx.replace_recovery_codes(caller.user.id, &hashes).await? {
        return Err(ApiError::not_found("a second factor of this account"));
    }
    tx.append_audit(caller.audit(SYSTEM_SCOPE, "auth.mfa_recovery_codes", None, json!({})))
        .await?;
    tx.commit().await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Turn this account's second factor off: in a session opened in the last five minutes (its login
/// passed the second factor), or with one of its codes (or a recovery code).
#[utoipa::path(delete, path = "/api/v1/me/mfa", tag = "accounts", request_body = Option<MfaCode>, responses(
    (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn remove_mfa(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    caller.require_session("set up or change the second factor")?;
    let code = body_code(&body)?;
    let Some(mfa) = state.store.mfa(caller.user.id).await? else {
        return Err(ApiError::not_found("a second factor of this account"));
    };
    let requiring: Vec<String> = state
        .store
        .memberships_of(caller.user.id)
        .await?
        .into_iter()
        .filter(|(o, _)| o.require_mfa)
        .map(|(o, _)| o.name)
        .collect();
    if mfa.enabled_at.is_some() && !requiring.is_empty() {
        return Err(ApiError::conflict(format!(
            "organisation {} requires a second factor of its members: it stays on",
            requiring.join(", ")
        )));
    }
    if mfa.enabled_at.is_some() {
        fresh_or_code(&state, &caller, &mfa, code.as_deref()).await?;
    }
    let mut tx = state.store.begin().await?;
    tx.clear_mfa(caller.user.id).await?;
    tx.append_audit(caller.audit(SYSTEM_SCOPE, "auth.mfa_off", None, json!({})))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member's second factor (instance admins), for one who lost both the app and the
/// recovery codes; they log in with their secret alone until they set one up again.
#[utoipa::path(delete, path = "/api/v1/users/{id}/mfa", tag = "accounts", params(("id" = UserId, Path)), responses(
    (status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_mfa(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<UserId>,
) -> ApiResult<StatusCode> {
    caller.require_instance_admin()?;
    let user = state.store.user_by_id(id).await?;
    let mut tx = state.store.begin().await?;
    if !tx.clear_mfa(user.id).await? {
        return Err(ApiError::not_found(format!(
            "a second factor of {}",
            user.login
        )));
    }
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "auth.mfa_reset",
        Some(format!("user:{id}")),
        json!({ "login": user.login }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an account (instance admins). The new user then logs in with the given secret.
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = CreateUserRequest, responses(
    (status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.require_instance_admin()?;
    check_login(&req.login)?;
    check_secret(&req.secret)?;
    let user = UserRow {
        id: UserId::new(),
        login: req.login,
        secret_hash: state.hasher.hash(req.secret).await?,
        instance_admin: req.instance_admin,
        created_at: now_ms(),
    };
    let mut tx = state.store.begin().await?;
    tx.insert_user(&user).await?;
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "user.create",
        Some(format!("user:{}", user.id)),
        json!({ "login": user.login, "instance_admin": user.instance_admin }),
    ))
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(user.to_api())))
}

/// Every account (instance admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<User>>> {
    caller.require_instance_admin()?;
    Ok(Json(
        state
            .store
            .list_users()
            .await?
            .iter()
            .map(UserRow::to_api)
            .collect(),
    ))
}

/// Create an organisation (instance admins); its first owner is the caller or the named user.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", request_body = CreateOrgRequest, responses(
    (status = 201, body = Org), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateOrgRequest>,
) -> ApiResult<(StatusCode, Json<Org>)> {
    caller.require_instance_admin()?;
    let name = check_name(&req.name)?;
    let quota = req
        .quota_bytes
        .unwrap_or(state.settings.limits.default_quota_bytes);
    if quota < 0 {
        return Err(ApiError::invalid("quota_bytes cannot be negative"));
    }
    let owner = match req.owner {
        Some(id) => state
            .store
            .user_by_id(id)
            .await
            .map_err(|_| ApiError::invalid(format!("no user {id}")))?,
        None => caller.user.clone(),
    };
    let org = OrgRow {
        require_mfa: false,
        require_approval: false,
        require_sso: false,
        id: OrgId::new(),
        name,
        quota_bytes: quota,
        created_at: now_ms(),
    };
    let mut tx = state.store.begin().await?;
    tx.insert_org(&org).await?;
    tx.set_membership(org.id, owner.id, Role::Owner, org.created_at)
        .await?;
    tx.append_audit(caller.audit(
        org.id.to_string(),
        "org.create",
        Some(format!("org:{}", org.id)),
        json!({ "name": org.name, "owner": owner.id, "quota_bytes": quota }),
    ))
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(org.to_api())))
}

/// The caller's organisations.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs", responses((status = 200, body = Vec<Membership>)))]
pub async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Membership>>> {
    let orgs = state.store.memberships_of(caller.user.id).await?;
    Ok(Json(
        orgs.into_iter()
            .filter(|(o, _)| {
                caller
                    .token()
                    .is_none_or(|t| t.org_id.is_none_or(|id| id == o.id))
            })
            .map(|(org, role)| Membership {
                org: org.to_api(),
                role,
            })
            .collect(),
    ))
}

/// One organisation (members).
#[utoipa::path(get, path = "/api/v1/orgs/{org}", tag = "orgs", params(("org" = OrgId, Path)), responses(
    (status = 200, body = Org), (status = 404, body = ErrorBody)))]
pub async fn get_org(access: OrgAccess<Viewer>) -> Json<Org> {
    Json(access.org.to_api())
}

/// Set an organisation's storage quota (instance admins).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/quota", tag = "orgs", params(("org" = OrgId, Path)), request_body = SetQuotaRequest,
    responses((status = 200, body = Org), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_quota(
    State(state): State<AppState>,
    caller: Caller,
    Path(org_id): Path<OrgId>,
    Json(req): Json<SetQuotaRequest>,
) -> ApiResult<Json<Org>> {
    caller.require_instance_admin()?;
    if req.quota_bytes < 0 {
        return Err(ApiError::invalid("quota_bytes cannot be negative"));
    }
    let mut tx = state.store.begin().await?;
    tx.set_quota(org_id, req.quota_bytes).await?;
    tx.append_audit(caller.audit(
        org_id.to_string(),
        "org.quota",
        Some(format!("org:{org_id}")),
        json!({ "quota_bytes": req.quota_bytes }),
    ))
    .await?;
    tx.commit().await?;
    Ok(Json(state.store.org_by_id(org_id).await?.to_api()))
}

/// Whether the organisation's members must have a second factor (admins). An admin without one
/// cannot require it (they would lock themselves out).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/mfa-policy", tag = "orgs", params(("org" = OrgId, Path)), request_body = MfaPolicy,
    responses((status = 200, body = Org), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_mfa_policy(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Json(req): Json<MfaPolicy>,
) -> ApiResult<Json<Org>> {
    if req.require_mfa && !crate::mfa::two_factors(&state.store, &access.caller).await? {
        return Err(ApiError::conflict(
            "turn on your own second factor first (`hearth mfa on`), or log in with a passkey: \
             requiring it now would lock you out",
        ));
    }
    set_policy(&state, &access, OrgPolicy::RequireMfa, req.require_mfa).await
}

/// Turns one of the organisation's policies on or off, audited as `org.mfa_policy` or
/// `org.approval_policy` (with the field the request named).
async fn set_policy(
    state: &AppState,
    access: &OrgAccess<Admin>,
    policy: OrgPolicy,
    on: bool,
) -> ApiResult<Json<Org>> {
    let org = access.org.id;
    let (action, details) = match policy {
        OrgPolicy::RequireMfa => ("org.mfa_policy", json!({ "require_mfa": on })),
        OrgPolicy::RequireApproval => ("org.approval_policy", json!({ "require_approval": on })),
        OrgPolicy::RequireSso => ("org.sso_policy", json!({ "require_sso": on })),
    };
    let mut tx = state.store.begin().await?;
    tx.set_org_policy(org, policy, on).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        action,
        Some(format!("org:{org}")),
        details,
    ))
    .await?;
    tx.commit().await?;
    Ok(Json(state.store.org_by_id(org).await?.to_api()))
}

/// Whether the organisation's members must have logged in through single sign-on to act in it
/// (admins). Refused while no provider is configured, and from a caller who did not log in through
/// one (they would lock themselves out).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/sso-policy", tag = "orgs", params(("org" = OrgId, Path)), request_body = SsoPolicy,
    responses((status = 200, body = Org), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_sso_policy(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Json(req): Json<SsoPolicy>,
) -> ApiResult<Json<Org>> {
    if req.require_sso {
        if state.sso.all().next().is_none() {
            return Err(ApiError::conflict(
                "this server has no single sign-on provider ([[auth.oidc]] in its configuration)",
            ));
        }
        if access.caller.sso().is_none() {
            return Err(ApiError::conflict(
                "log in through single sign-on yourself first: requiring it now would lock you out",
            ));
        }
    }
    set_policy(&state, &access, OrgPolicy::RequireSso, req.require_sso).await
}

/// Whether jobs submitted by members below admin wait for an admin's approval before they print
/// (admins; `POST .../jobs/{id}/approve` or `.../reject`). Jobs submitted earlier are not affected.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/approval-policy", tag = "orgs", params(("org" = OrgId, Path)), request_body = ApprovalPolicy,
    responses((status = 200, body = Org), (status = 403, body = ErrorBody)))]
pub async fn set_approval_policy(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Json(req): Json<ApprovalPolicy>,
) -> ApiResult<Json<Org>> {
    set_policy(
        &state,
        &access,
        OrgPolicy::RequireApproval,
        req.require_approval,
    )
    .await
}

/// Storage used by an organisation.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/usage", tag = "orgs", params(("org" = OrgId, Path)), responses((status = 200, body = Usage)))]
pub async fn usage(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<Usage>> {
    let u = state.store.usage(access.org.id).await?;
    Ok(Json(Usage {
        used_bytes: u.used,
        reserved_bytes: u.reserved,
        quota_bytes: access.org.quota_bytes,
    }))
}

/// Members of an organisation.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/members", tag = "orgs", params(("org" = OrgId, Path)), responses((status = 200, body = Vec<Member>)))]
pub async fn list_members(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
) -> ApiResult<Json<Vec<Member>>> {
    let members = state.store.members(access.org.id).await?;
    let with_mfa = state.store.members_with_mfa(access.org.id).await?;
    let sso = state.store.members_sso(access.org.id).await?;
    let passkeys = state.store.members_passkeys(access.org.id).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|(u, role)| Member {
                mfa: with_mfa.contains(&u.id),
                passkeys: passkeys.get(&u.id).copied().unwrap_or_default(),
                sso: sso
                    .iter()
                    .filter(|(id, _)| *id == u.id)
                    .map(|(_, p)| p.clone())
                    .collect(),
                user: u.to_api(),
                role,
            })
            .collect(),
    ))
}

/// Whether `access` may give `new_role` to a member who now has `current` (None: not a member yet).
/// Owners may do anything; others only act below their own role.
fn may_manage(access_role: Role, current: Option<Role>, new_role: Option<Role>) -> ApiResult<()> {
    if access_role == Role::Owner {
        return Ok(());
    }
    let below = |r: Role| r < access_role;
    if current.is_some_and(|r| !below(r)) || new_role.is_some_and(|r| !below(r)) {
        return Err(ApiError::forbidden(format!(
            "as {access_role} you can only manage members and grant roles below {access_role}"
        )));
    }
    Ok(())
}

/// Add an existing account to the organisation.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/members", tag = "orgs", params(("org" = OrgId, Path)), request_body = AddMemberRequest,
    responses((status = 201, body = Member), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_member(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Json(req): Json<AddMemberRequest>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let user = state
        .store
        .user_by_login(&req.login)
        .await?
        .ok_or_else(|| ApiError::invalid(format!("no account with login {:?}", req.login)))?;
    let org = access.org.id;
    let mut tx = state.store.begin().await?;
    if tx.role_in(org, user.id).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "{} is already a member; change their role instead",
            user.login
        )));
    }
    may_manage(access.role, None, Some(req.role))?;
    tx.set_membership(org, user.id, req.role, now_ms()).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "member.add",
        Some(format!("user:{}", user.id)),
        json!({ "login": user.login, "role": req.role }),
    ))
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(member(&state, &user, req.role).await?),
    ))
}

/// One member as `GET .../members` lists them: with their second factor and linked providers.
async fn member(state: &AppState, user: &UserRow, role: Role) -> ApiResult<Member> {
    Ok(Member {
        passkeys: u32::try_from(state.store.passkeys_of(user.id).await?.len()).unwrap_or(u32::MAX),
        mfa: crate::mfa::is_on(&state.store, user.id).await?,
        sso: state
            .store
            .sso_identities_of(user.id)
            .await?
            .into_iter()
            .map(|i| i.provider)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        user: user.to_api(),
        role,
    })
}

/// Change a member's role.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/members/{user}", tag = "orgs", params(("org" = OrgId, Path), ("user" = UserId, Path)),
    request_body = SetRoleRequest, responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_member_role(
    State(state): State<AppState>,
    access: OrgAccess<Admin>,
    Path((_, user_id)): Path<(OrgId, UserId)>,
    Json(req): Json<SetRoleRequest>,
) -> ApiResult<Json<Member>> {
    let org = access.org.id;
    let mut tx = state.store.begin().await?;
    let current = tx
        .role_in(org, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("member {user_id}")))?;
    may_manage(access.role, Some(current), Some(req.role))?;
    if current == Role::Owner && req.role != Role::Owner && tx.owner_count(org).await? <= 1 {
        return Err(ApiError::conflict(
            "an organisation needs at least one owner; promote another member first",
        ));
    }
    tx.set_membership(org, user_id, req.role, now_ms()).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        "member.role",
        Some(format!("user:{user_id}")),
        json!({ "from": current, "to": req.role }),
    ))
    .await?;
    tx.commit().await?;
    let user = state.store.user_by_id(user_id).await?;
    Ok(Json(member(&state, &user, req.role).await?))
}

/// Remove a member (or leave, for oneself).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{user}", tag = "orgs", params(("org" = OrgId, Path), ("user" = UserId, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    access: OrgAccess<Viewer>,
    Path((_, user_id)): Path<(OrgId, UserId)>,
) -> ApiResult<StatusCode> {
    let org = access.org.id;
    let leaving = user_id == access.caller.user.id;
    if !leaving && access.role < Role::Admin {
        return Err(ApiError::forbidden(
            "removing other members needs the admin role or higher",
        ));
    }
    let mut tx = state.store.begin().await?;
    let current = tx
        .role_in(org, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("member {user_id}")))?;
    if !leaving {
        may_manage(access.role, Some(current), None)?;
    }
    if current == Role::Owner && tx.owner_count(org).await? <= 1 {
        return Err(ApiError::conflict(
            "the last owner cannot be removed; promote another member first",
        ));
    }
    tx.remove_membership(org, user_id).await?;
    tx.append_audit(access.caller.audit(
        org.to_string(),
        if leaving {
            "member.leave"
        } else {
            "member.remove"
        },
        Some(format!("user:{user_id}")),
        json!({ "role": current }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
