//! Real peers for the integration tests: a fresh OctoPrint (virtual printer) or Moonraker per test, each
//! with its own directory and port, killed on drop.
//!
//! Peers are installed by `scripts/peers.sh` under `$HEARTH_PEERS_DIR` (default
//! `~/.cache/hearth-peers`). When one is missing the test is skipped with a printed reason, or fails
//! when `HEARTH_REQUIRE_PEERS=1`.

use std::future::Future;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const OCTOPRINT_KEY: &str = "HEARTHTESTKEY0123456789ABCDEFGHI";

/// Where `scripts/peers.sh` installed the peers.
pub fn peers_dir() -> PathBuf {
    match std::env::var_os("HEARTH_PEERS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/hearth-peers")
        }
    }
}

/// Skips (returns `None`) or, under `HEARTH_REQUIRE_PEERS=1`, fails.
pub fn absent<T>(reason: String) -> Option<T> {
    if std::env::var("HEARTH_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("required peer absent: {reason} (run scripts/peers.sh)");
    }
    eprintln!("SKIPPED: {reason} (run scripts/peers.sh, or set HEARTH_PEERS_DIR)");
    None
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Polls `check` until it yields a value, failing after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A peer process that prints one ready line (`READY key=value ...`), then event lines, and reads
/// control lines on its standard input; killed on drop.
pub struct LinePeer {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    ready: String,
    events: std::sync::Arc<(std::sync::Mutex<Vec<String>>, tokio::sync::Notify)>,
}

impl LinePeer {
    /// Starts `cmd` and waits (at most `within`) for its ready line.
    pub async fn spawn(mut cmd: tokio::process::Command, what: &str, within: Duration) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(within, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what} did not get ready"))
            .unwrap()
            .unwrap_or_else(|| panic!("{what} exited before it was ready"));
        let events =
            std::sync::Arc::<(std::sync::Mutex<Vec<String>>, tokio::sync::Notify)>::default();
        let sink = events.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.0.lock().unwrap().push(line);
                sink.1.notify_waiters();
            }
        });
        Self {
            _child: child,
            stdin,
            ready,
            events,
        }
    }

    /// The port the ready line gives as `key=<port>` (`key` with its `=`).
    pub fn port(&self, key: &str) -> u16 {
        self.ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.ready))
    }

    /// Sends one control line.
    pub async fn send(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The first event line starting with `prefix`, waiting (20 s at most) for it.
    pub async fn event(&self, prefix: &str) -> String {
        self.nth_event(prefix, 0).await
    }

    /// The `n`th (from 0) event line starting with `prefix`, waiting (20 s at most) for it.
    pub async fn nth_event(&self, prefix: &str, n: usize) -> String {
        let (lines, notify) = &*self.events;
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let notified = notify.notified();
                let found = lines
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|l| l.starts_with(prefix))
                    .nth(n)
                    .cloned();
                if let Some(l) = found {
                    return l;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event {prefix:?}; saw {:?}", lines.lock().unwrap()))
    }

    /// Whether an event line starting with `prefix` came.
    pub fn saw(&self, prefix: &str) -> bool {
        self.events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(prefix))
    }
}

/// Uploads a copy of `file` as the agent does (its spool file, gone after the upload).
pub async fn upload_copy(
    driver: &dyn hearth_drivers::Driver,
    name: &str,
    file: &Path,
) -> Result<(), hearth_drivers::DriverError> {
    let spool = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(file, spool.path()).unwrap();
    driver
        .upload(hearth_drivers::Upload {
            name,
            path: spool.path(),
            hints: hearth_drivers::PrintHints::default(),
        })
        .await
}

/// The printer's job once it is in `want` (30 s at most).
pub async fn job_in_phase(
    driver: &dyn hearth_drivers::Driver,
    want: hearth_drivers::JobPhase,
) -> hearth_drivers::JobStatus {
    eventually(
        &format!("the job {want:?}"),
        Duration::from_secs(30),
        || async {
            driver
                .status()
                .await
                .unwrap()
                .job
                .filter(|j| j.phase == want)
        },
    )
    .await
}

/// The real slicer samples: the copies kept in the repository for the print-file tests, so a
/// clone needs nothing beside it.
fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hearth-printfile/test_data/samples")
}

