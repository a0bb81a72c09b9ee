//! Timelapses (migration 0010): the sealed frames an agent took of a job, kept with the job.
//!
//! A frame's bytes are a blob under its hash (`blobdir`), like a sealed file's; `all_blob_hashes`
//! and `blob_referenced` count frames too, so backups copy them and deleting a file whose bytes a
//! frame shares keeps them. Frames count towards the organisation's storage quota.
//!
//! A timelapse keeps at most `max_frames` frames, evenly spaced: frame `seq` (its place among the
//! frames that arrived) is kept when `seq` is a multiple of `stride`; reaching the limit doubles
//! `stride` and drops the frames in between ([`Tx::add_timelapse_frame`]).

use crate::fleet::ENDED;
use crate::rows::{all_by, map_all, one_by, parsed};
use crate::{Result, Store, Tx};
use hearth_proto::ids::{BlobHash, JobId, OrgId};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A job's timelapse as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelapseRow {
    pub job_id: JobId,
    pub org_id: OrgId,
    pub arrived: i64,
    pub stride: i64,
    pub over_quota: i64,
    pub created_at: i64,
    /// Frames kept, their bytes, and when the first and the last arrived.
    pub frames: i64,
    pub bytes: i64,
    pub first_at: Option<i64>,
    pub last_at: Option<i64>,
    /// When its job ended (reached a final state), if it has: what its expiry counts from.
    pub ended_at: Option<i64>,
}

/// One kept frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameRow {
    pub job_id: JobId,
    pub seq: i64,
    pub org_id: OrgId,
    pub sha256: BlobHash,
    pub size: i64,
    /// The agent's signed snapshot manifest (JSON text, opaque to the server).
    pub manifest: String,
    pub received_at: i64,
}

/// What became of a frame offered to a timelapse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// Kept, as this frame number; `None`: it fell between two kept frames of the spacing, or
    /// the quota was full.
    pub kept: Option<i64>,
    /// Not kept because the organisation's storage quota was full (and counted).
    pub over_quota: bool,
    /// Frames thinned out to make room: their blobs are the caller's to remove once committed,
    /// unless still referenced.
    pub dropped: Vec<BlobHash>,
}

const TIMELAPSE_COLS: &str = "t.job_id, t.org_id, t.arrived, t.stride, t.over_quota, t.created_at, \
     COUNT(f.seq) AS frames, CAST(COALESCE(SUM(f.size), 0) AS BIGINT) AS bytes, \
     MIN(f.received_at) AS first_at, MAX(f.received_at) AS last_at, j.state, j.updated_at";
const TIMELAPSE_FROM: &str = "FROM timelapses t JOIN jobs j ON j.id = t.job_id \
     LEFT JOIN timelapse_frames f ON f.job_id = t.job_id";
const TIMELAPSE_GROUP: &str = "GROUP BY t.job_id, t.org_id, t.arrived, t.stride, t.over_quota, t.created_at, j.state, j.updated_at";

fn timelapse(r: &AnyRow) -> Result<TimelapseRow> {
    Ok(TimelapseRow {
        job_id: parsed(r, "job_id")?,
        org_id: parsed(r, "org_id")?,
        arrived: r.try_get("arrived")?,
        stride: r.try_get("stride")?,
        over_quota: r.try_get("over_quota")?,
        created_at: r.try_get("created_at")?,
        frames: r.try_get("frames")?,
        bytes: r.try_get("bytes")?,
        first_at: r.try_get("first_at")?,
        last_at: r.try_get("last_at")?,
        ended_at: crate::fleet::job_state(&r.try_get::<String, _>("state")?)?
            .is_final()
            .then(|| r.try_get("updated_at"))
            .transpose()?,
    })
}

const FRAME_COLS: &str = "job_id, seq, org_id, sha256, size, manifest, received_at";

fn frame(r: &AnyRow) -> Result<FrameRow> {
    Ok(FrameRow {
        job_id: parsed(r, "job_id")?,
        seq: r.try_get("seq")?,
        org_id: parsed(r, "org_id")?,
        sha256: parsed(r, "sha256")?,
        size: r.try_get("size")?,
        manifest: r.try_get("manifest")?,
        received_at: r.try_get("received_at")?,
    })
}

impl Store {
    /// The timelapses of an organisation, newest first.
    pub async fn timelapses(&self, org: OrgId) -> Result<Vec<TimelapseRow>> {
        let q = format!(
            "SELECT {TIMELAPSE_COLS} {TIMELAPSE_FROM} WHERE t.org_id = $1 {TIMELAPSE_GROUP} \
             ORDER BY t.created_at DESC, t.job_id"
        );
        map_all(&all_by(self.pool(), &q, org.to_string()).await?, timelapse)
    }

    /// A job's timelapse (`NotFound` when no frame of it ever arrived).
    pub async fn timelapse(&self, job: JobId) -> Result<TimelapseRow> {
        let q = format!(
            "SELECT {TIMELAPSE_COLS} {TIMELAPSE_FROM} WHERE t.job_id = $1 {TIMELAPSE_GROUP}"
        );
        one_by(self.pool(), &q, job.to_string(), timelapse, || {
            format!("a timelapse of job {job}")
        })
        .await
    }

    /// A job's kept frames, in order.
    pub async fn timelapse_frames(&self, job: JobId) -> Result<Vec<FrameRow>> {
        let q = format!("SELECT {FRAME_COLS} FROM timelapse_frames WHERE job_id = $1 ORDER BY seq");
        map_all(&all_by(self.pool(), &q, job.to_string()).await?, frame)
    }

