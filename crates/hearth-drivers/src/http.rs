//! HTTP plumbing shared by the OctoPrint, Moonraker and PrusaLink drivers: one place maps transport failures and
//! status codes to `DriverError`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::DriverError;

/// A base URL, an optional `X-Api-Key`, and a client with timeouts (and, for an `https://` URL,
/// the TLS trust of `crate::tls`).
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
    api_key: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// How the host of an `https://` URL is trusted: its printer table's `ca_file` and `fingerprint`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trust<'a> {
    pub ca_file: Option<&'a Path>,
    pub fingerprint: Option<&'a str>,
}

impl Http {
    pub(crate) fn new(
        url: &str,
        api_key: Option<String>,
        timeout: Duration,
        trust: Trust<'_>,
    ) -> Result<Self, DriverError> {
        let base = url.trim_end_matches('/').to_owned();
        let tls = crate::tls::host_config(&base, trust.ca_file, trust.fingerprint)
            .map_err(|e| DriverError::Config(format!("printer at {base}: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout);
        if let Some(config) = &tls {
            builder = builder.use_preconfigured_tls((**config).clone());
        }
        let client = builder
            .build()
            .map_err(|e| DriverError::Config(format!("http client: {e}")))?;
        Ok(Self {
            client,
            base,
            api_key,
            tls,
        })
    }

    /// The base URL, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// This client, for `url` when it is `https://` on the base URL's host (any port): it
    /// trusts that host as the printer's table says. `None` for any other URL.
    pub(crate) fn client_for_host(&self, url: &str) -> Option<reqwest::Client> {
        self.tls.as_ref()?;
        let url = reqwest::Url::parse(url).ok()?;
        let base = reqwest::Url::parse(&self.base).ok()?;
        (url.scheme() == "https" && url.host() == base.host()).then(|| self.client.clone())
    }

    /// The TLS configuration of an `https://` base URL (for a WebSocket to the same host).
    pub(crate) fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => builder.header("X-Api-Key", key),
            None => builder,
        }
    }

    pub(crate) fn unreachable(
        &self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> DriverError {
        DriverError::Unreachable {
            endpoint: self.base.clone(),
            source: source.into(),
        }
    }

    /// Sends a request; a response that is not 2xx becomes the matching error.
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<Response, DriverError> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        self.check(operation, response).await
    }

    /// A response that is not 2xx becomes the matching error.
    pub(crate) async fn check(
        &self,
        operation: &'static str,
        response: Response,
    ) -> Result<Response, DriverError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let message = error_message(&body).unwrap_or_else(|| status.to_string());
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => DriverError::Unauthorized {
                endpoint: self.base.clone(),
                message,
            },
            // OctoPrint treats an unknown API key as no key, falls back to its session cookie and then
            // fails a POST's CSRF check with 400.
            StatusCode::BAD_REQUEST if message.contains("CSRF") => DriverError::Unauthorized {
                endpoint: self.base.clone(),
                message,
            },
            // A reverse proxy in front of a stopped OctoPrint answers these; Moonraker answers 503 while
            // Klipper is not connected. Either way the printer cannot be driven right now.
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => self.unreachable(format!("{status}: {message}")),
            _ => DriverError::Rejected {
                operation,
                code: Some(i64::from(status.as_u16())),
                message,
            },
        })
    }

    /// Sends a request and decodes its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<T, DriverError> {
        let response = self.send(operation, request).await?;
        self.decode(operation, response).await
    }

    /// Decodes a JSON answer.
    pub(crate) async fn decode<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        response: Response,
    ) -> Result<T, DriverError> {
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&bytes).map_err(|e| DriverError::Protocol {
            operation,
            message: format!(
                "unexpected answer: {}",
                truncate(&String::from_utf8_lossy(&bytes))
            ),
            source: Some(Box::new(e)),
        })
    }
}

