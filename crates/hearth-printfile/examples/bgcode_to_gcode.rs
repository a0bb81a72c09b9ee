//! Converts a binary G-code file to text: `cargo run --example bgcode_to_gcode IN.bgcode > OUT.gcode`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: bgcode_to_gcode FILE.bgcode")?;
    let input = std::io::BufReader::new(std::fs::File::open(path)?);
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    hearth_printfile::bgcode_to_gcode(input, out)?;
    Ok(())
}
