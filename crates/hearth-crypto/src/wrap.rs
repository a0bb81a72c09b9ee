//! Passphrase-wrapped device keys and the separate login secret.
//!
//! Two different derivations come from the one passphrase, so the server, which verifies the
//! login secret, never receives anything that unwraps the keys:
//! - the **wrapping** is an age file sealed with age's scrypt recipient (random salt inside the
//!   file), so `age -d` with the passphrase opens it too;
//! - the **login secret** is Argon2id over the passphrase with a salt derived from the domain
//!   `hearth/login/v1`, the server address and the account name ([`derive_login_secret`]).

use std::fmt;

use age::secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::encoding::{Suite, UnsupportedSuite, b64};
use crate::keys::{DeviceKeys, DevicePublic, KeyError, secret_string};
use crate::seal::{OpenError, Path, SealError, open_with_path};

/// Key-derivation costs. The defaults suit interactive login on a small machine; tests use
/// [`KdfParams::insecure_fast_for_tests`] so the suite stays fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// log2 of scrypt's N for wrapping (age's default is 18, about one second).
    pub scrypt_log_n: u8,
    /// Largest scrypt log2(N) accepted when unwrapping, so a hostile server cannot make a client
    /// spin for hours.
    pub scrypt_max_log_n: u8,
    /// Argon2id memory in KiB for the login secret.
    pub argon2_m_kib: u32,
    /// Argon2id passes.
    pub argon2_t: u32,
    /// Argon2id lanes.
    pub argon2_p: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            scrypt_log_n: 18,
            scrypt_max_log_n: 22,
            argon2_m_kib: 64 * 1024,
            argon2_t: 3,
            argon2_p: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests only: they make brute force trivial.
    pub fn insecure_fast_for_tests() -> Self {
        Self {
            scrypt_log_n: 4,
            scrypt_max_log_n: 22,
            argon2_m_kib: 64,
            argon2_t: 1,
            argon2_p: 1,
        }
    }
}

/// The login secret sent to the server in place of the passphrase (32 bytes). Redacted in `Debug`,
/// wiped on drop.
pub struct LoginSecret(Zeroizing<[u8; 32]>);

impl LoginSecret {
    /// The secret as lowercase hex, to put in the login request.
    pub fn expose_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }
}

impl fmt::Debug for LoginSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginSecret(<redacted>)")
    }
}

/// Deriving a login secret failed (only with invalid parameters).
#[derive(Debug, thiserror::Error)]
#[error("invalid Argon2id parameters: {0}")]
pub struct KdfError(String);

/// Derives the login secret from the passphrase, the server's address and the account name with
/// Argon2id. It is deterministic (the same inputs log in from any machine) and independent of the
/// key wrapping, which uses scrypt with its own random salt.
pub fn derive_login_secret(
    passphrase: &str,
    server: &str,
    account: &str,
    params: &KdfParams,
) -> Result<LoginSecret, KdfError> {
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(
            params.argon2_m_kib,
            params.argon2_t,
            params.argon2_p,
            Some(32),
        )
        .map_err(|e| KdfError(e.to_string()))?,
    );
    // Length-prefixed parts, so ("ab","c") and ("a","bc") differ.
    let mut salt = b"hearth/login/v1\n".to_vec();
    for part in [server.as_bytes(), account.as_bytes()] {
        salt.extend_from_slice(&(part.len() as u64).to_be_bytes());
        salt.extend_from_slice(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), &salt, out.as_mut())
        .map_err(|e| KdfError(e.to_string()))?;
    Ok(LoginSecret(out))
}

/// A device's private keys sealed under the user's passphrase: safe to store on the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKeyBundle {
    /// Cryptographic suite (see [`Suite`]).
    pub suite: String,
    /// Format version.
    pub version: u32,
    /// How the wrapping key is derived: `"age-scrypt"`.
    pub kdf: String,
    /// The public half, so the server can show it and the unwrapping side can check it.
    pub public: DevicePublic,
    /// An age v1 file (scrypt recipient) whose plaintext is the private keys.
    #[serde(with = "b64")]
    pub sealed: Vec<u8>,
}

