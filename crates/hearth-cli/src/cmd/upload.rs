//! `hearth upload FILE` and `hearth print FILE --printer|--pool`: analyse locally, seal, sign, upload.
//!
//! Both stream: the file is read twice (analysis, then sealing into a temporary file next to the
//! system's temp dir) and the sealed file is sent with tus in chunks, so memory does not grow with
//! the file. Only the scheduling facts DESIGN.md lists leave in clear; the name, thumbnails and
//! slicer settings are sealed as a separate small object.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use hearth_crypto::{
    DevicePublic, JobDestination, MAX_JOB_WINDOW_SECS, PrivateMetadata, SealedUpload, Thumbnail,
    TrustedState, seal_job, seal_job_label, seal_upload,
};
use hearth_proto::api::{
    Agent, CreateFileRequest, FilamentFact, FileEntry, Job, JobLabel, MAX_FILAMENT_FACTS, Printer,
    SchedulingFacts, SubmitJobRequest, fact_text_ok,
};
use hearth_proto::fit::{Misfit, misfits};
use hearth_proto::ids::{BlobHash, FileId, JobId, OrgId};

use crate::cmd::files::list_thumbnail;
use crate::cmd::fleet::{find_printer, printers_of};
use crate::ctx::{Ctx, agent_public, now};

/// Which scheduling facts leave this machine in clear with an upload or a job (DESIGN.md: the
/// submitter chooses); everything else about the file stays sealed. `all` (the default), `none`,
/// or a comma-separated list of [`Reveal::NAMES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reveal {
    model: bool,
    nozzle: bool,
    material: bool,
    colour: bool,
    grams: bool,
    time: bool,
}

impl Reveal {
    pub const NAMES: [&str; 6] = ["model", "nozzle", "material", "colour", "grams", "time"];

    fn all(on: bool) -> Self {
        Reveal {
            model: on,
            nozzle: on,
            material: on,
            colour: on,
            grams: on,
            time: on,
        }
    }

