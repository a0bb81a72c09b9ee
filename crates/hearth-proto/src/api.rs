//! Requests and responses of the `/api/v1` JSON API. Requests reject unknown fields so a typo is an error,
//! not a silently ignored setting.

use crate::Role;
use crate::audit::{AuditEntry, ChainBreak, ChainHead};
use crate::ids::{BlobHash, OrgId, TokenId, UserId};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Every error the API returns: a stable machine-readable `code` and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// Stable identifier, e.g. `not_found`, `invalid_input`, `quota_exceeded`.
    pub code: String,
    /// What went wrong, for a human.
    pub message: String,
}

/// `GET /api/v1/info`: what this server is; needs no login.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ServerInfo {
    pub version: String,
    pub protocol: u32,
    /// True until the first owner has been created with the one-time setup token.
    pub setup_required: bool,
    /// The address users reach this server at, when its administrator configured one
    /// (`public_url`). Clients salt the login secret with the address they log in through, so they
    /// point a member who typed another address (`localhost` for `127.0.0.1`, an IP for a name)
    /// to this one.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The single sign-on providers members can log in through (`[[auth.oidc]]`).
    #[serde(default)]
    pub sso: Vec<SsoProvider>,
    /// Members can log in to the dashboard with passkeys (WebAuthn): the server has a
    /// `public_url` whose host names it to authenticators.
    #[serde(default)]
    pub passkeys: bool,
}

/// A single sign-on (OpenID Connect) provider; a browser logs in through it by opening
/// `/api/v1/auth/sso/{id}/start`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SsoProvider {
    pub id: String,
    /// What the login button says.
    pub name: String,
}

/// An account at a single sign-on provider linked to the caller's Hearth account.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SsoIdentity {
    /// The provider's id; `provider_name` is empty when it is no longer configured.
    pub provider: String,
    pub provider_name: String,
    /// The login, e-mail or name the provider gave when it was linked.
    pub claimed: String,
    pub linked_at: String,
    pub last_login_at: Option<String>,
}

/// `POST /api/v1/auth/sso/finish`: ends a login the provider vouched for, with the account's own
/// second factor when it has one.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SsoFinishRequest {
    /// The authenticator app's code or a recovery code, for an account with a second factor.
    #[serde(default)]
    pub code: Option<String>,
    /// `hearth login --sso`: the `state` its loopback address was given, instead of a cookie.
    #[serde(default)]
    pub state: Option<String>,
    /// With `state`: the verifier whose SHA-256 (base64url) was the `cli_challenge` at start.
    #[serde(default)]
    pub verifier: Option<String>,
    /// Instead of `code`: one of the account's passkeys answering the challenge of
    /// `POST /api/v1/auth/sso/finish/passkey` (the dashboard).
    #[serde(default)]
    pub passkey: Option<PasskeyLoginFinish>,
}

/// A member's passkey (WebAuthn credential) for logging in to the dashboard.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PasskeyInfo {
    /// The authenticator's credential ID (base64url); names it for `DELETE /api/v1/me/passkeys/{id}`.
    pub id: String,
    /// The member's label for it.
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// `POST /api/v1/me/passkeys/register`: the login secret again, when the session was opened more
/// than five minutes ago.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PasskeyRegisterRequest {
    #[serde(default)]
    pub secret: Option<String>,
    /// The name it will be given at finish, checked now, before the authenticator makes a
    /// credential that finish would then refuse.
    #[serde(default)]
    pub name: Option<String>,
}

/// A passkey ceremony started: hand `options` to the browser's `navigator.credentials.create()`
/// (registration) or `.get()` (login), binary fields base64url, and send its answer back with
/// `ceremony` within five minutes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PasskeyCeremony {
    pub ceremony: String,
    /// WebAuthn's `CredentialCreationOptions` or `CredentialRequestOptions` as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub options: serde_json::Value,
}

/// `POST /api/v1/me/passkeys/register/finish`: the authenticator's new credential.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PasskeyRegisterFinish {
    pub ceremony: String,
    /// The member's label for it (1-64 printable characters).
    pub name: String,
    /// The `PublicKeyCredential` the browser returned, as JSON (binary fields base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
}

