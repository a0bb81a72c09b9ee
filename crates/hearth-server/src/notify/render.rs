//! A notification as each kind of destination expects it: pure functions from a [`Notification`]
//! to the HTTP request's URL, headers and body, so every format is tested without a network.
//!
//! - webhook: Standard Webhooks (<https://www.standardwebhooks.com/>): `webhook-id`,
//!   `webhook-timestamp` (Unix seconds) and `webhook-signature` = `v1,` + base64 of
//!   HMAC-SHA256(secret, `id.timestamp.body`), the secret being the base64 after `whsec_`.
//!   HMAC is `ring`'s; the spec's own test vector and its reference Python library check it.
//! - Slack (and Slack-compatible servers such as Mattermost): `{"text"}` in Slack's mrkdwn, with
//!   `&`, `<` and `>` escaped as Slack requires.
//! - Discord: `{"content", "allowed_mentions": {"parse": []}}`, so a printer named `@everyone`
//!   pings no one; at most 2000 characters, Discord's limit.
//! - ntfy: JSON publishing (`POST` to the server's root with `topic`, `title`, `message`,
//!   `priority`, `tags`, `click`), which carries any UTF-8 where headers could not.

use base64::Engine as _;
use hearth_proto::ids::DeliveryId;
use hearth_proto::notify::{ChannelKind, Notification, NotifyEvent};
use serde_json::json;

/// A request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Whatever a channel needs to sign or authenticate.
pub struct Credentials<'a> {
    pub url: &'a str,
    /// Webhook: `whsec_...`; ntfy: access token or empty.
    pub secret: &'a str,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// A new webhook signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_signing_secret() -> String {
    let raw: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The Standard Webhooks signature header value for one message.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let raw = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| "the signing secret is not base64".to_owned())?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
    ))
}

/// The request that delivers `n` to a channel of `kind`, sent at `now_secs`.
pub fn render(
    kind: ChannelKind,
    creds: &Credentials<'_>,
    id: DeliveryId,
    n: &Notification,
    now_secs: i64,
) -> Result<Outgoing, String> {
    let json_type = ("content-type", "application/json".to_owned());
    match kind {
        ChannelKind::Webhook => {
            let body = serde_json::to_vec(&json!({
                "type": n.event,
                "timestamp": n.at,
                "data": n,
            }))
            .map_err(|e| e.to_string())?;
            let id = id.to_string();
            let signature = sign(creds.secret, &id, now_secs, &body)?;
            Ok(Outgoing {
                url: creds.url.to_owned(),
                headers: vec![
                    json_type,
                    ("webhook-id", id),
                    ("webhook-timestamp", now_secs.to_string()),
                    ("webhook-signature", signature),
                ],
                body,
            })
        }
        ChannelKind::Slack => {
            let mut text = format!("*{}*\n{}", slack_escape(&n.title), slack_escape(&n.message));
            if let Some(link) = &n.link {
                text.push_str(&format!("\n<{}|Open the dashboard>", slack_escape(link)));
            }
            Ok(Outgoing {
                url: creds.url.to_owned(),
                headers: vec![json_type],
                body: serde_json::to_vec(&json!({ "text": text })).map_err(|e| e.to_string())?,
            })
        }
        ChannelKind::Discord => {
            let mut content = format!("**{}**\n{}", n.title, n.message);
            if let Some(link) = &n.link {
                content.push('\n');
                content.push_str(link);
            }
            Ok(Outgoing {
                url: creds.url.to_owned(),
                headers: vec![json_type],
                body: serde_json::to_vec(&json!({
                    "content": truncate_chars(&content, 2000),
                    "allowed_mentions": { "parse": [] },
                }))
                .map_err(|e| e.to_string())?,
            })
        }
        ChannelKind::Email => Err("e-mail is sent over SMTP, not HTTP".into()),
        ChannelKind::Ntfy => {
            let (base, topic) = ntfy_split(creds.url)?;
            let mut body = json!({
                "topic": topic,
                "title": n.title,
                "message": n.message,
                "priority": if n.event.is_alert() { 4 } else { 3 },
                "tags": [ntfy_tag(n.event)],
            });
            if let Some(link) = &n.link {
                body["click"] = json!(link);
            }
            let mut headers = vec![json_type];
            if !creds.secret.is_empty() {
                headers.push(("authorization", format!("Bearer {}", creds.secret)));
            }
            Ok(Outgoing {
                url: base,
                headers,
                body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
            })
        }
    }
}