/// The message inside an error body: OctoPrint sends `{"error": "..."}`, Moonraker
/// `{"error": {"message": "..."}}`; anything else is kept as (truncated) text.
fn error_message(body: &str) -> Option<String> {
    if body.trim().is_empty() {
        return None;
    }
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?;
            error
                .as_str()
                .or_else(|| error.get("message").and_then(|m| m.as_str()))
                .map(str::to_owned)
        });
    Some(from_json.unwrap_or_else(|| truncate(body.trim())))
}

fn truncate(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// A camera URL found in a printer's settings, made usable from the agent's machine: a path alone
/// (`/webcam/?action=snapshot`) is on the printer's host, at the printer's port when
/// `relative_keeps_port` (OctoPrint serves it) or at the default port (Moonraker's web UI behind
/// nginx serves it, not Moonraker's own port); `localhost` or `127.0.0.1` (as OctoPi sets
/// mjpg-streamer up) means the printer's host too. `None` for an empty or unusable one.
pub(crate) fn camera_url(base: &str, found: &str, relative_keeps_port: bool) -> Option<String> {
    let found = found.trim();
    if found.is_empty() {
        return None;
    }
    let base = reqwest::Url::parse(base).ok()?;
    let host = base.host_str()?.to_owned();
    let mut url = if found.starts_with('/') {
        let mut origin = base.clone();
        if !relative_keeps_port {
            origin.set_port(None).ok()?;
        }
        origin.join(found).ok()?
    } else {
        reqwest::Url::parse(found).ok()?
    };
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    if matches!(
        url.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    ) {
        url.set_host(Some(&host)).ok()?;
    }
    Some(url.to_string())
}

/// Percent-encodes one URL path segment (a file name).
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Upload timeout: the base timeout plus one second per 100 kB, since a Pi on Wi-Fi may take a while.
pub(crate) fn upload_timeout(base: Duration, size: u64) -> Duration {
    base + Duration::from_secs(size / 100_000)
}

/// The multipart part holding a file, named as it will be on the printer.
pub(crate) async fn file_part(
    path: &std::path::Path,
    name: &str,
) -> Result<(reqwest::multipart::Part, u64), DriverError> {
    let file_error = |source| DriverError::File {
        path: path.to_owned(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(file_error)?;
    let size = file.metadata().await.map_err(file_error)?.len();
    let part = reqwest::multipart::Part::stream_with_length(file, size)
        .file_name(name.to_owned())
        .mime_str("application/octet-stream")
        .map_err(|e| DriverError::Config(format!("mime: {e}")))?;
    Ok((part, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_taken_from_both_peers_shapes() {
        assert_eq!(
            error_message(r#"{"error":"Printer is not operational"}"#).as_deref(),
            Some("Printer is not operational")
        );
        assert_eq!(
            error_message(r#"{"error":{"code":503,"message":"Klippy Host not connected"}}"#)
                .as_deref(),
            Some("Klippy Host not connected")
        );
        assert_eq!(
            error_message("<html>oops</html>").as_deref(),
            Some("<html>oops</html>")
        );
        assert_eq!(error_message("  "), None);
    }

    #[test]
    fn camera_urls_from_printer_settings_point_at_the_printer() {
        let octo = "http://octopi.local:5000";
        assert_eq!(
            camera_url(octo, "/webcam/?action=snapshot", true).as_deref(),
            Some("http://octopi.local:5000/webcam/?action=snapshot")
        );
        assert_eq!(
            camera_url(octo, "http://127.0.0.1:8080/?action=snapshot", true).as_deref(),
            Some("http://octopi.local:8080/?action=snapshot")
        );
        assert_eq!(
            camera_url("http://voron:7125", "/webcam/?action=snapshot", false).as_deref(),
            Some("http://voron/webcam/?action=snapshot")
        );
        assert_eq!(
            camera_url(octo, "http://10.0.0.9/snap.jpg", true).as_deref(),
            Some("http://10.0.0.9/snap.jpg")
        );
        assert_eq!(camera_url(octo, "", true), None);
        assert_eq!(camera_url(octo, "rtsp://cam/stream", true), None);
    }

    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(encode_segment("hearth-01J.gcode"), "hearth-01J.gcode");
        assert_eq!(encode_segment("a b/ü.gcode"), "a%20b%2F%C3%BC.gcode");
    }
}
