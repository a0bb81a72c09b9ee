//! Printer cameras: take a frame from the camera's snapshot URL, seal it to the organisation's
//! current epoch and sign it (`JobOpener::seal_snapshot`), and send it to the server, which keeps
//! the latest one per printer for members and cannot open it.
//!
//! A camera is anything that answers an HTTP GET with one JPEG or PNG image: mjpg-streamer,
//! ustreamer and crowsnest (`/webcam/?action=snapshot`, what OctoPi and Mainsail OS set up), an IP
//! camera's still-image URL, an ESP32-CAM's `/capture`. The agent asks it for a frame every
//! `interval_seconds` while the printer has a job, every `idle_interval_seconds` otherwise, and
//! at once when a member asks (`ServerMsg::Snapshot`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hearth_proto::api::{MAX_SNAPSHOT_BYTES, SnapshotUpload};

use crate::opener::{JobOpener, SealSnapshotError};

/// Largest image the agent takes from a camera: what still fits the server's limit once sealed
/// (age adds a header and 16 bytes per 64 KiB).
pub const MAX_IMAGE_BYTES: usize = MAX_SNAPSHOT_BYTES - 64 * 1024;

/// How long a camera may take to answer.
const CAMERA_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a camera's next frame is due at `now`, its last one taken at `last` (`None`: none yet,
/// due at once). The cadence follows what the printer does now, so a print that starts during a
/// long idle interval gets its frames from then on.
pub fn due(
    config: &crate::config::CameraConfig,
    last: Option<std::time::Instant>,
    now: std::time::Instant,
    printing: bool,
) -> bool {
    let every = if printing {
        config.interval_seconds
    } else {
        config.idle_interval_seconds
    };
    match last {
        None => true,
        Some(t) => every > 0.0 && now >= t + Duration::from_secs_f64(every),
    }
}

/// What a camera does at one tick of the agent loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Take a frame now.
    pub take: bool,
    /// It is a frame of the active job's timelapse.
    pub timelapse: bool,
}

/// What a camera does at `now`: its last frame was taken at `last`, the printer has a job
/// (`printing`) and reports `layer`; `timelapse_layer` is the layer of the last timelapse frame.
/// Frames come on the cadence of [`due`]; with a timelapse, those taken on the printing cadence
/// are its frames (`interval`), or else one is taken at each new layer (`layer`; a printer that
/// reports no layer falls back to the cadence).
pub fn plan(
    config: &crate::config::CameraConfig,
    last: Option<std::time::Instant>,
    now: std::time::Instant,
    printing: bool,
    layer: Option<u32>,
    timelapse_layer: Option<u32>,
) -> Plan {
    use crate::config::TimelapseTrigger;
    let due = due(config, last, now, printing);
    if !(config.timelapse && printing) {
        return Plan {
            take: due,
            timelapse: false,
        };
    }
    match (config.timelapse_trigger, layer) {
        (TimelapseTrigger::Layer, Some(l)) => {
            let new_layer = timelapse_layer != Some(l);
            Plan {
                take: due || new_layer,
                timelapse: new_layer,
            }
        }
        _ => Plan {
            take: due,
            timelapse: due,
        },
    }
}

/// Why a `layer` timelapse trigger cannot work for a printer whose driver reports no layers (its
/// timelapse then comes on the interval), said once at start.
pub fn layer_trigger_unsupported(
    config: &crate::config::CameraConfig,
    capabilities: hearth_drivers::Capabilities,
) -> Option<String> {
    (config.timelapse
        && config.timelapse_trigger == crate::config::TimelapseTrigger::Layer
        && !capabilities.layers)
        .then(|| {
            format!(
                "timelapse_trigger = \"layer\", but this printer reports no layers: its timelapse \
                 takes a frame every {} s instead",
                config.interval_seconds
            )
        })
}

/// What an image starts with: JPEG or PNG (what cameras send; anything else is refused rather
/// than sealed and shown as a broken picture).
fn is_image(b: &[u8]) -> bool {
    b.starts_with(&[0xff, 0xd8, 0xff]) || b.starts_with(b"\x89PNG\r\n\x1a\n")
}

