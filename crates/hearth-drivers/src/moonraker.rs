//! Moonraker (Klipper's API server): JSON-RPC 2.0 over its WebSocket, file upload over HTTP.
//!
//! The driver keeps one WebSocket session, opened on first use and reopened after it drops. Once Klippy
//! is ready it subscribes to the printer objects it reports (`print_stats`, `virtual_sdcard`,
//! `webhooks` and every heater) and merges Moonraker's `notify_status_update` notifications into a
//! cache, so `status` costs no round trip. When Moonraker is unreachable, or Klippy is not connected to
//! it, the printer is offline; when Klippy is in shutdown or error, the printer is in error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::{MoonrakerConfig, timeout};
use crate::driver::{Driver, Upload};
use crate::error::DriverError;
use crate::http::{Http, Trust, file_part, upload_timeout};
use crate::model::{
    Capabilities, DriverInfo, DriverKind, HeatTargets, Heater, JobPhase, JobStatus, MaterialSlot,
    PrinterState, PrinterStatus, Started,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply = Result<Value, RpcError>;

/// A JSON-RPC error object.
#[derive(Debug)]
struct RpcError {
    code: i64,
    message: String,
}

/// State shared between the session's reader task and callers.
#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    /// Latest known fields of the subscribed printer objects.
    objects: Mutex<Map<String, Value>>,
    /// The WebSocket is open.
    alive: AtomicBool,
    /// The subscription is in place (cleared when Klippy disconnects or restarts).
    subscribed: AtomicBool,
}

impl Shared {
    fn lock_objects(&self) -> std::sync::MutexGuard<'_, Map<String, Value>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Reply>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles one message from Moonraker.
    fn dispatch(&self, message: &Value) {
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let reply = match message.get("error") {
                Some(error) => Err(RpcError {
                    code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                }),
                None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
            };
            if let Some(waiter) = self.lock_pending().remove(&id) {
                let _ = waiter.send(reply);
            }
            return;
        }
        match message.get("method").and_then(Value::as_str) {
            Some("notify_status_update") => {
                if let Some(update) = message.pointer("/params/0").and_then(Value::as_object) {
                    merge(&mut self.lock_objects(), update);
                }
            }
            Some(
                "notify_klippy_disconnected" | "notify_klippy_shutdown" | "notify_klippy_ready",
            ) => {
                self.subscribed.store(false, Ordering::SeqCst);
            }
            _ => {}
        }
    }

    /// The socket closed: every waiting call fails, the cache is stale.
    fn close(&self) {
        self.alive.store(false, Ordering::SeqCst);
        self.subscribed.store(false, Ordering::SeqCst);
        self.lock_objects().clear();
        for (_, waiter) in self.lock_pending().drain() {
            let _ = waiter.send(Err(RpcError {
                code: -1,
                message: "connection closed".into(),
            }));
        }
    }
}

/// Merges `{object: {field: value}}` updates into the cache, field by field.
fn merge(objects: &mut Map<String, Value>, update: &Map<String, Value>) {
    for (name, fields) in update {
        match (objects.get_mut(name), fields) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                for (field, value) in new {
                    old.insert(field.clone(), value.clone());
                }
            }
            _ => {
                objects.insert(name.clone(), fields.clone());
            }
        }
    }
}

