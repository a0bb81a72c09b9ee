//! Notifications: what happened (a job's new state, a printer's error or absence) becomes one
//! delivery row per channel that follows the event, and a sender posts them with retries.
//!
//! - Job events are queued in the same transaction as the job's new state ([`job_changed`]), so
//!   a crash cannot lose one or send one for a change that did not commit.
//! - Printer events come from live telemetry, which is memory only: [`Notifier`] remembers which
//!   printers it reported in error (once until they report something else) and since when each
//!   printer has been unreachable as this instance knows. Once that lasts
//!   `notifications.offline_after_secs` and the printer is still offline across the cluster (no
//!   instance holds its agent with it reachable), `printer.offline` is queued by the one instance
//!   that claims the report in the database (`offline_notice_at`), so it is made once per absence
//!   however many instances notice it, and not again after a restart; `printer.online` is queued
//!   by whichever instance its agent reports it to when it is back, if a report stood. A printer
//!   counts as away at start until its agent reports it (so one whose agent never comes back is
//!   reported), from its agent's connection until it reports it reachable, and on every instance
//!   when the instance holding its agent stops or goes silent ([`crate::cluster`]).
//! - [`run`] sends: it claims due deliveries with a lease (several `hearthd` instances may share
//!   the database), renders each for its channel ([`render`]) and records the outcome: delivered on
//!   2xx; retried on 408, 429, 5xx and network errors (first after `first_retry_ms`, each next four
//!   times later, 8 tries); failed at once on any other answer, since sending the same request again
//!   would not change it.
//! - [`guard`] keeps destinations on public addresses unless the administrator allows others.

pub mod email;
pub mod guard;
pub mod quiet;
pub mod render;

use crate::error::{ApiError, ApiResult};
use crate::hub::lock;
use crate::state::AppState;
use hearth_proto::agent::{JobState, PrinterState};
use hearth_proto::ids::{DeliveryId, OrgId, PrinterId};
use hearth_proto::notify::{Delivery, Notification, NotifiedJob, NotifiedPrinter, NotifyEvent};
use hearth_proto::time_fmt::{now_ms, rfc3339};
use hearth_store::Tx;
use hearth_store::fleet::{JobRow, PrinterNotice, PrinterRow};
use hearth_store::notify::{ChannelRow, DeliveryRow, Outcome};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Why an e-mail channel cannot work on this server.
pub const NO_SMTP: &str = "this server sends no e-mail: its administrator sets [notifications.smtp] \
     (host and from) first";

/// Tries per delivery before it is given up.
pub const MAX_ATTEMPTS: u32 = 8;
/// Deliveries one round of the sender takes.
const BATCH: i64 = 16;

#[derive(Debug)]
struct Away {
    org: OrgId,
    since: i64,
    reason: Option<String>,
    /// Looked at once it was overdue (reported, or found reachable or already reported).
    checked: bool,
}

/// The sender's wake-up call and the printer transitions it remembers.
#[derive(Debug)]
pub struct Notifier {
    wake: tokio::sync::Notify,
    client: reqwest::Client,
    allow_private: bool,
    offline_after_ms: i64,
    first_retry_ms: i64,
    /// Whether each printer was in error when this instance last heard from it (only a change
    /// goes to the database, where the standing `printer.error` report is claimed).
    errored: Mutex<HashMap<PrinterId, bool>>,
    away: Mutex<HashMap<PrinterId, Away>>,
    /// E-mail, when the administrator configured an SMTP server.
    mailer: Option<email::Mailer>,
}

impl Notifier {
    /// Fails on SMTP settings that cannot work (an unreadable password file, a bad sender).
    pub fn new(s: &crate::config::NotifySettings) -> Result<Self, String> {
        let timeout = Duration::from_secs(u64::try_from(s.timeout_secs).unwrap_or(10));
        let ca = match &s.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("notifications.ca_file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Self {
            wake: tokio::sync::Notify::new(),
            client: guard::client(s.allow_private_addresses, timeout, ca.as_deref())?,
            allow_private: s.allow_private_addresses,
            offline_after_ms: s.offline_after_secs.saturating_mul(1000),
            first_retry_ms: s.first_retry_ms,
            errored: Mutex::default(),
            away: Mutex::default(),
            mailer: email::Mailer::new(&s.smtp, timeout, ca.as_deref())?,
        })
    }

    /// Whether e-mail channels can work here.
    pub fn sends_email(&self) -> bool {
        self.mailer.is_some()
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// Something was queued: the sender looks now instead of at its next timer.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wait before try number `attempts + 1` (after `attempts` failed ones).
    fn backoff_ms(&self, attempts: u32) -> i64 {
        self.first_retry_ms
            .saturating_mul(4_i64.saturating_pow(attempts.saturating_sub(1)))
    }
}

