//! `hearth inspect FILE`: print-file metadata and analysis, locally (nothing leaves the machine).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufReader, Write as _};
use std::path::PathBuf;

use anyhow::{Context, bail};
use hearth_printfile::{Format, LimitsSource, Options, Report};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// G-code (.gcode), binary G-code (.bgcode) or Bambu/Orca project (.gcode.3mf).
    pub file: PathBuf,
    /// Print the report as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Write the largest thumbnail to this file.
    #[arg(long, value_name = "OUT")]
    pub thumbnail: Option<PathBuf>,
    /// Only read the metadata (fast; no analysis of the moves).
    #[arg(long)]
    pub metadata_only: bool,
    /// Plate of a 3MF project (default: the first sliced plate).
    #[arg(long)]
    pub plate: Option<u32>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let file =
        File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let reader = BufReader::with_capacity(1 << 16, file);
    let opts = Options {
        thumbnails: true,
        plate: args.plate,
        ..Options::default()
    };
    let report = if args.metadata_only {
        hearth_printfile::inspect_metadata(reader, &opts)
    } else {
        hearth_printfile::analyze(reader, &opts)
    }
    .with_context(|| format!("cannot read {}", args.file.display()))?;

    if let Some(out) = &args.thumbnail {
        let Some(t) = report.largest_thumbnail() else {
            bail!("{} contains no thumbnail", args.file.display());
        };
        // A `.png` name gets a PNG (QOI thumbnails are converted); other names get the bytes as
        // embedded.
        let wants_png = out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let bytes = if wants_png {
            t.to_png().with_context(|| {
                format!(
                    "the largest thumbnail is a {} image, which cannot be converted to PNG here; \
                     give an output name ending in .{}",
                    t.format.extension().to_uppercase(),
                    t.format.extension()
                )
            })?
        } else {
            t.data.clone()
        };
        std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
        let mut stderr = std::io::stderr();
        let _ = writeln!(
            stderr,
            "wrote the {}x{} {} thumbnail to {} ({} bytes)",
            t.width,
            t.height,
            t.format.extension().to_uppercase(),
            out.display(),
            bytes.len()
        );
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        stdout.write_all(summary(&report).as_bytes())?;
        if report.format == Format::Gcode3mf {
            let plates = File::open(&args.file)
                .ok()
                .and_then(|f| hearth_printfile::sliced_plates(BufReader::new(f)).ok())
                .unwrap_or_default();
            if let [first, _, ..] = plates.as_slice() {
                let listed: Vec<String> = plates.iter().map(u32::to_string).collect();
                writeln!(
                    stdout,
                    "Sliced plates:    {} (this is plate {}; --plate N for another; a job prints one: \
                     hearth print FILE --plate N)",
                    listed.join(", "),
                    args.plate.unwrap_or(*first)
                )?;
            }
        }
    }
    Ok(())
}

/// What the file does not state.
const UNSTATED: &str = "not stated";

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| UNSTATED.to_owned(), |v| v.to_string())
}

/// A value with its unit, or "not stated" without one.
fn unit<T: std::fmt::Display>(v: Option<T>, unit: &str) -> String {
    v.map_or_else(|| UNSTATED.to_owned(), |v| format!("{v} {unit}"))
}

/// `1h 02m 03s`
pub fn duration(s: f64) -> String {
    let t = s.max(0.0).round() as u64;
    let (h, m, sec) = (t / 3600, t / 60 % 60, t % 60);
    if h > 0 {
        format!("{h}h {m:02}m {sec:02}s")
    } else {
        format!("{m}m {sec:02}s")
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Gcode => "G-code",
        Format::Bgcode => "Prusa binary G-code (.bgcode)",
        Format::Gcode3mf => "3MF plate project (.gcode.3mf)",
    }
}

/// Where the machine limits of our estimate came from, as the summary's time line says it.
fn limits_name(l: LimitsSource) -> &'static str {
    match l {
        LimitsSource::Defaults => "built-in defaults, as the file states none",
        LimitsSource::SlicerConfig => "the slicer's configuration in the file",
        LimitsSource::Gcode => "commands in the file (M201, M203, M204, M205, M566)",
    }
}

