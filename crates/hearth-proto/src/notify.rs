//! Notifications: the channels an organisation's admins set up (a signed webhook, Slack, Discord or
//! ntfy), the events a channel follows, and the notification `hearthd` sends.
//!
//! A notification carries only what the server may see (DESIGN.md): printer names and states, job
//! ids and states, who submitted a job, the scheduling facts its submitter revealed. File names are
//! sealed, so a job is named by its id; the member's own device shows the name.

use crate::agent::JobState;
use crate::api::SchedulingFacts;
use crate::ids::{ChannelId, DeliveryId, JobId, OrgId, PrinterId, UserId};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Where and how a channel delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// JSON `POST` signed as the Standard Webhooks specification says
    /// (<https://www.standardwebhooks.com/>): headers `webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`; body `{"type", "timestamp", "data": Notification}`.
    Webhook,
    /// A Slack incoming-webhook URL (`https://hooks.slack.com/services/...`): `{"text": ...}`.
    Slack,
    /// A Discord channel webhook URL (`https://discord.com/api/webhooks/...`): `{"content": ...}`.
    Discord,
    /// An ntfy topic URL (`https://ntfy.sh/my-farm` or a self-hosted server), published as JSON to
    /// the server's root with title, priority, tags and a click link; optional access token.
    Ntfy,
    /// `mailto:ops@example.org,lead@example.org`: a plain-text e-mail through the SMTP server
    /// the administrator configured (`[notifications.smtp]`).
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 5] = [
        Self::Webhook,
        Self::Slack,
        Self::Discord,
        Self::Ntfy,
        Self::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Ntfy => "ntfy",
            Self::Email => "email",
        }
    }
}

impl std::str::FromStr for ChannelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown channel kind {s:?}: one of webhook, slack, discord, ntfy, email")
            })
    }
}

/// What happened. A channel follows a set of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum NotifyEvent {
    /// A job started printing (once per job; resuming after a pause is not a new start).
    #[serde(rename = "job.started")]
    JobStarted,
    /// A job paused: at the printer (filament run-out, a pause in the G-code) or by a member.
    #[serde(rename = "job.paused")]
    JobPaused,
    #[serde(rename = "job.completed")]
    JobCompleted,
    /// A job failed, expired in the queue, or was refused by the agent (signature, expiry, replay).
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.cancelled")]
    JobCancelled,
    /// A job waits for an admin's approval (organisations that require it).
    #[serde(rename = "job.awaiting_approval")]
    JobAwaitingApproval,
    /// An admin approved a job that waited for it: it takes its place in the queue. (A rejected
    /// job is `job.cancelled`, with who rejected it and why.)
    #[serde(rename = "job.approved")]
    JobApproved,
    /// A printer reported an error (once until it reports something else).
    #[serde(rename = "printer.error")]
    PrinterError,
    /// A printer has been unreachable (its agent disconnected, or the agent cannot reach it) for
    /// the server's `notifications.offline_after_secs`.
    #[serde(rename = "printer.offline")]
    PrinterOffline,
    /// A printer reported offline before is back.
    #[serde(rename = "printer.online")]
    PrinterOnline,
    /// A spool of the inventory fell below its `low_grams` (once, when a job's use takes it
    /// there).
    #[serde(rename = "spool.low")]
    SpoolLow,
    /// A printer's maintenance task fell due (once per round, until it is marked done).
    #[serde(rename = "maintenance.due")]
    MaintenanceDue,
    /// The instance's operator recorded a legal request for the organisation's data.
    #[serde(rename = "legal.request")]
    LegalRequest,
    /// Sent by `POST .../notifications/{id}/test` only; no channel follows it.
    #[serde(rename = "test")]
    Test,
}

impl NotifyEvent {
    /// Every event a channel can follow.
    pub const FOLLOWABLE: [NotifyEvent; 13] = [
        Self::JobStarted,
        Self::JobPaused,
        Self::JobCompleted,
        Self::JobFailed,
        Self::JobCancelled,
        Self::JobAwaitingApproval,
        Self::JobApproved,
        Self::PrinterError,
        Self::PrinterOffline,
        Self::PrinterOnline,
        Self::SpoolLow,
        Self::MaintenanceDue,
        Self::LegalRequest,
    ];

