//! Bambu Studio / OrcaSlicer plate projects (`.gcode.3mf`): a ZIP (OPC) package holding the G-code
//! of each sliced plate (`Metadata/plate_N.gcode`), the slicer's per-plate summary
//! (`Metadata/slice_info.config`, XML) and plate pictures (`Metadata/plate_N.png`).
//!
//! The plate G-code is streamed out of the archive through the same [`Processor`] as plain G-code;
//! the summary fills in what the G-code does not state.

use std::io::{Read, Seek};

use quick_xml::events::Event;

use crate::Error;
use crate::gcode::{self, Processor};
use crate::meta::Key;
use crate::report::{ImageFormat, Slicer};

/// Largest `slice_info.config` read (it is a few KiB in practice).
const MAX_CONFIG: u64 = 4 << 20;
/// Largest plate picture read.
const MAX_PICTURE: u64 = 8 << 20;
/// In metadata-only mode, how much of the plate G-code is read (its header and config block).
const HEAD_BYTES: u64 = 512 << 10;

#[derive(Debug, Default)]
struct Plate {
    index: u32,
    meta: Vec<(String, String)>,
    objects: Vec<String>,
    /// (type, colour, used_m, used_g)
    filaments: Vec<[Option<String>; 4]>,
}

#[derive(Debug, Default)]
struct SliceInfo {
    client_version: Option<String>,
    plates: Vec<Plate>,
}

