//! The SQL behind [`Store`] reads and [`Tx`] writes, grouped by table.

use crate::models::*;
use crate::rows::{all_by, map_all, one_by, parsed, parsed_opt};
use crate::{Result, Store, StoreError, Tx};
use hearth_proto::Role;
use hearth_proto::ids::{BlobHash, OrgId, TokenId, UploadId, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

const USER_COLS: &str = "id, login, secret_hash, instance_admin, created_at";

fn user(row: &AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        id: parsed(row, "id")?,
        login: row.try_get("login")?,
        secret_hash: row.try_get("secret_hash")?,
        instance_admin: row.try_get::<i64, _>("instance_admin")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

const ORG_COLS: &str =
    "id, name, quota_bytes, created_at, require_mfa, require_approval, require_sso";

fn org(row: &AnyRow) -> Result<OrgRow> {
    Ok(OrgRow {
        id: parsed(row, "id")?,
        name: row.try_get("name")?,
        quota_bytes: row.try_get("quota_bytes")?,
        created_at: row.try_get("created_at")?,
        require_mfa: row.try_get::<i64, _>("require_mfa")? != 0,
        require_approval: row.try_get::<i64, _>("require_approval")? != 0,
        require_sso: row.try_get::<i64, _>("require_sso")? != 0,
    })
}

const TOKEN_COLS: &str = "id, user_id, org_id, name, max_role, created_at, last_used_at, \
                          expires_at, revoked_at, sso_provider, sso_sid";

fn token(row: &AnyRow) -> Result<TokenRow> {
    Ok(TokenRow {
        id: parsed(row, "id")?,
        user_id: parsed(row, "user_id")?,
        org_id: parsed_opt(row, "org_id")?,
        name: row.try_get("name")?,
        max_role: parsed(row, "max_role")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        sso_provider: row.try_get("sso_provider")?,
        sso_sid: row.try_get("sso_sid")?,
    })
}

const BLOB_COLS: &str = "org_id, sha256, size, created_at, created_by";

fn blob(row: &AnyRow) -> Result<BlobRow> {
    Ok(BlobRow {
        org_id: parsed(row, "org_id")?,
        sha256: parsed(row, "sha256")?,
        size: row.try_get("size")?,
        created_at: row.try_get("created_at")?,
        created_by: parsed(row, "created_by")?,
    })
}

const UPLOAD_COLS: &str = "id, org_id, user_id, length, sha256, created_at, expires_at";

fn upload(row: &AnyRow) -> Result<UploadRow> {
    Ok(UploadRow {
        id: parsed(row, "id")?,
        org_id: parsed(row, "org_id")?,
        user_id: parsed(row, "user_id")?,
        length: row.try_get("length")?,
        sha256: parsed(row, "sha256")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

// Queries that both reads (on the pool) and transactions (before a change they guard) need: written once,
// generic over where they run.

async fn user_count<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(db: E) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(db)
        .await?;
    Ok(row.try_get("n")?)
}

async fn role_in<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    org_id: OrgId,
    user_id: UserId,
) -> Result<Option<Role>> {
    let row = sqlx::query("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(|r| parsed(r, "role")).transpose()
}

/// Bytes stored and bytes promised to uploads in progress, in one query.
async fn usage<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    org_id: OrgId,
) -> Result<UsageRow> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE((SELECT SUM(size) FROM blobs WHERE org_id = $1), 0) \
         + COALESCE((SELECT SUM(size) FROM timelapse_frames WHERE org_id = $1), 0) AS BIGINT) AS used, \
         CAST(COALESCE((SELECT SUM(length) FROM uploads WHERE org_id = $1), 0) AS BIGINT) AS reserved",
    )
    .bind(org_id.to_string())
    .fetch_one(db)
    .await?;
    Ok(UsageRow {
        used: row.try_get("used")?,
        reserved: row.try_get("reserved")?,
    })
}

/// Reads.
impl Store {
    pub async fn user_count(&self) -> Result<i64> {
        user_count(self.pool()).await
    }