/// `PATCH /api/v1/me/passkeys/{id}`: a new name for a passkey (1-64 printable characters).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeyRename {
    pub name: String,
}

/// `POST /api/v1/auth/passkey/finish`: the authenticator's answer to a login's challenge; also
/// `LoginRequest::passkey`, answering a second factor's.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PasskeyLoginFinish {
    pub ceremony: String,
    /// The `PublicKeyCredential` the browser returned, as JSON (binary fields base64url).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
}

/// `POST /api/v1/setup`: create the first owner and organisation with the token `hearthd` printed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    pub token: String,
    pub login: String,
    /// The login secret. Hearth clients derive it from the passphrase, so the server never sees the
    /// passphrase itself.
    pub secret: String,
    pub org_name: String,
}

/// A user as others see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct User {
    pub id: UserId,
    pub login: String,
    /// May create organisations and users and read the instance-wide audit log.
    pub instance_admin: bool,
    pub created_at: String,
}

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    /// Storage quota for sealed blobs, bytes.
    pub quota_bytes: i64,
    pub created_at: String,
    /// Its members must log in with a second factor to act in it (`PUT .../mfa-policy`).
    #[serde(default)]
    pub require_mfa: bool,
    /// Jobs submitted by members below admin wait for an admin's approval before they print
    /// (`PUT .../approval-policy`).
    #[serde(default)]
    pub require_approval: bool,
    /// Its members must have logged in through single sign-on to act in it (`PUT
    /// .../sso-policy`).
    #[serde(default)]
    pub require_sso: bool,
}

/// `PUT /api/v1/orgs/{org}/sso-policy` (admins): whether members must have logged in through
/// single sign-on (their session, or the session their API token was made in) to act in it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SsoPolicy {
    pub require_sso: bool,
}

/// `PUT /api/v1/orgs/{org}/approval-policy` (admins): whether jobs of members below admin wait for
/// an admin's approval.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    pub require_approval: bool,
}

/// `PUT /api/v1/orgs/{org}/mfa-policy` (admins): whether members must have a second factor.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MfaPolicy {
    pub require_mfa: bool,
}

/// Answer to setup: the owner and the organisation just created.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SetupResponse {
    pub user: User,
    pub org: Org,
}

/// `POST /api/v1/auth/login`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub login: String,
    pub secret: String,
    /// The second factor, for an account that has one (`mfa_required` says so): the current code
    /// of its authenticator app, or one of its recovery codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Or, instead of `code`, one of the account's passkeys answering the challenge of `POST
    /// /api/v1/auth/login/passkey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey: Option<PasskeyLoginFinish>,
}

/// `POST /api/v1/auth/login/passkey`: the login and secret of a login whose second factor will be
/// one of the account's passkeys.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeySecondFactorRequest {
    pub login: String,
    pub secret: String,
}

/// `GET /api/v1/me/sessions`: a login session of the caller's account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionInfo {
    /// Names it for `DELETE /api/v1/me/sessions/{id}` (a hash of its cookie, not the cookie).
    pub id: String,
    pub created_at: String,
    pub expires_at: String,
    /// The address it was opened from, as the server saw it.
    pub source: Option<String>,
    /// What it was opened with (the client's User-Agent at login, shortened).
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The single sign-on provider its login went through (its id); none: a passphrase or a
    /// passkey.
    #[serde(default)]
    pub sso: Option<String>,
    /// The passkey it was opened with (its name), alone or as the second factor after the
    /// passphrase (`second_factor` is then `passkey`); none: another way.
    #[serde(default)]
    pub passkey: Option<String>,
    /// The second factor its login also gave: `totp` (the authenticator app), `recovery_code` or
    /// `passkey`; none: none was asked, or a passkey login alone (two factors in one).
    #[serde(default)]
    pub second_factor: Option<String>,
    /// It is the session of this very request.
    pub current: bool,
}

/// `POST /api/v1/me/mfa`: an authenticator being set up. Add it to the app (the `otpauth://` URI,
/// often as a QR code, or the secret typed in), then confirm with its first code.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MfaSetup {
    /// The shared secret, base32 (RFC 4648), as authenticator apps take it.
    pub secret: String,
    /// `otpauth://totp/...`: the same, with the account and issuer, for a QR code.
    pub uri: String,
    /// That address as a QR code: an SVG image (black on white, with its quiet zone), for pages
    /// to show as `data:image/svg+xml`.
    #[serde(default)]
    pub qr_svg: String,
}

