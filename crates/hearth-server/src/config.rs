//! `hearthd`'s settings: defaults, then a TOML file, then `HEARTH_*` environment variables, then command-line
//! flags. Unknown keys in the file and unknown `HEARTH_*` variables produce warnings, never silence.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything `hearthd` can be told. Each field says why it exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Where the SQLite database, sealed blobs, uploads in progress and the key sealing secrets
    /// at rest live.
    pub data_dir: PathBuf,
    /// Address to listen on. Non-loopback addresses should be served over TLS.
    pub listen: String,
    /// The URL users reach this server at (used in the printed setup link, and announced at `/api/v1/info`
    /// so clients can point members who typed another address to it). Defaults to the listen address.
    pub public_url: Option<String>,
    /// `postgres://...` to use PostgreSQL; empty means a SQLite file in the data directory.
    pub database_url: Option<String>,
    pub tls: TlsSettings,
    pub log: LogSettings,
    pub limits: Limits,
    pub auth: AuthSettings,
    pub notifications: NotifySettings,
    pub ui: UiSettings,
    pub camera: CameraSettings,
    pub cluster: ClusterSettings,
    pub audit: AuditSettings,
}

/// The audit log sent on to a syslog collector (a SIEM) as well (`crate::syslog`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditSettings {
    /// `tls://HOST:PORT` (RFC 5425, usually port 6514) or `tcp://HOST:PORT` (RFC 6587): every
    /// entry of every audit chain goes there as an RFC 5424 message. Unset: nowhere.
    pub syslog: Option<String>,
    /// For `tls://`: PEM certificates of CAs to trust for the collector, besides the system's.
    pub syslog_ca_file: Option<PathBuf>,
    /// The messages' HOSTNAME: by default `public_url`'s host, else the machine's `HOSTNAME`.
    pub syslog_hostname: Option<String>,
    /// Whether the entries written before forwarding was first set up are sent too (the default);
    /// `false` sends only what comes after.
    pub syslog_history: Option<bool>,
}

/// Several instances sharing one PostgreSQL database and one blob directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterSettings {
    /// `nats://host:4222`: the NATS server the instances tell each other live events, agent
    /// commands and which agents each holds through. Empty: this instance is alone.
    pub nats_url: Option<String>,
}

/// Printer cameras' timelapses (frames stay sealed: the server keeps what it cannot open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CameraSettings {
    /// Most frames one job's timelapse keeps. Reaching it drops every other frame and keeps one
    /// in two from then on, so a long print's timelapse stays evenly spaced (at the agent's 10 s,
    /// 1800 frames cover 5 hours before the first thinning).
    pub timelapse_max_frames: i64,
    /// A timelapse is deleted this many days after its job ended; 0 keeps timelapses until
    /// someone deletes them.
    pub timelapse_keep_days: i64,
}

impl Default for CameraSettings {
    fn default() -> Self {
        Self {
            timelapse_max_frames: 1800,
            timelapse_keep_days: 30,
        }
    }
}

/// The web dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UiSettings {
    /// Serve the dashboard at `/`. Off, `hearthd` serves the API only (for deployments where
    /// members use the CLI and nothing should be reachable from a browser).
    pub enabled: bool,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Notifications to webhooks, Slack, Discord and ntfy (channels are set per organisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifySettings {
    /// Allow destinations on loopback, private, link-local and other non-public addresses. Off, an
    /// organisation admin cannot make the server post into its own network (the cloud metadata
    /// address, a database's HTTP port); turn it on for a LAN ntfy or chat server.
    pub allow_private_addresses: bool,
    /// A printer unreachable this long (agent disconnected, or the printer not answering it) is
    /// reported as `printer.offline`; shorter outages, such as a server restart, are not.
    pub offline_after_secs: i64,
    /// Wait before the first retry of a failed delivery; each further retry waits four times as
    /// long, 8 tries in all (about 15 hours with the default).
    pub first_retry_ms: i64,
    /// One try gives up after this long.
    pub timeout_secs: i64,
    /// A PEM file of certificate authorities to trust besides the system's, for HTTPS destinations
    /// and the SMTP server (a self-hosted ntfy, chat or mail server with an internal CA).
    pub ca_file: Option<PathBuf>,
    pub smtp: SmtpSettings,
}

/// The SMTP server e-mail notifications go through. Without a host, e-mail channels cannot be added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpSettings {
    /// `smtp.example.org`; empty turns e-mail off.
    pub host: String,
    /// 587 for `starttls`, 465 for `tls`, 25 for a relay; 0 picks the usual one for `security`.
    pub port: i64,
    /// `starttls` (the default), `tls` (implicit TLS) or `none` (a relay on this machine or a
    /// trusted network; the password, if any, would cross it in clear).
    pub security: String,
    pub username: String,
    /// A file holding the password, so it stays out of the configuration.
    pub password_file: Option<PathBuf>,
    /// The sender, e.g. `Hearth <hearth@example.org>`.
    pub from: String,
}