    /// The facts revealed, by their [`Reveal::NAMES`].
    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.model,
            self.nozzle,
            self.material,
            self.colour,
            self.grams,
            self.time,
        ];
        Reveal::NAMES
            .into_iter()
            .zip(on)
            .filter_map(|(n, on)| on.then_some(n))
            .collect()
    }

    /// `facts` with what is not revealed left out.
    pub fn apply(&self, facts: &SchedulingFacts) -> SchedulingFacts {
        fn keep<T: Clone>(on: bool, v: &Option<T>) -> Option<T> {
            if on { v.clone() } else { None }
        }
        SchedulingFacts {
            printer_model: keep(self.model, &facts.printer_model),
            nozzle_mm: keep(self.nozzle, &facts.nozzle_mm),
            material: keep(self.material, &facts.material),
            color: keep(self.colour, &facts.color),
            filament_grams: keep(self.grams, &facts.filament_grams),
            estimated_seconds: keep(self.time, &facts.estimated_seconds),
            // Each filament's grams, with its material and colour as far as those are revealed.
            filaments: if self.grams {
                facts
                    .filaments
                    .iter()
                    .map(|x| FilamentFact {
                        material: keep(self.material, &x.material),
                        color: keep(self.colour, &x.color),
                        grams: x.grams,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

impl std::str::FromStr for Reveal {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => return Ok(Reveal::all(true)),
            "none" | "" => return Ok(Reveal::all(false)),
            _ => {}
        }
        let mut r = Reveal::all(false);
        for name in s.split(',').map(str::trim) {
            let on = match name {
                "model" => &mut r.model,
                "nozzle" => &mut r.nozzle,
                "material" => &mut r.material,
                "colour" | "color" => &mut r.colour,
                "grams" => &mut r.grams,
                "time" => &mut r.time,
                other => {
                    return Err(format!(
                        "{other:?} is not a scheduling fact: give all, none, or a list of {}",
                        Reveal::NAMES.join(",")
                    ));
                }
            };
            *on = true;
        }
        Ok(r)
    }
}

/// `--reveal`, shared by `upload`, `print` and `bridge`.
#[derive(Debug, clap::Args)]
pub struct RevealArgs {
    /// Scheduling facts sent in clear: all, none, or a list of
    /// model,nozzle,material,colour,grams,time. The rest stays sealed; a pool job's printer is
    /// chosen by what is revealed.
    #[arg(
        long,
        env = "HEARTH_REVEAL",
        default_value = "all",
        value_name = "FACTS"
    )]
    pub reveal: Reveal,
}

#[derive(Debug, clap::Args)]
pub struct UploadArgs {
    /// G-code (.gcode), binary G-code (.bgcode) or 3MF project.
    pub file: PathBuf,
    /// A note, sealed with the file's name.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub reveal: RevealArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PrintArgs {
    /// G-code (.gcode), binary G-code (.bgcode) or 3MF project; or the id of a file in the
    /// organisation's library (`hearth files`), which is opened here and sealed for the printer;
    /// or the id of a job (`hearth jobs --all`), to print what it printed again (while the server
    /// keeps its sealed payload), by default where it went before.
    pub file: PathBuf,
    /// The printer, by name (or id). One of --printer and --pool, except to print a job again.
    #[arg(long, conflicts_with = "pool")]
    pub printer: Option<String>,
    /// Any printer of this pool.
    #[arg(long)]
    pub pool: Option<String>,
    /// How long the job stays valid, in hours (at most a week).
    #[arg(long, default_value_t = 24)]
    pub valid_hours: i64,
    /// Its place in the fleet queue: higher goes first (default 0; `hearth queue` to change it).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// Print it this many times (a batch): one sealed upload, one signed job per copy, each
    /// printed once (with --pool, on whichever printers of the pool are free).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_COPIES as i64))]
    pub copies: u32,
    /// The sliced plate of a 3MF plate project to print (`hearth inspect FILE` lists them); a
    /// project of several needs it, and the job prints that plate alone.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub plate: Option<u32>,
    #[command(flatten)]
    pub reveal: RevealArgs,
    /// Print the job as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What local analysis yields: the clear facts and the sealed-only metadata.
pub struct Analysed {
    pub facts: SchedulingFacts,
    pub meta: PrivateMetadata,
}

/// Analyses a print file locally. A file the library cannot read at all is still uploaded (with no
/// facts): the print-file library is lenient, and sealing does not depend on it.
pub fn analyse(path: &Path, display_name: &str, note: Option<String>) -> anyhow::Result<Analysed> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let opts = hearth_printfile::Options {
        thumbnails: true,
        ..hearth_printfile::Options::default()
    };
    let mut meta = PrivateMetadata {
        name: display_name.to_owned(),
        note,
        ..PrivateMetadata::default()
    };
    let report = match hearth_printfile::analyze(BufReader::with_capacity(1 << 16, f), &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warning: could not analyse {display_name}: {e}; uploading without facts");
            return Ok(Analysed {
                facts: SchedulingFacts::default(),
                meta,
            });
        }
    };
    let f = report.scheduling_facts();
    // What the server would refuse (overlong or with control characters) stays sealed instead.
    let sane = |v: Option<String>| v.filter(|t| fact_text_ok(t));
    let grams_ok = |g: &f32| g.is_finite() && *g >= 0.0;
    let filaments: Vec<FilamentFact> = f
        .filaments
        .into_iter()
        .map(|x| FilamentFact {
            material: sane(x.material_type),
            color: sane(x.material_colour),
            grams: x.filament_g as f32,
        })
        .collect();
    let facts = SchedulingFacts {
        printer_model: sane(f.printer_model),
        nozzle_mm: f
            .nozzle_diameter_mm
            .map(|v| v as f32)
            .filter(|n| n.is_finite() && *n > 0.0),
        material: sane(f.material_type),
        color: sane(f.material_colour),
        filament_grams: f.filament_g.map(|v| v as f32).filter(grams_ok),
        estimated_seconds: f.estimated_time_s.map(|s| s.max(0.0).round() as u64),
        // All of them or none: the server pairs them with the printer's slots by their order.
        filaments: if filaments.len() <= MAX_FILAMENT_FACTS
            && filaments.iter().all(|x| grams_ok(&x.grams))
        {
            filaments
        } else {
            Vec::new()
        },
    };
    meta.thumbnails = report
        .thumbnails
        .iter()
        .map(|t| Thumbnail {
            mime: format!(
                "image/{}",
                match t.format.extension() {
                    "jpg" => "jpeg",
                    other => other,
                }
            ),
            width: t.width,
            height: t.height,
            data: t.data.clone(),
        })
        .collect();
    let m = &report.metadata;
    let mut settings = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            settings.push((k.to_owned(), v));
        }
    };
    put(
        "slicer",
        m.slicer.as_ref().map(|s| match &s.version {
            Some(v) => format!("{} {v}", s.name),
            None => s.name.clone(),
        }),
    );
    put("layer_height_mm", m.layer_height_mm.map(|v| v.to_string()));
    put(
        "first_layer_height_mm",
        m.first_layer_height_mm.map(|v| v.to_string()),
    );
    put(
        "nozzle_temperature_c",
        m.nozzle_temperature_c.map(|v| v.to_string()),
    );
    put(
        "bed_temperature_c",
        m.bed_temperature_c.map(|v| v.to_string()),
    );
    if !m.objects.is_empty() {
        put("objects", Some(m.objects.join(", ")));
    }
    meta.settings = settings;
    Ok(Analysed { facts, meta })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into())
}

