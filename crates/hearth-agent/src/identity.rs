//! Who the agent is to the server: `AgentIdentity` signs the connection challenge.
//!
//! `KeyFileIdentity` holds the agent's `hearth_crypto::AgentKeys` (Ed25519 signing key + age identity,
//! generated on the agent, never sent anywhere) in `<state_dir>/agent.key` (`hearth-device-key-v1`
//! text, mode 0600) and the id the server gave at enrollment in `<state_dir>/agent.json`. The same keys
//! open jobs (`crypto::CryptoOpener`, via `KeyFileIdentity::keys`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use hearth_crypto::{AgentKeys, DevicePublic};
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

/// The agent's keys from a 0600 file. `Debug` shows only the fingerprint.
pub struct KeyFileIdentity {
    agent_id: AgentId,
    keys: Arc<AgentKeys>,
}

impl std::fmt::Debug for KeyFileIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFileIdentity")
            .field("agent_id", &self.agent_id)
            .field("fingerprint", &self.keys.fingerprint().to_string())
            .finish_non_exhaustive()
    }
}

/// The signing public key as `EnrollRequest::signing_key` and the server expect it (base64).
pub fn signing_key_base64(public: &DevicePublic) -> String {
    base64::engine::general_purpose::STANDARD.encode(public.signing.to_bytes())
}

impl KeyFileIdentity {
    /// Fresh keys for an agent id (tests; enrollment creates the keys before it knows the id).
    pub fn generate(agent_id: AgentId) -> Self {
        Self {
            agent_id,
            keys: Arc::new(AgentKeys::generate()),
        }
    }

    /// The keys, for the job opener.
    pub fn keys(&self) -> Arc<AgentKeys> {
        self.keys.clone()
    }

    pub fn public_key_base64(&self) -> String {
        signing_key_base64(&self.keys.public())
    }

    /// Writes the keys (0600, created new or replaced) and the id file into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join(KEY_FILE);
        crate::spool::write_private(&key_path, self.keys.expose_key_file().as_bytes())
            .map_err(io(&key_path))?;
        Self::save_id(dir, self.agent_id)
    }

    /// The keys of `dir`, created (0600) if there are none yet: enrollment makes the keys before the
    /// server assigns the id. Returns their public half.
    pub fn ensure_key(dir: &Path) -> Result<DevicePublic, IdentityError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join(KEY_FILE);
        let keys = match read_keys(&key_path) {
            Ok(keys) => keys,
            Err(IdentityError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let keys = AgentKeys::generate();
                crate::spool::write_private(&key_path, keys.expose_key_file().as_bytes())
                    .map_err(io(&key_path))?;
                keys
            }
            Err(e) => return Err(e),
        };
        Ok(keys.public())
    }

    /// Records the id the server gave at enrollment next to the keys.
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

    /// Reads what `save` (or `ensure_key` + `save_id`) wrote.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let keys = read_keys(&dir.join(KEY_FILE))?;
        let id_path = dir.join(ID_FILE);
        let text = std::fs::read(&id_path).map_err(io(&id_path))?;
        let id: IdFile = serde_json::from_slice(&text).map_err(|e| IdentityError::Invalid {
            path: id_path.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            agent_id: id.agent_id,
            keys: Arc::new(keys),
        })
    }
}

impl AgentIdentity for KeyFileIdentity {
    fn agent_id(&self) -> AgentId {
        self.agent_id
    }
    fn sign_challenge(&self, message: &[u8]) -> Vec<u8> {
        let seed = self.keys.expose_signing_seed();
        SigningKey::from_bytes(&seed)
            .sign(message)
            .to_bytes()
            .to_vec()
    }
}

fn read_keys(path: &Path) -> Result<AgentKeys, IdentityError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?);
    AgentKeys::from_key_file(&text).map_err(|e| IdentityError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })
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
        assert_eq!(loaded.keys.public(), id.keys.public());
        let msg = hearth_proto::agent::auth_message("bm9uY2U=");
        let sig = Signature::from_slice(&loaded.sign_challenge(&msg)).unwrap();
        let pk = base64::engine::general_purpose::STANDARD
            .decode(id.public_key_base64())
            .unwrap();
        let vk = VerifyingKey::from_bytes(&pk.try_into().unwrap()).unwrap();
        vk.verify(&msg, &sig).unwrap();
        let seed = hex::encode(&loaded.keys.expose_signing_seed()[..]);
        assert!(!format!("{loaded:?}").contains(&seed));
    }

    #[test]
    fn enrollment_creates_the_keys_once_then_records_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let public = KeyFileIdentity::ensure_key(dir.path()).unwrap();
        assert_eq!(
            KeyFileIdentity::ensure_key(dir.path()).unwrap(),
            public,
            "kept"
        );
        assert!(KeyFileIdentity::load(dir.path()).is_err(), "no id yet");
        let id = AgentId::new();
        KeyFileIdentity::save_id(dir.path(), id).unwrap();
        let loaded = KeyFileIdentity::load(dir.path()).unwrap();
        assert_eq!(
            (loaded.agent_id(), loaded.public_key_base64()),
            (id, signing_key_base64(&public))
        );
        assert!(public.recipient.to_string().starts_with("age1"));
    }
}
