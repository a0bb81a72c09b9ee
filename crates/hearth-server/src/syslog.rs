//! Forwarding the audit log to a syslog collector (`[audit] syslog`), the way security teams feed
//! a SIEM: every entry of every chain, the system's and each organisation's, as one RFC 5424
//! message, sent over TCP with octet-counting framing (RFC 6587 §3.4.1) or TLS (RFC 5425).
//!
//! What is sent is what the server holds in clear anyway (DESIGN.md's table): the entry as `GET
//! .../audit` serves it, as JSON in the message body, so a collector keeps the hash chain and can
//! check it. How far each chain was sent is kept in the database (`audit_forwarded`), so a
//! restart, a collector down for a day or a dropped connection loses nothing: sending resumes
//! after the last entry written to the connection. Of several instances sharing PostgreSQL, the
//! one holding a lease (`audit_forward_lease`) sends. Plain syslog has no acknowledgement: entries
//! written just before a connection breaks may be lost in it or, sent again, arrive twice; each
//! carries its chain and position (`scope`, `seq`), so a collector sees gaps and duplicates.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hearth_proto::audit::AuditEntry;
use hearth_proto::time_fmt::now_ms;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::config::AuditSettings;
use crate::state::AppState;

/// How long an instance keeps the right to send once it took it (renewed at every round).
const LEASE_MS: i64 = 30_000;
/// How often the chains are looked at for new entries.
const POLL: Duration = Duration::from_secs(1);
/// Entries read and written at a time.
const PAGE: i64 = 200;
/// Connecting, and writing a page, give up after this.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// After a failure, waits grow from one second to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// RFC 5424 facility 13, "log audit", at severity 5, notice (a failed attempt: 4, warning).
const PRI_NOTICE: u8 = 13 * 8 + 5;
const PRI_WARNING: u8 = 13 * 8 + 4;

/// How sending goes, as this instance sees it (`GET /system/audit/forwarding`).
#[derive(Debug, Default)]
pub struct Status {
    inner: std::sync::Mutex<Seen>,
}

#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// When entries were last written (Unix ms).
    pub last_sent_at: Option<i64>,
    /// The last failure and since when it fails, until a try succeeds.
    pub error: Option<String>,
    pub failing_since: Option<i64>,
}

