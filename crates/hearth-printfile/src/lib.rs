//! Print-file parsing and analysis for Hearth: plain G-code from any slicer, Prusa binary G-code
//! (`.bgcode`) and Bambu Studio / OrcaSlicer plate projects (`.gcode.3mf`).
//!
//! The crate does no I/O of its own: callers hand it a reader. Two entry points:
//! - [`analyze`] reads every line once (streaming, constant memory) and returns a [`Report`] with
//!   the slicer's [`Metadata`], our own [`Analysis`] (layers, extents, filament per tool, a time
//!   estimate from a trapezoidal motion model), the [`Thumbnail`]s and [`Diagnostic`]s.
//! - [`inspect_metadata`] reads only the parts of the file where slicers write their metadata
//!   (head and tail of G-code, metadata blocks of binary G-code, the plate summary of a 3MF), in
//!   a few milliseconds whatever the file size; its report has no analysis.
//!
//! Parsing is lenient: what is not understood is skipped and reported as a [`Diagnostic`] with
//! its line number. Only unusable input (a corrupt archive, a damaged binary G-code structure, a
//! failing reader) is an [`Error`]. Memory is bounded whatever the input: lines over 1 MiB are
//! cut, binary G-code blocks over 8 MiB refused, thumbnails capped at 24 MiB in all. [`Report::scheduling_facts`] gives the few facts a member may
//! reveal to the server for scheduling.
//!
//! Module map: `gcode` (line splitting, command parsing, motion state), `planner` (time
//! estimate), `meta` (what slicers write in comments), `bgcode` with `heatshrink` and `meatpack`
//! (binary G-code), `threemf` (ZIP projects), `image` (thumbnail sizes), `num` (number parsing).

mod bgcode;
mod gcode;
mod heatshrink;
mod image;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals;
mod meatpack;
mod meta;
mod num;
mod planner;
mod report;
mod threemf;
mod words;

use std::io::{Read, Seek, SeekFrom};

pub use bgcode::{BgcodeError, to_gcode as bgcode_to_gcode};
pub use image::encode_png;
pub use report::*;
pub use threemf::{one_plate, sliced_plates};

use gcode::{DEFAULT_LIMITS, Motion, Processor};
use meta::Key;

/// How much of the end of a plain G-code file is read ahead for the slicer's configuration block
/// (machine limits for the time estimate) and, in metadata-only mode, its summary.
const TAIL_BYTES: u64 = 256 << 10;
/// In metadata-only mode, how much of the start of a plain G-code file is read (header and thumbnails).
const HEAD_BYTES: u64 = 512 << 10;

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the print file failed")]
    Io(#[source] std::io::Error),
    #[error("the binary G-code structure is damaged")]
    Bgcode(#[from] BgcodeError),
    #[error("the 3MF archive is damaged or not a ZIP file")]
    Zip(#[source] zip::result::ZipError),
    #[error("the 3MF project holds no sliced plate (no Metadata/plate_N.gcode); slice it first")]
    NoPlateGcode,
    #[error("the 3MF project has no sliced plate {0}")]
    NoSuchPlate(u32),
    #[error("a 3MF project needs a seekable reader; use `analyze` with a file")]
    NeedsSeek,
}

/// Options for [`analyze`] and [`inspect_metadata`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep decoded thumbnails (otherwise skipped).
    pub thumbnails: bool,
    /// Diagnostics kept; more are counted in [`Report::diagnostics_dropped`].
    pub max_diagnostics: usize,
    /// Plate of a 3MF project (default: the first sliced plate).
    pub plate: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            thumbnails: true,
            max_diagnostics: 100,
            plate: None,
        }
    }
}

/// Diagnostics with a cap.
#[derive(Debug)]
pub(crate) struct Diags {
    list: Vec<Diagnostic>,
    dropped: u64,
    cap: usize,
    /// Line numbers are unknown (the tail of a file read without its middle).
    pub(crate) unnumbered: bool,
}

impl Diags {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            list: Vec::new(),
            dropped: 0,
            cap,
            unnumbered: false,
        }
    }
    fn push(&mut self, severity: Severity, line: Option<u64>, message: String) {
        if self.list.len() < self.cap {
            self.list.push(Diagnostic {
                severity,
                line: line.filter(|_| !self.unnumbered),
                message,
            });
        } else {
            self.dropped += 1;
        }
    }
    pub(crate) fn warn(&mut self, line: Option<u64>, message: String) {
        self.push(Severity::Warning, line, message);
    }
    pub(crate) fn info(&mut self, line: Option<u64>, message: String) {
        self.push(Severity::Info, line, message);
    }
}

