//! The CLI profile: where the server is, who we are there, and what this device already verified.
//!
//! It lives in `$HEARTH_CONFIG_DIR` (default `$XDG_CONFIG_HOME/hearth` or `~/.config/hearth`):
//! - `profile.json` (mode 0600): server URL, login, API token, organisation, the pinned genesis hash
//!   and the last chain checkpoint (so a later verification proves the chain only grew), the bridge key;
//! - `device.key` (mode 0600, like an SSH key): this device's private keys in clear, the file
//!   `DeviceKeys::expose_key_file` writes. The server only ever gets them wrapped under the passphrase.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hearth_crypto::{Checkpoint, DeviceKeys, KdfParams, Sha256Digest};
use hearth_proto::ids::OrgId;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// `HEARTH_INSECURE_TEST_KDF=1` selects `KdfParams::insecure_fast_for_tests()`: for test suites only,
/// it makes brute-forcing the passphrase trivial.
pub const TEST_KDF_ENV: &str = "HEARTH_INSECURE_TEST_KDF";

/// What `hearth login` remembers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Server base URL, without a trailing slash (also part of the login-secret salt).
    pub server: String,
    /// Account name.
    pub login: String,
    /// API token (`hth_...`) created at login, sent as a bearer token.
    pub token: String,
    /// The organisation commands act on.
    #[serde(default)]
    pub org_id: Option<OrgId>,
    #[serde(default)]
    pub org_name: Option<String>,
    /// Hash of the organisation genesis this device pinned.
    #[serde(default)]
    pub genesis: Option<Sha256Digest>,
    /// The last chain position this device verified: a shorter or different chain is refused.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    /// The `X-Api-Key` the slicer bridge requires.
    #[serde(default)]
    pub bridge_key: Option<String>,
    /// Where the bridge prints when a slicer asks to print after upload.
    #[serde(default)]
    pub bridge_printer: Option<String>,
    #[serde(default)]
    pub bridge_pool: Option<String>,
    /// Per audit log (an organisation's id, or `system`), the head `hearth audit verify` last
    /// verified: the next verification must find it unchanged in the log.
    #[serde(default)]
    pub audit_heads: std::collections::BTreeMap<String, hearth_proto::audit::ChainHead>,
}

/// The profile directory.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("HEARTH_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(d).join("hearth"));
    }
    match std::env::var_os("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".config").join("hearth")),
        None => bail!("set HEARTH_CONFIG_DIR or HOME to say where the hearth profile lives"),
    }
}

/// Key-derivation costs: the real ones, unless the test-only variable is set.
pub fn kdf_params() -> KdfParams {
    if std::env::var(TEST_KDF_ENV).is_ok_and(|v| v == "1") {
        KdfParams::insecure_fast_for_tests()
    } else {
        KdfParams::default()
    }
}

/// Writes `data` to `path` with mode 0600, through a temporary file and a rename so a crash never
/// leaves half a profile.
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        // `mode` applies only to a new file: tighten a leftover one too, before writing secrets.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

impl Profile {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("profile.json")
    }

    pub fn load(dir: &Path) -> anyhow::Result<Profile> {
        let p = Self::path(dir);
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "no hearth profile at {} (run `hearth login SERVER` first)",
                p.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is malformed", p.display()))
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        write_private(&Self::path(dir), &serde_json::to_vec_pretty(self)?)
    }
}

pub fn device_key_path(dir: &Path) -> PathBuf {
    dir.join("device.key")
}

pub fn load_device(dir: &Path) -> anyhow::Result<DeviceKeys> {
    let p = device_key_path(dir);
    let text = Zeroizing::new(
        std::fs::read_to_string(&p)
            .with_context(|| format!("cannot read the device key {}", p.display()))?,
    );
    DeviceKeys::from_key_file(&text).with_context(|| format!("{} is not a device key", p.display()))
}

pub fn save_device(dir: &Path, keys: &DeviceKeys) -> anyhow::Result<()> {
    write_private(&device_key_path(dir), keys.expose_key_file().as_bytes())
}

/// Where a passphrase comes from, in order: the file given, `HEARTH_PASSPHRASE` (or the variable
/// named), then a prompt on the terminal with echo off.
pub fn passphrase(
    file: Option<&Path>,
    env: &str,
    prompt: &str,
    confirm: bool,
) -> anyhow::Result<Zeroizing<String>> {
    if let Some(f) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        );
        return Ok(Zeroizing::new(
            text.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    if let Ok(p) = std::env::var(env) {
        return Ok(Zeroizing::new(p));
    }
    let first = prompt_tty(prompt)?;
    if confirm {
        let again = prompt_tty("Repeat it: ")?;
        if *again != *first {
            bail!("the two passphrases differ");
        }
    }
    if first.is_empty() {
        bail!("an empty passphrase is not allowed");
    }
    Ok(first)
}

/// Reads a line from the terminal with echo off (`stty -echo`, so no unsafe terminal code here).
pub(crate) fn prompt_tty(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for the passphrase: set HEARTH_PASSPHRASE or pass --passphrase-file")?;
    let mut out = tty.try_clone()?;
    write!(out, "{prompt}")?;
    out.flush()?;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(tty.try_clone().map(std::process::Stdio::from).ok()?)
            .status()
            .ok()
    };
    stty("-echo");
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(tty.try_clone()?).read_line(&mut line);
    stty("echo");
    writeln!(out)?;
    read?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// Asks a yes/no question on the terminal; false when there is none.
pub fn confirm_tty(question: &str) -> bool {
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return false;
    };
    let Ok(mut out) = tty.try_clone() else {
        return false;
    };
    if write!(out, "{question} [y/N] ").is_err() || out.flush().is_err() {
        return false;
    }
    let mut line = String::new();
    if std::io::BufReader::new(tty).read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes")
}
