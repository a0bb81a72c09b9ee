//! Rows as the rest of Hearth sees them. Times are Unix milliseconds.

use hearth_proto::Role;
use hearth_proto::api;
use hearth_proto::ids::{BlobHash, OrgId, TokenId, UploadId, UserId};
use hearth_proto::time_fmt::rfc3339;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: UserId,
    pub login: String,
    /// Argon2id PHC string; never leaves the server.
    pub secret_hash: String,
    pub instance_admin: bool,
    pub created_at: i64,
}

impl UserRow {
    pub fn to_api(&self) -> api::User {
        api::User {
            id: self.id,
            login: self.login.clone(),
            instance_admin: self.instance_admin,
            created_at: rfc3339(self.created_at),
        }
    }
}

/// An organisation's on/off policies (`Tx::set_org_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgPolicy {
    /// Members must have a second factor to act in it.
    RequireMfa,
    /// Jobs of members below admin wait for an admin's approval.
    RequireApproval,
    /// Members must have logged in through single sign-on to act in it.
    RequireSso,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRow {
    pub id: OrgId,
    pub name: String,
    pub quota_bytes: i64,
    pub created_at: i64,
    /// Its members must have a second factor to act in it (migration 0020).
    pub require_mfa: bool,
    /// Jobs of members below admin wait for an admin's approval (migration 0022).
    pub require_approval: bool,
    /// Its members must have logged in through single sign-on to act in it (migration 0025).
    pub require_sso: bool,
}

impl OrgRow {
    pub fn to_api(&self) -> api::Org {
        api::Org {
            id: self.id,
            name: self.name.clone(),
            quota_bytes: self.quota_bytes,
            created_at: rfc3339(self.created_at),
            require_mfa: self.require_mfa,
            require_approval: self.require_approval,
            require_sso: self.require_sso,
        }
    }
}

/// A session as its member's list shows it ([`crate::Store::sessions_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionListing {
    /// Hash of its cookie: names it, cannot be used as it.
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The address it was opened from.
    pub source: Option<String>,
    /// The client's User-Agent at login, shortened.
    pub user_agent: Option<String>,
    /// The single sign-on provider its login went through; `None`: a passphrase or a passkey.
    pub sso_provider: Option<String>,
    /// The name of the passkey it was opened with.
    pub passkey: Option<String>,
    /// The second factor its login also gave (`totp`, `recovery_code`, `passkey`).
    pub second_factor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user_id: UserId,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The single sign-on provider it was opened through; `None`: a passphrase or a passkey.
    pub sso_provider: Option<String>,
    /// The provider's session (`sid`) that login belonged to, when it said: its back-channel
    /// logout naming that session ends this one.
    pub sso_sid: Option<String>,
    /// The ID token the provider vouched with, sent back as `id_token_hint` when the member logs
    /// out at the provider too.
    pub sso_id_token: Option<String>,
    /// The credential id of the passkey it was opened with, alone or after the passphrase
    /// (removing the passkey ends it).
    pub passkey: Option<String>,
    /// The second factor its login also gave: `totp`, `recovery_code`, or `passkey` (then
    /// `passkey` names it); `None`: none was asked, or a passkey login alone.
    pub second_factor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: TokenId,
    pub user_id: UserId,
    pub org_id: Option<OrgId>,
    pub name: String,
    pub max_role: Role,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The single sign-on provider of the session it was made in; `None`: a passphrase's.
    pub sso_provider: Option<String>,
    /// That session's provider session (`sid`), when the provider said.
    pub sso_sid: Option<String>,
}

impl TokenRow {
    pub fn to_api(&self) -> api::ApiTokenInfo {
        api::ApiTokenInfo {
            id: self.id,
            name: self.name.clone(),
            org: self.org_id,
            max_role: self.max_role,
            created_at: rfc3339(self.created_at),
            last_used_at: self.last_used_at.map(rfc3339),
            expires_at: self.expires_at.map(rfc3339),
            revoked_at: self.revoked_at.map(rfc3339),
        }
    }

    /// Usable now: not revoked, not expired.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub org_id: OrgId,
    pub sha256: BlobHash,
    pub size: i64,
    pub created_at: i64,
    pub created_by: UserId,
}

impl BlobRow {
    pub fn to_api(&self) -> api::Blob {
        api::Blob {
            sha256: self.sha256.clone(),
            size: self.size,
            created_at: rfc3339(self.created_at),
            created_by: self.created_by,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    pub id: UploadId,
    pub org_id: OrgId,
    pub user_id: UserId,
    /// Total bytes the client announced.
    pub length: i64,
    /// The SHA-256 the client announced; the finished upload must match it.
    pub sha256: BlobHash,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Storage use of an organisation, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRow {
    pub used: i64,
    pub reserved: i64,
}
