//! The canonical byte encoding that every signature covers, and small value types shared by the
//! signed structures (digests, signatures, suites).
//!
//! A signed structure is signed over `domain || json`, where `domain` is a fixed ASCII line naming the
//! kind of structure and its encoding version (for example `hearth/job-manifest/v1\n`) and `json` is
//! the compact JSON that `serde_json` produces for the Rust struct: fields in declaration order, no
//! whitespace, no maps (only structs, enums, strings, integers, booleans, arrays), so the encoding is
//! deterministic. Verification re-encodes the *decoded* struct, so a signature covers exactly what
//! the verifier understood; unknown fields are rejected when decoding (`deny_unknown_fields`), so
//! nothing unsigned can ride along. The domain line makes a signature over one kind useless as a
//! signature over another kind.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Domain line for [`crate::Genesis`].
pub(crate) const DOMAIN_GENESIS: &str = "hearth/genesis/v1\n";
/// Domain line for [`crate::Link`].
pub(crate) const DOMAIN_LINK: &str = "hearth/org-link/v1\n";
/// Domain line for [`crate::FileManifest`].
pub(crate) const DOMAIN_FILE_MANIFEST: &str = "hearth/file-manifest/v1\n";
/// Domain line for [`crate::JobManifest`].
pub(crate) const DOMAIN_JOB_MANIFEST: &str = "hearth/job-manifest/v1\n";
/// Domain line for [`crate::SnapshotManifest`].
pub(crate) const DOMAIN_SNAPSHOT_MANIFEST: &str = "hearth/snapshot-manifest/v1\n";
/// Domain line for the hash that identifies a signed chain entry (genesis or link).
pub(crate) const DOMAIN_ENTRY_HASH: &str = "hearth/chain-entry-hash/v1\n";

/// The bytes a signature covers: the domain line followed by the compact JSON of `value`.
pub(crate) fn signing_bytes<T: Serialize>(domain: &str, value: &T) -> Vec<u8> {
    let mut out = domain.as_bytes().to_vec();
    // Serialising plain structs of strings and integers into a Vec cannot fail; if a future field
    // type could fail, the empty JSON would make every signature over it invalid, never valid.
    if serde_json::to_writer(&mut out, value).is_err() {
        out.truncate(domain.len());
    }
    out
}

/// The cryptographic suite of a sealed object or signed structure.
///
/// Every manifest names its suite and format version, so a post-quantum hybrid suite or a
/// FIPS-only suite can be added later while old files stay readable. Manifests store the suite
/// as a plain string; [`Suite::parse`] turns an unknown one into a clear error instead of a
/// decoding failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// age v1 with X25519 recipients for sealing, Ed25519 (strict verification) for signatures,
    /// SHA-256 for content hashes.
    AgeX25519Ed25519,
}

impl Suite {
    /// The suite every new object is created with.
    pub const CURRENT: Suite = Suite::AgeX25519Ed25519;
    /// The manifest format version written by this library.
    pub const FORMAT_VERSION: u32 = 1;

    /// The identifier written into manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Suite::AgeX25519Ed25519 => "age-x25519+ed25519",
        }
    }

    /// Parses a suite identifier and format version read from a manifest.
    pub fn parse(suite: &str, version: u32) -> Result<Suite, UnsupportedSuite> {
        let parsed = match suite {
            "age-x25519+ed25519" => Suite::AgeX25519Ed25519,
            _ => {
                return Err(UnsupportedSuite {
                    suite: suite.to_owned(),
                    version,
                });
            }
        };
        if version != Self::FORMAT_VERSION {
            return Err(UnsupportedSuite {
                suite: suite.to_owned(),
                version,
            });
        }
        Ok(parsed)
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A manifest names a suite or format version this build does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported cryptographic suite {suite:?} version {version} (this build supports \"age-x25519+ed25519\" version 1; upgrade Hearth to read it)"
)]
pub struct UnsupportedSuite {
    /// The suite identifier found.
    pub suite: String,
    /// The format version found.
    pub version: u32,
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Hashes `data` in one go.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// Hashes the concatenation of `parts`.
    pub(crate) fn of_parts(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        Self(h.finalize().into())
    }

    /// Lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

/// A string is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 digest (expected 64 hex digits)")]
pub struct BadDigest;

impl FromStr for Sha256Digest {
    type Err = BadDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| BadDigest)?;
        if s.chars().any(|c| c.is_ascii_uppercase()) {
            // One spelling per value keeps re-encoding identical to what was signed.
            return Err(BadDigest);
        }
        Ok(Self(out))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 signature, written as standard base64.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureBytes(pub [u8; 64]);

impl fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", STANDARD.encode(self.0))
    }
}

impl Serialize for SignatureBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for SignatureBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)?;
        let arr: [u8; 64] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("an Ed25519 signature is 64 bytes"))?;
        Ok(Self(arr))
    }
}

/// Serde helper: a byte vector as standard base64.
pub(crate) mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Random bytes as lowercase hex (ids and nonces).
pub(crate) fn random_hex(len: usize) -> String {
    use rand::RngCore as _;
    let mut buf = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_suite_and_version_are_clear_errors() {
        assert_eq!(
            Suite::parse("age-x25519+ed25519", 1),
            Ok(Suite::AgeX25519Ed25519)
        );
        let e = Suite::parse("mlkem768x25519+mldsa", 1).unwrap_err();
        assert!(e.to_string().contains("mlkem768x25519+mldsa"));
        assert!(Suite::parse("age-x25519+ed25519", 2).is_err());
    }

    #[test]
    fn digest_has_one_spelling() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(d.to_hex().parse::<Sha256Digest>().unwrap(), d);
        assert!(d.to_hex().to_uppercase().parse::<Sha256Digest>().is_err());
        assert!("abcd".parse::<Sha256Digest>().is_err());
    }

    #[test]
    fn signing_bytes_start_with_domain() {
        let b = signing_bytes(DOMAIN_JOB_MANIFEST, &vec![1u32, 2]);
        assert_eq!(b, b"hearth/job-manifest/v1\n[1,2]");
    }
}
