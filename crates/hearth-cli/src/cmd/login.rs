//! `hearth setup`, `hearth login`, `hearth passwd` and `hearth org init|show`: accounts, device keys and
//! the organisation genesis.
//!
//! The passphrase never leaves this machine. Two things are derived from it: the login secret
//! (Argon2id, salted with the server and account; sent at login) and the key that wraps the device
//! keys (age scrypt with a random salt; the server stores only the wrapped bundle).

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use hearth_client::Client;
use hearth_crypto::{DeviceKeys, KdfParams, OrgChain, WrappedKeyBundle, derive_login_secret};
use hearth_proto::api::{
    ChainLink, ChangeSecretRequest, CreateTokenRequest, KeyBundle, SealedEpoch, SetupRequest,
};
use hearth_proto::ids::OrgId;

use crate::ctx::{Ctx, fetch_chain, normalize_server, now};
use crate::profile::{self, Profile, kdf_params};

#[derive(Debug, clap::Args)]
pub struct PassArgs {
    /// Read the passphrase from this file (for scripts); otherwise `HEARTH_PASSPHRASE` or a prompt.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// Server address, e.g. https://hearth.example.org
    pub server: String,
    /// The one-time setup token hearthd printed at its first start.
    #[arg(long)]
    pub token: String,
    /// Your account name.
    #[arg(long)]
    pub login: String,
    /// The organisation's name.
    #[arg(long)]
    pub org: String,
    #[command(flatten)]
    pub pass: PassArgs,
}

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Server address, e.g. https://hearth.example.org
    pub server: String,
    /// Your account name.
    #[arg(long, required_unless_present = "sso", conflicts_with = "sso")]
    pub login: Option<String>,
    /// Log in through this single sign-on provider of the server (its id; may be left out when
    /// the server has one), in your browser; the passphrase is still asked: it unlocks your keys.
    #[arg(long, value_name = "PROVIDER", num_args = 0..=1, default_missing_value = "")]
    pub sso: Option<String>,
    /// Organisation (name or id); needed when you belong to several.
    #[arg(long)]
    pub org: Option<String>,
    /// The organisation fingerprint an admin read to you (`hearth org show`): pins the genesis
    /// only if it matches.
    #[arg(long, value_name = "FINGERPRINT")]
    pub org_fingerprint: Option<String>,
    #[command(flatten)]
    pub pass: PassArgs,
}

#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    #[command(flatten)]
    pub pass: PassArgs,
    /// Read the new passphrase from this file; otherwise `HEARTH_NEW_PASSPHRASE` or a prompt.
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
    /// Also revoke every API token of your account (scripts and other machines log in again);
    /// this machine gets a new one. Other browser sessions end in any case.
    #[arg(long)]
    pub revoke_tokens: bool,
}

pub(crate) fn login_secret(
    pass: &str,
    server: &str,
    login: &str,
    kdf: &KdfParams,
) -> anyhow::Result<zeroize::Zeroizing<String>> {
    Ok(derive_login_secret(pass, server, login, kdf)
        .map_err(|e| anyhow!("{e}"))?
        .expose_hex())
}

/// What to check after a refused login besides the passphrase: the login secret is salted with
/// the server's address as typed, so an account created through one address of a server (its IP,
/// `127.0.0.1`, a proxy's name) does not log in through another. When the server states its
/// public address and it is not the one typed, that is the address to use.
async fn address_hint(client: &Client, server: &str) -> String {
    let public = client
        .info()
        .await
        .ok()
        .and_then(|i| i.public_url)
        .map(|u| normalize_server(&u));
    match public {
        Some(p) if p != server => format!(
            "This server's address is {p}, not {server}: the login secret depends on the \
             address the account was created through, usually that one, so try `hearth login {p}`"
        ),
        _ => format!(
            "Check the passphrase, and that the account was created through this same address \
             ({server}): the login secret depends on it, so an account made through \
             http://127.0.0.1:8080 does not log in through http://localhost:8080"
        ),
    }
}

pub async fn setup(args: &SetupArgs) -> anyhow::Result<()> {
    let server = normalize_server(&args.server);
    let kdf = kdf_params();
    let pass = profile::passphrase(
        args.pass.passphrase_file.as_deref(),
        "HEARTH_PASSPHRASE",
        "New passphrase: ",
        true,
    )?;
    let secret = login_secret(&pass, &server, &args.login, &kdf)?;
    let client = Client::new(&server)?;
    let out = client
        .setup(&SetupRequest {
            token: args.token.clone(),
            login: args.login.clone(),
            secret: secret.to_string(),
            org_name: args.org.clone(),
        })
        .await
        .context("setup failed")?;
    eprintln!(
        "created account {} and organisation {}",
        out.user.login, out.org.name
    );
    let mut ctx = do_login(
        &server,
        &args.login,
        &pass,
        &kdf,
        Some(&out.org.id.to_string()),
        None,
    )
    .await?;
    init_org(&mut ctx).await
}