    /// What a channel follows when its creator names nothing: everything that needs a person,
    /// and the end of every job.
    pub const DEFAULT: [NotifyEvent; 11] = [
        Self::JobPaused,
        Self::JobCompleted,
        Self::JobFailed,
        Self::JobAwaitingApproval,
        Self::JobApproved,
        Self::PrinterError,
        Self::PrinterOffline,
        Self::PrinterOnline,
        Self::SpoolLow,
        Self::MaintenanceDue,
        Self::LegalRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JobStarted => "job.started",
            Self::JobPaused => "job.paused",
            Self::JobCompleted => "job.completed",
            Self::JobFailed => "job.failed",
            Self::JobCancelled => "job.cancelled",
            Self::JobAwaitingApproval => "job.awaiting_approval",
            Self::JobApproved => "job.approved",
            Self::PrinterError => "printer.error",
            Self::PrinterOffline => "printer.offline",
            Self::PrinterOnline => "printer.online",
            Self::SpoolLow => "spool.low",
            Self::MaintenanceDue => "maintenance.due",
            Self::LegalRequest => "legal.request",
            Self::Test => "test",
        }
    }

    /// The event a job's move from `before` to `after` is, if any. Only a change counts, and a
    /// resumed job has not started again.
    pub fn of_job(before: JobState, after: JobState) -> Option<NotifyEvent> {
        if before == after || before.is_final() {
            return None;
        }
        match after {
            JobState::Printing if before != JobState::Paused => Some(Self::JobStarted),
            JobState::Paused => Some(Self::JobPaused),
            JobState::Completed => Some(Self::JobCompleted),
            JobState::Failed | JobState::Refused => Some(Self::JobFailed),
            JobState::Cancelled => Some(Self::JobCancelled),
            _ => None,
        }
    }

    /// Whether a person should look soon (ntfy's "high" priority, a Slack/Discord marker).
    pub fn is_alert(self) -> bool {
        matches!(
            self,
            Self::JobPaused | Self::JobFailed | Self::PrinterError | Self::PrinterOffline
        )
    }
}

impl std::fmt::Display for NotifyEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for NotifyEvent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::FOLLOWABLE
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::FOLLOWABLE.iter().map(|e| e.as_str()).collect();
                format!("unknown event {s:?}: one of {}", all.join(", "))
            })
    }
}

/// Hours in which a channel sends only alerts (`job.paused`, `job.failed`, `printer.error`,
/// `printer.offline`); the rest waits and goes out, in order, when they end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start, `HH:MM` in `time_zone` (e.g. `22:00`).
    pub from: String,
    /// End, `HH:MM`; before `from` means the next day (`07:00`).
    pub to: String,
    /// An IANA time zone (`Europe/Berlin`, `UTC`), so the hours follow daylight saving time.
    pub time_zone: String,
}

/// `POST /api/v1/orgs/{org}/notifications` (admins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// 1–100 characters, unique in the organisation.
    pub name: String,
    pub kind: ChannelKind,
    /// `https://` (or `http://`) destination, or `mailto:` addresses for e-mail. An HTTP URL is a
    /// secret for Slack, Discord and ntfy (whoever has it can post), so the API shows only its
    /// scheme and host afterwards.
    pub url: String,
    /// Events to follow; absent means [`NotifyEvent::DEFAULT`].
    #[serde(default)]
    pub events: Option<Vec<NotifyEvent>>,
    /// ntfy only: an access token (`tk_...`) for a protected topic.
    #[serde(default)]
    pub token: Option<String>,
    /// Only printers of these pools, and pool jobs for them; absent or empty: every printer.
    #[serde(default)]
    pub pools: Option<Vec<String>>,
    /// Hours in which only alerts go out; absent: always everything.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
}

/// `PATCH /api/v1/orgs/{org}/notifications/{id}` (admins): rename a channel or change what it
/// follows. The destination stays (add a new channel for another one: its secret goes with it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChannelUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<NotifyEvent>>,
    /// Replaces the pools the channel is limited to (`[]`: every printer again).
    #[serde(default)]
    pub pools: Option<Vec<String>>,
    /// Replaces the quiet hours; `null` removes them.
    #[serde(
        default,
        with = "crate::inventory::clearable",
        skip_serializing_if = "Option::is_none"
    )]
    pub quiet_hours: Option<Option<QuietHours>>,
}

/// A channel as the API shows it: never its full URL, token or signing secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Channel {
    pub id: ChannelId,
    pub name: String,
    pub kind: ChannelKind,
    /// Scheme, host and port of the URL (`https://hooks.slack.com`), or the `mailto:` addresses.
    pub destination: String,
    pub events: Vec<NotifyEvent>,
    /// Only printers of these pools; empty: every printer.
    pub pools: Vec<String>,
    /// Hours in which only alerts go out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    pub created_by: UserId,
    pub created_at: String,
    /// Notifications waiting for their first try or a retry.
    pub pending: u32,
    /// The channel's most recent finished delivery, to see at a glance whether it works.
    pub last_delivery: Option<Delivery>,
}

