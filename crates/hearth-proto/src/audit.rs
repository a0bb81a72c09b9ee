//! The audit log's canonical form and hash chain, shared by the server (which appends) and every client
//! (which verifies).
//!
//! Each entry's hash is `SHA-256(previous entry's hash (32 bytes) || canonical bytes of the entry)`; the
//! first entry of a chain uses 32 zero bytes as its predecessor. The canonical bytes are a JSON object whose
//! keys are sorted at every depth and which carries no insignificant whitespace, so the same entry hashes the
//! same everywhere, whatever map ordering a build of `serde_json` happens to use.
//!
//! A chain is one *scope*: `system` for instance-wide events (logins, setup) or an organisation id.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The predecessor hash of the first entry of every chain.
pub const GENESIS_PREV_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// The scope of instance-wide events.
pub const SYSTEM_SCOPE: &str = "system";

/// One audit-log entry as stored and served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// `system` or an organisation id.
    pub scope: String,
    /// Position in the scope's chain, starting at 1, without gaps.
    pub seq: i64,
    /// When it happened, Unix milliseconds (this is what is hashed).
    pub ts_ms: i64,
    /// Who acted: `user:<id>`, `token:<id>`, `setup`, `anonymous`, `system`.
    pub actor: String,
    /// What happened, dotted: `auth.login`, `auth.login_failed`, `token.create`, `blob.upload`...
    pub action: String,
    /// What it happened to, if anything (`user:<id>`, `blob:<sha256>`, ...).
    pub target: Option<String>,
    /// Source address of the request, if it came over the network.
    pub source: Option<String>,
    /// Action-specific facts. Never design data: the server does not have any.
    pub details: serde_json::Value,
    /// Hash of the previous entry in the scope (hex).
    pub prev_hash: String,
    /// This entry's hash (hex).
    pub hash: String,
}

/// The fields of an entry that the hash covers, before it is chained.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryBody<'a> {
    pub scope: &'a str,
    pub seq: i64,
    pub ts_ms: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub source: Option<&'a str>,
    pub details: &'a serde_json::Value,
}

impl AuditEntry {
    /// The hashed part of this entry.
    pub fn body(&self) -> EntryBody<'_> {
        EntryBody {
            scope: &self.scope,
            seq: self.seq,
            ts_ms: self.ts_ms,
            actor: &self.actor,
            action: &self.action,
            target: self.target.as_deref(),
            source: self.source.as_deref(),
            details: &self.details,
        }
    }
}

/// Canonical bytes of an entry body (version 1 of the canonical form).
pub fn canonical_bytes(body: &EntryBody<'_>) -> Vec<u8> {
    let value = serde_json::json!({
        "v": 1,
        "scope": body.scope,
        "seq": body.seq,
        "ts_ms": body.ts_ms,
        "actor": body.actor,
        "action": body.action,
        "target": body.target,
        "source": body.source,
        "details": body.details,
    });
    let mut out = Vec::with_capacity(256);
    write_canonical(&value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(k.clone()), out);
                out.push(b':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &serde_json::Value, out: &mut Vec<u8>) {
    // Serializing a scalar JSON value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// The chained hash of an entry: `SHA-256(prev || canonical(body))`, hex. `prev_hash` must be 64 hex digits;
/// anything else is treated as a broken chain by returning `None`.
pub fn entry_hash(prev_hash: &str, body: &EntryBody<'_>) -> Option<String> {
    let prev = hex::decode(prev_hash).ok().filter(|p| p.len() == 32)?;
    let mut h = Sha256::new();
    h.update(&prev);
    h.update(canonical_bytes(body));
    Some(hex::encode(h.finalize()))
}

/// Where and how a chain stopped being trustworthy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainBreak {
    /// The entry's content no longer matches its hash: it was edited.
    #[error("audit entry {seq} was altered: its content does not match its hash")]
    Altered { seq: i64 },
    /// The entry does not chain to its predecessor: the predecessor was altered and re-hashed, or this
    /// entry's link was edited.
    #[error("audit entry {seq} does not chain to entry {}: one of them was altered", seq - 1)]
    Unlinked { seq: i64 },
    /// Entries are missing before this one.
    #[error("audit entry {expected} is missing (removed): the chain jumps to {found}")]
    Removed { expected: i64, found: i64 },
    /// An entry appears out of order.
    #[error("audit entry {found} appears where {expected} was expected: entries were reordered")]
    Reordered { expected: i64, found: i64 },
    /// The chain ends before the head the verifier was told about.
    #[error("audit entries after {last} are missing: the log's head is at {head}")]
    Truncated { last: i64, head: i64 },
    /// The chain's end does not carry the head hash the verifier was told about.
    #[error("audit entry {seq} does not match the recorded head: the end of the log was altered")]
    HeadMismatch { seq: i64 },
}

/// The last entry of a verified chain: pin it, and the next verification proves the log only grew.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_PREV_HASH.to_owned(),
        }
    }
}

