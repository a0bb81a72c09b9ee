//! The organisation chain: a signed genesis followed by signed, hash-linked membership links.
//!
//! Clients pin the genesis hash (learned when they join and compared by fingerprint) and trust a
//! public key only if [`OrgChain::verify`] reaches it through links signed by admin devices. The
//! server stores and serves the chain but cannot add, swap or drop a key unseen: every link names
//! its predecessor's hash and is signed by a device that was an admin at that point; a client that
//! remembers the last [`Checkpoint`] it saw also refuses a chain that was cut short (which would
//! hide a removal or an epoch rotation).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::encoding::{
    DOMAIN_ENTRY_HASH, DOMAIN_GENESIS, DOMAIN_LINK, Sha256Digest, SignatureBytes, Suite,
    UnsupportedSuite, random_hex, signing_bytes,
};
use crate::epoch::{EpochKey, EpochPublic};
use crate::keys::{DeviceKeys, DevicePublic, Fingerprint, SigningPublic};

/// The first entry of an organisation's chain, signed by the founding device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Cryptographic suite.
    pub suite: String,
    /// Format version.
    pub version: u32,
    /// Random organisation id (32 hex digits); every link and manifest repeats it.
    pub org_id: String,
    /// Display name of the organisation.
    pub org_name: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Account name of the founder.
    pub founder_user: String,
    /// The founder's device: the first member and admin.
    pub founder: DevicePublic,
    /// Epoch 1.
    pub epoch: EpochPublic,
}

/// A genesis with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedGenesis {
    /// The signed content.
    pub genesis: Genesis,
    /// Ed25519 signature by `genesis.founder` over `hearth/genesis/v1\n` + JSON.
    pub signature: SignatureBytes,
}

impl SignedGenesis {
    /// The hash clients pin: SHA-256 over a domain line, the signed bytes and the signature.
    pub fn hash(&self) -> Sha256Digest {
        entry_hash(
            &signing_bytes(DOMAIN_GENESIS, &self.genesis),
            &self.signature,
        )
    }

    /// A fingerprint of the genesis (12 groups of 5 digits) that two people compare aloud before a
    /// new device pins it.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::derive(b"hearth/genesis-fingerprint/v1\n", &[&self.hash().0])
    }
}

fn entry_hash(signed: &[u8], signature: &SignatureBytes) -> Sha256Digest {
    Sha256Digest::of_parts(&[DOMAIN_ENTRY_HASH.as_bytes(), signed, &signature.0])
}

/// What a membership link does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LinkAction {
    /// Adds a member device (a new user, or another device of an existing user).
    AddDevice {
        /// Account name of the device's user.
        user: String,
        /// The device's public keys (the admin compared its fingerprint first).
        device: DevicePublic,
        /// Whether this device may sign membership links.
        admin: bool,
    },
    /// Enrolls an edge agent.
    AddAgent {
        /// Display name of the agent.
        name: String,
        /// Pool the agent serves, if any.
        pool: Option<String>,
        /// The agent's public keys (the admin compared its fingerprint first).
        agent: DevicePublic,
    },
    /// Removes a member device and rotates to a new epoch for future uploads, in one link.
    RemoveDevice {
        /// The device removed.
        device: SigningPublic,
        /// The next epoch, which the removed device never receives.
        new_epoch: EpochPublic,
    },
    /// Removes an agent (agents never hold an epoch key, so no rotation is needed).
    RemoveAgent {
        /// The agent removed.
        agent: SigningPublic,
    },
    /// Rotates to a new epoch without a membership change.
    NewEpoch {
        /// The next epoch.
        epoch: EpochPublic,
    },
}

/// One membership link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Cryptographic suite.
    pub suite: String,
    /// Format version.
    pub version: u32,
    /// Organisation id from the genesis.
    pub org_id: String,
    /// Position: 1 for the first link after the genesis.
    pub seq: u64,
    /// Hash of the previous entry (the genesis for seq 1).
    pub prev: Sha256Digest,
    /// Signing time, Unix seconds (informational).
    pub created_at: i64,
    /// The admin device that signed.
    pub signer: SigningPublic,
    /// What the link does.
    pub action: LinkAction,
}

