//! Single sign-on (migration 0024): identities at OpenID Connect providers linked to accounts, and
//! the logins sent to a provider and not back yet. A login in flight is taken once: the row is
//! deleted by the request that uses it, so a replayed answer from the provider finds nothing.

use crate::rows::{parsed, parsed_opt};
use crate::{Result, Store, StoreError, Tx};
use hearth_proto::ids::UserId;
use sqlx::Row;
use sqlx::any::AnyRow;

/// An account at a provider linked to a Hearth account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoIdentityRow {
    /// The provider's id in the configuration.
    pub provider: String,
    /// The provider's `sub` for the account.
    pub subject: String,
    pub user_id: UserId,
    /// The login, e-mail or name the provider gave when the identity was linked.
    pub claimed: String,
    pub linked_at: i64,
    pub last_login_at: Option<i64>,
}

/// A login sent to a provider and not finished. Its `Debug` leaves out the nonce and the PKCE
/// verifier, which finish it.
#[derive(Clone, PartialEq, Eq)]
pub struct SsoLoginRow {
    /// SHA-256 (hex) of the `state` parameter.
    pub state_hash: String,
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub redirect_uri: String,
    /// A logged-in member linking the identity the provider will name to their account.
    pub link_user_id: Option<UserId>,
    /// Set once the provider answered, for an account that still owes its second factor.
    pub user_id: Option<UserId>,
    /// A `hearth login --sso` waiting on this loopback port, and the challenge it will answer.
    pub cli: Option<CliLogin>,
    /// Set with `user_id`: the provider's session (`sid`) it vouched in, when it said.
    pub sso_sid: Option<String>,
    /// Set with `user_id`: the ID token it vouched with (a dashboard's logout at the provider
    /// sends it back as `id_token_hint`).
    pub sso_id_token: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What a provider's back-channel logout ended ([`Tx::end_sso_logins`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SsoLogout {
    pub sessions: u64,
    pub tokens: u64,
}

/// A login started by the CLI (RFC 8252's loopback redirect): where the browser is sent back, and
/// the SHA-256 (base64url) of the verifier the CLI finishes with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliLogin {
    pub port: u16,
    pub challenge: String,
}

impl std::fmt::Debug for SsoLoginRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoLoginRow")
            .field("state_hash", &self.state_hash)
            .field("provider", &self.provider)
            .field("redirect_uri", &self.redirect_uri)
            .field("link_user_id", &self.link_user_id)
            .field("user_id", &self.user_id)
            .field("cli", &self.cli)
            .field("sso_sid", &self.sso_sid)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

const IDENTITY_COLS: &str = "provider, subject, user_id, claimed, linked_at, last_login_at";
const LOGIN_COLS: &str = "state_hash, provider, nonce, pkce_verifier, redirect_uri, link_user_id, \
                          user_id, cli_port, cli_challenge, created_at, expires_at, sso_sid, \
                          sso_id_token";

fn identity(r: &AnyRow) -> Result<SsoIdentityRow> {
    Ok(SsoIdentityRow {
        provider: r.try_get("provider")?,
        subject: r.try_get("subject")?,
        user_id: parsed(r, "user_id")?,
        claimed: r.try_get("claimed")?,
        linked_at: r.try_get("linked_at")?,
        last_login_at: r.try_get("last_login_at")?,
    })
}

fn login(r: &AnyRow) -> Result<SsoLoginRow> {
    Ok(SsoLoginRow {
        state_hash: r.try_get("state_hash")?,
        provider: r.try_get("provider")?,
        nonce: r.try_get("nonce")?,
        pkce_verifier: r.try_get("pkce_verifier")?,
        redirect_uri: r.try_get("redirect_uri")?,
        link_user_id: parsed_opt(r, "link_user_id")?,
        user_id: parsed_opt(r, "user_id")?,
        cli: match (
            r.try_get::<Option<i64>, _>("cli_port")?,
            r.try_get::<Option<String>, _>("cli_challenge")?,
        ) {
            (Some(port), Some(challenge)) => Some(CliLogin {
                port: u16::try_from(port)
                    .map_err(|_| StoreError::Corrupt(format!("column cli_port holds {port}")))?,
                challenge,
            }),
            _ => None,
        },
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        sso_sid: r.try_get("sso_sid")?,
        sso_id_token: r.try_get("sso_id_token")?,
    })
}

