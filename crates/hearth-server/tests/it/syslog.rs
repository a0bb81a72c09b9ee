//! The audit log forwarded to a real syslog collector: rsyslog (Debian's `rsyslog`, with
//! `rsyslog-openssl` for TLS; `scripts/install-rsyslog.sh`), which parses each message as RFC
//! 5424 and writes its fields to a file. Absent, the test is skipped, and fails under
//! `HEARTH_REQUIRE_PEERS=1`.

use crate::pki::Pki;
use crate::support::*;
use hearth_proto::audit::AuditEntry;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// An rsyslogd in the foreground, listening on 127.0.0.1 over TLS with `pki`'s certificate,
/// writing each message's parsed RFC 5424 fields to `out`, one line each.
struct Rsyslog {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Rsyslog {
    /// Started on `port` (0: any free one, which rsyslog writes to a file once it listens).
    fn start(pki: &Pki, dir: &Path, port: u16) -> Option<Self> {
        if !Path::new(RSYSLOGD).exists() {
            assert!(
                std::env::var("HEARTH_REQUIRE_PEERS").as_deref() != Ok("1"),
                "HEARTH_REQUIRE_PEERS=1 but {RSYSLOGD} is missing (scripts/install-rsyslog.sh)"
            );
            eprintln!("skipped: {RSYSLOGD} is not installed");
            return None;
        }
        let port_file = dir.join(format!("port-{port}"));
        let out = dir.join("received.log");
        let conf = dir.join(format!("rsyslog-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}"
  DefaultNetstreamDriver="ossl"
  DefaultNetstreamDriverCAFile="{ca}"
  DefaultNetstreamDriverCertFile="{cert}"
  DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="{port}" listenPortFileName="{port_file}")
template(name="fields" type="string" string="%timereported:::date-rfc3339%|%hostname%|%app-name%|%msgid%|%syslogfacility-text%|%syslogseverity-text%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{out}" template="fields")
"#,
                dir = dir.display(),
                ca = pki.path("ca.pem"),
                cert = pki.path("cert.pem"),
                key = pki.path("key.pem"),
                port_file = port_file.display(),
                out = out.display(),
            ),
        )
        .unwrap();
        let child = Command::new(RSYSLOGD)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join(format!("rsyslogd-{port}.pid")))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("rsyslogd-{port}.err"))).unwrap())
            .spawn()
            .unwrap();
        let mut started = Self { child, port, out };
        // A free port is written to the port file once it listens; a given one answers then.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if port == 0 {
                if let Some(p) = std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    started.port = p;
                    break;
                }
            } else if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(started)
    }

    /// The messages received so far, each `(fields before the body, the entry in its body)`.
    fn received(&self) -> Vec<(Vec<String>, AuditEntry)> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let fields: Vec<&str> = l.splitn(8, '|').collect();
                let entry = serde_json::from_str(fields[7]).unwrap_or_else(|e| panic!("{e}: {l}"));
                (fields[..7].iter().map(|f| f.to_string()).collect(), entry)
            })
            .collect()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every entry of the instance's chain and the organisation's, as the API serves them.
async fn all_entries(
    owner: &hearth_client::Client,
    org: hearth_proto::ids::OrgId,
) -> Vec<AuditEntry> {
    let mut all = Vec::new();
    for scope in [None, Some(org)] {
        all.extend(owner.audit_page(scope, 0, 1000).await.unwrap().entries);
    }
    all
}

