//! API tokens for the CLI and automation: shown once, stored hashed, scoped, revocable, with last use.

use crate::auth::{Caller, TOKEN_PREFIX, random_token, token_hash};
use crate::error::{ApiError, ApiResult, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use hearth_proto::Role;
use hearth_proto::api::{ApiTokenInfo, CreateTokenRequest, CreatedToken, ErrorBody};
use hearth_proto::audit::SYSTEM_SCOPE;
use hearth_proto::ids::TokenId;
use hearth_proto::time_fmt::now_ms;
use hearth_store::TokenRow;
use serde_json::json;

/// Create a token (needs a login session). The secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateTokenRequest, responses(
    (status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    caller.require_session("create API tokens (tokens cannot create tokens)")?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::invalid("a token name must be 1-100 characters"));
    }
    if let Some(org) = req.org
        && state.store.role_in(org, caller.user.id).await?.is_none()
    {
        return Err(ApiError::invalid(format!(
            "you are not a member of organisation {org}"
        )));
    }
    let now = now_ms();
    let expires_at = match req.expires_in_days {
        Some(0) => return Err(ApiError::invalid("expires_in_days must be at least 1")),
        Some(d) => Some(now + i64::from(d) * 86_400_000),
        None => None,
    };
    let secret = format!("{TOKEN_PREFIX}{}", random_token());
    let row = TokenRow {
        id: TokenId::new(),
        user_id: caller.user.id,
        org_id: req.org,
        name: name.to_owned(),
        max_role: req.max_role.unwrap_or(Role::Owner),
        created_at: now,
        last_used_at: None,
        expires_at,
        revoked_at: None,
        // Made in a session opened through a provider, it counts as such for an organisation
        // that requires single sign-on.
        sso_provider: caller.sso().map(str::to_owned),
        sso_sid: caller.sso_sid().map(str::to_owned),
    };
    let mut tx = state.store.begin().await?;
    tx.insert_token(&row, &token_hash(&secret)).await?;
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "token.create",
        Some(format!("token:{}", row.id)),
        json!({ "name": row.name, "org": row.org_id, "max_role": row.max_role, "expires_at": row.expires_at }),
    ))
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: row.to_api(),
            token: secret,
        }),
    ))
}

/// The caller's tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<ApiTokenInfo>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApiTokenInfo>>> {
    Ok(Json(
        state
            .store
            .tokens_of(caller.user.id)
            .await?
            .iter()
            .map(TokenRow::to_api)
            .collect(),
    ))
}

/// Revoke one of the caller's tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = TokenId, Path)), responses(
    (status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<TokenId>,
) -> ApiResult<StatusCode> {
    let mut tx = state.store.begin().await?;
    tx.revoke_token(id, caller.user.id, now_ms()).await?;
    tx.append_audit(caller.audit(
        SYSTEM_SCOPE,
        "token.revoke",
        Some(format!("token:{id}")),
        json!({}),
    ))
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
