//! What each slicer writes, read back: one small fixture per slicer shape in
//! `test_data/metadata/` (sources in its README) with the expected report beside it.

use crate::{analyze, check_expected, files_in, name};

#[test]
fn fixtures_match_expected_reports() {
    let files = files_in("metadata");
    assert!(files.len() >= 8);
    for p in files {
        let report = analyze(&p);
        let out = crate::report_json(&report);
        check_expected(&p.with_file_name(format!("{}.json", name(&p))), &out);
    }
}

#[test]
fn every_slicer_is_recognised_with_its_time_and_material() {
    let want = [
        ("bambustudio_1.10.gcode", "BambuStudio", 369.0),
        ("cura_5.4.gcode", "Cura_SteamEngine", 3723.0),
        ("ideamaker_4.4.gcode", "ideaMaker", 1834.0),
        ("kirimoto_4.1.gcode", "Kiri:Moto", 1823.0),
        ("orcaslicer_2.1_two_filaments.gcode", "OrcaSlicer", 2712.0),
        ("simplify3d_4.1.gcode", "Simplify3D", 3720.0),
        ("slic3r_1.3.gcode", "Slic3r", f64::NAN),
        ("superslicer_2.5.gcode", "SuperSlicer", 3723.0),
    ];
    for (file, slicer, time) in want {
        let r = analyze(&crate::data_dir().join("metadata").join(file));
        let m = &r.metadata;
        assert_eq!(
            m.slicer.as_ref().map(|s| s.name.as_str()),
            Some(slicer),
            "{file}"
        );
        if time.is_nan() {
            assert_eq!(
                m.estimated_time_s, None,
                "{file}: Slic3r writes no estimate"
            );
        } else {
            assert_eq!(m.estimated_time_s, Some(time), "{file}");
        }
        assert!(m.layer_height_mm.is_some(), "{file}: layer height");
        assert!(
            m.first_layer_nozzle_temperature_c.is_some(),
            "{file}: temperature"
        );
    }
}

#[test]
fn two_filament_orca_file_reports_each_tool() {
    let r = analyze(&crate::data_dir().join("metadata/orcaslicer_2.1_two_filaments.gcode"));
    let f = &r.metadata.filaments;
    assert_eq!(f.len(), 2);
    assert_eq!(f[1].material.as_deref(), Some("PETG"));
    assert_eq!(f[1].colour.as_deref(), Some("#000000"));
    assert_eq!(f[1].density_g_cm3, Some(1.27));
    assert_eq!(r.metadata.objects.len(), 2);
    let a = r.analysis.unwrap();
    assert_eq!(a.tools.len(), 2);
    assert!((a.tools[1].length_mm - 0.3).abs() < 1e-9);
    // SET_VELOCITY_LIMIT's square corner velocity becomes a junction deviation.
    assert!(a.limits.junction_deviation_mm.is_some());
    assert_eq!(a.limits.print_acceleration, 5000.0);
}
