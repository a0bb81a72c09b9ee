//! `hearth notify list|add|test|deliveries|remove`: the organisation's notification channels
//! (admins). The server sends; this only configures and shows them.

use anyhow::{Context, anyhow, bail};
use hearth_client::Client;
use hearth_proto::ids::OrgId;
use hearth_proto::notify::{
    Channel, ChannelKind, ChannelUpdate, Delivery, DeliveryState, NewChannel, NotifyEvent,
    QuietHours,
};
use std::io::Read;

use crate::cmd::fleet::{Table, print_json};
use crate::ctx::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum NotifyCmd {
    /// The channels, what they follow, and how their latest delivery went.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a channel. Events default to job.paused, job.completed, job.failed, printer.error,
    /// printer.offline and printer.online.
    Add {
        /// A name for it, unique in the organisation.
        name: String,
        /// webhook (signed JSON, Standard Webhooks), slack, discord, ntfy, or email (through the
        /// server's SMTP settings; the URL is then mailto:a@example.org,b@example.org).
        #[arg(long)]
        kind: ChannelKind,
        /// The destination; `-` reads it from standard input (a Slack or Discord URL is a
        /// password: keep it out of the shell history).
        #[arg(long)]
        url: String,
        /// Comma-separated events: job.started, job.paused, job.completed, job.failed,
        /// job.cancelled, job.awaiting_approval, job.approved, printer.error, printer.offline,
        /// printer.online, spool.low, maintenance.due, legal.request.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<NotifyEvent>>,
        /// ntfy: a file holding the access token of a protected topic.
        #[arg(long, value_name = "FILE")]
        token_file: Option<std::path::PathBuf>,
        /// Only printers of these pools (comma-separated), and pool jobs for them.
        #[arg(long, value_delimiter = ',')]
        pools: Option<Vec<String>>,
        /// Quiet hours, e.g. 22:00-07:00: only alerts (job.paused, job.failed, printer.error,
        /// printer.offline) go out then; the rest waits until they end.
        #[arg(long, value_name = "FROM-TO", requires = "time_zone")]
        quiet: Option<String>,
        /// The time zone of the quiet hours, an IANA name (Europe/Berlin, America/Chicago, UTC).
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rename a channel or change the events it follows (the destination stays).
    Edit {
        /// Channel id or name.
        channel: String,
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated events, replacing those it follows now.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<NotifyEvent>>,
        /// Comma-separated pools it is limited to, replacing the current ones; `--pools ''` for
        /// every printer again.
        #[arg(long, value_delimiter = ',')]
        pools: Option<Vec<String>>,
        /// Quiet hours (22:00-07:00, with --time-zone), or `off`.
        #[arg(long, value_name = "FROM-TO|off")]
        quiet: Option<String>,
        /// The time zone of the quiet hours (IANA name).
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
    },
    /// Send a test notification now and show what the destination answered.
    Test {
        /// Channel id or name.
        channel: String,
    },
    /// The channel's latest deliveries: what was sent, tries, and the destination's answer.
    Deliveries {
        /// Channel id or name.
        channel: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a channel (what waits for it is dropped).
    Remove {
        /// Channel id or name.
        channel: String,
    },
}

/// The channel named by id or name.
async fn find(client: &Client, org: OrgId, key: &str) -> anyhow::Result<Channel> {
    let channels = client.notification_channels(org).await?;
    channels
        .iter()
        .find(|c| c.id.to_string() == key)
        .or_else(|| channels.iter().find(|c| c.name == key))
        .cloned()
        .ok_or_else(|| anyhow!("no notification channel {key:?} (see `hearth notify list`)"))
}

/// `--quiet FROM-TO --time-zone ZONE` as the API takes it; `off` is `None`.
fn quiet_hours(quiet: &str, zone: Option<&str>) -> anyhow::Result<Option<QuietHours>> {
    if quiet.trim() == "off" {
        return Ok(None);
    }
    let Some((from, to)) = quiet.split_once('-') else {
        bail!("--quiet {quiet:?}: give the hours as FROM-TO, e.g. 22:00-07:00 (or off)");
    };
    let Some(zone) = zone else {
        bail!("--quiet needs --time-zone (an IANA name such as Europe/Berlin)");
    };
    Ok(Some(QuietHours {
        from: from.trim().to_owned(),
        to: to.trim().to_owned(),
        time_zone: zone.to_owned(),
    }))
}

/// `22:00-07:00 Europe/Berlin`, or `-`.
fn shown_quiet(q: Option<&QuietHours>) -> String {
    q.map_or("-".into(), |q| {
        format!("{}-{} {}", q.from, q.to, q.time_zone)
    })
}

/// ` for pools a, b` when a channel is limited to some pools.
fn scope(pools: &[String]) -> String {
    if pools.is_empty() {
        String::new()
    } else {
        format!(" for pools {}", pools.join(", "))
    }
}

fn state(d: &Delivery) -> &'static str {
    match d.state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
    }
}

/// `delivered (200)`, `failed (the destination answered 404: no_service)`,
/// `pending (...), next try 2026-...`. The error names the status when the destination answered.
fn outcome(d: &Delivery) -> String {
    let detail = match (d.response_status, &d.error) {
        (_, Some(e)) if d.state != DeliveryState::Delivered => format!(" ({e})"),
        (Some(s), _) => format!(" ({s})"),
        _ => String::new(),
    };
    match (&d.next_attempt_at, d.state) {
        (Some(next), DeliveryState::Pending) => format!("pending{detail}, next try {next}"),
        _ => format!("{}{detail}", state(d)),
    }
}

