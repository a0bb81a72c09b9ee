//! Agents, printers, jobs, the organisation chain, key bundles and the file library.

use crate::rows::{all_by, json, json_opt, map_all, one_by, parsed, parsed_opt};
use crate::{Result, Store, StoreError, Tx};
use hearth_proto::agent::{JobState, PrinterInfo};
use hearth_proto::api::{AgentStatus, ApprovalState, JobLabel, LoadedRequest, SchedulingFacts};
use hearth_proto::ids::{AgentId, BlobHash, FileId, JobId, OrgId, PrinterId, SpoolId, UserId};
use hearth_proto::inventory::{PrinterSpool, SlotSpool};
use sqlx::Row;
use sqlx::any::AnyRow;

fn agent_status(s: &str) -> Result<AgentStatus> {
    match s {
        "pending" => Ok(AgentStatus::Pending),
        "approved" => Ok(AgentStatus::Approved),
        "revoked" => Ok(AgentStatus::Revoked),
        other => Err(StoreError::Corrupt(format!("agent status {other:?}"))),
    }
}

pub fn agent_status_str(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::Pending => "pending",
        AgentStatus::Approved => "approved",
        AgentStatus::Revoked => "revoked",
    }
}

pub fn job_state_str(s: JobState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn job_state(s: &str) -> Result<JobState> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("job state {s:?}")))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub id: AgentId,
    pub org_id: OrgId,
    pub name: String,
    pub signing_key: String,
    pub age_recipient: String,
    pub status: AgentStatus,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrinterRow {
    pub id: PrinterId,
    pub org_id: OrgId,
    pub agent_id: AgentId,
    /// As the agent announced it, from its configuration.
    pub info: PrinterInfo,
    /// What a member set as loaded since (`set_printer_loaded`), if the configuration has not
    /// changed it again.
    pub loaded: Option<LoadedRequest>,
    /// The inventory's spool loaded on it.
    pub spool: Option<PrinterSpool>,
    /// The inventory's spools in its slots, by slot name.
    pub slot_spools: Vec<SlotSpool>,
    pub created_at: i64,
    /// Take no next job after one that printed until a member says the bed is clear.
    pub confirm_clear_bed: bool,
    /// The job whose part is on the bed, while a member has not said it is clear.
    pub bed_job: Option<JobId>,
    /// Held by a member: no new job until released.
    pub held: bool,
}

impl PrinterRow {
    /// The printer as jobs are placed on it: the agent's description with what a member set as
    /// loaded in place of the configured material, colour and nozzle.
    pub fn effective(&self) -> PrinterInfo {
        let mut info = self.info.clone();
        if let Some(l) = &self.loaded {
            info.material = l.material.clone();
            info.color = l.color.clone();
            info.nozzle_mm = l.nozzle_mm;
        }
        info
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: JobId,
    pub org_id: OrgId,
    pub printer_id: Option<PrinterId>,
    pub pool: Option<String>,
    pub blob_sha256: BlobHash,
    pub manifest: serde_json::Value,
    pub facts: SchedulingFacts,
    pub state: JobState,
    pub message: Option<String>,
    pub submitted_by: UserId,
    pub created_at: i64,
    pub updated_at: i64,
    /// Its place in the queue: higher goes first, then older (`Store::queued_jobs`).
    pub priority: i64,
    /// Its sealed label (hash of the sealed object, signed manifest), opaque here.
    pub label: Option<JobLabel>,
    /// Whether it waits, or waited, for an admin's approval (migration 0022).
    pub approval: Option<ApprovalRow>,
}

impl JobRow {
    /// Queued but not approved yet: no printer takes it.
    pub fn awaits_approval(&self) -> bool {
        self.approval
            .as_ref()
            .is_some_and(|a| a.state == ApprovalState::Pending)
    }
}

/// A job's approval as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRow {
    pub state: ApprovalState,
    /// The admin who approved or rejected it, and when (Unix ms).
    pub decided: Option<(UserId, i64)>,
}

const AGENT_COLS: &str =
    "id, org_id, name, signing_key, age_recipient, status, created_at, last_seen_at";
fn agent(r: &AnyRow) -> Result<AgentRow> {
    Ok(AgentRow {
        id: parsed(r, "id")?,
        org_id: parsed(r, "org_id")?,
        name: r.try_get("name")?,
        signing_key: r.try_get("signing_key")?,
        age_recipient: r.try_get("age_recipient")?,
        status: agent_status(&r.try_get::<String, _>("status")?)?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
    })
}

/// Printers with the spool loaded on each; conditions name the printer's columns `p.`.
const PRINTER_SELECT: &str = "SELECT p.id, p.org_id, p.agent_id, p.info, p.loaded, p.created_at, \
     p.confirm_clear_bed, p.bed_job, p.held, s.id AS spool_id, s.remaining_grams AS spool_grams FROM printers p \
     LEFT JOIN spools s ON s.printer_id = p.id";