pub async fn login(args: &LoginArgs) -> anyhow::Result<()> {
    let server = normalize_server(&args.server);
    let kdf = kdf_params();
    let org = args.org.as_deref();
    let fingerprint = args.org_fingerprint.as_deref();
    if let Some(provider) = &args.sso {
        let (session, login) = super::sso::session(&server, provider).await?;
        // An account a provider made has no keys yet: its passphrase is chosen now, so typed twice.
        let new = matches!(
            session.raw_get::<KeyBundle>("/api/v1/me/key-bundle").await,
            Err(e) if e.status() == Some(404)
        );
        let prompt = if new {
            "Choose a passphrase for your keys (the provider only logs you in): "
        } else {
            "Passphrase (it unlocks your keys; the provider only logs you in): "
        };
        let pass = profile::passphrase(
            args.pass.passphrase_file.as_deref(),
            "HEARTH_PASSPHRASE",
            prompt,
            new,
        )?;
        return logged_in(session, &server, &login, &pass, &kdf, org, fingerprint)
            .await
            .map(drop);
    }
    let login = args.login.as_deref().unwrap_or_default();
    let pass = profile::passphrase(
        args.pass.passphrase_file.as_deref(),
        "HEARTH_PASSPHRASE",
        "Passphrase: ",
        false,
    )?;
    do_login(&server, login, &pass, &kdf, org, fingerprint)
        .await
        .map(drop)
}

/// The code of the account's second factor: `HEARTH_MFA_CODE`, else asked on the terminal.
pub(crate) fn mfa_code() -> anyhow::Result<zeroize::Zeroizing<String>> {
    match std::env::var("HEARTH_MFA_CODE") {
        Ok(c) => Ok(zeroize::Zeroizing::new(c)),
        Err(_) => profile::prompt_tty("Code of your authenticator app (or a recovery code): ")
            .map_err(|_| {
                anyhow::anyhow!(
                    "this account asks for a second factor: run this in a terminal, or set \
                     HEARTH_MFA_CODE to the code of its authenticator app (or a recovery code)"
                )
            }),
    }
}

