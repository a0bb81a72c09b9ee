//! Whether a job fits a printer, from the scheduling facts its submitter revealed (the model,
//! material and nozzle the file was sliced for) and the printer's configuration. The member's CLI
//! warns with it before sending a job to a printer; the server dispatches a pool job only to a
//! printer of the pool that it fits, so both sides must judge alike.
//!
//! A fact that either side leaves unstated fits: the printer's configuration may be incomplete,
//! and a job must not wait for ever on a guess.

use crate::agent::{MaterialSlot, PrinterInfo};
use crate::api::{Printer, SchedulingFacts};
use crate::inventory::SlotSpool;

/// What of a printer's configuration a fit is judged on.
#[derive(Clone, Copy, Debug)]
pub struct PrinterSetup<'a> {
    pub model: &'a str,
    pub nozzle_mm: Option<f32>,
    pub material: Option<&'a str>,
    /// Filament left on the inventory spool loaded on it, g (unknown without one).
    pub filament_left_grams: Option<f32>,
    /// The filament slots the printer reports (an AMS): a material in any of them is loaded too.
    pub slots: &'a [MaterialSlot],
    /// The inventory's spools in its slots, with what is left on each.
    pub slot_spools: &'a [SlotSpool],
}

impl<'a> From<&'a PrinterInfo> for PrinterSetup<'a> {
    fn from(p: &'a PrinterInfo) -> Self {
        Self {
            model: &p.model,
            nozzle_mm: p.nozzle_mm,
            material: p.material.as_deref(),
            filament_left_grams: None,
            slots: &[],
            slot_spools: &[],
        }
    }
}

impl<'a> From<&'a Printer> for PrinterSetup<'a> {
    fn from(p: &'a Printer) -> Self {
        Self {
            model: &p.model,
            nozzle_mm: p.nozzle_mm,
            material: p.material.as_deref(),
            filament_left_grams: p.spool.as_ref().map(|s| s.remaining_grams),
            slots: &p.telemetry.slots,
            slot_spools: &p.slot_spools,
        }
    }
}

/// One way a job does not fit a printer.
#[derive(Clone, Debug, PartialEq)]
pub enum Misfit<'a> {
    /// Sliced for another printer model.
    Model { sliced: &'a str, printer: &'a str },
    /// Sliced for a material the printer does not have loaded.
    Material { sliced: &'a str, loaded: &'a str },
    /// Sliced for another nozzle diameter.
    Nozzle { sliced: f32, fitted: f32 },
    /// Needs more filament than is left on the spool loaded.
    Filament { needed: f32, left: f32 },
}

/// Nozzle diameters closer than this are the same nozzle (slicers print 0.4 as 0.40 or 0.4000001).
const NOZZLE_TOLERANCE_MM: f32 = 0.01;

/// Every way the job described by `facts` does not fit `printer`; empty when it fits.
pub fn misfits<'a>(facts: &'a SchedulingFacts, printer: PrinterSetup<'a>) -> Vec<Misfit<'a>> {
    let mut out = Vec::new();
    if let Some(sliced) = facts.printer_model.as_deref()
        && models_differ(sliced, printer.model)
    {
        out.push(Misfit::Model {
            sliced,
            printer: printer.model,
        });
    }
    // What is loaded: the configured (or member-stated) material and every slot's.
    let loaded: Vec<&str> = printer
        .material
        .into_iter()
        .chain(printer.slots.iter().map(|s| s.material.as_str()))
        .collect();
    let is_loaded = |m: &str| {
        loaded
            .iter()
            .any(|l| m.trim().eq_ignore_ascii_case(l.trim()))
    };
    let per_filament = facts.filaments.iter().filter_map(|f| f.material.as_deref());
    if let (false, Some(first)) = (
        printer.slots.is_empty() || facts.filaments.is_empty(),
        loaded.first(),
    ) {
        // A printer that reports its slots (an AMS) feeds each filament from a slot of its
        // material, or refuses to start: every filament's material must be in one.
        for sliced in per_filament {
            if !is_loaded(sliced) {
                out.push(Misfit::Material {
                    sliced,
                    loaded: first,
                });
            }
        }
    } else if let (Some(sliced), Some(first)) = (facts.material.as_deref(), loaded.first()) {
        // A multi-material file names one material per tool ("PLA;PETG"): one of them loaded
        // is taken as a fit, since which tool the printer's configuration describes is unknown.
        let fits = sliced.split([';', ',']).any(is_loaded);
        if !fits {
            out.push(Misfit::Material {
                sliced,
                loaded: first,
            });
        }
    }
    if let (Some(sliced), Some(fitted)) = (facts.nozzle_mm, printer.nozzle_mm)
        && (sliced - fitted).abs() > NOZZLE_TOLERANCE_MM
    {
        out.push(Misfit::Nozzle { sliced, fitted });
    }
    if let (Some(needed), Some(left)) = (facts.filament_grams, printer.filament_left_grams)
        && needed > left
    {
        out.push(Misfit::Filament { needed, left });
    }
    // Spools of the inventory in the printer's slots: a filament of a material some of them hold
    // needs one of those with enough left (the printer picks the tray when the job starts). A
    // material none of them holds may be on a spool outside the inventory: unknown, so it fits.
    for (material, needed) in filament_needs(facts) {
        let most = printer
            .slot_spools
            .iter()
            .filter(|s| s.material.trim().eq_ignore_ascii_case(material.trim()))
            .map(|s| s.remaining_grams)
            .reduce(f32::max);
        if let Some(left) = most
            && needed > left
        {
            out.push(Misfit::Filament { needed, left });
        }
    }
    out
}

