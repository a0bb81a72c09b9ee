//! Logging in through an OpenID Connect provider (`[[auth.oidc]]`), and the identities linked to
//! an account.
//!
//! A browser opens `/auth/sso/{id}/start`, which sends it to the provider with a `state` that
//! also goes into a cookie (`hearth_sso`) bound to the login kept in the database; the provider
//! sends it back to `/auth/sso/{id}/callback`, which checks the state against the cookie, takes
//! the kept login (once), trades the code for a checked ID token and finds the account. It then
//! opens no session itself: it sends the browser to the dashboard (`/#sso`), whose page finishes
//! with `POST /auth/sso/finish` — with the account's own second factor when it has one — and
//! gets its session and CSRF token exactly as a passphrase login does.

use super::accounts::{By, Source, check_login, open_session, second_factor, user_agent};
use crate::auth::{Caller, cookie_value, random_token, token_hash};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::sso::{Provider, SsoError, Vouched};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hearth_proto::api::{ErrorBody, LoginResponse, PasskeyCeremony, SsoFinishRequest, SsoIdentity};
use hearth_proto::audit::SYSTEM_SCOPE;
use hearth_proto::ids::UserId;
use hearth_proto::time_fmt::{now_ms, rfc3339};
use hearth_store::audit::NewAuditEntry;
use hearth_store::sso::{CliLogin, SsoIdentityRow, SsoLoginRow};
use hearth_store::{StoreError, UserRow};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;
use std::sync::atomic::Ordering::Relaxed;

/// The cookie binding a login in flight to the browser that started it.
const SSO_COOKIE: &str = "hearth_sso";
const COOKIE_PATH: &str = "/api/v1/auth/sso";
/// A login sent to the provider must come back within this.
const LOGIN_TTL_MS: i64 = 10 * 60_000;
/// After the provider, the dashboard has this long to finish (typing a second factor).
const FINISH_TTL_MS: i64 = 5 * 60_000;
/// The stored secret hash of an account made by a first single sign-on: no passphrase logs in to
/// it (it is no Argon2 hash, so none verifies).
pub const NO_SECRET: &str = "!sso";

fn provider(state: &AppState, id: &str) -> ApiResult<std::sync::Arc<Provider>> {
    state
        .sso
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("single sign-on provider {id:?}")))
}

/// Where the provider sends the browser back: under the public URL, else under the address the
/// browser used (which the provider must have registered, so a forged Host goes nowhere).
fn redirect_uri(state: &AppState, headers: &HeaderMap, id: &str) -> ApiResult<String> {
    Ok(format!(
        "{}/api/v1/auth/sso/{id}/callback",
        public_origin(state, headers)?
    ))
}

/// Where a provider sends a browser that logged out there: the dashboard, at the same origin as
/// [`redirect_uri`] (register it as the client's post-logout redirect URI).
pub(crate) async fn provider_logout_url(
    state: &AppState,
    headers: &HeaderMap,
    provider: &str,
    id_token: Option<&str>,
) -> Option<String> {
    let p = state
        .sso
        .get(provider)
        .filter(|p| p.config.logout_at_provider)?;
    let back = format!("{}/", public_origin(state, headers).ok()?);
    match p.end_session_url(&back, id_token).await {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(%provider, error = %crate::error::ErrorChain(&e), "no logout at the provider");
            None
        }
    }
}

/// The server's origin as members reach it: the public URL, else the address the browser used.
fn public_origin(state: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    Ok(match state.settings.public_base() {
        Some(u) => u.to_owned(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    !h.is_empty()
                        && h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                })
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "no_host",
                        "no usable Host header: set public_url in the server's configuration",
                    )
                })?;
            let scheme = if state.settings.tls_enabled() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}")
        }
    })
}

fn sso_cookie(state: &AppState, value: &str, max_age_ms: i64) -> ApiResult<HeaderValue> {
    let secure = state.settings.cookie_secure();
    // Lax, not Strict: the provider's redirect back is a top-level navigation from its site.
    HeaderValue::from_str(&format!(
        "{SSO_COOKIE}={value}; HttpOnly; SameSite=Lax; Path={COOKIE_PATH}; Max-Age={}{secure}",
        max_age_ms / 1000
    ))
    .map_err(|e| ApiError::internal(std::io::Error::other(e)))
}

