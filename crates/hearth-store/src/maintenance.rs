//! Maintenance reminders (migration 0014): a task of a fixed kind on a printer, due after so many
//! hours of printing and/or so many days since it was last done.
//!
//! Hours of printing are the printer's hourly rollups in state `printing`. A task keeps the
//! printing time already counted in the hour it was done in, before it was done
//! (`done_print_ms`), so a row read here carries what the printer printed since
//! ([`MaintenanceRow::printed_ms`]: the rollups from that hour on, less it) without a counter to
//! keep up to date, and a read scans only the hours since. Telemetry reaches the rollups once a
//! minute, so the count lags by at most that.

use crate::rows::{parsed, parsed_opt};
use crate::{Result, Store, StoreError, Tx};
use hearth_proto::ids::{OrgId, PrinterId, UserId};
use hearth_proto::maintenance::MaintenanceKind;
use sqlx::Row;
use sqlx::any::AnyRow;

/// An hour, in milliseconds: the rollups' bucket.
const HOUR_MS: i64 = 3_600_000;

/// A maintenance task as stored, with what its printer printed since it was last done.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceRow {
    pub printer_id: PrinterId,
    pub kind: MaintenanceKind,
    pub org_id: OrgId,
    pub every_print_hours: Option<i64>,
    pub every_days: Option<i64>,
    /// Hold the printer once the task is due.
    pub hold_when_due: bool,
    /// This task held the printer when it fell due.
    pub placed_hold: bool,
    /// When it was last done (Unix ms), or when the task was set up without saying.
    pub done_at: i64,
    pub done_by: Option<UserId>,
    /// When `maintenance.due` went out for this round; `None` since it was last done.
    pub notified_at: Option<i64>,
    pub created_at: i64,
    /// Milliseconds the printer printed since it was last done.
    pub printed_ms: i64,
}

/// A task as set up or changed.
#[derive(Debug, Clone)]
pub struct NewMaintenance {
    pub org: OrgId,
    pub printer: PrinterId,
    pub kind: MaintenanceKind,
    pub every_print_hours: Option<i64>,
    pub every_days: Option<i64>,
    pub hold_when_due: bool,
    /// When it was last done, if the member says (Unix ms, not in the future); otherwise a new
    /// task counts from now and a changed one keeps its last time.
    pub last_done: Option<i64>,
    pub by: UserId,
    pub now: i64,
}

/// What [`Tx::set_maintenance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetMaintenance {
    pub created: bool,
    /// A new last time was given for a task that held its printer, and no other task holds it:
    /// release the printer.
    pub release: bool,
}

/// The printer's printing time counted so far in one hour.
const IN_HOUR: &str = "SELECT CAST(COALESCE(SUM(ms), 0) AS BIGINT) AS ms FROM printer_rollups \
     WHERE printer_id = $1 AND state = 'printing' AND bucket = $2";

const SELECT: &str = "SELECT m.printer_id, m.kind, m.org_id, m.every_print_hours, m.every_days, \
     m.hold_when_due, m.placed_hold, m.done_at, m.done_by, m.notified_at, m.created_at, \
     CAST(COALESCE((SELECT SUM(r.ms) FROM printer_rollups r WHERE r.printer_id = m.printer_id \
     AND r.state = 'printing' AND r.bucket >= m.done_at - m.done_at % 3600000), 0) AS BIGINT) \
     - m.done_print_ms AS printed_ms FROM maintenance m";

fn row(r: &AnyRow) -> Result<MaintenanceRow> {
    Ok(MaintenanceRow {
        printer_id: parsed(r, "printer_id")?,
        kind: parsed(r, "kind")?,
        org_id: parsed(r, "org_id")?,
        every_print_hours: r.try_get("every_print_hours")?,
        every_days: r.try_get("every_days")?,
        hold_when_due: r.try_get::<i64, _>("hold_when_due")? != 0,
        placed_hold: r.try_get::<i64, _>("placed_hold")? != 0,
        done_at: r.try_get("done_at")?,
        done_by: parsed_opt(r, "done_by")?,
        notified_at: r.try_get("notified_at")?,
        created_at: r.try_get("created_at")?,
        printed_ms: r.try_get::<i64, _>("printed_ms")?.max(0),
    })
}

fn not_found(printer: PrinterId, kind: MaintenanceKind) -> StoreError {
    StoreError::NotFound(format!(
        "maintenance {} of printer {printer}",
        kind.as_str()
    ))
}

impl Store {
    /// An organisation's maintenance tasks, by printer and kind.
    pub async fn maintenance(&self, org: OrgId) -> Result<Vec<MaintenanceRow>> {
        let q = format!("{SELECT} WHERE m.org_id = $1 ORDER BY m.printer_id, m.kind");
        let rows = sqlx::query(&q)
            .bind(org.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(row).collect()
    }

    /// Every task not yet reported due in its current round, across organisations: what the
    /// minute sweep looks at.
    pub async fn maintenance_unreported(&self) -> Result<Vec<MaintenanceRow>> {
        let q = format!("{SELECT} WHERE m.notified_at IS NULL ORDER BY m.printer_id, m.kind");
        let rows = sqlx::query(&q).fetch_all(self.pool()).await?;
        rows.iter().map(row).collect()
    }

    pub async fn maintenance_task(
        &self,
        printer: PrinterId,
        kind: MaintenanceKind,
    ) -> Result<MaintenanceRow> {
        let q = format!("{SELECT} WHERE m.printer_id = $1 AND m.kind = $2");
        sqlx::query(&q)
            .bind(printer.to_string())
            .bind(kind.as_str())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(row)
            .transpose()?
            .ok_or_else(|| not_found(printer, kind))
    }
}

impl Tx {
    /// The printer's printing time counted so far in the hour of `at` (Unix ms).
    async fn printed_in_hour(&mut self, printer: PrinterId, at: i64) -> Result<i64> {
        Ok(sqlx::query(IN_HOUR)
            .bind(printer.to_string())
            .bind(at - at.rem_euclid(HOUR_MS))
            .fetch_one(&mut *self.inner)
            .await?
            .try_get("ms")?)
    }

