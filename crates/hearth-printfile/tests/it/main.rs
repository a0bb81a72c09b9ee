//! Integration tests of `hearth-printfile`: inputs and expected outputs are files under
//! `test_data/` (set `HEARTH_BLESS=1` to rewrite the expected outputs after a deliberate change;
//! `scripts/regen-octoprint-expectations.sh` recreates the OctoPrint and slicer reference numbers).
#![allow(clippy::unwrap_used)]

mod bgcode;
mod metadata;
// Runs OctoPrint as a process, which WebAssembly (scripts/test-wasm.sh) cannot.
#[cfg(not(target_family = "wasm"))]
mod octoprint_live;
mod robustness;
mod samples;

use std::path::{Path, PathBuf};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data")
}

/// Files of a test_data subdirectory, sorted.
pub fn files_in(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e != "json" && e != "md"))
        .collect();
    v.sort();
    v
}

pub fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Compares `actual` with the file at `expected`, or rewrites it when `HEARTH_BLESS=1`.
pub fn check_expected(expected: &Path, actual: &str) {
    if std::env::var_os("HEARTH_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(expected, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(expected).unwrap_or_else(|_| {
        panic!(
            "{} is missing; run with HEARTH_BLESS=1 to create it",
            expected.display()
        )
    });
    assert!(
        want == actual,
        "{} differs from the output (run with HEARTH_BLESS=1 to accept):\n--- expected\n{want}\n--- actual\n{actual}",
        expected.display()
    );
}

pub fn analyze(p: &Path) -> hearth_printfile::Report {
    let f = std::io::BufReader::new(std::fs::File::open(p).unwrap());
    hearth_printfile::analyze(f, &hearth_printfile::Options::default()).unwrap()
}

/// The report as pretty JSON with floats rounded to 6 decimals, so expected files do not churn on
/// last-bit differences of a harmless refactor while any real change still shows.
pub fn report_json(r: &hearth_printfile::Report) -> String {
    fn round(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap();
                let r = (x * 1e6).round() / 1e6;
                *v = serde_json::Number::from_f64(r).map_or(serde_json::Value::Null, Into::into);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(round),
            serde_json::Value::Object(o) => o.values_mut().for_each(round),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(r).unwrap();
    round(&mut v);
    serde_json::to_string_pretty(&v).unwrap() + "\n"
}