/// A 303 to `location`, with `cookie` set when given.
fn see_other(location: &str, cookie: Option<HeaderValue>) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(l) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    if let Some(c) = cookie {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `value` as it goes into a query or fragment (`application/x-www-form-urlencoded`).
fn url_encoded(value: &str) -> String {
    openidconnect::url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Back to the dashboard, which shows `message` as what went wrong.
fn to_dashboard_with_error(message: &str) -> Response {
    see_other(&format!("/#sso-error={}", url_encoded(message)), None)
}

/// `message` as the refusal of a login: to the `hearth login --sso` that started it, or to the
/// dashboard.
fn refused(cli: Option<&CliLogin>, message: &str) -> Response {
    match cli {
        Some(c) => see_other(&cli_url(c.port, "error", message), None),
        None => to_dashboard_with_error(message),
    }
}

/// The `hearth login --sso` waiting on the loopback `port`, given `key=value`.
fn cli_url(port: u16, key: &str, value: &str) -> String {
    format!("http://127.0.0.1:{port}/?{key}={}", url_encoded(value))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StartQuery {
    /// Link the identity the provider names to the logged-in caller's account instead of logging
    /// in.
    #[serde(default)]
    link: bool,
    /// `hearth login --sso`: the loopback port it waits on; the browser is sent back to
    /// `http://127.0.0.1:PORT/?state=...` (or `?error=...`) instead of the dashboard.
    cli_port: Option<u16>,
    /// With `cli_port`: base64url(SHA-256(verifier)), the verifier the CLI finishes with.
    cli_challenge: Option<String>,
}

/// Start logging in through a single sign-on provider: a browser navigation, answered with a
/// redirect to the provider.
#[utoipa::path(get, path = "/api/v1/auth/sso/{provider}/start", tag = "accounts",
    params(("provider" = String, Path), StartQuery),
    responses((status = 303, description = "to the provider"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, description = "too many logins in flight (sso_busy)", body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = provider(&state, &id)?;
    let cli = match (q.cli_port, q.cli_challenge) {
        (None, None) => None,
        (Some(port), Some(challenge))
            if port != 0
                && !q.link
                && challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(CliLogin { port, challenge })
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_cli_login",
                "cli_port and cli_challenge (43 characters of base64url) go together, without link",
            ));
        }
    };
    let link_user_id = if q.link {
        // A navigation: a refusal goes back to the dashboard as words, not as JSON.
        let Ok(caller) = caller else {
            return Ok(to_dashboard_with_error(
                "your session has ended: log in again, then link the account under Account",
            ));
        };
        caller.require_session("link a single sign-on account")?;
        Some(caller.user.id)
    } else {
        None
    };
    let redirect = redirect_uri(&state, &headers, &id)?;
    let now = now_ms();
    if state.store.sso_logins_in_flight(now).await? >= state.settings.auth.max_sso_logins_in_flight
    {
        tracing::warn!(provider = %id, "single sign-on refused: too many logins in flight");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sso_busy",
            "too many single sign-on logins are under way: try again in a few minutes",
        ));
    }
    let flow_state = random_token();
    let started = match p.start(&redirect, &flow_state).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(provider = %id, error = %crate::error::ErrorChain(&e), "single sign-on could not start");
            // The command line waiting for it is told, not left waiting.
            return Ok(refused(cli.as_ref(), &e.to_string()));
        }
    };
    state
        .store
        .insert_sso_login(&SsoLoginRow {
            state_hash: token_hash(&flow_state),
            provider: id,
            nonce: started.nonce,
            pkce_verifier: started.pkce_verifier,
            redirect_uri: redirect,
            link_user_id,
            user_id: None,
            cli,
            sso_sid: None,
            sso_id_token: None,
            created_at: now,
            expires_at: now + LOGIN_TTL_MS,
        })
        .await?;
    Ok(see_other(
        &started.url,
        Some(sso_cookie(&state, &flow_state, LOGIN_TTL_MS)?),
    ))
}

/// Before the browser hands a command line its login: a page that says who it will be logged in
/// as, with the link that does it. A provider that answers silently (the browser is logged in
/// there) would otherwise hand the login to whatever listens on that port after one click on a
/// link someone sent: a start address with their own challenge, and a listener of theirs on a
/// shared machine. Here the member sees a command-line login they did not start, and stops.
fn cli_consent(port: u16, finish_state: &str, login: &str, provider: &str) -> Response {
    let target = cli_url(port, "state", finish_state);
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Log in the hearth command line?</title></head><body>\
         <h1>Log in the hearth command line?</h1>\
         <p>{provider} vouched for <strong>{login}</strong>. The <code>hearth login --sso</code> \
         waiting on this computer (port {port}) will be logged in as {login}.</p>\
         <p><a id=\"continue\" href=\"{target}\">Log in the command line</a></p>\
         <p>If you did not just run <code>hearth login --sso</code> on this computer, close this \
         tab: nothing happens.</p></body></html>",
        provider = html_text(provider),
        login = html_text(login),
        target = html_text(&target),
    );
    let mut resp = axum::response::Html(page).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `text` safe inside HTML text and double-quoted attributes.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the provider sends the browser back. Answers with a redirect to the dashboard: `/#sso`
