//! Benchmark of the full analysis and of metadata-only inspection (not a test):
//! `cargo run --release -p hearth-printfile --example bench -- FILE [RUNS]`.
//! Prints throughput of the full analysis (best of RUNS, default 3), the process's peak resident
//! memory, and the median time of metadata-only inspection. Shared cloud machines change their
//! clock under load (2.0 to 3.5 GHz seen on one machine within minutes), so it also measures the
//! clock around the best run and gives the analysis in cycles per line, which does not move with it.

use std::io::BufReader;
use std::time::Instant;

#[path = "support/clock.rs"]
mod clock;
use clock::clock_ghz;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: bench FILE [RUNS]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let size = std::fs::metadata(&path)?.len() as f64;
    let opts = hearth_printfile::Options::default();

    let mut best = f64::INFINITY;
    let mut best_ghz = 0.0;
    let mut report = None;
    for _ in 0..runs {
        let f = std::fs::File::open(&path)?;
        let before = clock_ghz();
        let t = Instant::now();
        let r = hearth_printfile::analyze(f, &opts)?;
        let s = t.elapsed().as_secs_f64();
        if s < best {
            best = s;
            best_ghz = (before + clock_ghz()) / 2.0;
        }
        report = Some(r);
    }
    let a = report.and_then(|r| r.analysis).ok_or("no analysis")?;
    let rss = peak_rss_kib().unwrap_or(0);

    let mut meta: Vec<f64> = (0..101)
        .map(|_| -> Result<f64, Box<dyn std::error::Error>> {
            let f = BufReader::new(std::fs::File::open(&path)?);
            let t = Instant::now();
            hearth_printfile::inspect_metadata(f, &opts)?;
            Ok(t.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()?;
    meta.sort_by(f64::total_cmp);

    println!("file_mb={:.1}", size / 1e6);
    println!("full_analysis_s={best:.3}");
    println!("full_analysis_mb_per_s={:.0}", size / 1e6 / best);
    println!("clock_ghz={best_ghz:.2}");
    println!(
        "cycles_per_line={:.0}",
        best * best_ghz * 1e9 / a.lines.max(1) as f64
    );
    println!("peak_rss_mib={:.1}", rss as f64 / 1024.0);
    println!("metadata_only_median_ms={:.2}", meta[50] * 1e3);
    println!("metadata_only_max_ms={:.2}", meta[100] * 1e3);
    println!(
        "lines={} moves={} filament_mm={:.1} our_time_s={:.0}",
        a.lines, a.moves, a.filament_length_mm, a.estimated_time_s
    );
    Ok(())
}
