//! Passkeys: members register WebAuthn credentials from the dashboard and log in with them
//! instead of the passphrase. A passkey login is discoverable (the authenticator names the account,
//! nobody types a login) and asks the authenticator to verify its user (PIN, fingerprint), so it
//! stands for both factors; it opens a session like the passphrase login does (same throttle, same
//! `open_session`). It opens nothing sealed: keys stay with the passphrase on members' devices.
//!
//! A passkey also answers the second factor of a passphrase login, instead of the authenticator
//! app's code: `POST /auth/login/passkey` checks the login and secret, then challenges the
//! account's own passkeys, and `POST /auth/login` takes the answer in `passkey`.
//!
//! Every ceremony's state stays on the server (several instances share it through the database),
//! is named by a random id whose hash is stored, and is taken once within five minutes.

use super::accounts::{
    By, Source, UsedPasskey, audit_failed_login, check_passphrase, fresh_session, login_failed,
    open_session, printable_name, user_agent,
};
use crate::auth::{Caller, random_token, token_hash};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use hearth_proto::api::{
    ErrorBody, LoginResponse, PasskeyCeremony, PasskeyInfo, PasskeyLoginFinish,
    PasskeyRegisterFinish, PasskeyRegisterRequest, PasskeyRename, PasskeySecondFactorRequest,
};
use hearth_proto::audit::SYSTEM_SCOPE;
use hearth_proto::ids::UserId;
use hearth_proto::time_fmt::{now_ms, rfc3339};
use hearth_store::passkeys::{CeremonyKind, CeremonyRow, PasskeyRow};
use hearth_store::{StoreError, UserRow};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Webauthn,
};

/// How long a registration or login may take between its start and its finish.
const CEREMONY_MS: i64 = 5 * 60 * 1000;
/// The longest name of a passkey.
const MAX_NAME_CHARS: usize = 64;

fn relying_party(state: &AppState) -> ApiResult<&Webauthn> {
    state.passkeys.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "passkeys_off",
            "this server has no passkeys: its administrator sets public_url to the name members \
             browse to (not an IP address)",
        )
    })
}

fn expired() -> ApiError {
    ApiError::bad_request(
        "passkey_expired",
        "this passkey request is unknown, used already or older than five minutes: start again",
    )
}

/// A passkey answer refused: the credential is not this server's (or not the account's), or
/// its signature does not check out.
fn refused() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "passkey_invalid",
        "this passkey is not (or no longer) registered with this server, or its answer did not \
         check out",
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn stored<T: DeserializeOwned>(json: &str) -> ApiResult<T> {
    serde_json::from_str(json).map_err(|e| ApiError::internal(std::io::Error::other(e)))
}

fn to_json<T: Serialize>(value: &T) -> ApiResult<String> {
    serde_json::to_string(value).map_err(|e| ApiError::internal(std::io::Error::other(e)))
}

fn info(p: &PasskeyRow) -> PasskeyInfo {
    PasskeyInfo {
        id: p.credential_id.clone(),
        name: p.name.clone(),
        created_at: rfc3339(p.created_at),
        last_used_at: p.last_used_at.map(rfc3339),
    }
}

/// Stores a ceremony's state under a new random id, within the cap on those in flight; the id
/// and `options` for the browser.
async fn begin(
    state: &AppState,
    kind: CeremonyKind,
    user: Option<&UserRow>,
    ceremony_state: &impl Serialize,
    options: &impl Serialize,
) -> ApiResult<Json<PasskeyCeremony>> {
    let now = now_ms();
    if state.store.passkey_ceremonies_in_flight(now).await?
        >= state.settings.auth.max_passkey_ceremonies_in_flight
    {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "passkeys_busy",
            "too many passkey logins and registrations are in progress: try again in a few minutes",
        ));
    }
    let ceremony = random_token();
    state
        .store
        .insert_passkey_ceremony(&CeremonyRow {
            id_hash: token_hash(&ceremony),
            kind,
            user_id: user.map(|u| u.id),
            state: to_json(ceremony_state)?,
            created_at: now,
            expires_at: now + CEREMONY_MS,
        })
        .await?;
    let options =
        serde_json::to_value(options).map_err(|e| ApiError::internal(std::io::Error::other(e)))?;
    Ok(Json(PasskeyCeremony { ceremony, options }))
}

