//! `hearth files` and `hearth download FILE_ID`: the organisation's library as a member sees it.
//!
//! The server lists only hashes, signed manifests and clear facts. Here each manifest is verified
//! against the chain, the small sealed metadata object is fetched and opened with the epoch key to
//! show the file's name, and `download` opens the sealed file after checking its hash against the
//! signed manifest.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use hearth_crypto::{
    DeviceKeys, EpochKey, FileManifest, PrivateMetadata, SealedMetadata, Sha256Digest,
    SignedFileManifest, SignedJobManifest, TrustedState, open_verified,
};
use hearth_proto::api::{FileEntry, Job, SignedJob};
use hearth_proto::ids::{BlobHash, JobId};

use crate::cmd::fleet::{Table, print_json};
use crate::ctx::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum FilesCmd {
    /// Delete a file from the library, with its sealed bytes (its uploader or an admin).
    Delete {
        /// File id (from `hearth files`).
        id: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// File id (from `hearth files` or `hearth upload`).
    pub id: String,
    /// Where to write the opened file (default: its original name, in the current directory).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

struct Opener<'a> {
    ctx: &'a Ctx,
    device: DeviceKeys,
    trusted: &'a TrustedState,
    epochs: HashMap<u64, EpochKey>,
}

impl<'a> Opener<'a> {
    fn new(ctx: &'a Ctx, trusted: &'a TrustedState) -> anyhow::Result<Self> {
        Ok(Opener {
            ctx,
            device: ctx.device()?,
            trusted,
            epochs: HashMap::new(),
        })
    }

    async fn epoch(&mut self, n: u64) -> anyhow::Result<&EpochKey> {
        if !self.epochs.contains_key(&n) {
            let k = self.ctx.epoch_key(&self.device, self.trusted, n).await?;
            self.epochs.insert(n, k);
        }
        self.epochs
            .get(&n)
            .ok_or_else(|| anyhow!("epoch {n} key missing"))
    }

    fn manifest(&self, e: &FileEntry) -> anyhow::Result<(SignedFileManifest, FileManifest)> {
        let signed: SignedFileManifest = serde_json::from_value(e.manifest.clone())
            .with_context(|| format!("file {} has a malformed manifest", e.id))?;
        let m = signed
            .verify(self.trusted)
            .with_context(|| format!("the manifest of file {} does not verify", e.id))?
            .clone();
        if m.file_id != e.id.to_string() || m.blob_sha256.to_hex() != e.blob_sha256.as_str() {
            bail!(
                "the server lists file {} with another file's manifest",
                e.id
            );
        }
        Ok((signed, m))
    }

    async fn metadata(
        &mut self,
        e: &FileEntry,
        m: &FileManifest,
    ) -> anyhow::Result<PrivateMetadata> {
        let hash = e
            .meta_sha256
            .as_ref()
            .ok_or_else(|| anyhow!("file {} has no sealed metadata", e.id))?;
        self.open_meta(hash, m, &format!("file {}", e.id)).await
    }

    /// Opens the sealed file at `sealed` with the key of `epoch` into `out`, checking it is the
    /// ciphertext `signed` names; nothing is left at `out` when that fails.
    async fn open_into(
        &mut self,
        sealed: &Path,
        epoch: u64,
        signed: &Sha256Digest,
        out: &Path,
    ) -> anyhow::Result<()> {
        let key = self.epoch(epoch).await?;
        let mut w = BufWriter::new(
            File::create(out).with_context(|| format!("cannot write {}", out.display()))?,
        );
        let opened = open_verified(&[key], signed, File::open(sealed)?, &mut w)
            .map_err(anyhow::Error::from)
            .and_then(|_| Ok(w.flush()?));
        if opened.is_err() {
            drop(w);
            let _ = std::fs::remove_file(out);
        }
        opened
    }

    /// The sealed metadata object `hash` (of `what`), fetched and opened after checking it is
    /// the one verified manifest `m` names.
    async fn open_meta(
        &mut self,
        hash: &BlobHash,
        m: &FileManifest,
        what: &str,
    ) -> anyhow::Result<PrivateMetadata> {
        let tmp = tempfile::NamedTempFile::new()?;
        self.ctx
            .client
            .download_blob(self.ctx.org()?, hash, tmp.path())
            .await
            .with_context(|| format!("cannot fetch the sealed metadata of {what}"))?;
        let sealed = SealedMetadata {
            sealed: std::fs::read(tmp.path())?,
        };
        let key = self.epoch(m.epoch).await?;
        Ok(sealed.open(m, key)?)
    }

    /// As [`Opener::open_meta`], kept as a list shows it ([`Opened`]) and taken from `opened`
    /// when it was opened before.
    async fn listed(
        &mut self,
        opened: &mut Opened,
        hash: &BlobHash,
        m: &FileManifest,
        what: &str,
    ) -> anyhow::Result<PrivateMetadata> {
        let key = m.meta_sha256.to_hex();
        if let Some(meta) = opened.0.get(&key) {
            return Ok(meta.clone());
        }
        let mut meta = self.open_meta(hash, m, what).await?;
        meta.settings = Vec::new();
        meta.thumbnails = list_thumbnail(&meta).into_iter().cloned().collect();
        opened.0.insert(key, meta.clone());
        Ok(meta)
    }
}

/// One file of the library as a member sees it.
pub struct Listed {
    /// `id`, `name` (opened here), `uploaded_by` (from the verified chain), `created_at`, the
    /// clear `facts`, and `problem` when the file's manifest or metadata does not check out (its
    /// name is then absent).
    pub row: serde_json::Value,
    /// Its sealed metadata, opened (absent with a `problem`).
    pub meta: Option<PrivateMetadata>,
}

/// Files' metadata opened before, by the hash of its sealed bytes, which each file's verified
/// manifest names (so what was opened from those bytes is what they hold, whenever it was
/// opened), kept as a listing shows it: without the slicer settings, with only the
/// [`list_thumbnail`]. A long-running page lists the library again without opening it again.
#[derive(Default)]
pub struct Opened(HashMap<String, PrivateMetadata>);

/// The thumbnail a list shows: the smallest PNG or JPEG at least 200 px wide, else the largest
/// there is (QOI, which browsers cannot show, is left out).
pub fn list_thumbnail(meta: &PrivateMetadata) -> Option<&hearth_crypto::Thumbnail> {
    let shown = meta
        .thumbnails
        .iter()
        .filter(|t| matches!(t.mime.as_str(), "image/png" | "image/jpeg"));
    shown
        .clone()
        .filter(|t| t.width >= 200)
        .min_by_key(|t| t.width)
        .or_else(|| shown.max_by_key(|t| t.width))
}

/// The library, each file's manifest verified against `trusted` and its metadata opened (or
/// taken from `opened`, and kept there).
pub async fn library_rows(
    ctx: &Ctx,
    trusted: &TrustedState,
    opened: &mut Opened,
) -> anyhow::Result<Vec<Listed>> {
    let entries = library(ctx).await?;
    let mut o = Opener::new(ctx, trusted)?;
    let mut rows = Vec::new();
    for e in &entries {
        let (meta, uploader, problem) = match o.manifest(e) {
            Ok((_, m)) => {
                let who = signer_name(trusted, &m);
                let meta = match &e.meta_sha256 {
                    Some(hash) => o.listed(opened, hash, &m, &format!("file {}", e.id)).await,
                    None => Err(anyhow!("file {} has no sealed metadata", e.id)),
                };
                match meta {
                    Ok(meta) => (Some(meta), Some(who), None),
                    Err(err) => (None, Some(who), Some(format!("{err:#}"))),
                }
            }
            Err(err) => (None, None, Some(format!("{err:#}"))),
        };
        let row = serde_json::json!({
            "id": e.id,
            "name": meta.as_ref().map(|m| &m.name),
            "uploaded_by": uploader,
            "created_at": e.created_at,
            "facts": e.facts,
            "problem": problem,
        });
        rows.push(Listed { row, meta });
    }
    Ok(rows)
}

/// Who signed manifest `m`: the member's name from the verified chain.
fn signer_name(trusted: &TrustedState, m: &FileManifest) -> String {
    trusted
        .member(&m.uploader)
        .map(|mm| mm.user.clone())
        .unwrap_or_else(|| "(removed device)".into())
}

/// A job's label as a member sees it ([`job_labels`]).
pub struct Label {
    /// The name of the file the job prints.
    pub name: String,
    /// The thumbnail a list shows, if the file had one.
    pub thumbnail: Option<hearth_crypto::Thumbnail>,
    /// The member who signed it (submitted the job), from the verified chain.
    pub by: String,
}

/// What members see of `jobs`: each job's sealed label, verified as signed by a member for that
/// job and its payload, and opened (or taken from `opened`, and kept there). By job: its label,
/// or why it does not check out; a job submitted without a label is absent.
pub async fn job_labels(
    ctx: &Ctx,
    trusted: &TrustedState,
    jobs: &[&Job],
    opened: &mut Opened,
) -> anyhow::Result<HashMap<JobId, Result<Label, String>>> {
    let mut o = Opener::new(ctx, trusted)?;
    let mut labels = HashMap::new();
    for j in jobs {
        let Some(label) = &j.label else { continue };
        let what = format!("the label of job {}", j.id);
        let opened_label = async {
            let signed: SignedFileManifest = serde_json::from_value(label.manifest.clone())
                .with_context(|| format!("{what} is malformed"))?;
            let payload: Sha256Digest = j
                .blob_sha256
                .as_str()
                .parse()
                .map_err(|_| anyhow!("job {} names no valid payload", j.id))?;
            let m = signed
                .verify_job_label(trusted, &j.id.to_string(), &payload)
                .with_context(|| format!("{what} does not verify"))?
                .clone();
            let meta = o.listed(opened, &label.meta_sha256, &m, &what).await?;
            anyhow::Ok(Label {
                name: meta.name,
                thumbnail: meta.thumbnails.into_iter().next(),
                by: signer_name(trusted, &m),
            })
        }
        .await;
        labels.insert(j.id, opened_label.map_err(|e| format!("{e:#}")));
    }
    Ok(labels)
}

pub async fn list(json: bool) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let (_, trusted) = ctx.trusted().await?;
    let rows: Vec<serde_json::Value> = library_rows(&ctx, &trusted, &mut Opened::default())
        .await?
        .into_iter()
        .map(|l| l.row)
        .collect();
    if json {
        return print_json(&rows);
    }
    let mut t = Table::new(&["ID", "NAME", "BY", "UPLOADED", "MATERIAL"]);
    for r in &rows {
        let name = match (r["name"].as_str(), r["problem"].as_str()) {
            (Some(n), _) => n.to_owned(),
            (None, Some(p)) => format!("(cannot open: {p})"),
            (None, None) => "-".into(),
        };
        t.row(vec![
            r["id"].as_str().unwrap_or_default().to_owned(),
            name,
            r["uploaded_by"].as_str().unwrap_or("-").to_owned(),
            r["created_at"].as_str().unwrap_or_default().to_owned(),
            r["facts"]["material"].as_str().unwrap_or("-").to_owned(),
        ]);
    }
    t.print();
    Ok(())
}