/// One open WebSocket.
#[derive(Debug)]
struct Session {
    shared: Arc<Shared>,
    sink: tokio::sync::Mutex<SplitSink<Ws, Message>>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_loop(mut stream: SplitStream<Ws>, shared: Arc<Shared>) {
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(Message::Text(text)) => match serde_json::from_str::<Value>(text.as_str()) {
                Ok(message) => shared.dispatch(&message),
                Err(e) => tracing::warn!(error = %e, "Moonraker sent a message that is not JSON"),
            },
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    shared.close();
}

/// A Klipper printer behind Moonraker.
#[derive(Debug)]
pub struct MoonrakerDriver {
    info: DriverInfo,
    config: MoonrakerConfig,
    http: Http,
    ws_url: String,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
}

/// Objects asked for besides the heaters, and the fields used.
const OBJECTS: &[(&str, Option<&[&str]>)] = &[
    ("webhooks", Some(&["state", "state_message"])),
    ("print_stats", None),
    (
        "virtual_sdcard",
        Some(&["progress", "is_active", "file_path"]),
    ),
    // The speed factor M220 sets and the extrusion factor M221 sets (1.0: the file's own).
    ("gcode_move", Some(&["speed_factor", "extrude_factor"])),
    // The part-cooling fan ([fan], which M106 sets), 0 to 1.
    ("fan", Some(&["speed"])),
    // An MMU driven by Happy Hare (Klipper leaves out objects it does not have): its gates, and
    // which gate feeds each tool.
    (
        "mmu",
        Some(&["gate_status", "gate_material", "gate_color", "ttg_map"]),
    ),
];

impl MoonrakerDriver {
    /// A driver for the Moonraker at `config.url`; nothing is contacted yet.
    pub fn new(config: MoonrakerConfig) -> Result<Self, DriverError> {
        let http = Http::new(
            &config.url,
            config.api_key.clone(),
            timeout(config.timeout_secs),
            Trust {
                ca_file: config.ca_file.as_deref(),
                fingerprint: config.fingerprint.as_deref(),
            },
        )?;
        // The same host and port, ws:// or wss:// as the url is http:// or https://.
        let (_scheme, rest) = http.base().split_once("://").unwrap_or_default();
        let ws = if http.tls().is_some() { "wss" } else { "ws" };
        let ws_url = format!("{ws}://{rest}/websocket");
        let info = DriverInfo {
            kind: DriverKind::Moonraker,
            model: config
                .model
                .clone()
                .unwrap_or_else(|| "Klipper printer".into()),
            endpoint: http.base().to_owned(),
            capabilities: Capabilities {
                pause: true,
                layers: true,
                fault_injection: false,
                heat: true,
                gcode: true,
                tune: true,
            },
        };
        Ok(Self {
            info,
            config,
            http,
            ws_url,
            session: tokio::sync::Mutex::new(None),
        })
    }

    fn timeout(&self) -> Duration {
        timeout(self.config.timeout_secs)
    }