/// Queue `event` for every channel of `org` following it, inside `tx`.
pub async fn enqueue(tx: &mut Tx, n: &Notification) -> ApiResult<()> {
    let payload = serde_json::to_string(n).map_err(ApiError::internal)?;
    // Channels limited to some pools hear about the printer's pools and the job's.
    let mut pools: Vec<String> = n.printer.iter().flat_map(|p| p.pools.clone()).collect();
    pools.extend(n.job.iter().filter_map(|j| j.pool.clone()));
    // Alerts go out at once; anything else waits for the end of a channel's quiet hours.
    let (now, alert) = (now_ms(), n.event.is_alert());
    tx.enqueue_notification(n.org_id, n.event, &payload, &pools, now, |q| {
        q.filter(|_| !alert)
            .and_then(|q| quiet::Quiet::new(q).ok())
            .map_or(now, |q| q.release_at(now))
    })
    .await?;
    Ok(())
}

/// The dashboard's address, when the server knows its public one.
pub(crate) fn link(state: &AppState) -> Option<String> {
    state
        .settings
        .public_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(|u| format!("{}/", u.trim_end_matches('/')))
}

pub(crate) async fn org_name(state: &AppState, org: OrgId) -> String {
    match state.store.org_by_id(org).await {
        Ok(o) => o.name,
        Err(_) => org.to_string(),
    }
}

/// When something went wrong on a printer with a camera: where to look. The frame itself is sealed,
/// so the notification can only say how to open it.
fn camera_hint(p: &PrinterRow) -> String {
    if !p.info.camera {
        return String::new();
    }
    format!(
        " Its camera's latest frame: `hearth camera {}`.",
        p.info.name
    )
}

/// When the printer a job printed on waits for its bed to be cleared: how to let it go on.
fn bed_hint(p: &PrinterRow) -> String {
    if !p.confirm_clear_bed {
        return String::new();
    }
    format!(
        " {} takes no next job until its bed is said clear: `hearth printers bed {} --cleared` (or Bed cleared on the dashboard).",
        p.info.name, p.info.name
    )
}

/// When a job that ended has a timelapse: how to open it (its frames are sealed).
async fn timelapse_hint(state: &AppState, job: hearth_proto::ids::JobId) -> String {
    match state.store.timelapse(job).await {
        Ok(t) if t.frames > 0 => format!(
            " Its timelapse ({} frames): `hearth timelapse {job}`.",
            t.frames
        ),
        _ => String::new(),
    }
}

pub(crate) async fn notified_printer(state: &AppState, id: PrinterId) -> Option<NotifiedPrinter> {
    Some(notified(&state.store.printer(id).await.ok()?))
}

/// What a notification says of a printer.
fn notified(p: &PrinterRow) -> NotifiedPrinter {
    NotifiedPrinter {
        id: p.id,
        name: p.info.name.clone(),
        model: p.info.model.clone(),
        pools: p.info.pools.clone(),
    }
}