/// A link with its signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedLink {
    /// The signed content.
    pub link: Link,
    /// Ed25519 signature by `link.signer` over `hearth/org-link/v1\n` + JSON.
    pub signature: SignatureBytes,
}

impl SignedLink {
    /// Hash of this entry, which the next link names as `prev`.
    pub fn hash(&self) -> Sha256Digest {
        entry_hash(&signing_bytes(DOMAIN_LINK, &self.link), &self.signature)
    }
}

/// The whole chain as the server stores and serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgChain {
    /// The founding entry.
    pub genesis: SignedGenesis,
    /// Links in order.
    pub links: Vec<SignedLink>,
}

/// Where a client last saw the chain: it refuses a chain that does not extend this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Number of links seen.
    pub seq: u64,
    /// Hash of the last entry seen.
    pub head: Sha256Digest,
}

/// A member device as the verified chain knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Account name.
    pub user: String,
    /// Public keys.
    pub device: DevicePublic,
    /// May sign membership links.
    pub admin: bool,
}

/// An agent as the verified chain knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// Display name.
    pub name: String,
    /// The one pool an admin restricted it to, if any: it then opens only that pool's jobs (and
    /// jobs for one of its printers by name).
    pub pool: Option<String>,
    /// Public keys.
    pub agent: DevicePublic,
}

impl Agent {
    /// Whether a job for `pool` may be sealed to this agent: it is restricted to no pool, or to
    /// this one.
    pub fn serves(&self, pool: &str) -> bool {
        self.pool.as_deref().is_none_or(|p| p == pool)
    }
}

/// What a verified chain says: the only source of public keys a client or agent may trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedState {
    org_id: String,
    org_name: String,
    genesis_hash: Sha256Digest,
    checkpoint: Checkpoint,
    members: BTreeMap<SigningPublic, Member>,
    agents: BTreeMap<SigningPublic, Agent>,
    removed: BTreeMap<SigningPublic, u64>,
    epochs: Vec<EpochPublic>,
}

/// The chain failed verification. Each variant names the link (`seq`) where it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The served genesis is not the one this client pinned.
    #[error("the organisation genesis served ({served}) is not the pinned one ({pinned})")]
    GenesisMismatch {
        /// What the client pinned.
        pinned: Sha256Digest,
        /// What the server served.
        served: Sha256Digest,
    },
    /// An entry names an unknown suite.
    #[error(transparent)]
    UnsupportedSuite(#[from] UnsupportedSuite),
    /// The genesis signature is invalid.
    #[error("the genesis signature is invalid")]
    BadGenesisSignature,
    /// The genesis does not start at epoch 1.
    #[error("the genesis must announce epoch 1")]
    BadGenesisEpoch,
    /// A link belongs to another organisation.
    #[error("link {seq} belongs to another organisation")]
    WrongOrganisation {
        /// Link position.
        seq: u64,
    },
    /// A link is out of order (inserted, dropped or reordered).
    #[error("link at position {expected} claims sequence number {found}")]
    BadSequence {
        /// Position in the chain.
        expected: u64,
        /// What the link claims.
        found: u64,
    },
    /// A link does not name its predecessor's hash.
    #[error("link {seq} does not follow the previous entry (hash chain broken)")]
    BrokenLink {
        /// Link position.
        seq: u64,
    },
    /// A link's signature is invalid (altered link or substituted key).
    #[error("link {seq} has an invalid signature")]
    BadSignature {
        /// Link position.
        seq: u64,
    },
    /// A link is signed by a key that is not an admin device at that point.
    #[error("link {seq} is signed by {signer}, which is not an admin device of the organisation")]
    SignerNotAdmin {
        /// Link position.
        seq: u64,
        /// The signer.
        signer: SigningPublic,
    },
    /// A link is signed by a removed device.
    #[error("link {seq} is signed by {signer}, a removed device")]
    SignerRemoved {
        /// Link position.
        seq: u64,
        /// The signer.
        signer: SigningPublic,
    },
    /// A key is added twice (or re-added after removal).
    #[error("link {seq} adds key {key}, which the organisation already has or had")]
    DuplicateKey {
        /// Link position.
        seq: u64,
        /// The key.
        key: SigningPublic,
    },
    /// A removal names a key that is not a current member device.
    #[error("link {seq} removes {key}, which is not a current member device")]
    NotAMember {
        /// Link position.
        seq: u64,
        /// The key.
        key: SigningPublic,
    },
    /// A removal names a key that is not a current agent.
    #[error("link {seq} removes {key}, which is not a current agent")]
    NotAnAgent {
        /// Link position.
        seq: u64,
        /// The key.
        key: SigningPublic,
    },
    /// The link would leave the organisation without an admin.
    #[error("link {seq} removes the last admin device")]
    LastAdmin {
        /// Link position.
        seq: u64,
    },
    /// An epoch number is not the next one.
    #[error("link {seq} announces epoch {found}, expected {expected}")]
    BadEpoch {
        /// Link position.
        seq: u64,
        /// Expected number.
        expected: u64,
        /// Announced number.
        found: u64,
    },
    /// A rotation re-announces an earlier epoch's key.
    #[error("link {seq} re-uses an earlier epoch key")]
    ReusedEpochKey {
        /// Link position.
        seq: u64,
    },
    /// The chain is shorter than one this client already saw (a hidden removal or rotation).
    #[error(
        "the organisation chain was rolled back: it has {served} links, this device already saw {known}"
    )]
    Rollback {
        /// Links this client saw.
        known: u64,
        /// Links served.
        served: u64,
    },
    /// The chain differs from the one this client already saw at the same position.
    #[error(
        "the organisation chain forked at link {seq}: it differs from what this device already saw"
    )]
    Forked {
        /// Link position.
        seq: u64,
    },
    /// The signing device is not the founder (creation) or not an admin (append).
    #[error("this device may not sign membership links")]
    NotAllowed,
}