/// A spool file made from the real PrusaSlicer cube, cut to about `max_bytes`, without the heat-up waits
/// (`M109`/`M190`) that would make the virtual printer idle for many seconds before printing.
pub fn sample_gcode(max_bytes: usize) -> tempfile::NamedTempFile {
    let text =
        std::fs::read_to_string(samples_dir().join("cube20_prusaslicer_mk3s.gcode")).unwrap();
    let mut out = tempfile::NamedTempFile::new().unwrap();
    let mut written = 0;
    for line in text.lines() {
        let command = line.split_whitespace().next().unwrap_or("");
        if matches!(command, "M109" | "M190" | "M104" | "M140") {
            continue;
        }
        writeln!(out, "{line}").unwrap();
        written += line.len() + 1;
        if written >= max_bytes {
            break;
        }
    }
    out.flush().unwrap();
    out
}

/// A child process in its own process group, killed with the group on drop (OctoPrint runs under
/// `runuser`, which cannot forward SIGKILL to it). Dropped by a failing test, it prints the end of
/// its log: the peer's own account of a refusal (a `500`) is gone with the test's directory after.
#[derive(Debug)]
pub struct Proc(Option<Child>, PathBuf);

/// How much of a peer's log a failing test prints.
const LOG_TAIL_LINES: usize = 80;

