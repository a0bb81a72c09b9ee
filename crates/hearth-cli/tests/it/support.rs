//! An in-process `hearthd` on 127.0.0.1:0, the `hearth` binary run with its own profile directory,
//! and a scripted edge agent with real keys speaking the real WebSocket protocol.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use futures::{SinkExt as _, StreamExt as _};
use hearth_client::Client;
use hearth_crypto::{AgentKeys, OrgChain, Sha256Digest, TrustedState};
use hearth_proto::agent::*;
use hearth_proto::ids::{AgentId, OrgId};
use hearth_server::config::Settings;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

pub struct TestServer {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub setup_token: Option<String>,
    settings: Settings,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_, _| {}).await
    }

    /// A server whose settings `configure` adjusts, given the URL it will answer at.
    pub async fn start_with(configure: impl FnOnce(&mut Settings, &str)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut s = Settings {
            data_dir: dir.path().join("data"),
            listen: "127.0.0.1:0".into(),
            ..Settings::default()
        };
        s.auth.argon2_memory_kib = 64;
        s.auth.argon2_iterations = 1;
        configure(&mut s, &url);
        Self::serve(dir, url, s, listener).await
    }

    async fn serve(
        dir: tempfile::TempDir,
        url: String,
        settings: Settings,
        listener: tokio::net::TcpListener,
    ) -> Self {
        let server = hearth_server::start(settings.clone()).await.unwrap();
        let setup_token = server.setup_token.clone();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            url,
            dir,
            setup_token,
            settings,
            stop,
            task,
        }
    }

    /// Stops the server (as SIGTERM does), then runs `meanwhile` while it is away, then starts
    /// it again on the same address and data.
    pub async fn restart_after<F: std::future::Future<Output = ()>>(self, meanwhile: F) -> Self {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        meanwhile.await;
        let addr = self.url.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        Self::serve(self.dir, self.url, self.settings, listener).await
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// One machine running `hearth`: its own profile directory and passphrase.
pub struct Machine {
    pub dir: tempfile::TempDir,
    pub passphrase: String,
}

impl Machine {
    pub fn new(passphrase: &str) -> Self {
        Machine {
            dir: tempfile::tempdir().unwrap(),
            passphrase: passphrase.into(),
        }
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
        c.args(args)
            .env("HEARTH_CONFIG_DIR", self.dir.path())
            .env("HEARTH_PASSPHRASE", &self.passphrase)
            .env("HEARTH_INSECURE_TEST_KDF", "1")
            .env_remove("HEARTH_NEW_PASSPHRASE")
            .kill_on_drop(true);
        c
    }

    /// Runs `hearth ARGS`; returns its output whatever the exit status.
    pub async fn try_run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    /// Runs `hearth ARGS`, which must succeed; returns stdout.
    pub async fn run(&self, args: &[&str]) -> String {
        let out = self.try_run(args).await;
        assert!(
            out.status.success(),
            "hearth {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn profile(&self) -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.dir.path().join("profile.json")).unwrap(),
        )
        .unwrap()
    }

    /// A client with this machine's API token.
    pub fn client(&self) -> (Client, OrgId) {
        let p = self.profile();
        let c = Client::new(p["server"].as_str().unwrap())
            .unwrap()
            .with_token(p["token"].as_str().unwrap());
        (c, p["org_id"].as_str().unwrap().parse().unwrap())
    }

    /// The chain verified from this machine's pinned genesis (what an agent would trust).
    pub async fn trusted(&self) -> TrustedState {
        let (c, org) = self.client();
        let links: Vec<hearth_proto::api::ChainLink> = c
            .raw_get(&format!("/api/v1/orgs/{org}/chain"))
            .await
            .unwrap();
        let mut it = links.into_iter();
        let chain = OrgChain {
            genesis: serde_json::from_value(it.next().unwrap().link).unwrap(),
            links: it
                .map(|l| serde_json::from_value(l.link).unwrap())
                .collect(),
        };
        let pinned: Sha256Digest = self.profile()["genesis"].as_str().unwrap().parse().unwrap();
        chain.verify(&pinned).unwrap()
    }

    /// `hearth setup` as the first owner `ada` of organisation "Acme".
    pub async fn setup(&self, server: &TestServer) -> String {
        let out = self
            .setup_command(server, &server.url)
            .output()
            .await
            .unwrap();
        assert_success(&out);
        String::from_utf8(out.stdout).unwrap()
    }

    /// The command `setup` runs, through `url` (another spelling of the server's address).
    pub fn setup_command(&self, server: &TestServer, url: &str) -> tokio::process::Command {
        self.command(&[
            "setup",
            url,
            "--token",
            server.setup_token.as_deref().unwrap(),
            "--login",
            "ada",
            "--org",
            "Acme",
        ])
    }
}

/// Fails the test with the command's error output unless it succeeded.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An edge agent with real keys, scripted.
pub struct TestAgent {
    pub id: AgentId,
    pub keys: AgentKeys,
}

pub async fn recv(ws: &mut Ws) -> ServerMsg {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("the server sent nothing for 20 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let msg: ServerMsg = serde_json::from_str(&t).unwrap();
            if msg != ServerMsg::Ping {
                return msg;
            }
        }
    }
}

