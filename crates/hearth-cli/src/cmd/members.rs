//! `hearth members list|add|remove`: member devices in the organisation chain.
//!
//! Adding signs an `AddDevice` link after comparing the fingerprint of the keys the member published
//! (`PUT /me/device`, done by their `hearth login`) and then rotates to a new epoch sealed to every
//! member, the new one included. Rotating is how the new device gets a key at all: the server keeps
//! each epoch's sealed key write-once and has no way to add one more member's copy to an existing
//! epoch, so a new member reads files from their joining epoch on. Removing signs a `RemoveDevice`
//! link that carries the next epoch (sealed to the remaining members only) and removes the account
//! from the organisation on the server.
//!
//! History: the epochs before a member joined were sealed without them, so `add` (unless
//! `--no-history`) and `grant-history` seal each earlier epoch key this admin device can open to
//! the member's devices in the verified chain and store it on the server as a *grant* for that
//! member. A grant is opened like the epoch's own copy, checked against the key the chain
//! announced for the epoch, so the server cannot slip in a key of its own.

use anyhow::{Context, anyhow, bail};
use hearth_crypto::{DevicePublic, EpochKey, Fingerprint, LinkAction, OrgChain, TrustedState};
use hearth_proto::api::{ChainLink, DeviceKey, SealedEpoch};
use hearth_proto::ids::UserId;

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
        /// Do not give the member the keys of earlier epochs: they open only files uploaded from
        /// now on.
        #[arg(long)]
        no_history: bool,
    },
    /// Give a member the keys of the epochs before they joined (the organisation's older files).
    ///
    /// For members added with `--no-history`, or by an admin device that did not hold every
    /// earlier epoch.
    GrantHistory { login: String },
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
            no_history,
        } => {
            add(
                &mut ctx,
                login,
                fingerprint.as_deref(),
                *admin,
                !*no_history,
            )
            .await
        }
        MembersCmd::GrantHistory { login } => {
            let (_, trusted) = ctx.trusted().await?;
            let user = server_member(&ctx, login).await?;
            grant_history(&ctx, &trusted, login, user, trusted.current_epoch().epoch).await
        }
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
                "mfa": m.mfa,
                "sso": m.sso,
                "passkeys": m.passkeys,
            })
        })
        .collect();
    if json {
        return print_json(&rows);
    }
    let mut t = Table::new(&[
        "LOGIN",
        "ROLE",
        "2ND FACTOR",
        "SSO",
        "PASSKEYS",
        "DEVICE",
        "FINGERPRINT",
    ]);
    for r in &rows {
        t.row(vec![
            r["login"].as_str().unwrap_or_default().to_owned(),
            r["role"].as_str().unwrap_or_default().to_owned(),
            if r["mfa"] == true { "on" } else { "off" }.to_owned(),
            match r["sso"].as_array() {
                Some(p) if !p.is_empty() => p
                    .iter()
                    .filter_map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                _ => "-".into(),
            },
            r["passkeys"].as_u64().unwrap_or_default().to_string(),
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

/// The server's id of the organisation member `login`.
async fn server_member(ctx: &Ctx, login: &str) -> anyhow::Result<UserId> {
    Ok(ctx
        .client
        .members(ctx.org()?)
        .await?
        .into_iter()
        .find(|m| m.user.login == login)
        .ok_or_else(|| anyhow!("{login} is not a member of the organisation on the server"))?
        .user
        .id)
}

/// Seals every epoch before `below` that this device can open to `login`'s devices in the
/// verified chain `trusted`, and stores each as a grant for the member `user`.
async fn grant_history(
    ctx: &Ctx,
    trusted: &TrustedState,
    login: &str,
    user: UserId,
    below: u64,
) -> anyhow::Result<()> {
    let org = ctx.org()?;
    let device = ctx.device()?;
    let recipients: Vec<_> = trusted
        .members()
        .filter(|m| m.user == login)
        .map(|m| &m.device.recipient)
        .collect();
    if recipients.is_empty() {
        bail!(
            "{login} has no device in the organisation chain: add them first (`hearth members add {login}`)"
        );
    }
    let (mut granted, mut missing) = (Vec::new(), Vec::new());
    for n in 1..below {
        let Some(key) = ctx.held_epoch_key(&device, trusted, n).await? else {
            missing.push(n);
            continue;
        };
        let sealed = key.seal_to(&recipients)?;
        ctx.client
            .raw_put(
                &format!("/api/v1/orgs/{org}/members/{user}/epochs/{n}"),
                &serde_json::to_value(SealedEpoch {
                    epoch: i64::try_from(n)?,
                    sealed: serde_json::to_value(&sealed)?,
                })?,
            )
            .await
            .with_context(|| format!("cannot store {login}'s copy of the key of epoch {n}"))?;
        granted.push(n);
    }
    if !granted.is_empty() {
        println!(
            "gave {login} the keys of {}: they can open the files uploaded before they joined",
            epochs_text(&granted)
        );
    } else if missing.is_empty() {
        println!("no earlier epoch to give {login}");
    }
    if !missing.is_empty() {
        eprintln!(
            "note: this device cannot open {} (they began before it joined and were not granted \
             to it), so {login} did not get them; an admin device that holds them can run \
             `hearth members grant-history {login}`",
            epochs_text(&missing)
        );
    }
    Ok(())
}

/// "epoch 3" or "epochs 1-4, 6".
fn epochs_text(epochs: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &n in epochs {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => runs.push((n, n)),
        }
    }
    let runs: Vec<String> = runs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let s = if epochs.len() == 1 { "" } else { "s" };
    format!("epoch{s} {}", runs.join(", "))
}

async fn add(
    ctx: &mut Ctx,
    login: &str,
    expected: Option<&str>,
    admin: bool,
    history: bool,
) -> anyhow::Result<()> {
    let org = ctx.org()?;
    let user = server_member(ctx, login).await?;
    let served: DeviceKey = ctx
        .client
        .raw_get(&format!("/api/v1/orgs/{org}/members/{user}/device"))
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
    let (_, trusted) = ctx.trusted().await?;
    println!(
        "added {login}; new uploads use epoch {} (sealed to every member)",
        key.epoch()
    );
    if history {
        grant_history(ctx, &trusted, login, user, key.epoch()).await?;
    } else {
        println!("{login} opens only files uploaded from now on (--no-history)");
    }
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