fn printer(r: &AnyRow) -> Result<PrinterRow> {
    let spool = match parsed_opt::<SpoolId>(r, "spool_id")? {
        Some(id) => Some(PrinterSpool {
            id,
            remaining_grams: r.try_get::<f64, _>("spool_grams")? as f32,
        }),
        None => None,
    };
    Ok(PrinterRow {
        spool,
        slot_spools: Vec::new(),
        id: parsed(r, "id")?,
        org_id: parsed(r, "org_id")?,
        agent_id: parsed(r, "agent_id")?,
        info: json(r, "info")?,
        loaded: json_opt(r, "loaded")?,
        created_at: r.try_get("created_at")?,
        confirm_clear_bed: r.try_get::<i64, _>("confirm_clear_bed")? != 0,
        bed_job: parsed_opt(r, "bed_job")?,
        held: r.try_get::<i64, _>("held")? != 0,
    })
}

const JOB_COLS: &str = "id, org_id, printer_id, pool, blob_sha256, manifest, facts, state, message, submitted_by, \
                        created_at, updated_at, priority, label_sha256, label_manifest, approval, \
                        approval_by, approval_at";
fn job(r: &AnyRow) -> Result<JobRow> {
    let printer_id: Option<String> = r.try_get("printer_id")?;
    Ok(JobRow {
        id: parsed(r, "id")?,
        org_id: parsed(r, "org_id")?,
        printer_id: printer_id
            .map(|p| {
                p.parse()
                    .map_err(|_| StoreError::Corrupt(format!("printer id {p:?}")))
            })
            .transpose()?,
        pool: r.try_get("pool")?,
        blob_sha256: parsed(r, "blob_sha256")?,
        manifest: json(r, "manifest")?,
        facts: json(r, "facts")?,
        state: job_state(&r.try_get::<String, _>("state")?)?,
        message: r.try_get("message")?,
        submitted_by: parsed(r, "submitted_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        priority: r.try_get("priority")?,
        label: match parsed_opt(r, "label_sha256")? {
            Some(meta_sha256) => Some(JobLabel {
                meta_sha256,
                manifest: json(r, "label_manifest")?,
            }),
            None => None,
        },
        approval: match r.try_get::<Option<String>, _>("approval")? {
            Some(s) => Some(ApprovalRow {
                state: s
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("job approval {s:?}")))?,
                decided: match parsed_opt(r, "approval_by")? {
                    Some(by) => Some((by, r.try_get("approval_at")?)),
                    None => None,
                },
            }),
            None => None,
        },
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: hearth_proto::ids::FileId,
    pub org_id: OrgId,
    pub blob_sha256: BlobHash,
    pub meta_sha256: Option<BlobHash>,
    pub manifest: serde_json::Value,
    pub facts: SchedulingFacts,
    pub uploaded_by: UserId,
    pub created_at: i64,
}

/// A report about a printer that stands until its cause ends, made once whichever instance sees
/// it first and across restarts ([`Store::claim_notice`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrinterNotice {
    /// `printer.offline`: it is unreachable.
    Offline,
    /// `printer.error`: it reports an error.
    Error,
}

impl PrinterNotice {
    fn column(self) -> &'static str {
        match self {
            PrinterNotice::Offline => "offline_notice_at",
            PrinterNotice::Error => "error_notice_at",
        }
    }
}

/// The job states after which nothing changes ([`JobState::is_final`]), as SQL.
pub(crate) const ENDED: &str = "('completed', 'failed', 'cancelled', 'refused')";
/// A job `j` uses blob `b`: as its sealed payload or as its sealed label.
/// An organisation's blob and its size, from a row of `blobs`.
fn org_blob(r: &AnyRow) -> Result<(OrgId, BlobHash, i64)> {
    Ok((
        parsed(r, "org_id")?,
        parsed(r, "sha256")?,
        r.try_get("size")?,
    ))
}

/// A job `j` uses blob `b`: its sealed payload or its sealed label.
const JOB_USES: &str = "(j.blob_sha256 = b.sha256 OR j.label_sha256 = b.sha256)";
/// A library file `f` uses blob `b`: its sealed bytes or its sealed metadata.
const FILE_USES: &str = "(f.blob_sha256 = b.sha256 OR f.meta_sha256 = b.sha256)";

const FILE_COLS: &str =
    "id, org_id, blob_sha256, meta_sha256, manifest, facts, uploaded_by, created_at";