/// What each filament of the job needs, by material: the per-filament facts, else the job's one
/// material and its grams.
fn filament_needs(facts: &SchedulingFacts) -> Vec<(&str, f32)> {
    if !facts.filaments.is_empty() {
        return facts
            .filaments
            .iter()
            .filter_map(|f| Some((f.material.as_deref()?, f.grams)))
            .collect();
    }
    match (facts.material.as_deref(), facts.filament_grams) {
        (Some(m), Some(g)) if !m.contains([';', ',']) => vec![(m, g)],
        _ => Vec::new(),
    }
}

/// Words of a printer model's name that do not tell models apart: makers' names and fillers.
const MODEL_FILLER: &[&str] = &[
    "original",
    "prusa",
    "research",
    "i3",
    "bambu",
    "lab",
    "bambulab",
    "creality",
    "voron",
    "design",
    "anycubic",
    "elegoo",
    "qidi",
    "sovol",
    "artillery",
    "flashforge",
    "ultimaker",
    "printer",
    "demo",
    "simulated",
    "generic",
    "custom",
    "3d",
    "the",
];

/// Whether a slicer's printer model and a printer's configured model name different machines.
/// Slicers and configurations name one machine differently ("MK3S" and "Original Prusa i3 MK3S+";
/// "Voron 2.4 300" and "Voron 2.4"), so both are reduced to the words that tell models apart
/// (lower case, split at anything not a letter or digit, makers' names dropped) and they differ
/// only when neither word set holds the other. A name with nothing left ("Demo printer") is not
/// compared, nor is a Bambu machine code ("C12") against a Bambu printer's model name: those
/// codes are mapped inconsistently outside Bambu Studio.
pub fn models_differ(sliced: &str, printer: &str) -> bool {
    fn words(name: &str) -> Vec<String> {
        name.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty() && !MODEL_FILLER.contains(w))
            .map(str::to_owned)
            .collect()
    }
    if printer.to_lowercase().contains("bambu") && is_bambu_code(sliced.trim()) {
        return false;
    }
    let (a, b) = (words(sliced), words(printer));
    let within = |x: &[String], y: &[String]| x.iter().all(|w| y.contains(w));
    !(a.is_empty() || b.is_empty() || within(&a, &b) || within(&b, &a))
}