    /// One kept frame of a job.
    pub async fn timelapse_frame(&self, job: JobId, seq: i64) -> Result<FrameRow> {
        let row = sqlx::query(&format!(
            "SELECT {FRAME_COLS} FROM timelapse_frames WHERE job_id = $1 AND seq = $2"
        ))
        .bind(job.to_string())
        .bind(seq)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(frame).transpose()?.ok_or_else(|| {
            crate::StoreError::NotFound(format!("frame {seq} of job {job}'s timelapse"))
        })
    }

    /// The timelapses of jobs that ended (a final state) before `before` (Unix ms), oldest first:
    /// what a retention sweep removes.
    pub async fn timelapses_ended_before(&self, before: i64) -> Result<Vec<(OrgId, JobId)>> {
        let rows = sqlx::query(&format!(
            "SELECT t.org_id, t.job_id FROM timelapses t JOIN jobs j ON j.id = t.job_id \
             WHERE j.state IN {ENDED} AND j.updated_at < $1 \
             ORDER BY j.updated_at"
        ))
        .bind(before)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((parsed(r, "org_id")?, parsed(r, "job_id")?)))
            .collect()
    }
}

impl Tx {
    /// Offers a frame of `job` (in `org`) to its timelapse, which keeps at most `max_frames`
    /// (at least 2): a frame that would be one too many first drops every other kept frame and
    /// doubles the spacing, then is kept if it falls on the new spacing. A frame that would take
    /// the organisation over `quota` bytes is not kept.
    pub async fn add_timelapse_frame(
        &mut self,
        f: &FrameRow,
        quota: i64,
        max_frames: i64,
    ) -> Result<Added> {
        sqlx::query(
            "INSERT INTO timelapses (job_id, org_id, arrived, stride, over_quota, created_at) \
             VALUES ($1, $2, 0, 1, 0, $3) ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(f.job_id.to_string())
        .bind(f.org_id.to_string())
        .bind(f.received_at)
        .execute(&mut *self.inner)
        .await?;
        // Locks the timelapse's row: frames of one job are numbered one at a time.
        let row = sqlx::query(
            "UPDATE timelapses SET arrived = arrived + 1 WHERE job_id = $1 RETURNING arrived, stride",
        )
        .bind(f.job_id.to_string())
        .fetch_one(&mut *self.inner)
        .await?;
        let seq: i64 = row.try_get::<i64, _>("arrived")? - 1;
        let mut stride: i64 = row.try_get("stride")?;
        let mut added = Added {
            kept: None,
            over_quota: false,
            dropped: Vec::new(),
        };
        if seq % stride != 0 {
            return Ok(added);
        }
        let kept: i64 = sqlx::query("SELECT COUNT(*) AS n FROM timelapse_frames WHERE job_id = $1")
            .bind(f.job_id.to_string())
            .fetch_one(&mut *self.inner)
            .await?
            .try_get("n")?;
        if kept >= max_frames.max(2) {
            // Every other kept frame goes: the spacing doubles and stays even.
            stride *= 2;
            let rows = sqlx::query(
                "DELETE FROM timelapse_frames WHERE job_id = $1 AND seq % $2 <> 0 RETURNING sha256",
            )
            .bind(f.job_id.to_string())
            .bind(stride)
            .fetch_all(&mut *self.inner)
            .await?;
            for r in &rows {
                added.dropped.push(parsed(r, "sha256")?);
            }
            sqlx::query("UPDATE timelapses SET stride = $1 WHERE job_id = $2")
                .bind(stride)
                .bind(f.job_id.to_string())
                .execute(&mut *self.inner)
                .await?;
            if seq % stride != 0 {
                return Ok(added);
            }
        }
        let usage = self.usage(f.org_id).await?;
        if usage.used + usage.reserved + f.size > quota {
            sqlx::query("UPDATE timelapses SET over_quota = over_quota + 1 WHERE job_id = $1")
                .bind(f.job_id.to_string())
                .execute(&mut *self.inner)
                .await?;
            added.over_quota = true;
            return Ok(added);
        }
        sqlx::query(&format!(
            "INSERT INTO timelapse_frames ({FRAME_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(f.job_id.to_string())
        .bind(seq)
        .bind(f.org_id.to_string())
        .bind(f.sha256.as_str())
        .bind(f.size)
        .bind(f.manifest.clone())
        .bind(f.received_at)
        .execute(&mut *self.inner)
        .await?;
        added.kept = Some(seq);
        Ok(added)
    }

    /// Deletes a job's timelapse; returns its frames' hashes and sizes (the blobs are the
    /// caller's to remove once committed, unless still referenced).
    pub async fn delete_timelapse(&mut self, job: JobId) -> Result<Vec<(BlobHash, i64)>> {
        let rows =
            sqlx::query("DELETE FROM timelapse_frames WHERE job_id = $1 RETURNING sha256, size")
                .bind(job.to_string())
                .fetch_all(&mut *self.inner)
                .await?;
        let n = sqlx::query("DELETE FROM timelapses WHERE job_id = $1")
            .bind(job.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(crate::StoreError::NotFound(format!(
                "a timelapse of job {job}"
            )));
        }
        rows.iter()
            .map(|r| Ok((parsed(r, "sha256")?, r.try_get("size")?)))
            .collect()
    }
}
