//! The live side of the fleet: connected agents, the latest telemetry of every printer (in memory, never
//! written per message), job dispatch, and the per-organisation event stream.
//!
//! Telemetry is kept only as "latest state" here; the database sees printers, jobs and their transitions.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use hearth_proto::agent::{AgentJob, Heater, JobState, PrinterState, PrinterTelemetry, ServerMsg};
use hearth_proto::api::{Event, HeatRequest, Job, Printer, PrinterCamera};
use hearth_proto::fit::{PrinterSetup, misfits};
use hearth_proto::ids::{AgentId, JobId, OrgId, PrinterId};
use hearth_proto::time_fmt::{now_ms, rfc3339};
use hearth_store::fleet::{JobRow, PrinterRow};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{broadcast, mpsc};

/// A connected agent.
#[derive(Debug, Clone)]
pub struct AgentConn {
    pub org_id: OrgId,
    /// Distinguishes this connection from a newer one of the same agent.
    pub conn_id: u64,
    pub tx: mpsc::Sender<ServerMsg>,
    /// SHA-256 of the bearer token for this connection's HTTP calls.
    pub http_token_hash: String,
}

#[derive(Debug)]
pub struct Hub {
    agents: Mutex<HashMap<AgentId, AgentConn>>,
    http_tokens: Mutex<HashMap<String, (AgentId, OrgId)>>,
    telemetry: Mutex<HashMap<PrinterId, (PrinterTelemetry, i64)>>,
    events: broadcast::Sender<(OrgId, Event)>,
    next_conn: std::sync::atomic::AtomicU64,
    /// Per printer: the state it is in and since when, for the history rollups.
    since: Mutex<HashMap<PrinterId, (PrinterState, i64)>>,
    /// Milliseconds per (printer, hour, state) not yet written to the database.
    pending: Mutex<HashMap<(PrinterId, i64, PrinterState), i64>>,
    /// Held from taking `pending` until its rows are committed: a history read flushes first, and
    /// without it a read concurrent with another flush found that flush's rows taken but not
    /// yet written (the dashboard reads every printer's history at once).
    flushing: tokio::sync::Mutex<()>,
    /// The last progress each running job's printer reported (memory only), for what a job that
    /// is cancelled or fails took from its spool ([`Hub::take_progress`]).
    progress: Mutex<HashMap<JobId, f32>>,
    /// The latest sealed camera frame of each printer (memory only: frames are not kept).
    snapshots: Mutex<HashMap<PrinterId, StoredSnapshot>>,
    /// Per printer, the RFID tags last seen in its slots (`routes::inventory::slots_seen` acts
    /// only when they change).
    tags: Mutex<HashMap<PrinterId, SlotTags>>,
    /// The other instances, when several share the database (`crate::cluster`).
    cluster: std::sync::OnceLock<std::sync::Arc<crate::cluster::Cluster>>,
    /// Each printer's recent temperatures, from the printer events published here.
    temps: Mutex<HashMap<PrinterId, crate::temps::History>>,
}

/// A printer's slots, each with the RFID tag of the spool in it, if any.
pub type SlotTags = Vec<(String, Option<String>)>;

/// A sealed camera frame as an agent sent it (`routes::camera`).
#[derive(Debug, Clone)]
pub struct StoredSnapshot {
    /// The agent's signed manifest, opaque here.
    pub manifest: serde_json::Value,
    pub sealed: bytes::Bytes,
    /// When it arrived, Unix milliseconds.
    pub received_at: i64,
}

impl StoredSnapshot {
    /// As members receive it (`GET .../snapshot`), and as one instance hands it to another.
    pub fn to_api(&self) -> hearth_proto::api::Snapshot {
        use base64::Engine;
        hearth_proto::api::Snapshot {
            manifest: self.manifest.clone(),
            sealed: base64::engine::general_purpose::STANDARD.encode(&self.sealed),
            received_at: rfc3339(self.received_at),
        }
    }

    /// Back from [`StoredSnapshot::to_api`]; `None` for one that does not decode.
    pub fn from_api(s: hearth_proto::api::Snapshot) -> Option<Self> {
        use base64::Engine;
        Some(StoredSnapshot {
            sealed: base64::engine::general_purpose::STANDARD
                .decode(s.sealed.as_bytes())
                .ok()?
                .into(),
            received_at: hearth_proto::time_fmt::parse_rfc3339(&s.received_at)?,
            manifest: s.manifest,
        })
    }
}