    /// The open session, connecting if there is none.
    async fn session(&self) -> Result<Arc<Session>, DriverError> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot
            .as_ref()
            .filter(|s| s.shared.alive.load(Ordering::SeqCst))
        {
            return Ok(session.clone());
        }
        *slot = None;
        let mut request = self
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| self.http.unreachable(e))?;
        if let Some(key) = &self.config.api_key {
            let value = key
                .parse()
                .map_err(|_| DriverError::Config("api_key is not a valid header value".into()))?;
            request.headers_mut().insert("X-Api-Key", value);
        }
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            false,
            self.http.tls().map(tokio_tungstenite::Connector::Rustls),
        );
        let (ws, _) = tokio::time::timeout(self.timeout(), connect)
            .await
            .map_err(|_| self.http.unreachable("WebSocket connect timed out"))?
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(response)
                    if matches!(response.status().as_u16(), 401 | 403) =>
                {
                    DriverError::Unauthorized {
                        endpoint: self.info.endpoint.clone(),
                        message: format!("WebSocket refused: {}", response.status()),
                    }
                }
                other => self.http.unreachable(other),
            })?;
        let (sink, stream) = ws.split();
        let shared = Arc::new(Shared::default());
        shared.alive.store(true, Ordering::SeqCst);
        let reader = tokio::spawn(read_loop(stream, shared.clone()));
        let session = Arc::new(Session {
            shared,
            sink: tokio::sync::Mutex::new(sink),
            next_id: AtomicU64::new(1),
            reader,
        });
        *slot = Some(session.clone());
        drop(slot);
        let mut identify = json!({
            "client_name": "hearth-agent",
            "version": env!("CARGO_PKG_VERSION"),
            // Not "agent": Moonraker allows one connection per agent name, and a restarted agent may
            // reconnect before the old socket is gone.
            "type": "other",
            "url": "https://example.invalid/hearth",
        });
        if let Some(key) = &self.config.api_key {
            identify["api_key"] = json!(key);
        }
        if let Err(e) = self
            .call_on(&session, "identify", "server.connection.identify", identify)
            .await
        {
            // Forget the session so that a corrected key (or a returning Moonraker) is tried afresh.
            *self.session.lock().await = None;
            return Err(e);
        }
        Ok(session)
    }

    /// One JSON-RPC call on the session.
    async fn call_on(
        &self,
        session: &Session,
        operation: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, DriverError> {
        let id = session.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        session.shared.lock_pending().insert(id, tx);
        let mut request = json!({"jsonrpc": "2.0", "method": method, "id": id});
        if !params.is_null() {
            request["params"] = params;
        }
        let sent = session
            .sink
            .lock()
            .await
            .send(Message::text(request.to_string()))
            .await;
        if let Err(e) = sent {
            session.shared.lock_pending().remove(&id);
            session.shared.close();
            return Err(self.http.unreachable(e));
        }
        let reply = match tokio::time::timeout(self.timeout(), rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(RpcError {
                code: -1,
                message: "connection closed".into(),
            }),
            Err(_) => {
                session.shared.lock_pending().remove(&id);
                return Err(self
                    .http
                    .unreachable(format!("no answer to {method} within {:?}", self.timeout())));
            }
        };
        reply.map_err(|e| self.rpc_error(operation, method, e))
    }

    fn rpc_error(&self, operation: &'static str, method: &str, error: RpcError) -> DriverError {
        let klippy_missing =
            error.code == 503 || (error.code == -32601 && method.starts_with("printer."));
        if error.code == -1 || klippy_missing {
            return self
                .http
                .unreachable(format!("{method}: {}", error.message));
        }
        // Moonraker 0.11 answers an identify with a wrong key by -32602 "Invalid API Key".
        if error.code == 401 || error.code == 403 || error.message.contains("API Key") {
            return DriverError::Unauthorized {
                endpoint: self.info.endpoint.clone(),
                message: error.message,
            };
        }
        DriverError::Rejected {
            operation,
            code: Some(error.code),
            message: error.message,
        }
    }

    async fn call(
        &self,
        operation: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, DriverError> {
        let session = self.session().await?;
        self.call_on(&session, operation, method, params).await
    }

    /// Subscribes to the printer objects unless already subscribed. Returns Klippy's state when it is not
    /// ready (then there is nothing to subscribe to).
    async fn ensure_subscribed(
        &self,
        session: &Session,
    ) -> Result<Option<(String, String)>, DriverError> {
        if session.shared.subscribed.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let info = self
            .call_on(session, "status", "server.info", Value::Null)
            .await?;
        let state = info
            .get("klippy_state")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        if state != "ready" {
            let message = match self
                .call_on(session, "status", "printer.info", Value::Null)
                .await
            {
                Ok(info) => info
                    .get("state_message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim()
                    .to_owned(),
                Err(_) => String::new(),
            };
            return Ok(Some((state, message)));
        }
        let heaters = self
            .call_on(
                session,
                "status",
                "printer.objects.query",
                json!({"objects": {"heaters": null}}),
            )
            .await?
            .pointer("/status/heaters/available_heaters")
            .and_then(Value::as_array)
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_else(|| vec!["extruder".into(), "heater_bed".into()]);
        let mut objects = Map::new();
        for (name, fields) in OBJECTS {
            objects.insert((*name).into(), fields.map_or(Value::Null, |f| json!(f)));
        }
        for heater in &heaters {
            objects.insert(heater.clone(), json!(["temperature", "target"]));
        }
        // Mark first, so that a notify_klippy_* arriving during the call clears it again.
        session.shared.subscribed.store(true, Ordering::SeqCst);
        let reply = self
            .call_on(
                session,
                "status",
                "printer.objects.subscribe",
                json!({"objects": objects}),
            )
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                session.shared.subscribed.store(false, Ordering::SeqCst);
                return Err(e);
            }
        };
        let mut cache = session.shared.lock_objects();
        cache.clear();
        if let Some(status) = reply.get("status").and_then(Value::as_object) {
            merge(&mut cache, status);
        }
        Ok(None)
    }

    /// Status, with an unreachable Moonraker (or missing Klippy) as an error.
    async fn fetch(&self) -> Result<PrinterStatus, DriverError> {
        let session = self.session().await?;
        if let Some((state, message)) = self.ensure_subscribed(&session).await? {
            return match state.as_str() {
                "shutdown" | "error" => Ok(PrinterStatus {
                    state: PrinterState::Error,
                    heaters: Vec::new(),
                    job: None,
                    error: Some(format!("Klipper {state}: {message}")),
                    slots: Vec::new(),
                    light: None,
                    speed_percent: None,
                    flow_percent: None,
                    fan_percent: None,
                }),
                _ => Err(self.http.unreachable(format!("Klipper is {state}"))),
            };
        }
        let objects = session.shared.lock_objects().clone();
        Ok(map_status(&objects))
    }
}