/// `url` as logs show it: without the user name and password an IP camera's URL may carry.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "the configured snapshot_url".into(),
    }
}

/// One frame from the camera at `url`.
pub async fn capture(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let shown = shown(url);
    let mut resp = http
        .get(url)
        .timeout(CAMERA_TIMEOUT)
        .send()
        .await
        .map_err(|e| {
            format!(
                "the camera at {shown} did not answer: {}",
                // Not with its URL, which may carry the camera's password.
                crate::agent::chain(&e.without_url())
            )
        })?;
    if !resp.status().is_success() {
        return Err(format!("the camera at {shown} answered {}", resp.status()));
    }
    let mut image = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        format!(
            "reading the camera's frame: {}",
            crate::agent::chain(&e.without_url())
        )
    })? {
        if image.len() + chunk.len() > MAX_IMAGE_BYTES {
            return Err(format!(
                "the camera's frame is larger than {} MiB: lower its resolution",
                MAX_IMAGE_BYTES / (1024 * 1024)
            ));
        }
        image.extend_from_slice(&chunk);
    }
    if !is_image(&image) {
        return Err(format!(
            "the camera at {shown} did not send a JPEG or PNG image (a stream URL instead of a snapshot URL?)"
        ));
    }
    Ok(image)
}

/// Why sending a frame failed.
#[derive(Debug)]
enum SendError {
    /// Sealed to an epoch that is no longer the current one: refresh the chain, seal again.
    StaleEpoch,
    /// The server did not answer, or answered that it cannot now (5xx): try again later.
    Unreachable(String),
    /// The server refused the frame for good.
    Refused(String),
}

impl SendError {
    fn into_message(self) -> String {
        match self {
            SendError::StaleEpoch => {
                "the frame is sealed to an epoch that is no longer the organisation's".into()
            }
            SendError::Unreachable(why) | SendError::Refused(why) => why,
        }
    }
}

/// Sends a sealed frame of `printer`; `late`: a timelapse frame kept while the server was away.
async fn send(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    printer: &str,
    sealed: &[u8],
    manifest: serde_json::Value,
    late: bool,
) -> Result<(), SendError> {
    let mut url = snapshot_url(server, printer).map_err(SendError::Refused)?;
    if late {
        url.query_pairs_mut().append_pair("late", "true");
    }
    let body = SnapshotUpload {
        manifest,
        sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
    };
    let resp = http
        .put(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            SendError::Unreachable(format!("sending the frame: {}", crate::agent::chain(&e)))
        })?;
    if resp.status().is_success() {
        return Ok(());
    }
    let status = resp.status();
    let err: serde_json::Value = resp.json().await.unwrap_or_default();
    if status == reqwest::StatusCode::CONFLICT && err["code"] == "stale_epoch" {
        return Err(SendError::StaleEpoch);
    }
    let why = format!(
        "the server refused the frame ({status}): {}",
        err["message"].as_str().unwrap_or("")
    );
    Err(if status.is_server_error() {
        SendError::Unreachable(why)
    } else {
        SendError::Refused(why)
    })
}