/// A code of the authenticator app, or a recovery code.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MfaCode {
    pub code: String,
}

/// `POST /api/v1/me/mfa/confirm`: the second factor is on. The recovery codes are shown this once
/// (the server keeps only their hashes); each logs in once in place of a code.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// `POST /api/v1/auth/logout` of a session opened through a single sign-on provider set to
/// `logout_at_provider`: where to send the browser to log out there too.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogoutResponse {
    pub provider_logout: String,
}

/// A browser session was opened; the session itself travels in an HttpOnly cookie.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginResponse {
    pub user: User,
    /// Send it back as `X-CSRF-Token` on every state-changing request made with the session cookie.
    pub csrf_token: String,
    pub expires_at: String,
}

/// One membership of the calling user.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Membership {
    pub org: Org,
    pub role: Role,
}

/// `GET /api/v1/me`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Me {
    pub user: User,
    pub memberships: Vec<Membership>,
    /// Set when the request was authenticated by an API token.
    pub token: Option<ApiTokenInfo>,
    /// Whether logins of this account ask for a second factor.
    #[serde(default)]
    pub mfa: bool,
    /// With a second factor: how many of its recovery codes are left unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_codes_left: Option<u32>,
}

/// `POST /api/v1/users` (instance admins): create an account.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub login: String,
    pub secret: String,
    #[serde(default)]
    pub instance_admin: bool,
}

/// `POST /api/v1/orgs` (instance admins).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    pub name: String,
    /// The first owner; defaults to the caller.
    #[serde(default)]
    pub owner: Option<UserId>,
    #[serde(default)]
    pub quota_bytes: Option<i64>,
}

/// `PUT /api/v1/orgs/{org}/quota` (instance admins).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetQuotaRequest {
    pub quota_bytes: i64,
}

/// A member of an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Member {
    pub user: User,
    pub role: Role,
    /// Whether the member's logins ask for a second factor (what a policy requiring it looks at).
    #[serde(default)]
    pub mfa: bool,
    /// The single sign-on providers (ids) the member has an account linked at.
    #[serde(default)]
    pub sso: Vec<String>,
    /// How many passkeys log in to the member's account.
    #[serde(default)]
    pub passkeys: u32,
}

/// `POST /api/v1/orgs/{org}/members`: add an existing account by login.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    pub login: String,
    pub role: Role,
}

/// `PUT /api/v1/orgs/{org}/members/{user}`: change a member's role.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    pub role: Role,
}

/// `POST /api/v1/tokens`: an API token for the CLI or automation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A label to recognise it by, e.g. `ci-runner` or `laptop`.
    pub name: String,
    /// Restrict the token to one organisation.
    #[serde(default)]
    pub org: Option<OrgId>,
    /// The most the token may do; the effective role is the lower of this and the user's role.
    #[serde(default)]
    pub max_role: Option<Role>,
    /// Lifetime in days; none means until revoked.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A token as listed: never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiTokenInfo {
    pub id: TokenId,
    pub name: String,
    pub org: Option<OrgId>,
    pub max_role: Role,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// The token just created; `token` is shown this once and stored only as a hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedToken {
    pub info: ApiTokenInfo,
    /// `hth_...`: send as `Authorization: Bearer <token>`.
    pub token: String,
}

/// A sealed blob an organisation holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Blob {
    pub sha256: BlobHash,
    pub size: i64,
    pub created_at: String,
    pub created_by: UserId,
}

/// Storage use of an organisation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Usage {
    /// Bytes of stored blobs: sealed files and timelapse frames.
    pub used_bytes: i64,
    /// Bytes promised to uploads in progress.
    pub reserved_bytes: i64,
    pub quota_bytes: i64,
}

/// A page of the audit log, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<i64>,
    /// The chain's head as the server records it.
    pub head: ChainHead,
}