    pub async fn user_by_login(&self, login: &str) -> Result<Option<UserRow>> {
        let q = format!("SELECT {USER_COLS} FROM users WHERE login = $1");
        sqlx::query(&q)
            .bind(login)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(user)
            .transpose()
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<UserRow> {
        let q = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        one_by(self.pool(), &q, id.to_string(), user, || {
            format!("user {id}")
        })
        .await
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        let q = format!("SELECT {USER_COLS} FROM users ORDER BY login");
        sqlx::query(&q)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(user)
            .collect()
    }

    pub async fn org_by_id(&self, id: OrgId) -> Result<OrgRow> {
        let q = format!("SELECT {ORG_COLS} FROM orgs WHERE id = $1");
        one_by(self.pool(), &q, id.to_string(), org, || {
            format!("organisation {id}")
        })
        .await
    }

    /// The organisations a user belongs to, with their role in each.
    pub async fn memberships_of(&self, user_id: UserId) -> Result<Vec<(OrgRow, Role)>> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.quota_bytes, o.created_at, o.require_mfa, o.require_approval, o.require_sso, m.role \
             FROM memberships m \
             JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY o.name",
        )
        .bind(user_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((org(r)?, parsed(r, "role")?)))
            .collect()
    }

    pub async fn role_in(&self, org_id: OrgId, user_id: UserId) -> Result<Option<Role>> {
        role_in(self.pool(), org_id, user_id).await
    }

    pub async fn members(&self, org_id: OrgId) -> Result<Vec<(UserRow, Role)>> {
        let rows = sqlx::query(
            "SELECT u.id, u.login, u.secret_hash, u.instance_admin, u.created_at, m.role \
             FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY u.login",
        )
        .bind(org_id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((user(r)?, parsed(r, "role")?)))
            .collect()
    }

    /// A user's login sessions not yet expired, newest first.
    pub async fn sessions_of(&self, user: UserId, now_ms: i64) -> Result<Vec<SessionListing>> {
        let rows = sqlx::query(
            "SELECT s.token_hash, s.created_at, s.expires_at, s.source, s.user_agent, \
             s.sso_provider, p.name AS passkey, s.second_factor FROM sessions s \
             LEFT JOIN passkeys p ON p.credential_id = s.passkey \
             WHERE s.user_id = $1 AND s.expires_at > $2 ORDER BY s.created_at DESC",
        )
        .bind(user.to_string())
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionListing {
                    token_hash: r.try_get("token_hash")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    source: r.try_get("source")?,
                    user_agent: r.try_get("user_agent")?,
                    sso_provider: r.try_get("sso_provider")?,
                    passkey: r.try_get("passkey")?,
                    second_factor: r.try_get("second_factor")?,
                })
            })
            .collect()
    }

    /// The session behind a session-cookie hash, if it exists and has not expired.
    pub async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT user_id, csrf_token, created_at, expires_at, sso_provider, sso_sid, \
             sso_id_token, passkey, second_factor FROM sessions \
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                user_id: parsed(&r, "user_id")?,
                csrf_token: r.try_get("csrf_token")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                sso_provider: r.try_get("sso_provider")?,
                sso_sid: r.try_get("sso_sid")?,
                sso_id_token: r.try_get("sso_id_token")?,
                passkey: r.try_get("passkey")?,
                second_factor: r.try_get("second_factor")?,
            })
        })
        .transpose()
    }

    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>> {
        let q = format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1");
        sqlx::query(&q)
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(token)
            .transpose()
    }

    pub async fn tokens_of(&self, user_id: UserId) -> Result<Vec<TokenRow>> {
        let q = format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id"
        );
        map_all(&all_by(self.pool(), &q, user_id.to_string()).await?, token)
    }

    /// Record that a token was used. Best effort by design: callers throttle it, and a failure here must
    /// not fail the request it belongs to, so the caller logs it.
    pub async fn touch_token(&self, id: TokenId, now_ms: i64) -> Result<()> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn blob(&self, org_id: OrgId, sha256: &BlobHash) -> Result<BlobRow> {
        let q = format!("SELECT {BLOB_COLS} FROM blobs WHERE org_id = $1 AND sha256 = $2");
        let row = sqlx::query(&q)
            .bind(org_id.to_string())
            .bind(sha256.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref()
            .map(blob)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("blob {sha256}")))
    }

    /// Blobs of an organisation in hash order, `limit` at a time after `after`.
    pub async fn blobs(
        &self,
        org_id: OrgId,
        after: Option<&BlobHash>,
        limit: i64,
    ) -> Result<Vec<BlobRow>> {
        let q = format!(
            "SELECT {BLOB_COLS} FROM blobs WHERE org_id = $1 AND sha256 > $2 ORDER BY sha256 LIMIT $3"
        );
        sqlx::query(&q)
            .bind(org_id.to_string())
            .bind(after.map(|h| h.as_str().to_owned()).unwrap_or_default())
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(blob)
            .collect()
    }

    /// Every distinct blob hash any organisation references (for backups and garbage collection).
    pub async fn all_blob_hashes(&self) -> Result<Vec<(BlobHash, i64)>> {
        let rows = sqlx::query(
            "SELECT sha256, MAX(size) AS size FROM (SELECT sha256, size FROM blobs \
             UNION ALL SELECT sha256, size FROM timelapse_frames) b GROUP BY sha256 ORDER BY sha256",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((parsed(r, "sha256")?, r.try_get("size")?)))
            .collect()
    }

    pub async fn usage(&self, org_id: OrgId) -> Result<UsageRow> {
        usage(self.pool(), org_id).await
    }

    pub async fn upload(&self, id: UploadId) -> Result<UploadRow> {
        let q = format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = $1");
        one_by(self.pool(), &q, id.to_string(), upload, || {
            format!("upload {id}")
        })
        .await
    }

    pub async fn expired_uploads(&self, now_ms: i64) -> Result<Vec<UploadRow>> {
        let q = format!("SELECT {UPLOAD_COLS} FROM uploads WHERE expires_at <= $1");
        sqlx::query(&q)
            .bind(now_ms)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(upload)
            .collect()
    }
}