fn parse_slice_info(xml: &str) -> Result<SliceInfo, quick_xml::Error> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut info = SliceInfo::default();
    loop {
        let ev = reader.read_event()?;
        let e = match &ev {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        let attrs: Vec<(String, String)> = e
            .attributes()
            .filter_map(Result::ok)
            .map(|a| {
                let k = a.key.as_ref().to_owned();
                let v = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_or_else(|_| a.value.clone().into_owned(), |v| v.into_owned());
                (k, v)
            })
            .collect();
        let get = |k: &str| attrs.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
        match e.name().as_ref() {
            "plate" => info.plates.push(Plate::default()),
            "header_item" if get("key").as_deref() == Some("X-BBL-Client-Version") => {
                info.client_version = get("value");
            }
            "metadata" => {
                if let (Some(p), Some(k), Some(v)) =
                    (info.plates.last_mut(), get("key"), get("value"))
                {
                    if k == "index" {
                        p.index = v.trim().parse().unwrap_or(0);
                    }
                    p.meta.push((k, v));
                }
            }
            "object" => {
                if let (Some(p), Some(n)) = (info.plates.last_mut(), get("name")) {
                    p.objects.push(n);
                }
            }
            "filament" => {
                if let Some(p) = info.plates.last_mut() {
                    p.filaments
                        .push([get("type"), get("color"), get("used_m"), get("used_g")]);
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

fn plate_number(name: &str) -> Option<u32> {
    name.strip_prefix("Metadata/plate_")?
        .strip_suffix(".gcode")?
        .parse()
        .ok()
}

/// The numbers of the plates a project holds sliced (`Metadata/plate_N.gcode`), in order.
pub fn sliced_plates<R: Read + Seek>(r: R) -> Result<Vec<u32>, Error> {
    Ok(plate_numbers(&zip::ZipArchive::new(r).map_err(Error::Zip)?))
}

fn plate_numbers<R: Read + Seek>(zip: &zip::ZipArchive<R>) -> Vec<u32> {
    let mut numbers: Vec<u32> = zip
        .file_names()
        .filter_map(Result::ok)
        .filter_map(|n| plate_number(&n))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

/// The plate a part of the package belongs to, when it is one of a plate's own: its G-code and
/// checksum, its pictures (`plate_N.png`, `plate_N_small.png`, `plate_no_light_N.png`, `top_N.png`,
/// `pick_N.png`) and its layout (`plate_N.json`), as Bambu Studio and OrcaSlicer name them.
fn plate_part(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("Metadata/")?;
    let rest = ["plate_no_light_", "plate_", "top_", "pick_"]
        .iter()
        .find_map(|p| rest.strip_prefix(p))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (n, kind) = rest.split_at(digits);
    [".gcode", ".gcode.md5", ".png", "_small.png", ".json"]
        .contains(&kind)
        .then(|| n.parse().ok())
        .flatten()
}

/// Writes the project `r` as the project of its sliced plate `plate` alone, as Bambu Studio's
/// "Export plate sliced file" does: the other plates' own parts (G-code, checksum, pictures,
/// layout) are left out, every other part is copied as it is stored (compressed, with its CRC),
/// so the plate keeps its number and its G-code its bytes.
pub fn one_plate<R: Read + Seek, W: std::io::Write + Seek>(
    r: R,
    plate: u32,
    w: W,
) -> Result<W, Error> {
    let mut zip = zip::ZipArchive::new(r).map_err(Error::Zip)?;
    if zip
        .index_for_name(&format!("Metadata/plate_{plate}.gcode"))
        .is_none()
    {
        return Err(Error::NoSuchPlate(plate));
    }
    let mut out = zip::ZipWriter::new(w);
    for i in 0..zip.len() {
        let part = zip.by_index_raw(i).map_err(Error::Zip)?;
        let name = part.name().ok();
        if name
            .and_then(|n| plate_part(&n))
            .is_some_and(|n| n != plate)
        {
            continue;
        }
        out.raw_copy_file(part).map_err(Error::Zip)?;
    }
    out.finish().map_err(Error::Zip)
}

/// Reads the chosen plate of a project into `p`.
pub(crate) fn read<R: Read + Seek>(
    r: R,
    p: &mut Processor,
    plate: Option<u32>,
    full: bool,
    thumbnails: bool,
) -> Result<(), Error> {
    let mut zip = zip::ZipArchive::new(r).map_err(Error::Zip)?;
    let info = match zip.by_name("Metadata/slice_info.config") {
        Ok(f) => {
            let mut s = String::new();
            f.take(MAX_CONFIG)
                .read_to_string(&mut s)
                .map_err(Error::Io)?;
            match parse_slice_info(&s) {
                Ok(i) => i,
                Err(e) => {
                    p.diags.warn(
                        None,
                        format!("Metadata/slice_info.config is not readable XML: {e}"),
                    );
                    SliceInfo::default()
                }
            }
        }
        Err(_) => SliceInfo::default(),
    };
    let numbers = plate_numbers(&zip);
    let n = match plate {
        Some(n) if numbers.contains(&n) => n,
        Some(n) => return Err(Error::NoSuchPlate(n)),
        None => *numbers.first().ok_or(Error::NoPlateGcode)?,
    };
    if numbers.len() > 1 {
        p.diags.info(
            None,
            format!(
                "project has {} sliced plates; analysed plate {n}",
                numbers.len()
            ),
        );
    }

    {
        let entry = zip
            .by_name(&format!("Metadata/plate_{n}.gcode"))
            .map_err(Error::Zip)?;
        if full {
            gcode::stream(entry, p)?;
        } else {
            gcode::stream(entry.take(HEAD_BYTES), p)?;
        }
    }

    if let Some(v) = info.client_version.clone() {
        p.meta.set_slicer_default(Slicer {
            name: "BambuStudio".into(),
            version: Some(v),
        });
    }
    if let Some(pl) = info.plates.iter().find(|pl| pl.index == n) {
        apply_plate(p, pl);
    }

    if thumbnails {
        for name in [
            format!("Metadata/plate_{n}.png"),
            format!("Metadata/plate_{n}_small.png"),
            format!("Metadata/plate_no_light_{n}.png"),
        ] {
            let Ok(f) = zip.by_name(&name) else { continue };
            let mut data = Vec::new();
            f.take(MAX_PICTURE)
                .read_to_end(&mut data)
                .map_err(Error::Io)?;
            p.meta
                .push_thumbnail(ImageFormat::Png, 0, 0, data, None, &mut p.diags);
        }
    }
    Ok(())
}

fn apply_plate(p: &mut Processor, pl: &Plate) {
    for (k, v) in &pl.meta {
        let key = match k.as_str() {
            "prediction" => Key::Time,
            "weight" => Key::TotalG,
            "printer_model_id" => Key::PrinterModel,
            "nozzle_diameters" => Key::Nozzle,
            _ => continue,
        };
        p.meta.set_default(key, v.clone());
    }
    for o in &pl.objects {
        p.meta.object(o);
    }
    if !pl.filaments.is_empty() {
        let join = |i: usize| {
            pl.filaments
                .iter()
                .map(|f| f[i].clone().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(";")
        };
        p.meta.set_default(Key::FilamentType, join(0));
        p.meta.set_default(Key::FilamentColour, join(1));
        let mm: Vec<String> = pl
            .filaments
            .iter()
            .map(|f| {
                f[2].as_deref()
                    .and_then(crate::num::parse_f64)
                    .map(|m| (m * 1000.0).to_string())
                    .unwrap_or_default()
            })
            .collect();
        p.meta.set_default(Key::FilamentMm, mm.join(";"));
        p.meta.set_default(Key::FilamentG, join(3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plates_own_parts_are_told_from_the_projects() {
        for (name, plate) in [
            ("Metadata/plate_2.gcode", Some(2)),
            ("Metadata/plate_2.gcode.md5", Some(2)),
            ("Metadata/plate_12.png", Some(12)),
            ("Metadata/plate_3_small.png", Some(3)),
            ("Metadata/plate_no_light_3.png", Some(3)),
            ("Metadata/top_1.png", Some(1)),
            ("Metadata/pick_1.png", Some(1)),
            ("Metadata/plate_1.json", Some(1)),
            ("Metadata/slice_info.config", None),
            ("Metadata/model_settings.config", None),
            ("Metadata/plate_.png", None),
            ("Metadata/plate_1.gcode.bak", None),
            ("3D/3dmodel.model", None),
            ("plate_1.gcode", None),
        ] {
            assert_eq!(plate_part(name), plate, "{name}");
        }
    }

    /// A project of two sliced plates, each part stored compressed.
    fn two_plates() -> Vec<u8> {
        use std::io::Write as _;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for (name, body) in [
            ("3D/3dmodel.model", "<model/>"),
            ("Metadata/slice_info.config", "<config/>"),
            ("Metadata/plate_1.gcode", "G1 X1 E1\n"),
            ("Metadata/plate_1.gcode.md5", "ONE"),
            ("Metadata/plate_1.png", "one"),
            ("Metadata/plate_2.gcode", "G1 X2 E2\nG1 X3 E3\n"),
            ("Metadata/plate_2.gcode.md5", "TWO"),
            ("Metadata/plate_no_light_2.png", "two"),
        ] {
            w.start_file(name, opts).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn one_plate_of_a_project_keeps_its_parts_and_the_projects_and_nothing_of_the_others() {
        let project = two_plates();
        assert_eq!(
            sliced_plates(std::io::Cursor::new(&project)).unwrap(),
            [1, 2]
        );
        let out = one_plate(
            std::io::Cursor::new(&project),
            2,
            std::io::Cursor::new(Vec::new()),
        )
        .unwrap()
        .into_inner();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&out)).unwrap();
        let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
        assert_eq!(
            names,
            [
                "3D/3dmodel.model",
                "Metadata/slice_info.config",
                "Metadata/plate_2.gcode",
                "Metadata/plate_2.gcode.md5",
                "Metadata/plate_no_light_2.png",
            ]
        );
        let mut gcode = String::new();
        zip.by_name("Metadata/plate_2.gcode")
            .unwrap()
            .read_to_string(&mut gcode)
            .unwrap();
        assert_eq!(gcode, "G1 X2 E2\nG1 X3 E3\n");
        assert_eq!(sliced_plates(std::io::Cursor::new(&out)).unwrap(), [2]);

        let none = one_plate(
            std::io::Cursor::new(&project),
            3,
            std::io::Cursor::new(Vec::new()),
        );
        assert!(matches!(none, Err(Error::NoSuchPlate(3))), "{none:?}");
        let not_zip = sliced_plates(std::io::Cursor::new(b"G1 X1\n"));
        assert!(matches!(not_zip, Err(Error::Zip(_))), "{not_zip:?}");
    }
}
