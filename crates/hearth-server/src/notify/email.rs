//! E-mail notifications through the administrator's SMTP server (`[notifications.smtp]`), with
//! `lettre`: STARTTLS (refusing to go on without it) or implicit TLS through rustls and the
//! system's trust store, or plain SMTP to a relay the administrator trusts.

use crate::config::SmtpSettings;
use hearth_proto::ids::DeliveryId;
use hearth_proto::notify::Notification;
use hearth_store::notify::Outcome;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// At most this many addresses per channel.
pub const MAX_RECIPIENTS: usize = 20;

/// The configured SMTP transport and sender.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// The mailer the settings describe; `None` without a host. Reads the password file.
    pub fn new(
        s: &SmtpSettings,
        timeout: Duration,
        extra_ca: Option<&[u8]>,
    ) -> Result<Option<Mailer>, String> {
        if s.host.is_empty() {
            return Ok(None);
        }
        let from: Mailbox = s.from.parse().map_err(|e| {
            format!(
                "notifications.smtp.from {:?} is not an address: {e}",
                s.from
            )
        })?;
        let tls = |host: &str| {
            let mut b = TlsParameters::builder(host.to_owned());
            if let Some(pem) = extra_ca {
                b = b.add_root_certificate(
                    Certificate::from_pem(pem)
                        .map_err(|e| format!("notifications.ca_file: {e}"))?,
                );
            }
            b.build_rustls()
                .map_err(|e| format!("TLS for the SMTP server {host}: {e}"))
        };
        let (mut b, default_port) = match s.security.as_str() {
            "tls" => (
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                    .tls(Tls::Wrapper(tls(&s.host)?)),
                465,
            ),
            "none" => (
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
                25,
            ),
            _ => (
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                    .tls(Tls::Required(tls(&s.host)?)),
                587,
            ),
        };
        let port = u16::try_from(s.port)
            .ok()
            .filter(|p| *p != 0)
            .unwrap_or(default_port);
        b = b.port(port).timeout(Some(timeout));
        if !s.username.is_empty() {
            let password = match &s.password_file {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| {
                        format!("notifications.smtp.password_file {}: {e}", path.display())
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                None => String::new(),
            };
            b = b.credentials(Credentials::new(s.username.clone(), password));
        }
        Ok(Some(Mailer {
            transport: b.build(),
            from,
            host: format!("{}:{port}", s.host),
        }))
    }

    /// Send one notification; the Message-ID is the delivery's, the same on every try.
    pub async fn send(&self, to: &[Address], id: DeliveryId, n: &Notification) -> Outcome {
        let (subject, body) = super::render::email_text(n);
        let domain = self.from.email.domain().to_owned();
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(format!("<{id}@{domain}>")))
            .header(ContentType::TEXT_PLAIN);
        for a in to {
            m = m.to(Mailbox::new(None, a.clone()));
        }
        let message = match m.body(body) {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Failed {
                    status: None,
                    error: format!("could not build the e-mail: {e}"),
                };
            }
        };
        match self.transport.send(message).await {
            Ok(resp) => Outcome::Delivered {
                status: u16::from(resp.code()),
            },
            Err(e) => {
                let status = e.status().map(u16::from);
                let error = format!(
                    "the SMTP server {}: {}",
                    self.host,
                    crate::error::ErrorChain(&e)
                );
                if e.is_permanent() {
                    Outcome::Failed { status, error }
                } else {
                    Outcome::Retry {
                        status,
                        error,
                        at: 0,
                    }
                }
            }
        }
    }
}

/// `mailto:a@example.org,b@example.org` → the addresses (1 to [`MAX_RECIPIENTS`]).
pub fn parse_mailto(url: &str) -> Result<Vec<Address>, String> {
    let url = url.trim();
    let rest = url
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("mailto:"))
        .map(|_| &url[7..])
        .ok_or_else(|| "an e-mail channel's URL is mailto:address[,address...]".to_owned())?;
    if rest.contains('?') {
        return Err("a mailto: URL here takes addresses only, no ?subject or other fields".into());
    }
    let addrs: Vec<Address> = rest
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse::<Address>()
                .map_err(|e| format!("{a:?} is not an e-mail address: {e}"))
        })
        .collect::<Result<_, _>>()?;
    if addrs.is_empty() {
        return Err("mailto: names no address".into());
    }
    if addrs.len() > MAX_RECIPIENTS {
        return Err(format!("at most {MAX_RECIPIENTS} addresses per channel"));
    }
    Ok(addrs)
}

/// The canonical form stored and shown: `mailto:a@example.org,b@example.org`.
pub fn mailto(addrs: &[Address]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!("mailto:{}", list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailto_urls_name_one_to_twenty_addresses() {
        let a = parse_mailto("MAILTO: ops@example.org, lead@example.org ").unwrap();
        assert_eq!(mailto(&a), "mailto:ops@example.org,lead@example.org");
        for bad in [
            "ops@example.org",
            "mailto:",
            "mailto:not an address",
            "mailto:a@example.org?subject=x",
        ] {
            assert!(parse_mailto(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..21).map(|i| format!("u{i}@example.org")).collect();
        assert!(parse_mailto(&format!("mailto:{}", many.join(","))).is_err());
    }

    #[test]
    fn settings_without_a_host_mean_no_email_and_bad_ones_say_why() {
        let none = Mailer::new(&SmtpSettings::default(), Duration::from_secs(1), None).unwrap();
        assert!(none.is_none());
        let s = SmtpSettings {
            host: "smtp.example.org".into(),
            from: "not an address".into(),
            ..SmtpSettings::default()
        };
        let e = Mailer::new(&s, Duration::from_secs(1), None).unwrap_err();
        assert!(e.contains("notifications.smtp.from"), "{e}");
        let s = SmtpSettings {
            host: "smtp.example.org".into(),
            from: "Hearth <hearth@example.org>".into(),
            username: "hearth".into(),
            password_file: Some("/nonexistent/smtp-password".into()),
            ..SmtpSettings::default()
        };
        let e = Mailer::new(&s, Duration::from_secs(1), None).unwrap_err();
        assert!(e.contains("password_file"), "{e}");
    }
}