    /// Sets up a task, or changes its schedule. A changed schedule is looked at again by the
    /// next sweep (it may be due now, or no longer).
    pub async fn set_maintenance(&mut self, m: &NewMaintenance) -> Result<SetMaintenance> {
        let exists = sqlx::query("SELECT 1 FROM maintenance WHERE printer_id = $1 AND kind = $2")
            .bind(m.printer.to_string())
            .bind(m.kind.as_str())
            .fetch_optional(&mut *self.inner)
            .await?
            .is_some();
        let done = match m.last_done {
            // In the past: the hour it was done in counts as after it.
            Some(at) => Some((at, 0)),
            // Now: what this hour counted so far was before it.
            None if !exists => Some((m.now, self.printed_in_hour(m.printer, m.now).await?)),
            None => None,
        };
        if exists {
            sqlx::query(
                "UPDATE maintenance SET every_print_hours = $1, every_days = $2, hold_when_due = $3, \
                 notified_at = NULL WHERE printer_id = $4 AND kind = $5",
            )
            .bind(m.every_print_hours)
            .bind(m.every_days)
            .bind(i64::from(m.hold_when_due))
            .bind(m.printer.to_string())
            .bind(m.kind.as_str())
            .execute(&mut *self.inner)
            .await?;
            let release = match done {
                Some((at, ms)) => self.record_done(m.printer, m.kind, at, ms, m.by).await?,
                None => false,
            };
            return Ok(SetMaintenance {
                created: false,
                release,
            });
        }
        let (at, ms) = done.unwrap_or((m.now, 0));
        sqlx::query(
            "INSERT INTO maintenance (printer_id, kind, org_id, every_print_hours, every_days, \
             hold_when_due, done_at, done_print_ms, done_by, notified_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10)",
        )
        .bind(m.printer.to_string())
        .bind(m.kind.as_str())
        .bind(m.org.to_string())
        .bind(m.every_print_hours)
        .bind(m.every_days)
        .bind(i64::from(m.hold_when_due))
        .bind(at)
        .bind(ms)
        .bind(m.last_done.map(|_| m.by.to_string()))
        .bind(m.now)
        .execute(&mut *self.inner)
        .await?;
        Ok(SetMaintenance {
            created: true,
            release: false,
        })
    }

    async fn record_done(
        &mut self,
        printer: PrinterId,
        kind: MaintenanceKind,
        at: i64,
        printed_ms: i64,
        by: UserId,
    ) -> Result<bool> {
        let placed =
            sqlx::query("SELECT placed_hold FROM maintenance WHERE printer_id = $1 AND kind = $2")
                .bind(printer.to_string())
                .bind(kind.as_str())
                .fetch_optional(&mut *self.inner)
                .await?
                .ok_or_else(|| not_found(printer, kind))?
                .try_get::<i64, _>("placed_hold")?
                != 0;
        sqlx::query(
            "UPDATE maintenance SET done_at = $1, done_print_ms = $2, done_by = $3, \
             notified_at = NULL, placed_hold = 0 WHERE printer_id = $4 AND kind = $5",
        )
        .bind(at)
        .bind(printed_ms)
        .bind(by.to_string())
        .bind(printer.to_string())
        .bind(kind.as_str())
        .execute(&mut *self.inner)
        .await?;
        Ok(placed && !self.maintenance_holds(printer).await?)
    }

    /// The task was done now: its hours and days count again from here. Returns whether the
    /// printer is to be released: this task held it and no other task of it still does.
    pub async fn maintenance_done(
        &mut self,
        printer: PrinterId,
        kind: MaintenanceKind,
        now: i64,
        by: UserId,
    ) -> Result<bool> {
        let ms = self.printed_in_hour(printer, now).await?;
        self.record_done(printer, kind, now, ms, by).await
    }

    /// Whether a task of `printer` still holds it.
    async fn maintenance_holds(&mut self, printer: PrinterId) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM maintenance WHERE printer_id = $1 AND placed_hold = 1")
                .bind(printer.to_string())
                .fetch_optional(&mut *self.inner)
                .await?
                .is_some(),
        )
    }

    /// Records that this task held its printer when it fell due.
    pub async fn maintenance_placed_hold(
        &mut self,
        printer: PrinterId,
        kind: MaintenanceKind,
    ) -> Result<()> {
        sqlx::query("UPDATE maintenance SET placed_hold = 1 WHERE printer_id = $1 AND kind = $2")
            .bind(printer.to_string())
            .bind(kind.as_str())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    pub async fn remove_maintenance(
        &mut self,
        printer: PrinterId,
        kind: MaintenanceKind,
    ) -> Result<()> {
        let n = sqlx::query("DELETE FROM maintenance WHERE printer_id = $1 AND kind = $2")
            .bind(printer.to_string())
            .bind(kind.as_str())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found(printer, kind));
        }
        Ok(())
    }

    /// Claims the report that a task is due: true for the one caller (of several instances) that
    /// records it, false when it was already reported this round.
    pub async fn claim_maintenance_report(
        &mut self,
        printer: PrinterId,
        kind: MaintenanceKind,
        now: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE maintenance SET notified_at = $1 WHERE printer_id = $2 AND kind = $3 \
             AND notified_at IS NULL",
        )
        .bind(now)
        .bind(printer.to_string())
        .bind(kind.as_str())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}