/// `GET /api/v1/system/audit/forwarding`: where the audit log is sent on to, and how that goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditForwarding {
    /// The syslog collector (`[audit] syslog`), if any.
    pub syslog: Option<String>,
    /// Entries of all chains not sent yet.
    pub waiting: i64,
    /// As this instance saw it: when it last wrote entries to the collector.
    pub last_sent_at: Option<String>,
    /// As this instance saw it: why its last try failed, while it has not succeeded since.
    pub error: Option<String>,
    /// Since when it has been failing.
    pub failing_since: Option<String>,
}

/// Result of recomputing an audit chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditVerification {
    pub ok: bool,
    pub entries_checked: i64,
    /// The last entry that verified.
    pub verified_head: Option<ChainHead>,
    /// The first problem found, naming the entry.
    pub first_break: Option<ChainBreak>,
    pub message: String,
}

// ---- Agents, printers, jobs ----

use crate::agent::{JobState, PrinterTelemetry};
use crate::ids::{AgentId, JobId, PrinterId};

/// `POST /api/v1/orgs/{org}/agents/enrollment-tokens` (admins): a one-time token for `hearth-agent enroll`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrollmentToken {
    /// `hae_...`, valid once, until `expires_at`.
    pub token: String,
    pub expires_at: String,
}

/// `POST /api/v1/agents/enroll`: an agent presents its enrollment token and its public keys (generated on
/// the agent; private keys never leave it).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    /// A name for people, e.g. the host name.
    pub name: String,
    /// Ed25519 public key, base64 (32 bytes): signs the connection challenge.
    pub signing_key: String,
    /// age X25519 recipient (`age1...`): jobs for this agent are sealed to it.
    pub age_recipient: String,
}

/// Answer to enrollment: the agent waits for an admin to approve it after comparing fingerprints.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnrollResponse {
    pub agent_id: AgentId,
    pub org_id: OrgId,
}

/// Whether an organisation trusts an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Enrolled, waiting for an admin to compare fingerprints and approve.
    Pending,
    Approved,
    Revoked,
}

/// An agent as members see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    pub status: AgentStatus,
    pub signing_key: String,
    pub age_recipient: String,
    pub created_at: String,
    pub last_seen_at: Option<String>,
    pub connected: bool,
}

/// `POST /api/v1/orgs/{org}/agents/{id}/approve` (admins): the enrollment link signed by the admin's device.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApproveAgentRequest {
    /// The chain position the link was signed for; the server refuses the approval (409) if the chain has
    /// moved on, instead of storing the link where it would break the chain.
    #[serde(default)]
    pub seq: Option<i64>,
    /// Opaque to the server: clients verify it with the organisation's chain.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub link: serde_json::Value,
}

/// A printer with its latest telemetry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Printer {
    pub id: PrinterId,
    pub agent_id: AgentId,
    pub name: String,
    pub kind: String,
    pub model: String,
    pub nozzle_mm: Option<f32>,
    pub material: Option<String>,
    pub color: Option<String>,
    pub pools: Vec<String>,
    pub can_pause: bool,
    /// True when `material`, `color` and `nozzle_mm` were set by a member
    /// (`PUT .../printers/{id}/loaded`) rather than taken from the agent's configuration.
    #[serde(default)]
    pub loaded_by_member: bool,
    /// The inventory's spool loaded on it, with what is left.
    #[serde(default)]
    pub spool: Option<crate::inventory::PrinterSpool>,
    /// The inventory's spools in its slots (AMS trays, external holder), by slot name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slot_spools: Vec<crate::inventory::SlotSpool>,
    /// Its camera, when its agent has one configured for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<PrinterCamera>,
    /// Its heaters can be set from here (`POST .../heat`) up to these limits, when its agent
    /// allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heat: Option<crate::agent::HeatLimits>,
    /// With `heat`: the targets that preheat it for its loaded material (a usual preset, within
    /// its limits), when the material has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preheat: Option<HeatRequest>,
    /// Its prints can be tuned from here (`POST .../tune`: speed, flow, fan) within these limits,
    /// when its driver and agent allow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<crate::agent::TuneLimits>,
    /// What its agent runs when asked (`POST .../actions/{action}`): homing, fans, a light, macros.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<crate::agent::PrinterAction>,
    /// Whether it waits for its bed to be cleared between jobs, and for which job's part now.
    #[serde(default)]
    pub bed: PrinterBed,
    /// Held by a member (`PUT .../printers/{id}/hold`): it takes no new job until released.
    #[serde(default)]
    pub held: bool,
    /// Latest state; `offline` when its agent is not connected.
    pub telemetry: PrinterTelemetry,
    pub updated_at: Option<String>,
}