fn check_hash(uploaded: &BlobHash, signed: &hearth_crypto::Sha256Digest) -> anyhow::Result<()> {
    if uploaded.as_str() != signed.to_hex() {
        bail!(
            "the uploaded ciphertext hashes to {uploaded}, but the manifest signed {signed}: the file changed while sealing"
        );
    }
    Ok(())
}

/// Uploads the sealed metadata object of a file or a job's label, checked against the hash its
/// signed manifest names.
async fn upload_metadata(ctx: &Ctx, sealed: &SealedUpload) -> anyhow::Result<BlobHash> {
    let mut file = tempfile::NamedTempFile::new().context("cannot create a temporary file")?;
    file.write_all(&sealed.metadata.sealed)?;
    file.flush()?;
    let hash = ctx.client.upload_file(ctx.org()?, file.path()).await?;
    check_hash(&hash, &sealed.manifest.manifest.meta_sha256)?;
    Ok(hash)
}

/// Seals and uploads one file; returns the registered library entry.
pub async fn upload_path(
    ctx: &Ctx,
    trusted: &TrustedState,
    path: &Path,
    display_name: &str,
    note: Option<String>,
    reveal: Reveal,
) -> anyhow::Result<FileEntry> {
    let org = ctx.org()?;
    let device = ctx.device()?;
    let a = analyse(path, display_name, note)?;
    let id = FileId::new();
    let sealed = tempfile::NamedTempFile::new().context("cannot create a temporary file")?;
    let upload = {
        let input = BufReader::with_capacity(
            1 << 16,
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        );
        let mut out = BufWriter::with_capacity(1 << 16, sealed.as_file());
        let up = seal_upload(
            trusted,
            &device,
            &id.to_string(),
            input,
            &mut out,
            &a.meta,
            now(),
        )
        .with_context(|| format!("cannot seal {}", path.display()))?;
        out.flush()?;
        up
    };
    let blob = ctx
        .client
        .upload_file(org, sealed.path())
        .await
        .context("uploading the sealed file failed")?;
    drop(sealed);
    check_hash(&blob, &upload.manifest.manifest.blob_sha256)?;
    let meta = upload_metadata(ctx, &upload)
        .await
        .context("uploading the sealed metadata failed")?;
    let entry: FileEntry = ctx
        .client
        .raw_post(
            &format!("/api/v1/orgs/{org}/files"),
            &serde_json::to_value(CreateFileRequest {
                id,
                blob_sha256: blob,
                meta_sha256: Some(meta),
                manifest: serde_json::to_value(&upload.manifest)?,
                facts: reveal.apply(&a.facts),
            })?,
        )
        .await
        .context("registering the file failed")?;
    Ok(entry)
}

pub async fn upload(args: &UploadArgs) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let (_, trusted) = ctx.trusted().await?;
    let entry = upload_path(
        &ctx,
        &trusted,
        &args.file,
        &file_name(&args.file),
        args.note.clone(),
        args.reveal.reveal,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entry)?);
    } else {
        println!("{}", entry.id);
    }
    Ok(())
}

