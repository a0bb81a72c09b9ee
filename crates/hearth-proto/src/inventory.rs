//! The material library and the spool inventory: what an organisation stocks, how much is left on
//! each spool, which spool is on which printer, and what each job used.
//!
//! Everything here is clear metadata the server may see (DESIGN.md: material type and colour,
//! filament grams): a material's name, brand, type, colour, density, diameter and price, a spool's
//! weights and storage place. Nothing describes a design. There is no free-text note field: notes
//! are sealed everywhere else, and a spool note would be the one place they were not.
//!
//! The rules both sides must agree on are pure functions here: [`check_material`] and
//! [`check_spool`] (what the server accepts), [`default_density`], [`length_m`] and
//! [`used_grams`] (what a job that ended has taken from its spool).

use crate::agent::JobState;
use crate::ids::{JobId, MaterialId, PrinterId, SpoolId};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A material of the organisation's library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Material {
    pub id: MaterialId,
    /// How members call it, e.g. `Prusament PETG Galaxy Black`; unique in the organisation.
    pub name: String,
    pub brand: Option<String>,
    /// The type jobs are matched by (`PLA`, `PETG`, `ABS`, ...), as slicers name it.
    pub material: String,
    /// A name (`blue`) or `#rrggbb`.
    pub color: Option<String>,
    /// g/cm³.
    pub density_g_cm3: f32,
    /// Filament diameter, mm.
    pub diameter_mm: f32,
    /// Price of one kilogram of filament, in the organisation's currency.
    pub price_per_kg: Option<f32>,
    pub created_at: String,
}

/// `POST /api/v1/orgs/{org}/materials` (operators).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewMaterial {
    /// 1 to 128 characters, unique in the organisation.
    pub name: String,
    #[serde(default)]
    pub brand: Option<String>,
    /// 1 to 128 characters (`PLA`, `PETG`...).
    pub material: String,
    #[serde(default)]
    pub color: Option<String>,
    /// Absent: the usual density of the type ([`default_density`]).
    #[serde(default)]
    pub density_g_cm3: Option<f32>,
    /// Absent: 1.75 mm.
    #[serde(default)]
    pub diameter_mm: Option<f32>,
    #[serde(default)]
    pub price_per_kg: Option<f32>,
}

/// `PATCH /api/v1/orgs/{org}/materials/{id}` (operators): the fields given replace the stored
/// ones; absent fields stay. `brand`, `color` and `price_per_kg` given as `null` are cleared.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaterialUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, with = "clearable", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable))]
    pub brand: Option<Option<String>>,
    #[serde(default)]
    pub material: Option<String>,
    #[serde(default, with = "clearable", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable))]
    pub color: Option<Option<String>>,
    #[serde(default)]
    pub density_g_cm3: Option<f32>,
    #[serde(default)]
    pub diameter_mm: Option<f32>,
    #[serde(default, with = "clearable", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f32>, nullable))]
    pub price_per_kg: Option<Option<f32>>,
}

impl MaterialUpdate {
    /// `m` with the given fields replaced (and the ones given as `null` cleared).
    pub fn apply(&self, m: &Material) -> Material {
        Material {
            id: m.id,
            name: self.name.clone().unwrap_or_else(|| m.name.clone()),
            brand: self.brand.clone().unwrap_or_else(|| m.brand.clone()),
            material: self.material.clone().unwrap_or_else(|| m.material.clone()),
            color: self.color.clone().unwrap_or_else(|| m.color.clone()),
            density_g_cm3: self.density_g_cm3.unwrap_or(m.density_g_cm3),
            diameter_mm: self.diameter_mm.unwrap_or(m.diameter_mm),
            price_per_kg: self.price_per_kg.unwrap_or(m.price_per_kg),
            created_at: m.created_at.clone(),
        }
    }
}

/// Serde of a PATCH field that can be cleared: absent keeps the stored value (`None`), `null`
/// clears it (`Some(None)`), a value replaces it (`Some(Some(v))`). Used with `default` and
/// `skip_serializing_if = "Option::is_none"`, so that a client's absent field stays absent.
pub(crate) mod clearable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }

    pub fn serialize<S, T>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize,
    {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }
}

