//! The real OctoPrint (virtual printer) for the agent's end-to-end job flow, started per test on a free
//! port in its own directory and killed with its process group on drop. Installed by `scripts/peers.sh`
//! under `$HEARTH_PEERS_DIR` (default `~/.cache/hearth-peers`); absent, the test is skipped, or fails
//! under `HEARTH_REQUIRE_PEERS=1`. (Adapted from `hearth-drivers`' tests, which own the peer setup.)

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const OCTOPRINT_KEY: &str = "HEARTHTESTKEY0123456789ABCDEFGHI";

fn peers_dir() -> PathBuf {
    match std::env::var_os("HEARTH_PEERS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/hearth-peers")
        }
    }
}

fn absent<T>(reason: String) -> Option<T> {
    if std::env::var("HEARTH_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("required peer absent: {reason} (run scripts/peers.sh)");
    }
    eprintln!("SKIPPED: {reason} (run scripts/peers.sh, or set HEARTH_PEERS_DIR)");
    None
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn samples_dir() -> PathBuf {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples");
    if beside.is_dir() {
        return beside;
    }
    let shared =
        std::env::var_os("HEARTH_SHARED_DIR").expect("samples not found: set HEARTH_SHARED_DIR");
    PathBuf::from(shared).join("samples")
}

/// The real PrusaSlicer cube cut to about `max_bytes`, without heat-up waits.
pub fn sample_gcode(max_bytes: usize) -> Vec<u8> {
    let text =
        std::fs::read_to_string(samples_dir().join("cube20_prusaslicer_mk3s.gcode")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let command = line.split_whitespace().next().unwrap_or("");
        if matches!(command, "M109" | "M190" | "M104" | "M140") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if out.len() >= max_bytes {
            break;
        }
    }
    out.into_bytes()
}

#[derive(Debug)]
struct Proc(Option<Child>);

impl Drop for Proc {
    fn drop(&mut self) {
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

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[derive(Debug)]
pub struct OctoPrint {
    pub url: String,
    _proc: Proc,
    dir: tempfile::TempDir,
}

impl OctoPrint {
    /// A fresh OctoPrint; `throttle` is the virtual printer's per-line delay in seconds.
    pub async fn start(throttle: f64) -> Option<Self> {
        let bin = peers_dir().join("octoprint/bin/octoprint");
        if !bin.exists() {
            return absent(format!("OctoPrint not installed at {}", bin.display()));
        }
        let dir = tempfile::Builder::new()
            .prefix("hearth-agent-octoprint-")
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
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        let proc = Proc(Some(command.spawn().unwrap()));
        let peer = Self {
            url: format!("http://127.0.0.1:{port}"),
            _proc: proc,
            dir,
        };
        peer.wait_ready().await;
        Some(peer)
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let url = format!("{}/api/version", self.url);
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
                std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
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
            timeout_secs: 10,
        }
    }
}
