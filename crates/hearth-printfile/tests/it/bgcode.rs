//! Binary G-code: decoding equals the reference text, analysis equals the text twin's, damage is
//! reported.

use std::io::Cursor;

use hearth_printfile::{BgcodeError, Error, Options};

use crate::{analyze, data_dir};

/// (binary sample, its text twin). The first is libbgcode's own decode reference
/// (`tests/data/mini_cube_b_ref.gcode`); the second is the text file PrusaSlicer 2.8.1 exported
/// beside the binary one, whose metadata comments come in PrusaSlicer's order, not the decoder's.
const PAIRS: [(&str, &str); 2] = [
    ("mini_cube_b.bgcode", "mini_cube_b_ref.gcode"),
    ("mini_cube_ps2.8.1.bgcode", "mini_cube_ps2.8.1.gcode"),
];

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join("samples").join(name)).unwrap()
}

fn decode(bin: &str) -> Vec<u8> {
    let mut out = Vec::new();
    hearth_printfile::bgcode_to_gcode(Cursor::new(sample(bin)), &mut out).unwrap();
    out
}

fn assert_same_lines<'a>(
    what: &str,
    got: impl Iterator<Item = &'a [u8]>,
    want: impl Iterator<Item = &'a [u8]>,
) {
    let got: Vec<&[u8]> = got.collect();
    let want: Vec<&[u8]> = want.collect();
    if let Some(n) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        let show = |l: Option<&&[u8]>| l.map(|l| String::from_utf8_lossy(l).into_owned());
        panic!(
            "{what}: differs at line {}:\n  got  {:?}\n  want {:?}",
            n + 1,
            show(got.get(n)),
            show(want.get(n))
        );
    }
}

#[test]
fn decoding_bgcode_yields_exactly_libbgcode_reference_gcode() {
    let out = decode("mini_cube_b.bgcode");
    let want = sample("mini_cube_b_ref.gcode");
    assert_same_lines(
        "mini_cube_b.bgcode",
        out.split(|&c| c == b'\n'),
        want.split(|&c| c == b'\n'),
    );
    assert_eq!(out, want);
}

#[test]
fn decoding_bgcode_yields_the_gcode_of_its_prusaslicer_text_twin() {
    // Every line except the `; key = value` metadata comments, whose order differs.
    let is_kv = |l: &&[u8]| l.starts_with(b"; ") && l.windows(3).any(|w| w == b" = ");
    let out = decode("mini_cube_ps2.8.1.bgcode");
    let want = sample("mini_cube_ps2.8.1.gcode");
    assert_same_lines(
        "mini_cube_ps2.8.1.bgcode",
        out.split(|&c| c == b'\n').filter(|l| !is_kv(l)),
        want.split(|&c| c == b'\n').filter(|l| !is_kv(l)),
    );
}

#[test]
fn analysis_of_bgcode_equals_its_text_twin() {
    for (bin, text) in PAIRS {
        let b = analyze(&data_dir().join("samples").join(bin));
        let t = analyze(&data_dir().join("samples").join(text));
        let (ba, ta) = (b.analysis.unwrap(), t.analysis.unwrap());
        assert_eq!(ba.tools, ta.tools, "{bin}");
        assert_eq!(ba.extents, ta.extents, "{bin}");
        assert_eq!(ba.layers, ta.layers, "{bin}");
        assert!(
            (ba.estimated_time_s - ta.estimated_time_s).abs() < 1e-6,
            "{bin}"
        );
        assert_eq!(
            b.metadata.estimated_time_s, t.metadata.estimated_time_s,
            "{bin}"
        );
        assert_eq!(b.thumbnails, t.thumbnails, "{bin}");
    }
}

#[test]
fn flipped_bit_is_reported_with_the_block_offset() {
    let mut data = sample("mini_cube_b.bgcode");
    // Inside the printer metadata block's data (block at byte 51).
    data[70] ^= 0x01;
    let r = hearth_printfile::analyze(Cursor::new(data), &Options::default()).unwrap();
    assert!(
        r.diagnostics
            .iter()
            .any(|d| d.message.contains("block at byte 51") && d.message.contains("CRC32")),
        "{:?}",
        r.diagnostics
    );
}

#[test]
fn damaged_structure_is_a_clear_error() {
    let data = sample("mini_cube_ps2.8.1.bgcode");
    let truncated =
        hearth_printfile::analyze(Cursor::new(data[..5000].to_vec()), &Options::default());
    assert!(
        matches!(truncated, Err(Error::Bgcode(BgcodeError::Truncated { .. }))),
        "{truncated:?}"
    );
    let mut bad_type = data.clone();
    bad_type[10] = 77; // first block's type
    let e = hearth_printfile::analyze(Cursor::new(bad_type), &Options::default()).unwrap_err();
    assert_eq!(e.to_string(), "the binary G-code structure is damaged");
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert_eq!(source, "block at byte 10: unknown block type 77");
    let mut version = data;
    version[4] = 9;
    assert!(matches!(
        hearth_printfile::analyze(Cursor::new(version), &Options::default()),
        Err(Error::Bgcode(BgcodeError::Version(9)))
    ));
}

#[test]
fn metadata_only_inspection_skips_the_gcode_blocks() {
    let r = hearth_printfile::inspect_metadata(
        Cursor::new(sample("mini_cube_ps2.8.1.bgcode")),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.metadata.printer_model.as_deref(), Some("MK4S"));
    assert_eq!(r.metadata.estimated_time_s, Some(221.0));
    assert_eq!(r.thumbnails.len(), 2);
    assert_eq!((r.thumbnails[1].width, r.thumbnails[1].height), (313, 173));
}