fn heater_name(klipper: &str) -> String {
    match klipper {
        "extruder" => "tool0".into(),
        "heater_bed" => "bed".into(),
        "heater_generic chamber" | "temperature_fan chamber" => "chamber".into(),
        other => match other
            .strip_prefix("extruder")
            .and_then(|n| n.parse::<u32>().ok())
        {
            Some(n) => format!("tool{n}"),
            None => other.into(),
        },
    }
}

/// Maps the cached Klipper objects to a status.
fn map_status(objects: &Map<String, Value>) -> PrinterStatus {
    let get = |object: &str, field: &str| objects.get(object).and_then(|o| o.get(field));
    let text = |object: &str, field: &str| get(object, field).and_then(Value::as_str).unwrap_or("");
    let number = |object: &str, field: &str| get(object, field).and_then(Value::as_f64);
    // A factor (1.0: the file's own; a fan's full speed) as a whole percent.
    let percent = |object: &str, field: &str| {
        number(object, field)
            .filter(|f| f.is_finite() && *f >= 0.0)
            .and_then(|f| u16::try_from((f * 100.0).round() as u64).ok())
    };

    let heaters = objects
        .iter()
        .filter_map(|(name, fields)| {
            let actual = fields.get("temperature")?.as_f64()?;
            let target = fields.get("target").and_then(Value::as_f64).unwrap_or(0.0);
            Some(Heater {
                name: heater_name(name),
                actual,
                target,
            })
        })
        .collect();

    let webhooks = text("webhooks", "state");
    let job_state = text("print_stats", "state");
    let message = text("print_stats", "message");
    let (state, phase) = if !webhooks.is_empty() && webhooks != "ready" {
        (PrinterState::Error, None)
    } else {
        match job_state {
            "printing" => (PrinterState::Printing, Some(JobPhase::Printing)),
            "paused" => (PrinterState::Paused, Some(JobPhase::Paused)),
            "complete" => (PrinterState::Idle, Some(JobPhase::Completed)),
            "cancelled" => (PrinterState::Idle, Some(JobPhase::Cancelled)),
            "error" => (PrinterState::Error, Some(JobPhase::Failed)),
            _ => (PrinterState::Idle, None),
        }
    };
    let error = match state {
        PrinterState::Error if webhooks != "ready" && !webhooks.is_empty() => Some(format!(
            "Klipper {webhooks}: {}",
            text("webhooks", "state_message").trim()
        )),
        _ if !message.is_empty() => Some(message.to_owned()),
        _ => None,
    };

    let filename = text("print_stats", "filename");
    let job = phase.filter(|_| !filename.is_empty()).map(|phase| {
        let progress = if phase == JobPhase::Completed {
            1.0
        } else {
            number("virtual_sdcard", "progress")
                .unwrap_or(0.0)
                .clamp(0.0, 1.0)
        };
        let elapsed = number("print_stats", "print_duration")
            .unwrap_or(0.0)
            .max(0.0);
        let remaining = (progress > 0.0 && !phase.is_finished())
            .then(|| (elapsed / progress - elapsed).max(0.0));
        let info = |field: &str| {
            objects
                .get("print_stats")?
                .pointer(&format!("/info/{field}"))?
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
        };
        JobStatus {
            file: filename.to_owned(),
            phase,
            progress,
            layer: info("current_layer"),
            total_layers: info("total_layer"),
            elapsed_seconds: Some(elapsed.round() as u64),
            remaining_seconds: remaining.map(|s| s.round() as u64),
        }
    });
    PrinterStatus {
        state,
        heaters,
        job,
        error,
        slots: mmu_gates(objects.get("mmu")),
        light: None,
        speed_percent: percent("gcode_move", "speed_factor"),
        flow_percent: percent("gcode_move", "extrude_factor"),
        fan_percent: percent("fan", "speed").and_then(|p| u8::try_from(p).ok()),
    }
}

