//! Device and agent keys: an Ed25519 signing key plus an age X25519 identity.
//!
//! [`DeviceKeys`] is the private half. It has no `Serialize`, prints redacted, and its secret parts
//! are wiped on drop (both `ed25519_dalek::SigningKey` and age's X25519 identity zeroize
//! themselves). The only ways to get secret material out are [`DeviceKeys::to_wrapped`] (sealed
//! under a passphrase) and the `expose_*` methods, whose names make the risk visible.
//! [`DevicePublic`] is the public half, safe to serialise and send to the server.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use age::secrecy::{ExposeSecret as _, SecretString};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha512};
use zeroize::Zeroizing;

use crate::encoding::SignatureBytes;

/// An Ed25519 public key (a device's or agent's signing key), written as 64 hex digits.
///
/// It is also how links, manifests and the trusted state name a device or agent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SigningPublic([u8; 32]);

impl SigningPublic {
    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Parses 32 raw bytes, refusing invalid and small-order ("weak") keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::BadSigningKey)?;
        if key.is_weak() {
            return Err(KeyError::BadSigningKey);
        }
        Ok(Self(key.to_bytes()))
    }

    /// Verifies `signature` over `message` with strict Ed25519 rules (no malleable or
    /// small-order signatures).
    pub(crate) fn verify_strict(&self, message: &[u8], signature: &SignatureBytes) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        // The bytes were validated on construction, so this cannot fail in practice.
        VerifyingKey::from_bytes(&self.0).is_ok_and(|key| key.verify_strict(message, &sig).is_ok())
    }
}

impl PartialOrd for SigningPublic {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SigningPublic {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl std::hash::Hash for SigningPublic {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for SigningPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SigningPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningPublic({self})")
    }
}

impl FromStr for SigningPublic {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| KeyError::BadSigningKey)?;
        if s.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(KeyError::BadSigningKey);
        }
        Self::from_bytes(&bytes)
    }
}

impl Serialize for SigningPublic {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for SigningPublic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An age X25519 recipient (`age1...`), the public key files are sealed to.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient(age::x25519::Recipient);

impl Recipient {
    pub(crate) fn from_age(r: age::x25519::Recipient) -> Self {
        Self(r)
    }

    pub(crate) fn as_age(&self) -> &age::x25519::Recipient {
        &self.0
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.0)
    }
}

impl FromStr for Recipient {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let r: age::x25519::Recipient = s.parse().map_err(|_| KeyError::BadRecipient)?;
        // age accepts only the lowercase Bech32 spelling; keep exactly one spelling per key.
        if r.to_string() != s {
            return Err(KeyError::BadRecipient);
        }
        Ok(Self(r))
    }
}

impl Serialize for Recipient {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 64 lowercase hex digits of a valid, non-weak Ed25519 public key.
    #[error("not a valid Ed25519 public key (expected 64 lowercase hex digits of a non-weak key)")]
    BadSigningKey,
    /// Not an `age1...` X25519 recipient.
    #[error("not a valid age X25519 recipient (expected lowercase age1...)")]
    BadRecipient,
    /// Not an `AGE-SECRET-KEY-1...` identity.
    #[error("not a valid age X25519 identity")]
    BadIdentity,
    /// Private key bytes have the wrong shape.
    #[error("malformed private key material")]
    BadPrivateKey,
}

/// The public half of a device's (or agent's) keys: safe to store on the server and show to people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePublic {
    /// Verifies what this device signs (manifests, jobs, membership links).
    pub signing: SigningPublic,
    /// What this device can open (epoch keys sealed to it, jobs sealed to an agent).
    pub recipient: Recipient,
}

impl DevicePublic {
    /// The human fingerprint two people compare before trusting this key.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self)
    }
}

/// The private keys of one member device or edge agent.
///
/// Not `Serialize`, not `Clone`; `Debug` prints only the public fingerprint; wiped on drop.
pub struct DeviceKeys {
    signing: SigningKey,
    age: age::x25519::Identity,
}

/// An edge agent holds the same kind of keys as a member device; the organisation chain says which
/// role a key has.
pub type AgentKeys = DeviceKeys;