const HOUR_MS: i64 = 3_600_000;

/// Memory the latest camera frames of all printers may take together (about 2 000 printers of
/// 250 KiB frames).
pub const SNAPSHOTS_MAX_BYTES: usize = 512 * 1024 * 1024;

/// Split the interval `[start, end)` at hour boundaries: (hour start, milliseconds in it).
pub fn split_hours(start: i64, end: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut t = start;
    while t < end {
        let bucket = t - t.rem_euclid(HOUR_MS);
        let stop = end.min(bucket + HOUR_MS);
        out.push((bucket, stop - t));
        t = stop;
    }
    out
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            agents: Mutex::default(),
            http_tokens: Mutex::default(),
            telemetry: Mutex::default(),
            events: broadcast::channel(1024).0,
            next_conn: Default::default(),
            since: Mutex::default(),
            pending: Mutex::default(),
            flushing: tokio::sync::Mutex::default(),
            progress: Mutex::default(),
            snapshots: Mutex::default(),
            tags: Mutex::default(),
            cluster: std::sync::OnceLock::new(),
            temps: Mutex::default(),
        }
    }
}

/// The guarded value, also after a panic elsewhere held the lock (nothing here is left half-done).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a printer shows while its agent is away.
pub fn offline() -> PrinterTelemetry {
    PrinterTelemetry {
        state: PrinterState::Offline,
        heaters: vec![],
        job_id: None,
        progress: None,
        layer: None,
        total_layers: None,
        elapsed_seconds: None,
        remaining_seconds: None,
        error: Some("its agent is not connected".into()),
        slots: Vec::new(),
        light: None,
        speed_percent: None,
        flow_percent: None,
        fan_percent: None,
    }
}

impl Hub {
    /// Register a connection; a previous connection of the same agent is replaced (and its sender dropped,
    /// which ends it).
    pub fn connect(
        &self,
        agent: AgentId,
        org_id: OrgId,
        tx: mpsc::Sender<ServerMsg>,
        http_token_hash: String,
    ) -> u64 {
        let conn_id = self
            .next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let old = lock(&self.agents).insert(
            agent,
            AgentConn {
                org_id,
                conn_id,
                tx,
                http_token_hash: http_token_hash.clone(),
            },
        );
        let mut tokens = lock(&self.http_tokens);
        if let Some(old) = old {
            tokens.remove(&old.http_token_hash);
        }
        tokens.insert(http_token_hash, (agent, org_id));
        drop(tokens);
        self.publish(
            org_id,
            Event::Agent {
                agent_id: agent,
                connected: true,
            },
        );
        if let Some(c) = self.cluster.get() {
            // The other instances learn at once where to send this agent's commands.
            let (agents, printers) = self.held();
            c.presence(agents, printers);
        }
        conn_id
    }

    /// Forget a connection (only if it is still the current one). Returns whether it was.
    pub fn disconnect(&self, agent: AgentId, conn_id: u64) -> bool {
        let mut agents = lock(&self.agents);
        match agents.get(&agent) {
            Some(c) if c.conn_id == conn_id => {
                let c = agents.remove(&agent);
                drop(agents);
                if let Some(c) = c {
                    lock(&self.http_tokens).remove(&c.http_token_hash);
                    self.publish(
                        c.org_id,
                        Event::Agent {
                            agent_id: agent,
                            connected: false,
                        },
                    );
                }
                true
            }
            _ => false,
        }
    }

