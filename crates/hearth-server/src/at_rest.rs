//! Secrets the server has to read back — the shared secrets of members' authenticator apps — are
//! kept in the database sealed with a 256-bit key that lives in a file beside it
//! (`auth.secret_key_file`, by default `DATA_DIR/secret.key`, created on first start, mode 0600).
//! A copy of the database alone (a `pg_dump`, a stolen disk image of the database server, a
//! replica) then holds no usable second factor; the key file is backed up with `hearthd backup`
//! and must be the same file for every instance of a cluster.
//!
//! The file's key is never used directly: HKDF-SHA256 (RFC 5869, `ring`) derives one key per use.
//! Sealing is ChaCha20-Poly1305 (RFC 8439) from `ring`, used as RFC 5116 describes an AEAD: a
//! fresh random 96-bit nonce per value, sent along with the ciphertext, and the value's owner (the
//! user id) as associated data, so a sealed secret copied into another account's row does not
//! open. (Not age, which seals designs: the server never links age code, see ARCHITECTURE.md.) A
//! sealed value is `v1:` followed by the standard base64 of nonce, ciphertext and tag. A value
//! without the prefix was stored before sealing existed: [`AtRest::open`] takes it as it is, and
//! [`seal_stored_totp_secrets`] seals such values at start.
//!
//! Recovery codes are kept as HMAC-SHA256 under the second derived key, of the user id and the
//! code ([`AtRest::recovery_hash`], `h1:` + hex): 50-bit codes hashed without a key could be
//! found by trying them all against a copied database.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hearth_proto::ids::UserId;
use hearth_store::Store;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};

const PREFIX: &str = "v1:";
const KEY_LINE: &str = "hearth-secret-key-v1:";

/// HKDF `info` of the key that seals secrets.
const SEAL_INFO: &[u8] = b"hearth at-rest seal v1";
/// HKDF `info` of the key that hashes recovery codes.
const RECOVERY_INFO: &[u8] = b"hearth recovery codes v1";

/// The keys that keep secrets at rest.
pub struct AtRest {
    key: LessSafeKey,
    recovery: hmac::Key,
    rng: SystemRandom,
    path: PathBuf,
}

impl std::fmt::Debug for AtRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtRest")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why a key file or a sealed value could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} does not hold a Hearth secret key (a line hearth-secret-key-v1:...): restore the key \
         file of this database, or the stored second factors cannot be checked"
    )]
    BadKeyFile(PathBuf),
    #[error(
        "a stored secret does not open with the key in {0}: is it the key file this database was \
         written with? (every instance of a cluster needs the same one)"
    )]
    WrongKey(PathBuf),
}

impl AtRest {
    /// The key in `path`, created there (mode 0600) when there is none. Two instances starting
    /// at once end up with the same key: the file is written aside, then linked into place only
    /// if no file is there yet.
    pub fn load_or_create(path: &Path) -> Result<Self, AtRestError> {
        let io = |source| AtRestError::Io {
            path: path.to_owned(),
            source,
        };
        if !path.exists() {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(io)?;
            let mut aside = tempfile_in(dir).map_err(io)?;
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| io(std::io::Error::other("no system randomness")))?;
            writeln!(
                aside.1,
                "# Hearth: the key sealing second-factor secrets in the database. Keep it with\n\
                 # the backups, apart from database copies; every instance needs the same one.\n\
                 {KEY_LINE}{}",
                STANDARD.encode(key)
            )
            .and_then(|()| aside.1.sync_all())
            .map_err(io)?;
            match std::fs::hard_link(&aside.0, path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    let _ = std::fs::remove_file(&aside.0);
                    return Err(io(e));
                }
            }
            let _ = std::fs::remove_file(&aside.0);
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let bad = || AtRestError::BadKeyFile(path.to_owned());
        let file_key = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(KEY_LINE))
            .and_then(|k| STANDARD.decode(k).ok())
            .filter(|k| k.len() == 32)
            .ok_or_else(bad)?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(&file_key);
        let seal: UnboundKey = prk
            .expand(&[SEAL_INFO], &CHACHA20_POLY1305)
            .map(UnboundKey::from)
            .map_err(|_| bad())?;
        let recovery: hmac::Key = prk
            .expand(&[RECOVERY_INFO], hmac::HMAC_SHA256)
            .map(hmac::Key::from)
            .map_err(|_| bad())?;
        Ok(Self {
            key: LessSafeKey::new(seal),
            recovery,
            rng: SystemRandom::new(),
            path: path.to_owned(),
        })
    }

    /// What the server keeps of `user`'s recovery code `code` (as normalised by the caller).
    pub fn recovery_hash(&self, user: UserId, code: &str) -> String {
        let tag = hmac::sign(&self.recovery, format!("{user}:{code}").as_bytes());
        format!("h1:{}", hex::encode(tag.as_ref()))
    }

    /// `user`'s `secret` sealed for the database.
    pub fn seal(&self, user: UserId, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system's randomness, which the key was made with");
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(user.to_string()),
                &mut sealed,
            )
            .expect("a short secret is within ChaCha20-Poly1305's limits");
        format!(
            "{PREFIX}{}",
            STANDARD.encode([&nonce[..], &sealed].concat())
        )
    }

    /// The secret a stored value of `user` holds (one stored before sealing existed, as it is).
    pub fn open(&self, user: UserId, stored: &str) -> Result<String, AtRestError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let wrong = || AtRestError::WrongKey(self.path.clone());
        let mut sealed = STANDARD.decode(b64).map_err(|_| wrong())?;
        if sealed.len() < NONCE_LEN {
            return Err(wrong());
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(user.to_string()),
                &mut sealed[NONCE_LEN..],
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }

    /// Whether `stored` is sealed (not a value from before sealing).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