fn file(r: &AnyRow) -> Result<FileRow> {
    let meta: Option<String> = r.try_get("meta_sha256")?;
    Ok(FileRow {
        id: parsed(r, "id")?,
        org_id: parsed(r, "org_id")?,
        blob_sha256: parsed(r, "blob_sha256")?,
        meta_sha256: meta
            .map(|m| {
                m.parse()
                    .map_err(|_| StoreError::Corrupt(format!("meta hash {m:?}")))
            })
            .transpose()?,
        manifest: json(r, "manifest")?,
        facts: json(r, "facts")?,
        uploaded_by: parsed(r, "uploaded_by")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Reads.
impl Store {
    /// The organisation's file library, newest first.
    pub async fn files(&self, org: OrgId, limit: i64) -> Result<Vec<FileRow>> {
        let q = format!(
            "SELECT {FILE_COLS} FROM files WHERE org_id = $1 ORDER BY created_at DESC, id LIMIT $2"
        );
        sqlx::query(&q)
            .bind(org.to_string())
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(file)
            .collect()
    }

    /// Sealed job payloads and labels no longer needed, oldest first (at most `limit`): blobs of
    /// an organisation that its jobs printed or were labelled with, all of which ended before
    /// `before` (Unix ms), that no file of its library uses. Each with the size it counts in the quota.
    pub async fn ended_job_payloads(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(OrgId, BlobHash, i64)>> {
        let rows = sqlx::query(&format!(
            "SELECT b.org_id, b.sha256, b.size FROM blobs b \
             WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.org_id = b.org_id AND {JOB_USES}) \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.org_id = b.org_id AND {JOB_USES} \
                 AND (j.state NOT IN {ENDED} OR j.updated_at >= $1)) \
             AND NOT EXISTS (SELECT 1 FROM files f WHERE f.org_id = b.org_id AND {FILE_USES}) \
             ORDER BY b.created_at LIMIT $2"
        ))
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(org_blob).collect()
    }

    /// Blobs no file and no job has ever used, uploaded before `before` (Unix ms), oldest first
    /// (at most `limit`): what a client left behind when it stopped between an upload and the file
    /// or job that was to use it. Each with the size it counts in the quota.
    pub async fn unused_blobs(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(OrgId, BlobHash, i64)>> {
        let rows = sqlx::query(&format!(
            "SELECT b.org_id, b.sha256, b.size FROM blobs b \
             WHERE b.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.org_id = b.org_id AND {JOB_USES}) \
             AND NOT EXISTS (SELECT 1 FROM files f WHERE f.org_id = b.org_id AND {FILE_USES}) \
             ORDER BY b.created_at LIMIT $2"
        ))
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(org_blob).collect()
    }

    pub async fn agent(&self, id: AgentId) -> Result<AgentRow> {
        let q = format!("SELECT {AGENT_COLS} FROM agents WHERE id = $1");
        one_by(self.pool(), &q, id.to_string(), agent, || {
            format!("agent {id}")
        })
        .await
    }

    pub async fn agents(&self, org: OrgId) -> Result<Vec<AgentRow>> {
        let q =
            format!("SELECT {AGENT_COLS} FROM agents WHERE org_id = $1 ORDER BY created_at, id");
        map_all(&all_by(self.pool(), &q, org.to_string()).await?, agent)
    }

    pub async fn printers(&self, org: OrgId) -> Result<Vec<PrinterRow>> {
        let q = format!("{PRINTER_SELECT} WHERE p.org_id = $1 ORDER BY p.name, p.id");
        let rows = map_all(&all_by(self.pool(), &q, org.to_string()).await?, printer)?;
        self.with_slots(rows, "WHERE p.org_id = $1", Some(org.to_string()))
            .await
    }

    /// Every printer of every organisation (what the server knows of at start).
    pub async fn all_printers(&self) -> Result<Vec<PrinterRow>> {
        let q = format!("{PRINTER_SELECT} ORDER BY p.org_id, p.name, p.id");
        let rows = map_all(&sqlx::query(&q).fetch_all(self.pool()).await?, printer)?;
        self.with_slots(rows, "", None).await
    }

    pub async fn printers_of_agent(&self, agent_id: AgentId) -> Result<Vec<PrinterRow>> {
        let q = format!("{PRINTER_SELECT} WHERE p.agent_id = $1 ORDER BY p.name");
        let rows = map_all(
            &all_by(self.pool(), &q, agent_id.to_string()).await?,
            printer,
        )?;
        self.with_slots(rows, "WHERE p.agent_id = $1", Some(agent_id.to_string()))
            .await
    }

    pub async fn printer(&self, id: PrinterId) -> Result<PrinterRow> {
        let q = format!("{PRINTER_SELECT} WHERE p.id = $1");
        let row = one_by(self.pool(), &q, id.to_string(), printer, || {
            format!("printer {id}")
        })
        .await?;
        let mut rows = self
            .with_slots(vec![row], "WHERE p.id = $1", Some(id.to_string()))
            .await?;
        rows.pop()
            .ok_or_else(|| StoreError::NotFound(format!("printer {id}")))
    }

    /// `rows` with the spools in their slots, read with `cond` on the printers (`p.`) and its bind.
    async fn with_slots(
        &self,
        mut rows: Vec<PrinterRow>,
        cond: &str,
        bind: Option<String>,
    ) -> Result<Vec<PrinterRow>> {
        if rows.is_empty() {
            return Ok(rows);
        }
        let q = format!(
            "SELECT ss.printer_id, ss.slot, s.id, s.remaining_grams, m.name, m.material, m.color \
             FROM spool_slots ss JOIN spools s ON s.id = ss.spool_id \
             JOIN materials m ON m.id = s.material_id JOIN printers p ON p.id = ss.printer_id \
             {cond} ORDER BY ss.printer_id, ss.slot"
        );
        let mut query = sqlx::query(&q);
        if let Some(b) = bind {
            query = query.bind(b);
        }
        let mut by: std::collections::HashMap<PrinterId, Vec<SlotSpool>> = Default::default();
        for r in query.fetch_all(self.pool()).await? {
            by.entry(parsed(&r, "printer_id")?)
                .or_default()
                .push(SlotSpool {
                    slot: r.try_get("slot")?,
                    id: parsed(&r, "id")?,
                    name: r.try_get("name")?,
                    material: r.try_get("material")?,
                    color: r.try_get("color")?,
                    remaining_grams: r.try_get::<f64, _>("remaining_grams")? as f32,
                });
        }
        for row in &mut rows {
            row.slot_spools = by.remove(&row.id).unwrap_or_default();
        }
        Ok(rows)
    }

    /// Claims the `notice` about `printer` (it is unreachable, or in error), at `now`: true for
    /// the one caller that marks it reported, false when a report already stands for this absence
    /// or error (made by another instance sharing the database, or before a restart).
    pub async fn claim_notice(
        &self,
        printer: PrinterId,
        notice: PrinterNotice,
        now: i64,
    ) -> Result<bool> {
        let col = notice.column();
        let n = sqlx::query(&format!(
            "UPDATE printers SET {col} = $1 WHERE id = $2 AND {col} IS NULL"
        ))
        .bind(now)
        .bind(printer.to_string())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Ends the `notice` about `printer` (it is back, or out of error): true for the one caller
    /// that finds one standing (the change is then news), false when none does.
    pub async fn clear_notice(&self, printer: PrinterId, notice: PrinterNotice) -> Result<bool> {
        let col = notice.column();
        let n = sqlx::query(&format!(
            "UPDATE printers SET {col} = NULL WHERE id = $1 AND {col} IS NOT NULL"
        ))
        .bind(printer.to_string())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn job(&self, id: JobId) -> Result<JobRow> {
        let q = format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1");
        one_by(self.pool(), &q, id.to_string(), job, || format!("job {id}")).await
    }

    /// Jobs of an organisation, newest first.
    pub async fn jobs(&self, org: OrgId, limit: i64) -> Result<Vec<JobRow>> {
        self.jobs_between(org, i64::MIN, i64::MAX, None, limit)
            .await
    }

    /// Jobs of an organisation submitted in `[since, until)` (Unix ms), newest first (then by
    /// id); with `after` (a listed job's submission time and id), those that come after it in
    /// that order: the next page, which jobs submitted meanwhile do not shift.
    pub async fn jobs_between(
        &self,
        org: OrgId,
        since: i64,
        until: i64,
        after: Option<(i64, JobId)>,
        limit: i64,
    ) -> Result<Vec<JobRow>> {
        let q = format!(
            "SELECT {JOB_COLS} FROM jobs WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 \
             AND (created_at < $4 OR (created_at = $4 AND id > $5)) \
             ORDER BY created_at DESC, id LIMIT $6"
        );
        let (at, id) = after.map_or((i64::MAX, String::new()), |(t, id)| (t, id.to_string()));
        sqlx::query(&q)
            .bind(org.to_string())
            .bind(since)
            .bind(until)
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(job)
            .collect()
    }

    /// Jobs not yet finished that sit on one of the agent's printers.
    pub async fn open_jobs_of_agent(&self, agent_id: AgentId) -> Result<Vec<(JobRow, String)>> {
        let q = format!(
            "SELECT {}, p.name AS printer_name FROM jobs j JOIN printers p ON p.id = j.printer_id \
             WHERE p.agent_id = $1 AND j.state IN ('assigned', 'transferring', 'printing', 'paused') \
             ORDER BY j.created_at",
            JOB_COLS
                .split(", ")
                .map(|c| format!("j.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(&q)
            .bind(agent_id.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((job(r)?, r.try_get("printer_name")?)))
            .collect()
    }

    /// Organisations with a job in the queue (for the periodic sweep that expires and assigns them).
    pub async fn orgs_with_queued_jobs(&self) -> Result<Vec<OrgId>> {
        let rows = sqlx::query("SELECT DISTINCT org_id FROM jobs WHERE state = 'queued'")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| parsed(r, "org_id")).collect()
    }

    /// Queued jobs of an organisation in the queue's order: higher priority first, then oldest
    /// first (for assignment).
    pub async fn queued_jobs(&self, org: OrgId) -> Result<Vec<JobRow>> {
        let q = format!(
            "SELECT {JOB_COLS} FROM jobs WHERE org_id = $1 AND state = 'queued' \
             ORDER BY priority DESC, created_at, id"
        );
        map_all(&all_by(self.pool(), &q, org.to_string()).await?, job)
    }

    /// Whether a printer has a job in progress.
    pub async fn printer_busy(&self, printer: PrinterId) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE printer_id = $1 \
             AND state IN ('assigned', 'transferring', 'printing', 'paused')",
        )
        .bind(printer.to_string())
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    pub async fn org_links(&self, org: OrgId) -> Result<Vec<(i64, serde_json::Value)>> {
        let rows = sqlx::query("SELECT seq, link FROM org_links WHERE org_id = $1 ORDER BY seq")
            .bind(org.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, json(r, "link")?)))
            .collect()
    }

    /// Milliseconds each printer of `org` spent in each state since the hour `from_ms`:
    /// (printer, state, milliseconds).
    pub async fn fleet_time(
        &self,
        org: OrgId,
        from_ms: i64,
    ) -> Result<Vec<(PrinterId, String, i64)>> {
        let rows = sqlx::query(
            "SELECT r.printer_id, r.state, CAST(SUM(r.ms) AS BIGINT) AS ms FROM printer_rollups r \
             JOIN printers p ON p.id = r.printer_id WHERE p.org_id = $1 AND r.bucket >= $2 \
             GROUP BY r.printer_id, r.state",
        )
        .bind(org.to_string())
        .bind(from_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    parsed(r, "printer_id")?,
                    r.try_get("state")?,
                    r.try_get("ms")?,
                ))
            })
            .collect()
    }

    /// How many jobs of `org` ended since `from_ms`, per printer and final state (a job that
    /// never reached a printer has none).
    pub async fn job_ends(
        &self,
        org: OrgId,
        from_ms: i64,
    ) -> Result<Vec<(Option<PrinterId>, JobState, i64)>> {
        let rows = sqlx::query(&format!(
            "SELECT printer_id, state, COUNT(*) AS n FROM jobs WHERE org_id = $1 AND updated_at >= $2 \
             AND state IN {ENDED} GROUP BY printer_id, state"),
        )
        .bind(org.to_string())
        .bind(from_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    parsed_opt(r, "printer_id")?,
                    job_state(&r.try_get::<String, _>("state")?)?,
                    r.try_get("n")?,
                ))
            })
            .collect()
    }

    /// Hourly state durations of a printer since `from_ms`: (hour start, state, milliseconds), oldest first.
    pub async fn printer_history(
        &self,
        printer: PrinterId,
        from_ms: i64,
    ) -> Result<Vec<(i64, String, i64)>> {
        let rows = sqlx::query(
            "SELECT bucket, state, ms FROM printer_rollups WHERE printer_id = $1 AND bucket >= $2 ORDER BY bucket, state",
        )
        .bind(printer.to_string())
        .bind(from_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("bucket")?, r.try_get("state")?, r.try_get("ms")?)))
            .collect()
    }

    /// The sealed epoch key `epoch` of an organisation (the latest when `None`), with its number.
    pub async fn org_epoch(
        &self,
        org: OrgId,
        epoch: Option<i64>,
    ) -> Result<Option<(i64, serde_json::Value)>> {
        let row = match epoch {
            Some(e) => {
                sqlx::query("SELECT epoch, sealed FROM org_epochs WHERE org_id = $1 AND epoch = $2")
                    .bind(org.to_string())
                    .bind(e)
                    .fetch_optional(self.pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT epoch, sealed FROM org_epochs WHERE org_id = $1 ORDER BY epoch DESC LIMIT 1")
                    .bind(org.to_string())
                    .fetch_optional(self.pool())
                    .await?
            }
        };
        row.as_ref()
            .map(|r| Ok((r.try_get("epoch")?, json(r, "sealed")?)))
            .transpose()
    }

    /// The epoch key `epoch` an admin sealed for `user` after the epoch began (a history grant).
    pub async fn epoch_grant(
        &self,
        org: OrgId,
        epoch: i64,
        user: UserId,
    ) -> Result<Option<serde_json::Value>> {
        let row = sqlx::query(
            "SELECT sealed FROM epoch_grants WHERE org_id = $1 AND epoch = $2 AND user_id = $3",
        )
        .bind(org.to_string())
        .bind(epoch)
        .bind(user.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(|r| json(r, "sealed")).transpose()
    }

    pub async fn device_key(&self, user: UserId) -> Result<Option<serde_json::Value>> {
        let row = sqlx::query("SELECT public FROM device_keys WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(|r| json(r, "public")).transpose()
    }

    pub async fn key_bundle(&self, user: UserId) -> Result<Option<serde_json::Value>> {
        let row = sqlx::query("SELECT bundle FROM key_bundles WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(|r| json(r, "bundle")).transpose()
    }
}

/// Writes.
impl Tx {
    /// Removes file `id` from `org`'s library; returns what it was.
    pub async fn delete_file(&mut self, org: OrgId, id: FileId) -> Result<FileRow> {
        let q = format!("SELECT {FILE_COLS} FROM files WHERE id = $1 AND org_id = $2");
        let row = sqlx::query(&q)
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&mut *self.inner)
            .await?
            .as_ref()
            .map(file)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("file {id}")))?;
        sqlx::query("DELETE FROM files WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(row)
    }

    /// Whether `org` still uses blob `sha256`: a file of its library (its bytes or its sealed
    /// metadata) or a job of it that has not ended.
    pub async fn blob_in_use(&mut self, org: OrgId, sha256: &BlobHash) -> Result<bool> {
        let row = sqlx::query(&format!(
            "SELECT (SELECT COUNT(*) FROM files WHERE org_id = $1 AND (blob_sha256 = $2 OR meta_sha256 = $2)) \
             + (SELECT COUNT(*) FROM jobs WHERE org_id = $1 \
                AND (blob_sha256 = $2 OR label_sha256 = $2) AND state NOT IN {ENDED}) AS n"),
        )
        .bind(org.to_string())
        .bind(sha256.as_str())
        .fetch_one(&mut *self.inner)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    pub async fn insert_file(&mut self, f: &FileRow) -> Result<()> {
        let q = format!("INSERT INTO files ({FILE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        sqlx::query(&q)
            .bind(f.id.to_string())
            .bind(f.org_id.to_string())
            .bind(f.blob_sha256.as_str())
            .bind(f.meta_sha256.as_ref().map(|m| m.as_str().to_owned()))
            .bind(f.manifest.to_string())
            .bind(serde_json::to_string(&f.facts).unwrap_or_else(|_| "{}".into()))
            .bind(f.uploaded_by.to_string())
            .bind(f.created_at)
            .execute(&mut *self.inner)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("file {} already exists", f.id))
                }
                other => other,
            })?;
        Ok(())
    }

    pub async fn insert_enrollment_token(
        &mut self,
        token_hash: &str,
        org: OrgId,
        by: UserId,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO agent_enrollment_tokens (token_hash, org_id, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(org.to_string())
        .bind(by.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Consume an enrollment token; the organisation it was for, if it was valid.
    pub async fn consume_enrollment_token(
        &mut self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<OrgId>> {
        let row = sqlx::query(
            "DELETE FROM agent_enrollment_tokens WHERE token_hash = $1 AND expires_at > $2 RETURNING org_id",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *self.inner)
        .await?;
        row.as_ref().map(|r| parsed(r, "org_id")).transpose()
    }

    pub async fn insert_agent(&mut self, a: &AgentRow) -> Result<()> {
        let q =
            format!("INSERT INTO agents ({AGENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        sqlx::query(&q)
            .bind(a.id.to_string())
            .bind(a.org_id.to_string())
            .bind(&a.name)
            .bind(&a.signing_key)
            .bind(&a.age_recipient)
            .bind(agent_status_str(a.status))
            .bind(a.created_at)
            .bind(a.last_seen_at)
            .execute(&mut *self.inner)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(
                    "an agent with this signing key is already enrolled".into(),
                ),
                other => other,
            })?;
        Ok(())
    }

    pub async fn set_agent_status(&mut self, id: AgentId, status: AgentStatus) -> Result<()> {
        let n = sqlx::query("UPDATE agents SET status = $1 WHERE id = $2")
            .bind(agent_status_str(status))
            .bind(id.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("agent {id}")));
        }
        Ok(())
    }

    pub async fn touch_agent(&mut self, id: AgentId, now: i64) -> Result<()> {
        sqlx::query("UPDATE agents SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Record the printers an agent announced; returns them with their ids (stable per agent and name).
    /// A configuration that now states another material, colour or nozzle than it did ends what a
    /// member set as loaded: the configuration was changed on purpose.
    pub async fn upsert_printer(
        &mut self,
        org: OrgId,
        agent_id: AgentId,
        info: &PrinterInfo,
        now: i64,
    ) -> Result<PrinterId> {
        let existing =
            sqlx::query("SELECT id, info FROM printers WHERE agent_id = $1 AND name = $2")
                .bind(agent_id.to_string())
                .bind(&info.name)
                .fetch_optional(&mut *self.inner)
                .await?;
        let text = serde_json::to_string(info).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Some(r) = existing {
            let id: PrinterId = parsed(&r, "id")?;
            let before: PrinterInfo = json(&r, "info")?;
            let reconfigured = (&before.material, &before.color, before.nozzle_mm)
                != (&info.material, &info.color, info.nozzle_mm);
            let q = if reconfigured {
                "UPDATE printers SET info = $1, loaded = NULL WHERE id = $2"
            } else {
                "UPDATE printers SET info = $1 WHERE id = $2"
            };
            sqlx::query(q)
                .bind(text)
                .bind(id.to_string())
                .execute(&mut *self.inner)
                .await?;
            if reconfigured {
                self.unload_printer(id).await?;
            }
            return Ok(id);
        }
        let id = PrinterId::new();
        sqlx::query("INSERT INTO printers (id, org_id, agent_id, name, info, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id.to_string())
            .bind(org.to_string())
            .bind(agent_id.to_string())
            .bind(&info.name)
            .bind(text)
            .bind(now)
            .execute(&mut *self.inner)
            .await?;
        Ok(id)
    }

    /// Sets what a member says the printer has loaded (`None`: back to the agent's configuration).
    /// Returns whether the printer exists.
    pub async fn set_printer_loaded(
        &mut self,
        id: PrinterId,
        loaded: Option<&LoadedRequest>,
    ) -> Result<bool> {
        let text = loaded
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let n = sqlx::query("UPDATE printers SET loaded = $1 WHERE id = $2")
            .bind(text)
            .bind(id.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub async fn insert_job(&mut self, j: &JobRow) -> Result<()> {
        let q = format!(
            "INSERT INTO jobs ({JOB_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        );
        sqlx::query(&q)
            .bind(j.id.to_string())
            .bind(j.org_id.to_string())
            .bind(j.printer_id.map(|p| p.to_string()))
            .bind(j.pool.clone())
            .bind(j.blob_sha256.as_str())
            .bind(j.manifest.to_string())
            .bind(serde_json::to_string(&j.facts).unwrap_or_else(|_| "{}".into()))
            .bind(job_state_str(j.state))
            .bind(j.message.clone())
            .bind(j.submitted_by.to_string())
            .bind(j.created_at)
            .bind(j.updated_at)
            .bind(j.priority)
            .bind(j.label.as_ref().map(|l| l.meta_sha256.as_str().to_owned()))
            .bind(j.label.as_ref().map(|l| l.manifest.to_string()))
            .bind(j.approval.as_ref().map(|a| a.state.as_str()))
            .bind(
                j.approval
                    .as_ref()
                    .and_then(|a| a.decided.map(|(by, _)| by.to_string())),
            )
            .bind(
                j.approval
                    .as_ref()
                    .and_then(|a| a.decided.map(|(_, at)| at)),
            )
            .execute(&mut *self.inner)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("job {} already exists", j.id))
                }
                other => other,
            })?;
        Ok(())
    }

    /// Holds `printer` (no new job) or releases it; returns whether that changed anything.
    pub async fn set_held(&mut self, printer: PrinterId, held: bool) -> Result<bool> {
        let row = sqlx::query("SELECT held FROM printers WHERE id = $1")
            .bind(printer.to_string())
            .fetch_optional(&mut *self.inner)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("printer {printer}")))?;
        if (row.try_get::<i64, _>("held")? != 0) == held {
            return Ok(false);
        }
        sqlx::query("UPDATE printers SET held = $1 WHERE id = $2")
            .bind(i64::from(held))
            .bind(printer.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(true)
    }

    /// Whether `printer` waits for a member to say its bed is clear between jobs.
    pub async fn set_confirm_clear_bed(&mut self, printer: PrinterId, on: bool) -> Result<()> {
        let n = sqlx::query("UPDATE printers SET confirm_clear_bed = $1 WHERE id = $2")
            .bind(i64::from(on))
            .bind(printer.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("printer {printer}")));
        }
        Ok(())
    }

    /// `job` ended after printing on `printer`: when the printer waits for its bed to be cleared,
    /// its part is on the bed now. Returns whether the printer now waits.
    pub async fn bed_used(&mut self, printer: PrinterId, job: JobId) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE printers SET bed_job = $1 WHERE id = $2 AND confirm_clear_bed <> 0",
        )
        .bind(job.to_string())
        .bind(printer.to_string())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// A member says `printer`'s bed is clear; returns the job whose part was on it, if any.
    pub async fn bed_cleared(&mut self, printer: PrinterId) -> Result<Option<JobId>> {
        let row = sqlx::query("SELECT bed_job FROM printers WHERE id = $1")
            .bind(printer.to_string())
            .fetch_optional(&mut *self.inner)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("printer {printer}")))?;
        let was = parsed_opt(&row, "bed_job")?;
        sqlx::query("UPDATE printers SET bed_job = NULL WHERE id = $1")
            .bind(printer.to_string())
            .execute(&mut *self.inner)
            .await?;
        Ok(was)
    }

    /// Assigns a queued job to `printer`; returns whether it was still queued (another dispatch,
    /// here or on another instance, may have assigned it a moment before: only one wins).
    pub async fn assign_job(&mut self, id: JobId, printer: PrinterId, now: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE jobs SET state = 'assigned', printer_id = $1, updated_at = $2 \
             WHERE id = $3 AND state = 'queued'",
        )
        .bind(printer.to_string())
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Sets a queued job's priority; returns whether it was still queued (a job already sent to a
    /// printer keeps its place there).
    pub async fn set_job_priority(&mut self, id: JobId, priority: i64, now: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE jobs SET priority = $1, updated_at = $2 WHERE id = $3 AND state = 'queued'",
        )
        .bind(priority)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Decides a queued job's pending approval: `Approved` or `Rejected`, by `by` at `now`; false
    /// when it is not queued and pending any more (decided, cancelled or expired meanwhile).
    pub async fn decide_approval(
        &mut self,
        id: JobId,
        decision: ApprovalState,
        by: UserId,
        now: i64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE jobs SET approval = $1, approval_by = $2, approval_at = $3, updated_at = $3 \
             WHERE id = $4 AND state = 'queued' AND approval = 'pending'",
        )
        .bind(decision.as_str())
        .bind(by.to_string())
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Move a job to `state` (and optionally a printer), unless it is already final. Returns whether it changed.
    pub async fn update_job(
        &mut self,
        id: JobId,
        state: JobState,
        printer: Option<PrinterId>,
        message: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let n = sqlx::query(&format!(
            "UPDATE jobs SET state = $1, printer_id = COALESCE($2, printer_id), message = COALESCE($3, message), \
             updated_at = $4 WHERE id = $5 AND state NOT IN {ENDED}"),
        )
        .bind(job_state_str(state))
        .bind(printer.map(|p| p.to_string()))
        .bind(message.map(str::to_owned))
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *self.inner)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The chain's next free position (0 when there is no genesis yet).
    pub async fn next_org_link_seq(&mut self, org: OrgId) -> Result<i64> {
        Ok(sqlx::query("SELECT CAST(COALESCE(MAX(seq) + 1, 0) AS BIGINT) AS n FROM org_links WHERE org_id = $1")
            .bind(org.to_string())
            .fetch_one(&mut *self.inner)
            .await?
            .try_get("n")?)
    }

    /// Append a link to the organisation's chain at exactly `seq` (0 is the genesis). A concurrent append
    /// at the same position is a conflict, so the chain never forks.
    pub async fn append_org_link(
        &mut self,
        org: OrgId,
        seq: i64,
        link: &serde_json::Value,
        by: UserId,
        now: i64,
    ) -> Result<()> {
        let next = self.next_org_link_seq(org).await?;
        if seq != next {
            return Err(StoreError::Conflict(format!(
                "the chain's next position is {next}, not {seq}"
            )));
        }
        sqlx::query("INSERT INTO org_links (org_id, seq, link, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(org.to_string())
            .bind(seq)
            .bind(link.to_string())
            .bind(by.to_string())
            .bind(now)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }

    /// Add time spent in a state to a printer's hourly rollup.
    pub async fn add_rollup(
        &mut self,
        printer: PrinterId,
        bucket: i64,
        state: &str,
        ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO printer_rollups (printer_id, bucket, state, ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (printer_id, bucket, state) DO UPDATE SET ms = printer_rollups.ms + excluded.ms",
        )
        .bind(printer.to_string())
        .bind(bucket)
        .bind(state)
        .bind(ms)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Store a sealed epoch key. Epochs are written once: a second write of the same epoch is a conflict.
    pub async fn insert_org_epoch(
        &mut self,
        org: OrgId,
        epoch: i64,
        sealed: &serde_json::Value,
        by: UserId,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO org_epochs (org_id, epoch, sealed, created_by, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(org.to_string())
            .bind(epoch)
            .bind(sealed.to_string())
            .bind(by.to_string())
            .bind(now)
            .execute(&mut *self.inner)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("epoch {epoch} already exists")),
                other => other,
            })?;
        Ok(())
    }

    /// Store (or replace) the key of an existing `epoch` sealed for one member: re-granting after
    /// the member's device changed replaces the copy they could no longer open.
    pub async fn put_epoch_grant(
        &mut self,
        org: OrgId,
        epoch: i64,
        user: UserId,
        sealed: &serde_json::Value,
        by: UserId,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO epoch_grants (org_id, epoch, user_id, sealed, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, epoch, user_id) DO UPDATE \
             SET sealed = excluded.sealed, created_by = excluded.created_by, created_at = excluded.created_at",
        )
        .bind(org.to_string())
        .bind(epoch)
        .bind(user.to_string())
        .bind(sealed.to_string())
        .bind(by.to_string())
        .bind(now)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    pub async fn put_device_key(
        &mut self,
        user: UserId,
        public: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        self.put_user_document(
            "INSERT INTO device_keys (user_id, public, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET public = excluded.public, updated_at = excluded.updated_at",
            user,
            public,
            now,
        )
        .await
    }

    pub async fn put_key_bundle(
        &mut self,
        user: UserId,
        bundle: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        self.put_user_document(
            "INSERT INTO key_bundles (user_id, bundle, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET bundle = excluded.bundle, updated_at = excluded.updated_at",
            user,
            bundle,
            now,
        )
        .await
    }

    /// Stores a user's one JSON document with `upsert`, a statement taking the user, the
    /// document and the time, in that order.
    async fn put_user_document(
        &mut self,
        upsert: &'static str,
        user: UserId,
        document: &serde_json::Value,
        now: i64,
    ) -> Result<()> {
        sqlx::query(upsert)
            .bind(user.to_string())
            .bind(document.to_string())
            .bind(now)
            .execute(&mut *self.inner)
            .await?;
        Ok(())
    }
}