/// The agents a job for `pool` is sealed to: those driving a printer of the pool (as the server
/// lists printers), each enrolled in the verified chain and not restricted by an admin to another
/// pool. The server then hands the job only to printers of these agents.
fn pool_agents(
    trusted: &TrustedState,
    pool: &str,
    printers: &[Printer],
    agents: &[Agent],
) -> anyhow::Result<Vec<DevicePublic>> {
    let mut keys: Vec<DevicePublic> = Vec::new();
    let mut elsewhere = Vec::new();
    for p in printers
        .iter()
        .filter(|p| p.pools.iter().any(|x| x == pool))
    {
        let Some(agent) = agents.iter().find(|a| a.id == p.agent_id) else {
            continue;
        };
        let key = agent_public(agent)?;
        if keys.contains(&key) {
            continue;
        }
        let enrolled = trusted.require_agent(&key).with_context(|| {
            format!(
                "the agent of printer {:?} is not enrolled in the verified organisation chain",
                p.name
            )
        })?;
        if enrolled.serves(pool) {
            keys.push(key);
        } else {
            elsewhere.push(format!(
                "{} (agent {:?}, which an admin restricted to pool {:?})",
                p.name,
                enrolled.name,
                enrolled.pool.as_deref().unwrap_or_default()
            ));
        }
    }
    if keys.is_empty() {
        if elsewhere.is_empty() {
            bail!("no printer is in pool {pool:?} (see `hearth printers`)");
        }
        bail!(
            "no printer of pool {pool:?} may take its jobs: {}",
            elsewhere.join(", ")
        );
    }
    Ok(keys)
}

/// Where a file does not fit the printer it is sent to, as the slicer's settings and the printer's
/// configuration say: another printer model, another material loaded, another nozzle. Printing
/// goes on (the printer's configuration may be out of date); the member is told, as printer
/// makers' clouds do.
fn fit_warnings(facts: &SchedulingFacts, p: &Printer) -> Vec<String> {
    misfits(facts, p.into())
        .into_iter()
        .map(|m| match m {
            Misfit::Model { sliced, printer } => {
                format!(
                    "is sliced for a {sliced}, and printer {:?} is a {printer}",
                    p.name
                )
            }
            Misfit::Material { sliced, loaded } => {
                format!(
                    "is sliced for {sliced}, and printer {:?} has {loaded} loaded",
                    p.name
                )
            }
            Misfit::Nozzle { sliced, fitted } => format!(
                "is sliced for a {sliced} mm nozzle, and printer {:?} has a {fitted} mm one",
                p.name
            ),
            Misfit::Filament { needed, left } => format!(
                "needs {} of filament, and the spool on printer {:?} has {} left",
                crate::cmd::inventory::grams(f64::from(needed)),
                p.name,
                crate::cmd::inventory::grams(f64::from(left)),
            ),
        })
        .collect()
}

/// Why a pool job cannot go to any printer of its pool (the server's dispatch judges with the
/// same [`misfits`]): no printer is in the pool, or none fits, told by what the first of them
/// lacks. `None` when a printer of the pool fits.
pub(crate) fn pool_misfit<'a>(
    facts: &SchedulingFacts,
    pool: &str,
    printers: impl IntoIterator<Item = &'a Printer>,
) -> Option<String> {
    let members: Vec<&Printer> = printers
        .into_iter()
        .filter(|p| p.pools.iter().any(|q| q == pool))
        .collect();
    let Some(first) = members.first() else {
        return Some(format!("no printer is in pool {pool:?}"));
    };
    if members
        .iter()
        .any(|p| misfits(facts, (*p).into()).is_empty())
    {
        return None;
    }
    let why = fit_warnings(facts, first).into_iter().next()?;
    let more = match members.len() - 1 {
        0 => String::new(),
        1 => " (nor does the pool's other printer)".to_owned(),
        n => format!(" (nor do the pool's {n} other printers)"),
    };
    Some(format!("fits no printer of pool {pool:?}: it {why}{more}"))
}

/// Where to print: a printer (by name or id) or a pool.
#[derive(Debug, Clone)]
pub enum Target {
    Printer(String),
    Pool(String),
}

/// Most copies one `hearth print --copies` queues.
pub const MAX_COPIES: u32 = 100;

