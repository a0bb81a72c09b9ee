//! `hearth tokens`: the API tokens of your account (each machine's `hearth login` makes one;
//! scripts make others), and revoking one that is no longer needed or may have leaked.

use anyhow::{Context, anyhow};
use hearth_proto::api::Me;
use hearth_proto::ids::TokenId;

use crate::cmd::fleet::{Table, print_json};
use crate::ctx::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum TokensCmd {
    /// Revoke a token (by id, or by name when one token has it): what uses it stops working.
    Revoke {
        /// Token id or name (from `hearth tokens`).
        token: String,
    },
}

pub async fn run(cmd: Option<&TokensCmd>, json: bool) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    let me: Me = ctx.client.raw_get("/api/v1/me").await?;
    let this = me.token.as_ref().map(|t| t.id);
    let tokens: Vec<_> = ctx
        .client
        .tokens()
        .await
        .context("cannot list your API tokens")?
        .into_iter()
        .filter(|t| t.revoked_at.is_none())
        .collect();
    match cmd {
        None => {
            if json {
                return print_json(&tokens);
            }
            let mut t = Table::new(&[
                "ID",
                "NAME",
                "LIMITED TO",
                "CREATED",
                "LAST USED",
                "EXPIRES",
            ]);
            for k in &tokens {
                let name = match Some(k.id) == this {
                    true => format!("{} (this machine)", k.name),
                    false => k.name.clone(),
                };
                let limit = [
                    k.org.map(|o| format!("org {o}")),
                    (k.max_role != hearth_proto::Role::Owner)
                        .then(|| format!("{} at most", k.max_role)),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
                t.row(vec![
                    k.id.to_string(),
                    name,
                    if limit.is_empty() { "-".into() } else { limit },
                    k.created_at.clone(),
                    k.last_used_at.clone().unwrap_or_else(|| "never".into()),
                    k.expires_at.clone().unwrap_or_else(|| "never".into()),
                ]);
            }
            t.print();
        }
        Some(TokensCmd::Revoke { token }) => {
            let matching: Vec<_> = tokens
                .iter()
                .filter(|t| t.id.to_string() == *token || t.name == *token)
                .collect();
            let id: TokenId = match matching.as_slice() {
                [t] => t.id,
                [] => {
                    return Err(anyhow!(
                        "no API token {token:?} of yours (see `hearth tokens`)"
                    ));
                }
                _ => return Err(anyhow!("several tokens are named {token:?}: give its id")),
            };
            ctx.client
                .revoke_token(id)
                .await
                .with_context(|| format!("cannot revoke token {token}"))?;
            if Some(id) == this {
                println!(
                    "revoked this machine's token: run `hearth login` again to use hearth here"
                );
            } else {
                println!("revoked token {id}");
            }
        }
    }
    Ok(())
}