pub async fn run(cmd: &NotifyCmd) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let client = &ctx.client;
    match cmd {
        NotifyCmd::List { json } => {
            let channels = client.notification_channels(org).await?;
            if *json {
                return print_json(&channels);
            }
            if channels.is_empty() {
                eprintln!("no notification channels: add one with `hearth notify add`");
                return Ok(());
            }
            let mut t = Table::new(&[
                "NAME",
                "KIND",
                "DESTINATION",
                "EVENTS",
                "POOLS",
                "QUIET",
                "LAST DELIVERY",
                "PENDING",
            ]);
            for c in &channels {
                let events: Vec<&str> = c.events.iter().map(|e| e.as_str()).collect();
                t.row(vec![
                    c.name.clone(),
                    c.kind.as_str().into(),
                    c.destination.clone(),
                    events.join(","),
                    if c.pools.is_empty() {
                        "all".into()
                    } else {
                        c.pools.join(",")
                    },
                    shown_quiet(c.quiet_hours.as_ref()),
                    c.last_delivery.as_ref().map_or("-".into(), |d| {
                        format!(
                            "{} {}",
                            d.last_attempt_at.as_deref().unwrap_or(""),
                            outcome(d)
                        )
                    }),
                    c.pending.to_string(),
                ]);
            }
            t.print();
            Ok(())
        }
        NotifyCmd::Add {
            name,
            kind,
            url,
            events,
            token_file,
            pools,
            quiet,
            time_zone,
            json,
        } => {
            let quiet_hours = quiet
                .as_deref()
                .map(|q| quiet_hours(q, time_zone.as_deref()))
                .transpose()?
                .flatten();
            let url = if url == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the URL from standard input")?;
                s.trim().to_owned()
            } else {
                url.clone()
            };
            let token = match token_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading the token from {}", path.display()))?
                        .trim()
                        .to_owned(),
                ),
                None => None,
            };
            let created = client
                .create_notification_channel(
                    org,
                    &NewChannel {
                        name: name.clone(),
                        kind: *kind,
                        url,
                        events: events.clone(),
                        token,
                        pools: pools.clone(),
                        quiet_hours,
                    },
                )
                .await?;
            if *json {
                return print_json(&created);
            }
            let events: Vec<&str> = created.channel.events.iter().map(|e| e.as_str()).collect();
            println!(
                "added {} ({}) to {}: {}{}",
                created.channel.name,
                created.channel.kind.as_str(),
                created.channel.destination,
                events.join(", "),
                scope(&created.channel.pools)
            );
            if let Some(q) = &created.channel.quiet_hours {
                println!("quiet hours: {}", shown_quiet(Some(q)));
            }
            if let Some(secret) = &created.signing_secret {
                println!(
                    "signing secret (shown once; the receiver verifies webhook-signature with it):"
                );
                println!("{secret}");
            }
            eprintln!("try it: hearth notify test {:?}", created.channel.name);
            Ok(())
        }
        NotifyCmd::Edit {
            channel,
            name,
            events,
            pools,
            quiet,
            time_zone,
        } => {
            if name.is_none() && events.is_none() && pools.is_none() && quiet.is_none() {
                bail!("say what to change: --name, --events, --pools and/or --quiet");
            }
            let quiet_hours = quiet
                .as_deref()
                .map(|q| quiet_hours(q, time_zone.as_deref()))
                .transpose()?;
            let c = find(client, org, channel).await?;
            let updated = client
                .update_notification_channel(
                    org,
                    c.id,
                    &ChannelUpdate {
                        name: name.clone(),
                        events: events.clone(),
                        pools: pools
                            .as_ref()
                            .map(|p| p.iter().filter(|p| !p.is_empty()).cloned().collect()),
                        quiet_hours,
                    },
                )
                .await?;
            let events: Vec<&str> = updated.events.iter().map(|e| e.as_str()).collect();
            println!(
                "{} now follows {}{}",
                updated.name,
                events.join(", "),
                scope(&updated.pools)
            );
            if quiet.is_some() {
                println!("quiet hours: {}", shown_quiet(updated.quiet_hours.as_ref()));
            }
            Ok(())
        }
        NotifyCmd::Test { channel } => {
            let c = find(client, org, channel).await?;
            let d = client.test_notification_channel(org, c.id).await?;
            match d.state {
                DeliveryState::Delivered => {
                    println!(
                        "{}: delivered{}",
                        c.name,
                        d.response_status
                            .map(|s| format!(" ({s})"))
                            .unwrap_or_default()
                    );
                    Ok(())
                }
                _ => bail!("{}: {}", c.name, outcome(&d)),
            }
        }
        NotifyCmd::Deliveries { channel, json } => {
            let c = find(client, org, channel).await?;
            let ds = client.notification_deliveries(org, c.id).await?;
            if *json {
                return print_json(&ds);
            }
            let mut t = Table::new(&["CREATED", "EVENT", "TITLE", "TRIES", "OUTCOME"]);
            for d in &ds {
                t.row(vec![
                    d.created_at.clone(),
                    d.event.as_str().into(),
                    d.title.clone(),
                    d.attempts.to_string(),
                    outcome(d),
                ]);
            }
            t.print();
            Ok(())
        }
        NotifyCmd::Remove { channel } => {
            let c = find(client, org, channel).await?;
            client.delete_notification_channel(org, c.id).await?;
            println!("removed {}", c.name);
            Ok(())
        }
    }
}