/// How a job goes into the fleet queue.
#[derive(Debug, Clone, Copy)]
pub struct Queueing {
    /// Its priority (higher goes first).
    pub priority: i64,
    /// How many copies: each its own signed job over the one sealed payload.
    pub copies: u32,
    /// Which sliced plate of a plate project the job prints (a project of several needs one).
    pub plate: Option<u32>,
}

impl Default for Queueing {
    fn default() -> Self {
        Self {
            priority: 0,
            copies: 1,
            plate: None,
        }
    }
}

/// Why a batch would outlast its jobs' validity: `copies` prints of `estimate` seconds each, on
/// `parallel` printers at once, take longer than `valid_secs`, so the last copies would expire in
/// the queue (the agent refuses a job past its signed window).
fn outlasts_validity(
    estimate: Option<u64>,
    copies: u32,
    parallel: usize,
    valid_secs: i64,
) -> Option<String> {
    let each = estimate.filter(|s| *s > 0)?;
    let rounds = u64::from(copies).div_ceil(parallel.max(1) as u64);
    let total = each.saturating_mul(rounds);
    if rounds < 2 || total <= u64::try_from(valid_secs).unwrap_or(0) {
        return None;
    }
    Some(format!(
        "{copies} copies of about {} each, {} at a time, take about {} h, longer than the jobs \
         stay valid ({} h): the copies not started by then expire in the queue (give \
         --valid-hours, up to {})",
        crate::cmd::fleet::hms(each),
        parallel.max(1),
        total.div_ceil(3600),
        valid_secs / 3600,
        MAX_JOB_WINDOW_SECS / 3600
    ))
}

/// The file a job prints: the one given, or, for a plate project of several sliced plates, the
/// project of the chosen plate alone, in a temporary directory removed with it (a Bambu Lab
/// printer prints one plate per job, and its agent takes a project of exactly one).
struct PrintFile {
    path: PathBuf,
    /// Its name for the job's sealed label: the file's, and the plate chosen.
    name: String,
    _dir: Option<tempfile::TempDir>,
}

