//! What the printer needs to know about a plate project (`.gcode.3mf`) before it prints it, and which
//! AMS tray each of its filaments comes from. Pure: reads an archive from any `Read + Seek`.
//!
//! PROTOCOLS.md §A4 (`print.project_file`): `param` names the plate's G-code inside the archive,
//! `md5` is that G-code's MD5 (Bambu Studio writes it beside the plate as `plate_N.gcode.md5`; the
//! printer checks it), and `ams_mapping` has one entry per filament the plate uses, the tray as
//! `ams_id * 4 + tray_id`, or 254 for the external spool.

use std::io::{Read, Seek};

use quick_xml::events::Event;

/// The external spool holder's tray number in `ams_mapping`.
pub const EXTERNAL_SPOOL: i64 = 254;

/// One filament a plate uses, from `Metadata/slice_info.config`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateFilament {
    /// The slicer's filament number, 1-based.
    pub id: u32,
    /// Material, e.g. `PLA`.
    pub kind: String,
    /// Colour as `RRGGBB` (upper case, no `#`), when the slicer wrote one.
    pub color: Option<String>,
    /// Grams the plate takes of it (`used_g`), when the slicer wrote them.
    pub used_g: Option<f64>,
}

/// A plate project, as far as starting it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plate {
    /// The plate's G-code inside the archive, e.g. `Metadata/plate_1.gcode` (the command's `param`).
    pub gcode: String,
    /// The MD5 of that G-code as the slicer recorded it, lower-case hex; empty when absent (the
    /// printer then skips the check).
    pub md5: String,
    /// Filaments of this plate, in slicer order.
    pub filaments: Vec<PlateFilament>,
}

/// Why a project cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectError {
    /// Not a ZIP archive, or a damaged one.
    #[error("not a readable 3MF archive: {0}")]
    Archive(String),
    /// No `Metadata/plate_N.gcode`: a project saved without slicing.
    #[error(
        "the 3MF holds no sliced plate (no Metadata/plate_N.gcode); slice and export the plate"
    )]
    NoPlate,
    /// More than one sliced plate: the printer prints one plate per job.
    #[error(
        "the 3MF holds {0} sliced plates; export one plate per file (Bambu Studio: File > Export > Export plate sliced file)"
    )]
    SeveralPlates(usize),
}

/// Reads the sliced plate of a project. Exactly one plate must be sliced: with several, which one
/// the member meant is not written anywhere the agent can read.
pub fn read_plate<R: Read + Seek>(r: R) -> Result<Plate, ProjectError> {
    let mut zip = zip::ZipArchive::new(r).map_err(|e| ProjectError::Archive(e.to_string()))?;
    let mut plates: Vec<u32> = zip
        .file_names()
        .filter_map(Result::ok)
        .filter_map(|n| plate_number(&n))
        .collect();
    plates.sort_unstable();
    plates.dedup();
    let n = match plates.as_slice() {
        [] => return Err(ProjectError::NoPlate),
        [n] => *n,
        many => return Err(ProjectError::SeveralPlates(many.len())),
    };
    let gcode = format!("Metadata/plate_{n}.gcode");
    let md5 = read_small(&mut zip, &format!("{gcode}.md5"))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_default();
    let filaments = read_small(&mut zip, "Metadata/slice_info.config")
        .map(|xml| plate_filaments(&xml, n))
        .unwrap_or_default();
    Ok(Plate {
        gcode,
        md5,
        filaments,
    })
}

fn plate_number(name: &str) -> Option<u32> {
    name.strip_prefix("Metadata/plate_")?
        .strip_suffix(".gcode")?
        .parse()
        .ok()
}

/// A small text member (a checksum, the slicer's summary); `None` when absent or unreadable.
fn read_small<R: Read + Seek>(zip: &mut zip::ZipArchive<R>, name: &str) -> Option<String> {
    const LIMIT: u64 = 1 << 20;
    let f = zip.by_name(name).ok()?;
    let mut s = String::new();
    f.take(LIMIT).read_to_string(&mut s).ok()?;
    Some(s)
}

