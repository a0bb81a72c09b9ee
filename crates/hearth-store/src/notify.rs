//! Notification channels and the deliveries on their way to them (`0007_notifications.sql`).

use crate::rows::{all_by, json_opt, map_all, one_by, parsed};
use crate::{Result, Store, StoreError, Tx};
use hearth_proto::ids::{ChannelId, DeliveryId, OrgId, UserId};
use hearth_proto::notify::{ChannelKind, DeliveryState, NotifyEvent, QuietHours};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Finished deliveries kept per channel (the newest), for `GET .../deliveries`.
pub const KEEP_FINISHED: i64 = 100;

/// A channel with its credentials. `Debug` shows neither the URL's path nor the secret.
#[derive(Clone, PartialEq)]
pub struct ChannelRow {
    pub id: ChannelId,
    pub org_id: OrgId,
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    /// Webhook: the signing secret; ntfy: the access token or empty.
    pub secret: String,
    pub events: Vec<NotifyEvent>,
    /// Only printers of these pools (and pool jobs for them); empty: every printer.
    pub pools: Vec<String>,
    /// Hours in which only alerts go out.
    pub quiet: Option<QuietHours>,
    pub created_by: UserId,
    pub created_at: i64,
}

impl std::fmt::Debug for ChannelRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &"<redacted>")
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub channel_id: ChannelId,
    pub event: NotifyEvent,
    /// JSON of `hearth_proto::notify::Notification`.
    pub payload: String,
    pub state: DeliveryState,
    pub created_at: i64,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_attempt_at: Option<i64>,
    pub response_status: Option<u16>,
    pub error: Option<String>,
}

/// How one try went.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Delivered {
        status: u16,
    },
    /// Try again at `at`.
    Retry {
        status: Option<u16>,
        error: String,
        at: i64,
    },
    Failed {
        status: Option<u16>,
        error: String,
    },
}

const CHANNEL_COLS: &str =
    "id, org_id, name, kind, url, secret, events, pools, quiet, created_by, created_at";
const DELIVERY_COLS: &str = "id, channel_id, event, payload, state, created_at, attempts, \
     next_attempt_at, last_attempt_at, response_status, error";

/// A list as stored: `,a,b,` (so that `LIKE '%,a,%'` finds an item), or empty for none.
fn list_column<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.into_iter().collect();
    if items.is_empty() {
        String::new()
    } else {
        format!(",{},", items.join(","))
    }
}

/// The items of a [`list_column`].
fn list_of(column: &str) -> impl Iterator<Item = &str> {
    column.split(',').filter(|p| !p.is_empty())
}

fn events_column(events: &[NotifyEvent]) -> String {
    list_column(events.iter().map(|e| e.as_str()))
}

fn pools_column(pools: &[String]) -> String {
    list_column(pools.iter().map(String::as_str))
}

fn quiet_column(q: Option<&QuietHours>) -> Option<String> {
    q.map(|q| serde_json::to_string(q).unwrap_or_default())
}

fn pools_of(column: &str) -> Vec<String> {
    list_of(column).map(str::to_owned).collect()
}

fn channel(r: &AnyRow) -> Result<ChannelRow> {
    let events: String = r.try_get("events")?;
    let events = list_of(&events)
        .map(|e| {
            e.parse()
                .map_err(|_| StoreError::Corrupt(format!("notification event {e:?}")))
        })
        .collect::<Result<_>>()?;
    Ok(ChannelRow {
        id: parsed(r, "id")?,
        org_id: parsed(r, "org_id")?,
        name: r.try_get("name")?,
        kind: parsed(r, "kind")?,
        url: r.try_get("url")?,
        secret: r.try_get("secret")?,
        events,
        pools: pools_of(&r.try_get::<String, _>("pools")?),
        quiet: json_opt(r, "quiet")?,
        created_by: parsed(r, "created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn state_str(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
    }
}

fn delivery(r: &AnyRow) -> Result<DeliveryRow> {
    let event: String = r.try_get("event")?;
    let event = if event == NotifyEvent::Test.as_str() {
        NotifyEvent::Test
    } else {
        event
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("notification event {event:?}")))?
    };
    let state: String = r.try_get("state")?;
    let state = match state.as_str() {
        "pending" => DeliveryState::Pending,
        "delivered" => DeliveryState::Delivered,
        "failed" => DeliveryState::Failed,
        other => return Err(StoreError::Corrupt(format!("delivery state {other:?}"))),
    };
    let attempts: i64 = r.try_get("attempts")?;
    let status: Option<i64> = r.try_get("response_status")?;
    Ok(DeliveryRow {
        id: parsed(r, "id")?,
        channel_id: parsed(r, "channel_id")?,
        event,
        payload: r.try_get("payload")?,
        state,
        created_at: r.try_get("created_at")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        response_status: status.and_then(|s| u16::try_from(s).ok()),
        error: r.try_get("error")?,
    })
}