/// Unwrapping failed.
#[derive(Debug, thiserror::Error)]
pub enum UnwrapError {
    /// The bundle names a suite or version this build does not know.
    #[error(transparent)]
    UnsupportedSuite(#[from] UnsupportedSuite),
    /// The bundle names a key derivation this build does not know.
    #[error("unsupported key wrapping {0:?} (expected \"age-scrypt\")")]
    UnsupportedKdf(String),
    /// Wrong passphrase (or an altered bundle).
    #[error("wrong passphrase, or the wrapped key bundle was altered")]
    WrongPassphrase,
    /// The bundle asks for more scrypt work than allowed.
    #[error("the wrapped key bundle asks for excessive work (2^{required} > 2^{limit})")]
    ExcessiveWork {
        /// log2 N asked for.
        required: u8,
        /// log2 N allowed.
        limit: u8,
    },
    /// The sealed part is not a passphrase-sealed age file.
    #[error("the wrapped key bundle is malformed")]
    Malformed(#[source] Option<OpenError>),
    /// The plaintext is not a key.
    #[error("the wrapped key bundle holds no valid key")]
    BadKey(#[source] KeyError),
    /// The unwrapped keys are not the public keys the bundle claims (swapped bundle).
    #[error(
        "the unwrapped keys do not match the bundle's public keys (fingerprint {claimed} claimed, {actual} found)"
    )]
    PublicMismatch {
        /// Fingerprint the bundle claims.
        claimed: crate::Fingerprint,
        /// Fingerprint of what it holds.
        actual: crate::Fingerprint,
    },
}

impl DeviceKeys {
    /// Seals the private keys under `passphrase` (age scrypt recipient) into a bundle for the server.
    pub fn to_wrapped(
        &self,
        passphrase: &str,
        params: &KdfParams,
    ) -> Result<WrappedKeyBundle, SealError> {
        let mut recipient = age::scrypt::Recipient::new(secret_string(passphrase));
        recipient.set_work_factor(params.scrypt_log_n);
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .map_err(SealError::Age)?;
        let plaintext = self.expose_bundle_plaintext();
        let mut sealed = Vec::new();
        let mut w = encryptor
            .wrap_output(&mut sealed)
            .map_err(SealError::Output)?;
        std::io::Write::write_all(&mut w, plaintext.as_bytes()).map_err(SealError::Output)?;
        w.finish().map_err(SealError::Output)?;
        Ok(WrappedKeyBundle {
            suite: Suite::CURRENT.as_str().to_owned(),
            version: Suite::FORMAT_VERSION,
            kdf: "age-scrypt".to_owned(),
            public: self.public(),
            sealed,
        })
    }
}

impl WrappedKeyBundle {
    /// Unwraps the keys with `passphrase` and checks they are the public keys the bundle claims.
    pub fn unwrap_keys(
        &self,
        passphrase: &str,
        params: &KdfParams,
    ) -> Result<DeviceKeys, UnwrapError> {
        Suite::parse(&self.suite, self.version)?;
        if self.kdf != "age-scrypt" {
            return Err(UnwrapError::UnsupportedKdf(self.kdf.clone()));
        }
        let plaintext = open_with_passphrase(
            &self.sealed,
            &secret_string(passphrase),
            params.scrypt_max_log_n,
        )
        .map_err(|e| match e {
            OpenError::NotARecipient | OpenError::StanzaTampered => UnwrapError::WrongPassphrase,
            OpenError::ExcessiveWork { required, limit } => {
                UnwrapError::ExcessiveWork { required, limit }
            }
            OpenError::HeaderTampered | OpenError::PayloadTampered(_) => {
                UnwrapError::WrongPassphrase
            }
            other => UnwrapError::Malformed(Some(other)),
        })?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| UnwrapError::Malformed(None))?;
        let keys = DeviceKeys::from_bundle_plaintext(text).map_err(UnwrapError::BadKey)?;
        if keys.public() != self.public {
            return Err(UnwrapError::PublicMismatch {
                claimed: self.public.fingerprint(),
                actual: keys.fingerprint(),
            });
        }
        Ok(keys)
    }