/// Verifies a chain fed in `seq` order, one entry at a time, in constant memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    last: ChainHead,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// Verify from the first entry.
    pub fn new() -> Self {
        Self {
            last: ChainHead::genesis(),
        }
    }

    /// Continue from a head verified earlier (pinned by a client).
    pub fn resume(from: ChainHead) -> Self {
        Self { last: from }
    }

    /// Check the next entry.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        let expected = self.last.seq + 1;
        if e.seq > expected {
            return Err(ChainBreak::Removed {
                expected,
                found: e.seq,
            });
        }
        if e.seq < expected {
            return Err(ChainBreak::Reordered {
                expected,
                found: e.seq,
            });
        }
        if entry_hash(&e.prev_hash, &e.body()).as_deref() != Some(e.hash.as_str()) {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        if e.prev_hash != self.last.hash {
            return Err(ChainBreak::Unlinked { seq: e.seq });
        }
        self.last = ChainHead {
            seq: e.seq,
            hash: e.hash.clone(),
        };
        Ok(())
    }

    /// Finish, comparing against the head the log claims (or a client pinned). Returns the verified head.
    pub fn finish(self, head: Option<&ChainHead>) -> Result<ChainHead, ChainBreak> {
        if let Some(head) = head {
            if head.seq > self.last.seq {
                return Err(ChainBreak::Truncated {
                    last: self.last.seq,
                    head: head.seq,
                });
            }
            if head.seq == self.last.seq && head.hash != self.last.hash {
                return Err(ChainBreak::HeadMismatch { seq: head.seq });
            }
        }
        Ok(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Details are stored as JSON text and hashed again when verified: a fraction (the grams a
    /// cancelled job took) must read back as the very number it was written from, or a sound log
    /// reads as altered. (serde_json's `float_roundtrip`, enabled for the workspace.)
    #[test]
    fn fractional_details_hash_the_same_after_a_trip_through_their_stored_text() {
        for i in 1..4_000u32 {
            let grams = (i as f32 / 7.0) * 0.731;
            let details = serde_json::json!({ "grams": grams, "spool": "x" });
            let body = |d| EntryBody {
                scope: "org",
                seq: 1,
                ts_ms: 0,
                actor: "agent:a",
                action: "job.cancelled",
                target: None,
                source: None,
                details: d,
            };
            let stored: serde_json::Value = serde_json::from_str(&details.to_string()).unwrap();
            assert_eq!(
                canonical_bytes(&body(&stored)),
                canonical_bytes(&body(&details)),
                "{grams}"
            );
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_PREV_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    scope: "system".into(),
                    seq,
                    ts_ms: 1_700_000_000_000 + seq,
                    actor: "user:1".into(),
                    action: "auth.login".into(),
                    target: None,
                    source: Some("127.0.0.1".into()),
                    details: serde_json::json!({"b": 1, "a": [seq, "x"]}),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = entry_hash(&prev, &e.body()).unwrap();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry], head: Option<&ChainHead>) -> Result<ChainHead, ChainBreak> {
        let mut v = ChainVerifier::new();
        for e in entries {
            v.push(e)?;
        }
        v.finish(head)
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_depth() {
        let details = serde_json::json!({"z": {"y": 1, "x": 2}, "a": null});
        let body = EntryBody {
            scope: "s",
            seq: 1,
            ts_ms: 2,
            actor: "a",
            action: "b",
            target: None,
            source: None,
            details: &details,
        };
        assert_eq!(
            String::from_utf8(canonical_bytes(&body)).unwrap(),
            r#"{"action":"b","actor":"a","details":{"a":null,"z":{"x":2,"y":1}},"scope":"s","seq":1,"source":null,"target":null,"ts_ms":2,"v":1}"#
        );
    }

    #[test]
    fn intact_chain_verifies_to_its_head() {
        let c = chain(5);
        let head = ChainHead {
            seq: 5,
            hash: c[4].hash.clone(),
        };
        assert_eq!(verify(&c, Some(&head)).unwrap(), head);
    }

    #[test]
    fn each_kind_of_tampering_names_the_first_bad_entry() {
        let c = chain(5);
        let head = ChainHead {
            seq: 5,
            hash: c[4].hash.clone(),
        };

        let mut edited = c.clone();
        edited[2].action = "auth.logout".into();
        assert_eq!(
            verify(&edited, Some(&head)),
            Err(ChainBreak::Altered { seq: 3 })
        );

        let mut rehashed = c.clone();
        rehashed[2].actor = "user:evil".into();
        rehashed[2].hash = entry_hash(&rehashed[2].prev_hash, &rehashed[2].body()).unwrap();
        assert_eq!(
            verify(&rehashed, Some(&head)),
            Err(ChainBreak::Unlinked { seq: 4 })
        );

        let mut removed = c.clone();
        removed.remove(1);
        assert_eq!(
            verify(&removed, Some(&head)),
            Err(ChainBreak::Removed {
                expected: 2,
                found: 3
            })
        );

        // Reordering rows in a database means exchanging their positions; the position is hashed.
        let mut swapped = c.clone();
        swapped[1].seq = 3;
        swapped[2].seq = 2;
        swapped.swap(1, 2);
        assert_eq!(
            verify(&swapped, Some(&head)),
            Err(ChainBreak::Altered { seq: 2 })
        );

        let mut out_of_order = c.clone();
        out_of_order.swap(1, 2);
        assert_eq!(
            verify(&out_of_order, Some(&head)),
            Err(ChainBreak::Removed {
                expected: 2,
                found: 3
            })
        );

        let truncated = &c[..4];
        assert_eq!(
            verify(truncated, Some(&head)),
            Err(ChainBreak::Truncated { last: 4, head: 5 })
        );
    }
}