/// A spool of the inventory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Spool {
    pub id: SpoolId,
    pub material: Material,
    /// Filament on it when new (net, without the empty spool), g.
    pub initial_grams: f32,
    /// Filament left, g: set or weighed by a member, less what every job printed from it used.
    pub remaining_grams: f32,
    /// About how much filament that is, m (from the material's density and diameter).
    pub remaining_m: f32,
    /// Weight of the empty spool, g, so that weighing a spool tells what is left.
    pub empty_spool_grams: Option<f32>,
    /// Below this much left, `spool.low` is notified once.
    pub low_grams: f32,
    /// Where it is kept when not on a printer (`dry box 2`).
    pub location: Option<String>,
    /// The printer it is loaded on.
    pub printer: Option<PrinterId>,
    /// The slot of that printer it is in (`A1`, `Ext`: an AMS tray or a tool's holder); absent when
    /// it is on the printer's one holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Its RFID tag's identity (a Bambu Lab spool's), when a printer added it to the inventory:
    /// wherever the spool is put in a slot, it is found again by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfid: Option<String>,
    /// Used up or given away: kept for the history, not offered any more.
    pub archived: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// `POST /api/v1/orgs/{org}/spools` (operators).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSpool {
    pub material: MaterialId,
    /// Net filament when new, g; absent: 1000.
    #[serde(default)]
    pub initial_grams: Option<f32>,
    /// Absent: all of `initial_grams` (a new spool).
    #[serde(default)]
    pub remaining_grams: Option<f32>,
    #[serde(default)]
    pub empty_spool_grams: Option<f32>,
    /// Absent: [`DEFAULT_LOW_GRAMS`].
    #[serde(default)]
    pub low_grams: Option<f32>,
    #[serde(default)]
    pub location: Option<String>,
}

/// `PATCH /api/v1/orgs/{org}/spools/{id}` (operators): the fields given replace the stored ones;
/// `empty_spool_grams` and `location` given as `null` are cleared. `weighed_grams` is the spool on a scale with its filament: what is left is that less
/// `empty_spool_grams` (stored, or given in the same request).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SpoolUpdate {
    #[serde(default)]
    pub remaining_grams: Option<f32>,
    #[serde(default)]
    pub weighed_grams: Option<f32>,
    #[serde(default, with = "clearable", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f32>, nullable))]
    pub empty_spool_grams: Option<Option<f32>>,
    #[serde(default)]
    pub low_grams: Option<f32>,
    #[serde(default, with = "clearable", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable))]
    pub location: Option<Option<String>>,
    /// `true` takes it off its printer and out of the offered spools.
    #[serde(default)]
    pub archived: Option<bool>,
}

/// A printer's loaded spool, as the printer list shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PrinterSpool {
    pub id: SpoolId,
    pub remaining_grams: f32,
}

/// An inventory spool in one of a printer's slots, as the printer list shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SlotSpool {
    /// As the printer names the slot: `A1`..`A4`, `B1`.. for AMS units, `Ext`.
    pub slot: String,
    pub id: SpoolId,
    /// Its material's name, material type and colour.
    pub name: String,
    pub material: String,
    pub color: Option<String>,
    pub remaining_grams: f32,
}

/// `PUT /api/v1/orgs/{org}/printers/{id}/slots/{slot}` (operators): put a spool of the inventory
/// in one of the printer's slots (an AMS tray, the external holder), taking it from wherever it
/// was and whatever spool was in that slot out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SlotLoadRequest {
    pub spool: SpoolId,
}

/// Longest slot name the server accepts.
pub const MAX_SLOT_CHARS: usize = 16;

/// Whether `s` is a slot name: 1 to [`MAX_SLOT_CHARS`] letters, digits, `-`, `_` or `.`.
pub fn slot_name_ok(s: &str) -> bool {
    (1..=MAX_SLOT_CHARS).contains(&s.chars().count())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What one job used of one filament: from the spool in the slot that fed it, else (a job of one
/// filament) from the spool loaded on its printer when it ended, if one was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SpoolUse {
    pub job_id: JobId,
    pub spool: Option<SpoolId>,
    pub printer: Option<PrinterId>,
    /// The printer slot that fed this filament, when the agent said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    pub material: Option<String>,
    pub color: Option<String>,
    /// g: the grams its submitter revealed, in proportion to how far it got unless it completed.
    pub grams: f32,
    /// How the job ended: `completed`, `cancelled` or `failed`.
    pub state: JobState,
    pub at: String,
}

/// Filament used per material over a period (`GET /api/v1/orgs/{org}/usage/materials`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MaterialUsage {
    pub material: Option<String>,
    pub color: Option<String>,
    pub grams: f64,
    /// Jobs that used some.
    pub jobs: u32,
    /// From the price of the spools' materials, where every use in this row had one.
    pub cost: Option<f64>,
}

