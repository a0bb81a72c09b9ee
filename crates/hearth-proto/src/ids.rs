//! Typed opaque ids. They are UUIDs on the wire (v7, so they sort by creation time) but distinct types in
//! code.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// An organisation.
    OrgId
);
id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// An API token (the id is public; the secret is shown once).
    TokenId
);
id_type!(
    /// A resumable upload in progress.
    UploadId
);

id_type!(
    /// An edge agent (one machine next to some printers).
    AgentId
);
id_type!(
    /// A printer, as the server knows it: one named printer of one agent.
    PrinterId
);
id_type!(
    /// A print job. Chosen by the submitting device, because the signed job manifest names it.
    JobId
);

id_type!(
    /// A file of an organisation's library (a sealed print file and its sealed metadata).
    FileId
);

/// SHA-256 of a sealed blob, as 64 lowercase hex digits. Blobs are content-addressed by it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"))]
#[serde(try_from = "String", into = "String")]
pub struct BlobHash(String);

/// A string that is not 64 lowercase hex digits was offered as a blob hash.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not a SHA-256 hash (64 lowercase hex digits): {0:?}")]
pub struct BadBlobHash(pub String);

impl BlobHash {
    /// Hash of the given bytes.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(bytes)))
    }

    /// From a raw 32-byte digest.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        Self(hex::encode(digest))
    }

    /// The hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobHash {
    type Error = BadBlobHash;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s))
        } else {
            Err(BadBlobHash(s))
        }
    }
}

impl FromStr for BlobHash {
    type Err = BadBlobHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<BlobHash> for String {
    fn from(h: BlobHash) -> String {
        h.0
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_hash_rejects_anything_but_lowercase_hex_sha256() {
        assert!(BlobHash::from_str(&"a".repeat(64)).is_ok());
        assert!(BlobHash::from_str(&"A".repeat(64)).is_err());
        assert!(BlobHash::from_str(&"a".repeat(63)).is_err());
        assert!(BlobHash::from_str("../../etc/passwd").is_err());
        assert_eq!(
            BlobHash::of(b"").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}

id_type!(
    /// A notification channel of an organisation (a webhook, Slack, Discord or ntfy destination).
    ChannelId
);
id_type!(
    /// One notification on its way to one channel. Sent as `webhook-id`, the same on every retry,
    /// so a receiver can drop a repeated delivery.
    DeliveryId
);

id_type!(
    /// A material of an organisation's library (a brand's PETG in one colour, say).
    MaterialId
);
id_type!(
    /// One spool of the organisation's inventory.
    SpoolId
);
