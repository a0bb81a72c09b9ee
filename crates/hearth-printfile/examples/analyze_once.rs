//! One full analysis of FILE and nothing else, for instruction counts:
//! `valgrind --tool=callgrind target/release/examples/analyze_once FILE`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: analyze_once FILE")?;
    let r = hearth_printfile::analyze(std::fs::File::open(path)?, &Default::default())?;
    let a = r.analysis.ok_or("no analysis")?;
    println!(
        "{} {} {}",
        a.lines, a.filament_length_mm, a.estimated_time_s
    );
    Ok(())
}
