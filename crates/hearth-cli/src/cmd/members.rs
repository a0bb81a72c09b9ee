//! `hearth members list|add|remove`: member devices in the organisation chain.
//!
//! Adding signs an `AddDevice` link after comparing the fingerprint of the keys the member published
//! (`PUT /me/device`, done by their `hearth login`) and then rotates to a new epoch sealed to every
//! member, the new one included. Rotating is how the new device gets a key at all: the server keeps
//! each epoch's sealed key write-once and has no way to add one more member's copy to an existing
//! epoch, so a new member reads files from their joining epoch on. Removing signs a `RemoveDevice`
//! link that carries the next epoch (sealed to the remaining members only) and removes the account
//! from the organisation on the server.

use anyhow::{Context, anyhow, bail};
use hearth_crypto::{DevicePublic, EpochKey, Fingerprint, LinkAction, OrgChain};
use hearth_proto::api::{ChainLink, DeviceKey, SealedEpoch};

use crate::cmd::fleet::{Table, print_json};
use crate::ctx::{Ctx, now};
use crate::profile::confirm_tty;

#[derive(Debug, clap::Subcommand)]
pub enum MembersCmd {
    /// Members on the server, and whether the verified chain holds their device.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a member's device to the chain after comparing its fingerprint.
    Add {
        /// The member's account name (already added to the organisation on the server).
        login: String,
        /// The fingerprint the member's `hearth login` printed; adding fails unless it matches.
        #[arg(long)]
        fingerprint: Option<String>,
        /// The device may sign membership links (approve agents, add members).
        #[arg(long)]
        admin: bool,
    },
    /// Remove a member's device and rotate to a new epoch key for future uploads.
    Remove {
        login: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(cmd: &MembersCmd) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    match cmd {
        MembersCmd::List { json } => list(&mut ctx, *json).await,
        MembersCmd::Add {
            login,
            fingerprint,
            admin,
        } => add(&mut ctx, login, fingerprint.as_deref(), *admin).await,
        MembersCmd::Remove { login, yes } => remove(&mut ctx, login, *yes).await,
    }
}

async fn list(ctx: &mut Ctx, json: bool) -> anyhow::Result<()> {
    let org = ctx.org()?;
    let (_, trusted) = ctx.trusted().await?;
    let members = ctx.client.members(org).await?;
    let rows: Vec<serde_json::Value> = members
        .iter()
        .map(|m| {
            let dev = trusted.members().find(|d| d.user == m.user.login);
            serde_json::json!({
                "login": m.user.login,
                "role": m.role,
                "in_chain": dev.is_some(),
                "admin_device": dev.is_some_and(|d| d.admin),
                "fingerprint": dev.map(|d| d.device.fingerprint().to_string()),
            })
        })
        .collect();
    if json {
        return print_json(&rows);
    }
    let mut t = Table::new(&["LOGIN", "ROLE", "DEVICE", "FINGERPRINT"]);
    for r in &rows {
        t.row(vec![
            r["login"].as_str().unwrap_or_default().to_owned(),
            r["role"].as_str().unwrap_or_default().to_owned(),
            match (r["in_chain"].as_bool(), r["admin_device"].as_bool()) {
                (Some(true), Some(true)) => "admin".into(),
                (Some(true), _) => "member".into(),
                _ => "not added".into(),
            },
            r["fingerprint"].as_str().unwrap_or("-").to_owned(),
        ]);
    }
    t.print();
    Ok(())
}

/// Posts the links `chain` has beyond `from` (positions from+1..), in order.
async fn publish(ctx: &Ctx, chain: &OrgChain, from: u64) -> anyhow::Result<()> {
    let org = ctx.org()?;
    for l in chain.links.iter().filter(|l| l.link.seq > from) {
        ctx.client
            .raw_post::<ChainLink>(
                &format!("/api/v1/orgs/{org}/chain"),
                &serde_json::to_value(ChainLink {
                    seq: i64::try_from(l.link.seq)?,
                    link: serde_json::to_value(l)?,
                })?,
            )
            .await
            .with_context(|| {
                format!(
                    "cannot publish chain link {} (did another admin just change the chain?)",
                    l.link.seq
                )
            })?;
    }
    Ok(())
}

/// Seals `key` to the members of the verified `chain` and stores it.
async fn store_epoch(ctx: &Ctx, chain: &OrgChain, key: &EpochKey) -> anyhow::Result<()> {
    let org = ctx.org()?;
    let trusted = chain.verify(&chain.genesis_hash())?;
    let sealed = key.seal_for_members(&trusted)?;
    ctx.client
        .raw_post::<SealedEpoch>(
            &format!("/api/v1/orgs/{org}/epochs"),
            &serde_json::to_value(SealedEpoch {
                epoch: i64::try_from(key.epoch())?,
                sealed: serde_json::to_value(&sealed)?,
            })?,
        )
        .await
        .with_context(|| format!("cannot store the key of epoch {}", key.epoch()))?;
    Ok(())
}

async fn add(
    ctx: &mut Ctx,
    login: &str,
    expected: Option<&str>,
    admin: bool,
) -> anyhow::Result<()> {
    let org = ctx.org()?;
    let member = ctx
        .client
        .members(org)
        .await?
        .into_iter()
        .find(|m| m.user.login == login)
        .ok_or_else(|| anyhow!("{login} is not a member of the organisation on the server"))?;
    let served: DeviceKey = ctx
        .client
        .raw_get(&format!(
            "/api/v1/orgs/{org}/members/{}/device",
            member.user.id
        ))
        .await
        .with_context(|| {
            format!("{login} has not published device keys yet (they run `hearth login` first)")
        })?;
    let public: DevicePublic = serde_json::from_value(served.public)
        .with_context(|| format!("the server serves malformed device keys for {login}"))?;
    let fp = public.fingerprint();
    println!("{login}'s device fingerprint reported by the server: {fp}");
    match expected {
        Some(e) => {
            let e: Fingerprint = e.parse()?;
            if e != fp {
                bail!(
                    "the fingerprint the server reports does not match the one {login} read out: NOT adding (the keys may have been substituted)"
                );
            }
        }
        None => {
            if !confirm_tty(&format!(
                "Does {login}'s `hearth login` show exactly this fingerprint?"
            )) {
                bail!("not added");
            }
        }
    }
    let device = ctx.device()?;
    let (mut chain, trusted) = ctx.trusted().await?;
    let from = trusted.checkpoint().seq;
    chain
        .append(
            &device,
            LinkAction::AddDevice {
                user: login.to_owned(),
                device: public,
                admin,
            },
            now(),
        )
        .context("cannot sign the membership link")?;
    let key = chain.rotate_epoch(&device, now())?;
    publish(ctx, &chain, from).await?;
    store_epoch(ctx, &chain, &key).await?;
    ctx.trusted().await?;
    println!(
        "added {login}; new uploads use epoch {} (sealed to every member)",
        key.epoch()
    );
    Ok(())
}

async fn remove(ctx: &mut Ctx, login: &str, yes: bool) -> anyhow::Result<()> {
    let org = ctx.org()?;
    let device = ctx.device()?;
    let (mut chain, trusted) = ctx.trusted().await?;
    let targets: Vec<_> = trusted
        .members()
        .filter(|m| m.user == login)
        .map(|m| m.device.signing)
        .collect();
    if targets.is_empty() {
        bail!("{login} has no device in the organisation chain");
    }
    if !yes && !confirm_tty(&format!("Remove {login} and rotate the organisation key?")) {
        bail!("not removed");
    }
    let from = trusted.checkpoint().seq;
    let mut keys = Vec::new();
    for t in &targets {
        keys.push(
            chain
                .remove_device(&device, t, now())
                .context("cannot sign the removal")?,
        );
    }
    publish(ctx, &chain, from).await?;
    for k in &keys {
        store_epoch(ctx, &chain, k).await?;
    }
    let key = keys.last().ok_or_else(|| anyhow!("nothing removed"))?;
    ctx.trusted().await?;
    if let Some(m) = ctx
        .client
        .members(org)
        .await?
        .into_iter()
        .find(|m| m.user.login == login)
    {
        ctx.client
            .remove_member(org, m.user.id)
            .await
            .context("removed from the key chain, but the server refused to remove the account from the organisation")?;
    }
    println!(
        "removed {login}; new uploads use epoch {}, which {login} never receives",
        key.epoch()
    );
    Ok(())
}