/// Opens a session with the login secret; for an account with a second factor, asks for its code
/// (`HEARTH_MFA_CODE`, else a prompt on the terminal) and logs in with it.
pub async fn open_session(session: &mut Client, login: &str, secret: &str) -> anyhow::Result<()> {
    match session.login(login, secret).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("mfa_required") => {
            let code = mfa_code()?;
            session
                .login_with_code(login, secret, Some(&code))
                .await
                .map(drop)
                .map_err(anyhow::Error::new)
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

/// Logs in, unwraps (or creates and wraps) the device keys, creates an API token for this CLI,
/// selects the organisation and pins its genesis when there is one.
async fn do_login(
    server: &str,
    login: &str,
    pass: &str,
    kdf: &KdfParams,
    org: Option<&str>,
    org_fingerprint: Option<&str>,
) -> anyhow::Result<Ctx> {
    let secret = login_secret(pass, server, login, kdf)?;
    let mut session = Client::new(server)?;
    if let Err(e) = open_session(&mut session, login, &secret).await {
        let wrong_secret = e
            .downcast_ref::<hearth_client::ClientError>()
            .is_some_and(|c| c.status() == Some(401) && c.code() == Some("unauthenticated"));
        if wrong_secret {
            let hint = address_hint(&session, server).await;
            return Err(e.context(format!("login failed. {hint}")));
        }
        return Err(e.context("login failed"));
    }
    logged_in(session, server, login, pass, kdf, org, org_fingerprint).await
}

/// With a session of `login`: unwraps (or creates and wraps) the device keys with the passphrase,
/// creates an API token for this CLI, selects the organisation and pins its genesis when there is
/// one.
async fn logged_in(
    mut session: Client,
    server: &str,
    login: &str,
    pass: &str,
    kdf: &KdfParams,
    org: Option<&str>,
    org_fingerprint: Option<&str>,
) -> anyhow::Result<Ctx> {
    let keys = match session.raw_get::<KeyBundle>("/api/v1/me/key-bundle").await {
        Ok(b) => {
            let wrapped: WrappedKeyBundle = serde_json::from_value(b.bundle)
                .context("the server's copy of your wrapped keys is malformed")?;
            let keys = wrapped
                .unwrap_keys(pass, kdf)
                .context("cannot unwrap your device keys")?;
            eprintln!("unwrapped your device keys");
            keys
        }
        Err(e) if e.status() == Some(404) => {
            let keys = DeviceKeys::generate();
            let wrapped = keys
                .to_wrapped(pass, kdf)
                .context("cannot wrap the new device keys")?;
            session
                .raw_put(
                    "/api/v1/me/key-bundle",
                    &serde_json::to_value(KeyBundle {
                        bundle: serde_json::to_value(&wrapped)?,
                    })?,
                )
                .await
                .context("cannot store the wrapped device keys")?;
            eprintln!("created device keys (stored on the server wrapped under your passphrase)");
            keys
        }
        Err(e) => return Err(e).context("cannot fetch your wrapped device keys"),
    };
    session
        .raw_put(
            "/api/v1/me/device",
            &serde_json::json!({ "public": keys.public() }),
        )
        .await
        .context("cannot publish the device's public keys")?;
    let token = cli_token(&session)
        .await
        .context("cannot create an API token for the CLI")?;
    let memberships = session.orgs().await?;
    let chosen = match org {
        Some(o) => Some(
            memberships
                .iter()
                .find(|m| m.org.name == o || m.org.id.to_string() == o)
                .ok_or_else(|| anyhow!("you are not a member of an organisation named {o:?}"))?,
        ),
        None if memberships.len() == 1 => memberships.first(),
        None if memberships.is_empty() => None,
        None => bail!(
            "you belong to several organisations; choose one with --org ({})",
            memberships
                .iter()
                .map(|m| m.org.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let _ = session.logout().await;
    let dir = profile::config_dir()?;
    profile::save_device(&dir, &keys)?;
    // Logging in again on this machine keeps what it pinned and saw for the same organisation, so
    // a re-login cannot be used to swap the genesis or roll the chain back.
    let previous = Profile::load(&dir).ok().filter(|p| {
        p.server == server && p.org_id.is_some() && p.org_id == chosen.map(|m| m.org.id)
    });
    let mut profile = Profile {
        server: server.to_owned(),
        login: login.to_owned(),
        token,
        org_id: chosen.map(|m| m.org.id),
        org_name: chosen.map(|m| m.org.name.clone()),
        ..Profile::default()
    };
    if let Some(prev) = previous {
        profile.genesis = prev.genesis;
        profile.checkpoint = prev.checkpoint;
        profile.bridge_key = prev.bridge_key;
        profile.bridge_printer = prev.bridge_printer;
        profile.bridge_pool = prev.bridge_pool;
    }
    let client = Client::new(server)?.with_token(profile.token.clone());
    let mut ctx = Ctx {
        dir,
        profile,
        client,
    };
    ctx.save()?;
    println!("device fingerprint: {}", keys.fingerprint());
    let pinned = async {
        if ctx.profile.genesis.is_some() {
            let (chain, _) = ctx.trusted().await?;
            println!("organisation fingerprint: {}", chain.genesis.fingerprint());
        } else if let Some(org) = ctx.profile.org_id {
            pin_genesis(&mut ctx, org, &keys, org_fingerprint).await?;
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = pinned {
        let by_policy = e.chain().any(|c| {
            c.downcast_ref::<hearth_client::ClientError>()
                .is_some_and(|c| c.code() == Some("mfa_required_by_org"))
        });
        if by_policy {
            return Err(e.context(
                "logged in, but the organisation asks for a second factor first: set one up \
                 (`hearth mfa on`, then `hearth mfa confirm CODE`), then run this `hearth login` again",
            ));
        }
        return Err(e);
    }
    Ok(ctx)
}

/// Pins the organisation genesis on this device. Safe without asking when this user's own device
/// founded the organisation (the server cannot forge its signature) or when the fingerprint an
/// admin read out matches; otherwise it is trust on first use, and we say so.
async fn pin_genesis(
    ctx: &mut Ctx,
    org: OrgId,
    keys: &DeviceKeys,
    expected: Option<&str>,
) -> anyhow::Result<()> {
    let Some(chain) = fetch_chain(&ctx.client, org).await? else {
        eprintln!("the organisation has no keys yet: an owner runs `hearth org init`");
        return Ok(());
    };
    let genesis = chain.genesis_hash();
    let fp = chain.genesis.fingerprint();
    if let Some(e) = expected {
        let e: hearth_crypto::Fingerprint = e.parse()?;
        if e != fp {
            bail!(
                "the organisation genesis the server serves has fingerprint {fp}, not the one you were given: refusing to trust it"
            );
        }
    } else if chain.genesis.genesis.founder != keys.public() {
        eprintln!(
            "warning: pinned the organisation on first use; compare its fingerprint with an admin's `hearth org show`:\n  {fp}"
        );
    }
    let trusted = chain
        .verify(&genesis)
        .context("the organisation chain does not verify")?;
    ctx.profile.genesis = Some(genesis);
    ctx.profile.checkpoint = Some(trusted.checkpoint());
    ctx.save()?;
    println!("organisation fingerprint: {fp}");
    if trusted.member(&keys.public().signing).is_none() {
        eprintln!(
            "this device is not a member of the organisation's key chain yet: an admin adds it with `hearth members add {}`",
            ctx.profile.login
        );
    }
    Ok(())
}

/// `hearth org init`: the founder's device signs the genesis, publishes it as chain position 0,
/// and stores epoch 1's key sealed to itself.
pub async fn init_org(ctx: &mut Ctx) -> anyhow::Result<()> {
    let org = ctx.org()?;
    if fetch_chain(&ctx.client, org).await?.is_some() {
        bail!("the organisation already has a key chain (see `hearth org show`)");
    }
    let device = ctx.device()?;
    let name = ctx.profile.org_name.clone().unwrap_or_default();
    let (chain, epoch) = OrgChain::create(&device, &ctx.profile.login, &name, now());
    let genesis = chain.genesis_hash();
    let trusted = chain.verify(&genesis)?;
    ctx.client
        .raw_post::<ChainLink>(
            &format!("/api/v1/orgs/{org}/chain"),
            &serde_json::to_value(ChainLink {
                seq: 0,
                link: serde_json::to_value(&chain.genesis)?,
            })?,
        )
        .await
        .context("cannot publish the organisation genesis")?;
    let sealed = epoch.seal_for_members(&trusted)?;
    ctx.client
        .raw_post::<SealedEpoch>(
            &format!("/api/v1/orgs/{org}/epochs"),
            &serde_json::to_value(SealedEpoch {
                epoch: 1,
                sealed: serde_json::to_value(&sealed)?,
            })?,
        )
        .await
        .context("cannot store the epoch key")?;
    ctx.profile.genesis = Some(genesis);
    ctx.profile.checkpoint = Some(trusted.checkpoint());
    ctx.save()?;
    println!("organisation fingerprint: {}", chain.genesis.fingerprint());
    Ok(())
}

/// `hearth org show`: the verified organisation, its fingerprint, members and agents.
pub async fn show_org(ctx: &mut Ctx, json: bool) -> anyhow::Result<()> {
    let (chain, trusted) = ctx.trusted().await?;
    // The server's own view (its policy), beside the verified chain.
    let org: hearth_proto::api::Org = ctx
        .client
        .raw_get(&format!("/api/v1/orgs/{}", ctx.org()?))
        .await
        .context("cannot read the organisation")?;
    if json {
        let v = serde_json::json!({
            "require_mfa": org.require_mfa,
            "require_approval": org.require_approval,
            "require_sso": org.require_sso,
            "org_id": trusted.org_id(),
            "name": trusted.org_name(),
            "fingerprint": chain.genesis.fingerprint().to_string(),
            "genesis": trusted.genesis_hash().to_hex(),
            "links": trusted.checkpoint().seq,
            "epoch": trusted.current_epoch().epoch,
            "members": trusted.members().map(|m| serde_json::json!({"user": m.user, "admin": m.admin, "fingerprint": m.device.fingerprint().to_string()})).collect::<Vec<_>>(),
            "agents": trusted.agents().map(|a| serde_json::json!({"name": a.name, "pool": a.pool, "fingerprint": a.agent.fingerprint().to_string()})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("Organisation: {}", trusted.org_name());
    println!("Fingerprint:  {}", chain.genesis.fingerprint());
    println!(
        "Logins:       {}",
        if org.require_mfa {
            "members must have a second factor (`hearth org mfa optional` to lift)"
        } else {
            "a second factor is up to each member (`hearth org mfa required` to require it)"
        }
    );
    if org.require_sso {
        println!(
            "              and log in through single sign-on (`hearth org sso optional` to lift)"
        );
    }
    println!(
        "Jobs:         {}",
        if org.require_approval {
            "operators' jobs wait for an admin's approval (`hearth org approval off` to lift)"
        } else {
            "go to printers without approval (`hearth org approval required` to ask for it)"
        }
    );
    println!(
        "Chain:        {} links, current epoch {}",
        trusted.checkpoint().seq,
        trusted.current_epoch().epoch
    );
    for m in trusted.members() {
        println!(
            "Member:       {}{}  {}",
            m.user,
            if m.admin { " (admin)" } else { "" },
            m.device.fingerprint()
        );
    }
    for a in trusted.agents() {
        println!(
            "Agent:        {}{}  {}",
            a.name,
            a.pool
                .as_ref()
                .map(|p| format!(" (only pool {p})"))
                .unwrap_or_default(),
            a.agent.fingerprint()
        );
    }
    Ok(())
}

/// `hearth org mfa required|optional` (`approval: false`): whether the organisation's members
/// must have a second factor (admins; an admin without one is refused, so as not to be locked
/// out). `hearth org approval required|off` (`approval: true`): whether jobs of members below
/// admin wait for an admin's approval.
/// An organisation's on/off policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Mfa,
    Approval,
    Sso,
}

pub async fn org_policy(policy: Policy, require: bool) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let org = ctx.org()?;
    let org = match policy {
        Policy::Mfa => ctx.client.set_mfa_policy(org, require).await,
        Policy::Approval => ctx.client.set_approval_policy(org, require).await,
        Policy::Sso => ctx.client.set_sso_policy(org, require).await,
    }
    .context("cannot change the organisation's policy")?;
    let said = match (policy, require) {
        (Policy::Mfa, true) => {
            "members must have a second factor; those without one are refused until \
                          they set one up (`hearth mfa on`)"
        }
        (Policy::Mfa, false) => "a second factor is up to each member",
        (Policy::Approval, true) => {
            "jobs of members below admin now wait for an admin's approval (`hearth \
                         queue` lists them; `hearth approve JOB` / `hearth reject JOB --reason ...`)"
        }
        (Policy::Approval, false) => "jobs go to printers without approval",
        (Policy::Sso, true) => {
            "members must log in through single sign-on (`hearth login --sso`, the dashboard's \
             \"Log in with ...\"); their passphrase logins and the API tokens made in them are \
             refused in it"
        }
        (Policy::Sso, false) => "a passphrase login will do too",
    };
    println!("{}: {said}", org.name);
    Ok(())
}

/// `hearth passwd`: re-wraps the device keys under a new passphrase and changes the login secret in
/// one server transaction.
/// A new API token for the CLI on this machine, from a logged-in session.
async fn cli_token(session: &Client) -> anyhow::Result<String> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "this machine".into());
    Ok(session
        .create_token(&CreateTokenRequest {
            name: format!("hearth CLI on {host}"),
            org: None,
            max_role: None,
            expires_in_days: None,
        })
        .await?
        .token)
}

pub async fn passwd(args: &PasswdArgs) -> anyhow::Result<()> {
    let dir = profile::config_dir()?;
    let mut p = Profile::load(&dir)?;
    let kdf = kdf_params();
    let old = profile::passphrase(
        args.pass.passphrase_file.as_deref(),
        "HEARTH_PASSPHRASE",
        "Current passphrase: ",
        false,
    )?;
    let new = profile::passphrase(
        args.new_passphrase_file.as_deref(),
        "HEARTH_NEW_PASSPHRASE",
        "New passphrase: ",
        true,
    )?;
    let old_secret = login_secret(&old, &p.server, &p.login, &kdf)?;
    let new_secret = login_secret(&new, &p.server, &p.login, &kdf)?;
    let mut session = Client::new(&p.server)?;
    open_session(&mut session, &p.login, &old_secret)
        .await
        .context("login with the current passphrase failed")?;
    let b: KeyBundle = session
        .raw_get("/api/v1/me/key-bundle")
        .await
        .context("cannot fetch your wrapped device keys")?;
    let wrapped: WrappedKeyBundle = serde_json::from_value(b.bundle)?;
    let rewrapped = wrapped
        .rewrap(&old, &new, &kdf)
        .context("cannot re-wrap your device keys")?;
    session
        .raw_put(
            "/api/v1/me/secret",
            &serde_json::to_value(ChangeSecretRequest {
                current_secret: old_secret.to_string(),
                new_secret: new_secret.to_string(),
                key_bundle: Some(serde_json::to_value(&rewrapped)?),
                revoke_tokens: args.revoke_tokens,
            })?,
        )
        .await
        .context("the server refused the passphrase change")?;
    println!("passphrase changed; your device keys are re-wrapped under it");
    if args.revoke_tokens {
        // This machine's token went with the others: a new one, from the session still open.
        p.token = cli_token(&session).await.context(
            "every API token was revoked, and a new one for this machine could not be made: run `hearth login`",
        )?;
        p.save(&dir)?;
        println!("every API token of your account is revoked; this machine has a new one");
    }
    let _ = session.logout().await;
    Ok(())
}