/// This account's passkeys, oldest first.
#[utoipa::path(get, path = "/api/v1/me/passkeys", tag = "accounts", responses(
    (status = 200, body = Vec<PasskeyInfo>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<PasskeyInfo>>> {
    let keys = state.store.passkeys_of(caller.user.id).await?;
    Ok(Json(keys.iter().map(info).collect()))
}

/// Starts adding a passkey to this account, in a browser session opened less than five minutes
/// ago or with the login secret again (a session left open elsewhere cannot add a way in).
#[utoipa::path(post, path = "/api/v1/me/passkeys/register", tag = "accounts", request_body = PasskeyRegisterRequest, responses(
    (status = 200, body = PasskeyCeremony),
    (status = 403, description = "an API token, or an older session without the login secret (reauth_required)", body = ErrorBody),
    (status = 404, description = "passkeys are off on this server (passkeys_off)", body = ErrorBody),
    (status = 422, description = "a name given that finish would refuse", body = ErrorBody),
    (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn register_start(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<PasskeyRegisterRequest>,
) -> ApiResult<Json<PasskeyCeremony>> {
    let rp = relying_party(&state)?;
    caller.require_session("add a passkey")?;
    // Refused before the authenticator makes a credential the server would not keep.
    if let Some(name) = &req.name {
        checked_name(name)?;
    }
    let user = &caller.user;
    if !fresh_session(&caller, now_ms()) {
        let Some(secret) = req.secret.filter(|s| !s.is_empty()) else {
            return Err(reauth(
                "give your passphrase again, or log in again: this session is older than five minutes",
            ));
        };
        if let Err(wait) = state.limiter.check(&user.login, caller.source.as_deref()) {
            return Err(ApiError::rate_limited(wait));
        }
        if !state
            .hasher
            .verify(Some(user.secret_hash.clone()), secret)
            .await
        {
            login_failed(
                &state,
                &user.login,
                caller.source.clone(),
                now_ms(),
                Some("passphrase to add a passkey"),
            )
            .await?;
            return Err(reauth("that is not this account's passphrase"));
        }
    }
    // The member's own passkeys, so that an authenticator holding one says so instead of
    // replacing it with a second credential for the same account.
    let exclude = state
        .store
        .passkeys_of(user.id)
        .await?
        .iter()
        .filter_map(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&p.credential_id)
                .ok()
        })
        .map(CredentialID::from)
        .collect();
    let (options, registration) = rp
        .start_passkey_registration(user.id.0, &user.login, &user.login, Some(exclude))
        .map_err(|e| ApiError::internal(std::io::Error::other(e)))?;
    // Logins are discoverable (the authenticator names the account), so the credential must be
    // one the authenticator keeps; webauthn-rs asks for none by default, and its options type
    // is not exported, so the JSON is changed (the registration's state does not depend on it).
    let mut options =
        serde_json::to_value(&options).map_err(|e| ApiError::internal(std::io::Error::other(e)))?;
    options["publicKey"]["authenticatorSelection"]["residentKey"] = json!("required");
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = json!(true);
    begin(
        &state,
        CeremonyKind::Register,
        Some(user),
        &registration,
        &options,
    )
    .await
}

/// A passkey's name, trimmed: 1 to 64 printable characters.
fn checked_name(name: &str) -> ApiResult<&str> {
    printable_name(name, MAX_NAME_CHARS).ok_or_else(|| {
        ApiError::invalid(format!(
            "a passkey's name is 1 to {MAX_NAME_CHARS} printable characters"
        ))
    })
}

fn reauth(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "reauth_required", message)
}

