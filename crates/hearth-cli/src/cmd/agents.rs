//! `hearth agents list|token|approve`: enrolling edge agents.
//!
//! Approving compares the fingerprint of the keys the server reports with the one the agent printed
//! (`--fingerprint`, or a question on the terminal), then signs an `AddAgent` link with this admin
//! device and hands it to the server, which appends it to the chain. Agents never get the epoch key.

use anyhow::{Context, anyhow, bail};
use hearth_crypto::{Fingerprint, LinkAction};
use hearth_proto::api::{Agent, ApproveAgentRequest, EnrollmentToken};

use crate::cmd::fleet::{Table, print_json};
use crate::ctx::{Ctx, agent_public, now};
use crate::profile::confirm_tty;

#[derive(Debug, clap::Subcommand)]
pub enum AgentsCmd {
    /// The organisation's agents and their fingerprints.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A one-time enrollment token for `hearth-agent enroll`.
    Token,
    /// Approve an enrolled agent after comparing its fingerprint.
    Approve {
        /// Agent id or name.
        agent: String,
        /// The fingerprint the agent printed; approval fails unless it matches.
        #[arg(long)]
        fingerprint: Option<String>,
        /// Restrict the agent to this pool: it then opens only that pool's jobs (and jobs for
        /// one of its printers by name). Without it, the agent takes jobs for any pool its
        /// printers are in.
        #[arg(long)]
        pool: Option<String>,
        /// Approve without asking (only with --fingerprint, which is then compared for you).
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(cmd: &AgentsCmd) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let org = ctx.org()?;
    match cmd {
        AgentsCmd::List { json } => {
            let agents = ctx.agents().await?;
            if *json {
                return print_json(&agents);
            }
            let mut t = Table::new(&["ID", "NAME", "STATUS", "CONNECTED", "FINGERPRINT"]);
            for a in &agents {
                let fp = agent_public(a)
                    .map(|k| k.fingerprint().to_string())
                    .unwrap_or_else(|e| format!("({e})"));
                t.row(vec![
                    a.id.to_string(),
                    a.name.clone(),
                    format!("{:?}", a.status).to_lowercase(),
                    if a.connected { "yes" } else { "no" }.into(),
                    fp,
                ]);
            }
            t.print();
            Ok(())
        }
        AgentsCmd::Token => {
            let t: EnrollmentToken = ctx
                .client
                .raw_post(
                    &format!("/api/v1/orgs/{org}/agents/enrollment-tokens"),
                    &serde_json::Value::Null,
                )
                .await?;
            println!("{}", t.token);
            eprintln!("valid once, until {}", t.expires_at);
            Ok(())
        }
        AgentsCmd::Approve {
            agent,
            fingerprint,
            pool,
            yes,
        } => approve(&mut ctx, agent, fingerprint.as_deref(), pool.clone(), *yes).await,
    }
}

async fn approve(
    ctx: &mut Ctx,
    which: &str,
    expected: Option<&str>,
    pool: Option<String>,
    yes: bool,
) -> anyhow::Result<()> {
    let org = ctx.org()?;
    let agents = ctx.agents().await?;
    let matches: Vec<&Agent> = agents
        .iter()
        .filter(|a| a.id.to_string() == which || a.name == which)
        .collect();
    let a = match matches.as_slice() {
        [a] => *a,
        [] => bail!("no agent {which:?} (see `hearth agents list`)"),
        _ => bail!("several agents are named {which:?}: give its id"),
    };
    let public = agent_public(a)?;
    let fp = public.fingerprint();
    let signing = public.signing;
    println!("agent {} ({})", a.name, a.id);
    println!("fingerprint reported by the server: {fp}");
    match expected {
        Some(e) => {
            let e: Fingerprint = e.parse()?;
            if e != fp {
                bail!(
                    "the fingerprint the server reports does not match the one the agent printed: NOT approving (someone may have substituted the agent's keys)"
                );
            }
        }
        None if yes => bail!("--yes needs --fingerprint, so that the comparison still happens"),
        None => {
            if !confirm_tty("Does the agent show exactly this fingerprint?") {
                bail!("not approved");
            }
        }
    }
    let device = ctx.device()?;
    let (mut chain, trusted) = ctx.trusted().await?;
    if trusted.admins().all(|m| m.device != device.public()) {
        bail!("this device is not an admin device of the organisation chain");
    }
    let link = chain
        .append(
            &device,
            LinkAction::AddAgent {
                name: a.name.clone(),
                pool,
                agent: public,
            },
            now(),
        )
        .context("cannot sign the enrollment link")?
        .clone();
    let _: Agent = ctx
        .client
        .raw_post(
            &format!("/api/v1/orgs/{org}/agents/{}/approve", a.id),
            &serde_json::to_value(ApproveAgentRequest {
                // The position this link was signed for (0 is the genesis): the server refuses any other.
                seq: Some(chain.links.len() as i64),
                link: serde_json::to_value(&link)?,
            })?,
        )
        .await
        .context("the server refused the approval")?;
    // The server appended the link at its next position; verify it landed where we signed it.
    let (_, after) = ctx.trusted().await.map_err(|e| {
        anyhow!("the approval was stored but the chain no longer verifies (another admin appended at the same time?): {e:#}")
    })?;
    if after.agent(&signing).is_none() {
        bail!("the server did not append the enrollment link to the chain");
    }
    println!("approved agent {}", a.name);
    Ok(())
}
