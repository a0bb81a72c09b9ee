//! The material library, the spool inventory and what jobs used (migration 0009).
//!
//! Which spool is on a printer's one holder is `spools.printer_id` (unique); which is in one of
//! its slots (AMS trays, the external holder) is `spool_slots` (migration 0029: unique per spool
//! and per printer and slot). The writes here keep a spool in one place at most. What a job used
//! is written once per job, one row per filament ([`Tx::record_uses`]: the job and part 0 are the
//! key), in the transaction that records the job's end, so a repeated final report never takes
//! filament twice.

use crate::rows::{all_by, map_all, one_by, parsed, parsed_opt};
use crate::{Result, Store, StoreError, Tx};
use hearth_proto::agent::JobState;
use hearth_proto::ids::{JobId, MaterialId, OrgId, PrinterId, SpoolId};
use hearth_proto::inventory::{Material, MaterialUsage, MemberUsage, Spool, SpoolUse, length_m};
use hearth_proto::time_fmt::rfc3339;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A material as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MaterialRow {
    pub id: MaterialId,
    pub org_id: OrgId,
    pub name: String,
    pub brand: Option<String>,
    pub material: String,
    pub color: Option<String>,
    pub density: f32,
    pub diameter: f32,
    pub price_per_kg: Option<f32>,
    pub created_at: i64,
}

impl MaterialRow {
    pub fn to_api(&self) -> Material {
        Material {
            id: self.id,
            name: self.name.clone(),
            brand: self.brand.clone(),
            material: self.material.clone(),
            color: self.color.clone(),
            density_g_cm3: self.density,
            diameter_mm: self.diameter,
            price_per_kg: self.price_per_kg,
            created_at: rfc3339(self.created_at),
        }
    }

    /// The row for `m` (as the API shapes it) in `org`, created at `created_at`.
    pub fn from_api(org_id: OrgId, m: &Material, created_at: i64) -> Self {
        Self {
            id: m.id,
            org_id,
            name: m.name.clone(),
            brand: m.brand.clone(),
            material: m.material.clone(),
            color: m.color.clone(),
            density: m.density_g_cm3,
            diameter: m.diameter_mm,
            price_per_kg: m.price_per_kg,
            created_at,
        }
    }
}

/// A spool as stored, with its material.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolRow {
    pub id: SpoolId,
    pub org_id: OrgId,
    pub material: MaterialRow,
    pub initial_grams: f32,
    pub remaining_grams: f32,
    pub empty_spool_grams: Option<f32>,
    pub low_grams: f32,
    pub location: Option<String>,
    pub printer_id: Option<PrinterId>,
    /// The slot of `printer_id` it is in; `None` on the printer's one holder.
    pub slot: Option<String>,
    /// Its RFID tag's identity, for a spool a printer reported by it.
    pub rfid: Option<String>,
    pub archived: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl SpoolRow {
    pub fn to_api(&self) -> Spool {
        Spool {
            id: self.id,
            material: self.material.to_api(),
            initial_grams: self.initial_grams,
            remaining_grams: self.remaining_grams,
            remaining_m: length_m(
                self.remaining_grams,
                self.material.density,
                self.material.diameter,
            ),
            empty_spool_grams: self.empty_spool_grams,
            low_grams: self.low_grams,
            location: self.location.clone(),
            printer: self.printer_id,
            slot: self.slot.clone(),
            rfid: self.rfid.clone(),
            archived: self.archived,
            created_at: rfc3339(self.created_at),
            last_used_at: self.last_used_at.map(rfc3339),
        }
    }
}

/// What one job used, as [`Tx::record_use`] writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct UseRow {
    pub job_id: JobId,
    /// Which filament of the job, in the slicer's order (0 for a job of one).
    pub part: i64,
    pub org_id: OrgId,
    pub spool_id: Option<SpoolId>,
    pub printer_id: Option<PrinterId>,
    /// The printer slot that fed it, when the agent said.
    pub slot: Option<String>,
    pub material: Option<String>,
    pub color: Option<String>,
    pub grams: f32,
    pub cost: Option<f64>,
    pub state: JobState,
    pub at: i64,
}