/// A printer's bed between jobs. A printer with `confirm_between_jobs` takes no next job after one
/// that printed until a member says its bed is clear (`POST .../printers/{id}/bed/cleared`): nobody
/// may be at the printer to take the part off, and the next print would start on it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PrinterBed {
    pub confirm_between_jobs: bool,
    /// The job whose part is on the bed, while nobody has said it is clear.
    pub to_clear: Option<JobId>,
}

/// `POST /api/v1/orgs/{org}/printers/{id}/heat` (operators): preheat an idle printer, or cool it
/// down, °C: 0 switches a heater off, an absent one is left as it is. Within the limits its agent
/// announced (`Printer::heat`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nozzle_c: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bed_c: Option<f32>,
}

/// `PUT /api/v1/orgs/{org}/printers/{id}/hold` (operators): hold a printer (maintenance, a nozzle
/// change, a print by hand: no new job goes to it) or release it. What it prints goes on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub held: bool,
}

/// `PUT /api/v1/orgs/{org}/printers/{id}/bed` (admins): whether the printer waits for its bed to be
/// cleared between jobs (for printers without an automatic part removal).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BedSettings {
    pub confirm_between_jobs: bool,
}

/// `PUT /api/v1/orgs/{org}/printers/{id}/loaded` (operators): what the printer has loaded and
/// fitted now, after a spool or nozzle change at the printer. It replaces the material, colour and
/// nozzle of the agent's configuration (an absent field is "not stated") until that configuration
/// itself changes them, or `DELETE` on the same path goes back to it. Pool jobs are placed by it.
/// With `spool`, a spool of the inventory is loaded: material and colour come from its material
/// (give neither), and the printer's jobs are taken from what is left on it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoadedRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<crate::ids::SpoolId>,
    #[serde(default)]
    pub material: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub nozzle_mm: Option<f32>,
}

/// Longest printer model, material or colour the server accepts in [`SchedulingFacts`] (and in a
/// printer's loaded material): they are compared with every printer on each dispatch. Clients leave
/// a longer one unrevealed.
pub const MAX_FACT_CHARS: usize = 128;

/// Whether `t` is a printer model, material or colour the server accepts: 1 to [`MAX_FACT_CHARS`]
/// characters, not only blanks, without control characters.
pub fn fact_text_ok(t: &str) -> bool {
    !t.trim().is_empty() && t.chars().count() <= MAX_FACT_CHARS && !t.contains(char::is_control)
}

/// Scheduling facts a submitter chose to reveal (DESIGN.md): never the design itself. Printer
/// model, material and colour are 1 to [`MAX_FACT_CHARS`] (128) characters without control
/// characters, nozzle and grams finite and not negative; anything else is refused (422).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SchedulingFacts {
    #[serde(default)]
    pub printer_model: Option<String>,
    #[serde(default)]
    pub nozzle_mm: Option<f32>,
    #[serde(default)]
    pub material: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub filament_grams: Option<f32>,
    #[serde(default)]
    pub estimated_seconds: Option<u64>,
    /// Per filament of a multi-material file, in the slicer's order (at most
    /// [`MAX_FILAMENT_FACTS`]): revealed with `filament_grams`, so that what a job used is taken
    /// from the inventory spool in the slot that fed each filament.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filaments: Vec<FilamentFact>,
}

impl SchedulingFacts {
    /// The materials revealed, as a job list shows them: each filament's (`PLA+PETG`), else the
    /// job's one.
    pub fn materials(&self) -> Option<String> {
        let each: Vec<&str> = self
            .filaments
            .iter()
            .filter_map(|f| f.material.as_deref())
            .collect();
        if each.len() > 1 {
            return Some(each.join("+"));
        }
        self.material.clone()
    }
}