pub async fn download(args: &DownloadArgs) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let (_, trusted) = ctx.trusted().await?;
    let e = library_file(&ctx, &args.id)
        .await?
        .ok_or_else(|| anyhow!("no file {} in the library", args.id))?;
    let out = open_library_file(&ctx, &trusted, &e, args.out.as_deref(), Path::new(".")).await?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// `hearth files delete ID`: says which file (its name, opened here) and deletes it.
pub async fn delete(id: &str, yes: bool) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let (_, trusted) = ctx.trusted().await?;
    let e = library_file(&ctx, id)
        .await?
        .ok_or_else(|| anyhow!("no file {id} in the library"))?;
    let name = name_of(&ctx, &trusted, &e).await;
    if !yes && !crate::profile::confirm_tty(&format!("Delete {name} ({id}) from the library?")) {
        bail!("not deleted (give --yes to delete without asking)");
    }
    ctx.client
        .delete_file(ctx.org()?, e.id)
        .await
        .with_context(|| format!("cannot delete file {id}"))?;
    println!("deleted {name} ({id})");
    Ok(())
}

/// How to name library file `e` to the member: its name opened here, else its id.
async fn name_of(ctx: &Ctx, trusted: &TrustedState, e: &FileEntry) -> String {
    let Ok(mut o) = Opener::new(ctx, trusted) else {
        return format!("file {}", e.id);
    };
    match o.manifest(e) {
        Ok((_, m)) => match o.metadata(e, &m).await {
            Ok(meta) => meta.name,
            Err(_) => format!("file {}", e.id),
        },
        Err(_) => format!("file {}", e.id),
    }
}

