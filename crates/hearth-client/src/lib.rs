//! A typed client for Hearth's `/api/v1`, used by the CLI, the agent and the server's own end-to-end tests.
//!
//! - [`Client`]: one server, authenticated by an API token or a login session (cookie + CSRF token).
//! - Uploads use tus 1.0 and resume after a broken connection from the offset the server reports
//!   ([`Client::upload_file`]); downloads resume with `Range` and are checked against their SHA-256
//!   ([`Client::download_blob`]).
//! - [`Client::verify_audit`] pages through an audit chain and recomputes every hash locally, so a client
//!   does not have to trust the server's own verification.

use base64::Engine;
use futures::StreamExt;
use hearth_proto::api::*;
use hearth_proto::audit::{ChainBreak, ChainHead, ChainVerifier};
use hearth_proto::ids::{
    BlobHash, ChannelId, FileId, JobId, MaterialId, OrgId, PrinterId, SpoolId, TokenId, UserId,
};
use hearth_proto::inventory::{
    Material, MaterialUpdate, MaterialUsage, MemberUsage, NewMaterial, NewSpool, SlotLoadRequest,
    Spool, SpoolUpdate, SpoolUse,
};
use hearth_proto::maintenance::{MaintenanceKind, MaintenanceSchedule, MaintenanceTask};
use hearth_proto::notify::{Channel, ChannelUpdate, CreatedChannel, Delivery, NewChannel};
use hearth_proto::{Role, TUS_VERSION};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Everything that can go wrong talking to a Hearth server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the server")]
    Http(#[from] reqwest::Error),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("downloaded blob hashes to {actual}, not {expected}")]
    HashMismatch {
        expected: BlobHash,
        actual: BlobHash,
    },
    #[error("the audit log does not verify: {0}")]
    Chain(#[from] ChainBreak),
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The API error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
    let context = context.into();
    move |source| ClientError::Io { context, source }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
enum Auth {
    None,
    Token(String),
    Session { cookie: String, csrf: String },
}

/// A client for one Hearth server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    /// Bytes sent per PATCH request of an upload.
    pub upload_chunk: u64,
}

impl Client {
    /// A client for `base_url` (e.g. `https://hearth.example.org`), trusting the system's usual roots.
    pub fn new(base_url: &str) -> Result<Self> {
        Self::build(base_url, reqwest::Client::builder())
    }

    /// A client that also trusts the given PEM root certificate (self-hosted servers with their own CA).
    pub fn with_root_pem(base_url: &str, pem: &[u8]) -> Result<Self> {
        let cert = reqwest::Certificate::from_pem(pem)?;
        Self::build(
            base_url,
            reqwest::Client::builder().add_root_certificate(cert),
        )
    }

    fn build(base_url: &str, builder: reqwest::ClientBuilder) -> Result<Self> {
        let http = builder
            .use_rustls_tls()
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            auth: Auth::None,
            upload_chunk: 64 << 20,
        })
    }

    /// Authenticate every request with an API token (`hth_...`).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let safe = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        let rb = self.http.request(method, url);
        match &self.auth {
            Auth::None => rb,
            Auth::Token(t) => rb.bearer_auth(t),
            Auth::Session { cookie, csrf } => {
                let rb = rb.header("cookie", format!("hearth_session={cookie}"));
                if safe {
                    rb
                } else {
                    rb.header("x-csrf-token", csrf)
                }
            }
        }
    }

    async fn check(resp: Response) -> Result<Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => ClientError::Api {
                status,
                code: b.code,
                message: b.message,
            },
            Err(_) => ClientError::Api {
                status,
                code: "http".into(),
                message: text,
            },
        })
    }

    async fn json<T: DeserializeOwned>(rb: RequestBuilder) -> Result<T> {
        Ok(Self::check(rb.send().await?).await?.json().await?)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        Self::json(self.req(Method::GET, path)).await
    }

    async fn send<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T> {
        Self::json(self.req(method, path).json(body)).await
    }

    async fn no_content(&self, rb: RequestBuilder) -> Result<()> {
        Self::check(rb.send().await?).await.map(drop)
    }

    /// GET any API path and decode its JSON (for endpoints without a typed helper yet).
    pub async fn raw_get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.get(path).await
    }

    /// POST a JSON body to any API path and decode the JSON answer.
    pub async fn raw_post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T> {
        self.send(Method::POST, path, body).await
    }

    /// PUT a JSON body to any API path; succeeds on any 2xx (the body, if any, is ignored).
    /// DELETE any API path that answers 204 (for endpoints without a typed helper yet).
    pub async fn raw_delete(&self, path: &str) -> Result<()> {
        self.no_content(self.req(Method::DELETE, path)).await
    }

    pub async fn raw_put(&self, path: &str, body: &serde_json::Value) -> Result<()> {
        self.no_content(self.req(Method::PUT, path).json(body))
            .await
    }

    /// Sets what a printer has loaded and fitted now, in place of its agent's configuration.
    pub async fn set_printer_loaded(
        &self,
        org: OrgId,
        printer: PrinterId,
        loaded: &LoadedRequest,
    ) -> Result<Printer> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/loaded");
        self.send(Method::PUT, &path, loaded).await
    }

    /// Holds the printer (no new job goes to it) or releases it.
    pub async fn hold_printer(
        &self,
        org: OrgId,
        printer: PrinterId,
        held: bool,
    ) -> Result<Printer> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/hold");
        self.send(Method::PUT, &path, &HoldRequest { held }).await
    }

    /// Preheat an idle printer or cool it down (operators): its agent sets the targets.
    pub async fn heat_printer(
        &self,
        org: OrgId,
        printer: PrinterId,
        req: &HeatRequest,
    ) -> Result<Accepted> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/heat");
        self.send(Method::POST, &path, req).await
    }

    /// Tunes a printing printer's speed, flow or fan (operators), within its agent's limits.
    pub async fn tune_printer(
        &self,
        org: OrgId,
        printer: PrinterId,
        req: &hearth_proto::agent::Tune,
    ) -> Result<Accepted> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/tune");
        self.send(Method::POST, &path, req).await
    }

    /// Runs one of a printer's actions by its id (operators): its agent runs what its own
    /// configuration defines under that id.
    pub async fn run_printer_action(
        &self,
        org: OrgId,
        printer: PrinterId,
        action: &str,
    ) -> Result<Accepted> {
        // Ids are `a-z`, `0-9` and `-`; anything else (a typo) is percent-encoded, so the
        // server answers which ids the printer has.
        let action: String = action
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/actions/{action}");
        Self::json(self.req(Method::POST, &path)).await
    }

    /// Whether the printer waits for its bed to be cleared between jobs (admins).
    pub async fn set_printer_bed(
        &self,
        org: OrgId,
        printer: PrinterId,
        confirm_between_jobs: bool,
    ) -> Result<Printer> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/bed");
        self.send(
            Method::PUT,
            &path,
            &BedSettings {
                confirm_between_jobs,
            },
        )
        .await
    }

    /// Says the printer's bed is clear: it takes its next job.
    pub async fn printer_bed_cleared(&self, org: OrgId, printer: PrinterId) -> Result<Printer> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/bed/cleared");
        Self::json(self.req(Method::POST, &path)).await
    }

    /// The fleet over the last `days`: time per state, utilisation and job outcomes per printer.
    pub async fn fleet_stats(&self, org: OrgId, days: u32) -> Result<FleetStats> {
        self.get(&format!("/api/v1/orgs/{org}/stats?days={days}"))
            .await
    }

    /// The organisation's maintenance tasks and where each stands.
    pub async fn maintenance(&self, org: OrgId) -> Result<Vec<MaintenanceTask>> {
        self.get(&format!("/api/v1/orgs/{org}/maintenance")).await
    }

    /// Sets up a maintenance task on a printer or changes its schedule (operators).
    pub async fn set_maintenance(
        &self,
        org: OrgId,
        printer: PrinterId,
        kind: MaintenanceKind,
        schedule: &MaintenanceSchedule,
    ) -> Result<MaintenanceTask> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/maintenance/{kind}");
        self.send(Method::PUT, &path, schedule).await
    }

    /// Marks a maintenance task done now (operators); a printer it held is released.
    pub async fn maintenance_done(
        &self,
        org: OrgId,
        printer: PrinterId,
        kind: MaintenanceKind,
    ) -> Result<MaintenanceTask> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/maintenance/{kind}/done");
        Self::json(self.req(Method::POST, &path)).await
    }

    pub async fn remove_maintenance(
        &self,
        org: OrgId,
        printer: PrinterId,
        kind: MaintenanceKind,
    ) -> Result<()> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/maintenance/{kind}");
        self.no_content(self.req(Method::DELETE, &path)).await
    }

    /// Puts a spool of the inventory in one of the printer's slots (`A1`, `Ext`: a name that
    /// `hearth_proto::inventory::slot_name_ok` accepts).
    pub async fn load_slot(
        &self,
        org: OrgId,
        printer: PrinterId,
        slot: &str,
        spool: SpoolId,
    ) -> Result<Printer> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/slots/{slot}");
        self.send(Method::PUT, &path, &SlotLoadRequest { spool })
            .await
    }

    /// Takes the spool in one of the printer's slots out.
    pub async fn unload_slot(&self, org: OrgId, printer: PrinterId, slot: &str) -> Result<Printer> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/slots/{slot}");
        Self::json(self.req(Method::DELETE, &path)).await
    }

    /// Goes back to the material, colour and nozzle of the printer's agent configuration.
    pub async fn reset_printer_loaded(&self, org: OrgId, printer: PrinterId) -> Result<Printer> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/loaded");
        Self::json(self.req(Method::DELETE, &path)).await
    }

    /// The latest sealed camera frame of a printer, as its agent signed it (open it with
    /// `hearth_crypto::SignedSnapshot::open`).
    pub async fn printer_snapshot(&self, org: OrgId, printer: PrinterId) -> Result<Snapshot> {
        self.get(&format!("/api/v1/orgs/{org}/printers/{printer}/snapshot"))
            .await
    }

    /// Asks the printer's agent for a fresh camera frame (it arrives within seconds).
    pub async fn request_snapshot(&self, org: OrgId, printer: PrinterId) -> Result<()> {
        let path = format!("/api/v1/orgs/{org}/printers/{printer}/snapshot");
        self.no_content(self.req(Method::POST, &path)).await
    }

    /// Moves a queued job in the fleet queue (a new priority, or to the top).
    pub async fn set_job_priority(
        &self,
        org: OrgId,
        job: JobId,
        priority: &JobPriority,
    ) -> Result<Job> {
        let path = format!("/api/v1/orgs/{org}/jobs/{job}/priority");
        self.send(Method::PUT, &path, priority).await
    }

    /// The organisation's timelapses, newest first.
    pub async fn timelapses(&self, org: OrgId) -> Result<Vec<TimelapseSummary>> {
        self.get(&format!("/api/v1/orgs/{org}/timelapses")).await
    }

    /// A job's timelapse: its frames in order, each with the manifest its agent signed.
    pub async fn timelapse(&self, org: OrgId, job: JobId) -> Result<Timelapse> {
        self.get(&format!("/api/v1/orgs/{org}/jobs/{job}/timelapse"))
            .await
    }

    /// One sealed frame of a job's timelapse (open it with
    /// `hearth_crypto::SignedSnapshot::open_of_job`).
    pub async fn timelapse_frame(&self, org: OrgId, job: JobId, seq: u64) -> Result<Vec<u8>> {
        let path = format!("/api/v1/orgs/{org}/jobs/{job}/timelapse/{seq}");
        let resp = Self::check(self.req(Method::GET, &path).send().await?).await?;
        Ok(resp.bytes().await?.to_vec())
    }

    /// Deletes a job's timelapse (its submitter or an admin).
    pub async fn delete_timelapse(&self, org: OrgId, job: JobId) -> Result<()> {
        let path = format!("/api/v1/orgs/{org}/jobs/{job}/timelapse");
        self.no_content(self.req(Method::DELETE, &path)).await
    }

    /// The organisation's material library.
    pub async fn materials(&self, org: OrgId) -> Result<Vec<Material>> {
        self.get(&format!("/api/v1/orgs/{org}/materials")).await
    }

    pub async fn create_material(&self, org: OrgId, req: &NewMaterial) -> Result<Material> {
        self.send(Method::POST, &format!("/api/v1/orgs/{org}/materials"), req)
            .await
    }

    pub async fn update_material(
        &self,
        org: OrgId,
        id: MaterialId,
        update: &MaterialUpdate,
    ) -> Result<Material> {
        let path = format!("/api/v1/orgs/{org}/materials/{id}");
        self.send(Method::PATCH, &path, update).await
    }

    pub async fn delete_material(&self, org: OrgId, id: MaterialId) -> Result<()> {
        let path = format!("/api/v1/orgs/{org}/materials/{id}");
        self.no_content(self.req(Method::DELETE, &path)).await
    }

    /// The organisation's spools, newest first (`archived`: also the archived ones).
    pub async fn spools(&self, org: OrgId, archived: bool) -> Result<Vec<Spool>> {
        self.get(&format!("/api/v1/orgs/{org}/spools?archived={archived}"))
            .await
    }

    pub async fn spool(&self, org: OrgId, id: SpoolId) -> Result<Spool> {
        self.get(&format!("/api/v1/orgs/{org}/spools/{id}")).await
    }

    pub async fn create_spool(&self, org: OrgId, req: &NewSpool) -> Result<Spool> {
        self.send(Method::POST, &format!("/api/v1/orgs/{org}/spools"), req)
            .await
    }

    /// Sets or weighs what is left, changes the thresholds or place, or archives a spool.
    pub async fn update_spool(
        &self,
        org: OrgId,
        id: SpoolId,
        update: &SpoolUpdate,
    ) -> Result<Spool> {
        let path = format!("/api/v1/orgs/{org}/spools/{id}");
        self.send(Method::PATCH, &path, update).await
    }

    /// What the jobs printed from a spool used, newest first.
    pub async fn spool_usage(&self, org: OrgId, id: SpoolId) -> Result<Vec<SpoolUse>> {
        self.get(&format!("/api/v1/orgs/{org}/spools/{id}/usage"))
            .await
    }

    /// Per member, their jobs that ended over the last `days` days and what they used.
    pub async fn member_usage(&self, org: OrgId, days: i64) -> Result<Vec<MemberUsage>> {
        self.get(&format!("/api/v1/orgs/{org}/usage/members?days={days}"))
            .await
    }

    /// Filament used per material and colour over the last `days` days.
    pub async fn material_usage(&self, org: OrgId, days: i64) -> Result<Vec<MaterialUsage>> {
        self.get(&format!("/api/v1/orgs/{org}/usage/materials?days={days}"))
            .await
    }

    /// The organisation's notification channels (admins).
    pub async fn notification_channels(&self, org: OrgId) -> Result<Vec<Channel>> {
        self.get(&format!("/api/v1/orgs/{org}/notifications")).await
    }

    /// Adds a notification channel; a webhook's signing secret is in this answer only.
    pub async fn create_notification_channel(
        &self,
        org: OrgId,
        req: &NewChannel,
    ) -> Result<CreatedChannel> {
        self.send(
            Method::POST,
            &format!("/api/v1/orgs/{org}/notifications"),
            req,
        )
        .await
    }

    /// Renames a channel or changes the events it follows.
    pub async fn update_notification_channel(
        &self,
        org: OrgId,
        id: ChannelId,
        update: &ChannelUpdate,
    ) -> Result<Channel> {
        self.send(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}/notifications/{id}"),
            update,
        )
        .await
    }

    pub async fn delete_notification_channel(&self, org: OrgId, id: ChannelId) -> Result<()> {
        self.no_content(self.req(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/notifications/{id}"),
        ))
        .await
    }

    /// Sends a test notification now and returns how the destination answered.
    pub async fn test_notification_channel(&self, org: OrgId, id: ChannelId) -> Result<Delivery> {
        self.send(
            Method::POST,
            &format!("/api/v1/orgs/{org}/notifications/{id}/test"),
            &serde_json::json!({}),
        )
        .await
    }

    /// A channel's latest deliveries, newest first.
    pub async fn notification_deliveries(
        &self,
        org: OrgId,
        id: ChannelId,
    ) -> Result<Vec<Delivery>> {
        self.get(&format!("/api/v1/orgs/{org}/notifications/{id}/deliveries"))
            .await
    }

    pub async fn info(&self) -> Result<ServerInfo> {
        self.get("/api/v1/info").await
    }

    pub async fn setup(&self, req: &SetupRequest) -> Result<SetupResponse> {
        self.send(Method::POST, "/api/v1/setup", req).await
    }

    /// Log in; later requests use the session (cookie + CSRF token).
    pub async fn login(&mut self, login: &str, secret: &str) -> Result<LoginResponse> {
        self.login_with_code(login, secret, None).await
    }

    /// Log in with a second factor (`code`) for an account that has one: without it such an
    /// account is refused with the code `mfa_required`.
    pub async fn login_with_code(
        &mut self,
        login: &str,
        secret: &str,
        code: Option<&str>,
    ) -> Result<LoginResponse> {
        let body = LoginRequest {
            login: login.into(),
            secret: secret.into(),
            code: code.map(str::to_owned),
            passkey: None,
        };
        self.login_with(&body).await
    }

    /// Log in with every field of the request (a second factor's passkey answer, say).
    pub async fn login_with(&mut self, req: &LoginRequest) -> Result<LoginResponse> {
        self.open_session("/api/v1/auth/login", req).await
    }

    /// Starts a second factor answered by a passkey: the login and secret are checked (a wrong
    /// one counts as a failed login), and the challenge names the account's passkeys.
    pub async fn begin_passkey_second_factor(
        &self,
        login: &str,
        secret: &str,
    ) -> Result<PasskeyCeremony> {
        let body = hearth_proto::api::PasskeySecondFactorRequest {
            login: login.into(),
            secret: secret.into(),
        };
        self.send(Method::POST, "/api/v1/auth/login/passkey", &body)
            .await
    }

    /// Finishes a login a single sign-on provider vouched for (`hearth login --sso`): the state its
    /// loopback address was given, the verifier of the challenge it started with, and the second
    /// factor's code for an account that has one.
    pub async fn sso_finish(&mut self, req: &SsoFinishRequest) -> Result<LoginResponse> {
        self.open_session("/api/v1/auth/sso/finish", req).await
    }

    /// A POST answered with a session cookie and a [`LoginResponse`]: the session this client
    /// goes on with.
    async fn open_session(
        &mut self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<LoginResponse> {
        let resp = Self::check(
            self.http
                .post(format!("{}{path}", self.base))
                .json(body)
                .send()
                .await?,
        )
        .await?;
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.strip_prefix("hearth_session=")
                    .and_then(|v| v.split(';').next())
                    .map(str::to_owned)
            })
            .ok_or_else(|| {
                ClientError::Protocol("login answered without a session cookie".into())
            })?;
        let out: LoginResponse = resp.json().await?;
        self.auth = Auth::Session {
            cookie,
            csrf: out.csrf_token.clone(),
        };
        Ok(out)
    }

    /// Starts setting up an authenticator app as this account's second factor (a session only).
    pub async fn begin_mfa(&self) -> Result<MfaSetup> {
        self.send(Method::POST, "/api/v1/me/mfa", &serde_json::Value::Null)
            .await
    }

    /// Confirms it with its current code; answers the recovery codes (shown once).
    pub async fn confirm_mfa(&self, code: &str) -> Result<RecoveryCodes> {
        let body = MfaCode { code: code.into() };
        self.send(Method::POST, "/api/v1/me/mfa/confirm", &body)
            .await
    }

    /// New recovery codes (the old ones void): in a session opened in the last five minutes, or
    /// with one of its codes.
    pub async fn new_recovery_codes(&self, code: Option<&str>) -> Result<RecoveryCodes> {
        let rb = self.req(Method::POST, "/api/v1/me/mfa/recovery-codes");
        let rb = match code {
            Some(c) => rb.json(&MfaCode { code: c.into() }),
            None => rb,
        };
        Self::json(rb).await
    }

    /// Turns this account's second factor off: in a session opened in the last five minutes, or
    /// with one of its codes.
    pub async fn remove_mfa(&self, code: Option<&str>) -> Result<()> {
        let rb = self.req(Method::DELETE, "/api/v1/me/mfa");
        let rb = match code {
            Some(c) => rb.json(&MfaCode { code: c.into() }),
            None => rb,
        };
        self.no_content(rb).await
    }

    /// Whether the organisation's members must have a second factor (admins).
    pub async fn set_mfa_policy(&self, org: OrgId, require_mfa: bool) -> Result<Org> {
        self.send(
            Method::PUT,
            &format!("/api/v1/orgs/{org}/mfa-policy"),
            &MfaPolicy { require_mfa },
        )
        .await
    }

    /// Records a legal request for data (instance admins).
    pub async fn record_legal_request(
        &self,
        req: &hearth_proto::legal::NewLegalRequest,
    ) -> Result<hearth_proto::legal::LegalRequest> {
        self.send(Method::POST, "/api/v1/system/legal-requests", req)
            .await
    }

    /// The legal requests recorded for `org`'s data (its admins), or, without one, on the whole
    /// instance (instance admins).
    pub async fn legal_requests(
        &self,
        org: Option<OrgId>,
    ) -> Result<Vec<hearth_proto::legal::LegalRequest>> {
        match org {
            Some(o) => {
                self.raw_get(&format!("/api/v1/orgs/{o}/legal-requests"))
                    .await
            }
            None => self.raw_get("/api/v1/system/legal-requests").await,
        }
    }

    /// Whether jobs of members below admin wait for an admin's approval (admins).
    pub async fn set_approval_policy(&self, org: OrgId, require_approval: bool) -> Result<Org> {
        self.send(
            Method::PUT,
            &format!("/api/v1/orgs/{org}/approval-policy"),
            &ApprovalPolicy { require_approval },
        )
        .await
    }

    /// Whether members must have logged in through single sign-on to act in the organisation
    /// (admins, themselves logged in through it).
    pub async fn set_sso_policy(&self, org: OrgId, require_sso: bool) -> Result<Org> {
        self.send(
            Method::PUT,
            &format!("/api/v1/orgs/{org}/sso-policy"),
            &SsoPolicy { require_sso },
        )
        .await
    }

    /// Approves a job waiting for an admin's approval (admins).
    pub async fn approve_job(&self, org: OrgId, job: JobId) -> Result<Job> {
        self.send(
            Method::POST,
            &format!("/api/v1/orgs/{org}/jobs/{job}/approve"),
            &serde_json::json!({}),
        )
        .await
    }

    /// Rejects (cancels) a job waiting for an admin's approval, saying why (admins).
    pub async fn reject_job(&self, org: OrgId, job: JobId, reason: Option<&str>) -> Result<Job> {
        self.send(
            Method::POST,
            &format!("/api/v1/orgs/{org}/jobs/{job}/reject"),
            &RejectJob {
                reason: reason.map(str::to_owned),
            },
        )
        .await
    }

    /// This account's passkeys (dashboard logins), oldest first.
    pub async fn passkeys(&self) -> Result<Vec<PasskeyInfo>> {
        self.get("/api/v1/me/passkeys").await
    }

    /// Removes one of this account's passkeys (`PasskeyInfo::id`).
    pub async fn remove_passkey(&self, id: &str) -> Result<()> {
        self.no_content(self.req(Method::DELETE, &format!("/api/v1/me/passkeys/{id}")))
            .await
    }

    /// Renames one of this account's passkeys.
    pub async fn rename_passkey(&self, id: &str, name: &str) -> Result<PasskeyInfo> {
        self.send(
            Method::PATCH,
            &format!("/api/v1/me/passkeys/{id}"),
            &PasskeyRename { name: name.into() },
        )
        .await
    }

    /// Removes all of a user's passkeys and ends the sessions they opened (instance admins).
    pub async fn reset_passkeys(&self, user: UserId) -> Result<()> {
        self.no_content(self.req(Method::DELETE, &format!("/api/v1/users/{user}/passkeys")))
            .await
    }

    /// Starts adding a passkey (a browser session; `secret` when its login is older than five
    /// minutes): the options for the authenticator.
    pub async fn begin_passkey(&self, req: &PasskeyRegisterRequest) -> Result<PasskeyCeremony> {
        self.send(Method::POST, "/api/v1/me/passkeys/register", req)
            .await
    }

    /// Starts a passkey login: a challenge for the authenticator.
    pub async fn begin_passkey_login(&self) -> Result<PasskeyCeremony> {
        self.send(
            Method::POST,
            "/api/v1/auth/passkey/start",
            &serde_json::json!({}),
        )
        .await
    }

    /// Finishes a passkey login with the authenticator's answer, opening a session.
    pub async fn passkey_login(&mut self, req: &PasskeyLoginFinish) -> Result<LoginResponse> {
        self.open_session("/api/v1/auth/passkey/finish", req).await
    }

    /// Removes a user's second factor (instance admins).
    pub async fn reset_mfa(&self, user: UserId) -> Result<()> {
        self.no_content(self.req(Method::DELETE, &format!("/api/v1/users/{user}/mfa")))
            .await
    }

    pub async fn logout(&mut self) -> Result<()> {
        self.no_content(self.req(Method::POST, "/api/v1/auth/logout"))
            .await?;
        self.auth = Auth::None;
        Ok(())
    }

    pub async fn me(&self) -> Result<Me> {
        self.get("/api/v1/me").await
    }

    pub async fn create_user(
        &self,
        login: &str,
        secret: &str,
        instance_admin: bool,
    ) -> Result<User> {
        let req = CreateUserRequest {
            login: login.into(),
            secret: secret.into(),
            instance_admin,
        };
        self.send(Method::POST, "/api/v1/users", &req).await
    }

    pub async fn create_org(
        &self,
        name: &str,
        owner: Option<UserId>,
        quota_bytes: Option<i64>,
    ) -> Result<Org> {
        let req = CreateOrgRequest {
            name: name.into(),
            owner,
            quota_bytes,
        };
        self.send(Method::POST, "/api/v1/orgs", &req).await
    }

    pub async fn orgs(&self) -> Result<Vec<Membership>> {
        self.get("/api/v1/orgs").await
    }

    pub async fn set_quota(&self, org: OrgId, quota_bytes: i64) -> Result<Org> {
        self.send(
            Method::PUT,
            &format!("/api/v1/orgs/{org}/quota"),
            &SetQuotaRequest { quota_bytes },
        )
        .await
    }

    pub async fn usage(&self, org: OrgId) -> Result<Usage> {
        self.get(&format!("/api/v1/orgs/{org}/usage")).await
    }

    pub async fn members(&self, org: OrgId) -> Result<Vec<Member>> {
        self.get(&format!("/api/v1/orgs/{org}/members")).await
    }

    pub async fn add_member(&self, org: OrgId, login: &str, role: Role) -> Result<Member> {
        let req = AddMemberRequest {
            login: login.into(),
            role,
        };
        self.send(Method::POST, &format!("/api/v1/orgs/{org}/members"), &req)
            .await
    }

    pub async fn set_role(&self, org: OrgId, user: UserId, role: Role) -> Result<Member> {
        self.send(
            Method::PUT,
            &format!("/api/v1/orgs/{org}/members/{user}"),
            &SetRoleRequest { role },
        )
        .await
    }

    pub async fn remove_member(&self, org: OrgId, user: UserId) -> Result<()> {
        self.no_content(self.req(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}/members/{user}"),
        ))
        .await
    }

    pub async fn create_token(&self, req: &CreateTokenRequest) -> Result<CreatedToken> {
        self.send(Method::POST, "/api/v1/tokens", req).await
    }

    pub async fn tokens(&self) -> Result<Vec<ApiTokenInfo>> {
        self.get("/api/v1/tokens").await
    }

    pub async fn revoke_token(&self, id: TokenId) -> Result<()> {
        self.no_content(self.req(Method::DELETE, &format!("/api/v1/tokens/{id}")))
            .await
    }

    pub async fn blobs(&self, org: OrgId) -> Result<Vec<Blob>> {
        self.get(&format!("/api/v1/orgs/{org}/blobs?limit=1000"))
            .await
    }

    /// Deletes a file from the library, and its sealed bytes unless something else uses them
    /// (its uploader or an admin).
    pub async fn delete_file(&self, org: OrgId, id: FileId) -> Result<()> {
        self.no_content(self.req(Method::DELETE, &format!("/api/v1/orgs/{org}/files/{id}")))
            .await
    }

    pub async fn delete_blob(&self, org: OrgId, hash: &BlobHash) -> Result<()> {
        self.no_content(self.req(Method::DELETE, &format!("/api/v1/orgs/{org}/blobs/{hash}")))
            .await
    }

    /// Start a tus upload; returns its URL.
    pub async fn create_upload(
        &self,
        org: OrgId,
        length: u64,
        sha256: &BlobHash,
    ) -> Result<String> {
        let meta = format!(
            "sha256 {}",
            base64::engine::general_purpose::STANDARD.encode(sha256.as_str())
        );
        let resp = self
            .req(Method::POST, &format!("/api/v1/orgs/{org}/uploads"))
            .header("tus-resumable", TUS_VERSION)
            .header("upload-length", length)
            .header("upload-metadata", meta)
            .send()
            .await?;
        let resp = Self::check(resp).await?;
        resp.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Protocol("upload created without a Location".into()))
    }

    /// Bytes of an upload the server holds.
    pub async fn upload_offset(&self, url: &str) -> Result<u64> {
        let resp = Self::check(
            self.req(Method::HEAD, url)
                .header("tus-resumable", TUS_VERSION)
                .send()
                .await?,
        )
        .await?;
        resp.headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ClientError::Protocol("HEAD answered without Upload-Offset".into()))
    }

    /// Send `body` at `offset`; returns the server's new offset.
    pub async fn patch_upload(&self, url: &str, offset: u64, body: reqwest::Body) -> Result<u64> {
        let resp = self
            .req(Method::PATCH, url)
            .header("tus-resumable", TUS_VERSION)
            .header("upload-offset", offset)
            .header("content-type", "application/offset+octet-stream")
            .body(body)
            .send()
            .await?;
        let resp = Self::check(resp).await?;
        resp.headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ClientError::Protocol("PATCH answered without Upload-Offset".into()))
    }

    /// Upload a (sealed) file: hash it, then send it in chunks, resuming from the server's offset after a
    /// broken connection (up to 5 times in a row). Memory use does not depend on the file's size.
    pub async fn upload_file(&self, org: OrgId, path: &Path) -> Result<BlobHash> {
        let hash = hash_file(path).await?;
        let len = tokio::fs::metadata(path)
            .await
            .map_err(io(format!("reading {}", path.display())))?
            .len();
        let url = self.create_upload(org, len, &hash).await?;
        self.resume_upload(&url, path, len).await?;
        Ok(hash)
    }

    /// Continue the upload at `url` of the file at `path` until the server holds all `len` bytes.
    pub async fn resume_upload(&self, url: &str, path: &Path, len: u64) -> Result<()> {
        let mut offset = self.upload_offset(url).await?;
        let mut failures = 0;
        while offset < len {
            let n = self.upload_chunk.min(len - offset);
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(io(format!("opening {}", path.display())))?;
            f.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(io("seeking"))?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f.take(n)));
            match self.patch_upload(url, offset, body).await {
                Ok(new) => {
                    offset = new;
                    failures = 0;
                }
                Err(e @ ClientError::Api { .. }) if e.status() != Some(409) => return Err(e),
                Err(e) => {
                    failures += 1;
                    if failures > 5 {
                        return Err(e);
                    }
                    // The server may still be closing the broken request (409 busy): back off a little.
                    tokio::time::sleep(std::time::Duration::from_millis(100 * failures)).await;
                    offset = self.upload_offset(url).await?;
                }
            }
        }
        Ok(())
    }

    /// Download a blob to `dest`, resuming a partial `dest` with `Range`, and check its SHA-256.
    pub async fn download_blob(&self, org: OrgId, hash: &BlobHash, dest: &Path) -> Result<u64> {
        let have = tokio::fs::metadata(dest)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let mut rb = self.req(Method::GET, &format!("/api/v1/orgs/{org}/blobs/{hash}"));
        if have > 0 {
            rb = rb.header("range", format!("bytes={have}-"));
        }
        let resp = Self::check(rb.send().await?).await?;
        let append = resp.status() == StatusCode::PARTIAL_CONTENT;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(dest)
            .await
            .map_err(io(format!("writing {}", dest.display())))?;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            f.write_all(&chunk?).await.map_err(io("writing download"))?;
        }
        f.flush().await.map_err(io("writing download"))?;
        let actual = hash_file(dest).await?;
        if &actual != hash {
            return Err(ClientError::HashMismatch {
                expected: hash.clone(),
                actual,
            });
        }
        Ok(tokio::fs::metadata(dest)
            .await
            .map_err(io("reading download"))?
            .len())
    }

    /// One page of an organisation's audit log (`None`: the instance-wide log).
    pub async fn audit_page(
        &self,
        org: Option<OrgId>,
        after: i64,
        limit: i64,
    ) -> Result<AuditPage> {
        let base = match org {
            Some(o) => format!("/api/v1/orgs/{o}/audit"),
            None => "/api/v1/system/audit".to_owned(),
        };
        self.get(&format!("{base}?after={after}&limit={limit}"))
            .await
    }

    /// Where the server forwards its audit log, and how that goes (instance admins).
    pub async fn audit_forwarding(&self) -> Result<hearth_proto::api::AuditForwarding> {
        self.get("/api/v1/system/audit/forwarding").await
    }

    /// The server's own verification of a chain.
    pub async fn audit_verify_on_server(&self, org: Option<OrgId>) -> Result<AuditVerification> {
        match org {
            Some(o) => self.get(&format!("/api/v1/orgs/{o}/audit/verify")).await,
            None => self.get("/api/v1/system/audit/verify").await,
        }
    }

    /// Fetch a whole chain and recompute it here. Pass the head verified last time (`pinned`) to also prove
    /// that nothing before it changed and the log only grew.
    pub async fn verify_audit(
        &self,
        org: Option<OrgId>,
        pinned: Option<&ChainHead>,
    ) -> Result<ChainHead> {
        let mut verifier = ChainVerifier::new();
        let mut after = 0;
        let mut head;
        let mut pinned_seen = pinned.is_none_or(|p| p.seq == 0);
        loop {
            let page = self.audit_page(org, after, 1000).await?;
            head = page.head.clone();
            for e in &page.entries {
                verifier.push(e)?;
                if let Some(p) = pinned.filter(|p| p.seq == e.seq) {
                    if p.hash != e.hash {
                        return Err(ChainBreak::HeadMismatch { seq: p.seq }.into());
                    }
                    pinned_seen = true;
                }
            }
            match page.next_after {
                Some(a) => after = a,
                None => break,
            }
        }
        let verified = verifier.finish(Some(&head))?;
        if !pinned_seen {
            let p = pinned.map(|p| p.seq).unwrap_or(0);
            return Err(ChainBreak::Truncated {
                last: verified.seq,
                head: p,
            }
            .into());
        }
        Ok(verified)
    }

    /// The organisation's live events (`/api/v1/orgs/{org}/events`), from now on: subscribe
    /// before asking for what an event will answer.
    pub async fn events(&self, org: OrgId) -> Result<Events> {
        let resp = self
            .raw_get_response(&format!("/api/v1/orgs/{org}/events"))
            .await?;
        Ok(Events {
            body: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
            data: String::new(),
        })
    }

    /// GET any API path and return the response once its status is a success, for streaming bodies
    /// such as the Server-Sent Events of `/api/v1/orgs/{org}/events`.
    pub async fn raw_get_response(&self, path: &str) -> Result<Response> {
        Self::check(
            self.req(Method::GET, path)
                .header("accept", "text/event-stream")
                .send()
                .await?,
        )
        .await
    }
}

/// An organisation's live events, read from its Server-Sent Events stream.
pub struct Events {
    body: std::pin::Pin<
        Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static>,
    >,
    buf: Vec<u8>,
    /// The `data:` lines of the event being read.
    data: String,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// The next event; `None` when the server closed the stream. Notices that are not events
    /// (`lagged`) and event types newer than this client are skipped.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        loop {
            while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(d) = line.strip_prefix("data:") {
                    if !self.data.is_empty() {
                        self.data.push('\n');
                    }
                    self.data.push_str(d.strip_prefix(' ').unwrap_or(d));
                    continue;
                }
                if !line.is_empty() || self.data.is_empty() {
                    continue;
                }
                let text = std::mem::take(&mut self.data);
                if let Ok(ev) = serde_json::from_str::<Event>(&text) {
                    return Ok(Some(ev));
                }
            }
            match self.body.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => return Ok(None),
            }
        }
    }
}

/// SHA-256 of a file, streamed.
pub async fn hash_file(path: &Path) -> Result<BlobHash> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(io(format!("opening {}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(io(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(BlobHash::from_digest(h.finalize().into()))
}