pub async fn send(ws: &mut Ws, m: &AgentMsg) {
    ws.send(Message::Text(serde_json::to_string(m).unwrap().into()))
        .await
        .unwrap();
}

impl TestAgent {
    /// Enrolls with a token from `hearth agents token`, as `hearth-agent enroll` would.
    pub async fn enroll(url: &str, token: &str, name: &str) -> TestAgent {
        let keys = AgentKeys::generate();
        let seed = keys.expose_signing_seed();
        let vk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let resp = reqwest::Client::new()
            .post(format!("{url}/api/v1/agents/enroll"))
            .json(&serde_json::json!({
                "token": token,
                "name": name,
                "signing_key": base64::engine::general_purpose::STANDARD.encode(vk.as_bytes()),
                "age_recipient": keys.public().recipient.to_string(),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: serde_json::Value = resp.json().await.unwrap();
        TestAgent {
            id: body["agent_id"].as_str().unwrap().parse().unwrap(),
            keys,
        }
    }

    pub async fn connect(&self, url: &str) -> (Ws, String) {
        let ws_url = format!("{}/api/v1/agent/connect", url.replace("http://", "ws://"));
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        let ServerMsg::Challenge { nonce } = recv(&mut ws).await else {
            panic!("expected a challenge")
        };
        let seed = self.keys.expose_signing_seed();
        let sig = ed25519_dalek::SigningKey::from_bytes(&seed).sign(&auth_message(&nonce));
        send(
            &mut ws,
            &AgentMsg::Auth {
                agent_id: self.id,
                signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
                agent_version: "test".into(),
            },
        )
        .await;
        match recv(&mut ws).await {
            ServerMsg::Welcome { http_token, .. } => (ws, http_token),
            other => panic!("not admitted: {other:?}"),
        }
    }
}

pub fn printer_info(name: &str, pool: &str) -> PrinterInfo {
    PrinterInfo {
        name: name.into(),
        kind: "simulated".into(),
        model: "Prusa MK4".into(),
        nozzle_mm: Some(0.4),
        material: Some("PLA".into()),
        color: Some("black".into()),
        pools: vec![pool.into()],
        can_pause: true,
        camera: false,
        heat: None,
        tune: None,
        actions: Vec::new(),
    }
}

pub fn telemetry(state: PrinterState) -> PrinterTelemetry {
    PrinterTelemetry {
        state,
        heaters: vec![Heater {
            name: "bed".into(),
            actual: 60.0,
            target: Some(60.0),
        }],
        job_id: None,
        progress: None,
        layer: None,
        total_layers: None,
        elapsed_seconds: None,
        remaining_seconds: None,
        error: None,
        slots: Vec::new(),
        light: None,
        speed_percent: None,
        flow_percent: None,
        fan_percent: None,
    }
}

/// Polls `f` until it returns `Some`, for at most 20 s (no sleeping for readiness).
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
    }
}

/// A small G-code file (PrusaSlicer-like header) with `marker` in a comment.
pub fn gcode(dir: &Path, name: &str, marker: &str) -> PathBuf {
    let path = dir.join(name);
    let mut s = String::from(
        "; generated by PrusaSlicer 2.7.0 on 2024-01-01 at 00:00:00 UTC\n\
         ; printer_model = MK4\n; nozzle_diameter = 0.4\n; filament_type = PLA\n\
         ; filament_colour = #FF8000\n; layer_height = 0.2\n",
    );
    s.push_str(&format!("; {marker}\nG28\nG1 Z0.2 F3000\n"));
    for i in 0..200 {
        s.push_str(&format!("G1 X{} Y{} E{:.3} F1800\n", i % 50, i / 4, 0.05));
    }
    s.push_str("; estimated printing time (normal mode) = 1m 5s\n; filament used [g] = 1.25\n");
    std::fs::write(&path, s).unwrap();
    path
}