/// to finish, `/#sso-linked=ID` after linking, `/#sso-error=MESSAGE` when refused; for a login
/// `hearth login --sso` started, with the page that asks before handing it over, or a redirect to
/// its loopback address with `?error=MESSAGE`.
#[utoipa::path(get, path = "/api/v1/auth/sso/{provider}/callback", tag = "accounts",
    params(("provider" = String, Path), CallbackQuery),
    responses((status = 303, description = "to the dashboard, or to the command line's loopback address with an error"),
        (status = 200, description = "a login the command line started: the page that asks before handing it over", content_type = "text/html")))]
pub async fn callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CallbackQuery>,
    Source(source): Source,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Some(flow_state) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(to_dashboard_with_error(
            "the provider sent back no state: start the login again",
        ));
    };
    if cookie_value(&headers, SSO_COOKIE) != Some(flow_state) {
        return Ok(to_dashboard_with_error(
            "this login was not started in this browser, or took longer than 10 minutes: start \
             it again",
        ));
    }
    let now = now_ms();
    let Some(row) = state
        .store
        .take_sso_login(&token_hash(flow_state), now)
        .await?
        .filter(|r| r.provider == id && r.user_id.is_none())
    else {
        return Ok(to_dashboard_with_error(
            "this login has expired or was finished already: start it again",
        ));
    };
    let p = provider(&state, &id)?;
    // From here on, a login the CLI started goes back to the CLI, errors too.
    let to_error = |message: &str| refused(row.cli.as_ref(), message);
    if let Some(error) = q.error {
        let why = q.error_description.unwrap_or_default();
        return Ok(to_error(&format!(
            "{} refused the login ({error}){}{why}",
            p.config.label(),
            if why.is_empty() { "" } else { ": " }
        )));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return Ok(to_error(&format!(
            "{} sent back neither a code nor an error",
            p.config.label()
        )));
    };
    let vouched = match p
        .finish(&row.redirect_uri, &code, &row.nonce, &row.pkce_verifier)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(provider = %id, error = %crate::error::ErrorChain(&e), "single sign-on refused");
            return Ok(to_error(&e.to_string()));
        }
    };
    match account(&state, &p, &row, &vouched, source.clone(), now).await? {
        Outcome::Linked => Ok(see_other(&format!("/#sso-linked={id}"), None)),
        Outcome::Refused(why) => {
            failed(&state, &id, &vouched, source, now, &why).await?;
            Ok(to_error(&why))
        }
        Outcome::LogIn(user) => {
            let finish_state = random_token();
            let mut tx = state.store.begin().await?;
            tx.await_second_factor(
                &row,
                &token_hash(&finish_state),
                user,
                (vouched.sid.as_deref(), vouched.id_token.as_deref()),
                now + FINISH_TTL_MS,
            )
            .await?;
            tx.touch_sso_identity(&id, &vouched.subject, now).await?;
            tx.commit().await?;
            Ok(match &row.cli {
                // The CLI finishes with this state and its verifier: no cookie for the browser,
                // and the member confirms first (below).
                Some(cli) => {
                    let login = state.store.user_by_id(user).await?.login;
                    cli_consent(cli.port, &finish_state, &login, p.config.label())
                }
                None => see_other(
                    "/#sso",
                    Some(sso_cookie(&state, &finish_state, FINISH_TTL_MS)?),
                ),
            })
        }
    }
}

enum Outcome {
    /// The identity was linked to the member who asked.
    Linked,
    LogIn(UserId),
    Refused(String),
}

