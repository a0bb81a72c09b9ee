//! `hearth inspect`.

use std::ffi::OsStr;

use crate::{hearth, sample};

#[test]
fn summary_shows_slicer_facts_and_our_estimate_labelled_as_ours() {
    let f = sample("cube20_prusaslicer_mk3s.gcode");
    let out = hearth(&[OsStr::new("inspect"), f.as_os_str()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Slicer:           PrusaSlicer 2.5.0"),
        "{text}"
    );
    assert!(text.contains("Time (slicer):    16m 20s"), "{text}");
    assert!(text.contains("Format:           G-code\n"), "{text}");
    assert!(
        text.contains("(motion model, limits from commands in the file (M201,"),
        "{text}"
    );
    assert!(text.contains("Thumbnail:        220x124 PNG"), "{text}");
}

#[test]
fn summary_says_what_the_file_does_not_state() {
    // CuraEngine states neither nozzle, first layer, bed temperature nor material.
    let f = sample("cube20_curaengine.gcode");
    let out = hearth(&[OsStr::new("inspect"), f.as_os_str()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "Nozzle:           not stated\n",
        "Layer height:     0.2 mm (first layer not stated)\n",
        "Temperatures:     nozzle 215 °C, bed not stated (first layer)\n",
        "Filament T0:      material not stated, 774.5 mm\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert!(!text.contains(" - "), "{text}");
}

#[test]
fn json_output_is_the_report() {
    let f = sample("mini_cube_ps2.8.1.bgcode");
    let out = hearth(&[OsStr::new("inspect"), OsStr::new("--json"), f.as_os_str()]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "bgcode");
    assert_eq!(v["metadata"]["printer_model"], "MK4S");
    assert!(v["analysis"]["estimated_time_s"].as_f64().unwrap() > 200.0);
    assert_eq!(v["thumbnails"][1]["width"], 313);
}

#[test]
fn metadata_only_json_has_no_analysis() {
    let f = sample("wavy_small_prusaslicer_mk3s.gcode");
    let out = hearth(&[
        OsStr::new("inspect"),
        OsStr::new("--json"),
        OsStr::new("--metadata-only"),
        f.as_os_str(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["analysis"].is_null());
    assert_eq!(v["metadata"]["estimated_time_s"], 1762.0);
}

#[test]
fn thumbnail_option_writes_the_largest_picture() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("thumb.png");
    let f = sample("wavy_small_prusaslicer_mk3s.gcode");
    let out = hearth(&[
        OsStr::new("inspect"),
        f.as_os_str(),
        OsStr::new("--thumbnail"),
        png.as_os_str(),
    ]);
    assert!(out.status.success());
    let data = std::fs::read(&png).unwrap();
    assert!(data.starts_with(b"\x89PNG\r\n\x1a\n"));
    // IHDR width/height: the 300x300 picture, not the 16x16 or 220x124 ones.
    assert_eq!(&data[16..24], &[0, 0, 1, 44, 0, 0, 1, 44]);
}

#[test]
fn qoi_thumbnails_are_converted_for_a_png_name_and_kept_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample("mini_cube_ps2.8.1.bgcode");
    let png = dir.path().join("t.png");
    let out = hearth(&[
        OsStr::new("inspect"),
        f.as_os_str(),
        OsStr::new("--thumbnail"),
        png.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read(&png).unwrap();
    assert!(data.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(&data[16..24], &[0, 0, 1, 57, 0, 0, 0, 173]); // 313x173
    let qoi = dir.path().join("t.qoi");
    let out = hearth(&[
        OsStr::new("inspect"),
        f.as_os_str(),
        OsStr::new("--thumbnail"),
        qoi.as_os_str(),
    ]);
    assert!(out.status.success());
    assert!(std::fs::read(&qoi).unwrap().starts_with(b"qoif"));
}

#[test]
fn thumbnail_option_fails_clearly_without_thumbnails() {
    let dir = tempfile::tempdir().unwrap();
    let f = sample("cube20_curaengine.gcode");
    let out = hearth(&[
        OsStr::new("inspect"),
        f.as_os_str(),
        OsStr::new("--thumbnail"),
        dir.path().join("t.png").as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("contains no thumbnail"), "{err}");
}

#[test]
fn unreadable_inputs_fail_with_a_clear_message() {
    let out = hearth(&[OsStr::new("inspect"), OsStr::new("/nonexistent/x.gcode")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open /nonexistent/x.gcode"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.gcode.3mf");
    std::fs::write(&bad, b"PK\x03\x04garbage").unwrap();
    let out = hearth(&[OsStr::new("inspect"), bad.as_os_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("the 3MF archive is damaged"), "{err}");
}

#[test]
fn a_project_of_several_plates_lists_them_and_says_which_one_the_summary_is_of() {
    let dir = tempfile::tempdir().unwrap();
    let project = crate::printer_chain::two_plate_project(dir.path());
    let out = hearth(&[OsStr::new("inspect"), project.as_os_str()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Sliced plates:    1, 2 (this is plate 1;"),
        "{text}"
    );
    let out = hearth(&[
        OsStr::new("inspect"),
        project.as_os_str(),
        OsStr::new("--plate"),
        OsStr::new("2"),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("(this is plate 2;"), "{text}");
    let one = hearth(&[
        OsStr::new("inspect"),
        sample("cube20_synthetic_bambu.gcode.3mf").as_os_str(),
    ]);
    let text = String::from_utf8(one.stdout).unwrap();
    assert!(!text.contains("Sliced plates"), "one plate: {text}");
}
