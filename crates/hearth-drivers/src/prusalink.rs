//! Prusa printers through PrusaLink API v1 (`kind = "prusalink"`): the API the MK4, MK3.9, XL, MINI
//! and Core One firmware serves itself, and the PrusaLink app on a Raspberry Pi (PROTOCOLS.md §A3).
//!
//! - Authentication is HTTP Digest (RFC 7616, user `maker` and the password the printer shows under
//!   Settings > Network > PrusaLink) or an `X-Api-Key`. The digest challenge is kept and answered
//!   on every request; a stale or unknown nonce costs one 401 and a retry.
//! - A file goes to the printer's storage (its USB stick, or PrusaLink's `/local`) by `PUT` under the
//!   agent's name; binary G-code is stored as `.bgcode`, since the printer tells the formats apart by
//!   extension. `POST` on the file starts it.
//! - Status is `/api/v1/status`; the job's file, which the agent recognises its job by after a
//!   restart, comes from `/api/v1/job` (204 when there is none). Buddy firmware names files 8.3 on
//!   the USB stick, so the long `display_name` is preferred.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use digest_auth::{AuthContext, HttpMethod, WwwAuthenticateHeader};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::config::timeout;
use crate::driver::{Driver, Upload};
use crate::error::DriverError;
use crate::http::{Http, Trust, encode_segment, upload_timeout};
use crate::model::{
    Capabilities, DriverInfo, DriverKind, Heater, JobPhase, JobStatus, PrinterState, PrinterStatus,
    Started,
};

/// Settings of a printer with PrusaLink (`kind = "prusalink"`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrusaLinkConfig {
    /// The printer's address, e.g. `http://192.168.1.60` (the printer's screen: Settings > Network).
    pub url: String,
    /// Digest user; `maker` on Prusa printers.
    #[serde(default = "default_username")]
    pub username: String,
    /// Digest password (the printer's screen: Settings > Network > PrusaLink).
    #[serde(default)]
    pub password: Option<String>,
    /// Or an API key, for firmware and PrusaLink versions that use one.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Printer model to report, e.g. `MK4S`.
    #[serde(default)]
    pub model: Option<String>,
    /// Storage to print from (`usb`, `local`, `sdcard`); unset picks the first writable one the
    /// printer lists, USB first.
    #[serde(default)]
    pub storage: Option<String>,
    /// For an `https://` url: the PEM file of the certificate authority that issued the host's
    /// certificate (instead of the system's); its name must match the url's host.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// For an `https://` url: the SHA-256 of exactly the certificate the host presents
    /// (`sha256:...`, as the agent's error shows it), e.g. OctoPi's self-signed one.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Per-request timeout in seconds (uploads get longer, in proportion to their size).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl std::fmt::Debug for PrusaLinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrusaLinkConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("storage", &self.storage)
            .field("ca_file", &self.ca_file)
            .field("fingerprint", &self.fingerprint)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

fn default_username() -> String {
    "maker".into()
}
fn default_timeout_secs() -> u64 {
    10
}

// --- PrusaLink's payloads (only the fields used) ---

#[derive(Debug, Default, Deserialize)]
struct StatusResponse {
    #[serde(default)]
    printer: PrinterPart,
    #[serde(default)]
    job: Option<JobPart>,
}