/// The library's entry for file `id`, if it has one.
pub async fn library_file(ctx: &Ctx, id: &str) -> anyhow::Result<Option<FileEntry>> {
    Ok(library(ctx)
        .await?
        .into_iter()
        .find(|e| e.id.to_string() == id))
}

async fn library(ctx: &Ctx) -> anyhow::Result<Vec<FileEntry>> {
    Ok(ctx
        .client
        .raw_get(&format!("/api/v1/orgs/{}/files", ctx.org()?))
        .await?)
}

/// Library file `id` opened into `dir` under its own name ([`open_library_file`]); `None` when
/// the library has no such file.
pub async fn open_library_id(
    ctx: &Ctx,
    trusted: &TrustedState,
    id: &str,
    dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    let Some(e) = library_file(ctx, id).await? else {
        return Ok(None);
    };
    open_library_file(ctx, trusted, &e, None, dir)
        .await
        .with_context(|| format!("cannot open library file {id}"))
        .map(Some)
}

/// Downloads the library file `e`, opens it and checks it against its signed manifest, and
/// writes it to `out`, or else under its own name (from its sealed metadata) in `dir`. Returns
/// where it went; nothing is left there when opening fails.
pub async fn open_library_file(
    ctx: &Ctx,
    trusted: &TrustedState,
    e: &FileEntry,
    out: Option<&Path>,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    let org = ctx.org()?;
    let mut o = Opener::new(ctx, trusted)?;
    let (_, m) = o.manifest(e)?;
    let out = match out {
        Some(p) => p.to_owned(),
        None => dir.join(safe_name(&o.metadata(e, &m).await?.name).unwrap_or("download")),
    };
    let sealed = tempfile::NamedTempFile::new()?;
    ctx.client
        .download_blob(org, &e.blob_sha256, sealed.path())
        .await
        .context("cannot download the sealed file")?;
    o.open_into(sealed.path(), m.epoch, &m.blob_sha256, &out)
        .await
        .context("cannot open the sealed file")?;
    Ok(out)
}

