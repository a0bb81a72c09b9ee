//! OctoPrint over its REST API (`/api/printer`, `/api/job`, `/api/files`, `/api/connection`).
//!
//! Telemetry comes from OctoPrint's push API (`push`) while its socket is open and fresh, and otherwise
//! from two GETs per sample (printer state + temperatures, job + progress); commands are REST. OctoPrint does not report layers. Files go to OctoPrint's local storage under the
//! agent's chosen name, so the running job is recognised after a restart from `/api/job` alone.
//!
//! When OctoPrint is up but not connected to its printer, status reports `Offline` and the driver asks
//! OctoPrint to connect (at most every `RECONNECT_EVERY`); `start` connects and waits for it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::config::{OctoPrintConfig, timeout};
use crate::driver::{Driver, Upload};
use crate::error::DriverError;
use crate::http::{Http, Trust, encode_segment, file_part, upload_timeout};
use crate::model::{
    Capabilities, DriverInfo, DriverKind, HeatTargets, Heater, JobPhase, JobStatus, PrinterState,
    PrinterStatus, Started,
};

mod push;

/// How often status may try to open the push socket again after it failed or closed.
const PUSH_RETRY_EVERY: Duration = Duration::from_secs(30);
/// How often status may ask a disconnected OctoPrint to connect to its printer.
const RECONNECT_EVERY: Duration = Duration::from_secs(30);
/// How long `start` waits for OctoPrint to reach its printer.
const CONNECT_DEADLINE: Duration = Duration::from_secs(20);

/// A printer behind OctoPrint.
#[derive(Debug)]
pub struct OctoPrintDriver {
    info: DriverInfo,
    http: Http,
    config: OctoPrintConfig,
    last_connect: Mutex<Option<Instant>>,
    push: tokio::sync::Mutex<Option<push::Push>>,
    last_push_attempt: Mutex<Option<Instant>>,
}

// --- OctoPrint's payloads (only the fields used) ---

