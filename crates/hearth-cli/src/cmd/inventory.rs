//! `hearth materials ...` and `hearth spools ...`: the organisation's material library and spool
//! inventory. `hearth printers load PRINTER --spool SPOOL` puts a spool on a printer; the server
//! then takes what each job used from it.

use anyhow::{Context, bail};
use hearth_proto::ids::OrgId;
use hearth_proto::inventory::{
    Material, MaterialUpdate, NewMaterial, NewSpool, Spool, SpoolUpdate,
};

use crate::cmd::fleet::{Table, print_json};
use crate::ctx::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum MaterialsCmd {
    /// The library (also what `hearth materials` alone shows).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a material: a brand's filament type in one colour.
    Add {
        /// How members call it, e.g. "Prusament PETG Galaxy Black"; unique.
        name: String,
        #[command(flatten)]
        fields: MaterialFields,
        #[arg(long)]
        json: bool,
    },
    /// Change a material (its spools follow).
    Edit {
        /// Name or id. (Not called `material`: `--material`, the type, is one of the fields.)
        #[arg(value_name = "MATERIAL")]
        which: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: MaterialFields,
        /// Forget a field (repeat for several).
        #[arg(long, value_enum)]
        clear: Vec<MaterialClear>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a material that no spool is of.
    Remove {
        /// Name or id.
        material: String,
    },
    /// Filament used per material and colour, with its cost where the material has a price.
    Usage {
        /// Over the last N days.
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct MaterialFields {
    /// The type jobs are matched by: PLA, PETG, ABS, ASA, TPU... (required when adding).
    #[arg(long)]
    pub material: Option<String>,
    #[arg(long)]
    pub brand: Option<String>,
    /// A name or #rrggbb.
    #[arg(long)]
    pub color: Option<String>,
    /// g/cm³ (default: the usual density of the type).
    #[arg(long)]
    pub density: Option<f32>,
    /// mm (default 1.75).
    #[arg(long)]
    pub diameter: Option<f32>,
    /// Price of a kilogram, in your currency.
    #[arg(long)]
    pub price_per_kg: Option<f32>,
}

/// What `hearth materials edit --clear` forgets.
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum MaterialClear {
    Brand,
    Color,
    PricePerKg,
}

/// What `hearth spools set --clear` forgets.
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum SpoolClear {
    EmptySpool,
    Location,
}

/// The PATCH value of a clearable field: a new value, `null` when `clear`, else absent.
fn clearable<T: Clone>(value: &Option<T>, clear: bool) -> anyhow::Result<Option<Option<T>>> {
    match (value, clear) {
        (Some(_), true) => bail!("a field cannot be both given and cleared"),
        (_, true) => Ok(Some(None)),
        (v, false) => Ok(v.clone().map(Some)),
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum SpoolsCmd {
    /// The spools, what is left on each and where it is (also `hearth spools` alone).
    List {
        /// Also archived spools.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Add a spool of a material of the library.
    Add {
        /// The material, by name or id.
        material: String,
        /// Net filament on it when new, g.
        #[arg(long, default_value_t = hearth_proto::inventory::DEFAULT_SPOOL_GRAMS)]
        grams: f32,
        /// What is left if it is not new, g.
        #[arg(long)]
        remaining: Option<f32>,
        /// Weight of the empty spool, g, so that `hearth spools weigh` works.
        #[arg(long)]
        empty_spool: Option<f32>,
        /// Notify `spool.low` below this, g (default 100).
        #[arg(long)]
        low: Option<f32>,
        /// Where it is kept.
        #[arg(long)]
        location: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Put the spool on a scale: what is left is the weight less the empty spool.
    Weigh {
        spool: String,
        /// Grams on the scale, spool and filament.
        grams: f32,
        /// The empty spool's weight, if not given before.
        #[arg(long)]
        empty_spool: Option<f32>,
        #[arg(long)]
        json: bool,
    },
    /// Correct a spool: what is left, the spool.low threshold, where it is kept.
    Set {
        spool: String,
        #[arg(long)]
        remaining: Option<f32>,
        #[arg(long)]
        empty_spool: Option<f32>,
        #[arg(long)]
        low: Option<f32>,
        #[arg(long)]
        location: Option<String>,
        /// Forget a field (repeat for several).
        #[arg(long, value_enum)]
        clear: Vec<SpoolClear>,
        #[arg(long)]
        json: bool,
    },
    /// Used up or given away: off its printer and out of the list, kept for the history.
    Archive { spool: String },
    /// Back from the archive.
    Restore { spool: String },
    /// What each job printed from the spool used.
    Usage {
        spool: String,
        #[arg(long)]
        json: bool,
    },
}

/// A spool by its id or the first characters of it (as `hearth spools` shows it).
pub(crate) async fn find_spool(ctx: &Ctx, wanted: &str) -> anyhow::Result<Spool> {
    let org = ctx.org()?;
    let spools = ctx.client.spools(org, true).await?;
    pick_spool(&spools, wanted).cloned()
}

fn pick_spool<'a>(spools: &'a [Spool], wanted: &str) -> anyhow::Result<&'a Spool> {
    let wanted = wanted.trim().to_ascii_lowercase();
    let found: Vec<&Spool> = spools
        .iter()
        .filter(|s| !wanted.is_empty() && s.id.to_string().starts_with(&wanted))
        .collect();
    match found[..] {
        [one] => Ok(one),
        [] => bail!("no spool {wanted:?}: `hearth spools --all` lists them"),
        _ => bail!(
            "{wanted:?} names {} spools: give more of its id",
            found.len()
        ),
    }
}

async fn find_material(ctx: &Ctx, org: OrgId, wanted: &str) -> anyhow::Result<Material> {
    let all = ctx.client.materials(org).await?;
    let wanted = wanted.trim();
    all.into_iter()
        .find(|m| m.id.to_string() == wanted || m.name.eq_ignore_ascii_case(wanted))
        .with_context(|| format!("no material {wanted:?}: `hearth materials` lists them"))
}

pub async fn materials(cmd: Option<&MaterialsCmd>) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let client = &ctx.client;
    let list = MaterialsCmd::List { json: false };
    match cmd.unwrap_or(&list) {
        MaterialsCmd::List { json } => {
            let all = client.materials(org).await?;
            if *json {
                return print_json(&all);
            }
            if all.is_empty() {
                eprintln!(
                    "the library is empty: add one with `hearth materials add NAME --material PLA`"
                );
                return Ok(());
            }
            materials_table(&all).print();
        }
        MaterialsCmd::Add { name, fields, json } => {
            let Some(material) = fields.material.clone() else {
                bail!("give the material's type with --material (PLA, PETG...)");
            };
            let m = client
                .create_material(
                    org,
                    &NewMaterial {
                        name: name.clone(),
                        brand: fields.brand.clone(),
                        material,
                        color: fields.color.clone(),
                        density_g_cm3: fields.density,
                        diameter_mm: fields.diameter,
                        price_per_kg: fields.price_per_kg,
                    },
                )
                .await
                .context("cannot add the material")?;
            done(&m, *json, || materials_table(std::slice::from_ref(&m)))?;
        }
        MaterialsCmd::Edit {
            which,
            name,
            fields,
            clear,
            json,
        } => {
            let m = find_material(&ctx, org, which).await?;
            let cleared = |f| clear.contains(&f);
            let update = MaterialUpdate {
                name: name.clone(),
                brand: clearable(&fields.brand, cleared(MaterialClear::Brand))?,
                material: fields.material.clone(),
                color: clearable(&fields.color, cleared(MaterialClear::Color))?,
                density_g_cm3: fields.density,
                diameter_mm: fields.diameter,
                price_per_kg: clearable(&fields.price_per_kg, cleared(MaterialClear::PricePerKg))?,
            };
            let m = client
                .update_material(org, m.id, &update)
                .await
                .context("cannot change the material")?;
            done(&m, *json, || materials_table(std::slice::from_ref(&m)))?;
        }
        MaterialsCmd::Remove { material } => {
            let m = find_material(&ctx, org, material).await?;
            client
                .delete_material(org, m.id)
                .await
                .with_context(|| format!("cannot remove {:?}", m.name))?;
            eprintln!("removed {:?}", m.name);
        }
        MaterialsCmd::Usage { days, json } => {
            let usage = client.material_usage(org, *days).await?;
            if *json {
                return print_json(&usage);
            }
            let mut t = Table::new(&["MATERIAL", "COLOUR", "USED", "JOBS", "COST"]);
            for u in &usage {
                t.row(vec![
                    u.material
                        .clone()
                        .unwrap_or_else(|| "(not revealed)".into()),
                    u.color.clone().unwrap_or_else(|| "-".into()),
                    grams(u.grams),
                    u.jobs.to_string(),
                    u.cost.map_or("-".into(), |c| format!("{c:.2}")),
                ]);
            }
            t.print();
            if usage.is_empty() {
                eprintln!(
                    "no job used filament in the last {days} days (as far as their senders revealed)"
                );
            }
        }
    }
    Ok(())
}

pub async fn spools(cmd: Option<&SpoolsCmd>) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let client = &ctx.client;
    let list = SpoolsCmd::List {
        all: false,
        json: false,
    };
    let (spool_ref, update, json) = match cmd.unwrap_or(&list) {
        SpoolsCmd::List { all, json } => {
            let spools = client.spools(org, *all).await?;
            if *json {
                return print_json(&spools);
            }
            if spools.is_empty() {
                eprintln!("no spools: add one with `hearth spools add MATERIAL`");
                return Ok(());
            }
            let printers: Vec<hearth_proto::api::Printer> = client
                .raw_get(&format!("/api/v1/orgs/{org}/printers"))
                .await?;
            spools_table(&spools, &printers).print();
            return Ok(());
        }
        SpoolsCmd::Add {
            material,
            grams,
            remaining,
            empty_spool,
            low,
            location,
            json,
        } => {
            let m = find_material(&ctx, org, material).await?;
            let s = client
                .create_spool(
                    org,
                    &NewSpool {
                        material: m.id,
                        initial_grams: Some(*grams),
                        remaining_grams: *remaining,
                        empty_spool_grams: *empty_spool,
                        low_grams: *low,
                        location: location.clone(),
                    },
                )
                .await
                .context("cannot add the spool")?;
            return done(&s, *json, || spools_table(std::slice::from_ref(&s), &[]));
        }
        SpoolsCmd::Usage { spool, json } => {
            let s = find_spool(&ctx, spool).await?;
            let uses = client.spool_usage(org, s.id).await?;
            if *json {
                return print_json(&uses);
            }
            let mut t = Table::new(&["WHEN", "JOB", "ENDED", "USED"]);
            for u in &uses {
                t.row(vec![
                    u.at.clone(),
                    u.job_id.to_string(),
                    serde_json::to_value(u.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    grams(f64::from(u.grams)),
                ]);
            }
            t.print();
            return Ok(());
        }
        SpoolsCmd::Weigh {
            spool,
            grams,
            empty_spool,
            json,
        } => (
            spool,
            SpoolUpdate {
                weighed_grams: Some(*grams),
                empty_spool_grams: empty_spool.map(Some),
                ..SpoolUpdate::default()
            },
            *json,
        ),
        SpoolsCmd::Set {
            spool,
            remaining,
            empty_spool,
            low,
            location,
            clear,
            json,
        } => (
            spool,
            SpoolUpdate {
                remaining_grams: *remaining,
                empty_spool_grams: clearable(empty_spool, clear.contains(&SpoolClear::EmptySpool))?,
                low_grams: *low,
                location: clearable(location, clear.contains(&SpoolClear::Location))?,
                ..SpoolUpdate::default()
            },
            *json,
        ),
        SpoolsCmd::Archive { spool } => (
            spool,
            SpoolUpdate {
                archived: Some(true),
                ..SpoolUpdate::default()
            },
            false,
        ),
        SpoolsCmd::Restore { spool } => (
            spool,
            SpoolUpdate {
                archived: Some(false),
                ..SpoolUpdate::default()
            },
            false,
        ),
    };
    let s = find_spool(&ctx, spool_ref).await?;
    let s = client
        .update_spool(org, s.id, &update)
        .await
        .with_context(|| format!("cannot change spool {}", s.id))?;
    done(&s, json, || spools_table(std::slice::from_ref(&s), &[]))
}

/// Prints `v` as JSON, or the table.
fn done<T: serde::Serialize>(
    v: &T,
    json: bool,
    table: impl FnOnce() -> Table,
) -> anyhow::Result<()> {
    if json {
        return print_json(v);
    }
    table().print();
    Ok(())
}

/// Grams as people read them: `1.25 kg`, `780 g`, `1.2 g`.
pub(crate) fn grams(g: f64) -> String {
    if g >= 1000.0 {
        format!("{:.2} kg", g / 1000.0)
    } else if g >= 10.0 {
        format!("{g:.0} g")
    } else {
        format!("{g:.1} g")
    }
}

fn materials_table(all: &[Material]) -> Table {
    let mut t = Table::new(&[
        "NAME", "TYPE", "BRAND", "COLOUR", "DENSITY", "DIAMETER", "PRICE/KG",
    ]);
    for m in all {
        t.row(vec![
            m.name.clone(),
            m.material.clone(),
            m.brand.clone().unwrap_or_else(|| "-".into()),
            m.color.clone().unwrap_or_else(|| "-".into()),
            format!("{}", m.density_g_cm3),
            format!("{}", m.diameter_mm),
            m.price_per_kg.map_or("-".into(), |p| format!("{p:.2}")),
        ]);
    }
    t
}

fn spools_table(spools: &[Spool], printers: &[hearth_proto::api::Printer]) -> Table {
    let mut t = Table::new(&["SPOOL", "MATERIAL", "TYPE", "LEFT", "WHERE", ""]);
    let printer_name = |id: hearth_proto::ids::PrinterId| {
        printers
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| format!("printer {id}"), |p| format!("on {}", p.name))
    };
    for s in spools {
        let low = s.remaining_grams < s.low_grams;
        t.row(vec![
            // Any unique start of the id names the spool.
            s.id.to_string(),
            s.material.name.clone(),
            s.material.material.clone(),
            format!(
                "{} of {} (~{:.0} m)",
                grams(f64::from(s.remaining_grams)),
                grams(f64::from(s.initial_grams)),
                s.remaining_m
            ),
            match (s.printer, &s.location) {
                (Some(p), _) => match &s.slot {
                    Some(slot) => format!("{} ({slot})", printer_name(p)),
                    None => printer_name(p),
                },
                (None, Some(l)) => l.clone(),
                (None, None) => "-".into(),
            },
            [
                low.then_some("LOW"),
                s.archived.then_some("archived"),
                s.rfid.is_some().then_some("RFID"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" "),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_is_named_by_a_unique_start_of_its_id() {
        let spool = |id: &str| Spool {
            id: id.parse().unwrap(),
            material: Material {
                id: hearth_proto::ids::MaterialId::new(),
                name: "m".into(),
                brand: None,
                material: "PLA".into(),
                color: None,
                density_g_cm3: 1.24,
                diameter_mm: 1.75,
                price_per_kg: None,
                created_at: String::new(),
            },
            initial_grams: 1000.0,
            remaining_grams: 1000.0,
            remaining_m: 335.0,
            empty_spool_grams: None,
            low_grams: 100.0,
            location: None,
            printer: None,
            slot: None,
            rfid: None,
            archived: false,
            created_at: String::new(),
            last_used_at: None,
        };
        let all = [
            spool("019af000-0000-7000-8000-000000000001"),
            spool("019af000-0000-7000-8000-000000000002"),
            spool("019bf000-0000-7000-8000-000000000003"),
        ];
        assert_eq!(pick_spool(&all, "019B").unwrap().id, all[2].id);
        assert_eq!(
            pick_spool(&all, "019af000-0000-7000-8000-000000000002")
                .unwrap()
                .id,
            all[1].id
        );
        assert!(
            pick_spool(&all, "019a")
                .unwrap_err()
                .to_string()
                .contains("2 spools")
        );
        assert!(pick_spool(&all, "").is_err());
        assert!(
            pick_spool(&all, "ffff")
                .unwrap_err()
                .to_string()
                .contains("no spool")
        );
    }
}