impl UseRow {
    pub fn to_api(&self) -> SpoolUse {
        SpoolUse {
            job_id: self.job_id,
            spool: self.spool_id,
            printer: self.printer_id,
            slot: self.slot.clone(),
            material: self.material.clone(),
            color: self.color.clone(),
            grams: self.grams,
            state: self.state,
            at: rfc3339(self.at),
        }
    }
}

fn f32_opt(r: &AnyRow, col: &str) -> Result<Option<f32>> {
    Ok(r.try_get::<Option<f64>, _>(col)?.map(|v| v as f32))
}

fn f32_of(r: &AnyRow, col: &str) -> Result<f32> {
    Ok(r.try_get::<f64, _>(col)? as f32)
}

const MATERIAL_COLS: &str = "m.id, m.org_id, m.name, m.brand, m.material, m.color, m.density, m.diameter, m.price_per_kg, m.created_at";
fn material(r: &AnyRow) -> Result<MaterialRow> {
    material_named(r, "")
}

/// A material's columns, each named `prefix` + its column name.
fn material_named(r: &AnyRow, prefix: &str) -> Result<MaterialRow> {
    let col = |c: &str| format!("{prefix}{c}");
    Ok(MaterialRow {
        id: parsed(r, &col("id"))?,
        org_id: parsed(r, &col("org_id"))?,
        name: r.try_get(col("name").as_str())?,
        brand: r.try_get(col("brand").as_str())?,
        material: r.try_get(col("material").as_str())?,
        color: r.try_get(col("color").as_str())?,
        density: f32_of(r, &col("density"))?,
        diameter: f32_of(r, &col("diameter"))?,
        price_per_kg: f32_opt(r, &col("price_per_kg"))?,
        created_at: r.try_get(col("created_at").as_str())?,
    })
}

/// Spools with their material's columns (the material's under `m_` names) and their printer,
/// on its holder or in a slot.
const SPOOL_SELECT: &str = "SELECT s.id, s.org_id, s.initial_grams, s.remaining_grams, \
     s.empty_spool_grams, s.low_grams, s.location, \
     COALESCE(s.printer_id, ss.printer_id) AS printer_id, ss.slot AS slot, s.rfid, s.archived, \
     s.created_at, \
     s.last_used_at, m.id AS m_id, m.org_id AS m_org_id, m.name AS m_name, m.brand AS m_brand, \
     m.material AS m_material, m.color AS m_color, m.density AS m_density, \
     m.diameter AS m_diameter, m.price_per_kg AS m_price_per_kg, m.created_at AS m_created_at \
     FROM spools s JOIN materials m ON m.id = s.material_id \
     LEFT JOIN spool_slots ss ON ss.spool_id = s.id";