/// Writes, inside a transaction.
impl Tx {
    pub async fn replace_setup_token(&mut self, token_hash: &str, now_ms: i64) -> Result<()> {
        sqlx::query("DELETE FROM setup_tokens")
            .execute(&mut *self.inner)
            .await?;
        sqlx::query("INSERT INTO setup_tokens (token_hash, created_at) VALUES ($1, $2)")
            .bind(token_hash)
            .bind(now_ms)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Consume the setup token: true if it was valid (and is now gone), false otherwise.
    pub async fn consume_setup_token(&mut self, token_hash: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM setup_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn user_count(&mut self) -> Result<i64> {
        user_count(&mut *self.inner).await
    }

    pub async fn insert_user(&mut self, u: &UserRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, login, secret_hash, instance_admin, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(u.id.to_string())
        .bind(&u.login)
        .bind(&u.secret_hash)
        .bind(i64::from(u.instance_admin))
        .bind(u.created_at)
        .execute(&mut *self.inner)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("the login {:?} is taken", u.login)),
            other => other,
        })?;
        Ok(())
    }

    pub async fn set_user_secret(&mut self, id: UserId, secret_hash: &str) -> Result<()> {
        let n = sqlx::query("UPDATE users SET secret_hash = $1 WHERE id = $2")
            .bind(secret_hash)
            .bind(id.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        Ok(())
    }

    pub async fn insert_org(&mut self, o: &OrgRow) -> Result<()> {
        sqlx::query("INSERT INTO orgs (id, name, quota_bytes, created_at) VALUES ($1, $2, $3, $4)")
            .bind(o.id.to_string())
            .bind(&o.name)
            .bind(o.quota_bytes)
            .bind(o.created_at)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Whether the organisation's members must have a second factor to act in it.
    /// Turns one of an organisation's policies on or off.
    pub async fn set_org_policy(
        &mut self,
        org_id: OrgId,
        policy: crate::OrgPolicy,
        on: bool,
    ) -> Result<()> {
        let column = match policy {
            crate::OrgPolicy::RequireMfa => "require_mfa",
            crate::OrgPolicy::RequireApproval => "require_approval",
            crate::OrgPolicy::RequireSso => "require_sso",
        };
        self.set_org_number(org_id, column, i64::from(on)).await
    }

    pub async fn set_quota(&mut self, org_id: OrgId, quota_bytes: i64) -> Result<()> {
        self.set_org_number(org_id, "quota_bytes", quota_bytes)
            .await
    }

    /// Sets one numeric setting (`column`, a constant of this module) of an organisation.
    async fn set_org_number(&mut self, org_id: OrgId, column: &str, value: i64) -> Result<()> {
        let n = sqlx::query(&format!("UPDATE orgs SET {column} = $1 WHERE id = $2"))
            .bind(value)
            .bind(org_id.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("organisation {org_id}")));
        }
        Ok(())
    }

    /// Add a member or change their role.
    pub async fn set_membership(
        &mut self,
        org_id: OrgId,
        user_id: UserId,
        role: Role,
        now_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org_id.to_string())
        .bind(user_id.to_string())
        .bind(role.as_str())
        .bind(now_ms)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn remove_membership(&mut self, org_id: OrgId, user_id: UserId) -> Result<()> {
        let n = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id.to_string())
            .bind(user_id.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("member {user_id}")));
        }
        // Copies of older epoch keys sealed for them go with the membership.
        sqlx::query("DELETE FROM epoch_grants WHERE org_id = $1 AND user_id = $2")
            .bind(org_id.to_string())
            .bind(user_id.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// The member's role, read inside the transaction (so a check and the change it guards agree).
    pub async fn role_in(&mut self, org_id: OrgId, user_id: UserId) -> Result<Option<Role>> {
        role_in(&mut *self.inner, org_id, user_id).await
    }

    pub async fn owner_count(&mut self, org_id: OrgId) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND role = 'owner'",
        )
        .bind(org_id.to_string())
        .fetch_one(&mut *self.inner)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Opens a session; `source` and `user_agent` say where from and with what.
    pub async fn insert_session(
        &mut self,
        token_hash: &str,
        s: &SessionRow,
        source: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at, source, \
             user_agent, sso_provider, sso_sid, sso_id_token, passkey, second_factor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(token_hash)
        .bind(s.user_id.to_string())
        .bind(&s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(source.map(str::to_owned))
        .bind(user_agent.map(str::to_owned))
        .bind(s.sso_provider.clone())
        .bind(s.sso_sid.clone())
        .bind(s.sso_id_token.clone())
        .bind(s.passkey.clone())
        .bind(s.second_factor.clone())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Ends `user`'s session `token_hash`; false when they have no such session.
    pub async fn delete_session_of(&mut self, user: UserId, token_hash: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM sessions WHERE token_hash = $1 AND user_id = $2")
            .bind(token_hash)
            .bind(user.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn delete_session(&mut self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// End a user's sessions except `keep` (after a secret change).
    pub async fn delete_sessions_of(&mut self, user: UserId, keep: Option<&str>) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
                .bind(user.to_string())
                .bind(keep.unwrap_or("").to_owned())
                .execute(&mut *self.inner)
                .await?
                .rows_affected(),
        )
    }

    pub async fn delete_expired_sessions(&mut self, now_ms: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms)
            .execute(&mut *self.inner)
            .await?
            .rows_affected())
    }

    pub async fn insert_token(&mut self, t: &TokenRow, token_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, org_id, name, token_hash, max_role, created_at, \
             last_used_at, expires_at, revoked_at, sso_provider, sso_sid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(t.id.to_string())
        .bind(t.user_id.to_string())
        .bind(t.org_id.map(|o| o.to_string()))
        .bind(&t.name)
        .bind(token_hash)
        .bind(t.max_role.as_str())
        .bind(t.created_at)
        .bind(t.last_used_at)
        .bind(t.expires_at)
        .bind(t.revoked_at)
        .bind(t.sso_provider.clone())
        .bind(t.sso_sid.clone())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Revoke every token of `user_id` still valid; returns how many.
    pub async fn revoke_tokens_of(&mut self, user_id: UserId, now_ms: i64) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms)
        .bind(user_id.to_string())
        .execute(&mut *self.inner)
        .await?
        .rows_affected())
    }

    /// Revoke one of `user_id`'s tokens. Revoking twice is not an error; another user's token is "not found".
    pub async fn revoke_token(&mut self, id: TokenId, user_id: UserId, now_ms: i64) -> Result<()> {
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3",
        )
        .bind(now_ms)
        .bind(id.to_string())
        .bind(user_id.to_string())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("token {id}")));
        }
        Ok(())
    }

    pub async fn usage(&mut self, org_id: OrgId) -> Result<UsageRow> {
        usage(&mut *self.inner, org_id).await
    }

    pub async fn quota(&mut self, org_id: OrgId) -> Result<i64> {
        let row = sqlx::query("SELECT quota_bytes FROM orgs WHERE id = $1")
            .bind(org_id.to_string())
            .fetch_optional(&mut *self.inner)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("organisation {org_id}")))?;
        Ok(row.try_get("quota_bytes")?)
    }

    pub async fn insert_upload(&mut self, u: &UploadRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO uploads (id, org_id, user_id, length, sha256, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(u.id.to_string())
        .bind(u.org_id.to_string())
        .bind(u.user_id.to_string())
        .bind(u.length)
        .bind(u.sha256.as_str())
        .bind(u.created_at)
        .bind(u.expires_at)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn delete_upload(&mut self, id: UploadId) -> Result<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Record that an organisation holds a blob. Holding it already is not an error (same content).
    pub async fn insert_blob(&mut self, b: &BlobRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO blobs (org_id, sha256, size, created_at, created_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (org_id, sha256) DO NOTHING",
        )
        .bind(b.org_id.to_string())
        .bind(b.sha256.as_str())
        .bind(b.size)
        .bind(b.created_at)
        .bind(b.created_by.to_string())
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn delete_blob(&mut self, org_id: OrgId, sha256: &BlobHash) -> Result<()> {
        let n = sqlx::query("DELETE FROM blobs WHERE org_id = $1 AND sha256 = $2")
            .bind(org_id.to_string())
            .bind(sha256.as_str())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("blob {sha256}")));
        }
        Ok(())
    }

    /// Whether any organisation still references the blob (so its bytes must stay).
    pub async fn blob_referenced(&mut self, sha256: &BlobHash) -> Result<bool> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM blobs WHERE sha256 = $1) \
             + (SELECT COUNT(*) FROM timelapse_frames WHERE sha256 = $1) AS n",
        )
        .bind(sha256.as_str())
        .fetch_one(&mut *self.inner)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}
