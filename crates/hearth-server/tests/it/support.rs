use hearth_client::Client;
use hearth_proto::api::SetupRequest;
use hearth_proto::ids::OrgId;
use hearth_server::config::Settings;
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;

pub const OWNER_SECRET: &str = "owner secret 0123";

/// A server running in this process on a free loopback port.
pub struct TestServer {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub setup_token: Option<String>,
    /// The running server's state, for what no request reaches (its periodic work).
    pub state: hearth_server::state::AppState,
    /// Dropping the sender stops the server with the test.
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Settings for tests: a temp data dir and cheap Argon2 (the cost is configuration, not behaviour).
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut s = Settings {
        data_dir: data_dir.to_owned(),
        listen: "127.0.0.1:0".into(),
        ..Settings::default()
    };
    s.auth.argon2_memory_kib = 64;
    s.auth.argon2_iterations = 1;
    s
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = test_settings(&dir.path().join("data"));
        tweak(&mut s);
        Self::start_in(dir, s).await
    }

    pub async fn start_in(dir: tempfile::TempDir, settings: Settings) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        Self::serve(dir, settings, listener, url).await
    }

    /// A server whose `public_url` is `http://localhost:PORT`, the address its clients use: a
    /// name, as passkeys need (authenticators refuse IP addresses).
    pub async fn start_at_localhost(tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = test_settings(&dir.path().join("data"));
        tweak(&mut s);
        Self::start_in_at_localhost(dir, s).await
    }

    /// As [`TestServer::start_at_localhost`], with the settings and directory given.
    pub async fn start_in_at_localhost(dir: tempfile::TempDir, mut s: Settings) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://localhost:{}", listener.local_addr().unwrap().port());
        s.public_url = Some(url.clone());
        Self::serve(dir, s, listener, url).await
    }

    async fn serve(
        dir: tempfile::TempDir,
        settings: Settings,
        listener: tokio::net::TcpListener,
        url: String,
    ) -> Self {
        let server = hearth_server::start(settings).await.unwrap();
        let setup_token = server.setup_token.clone();
        let state = server.state.clone();
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
            state,
            stop,
            task,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Shuts the server down as a signal would and returns once `run` has returned, or panics
    /// if it has not within 30 s (the shutdown hangs).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(std::time::Duration::from_secs(30), self.task)
            .await
            .expect("the server stops")
            .expect("the server's task");
    }

    /// Stops the server and starts it again on the same data directory and settings (on another
    /// port), as an administrator's restart would.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// As [`Self::restart`], with the settings changed by `tweak` (an administrator's edit).
    pub async fn restart_with(self, tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.state.settings.clone();
        tweak(&mut settings);
        let TestServer {
            dir, stop, task, ..
        } = self;
        let _ = stop.send(());
        tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("the server stops")
            .expect("the server's task");
        Self::start_in(dir, settings).await
    }

    /// Asserts that `/metrics` holds each of `lines` as a whole line.
    pub async fn assert_metrics(&self, lines: &[&str]) {
        let metrics = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in lines {
            assert!(
                metrics.lines().any(|l| l == *line),
                "{line} not in {metrics}"
            );
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url).unwrap()
    }

    /// A client of this server using a new API token of `c`'s account (unrestricted, no expiry).
    pub async fn token_client(&self, c: &Client) -> Client {
        self.client().with_token(new_token(c).await)
    }

    /// Create the first owner ("owner") and organisation; returns a logged-in client and the org.
    pub async fn bootstrap(&self) -> (Client, OrgId) {
        let c = self.client();
        let out = c
            .setup(&SetupRequest {
                token: self.setup_token.clone().unwrap(),
                login: "owner".into(),
                secret: OWNER_SECRET.into(),
                org_name: "Acme Prototyping".into(),
            })
            .await
            .unwrap();
        let mut c = self.client();
        c.login("owner", OWNER_SECRET).await.unwrap();
        (c, out.org.id)
    }
}

/// A file of `len` deterministic pseudo-random bytes.
pub fn make_file(dir: &Path, name: &str, len: usize) -> PathBuf {
    let path = dir.join(name);
    let mut x: u32 = 0x1234_5678 ^ len as u32;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(&path, data).unwrap();
    path
}

/// A new API token of `c`'s account (unrestricted, no expiry).
pub async fn new_token(c: &Client) -> String {
    c.create_token(&hearth_proto::api::CreateTokenRequest {
        name: "script".into(),
        org: None,
        max_role: None,
        expires_in_days: None,
    })
    .await
    .unwrap()
    .token
}

/// An instance user with a role in `org`, logged in.
pub async fn member(
    server: &TestServer,
    admin: &Client,
    org: OrgId,
    login: &str,
    role: hearth_proto::Role,
) -> Client {
    let secret = format!("{login} secret 0123");
    admin.create_user(login, &secret, false).await.unwrap();
    admin.add_member(org, login, role).await.unwrap();
    let mut c = server.client();
    c.login(login, &secret).await.unwrap();
    c
}

/// The instance's audit entries (action, details), oldest first, as an instance admin sees them.
pub async fn audit_actions(admin: &Client) -> Vec<(String, serde_json::Value)> {
    let page: serde_json::Value = admin
        .raw_get("/api/v1/system/audit?limit=1000")
        .await
        .unwrap();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["details"].clone(),
            )
        })
        .collect()
}

/// Sets the server up with an owner whose login secret comes from `passphrase` (as the dashboard
/// derives it), and returns the secret (hex).
pub async fn owner_with_passphrase(server: &TestServer, passphrase: &str) -> String {
    let secret = hearth_crypto::derive_login_secret(
        passphrase,
        &server.url,
        "owner",
        &hearth_crypto::KdfParams::default(),
    )
    .unwrap();
    let hex = secret.expose_hex().to_string();
    server
        .client()
        .setup(&hearth_proto::api::SetupRequest {
            token: server.setup_token.clone().unwrap(),
            login: "owner".into(),
            secret: hex.clone(),
            org_name: "Acme".into(),
        })
        .await
        .unwrap();
    hex
}