/// Stores a login in flight, through `e` (the pool, or a transaction).
async fn insert_login<'c, E>(e: E, l: &SsoLoginRow) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(&format!(
        "INSERT INTO sso_logins ({LOGIN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&l.state_hash)
    .bind(&l.provider)
    .bind(&l.nonce)
    .bind(&l.pkce_verifier)
    .bind(&l.redirect_uri)
    .bind(l.link_user_id.map(|u| u.to_string()))
    .bind(l.user_id.map(|u| u.to_string()))
    .bind(l.cli.as_ref().map(|c| i64::from(c.port)))
    .bind(l.cli.as_ref().map(|c| c.challenge.clone()))
    .bind(l.created_at)
    .bind(l.expires_at)
    .bind(l.sso_sid.clone())
    .bind(l.sso_id_token.clone())
    .execute(e)
    .await?;
    Ok(())
}

impl Store {
    /// Records a login sent to a provider (and forgets those expired before `now`).
    pub async fn insert_sso_login(&self, l: &SsoLoginRow) -> Result<()> {
        sqlx::query("DELETE FROM sso_logins WHERE expires_at <= $1")
            .bind(l.created_at)
            .execute(self.pool())
            .await?;
        insert_login(self.pool(), l).await
    }

    /// How many logins are in flight (not expired at `now`).
    pub async fn sso_logins_in_flight(&self, now: i64) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM sso_logins WHERE expires_at > $1")
            .bind(now)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Takes the login in flight with this state if it has not expired: it is deleted, so the
    /// provider's answer is used once.
    pub async fn take_sso_login(&self, state_hash: &str, now: i64) -> Result<Option<SsoLoginRow>> {
        let row = sqlx::query(&format!(
            "DELETE FROM sso_logins WHERE state_hash = $1 AND expires_at > $2 RETURNING {LOGIN_COLS}"
        ))
        .bind(state_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(login).transpose()
    }

    /// The login in flight with this state, without taking it (it waits for a second factor).
    pub async fn sso_login(&self, state_hash: &str, now: i64) -> Result<Option<SsoLoginRow>> {
        let row = sqlx::query(&format!(
            "SELECT {LOGIN_COLS} FROM sso_logins WHERE state_hash = $1 AND expires_at > $2"
        ))
        .bind(state_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(login).transpose()
    }

    /// The identity `subject` at `provider`, if linked.
    pub async fn sso_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<SsoIdentityRow>> {
        let row = sqlx::query(&format!(
            "SELECT {IDENTITY_COLS} FROM sso_identities WHERE provider = $1 AND subject = $2"
        ))
        .bind(provider)
        .bind(subject)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(identity).transpose()
    }

    /// `org`'s members with an identity linked, and at which provider (one pair per provider).
    pub async fn members_sso(
        &self,
        org: hearth_proto::ids::OrgId,
    ) -> Result<Vec<(UserId, String)>> {
        let rows = sqlx::query(
            "SELECT DISTINCT i.user_id, i.provider FROM sso_identities i \
             JOIN memberships m ON m.user_id = i.user_id WHERE m.org_id = $1 \
             ORDER BY i.provider",
        )
        .bind(org.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((parsed(r, "user_id")?, r.try_get("provider")?)))
            .collect()
    }

    /// The identities linked to `user`, by provider.
    pub async fn sso_identities_of(&self, user: UserId) -> Result<Vec<SsoIdentityRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {IDENTITY_COLS} FROM sso_identities WHERE user_id = $1 \
             ORDER BY provider, linked_at"
        ))
        .bind(user.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(identity).collect()
    }
}

