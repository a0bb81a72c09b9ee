//! `hearth passkeys`: the passkeys that log in to your account in the web dashboard. They are
//! added in a browser (Account, Passkeys), where the authenticator is; here they are listed and
//! removed, say the passkey of a lost laptop.

use anyhow::Context as _;
use hearth_proto::api::PasskeyInfo;

#[derive(Debug, clap::Subcommand)]
pub enum PasskeysCmd {
    /// Remove a passkey (its name or id, from `hearth passkeys`): it no longer logs in.
    Remove { passkey: String },
}

pub async fn run(cmd: Option<&PasskeysCmd>, json: bool) -> anyhow::Result<()> {
    let ctx = crate::ctx::Ctx::load()?;
    let keys = ctx
        .client
        .passkeys()
        .await
        .context("cannot list your passkeys")?;
    match cmd {
        None if json => super::fleet::print_json(&keys)?,
        None if keys.is_empty() => println!(
            "no passkey logs in to your account (add one in the web dashboard: Account, Passkeys)"
        ),
        None => {
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
        }
        Some(PasskeysCmd::Remove { passkey }) => {
            let key = pick(&keys, passkey)?;
            ctx.client
                .remove_passkey(&key.id)
                .await
                .with_context(|| format!("cannot remove the passkey {:?}", key.name))?;
            println!(
                "removed: the passkey {:?} no longer logs in to your account",
                key.name
            );
        }
    }
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
            "{} passkeys are named {which:?}: give the id of the one to remove (`hearth passkeys`)",
            named.len()
        ),
    }
}