    /// The link to the other instances, when there are any.
    pub fn cluster(&self) -> Option<&std::sync::Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Joins this hub to the other instances (once, at start).
    pub fn set_cluster(&self, cluster: std::sync::Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// Whether the agent is connected, to this instance or to another.
    pub fn is_connected(&self, agent: AgentId) -> bool {
        lock(&self.agents).contains_key(&agent)
            || self.cluster.get().is_some_and(|c| c.holds(agent))
    }

    /// Where to send the agent a message: its connection here, or (connected to another
    /// instance) a channel whose messages go there through the cluster.
    pub fn sender(&self, agent: AgentId) -> Option<mpsc::Sender<ServerMsg>> {
        if let Some(tx) = self.local_sender(agent) {
            return Some(tx);
        }
        let cluster = self.cluster.get().filter(|c| c.holds(agent))?.clone();
        let (tx, mut rx) = mpsc::channel::<ServerMsg>(16);
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                cluster.to_agent(agent, &msg);
            }
        });
        Some(tx)
    }

    /// The agent's connection to this instance.
    pub fn local_sender(&self, agent: AgentId) -> Option<mpsc::Sender<ServerMsg>> {
        lock(&self.agents).get(&agent).map(|c| c.tx.clone())
    }

    /// The agent and organisation an HTTP bearer token (from `Welcome`) belongs to: a connection
    /// to this instance, or to another.
    pub fn agent_for_http_token(&self, token_hash: &str) -> Option<(AgentId, OrgId)> {
        let local = lock(&self.http_tokens).get(token_hash).copied();
        local.or_else(|| self.cluster.get().and_then(|c| c.token(token_hash)))
    }

    /// The agents connected here and their printers' telemetry (what this instance tells the
    /// others).
    pub fn held(
        &self,
    ) -> (
        Vec<crate::cluster::HeldAgent>,
        Vec<(PrinterId, PrinterTelemetry)>,
    ) {
        let agents = lock(&self.agents)
            .iter()
            .map(|(id, c)| crate::cluster::HeldAgent {
                agent: *id,
                org: c.org_id,
                token_hash: c.http_token_hash.clone(),
            })
            .collect();
        let printers = lock(&self.telemetry)
            .iter()
            .map(|(p, (t, _))| (*p, t.clone()))
            .collect();
        (agents, printers)
    }

    pub fn set_telemetry(&self, printer: PrinterId, t: PrinterTelemetry) {
        let now = now_ms();
        if let (Some(job), Some(p)) = (t.job_id, t.progress) {
            lock(&self.progress).insert(job, p);
        }
        self.account(printer, Some(t.state), now);
        lock(&self.telemetry).insert(printer, (t, now));
    }

    pub fn clear_telemetry(&self, printers: &[PrinterId]) {
        let now = now_ms();
        let mut t = lock(&self.telemetry);
        for p in printers {
            t.remove(p);
            self.account(*p, None, now);
        }
    }

    /// Close the printer's current state interval at `now` and open `next` (none: stop tracking).
    fn account(&self, printer: PrinterId, next: Option<PrinterState>, now: i64) {
        let mut since = lock(&self.since);
        if let Some((state, from)) = since.remove(&printer) {
            let mut pending = lock(&self.pending);
            for (bucket, ms) in split_hours(from, now) {
                *pending.entry((printer, bucket, state)).or_default() += ms;
            }
        }
        if let Some(state) = next {
            since.insert(printer, (state, now));
        }
    }

    /// Write the accumulated state durations (up to now) to the hourly rollups.
    pub async fn flush_rollups(
        &self,
        store: &hearth_store::Store,
    ) -> Result<usize, hearth_store::StoreError> {
        let _flushing = self.flushing.lock().await;
        let now = now_ms();
        let open: Vec<(PrinterId, PrinterState)> = lock(&self.since)
            .iter()
            .map(|(p, (s, _))| (*p, *s))
            .collect();
        for (p, s) in open {
            self.account(p, Some(s), now);
        }
        let pending = std::mem::take(&mut *lock(&self.pending));
        if pending.is_empty() {
            return Ok(0);
        }
        let mut tx = store.begin().await?;
        for ((printer, bucket, state), ms) in &pending {
            tx.add_rollup(*printer, *bucket, state.as_str(), *ms)
                .await?;
        }
        tx.commit().await?;
        Ok(pending.len())
    }

    /// Keeps `s` as the printer's latest frame. Above [`SNAPSHOTS_MAX_BYTES`] in all, the frames
    /// that arrived longest ago are dropped first (a printer whose camera went quiet).
    pub fn set_snapshot(&self, printer: PrinterId, s: StoredSnapshot) {
        let mut all = lock(&self.snapshots);
        all.insert(printer, s);
        let mut total: usize = all.values().map(|s| s.sealed.len()).sum();
        while total > SNAPSHOTS_MAX_BYTES {
            let Some(oldest) = all
                .iter()
                .filter(|(id, _)| **id != printer)
                .min_by_key(|(_, s)| s.received_at)
                .map(|(id, _)| *id)
            else {
                break;
            };
            total -= all.remove(&oldest).map_or(0, |s| s.sealed.len());
        }
    }

    /// The printer's latest frame: held here, or fetched from the instance holding it.
    pub async fn snapshot(&self, printer: PrinterId) -> Option<StoredSnapshot> {
        if let Some(s) = self.local_snapshot(printer) {
            return Some(s);
        }
        self.cluster.get()?.fetch_frame(printer).await
    }

    /// The printer's latest frame if this instance holds it.
    pub fn local_snapshot(&self, printer: PrinterId) -> Option<StoredSnapshot> {
        lock(&self.snapshots).get(&printer).cloned()
    }

    /// When the latest frame of `printer` arrived (Unix milliseconds), here or at another instance.
    pub fn snapshot_at(&self, printer: PrinterId) -> Option<i64> {
        let local = lock(&self.snapshots).get(&printer).map(|s| s.received_at);
        local.or_else(|| self.cluster.get().and_then(|c| c.snapshot_at(printer)))
    }

    /// Whether `seen` (slot names with the RFID tag in each) differs from what `printer` reported
    /// last; remembers it.
    pub fn tags_changed(&self, printer: PrinterId, seen: &[(String, Option<String>)]) -> bool {
        let mut tags = lock(&self.tags);
        if tags.get(&printer).map(Vec::as_slice) == Some(seen) {
            return false;
        }
        tags.insert(printer, seen.to_vec());
        true
    }

    /// Forgets the tags `printer` reported, so the next report is acted on again (after a
    /// failure to act on it).
    pub fn forget_tags(&self, printer: PrinterId) {
        lock(&self.tags).remove(&printer);
    }

    /// The last progress reported for `job`, forgotten once taken (when the job ends).
    pub fn take_progress(&self, job: JobId) -> Option<f32> {
        lock(&self.progress).remove(&job)
    }

    /// Latest telemetry and when it arrived (here, or at the instance holding the printer's
    /// agent); offline if none (agent away).
    pub fn telemetry(&self, printer: PrinterId) -> (PrinterTelemetry, Option<i64>) {
        let local = lock(&self.telemetry).get(&printer).cloned();
        match local.or_else(|| self.cluster.get().and_then(|c| c.telemetry(printer))) {
            Some((t, at)) => (t, Some(at)),
            None => (offline(), None),
        }
    }

    /// Passes `event` to this instance's event streams and to the other instances'.
    pub fn publish(&self, org: OrgId, event: Event) {
        if let Some(c) = self.cluster.get() {
            c.publish_event(org, &event);
        }
        self.publish_local(org, event);
    }

    /// Passes `event` to this instance's event streams only.
    pub fn publish_local(&self, org: OrgId, event: Event) {
        if let Event::Printer { printer } = &event {
            lock(&self.temps)
                .entry(printer.id)
                .or_default()
                .record(now_ms(), &printer.telemetry.heaters);
        }
        // No subscriber is not an error.
        let _ = self.events.send((org, event));
    }

    /// `printer`'s temperatures since `since_ms` (Unix milliseconds), oldest first.
    pub fn temperatures(&self, printer: PrinterId, since_ms: i64) -> Vec<(i64, Vec<Heater>)> {
        lock(&self.temps)
            .get(&printer)
            .map(|h| h.since(since_ms).collect())
            .unwrap_or_default()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(OrgId, Event)> {
        self.events.subscribe()
    }
}