/// A key the server handed out is not what the verified chain says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The key is not in the chain at all.
    #[error("public key with fingerprint {fingerprint} is not enrolled in the organisation")]
    UnknownKey {
        /// Fingerprint of the key served.
        fingerprint: Fingerprint,
    },
    /// The signing key is enrolled but served with a different recipient (or vice versa).
    #[error(
        "public key served differs from the enrolled one: fingerprint {served} served, {enrolled} enrolled"
    )]
    KeySubstituted {
        /// Fingerprint served.
        served: Fingerprint,
        /// Fingerprint enrolled.
        enrolled: Fingerprint,
    },
    /// The key was removed from the organisation.
    #[error("public key {signing} was removed from the organisation")]
    Removed {
        /// The key.
        signing: SigningPublic,
    },
    /// The key belongs to a member where an agent was expected, or the reverse.
    #[error("public key {signing} has the wrong role here")]
    WrongRole {
        /// The key.
        signing: SigningPublic,
    },
    /// The epoch served is not the current one of the verified chain.
    #[error(
        "stale epoch key: the server offered epoch {served}, the verified chain's current epoch is {current}"
    )]
    StaleEpoch {
        /// Epoch served.
        served: u64,
        /// Current epoch.
        current: u64,
    },
    /// A pool job with no agent to seal it to.
    #[error("pool {0:?} has no printer behind an enrolled agent")]
    EmptyPool(String),
    /// A pool job named an agent the organisation restricted to another pool.
    #[error("agent {agent:?} serves only pool {serves:?}, not {pool:?}")]
    OutsidePool {
        /// The agent's name in the chain.
        agent: String,
        /// The one pool an admin approved it for.
        serves: String,
        /// The job's pool.
        pool: String,
    },
}

impl TrustedState {
    /// Organisation id.
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// Organisation display name.
    pub fn org_name(&self) -> &str {
        &self.org_name
    }

    /// The pinned genesis hash.
    pub fn genesis_hash(&self) -> Sha256Digest {
        self.genesis_hash
    }