impl DeviceKeys {
    /// Generates fresh keys from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, seed.as_mut());
        Self {
            signing: SigningKey::from_bytes(&seed),
            age: age::x25519::Identity::generate(),
        }
    }

    /// The public half.
    pub fn public(&self) -> DevicePublic {
        DevicePublic {
            signing: SigningPublic(self.signing.verifying_key().to_bytes()),
            recipient: Recipient(self.age.to_public()),
        }
    }

    /// The human fingerprint of the public half.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public().fingerprint()
    }

    /// Signs `message` (callers pass canonical signing bytes).
    pub(crate) fn sign(&self, message: &[u8]) -> SignatureBytes {
        SignatureBytes(self.signing.sign(message).to_bytes())
    }

    pub(crate) fn age_identity(&self) -> &age::x25519::Identity {
        &self.age
    }

    /// The age identity as an `AGE-SECRET-KEY-1...` string. Anyone holding it can open what is
    /// sealed to this device: write it only where the user asked (`hearth keys export`).
    pub fn expose_age_identity(&self) -> Zeroizing<String> {
        Zeroizing::new(self.age.to_string().expose_secret().to_owned())
    }

    /// The 32-byte Ed25519 seed. Anyone holding it can sign as this device.
    pub fn expose_signing_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// Rebuilds keys from an Ed25519 seed and an `AGE-SECRET-KEY-1...` identity string
    /// (the inverse of the two `expose_*` methods).
    pub fn from_secret_parts(
        signing_seed: &[u8; 32],
        age_identity: &str,
    ) -> Result<Self, KeyError> {
        let age =
            age::x25519::Identity::from_str(age_identity).map_err(|_| KeyError::BadIdentity)?;
        Ok(Self {
            signing: SigningKey::from_bytes(signing_seed),
            age,
        })
    }

    /// The private keys as a small text file (`hearth-device-key-v1`, the Ed25519 seed in hex, the
    /// age identity), for a device or agent that stores its own keys locally (mode 0600). This is
    /// the plaintext that [`DeviceKeys::to_wrapped`] seals; read it back with
    /// [`DeviceKeys::from_key_file`].
    pub fn expose_key_file(&self) -> Zeroizing<String> {
        self.expose_bundle_plaintext()
    }

    /// Reads keys written by [`DeviceKeys::expose_key_file`].
    pub fn from_key_file(text: &str) -> Result<Self, KeyError> {
        Self::from_bundle_plaintext(text)
    }

    /// The private parts in the wrapped-bundle plaintext format: two lines, the Ed25519 seed as
    /// hex and the age identity.
    pub(crate) fn expose_bundle_plaintext(&self) -> Zeroizing<String> {
        let seed = self.expose_signing_seed();
        let hex_seed = Zeroizing::new(hex::encode(&seed[..]));
        let id = self.expose_age_identity();
        Zeroizing::new(format!(
            "hearth-device-key-v1\n{}\n{}\n",
            hex_seed.as_str(),
            id.as_str()
        ))
    }

    pub(crate) fn from_bundle_plaintext(text: &str) -> Result<Self, KeyError> {
        let mut lines = text.lines();
        if lines.next() != Some("hearth-device-key-v1") {
            return Err(KeyError::BadPrivateKey);
        }
        let seed_hex = lines.next().ok_or(KeyError::BadPrivateKey)?;
        let id = lines.next().ok_or(KeyError::BadPrivateKey)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(seed_hex, seed.as_mut()).map_err(|_| KeyError::BadPrivateKey)?;
        Self::from_secret_parts(&seed, id)
    }
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("fingerprint", &self.fingerprint().to_string())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A human fingerprint of a public key: 60 decimal digits shown as 12 groups of 5, easy to read
/// aloud or to compare by QR code (see [`Fingerprint::to_qr_payload`]).
///
/// It is derived from SHA-512 over a domain line, the Ed25519 key and the age recipient: each group
/// is one 5-byte slice of the hash, taken as a big-endian integer modulo 100000 (the same
/// construction as Signal's safety numbers). 12 groups carry about 199 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u32; 12]);

const FINGERPRINT_DOMAIN: &[u8] = b"hearth/fingerprint/v1\n";

impl Fingerprint {
    fn of(public: &DevicePublic) -> Self {
        Self::derive(
            FINGERPRINT_DOMAIN,
            &[
                &public.signing.to_bytes(),
                public.recipient.to_string().as_bytes(),
            ],
        )
    }

    pub(crate) fn derive(domain: &[u8], parts: &[&[u8]]) -> Self {
        let mut h = Sha512::new();
        h.update(domain);
        for p in parts {
            h.update(p);
        }
        let digest = h.finalize();
        let mut groups = [0u32; 12];
        for (i, g) in groups.iter_mut().enumerate() {
            let mut v: u64 = 0;
            for b in &digest[i * 5..i * 5 + 5] {
                v = (v << 8) | u64::from(*b);
            }
            // The remainder is below 100000, so it fits a u32.
            *g = u32::try_from(v % 100_000).unwrap_or(0);
        }
        Self(groups)
    }