/// The `<filament>` entries of plate `n` in `slice_info.config`: each `<plate>` has a `metadata`
/// entry `index` and its `filament`s.
fn plate_filaments(xml: &str, n: u32) -> Vec<PlateFilament> {
    let mut reader = quick_xml::Reader::from_str(xml);
    // (index, filaments) per plate, in document order.
    let mut plates: Vec<(Option<u32>, Vec<PlateFilament>)> = Vec::new();
    loop {
        let ev = match reader.read_event() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(ev) => ev,
        };
        let e = match &ev {
            Event::Start(e) | Event::Empty(e) => e,
            _ => continue,
        };
        let attrs: Vec<(String, String)> = e
            .attributes()
            .filter_map(Result::ok)
            .map(|a| {
                let v = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_or_else(|_| a.value.clone().into_owned(), |v| v.into_owned());
                (a.key.as_ref().to_owned(), v)
            })
            .collect();
        let get = |k: &str| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.trim());
        match (e.name().as_ref(), plates.last_mut()) {
            ("plate", _) => plates.push((None, Vec::new())),
            ("metadata", Some((index, _))) if get("key") == Some("index") => {
                *index = get("value").and_then(|v| v.parse().ok());
            }
            ("filament", Some((_, filaments))) => {
                if let (Some(id), Some(kind)) =
                    (get("id").and_then(|v| v.parse().ok()), get("type"))
                {
                    filaments.push(PlateFilament {
                        id,
                        kind: kind.to_owned(),
                        color: get("color").and_then(rgb),
                        used_g: get("used_g")
                            .and_then(|v| v.parse().ok())
                            .filter(|g: &f64| g.is_finite() && *g >= 0.0),
                    });
                }
            }
            _ => {}
        }
    }
    plates
        .into_iter()
        .find(|(index, _)| *index == Some(n))
        .map(|(_, f)| f)
        .unwrap_or_default()
}

/// `#rrggbb`, `rrggbb` or `RRGGBBAA` as `RRGGBB`.
pub fn rgb(s: &str) -> Option<String> {
    let s = s.trim().trim_start_matches('#');
    let hex = s.get(..6)?;
    (matches!(s.len(), 6 | 8) && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_uppercase())
}

/// A tray the printer reports, loaded with a spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tray {
    /// Its `ams_mapping` number: `ams_id * 4 + tray_id`, or 254 for the external spool.
    pub slot: i64,
    /// Material, e.g. `PLA`.
    pub kind: String,
    /// Colour as `RRGGBB`, when known.
    pub color: Option<String>,
    /// Filament left, percent, when the printer knows (`remain`, -1 when it does not).
    pub remain_percent: Option<u8>,
    /// The spool's RFID identity (`tray_uuid`, upper-case hex), when it has one.
    pub tag: Option<String>,
}

/// Why no tray fits a filament.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MappingError(pub String);

/// Grams a full spool is taken to hold when the printer gives what is left as a percentage: Bambu
/// Lab's own spools hold 1 kg, and the printer reports no spool weight we read.
const SPOOL_GRAMS: f64 = 1000.0;
/// What a spool must hold beyond a plate's grams (and 10% of them) to count as enough: the
/// printer's percentage is coarse and its estimate drifts.
const MARGIN_GRAMS: f64 = 10.0;