impl Proc {
    fn spawn(mut command: Command, log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap();
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0);
        Self(Some(command.spawn().unwrap()), log.to_path_buf())
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--"])
                .arg(format!("-{}", child.id()))
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.1).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "---- the end of {} ----\n{}",
                self.1.display(),
                tail.join("\n")
            );
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A running OctoPrint with the virtual printer.
#[derive(Debug)]
pub struct OctoPrint {
    pub url: String,
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

impl OctoPrint {
    /// Starts a fresh OctoPrint; `throttle` is the virtual printer's per-line delay in seconds.
    pub async fn start(throttle: f64) -> Option<Self> {
        let bin = peers_dir().join("octoprint/bin/octoprint");
        if !bin.exists() {
            return absent(format!("OctoPrint not installed at {}", bin.display()));
        }
        let dir = tempfile::Builder::new()
            .prefix("hearth-octoprint-")
            .tempdir()
            .unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir(&base).unwrap();
        std::fs::write(
            base.join("config.yaml"),
            format!(
                "server:\n  firstRun: false\n  onlineCheck: {{enabled: false}}\n  pluginBlacklist: {{enabled: false}}\n\
                 accessControl: {{enabled: true}}\n\
                 plugins:\n  _disabled: [announcements, tracking, softwareupdate, pluginmanager, backup]\n\
                 \x20 virtual_printer:\n    enabled: true\n    throttle: {throttle}\n  tracking: {{enabled: false}}\n"
            ),
        )
        .unwrap();
        // What `octoprint user add --admin admin` writes (password "testpass"), with an API key set.
        std::fs::write(
            base.join("users.yaml"),
            format!(
                "_version: 2\nadmin:\n  active: true\n  apikey: {OCTOPRINT_KEY}\n  groups:\n  - admins\n\
                 \x20 password: $argon2id$v=19$m=65536,t=3,p=4$9J5TCoGwFsK4F8KY01orxQ$DaAk3kgi1JrBPNmM6TvL91mMkfXaXi/7DFXPA/npZUc\n\
                 \x20 permissions: []\n  roles:\n  - user\n  - admin\n  settings: {{}}\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let mut command;
        if is_root() {
            // OctoPrint refuses to run as root: run it as the octotest user, which must own its basedir.
            let status = Command::new("chown")
                .arg("-R")
                .arg("octotest:")
                .arg(dir.path())
                .status()
                .unwrap();
            if !status.success() {
                return absent("user octotest missing".into());
            }
            command = Command::new("runuser");
            command.args(["-u", "octotest", "--"]).arg(&bin);
        } else {
            command = Command::new(&bin);
        }
        command
            .arg("--basedir")
            .arg(&base)
            .args(["serve", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string());
        let proc = Proc::spawn(command, &dir.path().join("serve.log"));
        let peer = Self {
            url: format!("http://127.0.0.1:{port}"),
            proc,
            dir,
        };
        peer.wait_ready().await;
        Some(peer)
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let url = format!("{}/api/version", self.url);
        let log = self.dir.path().join("serve.log");
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let response = client
                    .get(&url)
                    .header("X-Api-Key", OCTOPRINT_KEY)
                    .send()
                    .await;
                if response.is_ok_and(|r| r.status().is_success()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        if ready.is_err() {
            panic!(
                "OctoPrint did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }

    pub fn config(&self) -> hearth_drivers::OctoPrintConfig {
        hearth_drivers::OctoPrintConfig {
            url: self.url.clone(),
            api_key: OCTOPRINT_KEY.into(),
            model: None,
            port: Some("VIRTUAL".into()),
            baudrate: None,
            ca_file: None,
            fingerprint: None,
            timeout_secs: 10,
        }
    }
}

/// A running Moonraker with a fake Klippy behind it.
#[derive(Debug)]
pub struct Moonraker {
    pub url: String,
    /// Its `ssl_port`, when started with a certificate (`start_tls`).
    pub https_url: Option<String>,
    pub proc: Proc,
    /// `None` once the test took Klipper away.
    pub klippy: Option<crate::fake_klippy::FakeKlippy>,
    pub dir: tempfile::TempDir,
}

impl Moonraker {
    /// Starts a fresh Moonraker whose fake Klippy prints `bytes_per_second` of G-code per second.
    pub async fn start(bytes_per_second: f64) -> Option<Self> {
        Self::start_with(bytes_per_second, true).await
    }

    /// Like `start`; unless `trusted`, clients from 127.0.0.1 need an API key.
    pub async fn start_with(bytes_per_second: f64, trusted: bool) -> Option<Self> {
        Self::launch(bytes_per_second, trusted, None).await
    }

    /// Like `start`, also serving HTTPS on its `ssl_port` (`https_url`) with this certificate
    /// chain and key (PEM), as Moonraker's `ssl_certificate_path` and `ssl_key_path` give them.
    pub async fn start_tls(bytes_per_second: f64, chain_pem: &str, key_pem: &str) -> Option<Self> {
        Self::launch(bytes_per_second, true, Some((chain_pem, key_pem))).await
    }

    async fn launch(
        bytes_per_second: f64,
        trusted: bool,
        tls: Option<(&str, &str)>,
    ) -> Option<Self> {
        let bin = peers_dir().join("moonraker/bin/moonraker");
        if !bin.exists() {
            return absent(format!("Moonraker not installed at {}", bin.display()));
        }
        let dir = tempfile::Builder::new()
            .prefix("hearth-moonraker-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        for sub in ["config", "comms", "gcodes"] {
            std::fs::create_dir_all(data.join(sub)).unwrap();
        }
        let socket = data.join("comms/klippy.sock");
        let port = free_port();
        let config = data.join("config/moonraker.conf");
        let mut ssl = String::new();
        let https_url = tls.map(|(chain, key)| {
            let ssl_port = free_port();
            let (chain_path, key_path) =
                (data.join("config/chain.pem"), data.join("config/key.pem"));
            std::fs::write(&chain_path, chain).unwrap();
            std::fs::write(&key_path, key).unwrap();
            ssl = format!(
                "ssl_port: {ssl_port}\nssl_certificate_path: {}\nssl_key_path: {}\n",
                chain_path.display(),
                key_path.display()
            );
            format!("https://127.0.0.1:{ssl_port}")
        });
        std::fs::write(
            &config,
            format!(
                "[server]\nhost: 127.0.0.1\nport: {port}\n{ssl}klippy_uds_address: {}\n\n\
                 [authorization]\ntrusted_clients:\n    {trusted}\n\n\
                 [file_manager]\nenable_object_processing: False\n\n\
                 [machine]\nprovider: none\n\n[history]\n",
                socket.display(),
                trusted = if trusted {
                    "127.0.0.1"
                } else {
                    "10.255.255.254"
                },
            ),
        )
        .unwrap();
        let klippy =
            crate::fake_klippy::FakeKlippy::start(socket, data.join("gcodes"), bytes_per_second);
        let mut command = Command::new(&bin);
        command
            .arg("-d")
            .arg(&data)
            .arg("-c")
            .arg(&config)
            .arg("-n");
        let proc = Proc::spawn(command, &dir.path().join("moonraker.log"));
        let peer = Self {
            url: format!("http://127.0.0.1:{port}"),
            https_url,
            proc,
            klippy: Some(klippy),
            dir,
        };
        peer.wait_ready().await;
        Some(peer)
    }

    /// Polls `/server/info` until Moonraker reports Klippy ready.
    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let url = format!("{}/server/info", self.url);
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Ok(response) = client.get(&url).send().await {
                    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
                        return; // up, and asking for credentials: good enough for an untrusted peer
                    }
                    let info: serde_json::Value = response.json().await.unwrap_or_default();
                    if info["result"]["klippy_state"] == "ready" {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        if ready.is_err() {
            let log =
                std::fs::read_to_string(self.dir.path().join("moonraker.log")).unwrap_or_default();
            panic!("Moonraker did not become ready: {log}");
        }
    }

    /// Adds a webcam named "bed" to Moonraker's list, as Mainsail's settings page does.
    pub async fn add_webcam(&self, stream_url: &str, snapshot_url: &str) {
        let added = reqwest::Client::new()
            .post(format!("{}/server/webcams/item", self.url))
            .json(
                &serde_json::json!({"name": "bed", "service": "mjpegstreamer",
                "stream_url": stream_url, "snapshot_url": snapshot_url}),
            )
            .send()
            .await
            .unwrap();
        assert!(
            added.status().is_success(),
            "{}",
            added.text().await.unwrap()
        );
    }

    pub fn config(&self) -> hearth_drivers::MoonrakerConfig {
        hearth_drivers::MoonrakerConfig {
            url: self.url.clone(),
            api_key: None,
            model: None,
            ca_file: None,
            fingerprint: None,
            timeout_secs: 10,
        }
    }
}

/// The virtual firmware on a pseudo-terminal; killed on drop (the port then closes).
pub struct VirtualMarlin {
    pub port: String,
    child: Child,
}

impl Drop for VirtualMarlin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl VirtualMarlin {
    /// `settings` are the virtual printer's own (`throttle=0.01` seconds per line, `resend_ratio=5`
    /// percent of lines asked again, ...).
    pub fn start(settings: &[&str]) -> Option<Self> {
        let python = peers_dir().join("octoprint/bin/python");
        // The script sits beside this file, in hearth-drivers' tests.
        if !python.exists() {
            return absent(format!(
                "OctoPrint's virtual printer ({})",
                python.display()
            ));
        }
        let mut cmd = Command::new(python);
        cmd.arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../hearth-drivers/tests/it/virtual_marlin_pty.py"),
        );
        for s in settings {
            cmd.args(["--set", s]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // It prints the pseudo-terminal's path once the firmware is ready.
        let mut port = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut port,
        )
        .unwrap();

        Some(Self {
            port: port.trim().to_owned(),
            child,
        })
    }

    /// A driver configuration for it.
    pub fn config(&self) -> hearth_drivers::MarlinConfig {
        hearth_drivers::MarlinConfig {
            port: self.port.clone(),
            baudrate: 115_200,
            model: Some("Ender 3".into()),
        }
    }
}

/// Idle, `driver` preheats (the nozzle to 205 °C, the bed to 60 °C, then the bed alone to 65 °C,
/// the nozzle's target left as it was) and cools down (both off), as its printer reports them.
pub async fn preheats_and_cools_down(driver: &dyn hearth_drivers::Driver) {
    use hearth_drivers::HeatTargets;
    assert!(driver.describe().capabilities.heat);
    for (set, want) in [
        ((Some(205.0), Some(60.0)), (205.0, 60.0)),
        ((None, Some(65.0)), (205.0, 65.0)),
        ((Some(0.0), Some(0.0)), (0.0, 0.0)),
    ] {
        driver
            .set_temperatures(HeatTargets {
                nozzle_c: set.0,
                bed_c: set.1,
            })
            .await
            .unwrap();
        targets_become(driver, want).await;
    }
}

/// Waits until `driver`'s printer reports these nozzle and bed targets, °C.
async fn targets_become(driver: &dyn hearth_drivers::Driver, (nozzle, bed): (f64, f64)) {
    eventually(
        "the targets",
        std::time::Duration::from_secs(15),
        || async {
            let status = driver.status().await.unwrap();
            let target = |name: &str| {
                status
                    .heaters
                    .iter()
                    .find(|h| h.name == name)
                    .map(|h| h.target)
            };
            ((target("tool0"), target("bed")) == (Some(nozzle), Some(bed))).then_some(())
        },
    )
    .await;
}

/// Idle, `driver` sends lines of G-code as they are: two lines that set the targets (M104 and
/// M140, which every G-code printer knows) show in what its printer reports, then both off.
pub async fn runs_gcode(driver: &dyn hearth_drivers::Driver) {
    assert!(driver.describe().capabilities.gcode);
    for want in [(151.0, 47.0), (0.0, 0.0)] {
        let lines = [format!("M104 S{}", want.0), format!("M140 S{}", want.1)];
        driver.run_gcode(&lines).await.unwrap();
        targets_become(driver, want).await;
    }
}