/// Finishes adding a passkey with the authenticator's new credential.
#[utoipa::path(post, path = "/api/v1/me/passkeys/register/finish", tag = "accounts", request_body = PasskeyRegisterFinish, responses(
    (status = 201, body = PasskeyInfo),
    (status = 400, description = "unknown, used or expired ceremony (passkey_expired); an answer that does not verify (passkey_invalid)", body = ErrorBody),
    (status = 409, description = "this credential is registered already", body = ErrorBody),
    (status = 422, body = ErrorBody)))]
pub async fn register_finish(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<PasskeyRegisterFinish>,
) -> ApiResult<(StatusCode, Json<PasskeyInfo>)> {
    let rp = relying_party(&state)?;
    caller.require_session("add a passkey")?;
    let name = checked_name(&req.name)?;
    let now = now_ms();
    let taken = state
        .store
        .take_passkey_ceremony(&token_hash(&req.ceremony), CeremonyKind::Register, now)
        .await?
        .filter(|c| c.user_id == Some(caller.user.id))
        .ok_or_else(expired)?;
    let registration: PasskeyRegistration = stored(&taken.state)?;
    let credential: RegisterPublicKeyCredential =
        serde_json::from_value(req.credential).map_err(|e| {
            invalid(format!(
                "the browser's answer is not a WebAuthn credential: {e}"
            ))
        })?;
    let key = rp
        .finish_passkey_registration(&credential, &registration)
        .map_err(|e| {
            invalid(format!(
                "the authenticator's answer did not check out ({e})"
            ))
        })?;
    let row = PasskeyRow {
        credential_id: b64(key.cred_id()),
        user_id: caller.user.id,
        name: name.to_owned(),
        credential: to_json(&key)?,
        created_at: now,
        last_used_at: None,
    };
    let mut tx = state.store.begin().await?;
    tx.insert_passkey(&row).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::new(
            StatusCode::CONFLICT,
            "passkey_exists",
            "this passkey is registered already",
        ),
        other => other.into(),
    })?;
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "auth.passkey_add",
        None,
        json!({ "passkey": row.credential_id, "name": row.name }),
    ))
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(info(&row))))
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("passkey_invalid", message)
}

/// Removes one of this account's passkeys, and ends the sessions it opened (also with an API
/// token: a lost device's passkey can be removed from the command line).
#[utoipa::path(delete, path = "/api/v1/me/passkeys/{id}", tag = "accounts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    let Some((name, sessions_ended)) = tx.delete_passkey(caller.user.id, &id).await? else {
        return Err(ApiError::not_found("passkey"));
    };
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "auth.passkey_remove",
        None,
        json!({ "passkey": id, "name": name, "sessions_ended": sessions_ended }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Renames one of this account's passkeys.
#[utoipa::path(patch, path = "/api/v1/me/passkeys/{id}", tag = "accounts", params(("id" = String, Path)),
    request_body = PasskeyRename,
    responses((status = 200, body = PasskeyInfo), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<PasskeyRename>,
) -> ApiResult<Json<PasskeyInfo>> {
    let name = checked_name(&req.name)?;
    let mut tx = state.store.begin().await?;
    let Some(was) = tx.rename_passkey(caller.user.id, &id, name).await? else {
        return Err(ApiError::not_found("passkey"));
    };
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "auth.passkey_rename",
        None,
        json!({ "passkey": id, "name": name, "was": was }),
    ))
    .await?;
    tx.commit().await?;
    let row = state
        .store
        .passkey(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("passkey"))?;
    Ok(Json(info(&row)))
}