/// The API view of a printer, with live telemetry.
pub fn printer_view(state: &AppState, p: &PrinterRow) -> Printer {
    let (telemetry, at) = state.hub.telemetry(p.id);
    let info = p.effective();
    let preheat = info
        .heat
        .zip(info.material.as_deref())
        .and_then(|(limits, m)| {
            let (nozzle, bed) = hearth_proto::inventory::preheat_for(m)?;
            Some(HeatRequest {
                nozzle_c: Some(nozzle.min(limits.max_nozzle_c)),
                bed_c: Some(bed.min(limits.max_bed_c)),
            })
        });
    Printer {
        id: p.id,
        agent_id: p.agent_id,
        name: info.name,
        kind: info.kind,
        model: info.model,
        nozzle_mm: info.nozzle_mm,
        material: info.material,
        color: info.color,
        pools: info.pools,
        can_pause: info.can_pause,
        loaded_by_member: p.loaded.is_some(),
        spool: p.spool.clone(),
        slot_spools: p.slot_spools.clone(),
        heat: info.heat,
        preheat,
        tune: info.tune,
        actions: info.actions.clone(),
        camera: info.camera.then(|| PrinterCamera {
            snapshot_at: state.hub.snapshot_at(p.id).map(rfc3339),
        }),
        bed: hearth_proto::api::PrinterBed {
            confirm_between_jobs: p.confirm_clear_bed,
            to_clear: p.bed_job,
        },
        held: p.held,
        telemetry,
        updated_at: at.map(rfc3339),
    }
}