impl Store {
    /// An organisation's channels, by name.
    pub async fn channels(&self, org: OrgId) -> Result<Vec<ChannelRow>> {
        let q =
            format!("SELECT {CHANNEL_COLS} FROM notify_channels WHERE org_id = $1 ORDER BY name");
        map_all(&all_by(self.pool(), &q, org.to_string()).await?, channel)
    }

    pub async fn channel(&self, id: ChannelId) -> Result<ChannelRow> {
        let q = format!("SELECT {CHANNEL_COLS} FROM notify_channels WHERE id = $1");
        one_by(self.pool(), &q, id.to_string(), channel, || {
            format!("notification channel {id}")
        })
        .await
    }

    /// A channel's deliveries, newest first.
    pub async fn deliveries(&self, channel: ChannelId, limit: i64) -> Result<Vec<DeliveryRow>> {
        let q = format!(
            "SELECT {DELIVERY_COLS} FROM notify_deliveries WHERE channel_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(&q)
            .bind(channel.to_string())
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        map_all(&rows, delivery)
    }

    pub async fn delivery(&self, id: DeliveryId) -> Result<DeliveryRow> {
        let q = format!("SELECT {DELIVERY_COLS} FROM notify_deliveries WHERE id = $1");
        one_by(self.pool(), &q, id.to_string(), delivery, || {
            format!("delivery {id}")
        })
        .await
    }

    /// How many of a channel's deliveries wait, and its latest finished one.
    pub async fn channel_status(&self, channel: ChannelId) -> Result<(u32, Option<DeliveryRow>)> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM notify_deliveries WHERE channel_id = $1 AND state = 'pending'",
        )
        .bind(channel.to_string())
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        let q = format!(
            "SELECT {DELIVERY_COLS} FROM notify_deliveries WHERE channel_id = $1 \
             AND state <> 'pending' ORDER BY last_attempt_at DESC, id DESC LIMIT 1"
        );
        let last = sqlx::query(&q)
            .bind(channel.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(delivery)
            .transpose()?;
        Ok((u32::try_from(n).unwrap_or(u32::MAX), last))
    }

    /// When the earliest pending delivery is due (for the sender's sleep).
    pub async fn next_delivery_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query(
            "SELECT MIN(CASE WHEN lease_until > next_attempt_at THEN lease_until ELSE next_attempt_at END) AS t \
             FROM notify_deliveries WHERE state = 'pending'",
        )
        .fetch_one(self.pool())
        .await?
        .try_get("t")?)
    }

    /// Take up to `limit` due deliveries for `lease_ms`: no other sender (another `hearthd` on the
    /// same database) takes them until the lease ends or the outcome is recorded.
    pub async fn claim_due_deliveries(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        let mut tx = self.begin().await?;
        let q = format!(
            "UPDATE notify_deliveries SET lease_until = $1 WHERE id IN (\
               SELECT id FROM notify_deliveries WHERE state = 'pending' AND next_attempt_at <= $2 \
               AND lease_until <= $2 ORDER BY next_attempt_at LIMIT $3) \
             AND state = 'pending' AND lease_until <= $2 RETURNING {DELIVERY_COLS}"
        );
        let rows = sqlx::query(&q)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx.inner)
            .await?;
        tx.commit().await?;
        map_all(&rows, delivery)
    }
}

impl Store {
    /// Free deliveries a sender claimed but did not finish (it is stopping).
    pub async fn release_deliveries(&self, ids: &[DeliveryId]) -> Result<()> {
        let mut tx = self.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE notify_deliveries SET lease_until = 0 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id.to_string())
            .execute(&mut *tx.inner)
            .await?;
        }
        tx.commit().await
    }
}