/// Picks a tray for each of the plate's filaments: one holding the same material, of the same colour
/// if one is, else of the nearest colour (the operator loaded that material; a shade differs).
/// Among trays as near in colour (two spools of the same filament, as farms load them for long
/// prints), one the printer says has enough left for the plate's grams comes first — the emptiest
/// of those, so leftovers go into small plates and full spools stay for long ones — then one it
/// says nothing about, then one it says runs short (the fullest of those). A material no tray
/// holds is an error rather than a print in the wrong material.
pub fn map_trays(filaments: &[PlateFilament], trays: &[Tray]) -> Result<Vec<i64>, MappingError> {
    filaments
        .iter()
        .map(|f| {
            let same_kind = trays
                .iter()
                .filter(|t| t.kind.eq_ignore_ascii_case(&f.kind));
            let best = same_kind.min_by_key(|t| {
                let distance = match (&f.color, &t.color) {
                    (Some(a), Some(b)) => color_distance(a, b),
                    _ => u32::MAX,
                };
                let left = t
                    .remain_percent
                    .map(|p| f64::from(p.min(100)) / 100.0 * SPOOL_GRAMS);
                match (t.remain_percent, left, f.used_g) {
                    (Some(p), Some(left), Some(need)) if left >= need * 1.1 + MARGIN_GRAMS => {
                        (distance, 0, p)
                    }
                    (Some(p), Some(_), Some(_)) => (distance, 2, 100 - p.min(100)),
                    (Some(p), _, None) => (distance, 1, 100 - p.min(100)),
                    _ => (distance, 1, 100),
                }
            });
            best.map(|t| t.slot).ok_or_else(|| {
                let loaded: Vec<String> = trays.iter().map(describe_tray).collect();
                MappingError(format!(
                    "no loaded spool holds {} for filament {}{} (loaded: {})",
                    f.kind,
                    f.id,
                    f.color
                        .as_ref()
                        .map(|c| format!(", #{c}"))
                        .unwrap_or_default(),
                    if loaded.is_empty() {
                        "nothing".to_owned()
                    } else {
                        loaded.join(", ")
                    }
                ))
            })
        })
        .collect()
}

fn describe_tray(t: &Tray) -> String {
    let place = if t.slot == EXTERNAL_SPOOL {
        "external spool".to_owned()
    } else {
        format!("AMS {} tray {}", t.slot / 4 + 1, t.slot % 4 + 1)
    };
    match &t.color {
        Some(c) => format!("{} #{c} in {place}", t.kind),
        None => format!("{} in {place}", t.kind),
    }
}