/// `201` answer to a new channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedChannel {
    pub channel: Channel,
    /// Webhook channels: the signing secret (`whsec_...`, Standard Webhooks), in this response only.
    pub signing_secret: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first try or a retry.
    Pending,
    /// The destination answered 2xx.
    Delivered,
    /// Refused (a 4xx other than 408 and 429) or still failing after the last retry.
    Failed,
}

/// One notification to one channel, and how its delivery went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Delivery {
    pub id: DeliveryId,
    pub channel_id: ChannelId,
    pub event: NotifyEvent,
    pub title: String,
    pub state: DeliveryState,
    pub created_at: String,
    pub attempts: u32,
    pub last_attempt_at: Option<String>,
    /// When the next try is due (pending deliveries).
    pub next_attempt_at: Option<String>,
    /// The destination's HTTP status on the last try.
    pub response_status: Option<u16>,
    /// What went wrong on the last try, in words.
    pub error: Option<String>,
}

/// A printer as a notification names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NotifiedPrinter {
    pub id: PrinterId,
    pub name: String,
    pub model: String,
    pub pools: Vec<String>,
}

/// A job as a notification names it: its id, never its (sealed) file name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NotifiedJob {
    pub id: JobId,
    pub state: JobState,
    /// The pool it was sent to, when it was not sent to a printer by name.
    pub pool: Option<String>,
    /// Login of the member who submitted it.
    pub submitted_by: String,
    /// Why it failed, was refused or paused, in the agent's or printer's words.
    pub message: Option<String>,
    /// What its submitter revealed (material, grams, estimate).
    pub facts: SchedulingFacts,
}

/// A spool as a notification names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NotifiedSpool {
    pub id: crate::ids::SpoolId,
    /// The material's name in the library.
    pub name: String,
    pub material: String,
    pub color: Option<String>,
    pub remaining_grams: f32,
    pub low_grams: f32,
    /// The slot of the printer it is in (`A2`, `T1`), when it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

/// What `hearthd` sends: the `data` of a webhook, and what the Slack, Discord and ntfy texts are
/// made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Notification {
    pub event: NotifyEvent,
    pub org_id: OrgId,
    /// The organisation's name.
    pub org: String,
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    /// One line, e.g. `Print failed on mk4-02`.
    pub title: String,
    /// A sentence or two with the details.
    pub message: String,
    pub printer: Option<NotifiedPrinter>,
    pub job: Option<NotifiedJob>,
    /// The spool, for `spool.low`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<NotifiedSpool>,
    /// The task, for `maintenance.due`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::MaintenanceTask>,
    /// The request as recorded, for `legal.request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal: Option<crate::legal::LegalRequest>,
    /// The dashboard, when the server knows its public address.
    pub link: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_notifies_on_a_change_only_and_a_resume_is_not_a_start() {
        use JobState::*;
        assert_eq!(
            NotifyEvent::of_job(Transferring, Printing),
            Some(NotifyEvent::JobStarted)
        );
        assert_eq!(NotifyEvent::of_job(Paused, Printing), None);
        assert_eq!(NotifyEvent::of_job(Printing, Printing), None);
        assert_eq!(
            NotifyEvent::of_job(Printing, Paused),
            Some(NotifyEvent::JobPaused)
        );
        assert_eq!(
            NotifyEvent::of_job(Assigned, Refused),
            Some(NotifyEvent::JobFailed)
        );
        assert_eq!(
            NotifyEvent::of_job(Queued, Cancelled),
            Some(NotifyEvent::JobCancelled)
        );
        assert_eq!(NotifyEvent::of_job(Completed, Failed), None);
        assert_eq!(NotifyEvent::of_job(Queued, Assigned), None);
    }

    #[test]
    fn events_read_and_write_as_their_dotted_names() {
        for e in NotifyEvent::FOLLOWABLE {
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.as_str()));
            assert_eq!(e.as_str().parse::<NotifyEvent>(), Ok(e));
        }
        assert!(
            "test".parse::<NotifyEvent>().is_err(),
            "no channel follows test"
        );
        assert!(
            "job.finished"
                .parse::<NotifyEvent>()
                .unwrap_err()
                .contains("job.completed")
        );
    }
}