/// Removes all of a user's passkeys and ends the sessions they opened (instance admins): a member
/// whose device was lost or taken and who cannot log in to remove its passkey themselves.
#[utoipa::path(delete, path = "/api/v1/users/{id}/passkeys", tag = "accounts", params(("id" = UserId, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, description = "no such user, or no passkey", body = ErrorBody)))]
pub async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<UserId>,
) -> ApiResult<StatusCode> {
    caller.require_instance_admin()?;
    let user = state.store.user_by_id(id).await?;
    let mut tx = state.store.begin().await?;
    let (removed, sessions_ended) = tx.delete_passkeys_of(user.id).await?;
    if removed == 0 {
        return Err(ApiError::not_found(format!("a passkey of {}", user.login)));
    }
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "auth.passkey_reset",
        Some(format!("user:{id}")),
        json!({ "login": user.login, "passkeys": removed, "sessions_ended": sessions_ended }),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a passkey login: a challenge any of this server's passkeys can answer.
#[utoipa::path(post, path = "/api/v1/auth/passkey/start", tag = "accounts", responses(
    (status = 200, body = PasskeyCeremony),
    (status = 404, description = "passkeys are off on this server (passkeys_off)", body = ErrorBody),
    (status = 503, body = ErrorBody)))]
pub async fn login_start(State(state): State<AppState>) -> ApiResult<Json<PasskeyCeremony>> {
    let rp = relying_party(&state)?;
    let (mut options, login) = rp
        .start_discoverable_authentication()
        .map_err(|e| ApiError::internal(std::io::Error::other(e)))?;
    // A button asks for it (a modal request), not the login field's autofill.
    options.mediation = None;
    begin(&state, CeremonyKind::Login, None, &login, &options).await
}

/// Finishes a passkey login: opens a browser session as `POST /auth/login` does.
#[utoipa::path(post, path = "/api/v1/auth/passkey/finish", tag = "accounts", request_body = PasskeyLoginFinish, responses(
    (status = 200, body = LoginResponse, headers(("Set-Cookie" = String, description = "hearth_session, HttpOnly, SameSite=Strict"))),
    (status = 400, description = "unknown, used or expired ceremony (passkey_expired)", body = ErrorBody),
    (status = 401, description = "an unknown passkey, or an answer that does not verify (passkey_invalid)", body = ErrorBody),
    (status = 429, body = ErrorBody)))]
pub async fn login_finish(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    Json(req): Json<PasskeyLoginFinish>,
) -> ApiResult<Response> {
    let rp = relying_party(&state)?;
    if let Err(wait) = state.limiter.check_address(source.as_deref()) {
        return Err(ApiError::rate_limited(wait));
    }
    let now = now_ms();
    let taken = state
        .store
        .take_passkey_ceremony(&token_hash(&req.ceremony), CeremonyKind::Login, now)
        .await?
        .ok_or_else(expired)?;
    let login: DiscoverableAuthentication = stored(&taken.state)?;
    let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(req.credential) else {
        return Err(refused());
    };
    // The authenticator names the account (user handle) and the credential; both must be ours
    // and agree before its signature is checked against the stored key.
    let found = match rp.identify_discoverable_authentication(&credential) {
        Ok((handle, id)) => state
            .store
            .passkey(&b64(id))
            .await?
            .filter(|p| p.user_id.0 == handle),
        Err(_) => None,
    };
    let Some(row) = found else {
        // The id is the caller's: the audit log keeps a bounded prefix of it.
        let claimed: String = b64(credential.get_credential_id())
            .chars()
            .take(128)
            .collect();
        let details = json!({ "passkey": claimed, "failed": "unknown passkey" });
        state.limiter.record_address_failure(source.as_deref());
        audit_failed_login(&state, source, now, details).await?;
        return Err(refused());
    };
    let user = state.store.user_by_id(row.user_id).await?;
    if let Err(wait) = state.limiter.check(&user.login, source.as_deref()) {
        return Err(ApiError::rate_limited(wait));
    }
    let mut key: Passkey = stored(&row.credential)?;
    let checked =
        rp.finish_discoverable_authentication(&credential, login, &[DiscoverableKey::from(&key)]);
    let Ok(result) = checked else {
        login_failed(&state, &user.login, source, now, Some("passkey")).await?;
        return Err(refused());
    };
    key.update_credential(&result);
    let credential_json = to_json(&key)?;
    let details = json!({ "passkey": row.credential_id, "name": row.name });
    open_session(
        &state,
        &user,
        By::Passkey(&row.credential_id),
        None,
        source,
        user_agent(&headers),
        details,
        async |tx| {
            tx.use_passkey(&row.credential_id, &credential_json, now)
                .await?;
            Ok(())
        },
    )
    .await
}