/// `GET /api/v1/orgs/{org}/usage/members`: one member's jobs that ended in a period, what they
/// took from the inventory's spools, and what their senders revealed of the completed ones: what
/// a makerspace, a school or a print bureau bills its members by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberUsage {
    pub user_id: crate::ids::UserId,
    /// Their login (empty for an account deleted since).
    pub login: String,
    pub jobs: crate::api::JobCounts,
    /// Taken from the inventory's spools by their jobs that ended (a failed or cancelled job's
    /// share done included), g.
    pub spool_grams: f64,
    /// That filament's price, where every spool it came from had one.
    pub cost: Option<f64>,
    /// Filament their completed jobs revealed, g, and how many of them revealed it.
    pub revealed_grams: f64,
    pub revealed_grams_jobs: u32,
    /// Print time their completed jobs' senders revealed (the slicer's estimate), s.
    pub estimated_seconds: f64,
}

/// Filament on a new spool unless said otherwise, g.
pub const DEFAULT_SPOOL_GRAMS: f32 = 1000.0;
/// `spool.low` below this much unless a spool says otherwise, g.
pub const DEFAULT_LOW_GRAMS: f32 = 100.0;
/// Filament diameter unless a material says otherwise, mm.
pub const DEFAULT_DIAMETER_MM: f32 = 1.75;
/// Heaviest spool the server accepts, g (large industrial spools hold 10 kg).
pub const MAX_SPOOL_GRAMS: f32 = 50_000.0;

/// The usual density of a filament type, g/cm³ (manufacturers' data sheets; 1.24 for anything
/// unknown, PLA's, which most filaments are close to).
pub fn default_density(material: &str) -> f32 {
    let m = material.trim().to_ascii_uppercase();
    let base = m.split(['-', ' ', '+']).next().unwrap_or("");
    match base {
        "PETG" | "PET" | "PCTG" => 1.27,
        "ABS" => 1.04,
        "ASA" => 1.07,
        "TPU" | "TPE" | "FLEX" => 1.21,
        "PC" => 1.20,
        "PA" | "NYLON" | "PA6" | "PA12" => 1.14,
        "PVA" => 1.23,
        "HIPS" => 1.04,
        "PP" => 0.90,
        "PVB" => 1.08,
        _ => 1.24,
    }
}

/// Preheat targets for a filament type, °C (nozzle, bed): the first-layer temperatures of
/// PrusaSlicer's and Mainsail's usual presets; `None` for a type without a common preset.
pub fn preheat_for(material: &str) -> Option<(f32, f32)> {
    let m = material.trim().to_ascii_uppercase();
    let base = m.split(['-', ' ', '+']).next().unwrap_or("");
    Some(match base {
        "PLA" | "PVB" => (215.0, 60.0),
        "PETG" | "PET" | "PCTG" => (240.0, 80.0),
        "ABS" | "ASA" | "HIPS" => (255.0, 100.0),
        "TPU" | "TPE" | "FLEX" => (230.0, 50.0),
        "PC" => (275.0, 110.0),
        "PA" | "NYLON" | "PA6" | "PA12" => (270.0, 90.0),
        "PP" => (240.0, 90.0),
        "PVA" => (215.0, 60.0),
        _ => return None,
    })
}

/// Length of `grams` of filament of this density and diameter, m.
pub fn length_m(grams: f32, density_g_cm3: f32, diameter_mm: f32) -> f32 {
    let r_cm = diameter_mm / 20.0;
    let area_cm2 = std::f32::consts::PI * r_cm * r_cm;
    if !(density_g_cm3 > 0.0 && area_cm2 > 0.0) {
        return 0.0;
    }
    grams / (density_g_cm3 * area_cm2) / 100.0
}

/// What a job that ended in `state` used of the `revealed` grams its submitter stated, with
/// `progress` (0 to 1) the last its printer reported for it: all of it when it completed, the part
/// printed when it was cancelled or failed, nothing when it never printed (refused, or no progress
/// known) or when its submitter revealed no grams. `None` when nothing was used.
pub fn used_grams(revealed: Option<f32>, state: JobState, progress: Option<f32>) -> Option<f32> {
    let grams = revealed.filter(|g| g.is_finite() && *g > 0.0)?;
    let used = match state {
        JobState::Completed => grams,
        JobState::Cancelled | JobState::Failed => {
            grams * progress.filter(|p| p.is_finite())?.clamp(0.0, 1.0)
        }
        _ => return None,
    };
    (used > 0.0).then_some(used)
}