/// HTTPS served by `hearthd` itself (rustls). Both or neither.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors.
    pub format: String,
    /// A tracing filter such as `info` or `hearth_server=debug,info`.
    pub filter: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Storage quota of a new organisation, bytes.
    pub default_quota_bytes: i64,
    /// Largest single sealed blob accepted, bytes.
    pub max_blob_bytes: i64,
    /// Largest JSON request body, bytes.
    pub max_json_bytes: usize,
    /// An unfinished upload is discarded this long after it was created.
    pub upload_ttl_hours: i64,
    /// The sealed payload of a job is deleted this many days after the last job printing it
    /// ended (0: kept).
    pub job_payload_keep_days: i64,
    /// A sealed blob that no file and no job uses is deleted this many hours after its upload
    /// finished (0: kept): what a client left behind when it stopped between uploading and
    /// creating the file or job.
    pub unused_blob_keep_hours: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Browser session lifetime.
    pub session_ttl_hours: i64,
    /// Failed logins allowed per account within the window before it is throttled.
    pub max_failures_per_account: u32,
    /// Failed logins allowed per source address within the window.
    pub max_failures_per_ip: u32,
    /// Length of the throttling window.
    pub failure_window_secs: u64,
    /// Argon2id memory cost (KiB) for stored login-secret hashes.
    pub argon2_memory_kib: u32,
    /// Argon2id passes.
    pub argon2_iterations: u32,
    /// The key file sealing the secrets of members' authenticator apps in the database (created
    /// on first start; every instance of a cluster needs the same one). Default:
    /// `DATA_DIR/secret.key`.
    pub secret_key_file: Option<PathBuf>,
    /// Most single sign-on logins sent to providers and not back yet: each is a row anyone can
    /// make without logging in, so a flood is refused (503) rather than stored.
    pub max_sso_logins_in_flight: i64,
    /// Most passkey registrations and logins started and not finished (five minutes each): the
    /// same reason.
    pub max_passkey_ceremonies_in_flight: i64,
    /// OpenID Connect providers members may log in through (`[[auth.oidc]]`, one table each).
    pub oidc: Vec<OidcProvider>,
}

/// An OpenID Connect provider (Keycloak, Microsoft Entra ID, Okta, Google, Authentik...) for
/// logging in to Hearth: login only, no key ever comes from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcProvider {
    /// Short name in URLs and the audit log: lowercase letters, digits and `-`.
    pub id: String,
    /// What the login button says (default: the id).
    pub name: String,
    /// The issuer URL; `ISSUER/.well-known/openid-configuration` must answer. HTTPS, except on
    /// loopback.
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (kept out of the configuration); none for a public client
    /// (PKCE alone).
    pub client_secret_file: Option<PathBuf>,
    /// A PEM file of certificate authorities to trust besides the system's, for a provider with
    /// a certificate of an internal CA.
    pub ca_file: Option<PathBuf>,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The claim naming the Hearth account: `preferred_username` or `email` (a verified one).
    pub login_claim: String,
    /// Ask the provider to `login` again or `select_account` even when the browser is still
    /// logged in there (shared machines: the next person is not logged in as the last); empty
    /// leaves it to the provider.
    pub prompt: String,
    /// Which accounts a first login through this provider reaches: `linked` (only identities a
    /// member linked from the dashboard), `match` (also the account whose login equals the
    /// claim, linked on the way), `create` (also creates the account when there is none).
    pub accounts: String,
    /// Whether the provider's back-channel logout (`POST /api/v1/auth/sso/{id}/logout`, its
    /// `backchannel_logout_uri`) also revokes the API tokens made in the sessions it ends (those
    /// of `hearth login --sso` among them), besides ending the sessions.
    pub logout_revokes_tokens: bool,
    /// Whether logging out of Hearth's dashboard, for a session opened through this provider, also
    /// logs out at the provider (its `end_session_endpoint`, RP-Initiated Logout), which ends the
    /// member's other applications' sessions there too (shared machines, kiosks).
    pub logout_at_provider: bool,
}