/// Starts a second factor answered by a passkey, for a passphrase login: the login and secret are
/// checked as `POST /auth/login` checks them (a wrong one counts as a failed login), and only then
/// is the challenge made, naming the account's own passkeys.
#[utoipa::path(post, path = "/api/v1/auth/login/passkey", tag = "accounts", request_body = PasskeySecondFactorRequest, responses(
    (status = 200, body = PasskeyCeremony),
    (status = 401, description = "wrong login or secret", body = ErrorBody),
    (status = 404, description = "passkeys are off on this server (passkeys_off)", body = ErrorBody),
    (status = 409, description = "the account has no passkey (no_passkeys)", body = ErrorBody),
    (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn second_factor_start(
    State(state): State<AppState>,
    Source(source): Source,
    Json(req): Json<PasskeySecondFactorRequest>,
) -> ApiResult<Json<PasskeyCeremony>> {
    relying_party(&state)?;
    let user = check_passphrase(&state, &req.login, req.secret, &source).await?;
    challenge_second_factor(&state, &user).await
}

/// The challenge of a second factor answered by one of `user`'s passkeys (after a passphrase or
/// a single sign-on vouched for them); 409 `no_passkeys` when they have none.
pub(crate) async fn challenge_second_factor(
    state: &AppState,
    user: &UserRow,
) -> ApiResult<Json<PasskeyCeremony>> {
    let rp = relying_party(state)?;
    // A stored credential that does not read (written by another version) cannot answer: the
    // others still can.
    let keys: Vec<Passkey> = state
        .store
        .passkeys_of(user.id)
        .await?
        .iter()
        .filter_map(|p| {
            serde_json::from_str(&p.credential)
                .inspect_err(|e| {
                    tracing::warn!(passkey = p.credential_id, "unreadable passkey: {e}")
                })
                .ok()
        })
        .collect();
    if keys.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_passkeys",
            "this account has no passkey: give the code of its authenticator app, or a recovery \
             code",
        ));
    }
    let (options, check) = rp
        .start_passkey_authentication(&keys)
        .map_err(|e| ApiError::internal(std::io::Error::other(e)))?;
    begin(
        state,
        CeremonyKind::SecondFactor,
        Some(user),
        &check,
        &options,
    )
    .await
}

/// Checks a passkey's `answer` to the second-factor challenge started for `user`: the ceremony
/// must be theirs and unused, the credential one of their passkeys, and its signature right. A
/// wrong answer counts as a failed login of theirs.
pub(crate) async fn second_factor(
    state: &AppState,
    user: &UserRow,
    answer: PasskeyLoginFinish,
    source: &Option<String>,
    now: i64,
) -> ApiResult<UsedPasskey> {
    let rp = relying_party(state)?;
    let taken = state
        .store
        .take_passkey_ceremony(
            &token_hash(&answer.ceremony),
            CeremonyKind::SecondFactor,
            now,
        )
        .await?
        .filter(|c| c.user_id == Some(user.id))
        .ok_or_else(expired)?;
    let check: PasskeyAuthentication = stored(&taken.state)?;
    let verified = serde_json::from_value::<PublicKeyCredential>(answer.credential)
        .ok()
        .and_then(|c| rp.finish_passkey_authentication(&c, &check).ok());
    let found = match &verified {
        Some(result) => state
            .store
            .passkey(&b64(result.cred_id()))
            .await?
            .filter(|p| p.user_id == user.id)
            .map(|row| (result, row)),
        None => None,
    };
    let Some((result, row)) = found else {
        login_failed(
            state,
            &user.login,
            source.clone(),
            now,
            Some("passkey as second factor"),
        )
        .await?;
        return Err(refused());
    };
    let mut key: Passkey = stored(&row.credential)?;
    key.update_credential(result);
    Ok(UsedPasskey {
        credential: to_json(&key)?,
        id: row.credential_id,
        name: row.name,
    })
}