    /// Re-wraps under a new passphrase (the old one must open it).
    pub fn rewrap(
        &self,
        old_passphrase: &str,
        new_passphrase: &str,
        params: &KdfParams,
    ) -> Result<WrappedKeyBundle, RewrapError> {
        let keys = self.unwrap_keys(old_passphrase, params)?;
        Ok(keys.to_wrapped(new_passphrase, params)?)
    }
}

/// Changing the passphrase failed.
#[derive(Debug, thiserror::Error)]
pub enum RewrapError {
    /// The old passphrase did not open the bundle.
    #[error(transparent)]
    Unwrap(#[from] UnwrapError),
    /// Sealing under the new passphrase failed.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Opens a passphrase-sealed (age scrypt) file, refusing more than 2^`max_log_n` work.
/// Used for wrapped bundles and run against the CCTV scrypt vectors.
pub(crate) fn open_with_passphrase(
    ciphertext: &[u8],
    passphrase: &SecretString,
    max_log_n: u8,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let mut identity = age::scrypt::Identity::new(passphrase.clone());
    identity.set_max_work_factor(max_log_n);
    let mut out = Zeroizing::new(Vec::new());
    open_with_path(
        &[&identity as &dyn age::Identity],
        ciphertext,
        &mut *out,
        Path::AgeCrate,
    )?;
    Ok(out)
}

/// Test hook for the CCTV suite: opens a passphrase-sealed file.
#[doc(hidden)]
pub fn __open_with_passphrase_for_vectors(
    ciphertext: &[u8],
    passphrase: &str,
) -> Result<Vec<u8>, OpenError> {
    open_with_passphrase(ciphertext, &secret_string(passphrase), 22).map(|z| z.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_change_passphrase() {
        let p = KdfParams::insecure_fast_for_tests();
        let k = DeviceKeys::generate();
        let b = k.to_wrapped("correct horse", &p).unwrap();
        let json = serde_json::to_string(&b).unwrap();
        assert!(!json.contains(k.expose_age_identity().as_str()));
        let b: WrappedKeyBundle = serde_json::from_str(&json).unwrap();
        assert_eq!(
            b.unwrap_keys("correct horse", &p).unwrap().public(),
            k.public()
        );
        assert!(matches!(
            b.unwrap_keys("wrong", &p),
            Err(UnwrapError::WrongPassphrase)
        ));
        let b2 = b.rewrap("correct horse", "battery staple", &p).unwrap();
        assert!(b2.unwrap_keys("correct horse", &p).is_err());
        assert_eq!(
            b2.unwrap_keys("battery staple", &p).unwrap().public(),
            k.public()
        );
    }

    #[test]
    fn swapped_public_half_is_detected() {
        let p = KdfParams::insecure_fast_for_tests();
        let mut b = DeviceKeys::generate().to_wrapped("pw", &p).unwrap();
        b.public = DeviceKeys::generate().public();
        assert!(matches!(
            b.unwrap_keys("pw", &p),
            Err(UnwrapError::PublicMismatch { .. })
        ));
    }

    #[test]
    fn excessive_work_is_refused() {
        let p = KdfParams::insecure_fast_for_tests();
        let b = DeviceKeys::generate()
            .to_wrapped(
                "pw",
                &KdfParams {
                    scrypt_log_n: 12,
                    ..p
                },
            )
            .unwrap();
        let strict = KdfParams {
            scrypt_max_log_n: 10,
            ..p
        };
        assert!(matches!(
            b.unwrap_keys("pw", &strict),
            Err(UnwrapError::ExcessiveWork { .. })
        ));
    }

    #[test]
    fn login_secret_is_deterministic_and_separated() {
        let p = KdfParams::insecure_fast_for_tests();
        let a = derive_login_secret("pw", "https://h.example", "ada", &p).unwrap();
        let b = derive_login_secret("pw", "https://h.example", "ada", &p).unwrap();
        let c = derive_login_secret("pw", "https://h.example", "bob", &p).unwrap();
        assert_eq!(*a.expose_hex(), *b.expose_hex());
        assert_ne!(*a.expose_hex(), *c.expose_hex());
        assert_eq!(format!("{a:?}"), "LoginSecret(<redacted>)");
    }
}