impl Tx {
    pub async fn insert_channel(&mut self, c: &ChannelRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO notify_channels (id, org_id, name, kind, url, secret, events, created_by, created_at, pools, quiet) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(c.id.to_string())
        .bind(c.org_id.to_string())
        .bind(c.name.clone())
        .bind(c.kind.as_str())
        .bind(c.url.clone())
        .bind(c.secret.clone())
        .bind(events_column(&c.events))
        .bind(c.created_by.to_string())
        .bind(c.created_at)
        .bind(pools_column(&c.pools))
        .bind(quiet_column(c.quiet.as_ref()))
        .execute(&mut *self.inner)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "a notification channel named {:?} already exists",
                c.name
            )),
            other => other,
        })?;
        Ok(())
    }

    /// Rename a channel of `org` and set what it follows (pending deliveries are kept).
    /// Writes a channel's name, events, pools and quiet hours (its destination stays).
    pub async fn update_channel(&mut self, c: &ChannelRow) -> Result<()> {
        let (org, id, name) = (c.org_id, c.id, c.name.as_str());
        let n = sqlx::query(
            "UPDATE notify_channels SET name = $1, events = $2, pools = $5, quiet = $6 \
             WHERE id = $3 AND org_id = $4",
        )
        .bind(name.to_owned())
        .bind(events_column(&c.events))
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(pools_column(&c.pools))
        .bind(quiet_column(c.quiet.as_ref()))
        .execute(&mut *self.inner)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "a notification channel named {name:?} already exists"
            )),
            other => other,
        })?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("notification channel {id}")));
        }
        Ok(())
    }

    /// Remove a channel of `org` and everything waiting for it.
    pub async fn delete_channel(&mut self, org: OrgId, id: ChannelId) -> Result<()> {
        sqlx::query("DELETE FROM notify_deliveries WHERE channel_id = $1")
            .bind(id.to_string())
            .execute(&mut *self.inner)
            .await?;
        let n = sqlx::query("DELETE FROM notify_channels WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .execute(&mut *self.inner)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("notification channel {id}")));
        }
        Ok(())
    }

    /// Queue `payload` for every channel of `org` that follows `event` and is not limited to pools
    /// other than `pools` (those of the printer and job concerned); returns how many.
    pub async fn enqueue_notification(
        &mut self,
        org: OrgId,
        event: NotifyEvent,
        payload: &str,
        pools: &[String],
        now: i64,
        due: impl Fn(Option<&QuietHours>) -> i64,
    ) -> Result<usize> {
        let rows = sqlx::query(
            "SELECT id, pools, quiet FROM notify_channels WHERE org_id = $1 AND events LIKE $2",
        )
        .bind(org.to_string())
        .bind(format!("%,{},%", event.as_str()))
        .fetch_all(&mut *self.inner)
        .await?;
        let mut queued = 0;
        for r in &rows {
            let only = pools_of(&r.try_get::<String, _>("pools")?);
            if !only.is_empty() && !only.iter().any(|p| pools.contains(p)) {
                continue;
            }
            let channel: ChannelId = parsed(r, "id")?;
            let quiet: Option<QuietHours> = json_opt(r, "quiet")?;
            self.insert_delivery_due(
                DeliveryId::new(),
                channel,
                event,
                payload,
                (now, due(quiet.as_ref())),
                0,
            )
            .await?;
            queued += 1;
        }
        Ok(queued)
    }

    /// A pending delivery due at `now`, leased until `lease_until` (0: free to any sender).
    pub async fn insert_delivery(
        &mut self,
        id: DeliveryId,
        channel: ChannelId,
        event: NotifyEvent,
        payload: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<()> {
        self.insert_delivery_due(id, channel, event, payload, (now, now), lease_until)
            .await
    }

    /// A pending delivery created at `created` and due at `due` (after the channel's quiet hours).
    async fn insert_delivery_due(
        &mut self,
        id: DeliveryId,
        channel: ChannelId,
        event: NotifyEvent,
        payload: &str,
        (created, due): (i64, i64),
        lease_until: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO notify_deliveries (id, channel_id, event, payload, state, created_at, attempts, \
             next_attempt_at, lease_until) VALUES ($1, $2, $3, $4, 'pending', $5, 0, $7, $6)",
        )
        .bind(id.to_string())
        .bind(channel.to_string())
        .bind(event.as_str())
        .bind(payload.to_owned())
        .bind(created)
        .bind(lease_until)
        .bind(due.max(created))
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }

    /// Record a try's outcome, free the lease, and drop the channel's oldest finished deliveries
    /// beyond [`KEEP_FINISHED`].
    pub async fn record_delivery(
        &mut self,
        id: DeliveryId,
        outcome: &Outcome,
        now: i64,
    ) -> Result<()> {
        let (state, status, error, next) = match outcome {
            Outcome::Delivered { status } => (DeliveryState::Delivered, Some(*status), None, now),
            Outcome::Retry { status, error, at } => {
                (DeliveryState::Pending, *status, Some(error.clone()), *at)
            }
            Outcome::Failed { status, error } => {
                (DeliveryState::Failed, *status, Some(error.clone()), now)
            }
        };
        let row = sqlx::query(
            "UPDATE notify_deliveries SET state = $1, attempts = attempts + 1, last_attempt_at = $2, \
             response_status = $3, error = $4, next_attempt_at = $5, lease_until = 0 WHERE id = $6 \
             RETURNING channel_id",
        )
        .bind(state_str(state))
        .bind(now)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(next)
        .bind(id.to_string())
        .fetch_optional(&mut *self.inner)
        .await?;
        // The channel was deleted meanwhile: nothing to record.
        let Some(row) = row else { return Ok(()) };
        let channel: String = row.try_get("channel_id")?;
        sqlx::query(
            "DELETE FROM notify_deliveries WHERE channel_id = $1 AND state <> 'pending' AND id NOT IN (\
               SELECT id FROM notify_deliveries WHERE channel_id = $1 AND state <> 'pending' \
               ORDER BY created_at DESC, id DESC LIMIT $2)",
        )
        .bind(channel)
        .bind(KEEP_FINISHED)
        .execute(&mut *self.inner)
        .await?;
        Ok(())
    }
}