#[derive(Debug, Deserialize)]
struct PrinterResponse {
    state: PrinterStateResponse,
    #[serde(default)]
    temperature: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct PrinterStateResponse {
    #[serde(default)]
    text: String,
    #[serde(default)]
    error: Option<String>,
    flags: Flags,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Flags {
    operational: bool,
    printing: bool,
    paused: bool,
    pausing: bool,
    cancelling: bool,
    finishing: bool,
    resuming: bool,
    error: bool,
}

#[derive(Debug, Deserialize)]
struct Temperature {
    actual: Option<f64>,
    target: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct JobResponse {
    job: JobInfo,
    progress: Progress,
    #[serde(default)]
    state: String,
}

#[derive(Debug, Clone, Deserialize)]
struct JobInfo {
    file: JobFile,
}

#[derive(Debug, Clone, Deserialize)]
struct JobFile {
    name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Progress {
    /// Percent, 0..100.
    completion: Option<f64>,
    #[serde(rename = "printTime")]
    print_time: Option<f64>,
    #[serde(rename = "printTimeLeft")]
    print_time_left: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct ConnectionResponse {
    current: ConnectionCurrent,
}

#[derive(Debug, Deserialize)]
struct ConnectionCurrent {
    state: String,
}

impl OctoPrintDriver {
    /// A driver for the OctoPrint at `config.url`; nothing is contacted yet.
    pub fn new(config: OctoPrintConfig) -> Result<Self, DriverError> {
        let http = Http::new(
            &config.url,
            Some(config.api_key.clone()),
            timeout(config.timeout_secs),
            Trust {
                ca_file: config.ca_file.as_deref(),
                fingerprint: config.fingerprint.as_deref(),
            },
        )?;
        let info = DriverInfo {
            kind: DriverKind::Octoprint,
            model: config
                .model
                .clone()
                .unwrap_or_else(|| "OctoPrint printer".into()),
            endpoint: http.base().to_owned(),
            capabilities: Capabilities {
                pause: true,
                layers: false,
                fault_injection: false,
                heat: true,
                gcode: true,
                tune: true,
            },
        };
        Ok(Self {
            info,
            http,
            config,
            last_connect: Mutex::new(None),
            push: tokio::sync::Mutex::new(None),
            last_push_attempt: Mutex::new(None),
        })
    }

    /// The printer's state and temperatures; `None` when OctoPrint is not connected to the printer (409).
    async fn printer(&self) -> Result<Option<PrinterResponse>, DriverError> {
        let request = self.http.request(Method::GET, "/api/printer?exclude=sd");
        match self.http.json("status", request).await {
            Ok(printer) => Ok(Some(printer)),
            Err(DriverError::Rejected {
                code: Some(409), ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn job(&self) -> Result<JobResponse, DriverError> {
        self.http
            .json("status", self.http.request(Method::GET, "/api/job"))
            .await
    }

    /// Status, with an unreachable OctoPrint as an error.
    async fn fetch(&self) -> Result<PrinterStatus, DriverError> {
        let Some(printer) = self.printer().await? else {
            self.connect_now_and_then().await;
            return Ok(PrinterStatus::offline(
                "OctoPrint is not connected to the printer",
            ));
        };
        let job = self.job().await?;
        Ok(map_status(&printer, &job))
    }

    /// Whether telemetry currently comes from the push socket (fresh messages on an open socket).
    pub async fn push_active(&self) -> bool {
        self.pushed().await.is_some()
    }

    /// The latest pushed state, if the socket is open and fresh; a closed socket is dropped.
    async fn pushed(&self) -> Option<(PrinterResponse, JobResponse)> {
        let mut slot = self.push.lock().await;
        if slot.as_ref().is_some_and(|p| !p.is_alive()) {
            *slot = None;
        }
        slot.as_ref()?.latest()
    }

    /// Opens the push socket unless it is open or was tried recently; failures only mean REST polling.
    async fn open_push_now_and_then(&self) {
        let mut slot = self.push.lock().await;
        if slot.as_ref().is_some_and(push::Push::is_alive) {
            return;
        }
        {
            let mut last = self
                .last_push_attempt
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < PUSH_RETRY_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match push::Push::open(&self.http, timeout(self.config.timeout_secs)).await {
            Ok(push) => *slot = Some(push),
            Err(e) => {
                tracing::debug!(endpoint = %self.info.endpoint, error = %e, "OctoPrint push socket unavailable")
            }
        }
    }

    /// Asks OctoPrint to connect to its printer, unless it was asked recently. Failures are only logged:
    /// status keeps reporting offline until the connection is up.
    async fn connect_now_and_then(&self) {
        {
            let mut last = self.last_connect.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Err(e) = self.connect().await {
            tracing::warn!(endpoint = %self.info.endpoint, error = %e, "OctoPrint could not connect to the printer");
        }
    }

    async fn connect(&self) -> Result<(), DriverError> {
        let mut body = json!({"command": "connect"});
        if let Some(port) = &self.config.port {
            body["port"] = json!(port);
        }
        if let Some(baudrate) = self.config.baudrate {
            body["baudrate"] = json!(baudrate);
        }
        let request = self
            .http
            .request(Method::POST, "/api/connection")
            .json(&body);
        self.http.send("connect", request).await.map(drop)
    }

    /// Makes sure OctoPrint is connected to the printer, connecting and waiting if needed.
    async fn ensure_connected(&self) -> Result<(), DriverError> {
        let state = || async {
            let request = self.http.request(Method::GET, "/api/connection");
            let connection: ConnectionResponse = self.http.json("connect", request).await?;
            Ok::<_, DriverError>(connection.current.state)
        };
        let is_closed =
            |s: &str| s.starts_with("Closed") || s.starts_with("Offline") || s.starts_with("Error");
        let mut current = state().await?;
        if !is_closed(&current)
            && !current.starts_with("Opening")
            && !current.starts_with("Connecting")
        {
            return Ok(());
        }
        if is_closed(&current) {
            self.connect().await?;
        }
        let deadline = Instant::now() + CONNECT_DEADLINE;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            current = state().await?;
            if current == "Operational" {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DriverError::Rejected {
                    operation: "connect",
                    code: None,
                    message: format!("OctoPrint did not reach the printer: {current}"),
                });
            }
        }
    }

    async fn job_command(
        &self,
        operation: &'static str,
        body: serde_json::Value,
    ) -> Result<(), DriverError> {
        let request = self.http.request(Method::POST, "/api/job").json(&body);
        self.http.send(operation, request).await.map(drop)
    }
}

fn map_status(printer: &PrinterResponse, job: &JobResponse) -> PrinterStatus {
    let flags = &printer.state.flags;
    let state = if flags.error {
        PrinterState::Error
    } else if !flags.operational {
        PrinterState::Offline
    } else if flags.cancelling {
        PrinterState::Cancelling
    } else if flags.pausing {
        PrinterState::Pausing
    } else if flags.paused {
        PrinterState::Paused
    } else if flags.printing || flags.finishing || flags.resuming {
        PrinterState::Printing
    } else {
        PrinterState::Idle
    };
    let heaters = printer
        .temperature
        .iter()
        .filter_map(|(name, value)| {
            let t: Temperature = serde_json::from_value(value.clone()).ok()?;
            Some(Heater {
                name: name.clone(),
                actual: t.actual?,
                target: t.target.unwrap_or(0.0),
            })
        })
        .collect();
    let error = match state {
        PrinterState::Error => printer
            .state
            .error
            .clone()
            .filter(|e| !e.is_empty())
            .or(Some(printer.state.text.clone())),
        PrinterState::Offline => Some(printer.state.text.clone()),
        _ => None,
    };
    PrinterStatus {
        state,
        heaters,
        job: map_job(state, job),
        error,
        slots: Vec::new(),
        light: None,
        speed_percent: None,
        flow_percent: None,
        fan_percent: None,
    }
}

fn map_job(state: PrinterState, job: &JobResponse) -> Option<JobStatus> {
    let file = job.job.file.name.clone()?;
    let completion = job.progress.completion;
    let phase = match state {
        PrinterState::Printing => JobPhase::Printing,
        PrinterState::Pausing => JobPhase::Pausing,
        PrinterState::Paused => JobPhase::Paused,
        PrinterState::Cancelling => JobPhase::Cancelling,
        PrinterState::Error => JobPhase::Failed,
        // A selected file that never ran has no completion: it is not a job.
        PrinterState::Idle | PrinterState::Offline => match completion {
            None => return None,
            Some(c) if c >= 100.0 => JobPhase::Completed,
            Some(_) => JobPhase::Cancelled,
        },
    };
    if job.state.starts_with("Offline") && !phase.is_finished() {
        return None;
    }
    Some(JobStatus {
        file,
        phase,
        progress: (completion.unwrap_or(0.0) / 100.0).clamp(0.0, 1.0),
        layer: None,
        total_layers: None,
        elapsed_seconds: job.progress.print_time.map(|s| s.max(0.0).round() as u64),
        remaining_seconds: job
            .progress
            .print_time_left
            .map(|s| s.max(0.0).round() as u64),
    })
}

#[async_trait]
impl Driver for OctoPrintDriver {
    fn describe(&self) -> &DriverInfo {
        &self.info
    }

    /// The default webcam's snapshot URL from `GET /api/settings` (`webcam.snapshotUrl`, the
    /// classic webcam's "Snapshot URL" setting).
    fn camera_client(&self, url: &str) -> Option<reqwest::Client> {
        self.http.client_for_host(url)
    }

    async fn camera_snapshot_url(&self) -> Result<Option<String>, DriverError> {
        let settings: serde_json::Value = self
            .http
            .json("camera", self.http.request(Method::GET, "/api/settings"))
            .await?;
        Ok(settings["webcam"]["snapshotUrl"]
            .as_str()
            .and_then(|u| crate::http::camera_url(self.http.base(), u, true)))
    }

    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        if let Some((printer, job)) = self.pushed().await {
            let status = map_status(&printer, &job);
            if status.state == PrinterState::Offline {
                self.connect_now_and_then().await;
            }
            return Ok(status);
        }
        let fetched = self.fetch().await;
        if fetched.is_ok() {
            self.open_push_now_and_then().await;
        }
        match fetched {
            Err(DriverError::Unreachable { source, .. }) => Ok(PrinterStatus::offline(format!(
                "OctoPrint unreachable: {}",
                crate::error::chain(source.as_ref())
            ))),
            other => other,
        }
    }

    async fn upload(&self, upload: Upload<'_>) -> Result<(), DriverError> {
        let (part, size) = file_part(upload.path, upload.name).await?;
        let form = reqwest::multipart::Form::new()
            .text("select", "false")
            .text("print", "false")
            .part("file", part);
        let request = self
            .http
            .request(Method::POST, "/api/files/local")
            .timeout(upload_timeout(timeout(self.config.timeout_secs), size))
            .multipart(form);
        self.http.send("upload", request).await.map(drop)
    }

    async fn start(&self, name: &str) -> Result<Started, DriverError> {
        self.ensure_connected().await?;
        let path = format!("/api/files/local/{}", encode_segment(name));
        let request = self
            .http
            .request(Method::POST, &path)
            .json(&json!({"command": "select", "print": true}));
        self.http
            .send("start", request)
            .await
            .map(|_| Started::default())
    }

    async fn set_temperatures(&self, targets: HeatTargets) -> Result<(), DriverError> {
        self.ensure_connected().await?;
        // OctoPrint's printer API: the tool's and the bed's targets (PROTOCOLS.md §A1).
        if let Some(t) = targets.nozzle_c {
            let request = self
                .http
                .request(Method::POST, "/api/printer/tool")
                .json(&json!({"command": "target", "targets": {"tool0": t}}));
            self.http.send("set_temperatures", request).await?;
        }
        if let Some(t) = targets.bed_c {
            let request = self
                .http
                .request(Method::POST, "/api/printer/bed")
                .json(&json!({"command": "target", "target": t}));
            self.http.send("set_temperatures", request).await?;
        }
        Ok(())
    }

    async fn run_gcode(&self, lines: &[String]) -> Result<(), DriverError> {
        self.ensure_connected().await?;
        // OctoPrint's printer API sends commands to the printer after what is queued.
        let request = self
            .http
            .request(Method::POST, "/api/printer/command")
            .json(&json!({ "commands": lines }));
        self.http.send("run_gcode", request).await.map(drop)
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.job_command("pause", json!({"command": "pause", "action": "pause"}))
            .await
    }

    async fn resume(&self) -> Result<(), DriverError> {
        self.job_command("resume", json!({"command": "pause", "action": "resume"}))
            .await
    }

    async fn cancel(&self) -> Result<(), DriverError> {
        self.job_command("cancel", json!({"command": "cancel"}))
            .await
    }

    async fn current_job(&self) -> Result<Option<JobStatus>, DriverError> {
        let status = self.fetch().await?;
        if status.state == PrinterState::Offline {
            // OctoPrint is up but has no printer: it cannot say whether a job runs.
            return Err(self.http.unreachable(status.error.unwrap_or_default()));
        }
        Ok(status.job.filter(|j| !j.phase.is_finished()))
    }

    async fn remove(&self, name: &str) -> Result<(), DriverError> {
        let path = format!("/api/files/local/{}", encode_segment(name));
        match self
            .http
            .send("remove", self.http.request(Method::DELETE, &path))
            .await
        {
            Err(DriverError::Rejected {
                code: Some(404), ..
            }) => Ok(()),
            other => other.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/octoprint/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn a_printing_octoprint_maps_to_printing_with_progress_and_heaters() {
        let printer: PrinterResponse = serde_json::from_str(&fixture("printer.json")).unwrap();
        let job: JobResponse = serde_json::from_str(&fixture("job.json")).unwrap();
        let status = map_status(&printer, &job);
        assert_eq!(status.state, PrinterState::Printing);
        let job = status.job.unwrap();
        assert_eq!(job.file, "cube20_prusaslicer_mk3s.gcode");
        assert_eq!(job.phase, JobPhase::Printing);
        assert!((job.progress - 0.15674).abs() < 1e-4);
        assert_eq!(job.elapsed_seconds, Some(25));
        let tool = status.heaters.iter().find(|h| h.name == "tool0").unwrap();
        assert_eq!((tool.actual, tool.target), (215.0, 215.0));
        assert!(status.heaters.iter().any(|h| h.name == "bed"));
    }

    #[test]
    fn a_finished_job_is_completed_and_a_stopped_one_cancelled() {
        let mut printer: PrinterResponse = serde_json::from_str(&fixture("printer.json")).unwrap();
        printer.state.flags.printing = false;
        let mut job: JobResponse = serde_json::from_str(&fixture("job.json")).unwrap();
        assert_eq!(
            map_status(&printer, &job).job.unwrap().phase,
            JobPhase::Cancelled
        );
        job.progress.completion = Some(100.0);
        let status = map_status(&printer, &job);
        assert_eq!(
            (status.state, status.job.unwrap().phase),
            (PrinterState::Idle, JobPhase::Completed)
        );
        job.progress.completion = None;
        assert_eq!(
            map_status(&printer, &job).job,
            None,
            "a selected file that never ran is no job"
        );
    }
}
