//! `hearth camera PRINTER`: the latest frame of a printer's camera, opened here. The agent sealed
//! it to the organisation's current epoch and signed it; this checks the signature against the
//! verified chain (an enrolled agent, the one that drives this printer, this printer's name), that
//! the sealed bytes are the signed ones, and opens them with the epoch key. The server cannot.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use hearth_crypto::SignedSnapshot;
use hearth_proto::api::Snapshot;
use hearth_proto::time_fmt::now_ms;

use crate::cmd::fleet::{find_printer, printers_of};
use crate::ctx::Ctx;

#[derive(Debug, clap::Args)]
pub struct CameraArgs {
    /// The printer, by name or id.
    printer: String,
    /// Where to write the image (default: PRINTER-TIME.jpg or .png in this directory).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Ask the agent for a frame now and wait for it (up to --wait seconds), instead of the
    /// latest it sent.
    #[arg(long)]
    fresh: bool,
    /// How long --fresh waits, seconds.
    #[arg(long, default_value_t = 20)]
    wait: u64,
    /// Keep watching: a fresh frame every SECONDS into the same file (-o, default PRINTER.jpg),
    /// replaced whole each time, until interrupted.
    #[arg(long, value_name = "SECONDS")]
    watch: Option<f64>,
    /// With --watch: stop after N frames (for scripts).
    #[arg(long, value_name = "N", requires = "watch")]
    frames: Option<u64>,
    #[arg(long)]
    json: bool,
}

/// A frame older than this is said to be old.
const OLD_AFTER_SECS: i64 = 300;

pub async fn run(args: &CameraArgs) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let org = ctx.org()?;
    let printers = printers_of(&ctx).await?;
    let printer = find_printer(&printers, &args.printer)?.clone();
    if printer.camera.is_none() {
        bail!(
            "printer {} has no camera: add [printer.camera] to its agent's configuration",
            printer.name
        );
    }
    let wait = Duration::from_secs(args.wait);
    let Some(every) = args.watch else {
        let (_, trusted) = ctx.trusted().await?;
        let f = frame(&ctx, &trusted, org, &printer, args.fresh, wait).await?;
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| f.default_name(&printer.name));
        return f.write(&out, &printer.name, args.json.then_some(Json::Pretty));
    };
    // Watching: a fresh frame every `every` seconds into the same file, replaced whole each time
    // (an image viewer that reloads never reads half a frame). A failed frame is said and the
    // watch goes on.
    if !(every.is_finite() && every >= 0.0) {
        bail!("--watch takes seconds, 0 or more");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.jpg", printer.name)));
    let mut taken = 0u64;
    loop {
        let f = match ctx.trusted().await {
            Ok((_, trusted)) => frame(&ctx, &trusted, org, &printer, true, wait).await,
            Err(e) => Err(e),
        };
        match f {
            Ok(f) => f.write(&out, &printer.name, args.json.then_some(Json::Line))?,
            Err(e) => eprintln!("{}: {e:#}", printer.name),
        }
        taken += 1;
        if args.frames.is_some_and(|n| taken >= n) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs_f64(every)).await;
    }
}

/// How `--json` prints: one document, or one line per frame while watching.
#[derive(Clone, Copy, PartialEq)]
enum Json {
    Pretty,
    Line,
}

/// A frame checked against the verified chain and opened.
pub(crate) struct Frame {
    pub image: Vec<u8>,
    /// Seconds since the Unix epoch, as the agent signed it.
    pub taken_at: i64,
    /// The name of the agent that took and signed it.
    pub agent: String,
}

/// The file extension of an opened frame: cameras send JPEG or PNG (the agent sends nothing else).
pub(crate) fn image_ext(image: &[u8]) -> &'static str {
    if image.starts_with(b"\x89PNG") {
        "png"
    } else {
        "jpg"
    }
}

/// Writes an opened frame to `path` through a temporary file renamed over it, so an image viewer
/// that reloads it never reads half a frame.
pub(crate) fn write_whole(path: &Path, image: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, image)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