/// Whether `s` has the shape of a Bambu Studio machine code (`model_id`): `BL-P001`, or a letter,
/// a digit and up to three more capitals or digits (`C12`, `N2S`, `O1C2`). Prusa's model names
/// (`MK3S`, `MINI`, `XL`) do not have it.
fn is_bambu_code(s: &str) -> bool {
    let b = s.as_bytes();
    if let Some(n) = s.strip_prefix("BL-P") {
        return n.len() == 3 && n.bytes().all(|c| c.is_ascii_digit());
    }
    (2..=5).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_models_are_compared_by_the_words_that_tell_them_apart() {
        // (the file's model, the printer's, whether they differ)
        let cases = [
            ("MK4", "Prusa MK4", false),
            ("MK3S", "Original Prusa i3 MK3S+", false),
            ("MK3S", "Prusa MK4", true),
            ("MK4S", "Prusa MK4", true),
            ("MINI", "Original Prusa MINI+", false),
            ("Voron 2.4 300", "Voron 2.4", false),
            ("Voron 2.4 350", "Voron 0.1", true),
            ("Creality Ender-3 V2", "Creality Ender-3 V3", true),
            ("Bambu Lab A1", "Bambu Lab A1", false),
            ("Bambu Lab A1", "Bambu Lab X1 Carbon", true),
            ("Bambu Lab A1", "Prusa MK4", true),
            // A Bambu machine code, which only Bambu Studio maps reliably: not compared.
            ("N2S", "Bambu Lab A1", false),
            ("C12", "Bambu Lab X1 Carbon", false),
            ("BL-P001", "Bambu Lab X1 Carbon", false),
            // A Prusa model is no Bambu code: a Prusa file for a Bambu printer differs.
            ("MK3S", "Bambu Lab X1 Carbon", true),
            ("XL", "Bambu Lab A1 mini", true),
            // Nothing left to compare.
            ("MK4", "Demo printer", false),
            ("", "Prusa MK4", false),
        ];
        for (file, printer, differ) in cases {
            assert_eq!(
                models_differ(file, printer),
                differ,
                "{file:?} vs {printer:?}"
            );
        }
    }

    #[test]
    fn a_job_fits_unless_a_stated_fact_differs() {
        let mk4 = PrinterSetup {
            model: "Prusa MK4",
            nozzle_mm: Some(0.4),
            material: Some("PLA"),
            filament_left_grams: None,
            slots: &[],
            slot_spools: &[],
        };
        let facts =
            |model: Option<&str>, material: Option<&str>, nozzle: Option<f32>| SchedulingFacts {
                printer_model: model.map(Into::into),
                material: material.map(Into::into),
                nozzle_mm: nozzle,
                ..SchedulingFacts::default()
            };
        let nothing = facts(None, None, None);
        assert_eq!(misfits(&nothing, mk4), []);
        let same = facts(Some("MK4"), Some("pla"), Some(0.400_000_1));
        assert_eq!(misfits(&same, mk4), []);
        let two_tools = facts(None, Some("PETG;PLA"), None);
        assert_eq!(misfits(&two_tools, mk4), []);
        let other = facts(Some("MK3S"), Some("PETG"), Some(0.6));
        assert_eq!(
            misfits(&other, mk4),
            [
                Misfit::Model {
                    sliced: "MK3S",
                    printer: "Prusa MK4"
                },
                Misfit::Material {
                    sliced: "PETG",
                    loaded: "PLA"
                },
                Misfit::Nozzle {
                    sliced: 0.6,
                    fitted: 0.4
                },
            ]
        );
        // The printer's configuration leaves material and nozzle unstated: only the model counts.
        let bare = PrinterSetup {
            model: "Prusa MK4",
            nozzle_mm: None,
            material: None,
            filament_left_grams: None,
            slots: &[],
            slot_spools: &[],
        };
        assert_eq!(misfits(&other, bare).len(), 1);
    }

    #[test]
    fn a_material_in_any_ams_slot_is_loaded() {
        let slot = |name: &str, material: &str| MaterialSlot {
            name: name.into(),
            material: material.into(),
            color: None,
            remain_percent: None,
            tag: None,
        };
        let ams = [slot("A1", "PLA"), slot("A2", "PETG"), slot("Ext", "TPU")];
        let p1s = PrinterSetup {
            model: "Bambu Lab P1S",
            nozzle_mm: Some(0.4),
            material: None,
            filament_left_grams: None,
            slots: &ams,
            slot_spools: &[],
        };
        let wants = |m: &str| SchedulingFacts {
            material: Some(m.into()),
            ..SchedulingFacts::default()
        };
        assert_eq!(misfits(&wants("petg"), p1s), []);
        assert_eq!(misfits(&wants("TPU"), p1s), []);
        let abs = wants("ABS");
        assert_eq!(
            misfits(&abs, p1s),
            [Misfit::Material {
                sliced: "ABS",
                loaded: "PLA"
            }]
        );
        // The configured material still counts beside the slots.
        let configured = PrinterSetup {
            material: Some("ABS"),
            ..p1s
        };
        assert_eq!(misfits(&abs, configured), []);
    }

    #[test]
    fn a_job_needing_more_filament_than_the_loaded_spool_has_left_does_not_fit() {
        let with_spool = |left| PrinterSetup {
            model: "Prusa MK4",
            nozzle_mm: None,
            material: Some("PLA"),
            filament_left_grams: left,
            slots: &[],
            slot_spools: &[],
        };
        let needs = |g: Option<f32>| SchedulingFacts {
            filament_grams: g,
            ..SchedulingFacts::default()
        };
        assert_eq!(
            misfits(&needs(Some(120.0)), with_spool(Some(80.5))),
            [Misfit::Filament {
                needed: 120.0,
                left: 80.5
            }]
        );
        assert_eq!(misfits(&needs(Some(80.5)), with_spool(Some(80.5))), []);
        // No spool of the inventory on it, or grams not revealed: unknown, so it fits.
        assert_eq!(misfits(&needs(Some(120.0)), with_spool(None)), []);
        assert_eq!(misfits(&needs(None), with_spool(Some(1.0))), []);
    }
}