/// The parameters a Klipper macro's template reads, `params.NAME` or `params["NAME"]` (names
/// in upper case, as Klipper passes them), in the order first read, each with the first
/// `|default(VALUE)` given to it.
fn macro_params(template: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find("params") {
        // `rawparams` is the whole line, not a parameter.
        let whole_word = !template[..template.len() - rest.len() + at]
            .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        rest = &rest[at + "params".len()..];
        if !whole_word {
            continue;
        }
        let (name, after) = if let Some(r) = rest.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            (&r[..end], &r[end..])
        } else if let Some(r) = rest.strip_prefix('[') {
            let r = r.trim_start();
            let Some(quote) = r.chars().next().filter(|q| *q == '"' || *q == '\'') else {
                continue;
            };
            let r = &r[1..];
            let Some(end) = r.find(quote) else { continue };
            let after = r[end + 1..].trim_start();
            (&r[..end], after.strip_prefix(']').unwrap_or(after))
        } else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let default = after
            .trim_start()
            .strip_prefix('|')
            .map(str::trim_start)
            .and_then(|f| f.strip_prefix("default"))
            .map(str::trim_start)
            .and_then(|f| f.strip_prefix('('))
            .and_then(|f| {
                f.find(')')
                    .map(|end| f[..end].trim().trim_matches(['"', '\'']).to_owned())
            });
        let name = name.to_ascii_uppercase();
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, d)) if d.is_none() => *d = default,
            Some(_) => {}
            None => out.push((name, default)),
        }
        rest = after;
    }
    out
}

/// How a gate of a Happy Hare MMU is named as a slot: `G0`, `G1`, ...
fn gate_slot(gate: u64) -> String {
    format!("G{gate}")
}

