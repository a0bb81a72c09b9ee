//! A logged-in context: the profile, an authenticated client, and the one way to get public keys —
//! fetch the organisation chain and verify it against the pinned genesis and last checkpoint.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use hearth_client::Client;
use hearth_crypto::{
    DeviceKeys, DevicePublic, EpochError, EpochKey, OrgChain, Recipient, SealedEpochKey,
    SignedGenesis, SignedLink, SigningPublic, TrustedState,
};
use hearth_proto::api::{Agent, ChainLink, SealedEpoch};
use hearth_proto::ids::OrgId;

use crate::profile::{self, Profile};

/// What most commands start from.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub dir: PathBuf,
    pub profile: Profile,
    pub client: Client,
}

/// Seconds since the Unix epoch (the crypto library takes the clock as an argument).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Normalises a server address the same way everywhere: it salts the login secret, so two
/// spellings of one server would derive two different secrets.
pub fn normalize_server(s: &str) -> String {
    let s = s.trim().trim_end_matches('/');
    if s.starts_with("http://") || s.starts_with("https://") {
        s.to_owned()
    } else {
        format!("https://{s}")
    }
}

impl Ctx {
    pub fn load() -> anyhow::Result<Ctx> {
        let dir = profile::config_dir()?;
        let profile = Profile::load(&dir)?;
        let client = Client::new(&profile.server)?.with_token(profile.token.clone());
        Ok(Ctx {
            dir,
            profile,
            client,
        })
    }

    pub fn org(&self) -> anyhow::Result<OrgId> {
        self.profile.org_id.ok_or_else(|| {
            anyhow!("no organisation selected: run `hearth login SERVER --org NAME`")
        })
    }

    pub fn device(&self) -> anyhow::Result<DeviceKeys> {
        profile::load_device(&self.dir)
    }

    pub fn save(&self) -> anyhow::Result<()> {
        self.profile.save(&self.dir)
    }

    /// The chain as the server serves it, parsed (not yet trusted).
    pub async fn fetch_chain(&self) -> anyhow::Result<Option<OrgChain>> {
        fetch_chain(&self.client, self.org()?).await
    }

    /// Fetches the chain and verifies it from the pinned genesis, refusing one that does not extend
    /// the last checkpoint; then remembers the new checkpoint. The only source of public keys.
    pub async fn trusted(&mut self) -> anyhow::Result<(OrgChain, TrustedState)> {
        let pinned = self.profile.genesis.ok_or_else(|| {
            anyhow!("this device has not pinned the organisation yet: run `hearth org init` (founder) or `hearth login` again")
        })?;
        let chain = self.fetch_chain().await?.ok_or_else(|| {
            anyhow!("the server lost the organisation chain this device pinned (it serves none): refusing to trust it")
        })?;
        let trusted = match &self.profile.checkpoint {
            Some(cp) => chain.verify_extending(&pinned, cp),
            None => chain.verify(&pinned),
        }
        .context("the organisation chain the server served does not verify; it may be lying")?;
        if self.profile.checkpoint != Some(trusted.checkpoint()) {
            self.profile.checkpoint = Some(trusted.checkpoint());
            self.save()?;
        }
        Ok((chain, trusted))
    }