impl Status {
    pub fn seen(&self) -> Seen {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn sent(&self, now: i64, any: bool) {
        if let Ok(mut s) = self.inner.lock() {
            if any {
                s.last_sent_at = Some(now);
            }
            s.error = None;
            s.failing_since = None;
        }
    }

    fn failed(&self, now: i64, why: &str) {
        if let Ok(mut s) = self.inner.lock() {
            s.error = Some(why.to_owned());
            s.failing_since.get_or_insert(now);
        }
    }
}

/// A connection to the collector.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Whether the collector closed `c`. A collector sends nothing on a syslog connection, so
/// anything to read, or its end, means it is gone: a page written into it would be lost
/// unnoticed (the kernel takes the bytes, the peer's reset comes later).
async fn closed(c: &mut Box<dyn Stream>) -> bool {
    let mut byte = [0u8; 1];
    !matches!(
        tokio::time::timeout(Duration::ZERO, c.read(&mut byte)).await,
        Err(_elapsed)
    )
}

/// Where the audit log goes, checked when `hearthd` starts.
#[derive(Clone)]
pub struct Forwarder {
    host: String,
    port: u16,
    /// `tls://`: the trust the collector's certificate is checked against.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The messages' HOSTNAME.
    hostname: String,
    /// Whether what the log held before forwarding was first set up is sent too.
    history: bool,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// The forwarder `[audit]` configures; `None` when `syslog` is unset.
    pub fn new(s: &AuditSettings, public_url: Option<&str>) -> Result<Option<Self>, String> {
        let Some(url) = s.syslog.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("audit.syslog {url:?}: give tls://HOST:PORT or tcp://HOST:PORT")
        })?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .filter(|(h, p)| !h.is_empty() && *p != 0)
            .ok_or_else(|| format!("audit.syslog {url:?}: give the collector's HOST:PORT"))?;
        let tls = match scheme {
            "tls" => Some(client_config(s.syslog_ca_file.as_deref())?),
            "tcp" => {
                if s.syslog_ca_file.is_some() {
                    return Err("audit.syslog_ca_file is for a tls:// collector".into());
                }
                None
            }
            "udp" => {
                return Err(format!(
                    "audit.syslog {url:?}: UDP loses messages without a word, which an audit \
                     log must not; give tcp:// or tls://"
                ));
            }
            other => {
                return Err(format!(
                    "audit.syslog {url:?}: unknown scheme {other:?}; give tls:// or tcp://"
                ));
            }
        };
        let hostname = s
            .syslog_hostname
            .clone()
            .or_else(|| {
                let u = reqwest::Url::parse(public_url?).ok()?;
                u.host_str().map(str::to_owned)
            })
            .or_else(|| std::env::var("HOSTNAME").ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "-".into());
        Ok(Some(Self {
            host: host.to_owned(),
            port,
            tls,
            hostname: printable(&hostname, 255),
            history: s.syslog_history.unwrap_or(true),
        }))
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, String> {
        let at = format!("{}:{}", self.host, self.port);
        let tcp = tokio::time::timeout(
            IO_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| format!("connecting to {at} timed out"))?
        .map_err(|e| format!("cannot connect to {at}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let Some(config) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| format!("{}: {e}", self.host))?;
        let tls = tokio::time::timeout(
            IO_TIMEOUT,
            tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| format!("the TLS handshake with {at} timed out"))?
        .map_err(|e| format!("TLS with {at}: {}", crate::error::ErrorChain(&e)))?;
        Ok(Box::new(tls))
    }
}

/// The system's trust store, and the CAs of `ca_file` besides.
fn client_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("audit.syslog_ca_file {}: {e}", path.display()))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("audit.syslog_ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "audit.syslog_ca_file {} holds no PEM certificate",
                path.display()
            ));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("audit.syslog_ca_file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `s` as an RFC 5424 header field takes it: printable US-ASCII, at most `max` characters; `-`
/// (the nil value) when nothing is left.
fn printable(s: &str, max: usize) -> String {
    let kept: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if kept.is_empty() { "-".into() } else { kept }
}

/// One entry as an RFC 5424 message, framed by its length (RFC 6587 octet counting, RFC 5425).
/// MSGID is the action; the body is the entry as JSON (MSG-ANY: no BOM, so that collectors parse
/// it as JSON), after the registered `origin` element naming the software.
pub fn frame(e: &AuditEntry, hostname: &str) -> Vec<u8> {
    let pri = if e.action.ends_with("_failed") {
        PRI_WARNING
    } else {
        PRI_NOTICE
    };
    let ts = jiff::Timestamp::from_millisecond(e.ts_ms)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|_| "-".into());
    let json = serde_json::to_string(e).unwrap_or_default();
    let msg = format!(
        "<{pri}>1 {ts} {hostname} hearthd - {msgid} [origin software=\"hearthd\" swVersion=\"{version}\"] {json}",
        msgid = printable(&e.action, 32),
        version = env!("CARGO_PKG_VERSION"),
    );
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

/// Sends the audit log for as long as the server runs.
pub async fn run(state: AppState, forwarder: Forwarder) {
    let holder = crate::auth::random_token();
    let mut conn: Option<Box<dyn Stream>> = None;
    let mut backoff = POLL;
    let mut failing = false;
    let mut begun = false;
    loop {
        tokio::select! {
            () = state.stopping.begun() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        let now = now_ms();
        match state
            .store
            .take_audit_forward_lease(&holder, now, now + LEASE_MS)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                // Another instance sends.
                conn = None;
                backoff = POLL;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::ErrorChain(&e), "audit forwarding: cannot take its lease");
                continue;
            }
        }
        if !begun {
            match state.store.begin_audit_forwarding(forwarder.history).await {
                Ok(skipped) => {
                    if skipped {
                        tracing::info!(
                            "audit forwarding set up: the entries written before it stay here \
                             (audit.syslog_history = false)"
                        );
                    }
                    begun = true;
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error::ErrorChain(&e), "audit forwarding: cannot start");
                    continue;
                }
            }
        }
        match send_pending(&state, &forwarder, &holder, &mut conn).await {
            Ok(sent) => {
                state.syslog.sent(now_ms(), sent > 0);
                if failing {
                    tracing::info!(
                        sent,
                        "audit forwarding: the syslog collector takes entries again"
                    );
                }
                failing = false;
                backoff = POLL;
            }
            Err(why) => {
                state.syslog.failed(now_ms(), &why);
                conn = None;
                state.metrics.audit_forward_failures.fetch_add(1, Relaxed);
                if !failing {
                    tracing::warn!(error = %why, "audit forwarding: entries wait until the syslog collector takes them");
                }
                failing = true;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    if let Some(mut c) = conn {
        let _ = tokio::time::timeout(IO_TIMEOUT, c.shutdown()).await;
    }
    if let Err(e) = state.store.release_audit_forward_lease(&holder).await {
        tracing::warn!(error = %crate::error::ErrorChain(&e), "audit forwarding: cannot give up its lease");
    }
}

/// Writes every entry not sent yet, a page at a time, marking each page sent once it is
/// written; how many were sent.
async fn send_pending(
    state: &AppState,
    f: &Forwarder,
    holder: &str,
    conn: &mut Option<Box<dyn Stream>>,
) -> Result<u64, String> {
    let db =
        |e: hearth_store::StoreError| format!("the database: {}", crate::error::ErrorChain(&e));
    let mut sent = 0;
    for (scope, mut done) in state.store.audit_unforwarded().await.map_err(db)? {
        loop {
            let page = state
                .store
                .audit_page(&scope, done, PAGE)
                .await
                .map_err(db)?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            let bytes: Vec<u8> = page.iter().flat_map(|e| frame(e, &f.hostname)).collect();
            if let Some(c) = conn.as_mut()
                && closed(c).await
            {
                *conn = None;
            }
            if conn.is_none() {
                *conn = Some(f.connect().await?);
            }
            let c = conn.as_mut().expect("connected above");
            tokio::time::timeout(IO_TIMEOUT, async {
                c.write_all(&bytes).await?;
                c.flush().await
            })
            .await
            .map_err(|_| "writing to the syslog collector timed out".to_owned())?
            .map_err(|e| format!("writing to the syslog collector: {e}"))?;
            state
                .store
                .mark_audit_forwarded(&scope, last)
                .await
                .map_err(db)?;
            let n = page.len() as u64;
            state.metrics.audit_forwarded.fetch_add(n, Relaxed);
            sent += n;
            done = last;
            if state.stopping.has_begun() {
                return Ok(sent);
            }
            let now = now_ms();
            if !state
                .store
                .take_audit_forward_lease(holder, now, now + LEASE_MS)
                .await
                .map_err(db)?
            {
                return Ok(sent);
            }
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            scope: "system".into(),
            seq: 7,
            ts_ms: 1_796_000_000_123,
            actor: "user:1".into(),
            action: action.into(),
            target: None,
            source: Some("192.0.2.1".into()),
            details: serde_json::json!({ "login": "adé" }),
            prev_hash: "00".into(),
            hash: "11".into(),
        }
    }

    #[test]
    fn an_entry_is_one_length_framed_rfc5424_message_with_the_entry_as_json() {
        let framed = String::from_utf8(frame(&entry("auth.login"), "hearth.example.org")).unwrap();
        let (len, msg) = framed.split_once(' ').unwrap();
        assert_eq!(
            len.parse::<usize>().unwrap(),
            msg.len(),
            "octets, not characters"
        );
        let head = "<109>1 2026-11-30T00:53:20.123Z hearth.example.org hearthd - auth.login [origin software=\"hearthd\" swVersion=\"";
        assert!(msg.starts_with(head), "{msg}");
        let json = msg.split_once("\"] ").unwrap().1;
        let back: AuditEntry = serde_json::from_str(json).unwrap();
        assert_eq!(back, entry("auth.login"));
        let failed = String::from_utf8(frame(&entry("auth.login_failed"), "h")).unwrap();
        assert!(
            failed.contains(" <108>1 "),
            "a failure is a warning: {failed}"
        );
    }

    #[test]
    fn header_fields_keep_to_printable_ascii() {
        assert_eq!(printable("a b\u{e9}c", 255), "abc");
        assert_eq!(printable("", 255), "-");
        assert_eq!(printable(&"x".repeat(40), 32).len(), 32);
    }

    #[test]
    fn the_collector_is_tls_or_tcp_and_a_host_and_port() {
        let with = |url: &str| AuditSettings {
            syslog: Some(url.into()),
            ..Default::default()
        };
        let f = Forwarder::new(
            &with("tls://siem.example.org:6514"),
            Some("https://hearth.example.org"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (f.host.as_str(), f.port, f.tls.is_some()),
            ("siem.example.org", 6514, true)
        );
        assert_eq!(f.hostname, "hearth.example.org");
        let f = Forwarder::new(&with("tcp://[::1]:514"), None)
            .unwrap()
            .unwrap();
        assert_eq!((f.host.as_str(), f.tls.is_some()), ("::1", false));
        for (url, said) in [
            ("udp://siem:514", "UDP loses messages"),
            ("siem:514", "give tls://HOST:PORT"),
            ("tls://siem", "HOST:PORT"),
            ("http://siem:514", "unknown scheme"),
        ] {
            let e = Forwarder::new(&with(url), None).unwrap_err();
            assert!(e.contains(said), "{url}: {e}");
        }
        assert!(
            Forwarder::new(&AuditSettings::default(), None)
                .unwrap()
                .is_none()
        );
        let tcp_with_ca = AuditSettings {
            syslog_ca_file: Some("/ca.pem".into()),
            ..with("tcp://siem:514")
        };
        assert!(
            Forwarder::new(&tcp_with_ca, None)
                .unwrap_err()
                .contains("tls://")
        );
    }
}
