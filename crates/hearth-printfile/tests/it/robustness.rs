//! Lenient and safe: hostile or damaged input never panics; G-code problems become diagnostics
//! with line numbers.

use std::io::Cursor;

use hearth_printfile::{Options, Severity};

use crate::files_in;

/// Small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn all_apis(data: &[u8]) {
    let o = Options::default();
    let _ = hearth_printfile::analyze(Cursor::new(data), &o);
    let _ = hearth_printfile::inspect_metadata(Cursor::new(data), &o);
    let _ = hearth_printfile::analyze_stream(Cursor::new(data), &o);
    let _ = hearth_printfile::bgcode_to_gcode(Cursor::new(data), std::io::sink());
}

#[test]
fn truncated_and_mutated_samples_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for p in files_in("samples") {
        let data = std::fs::read(&p).unwrap();
        let data = &data[..data.len().min(40_000)];
        for _ in 0..6 {
            let cut = (rng.next() as usize) % data.len();
            all_apis(&data[..cut]);
            let mut m = data.to_vec();
            for _ in 0..8 {
                let i = (rng.next() as usize) % m.len();
                m[i] = rng.next() as u8;
            }
            all_apis(&m);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for len in [0usize, 1, 3, 4, 10, 100, 5000] {
        for prefix in [
            &b""[..],
            b"GCDE\x01\x00\x00\x00\x01\x00",
            b"PK\x03\x04",
            b"G1 X",
        ] {
            let mut d = prefix.to_vec();
            d.extend((0..len).map(|_| rng.next() as u8));
            all_apis(&d);
        }
    }
}

#[test]
fn bad_lines_are_reported_with_line_numbers() {
    let src =
        "G1 X1 Y1 Z0.2 F600\nT999\n; thumbnail begin 2x2 8\n; !!!!\n; thumbnail end\nG1 X2 E1\n";
    let r = hearth_printfile::analyze(Cursor::new(src), &Options::default()).unwrap();
    let lines: Vec<(Option<u64>, Severity)> =
        r.diagnostics.iter().map(|d| (d.line, d.severity)).collect();
    assert!(
        lines.contains(&(Some(2), Severity::Warning)),
        "{:?}",
        r.diagnostics
    );
    assert!(
        lines.contains(&(Some(3), Severity::Warning)),
        "{:?}",
        r.diagnostics
    );
    assert!((r.analysis.unwrap().filament_length_mm - 1.0).abs() < 1e-9);
}

#[test]
fn diagnostics_are_capped_and_counted() {
    let src = "T999\n".repeat(500);
    let r = hearth_printfile::analyze(Cursor::new(src), &Options::default()).unwrap();
    assert_eq!(r.diagnostics.len(), 100);
    assert_eq!(r.diagnostics_dropped, 400);
}

#[test]
fn empty_and_binary_junk_files_are_reports_not_errors() {
    let r = hearth_printfile::analyze(Cursor::new(Vec::new()), &Options::default()).unwrap();
    assert_eq!(r.analysis.unwrap().lines, 0);
    let r = hearth_printfile::analyze(Cursor::new(vec![0u8; 3000]), &Options::default()).unwrap();
    assert!(r.metadata.slicer.is_none());
}

#[test]
fn thumbnails_are_capped_in_total() {
    // Six pictures of 5 MiB each: only what fits in the 24 MiB budget is kept, the rest reported.
    let row = format!("; {}\n", "A".repeat(76));
    let rows_per_picture = 5 * 1024 * 1024 / 57; // 76 base64 chars = 57 bytes
    let mut src = String::new();
    for _ in 0..6 {
        src.push_str(&format!(
            "; thumbnail begin 9x9 {}\n",
            rows_per_picture * 76
        ));
        for _ in 0..rows_per_picture {
            src.push_str(&row);
        }
        src.push_str("; thumbnail end\n");
    }
    let r = hearth_printfile::analyze(Cursor::new(src), &Options::default()).unwrap();
    assert_eq!(r.thumbnails.len(), 4);
    assert!(
        r.diagnostics
            .iter()
            .any(|d| d.message.contains("exceed 24 MiB") && d.line.is_some()),
        "{:?}",
        r.diagnostics
    );
}