/// Publish a printer's current row, with its live telemetry, as an event; returns that view.
pub async fn publish_printer(state: &AppState, org: OrgId, id: PrinterId) -> ApiResult<Printer> {
    let view = printer_view(state, &state.store.printer(id).await?);
    state.hub.publish(
        org,
        Event::Printer {
            printer: view.clone(),
        },
    );
    Ok(view)
}

pub fn job_view(j: &JobRow) -> Job {
    Job {
        id: j.id,
        state: j.state,
        printer: j.printer_id,
        pool: j.pool.clone(),
        blob_sha256: j.blob_sha256.clone(),
        submitted_by: j.submitted_by,
        created_at: rfc3339(j.created_at),
        updated_at: rfc3339(j.updated_at),
        message: j.message.clone(),
        facts: j.facts.clone(),
        priority: j.priority,
        label: j.label.clone(),
        approval: j.approval.as_ref().map(|a| hearth_proto::api::JobApproval {
            state: a.state,
            by: a.decided.map(|(by, _)| by),
            at: a.decided.map(|(_, at)| rfc3339(at)),
        }),
    }
}

/// Publish a job's current row as an event.
pub async fn publish_job(state: &AppState, id: hearth_proto::ids::JobId) -> ApiResult<()> {
    let j = state.store.job(id).await?;
    state
        .hub
        .publish(j.org_id, Event::Job { job: job_view(&j) });
    Ok(())
}

/// An agent's signing key from its stored (and enrolled) form, standard base64 of the 32 bytes;
/// `None` when it is not that.
pub fn agent_key(stored: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .ok()?;
    raw.try_into().ok()
}

/// The pool and the agents a pool job is sealed to, as its signed manifest names them
/// (`manifest.target.pool`, the agents' signing keys in hex); `None` when the manifest names no
/// pool target.
pub fn pool_job_target(manifest: &serde_json::Value) -> Option<(&str, Vec<[u8; 32]>)> {
    let target = manifest.pointer("/manifest/target/pool")?;
    let pool = target.get("pool")?.as_str()?;
    let agents = target
        .get("agents")?
        .as_array()?
        .iter()
        .map(|k| {
            let raw = hex::decode(k.as_str()?).ok()?;
            raw.try_into().ok()
        })
        .collect::<Option<Vec<[u8; 32]>>>()?;
    Some((pool, agents))
}

/// The end of a job's validity (Unix seconds) as its signed manifest states it in clear. The server
/// cannot check the signature, and need not: a wrong value only ends the submitter's own job early
/// or late, and the agent checks the signed value itself before printing.
pub fn job_not_after(manifest: &serde_json::Value) -> Option<i64> {
    manifest.pointer("/manifest/not_after")?.as_i64()
}

/// Ends a queued job whose validity ran out before a printer could take it (every agent would refuse
/// it), so the queue shows why instead of offering it to an agent.
async fn expire_job(state: &AppState, org: OrgId, job: JobId, until: i64) -> ApiResult<()> {
    let message = format!(
        "expired in the queue before a printer could take it (valid until {}); print it again",
        rfc3339(until.saturating_mul(1000))
    );
    let before = state.store.job(job).await?;
    let mut t = state.store.begin().await?;
    if !t
        .update_job(job, JobState::Failed, None, Some(&message), now_ms())
        .await?
    {
        return Ok(());
    }
    crate::notify::job_changed(state, &mut t, &before, JobState::Failed, Some(&message)).await?;
    t.append_audit(crate::routes::system_audit(
        org.to_string(),
        "job.expire",
        Some(format!("job:{job}")),
        json!({ "not_after": until }),
    ))
    .await?;
    t.commit().await?;
    state.notifier.wake();
    publish_job(state, job).await
}