    /// Where this verification ended; store it and pass it to [`OrgChain::verify_extending`] next time.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    /// Current member devices.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Current agents.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// Current admin devices.
    pub fn admins(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| m.admin)
    }

    /// A current member device by signing key.
    pub fn member(&self, key: &SigningPublic) -> Option<&Member> {
        self.members.get(key)
    }

    /// A current agent by signing key.
    pub fn agent(&self, key: &SigningPublic) -> Option<&Agent> {
        self.agents.get(key)
    }

    /// Whether the key was enrolled once and removed since.
    pub fn is_removed(&self, key: &SigningPublic) -> bool {
        self.removed.contains_key(key)
    }

    /// The current epoch (what new uploads are sealed to).
    pub fn current_epoch(&self) -> &EpochPublic {
        // The genesis always announces epoch 1, so the list is never empty.
        &self.epochs[self.epochs.len() - 1]
    }

    /// Any announced epoch by number.
    pub fn epoch(&self, epoch: u64) -> Option<&EpochPublic> {
        let idx = usize::try_from(epoch.checked_sub(1)?).ok()?;
        self.epochs.get(idx)
    }

    /// Checks an epoch the server offered for sealing against the verified current epoch.
    pub fn check_current_epoch(&self, served: &EpochPublic) -> Result<(), TrustError> {
        let current = self.current_epoch();
        if served != current {
            return Err(TrustError::StaleEpoch {
                served: served.epoch,
                current: current.epoch,
            });
        }
        Ok(())
    }

    fn check_served(
        &self,
        served: &DevicePublic,
        enrolled: Option<&DevicePublic>,
        other_role: bool,
    ) -> Result<(), TrustError> {
        match enrolled {
            Some(e) if e == served => Ok(()),
            Some(e) => Err(TrustError::KeySubstituted {
                served: served.fingerprint(),
                enrolled: e.fingerprint(),
            }),
            None if self.is_removed(&served.signing) => Err(TrustError::Removed {
                signing: served.signing,
            }),
            None if other_role => Err(TrustError::WrongRole {
                signing: served.signing,
            }),
            None => {
                // Same recipient under another signing key is a substitution too.
                let by_recipient = self
                    .members
                    .values()
                    .map(|m| &m.device)
                    .chain(self.agents.values().map(|a| &a.agent))
                    .find(|d| d.recipient == served.recipient);
                match by_recipient {
                    Some(e) => Err(TrustError::KeySubstituted {
                        served: served.fingerprint(),
                        enrolled: e.fingerprint(),
                    }),
                    None => Err(TrustError::UnknownKey {
                        fingerprint: served.fingerprint(),
                    }),
                }
            }
        }
    }

    /// Checks a member device's public keys that the server handed out.
    pub fn require_member(&self, served: &DevicePublic) -> Result<&Member, TrustError> {
        let enrolled = self.members.get(&served.signing);
        self.check_served(
            served,
            enrolled.map(|m| &m.device),
            self.agents.contains_key(&served.signing),
        )?;
        enrolled.ok_or(TrustError::UnknownKey {
            fingerprint: served.fingerprint(),
        })
    }

    /// Checks an agent's public keys that the server handed out.
    pub fn require_agent(&self, served: &DevicePublic) -> Result<&Agent, TrustError> {
        let enrolled = self.agents.get(&served.signing);
        self.check_served(
            served,
            enrolled.map(|a| &a.agent),
            self.members.contains_key(&served.signing),
        )?;
        enrolled.ok_or(TrustError::UnknownKey {
            fingerprint: served.fingerprint(),
        })
    }
}

impl OrgChain {
    /// Founds an organisation: signs the genesis with the founder's device and creates epoch 1.
    /// Seal the returned key to the founder with [`EpochKey::seal_for_members`] after verifying.
    pub fn create(
        founder: &DeviceKeys,
        founder_user: &str,
        org_name: &str,
        now: i64,
    ) -> (OrgChain, EpochKey) {
        let epoch = EpochKey::generate(1);
        let genesis = Genesis {
            suite: Suite::CURRENT.as_str().to_owned(),
            version: Suite::FORMAT_VERSION,
            org_id: random_hex(16),
            org_name: org_name.to_owned(),
            created_at: now,
            founder_user: founder_user.to_owned(),
            founder: founder.public(),
            epoch: epoch.public(),
        };
        let signature = founder.sign(&signing_bytes(DOMAIN_GENESIS, &genesis));
        (
            OrgChain {
                genesis: SignedGenesis { genesis, signature },
                links: Vec::new(),
            },
            epoch,
        )
    }

    /// The hash a client pins when it joins.
    pub fn genesis_hash(&self) -> Sha256Digest {
        self.genesis.hash()
    }