/// Most filaments a job's facts may list (an AMS setup of four units holds 16).
pub const MAX_FILAMENT_FACTS: usize = 32;

/// One filament of a multi-material file, as its submitter revealed it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FilamentFact {
    #[serde(default)]
    pub material: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    /// What the whole job takes of it, g.
    pub grams: f32,
}

/// `POST /api/v1/orgs/{org}/jobs` (operators): queue a signed, sealed job for a printer or a pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SubmitJobRequest {
    /// The id inside the signed manifest.
    pub job_id: JobId,
    /// Exactly one of `printer` and `pool`.
    #[serde(default)]
    pub printer: Option<PrinterId>,
    #[serde(default)]
    pub pool: Option<String>,
    /// The sealed job payload, uploaded beforehand.
    pub blob_sha256: BlobHash,
    /// The job manifest the member's device signed, passed to the agent untouched. For a pool job
    /// the server reads `manifest.target.pool` (the pool and the agents' signing keys, in hex)
    /// and hands the job only to a printer of those agents; a pool job whose manifest names
    /// another pool or no agent of the organisation is refused (422).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
    /// What the submitter chose to reveal of the file. A pool job goes only to a printer of the
    /// pool that these facts fit (model, material and nozzle against the printer's
    /// configuration; unstated facts fit), and waits while none does.
    #[serde(default)]
    pub facts: SchedulingFacts,
    /// Its place in the fleet queue: queued jobs go out by priority (higher first), then oldest
    /// first. Default 0; operators change it later (`PUT .../jobs/{id}/priority`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
    /// What members see of the job (its file's name and a thumbnail), sealed to the epoch and
    /// signed for this job and its payload; the server keeps it and cannot read it. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<JobLabel>,
}

/// `GET /api/v1/orgs/{org}/jobs/{id}/manifest`: the job's signed manifest, as its submitter's
/// device made it. Members check it against the organisation chain before opening the job's
/// sealed payload (also sealed to the epoch key) to print it again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SignedJob {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
}

/// A job's sealed label: the sealed metadata object (uploaded beforehand like the payload) and
/// the submitter's signed manifest that binds it to the job's id and payload. Members open it to
/// see what a printer prints; the server stores both untouched and learns only their sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobLabel {
    /// The sealed label object.
    pub meta_sha256: BlobHash,
    /// The submitter's signed manifest over it, opaque to the server.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `PUT /api/v1/orgs/{org}/jobs/{id}/priority`: a queued job's new place in the queue. Exactly
/// one of the two.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobPriority {
    /// The new priority (higher goes first).
    #[serde(default)]
    pub priority: Option<i64>,
    /// Move it to the front of the queue: one above the highest priority queued.
    #[serde(default)]
    pub top: bool,
}

/// A job in the queue or history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Job {
    pub id: JobId,
    pub state: JobState,
    pub printer: Option<PrinterId>,
    pub pool: Option<String>,
    pub blob_sha256: BlobHash,
    pub submitted_by: UserId,
    pub created_at: String,
    pub updated_at: String,
    /// Why it failed or was refused, in the agent's or printer's words.
    pub message: Option<String>,
    pub facts: SchedulingFacts,
    /// Its place in the fleet queue while queued: higher goes first, then older.
    #[serde(default)]
    pub priority: i64,
    /// Its sealed label, when the submitter attached one (members open it; the server cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<JobLabel>,
    /// When its organisation asks for approval: whether an admin approved it yet. A queued job
    /// that is `pending` keeps its place but no printer takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<JobApproval>,
}

impl Job {
    /// Queued but waiting for an admin's approval: no printer takes it yet.
    pub fn awaits_approval(&self) -> bool {
        self.state == crate::agent::JobState::Queued
            && self
                .approval
                .as_ref()
                .is_some_and(|a| a.state == ApprovalState::Pending)
    }
}

/// A job's approval by an admin (organisations that require it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobApproval {
    pub state: ApprovalState,
    /// The admin who approved or rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// Where a job's approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for an admin: queued, but no printer takes it.
    Pending,
    Approved,
    /// Rejected by an admin: the job is cancelled, with the reason as its message.
    Rejected,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

impl std::str::FromStr for ApprovalState {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        [Self::Pending, Self::Approved, Self::Rejected]
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(())
    }
}