impl Frame {
    fn default_name(&self, printer: &str) -> PathBuf {
        let ext = image_ext(&self.image);
        PathBuf::from(format!(
            "{printer}-{}.{ext}",
            hearth_proto::time_fmt::rfc3339(self.taken_at * 1000).replace(':', "-")
        ))
    }

    /// Writes the image to `out` (a temporary file renamed over it) and says so.
    fn write(&self, out: &Path, printer: &str, json: Option<Json>) -> anyhow::Result<()> {
        write_whole(out, &self.image)?;
        let age = now_ms() / 1000 - self.taken_at;
        let said = serde_json::json!({
            "printer": printer,
            "file": out,
            "bytes": self.image.len(),
            "taken_at": hearth_proto::time_fmt::rfc3339(self.taken_at * 1000),
            "age_seconds": age,
            "agent": self.agent,
        });
        match json {
            Some(Json::Pretty) => return crate::cmd::fleet::print_json(&said),
            Some(Json::Line) => {
                println!("{said}");
                return Ok(());
            }
            None => {}
        }
        println!(
            "{printer}: frame taken {} ago by agent {}, {} bytes, written to {}",
            ago(age),
            self.agent,
            self.image.len(),
            out.display()
        );
        if age > OLD_AFTER_SECS {
            eprintln!(
                "note: this frame is {} old; `hearth camera {printer} --fresh` asks for a new one",
                ago(age)
            );
        }
        Ok(())
    }
}

/// The printer's latest frame (`fresh`: a new one asked for), checked against the verified chain
/// `trusted` (the printer's agent signed it, for this printer, these very bytes) and opened with
/// the key of its epoch.
pub(crate) async fn frame(
    ctx: &Ctx,
    trusted: &hearth_crypto::TrustedState,
    org: hearth_proto::ids::OrgId,
    printer: &hearth_proto::api::Printer,
    fresh_one: bool,
    wait: Duration,
) -> anyhow::Result<Frame> {
    let snapshot = if fresh_one {
        fresh(ctx, org, printer, wait).await?
    } else {
        ctx.client
            .printer_snapshot(org, printer.id)
            .await
            .with_context(|| format!("cannot fetch the camera frame of {}", printer.name))?
    };
    let signed: SignedSnapshot = serde_json::from_value(snapshot.manifest.clone())
        .context("the server served a malformed snapshot manifest")?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(snapshot.sealed.as_bytes())
        .context("the server served a malformed sealed frame")?;
    let (agent_name, agent_key) = ctx.agent_of(printer).await?;
    // The epoch the frame names must be one the verified chain announced (checked in `open`); its
    // key is fetched for that epoch.
    let device = ctx.device()?;
    let key = ctx
        .epoch_key(&device, trusted, signed.manifest.epoch)
        .await?;
    let image = signed
        .open(trusted, &agent_key, &printer.name, &key, &sealed)
        .with_context(|| format!("the camera frame of {} does not check out", printer.name))?;
    Ok(Frame {
        image,
        taken_at: signed.manifest.taken_at,
        agent: agent_name,
    })
}

/// Asks the agent for a frame and waits until one newer than the request has arrived.
async fn fresh(
    ctx: &Ctx,
    org: hearth_proto::ids::OrgId,
    printer: &hearth_proto::api::Printer,
    wait: Duration,
) -> anyhow::Result<Snapshot> {
    let before = printer.camera.as_ref().and_then(|c| c.snapshot_at.clone());
    ctx.client
        .request_snapshot(org, printer.id)
        .await
        .with_context(|| format!("cannot ask {}'s agent for a frame", printer.name))?;
    let deadline = Instant::now() + wait;
    loop {
        match ctx.client.printer_snapshot(org, printer.id).await {
            Ok(s) if Some(&s.received_at) != before.as_ref() => return Ok(s),
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e).context("cannot fetch the camera frame"),
        }
        if Instant::now() >= deadline {
            bail!(
                "no new frame of {} within {} s: is its camera reachable from its agent? (the agent's log says why)",
                printer.name,
                wait.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A duration in seconds as people say it: `42 s`, `5 min`, `3 h`.
pub(crate) fn ago(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}