/// Hand queued jobs of `org` to printers that can take them now, in the queue's order (priority, then
/// age: `Store::queued_jobs`): a job for a named printer goes to it once it is free
/// ([`is_free`]); a pool job goes to a free printer of the pool, behind one of the agents the job
/// is sealed to, that the job fits (the model, material and nozzle its
/// submitter revealed against the printer's configuration, [`misfits`], and the grams against what is
/// left on the inventory spool loaded on it). A pool job that fits no printer
/// of the pool waits until one is reconfigured: the member's CLI said so when it was submitted.
pub async fn dispatch(state: &AppState, org: OrgId) -> ApiResult<()> {
    let queued = state.store.queued_jobs(org).await?;
    if queued.is_empty() {
        return Ok(());
    }
    let printers = state.store.printers(org).await?;
    // As pool jobs are fitted to them: with what members set as loaded (once per dispatch).
    let fitted: Vec<_> = printers.iter().map(PrinterRow::effective).collect();
    // And with the filament slots each reports live (an AMS holds several materials).
    let slots: Vec<_> = printers
        .iter()
        .map(|p| state.hub.telemetry(p.id).0.slots)
        .collect();
    // The agents' keys, for pool jobs (see below); named-printer jobs need none.
    let agent_keys: HashMap<AgentId, [u8; 32]> = if queued.iter().any(|j| j.pool.is_some()) {
        state
            .store
            .agents(org)
            .await?
            .into_iter()
            .filter_map(|a| Some((a.id, agent_key(&a.signing_key)?)))
            .collect()
    } else {
        HashMap::new()
    };
    let mut taken: Vec<PrinterId> = Vec::new();
    // Whether a printer has a job in progress, read once per dispatch (a long queue asks often).
    let mut busy: HashMap<PrinterId, bool> = HashMap::new();
    let now_s = now_ms() / 1000;
    for job in queued {
        if let Some(until) = job_not_after(&job.manifest)
            && now_s > until
        {
            expire_job(state, org, job.id, until).await?;
            continue;
        }
        // Waiting for an admin's approval: it keeps its place, and its validity runs (above).
        if job.awaits_approval() {
            continue;
        }
        let target = match (job.printer_id, &job.pool) {
            // A named printer takes its next job once it is free, so the queue's order (and a
            // member's reordering) decides which of its jobs goes next.
            (Some(pid), _) => match printers.iter().find(|p| p.id == pid) {
                Some(p) if is_free(state, p, &taken, &mut busy).await? => Some(p),
                _ => None,
            },
            (None, Some(pool)) => {
                // Only the agents the job is sealed to can open it.
                let sealed_to = pool_job_target(&job.manifest)
                    .map(|(_, agents)| agents)
                    .unwrap_or_default();
                let mut found = None;
                for ((p, _), _) in
                    printers
                        .iter()
                        .zip(&fitted)
                        .zip(&slots)
                        .filter(|((p, fit), slots)| {
                            p.info.pools.contains(pool)
                                && misfits(
                                    &job.facts,
                                    PrinterSetup {
                                        filament_left_grams: p
                                            .spool
                                            .as_ref()
                                            .map(|s| s.remaining_grams),
                                        slots: slots.as_slice(),
                                        slot_spools: &p.slot_spools,
                                        ..(*fit).into()
                                    },
                                )
                                .is_empty()
                                && agent_keys
                                    .get(&p.agent_id)
                                    .is_some_and(|k| sealed_to.contains(k))
                        })
                {
                    if is_free(state, p, &taken, &mut busy).await? {
                        found = Some(p);
                        break;
                    }
                }
                found
            }
            (None, None) => None,
        };
        let Some(printer) = target else { continue };
        let Some(tx) = state.hub.sender(printer.agent_id) else {
            continue;
        };
        let mut t = state.store.begin().await?;
        if !t.assign_job(job.id, printer.id, now_ms()).await? {
            continue;
        }
        t.append_audit(crate::routes::system_audit(
            org.to_string(),
            "job.dispatch",
            Some(format!("job:{}", job.id)),
            json!({ "printer": printer.id, "agent": printer.agent_id }),
        ))
        .await?;
        t.commit().await?;
        taken.push(printer.id);
        let msg = ServerMsg::Job {
            job: AgentJob {
                job_id: job.id,
                printer: printer.info.name.clone(),
                blob_sha256: job.blob_sha256.clone(),
                blob_size: state
                    .store
                    .blob(org, &job.blob_sha256)
                    .await
                    .map(|b| b.size)
                    .unwrap_or(0),
                manifest: job.manifest.clone(),
            },
        };
        if tx.send(msg).await.is_err() {
            // The connection just closed; the job is re-sent when the agent reconnects.
            tracing::info!(job = %job.id, "agent went away while dispatching; will resend on reconnect");
        }
        publish_job(state, job.id).await?;
    }
    Ok(())
}

