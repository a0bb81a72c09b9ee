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
    Other(String),
}

async fn send(
    http: &reqwest::Client,
    server: &str,
    token: &str,
    printer: &str,
    sealed: &[u8],
    manifest: serde_json::Value,
) -> Result<(), SendError> {
    let url = snapshot_url(server, printer).map_err(SendError::Other)?;
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
        .map_err(|e| SendError::Other(format!("sending the frame: {}", crate::agent::chain(&e))))?;
    if resp.status().is_success() {
        return Ok(());
    }
    let status = resp.status();
    let err: serde_json::Value = resp.json().await.unwrap_or_default();
    if status == reqwest::StatusCode::CONFLICT && err["code"] == "stale_epoch" {
        return Err(SendError::StaleEpoch);
    }
    Err(SendError::Other(format!(
        "the server refused the frame ({status}): {}",
        err["message"].as_str().unwrap_or("")
    )))
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

/// Everything one frame needs, moved into its task.
pub struct Shot {
    pub http: reqwest::Client,
    pub server: String,
    pub token: String,
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
    /// Take, seal and send one frame. The chain is fetched only when the opener has none yet or
    /// the server says the epoch changed.
    pub async fn take(self) -> Result<(), String> {
        let image = match &self.url {
            Some(url) => capture(&self.http, url).await?,
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
                    match send(
                        &self.http,
                        &self.server,
                        &self.token,
                        &self.printer,
                        &sealed,
                        manifest,
                    )
                    .await
                    {
                        Ok(()) => return Ok(()),
                        Err(SendError::StaleEpoch) => {
                            "the organisation's key changed since the agent last read its chain"
                        }
                        Err(SendError::Other(why)) => return Err(why),
                    }
                }
                Err(SealSnapshotError::NoChain) => "no verified organisation chain yet",
                Err(SealSnapshotError::Failed(why)) => return Err(why),
            };
            if refreshed || !self.opener.wants_chain() {
                return Err(format!("cannot seal the frame: {retry}"));
            }
            let links = crate::agent::fetch_chain(&self.http, &self.server, &self.token).await?;
            self.opener
                .update_chain(links)
                .map_err(|why| format!("untrusted chain: {why}"))?;
            refreshed = true;
        }
    }
}

impl Shot {
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
                capture(&self.http, &url).await
            }
            Err(e) => Err(format!(
                "cannot take a frame from the printer's camera: {}",
                crate::agent::chain(&e)
            )),
        }
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