fn text_ok(t: &str) -> bool {
    crate::api::fact_text_ok(t)
}

fn grams_ok(g: f32) -> bool {
    g.is_finite() && (0.0..=MAX_SPOOL_GRAMS).contains(&g)
}

/// Why the server refuses a material as stored after a create or update; `Ok` when it accepts it.
pub fn check_material(m: &Material) -> Result<(), String> {
    if !text_ok(&m.name) || !text_ok(&m.material) {
        return Err("name and material are 1 to 128 characters without control characters".into());
    }
    if !m.brand.as_deref().is_none_or(text_ok) || !m.color.as_deref().is_none_or(text_ok) {
        return Err("brand and colour are 1 to 128 characters when given".into());
    }
    if !(m.density_g_cm3.is_finite() && (0.5..=3.0).contains(&m.density_g_cm3)) {
        return Err("density_g_cm3 is between 0.5 and 3 g/cm³".into());
    }
    if !(m.diameter_mm.is_finite() && (1.0..=3.5).contains(&m.diameter_mm)) {
        return Err("diameter_mm is between 1 and 3.5 mm (1.75, 2.85)".into());
    }
    if !m
        .price_per_kg
        .is_none_or(|p| p.is_finite() && (0.0..=1e6).contains(&p))
    {
        return Err("price_per_kg is a price, 0 or more".into());
    }
    Ok(())
}

/// Why the server refuses a spool's stored values; `Ok` when it accepts them.
pub fn check_spool(s: &Spool) -> Result<(), String> {
    let weights = [s.initial_grams, s.remaining_grams, s.low_grams];
    if !weights.into_iter().all(grams_ok) || !s.empty_spool_grams.is_none_or(grams_ok) {
        return Err(format!("weights are grams from 0 to {MAX_SPOOL_GRAMS}"));
    }
    if s.initial_grams <= 0.0 {
        return Err("initial_grams is more than 0".into());
    }
    if !s.location.as_deref().is_none_or(text_ok) {
        return Err("location is 1 to 128 characters when given".into());
    }
    Ok(())
}