/// An e-mail's subject and plain-text body.
pub fn email_text(n: &Notification) -> (String, String) {
    let mut body = format!("{}\n\n", n.message);
    let mut line = |k: &str, v: &str| body.push_str(&format!("{k:<14}{v}\n"));
    line("Organisation:", &n.org);
    if let Some(p) = &n.printer {
        line("Printer:", &format!("{} ({})", p.name, p.model));
    }
    if let Some(j) = &n.job {
        line("Job:", &j.id.to_string());
        line("Sent by:", &j.submitted_by);
    }
    line("When:", &n.at);
    if let Some(link) = &n.link {
        line("Dashboard:", link);
    }
    body.push_str(
        "\nSent by Hearth. File names are sealed on members' devices, so jobs are named by id; \
         `hearth jobs` shows the same id. An organisation admin changes what is sent with \
         `hearth notify`.\n",
    );
    (format!("[Hearth] {}", n.title), body)
}

/// `https://ntfy.example.org/farm` → (`https://ntfy.example.org/`, `farm`). A server under a
/// path prefix keeps it: `https://example.org/ntfy/farm` → `https://example.org/ntfy/`.
pub fn ntfy_split(url: &str) -> Result<(String, String), String> {
    let trimmed = url.trim_end_matches('/');
    let after_scheme = trimmed.find("://").map_or(0, |i| i + 3);
    match trimmed.rfind('/') {
        Some(i) if i >= after_scheme => {
            let topic = &trimmed[i + 1..];
            let valid = !topic.is_empty()
                && topic.len() <= 64
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(format!(
                    "an ntfy URL ends in its topic (letters, digits, - and _, at most 64): {topic:?}"
                ));
            }
            Ok((trimmed[..=i].to_owned(), topic.to_owned()))
        }
        _ => Err("an ntfy URL names a topic: https://ntfy.sh/your-topic".into()),
    }
}