fn spool(r: &AnyRow) -> Result<SpoolRow> {
    Ok(SpoolRow {
        id: parsed(r, "id")?,
        org_id: parsed(r, "org_id")?,
        material: material_named(r, "m_")?,
        initial_grams: f32_of(r, "initial_grams")?,
        remaining_grams: f32_of(r, "remaining_grams")?,
        empty_spool_grams: f32_opt(r, "empty_spool_grams")?,
        low_grams: f32_of(r, "low_grams")?,
        location: r.try_get("location")?,
        printer_id: parsed_opt(r, "printer_id")?,
        slot: r.try_get("slot")?,
        rfid: r.try_get("rfid")?,
        archived: r.try_get::<i64, _>("archived")? != 0,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

const USE_COLS: &str =
    "job_id, part, org_id, spool_id, printer_id, slot, material, color, grams, cost, state, at";
fn use_row(r: &AnyRow) -> Result<UseRow> {
    let state: String = r.try_get("state")?;
    Ok(UseRow {
        job_id: parsed(r, "job_id")?,
        part: r.try_get("part")?,
        org_id: parsed(r, "org_id")?,
        spool_id: parsed_opt(r, "spool_id")?,
        printer_id: parsed_opt(r, "printer_id")?,
        slot: r.try_get("slot")?,
        material: r.try_get("material")?,
        color: r.try_get("color")?,
        grams: f32_of(r, "grams")?,
        cost: r.try_get("cost")?,
        state: serde_json::from_value(serde_json::Value::String(state.clone()))
            .map_err(|_| StoreError::Corrupt(format!("job state {state:?}")))?,
        at: r.try_get("at")?,
    })
}

/// Reads.
impl Store {
    pub async fn materials(&self, org: OrgId) -> Result<Vec<MaterialRow>> {
        let q = format!(
            "SELECT {MATERIAL_COLS} FROM materials m WHERE m.org_id = $1 ORDER BY m.name, m.id"
        );
        map_all(&all_by(self.pool(), &q, org.to_string()).await?, material)
    }

    pub async fn material(&self, id: MaterialId) -> Result<MaterialRow> {
        let q = format!("SELECT {MATERIAL_COLS} FROM materials m WHERE m.id = $1");
        one_by(self.pool(), &q, id.to_string(), material, || {
            format!("material {id}")
        })
        .await
    }

    /// The organisation's spools, newest first; archived ones only when asked.
    pub async fn spools(&self, org: OrgId, archived: bool) -> Result<Vec<SpoolRow>> {
        let q = format!(
            "{SPOOL_SELECT} WHERE s.org_id = $1{} ORDER BY s.created_at DESC, s.id DESC",
            if archived { "" } else { " AND s.archived = 0" }
        );
        map_all(&all_by(self.pool(), &q, org.to_string()).await?, spool)
    }

    pub async fn spool(&self, id: SpoolId) -> Result<SpoolRow> {
        let q = format!("{SPOOL_SELECT} WHERE s.id = $1");
        one_by(self.pool(), &q, id.to_string(), spool, || {
            format!("spool {id}")
        })
        .await
    }

    /// What jobs took from a spool, newest first.
    pub async fn spool_uses(&self, spool: SpoolId, limit: i64) -> Result<Vec<UseRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {USE_COLS} FROM spool_usage WHERE spool_id = $1 \
             ORDER BY at DESC, job_id DESC, part LIMIT $2"
        ))
        .bind(spool.to_string())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        map_all(&rows, use_row)
    }

    /// Per member who submitted a job that ended since `since` (Unix ms): how their jobs ended,
    /// what those took from spools, and the facts their completed jobs revealed. Logins are left
    /// empty for the caller to fill in.
    pub async fn member_usage(&self, org: OrgId, since: i64) -> Result<Vec<MemberUsage>> {
        use std::collections::BTreeMap;
        let org = org.to_string();
        let mut by: BTreeMap<String, MemberUsage> = BTreeMap::new();
        fn entry(by: &mut BTreeMap<String, MemberUsage>, user: String) -> Result<&mut MemberUsage> {
            let user_id = user
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("job submitted by {user:?}")))?;
            Ok(by.entry(user).or_insert_with(|| MemberUsage {
                user_id,
                login: String::new(),
                jobs: Default::default(),
                spool_grams: 0.0,
                cost: Some(0.0),
                revealed_grams: 0.0,
                revealed_grams_jobs: 0,
                estimated_seconds: 0.0,
            }))
        }
        let ends = sqlx::query(&format!(
            "SELECT submitted_by, state, COUNT(*) AS n FROM jobs WHERE org_id = $1 \
             AND updated_at >= $2 AND state IN {} GROUP BY submitted_by, state",
            crate::fleet::ENDED
        ))
        .bind(&org)
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        for r in &ends {
            let n = u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0);
            let jobs = &mut entry(&mut by, r.try_get("submitted_by")?)?.jobs;
            match crate::fleet::job_state(&r.try_get::<String, _>("state")?)? {
                JobState::Completed => jobs.completed += n,
                JobState::Failed => jobs.failed += n,
                JobState::Cancelled => jobs.cancelled += n,
                _ => jobs.refused += n,
            }
        }
        let taken = sqlx::query(
            "SELECT j.submitted_by AS submitted_by, SUM(u.grams) AS grams, SUM(u.cost) AS cost, \
             COUNT(u.cost) AS priced, COUNT(*) AS uses FROM spool_usage u \
             JOIN jobs j ON j.id = u.job_id WHERE u.org_id = $1 AND u.at >= $2 \
             GROUP BY j.submitted_by",
        )
        .bind(&org)
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        for r in &taken {
            let priced: i64 = r.try_get("priced")?;
            let uses: i64 = r.try_get("uses")?;
            let cost: Option<f64> = r.try_get("cost")?;
            let m = entry(&mut by, r.try_get("submitted_by")?)?;
            m.spool_grams = r.try_get("grams")?;
            m.cost = if priced == uses { cost } else { None };
        }
        let completed = sqlx::query(
            "SELECT submitted_by, facts FROM jobs WHERE org_id = $1 AND updated_at >= $2 \
             AND state = 'completed'",
        )
        .bind(&org)
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        for r in &completed {
            let facts: hearth_proto::api::SchedulingFacts =
                serde_json::from_str(&r.try_get::<String, _>("facts")?).unwrap_or_default();
            let m = entry(&mut by, r.try_get("submitted_by")?)?;
            if let Some(g) = facts.filament_grams {
                m.revealed_grams += f64::from(g);
                m.revealed_grams_jobs += 1;
            }
            m.estimated_seconds += facts.estimated_seconds.unwrap_or(0) as f64;
        }
        let mut out: Vec<MemberUsage> = by.into_values().collect();
        out.sort_by(|a, b| {
            b.spool_grams
                .total_cmp(&a.spool_grams)
                .then(b.jobs.completed.cmp(&a.jobs.completed))
        });
        Ok(out)
    }

    /// What the organisation's jobs used since `since` (Unix ms), per material and colour, most
    /// first. A row's cost is the sum of its uses' costs when every one of them had a price.
    pub async fn material_usage(&self, org: OrgId, since: i64) -> Result<Vec<MaterialUsage>> {
        let rows = sqlx::query(
            "SELECT material, color, SUM(grams) AS grams, COUNT(DISTINCT job_id) AS jobs, \
             SUM(cost) AS cost, COUNT(cost) AS priced, COUNT(*) AS uses FROM spool_usage WHERE org_id = $1 AND at >= $2 \
             GROUP BY material, color ORDER BY SUM(grams) DESC",
        )
        .bind(org.to_string())
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let jobs: i64 = r.try_get("jobs")?;
                let uses: i64 = r.try_get("uses")?;
                let priced: i64 = r.try_get("priced")?;
                Ok(MaterialUsage {
                    material: r.try_get("material")?,
                    color: r.try_get("color")?,
                    grams: r.try_get("grams")?,
                    jobs: u32::try_from(jobs).unwrap_or(u32::MAX),
                    cost: if priced == uses {
                        r.try_get("cost")?
                    } else {
                        None
                    },
                })
            })
            .collect()
    }
}

