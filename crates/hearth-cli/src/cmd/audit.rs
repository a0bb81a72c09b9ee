//! `hearth audit` (the latest entries of the organisation's log) and `hearth audit verify`
//! (every hash recomputed on this machine, and the head pinned in the profile, so the next
//! verification also proves the log only grew: a server that rewrote or cut its log, and made its
//! own check agree, is still caught here).

use std::collections::HashMap;

use anyhow::{Context, bail};
use hearth_proto::audit::{AuditEntry, ChainHead};
use hearth_proto::ids::OrgId;
use hearth_proto::time_fmt::rfc3339;

use crate::cmd::fleet::{Table, print_json};
use crate::ctx::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCmd {
    /// Recompute every hash of the log here and check it extends the head this device pinned
    /// last time; pins the new head. Fails (exit 1) naming the first entry that was altered,
    /// removed or reordered, or a log cut short.
    Verify {
        /// The instance-wide log (instance administrators) instead of the organisation's.
        #[arg(long)]
        system: bool,
        #[arg(long)]
        json: bool,
    },
    /// Where the server sends its audit log on to (a syslog collector, `[audit] syslog`), how
    /// many entries wait, and the last failure (instance administrators).
    Forwarding {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub cmd: Option<AuditCmd>,
    /// How many of the latest entries to show.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// The instance-wide log (instance administrators) instead of the organisation's.
    #[arg(long)]
    pub system: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &AuditArgs) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    match args.cmd {
        Some(AuditCmd::Verify { system, json }) => verify(&mut ctx, system, json).await,
        Some(AuditCmd::Forwarding { json }) => forwarding(&ctx, json).await,
        None => list(&ctx, args).await,
    }
}

async fn forwarding(ctx: &Ctx, json: bool) -> anyhow::Result<()> {
    let f = ctx.client.audit_forwarding().await?;
    if json {
        return crate::cmd::fleet::print_json(&f);
    }
    let Some(to) = &f.syslog else {
        println!("The audit log is not forwarded ([audit] syslog is not set on the server).");
        return Ok(());
    };
    println!("Forwarded to: {to}");
    println!("Waiting:      {} entries", f.waiting);
    println!(
        "Last sent:    {}",
        f.last_sent_at
            .as_deref()
            .unwrap_or("not yet (by the instance that answered)")
    );
    if let Some(e) = &f.error {
        println!(
            "Failing since {}: {e}",
            f.failing_since.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// The log a command reads: the organisation's, or with `--system` the instance's (`None`).
fn which_log(ctx: &Ctx, system: bool) -> anyhow::Result<Option<OrgId>> {
    Ok(if system { None } else { Some(ctx.org()?) })
}

const CANNOT_READ: &str = "cannot read the audit log (admins of the organisation may)";

async fn list(ctx: &Ctx, args: &AuditArgs) -> anyhow::Result<()> {
    let org = which_log(ctx, args.system)?;
    let limit = args.limit.clamp(1, 1000);
    let head = ctx
        .client
        .audit_page(org, 0, 1)
        .await
        .context(CANNOT_READ)?
        .head;
    let page = ctx
        .client
        .audit_page(org, (head.seq - limit).max(0), limit)
        .await?;
    if args.json {
        return print_json(&page.entries);
    }
    let names = names(ctx, org).await;
    let mut t = Table::new(&["#", "TIME", "WHO", "ACTION", "TARGET", "FROM"]);
    for e in page.entries.iter().rev() {
        t.row(vec![
            e.seq.to_string(),
            rfc3339(e.ts_ms),
            actor(&names, e),
            e.action.clone(),
            e.target.clone().unwrap_or_default(),
            e.source.clone().unwrap_or_default(),
        ]);
    }
    t.print();
    Ok(())
}

/// Logins of members and names of agents, by the id an actor names (best effort: without them
/// the ids are shown).
async fn names(ctx: &Ctx, org: Option<OrgId>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(org) = org else { return out };
    if let Ok(members) = ctx.client.members(org).await {
        for m in members {
            out.insert(format!("user:{}", m.user.id), m.user.login);
        }
    }
    if let Ok(agents) = ctx.agents().await {
        for a in agents {
            out.insert(format!("agent:{}", a.id), format!("agent {}", a.name));
        }
    }
    out
}

fn actor(names: &HashMap<String, String>, e: &AuditEntry) -> String {
    names
        .get(&e.actor)
        .cloned()
        .unwrap_or_else(|| e.actor.clone())
}

#[derive(Debug, serde::Serialize)]
struct Verified {
    scope: String,
    head: ChainHead,
    /// The head this device had pinned before, which the log was proved to extend.
    previous: Option<ChainHead>,
}

async fn verify(ctx: &mut Ctx, system: bool, json: bool) -> anyhow::Result<()> {
    let org = which_log(ctx, system)?;
    // The profile key of the log's pinned head.
    let scope = org.map_or_else(|| "system".to_owned(), |o| o.to_string());
    let pinned = ctx.profile.audit_heads.get(&scope).cloned();
    let head = match ctx.client.verify_audit(org, pinned.as_ref()).await {
        Ok(head) => head,
        Err(hearth_client::ClientError::Chain(b)) => {
            let since = pinned.as_ref().map_or(String::new(), |p| {
                format!(
                    " (this device had verified it up to entry {} before)",
                    p.seq
                )
            });
            bail!(
                "the audit log does NOT verify: {b}{since}. The server's log was altered after it \
                 was written; keep this profile's pinned head as evidence"
            );
        }
        Err(e) => {
            return Err(e).context(CANNOT_READ);
        }
    };
    ctx.profile.audit_heads.insert(scope.clone(), head.clone());
    ctx.save()?;
    if json {
        return print_json(&Verified {
            scope,
            head,
            previous: pinned,
        });
    }
    let what = if system {
        "the instance's audit log"
    } else {
        "the organisation's audit log"
    };
    match pinned {
        Some(p) => println!(
            "{what} verifies here: {} entries recomputed, head #{} {}; it extends the head this device pinned (#{}), so nothing before it changed",
            head.seq, head.seq, head.hash, p.seq
        ),
        None => println!(
            "{what} verifies here: {} entries recomputed, head #{} {}; pinned, so the next `hearth audit verify` also proves nothing before it changed",
            head.seq, head.seq, head.hash
        ),
    }
    Ok(())
}
