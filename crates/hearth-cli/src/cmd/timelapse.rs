//! `hearth timelapse [JOB]`: the timelapses the server keeps, and a job's frames opened here. The
//! printer's agent sealed each frame to the organisation's epoch of its time and signed it as a
//! frame of that job; this checks every signature against the verified chain (an enrolled agent,
//! the one that drives the job's printer, that printer's name, that job), that the sealed bytes
//! are the signed ones, and opens them. The server cannot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hearth_crypto::{EpochKey, SignedSnapshot, SigningPublic, TrustedState};
use hearth_proto::api::{Job, TimelapseFrame, TimelapseSummary};
use hearth_proto::ids::JobId;

use crate::cmd::fleet::{Table, print_json, printers_of};
use crate::ctx::Ctx;

#[derive(Debug, clap::Args)]
pub struct TimelapseArgs {
    /// The job (its id, as `hearth jobs --all` lists it). Without it: the timelapses kept.
    job: Option<String>,
    /// Where to write the frames, numbered frame-00001.jpg (or .png) on (default:
    /// timelapse-JOB in this directory).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Delete the job's timelapse from the server instead (its submitter or an admin).
    #[arg(long, requires = "job", conflicts_with = "out")]
    delete: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(args: &TimelapseArgs) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let org = ctx.org()?;
    let Some(job) = &args.job else {
        let all = ctx
            .client
            .timelapses(org)
            .await
            .context("cannot list the timelapses")?;
        return list(&ctx, &all, args.json).await;
    };
    let id: JobId = job
        .parse()
        .with_context(|| format!("{job:?} is not a job id"))?;
    if args.delete {
        ctx.client
            .delete_timelapse(org, id)
            .await
            .with_context(|| format!("cannot delete the timelapse of job {id}"))?;
        println!("the timelapse of job {id} is deleted");
        return Ok(());
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("timelapse-{id}")));
    let written = open_all(&mut ctx, id, &out).await?;
    let said = serde_json::json!({
        "job": id,
        "dir": out,
        "frames": written.frames,
        "pattern": written.pattern,
        "first_taken_at": written.first.map(|t| hearth_proto::time_fmt::rfc3339(t * 1000)),
        "last_taken_at": written.last.map(|t| hearth_proto::time_fmt::rfc3339(t * 1000)),
    });
    if args.json {
        return print_json(&said);
    }
    println!(
        "{} frames of job {id}, checked and opened, written to {}",
        written.frames,
        out.display()
    );
    if written.frames > 0 {
        println!(
            "make a video: ffmpeg -framerate 30 -i '{}' -pix_fmt yuv420p timelapse-{id}.mp4",
            out.join(&written.pattern).display()
        );
    }
    Ok(())
}

async fn list(ctx: &Ctx, all: &[TimelapseSummary], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&all);
    }
    if all.is_empty() {
        println!(
            "no timelapses: an agent keeps them for printers with [printer.camera] timelapse = true"
        );
        return Ok(());
    }
    let mut t = Table::new(&["JOB", "PRINTER", "FRAMES", "SIZE", "FROM", "TO", "EXPIRES"]);
    for (s, printer) in all.iter().zip(printer_names(ctx, all).await?) {
        let printer = printer.unwrap_or_else(|| "-".to_owned());
        let mut frames = s.frames.to_string();
        if s.over_quota > 0 {
            frames.push_str(&format!(" ({} over quota)", s.over_quota));
        }
        t.row(vec![
            s.job_id.to_string(),
            printer,
            frames,
            size(s.bytes),
            s.first_at.clone().unwrap_or_else(|| "-".into()),
            s.last_at.clone().unwrap_or_else(|| "-".into()),
            s.expires_at.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.print();
    Ok(())
}

/// The name of the printer of each timelapse's job (`None`: the job or its printer is no longer
/// listed).
pub(crate) async fn printer_names(
    ctx: &Ctx,
    all: &[TimelapseSummary],
) -> anyhow::Result<Vec<Option<String>>> {
    let org = ctx.org()?;
    let printers = printers_of(ctx).await?;
    let mut names = Vec::with_capacity(all.len());
    for s in all {
        let job: Option<Job> = ctx
            .client
            .raw_get(&format!("/api/v1/orgs/{org}/jobs/{}", s.job_id))
            .await
            .ok();
        names.push(
            job.and_then(|j| j.printer)
                .and_then(|p| printers.iter().find(|x| x.id == p))
                .map(|p| p.name.clone()),
        );
    }
    Ok(names)
}

/// Bytes as people read them: `840 B`, `96 kB`, `12.4 MB`, `1.2 GB`.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.0} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.1} GB", b / 1e9),
    }
}

/// What [`open_all`] wrote.
struct Written {
    frames: usize,
    /// The file names' pattern, as ffmpeg takes it.
    pattern: String,
    /// When the first and the last frame were taken, Unix seconds (as the agent signed).
    first: Option<i64>,
    last: Option<i64>,
}