#[derive(Debug, Default, Deserialize)]
struct PrinterPart {
    #[serde(default)]
    state: String,
    /// PrusaLink's own word on its link to the printer (`ok: false` with a message).
    status_printer: Option<StatusFlag>,
    temp_nozzle: Option<f64>,
    target_nozzle: Option<f64>,
    temp_bed: Option<f64>,
    target_bed: Option<f64>,
    /// The speed and flow factors, percent (M220, M221, or the printer's knob).
    speed: Option<f64>,
    flow: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct StatusFlag {
    #[serde(default = "yes")]
    ok: bool,
    message: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct JobPart {
    id: Option<u64>,
    progress: Option<f64>,
    time_remaining: Option<f64>,
    time_printing: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct JobResponse {
    id: Option<u64>,
    #[serde(default)]
    state: String,
    progress: Option<f64>,
    time_remaining: Option<f64>,
    time_printing: Option<f64>,
    file: Option<JobFile>,
}

#[derive(Debug, Deserialize)]
struct JobFile {
    name: Option<String>,
    display_name: Option<String>,
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StorageResponse {
    #[serde(default)]
    storage_list: Vec<Storage>,
}

#[derive(Debug, Deserialize)]
struct Storage {
    #[serde(default)]
    path: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    available: bool,
    #[serde(default)]
    read_only: bool,
}

fn yes() -> bool {
    true
}

/// The agent's file name for a name on the printer: the long name, without the folder, `.bgcode`
/// as the agent's `.gcode`.
fn agent_name(file: &JobFile) -> Option<String> {
    let name = file
        .display_name
        .as_deref()
        .or(file.name.as_deref())
        .or(file.path.as_deref())?;
    let base = name.rsplit('/').next().unwrap_or(name);
    Some(match base.strip_suffix(".bgcode") {
        Some(stem) => format!("{stem}.gcode"),
        None => base.to_owned(),
    })
}

/// The printer name of an agent file, by its format.
fn printer_name(agent: &str, binary: bool) -> String {
    match (binary, agent.strip_suffix(".gcode")) {
        (true, Some(stem)) => format!("{stem}.bgcode"),
        _ => agent.to_owned(),
    }
}

/// The status the two answers describe. Pure, tested on captured payloads.
///
/// The printers' firmware forgets a job as soon as it ends (`/api/v1/job` answers 204) while its
/// state says how it ended (FINISHED, STOPPED) until the next print: `last_file`, the job this
/// driver last saw or started, is that ended job.
fn map_status(
    status: &StatusResponse,
    job: Option<&JobResponse>,
    pausing: bool,
    last_file: Option<&str>,
) -> PrinterStatus {
    let p = &status.printer;
    let mut heaters = Vec::new();
    if let Some(actual) = p.temp_nozzle {
        heaters.push(Heater {
            name: "tool0".into(),
            actual,
            target: p.target_nozzle.unwrap_or(0.0),
        });
    }
    if let Some(actual) = p.temp_bed {
        heaters.push(Heater {
            name: "bed".into(),
            actual,
            target: p.target_bed.unwrap_or(0.0),
        });
    }
    let printer_state = p.state.to_ascii_uppercase();
    let (mut state, mut error) = match printer_state.as_str() {
        "PRINTING" | "BUSY" => (PrinterState::Printing, None),
        "PAUSED" => (PrinterState::Paused, None),
        "ATTENTION" => (
            PrinterState::Paused,
            Some("the printer needs attention (see its screen)".to_owned()),
        ),
        "ERROR" => (
            PrinterState::Error,
            Some(
                p.status_printer
                    .as_ref()
                    .filter(|f| !f.ok)
                    .and_then(|f| f.message.clone())
                    .unwrap_or_else(|| "the printer is in an error state (see its screen)".into()),
            ),
        ),
        _ => (PrinterState::Idle, None),
    };
    if pausing && state == PrinterState::Printing {
        state = PrinterState::Pausing;
    }
    let job = job.and_then(|j| {
        let file = agent_name(j.file.as_ref()?)?;
        let phase = match j.state.to_ascii_uppercase().as_str() {
            "PRINTING" if pausing => JobPhase::Pausing,
            "PRINTING" => JobPhase::Printing,
            "PAUSED" => JobPhase::Paused,
            "FINISHED" => JobPhase::Completed,
            "STOPPED" => JobPhase::Cancelled,
            "ERROR" => JobPhase::Failed,
            _ => return None,
        };
        // The status' job is fresher (the job endpoint is read second); either may lack a field.
        let live = status.job.as_ref().filter(|s| s.id == j.id);
        let pick = |a: Option<f64>, b: Option<f64>| a.or(b);
        let progress = pick(live.and_then(|l| l.progress), j.progress).unwrap_or(0.0);
        Some(JobStatus {
            file,
            phase,
            progress: if phase == JobPhase::Completed {
                1.0
            } else {
                (progress / 100.0).clamp(0.0, 1.0)
            },
            layer: None,
            total_layers: None,
            elapsed_seconds: pick(live.and_then(|l| l.time_printing), j.time_printing)
                .map(|s| s.max(0.0) as u64),
            remaining_seconds: pick(live.and_then(|l| l.time_remaining), j.time_remaining)
                .map(|s| s.max(0.0) as u64),
        })
    });
    let job = job.or_else(|| {
        let phase = match printer_state.as_str() {
            "FINISHED" => JobPhase::Completed,
            "STOPPED" => JobPhase::Cancelled,
            _ => return None,
        };
        Some(JobStatus {
            file: last_file?.to_owned(),
            phase,
            progress: if phase == JobPhase::Completed {
                1.0
            } else {
                0.0
            },
            layer: None,
            total_layers: None,
            elapsed_seconds: None,
            remaining_seconds: None,
        })
    });
    if job.as_ref().is_some_and(|j| j.phase == JobPhase::Failed) && error.is_none() {
        error = Some("the printer stopped the print with an error".into());
    }
    if state == PrinterState::Printing && job.is_none() && printer_state == "BUSY" {
        error = Some("the printer is busy (calibrating, loading filament, ...)".into());
    }
    PrinterStatus {
        state,
        heaters,
        job,
        error,
        slots: Vec::new(),
        light: None,
        speed_percent: percent(status.printer.speed),
        flow_percent: percent(status.printer.flow),
        fan_percent: None,
    }
}

/// A factor PrusaLink reports in percent, as a whole number; `None` for nonsense.
fn percent(v: Option<f64>) -> Option<u16> {
    v.filter(|v| v.is_finite() && *v > 0.0)
        .and_then(|v| u16::try_from(v.round() as u64).ok())
}

/// A printer with PrusaLink.
#[derive(Debug)]
pub struct PrusaLinkDriver {
    info: DriverInfo,
    http: Http,
    config: PrusaLinkConfig,
    /// The last digest challenge (nonce and count), answered on each request.
    challenge: Mutex<Option<WwwAuthenticateHeader>>,
    /// The storage files go to, once known.
    storage: Mutex<Option<String>>,
    /// Agent file names uploaded as binary G-code (stored as `.bgcode`).
    binary: Mutex<HashMap<String, bool>>,
    /// A pause sent and not yet seen.
    pausing: Mutex<Option<std::time::Instant>>,
    /// The agent file name of the job last started or seen on the printer.
    last_file: Mutex<Option<String>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PrusaLinkDriver {
    /// A driver for the printer at `config.url`; nothing is contacted yet.
    pub fn new(config: PrusaLinkConfig) -> Result<Self, DriverError> {
        match (&config.password, &config.api_key) {
            (None, None) => {
                return Err(DriverError::Config(format!(
                    "prusalink printer {}: set password (Settings > Network > PrusaLink on the printer) or api_key",
                    config.url
                )));
            }
            (Some(_), Some(_)) => {
                return Err(DriverError::Config(format!(
                    "prusalink printer {}: set password or api_key, not both",
                    config.url
                )));
            }
            _ => {}
        }
        let http = Http::new(
            &config.url,
            config.api_key.clone(),
            timeout(config.timeout_secs),
            Trust {
                ca_file: config.ca_file.as_deref(),
                fingerprint: config.fingerprint.as_deref(),
            },
        )?;
        let info = DriverInfo {
            kind: DriverKind::Prusalink,
            model: config
                .model
                .clone()
                .unwrap_or_else(|| "Prusa printer".into()),
            endpoint: http.base().to_owned(),
            capabilities: Capabilities {
                pause: true,
                layers: false,
                fault_injection: false,
                heat: false,
                gcode: false,
                tune: false,
            },
        };
        Ok(Self {
            info,
            http,
            config,
            challenge: Mutex::default(),
            storage: Mutex::default(),
            binary: Mutex::default(),
            pausing: Mutex::default(),
            last_file: Mutex::default(),
        })
    }

    /// The `Authorization` header answering the kept challenge, if there is one.
    fn authorization(&self, method: &Method, path: &str) -> Option<String> {
        let password = self.config.password.as_deref()?;
        let mut challenge = locked(&self.challenge);
        let challenge = challenge.as_mut()?;
        let context = AuthContext::new_with_method(
            self.config.username.as_str(),
            password,
            path,
            Option::<&[u8]>::None,
            HttpMethod(method.as_str().to_owned().into()),
        );
        challenge
            .respond(&context)
            .ok()
            .map(|h| h.to_header_string())
    }

    /// Sends `build()` with authentication, and once more with a fresh challenge when the printer
    /// asks for one (first request, stale or forgotten nonce). `build` is called for each try, so a
    /// body can be sent again.
    async fn send<F, Fut>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        build: F,
    ) -> Result<Response, DriverError>
    where
        F: Fn(RequestBuilder) -> Fut,
        Fut: std::future::Future<Output = Result<RequestBuilder, DriverError>>,
    {
        for attempt in 0..2 {
            let mut request = self.http.request(method.clone(), path);
            if let Some(auth) = self.authorization(&method, path) {
                request = request.header(AUTHORIZATION, auth);
            }
            let response = build(request)
                .await?
                .send()
                .await
                .map_err(|e| self.http.unreachable(e))?;
            if response.status() != StatusCode::UNAUTHORIZED
                || self.config.password.is_none()
                || attempt == 1
            {
                return self.http.check(operation, response).await;
            }
            let Some(header) = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.trim_start().starts_with("Digest"))
            else {
                return self.http.check(operation, response).await;
            };
            let parsed = digest_auth::parse(header).map_err(|e| DriverError::Protocol {
                operation,
                message: format!("unreadable digest challenge {header:?}: {e}"),
                source: None,
            })?;
            // Answered on the retry; refused again there, the credentials are wrong.
            *locked(&self.challenge) = Some(parsed);
        }
        unreachable!("the second attempt returns")
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
    ) -> Result<Option<T>, DriverError> {
        let response = self
            .send(operation, Method::GET, path, |r| async { Ok(r) })
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        self.http.decode(operation, response).await.map(Some)
    }

    /// The storage to use: configured, or the first writable one listed, USB first.
    async fn storage(&self) -> Result<String, DriverError> {
        if let Some(s) = locked(&self.storage).clone() {
            return Ok(s);
        }
        let chosen = match &self.config.storage {
            Some(s) => s.trim_matches('/').to_owned(),
            None => {
                let list: StorageResponse = self
                    .get("storage", "/api/v1/storage")
                    .await?
                    .unwrap_or(StorageResponse {
                        storage_list: Vec::new(),
                    });
                let rank = |s: &Storage| match s.kind.to_ascii_uppercase().as_str() {
                    "USB" => 0,
                    "LOCAL" => 1,
                    _ => 2,
                };
                list.storage_list
                    .iter()
                    .filter(|s| s.available && !s.read_only && !s.path.is_empty())
                    .min_by_key(|s| rank(s))
                    .map(|s| s.path.trim_matches('/').to_owned())
                    .ok_or_else(|| DriverError::Rejected {
                        operation: "upload",
                        code: None,
                        message: "the printer has no writable storage (is a USB stick in?)".into(),
                    })?
            }
        };
        *locked(&self.storage) = Some(chosen.clone());
        Ok(chosen)
    }

    async fn file_path(&self, printer_name: &str) -> Result<String, DriverError> {
        Ok(format!(
            "/api/v1/files/{}/{}",
            self.storage().await?,
            encode_segment(printer_name)
        ))
    }

    /// The printer's name of an agent file: known from the upload, else asked (after a restart).
    async fn on_printer(&self, name: &str) -> Result<Option<String>, DriverError> {
        if let Some(binary) = locked(&self.binary).get(name).copied() {
            return Ok(Some(printer_name(name, binary)));
        }
        for binary in [false, true] {
            let candidate = printer_name(name, binary);
            let path = self.file_path(&candidate).await?;
            match self
                .send("start", Method::HEAD, &path, |r| async { Ok(r) })
                .await
            {
                Ok(_) => return Ok(Some(candidate)),
                Err(DriverError::Rejected {
                    code: Some(404), ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    async fn fetch(&self) -> Result<PrinterStatus, DriverError> {
        let status: StatusResponse = self
            .get("status", "/api/v1/status")
            .await?
            .unwrap_or_default();
        let busy_or_done = status.job.is_some()
            || matches!(
                status.printer.state.to_ascii_uppercase().as_str(),
                "FINISHED" | "STOPPED" | "ERROR" | "PAUSED" | "PRINTING" | "ATTENTION"
            );
        let job: Option<JobResponse> = if busy_or_done {
            self.get("status", "/api/v1/job").await?
        } else {
            None
        };
        let pausing = {
            let mut p = locked(&self.pausing);
            if p.is_some_and(|t| t.elapsed() > std::time::Duration::from_secs(30))
                || matches!(
                    status.printer.state.to_ascii_uppercase().as_str(),
                    "PAUSED" | "ATTENTION"
                )
            {
                *p = None;
            }
            p.is_some()
        };
        if let Some(name) = job
            .as_ref()
            .and_then(|j| j.file.as_ref())
            .and_then(agent_name)
        {
            *locked(&self.last_file) = Some(name);
        }
        let last = locked(&self.last_file).clone();
        Ok(map_status(&status, job.as_ref(), pausing, last.as_deref()))
    }

    /// The id of the job the printer is on, for the job commands.
    async fn job_id(&self, operation: &'static str) -> Result<(u64, String), DriverError> {
        let status: StatusResponse = self
            .get(operation, "/api/v1/status")
            .await?
            .unwrap_or_default();
        status
            .job
            .and_then(|j| j.id)
            .map(|id| (id, status.printer.state.to_ascii_uppercase()))
            .ok_or_else(|| DriverError::Rejected {
                operation,
                code: None,
                message: "the printer has no job".into(),
            })
    }

    async fn job_command(
        &self,
        operation: &'static str,
        method: Method,
        suffix: &str,
    ) -> Result<(), DriverError> {
        let (id, state) = self.job_id(operation).await?;
        // A printer waiting for attention (filament runout) continues rather than resumes.
        let suffix = if suffix == "/resume" && state == "ATTENTION" {
            "/continue"
        } else {
            suffix
        };
        let path = format!("/api/v1/job/{id}{suffix}");
        self.send(operation, method, &path, |r| async { Ok(r) })
            .await
            .map(drop)
    }
}

#[async_trait]
impl Driver for PrusaLinkDriver {
    fn camera_client(&self, url: &str) -> Option<reqwest::Client> {
        self.http.client_for_host(url)
    }

    fn describe(&self) -> &DriverInfo {
        &self.info
    }

    /// The job the printer's FINISHED or STOPPED state speaks of, until the printer names another
    /// (a print started by hand while the agent was away would be taken for it).
    fn watching(&self, name: &str) {
        locked(&self.last_file).get_or_insert_with(|| name.to_owned());
    }

    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        match self.fetch().await {
            Err(DriverError::Unreachable { source, .. }) => Ok(PrinterStatus::offline(format!(
                "PrusaLink unreachable: {}",
                crate::error::chain(source.as_ref())
            ))),
            other => other,
        }
    }

    async fn upload(&self, upload: Upload<'_>) -> Result<(), DriverError> {
        let file_error = |source| DriverError::File {
            path: upload.path.to_owned(),
            source,
        };
        let mut head = [0u8; 4];
        let size = {
            use tokio::io::AsyncReadExt;
            let mut f = tokio::fs::File::open(upload.path)
                .await
                .map_err(file_error)?;
            let n = f.read(&mut head).await.map_err(file_error)?;
            if &head[..n] == b"PK\x03\x04" {
                return Err(DriverError::Rejected {
                    operation: "upload",
                    code: None,
                    message: "Prusa printers print G-code and binary G-code, not 3MF projects: \
                              slice it and send the G-code"
                        .into(),
                });
            }
            f.metadata().await.map_err(file_error)?.len()
        };
        let binary = &head == b"GCDE";
        let path = self.file_path(&printer_name(upload.name, binary)).await?;
        let deadline = upload_timeout(timeout(self.config.timeout_secs), size);
        let source = upload.path.to_owned();
        self.send("upload", Method::PUT, &path, |r| {
            let source = source.clone();
            async move {
                let file = tokio::fs::File::open(&source)
                    .await
                    .map_err(|e| DriverError::File {
                        path: source.clone(),
                        source: e,
                    })?;
                Ok(r.timeout(deadline)
                    // PrusaLink 0.8.1 answers 500 to octet-stream and 415 without a type; the
                    // printers' firmware ignores it. PrusaSlicer sends this one.
                    .header(CONTENT_TYPE, "text/x.gcode")
                    .header(CONTENT_LENGTH, size)
                    .header("Overwrite", "?1")
                    .header("Print-After-Upload", "?0")
                    .body(reqwest::Body::from(file)))
            }
        })
        .await?;
        locked(&self.binary).insert(upload.name.to_owned(), binary);
        Ok(())
    }

    async fn start(&self, name: &str) -> Result<Started, DriverError> {
        let Some(on_printer) = self.on_printer(name).await? else {
            return Err(DriverError::Rejected {
                operation: "start",
                code: Some(404),
                message: format!("{name} is not on the printer"),
            });
        };
        let path = self.file_path(&on_printer).await?;
        *locked(&self.pausing) = None;
        self.send("start", Method::POST, &path, |r| async { Ok(r) })
            .await?;
        *locked(&self.last_file) = Some(name.to_owned());
        Ok(Started::default())
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.job_command("pause", Method::PUT, "/pause").await?;
        *locked(&self.pausing) = Some(std::time::Instant::now());
        Ok(())
    }

    async fn resume(&self) -> Result<(), DriverError> {
        self.job_command("resume", Method::PUT, "/resume").await
    }

    async fn cancel(&self) -> Result<(), DriverError> {
        self.job_command("cancel", Method::DELETE, "").await
    }

    async fn current_job(&self) -> Result<Option<JobStatus>, DriverError> {
        Ok(self.fetch().await?.job.filter(|j| !j.phase.is_finished()))
    }

    async fn remove(&self, name: &str) -> Result<(), DriverError> {
        for binary in [false, true] {
            let path = self.file_path(&printer_name(name, binary)).await?;
            match self
                .send("remove", Method::DELETE, &path, |r| async { Ok(r) })
                .await
            {
                Ok(_)
                | Err(DriverError::Rejected {
                    code: Some(404), ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        locked(&self.binary).remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> StatusResponse {
        serde_json::from_str(json).unwrap()
    }

    fn job(json: &str) -> JobResponse {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_printing_job_is_the_agents_file_with_its_progress() {
        let s = status(
            r#"{"printer":{"state":"PRINTING","temp_nozzle":214.8,"target_nozzle":215,
                "temp_bed":59.9,"target_bed":60,"speed":120,"flow":95,"fan_print":5200},
                "job":{"id":7,"progress":42.0,"time_remaining":600,"time_printing":300}}"#,
        );
        let j = job(r#"{"id":7,"state":"PRINTING","progress":41.0,
                "file":{"name":"HEARTH~1.BGC","display_name":"hearth-abc.bgcode","path":"/usb"}}"#);
        let st = map_status(&s, Some(&j), false, None);
        assert_eq!(st.state, PrinterState::Printing);
        let job = st.job.unwrap();
        assert_eq!(job.file, "hearth-abc.gcode");
        assert!((job.progress - 0.42).abs() < 1e-9);
        assert_eq!(
            (job.elapsed_seconds, job.remaining_seconds),
            (Some(300), Some(600))
        );
        assert_eq!(st.heaters.len(), 2);
        // Its speed and flow factors; its fans are in RPM, which say nothing of a share.
        assert_eq!(
            (st.speed_percent, st.flow_percent, st.fan_percent),
            (Some(120), Some(95), None)
        );
        assert_eq!(
            map_status(&s, Some(&j), true, None).job.unwrap().phase,
            JobPhase::Pausing
        );
    }

    #[test]
    fn ended_jobs_and_printer_states() {
        let idle = status(r#"{"printer":{"state":"FINISHED"}}"#);
        let finished = job(r#"{"id":1,"state":"FINISHED","file":{"name":"hearth-a.gcode"}}"#);
        let st = map_status(&idle, Some(&finished), false, None);
        assert_eq!(st.state, PrinterState::Idle);
        assert_eq!(
            st.job.as_ref().map(|j| (j.phase, j.progress)),
            Some((JobPhase::Completed, 1.0))
        );
        let stopped = job(r#"{"id":1,"state":"STOPPED","file":{"name":"hearth-a.gcode"}}"#);
        assert_eq!(
            map_status(&idle, Some(&stopped), false, None)
                .job
                .unwrap()
                .phase,
            JobPhase::Cancelled
        );
        let attention = status(r#"{"printer":{"state":"ATTENTION"},"job":{"id":1}}"#);
        let st = map_status(&attention, None, false, None);
        assert_eq!(st.state, PrinterState::Paused);
        assert!(st.error.unwrap().contains("attention"));
        let error = status(r#"{"printer":{"state":"ERROR"}}"#);
        assert_eq!(
            map_status(&error, None, false, None).state,
            PrinterState::Error
        );
        // Buddy firmware: the job is gone once it ended; the printer's state tells how.
        let st = map_status(&idle, None, false, Some("hearth-a.gcode"));
        assert_eq!(
            st.job.map(|j| (j.file, j.phase)),
            Some(("hearth-a.gcode".into(), JobPhase::Completed))
        );
        // PrusaLink without its printer says why.
        let fixture = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/prusalink/status.json"
        ))
        .unwrap();
        let st = map_status(&status(&fixture), None, false, None);
        assert_eq!(st.state, PrinterState::Error);
        assert_eq!(st.error.as_deref(), Some("Serial device does not exist"));
        let busy = status(r#"{"printer":{"state":"BUSY"}}"#);
        assert_eq!(
            map_status(&busy, None, false, None).state,
            PrinterState::Printing
        );
    }

    #[test]
    fn binary_gcode_is_named_by_its_extension_on_the_printer() {
        assert_eq!(printer_name("hearth-a.gcode", true), "hearth-a.bgcode");
        assert_eq!(printer_name("hearth-a.gcode", false), "hearth-a.gcode");
        let file = JobFile {
            name: None,
            display_name: None,
            path: Some("/usb/hearth-a.bgcode".into()),
        };
        assert_eq!(agent_name(&file).as_deref(), Some("hearth-a.gcode"));
    }
}
