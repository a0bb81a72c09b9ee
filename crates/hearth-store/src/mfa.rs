//! A user's second factor (migration 0019): a TOTP secret, set up then confirmed, the last step
//! whose code was accepted (so each code is taken once, whichever instance checks it), and the
//! hashes of the unused recovery codes. Every change that consumes something is a compare-and-set,
//! so two logins racing with one code or one recovery code cannot both succeed.

use crate::{Result, Store, StoreError, Tx};
use hearth_proto::ids::UserId;
use sqlx::Row;

/// A user's second factor as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MfaRow {
    /// The TOTP secret as the server stored it (sealed by it; the store does not look inside).
    pub totp_secret: String,
    /// When it was confirmed (Unix ms); `None`: being set up, not asked at login.
    pub enabled_at: Option<i64>,
    /// The last step whose code was accepted.
    pub last_step: Option<i64>,
    /// What the server keeps of each recovery code not yet used (a keyed hash; opaque here).
    pub recovery: Vec<String>,
}

impl Store {
    /// The user's second factor, if one is set up (confirmed or not).
    pub async fn mfa(&self, user: UserId) -> Result<Option<MfaRow>> {
        let row = sqlx::query(
            "SELECT totp_secret, totp_enabled_at, totp_last_step, recovery_codes FROM users \
             WHERE id = $1",
        )
        .bind(user.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {user}")))?;
        let Some(totp_secret) = row.try_get::<Option<String>, _>("totp_secret")? else {
            return Ok(None);
        };
        let recovery = match row.try_get::<Option<String>, _>("recovery_codes")? {
            Some(s) => serde_json::from_str(&s)
                .map_err(|e| StoreError::Corrupt(format!("recovery codes of user {user}: {e}")))?,
            None => Vec::new(),
        };
        Ok(Some(MfaRow {
            totp_secret,
            enabled_at: row.try_get("totp_enabled_at")?,
            last_step: row.try_get("totp_last_step")?,
            recovery,
        }))
    }

    /// Which of `org`'s members have a confirmed second factor.
    pub async fn members_with_mfa(&self, org: hearth_proto::ids::OrgId) -> Result<Vec<UserId>> {
        let rows = sqlx::query(
            "SELECT u.id FROM users u JOIN memberships m ON m.user_id = u.id \
             WHERE m.org_id = $1 AND u.totp_enabled_at IS NOT NULL",
        )
        .bind(org.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| crate::rows::parsed(r, "id")).collect()
    }

    /// Starts setting up a TOTP authenticator with `secret`, replacing one being set up; false
    /// when one is already confirmed (it must be turned off first).
    pub async fn begin_totp(&self, user: UserId, secret: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_enabled_at = NULL, totp_last_step = NULL, \
             recovery_codes = NULL WHERE id = $2 AND totp_enabled_at IS NULL",
        )
        .bind(secret)
        .bind(user.to_string())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Every stored TOTP secret, as stored, with its user (few: one per member with a factor).
    pub async fn totp_secrets(&self) -> Result<Vec<(UserId, String)>> {
        let rows = sqlx::query("SELECT id, totp_secret FROM users WHERE totp_secret IS NOT NULL")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((crate::rows::parsed(r, "id")?, r.try_get("totp_secret")?)))
            .collect()
    }

    /// Replaces `user`'s stored TOTP secret `old` by `new` (the same secret stored another way);
    /// false when it is no longer `old` (set up again or turned off meanwhile).
    pub async fn replace_totp_secret(&self, user: UserId, old: &str, new: &str) -> Result<bool> {
        let n = sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3")
            .bind(new)
            .bind(user.to_string())
            .bind(old)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Takes the code of `step`: true for the one caller that moves the last accepted step past
    /// it, false when a code of that step or a later one was taken already (a replay).
    pub async fn take_totp_step(&self, user: UserId, step: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_enabled_at IS NOT NULL \
             AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user.to_string())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Uses up the recovery code whose hash is `hash`, if `before` (as read) still stands: true for
    /// the one caller that removes it.
    pub async fn take_recovery_code(
        &self,
        user: UserId,
        before: &[String],
        hash: &str,
    ) -> Result<bool> {
        if !before.iter().any(|h| h == hash) {
            return Ok(false);
        }
        let after: Vec<&String> = before.iter().filter(|h| *h != hash).collect();
        let enc = |r: serde_json::Result<String>| r.map_err(|e| StoreError::Corrupt(e.to_string()));
        let n = sqlx::query(
            "UPDATE users SET recovery_codes = $1 WHERE id = $2 AND recovery_codes = $3",
        )
        .bind(enc(serde_json::to_string(&after))?)
        .bind(user.to_string())
        .bind(enc(serde_json::to_string(before))?)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}

/// Changes to a second factor that are audited: made in the transaction that records them.
impl Tx {
    /// Confirms the authenticator being set up with `secret` (its first code was for `step`), with
    /// the hashes of fresh recovery codes; false when another setup replaced it meanwhile.
    pub async fn confirm_totp(
        &mut self,
        user: UserId,
        secret: &str,
        step: i64,
        recovery: &[String],
        now: i64,
    ) -> Result<bool> {
        let codes =
            serde_json::to_string(recovery).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let n = sqlx::query(
            "UPDATE users SET totp_enabled_at = $1, totp_last_step = $2, recovery_codes = $3 \
             WHERE id = $4 AND totp_secret = $5 AND totp_enabled_at IS NULL",
        )
        .bind(now)
        .bind(step)
        .bind(codes)
        .bind(user.to_string())
        .bind(secret)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Replaces the recovery codes of a confirmed second factor; false when there is none.
    pub async fn replace_recovery_codes(
        &mut self,
        user: UserId,
        hashes: &[String],
    ) -> Result<bool> {
        let codes =
            serde_json::to_string(hashes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let n = sqlx::query(
            "UPDATE users SET recovery_codes = $1 WHERE id = $2 AND totp_enabled_at IS NOT NULL",
        )
        .bind(codes)
        .bind(user.to_string())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Turns the second factor off (or drops one being set up); true when there was one.
    pub async fn clear_mfa(&mut self, user: UserId) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL, \
             recovery_codes = NULL WHERE id = $1 AND totp_secret IS NOT NULL",
        )
        .bind(user.to_string())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}