fn describe_facts(j: &NotifiedJob) -> String {
    let f = &j.facts;
    let mut parts = Vec::new();
    if let Some(m) = &f.material {
        parts.push(match &f.color {
            Some(c) => format!("{m} {c}"),
            None => m.clone(),
        });
    }
    if let Some(g) = f.filament_grams {
        parts.push(format!("{g:.0} g"));
    }
    if let Some(s) = f.estimated_seconds {
        parts.push(format!("about {}h{:02}", s / 3600, (s % 3600) / 60));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// Queue the notification for a job's move from `before` to `after`, inside the transaction that
/// records it. Nothing is queued for a move that is not an event.
pub async fn job_changed(
    state: &AppState,
    tx: &mut Tx,
    before: &JobRow,
    after: JobState,
    message: Option<&str>,
) -> ApiResult<()> {
    let Some(event) = NotifyEvent::of_job(before.state, after) else {
        return Ok(());
    };
    // Read once: the notification names it, and the hints below read its camera and bed.
    let (row, printer, mut job) = job_context(state, before).await;
    job.state = after;
    job.message = message
        .map(str::to_owned)
        .or_else(|| before.message.clone());
    let on = printer
        .as_ref()
        .map(|p| format!(" on {}", p.name))
        .unwrap_or_default();
    let title = match event {
        NotifyEvent::JobStarted => format!("Printing{on}"),
        NotifyEvent::JobPaused => format!("Print paused{on}"),
        NotifyEvent::JobCompleted => format!("Print finished{on}"),
        NotifyEvent::JobFailed if after == JobState::Refused => format!("Job refused{on}"),
        NotifyEvent::JobFailed if printer.is_none() => "Job failed in the queue".to_owned(),
        NotifyEvent::JobFailed => format!("Print failed{on}"),
        _ => format!("Print cancelled{on}"),
    };
    let mut text = format!(
        "Job {} from {}{}{}.",
        job.id,
        job.submitted_by,
        describe_facts(&job),
        match event {
            NotifyEvent::JobStarted => " started",
            NotifyEvent::JobPaused => " is paused",
            NotifyEvent::JobCompleted => " is done",
            NotifyEvent::JobFailed if after == JobState::Refused => " was refused by the agent",
            NotifyEvent::JobFailed => " failed",
            _ => " was cancelled",
        }
    );
    if let Some(m) = job.message.as_deref().filter(|m| !m.is_empty())
        && event != NotifyEvent::JobStarted
        && event != NotifyEvent::JobCompleted
    {
        text.push_str(&format!(" {m}"));
    }
    if matches!(
        event,
        NotifyEvent::JobCompleted | NotifyEvent::JobFailed | NotifyEvent::JobCancelled
    ) {
        text.push_str(&timelapse_hint(state, before.id).await);
        // As `fleet` holds the printer for its bed, in the same transaction.
        if let (true, Some(p)) = (before.state.left_a_part(after), &row) {
            text.push_str(&bed_hint(p));
        }
    }
    if matches!(event, NotifyEvent::JobPaused | NotifyEvent::JobFailed)
        && let Some(p) = &row
    {
        text.push_str(&camera_hint(p));
    }
    let n = Notification {
        event,
        org_id: before.org_id,
        org: org_name(state, before.org_id).await,
        at: rfc3339(now_ms()),
        title,
        message: text,
        printer,
        job: Some(job),
        spool: None,
        maintenance: None,
        legal: None,
        link: link(state),
    };
    enqueue(tx, &n).await
}

/// Queues `job.awaiting_approval` for a job just submitted that waits for an admin (in the
/// transaction that inserts it), so admins hear of it without watching the queue.
pub async fn job_awaiting_approval(state: &AppState, tx: &mut Tx, job: &JobRow) -> ApiResult<()> {
    approval_notice(
        state,
        tx,
        job,
        NotifyEvent::JobAwaitingApproval,
        "Job waiting for approval",
        |j| {
            format!(
                "Job {} from {}{} waits for an admin's approval: `hearth approve {}` (or `hearth \
             reject {} --reason ...`), or the dashboard's Jobs tab.",
                job.id,
                j.submitted_by,
                describe_facts(j),
                job.id,
                job.id,
            )
        },
    )
    .await
}

/// Queues `job.approved` for a job an admin (`by`, their login) just approved, in the transaction
/// that records the decision: whoever heard it was waiting hears it goes on.
pub async fn job_approved(state: &AppState, tx: &mut Tx, job: &JobRow, by: &str) -> ApiResult<()> {
    approval_notice(
        state,
        tx,
        job,
        NotifyEvent::JobApproved,
        "Job approved",
        |j| {
            format!(
                "Job {} from {}{} was approved by {by}: it takes its place in the queue.",
                job.id,
                j.submitted_by,
                describe_facts(j),
            )
        },
    )
    .await
}

/// Queues `event` about `job`'s approval, titled `what` and its printer or pool, saying what `say`
/// makes of the job as notified.
async fn approval_notice(
    state: &AppState,
    tx: &mut Tx,
    job: &JobRow,
    event: NotifyEvent,
    what: &str,
    say: impl FnOnce(&NotifiedJob) -> String,
) -> ApiResult<()> {
    let (_, printer, notified_job) = job_context(state, job).await;
    let target = match (&printer, &job.pool) {
        (Some(p), _) => format!(" for {}", p.name),
        (None, Some(pool)) => format!(" for pool {pool}"),
        (None, None) => String::new(),
    };
    let n = Notification {
        event,
        org_id: job.org_id,
        org: org_name(state, job.org_id).await,
        at: rfc3339(now_ms()),
        title: format!("{what}{target}"),
        message: say(&notified_job),
        printer,
        job: Some(notified_job),
        spool: None,
        maintenance: None,
        legal: None,
        link: link(state),
    };
    enqueue(tx, &n).await
}

/// A job's printer as stored (for hints) and as notified, and the job as notified (its state and
/// message as stored; callers set what changed), its submitter named by login.
async fn job_context(
    state: &AppState,
    job: &JobRow,
) -> (Option<PrinterRow>, Option<NotifiedPrinter>, NotifiedJob) {
    let row = match job.printer_id {
        Some(p) => state.store.printer(p).await.ok(),
        None => None,
    };
    let printer = row.as_ref().map(notified);
    let submitted_by = match state.store.user_by_id(job.submitted_by).await {
        Ok(u) => u.login,
        Err(_) => job.submitted_by.to_string(),
    };
    let notified_job = NotifiedJob {
        id: job.id,
        state: job.state,
        pool: job.pool.clone(),
        submitted_by,
        message: job.message.clone(),
        facts: job.facts.clone(),
    };
    (row, printer, notified_job)
}

async fn printer_notification(
    state: &AppState,
    org: OrgId,
    printer: PrinterId,
    event: NotifyEvent,
    detail: Option<&str>,
) -> ApiResult<()> {
    let Ok(row) = state.store.printer(printer).await else {
        return Ok(());
    };
    let p = notified(&row);
    let (title, mut message) = match event {
        NotifyEvent::PrinterError => (
            format!("{} reports an error", p.name),
            format!("{} ({}) is in an error state.", p.name, p.model),
        ),
        NotifyEvent::PrinterOffline => (
            format!("{} is offline", p.name),
            format!(
                "{} ({}) has not been reachable for a while.",
                p.name, p.model
            ),
        ),
        _ => (
            format!("{} is back online", p.name),
            format!("{} ({}) is reachable again.", p.name, p.model),
        ),
    };
    if let Some(d) = detail.filter(|d| !d.is_empty()) {
        message.push_str(&format!(" {d}"));
    }
    if event == NotifyEvent::PrinterError {
        message.push_str(&camera_hint(&row));
    }
    let n = Notification {
        event,
        org_id: org,
        org: org_name(state, org).await,
        at: rfc3339(now_ms()),
        title,
        message,
        printer: Some(p),
        job: None,
        spool: None,
        maintenance: None,
        legal: None,
        link: link(state),
    };
    let mut tx = state.store.begin().await?;
    enqueue(&mut tx, &n).await?;
    tx.commit().await?;
    state.notifier.wake();
    Ok(())
}

/// A printer reported `status` (from its agent's telemetry).
pub async fn printer_reported(
    state: &AppState,
    org: OrgId,
    printer: PrinterId,
    status: PrinterState,
    error: Option<&str>,
) -> ApiResult<()> {
    let n = &state.notifier;
    if status == PrinterState::Offline {
        printers_away(state, org, &[printer], error);
        return Ok(());
    }
    // Only a printer this instance counted as away can be coming back: that spares the database
    // every other telemetry message.
    let was_away = lock(&n.away).remove(&printer).is_some();
    if was_away
        && state
            .store
            .clear_notice(printer, PrinterNotice::Offline)
            .await?
    {
        printer_notification(state, org, printer, NotifyEvent::PrinterOnline, None).await?;
    }
    // An error is reported once, by whichever instance claims it first (its agent may move to
    // another instance, or this one restart, while the printer stays in error); it ends when the
    // printer reports another state (offline leaves it standing: the error is not known gone).
    let in_error = status == PrinterState::Error;
    if lock(&n.errored).insert(printer, in_error) == Some(in_error) {
        return Ok(());
    }
    let recorded = match in_error {
        false => state
            .store
            .clear_notice(printer, PrinterNotice::Error)
            .await
            .map(|_| false),
        true => {
            state
                .store
                .claim_notice(printer, PrinterNotice::Error, now_ms())
                .await
        }
    };
    match recorded {
        Ok(true) => {
            printer_notification(state, org, printer, NotifyEvent::PrinterError, error).await
        }
        Ok(false) => Ok(()),
        Err(e) => {
            // Not recorded: the next report from the printer tries again.
            lock(&n.errored).remove(&printer);
            Err(e.into())
        }
    }
}

/// Printers became unreachable (their agent left, or reports them offline): they are reported
/// once that has lasted `offline_after_secs`.
pub fn printers_away(state: &AppState, org: OrgId, printers: &[PrinterId], reason: Option<&str>) {
    note_away(state, org, printers, reason, false);
}

/// Printers this instance saw reachable through another instance, which has gone: away from
/// now, for this reason, even if this instance counted them away since it started (it has seen
/// them since).
pub fn printers_away_now(state: &AppState, org: OrgId, printers: &[PrinterId], reason: &str) {
    note_away(state, org, printers, Some(reason), true);
}

fn note_away(
    state: &AppState,
    org: OrgId,
    printers: &[PrinterId],
    reason: Option<&str>,
    anew: bool,
) {
    let now = now_ms();
    let fresh = || Away {
        org,
        since: now,
        reason: reason.map(str::to_owned),
        checked: false,
    };
    let mut away = lock(&state.notifier.away);
    for p in printers {
        match away.entry(*p) {
            std::collections::hash_map::Entry::Occupied(mut e) if anew && !e.get().checked => {
                e.insert(fresh());
            }
            std::collections::hash_map::Entry::Occupied(_) => {}
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(fresh());
            }
        }
    }
    drop(away);
    state.notifier.wake();
}

/// Queue `printer.offline` for printers away long enough; returns when the next one will be.
async fn report_overdue(state: &AppState, now: i64) -> Option<i64> {
    let after = state.notifier.offline_after_ms;
    // Until this instance has heard from every other, it cannot tell a printer away from one
    // held elsewhere: nothing is due before then.
    let now = match state.hub.cluster().map(|c| c.complete_from()) {
        Some(from) if from > now => {
            let any = lock(&state.notifier.away).values().any(|a| !a.checked);
            return any.then_some(from);
        }
        _ => now,
    };
    let mut due = Vec::new();
    let mut next = None::<i64>;
    {
        let mut away = lock(&state.notifier.away);
        for (p, a) in away.iter_mut().filter(|(_, a)| !a.checked) {
            let at = a.since.saturating_add(after);
            if at <= now {
                a.checked = true;
                due.push((*p, a.org, a.reason.clone(), a.since));
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
    }
    for (p, org, reason, since) in due {
        // Reachable through another instance (its agent is held there): not away after all.
        if state.hub.telemetry(p).0.state != PrinterState::Offline {
            lock(&state.notifier.away).remove(&p);
            continue;
        }
        match state
            .store
            .claim_notice(p, PrinterNotice::Offline, now)
            .await
        {
            Ok(true) => {}
            // Reported already, by another instance or before a restart.
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(printer = %p, error = %crate::error::ErrorChain(&e), "could not claim an offline notification");
                continue;
            }
        }
        let detail = format!(
            "Unreachable since {}{}",
            rfc3339(since),
            reason
                .map(|r| format!(": {r}."))
                .unwrap_or_else(|| ".".into())
        );
        if let Err(e) =
            printer_notification(state, org, p, NotifyEvent::PrinterOffline, Some(&detail)).await
        {
            tracing::warn!(printer = %p, error = %e.message, "could not queue an offline notification");
        }
    }
    next
}

/// A test notification for one channel, sent now; the delivery records how it went.
pub async fn send_test(state: &AppState, channel: &ChannelRow) -> ApiResult<DeliveryRow> {
    let org = org_name(state, channel.org_id).await;
    let n = Notification {
        event: NotifyEvent::Test,
        org_id: channel.org_id,
        message: format!(
            "Channel {:?} of {org} works: notifications will arrive here.",
            channel.name
        ),
        org,
        at: rfc3339(now_ms()),
        title: "Test notification from Hearth".into(),
        printer: None,
        job: None,
        spool: None,
        maintenance: None,
        legal: None,
        link: link(state),
    };
    let id = DeliveryId::new();
    let now = now_ms();
    let payload = serde_json::to_string(&n).map_err(ApiError::internal)?;
    let mut tx = state.store.begin().await?;
    // Leased by this request, which tries it once while the admin watches (if the server stops
    // before recording the outcome, the sender tries it like any other once the lease ends).
    tx.insert_delivery(
        id,
        channel.id,
        NotifyEvent::Test,
        &payload,
        now,
        now + lease_ms(state),
    )
    .await?;
    tx.commit().await?;
    let outcome = match attempt(state, channel, id, &n).await {
        Outcome::Retry { status, error, .. } => Outcome::Failed { status, error },
        other => other,
    };
    record(state, id, &outcome).await?;
    Ok(state.store.delivery(id).await?)
}

/// A try's outcome, in the metrics and on its delivery.
async fn record(state: &AppState, id: DeliveryId, outcome: &Outcome) -> ApiResult<()> {
    let m = &state.metrics;
    let c = match outcome {
        Outcome::Delivered { .. } => &m.notifications_delivered,
        Outcome::Retry { .. } => &m.notifications_retried,
        Outcome::Failed { .. } => &m.notifications_failed,
    };
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tx = state.store.begin().await?;
    tx.record_delivery(id, outcome, now_ms()).await?;
    tx.commit().await?;
    Ok(())
}

/// One try; a retryable failure is `Retry` with `at` unset (0) for the caller to schedule.
async fn attempt(
    state: &AppState,
    channel: &ChannelRow,
    id: DeliveryId,
    n: &Notification,
) -> Outcome {
    if channel.kind == hearth_proto::notify::ChannelKind::Email {
        let Some(mailer) = &state.notifier.mailer else {
            return Outcome::Failed {
                status: None,
                error: NO_SMTP.into(),
            };
        };
        return match email::parse_mailto(&channel.url) {
            Ok(to) => mailer.send(&to, id, n).await,
            Err(error) => Outcome::Failed {
                status: None,
                error,
            },
        };
    }
    let allow_private = state.notifier.allow_private;
    let creds = render::Credentials {
        url: &channel.url,
        secret: &channel.secret,
    };
    let out = match render::render(channel.kind, &creds, id, n, now_ms() / 1000) {
        Ok(out) => out,
        Err(error) => {
            return Outcome::Failed {
                status: None,
                error,
            };
        }
    };
    let url = match guard::parse_destination(&out.url)
        .and_then(|u| guard::literal_allowed(&u, allow_private).map(|()| u))
    {
        Ok(u) => u,
        Err(error) => {
            return Outcome::Failed {
                status: None,
                error,
            };
        }
    };
    let mut req = state.notifier.client.post(url).body(out.body);
    for (k, v) in &out.headers {
        req = req.header(*k, v);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                return Outcome::Delivered { status };
            }
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok());
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp.text().await.unwrap_or_default();
            let said: String = body.trim().chars().take(200).collect();
            let error = match (status, location) {
                (300..=399, Some(to)) => {
                    format!("redirected ({status}) to {to}; give the final address instead")
                }
                _ if said.is_empty() => format!("the destination answered {status}"),
                _ => format!("the destination answered {status}: {said}"),
            };
            if status == 408 || status == 429 || status >= 500 {
                Outcome::Retry {
                    status: Some(status),
                    error,
                    at: retry_after.map_or(0, |s| now_ms() + s.clamp(0, 3600) * 1000),
                }
            } else {
                Outcome::Failed {
                    status: Some(status),
                    error,
                }
            }
        }
        Err(e) => Outcome::Retry {
            status: None,
            error: send_error(&e, &channel.url, state.settings.notifications.timeout_secs),
            at: 0,
        },
    }
}