/// `POST /api/v1/orgs/{org}/jobs/{id}/reject` (admins): why, for the submitter.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RejectJob {
    #[serde(default)]
    pub reason: Option<String>,
}

/// A change pushed on `GET /api/v1/orgs/{org}/events` (Server-Sent Events, one JSON object per `data:`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Printer {
        printer: Printer,
    },
    Job {
        job: Job,
    },
    Agent {
        agent_id: AgentId,
        connected: bool,
    },
    /// How a member's request to a printer ([`Accepted::request`]: a preheat, an action) ended,
    /// as its agent says: done, or refused or failed, with why in `message`.
    Outcome {
        printer_id: PrinterId,
        request: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

/// `202 Accepted`: the request was sent to the printer's agent; an [`Event::Outcome`] naming
/// `request` says how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    pub request: String,
}

/// One link of an organisation's chain, opaque to the server (clients verify it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChainLink {
    /// Position: 0 is the genesis.
    pub seq: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub link: serde_json::Value,
}

/// A user's device keys, wrapped on the device by a key derived from the passphrase. Opaque to the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyBundle {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub bundle: serde_json::Value,
}

/// A printer's temperatures at one moment (`GET .../printers/{id}/temperatures`): its heaters as
/// it reported them, with their targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TemperatureSample {
    /// When the server received them (UTC).
    pub at: String,
    pub heaters: Vec<crate::agent::Heater>,
}

/// One printer's recent temperatures (`GET .../temperatures`, every printer of the organisation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrinterTemperatures {
    pub printer_id: PrinterId,
    pub samples: Vec<TemperatureSample>,
}

/// Time a printer spent in one state during one hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HistoryBucket {
    /// Start of the hour (UTC).
    pub hour: String,
    /// `idle`, `printing`, `paused`, `error`, ...
    pub state: String,
    pub seconds: f64,
}

/// How the jobs that ended in a period ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobCounts {
    pub completed: u64,
    /// Failed, including jobs that expired in the queue.
    pub failed: u64,
    pub cancelled: u64,
    /// Refused by the agent (signature, expiry, replay).
    pub refused: u64,
}

impl JobCounts {
    /// Completed among the jobs that ended (refused ones never printed, so they do not count);
    /// `None` when none ended.
    pub fn success_rate(&self) -> Option<f64> {
        let ended = self.completed + self.failed + self.cancelled;
        (ended > 0).then(|| self.completed as f64 / ended as f64)
    }

    pub fn add(&mut self, o: &JobCounts) {
        self.completed += o.completed;
        self.failed += o.failed;
        self.cancelled += o.cancelled;
        self.refused += o.refused;
    }
}

/// One printer over a period: time in each state and the jobs that ended on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PrinterStats {
    pub printer_id: crate::ids::PrinterId,
    pub printer: String,
    /// Seconds per state (`printing`, `idle`, `paused`, `error`, `offline`, ...), as the
    /// server's history counted them.
    pub seconds: std::collections::BTreeMap<String, f64>,
    /// Printing time over all the time the history counted (0 to 1).
    pub utilisation: f64,
    pub jobs: JobCounts,
    /// Completed among jobs that ended (0 to 1), when any did.
    pub success_rate: Option<f64>,
}

/// `GET /api/v1/orgs/{org}/stats`: the fleet over the last days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FleetStats {
    /// Start of the period (the start of its first hour, UTC).
    pub from: String,
    pub days: u32,
    pub printers: Vec<PrinterStats>,
    /// Seconds per state over the whole fleet.
    pub seconds: std::collections::BTreeMap<String, f64>,
    /// Hours of printing over the whole fleet.
    pub printing_hours: f64,
    /// Printing time over all the time the history counted, over the whole fleet.
    pub utilisation: f64,
    pub jobs: JobCounts,
    pub success_rate: Option<f64>,
}

/// `POST /api/v1/orgs/{org}/files`: register an uploaded sealed print file in the library.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateFileRequest {
    /// Chosen by the uploading device (its signed manifest names it).
    pub id: crate::ids::FileId,
    /// The sealed print file.
    pub blob_sha256: BlobHash,
    /// The sealed private metadata (file name, thumbnails, slicer settings), if any.
    #[serde(default)]
    pub meta_sha256: Option<BlobHash>,
    /// The uploader's signed file manifest, opaque to the server.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
    #[serde(default)]
    pub facts: SchedulingFacts,
}