/// Squared distance between two `RRGGBB` colours.
fn color_distance(a: &str, b: &str) -> u32 {
    let channels = |s: &str| -> [i32; 3] {
        let c = |i: usize| {
            s.get(i..i + 2)
                .and_then(|h| i32::from_str_radix(h, 16).ok())
                .unwrap_or(0)
        };
        [c(0), c(2), c(4)]
    };
    let (a, b) = (channels(a), channels(b));
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) * (x - y)) as u32)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn project(files: &[(&str, &str)]) -> Cursor<Vec<u8>> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        let mut c = w.finish().unwrap();
        c.set_position(0);
        c
    }

    const INFO: &str = r##"<?xml version="1.0"?><config><plate>
        <metadata key="index" value="2"/>
        <filament id="1" type="PLA" color="#ff0000" used_g="3"/>
        <filament id="3" type="PETG" color="#00FF00FF" used_g="1"/>
        </plate></config>"##;

    #[test]
    fn the_sample_project_names_its_plate_checksum_and_filament() {
        let f = std::fs::File::open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/samples/cube20_synthetic_bambu.gcode.3mf"
        ));
        let Ok(f) = f else {
            // The shared samples are beside the repository on the development machines and in CI.
            return;
        };
        let plate = read_plate(f).unwrap();
        assert_eq!(plate.gcode, "Metadata/plate_1.gcode");
        assert_eq!(plate.md5.len(), 32);
        assert_eq!(
            plate.filaments,
            vec![PlateFilament {
                id: 1,
                kind: "PLA".into(),
                color: Some("FFFFFF".into()),
                used_g: Some(3.47),
            }]
        );
    }

    #[test]
    fn plates_are_found_by_name_and_filaments_by_plate_index() {
        let plate = read_plate(project(&[
            ("Metadata/plate_2.gcode", "G28\n"),
            (
                "Metadata/plate_2.gcode.md5",
                "0123456789ABCDEF0123456789ABCDEF\n",
            ),
            ("Metadata/slice_info.config", INFO),
        ]))
        .unwrap();
        assert_eq!(plate.gcode, "Metadata/plate_2.gcode");
        assert_eq!(plate.md5, "0123456789abcdef0123456789abcdef");
        assert_eq!(plate.filaments.len(), 2);
        assert_eq!(plate.filaments[1].color.as_deref(), Some("00FF00"));
    }

    #[test]
    fn unusable_projects_say_why() {
        assert_eq!(
            read_plate(project(&[("3D/3dmodel.model", "")])),
            Err(ProjectError::NoPlate)
        );
        assert_eq!(
            read_plate(project(&[
                ("Metadata/plate_1.gcode", ""),
                ("Metadata/plate_2.gcode", "")
            ])),
            Err(ProjectError::SeveralPlates(2))
        );
        assert!(matches!(
            read_plate(Cursor::new(b"G28\n".to_vec())),
            Err(ProjectError::Archive(_))
        ));
        // A checksum that is not one is left out (the printer then skips its check).
        let plate = read_plate(project(&[
            ("Metadata/plate_1.gcode", ""),
            ("Metadata/plate_1.gcode.md5", "garbage"),
        ]))
        .unwrap();
        assert_eq!(plate.md5, "");
    }

    #[test]
    fn trays_are_chosen_by_material_then_nearest_colour() {
        let tray = |slot, kind: &str, color: &str| Tray {
            remain_percent: None,
            tag: None,
            slot,
            kind: kind.into(),
            color: rgb(color),
        };
        let trays = [
            tray(0, "PLA", "FFFFFF"),
            tray(1, "PLA", "EE1111"),
            tray(2, "PETG", "00FF00"),
            tray(EXTERNAL_SPOOL, "TPU", "000000"),
        ];
        let fil = |id, kind: &str, color: &str| PlateFilament {
            id,
            kind: kind.into(),
            color: rgb(color),
            used_g: None,
        };
        assert_eq!(
            map_trays(
                &[
                    fil(1, "pla", "FF0000"),
                    fil(2, "PETG", "0000FF"),
                    fil(3, "TPU", "")
                ],
                &trays
            ),
            Ok(vec![1, 2, EXTERNAL_SPOOL])
        );
        let err = map_trays(&[fil(1, "ABS", "#FFFFFF")], &trays).unwrap_err();
        assert!(
            err.0
                .contains("no loaded spool holds ABS for filament 1, #FFFFFF"),
            "{err}"
        );
        assert!(err.0.contains("PETG #00FF00 in AMS 1 tray 3"), "{err}");
        assert!(err.0.contains("TPU #000000 in external spool"), "{err}");
    }

    #[test]
    fn of_spools_alike_the_one_with_enough_left_feeds_the_plate() {
        let tray = |slot, color: &str, remain| Tray {
            remain_percent: remain,
            tag: None,
            slot,
            kind: "PLA".into(),
            color: rgb(color),
        };
        let black = |used_g| PlateFilament {
            id: 1,
            kind: "PLA".into(),
            color: rgb("000000"),
            used_g,
        };
        // Two black spools: 3% (30 g) and 60% left, a 120 g plate: the one with enough.
        let trays = [tray(0, "000000", Some(3)), tray(1, "000000", Some(60))];
        assert_eq!(map_trays(&[black(Some(120.0))], &trays), Ok(vec![1]));
        // Enough in both (with the margin): the emptier, so leftovers go into small plates.
        assert_eq!(map_trays(&[black(Some(10.0))], &trays), Ok(vec![0]));
        // 30 g left is not enough for 25 g: 27.5 g and the 10 g margin.
        assert_eq!(map_trays(&[black(Some(25.0))], &trays), Ok(vec![1]));
        // A spool the printer says nothing about beats one it says runs short, not one with
        // enough.
        let unknown = [tray(0, "000000", Some(3)), tray(1, "000000", None)];
        assert_eq!(map_trays(&[black(Some(120.0))], &unknown), Ok(vec![1]));
        let known = [tray(0, "000000", None), tray(1, "000000", Some(20))];
        assert_eq!(map_trays(&[black(Some(120.0))], &known), Ok(vec![1]));
        // Colour comes first: a nearly empty black spool over a full white one.
        let colours = [tray(0, "FFFFFF", Some(100)), tray(1, "000000", Some(3))];
        assert_eq!(map_trays(&[black(Some(120.0))], &colours), Ok(vec![1]));
        // No grams in the file: the fuller spool; both short: the fuller too.
        assert_eq!(map_trays(&[black(None)], &trays), Ok(vec![1]));
        assert_eq!(map_trays(&[black(Some(900.0))], &trays), Ok(vec![1]));
    }
}