/// Tells the container format from the first bytes of a file.
pub fn detect_format(head: &[u8]) -> Format {
    if head.starts_with(b"GCDE") {
        Format::Bgcode
    } else if head.starts_with(b"PK\x03\x04") {
        Format::Gcode3mf
    } else {
        Format::Gcode
    }
}

fn peek_format<R: Read + Seek>(r: &mut R) -> Result<Format, Error> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    r.seek(SeekFrom::Start(0)).map_err(Error::Io)?;
    Ok(detect_format(&head[..n]))
}

/// Full analysis of a print file in one streaming pass. The reader is read to its end once (plus
/// the last 256 KiB of a plain G-code file first, for the machine limits the slicer states there).
pub fn analyze<R: Read + Seek>(mut r: R, opts: &Options) -> Result<Report, Error> {
    let format = peek_format(&mut r)?;
    match format {
        Format::Gcode => {
            let mut motion = Motion::new(DEFAULT_LIMITS, LimitsSource::Defaults);
            if let Some((limits, caps)) = tail_limits(&mut r, opts)? {
                motion.use_config_limits(limits, caps);
            }
            let mut p = Processor::new(Diags::new(opts.max_diagnostics), Some(motion));
            gcode::stream(r, &mut p)?;
            Ok(finish(format, p, opts))
        }
        Format::Bgcode => analyze_bgcode(r, opts, true),
        Format::Gcode3mf => {
            let mut p = new_processor(opts, true);
            threemf::read(r, &mut p, opts.plate, true, opts.thumbnails)?;
            Ok(finish(format, p, opts))
        }
    }
}

/// Full analysis from a reader that cannot seek (a pipe, a network stream). Plain and binary
/// G-code only. Machine limits stated only at the end of a plain G-code file cannot be used for
/// the time estimate here; a diagnostic says so.
pub fn analyze_stream<R: Read>(r: R, opts: &Options) -> Result<Report, Error> {
    let mut r = std::io::BufReader::with_capacity(gcode::CHUNK, r);
    let head = std::io::BufRead::fill_buf(&mut r).map_err(Error::Io)?;
    match detect_format(head) {
        Format::Gcode => {
            let mut p = new_processor(opts, true);
            gcode::stream(r, &mut p)?;
            let late = p.motion.as_ref().is_some_and(|m| m.limits_unused_config())
                && p.meta.config_limits(&DEFAULT_LIMITS).is_some();
            if late {
                p.diags.info(
                    None,
                    "machine limits stated at the end of the file were not used for the time estimate (the input could not be read ahead)".into(),
                );
            }
            Ok(finish(Format::Gcode, p, opts))
        }
        Format::Bgcode => analyze_bgcode(r, opts, true),
        Format::Gcode3mf => Err(Error::NeedsSeek),
    }
}

/// Metadata, thumbnails and slicer facts without the full analysis: reads the head and tail of a
/// plain G-code file, the metadata blocks of a binary G-code file, or the plate summary and
/// G-code header of a 3MF project.
pub fn inspect_metadata<R: Read + Seek>(mut r: R, opts: &Options) -> Result<Report, Error> {
    let format = peek_format(&mut r)?;
    match format {
        Format::Gcode => {
            let len = r.seek(SeekFrom::End(0)).map_err(Error::Io)?;
            r.seek(SeekFrom::Start(0)).map_err(Error::Io)?;
            let mut p = new_processor(opts, false);
            if len <= HEAD_BYTES + TAIL_BYTES {
                gcode::stream(&mut r, &mut p)?;
            } else {
                feed_range(&mut r, &mut p, 0, HEAD_BYTES)?;
                p.meta.gap(&mut p.diags);
                // Line numbers in the tail are unknown: its diagnostics carry none.
                p.diags.unnumbered = true;
                feed_range(&mut r, &mut p, len - TAIL_BYTES, len)?;
            }
            Ok(finish(format, p, opts))
        }
        Format::Bgcode => analyze_bgcode(r, opts, false),
        Format::Gcode3mf => {
            let mut p = new_processor(opts, false);
            threemf::read(r, &mut p, opts.plate, false, opts.thumbnails)?;
            Ok(finish(format, p, opts))
        }
    }
}

fn new_processor(opts: &Options, full: bool) -> Processor {
    let motion = full.then(|| Motion::new(DEFAULT_LIMITS, LimitsSource::Defaults));
    Processor::new(Diags::new(opts.max_diagnostics), motion)
}