/// Finds (linking or creating, as the provider's `accounts` allows) the account `vouched` names.
async fn account(
    state: &AppState,
    p: &Provider,
    row: &SsoLoginRow,
    vouched: &Vouched,
    source: Option<String>,
    now: i64,
) -> ApiResult<Outcome> {
    let id = &p.config.id;
    let label = p.config.label();
    let linked = state.store.sso_identity(id, &vouched.subject).await?;
    let link = |user_id: UserId| SsoIdentityRow {
        provider: id.clone(),
        subject: vouched.subject.clone(),
        user_id,
        claimed: vouched.shown.clone(),
        linked_at: now,
        last_login_at: None,
    };
    let entry = |actor: String, action: &str, user: UserId, details| NewAuditEntry {
        scope: SYSTEM_SCOPE.into(),
        ts_ms: now,
        actor,
        action: action.into(),
        target: Some(format!("user:{user}")),
        source: source.clone(),
        details,
    };
    if let Some(member) = row.link_user_id {
        return Ok(match linked {
            Some(i) if i.user_id == member => Outcome::Linked,
            Some(_) => Outcome::Refused(format!(
                "this {label} account ({}) is linked to another Hearth account",
                vouched.shown
            )),
            None => {
                let mut tx = state.store.begin().await?;
                tx.link_sso_identity(&link(member)).await?;
                tx.append_audit(entry(
                    format!("user:{member}"),
                    "auth.sso_link",
                    member,
                    json!({ "provider": id, "claimed": vouched.shown }),
                ))
                .await?;
                tx.commit().await?;
                state.metrics.audit_entries.fetch_add(1, Relaxed);
                Outcome::Linked
            }
        });
    }
    if let Some(i) = linked {
        return Ok(Outcome::LogIn(i.user_id));
    }
    if p.config.accounts == "linked" {
        return Ok(Outcome::Refused(format!(
            "this {label} account ({}) is not linked to a Hearth account: log in with your \
             passphrase once and link it under Account",
            vouched.shown
        )));
    }
    let Some(login) = vouched.login.as_deref() else {
        let claim = match p.config.login_claim.as_str() {
            "email" => "a verified e-mail address",
            other => other,
        };
        return Ok(Outcome::Refused(format!(
            "{label} did not say which Hearth account this is (no {claim}): ask your \
             administrator"
        )));
    };
    if check_login(login).is_err() {
        return Ok(Outcome::Refused(format!(
            "{label} names the account {login:?}, which cannot be a Hearth login (letters, digits \
             and . _ - @, at most 64)"
        )));
    }
    let (user, created) = match state.store.user_by_login(login).await? {
        Some(u) => (u, false),
        None if p.config.accounts == "create" => (
            UserRow {
                id: UserId::new(),
                login: login.to_owned(),
                secret_hash: NO_SECRET.into(),
                instance_admin: false,
                created_at: now,
            },
            true,
        ),
        None => {
            return Ok(Outcome::Refused(format!(
                "there is no Hearth account {login:?}: ask an administrator to create it"
            )));
        }
    };
    let mut tx = state.store.begin().await?;
    let mut entries = 1;
    if created {
        tx.insert_user(&user).await?;
        tx.append_audit(entry(
            format!("sso:{id}"),
            "user.create",
            user.id,
            json!({ "login": user.login, "instance_admin": false, "sso": id }),
        ))
        .await?;
        entries += 1;
    }
    match tx.link_sso_identity(&link(user.id)).await {
        // Another login of the same identity linked it meanwhile: log in through that link.
        Err(StoreError::Conflict(_)) => {
            drop(tx);
            return Ok(
                match state.store.sso_identity(id, &vouched.subject).await? {
                    Some(i) => Outcome::LogIn(i.user_id),
                    None => Outcome::Refused("the account changed meanwhile: try again".into()),
                },
            );
        }
        r => r?,
    }
    tx.append_audit(entry(
        format!("user:{}", user.id),
        "auth.sso_link",
        user.id,
        json!({ "provider": id, "claimed": vouched.shown, "by_login": login }),
    ))
    .await?;
    tx.commit().await?;
    state.metrics.audit_entries.fetch_add(entries, Relaxed);
    Ok(Outcome::LogIn(user.id))
}

/// A provider vouched for someone Hearth does not let in: audited like a failed login.
async fn failed(
    state: &AppState,
    provider: &str,
    vouched: &Vouched,
    source: Option<String>,
    now: i64,
    why: &str,
) -> ApiResult<()> {
    super::accounts::audit_failed_login(
        state,
        source,
        now,
        json!({ "sso": provider, "claimed": vouched.shown, "subject": vouched.subject, "failed": why }),
    )
    .await
}