/// A new file in `dir` only this process uses, mode 0600.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let path = dir.join(format!(
        ".secret.key.{}.{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    Ok((path.clone(), opts.open(&path)?))
}

/// Seals the authenticator secrets stored in clear by a server from before sealing; how many.
/// Each is replaced only if it is still the same value, so a member setting up a new one
/// meanwhile is not undone.
pub async fn seal_stored_totp_secrets(
    store: &Store,
    at_rest: &AtRest,
) -> hearth_store::Result<StoredSecrets> {
    let mut found = StoredSecrets::default();
    for (user, stored) in store.totp_secrets().await? {
        if AtRest::is_sealed(&stored) {
            if at_rest.open(user, &stored).is_err() {
                found.unopenable += 1;
            }
            continue;
        }
        if store
            .replace_totp_secret(user, &stored, &at_rest.seal(user, &stored))
            .await?
        {
            found.sealed_now += 1;
        }
    }
    Ok(found)
}

/// What [`seal_stored_totp_secrets`] found at start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoredSecrets {
    /// Stored in clear by an older server, sealed now.
    pub sealed_now: usize,
    /// Sealed, and the key file does not open them: it is not the file they were sealed with.
    pub unopenable: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/secret.key");
        let key = AtRest::load_or_create(&path).unwrap();
        let ada = UserId::new();
        let sealed = key.seal(ada, "JBSWY3DPEHPK3PXP");
        assert!(sealed.starts_with("v1:") && !sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            sealed,
            key.seal(ada, "JBSWY3DPEHPK3PXP"),
            "sealed afresh each time"
        );
        assert_eq!(key.open(ada, &sealed).unwrap(), "JBSWY3DPEHPK3PXP");
        // The same file again: the same key.
        let again = AtRest::load_or_create(&path).unwrap();
        assert_eq!(again.open(ada, &sealed).unwrap(), "JBSWY3DPEHPK3PXP");
        // Copied into another account's row, it does not open.
        let e = key.open(UserId::new(), &sealed).unwrap_err();
        assert!(matches!(e, AtRestError::WrongKey(_)), "{e}");
        // Nor when altered.
        let mut bytes = STANDARD.decode(&sealed[3..]).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        let altered = format!("v1:{}", STANDARD.encode(bytes));
        assert!(key.open(ada, &altered).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Another key says so instead of failing every login as a wrong code.
        let other = AtRest::load_or_create(&dir.path().join("other.key")).unwrap();
        let e = other.open(ada, &sealed).unwrap_err();
        assert!(matches!(e, AtRestError::WrongKey(_)), "{e}");
        assert!(e.to_string().contains("other.key"), "{e}");
        // A value from before sealing is taken as it is.
        assert_eq!(
            key.open(ada, "JBSWY3DPEHPK3PXP").unwrap(),
            "JBSWY3DPEHPK3PXP"
        );
        // No temporary files are left beside the key.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret.key"]);
    }

    #[test]
    fn a_recovery_code_is_kept_as_a_keyed_hash_for_its_account() {
        let dir = tempfile::tempdir().unwrap();
        let key = AtRest::load_or_create(&dir.path().join("a.key")).unwrap();
        let other = AtRest::load_or_create(&dir.path().join("b.key")).unwrap();
        let (ada, bob) = (UserId::new(), UserId::new());
        let h = key.recovery_hash(ada, "abcde23456");
        assert!(h.starts_with("h1:") && h.len() == 3 + 64, "{h}");
        assert_eq!(h, key.recovery_hash(ada, "abcde23456"));
        assert_ne!(h, key.recovery_hash(bob, "abcde23456"), "per account");
        assert_ne!(h, other.recovery_hash(ada, "abcde23456"), "per key file");
        assert_ne!(h, key.recovery_hash(ada, "abcde23457"));
    }

    #[test]
    fn hkdf_and_hmac_are_those_of_the_rfcs() {
        // RFC 5869 A.1 (HKDF-SHA256, basic test case): OKM for the given IKM, salt and info.
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        hkdf::Salt::new(hkdf::HKDF_SHA256, &salt)
            .extract(&ikm)
            .expand(&[&info], Len(42))
            .unwrap()
            .fill(&mut okm)
            .unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        // RFC 4231 test case 2 (HMAC-SHA256).
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"),
            b"what do ya want for nothing?",
        );
        assert_eq!(
            hex::encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_key_file_that_holds_no_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        std::fs::write(&path, "# nothing here\n").unwrap();
        let e = AtRest::load_or_create(&path).unwrap_err();
        assert!(matches!(e, AtRestError::BadKeyFile(_)), "{e}");
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let key = AtRest::load_or_create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let secret = text.lines().find_map(|l| l.strip_prefix(KEY_LINE)).unwrap();
        assert!(!format!("{key:?}").contains(secret));
    }
}
