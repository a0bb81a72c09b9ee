//! Who the agent is to the server: `AgentIdentity` signs the connection challenge.
//!
//! The production identity will come from `hearth-crypto` (the agent's Ed25519 + age key pair); until then
//! `KeyFileIdentity` holds an Ed25519 signing key in `<state_dir>/agent.key` (32-byte seed, mode 0600) and
//! the id the server gave at enrollment in `<state_dir>/agent.json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use hearth_proto::ids::AgentId;
use serde::{Deserialize, Serialize};

/// The agent's identity as the connection handshake needs it.
pub trait AgentIdentity: Send + Sync + std::fmt::Debug {
    /// The id the server assigned at enrollment.
    fn agent_id(&self) -> AgentId;
    /// An Ed25519 signature (64 bytes) over `message`, which is always
    /// `hearth_proto::agent::auth_message(nonce)` (domain-separated by its `AUTH_CONTEXT` prefix).
    fn sign_challenge(&self, message: &[u8]) -> Vec<u8>;
}

/// Why the identity could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid key or id file: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// File names in the state directory.
pub const KEY_FILE: &str = "agent.key";
pub const ID_FILE: &str = "agent.json";

#[derive(Serialize, Deserialize)]
struct IdFile {
    agent_id: AgentId,
}

/// An Ed25519 key kept in a 0600 file. `Debug` shows only the public key.
pub struct KeyFileIdentity {
    agent_id: AgentId,
    key: SigningKey,
}

impl std::fmt::Debug for KeyFileIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFileIdentity")
            .field("agent_id", &self.agent_id)
            .field("public_key", &self.public_key_base64())
            .finish_non_exhaustive()
    }
}

impl KeyFileIdentity {
    /// A fresh key for an agent id (tests; enrollment generates the key before it knows the id).
    pub fn generate(agent_id: AgentId) -> Self {
        Self {
            agent_id,
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The public key, base64, as `EnrollRequest::signing_key` and the server expect it.
    pub fn public_key_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// Writes the key (0600, created new or replaced) and the id file into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join(KEY_FILE);
        crate::spool::write_private(&key_path, self.key.as_bytes()).map_err(io(&key_path))?;
        Self::save_id(dir, self.agent_id)
    }

    /// The signing key of `dir`, created (0600) if there is none yet: enrollment makes the key before the
    /// server assigns the id. Returns the base64 public key.
    pub fn ensure_key(dir: &Path) -> Result<String, IdentityError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join(KEY_FILE);
        let key = match read_seed(&key_path) {
            Ok(seed) => SigningKey::from_bytes(&seed),
            Err(IdentityError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                crate::spool::write_private(&key_path, key.as_bytes()).map_err(io(&key_path))?;
                key
            }
            Err(e) => return Err(e),
        };
        Ok(base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()))
    }

    /// Records the id the server gave at enrollment next to the key.
    pub fn save_id(dir: &Path, agent_id: AgentId) -> Result<(), IdentityError> {
        let id_path = dir.join(ID_FILE);
        let json = serde_json::to_vec_pretty(&IdFile { agent_id }).map_err(|e| {
            IdentityError::Invalid {
                path: id_path.clone(),
                message: e.to_string(),
            }
        })?;
        let mut f = std::fs::File::create(&id_path).map_err(io(&id_path))?;
        f.write_all(&json).map_err(io(&id_path))?;
        f.sync_all().map_err(io(&id_path))
    }

    /// Reads what `save` wrote.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let seed = read_seed(&dir.join(KEY_FILE))?;
        let id_path = dir.join(ID_FILE);
        let text = std::fs::read(&id_path).map_err(io(&id_path))?;
        let id: IdFile = serde_json::from_slice(&text).map_err(|e| IdentityError::Invalid {
            path: id_path.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            agent_id: id.agent_id,
            key: SigningKey::from_bytes(&seed),
        })
    }
}

impl AgentIdentity for KeyFileIdentity {
    fn agent_id(&self) -> AgentId {
        self.agent_id
    }
    fn sign_challenge(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).to_bytes().to_vec()
    }
}

fn read_seed(path: &Path) -> Result<[u8; 32], IdentityError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| IdentityError::Invalid {
            path: path.to_owned(),
            message: format!("expected 32 bytes, found {}", bytes.len()),
        })
}

/// A fingerprint of a base64 public key for people to compare: SHA-256, hex, in groups of four.
pub fn fingerprint(public_key_b64: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(public_key_b64.as_bytes());
    hex::encode(digest)
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saved_keys_are_private_and_sign_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let id = KeyFileIdentity::generate(AgentId::new());
        id.save(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = KeyFileIdentity::load(dir.path()).unwrap();
        assert_eq!(loaded.agent_id(), id.agent_id());
        let msg = hearth_proto::agent::auth_message("bm9uY2U=");
        let sig = Signature::from_slice(&loaded.sign_challenge(&msg)).unwrap();
        let pk = base64::engine::general_purpose::STANDARD
            .decode(id.public_key_base64())
            .unwrap();
        let vk = VerifyingKey::from_bytes(&pk.try_into().unwrap()).unwrap();
        vk.verify(&msg, &sig).unwrap();
        assert!(!format!("{loaded:?}").contains(&hex::encode(loaded.key.as_bytes())));
    }

    #[test]
    fn enrollment_creates_the_key_once_then_records_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let pk = KeyFileIdentity::ensure_key(dir.path()).unwrap();
        assert_eq!(KeyFileIdentity::ensure_key(dir.path()).unwrap(), pk, "kept");
        assert!(KeyFileIdentity::load(dir.path()).is_err(), "no id yet");
        let id = AgentId::new();
        KeyFileIdentity::save_id(dir.path(), id).unwrap();
        let loaded = KeyFileIdentity::load(dir.path()).unwrap();
        assert_eq!(
            (loaded.agent_id(), loaded.public_key_base64()),
            (id, pk.clone())
        );
        assert_eq!(fingerprint(&pk).len(), 64 + 15);
    }
}