impl Tx {
    /// Deletes the login in flight with this state; false when another request took it first.
    pub async fn delete_sso_login(&mut self, state_hash: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM sso_logins WHERE state_hash = $1")
            .bind(state_hash)
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Puts back a login the provider answered for `user` in its session `sso_sid` with the ID
    /// token `sso_id_token`, who still owes a second factor, under a new state (the one the
    /// provider saw is spent) valid until `expires_at`.
    pub async fn await_second_factor(
        &mut self,
        taken: &SsoLoginRow,
        new_state_hash: &str,
        user: UserId,
        (sso_sid, sso_id_token): (Option<&str>, Option<&str>),
        expires_at: i64,
    ) -> Result<()> {
        // Nothing of the provider's exchange is needed any more: no nonce, verifier or URI.
        let waiting = SsoLoginRow {
            state_hash: new_state_hash.to_owned(),
            provider: taken.provider.clone(),
            nonce: String::new(),
            pkce_verifier: String::new(),
            redirect_uri: String::new(),
            link_user_id: None,
            user_id: Some(user),
            cli: taken.cli.clone(),
            sso_sid: sso_sid.map(str::to_owned),
            sso_id_token: sso_id_token.map(str::to_owned),
            created_at: taken.created_at,
            expires_at,
        };
        insert_login(&mut *self.inner, &waiting).await
    }

    /// A provider's back-channel logout: ends what logins through `provider` opened no later than
    /// `opened_by` for `user` (when given) in the provider's session `sid` (when given) — the
    /// sessions, and with `tokens` the API tokens made in them (revoked at `now`). Nothing when
    /// neither `user` nor `sid` is given: a logout names someone.
    pub async fn end_sso_logins(
        &mut self,
        provider: &str,
        user: Option<UserId>,
        sid: Option<&str>,
        opened_by: i64,
        tokens: bool,
        now: i64,
    ) -> Result<SsoLogout> {
        let mut ended = SsoLogout::default();
        if user.is_none() && sid.is_none() {
            return Ok(ended);
        }
        // $1 is the provider, $2 the time bound; then the user and the sid, as given.
        let mut which = String::from("sso_provider = $1 AND created_at <= $2");
        let mut n = 2;
        for (column, given) in [("user_id", user.is_some()), ("sso_sid", sid.is_some())] {
            if given {
                n += 1;
                which.push_str(&format!(" AND {column} = ${n}"));
            }
        }
        fn bound<'q>(
            q: &'q str,
            provider: &str,
            opened_by: i64,
            user: Option<UserId>,
            sid: Option<&str>,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
            let mut q = sqlx::query(q).bind(provider.to_owned()).bind(opened_by);
            if let Some(u) = user {
                q = q.bind(u.to_string());
            }
            if let Some(s) = sid {
                q = q.bind(s.to_owned());
            }
            q
        }
        let delete = format!("DELETE FROM sessions WHERE {which}");
        ended.sessions = bound(&delete, provider, opened_by, user, sid)
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if tokens {
            let revoke = format!(
                "UPDATE api_tokens SET revoked_at = ${} WHERE {which} AND revoked_at IS NULL",
                n + 1
            );
            ended.tokens = bound(&revoke, provider, opened_by, user, sid)
                .bind(now)
                .execute(&mut *self.inner)
                .await?
                .rows_affected();
        }
        Ok(ended)
    }

    /// Links an identity; a conflict when it is linked to an account already.
    pub async fn link_sso_identity(&mut self, i: &SsoIdentityRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO sso_identities ({IDENTITY_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&i.provider)
        .bind(&i.subject)
        .bind(i.user_id.to_string())
        .bind(&i.claimed)
        .bind(i.linked_at)
        .bind(i.last_login_at)
        .execute(&mut *self.inner)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "this {} account is linked to a Hearth account already",
                i.provider
            )),
            other => other,
        })?;
        Ok(())
    }

    /// Notes a login through an identity.
    pub async fn touch_sso_identity(
        &mut self,
        provider: &str,
        subject: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sso_identities SET last_login_at = $1 WHERE provider = $2 AND subject = $3",
        )
        .bind(now)
        .bind(provider)
        .bind(subject)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Unlinks `user`'s identities at `provider`; how many there were.
    pub async fn unlink_sso_identities(&mut self, user: UserId, provider: &str) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM sso_identities WHERE user_id = $1 AND provider = $2")
                .bind(user.to_string())
                .bind(provider)
                .execute(&mut *self.inner)
                .await?
                .rows_affected(),
        )
    }
}