    /// Verifies the whole chain from the pinned genesis and returns what it establishes.
    pub fn verify(&self, pinned_genesis: &Sha256Digest) -> Result<TrustedState, ChainError> {
        let g = &self.genesis;
        let served = g.hash();
        if &served != pinned_genesis {
            return Err(ChainError::GenesisMismatch {
                pinned: *pinned_genesis,
                served,
            });
        }
        Suite::parse(&g.genesis.suite, g.genesis.version)?;
        if !g
            .genesis
            .founder
            .signing
            .verify_strict(&signing_bytes(DOMAIN_GENESIS, &g.genesis), &g.signature)
        {
            return Err(ChainError::BadGenesisSignature);
        }
        if g.genesis.epoch.epoch != 1 {
            return Err(ChainError::BadGenesisEpoch);
        }
        let mut st = TrustedState {
            org_id: g.genesis.org_id.clone(),
            org_name: g.genesis.org_name.clone(),
            genesis_hash: served,
            checkpoint: Checkpoint {
                seq: 0,
                head: served,
            },
            members: BTreeMap::new(),
            agents: BTreeMap::new(),
            removed: BTreeMap::new(),
            epochs: vec![g.genesis.epoch.clone()],
        };
        st.members.insert(
            g.genesis.founder.signing,
            Member {
                user: g.genesis.founder_user.clone(),
                device: g.genesis.founder.clone(),
                admin: true,
            },
        );
        for (i, signed) in self.links.iter().enumerate() {
            let expected = i as u64 + 1;
            apply_link(&mut st, signed, expected)?;
        }
        Ok(st)
    }

    /// Verifies like [`OrgChain::verify`] and also refuses a chain that does not extend what this
    /// client saw before (rolled back or forked), which would hide a removal or an epoch rotation.
    pub fn verify_extending(
        &self,
        pinned_genesis: &Sha256Digest,
        seen: &Checkpoint,
    ) -> Result<TrustedState, ChainError> {
        let st = self.verify(pinned_genesis)?;
        let served = self.links.len() as u64;
        if served < seen.seq {
            return Err(ChainError::Rollback {
                known: seen.seq,
                served,
            });
        }
        let head_then = match seen.seq {
            0 => self.genesis.hash(),
            n => self.links[usize::try_from(n - 1).map_err(|_| ChainError::Forked { seq: n })?]
                .hash(),
        };
        if head_then != seen.head {
            return Err(ChainError::Forked { seq: seen.seq });
        }
        Ok(st)
    }

    /// Signs and appends a link, after checking that the result verifies (so an admin device can
    /// never publish a link other clients would refuse).
    pub fn append(
        &mut self,
        signer: &DeviceKeys,
        action: LinkAction,
        now: i64,
    ) -> Result<&SignedLink, ChainError> {
        let pinned = self.genesis_hash();
        let st = self.verify(&pinned)?;
        let prev = st.checkpoint.head;
        let link = Link {
            suite: Suite::CURRENT.as_str().to_owned(),
            version: Suite::FORMAT_VERSION,
            org_id: st.org_id.clone(),
            seq: st.checkpoint.seq + 1,
            prev,
            created_at: now,
            signer: signer.public().signing,
            action,
        };
        let signature = signer.sign(&signing_bytes(DOMAIN_LINK, &link));
        let signed = SignedLink { link, signature };
        let mut check = st;
        apply_link(&mut check, &signed, signed.link.seq)?;
        self.links.push(signed);
        let last = self.links.len() - 1;
        Ok(&self.links[last])
    }

    /// Removes a member device and rotates the epoch in one signed link. Returns the new epoch
    /// key: seal it for the remaining members ([`EpochKey::seal_for_members`]).
    pub fn remove_device(
        &mut self,
        admin: &DeviceKeys,
        device: &SigningPublic,
        now: i64,
    ) -> Result<EpochKey, ChainError> {
        let next = self.verify(&self.genesis_hash())?.current_epoch().epoch + 1;
        let key = EpochKey::generate(next);
        self.append(
            admin,
            LinkAction::RemoveDevice {
                device: *device,
                new_epoch: key.public(),
            },
            now,
        )?;
        Ok(key)
    }

