//! `hearth legal-requests`: the legal requests for data recorded in the audit log — the
//! organisation's (its admins), or the whole instance's with `--instance` (instance admins) —
//! and `hearth legal-requests record`, by which an instance admin records one.

use anyhow::Context;
use hearth_proto::legal::{LegalRequest, NewLegalRequest};

use crate::cmd::fleet::{Table, print_json};
use crate::ctx::Ctx;

#[derive(Debug, clap::Args)]
pub struct LegalArgs {
    #[command(subcommand)]
    pub cmd: Option<LegalCmd>,
    /// Every request recorded on the instance, not only the organisation's (instance admins).
    #[arg(long)]
    pub instance: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum LegalCmd {
    /// Record a request for data (instance admins): in the instance's audit log and, unless
    /// --instance-wide, the organisation's, whose admins are told.
    Record {
        /// Who asks: the court, agency or police force.
        #[arg(long)]
        authority: String,
        /// Its case, warrant or file number.
        #[arg(long)]
        reference: Option<String>,
        /// The day it arrived (YYYY-MM-DD).
        #[arg(long)]
        received_on: String,
        /// What it asks for.
        #[arg(long)]
        requested: String,
        /// What was handed over ("nothing", "account logins and job times", ...).
        #[arg(long)]
        disclosed: String,
        /// It concerns the instance as a whole, not this organisation.
        #[arg(long)]
        instance_wide: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: &LegalArgs) -> anyhow::Result<()> {
    let ctx = Ctx::load()?;
    match &args.cmd {
        None => {
            let org = if args.instance {
                None
            } else {
                Some(ctx.org()?)
            };
            let listed = ctx
                .client
                .legal_requests(org)
                .await
                .context("cannot list the legal requests")?;
            if args.json {
                return print_json(&listed);
            }
            if listed.is_empty() {
                println!(
                    "no legal request recorded{}",
                    if org.is_some() {
                        " for this organisation"
                    } else {
                        ""
                    }
                );
                return Ok(());
            }
            table(&listed).print();
            Ok(())
        }
        Some(LegalCmd::Record {
            authority,
            reference,
            received_on,
            requested,
            disclosed,
            instance_wide,
            json,
        }) => {
            let req = NewLegalRequest {
                org: if *instance_wide {
                    None
                } else {
                    Some(ctx.org()?)
                },
                authority: authority.clone(),
                reference: reference.clone(),
                received_on: received_on.clone(),
                requested: requested.clone(),
                disclosed: disclosed.clone(),
            };
            let r = ctx
                .client
                .record_legal_request(&req)
                .await
                .context("cannot record the legal request")?;
            if *json {
                return print_json(&r);
            }
            println!(
                "recorded as entry {} of the instance's audit log{}",
                r.seq,
                if req.org.is_some() {
                    " and in the organisation's, whose admins are told"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}

fn table(listed: &[LegalRequest]) -> Table {
    let mut t = Table::new(&[
        "RECORDED",
        "BY",
        "RECEIVED",
        "AUTHORITY",
        "REFERENCE",
        "REQUESTED",
        "DISCLOSED",
    ]);
    for r in listed {
        t.row(vec![
            r.recorded_at.clone(),
            r.recorded_by.clone(),
            r.request.received_on.clone(),
            r.request.authority.clone(),
            r.request.reference.clone().unwrap_or_else(|| "-".into()),
            r.request.requested.clone(),
            r.request.disclosed.clone(),
        ]);
    }
    t
}