/// Where a printer's frames go: its name is one path segment, percent-encoded by `url`.
fn snapshot_url(server: &str, printer: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(server)
        .map_err(|e| format!("the server address {server:?} is not a URL: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| format!("the server address {server:?} cannot take a path"))?
        .pop_if_empty()
        .extend(["api", "v1", "agent", "printers", printer, "snapshot"]);
    Ok(url)
}

/// What became of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The server has it.
    Sent,
    /// A timelapse frame kept on disk for later (the server away, or frames kept before it
    /// still to go out first): `crate::frames`.
    Kept,
}

/// Sends the kept timelapse frames, oldest first, until none is left (`Ok(sent)`) or the server
/// stops answering (`Err`: the rest waits for the next connection). A frame the server refuses
/// for good (sealed to an epoch since replaced, its job unknown) is dropped with a warning: the
/// agent keeps no plaintext to seal it again.
pub async fn send_kept(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    kept: &crate::frames::FrameBuffer,
) -> Result<usize, String> {
    let mut sent = 0;
    loop {
        let Some((path, k)) = kept
            .oldest()
            .map_err(|e| format!("reading kept frames: {e}"))?
        else {
            return Ok(sent);
        };
        let result = match k.sealed_bytes() {
            Ok(sealed) => send(http, server, token, &k.printer, &sealed, k.manifest, true).await,
            Err(e) => Err(SendError::Refused(format!("a kept frame is damaged: {e}"))),
        };
        match result {
            Ok(()) => sent += 1,
            Err(SendError::Unreachable(why)) => return Err(why),
            Err(e) => {
                tracing::warn!(printer = %k.printer, error = %e.into_message(), "a kept timelapse frame was dropped")
            }
        }
        kept.remove(&path)
            .map_err(|e| format!("removing a sent frame: {e}"))?;
    }
}

/// Everything one frame needs, moved into its task.
pub struct Shot {
    pub http: reqwest::Client,
    pub server: String,
    /// The connection's HTTP token; `None` while disconnected (only timelapse frames are taken
    /// then, and kept).
    pub token: Option<String>,
    /// Where timelapse frames wait while they cannot be sent.
    pub kept: Arc<crate::frames::FrameBuffer>,
    /// Keep this timelapse frame rather than send it, behind frames kept earlier.
    pub keep: bool,
    pub opener: Arc<dyn JobOpener>,
    pub printer: String,
    /// The configured snapshot URL; `None`: ask the printer's software (`Driver::camera_snapshot_url`).
    pub url: Option<String>,
    pub driver: Arc<dyn hearth_drivers::Driver>,
    /// Unix seconds now.
    pub now: i64,
    /// The job whose timelapse this frame belongs to (`None`: only the printer's latest frame).
    pub job: Option<hearth_proto::ids::JobId>,
}

impl std::fmt::Debug for Shot {
    // Not derived: the HTTP token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shot")
            .field("printer", &self.printer)
            .field("url", &self.url.as_deref().map(shown))
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl Shot {
    /// Take, seal and send one frame; a timelapse frame that cannot be sent now is kept for
    /// later. The chain is fetched only when the opener has none yet or the server says the
    /// epoch changed.
    pub async fn take(self) -> Result<Taken, String> {
        let image = match &self.url {
            Some(url) => capture(&self.client_for(url), url).await?,
            None => self.printers_own_frame().await?,
        };
        let mut refreshed = false;
        loop {
            let opener = self.opener.clone();
            let (printer, frame, now) = (self.printer.clone(), image.clone(), self.now);
            let job = self.job.map(|j| j.to_string());
            let sealed = tokio::task::spawn_blocking(move || {
                opener.seal_snapshot(&printer, &frame, now, job.as_deref())
            })
            .await
            .map_err(|e| format!("sealing the frame: {e}"))?;
            let retry = match sealed {
                Ok((sealed, manifest)) => {
                    let token = match &self.token {
                        Some(t) if !self.keep => t,
                        _ => return self.keep_frame(sealed, manifest).await,
                    };
                    match send(
                        &self.http,
                        &self.server,
                        token,
                        &self.printer,
                        &sealed,
                        manifest.clone(),
                        false,
                    )
                    .await
                    {
                        Ok(()) => return Ok(Taken::Sent),
                        Err(SendError::StaleEpoch) => {
                            "the organisation's key changed since the agent last read its chain"
                        }
                        Err(SendError::Unreachable(_)) if self.job.is_some() => {
                            return self.keep_frame(sealed, manifest).await;
                        }
                        Err(e) => return Err(e.into_message()),
                    }
                }
                Err(SealSnapshotError::NoChain) => "no verified organisation chain yet",
                Err(SealSnapshotError::Failed(why)) => return Err(why),
            };
            let Some(token) = self
                .token
                .as_deref()
                .filter(|_| !refreshed && self.opener.wants_chain())
            else {
                return Err(format!("cannot seal the frame: {retry}"));
            };
            let links = crate::agent::fetch_chain(&self.http, &self.server, token).await?;
            self.opener
                .update_chain(links)
                .map_err(|why| format!("untrusted chain: {why}"))?;
            refreshed = true;
        }
    }
}

impl Shot {
    /// Keeps a sealed timelapse frame on disk until the server takes it.
    async fn keep_frame(
        &self,
        sealed: Vec<u8>,
        manifest: serde_json::Value,
    ) -> Result<Taken, String> {
        let (kept, printer) = (self.kept.clone(), self.printer.clone());
        let dropped = tokio::task::spawn_blocking(move || kept.push(&printer, &sealed, manifest))
            .await
            .map_err(|e| format!("keeping the frame: {e}"))?
            .map_err(|e| format!("keeping the frame for later: {e}"))?;
        if dropped > 0 {
            tracing::warn!(printer = %self.printer, dropped, "kept timelapse frames reached their bound: the oldest were dropped");
        }
        Ok(Taken::Kept)
    }

    /// A frame from the printer itself: over its own protocol (A1 and P1), else from the URL its
    /// software has configured (OctoPrint, Moonraker).
    async fn printers_own_frame(&self) -> Result<Vec<u8>, String> {
        match self.driver.camera_frame().await {
            Ok(Some(image)) if image.len() > MAX_IMAGE_BYTES => Err(format!(
                "the printer's camera frame is larger than {} MiB",
                MAX_IMAGE_BYTES / (1024 * 1024)
            )),
            Ok(Some(image)) if is_image(&image) => Ok(image),
            Ok(Some(_)) => Err("the printer's camera sent no JPEG or PNG image".into()),
            Ok(None) => Err("the printer has no camera".into()),
            Err(hearth_drivers::DriverError::Unsupported { .. }) => {
                let url = self.discover().await?;
                capture(&self.client_for(&url), &url).await
            }
            Err(e) => Err(format!(
                "cannot take a frame from the printer's camera: {}",
                crate::agent::chain(&e)
            )),
        }
    }

    /// The client for a camera URL: the printer's when the URL is https on the printer's host
    /// (trusted as its table says), else the agent's.
    fn client_for(&self, url: &str) -> reqwest::Client {
        self.driver
            .camera_client(url)
            .unwrap_or_else(|| self.http.clone())
    }

    /// The snapshot URL the printer's own software has configured.
    async fn discover(&self) -> Result<String, String> {
        match self.driver.camera_snapshot_url().await {
            Ok(Some(u)) => Ok(u),
            Ok(None) => Err(
                "no camera is configured in the printer's software: configure its webcam there, \
                 or give camera.snapshot_url"
                    .into(),
            ),
            Err(hearth_drivers::DriverError::Unsupported { .. }) => Err(
                "this printer's software has no camera setting to read: give camera.snapshot_url"
                    .into(),
            ),
            Err(e) => Err(format!(
                "cannot read the camera's URL from the printer: {}",
                crate::agent::chain(&e)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_every_interval_while_printing_and_every_idle_interval_otherwise() {
        let t0 = std::time::Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let cam = |idle: f64| crate::config::CameraConfig {
            snapshot_url: None,
            interval_seconds: 10.0,
            idle_interval_seconds: idle,
            timelapse: false,
            timelapse_trigger: Default::default(),
        };
        assert!(due(&cam(60.0), None, t0, false), "a first frame at once");
        assert!(!due(&cam(60.0), Some(t0), at(30.0), false));
        assert!(due(&cam(60.0), Some(t0), at(60.0), false));
        assert!(
            due(&cam(60.0), Some(t0), at(10.0), true),
            "a print starts: every 10 s"
        );
        assert!(!due(&cam(60.0), Some(t0), at(9.0), true));
        // Idle interval 0: only when asked while idle, yet frames while printing.
        assert!(!due(&cam(0.0), Some(t0), at(3600.0), false));
        assert!(due(&cam(0.0), Some(t0), at(10.0), true));
    }

    #[test]
    fn timelapse_frames_come_on_the_cadence_or_at_each_new_layer() {
        use crate::config::{CameraConfig, TimelapseTrigger};
        let t0 = std::time::Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let cam = |timelapse, trigger| CameraConfig {
            snapshot_url: None,
            interval_seconds: 10.0,
            idle_interval_seconds: 60.0,
            timelapse,
            timelapse_trigger: trigger,
        };
        let plan_of = |c: &CameraConfig, s: f64, printing, layer, tl_layer| {
            let p = plan(c, Some(t0), at(s), printing, layer, tl_layer);
            (p.take, p.timelapse)
        };
        // No timelapse: frames on the cadence, none of them a timelapse frame.
        let off = cam(false, TimelapseTrigger::Layer);
        assert_eq!(plan_of(&off, 10.0, true, Some(3), Some(2)), (true, false));
        assert_eq!(plan_of(&off, 5.0, true, Some(3), Some(2)), (false, false));
        // Interval: the printing cadence's frames are the timelapse; idle ones are not.
        let every = cam(true, TimelapseTrigger::Interval);
        assert_eq!(plan_of(&every, 10.0, true, Some(3), Some(3)), (true, true));
        assert_eq!(plan_of(&every, 5.0, true, Some(4), Some(3)), (false, false));
        assert_eq!(plan_of(&every, 60.0, false, None, None), (true, false));
        // Layer: a frame at each new layer, between the cadence's frames too; the cadence's
        // frames on the same layer are live frames only.
        let layers = cam(true, TimelapseTrigger::Layer);
        assert_eq!(plan_of(&layers, 5.0, true, Some(4), Some(3)), (true, true));
        assert_eq!(
            plan_of(&layers, 5.0, true, Some(4), Some(4)),
            (false, false)
        );
        assert_eq!(
            plan_of(&layers, 10.0, true, Some(4), Some(4)),
            (true, false)
        );
        assert_eq!(
            plan_of(&layers, 1.0, true, Some(1), None),
            (true, true),
            "the first layer"
        );
        // A printer that reports no layer: the cadence makes the timelapse.
        assert_eq!(plan_of(&layers, 10.0, true, None, Some(4)), (true, true));
        assert_eq!(plan_of(&layers, 5.0, true, None, None), (false, false));
    }

    #[test]
    fn a_layer_trigger_on_a_printer_without_layers_is_said() {
        use crate::config::{CameraConfig, TimelapseTrigger};
        let cam = CameraConfig {
            snapshot_url: None,
            interval_seconds: 10.0,
            idle_interval_seconds: 60.0,
            timelapse: true,
            timelapse_trigger: TimelapseTrigger::Layer,
        };
        let without = hearth_drivers::Capabilities::default();
        let with = hearth_drivers::Capabilities {
            layers: true,
            ..without
        };
        let why = layer_trigger_unsupported(&cam, without).unwrap();
        assert!(why.contains("every 10 s"), "{why}");
        assert_eq!(layer_trigger_unsupported(&cam, with), None);
        let interval = CameraConfig {
            timelapse_trigger: TimelapseTrigger::Interval,
            ..cam
        };
        assert_eq!(layer_trigger_unsupported(&interval, without), None);
    }

    #[test]
    fn jpeg_and_png_are_images_and_an_html_page_is_not() {
        assert!(is_image(b"\xff\xd8\xff\xe0\x00\x10JFIF"));
        assert!(is_image(b"\x89PNG\r\n\x1a\n\x00\x00"));
        assert!(!is_image(b"<html>mjpg-streamer</html>"));
        assert!(!is_image(b"--boundarydonotcross\r\n"));
        assert!(!is_image(b""));
    }

    #[test]
    fn a_cameras_password_stays_out_of_messages() {
        assert_eq!(
            shown("http://admin:hunter2@10.0.0.7/snapshot.jpg"),
            "http://10.0.0.7/snapshot.jpg"
        );
        assert_eq!(
            shown("http://octopi.local/webcam/?action=snapshot"),
            "http://octopi.local/webcam/?action=snapshot"
        );
    }

    #[test]
    fn printer_names_are_one_path_segment() {
        let at = |server, printer| snapshot_url(server, printer).unwrap().to_string();
        assert_eq!(
            at("https://hearth.example.org", "mk4-left"),
            "https://hearth.example.org/api/v1/agent/printers/mk4-left/snapshot"
        );
        assert_eq!(
            at("http://10.0.0.2:8080/", "bay 2/x"),
            "http://10.0.0.2:8080/api/v1/agent/printers/bay%202%2Fx/snapshot"
        );
    }
}