    /// Rotates the epoch without a membership change. Returns the new epoch key.
    pub fn rotate_epoch(&mut self, admin: &DeviceKeys, now: i64) -> Result<EpochKey, ChainError> {
        let next = self.verify(&self.genesis_hash())?.current_epoch().epoch + 1;
        let key = EpochKey::generate(next);
        self.append(
            admin,
            LinkAction::NewEpoch {
                epoch: key.public(),
            },
            now,
        )?;
        Ok(key)
    }
}

/// Whether the signing key, or the recipient, is already enrolled (or was, for signing keys):
/// one key pair belongs to exactly one device or agent.
fn known_key(st: &TrustedState, key: &DevicePublic) -> bool {
    st.members.contains_key(&key.signing)
        || st.agents.contains_key(&key.signing)
        || st.removed.contains_key(&key.signing)
        || st
            .members
            .values()
            .any(|m| m.device.recipient == key.recipient)
        || st
            .agents
            .values()
            .any(|a| a.agent.recipient == key.recipient)
}

fn push_epoch(st: &mut TrustedState, seq: u64, e: &EpochPublic) -> Result<(), ChainError> {
    let expected = st.current_epoch().epoch + 1;
    if e.epoch != expected {
        return Err(ChainError::BadEpoch {
            seq,
            expected,
            found: e.epoch,
        });
    }
    if st.epochs.iter().any(|old| old.recipient == e.recipient) {
        return Err(ChainError::ReusedEpochKey { seq });
    }
    st.epochs.push(e.clone());
    Ok(())
}

fn apply_link(st: &mut TrustedState, signed: &SignedLink, expected: u64) -> Result<(), ChainError> {
    let link = &signed.link;
    Suite::parse(&link.suite, link.version)?;
    if link.seq != expected {
        return Err(ChainError::BadSequence {
            expected,
            found: link.seq,
        });
    }
    let seq = link.seq;
    if link.org_id != st.org_id {
        return Err(ChainError::WrongOrganisation { seq });
    }
    if link.prev != st.checkpoint.head {
        return Err(ChainError::BrokenLink { seq });
    }
    match st.members.get(&link.signer) {
        Some(m) if m.admin => {}
        Some(_) => {
            return Err(ChainError::SignerNotAdmin {
                seq,
                signer: link.signer,
            });
        }
        None if st.removed.contains_key(&link.signer) => {
            return Err(ChainError::SignerRemoved {
                seq,
                signer: link.signer,
            });
        }
        None => {
            return Err(ChainError::SignerNotAdmin {
                seq,
                signer: link.signer,
            });
        }
    }
    if !link
        .signer
        .verify_strict(&signing_bytes(DOMAIN_LINK, link), &signed.signature)
    {
        return Err(ChainError::BadSignature { seq });
    }
    match &link.action {
        LinkAction::AddDevice {
            user,
            device,
            admin,
        } => {
            if known_key(st, device) {
                return Err(ChainError::DuplicateKey {
                    seq,
                    key: device.signing,
                });
            }
            st.members.insert(
                device.signing,
                Member {
                    user: user.clone(),
                    device: device.clone(),
                    admin: *admin,
                },
            );
        }
        LinkAction::AddAgent { name, pool, agent } => {
            if known_key(st, agent) {
                return Err(ChainError::DuplicateKey {
                    seq,
                    key: agent.signing,
                });
            }
            st.agents.insert(
                agent.signing,
                Agent {
                    name: name.clone(),
                    pool: pool.clone(),
                    agent: agent.clone(),
                },
            );
        }
        LinkAction::RemoveDevice { device, new_epoch } => {
            let Some(removed) = st.members.get(device) else {
                return Err(ChainError::NotAMember { seq, key: *device });
            };
            if removed.admin && st.admins().count() == 1 {
                return Err(ChainError::LastAdmin { seq });
            }
            push_epoch(st, seq, new_epoch)?;
            st.members.remove(device);
            st.removed.insert(*device, seq);
        }
        LinkAction::RemoveAgent { agent } => {
            if st.agents.remove(agent).is_none() {
                return Err(ChainError::NotAnAgent { seq, key: *agent });
            }
            st.removed.insert(*agent, seq);
        }
        LinkAction::NewEpoch { epoch } => push_epoch(st, seq, epoch)?,
    }
    st.checkpoint = Checkpoint {
        seq,
        head: signed.hash(),
    };
    Ok(())
}