impl Default for OidcProvider {
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            issuer: String::new(),
            client_id: String::new(),
            client_secret_file: None,
            ca_file: None,
            scopes: vec!["email".into(), "profile".into()],
            login_claim: "preferred_username".into(),
            prompt: String::new(),
            accounts: "match".into(),
            logout_revokes_tokens: true,
            logout_at_provider: false,
        }
    }
}

impl OidcProvider {
    /// What the login button says.
    pub fn label(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }

    fn validate(&self) -> Result<(), String> {
        let id_ok = (1..=32).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(format!(
                "id {:?}: 1-32 lowercase letters, digits or '-'",
                self.id
            ));
        }
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
        let rest = |p: &str| {
            self.issuer
                .strip_prefix(p)
                .map(|r| r.is_empty() || r.starts_with([':', '/']))
        };
        if !(self.issuer.starts_with("https://")
            || loopback.into_iter().any(|p| rest(p) == Some(true)))
        {
            return Err(format!(
                "issuer {:?} must be an https:// URL (http only on loopback)",
                self.issuer
            ));
        }
        if self.client_id.is_empty() {
            return Err("client_id is empty".into());
        }
        if !matches!(self.login_claim.as_str(), "preferred_username" | "email") {
            return Err(format!(
                "login_claim must be preferred_username or email, not {:?}",
                self.login_claim
            ));
        }
        if !matches!(self.prompt.as_str(), "" | "login" | "select_account") {
            return Err(format!(
                "prompt must be login, select_account or empty, not {:?}",
                self.prompt
            ));
        }
        if !matches!(self.accounts.as_str(), "linked" | "match" | "create") {
            return Err(format!(
                "accounts must be linked, match or create, not {:?}",
                self.accounts
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// The key file sealing secrets at rest (`auth.secret_key_file`, or `secret.key` in the data
    /// directory).
    pub fn secret_key_path(&self) -> PathBuf {
        self.auth
            .secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("hearth-data"),
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            database_url: None,
            tls: TlsSettings::default(),
            log: LogSettings::default(),
            limits: Limits::default(),
            auth: AuthSettings::default(),
            notifications: NotifySettings::default(),
            ui: UiSettings::default(),
            camera: CameraSettings::default(),
            cluster: ClusterSettings::default(),
            audit: AuditSettings::default(),
        }
    }
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            allow_private_addresses: false,
            offline_after_secs: 300,
            first_retry_ms: 10_000,
            timeout_secs: 10,
            ca_file: None,
            smtp: SmtpSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_quota_bytes: 50 << 30,
            max_blob_bytes: 8 << 30,
            max_json_bytes: 256 << 10,
            upload_ttl_hours: 72,
            job_payload_keep_days: 7,
            unused_blob_keep_hours: 24,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            session_ttl_hours: 12,
            max_failures_per_account: 5,
            max_failures_per_ip: 30,
            failure_window_secs: 900,
            // OWASP's Argon2id recommendation: 19 MiB, 2 passes, 1 lane.
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            secret_key_file: None,
            max_sso_logins_in_flight: 10_000,
            max_passkey_ceremonies_in_flight: 10_000,
            oidc: Vec::new(),
        }
    }
}

/// Settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?}: {message}")]
    Env {
        name: String,
        value: String,
        message: String,
    },
    #[error("invalid settings: {0}")]
    Invalid(String),
}

/// `HEARTH_*` variables that belong to tools around `hearthd` (tests, CI), not to its settings.
const FOREIGN_ENV: &[&str] = &[
    "HEARTH_CONFIG",
    "HEARTH_REQUIRE_PEERS",
    "HEARTH_BLESS",
    "HEARTH_SHARED_DIR",
    "HEARTH_PEERS_DIR",
    "HEARTH_SERVER",
    "HEARTH_TOKEN",
];