/// A job's timelapse ready to be opened frame by frame: its frames' signed manifests as the
/// server lists them, the job's printer and the agent that drives it, checked against `trusted`,
/// and the epoch keys opened so far.
pub(crate) struct Reel {
    pub job: JobId,
    pub printer: String,
    pub frames: Vec<TimelapseFrame>,
    agent_key: SigningPublic,
    trusted: TrustedState,
    keys: HashMap<u64, EpochKey>,
}

impl Reel {
    /// Fetches `job`'s timelapse listing, the job and its printer's agent.
    pub async fn fetch(ctx: &Ctx, trusted: TrustedState, job: JobId) -> anyhow::Result<Reel> {
        let org = ctx.org()?;
        let tl = ctx
            .client
            .timelapse(org, job)
            .await
            .with_context(|| format!("cannot fetch the timelapse of job {job}"))?;
        let j: Job = ctx
            .client
            .raw_get(&format!("/api/v1/orgs/{org}/jobs/{job}"))
            .await
            .with_context(|| format!("cannot fetch job {job}"))?;
        let printers = printers_of(ctx).await?;
        let printer = j
            .printer
            .and_then(|p| printers.iter().find(|x| x.id == p))
            .with_context(|| format!("the printer of job {job} is no longer listed"))?
            .clone();
        let (_, agent_key) = ctx.agent_of(&printer).await?;
        Ok(Reel {
            job,
            printer: printer.name,
            frames: tl.frames,
            agent_key,
            trusted,
            keys: HashMap::new(),
        })
    }

    /// Frame `index` (in the listing's order): fetched, checked against the verified chain as a
    /// frame of this job taken by its printer's agent, and opened. Returns the image and when
    /// it was taken (Unix seconds, as the agent signed).
    pub async fn open(&mut self, ctx: &Ctx, index: usize) -> anyhow::Result<(Vec<u8>, i64)> {
        let org = ctx.org()?;
        let job = self.job;
        let f = self
            .frames
            .get(index)
            .with_context(|| format!("the timelapse of job {job} has no frame {index}"))?;
        let signed: SignedSnapshot =
            serde_json::from_value(f.manifest.clone()).with_context(|| {
                format!("the server served a malformed manifest for frame {}", f.seq)
            })?;
        let epoch = signed.manifest.epoch;
        if let std::collections::hash_map::Entry::Vacant(e) = self.keys.entry(epoch) {
            e.insert(ctx.epoch_key(&ctx.device()?, &self.trusted, epoch).await?);
        }
        let sealed = ctx
            .client
            .timelapse_frame(org, job, f.seq)
            .await
            .with_context(|| format!("cannot fetch frame {} of job {job}", f.seq))?;
        let image = signed
            .open_of_job(
                &self.trusted,
                &self.agent_key,
                &self.printer,
                &job.to_string(),
                &self.keys[&epoch],
                &sealed,
            )
            .with_context(|| format!("frame {} of job {job} does not check out", f.seq))?;
        Ok((image, signed.manifest.taken_at))
    }
}

/// Fetches every frame of `job`'s timelapse, checks and opens it ([`Reel::open`]) and writes it
/// to `dir` as `frame-00001.EXT` on (each through a temporary file). Frames numbered past the
/// last from an earlier run are removed, so the directory holds this timelapse only.
async fn open_all(ctx: &mut Ctx, job: JobId, dir: &Path) -> anyhow::Result<Written> {
    let (_, trusted) = ctx.trusted().await?;
    let mut reel = Reel::fetch(ctx, trusted, job).await?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Written {
        frames: 0,
        pattern: "frame-%05d.jpg".into(),
        first: None,
        last: None,
    };
    for i in 0..reel.frames.len() {
        let (image, taken_at) = reel.open(ctx, i).await?;
        let ext = crate::cmd::camera::image_ext(&image);
        written.frames += 1;
        written.pattern = format!("frame-%05d.{ext}");
        let path = dir.join(format!("frame-{:05}.{ext}", written.frames));
        crate::cmd::camera::write_whole(&path, &image)?;
        written.first.get_or_insert(taken_at);
        written.last = Some(taken_at);
    }
    remove_stale(dir, written.frames)?;
    if reel.frames.is_empty() {
        bail!("the timelapse of job {job} has no frames (yet)");
    }
    Ok(written)
}

/// Removes `frame-NNNNN.jpg|png` numbered above `kept` (left by an earlier, longer run).
fn remove_stale(dir: &Path, kept: usize) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let n = name
            .strip_prefix("frame-")
            .and_then(|r| r.strip_suffix(".jpg").or_else(|| r.strip_suffix(".png")))
            .and_then(|n| n.parse::<usize>().ok());
        if n.is_some_and(|n| n > kept) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::size(840), "840 B");
        assert_eq!(super::size(96_400), "96 kB");
        assert_eq!(super::size(12_400_000), "12.4 MB");
        assert_eq!(super::size(1_200_000_000), "1.2 GB");
    }
}