fn plate_of(path: &Path, plate: Option<u32>) -> anyhow::Result<PrintFile> {
    let name = file_name(path);
    let mut head = [0u8; 4];
    let zip = File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && hearth_printfile::detect_format(&head) == hearth_printfile::Format::Gcode3mf;
    let open = || File::open(path).with_context(|| format!("cannot open {}", path.display()));
    let plates = if zip {
        hearth_printfile::sliced_plates(BufReader::new(open()?))
            .with_context(|| format!("cannot read {name}"))?
    } else {
        Vec::new()
    };
    let listed = || {
        plates
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let given = || PrintFile {
        path: path.to_owned(),
        name: name.clone(),
        _dir: None,
    };
    match (plate, plates.as_slice()) {
        (None, [] | [_]) => Ok(given()),
        (Some(_), []) => {
            bail!("--plate is for a 3MF plate project with sliced plates, and {name} is not one")
        }
        (Some(n), [only]) if n == *only => Ok(given()),
        (Some(n), _) if !plates.contains(&n) => {
            bail!(
                "{name} has no sliced plate {n}: its sliced plates are {}",
                listed()
            )
        }
        (None, _) => bail!(
            "{name} holds the sliced plates {}, and a job prints one: choose the plate (--plate N)",
            listed()
        ),
        (Some(n), _) => {
            let dir = tempfile::tempdir()?;
            let one = dir.path().join(&name);
            let out =
                File::create(&one).with_context(|| format!("cannot write {}", one.display()))?;
            let out = hearth_printfile::one_plate(BufReader::new(open()?), n, BufWriter::new(out))
                .with_context(|| format!("cannot take plate {n} out of {name}"))?;
            out.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot write {}", one.display()))?;
            Ok(PrintFile {
                path: one,
                name: format!("{name} (plate {n})"),
                _dir: Some(dir),
            })
        }
    }
}

/// What [`print_path`] queued, and what the member should know about it (a file sliced for
/// another model, a batch that outlasts its validity, a pool with no printer that fits yet).
pub struct Printed {
    pub jobs: Vec<Job>,
    pub warnings: Vec<String>,
}

/// Seals a job for `target`, uploads it once and submits it (`queueing.copies` times, each copy
/// a job signed under its own id) with `queueing.priority`.
pub async fn print_path(
    ctx: &Ctx,
    trusted: &TrustedState,
    path: &Path,
    target: &Target,
    valid_secs: i64,
    reveal: Reveal,
    queueing: Queueing,
) -> anyhow::Result<Printed> {
    let org = ctx.org()?;
    let mut warnings = Vec::new();
    let device = ctx.device()?;
    if !(60..=MAX_JOB_WINDOW_SECS).contains(&valid_secs) {
        bail!("a job must stay valid between one minute and a week");
    }
    let chosen = plate_of(path, queueing.plate)?;
    let path = chosen.path.as_path();
    let a = analyse(path, &chosen.name, None)?;
    let job_id = JobId::new();
    let printers = printers_of(ctx).await?;
    let agents = ctx.agents().await?;
    let parallel = match target {
        Target::Printer(_) => 1,
        Target::Pool(pool) => printers.iter().filter(|p| p.pools.contains(pool)).count(),
    };
    if let Some(why) = outlasts_validity(
        a.facts.estimated_seconds,
        queueing.copies,
        parallel,
        valid_secs,
    ) {
        warnings.push(why);
    }
    // What the server sees of the file; it places a pool job by these alone.
    let revealed = reveal.apply(&a.facts);
    let (printer_id, pool, dest_keys, printer_name) = match target {
        Target::Printer(name) => {
            let p = find_printer(&printers, name)?;
            let agent = agents
                .iter()
                .find(|a| a.id == p.agent_id)
                .ok_or_else(|| anyhow!("the server lists no agent for printer {name:?}"))?;
            let key = agent_public(agent)?;
            trusted.require_agent(&key).with_context(|| {
                format!("the agent of printer {name:?} is not enrolled in the verified organisation chain")
            })?;
            for w in fit_warnings(&a.facts, p) {
                warnings.push(format!("{} {w}", file_name(path)));
            }
            (Some(p.id), None, vec![key], p.name.clone())
        }
        Target::Pool(pool) => {
            let keys = pool_agents(trusted, pool, &printers, &agents)?;
            if let Some(w) = pool_misfit(&revealed, pool, &printers) {
                // Slicers also name printers by the member's own profile name ("Ada's
                // Voron"), which cannot be told from a model name: say how to send it anyway
                // when the model is all that stands in the way.
                let unnamed = SchedulingFacts {
                    printer_model: None,
                    ..revealed.clone()
                };
                let hint = match &revealed.printer_model {
                    Some(m) if pool_misfit(&unnamed, pool, &printers).is_none() => format!(
                        " (if {m:?} is your own name for the printer profile, not its model, \
                         print with `--reveal` leaving out `model`)"
                    ),
                    _ => String::new(),
                };
                warnings.push(format!(
                    "{} {w}. The job waits in the queue until one does{hint}",
                    file_name(path)
                ));
            }
            (None, Some(pool.clone()), keys, String::new())
        }
    };
    let dest = match target {
        Target::Printer(_) => JobDestination::Printer {
            agent: &dest_keys[0],
            printer: &printer_name,
        },
        Target::Pool(p) => JobDestination::Pool {
            pool: p,
            agents: &dest_keys,
        },
    };
    let sealed = tempfile::NamedTempFile::new().context("cannot create a temporary file")?;
    let t = now();
    let manifest = {
        let input = BufReader::with_capacity(
            1 << 16,
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        );
        let mut out = BufWriter::with_capacity(1 << 16, sealed.as_file());
        let m = seal_job(
            trusted,
            &device,
            &job_id.to_string(),
            dest,
            input,
            &mut out,
            t,
            t + valid_secs,
        )
        .context("cannot seal the job")?;
        out.flush()?;
        m
    };
    let blob = ctx
        .client
        .upload_file(org, sealed.path())
        .await
        .context("uploading the sealed job failed")?;
    drop(sealed);
    check_hash(&blob, &manifest.manifest.blob_sha256)?;
    // What members see of the job: the file's name and the thumbnail a list shows, sealed to the
    // epoch and signed for this job and its payload (each copy its own signature over the one
    // sealed object). The server keeps it beside the job and cannot read it.
    let label = seal_job_label(
        trusted,
        &device,
        &job_id.to_string(),
        &manifest.manifest.blob_sha256,
        manifest.manifest.blob_size,
        &PrivateMetadata {
            name: a.meta.name.clone(),
            thumbnails: list_thumbnail(&a.meta).into_iter().cloned().collect(),
            ..PrivateMetadata::default()
        },
        t,
    )
    .context("cannot seal the job's label")?;
    let label_blob = match upload_metadata(ctx, &label).await {
        Ok(b) => b,
        Err(e) => {
            discard(ctx, org, &[&blob]).await;
            return Err(e.context("uploading the job's sealed label failed"));
        }
    };
    let mut jobs = Vec::with_capacity(queueing.copies as usize);
    for n in 0..queueing.copies.max(1) {
        let (id, signed, label_manifest) = if n == 0 {
            (job_id, manifest.clone(), label.manifest.clone())
        } else {
            let id = JobId::new();
            let copy = manifest
                .copy_as(&device, &id.to_string())
                .context("cannot sign a copy of the job")?;
            (id, copy, label.manifest.for_copy(&device, &id.to_string()))
        };
        let job: Result<Job, _> = ctx
            .client
            .raw_post(
                &format!("/api/v1/orgs/{org}/jobs"),
                &serde_json::to_value(SubmitJobRequest {
                    priority: queueing.priority,
                    job_id: id,
                    printer: printer_id,
                    pool: pool.clone(),
                    blob_sha256: blob.clone(),
                    manifest: serde_json::to_value(&signed)?,
                    facts: revealed.clone(),
                    label: Some(JobLabel {
                        meta_sha256: label_blob.clone(),
                        manifest: serde_json::to_value(&label_manifest)?,
                    }),
                })?,
            )
            .await;
        if job.is_err() && n == 0 {
            discard(ctx, org, &[&blob, &label_blob]).await;
        }
        let job = job.with_context(|| match n {
            0 => "submitting the job failed (what was uploaded for it is deleted)".to_owned(),
            _ => format!(
                "submitting copy {} failed ({n} queued: {})",
                n + 1,
                jobs.iter()
                    .map(|j: &Job| j.id.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        })?;
        jobs.push(job);
    }
    Ok(Printed { jobs, warnings })
}

/// Deletes what was uploaded for a job that could not be queued, so it stops counting against the
/// quota at once (the server deletes what no file or job uses a day later anyway, should this fail
/// or never run).
async fn discard(ctx: &Ctx, org: OrgId, blobs: &[&BlobHash]) {
    for b in blobs {
        if let Err(e) = ctx.client.delete_blob(org, b).await {
            eprintln!(
                "note: could not delete the unused upload {b} ({e}): the server deletes it within a day"
            );
        }
    }
}

/// Where a job printed again goes unless told: the printer it was sent to (by name), or its pool.
pub async fn again_target(ctx: &Ctx, job: &Job) -> anyhow::Result<Target> {
    match (&job.printer, &job.pool) {
        (_, Some(pool)) => Ok(Target::Pool(pool.clone())),
        (Some(id), None) => {
            let printers = printers_of(ctx).await?;
            let p = printers.iter().find(|p| p.id == *id).ok_or_else(|| {
                anyhow!(
                    "job {} went to a printer the organisation no longer has: give --printer or --pool",
                    job.id
                )
            })?;
            Ok(Target::Printer(p.name.clone()))
        }
        (None, None) => bail!("job {} names no printer or pool: give one", job.id),
    }
}

pub async fn print(args: &PrintArgs) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let (_, trusted) = ctx.trusted().await?;
    // A library file, or what a job printed, is opened here (the printer's agent cannot hold the
    // epoch key) and sealed for the job like a local one; it keeps its own name, which stays
    // sealed.
    let opened_here: tempfile::TempDir;
    let mut path = args.file.clone();
    let mut again = None;
    if !path.exists()
        && let Some(id) = path.to_str()
    {
        opened_here = tempfile::tempdir()?;
        let dir = opened_here.path();
        path = match crate::cmd::files::open_library_id(&ctx, &trusted, id, dir).await? {
            Some(p) => p,
            None => {
                let (p, job) = crate::cmd::files::open_job(&ctx, &trusted, id, dir)
                    .await?
                    .ok_or_else(|| {
                        anyhow!(
                            "no file {id} here, and no file or job with that id in the organisation"
                        )
                    })?;
                again = Some(job);
                p
            }
        };
    }
    let target = match (&args.printer, &args.pool, &again) {
        (Some(p), None, _) => Target::Printer(p.clone()),
        (None, Some(p), _) => Target::Pool(p.clone()),
        (None, None, Some(job)) => again_target(&ctx, job).await?,
        _ => bail!("give exactly one of --printer and --pool"),
    };
    let Printed { jobs, warnings } = print_path(
        &ctx,
        &trusted,
        &path,
        &target,
        args.valid_hours.saturating_mul(3600),
        args.reveal.reveal,
        Queueing {
            priority: args.priority,
            copies: args.copies,
            plate: args.plate,
        },
    )
    .await?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let waiting: Vec<String> = jobs
        .iter()
        .filter(|j| j.awaits_approval())
        .map(|j| j.id.to_string())
        .collect();
    if !waiting.is_empty() {
        eprintln!(
            "note: the organisation asks for an admin's approval: no printer takes {} until an \
             admin runs `hearth approve {}`",
            if waiting.len() == 1 {
                "the job"
            } else {
                "the jobs"
            },
            waiting.join(" ")
        );
    }
    if args.json {
        // One job as an object (as before batches), several as a list.
        match jobs.as_slice() {
            [job] => println!("{}", serde_json::to_string_pretty(job)?),
            _ => println!("{}", serde_json::to_string_pretty(&jobs)?),
        }
    } else {
        for job in &jobs {
            println!("{}", job.id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{FilamentFact, Reveal, SchedulingFacts};

    #[test]
    fn a_batch_longer_than_its_validity_is_said() {
        let day = 24 * 3600;
        // Ten 5-hour copies on one printer: 50 h.
        let why = super::outlasts_validity(Some(5 * 3600), 10, 1, day).unwrap();
        assert!(
            why.contains("take about 50 h") && why.contains("(24 h)"),
            "{why}"
        );
        // On five printers: two rounds, 10 h.
        assert!(super::outlasts_validity(Some(5 * 3600), 10, 5, day).is_none());
        // One copy is the printer's next job: nothing to say; no estimate: nothing to say.
        assert!(super::outlasts_validity(Some(30 * 3600), 1, 1, day).is_none());
        assert!(super::outlasts_validity(None, 10, 1, day).is_none());
    }

    #[test]
    fn reveal_keeps_only_the_facts_named() {
        let facts = SchedulingFacts {
            printer_model: Some("MK4".into()),
            nozzle_mm: Some(0.4),
            material: Some("PLA".into()),
            color: Some("#FF8000".into()),
            filament_grams: Some(1.25),
            estimated_seconds: Some(65),
            filaments: vec![
                FilamentFact {
                    material: Some("PLA".into()),
                    color: Some("#FF8000".into()),
                    grams: 1.0,
                },
                FilamentFact {
                    material: Some("PETG".into()),
                    color: None,
                    grams: 0.25,
                },
            ],
        };
        let shown = |r: &str| r.parse::<Reveal>().map(|r| r.apply(&facts));
        assert_eq!(shown("all"), Ok(facts.clone()));
        assert_eq!(shown("none"), Ok(SchedulingFacts::default()));
        assert_eq!(
            shown("material, color,time"),
            Ok(SchedulingFacts {
                material: Some("PLA".into()),
                color: Some("#FF8000".into()),
                estimated_seconds: Some(65),
                ..SchedulingFacts::default()
            })
        );
        // Each filament's grams go with `grams`, its material and colour only with theirs.
        let grams = shown("grams").unwrap();
        assert_eq!(grams.filament_grams, Some(1.25));
        assert_eq!(
            grams.filaments,
            [1.0, 0.25].map(|g| FilamentFact {
                grams: g,
                ..FilamentFact::default()
            })
        );
        assert_eq!(
            shown("grams,material").unwrap().filaments[1]
                .material
                .as_deref(),
            Some("PETG")
        );
        let err = shown("material,name").unwrap_err();
        assert!(err.contains("\"name\" is not a scheduling fact"), "{err}");
    }
}
