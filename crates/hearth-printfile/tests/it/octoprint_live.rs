//! Against the real OctoPrint 1.11 (when its venv is installed by `scripts/install-octoprint.sh`;
//! with `HEARTH_REQUIRE_PEERS=1` its absence is a failure): our filament length and extents agree
//! with OctoPrint's analysis run now on a sample, not only with the stored expectation.

use std::path::PathBuf;
use std::process::Command;

use crate::{analyze, data_dir};

fn octoprint_python() -> Option<PathBuf> {
    let dir = std::env::var_os("HEARTH_PEERS_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/hearth-peers"),
        PathBuf::from,
    );
    let py = dir.join("octoprint/bin/python");
    py.exists().then_some(py)
}

#[test]
fn live_octoprint_analysis_agrees() {
    let Some(py) = octoprint_python() else {
        assert!(
            std::env::var_os("HEARTH_REQUIRE_PEERS").is_none_or(|v| v != "1"),
            "HEARTH_REQUIRE_PEERS=1 but OctoPrint is not installed (run scripts/install-octoprint.sh)"
        );
        eprintln!("skipped: OctoPrint not installed");
        return;
    };
    let sample = data_dir().join("samples/cube20_curaengine.gcode");
    let out = Command::new(py)
        .args(["-m", "octoprint", "analysis", "gcode"])
        .arg(&sample)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let results = text.split("RESULTS:").nth(1).unwrap();
    // The YAML is flat enough to read the few numbers by key.
    let value = |key: &str| -> f64 {
        let line = results
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(key))
            .nth(usize::from(key == "extrusion_length:"))
            .unwrap();
        let v = line.rsplit([':', '-']).next().unwrap().trim();
        v.parse().unwrap()
    };
    let a = analyze(&sample).analysis.unwrap();
    let length = value("extrusion_length:");
    assert!((a.tools[0].length_mm - length).abs() / length < 0.001);
    let e = a.extents.unwrap();
    let pa = results.split("printing_area:").nth(1).unwrap();
    let area = |k: &str| -> f64 {
        let l = pa.lines().find(|l| l.trim_start().starts_with(k)).unwrap();
        l.split(':').nth(1).unwrap().trim().parse().unwrap()
    };
    assert!((e.max[0] - area("maxX")).abs() <= 0.01);
    assert!((e.min[1] - area("minY")).abs() <= 0.01);
    assert!((e.max[2] - area("maxZ")).abs() <= 0.01);
}
