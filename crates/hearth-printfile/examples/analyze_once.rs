//! Full analysis of FILE, RUNS times (default 1), and nothing else: for instruction counts
//! (`valgrind --tool=callgrind target/release/examples/analyze_once FILE`) and profiles.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: analyze_once FILE [RUNS]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(1);
    for _ in 0..runs {
        let r = hearth_printfile::analyze(std::fs::File::open(&path)?, &Default::default())?;
        let a = r.analysis.ok_or("no analysis")?;
        println!(
            "{} {} {}",
            a.lines, a.filament_length_mm, a.estimated_time_s
        );
    }
    Ok(())
}