impl Settings {
    /// Layer a TOML file (if given) and the environment over the defaults. Returns the settings and the
    /// warnings to log (unknown keys and variables).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Settings, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
            // Unknown keys are dropped with a warning rather than refusing to start.
            let mut unknown = Vec::new();
            let _: Settings = serde_ignored::deserialize(toml::Value::Table(table.clone()), |p| {
                unknown.push(p.to_string())
            })
            .map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            for key in unknown {
                warnings.push(format!(
                    "{}: unknown setting `{key}` ignored",
                    path.display()
                ));
                remove_path(&mut table, &key);
            }
        }
        let leaves = leaf_paths();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("HEARTH_") else {
                continue;
            };
            if FOREIGN_ENV.contains(&name.as_str()) || rest.starts_with("TEST_") {
                continue;
            }
            let Some((path, kind)) = leaves.iter().find(|(p, _)| env_name(p) == name) else {
                warnings.push(format!(
                    "environment variable {name} is not a hearthd setting; ignored"
                ));
                continue;
            };
            let parsed = match kind {
                Kind::Int => value
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|e| e.to_string()),
                Kind::Bool => value
                    .parse::<bool>()
                    .map(toml::Value::Boolean)
                    .map_err(|e| e.to_string()),
                Kind::Str => Ok(toml::Value::String(value.clone())),
            };
            let v = parsed.map_err(|message| ConfigError::Env {
                name: name.clone(),
                value: value.clone(),
                message,
            })?;
            set_path(&mut table, path, v);
        }
        let settings: Settings = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        settings.validate()?;
        Ok((settings, warnings))
    }

    /// Check relations between settings that types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key must be given together".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log.format must be text or json, not {:?}",
                self.log.format
            )));
        }
        for (i, p) in self.auth.oidc.iter().enumerate() {
            p.validate()
                .map_err(|e| ConfigError::Invalid(format!("auth.oidc[{i}]: {e}")))?;
            if self.auth.oidc[..i].iter().any(|q| q.id == p.id) {
                return Err(ConfigError::Invalid(format!(
                    "auth.oidc: two providers have the id {:?}",
                    p.id
                )));
            }
        }
        if self.limits.default_quota_bytes < 0 || self.limits.max_blob_bytes <= 0 {
            return Err(ConfigError::Invalid("limits must be positive".into()));
        }
        let n = &self.notifications;
        if n.offline_after_secs < 0 || n.first_retry_ms <= 0 || n.timeout_secs <= 0 {
            return Err(ConfigError::Invalid(
                "notifications: offline_after_secs must be 0 or more, first_retry_ms and timeout_secs positive".into(),
            ));
        }
        let smtp = &n.smtp;
        if !smtp.host.is_empty() {
            if !matches!(smtp.security.as_str(), "" | "starttls" | "tls" | "none") {
                return Err(ConfigError::Invalid(format!(
                    "notifications.smtp.security must be starttls, tls or none, not {:?}",
                    smtp.security
                )));
            }
            if smtp.from.trim().is_empty() {
                return Err(ConfigError::Invalid(
                    "notifications.smtp.from is needed with a host (e.g. \"Hearth <hearth@example.org>\")".into(),
                ));
            }
            if !(0..=65535).contains(&smtp.port) {
                return Err(ConfigError::Invalid(
                    "notifications.smtp.port is not a port".into(),
                ));
            }
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or the SQLite file in the data directory.
    pub fn effective_database_url(&self) -> String {
        match self.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => url.to_owned(),
            None => hearth_store::sqlite_url(&self.data_dir.join("hearth.db")),
        }
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls.cert.is_some()
    }

    /// The configured public URL without surrounding spaces or a trailing `/`; `None` when unset
    /// or empty.
    pub fn public_base(&self) -> Option<&str> {
        self.public_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
    }

    /// What a cookie's attributes end with: `; Secure` when `hearthd` serves HTTPS itself.
    pub fn cookie_secure(&self) -> &'static str {
        if self.tls_enabled() { "; Secure" } else { "" }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
}

/// Every settable leaf, with its type, found by serialising a fully populated example.
fn leaf_paths() -> Vec<(String, Kind)> {
    let full = Settings {
        public_url: Some(String::new()),
        database_url: Some(String::new()),
        tls: TlsSettings {
            cert: Some(PathBuf::new()),
            key: Some(PathBuf::new()),
        },
        ..Settings::default()
    };
    let mut full = full;
    full.notifications.smtp.password_file = Some(PathBuf::new());
    full.notifications.ca_file = Some(PathBuf::new());
    full.cluster.nats_url = Some(String::new());
    full.audit = AuditSettings {
        syslog: Some(String::new()),
        syslog_ca_file: Some(PathBuf::new()),
        syslog_hostname: Some(String::new()),
        syslog_history: Some(true),
    };
    let mut out = Vec::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(&full) {
        collect(&t, "", &mut out);
    }
    out
}