/// Writes.
///
/// A statement binding a number that may be absent (`Option<f64>`: a price, an empty spool's
/// weight, a use's cost) is not kept prepared (`persistent(false)`): sqlx 0.8's Any driver sends
/// an absent f64 as a PostgreSQL float4 (sqlx issue #4284), so a statement first prepared with one
/// would refuse the float8 of a later present value on the same connection (tested in the
/// store's story). Drop this once the sqlx in use has the fix.
impl Tx {
    pub async fn insert_material(&mut self, m: &MaterialRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO materials (id, org_id, name, brand, material, color, density, diameter, \
             price_per_kg, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(m.id.to_string())
        .bind(m.org_id.to_string())
        .bind(&m.name)
        .bind(m.brand.clone())
        .bind(&m.material)
        .bind(m.color.clone())
        .bind(f64::from(m.density))
        .bind(f64::from(m.diameter))
        .bind(m.price_per_kg.map(f64::from))
        .bind(m.created_at)
        .persistent(false)
        .execute(&mut *self.inner)
        .await
        .map_err(|e| name_taken(e, &m.name))?;
        Ok(())
    }

    /// Replaces a material's fields (not its id, organisation or creation time).
    pub async fn update_material(&mut self, m: &MaterialRow) -> Result<()> {
        let n = sqlx::query(
            "UPDATE materials SET name = $1, brand = $2, material = $3, color = $4, density = $5, \
             diameter = $6, price_per_kg = $7 WHERE id = $8",
        )
        .bind(&m.name)
        .bind(m.brand.clone())
        .bind(&m.material)
        .bind(m.color.clone())
        .bind(f64::from(m.density))
        .bind(f64::from(m.diameter))
        .bind(m.price_per_kg.map(f64::from))
        .bind(m.id.to_string())
        .persistent(false)
        .execute(&mut *self.inner)
        .await
        .map_err(|e| name_taken(e, &m.name))?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("material {}", m.id)));
        }
        Ok(())
    }

    /// Deletes a material no spool is made of (archived spools included: their history names it).
    pub async fn delete_material(&mut self, id: MaterialId) -> Result<()> {
        let used: i64 = sqlx::query("SELECT COUNT(*) AS n FROM spools WHERE material_id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *self.inner)
            .await?
            .try_get("n")?;
        if used > 0 {
            return Err(StoreError::Conflict(format!(
                "{used} spool(s) of the inventory are of this material; archive is not enough, \
                 their history names it"
            )));
        }
        let n = sqlx::query("DELETE FROM materials WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("material {id}")));
        }
        Ok(())
    }

    pub async fn insert_spool(&mut self, s: &SpoolRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO spools (id, org_id, material_id, initial_grams, remaining_grams, \
             empty_spool_grams, low_grams, location, printer_id, archived, created_at, last_used_at, \
             rfid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0, $9, NULL, $10)",
        )
        .bind(s.id.to_string())
        .bind(s.org_id.to_string())
        .bind(s.material.id.to_string())
        .bind(f64::from(s.initial_grams))
        .bind(f64::from(s.remaining_grams))
        .bind(s.empty_spool_grams.map(f64::from))
        .bind(f64::from(s.low_grams))
        .bind(s.location.clone())
        .bind(s.created_at)
        .bind(s.rfid.clone())
        .persistent(false)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Stores a spool's weights, place and archived flag; archiving takes it off its printer.
    pub async fn update_spool(&mut self, s: &SpoolRow) -> Result<()> {
        let n = sqlx::query(
            "UPDATE spools SET remaining_grams = $1, empty_spool_grams = $2, low_grams = $3, \
             location = $4, archived = $5, \
             printer_id = CASE WHEN $5 = 1 THEN NULL ELSE printer_id END WHERE id = $6",
        )
        .bind(f64::from(s.remaining_grams))
        .bind(s.empty_spool_grams.map(f64::from))
        .bind(f64::from(s.low_grams))
        .bind(s.location.clone())
        .bind(i64::from(s.archived))
        .bind(s.id.to_string())
        .persistent(false)
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("spool {}", s.id)));
        }
        if s.archived {
            self.take_out_of_slot(s.id).await?;
        }
        Ok(())
    }

    /// Takes `spool` out of whatever slot it is in.
    async fn take_out_of_slot(&mut self, spool: SpoolId) -> Result<()> {
        sqlx::query("DELETE FROM spool_slots WHERE spool_id = $1")
            .bind(spool.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Puts `spool` in `slot` of `printer`, taking the spool that was in that slot out, and
    /// `spool` off any printer's holder or slot it was on.
    pub async fn load_spool_slot(
        &mut self,
        spool: SpoolId,
        printer: PrinterId,
        slot: &str,
    ) -> Result<()> {
        let n = sqlx::query("UPDATE spools SET printer_id = NULL WHERE id = $1 AND archived = 0")
            .bind(spool.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("spool {spool}")));
        }
        self.take_out_of_slot(spool).await?;
        self.unload_slot(printer, slot).await?;
        sqlx::query("INSERT INTO spool_slots (spool_id, printer_id, slot) VALUES ($1, $2, $3)")
            .bind(spool.to_string())
            .bind(printer.to_string())
            .bind(slot)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Takes whatever spool is in `slot` of `printer` out; whether one was.
    pub async fn unload_slot(&mut self, printer: PrinterId, slot: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM spool_slots WHERE printer_id = $1 AND slot = $2")
            .bind(printer.to_string())
            .bind(slot)
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// The organisation's spool with RFID tag `tag`, read inside this transaction.
    pub async fn spool_by_rfid(&mut self, org: OrgId, tag: &str) -> Result<Option<SpoolRow>> {
        self.spool_where("s.org_id = $1 AND s.rfid = $2", &[&org.to_string(), tag])
            .await
    }

    /// The spools in `printer`'s slots now, by slot name, read inside this transaction.
    pub async fn spools_in_slots(&mut self, printer: PrinterId) -> Result<Vec<SpoolRow>> {
        self.spools_where(
            "ss.printer_id = $1 ORDER BY ss.slot",
            &[&printer.to_string()],
        )
        .await
    }

    /// The spool `cond` (on the spool's columns `s.` and its slot's `ss.`, with `binds`) finds,
    /// read inside this transaction; `cond` names one spool at most.
    async fn spool_where(&mut self, cond: &str, binds: &[&str]) -> Result<Option<SpoolRow>> {
        Ok(self.spools_where(cond, binds).await?.pop())
    }

    /// The spools `cond` (as for [`Tx::spool_where`]) finds, read inside this transaction.
    async fn spools_where(&mut self, cond: &str, binds: &[&str]) -> Result<Vec<SpoolRow>> {
        let q = format!("{SPOOL_SELECT} WHERE {cond}");
        let mut query = sqlx::query(&q);
        for b in binds {
            query = query.bind(b.to_string());
        }
        map_all(&query.fetch_all(&mut *self.inner).await?, spool)
    }

    /// The organisation's material named `name`, read inside this transaction.
    pub async fn material_named(&mut self, org: OrgId, name: &str) -> Result<Option<MaterialRow>> {
        let q =
            format!("SELECT {MATERIAL_COLS} FROM materials m WHERE m.org_id = $1 AND m.name = $2");
        let row = sqlx::query(&q)
            .bind(org.to_string())
            .bind(name)
            .fetch_optional(&mut *self.inner)
            .await?;
        row.as_ref().map(material).transpose()
    }

    /// The spool in `slot` of `printer` now, read inside this transaction.
    pub async fn spool_in_slot(
        &mut self,
        printer: PrinterId,
        slot: &str,
    ) -> Result<Option<SpoolRow>> {
        self.spool_where(
            "ss.printer_id = $1 AND ss.slot = $2",
            &[&printer.to_string(), slot],
        )
        .await
    }

    /// Takes whatever spool is on `printer` off it.
    pub async fn unload_printer(&mut self, printer: PrinterId) -> Result<()> {
        sqlx::query("UPDATE spools SET printer_id = NULL WHERE printer_id = $1")
            .bind(printer.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Puts `spool` on `printer`, taking the spool that was there off it and `spool` off any
    /// printer it was on.
    pub async fn load_spool(&mut self, spool: SpoolId, printer: PrinterId) -> Result<()> {
        self.unload_printer(printer).await?;
        self.take_out_of_slot(spool).await?;
        let n = sqlx::query("UPDATE spools SET printer_id = $1 WHERE id = $2 AND archived = 0")
            .bind(printer.to_string())
            .bind(spool.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("spool {spool}")));
        }
        Ok(())
    }

    /// The spool loaded on `printer` now, read inside this transaction.
    pub async fn spool_on(&mut self, printer: PrinterId) -> Result<Option<SpoolRow>> {
        self.spool_where("s.printer_id = $1", &[&printer.to_string()])
            .await
    }

    /// Records what a job used, one row per filament, and takes each from its spool (never below
    /// 0). Written once per job: returns `false`, changing nothing, when the job's use is already
    /// recorded (the first of `uses` is the key).
    pub async fn record_uses(&mut self, uses: &[UseRow]) -> Result<bool> {
        for (i, u) in uses.iter().enumerate() {
            let n = sqlx::query(&format!(
                "INSERT INTO spool_usage ({USE_COLS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (job_id, part) DO NOTHING"
            ))
            .bind(u.job_id.to_string())
            .bind(u.part)
            .bind(u.org_id.to_string())
            .bind(u.spool_id.map(|s| s.to_string()))
            .bind(u.printer_id.map(|p| p.to_string()))
            .bind(u.slot.clone())
            .bind(u.material.clone())
            .bind(u.color.clone())
            .bind(f64::from(u.grams))
            .bind(u.cost)
            .bind(crate::fleet::job_state_str(u.state))
            .bind(u.at)
            .persistent(false)
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
            if n == 0 && i == 0 {
                return Ok(false);
            }
            if let Some(spool) = u.spool_id {
                sqlx::query(
                    "UPDATE spools SET remaining_grams = CASE WHEN remaining_grams > $1 \
                     THEN remaining_grams - $1 ELSE 0 END, last_used_at = $2 WHERE id = $3",
                )
                .bind(f64::from(u.grams))
                .bind(u.at)
                .bind(spool.to_string())
                .execute(&mut *self.inner)
                .await?;
            }
        }
        Ok(!uses.is_empty())
    }
}

fn name_taken(e: sqlx::Error, name: &str) -> StoreError {
    match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a material named {name:?} already exists"))
        }
        other => other,
    }
}