/// The gates of a Happy Hare MMU holding filament (`gate_status` 1, or 2 from the buffer; 0 is
/// empty, -1 unknown), with the material and colour Happy Hare's gate map gives them.
fn mmu_gates(mmu: Option<&Value>) -> Vec<MaterialSlot> {
    let Some(mmu) = mmu else {
        return Vec::new();
    };
    let list = |field: &str| mmu.get(field).and_then(Value::as_array);
    let Some(status) = list("gate_status") else {
        return Vec::new();
    };
    let text = |field: &str, gate: usize| {
        list(field)
            .and_then(|l| l.get(gate))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    status
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.as_i64(), Some(1 | 2)))
        .filter_map(|(gate, _)| {
            Some(MaterialSlot {
                name: gate_slot(gate as u64),
                material: text("gate_material", gate)?.to_owned(),
                color: text("gate_color", gate).and_then(|c| {
                    let hex = c.trim_start_matches('#');
                    (matches!(hex.len(), 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                        .then(|| hex[..6].to_ascii_uppercase())
                }),
                remain_percent: None,
                tag: None,
            })
        })
        .collect()
}

#[async_trait]
impl Driver for MoonrakerDriver {
    fn describe(&self) -> &DriverInfo {
        &self.info
    }

    /// The snapshot URL of the first enabled webcam of `server.webcams.list` (what Mainsail and
    /// Fluidd show, crowsnest's `/webcam/?action=snapshot` by default).
    fn camera_client(&self, url: &str) -> Option<reqwest::Client> {
        self.http.client_for_host(url)
    }

    async fn camera_snapshot_url(&self) -> Result<Option<String>, DriverError> {
        let list = self
            .call("camera", "server.webcams.list", json!({}))
            .await?;
        let cams = list["webcams"].as_array().cloned().unwrap_or_default();
        Ok(cams
            .iter()
            .filter(|c| c["enabled"].as_bool() != Some(false))
            .filter_map(|c| c["snapshot_url"].as_str())
            .find_map(|u| crate::http::camera_url(self.http.base(), u, false)))
    }

    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        match self.fetch().await {
            Err(DriverError::Unreachable { source, .. }) => Ok(PrinterStatus::offline(format!(
                "Moonraker unreachable: {}",
                crate::error::chain(source.as_ref())
            ))),
            other => other,
        }
    }

    async fn upload(&self, upload: Upload<'_>) -> Result<(), DriverError> {
        let (part, size) = file_part(upload.path, upload.name).await?;
        let form = reqwest::multipart::Form::new()
            .text("root", "gcodes")
            .part("file", part);
        let request = self
            .http
            .request(Method::POST, "/server/files/upload")
            .timeout(upload_timeout(self.timeout(), size))
            .multipart(form);
        self.http.send("upload", request).await.map(drop)
    }

    async fn start(&self, name: &str) -> Result<Started, DriverError> {
        self.call("start", "printer.print.start", json!({"filename": name}))
            .await?;
        // Happy Hare feeds tool N from gate `ttg_map[N]`: the slots of the file's tools.
        let session = self.session.lock().await.clone();
        let slots = session
            .and_then(|s| {
                let objects = s.shared.lock_objects();
                let map = objects.get("mmu")?.get("ttg_map")?.as_array()?.clone();
                map.iter().map(|g| g.as_u64().map(gate_slot)).collect()
            })
            .unwrap_or_default();
        Ok(Started { slots })
    }

    async fn set_temperatures(&self, targets: HeatTargets) -> Result<(), DriverError> {
        // Klipper's own command for a heater's target, through Moonraker's G-code endpoint.
        let script = [
            ("extruder", targets.nozzle_c),
            ("heater_bed", targets.bed_c),
        ]
        .into_iter()
        .filter_map(|(heater, t)| {
            t.map(|t| format!("SET_HEATER_TEMPERATURE HEATER={heater} TARGET={t}"))
        })
        .collect::<Vec<_>>()
        .join("\n");
        if script.is_empty() {
            return Ok(());
        }
        self.call(
            "set_temperatures",
            "printer.gcode.script",
            json!({ "script": script }),
        )
        .await
        .map(drop)
    }

    async fn macros(&self) -> Result<Vec<crate::Macro>, DriverError> {
        // Klipper lists each `[gcode_macro NAME]` as the object `gcode_macro NAME`; its template
        // is in the configuration's settings, under the section's name in lower case.
        let listed = self
            .call("macros", "printer.objects.list", Value::Null)
            .await?;
        let mut names: Vec<String> = listed["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str()?.strip_prefix("gcode_macro "))
            .map(str::to_owned)
            .collect();
        names.sort();
        let settings = self
            .call(
                "macros",
                "printer.objects.query",
                json!({"objects": {"configfile": ["settings"]}}),
            )
            .await?;
        let settings = settings.pointer("/status/configfile/settings");
        Ok(names
            .into_iter()
            .map(|name| {
                let template = settings
                    .and_then(|s| s.get(format!("gcode_macro {}", name.to_lowercase())))
                    .and_then(|m| m.get("gcode"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                crate::Macro {
                    params: macro_params(template),
                    name,
                }
            })
            .collect())
    }

    async fn run_gcode(&self, lines: &[String]) -> Result<(), DriverError> {
        // Klipper runs a script's lines in order and answers when they are done, or with its
        // error ("Unknown command", a macro's own) for the first that fails.
        self.call(
            "run_gcode",
            "printer.gcode.script",
            json!({ "script": lines.join("\n") }),
        )
        .await
        .map(drop)
    }

    async fn pause(&self) -> Result<(), DriverError> {
        self.call("pause", "printer.print.pause", Value::Null)
            .await
            .map(drop)
    }

    async fn resume(&self) -> Result<(), DriverError> {
        self.call("resume", "printer.print.resume", Value::Null)
            .await
            .map(drop)
    }

    async fn cancel(&self) -> Result<(), DriverError> {
        self.call("cancel", "printer.print.cancel", Value::Null)
            .await
            .map(drop)
    }

    async fn current_job(&self) -> Result<Option<JobStatus>, DriverError> {
        Ok(self.fetch().await?.job.filter(|j| !j.phase.is_finished()))
    }

    async fn remove(&self, name: &str) -> Result<(), DriverError> {
        let params = json!({"path": format!("gcodes/{name}")});
        match self
            .call("remove", "server.files.delete_file", params)
            .await
        {
            // Moonraker 0.11 answers a missing file with 400 "Invalid file path" (404 in other versions).
            Err(DriverError::Rejected {
                code: Some(404), ..
            }) => Ok(()),
            Err(DriverError::Rejected {
                code: Some(400),
                message,
                ..
            }) if message.starts_with("Invalid file path") => Ok(()),
            other => other.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn objects(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn replies_reach_their_caller_and_notifications_update_the_cache() {
        let shared = Shared::default();
        let (tx, mut rx) = oneshot::channel();
        shared.lock_pending().insert(5, tx);
        // Shapes as recorded from Moonraker 0.11 (tests/fixtures/moonraker/ws_transcript_no_klippy.txt).
        shared.dispatch(&json!({"jsonrpc": "2.0", "error": {"code": 503, "message": "Klippy Host not connected"}, "id": 5}));
        let error = rx.try_recv().unwrap().unwrap_err();
        assert_eq!(
            (error.code, error.message.as_str()),
            (503, "Klippy Host not connected")
        );

        shared.lock_objects().insert(
            "extruder".into(),
            json!({"temperature": 20.0, "target": 0.0}),
        );
        shared.subscribed.store(true, Ordering::SeqCst);
        shared.dispatch(&json!({"jsonrpc": "2.0", "method": "notify_status_update",
                                "params": [{"extruder": {"target": 215.0}}, 1234.5]}));
        assert_eq!(
            shared.lock_objects()["extruder"],
            json!({"temperature": 20.0, "target": 215.0})
        );

        shared.dispatch(&json!({"jsonrpc": "2.0", "method": "notify_klippy_disconnected"}));
        assert!(
            !shared.subscribed.load(Ordering::SeqCst),
            "resubscribe after Klipper returns"
        );

        let (tx, mut rx) = oneshot::channel();
        shared.lock_pending().insert(6, tx);
        shared.close();
        assert!(
            rx.try_recv().unwrap().is_err(),
            "a closed socket fails waiting calls"
        );
    }

    #[test]
    fn a_printing_klipper_maps_to_printing_with_layers_and_normalised_heaters() {
        let mut cache = objects(json!({
            "webhooks": {"state": "ready", "state_message": "Printer is ready"},
            "print_stats": {"state": "printing", "filename": "hearth-1.gcode", "print_duration": 100.0,
                            "message": "", "info": {"total_layer": 150, "current_layer": 30}},
            "virtual_sdcard": {"progress": 0.25},
            "gcode_move": {"speed_factor": 1.2, "extrude_factor": 0.95},
            "fan": {"speed": 0.8},
            "extruder": {"temperature": 214.6, "target": 215.0},
            "heater_bed": {"temperature": 60.1, "target": 60.0},
            "extruder1": {"temperature": 21.0, "target": 0.0},
        }));
        merge(
            &mut cache,
            &objects(
                json!({"virtual_sdcard": {"progress": 0.5}, "print_stats": {"print_duration": 200.0}}),
            ),
        );
        let status = map_status(&cache);
        assert_eq!(status.state, PrinterState::Printing);
        let job = status.job.unwrap();
        assert_eq!(
            (job.file.as_str(), job.progress, job.layer, job.total_layers),
            ("hearth-1.gcode", 0.5, Some(30), Some(150))
        );
        assert_eq!(
            (job.elapsed_seconds, job.remaining_seconds),
            (Some(200), Some(200))
        );
        let names: Vec<_> = status.heaters.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["tool0", "tool1", "bed"]);
        assert_eq!(
            (
                status.speed_percent,
                status.flow_percent,
                status.fan_percent
            ),
            (Some(120), Some(95), Some(80))
        );
    }

    #[test]
    fn a_macros_parameters_are_read_from_its_template_with_their_defaults() {
        let template = "{% set temp = params.TEMP|default(220)|float %}\n\
            {% set speed = params[\"SPEED\"] | default( 300 ) %}\n\
            M109 S{temp}\n\
            {% if params.TEMP %}M117 {rawparams}{% endif %}\n\
            G1 E{params.length|default('50')} F{speed}\n\
            {% set x = myparams.NOT_ONE %}";
        assert_eq!(
            macro_params(template),
            [
                ("TEMP".to_owned(), Some("220".to_owned())),
                ("SPEED".to_owned(), Some("300".to_owned())),
                ("LENGTH".to_owned(), Some("50".to_owned())),
            ]
        );
        assert_eq!(macro_params("G28\nparams"), []);
        assert_eq!(macro_params("M104 S{params.T}"), [("T".to_owned(), None)]);
    }

    #[test]
    fn klipper_shutdown_and_print_errors_are_errors_with_their_message() {
        let status = map_status(&objects(json!({
            "webhooks": {"state": "shutdown", "state_message": "MCU 'mcu' shutdown: Timer too close\n"},
            "print_stats": {"state": "printing", "filename": "a.gcode"},
        })));
        assert_eq!(status.state, PrinterState::Error);
        assert_eq!(
            status.error.as_deref(),
            Some("Klipper shutdown: MCU 'mcu' shutdown: Timer too close")
        );

        let status = map_status(&objects(json!({
            "webhooks": {"state": "ready"},
            "print_stats": {"state": "error", "filename": "a.gcode", "message": "Heater extruder not heating at expected rate"},
        })));
        assert_eq!(
            (status.state, status.job.unwrap().phase),
            (PrinterState::Error, JobPhase::Failed)
        );
        assert!(status.error.unwrap().contains("not heating"));
    }

    #[test]
    fn a_complete_print_is_idle_with_a_completed_job_and_standby_has_none() {
        let done = map_status(&objects(json!({
            "print_stats": {"state": "complete", "filename": "a.gcode"}, "virtual_sdcard": {"progress": 0.0}
        })));
        let job = done.job.unwrap();
        assert_eq!(
            (done.state, job.phase, job.progress),
            (PrinterState::Idle, JobPhase::Completed, 1.0)
        );
        let standby = map_status(&objects(
            json!({"print_stats": {"state": "standby", "filename": ""}}),
        ));
        assert_eq!((standby.state, standby.job), (PrinterState::Idle, None));
    }
}
