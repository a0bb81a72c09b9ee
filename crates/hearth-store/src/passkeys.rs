//! Passkeys (migration 0026): WebAuthn credentials that log members in to the dashboard, and the
//! registrations and logins started and not finished. A ceremony is taken once: the row is deleted
//! by the request that finishes it, so a replayed answer finds nothing.

use crate::rows::{parsed, parsed_opt};
use crate::{Result, Store, StoreError, Tx};
use hearth_proto::ids::UserId;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A member's passkey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyRow {
    /// The authenticator's credential ID, base64url.
    pub credential_id: String,
    pub user_id: UserId,
    /// The member's label for it.
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON: public key, signature counter, backup state.
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// What a ceremony is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyKind {
    /// A member adds a passkey to their account.
    Register,
    /// Someone logs in with a passkey.
    Login,
    /// A member whose passphrase was right answers the second factor with one of their passkeys
    /// (stored as `second_factor`; the kind column is free text, migration 0026 names the first
    /// two).
    SecondFactor,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::SecondFactor => "second_factor",
        }
    }
}

/// A registration or login started and not finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CeremonyRow {
    /// SHA-256 (hex) of the ceremony id the browser holds.
    pub id_hash: String,
    pub kind: CeremonyKind,
    /// The member registering or answering a second factor; `None` for a login.
    pub user_id: Option<UserId>,
    /// webauthn-rs's ceremony state as JSON.
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
}

const PASSKEY_COLS: &str = "credential_id, user_id, name, credential, created_at, last_used_at";

fn passkey(r: &AnyRow) -> Result<PasskeyRow> {
    Ok(PasskeyRow {
        credential_id: r.try_get("credential_id")?,
        user_id: parsed(r, "user_id")?,
        name: r.try_get("name")?,
        credential: r.try_get("credential")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

impl Store {
    /// `user`'s passkeys, oldest first.
    pub async fn passkeys_of(&self, user: UserId) -> Result<Vec<PasskeyRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {PASSKEY_COLS} FROM passkeys WHERE user_id = $1 \
             ORDER BY created_at, credential_id"
        ))
        .bind(user.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(passkey).collect()
    }

    /// How many passkeys each member of `org` who has any has.
    pub async fn members_passkeys(
        &self,
        org: hearth_proto::ids::OrgId,
    ) -> Result<std::collections::HashMap<UserId, u32>> {
        let rows = sqlx::query(
            "SELECT p.user_id, COUNT(*) AS n FROM passkeys p \
             JOIN memberships m ON m.user_id = p.user_id WHERE m.org_id = $1 GROUP BY p.user_id",
        )
        .bind(org.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("n")?;
                Ok((parsed(r, "user_id")?, u32::try_from(n).unwrap_or(u32::MAX)))
            })
            .collect()
    }

    /// The passkey with this credential ID, whoever's it is.
    pub async fn passkey(&self, credential_id: &str) -> Result<Option<PasskeyRow>> {
        let row = sqlx::query(&format!(
            "SELECT {PASSKEY_COLS} FROM passkeys WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(passkey).transpose()
    }

    /// Records a ceremony started (and forgets those expired before it).
    pub async fn insert_passkey_ceremony(&self, c: &CeremonyRow) -> Result<()> {
        sqlx::query("DELETE FROM passkey_ceremonies WHERE expires_at <= $1")
            .bind(c.created_at)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO passkey_ceremonies (id_hash, kind, user_id, state, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.id_hash)
        .bind(c.kind.as_str())
        .bind(c.user_id.map(|u| u.to_string()))
        .bind(&c.state)
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// How many ceremonies are in flight (not expired at `now`).
    pub async fn passkey_ceremonies_in_flight(&self, now: i64) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM passkey_ceremonies WHERE expires_at > $1")
            .bind(now)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Takes the `kind` ceremony with this id if it has not expired: it is deleted, so it is
    /// finished once.
    pub async fn take_passkey_ceremony(
        &self,
        id_hash: &str,
        kind: CeremonyKind,
        now: i64,
    ) -> Result<Option<CeremonyRow>> {
        let row = sqlx::query(
            "DELETE FROM passkey_ceremonies WHERE id_hash = $1 AND kind = $2 AND expires_at > $3 \
             RETURNING id_hash, user_id, state, created_at, expires_at",
        )
        .bind(id_hash)
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(CeremonyRow {
                id_hash: r.try_get("id_hash")?,
                kind,
                user_id: parsed_opt(&r, "user_id")?,
                state: r.try_get("state")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }
}

impl Tx {
    /// Adds a passkey; a conflict when its credential ID is registered already (to anyone).
    pub async fn insert_passkey(&mut self, p: &PasskeyRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO passkeys ({PASSKEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&p.credential_id)
        .bind(p.user_id.to_string())
        .bind(&p.name)
        .bind(&p.credential)
        .bind(p.created_at)
        .bind(p.last_used_at)
        .execute(&mut *self.inner)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict("this passkey is registered already".into())
            }
            other => other,
        })?;
        Ok(())
    }

    /// Removes `user`'s passkey and ends the sessions it opened; its name and how many sessions
    /// ended, `None` when they have no such passkey.
    pub async fn delete_passkey(
        &mut self,
        user: UserId,
        credential_id: &str,
    ) -> Result<Option<(String, u64)>> {
        let row = sqlx::query(
            "DELETE FROM passkeys WHERE user_id = $1 AND credential_id = $2 RETURNING name",
        )
        .bind(user.to_string())
        .bind(credential_id)
        .fetch_optional(&mut *self.inner)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND passkey = $2")
            .bind(user.to_string())
            .bind(credential_id)
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        Ok(Some((row.try_get("name")?, ended)))
    }

    /// Renames `user`'s passkey; its former name, `None` when they have no such passkey.
    pub async fn rename_passkey(
        &mut self,
        user: UserId,
        credential_id: &str,
        name: &str,
    ) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT name FROM passkeys WHERE user_id = $1 AND credential_id = $2")
                .bind(user.to_string())
                .bind(credential_id)
                .fetch_optional(&mut *self.inner)
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query("UPDATE passkeys SET name = $1 WHERE user_id = $2 AND credential_id = $3")
            .bind(name)
            .bind(user.to_string())
            .bind(credential_id)
            .execute(&mut *self.inner)
            .await?;
        Ok(Some(row.try_get("name")?))
    }

    /// Removes all of `user`'s passkeys and ends the sessions they opened: how many passkeys and
    /// sessions.
    pub async fn delete_passkeys_of(&mut self, user: UserId) -> Result<(u64, u64)> {
        let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND passkey IS NOT NULL")
            .bind(user.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        let removed = sqlx::query("DELETE FROM passkeys WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        Ok((removed, ended))
    }

    /// Notes a login with a passkey, with its credential as the login left it (the counter).
    pub async fn use_passkey(
        &mut self,
        credential_id: &str,
        credential: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE passkeys SET credential = $1, last_used_at = $2 WHERE credential_id = $3",
        )
        .bind(credential)
        .bind(now)
        .bind(credential_id)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}