/// The human-readable summary.
pub fn summary(r: &Report) -> String {
    let m = &r.metadata;
    let mut o = String::new();
    let slicer = m.slicer.as_ref().map(|s| match &s.version {
        Some(v) => format!("{} {v}", s.name),
        None => s.name.clone(),
    });
    let _ = writeln!(o, "Format:           {}", format_name(r.format));
    let _ = writeln!(o, "Slicer:           {}", opt(slicer));
    let _ = writeln!(o, "Printer model:    {}", opt(m.printer_model.as_deref()));
    let _ = writeln!(o, "Nozzle:           {}", unit(m.nozzle_diameter_mm, "mm"));
    let _ = writeln!(
        o,
        "Layer height:     {} (first layer {})",
        unit(m.layer_height_mm, "mm"),
        unit(m.first_layer_height_mm, "mm")
    );
    let _ = writeln!(
        o,
        "Temperatures:     nozzle {}, bed {} (first layer)",
        unit(
            m.first_layer_nozzle_temperature_c
                .or(m.nozzle_temperature_c),
            "°C"
        ),
        unit(
            m.first_layer_bed_temperature_c.or(m.bed_temperature_c),
            "°C"
        )
    );
    for f in &m.filaments {
        // What the slicer states of this tool's filament, in order; the material named as unknown
        // when it is, since a length alone reads like a material.
        let parts: Vec<String> = [
            Some(
                f.material
                    .clone()
                    .unwrap_or_else(|| "material not stated".into()),
            ),
            f.colour.clone(),
            f.length_mm.map(|l| format!("{l:.1} mm")),
            f.weight_g.map(|g| format!("{g:.2} g")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let _ = writeln!(o, "Filament T{}:      {}", f.tool, parts.join(", "));
    }
    if let Some(g) = m.filament_total_weight_g {
        let _ = writeln!(o, "Filament (slicer): {g:.2} g");
    }
    let _ = writeln!(
        o,
        "Time (slicer):    {}",
        opt(m.estimated_time_s.map(duration))
    );
    if !m.objects.is_empty() {
        let _ = writeln!(o, "Objects:          {}", m.objects.join(", "));
    }
    if let Some(a) = &r.analysis {
        let _ = writeln!(o, "--- our analysis ---");
        let _ = writeln!(
            o,
            "Time (ours):      {}  (motion model, limits from {})",
            duration(a.estimated_time_s),
            limits_name(a.limits_source)
        );
        let _ = writeln!(
            o,
            "Layers:           {} (first {}, typical {}, top Z {})",
            a.layers.count,
            unit(a.layers.first_layer_height_mm, "mm"),
            unit(a.layers.typical_height_mm, "mm"),
            unit(a.layers.top_z_mm, "mm")
        );
        if let Some(e) = &a.extents {
            let _ = writeln!(
                o,
                "Extents:          X {:.2}..{:.2}  Y {:.2}..{:.2}  Z {:.2}..{:.2} mm",
                e.min[0], e.max[0], e.min[1], e.max[1], e.min[2], e.max[2]
            );
        }
        for t in &a.tools {
            let _ = writeln!(
                o,
                "Filament T{} (ours): {:.1} mm, {:.2} cm³, {}",
                t.tool,
                t.length_mm,
                t.volume_cm3,
                t.mass_g
                    .map_or_else(|| "mass unknown".to_owned(), |g| format!("{g:.2} g"))
            );
        }
        let _ = writeln!(o, "Lines / moves:    {} / {}", a.lines, a.moves);
    }
    for t in &r.thumbnails {
        let _ = writeln!(
            o,
            "Thumbnail:        {}x{} {} ({} bytes)",
            t.width,
            t.height,
            t.format.extension().to_uppercase(),
            t.size
        );
    }
    for d in &r.diagnostics {
        let line = d.line.map_or_else(String::new, |l| format!("line {l}: "));
        let _ = writeln!(o, "{:?}: {line}{}", d.severity, d.message);
    }
    if r.diagnostics_dropped > 0 {
        let _ = writeln!(o, "... and {} more diagnostics", r.diagnostics_dropped);
    }
    o
}