/// Waits until rsyslog holds exactly the entries the API serves (each once, in its chain's
/// order); returns the messages.
async fn received_all(
    r: &Rsyslog,
    owner: &hearth_client::Client,
    org: hearth_proto::ids::OrgId,
) -> Vec<(Vec<String>, AuditEntry)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let want = all_entries(owner, org).await;
        let got = r.received();
        let mut sorted: Vec<AuditEntry> = got.iter().map(|(_, e)| e.clone()).collect();
        sorted.sort_by(|a, b| (&a.scope, a.seq).cmp(&(&b.scope, b.seq)));
        let mut want_sorted = want.clone();
        want_sorted.sort_by(|a, b| (&a.scope, a.seq).cmp(&(&b.scope, b.seq)));
        if sorted == want_sorted {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "rsyslog has {} of {} entries: {:?}",
            got.len(),
            want.len(),
            got.iter()
                .map(|(_, e)| (&e.scope, e.seq, &e.action))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every audit entry reaches rsyslog over TLS as an RFC 5424 message (facility "log audit",
/// MSGID the action, the entry as JSON in the body, failures as warnings), each chain in order;
/// while rsyslog is down entries wait, counted as failed tries, and arrive once it is back.
#[tokio::test]
async fn the_audit_log_reaches_a_real_rsyslog_over_tls_and_waits_out_its_absence() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let Some(rsyslog) = Rsyslog::start(&pki, dir.path(), 0) else {
        return;
    };
    let port = rsyslog.port;
    let server_dir = tempfile::tempdir().unwrap();
    let mut s = test_settings(&server_dir.path().join("data"));
    s.audit.syslog = Some(format!("tls://127.0.0.1:{port}"));
    s.audit.syslog_ca_file = Some(pki.path("ca.pem").into());
    s.audit.syslog_hostname = Some("hearth.example.org".into());
    let server = TestServer::start_in(server_dir, s).await;
    let (owner, org) = server.bootstrap().await;
    let failed = server.client().login("owner", "not the secret 0123").await;
    assert!(failed.is_err());

    let got = received_all(&rsyslog, &owner, org).await;
    for (fields, e) in &got {
        let [ts, host, app, msgid, facility, severity, sd] = &fields[..] else {
            panic!("{fields:?}");
        };
        assert_eq!(
            (host.as_str(), app.as_str(), msgid.as_str()),
            ("hearth.example.org", "hearthd", e.action.as_str())
        );
        assert_eq!(facility, "audit", "RFC 5424 facility 13");
        let expected = if e.action == "auth.login_failed" {
            "warning"
        } else {
            "notice"
        };
        assert_eq!(severity, expected, "{}", e.action);
        assert!(
            sd.starts_with("[origin software=\"hearthd\" swVersion=\""),
            "{sd}"
        );
        let when = jiff::Timestamp::from_millisecond(e.ts_ms).unwrap();
        assert_eq!(ts.parse::<jiff::Timestamp>().unwrap(), when, "{ts}");
    }
    assert!(got.iter().any(|(_, e)| e.action == "auth.login_failed"));
    // Each chain arrives in its order.
    for scope in ["system".to_owned(), org.to_string()] {
        let seqs: Vec<i64> = got
            .iter()
            .filter(|(_, e)| e.scope == scope)
            .map(|(_, e)| e.seq)
            .collect();
        assert!(
            !seqs.is_empty() && seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{scope}: {seqs:?}"
        );
    }

    // rsyslog goes away: what happens meanwhile waits, and the failed tries are counted.
    rsyslog.stop();
    owner
        .create_token(&hearth_proto::api::CreateTokenRequest {
            name: "while away".into(),
            org: None,
            max_role: None,
            expires_in_days: None,
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", server.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let failures = metrics
            .lines()
            .find_map(|l| l.strip_prefix("hearth_audit_forward_failures_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap();
        let status: hearth_proto::api::AuditForwarding = owner
            .raw_get("/api/v1/system/audit/forwarding")
            .await
            .unwrap();
        if failures > 0 && status.error.is_some() {
            assert!(
                status.waiting > 0 && status.failing_since.is_some(),
                "{status:?}"
            );
            assert_eq!(status.syslog, Some(format!("tls://127.0.0.1:{port}")));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed try counted: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Back on the same port: it gets what it missed, and nothing twice.
    std::fs::remove_file(dir.path().join("received.log")).unwrap();
    let before: Vec<AuditEntry> = got.into_iter().map(|(_, e)| e).collect();
    let back = Rsyslog::start(&pki, dir.path(), port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now: Vec<AuditEntry> = all_entries(&owner, org)
            .await
            .into_iter()
            .filter(|e| !before.contains(e))
            .collect();
        let got: Vec<AuditEntry> = back.received().into_iter().map(|(_, e)| e).collect();
        if !now.is_empty() && got == now {
            assert!(got.iter().any(|e| e.action == "token.create"), "{got:?}");
            let status: hearth_proto::api::AuditForwarding = owner
                .raw_get("/api/v1/system/audit/forwarding")
                .await
                .unwrap();
            assert_eq!((status.waiting, &status.error), (0, &None), "{status:?}");
            assert!(status.last_sent_at.is_some());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the outage: {got:?}, wanted {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With `syslog_history = false`, what the log held before forwarding was first set up stays
/// here: the collector gets what comes after, also once the setting is taken out again; and a
/// restarted instance sends at once (it gave up its lease when it stopped).
#[tokio::test]
async fn the_history_before_forwarding_was_set_up_is_left_out_when_asked() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let Some(rsyslog) = Rsyslog::start(&pki, dir.path(), 0) else {
        return;
    };
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let before = all_entries(&owner, org).await;
    assert!(before.len() > 2, "{before:?}");
    let collector = format!("tls://127.0.0.1:{}", rsyslog.port);
    let server = server
        .restart_with(|s| {
            s.audit.syslog = Some(collector.clone());
            s.audit.syslog_ca_file = Some(pki.path("ca.pem").into());
            s.audit.syslog_history = Some(false);
        })
        .await;
    // Failed logins until one arrives (those before forwarding began stay here too).
    let received = |action: &'static str| {
        let rsyslog = &rsyslog;
        move || rsyslog.received().iter().any(|(_, e)| e.action == action)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !received("auth.login_failed")() {
        assert!(Instant::now() < deadline, "nothing forwarded");
        let failed = server.client().login("owner", "not the secret 0123").await;
        assert!(failed.is_err());
        let wait = Instant::now() + Duration::from_secs(1);
        while Instant::now() < wait && !received("auth.login_failed")() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Restarted, with the setting taken out: what comes is sent, at once.
    let server = server.restart_with(|s| s.audit.syslog_history = None).await;
    let mut owner = server.client();
    owner.login("owner", OWNER_SECRET).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !received("auth.login")() {
        assert!(
            Instant::now() < deadline,
            "the restarted instance sent nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got: Vec<AuditEntry> = rsyslog.received().into_iter().map(|(_, e)| e).collect();
    assert!(
        !got.iter().any(|e| before.contains(e)),
        "history sent: {got:?}"
    );
    // What came after is sent whole: each chain from where forwarding began to its head.
    let now = all_entries(&owner, org).await;
    for e in now.iter().filter(|e| e.scope == "system") {
        let first = got
            .iter()
            .filter(|g| g.scope == "system")
            .map(|g| g.seq)
            .min()
            .unwrap();
        assert_eq!(
            got.contains(e),
            e.seq >= first,
            "{} {}: {got:?}",
            e.seq,
            e.action
        );
    }
}

/// Two instances sharing one PostgreSQL database, both forwarding: one holds the lease and sends,
/// so the collector gets each entry once, whichever instance recorded it.
#[tokio::test]
async fn instances_sharing_a_database_send_each_entry_once() {
    let Some(db) = crate::cluster::fresh_postgres().await else {
        return;
    };
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let Some(rsyslog) = Rsyslog::start(&pki, dir.path(), 0) else {
        return;
    };
    let settings = |data: &Path| {
        let mut s = test_settings(&data.join("data"));
        s.database_url = Some(db.clone());
        s.audit.syslog = Some(format!("tls://localhost:{}", rsyslog.port));
        s.audit.syslog_ca_file = Some(pki.path("ca.pem").into());
        s
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a_settings = settings(a_dir.path());
    let b_settings = settings(b_dir.path());
    let a = TestServer::start_in(a_dir, a_settings).await;
    let (owner, org) = a.bootstrap().await;
    let b = TestServer::start_in(b_dir, b_settings).await;
    let mut on_b = b.client();
    on_b.login("owner", OWNER_SECRET).await.unwrap();
    for (i, c) in [&owner, &on_b, &owner, &on_b].into_iter().enumerate() {
        c.create_token(&hearth_proto::api::CreateTokenRequest {
            name: format!("t{i}"),
            org: None,
            max_role: None,
            expires_in_days: None,
        })
        .await
        .unwrap();
    }
    let got = received_all(&rsyslog, &owner, org).await;
    let mut keys: Vec<(String, i64)> = got.iter().map(|(_, e)| (e.scope.clone(), e.seq)).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "an entry arrived twice");
}

/// A collector given as UDP is refused when hearthd starts, saying why.
#[tokio::test]
async fn a_udp_collector_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings(&dir.path().join("data"));
    s.audit.syslog = Some("udp://127.0.0.1:514".into());
    let e = hearth_server::start(s).await.unwrap_err();
    assert!(e.to_string().contains("UDP loses messages"), "{e}");

    // Without a collector, the status says so.
    let server = TestServer::start().await;
    let (owner, _) = server.bootstrap().await;
    let status: hearth_proto::api::AuditForwarding = owner
        .raw_get("/api/v1/system/audit/forwarding")
        .await
        .unwrap();
    assert_eq!((status.syslog, status.waiting), (None, 0));
}

/// The dashboard's Audit log tab, in a real Chromium, tells an instance admin that sending to the
/// collector fails, since when and why (`web/tests/audit-forwarding.test.mjs`).
#[tokio::test]
async fn the_dashboard_tells_an_instance_admin_that_forwarding_fails() {
    // A port nothing listens on: taken, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let collector = format!("tcp://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings(&dir.path().join("data"));
    s.audit.syslog = Some(collector.clone());
    let server = TestServer::start_in(dir, s).await;
    let passphrase = "correct horse battery staple";
    let secret = owner_with_passphrase(&server, passphrase).await;
    let mut owner = server.client();
    owner.login("owner", &secret).await.unwrap();
    // Failing already, before the page asks.
    let deadline = Instant::now() + Duration::from_secs(30);
    while owner.audit_forwarding().await.unwrap().error.is_none() {
        assert!(Instant::now() < deadline, "no failed try");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let env = [
        ("HEARTH_URL", server.url.as_str()),
        ("HEARTH_LOGIN", "owner"),
        ("HEARTH_PASSPHRASE", passphrase),
        ("HEARTH_SYSLOG", collector.as_str()),
    ];
    crate::browser_run::browser_test("audit-forwarding.test.mjs", &env).await;
}