/// What is left on a spool weighed at `weighed` grams with its filament, knowing the empty spool
/// weighs `empty`; an error when the scale says less than the empty spool.
pub fn weighed_remaining(weighed: f32, empty: Option<f32>) -> Result<f32, String> {
    let Some(empty) = empty else {
        return Err(
            "the empty spool's weight is unknown: give empty_spool_grams with the weighing".into(),
        );
    };
    if !(weighed.is_finite() && weighed >= empty) {
        return Err(format!(
            "{weighed} g is less than the empty spool ({empty} g): weigh it again with its filament"
        ));
    }
    Ok(weighed - empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_keeps_absent_fields_clears_null_ones_and_round_trips() {
        let m = Material {
            id: MaterialId::new(),
            name: "Galaxy".into(),
            brand: Some("Prusament".into()),
            material: "PETG".into(),
            color: Some("black".into()),
            density_g_cm3: 1.27,
            diameter_mm: 1.75,
            price_per_kg: Some(29.9),
            created_at: String::new(),
        };
        let u: MaterialUpdate =
            serde_json::from_str(r#"{"brand": null, "price_per_kg": 25}"#).unwrap();
        assert_eq!(u.brand, Some(None));
        assert_eq!(u.color, None);
        let after = u.apply(&m);
        assert_eq!(after.brand, None, "null clears");
        assert_eq!(after.color.as_deref(), Some("black"), "absent keeps");
        assert_eq!(after.price_per_kg, Some(25.0));
        // What a client sends is what the server reads: absent stays absent, null stays null.
        let sent = serde_json::to_value(&u).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"name": null, "brand": null, "material": null,
            "density_g_cm3": null, "diameter_mm": null, "price_per_kg": 25.0})
        );
        assert_eq!(serde_json::from_value::<MaterialUpdate>(sent).unwrap(), u);
        let s: SpoolUpdate = serde_json::from_str(r#"{"location": null}"#).unwrap();
        assert_eq!((s.location, s.empty_spool_grams), (Some(None), None));
    }

    #[test]
    fn a_job_uses_all_it_revealed_when_done_and_its_share_when_stopped() {
        use JobState::*;
        assert_eq!(used_grams(Some(40.0), Completed, None), Some(40.0));
        assert_eq!(used_grams(Some(40.0), Completed, Some(0.2)), Some(40.0));
        assert_eq!(used_grams(Some(40.0), Cancelled, Some(0.25)), Some(10.0));
        assert_eq!(used_grams(Some(40.0), Failed, Some(1.7)), Some(40.0));
        assert_eq!(used_grams(Some(40.0), Failed, None), None, "never printed");
        assert_eq!(used_grams(Some(40.0), Cancelled, Some(0.0)), None);
        assert_eq!(used_grams(Some(40.0), Refused, Some(0.5)), None);
        assert_eq!(used_grams(None, Completed, None), None, "nothing revealed");
        assert_eq!(used_grams(Some(f32::NAN), Completed, None), None);
    }

    #[test]
    fn a_kilogram_of_pla_is_about_330_metres() {
        let m = length_m(1000.0, default_density("PLA"), 1.75);
        assert!((m - 335.0).abs() < 2.0, "{m}");
        let petg = length_m(1000.0, default_density("petg "), 1.75);
        assert!(petg < m, "PETG is denser: {petg}");
        assert_eq!(default_density("PLA+"), 1.24);
        assert_eq!(default_density("ASA-CF"), 1.07);
        assert_eq!(length_m(10.0, 0.0, 1.75), 0.0);
    }

    #[test]
    fn weighing_needs_the_empty_spool_and_at_least_its_weight() {
        assert_eq!(weighed_remaining(1200.0, Some(250.0)), Ok(950.0));
        assert!(
            weighed_remaining(1200.0, None)
                .unwrap_err()
                .contains("empty_spool_grams")
        );
        assert!(
            weighed_remaining(200.0, Some(250.0))
                .unwrap_err()
                .contains("less than")
        );
    }

    fn material() -> Material {
        Material {
            id: MaterialId::new(),
            name: "Galaxy Black".into(),
            brand: Some("Prusament".into()),
            material: "PETG".into(),
            color: Some("#1a1a1a".into()),
            density_g_cm3: 1.27,
            diameter_mm: 1.75,
            price_per_kg: Some(29.99),
            created_at: String::new(),
        }
    }

    #[test]
    fn slot_names_are_the_printers_short_names() {
        for ok in ["A1", "D4", "Ext", "T0", "left-2", "AMS_HT.1"] {
            assert!(slot_name_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "A 1",
            "A/1",
            "../x",
            "Ä1",
            "A1\n",
            &"x".repeat(MAX_SLOT_CHARS + 1),
        ] {
            assert!(!slot_name_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn nonsense_materials_and_spools_are_refused() {
        let ok = material();
        assert_eq!(check_material(&ok), Ok(()));
        for bad in [
            Material {
                name: " ".into(),
                ..ok.clone()
            },
            Material {
                material: "x".repeat(129),
                ..ok.clone()
            },
            Material {
                density_g_cm3: f32::NAN,
                ..ok.clone()
            },
            Material {
                diameter_mm: 0.4,
                ..ok.clone()
            },
            Material {
                price_per_kg: Some(-1.0),
                ..ok.clone()
            },
            Material {
                color: Some("red\n".into()),
                ..ok.clone()
            },
        ] {
            assert!(check_material(&bad).is_err(), "{bad:?}");
        }
        let spool = Spool {
            id: SpoolId::new(),
            material: ok,
            initial_grams: 1000.0,
            remaining_grams: 1000.0,
            remaining_m: 0.0,
            empty_spool_grams: Some(250.0),
            low_grams: 100.0,
            location: None,
            printer: None,
            slot: None,
            rfid: None,
            archived: false,
            created_at: String::new(),
            last_used_at: None,
        };
        assert_eq!(check_spool(&spool), Ok(()));
        for bad in [
            Spool {
                initial_grams: 0.0,
                ..spool.clone()
            },
            Spool {
                remaining_grams: -1.0,
                ..spool.clone()
            },
            Spool {
                remaining_grams: f32::INFINITY,
                ..spool.clone()
            },
            Spool {
                empty_spool_grams: Some(1e9),
                ..spool.clone()
            },
            Spool {
                location: Some(String::new()),
                ..spool.clone()
            },
        ] {
            assert!(check_spool(&bad).is_err(), "{bad:?}");
        }
    }
}