/// An emoji short code ntfy shows beside the title.
fn ntfy_tag(e: NotifyEvent) -> &'static str {
    match e {
        NotifyEvent::JobStarted => "arrow_forward",
        NotifyEvent::JobPaused => "pause_button",
        NotifyEvent::JobCompleted => "white_check_mark",
        NotifyEvent::JobFailed => "x",
        NotifyEvent::JobCancelled => "stop_button",
        NotifyEvent::JobAwaitingApproval => "raised_hand",
        NotifyEvent::JobApproved => "thumbsup",
        NotifyEvent::PrinterError => "warning",
        NotifyEvent::PrinterOffline => "electric_plug",
        NotifyEvent::PrinterOnline => "green_circle",
        NotifyEvent::SpoolLow => "thread",
        NotifyEvent::MaintenanceDue => "wrench",
        NotifyEvent::LegalRequest => "scales",
        NotifyEvent::Test => "bell",
    }
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => {
            let mut t = s[..i].to_owned();
            t.pop();
            t.push('…');
            t
        }
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::ids::OrgId;

    fn sample(event: NotifyEvent, title: &str, message: &str) -> Notification {
        Notification {
            event,
            org_id: OrgId::new(),
            org: "Acme".into(),
            at: "2026-12-05T10:00:00Z".into(),
            title: title.into(),
            message: message.into(),
            printer: None,
            job: None,
            spool: None,
            maintenance: None,
            legal: None,
            link: Some("https://hearth.example.org/".into()),
        }
    }

    /// The test vector of the Standard Webhooks specification (and of its reference libraries).
    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        let v: serde_json::Value = serde_json::from_str(include_str!(
            "../../test_data/standard-webhooks-vector.json"
        ))
        .unwrap();
        let got = sign(
            v["secret"].as_str().unwrap(),
            v["id"].as_str().unwrap(),
            v["timestamp"].as_i64().unwrap(),
            v["payload"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        assert_eq!(got, v["signature"].as_str().unwrap());
        // One byte more in the body is another signature.
        let other = sign(
            v["secret"].as_str().unwrap(),
            v["id"].as_str().unwrap(),
            v["timestamp"].as_i64().unwrap(),
            format!("{} ", v["payload"].as_str().unwrap()).as_bytes(),
        )
        .unwrap();
        assert_ne!(other, got);
        assert!(sign("whsec_not base64!", "id", 1, b"{}").is_err());
    }

    #[test]
    fn slack_text_is_escaped_and_discord_pings_no_one() {
        let n = sample(
            NotifyEvent::PrinterError,
            "<!channel> & mk4 reports an error",
            "@everyone thermal runaway",
        );
        let creds = Credentials {
            url: "https://hooks.slack.com/services/T/B/x",
            secret: "",
        };
        let out = render(ChannelKind::Slack, &creds, DeliveryId::new(), &n, 0).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with("*&lt;!channel&gt; &amp; mk4"), "{text}");
        assert!(text.ends_with("<https://hearth.example.org/|Open the dashboard>"));

        let out = render(ChannelKind::Discord, &creds, DeliveryId::new(), &n, 0).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["allowed_mentions"]["parse"], json!([]));
        assert!(
            body["content"]
                .as_str()
                .unwrap()
                .contains("@everyone thermal")
        );

        let long = sample(NotifyEvent::JobFailed, "t", &"é".repeat(5000));
        let out = render(ChannelKind::Discord, &creds, DeliveryId::new(), &long, 0).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["content"].as_str().unwrap().chars().count(), 2000);
    }

    #[test]
    fn ntfy_posts_json_to_the_server_root_with_the_topic_and_token() {
        let n = sample(NotifyEvent::JobFailed, "Print failed on Ünïcode", "why");
        let creds = Credentials {
            url: "https://ntfy.example.org/sub/farm-alerts",
            secret: "tk_abc",
        };
        let out = render(ChannelKind::Ntfy, &creds, DeliveryId::new(), &n, 0).unwrap();
        assert_eq!(out.url, "https://ntfy.example.org/sub/");
        assert!(
            out.headers
                .contains(&("authorization", "Bearer tk_abc".into()))
        );
        let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["topic"], "farm-alerts");
        assert_eq!(body["title"], "Print failed on Ünïcode");
        assert_eq!(body["priority"], 4);
        assert_eq!(body["tags"], json!(["x"]));
        assert_eq!(body["click"], "https://hearth.example.org/");
        for bad in ["https://ntfy.sh", "https://ntfy.sh/", "https://ntfy.sh/a b"] {
            assert!(ntfy_split(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_email_has_the_title_as_subject_and_the_facts_as_lines() {
        let mut n = sample(
            NotifyEvent::JobFailed,
            "Print failed on mk4",
            "Job x failed.",
        );
        n.printer = Some(hearth_proto::notify::NotifiedPrinter {
            id: hearth_proto::ids::PrinterId::new(),
            name: "mk4".into(),
            model: "Prusa MK4".into(),
            pools: vec![],
        });
        let (subject, body) = email_text(&n);
        assert_eq!(subject, "[Hearth] Print failed on mk4");
        assert!(body.starts_with("Job x failed.\n\n"), "{body}");
        assert!(body.contains("Printer:      mk4 (Prusa MK4)\n"), "{body}");
        assert!(
            body.contains("Dashboard:    https://hearth.example.org/\n"),
            "{body}"
        );
    }

    #[test]
    fn a_webhook_body_is_the_notification_under_type_timestamp_data() {
        let n = sample(NotifyEvent::JobCompleted, "done", "job x");
        let secret = new_signing_secret();
        let creds = Credentials {
            url: "https://example.org/hook",
            secret: &secret,
        };
        let id = DeliveryId::new();
        let out = render(ChannelKind::Webhook, &creds, id, &n, 1_700_000_000).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["type"], "job.completed");
        assert_eq!(body["timestamp"], n.at);
        let back: Notification = serde_json::from_value(body["data"].clone()).unwrap();
        assert_eq!(back, n);
        let header = |name| {
            out.headers
                .iter()
                .find(|(k, _)| *k == name)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(header("webhook-id"), id.to_string());
        assert_eq!(header("webhook-timestamp"), "1700000000");
        assert_eq!(
            header("webhook-signature"),
            sign(&secret, &id.to_string(), 1_700_000_000, &out.body).unwrap()
        );
    }
}
