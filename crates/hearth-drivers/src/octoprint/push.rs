//! OctoPrint's push API: after `POST /api/login {"passive": true}` with the API key, a raw WebSocket at
//! `/sockjs/websocket` authenticated with `{"auth": "<user>:<session>"}` streams `current` messages
//! (state, job, progress, temperatures) about every half second. The driver keeps the latest one, so
//! telemetry costs no request while the socket is open; REST stays the fallback.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{JobInfo, JobResponse, PrinterResponse, PrinterStateResponse, Progress};
use crate::error::DriverError;
use crate::http::Http;

/// A push message older than this is not trusted as the printer's current state.
const FRESH: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct Login {
    name: String,
    session: String,
}

/// The part of a `current` (or `history`) message the driver uses.
#[derive(Debug, Deserialize)]
struct Current {
    state: PrinterStateResponse,
    job: JobInfo,
    progress: Progress,
    #[serde(default)]
    temps: Vec<BTreeMap<String, Value>>,
}

#[derive(Debug, Default)]
struct Latest {
    received: Option<Instant>,
    current: Option<Current>,
    /// Temperatures are sent only when new readings arrive, so the last ones are kept.
    temperature: BTreeMap<String, Value>,
}

#[derive(Debug, Default)]
struct Shared {
    alive: AtomicBool,
    latest: Mutex<Latest>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn receive(&self, text: &str) {
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(payload) = message.get("current").or_else(|| message.get("history")) else {
            return;
        };
        let current: Current = match serde_json::from_value(payload.clone()) {
            Ok(current) => current,
            Err(e) => {
                tracing::debug!(error = %e, "OctoPrint push message not understood");
                return;
            }
        };
        let mut latest = self.lock();
        if let Some(last) = current.temps.last() {
            latest.temperature = last
                .iter()
                .filter(|(k, _)| *k != "time")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        latest.current = Some(current);
        latest.received = Some(Instant::now());
    }
}

/// An open push connection; closed on drop.
#[derive(Debug)]
pub(super) struct Push {
    shared: Arc<Shared>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Push {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Push {
    /// Logs in with the API key and opens the socket.
    pub(super) async fn open(http: &Http, timeout: Duration) -> Result<Self, DriverError> {
        let request = http
            .request(Method::POST, "/api/login")
            .json(&json!({"passive": true}));
        let login: Login = http.json("push login", request).await?;
        let url = format!(
            "ws{}/sockjs/websocket",
            http.base().trim_start_matches("http")
        );
        let (mut ws, _) =
            tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url.as_str()))
                .await
                .map_err(|_| http.unreachable("push socket connect timed out"))?
                .map_err(|e| http.unreachable(e))?;
        let auth = json!({"auth": format!("{}:{}", login.name, login.session)});
        ws.send(Message::text(auth.to_string()))
            .await
            .map_err(|e| http.unreachable(e))?;
        let shared = Arc::new(Shared::default());
        shared.alive.store(true, Ordering::SeqCst);
        let reader_shared = shared.clone();
        let reader = tokio::spawn(async move {
            while let Some(frame) = ws.next().await {
                match frame {
                    Ok(Message::Text(text)) => reader_shared.receive(text.as_str()),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            reader_shared.alive.store(false, Ordering::SeqCst);
        });
        Ok(Self { shared, reader })
    }

    pub(super) fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
    }

    /// The latest state as the REST payloads it mirrors, if the socket is open and the state fresh.
    pub(super) fn latest(&self) -> Option<(PrinterResponse, JobResponse)> {
        if !self.is_alive() {
            return None;
        }
        let latest = self.shared.lock();
        let current = latest.current.as_ref()?;
        if latest.received.is_none_or(|t| t.elapsed() > FRESH) {
            return None;
        }
        let printer = PrinterResponse {
            state: current.state.clone(),
            temperature: latest.temperature.clone(),
        };
        let job = JobResponse {
            job: current.job.clone(),
            progress: current.progress.clone(),
            state: current.state.text.clone(),
        };
        Some((printer, job))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_recorded_current_message_mirrors_the_rest_payloads() {
        let shared = Shared::default();
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/octoprint/push_current.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        shared.receive(&text);
        let latest = shared.lock();
        let current = latest.current.as_ref().unwrap();
        assert!(current.state.flags.printing);
        assert!(current.progress.completion.is_some_and(|c| c > 0.0));
        assert!(
            current
                .job
                .file
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("hearth-"))
        );
        assert!(latest.temperature.contains_key("tool0"));
        assert!(!latest.temperature.contains_key("time"));
    }
}