/// A failed send in words: what could not be done, and the innermost cause (`Connection refused`,
/// the guard's refusal of a private address, a certificate problem).
fn send_error(e: &reqwest::Error, url: &str, timeout_secs: i64) -> String {
    let host = guard::shown(url);
    if e.is_timeout() {
        return format!("{host} did not answer within {timeout_secs} s");
    }
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    if e.is_connect() {
        format!("could not connect to {host}: {root}")
    } else {
        format!("sending to {host} failed: {root}")
    }
}

/// Try one claimed delivery and record the outcome.
async fn deliver(state: &AppState, d: DeliveryRow) {
    let result = async {
        let channel = match state.store.channel(d.channel_id).await {
            Ok(c) => c,
            // Deleted with its channel meanwhile.
            Err(hearth_store::StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(ApiError::from(e)),
        };
        let n: Notification = serde_json::from_str(&d.payload).map_err(ApiError::internal)?;
        let tries = d.attempts + 1;
        let outcome = match attempt(state, &channel, d.id, &n).await {
            Outcome::Retry { status, error, .. } if tries >= MAX_ATTEMPTS => Outcome::Failed {
                status,
                error: format!("gave up after {tries} tries; the last: {error}"),
            },
            Outcome::Retry { status, error, at } => Outcome::Retry {
                status,
                error,
                at: at.max(now_ms() + state.notifier.backoff_ms(tries)),
            },
            other => other,
        };
        if let Outcome::Failed { error, .. } = &outcome {
            tracing::warn!(channel = %channel.id, delivery = %d.id, %error, "a notification could not be delivered");
        }
        record(state, d.id, &outcome).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(delivery = %d.id, error = %e.message, "could not record a notification delivery");
    }
}

/// How long a claimed delivery stays with this sender: longer than one try can take.
fn lease_ms(state: &AppState) -> i64 {
    state
        .settings
        .notifications
        .timeout_secs
        .saturating_mul(1000)
        * 3
        + 5_000
}

/// The sender: runs until shutdown begins.
pub async fn run(state: AppState) {
    match state.store.all_printers().await {
        Ok(printers) => {
            // One time for all, so they are looked at together when it has lasted.
            let mut by_org: HashMap<OrgId, Vec<PrinterId>> = HashMap::new();
            for p in printers {
                by_org.entry(p.org_id).or_default().push(p.id);
            }
            for (org, printers) in by_org {
                printers_away(
                    &state,
                    org,
                    &printers,
                    Some("not seen since the server started"),
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %crate::error::ErrorChain(&e), "could not list printers for offline notifications");
        }
    }
    loop {
        let now = now_ms();
        let next_offline = report_overdue(&state, now).await;
        let claimed = match state
            .store
            .claim_due_deliveries(now, lease_ms(&state), BATCH)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %crate::error::ErrorChain(&e), "could not read due notifications");
                Vec::new()
            }
        };
        if !claimed.is_empty() {
            let ids: Vec<DeliveryId> = claimed.iter().map(|d| d.id).collect();
            let sends = claimed.into_iter().map(|d| deliver(&state, d));
            tokio::select! {
                _ = futures::future::join_all(sends) => {}
                () = state.stopping.begun() => {
                    // Tries cut short: free them for the next start (or another instance) now
                    // rather than when their lease ends.
                    if let Err(e) = state.store.release_deliveries(&ids).await {
                        tracing::warn!(error = %crate::error::ErrorChain(&e), "could not release notification deliveries");
                    }
                    return;
                }
            }
            continue;
        }
        // Another instance may queue deliveries this one is not woken for: look at least once a minute.
        let mut wake_at = now + 60_000;
        if let Ok(Some(due)) = state.store.next_delivery_due().await {
            wake_at = wake_at.min(due);
        }
        if let Some(t) = next_offline {
            wake_at = wake_at.min(t);
        }
        let wait = Duration::from_millis(u64::try_from(wake_at - now).unwrap_or(0).max(1));
        tokio::select! {
            () = state.notifier.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = state.stopping.begun() => return,
        }
    }
}

/// The API view of a delivery.
pub fn delivery_view(d: &DeliveryRow) -> Delivery {
    let title = serde_json::from_str::<Notification>(&d.payload)
        .map(|n| n.title)
        .unwrap_or_default();
    let pending = d.state == hearth_proto::notify::DeliveryState::Pending;
    Delivery {
        id: d.id,
        channel_id: d.channel_id,
        event: d.event,
        title,
        state: d.state,
        created_at: rfc3339(d.created_at),
        attempts: d.attempts,
        last_attempt_at: d.last_attempt_at.map(rfc3339),
        next_attempt_at: pending.then(|| rfc3339(d.next_attempt_at)),
        response_status: d.response_status,
        error: d.error.clone(),
    }
}
