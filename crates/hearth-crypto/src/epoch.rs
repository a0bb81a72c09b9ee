//! Organisation epoch keys: the age identity every file of an epoch is sealed to.
//!
//! An admin device creates one per epoch ([`EpochKey::generate`]), announces its public recipient
//! in a signed chain link, and seals the identity to every current *member device* (never to
//! agents) as a [`SealedEpochKey`] the server stores. A device opening one checks that the identity
//! inside matches the recipient the verified chain announced for that epoch, so a server cannot
//! slip in a key of its own.

use std::fmt;

use age::secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::chain::TrustedState;
use crate::encoding::{Suite, b64};
use crate::keys::{DeviceKeys, Recipient};
use crate::seal::{OpenError, SealError, open_bytes, seal_bytes};

/// The public half of an epoch key, as announced in the organisation chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochPublic {
    /// Epoch number, starting at 1 with the genesis and increasing by one per rotation.
    pub epoch: u64,
    /// What files of this epoch are sealed to.
    pub recipient: Recipient,
}

/// The private organisation key of one epoch. Not `Serialize`, redacted `Debug`, wiped on drop.
pub struct EpochKey {
    epoch: u64,
    identity: age::x25519::Identity,
}

impl EpochKey {
    /// Creates a fresh epoch key with the given number.
    pub fn generate(epoch: u64) -> Self {
        Self {
            epoch,
            identity: age::x25519::Identity::generate(),
        }
    }

    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The public half.
    pub fn public(&self) -> EpochPublic {
        EpochPublic {
            epoch: self.epoch,
            recipient: Recipient::from_age(self.identity.to_public()),
        }
    }

    pub(crate) fn age_identity(&self) -> &age::x25519::Identity {
        &self.identity
    }

    /// The identity as an `AGE-SECRET-KEY-1...` string: opens every file of this epoch.
    pub fn expose_age_identity(&self) -> Zeroizing<String> {
        Zeroizing::new(self.identity.to_string().expose_secret().to_owned())
    }

    /// Seals this key to every current member device of `trusted` (agents are never included).
    pub fn seal_for_members(&self, trusted: &TrustedState) -> Result<SealedEpochKey, SealError> {
        let recipients: Vec<&Recipient> = trusted.members().map(|m| &m.device.recipient).collect();
        self.seal_to(&recipients)
    }

    /// Seals this key to one member device, for example a device added after the epoch started.
    /// Refuses a key the verified chain does not list as a current member (never an agent).
    pub fn seal_for_member(
        &self,
        trusted: &TrustedState,
        device: &crate::DevicePublic,
    ) -> Result<SealedEpochKey, EpochSealError> {
        let member = trusted
            .require_member(device)
            .map_err(EpochSealError::NotAMember)?;
        Ok(self.seal_to(&[&member.device.recipient])?)
    }

    /// Seals this key to the given recipients. Pass member devices only (agents never hold an
    /// epoch key); prefer [`EpochKey::seal_for_members`] or [`EpochKey::seal_for_member`], which
    /// take the recipients from the verified chain.
    pub fn seal_to(&self, recipients: &[&Recipient]) -> Result<SealedEpochKey, SealError> {
        let text = Zeroizing::new(format!(
            "hearth-epoch-key-v1\n{}\n{}\n",
            self.epoch,
            self.expose_age_identity().as_str()
        ));
        Ok(SealedEpochKey {
            suite: Suite::CURRENT.as_str().to_owned(),
            version: Suite::FORMAT_VERSION,
            epoch: self.epoch,
            sealed: seal_bytes(recipients, text.as_bytes())?,
        })
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKey")
            .field("epoch", &self.epoch)
            .field("recipient", &self.public().recipient.to_string())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An epoch key sealed to member devices: safe to store on the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedEpochKey {
    /// Cryptographic suite (see [`Suite`]).
    pub suite: String,
    /// Format version.
    pub version: u32,
    /// The epoch it claims to be (checked against the sealed content and the chain).
    pub epoch: u64,
    /// age v1 file sealed to the member devices.
    #[serde(with = "b64")]
    pub sealed: Vec<u8>,
}

/// Sealing an epoch key for a device failed.
#[derive(Debug, thiserror::Error)]
pub enum EpochSealError {
    /// The device is not a current member of the verified chain.
    #[error("cannot seal the epoch key to a device that is not a current member")]
    NotAMember(#[source] crate::TrustError),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Opening an epoch key failed.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// Unknown suite or version.
    #[error(transparent)]
    UnsupportedSuite(#[from] crate::UnsupportedSuite),
    /// It could not be opened with this device's key.
    #[error("cannot open the epoch key with this device's key")]
    Open(#[source] OpenError),
    /// The content is not an epoch key.
    #[error("the sealed epoch key is malformed")]
    Malformed,
    /// The verified chain never announced this epoch.
    #[error("epoch {0} is not in the verified organisation chain")]
    UnknownEpoch(u64),
    /// The key inside is not the one the chain announced for its epoch (a substituted key).
    #[error("the epoch {epoch} key served does not match the recipient the signed chain announced")]
    NotTheAnnouncedKey {
        /// The epoch concerned.
        epoch: u64,
    },
}

impl SealedEpochKey {
    /// Opens the epoch key with this device's keys and checks it against the verified chain.
    pub fn open(
        &self,
        device: &DeviceKeys,
        trusted: &TrustedState,
    ) -> Result<EpochKey, EpochError> {
        Suite::parse(&self.suite, self.version)?;
        let plain = Zeroizing::new(open_bytes(&[device], &self.sealed).map_err(EpochError::Open)?);
        let text = std::str::from_utf8(&plain).map_err(|_| EpochError::Malformed)?;
        let mut lines = text.lines();
        if lines.next() != Some("hearth-epoch-key-v1") {
            return Err(EpochError::Malformed);
        }
        let epoch: u64 = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or(EpochError::Malformed)?;
        let identity: age::x25519::Identity = lines
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or(EpochError::Malformed)?;
        let key = EpochKey { epoch, identity };
        let announced = trusted
            .epoch(self.epoch)
            .ok_or(EpochError::UnknownEpoch(self.epoch))?;
        if epoch != self.epoch || announced.recipient != key.public().recipient {
            return Err(EpochError::NotTheAnnouncedKey { epoch: self.epoch });
        }
        Ok(key)
    }
}