/// A provider's back-channel logout request: `logout_token`, form-encoded.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LogoutForm {
    /// The provider's signed logout token (a JWT).
    pub logout_token: String,
}

/// The provider's back-channel logout (OpenID Connect Back-Channel Logout 1.0; register this
/// address as the client's `backchannel_logout_uri`): the provider says that one of its sessions
/// (`sid`), or everything of one of its accounts (`sub`), has logged out. The sessions logins
/// through it opened here end, and, as the provider's `logout_revokes_tokens` says, the API
/// tokens made in them are revoked. Only what was opened before the token was issued ends, so a
/// token sent again ends nothing new. Audited as `auth.sso_logout`.
#[utoipa::path(post, path = "/api/v1/auth/sso/{provider}/logout", tag = "accounts",
    params(("provider" = String, Path)),
    request_body(content = LogoutForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "done (also when nothing was open)"),
        (status = 400, description = "not a valid logout token of this provider (invalid_request)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "the provider's keys could not be fetched (sso_unreachable)", body = ErrorBody)))]
pub async fn backchannel_logout(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Source(source): Source,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let p = provider(&state, &id)?;
    let Some(logout_token) = openidconnect::url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v)
    else {
        return Err(ApiError::bad_request(
            "invalid_request",
            "expected a form (application/x-www-form-urlencoded) with logout_token",
        ));
    };
    let notice = p.logout_token(&logout_token).await.map_err(|e| {
        tracing::warn!(provider = %id, error = %crate::error::ErrorChain(&e), "back-channel logout refused");
        match e {
            SsoError::Rejected { .. } => ApiError::bad_request("invalid_request", e.to_string()),
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "sso_unreachable",
                e.to_string(),
            ),
        }
    })?;
    let user = state
        .store
        .sso_identity(&id, &notice.subject)
        .await?
        .map(|i| i.user_id);
    let now = now_ms();
    let mut tx = state.store.begin().await?;
    let ended = tx
        .end_sso_logins(
            &id,
            user,
            notice.sid.as_deref(),
            notice.issued_at_ms + crate::sso::CLOCK_SKEW_MS,
            p.config.logout_revokes_tokens,
            now,
        )
        .await?;
    tx.append_audit(NewAuditEntry {
        scope: SYSTEM_SCOPE.into(),
        ts_ms: now,
        actor: format!("sso:{id}"),
        action: "auth.sso_logout".into(),
        target: user.map(|u| format!("user:{u}")),
        source,
        details: json!({
            "provider": id,
            "subject": notice.subject,
            "sid": notice.sid,
            "sessions": ended.sessions,
            "tokens": ended.tokens,
        }),
    })
    .await?;
    tx.commit().await?;
    state.metrics.audit_entries.fetch_add(1, Relaxed);
    tracing::info!(provider = %id, sessions = ended.sessions, tokens = ended.tokens, "back-channel logout");
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Finish a login a single sign-on provider vouched for (the dashboard calls it on `/#sso`):
/// opens the session as `POST /auth/login` does, asking the account's own second factor when it
/// has one.
#[utoipa::path(post, path = "/api/v1/auth/sso/finish", tag = "accounts", request_body = SsoFinishRequest, responses(
    (status = 200, body = LoginResponse, headers(("Set-Cookie" = String, description = "hearth_session, HttpOnly, SameSite=Strict"))),
    (status = 401, description = "no login to finish (sso_expired), or the second factor is missing or wrong", body = ErrorBody),
    (status = 429, body = ErrorBody)))]
pub async fn finish(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    Json(req): Json<SsoFinishRequest>,
) -> ApiResult<Response> {
    let (row, hash, user) = vouched_login(&state, &source, &headers, &req).await?;
    let second = second_factor(&state, &user, req.code.as_deref(), req.passkey, &source).await?;
    let mut resp = open_session(
        &state,
        &user,
        By::Sso {
            provider: &row.provider,
            sid: row.sso_sid.as_deref(),
            id_token: row.sso_id_token.as_deref(),
        },
        second,
        source,
        user_agent(&headers),
        json!({ "sso": row.provider }),
        async |tx| {
            if tx.delete_sso_login(&hash).await? {
                Ok(())
            } else {
                Err(sso_expired())
            }
        },
    )
    .await?;
    resp.headers_mut()
        .append(header::SET_COOKIE, sso_cookie(&state, "", 0)?);
    Ok(resp)
}