/// A name another member chose, as a file name here: only its last component (it must not write
/// elsewhere); `None` when nothing usable is left.
fn safe_name(name: &str) -> Option<&str> {
    name.rsplit(['/', '\\'])
        .next()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
}

/// What job `id` printed, opened into `dir` to be printed again: its signed manifest verified as
/// a member's job over the sealed payload the server keeps
/// ([`SignedJobManifest::verify_for_member`]), the payload (sealed to the epoch key as well as to
/// the printer's agent) opened and checked against it, written under the name the job's label
/// gives (else `job-ID` with its format's extension). `None` when the organisation has no such
/// job.
pub async fn open_job(
    ctx: &Ctx,
    trusted: &TrustedState,
    id: &str,
    dir: &Path,
) -> anyhow::Result<Option<(PathBuf, Job)>> {
    let Ok(job_id) = id.parse::<JobId>() else {
        return Ok(None);
    };
    let org = ctx.org()?;
    let job: Job = match ctx
        .client
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{job_id}"))
        .await
    {
        Ok(j) => j,
        Err(e) if e.status() == Some(404) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read job {job_id}")),
    };
    let signed: SignedJob = ctx
        .client
        .raw_get(&format!("/api/v1/orgs/{org}/jobs/{job_id}/manifest"))
        .await
        .with_context(|| format!("cannot read the manifest of job {job_id}"))?;
    let signed: SignedJobManifest = serde_json::from_value(signed.manifest)
        .with_context(|| format!("job {job_id} has a malformed manifest"))?;
    let payload: Sha256Digest = job
        .blob_sha256
        .as_str()
        .parse()
        .map_err(|_| anyhow!("job {job_id} names no valid payload"))?;
    let m = signed
        .verify_for_member(trusted, &job_id.to_string(), &payload)
        .with_context(|| format!("the manifest of job {job_id} does not verify"))?
        .clone();
    let sealed = tempfile::NamedTempFile::new()?;
    match ctx
        .client
        .download_blob(org, &job.blob_sha256, sealed.path())
        .await
    {
        Ok(_) => {}
        Err(e) if e.status() == Some(404) => bail!(
            "the sealed payload of job {job_id} is no longer kept (the server deletes it \
             `job_payload_keep_days` after the job ended): print the file from the library or \
             your disk instead"
        ),
        Err(e) => return Err(e).context("cannot download the job's sealed payload"),
    }
    let named = job_labels(ctx, trusted, &[&job], &mut Opened::default())
        .await?
        .remove(&job_id)
        .and_then(Result::ok)
        .and_then(|l| safe_name(&l.name).map(str::to_owned));
    let mut o = Opener::new(ctx, trusted)?;
    let tmp = dir.join(format!("job-{job_id}.opening"));
    o.open_into(sealed.path(), m.epoch, &m.blob_sha256, &tmp)
        .await
        .with_context(|| format!("cannot open the sealed payload of job {job_id}"))?;
    let name = named.unwrap_or_else(|| format!("job-{job_id}.{}", format_ext(&tmp)));
    let out = dir.join(name);
    std::fs::rename(&tmp, &out)?;
    Ok(Some((out, job)))
}

/// The extension of the print file at `path` by its first bytes: a 3MF project is a ZIP archive,
/// a binary G-code starts with `GCDE`, anything else is taken for G-code.
fn format_ext(path: &Path) -> &'static str {
    let mut head = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    match &head[..n] {
        [b'P', b'K', 3, 4] => "3mf",
        b"GCDE" => "bgcode",
        _ => "gcode",
    }
}