#[cfg(test)]
mod slot_tests {
    use super::*;
    use crate::api::FilamentFact;

    /// An AMS with two PLA spools of the inventory (300 g and 90 g left) and one of PETG (40 g).
    #[test]
    fn each_filament_needs_a_spool_of_its_material_in_a_slot_with_enough_left() {
        let spool = |slot: &str, material: &str, left: f32| SlotSpool {
            slot: slot.into(),
            id: crate::ids::SpoolId::new(),
            name: format!("{material} {slot}"),
            material: material.into(),
            color: None,
            remaining_grams: left,
        };
        let spools = [
            spool("A1", "PLA", 300.0),
            spool("A2", "pla", 90.0),
            spool("A3", "PETG", 40.0),
        ];
        let ams = PrinterSetup {
            model: "X1C",
            nozzle_mm: None,
            material: None,
            filament_left_grams: None,
            slots: &[],
            slot_spools: &spools,
        };
        let job = |filaments: &[(&str, f32)]| SchedulingFacts {
            filaments: filaments
                .iter()
                .map(|(m, g)| FilamentFact {
                    material: Some((*m).into()),
                    color: None,
                    grams: *g,
                })
                .collect(),
            ..SchedulingFacts::default()
        };
        // The fullest PLA spool is enough; the PETG one is not.
        assert_eq!(misfits(&job(&[("PLA", 250.0)]), ams), []);
        assert_eq!(
            misfits(&job(&[("PLA", 250.0), ("PETG", 41.0)]), ams),
            [Misfit::Filament {
                needed: 41.0,
                left: 40.0
            }]
        );
        assert_eq!(
            misfits(&job(&[("PLA", 301.0)]), ams),
            [Misfit::Filament {
                needed: 301.0,
                left: 300.0
            }]
        );
        // A material no spool of the inventory in a slot holds: unknown, so it fits.
        assert_eq!(misfits(&job(&[("ASA", 900.0)]), ams), []);
        // A job of one material states it without per-filament facts.
        let single = SchedulingFacts {
            material: Some("PETG".into()),
            filament_grams: Some(50.0),
            ..SchedulingFacts::default()
        };
        assert_eq!(misfits(&single, ams).len(), 1);
    }

    /// A printer reporting its AMS trays starts a job only when every filament's material is in
    /// one; a printer stating one material takes a multi-material job if it has one of them.
    #[test]
    fn every_filament_needs_its_material_in_a_reported_slot() {
        let slot = |name: &str, material: &str| MaterialSlot {
            name: name.into(),
            material: material.into(),
            color: None,
            remain_percent: None,
            tag: None,
        };
        let trays = [slot("A1", "PLA"), slot("A2", "PETG")];
        let with = |slots| PrinterSetup {
            model: "X1C",
            nozzle_mm: None,
            material: Some("PLA"),
            filament_left_grams: None,
            slots,
            slot_spools: &[],
        };
        let job = |materials: &[&str]| SchedulingFacts {
            material: materials.first().map(|m| (*m).into()),
            filaments: materials
                .iter()
                .map(|m| FilamentFact {
                    material: Some((*m).into()),
                    color: None,
                    grams: 1.0,
                })
                .collect(),
            ..SchedulingFacts::default()
        };
        assert_eq!(misfits(&job(&["PLA", "petg"]), with(&trays)), []);
        assert_eq!(
            misfits(&job(&["PLA", "ASA", "PETG"]), with(&trays)),
            [Misfit::Material {
                sliced: "ASA",
                loaded: "PLA"
            }]
        );
        // No slots reported: one of its materials loaded is a fit, as before.
        assert_eq!(misfits(&job(&["PLA", "ASA"]), with(&[])), []);
    }
}