fn collect(t: &toml::Table, prefix: &str, out: &mut Vec<(String, Kind)>) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(sub) => collect(sub, &path, out),
            toml::Value::Integer(_) => out.push((path, Kind::Int)),
            toml::Value::Boolean(_) => out.push((path, Kind::Bool)),
            // Lists of tables (`[[auth.oidc]]`) are set in the file only.
            toml::Value::Array(_) => {}
            _ => out.push((path, Kind::Str)),
        }
    }
}

/// `tls.cert` is set by `HEARTH_TLS_CERT`.
fn env_name(path: &str) -> String {
    format!("HEARTH_{}", path.replace('.', "_").to_uppercase())
}

fn set_path(t: &mut toml::Table, path: &str, v: toml::Value) {
    match path.split_once('.') {
        None => {
            t.insert(path.to_owned(), v);
        }
        Some((head, rest)) => {
            let entry = t
                .entry(head.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(sub) = entry {
                set_path(sub, rest, v);
            }
        }
    }
}

fn remove_path(t: &mut toml::Table, path: &str) {
    match path.split_once('.') {
        None => {
            t.remove(path);
        }
        Some((head, rest)) => {
            if let Some(toml::Value::Table(sub)) = t.get_mut(head) {
                remove_path(sub, rest);
            }
        }
    }
}

/// What `hearthd config example` prints: every setting with its default and why it exists.
pub const EXAMPLE: &str = r#"# hearthd configuration. Every key is optional; shown values are the defaults.
# Each key can also be set by an environment variable: HEARTH_ + the key path in capitals with `_` for `.`,
# e.g. HEARTH_LISTEN, HEARTH_TLS_CERT, HEARTH_LIMITS_DEFAULT_QUOTA_BYTES. Flags given to `hearthd` win over both.

# Database, sealed blobs and uploads in progress.
data_dir = "hearth-data"
# Address to listen on. Anything but loopback should be served over TLS (see [tls]).
listen = "127.0.0.1:8080"
# The URL users reach this server at; used in the printed setup link, and announced at /api/v1/info
# so that a member's `hearth login` through another address is told to use this one.
# public_url = "https://hearth.example.org"
# PostgreSQL instead of the SQLite file in data_dir (needed to run several hearthd instances).
# database_url = "postgres://hearth:password@db.example.org/hearth"

[tls]
# PEM certificate chain and private key; with both set, hearthd serves HTTPS itself.
# cert = "/etc/hearth/fullchain.pem"
# key = "/etc/hearth/privkey.pem"

[log]
# "text" for people, "json" for log collectors.
format = "text"
# Tracing filter, e.g. "info" or "hearth_server=debug,info".
filter = "info"

[limits]
# Storage quota of a new organisation, bytes (50 GiB).
default_quota_bytes = 53687091200
# Largest single sealed file, bytes (8 GiB).
max_blob_bytes = 8589934592
# Largest JSON request body, bytes.
max_json_bytes = 262144
# Unfinished uploads are discarded after this many hours.
upload_ttl_hours = 72
# A job's sealed payload is deleted this many days after the last job printing it ended (its job
# stays in the history; 0 keeps payloads).
job_payload_keep_days = 7
# A sealed file that no library file and no job uses (a client stopped between uploading it and
# creating the file or job) is deleted this many hours after its upload (0 keeps it).
unused_blob_keep_hours = 24

[auth]
# Browser session lifetime.
session_ttl_hours = 12
# Failed logins allowed per account, and per source address, within the window before throttling.
max_failures_per_account = 5
max_failures_per_ip = 30
failure_window_secs = 900
# Argon2id cost for stored login-secret hashes (OWASP recommendation).
argon2_memory_kib = 19456
argon2_iterations = 2
# The key file sealing members' authenticator-app secrets in the database, created on first start
# (keep it with the backups, apart from database copies; every instance of a cluster needs the same
# one). Default: secret.key in data_dir.
# secret_key_file = "/etc/hearth/secret.key"
# Most single sign-on logins on their way to a provider and back (10 minutes each) at once; more
# are refused, so a flood of anonymous starts cannot fill the database.
max_sso_logins_in_flight = 10000
# The same for passkey logins and registrations started and not finished (5 minutes each).
# Passkeys themselves need public_url set to a name (not an IP address): its host is the relying
# party authenticators bind each passkey to, and its origin the only one a passkey login is taken from.
max_passkey_ceremonies_in_flight = 10000

# Logging in through an OpenID Connect provider (single sign-on), one [[auth.oidc]] table each. Login
# only: members' keys never come from it. Register https://HEARTH/api/v1/auth/sso/ID/callback (the
# public_url, or the address members use) as the client's redirect URI at the provider.
# [[auth.oidc]]
# id = "corp"                          # in URLs and the audit log
# name = "Corp SSO"                    # the login button
# issuer = "https://id.example.org/realms/corp"
# client_id = "hearth"
# client_secret_file = "/etc/hearth/oidc-corp.secret"   # omit for a public client (PKCE alone)
# ca_file = "/etc/hearth/internal-ca.pem"   # CAs to trust besides the system's, for the provider
# scopes = ["email", "profile"]        # besides openid
# login_claim = "preferred_username"   # or "email" (only a verified one is taken)
# prompt = "login"                     # or "select_account": asked again even when the browser is
#                                      # still logged in at the provider (shared machines)
# accounts = "match"                   # "linked": only identities linked from the dashboard;
#                                      # "match": also the account of that login; "create": also new ones
# Back-channel logout: register https://HEARTH/api/v1/auth/sso/ID/logout as the client's
# backchannel_logout_uri (with backchannel_logout_session_required, a logout ends that provider
# session's logins only; without, all the account's through this provider).
# logout_revokes_tokens = true         # also revoke the API tokens made in the sessions it ends
# logout_at_provider = false           # true: logging out of the dashboard also logs out at the
#                                      # provider (register https://HEARTH/ as a post-logout redirect URI)

[ui]
# Serve the web dashboard at /. Off, hearthd serves the API only.
enabled = true

[camera]
# Most frames one job's timelapse keeps; reaching it drops every other frame, so the timelapse stays
# evenly spaced.
timelapse_max_frames = 1800
# Days after its job ended that a timelapse is deleted (0: keep until someone deletes it).
timelapse_keep_days = 30

[cluster]
# Several hearthd instances sharing one PostgreSQL database_url and one data_dir (its blobs) behind
# one address: the NATS server they tell each other live events, agent commands and presence
# through, e.g. "nats://127.0.0.1:4222". Unset: this instance is alone.
# nats_url = "nats://127.0.0.1:4222"

[audit]
# Every audit entry (the system's and every organisation's) also sent to a syslog collector, e.g. a
# SIEM: one RFC 5424 message each (facility "log audit", MSGID the action, the entry as JSON), in
# order, resumed after an outage from where it stopped. tls://HOST:PORT (RFC 5425) or
# tcp://HOST:PORT (RFC 6587, octet-counted). Unset: the log stays here only.
# syslog = "tls://siem.example.org:6514"
# CAs to trust for a tls:// collector, besides the system's.
# syslog_ca_file = "/etc/hearth/siem-ca.pem"
# The messages' HOSTNAME; default: public_url's host, else the machine's name.
# syslog_hostname = "hearth.example.org"
# Whether the entries written before forwarding was first set up are sent too (years of history,
# say); false sends only what comes after. Read the first time forwarding starts.
# syslog_history = true

[notifications]
# Let organisation admins send notifications to loopback, private and link-local addresses (a LAN
# ntfy or chat server). Off, the server refuses to post into its own network.
allow_private_addresses = false
# A printer unreachable this long is reported offline (shorter outages, such as restarts, are not).
offline_after_secs = 300
# First retry of a failed delivery after this many milliseconds; each next one waits 4x longer, 8 tries.
first_retry_ms = 10000
# One delivery try gives up after this many seconds.
timeout_secs = 10
# Certificate authorities (PEM) to trust besides the system's, for HTTPS destinations and SMTP.
# ca_file = "/etc/hearth/internal-ca.pem"

[notifications.smtp]
# The SMTP server e-mail notifications go through; without a host, e-mail channels cannot be added.
host = ""
# 0 picks the usual port: 587 for starttls, 465 for tls, 25 for none.
port = 0
# "starttls" (also when empty), "tls" (implicit TLS) or "none" (a relay on this machine or a trusted network).
security = ""
username = ""
# A file holding the password (kept out of this file).
# password_file = "/etc/hearth/smtp-password"
# The sender, e.g. "Hearth <hearth@example.org>".
from = ""
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_printed_example_is_exactly_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.toml");
        std::fs::write(&path, EXAMPLE).unwrap();
        let (s, warnings) = Settings::load(Some(&path), env(&[])).unwrap();
        assert_eq!(s, Settings::default());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn file_then_environment_layer_over_defaults_and_unknowns_warn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nlistne = 1\n[limits]\nmax_blob_bytes = 10\nfoo = 2\n",
        )
        .unwrap();
        let (s, warnings) = Settings::load(
            Some(&path),
            env(&[
                ("HEARTH_LIMITS_MAX_BLOB_BYTES", "20"),
                ("HEARTH_TLS_CERT", "/c.pem"),
                ("HEARTH_TLS_KEY", "/k.pem"),
                ("HEARTH_LISTN", "x"),
                ("HEARTH_TEST_DATABASE_URL", "postgres://x"),
                ("HEARTH_CLUSTER_NATS_URL", "nats://10.0.0.5:4222"),
                ("HEARTH_CAMERA_TIMELAPSE_KEEP_DAYS", "7"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(s.cluster.nats_url.as_deref(), Some("nats://10.0.0.5:4222"));
        assert_eq!(s.camera.timelapse_keep_days, 7);
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(
            s.limits.max_blob_bytes, 20,
            "environment wins over the file"
        );
        assert_eq!(s.tls.cert.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("listne")));
        assert!(warnings.iter().any(|w| w.contains("limits.foo")));
        assert!(warnings.iter().any(|w| w.contains("HEARTH_LISTN")));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = Settings::load(None, env(&[("HEARTH_LIMITS_MAX_BLOB_BYTES", "lots")])).unwrap_err();
        assert!(
            e.to_string().contains("HEARTH_LIMITS_MAX_BLOB_BYTES"),
            "{e}"
        );
        let e = Settings::load(None, env(&[("HEARTH_TLS_CERT", "/c.pem")])).unwrap_err();
        assert!(e.to_string().contains("together"), "{e}");
    }

    #[test]
    fn single_sign_on_providers_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.toml");
        let load = |providers: &str| {
            std::fs::write(&path, providers).unwrap();
            Settings::load(Some(&path), env(&[]))
        };
        let (s, warnings) = load(
            "[[auth.oidc]]\nid = \"corp\"\nissuer = \"https://id.example.org/realms/corp\"\n\
             client_id = \"hearth\"\nlogin_claim = \"email\"\n\
             [[auth.oidc]]\nid = \"lab\"\nname = \"Lab Keycloak\"\n\
             issuer = \"http://127.0.0.1:8081/realms/lab\"\nclient_id = \"h\"\naccounts = \"create\"\n",
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let [corp, lab] = &s.auth.oidc[..] else {
            panic!("{:?}", s.auth.oidc)
        };
        assert_eq!((corp.label(), corp.accounts.as_str()), ("corp", "match"));
        assert_eq!(corp.scopes, ["email", "profile"]);
        assert_eq!(
            (lab.label(), lab.accounts.as_str()),
            ("Lab Keycloak", "create")
        );
        for (bad, why) in [
            (
                "id = \"Corp\"\nissuer = \"https://x\"\nclient_id = \"h\"",
                "lowercase",
            ),
            (
                "id = \"c\"\nissuer = \"http://id.example.org\"\nclient_id = \"h\"",
                "https",
            ),
            (
                "id = \"c\"\nissuer = \"http://localhost.evil.org\"\nclient_id = \"h\"",
                "https",
            ),
            (
                "id = \"c\"\nissuer = \"https://x\"\nclient_id = \"\"",
                "client_id",
            ),
            (
                "id = \"c\"\nissuer = \"https://x\"\nclient_id = \"h\"\naccounts = \"all\"",
                "accounts",
            ),
            (
                "id = \"c\"\nissuer = \"https://x\"\nclient_id = \"h\"\nlogin_claim = \"sub\"",
                "login_claim",
            ),
            (
                "id = \"c\"\nissuer = \"https://x\"\nclient_id = \"h\"\nprompt = \"none\"",
                "prompt",
            ),
        ] {
            let e = load(&format!("[[auth.oidc]]\n{bad}\n")).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        let twice = "[[auth.oidc]]\nid = \"c\"\nissuer = \"https://x\"\nclient_id = \"h\"\n";
        let e = load(&format!("{twice}{twice}")).unwrap_err();
        assert!(e.to_string().contains("two providers"), "{e}");
    }
}
