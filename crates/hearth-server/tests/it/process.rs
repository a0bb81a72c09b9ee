//! The real `hearthd` binary: kill -9 mid-upload, memory during a 500 MB upload, SIGTERM, TLS, and the
//! warning for plain HTTP on a public address.

use crate::support::*;
use futures::StreamExt;
use hearth_client::Client;
use hearth_proto::api::SetupRequest;
use hearth_proto::ids::{BlobHash, OrgId};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Hearthd {
    child: Child,
    url: String,
    setup_token: Option<String>,
    stderr_path: std::path::PathBuf,
}

impl Hearthd {
    /// Start `hearthd` on a free port and wait for its "listening" line (no sleeping).
    fn start(data_dir: &Path, extra: &[&str]) -> Hearthd {
        let stderr_path =
            data_dir.with_extension(format!("stderr-{}", uuid::Uuid::new_v4().simple()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        // A fresh data directory prints the setup block after the listening line.
        let fresh = !data_dir.join("hearth.db").exists();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearthd"));
        cmd.arg("--data-dir").arg(data_dir);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = cmd
            .args(extra)
            .env("HEARTH_AUTH_ARGON2_MEMORY_KIB", "64")
            .env("HEARTH_AUTH_ARGON2_ITERATIONS", "1")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut url = None;
        let mut setup_token = None;
        let mut token_next = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("hearthd listening on ") {
                url = Some(u.to_owned());
                if !fresh {
                    break;
                }
            } else if token_next && !line.trim().is_empty() {
                setup_token = Some(line.trim().to_owned());
                break;
            } else if line.contains("one-time setup token") {
                token_next = true;
            }
        }
        // Drain the rest of stdout in the background so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Hearthd {
            child,
            url: url.expect("hearthd printed its address"),
            setup_token,
            stderr_path,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Hearthd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

async fn bootstrap(d: &Hearthd) -> (Client, OrgId) {
    let c = Client::new(&d.url).unwrap();
    let out = c
        .setup(&SetupRequest {
            token: d.setup_token.clone().unwrap(),
            login: "owner".into(),
            secret: OWNER_SECRET.into(),
            org_name: "Acme".into(),
        })
        .await
        .unwrap();
    let mut c = Client::new(&d.url).unwrap();
    c.login("owner", OWNER_SECRET).await.unwrap();
    (c, out.org.id)
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn visible_blob_files(data_dir: &Path) -> usize {
    walk(&data_dir.join("blobs/sha256"))
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn kill_9_during_an_upload_loses_nothing_and_the_upload_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Hearthd::start(&data, &[]);
    let (owner, org) = bootstrap(&d).await;
    let path = make_file(dir.path(), "sealed.age", 8 << 20);
    let bytes = std::fs::read(&path).unwrap();
    let hash = BlobHash::of(&bytes);
    let url = owner
        .create_upload(org, bytes.len() as u64, &hash)
        .await
        .unwrap();

    // Send 3 MiB, then hold the connection open as if the network stalled.
    let first = bytes::Bytes::copy_from_slice(&bytes[..3 << 20]);
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(first)])
        .chain(futures::stream::pending());
    let patcher = owner.clone();
    let patch_url = url.clone();
    let inflight = tokio::spawn(async move {
        let _ = patcher
            .patch_upload(&patch_url, 0, reqwest::Body::wrap_stream(stream))
            .await;
    });
    // Wait (bounded) until the server has the bytes on disk.
    let part = std::fs::read_dir(data.join("blobs/uploads"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&part).unwrap().len() < (1 << 20) {
        assert!(
            Instant::now() < deadline,
            "the server never wrote the first bytes"
        );
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    d.kill9();
    inflight.abort();

    let d = Hearthd::start(&data, &[]);
    let mut owner = Client::new(&d.url).unwrap();
    owner.login("owner", OWNER_SECRET).await.unwrap();
    assert_eq!(
        visible_blob_files(&data),
        0,
        "no partial blob is visible after the crash"
    );
    assert!(owner.blobs(org).await.unwrap().is_empty());
    let offset = owner.upload_offset(&url).await.unwrap();
    assert!(
        offset > 0 && offset <= 3 << 20,
        "resumes from what reached the disk: {offset}"
    );
    owner
        .resume_upload(&url, &path, bytes.len() as u64)
        .await
        .unwrap();
    let dest = dir.path().join("back");
    owner.download_blob(org, &hash, &dest).await.unwrap();
    assert_eq!(hearth_client::hash_file(&dest).await.unwrap(), hash);
    assert_eq!(visible_blob_files(&data), 1);
}

#[tokio::test]
async fn a_500_mb_upload_keeps_server_memory_growth_under_64_mb() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Hearthd::start(&data, &[]);
    let (owner, org) = bootstrap(&d).await;
    let path = dir.path().join("big.age");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let block: Vec<u8> = (0..(1u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for i in 0..500u32 {
            f.write_all(&i.to_le_bytes()).unwrap();
            f.write_all(&block[4..]).unwrap();
        }
    }
    let before = status_kb(d.pid(), "VmRSS:");
    let hash = owner.upload_file(org, &path).await.unwrap();
    let peak = status_kb(d.pid(), "VmHWM:");
    let growth_mb = peak.saturating_sub(before) / 1024;
    eprintln!(
        "hearthd RSS before {before} kB, peak {peak} kB: growth {growth_mb} MB for a 500 MB upload"
    );
    assert!(growth_mb < 64, "server memory grew by {growth_mb} MB");
    assert_eq!(owner.blobs(org).await.unwrap()[0].sha256, hash);
    assert_eq!(owner.blobs(org).await.unwrap()[0].size, 500 << 20);
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_with_an_event_stream_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Hearthd::start(&dir.path().join("data"), &[]);
    // A dashboard watching live events: its stream never ends by itself.
    let (c, org) = bootstrap(&d).await;
    let mut events = c
        .raw_get_response(&format!("/api/v1/orgs/{org}/events"))
        .await
        .unwrap();
    let st = Command::new("kill")
        .args(["-TERM", &d.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "hearthd did not exit after SIGTERM"
        );
        std::thread::yield_now();
    };
    assert!(status.success(), "{status}");
    assert!(d.stderr().contains("shutting down"));
    // The stream was ended by the server, not cut by the process's exit.
    while let Some(chunk) = events.chunk().await.expect("the event stream ends cleanly") {
        let _ = chunk;
    }
}

#[tokio::test]
async fn serves_https_with_secure_cookies_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let d = Hearthd::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(d.url.starts_with("https://"), "{}", d.url);
    let c = Client::with_root_pem(&d.url, cert.cert.pem().as_bytes()).unwrap();
    assert!(c.info().await.unwrap().setup_required);
    let (_, _) = bootstrap_tls(&d, cert.cert.pem().as_bytes()).await;
    // Plain HTTP to the TLS port gets nowhere.
    let plain = d.url.replace("https://", "http://");
    assert!(Client::new(&plain).unwrap().info().await.is_err());
}

async fn bootstrap_tls(d: &Hearthd, pem: &[u8]) -> (reqwest::header::HeaderValue, ()) {
    let c = Client::with_root_pem(&d.url, pem).unwrap();
    c.setup(&SetupRequest {
        token: d.setup_token.clone().unwrap(),
        login: "owner".into(),
        secret: OWNER_SECRET.into(),
        org_name: "Acme".into(),
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
        .build()
        .unwrap();
    let resp = http
        .post(format!("{}/api/v1/auth/login", d.url))
        .json(&serde_json::json!({"login": "owner", "secret": OWNER_SECRET}))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"].clone();
    assert!(cookie.to_str().unwrap().contains("Secure"), "{cookie:?}");
    (cookie, ())
}

#[tokio::test]
async fn plain_http_on_a_public_address_prints_a_loud_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = Hearthd::start(&dir.path().join("data"), &["--listen", "0.0.0.0:0"]);
    let port = d.url.rsplit(':').next().unwrap().to_owned();
    let c = Client::new(&format!("http://127.0.0.1:{port}")).unwrap();
    c.info().await.unwrap();
    assert!(d.stderr().contains("WITHOUT TLS"), "{}", d.stderr());
}