    /// Opens the sealed key of `epoch` with this device's keys, checked against the verified chain:
    /// the epoch's own copy, sealed to the members of its time, or else the copy an admin granted
    /// this member after they joined (`hearth members grant-history`).
    pub async fn epoch_key(
        &self,
        device: &DeviceKeys,
        trusted: &TrustedState,
        epoch: u64,
    ) -> anyhow::Result<EpochKey> {
        let org = self.org()?;
        let own: SealedEpoch = self
            .client
            .raw_get(&format!("/api/v1/orgs/{org}/epochs/{epoch}"))
            .await
            .with_context(|| format!("cannot fetch the key of epoch {epoch}"))?;
        let not_for_us = match Self::checked_epoch(own, epoch)?.open(device, trusted) {
            Err(e @ EpochError::Open(_)) => e,
            opened => {
                return opened.with_context(|| format!("cannot open the key of epoch {epoch}"));
            }
        };
        let granted = match self
            .client
            .raw_get::<SealedEpoch>(&format!("/api/v1/orgs/{org}/epochs/{epoch}/grant"))
            .await
        {
            Ok(served) => Self::checked_epoch(served, epoch)?,
            Err(e) if e.status() == Some(404) => {
                return Err(anyhow::Error::new(not_for_us).context(format!(
                    "epoch {epoch} began before this device joined and no admin has granted it to you \
                     (an admin runs `hearth members grant-history {}`)",
                    self.profile.login
                )));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("cannot fetch your grant of epoch {epoch}"));
            }
        };
        granted
            .open(device, trusted)
            .with_context(|| format!("cannot open the key of epoch {epoch} granted to you"))
    }

    /// [`Ctx::epoch_key`], or `None` when no copy of it is sealed to this device (the epoch began
    /// before it joined and was not granted to it): expected, not an attack. Any other failure (a
    /// key other than the one the chain announced, a malformed or missing one) means the server is
    /// not serving what the admins stored, and is an error.
    pub async fn held_epoch_key(
        &self,
        device: &DeviceKeys,
        trusted: &TrustedState,
        epoch: u64,
    ) -> anyhow::Result<Option<EpochKey>> {
        match self.epoch_key(device, trusted, epoch).await {
            Ok(k) => Ok(Some(k)),
            Err(e) if matches!(e.downcast_ref::<EpochError>(), Some(EpochError::Open(_))) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The sealed key in `served`, refused unless both it and its envelope name `epoch`.
    fn checked_epoch(served: SealedEpoch, epoch: u64) -> anyhow::Result<SealedEpochKey> {
        let sealed: SealedEpochKey = serde_json::from_value(served.sealed)
            .with_context(|| format!("the server served a malformed key for epoch {epoch}"))?;
        if sealed.epoch != epoch || served.epoch != i64::try_from(epoch).unwrap_or(-1) {
            bail!(
                "the server served epoch {} when asked for {epoch}",
                sealed.epoch
            );
        }
        Ok(sealed)
    }

    /// The name and signing key of the agent that drives `printer`, as the server lists it (a
    /// signature by it is then checked against the verified chain).
    pub async fn agent_of(
        &self,
        printer: &hearth_proto::api::Printer,
    ) -> anyhow::Result<(String, hearth_crypto::SigningPublic)> {
        let agent = self
            .agents()
            .await?
            .into_iter()
            .find(|a| a.id == printer.agent_id)
            .with_context(|| format!("the agent of printer {} is not listed", printer.name))?;
        let key = agent_public(&agent)?.signing;
        Ok((agent.name, key))
    }

    pub async fn agents(&self) -> anyhow::Result<Vec<Agent>> {
        let org = self.org()?;
        Ok(self
            .client
            .raw_get(&format!("/api/v1/orgs/{org}/agents"))
            .await?)
    }
}

/// GET the chain; `None` when the organisation has none yet.
pub async fn fetch_chain(client: &Client, org: OrgId) -> anyhow::Result<Option<OrgChain>> {
    let links: Vec<ChainLink> = client
        .raw_get(&format!("/api/v1/orgs/{org}/chain"))
        .await
        .context("cannot fetch the organisation chain")?;
    let mut it = links.into_iter();
    let Some(first) = it.next() else {
        return Ok(None);
    };
    if first.seq != 0 {
        bail!(
            "the server's organisation chain starts at position {}, not 0",
            first.seq
        );
    }
    let genesis: SignedGenesis = serde_json::from_value(first.link)
        .context("the server served a malformed organisation genesis")?;
    let mut chain = OrgChain {
        genesis,
        links: Vec::new(),
    };
    for (i, l) in it.enumerate() {
        let expected = i as i64 + 1;
        if l.seq != expected {
            bail!(
                "the server's organisation chain has position {} where {expected} belongs",
                l.seq
            );
        }
        let link: SignedLink = serde_json::from_value(l.link)
            .with_context(|| format!("the server served a malformed chain link {expected}"))?;
        chain.links.push(link);
    }
    Ok(Some(chain))
}

/// An agent's public keys from the two strings the server lists (base64 Ed25519 key, `age1...`).
pub fn agent_public(a: &Agent) -> anyhow::Result<DevicePublic> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(a.signing_key.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| anyhow!("agent {} has a malformed signing key", a.id))?;
    let signing = SigningPublic::from_bytes(&raw)
        .with_context(|| format!("agent {} has an invalid signing key", a.id))?;
    let recipient: Recipient = a
        .age_recipient
        .parse()
        .with_context(|| format!("agent {} has an invalid age recipient", a.id))?;
    Ok(DevicePublic { signing, recipient })
}