/// Reads the configuration block at the end of a plain G-code file for machine limits (and the
/// caps on M204 accelerations).
pub(crate) fn tail_limits<R: Read + Seek>(
    r: &mut R,
    opts: &Options,
) -> Result<Option<(MachineLimits, [f64; 3])>, Error> {
    let len = r.seek(SeekFrom::End(0)).map_err(Error::Io)?;
    let mut p = Processor::new(Diags::new(opts.max_diagnostics), None);
    feed_range(r, &mut p, len.saturating_sub(TAIL_BYTES), len)?;
    r.seek(SeekFrom::Start(0)).map_err(Error::Io)?;
    Ok(p.meta
        .config_limits(&DEFAULT_LIMITS)
        .map(|l| (l, p.meta.accel_caps())))
}

/// Feeds the whole lines of bytes `start..end` of the file to `p`: a partial first line is
/// skipped unless `start` is 0, a partial last line unless `end` is the end of the file.
fn feed_range<R: Read + Seek>(
    r: &mut R,
    p: &mut Processor,
    start: u64,
    end: u64,
) -> Result<(), Error> {
    let len = r.seek(SeekFrom::End(0)).map_err(Error::Io)?;
    r.seek(SeekFrom::Start(start)).map_err(Error::Io)?;
    let mut buf = Vec::new();
    r.take(end.saturating_sub(start))
        .read_to_end(&mut buf)
        .map_err(Error::Io)?;
    let mut text = &buf[..];
    if start > 0 {
        let first = memchr::memchr(b'\n', text).map_or(text.len(), |i| i + 1);
        text = &text[first..];
    }
    if end < len {
        let last = memchr::memrchr(b'\n', text).map_or(0, |i| i + 1);
        text = &text[..last];
    }
    let mut lines = gcode::Lines::default();
    lines.feed(text, p);
    lines.finish(p);
    Ok(())
}

fn analyze_bgcode<R: Read>(r: R, opts: &Options, full: bool) -> Result<Report, Error> {
    let mut reader = bgcode::Reader::new(r)?;
    let mut p = new_processor(opts, full);
    let mut lines = gcode::Lines::default();
    while let Some(block) = reader.next_block()? {
        match block {
            bgcode::Block::Metadata(kind, kv) => {
                if kind == bgcode::BlockKind::FileMetadata
                    && let Some((_, producer)) = kv.iter().find(|(k, _)| k == "Producer")
                {
                    {
                        p.meta.comment(
                            format!(" generated by {producer}").as_bytes(),
                            0,
                            &mut p.diags,
                        );
                    }
                }
                for (k, v) in &kv {
                    p.meta.key_value(k, v);
                }
                p.config_changed();
            }
            bgcode::Block::Thumbnail {
                format,
                width,
                height,
                data,
            } => {
                if opts.thumbnails {
                    p.meta.push_thumbnail(
                        format,
                        u32::from(width),
                        u32::from(height),
                        data,
                        None,
                        &mut p.diags,
                    );
                }
            }
            bgcode::Block::Gcode(text) => {
                lines.feed(&text, &mut p);
                if !full {
                    // Metadata blocks all come before the G-code; its first block still names
                    // the objects (M486).
                    break;
                }
            }
        }
    }
    lines.finish(&mut p);
    for off in &reader.bad_crc {
        p.diags.warn(
            None,
            format!("block at byte {off} fails its CRC32 check; its content was used anyway"),
        );
    }
    Ok(finish(Format::Bgcode, p, opts))
}

fn finish(format: Format, mut p: Processor, opts: &Options) -> Report {
    p.finish_meta();
    let lines = p.line;
    let diameters: Vec<Option<f64>> = p
        .meta
        .per_tool(Key::Diameter)
        .iter()
        .map(|d| num::parse_leading_f64(d))
        .collect();
    let densities: Vec<Option<f64>> = p
        .meta
        .per_tool(Key::Density)
        .iter()
        .map(|d| num::parse_leading_f64(d))
        .collect();
    let materials = p.meta.per_tool(Key::FilamentType);
    let analysis = p
        .motion
        .take()
        .map(|m| m.finish(lines, &diameters, &densities, &materials));
    let mut diags = p.diags;
    let (metadata, mut thumbnails) = p.meta.finish(&mut diags);
    if !opts.thumbnails {
        thumbnails.clear();
    }
    Report {
        format,
        metadata,
        analysis,
        thumbnails,
        diagnostics: diags.list,
        diagnostics_dropped: diags.dropped,
    }
}