/// Starts a second factor answered by one of the account's passkeys, for a login the provider
/// vouched for (the dashboard's, by its cookie); the answer goes to `POST /auth/sso/finish` as
/// `passkey`.
#[utoipa::path(post, path = "/api/v1/auth/sso/finish/passkey", tag = "accounts", responses(
    (status = 200, body = PasskeyCeremony),
    (status = 401, description = "no login to finish (sso_expired)", body = ErrorBody),
    (status = 404, description = "passkeys are off on this server (passkeys_off)", body = ErrorBody),
    (status = 409, description = "the account has no passkey (no_passkeys)", body = ErrorBody),
    (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn passkey_second_factor(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
) -> ApiResult<Json<PasskeyCeremony>> {
    let (_, _, user) =
        vouched_login(&state, &source, &headers, &SsoFinishRequest::default()).await?;
    super::passkeys::challenge_second_factor(&state, &user).await
}

fn sso_expired() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "sso_expired",
        "no single sign-on to finish here (it took longer than 5 minutes, or was finished \
         already): log in again",
    )
}

/// The login a provider vouched for that this request may finish, the hash it is kept under and
/// its account (within the failed-login limits). The dashboard's login comes with its cookie; the
/// CLI's with the state its loopback address was given and the verifier of the challenge it
/// started with. Neither finishes the other's.
async fn vouched_login(
    state: &AppState,
    source: &Option<String>,
    headers: &HeaderMap,
    req: &SsoFinishRequest,
) -> ApiResult<(SsoLoginRow, String, UserRow)> {
    let from_cli = req.state.is_some();
    let flow_state = match req.state.as_deref() {
        Some(s) => s,
        None => cookie_value(headers, SSO_COOKIE).ok_or_else(sso_expired)?,
    };
    let hash = token_hash(flow_state);
    let row = state
        .store
        .sso_login(&hash, now_ms())
        .await?
        .ok_or_else(sso_expired)?;
    match (&row.cli, from_cli) {
        (None, false) => {}
        (Some(cli), true)
            if req.verifier.as_deref().is_some_and(|v| {
                let digest = sha2::Sha256::digest(v.as_bytes());
                let sent = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
                crate::auth::constant_time_eq(sent.as_bytes(), cli.challenge.as_bytes())
            }) => {}
        _ => return Err(sso_expired()),
    }
    let user_id = row.user_id.ok_or_else(sso_expired)?;
    let user = state.store.user_by_id(user_id).await?;
    if let Err(wait) = state.limiter.check(&user.login, source.as_deref()) {
        state.metrics.logins_throttled.fetch_add(1, Relaxed);
        return Err(ApiError::rate_limited(wait));
    }
    Ok((row, hash, user))
}

/// The caller's accounts at single sign-on providers.
#[utoipa::path(get, path = "/api/v1/me/sso", tag = "accounts", responses((status = 200, body = Vec<SsoIdentity>), (status = 401, body = ErrorBody)))]
pub async fn list_identities(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SsoIdentity>>> {
    let rows = state.store.sso_identities_of(caller.user.id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| SsoIdentity {
                provider_name: state
                    .sso
                    .get(&r.provider)
                    .map(|p| p.config.label().to_owned())
                    .unwrap_or_default(),
                provider: r.provider,
                claimed: r.claimed,
                linked_at: rfc3339(r.linked_at),
                last_login_at: r.last_login_at.map(rfc3339),
            })
            .collect(),
    ))
}

/// Unlink the caller's account at a provider: it no longer logs in to this account.
#[utoipa::path(delete, path = "/api/v1/me/sso/{provider}", tag = "accounts", params(("provider" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, description = "the account's only way in", body = ErrorBody)))]
pub async fn unlink(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let identities = state.store.sso_identities_of(caller.user.id).await?;
    if !identities.iter().any(|i| i.provider == id) {
        return Err(ApiError::not_found(format!("a linked account at {id:?}")));
    }
    if caller.user.secret_hash == NO_SECRET && identities.iter().all(|i| i.provider == id) {
        return Err(ApiError::conflict(
            "this account has no passphrase: the provider is its only way in, so it stays linked",
        ));
    }
    let mut tx = state.store.begin().await?;
    let n = tx.unlink_sso_identities(caller.user.id, &id).await?;
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "auth.sso_unlink",
        Some(format!("user:{}", caller.user.id)),
        json!({ "provider": id, "identities": n }),
    ))
    .await?;
    tx.commit().await?;
    state.metrics.audit_entries.fetch_add(1, Relaxed);
    Ok(StatusCode::NO_CONTENT)
}