/// Whether `p` may take its next job now: not given one earlier in this dispatch (`taken`), not
/// held, its bed clear (when it waits for that), its agent connected, idle, and no job in progress
/// on it (read from the database once per dispatch, `busy`).
async fn is_free(
    state: &AppState,
    p: &PrinterRow,
    taken: &[PrinterId],
    busy: &mut HashMap<PrinterId, bool>,
) -> ApiResult<bool> {
    if taken.contains(&p.id)
        || p.held
        || p.bed_job.is_some()
        || !state.hub.is_connected(p.agent_id)
        || state.hub.telemetry(p.id).0.state != PrinterState::Idle
    {
        return Ok(false);
    }
    let in_progress = match busy.get(&p.id) {
        Some(b) => *b,
        None => {
            let b = state.store.printer_busy(p.id).await?;
            busy.insert(p.id, b);
            b
        }
    };
    Ok(!in_progress)
}

/// The error a member sees when a command cannot reach an agent right now.
pub fn agent_offline() -> ApiError {
    ApiError::conflict(
        "the printer's agent is not connected; the command cannot reach the printer now",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_split_at_hour_boundaries() {
        assert_eq!(split_hours(0, 1000), vec![(0, 1000)]);
        assert_eq!(
            split_hours(HOUR_MS - 10, HOUR_MS + 5),
            vec![(0, 10), (HOUR_MS, 5)]
        );
        assert_eq!(
            split_hours(100, 2 * HOUR_MS + 1)
                .iter()
                .map(|x| x.1)
                .sum::<i64>(),
            2 * HOUR_MS + 1 - 100
        );
        assert!(split_hours(5, 5).is_empty());
    }

    #[test]
    fn a_frame_goes_to_members_and_other_instances_and_back_unchanged() {
        let s = StoredSnapshot {
            manifest: serde_json::json!({ "manifest": { "printer": "mk4" } }),
            sealed: bytes::Bytes::from_static(b"age-encryption.org/v1\n\x00\xff"),
            received_at: 1_795_716_000_123,
        };
        let back = StoredSnapshot::from_api(s.to_api()).unwrap();
        assert_eq!(
            (&back.manifest, &back.sealed, back.received_at),
            (&s.manifest, &s.sealed, s.received_at)
        );
        let mut bad = s.to_api();
        bad.sealed = "not base64!".into();
        assert!(StoredSnapshot::from_api(bad).is_none());
    }

    #[test]
    fn the_frames_kept_fit_their_budget_dropping_the_stalest_first() {
        let hub = Hub::default();
        let frame = |at: i64| StoredSnapshot {
            manifest: serde_json::Value::Null,
            sealed: bytes::Bytes::from(vec![0u8; SNAPSHOTS_MAX_BYTES / 3]),
            received_at: at,
        };
        let printers: Vec<PrinterId> = (0..4).map(|_| PrinterId::new()).collect();
        for (i, p) in printers.iter().enumerate() {
            hub.set_snapshot(*p, frame(i as i64));
        }
        // Four thirds do not fit: the one that arrived first is gone, the newest is kept.
        assert!(hub.local_snapshot(printers[0]).is_none());
        assert!(
            printers[1..]
                .iter()
                .all(|p| hub.local_snapshot(*p).is_some())
        );
        // A printer's newer frame replaces its own.
        hub.set_snapshot(printers[1], frame(10));
        assert_eq!(hub.snapshot_at(printers[1]), Some(10));
        assert!(hub.local_snapshot(printers[2]).is_some());
    }
}