/// A file of the organisation's library, as the server sees it: no name, no thumbnail, no content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FileEntry {
    pub id: crate::ids::FileId,
    pub blob_sha256: BlobHash,
    pub meta_sha256: Option<BlobHash>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
    pub facts: SchedulingFacts,
    pub uploaded_by: UserId,
    pub created_at: String,
}

/// `PUT /api/v1/me/secret`: change the login secret (after a passphrase change; the client re-wraps its
/// key bundle in the same step). Other sessions are ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeSecretRequest {
    pub current_secret: String,
    pub new_secret: String,
    /// The key bundle wrapped under the new passphrase, stored in the same transaction.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub key_bundle: Option<serde_json::Value>,
    /// Also revoke every API token of the account (after a suspected compromise). Other browser
    /// sessions end in any case.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoke_tokens: bool,
}

/// An organisation epoch key, sealed to the epoch's member devices. Opaque to the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SealedEpoch {
    pub epoch: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub sealed: serde_json::Value,
}

/// A user's device public keys (opaque; trusted only once a signed chain link names them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceKey {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub public: serde_json::Value,
}

/// A printer's camera as the printer list shows it. Frames are sealed by the agent to the
/// organisation's current epoch and signed by it: the server keeps the latest one, in memory,
/// and cannot see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PrinterCamera {
    /// When the latest sealed frame reached the server (absent: none since it started).
    pub snapshot_at: Option<String>,
}

/// `PUT /api/v1/agent/printers/{name}/snapshot` (the agent's HTTP token): a sealed camera frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SnapshotUpload {
    /// The agent's signed snapshot manifest (`hearth_crypto::SignedSnapshot`); the server reads
    /// only its epoch, which must be the current one, and the ciphertext's hash.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
    /// The sealed frame (an age v1 file), base64.
    pub sealed: String,
}

/// `GET /api/v1/orgs/{org}/printers/{id}/snapshot`: the latest sealed frame of a printer's camera.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Snapshot {
    /// As the agent signed it (`hearth_crypto::SignedSnapshot`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
    /// The sealed frame (an age v1 file), base64.
    pub sealed: String,
    /// When it reached the server.
    pub received_at: String,
}

/// `GET /api/v1/orgs/{org}/timelapses`: a job's timelapse, the sealed frames its printer's agent
/// took of it (agent `[printer.camera] timelapse = true`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TimelapseSummary {
    pub job_id: JobId,
    /// Frames kept, and their sealed bytes (counted in the organisation's storage).
    pub frames: u64,
    pub bytes: u64,
    /// When the first and the last kept frame arrived.
    pub first_at: Option<String>,
    pub last_at: Option<String>,
    /// Frames that arrived, kept or not.
    pub arrived: u64,
    /// One frame is kept in every `stride` that arrive: 1 until the timelapse reached the most
    /// frames the server keeps per job, then doubled each time (evenly spaced, never cut off).
    pub stride: u64,
    /// Frames not kept because the organisation's storage quota was full.
    pub over_quota: u64,
    /// When it will be deleted (its job ended; the server's `camera.timelapse_keep_days`), if
    /// ever.
    pub expires_at: Option<String>,
}

/// `GET /api/v1/orgs/{org}/jobs/{id}/timelapse`: a timelapse and its frames, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Timelapse {
    pub summary: TimelapseSummary,
    pub frames: Vec<TimelapseFrame>,
}

/// One kept frame of a timelapse; its sealed bytes are at `.../timelapse/{seq}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TimelapseFrame {
    /// Its place among the frames that arrived (gaps are frames thinned out).
    pub seq: u64,
    /// Sealed size, bytes.
    pub size: u64,
    pub received_at: String,
    /// As the agent signed it (`hearth_crypto::SignedSnapshot`, naming the job).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub manifest: serde_json::Value,
}

/// Largest sealed camera frame the server keeps, bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 4 * 1024 * 1024;
