//! `hearth passkeys`: the passkeys that log in to your account in the web dashboard. They are
//! added in a browser (Account, Passkeys), where the authenticator is; here they are listed and
//! removed, say the passkey of a lost laptop.

use anyhow::Context as _;
use hearth_proto::api::PasskeyInfo;

#[derive(Debug, clap::Subcommand)]
pub enum PasskeysCmd {
    /// Remove a passkey (its name or id, from `hearth passkeys`): it no longer logs in, and the
    /// sessions it opened end.
    Remove { passkey: String },
    /// Rename a passkey (its name or id, from `hearth passkeys`).
    Rename { passkey: String, new_name: String },
    /// Remove all of a user's passkeys and end the sessions they opened (instance admins), for
    /// one whose device was lost or taken.
    Reset {
        /// Their login.
        login: String,
    },
}

pub async fn run(cmd: Option<&PasskeysCmd>, json: bool) -> anyhow::Result<()> {
    let ctx = crate::ctx::Ctx::load()?;
    match cmd {
        None => list(&ctx, json).await,
        Some(PasskeysCmd::Remove { passkey }) => remove(&ctx, passkey).await,
        Some(PasskeysCmd::Reset { login }) => reset(&ctx, login).await,
        Some(PasskeysCmd::Rename { passkey, new_name }) => {
            let keys = mine(&ctx).await?;
            let key = pick(&keys, passkey)?;
            let renamed = ctx
                .client
                .rename_passkey(&key.id, new_name)
                .await
                .with_context(|| format!("cannot rename the passkey {:?}", key.name))?;
            println!("renamed: {:?} is now {:?}", key.name, renamed.name);
            Ok(())
        }
    }
}

async fn mine(ctx: &crate::ctx::Ctx) -> anyhow::Result<Vec<PasskeyInfo>> {
    ctx.client
        .passkeys()
        .await
        .context("cannot list your passkeys")
}

async fn list(ctx: &crate::ctx::Ctx, json: bool) -> anyhow::Result<()> {
    let keys = mine(ctx).await?;
    if json {
        return super::fleet::print_json(&keys);
    }
    if keys.is_empty() {
        println!(
            "no passkey logs in to your account (add one in the web dashboard: Account, Passkeys)"
        );
        return Ok(());
    }
    let mut t = super::fleet::Table::new(&["NAME", "ADDED", "LAST USED", "ID"]);
    for k in keys {
        t.row(vec![
            k.name,
            k.created_at,
            k.last_used_at.unwrap_or_else(|| "never".into()),
            k.id,
        ]);
    }
    t.print();
    Ok(())
}

async fn remove(ctx: &crate::ctx::Ctx, which: &str) -> anyhow::Result<()> {
    let keys = mine(ctx).await?;
    let key = pick(&keys, which)?;
    ctx.client
        .remove_passkey(&key.id)
        .await
        .with_context(|| format!("cannot remove the passkey {:?}", key.name))?;
    println!(
        "removed: the passkey {:?} no longer logs in to your account, and the sessions it opened \
         ended",
        key.name
    );
    Ok(())
}

async fn reset(ctx: &crate::ctx::Ctx, login: &str) -> anyhow::Result<()> {
    let user = super::mfa::user_by_login(ctx, login).await?;
    if let Err(e) = ctx.client.reset_passkeys(user.id).await {
        if e.status() == Some(404) {
            anyhow::bail!("{login} has no passkey");
        }
        return Err(e).context("cannot remove their passkeys");
    }
    println!(
        "The passkeys of {login} are removed, and the sessions they opened ended: they log in with \
         their passphrase (or single sign-on) until they add one again."
    );
    Ok(())
}

/// The passkey named `which`, or whose id it is: a name two passkeys share must be given as an id.
fn pick<'a>(keys: &'a [PasskeyInfo], which: &str) -> anyhow::Result<&'a PasskeyInfo> {
    if let Some(k) = keys.iter().find(|k| k.id == which) {
        return Ok(k);
    }
    let named: Vec<_> = keys.iter().filter(|k| k.name == which).collect();
    match named.as_slice() {
        [k] => Ok(k),
        [] => anyhow::bail!("you have no passkey named {which:?} (`hearth passkeys` lists them)"),
        _ => anyhow::bail!(
            "{} passkeys are named {which:?}: give the id of the one you mean (`hearth passkeys`)",
            named.len()
        ),
    }
}