    /// The groups, each below 100000.
    pub fn groups(&self) -> [u32; 12] {
        self.0
    }

    /// What a QR code carries: `hearth-fp:v1:` followed by the 60 digits without spaces.
    pub fn to_qr_payload(&self) -> String {
        let mut s = String::from("hearth-fp:v1:");
        for g in self.0 {
            s.push_str(&format!("{g:05}"));
        }
        s
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{g:05}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Text is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a fingerprint (expected 60 digits, optionally in groups, or a hearth-fp:v1: QR payload)"
)]
pub struct BadFingerprint;

impl FromStr for Fingerprint {
    type Err = BadFingerprint;
    /// Accepts the displayed form, digits with any spaces or dashes, or the QR payload, so what a
    /// person types or scans can be compared with [`PartialEq`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_prefix("hearth-fp:v1:").unwrap_or(s);
        let digits: Vec<u32> = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\t'))
            .map(|c| c.to_digit(10).ok_or(BadFingerprint))
            .collect::<Result<_, _>>()?;
        if digits.len() != 60 {
            return Err(BadFingerprint);
        }
        let mut groups = [0u32; 12];
        for (i, g) in groups.iter_mut().enumerate() {
            *g = digits[i * 5..i * 5 + 5]
                .iter()
                .fold(0, |acc, d| acc * 10 + d);
        }
        Ok(Self(groups))
    }
}

/// Builds an age identity file (what `age -d -i FILE` reads) holding the device's own identity and
/// the organisation epoch keys it holds, each under a comment line, so the user can open their own
/// files with the stock `age` tool. This is secret material: write it only where the user asked.
pub fn export_identity_file(device: &DeviceKeys, epochs: &[&crate::EpochKey]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    out.push_str(&format!(
        "# hearth device key, fingerprint {}\n# public key: {}\n",
        device.fingerprint(),
        device.public().recipient
    ));
    out.push_str(device.expose_age_identity().as_str());
    out.push('\n');
    for e in epochs {
        out.push_str(&format!(
            "# hearth organisation epoch {}\n# public key: {}\n",
            e.epoch(),
            e.public().recipient
        ));
        out.push_str(e.expose_age_identity().as_str());
        out.push('\n');
    }
    out
}

pub(crate) fn secret_string(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_12_groups_of_5_digits_and_round_trips() {
        let k = DeviceKeys::generate();
        let fp = k.fingerprint();
        let shown = fp.to_string();
        assert_eq!(shown.len(), 12 * 5 + 11);
        assert!(
            shown
                .split(' ')
                .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit()))
        );
        assert_eq!(shown.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(fp.to_qr_payload().parse::<Fingerprint>().unwrap(), fp);
        assert_ne!(DeviceKeys::generate().fingerprint(), fp);
        assert!("123".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn fingerprint_changes_when_either_key_changes() {
        let a = DeviceKeys::generate().public();
        let b = DeviceKeys::generate().public();
        let mixed = DevicePublic {
            signing: a.signing,
            recipient: b.recipient.clone(),
        };
        assert_ne!(mixed.fingerprint(), a.fingerprint());
        assert_ne!(mixed.fingerprint(), b.fingerprint());
    }

    #[test]
    fn debug_is_redacted() {
        let k = DeviceKeys::generate();
        let dbg = format!("{k:?}");
        assert!(dbg.contains("redacted"));
        assert!(!dbg.contains(k.expose_age_identity().as_str()));
        assert!(!dbg.contains(&hex::encode(&k.expose_signing_seed()[..])));
    }

    #[test]
    fn public_serde_round_trip_and_strict_parsing() {
        let p = DeviceKeys::generate().public();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<DevicePublic>(&json).unwrap(), p);
        let upper = json.replace(
            &p.signing.to_string(),
            &p.signing.to_string().to_uppercase(),
        );
        assert!(serde_json::from_str::<DevicePublic>(&upper).is_err());
        assert!("age1zzz".parse::<Recipient>().is_err());
        // The all-zero point is a weak key.
        assert!(SigningPublic::from_bytes(&[0u8; 32]).is_err());
    }

    #[test]
    fn secret_parts_round_trip() {
        let k = DeviceKeys::generate();
        let back = DeviceKeys::from_key_file(&k.expose_key_file()).unwrap();
        assert_eq!(back.public(), k.public());
        assert!(DeviceKeys::from_bundle_plaintext("nope").is_err());
    }
}
