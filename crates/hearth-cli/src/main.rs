//! `hearth`, the member's command line. One module per subcommand under `cmd/`; `profile` is what a
//! login remembers; `ctx` is the logged-in context and the only way to public keys (a verified chain).

mod cmd;
mod ctx;
mod profile;

use clap::{Parser, Subcommand};

/// Hearth: a self-hosted cloud for 3D-printer fleets that never sees your designs.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a print file contains: slicer facts, our own analysis, thumbnails.
    Inspect(cmd::inspect::Args),
    /// Create the first owner and organisation on a new server (with hearthd's one-time token).
    Setup(cmd::login::SetupArgs),
    /// Log in on this machine: unwrap (or create) your device keys and pin the organisation.
    Login(cmd::login::LoginArgs),
    /// Change your passphrase (re-wraps your device keys).
    Passwd(cmd::login::PasswdArgs),
    /// Your API tokens (one per machine you logged in on, and your scripts'); revoke one.
    #[command(args_conflicts_with_subcommands = true)]
    Tokens {
        #[command(subcommand)]
        cmd: Option<cmd::tokens::TokensCmd>,
        #[arg(long)]
        json: bool,
    },
    /// A second factor for your logins: an authenticator app's codes and recovery codes.
    Mfa {
        #[command(subcommand)]
        cmd: Option<cmd::mfa::MfaCmd>,
    },
    /// Your accounts at the server's single sign-on providers; `unlink` one.
    Sso {
        #[command(subcommand)]
        cmd: Option<cmd::sso::SsoCmd>,
        #[arg(long)]
        json: bool,
    },
    /// The passkeys that log in to your account in the web dashboard; `remove` one.
    Passkeys {
        #[command(subcommand)]
        cmd: Option<cmd::passkeys::PasskeysCmd>,
        #[arg(long)]
        json: bool,
    },
    /// The organisation's key chain.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Your device keys; export them for the stock `age` tool.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCmd),
    /// Member devices in the organisation's key chain.
    #[command(subcommand)]
    Members(cmd::members::MembersCmd),
    /// The organisation's audit log; `hearth audit verify` recomputes it here and pins its head.
    Audit(cmd::audit::AuditArgs),
    /// Legal requests for data recorded in the audit log (the organisation's; --instance: all);
    /// `record` (instance admins) adds one.
    #[command(name = "legal-requests")]
    LegalRequests(cmd::legal::LegalArgs),
    /// Enroll and list edge agents.
    #[command(subcommand)]
    Agents(cmd::agents::AgentsCmd),
    /// Notification channels (admins): a signed webhook, Slack, Discord, ntfy or e-mail.
    #[command(subcommand)]
    Notify(cmd::notify::NotifyCmd),
    /// Analyse, seal and upload a print file to the organisation's library.
    Upload(cmd::upload::UploadArgs),
    /// The organisation's library, names opened locally; `hearth files delete ID` removes one.
    #[command(args_conflicts_with_subcommands = true)]
    Files {
        #[command(subcommand)]
        cmd: Option<cmd::files::FilesCmd>,
        #[arg(long)]
        json: bool,
    },
    /// Download and open a file of the library.
    Download(cmd::files::DownloadArgs),
    /// Seal a print file as a signed job for a printer or a pool.
    Print(cmd::upload::PrintArgs),
    /// The organisation's printers and their state; `hearth printers load` after a spool change.
    #[command(args_conflicts_with_subcommands = true)]
    Printers {
        #[command(subcommand)]
        cmd: Option<cmd::fleet::PrintersCmd>,
        #[arg(long)]
        json: bool,
    },
    /// The material library; `hearth materials usage` for the filament used per material.
    #[command(args_conflicts_with_subcommands = true)]
    Materials {
        #[command(subcommand)]
        cmd: Option<cmd::inventory::MaterialsCmd>,
    },
    /// The spool inventory: what is left on each spool and where it is.
    #[command(args_conflicts_with_subcommands = true)]
    Spools {
        #[command(subcommand)]
        cmd: Option<cmd::inventory::SpoolsCmd>,
    },
    /// The fleet over the last days: per printer, time printing, idle, paused, in error and
    /// offline, its utilisation, and how the jobs that ended on it ended.
    Stats {
        /// The last N days (1-365).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Per member instead: jobs ended, filament taken from spools and its cost, and the
        /// grams and print time their completed jobs revealed (to bill members by).
        #[arg(long)]
        members: bool,
        /// With --members: as CSV, for a spreadsheet.
        #[arg(long, requires = "members", conflicts_with = "json")]
        csv: bool,
        #[arg(long)]
        json: bool,
    },
    /// Printers' maintenance reminders: tasks due every so many hours of printing or days;
    /// `set`, `done`, `remove`.
    #[command(args_conflicts_with_subcommands = true)]
    Maintenance {
        #[command(subcommand)]
        cmd: Option<cmd::maintenance::MaintenanceCmd>,
        #[arg(long)]
        json: bool,
    },
    /// The latest frame of a printer's camera, checked and opened on this machine (the server
    /// cannot see it); --fresh asks for a new one.
    Camera(cmd::camera::CameraArgs),
    /// Timelapses of jobs: without JOB, the ones kept; with it, its frames checked and opened on
    /// this machine into numbered images, ready for ffmpeg.
    Timelapse(cmd::timelapse::TimelapseArgs),
    /// Printers and active jobs, live (updates in place).
    Status {
        /// One JSON event per line.
        #[arg(long)]
        json: bool,
        /// Stop after this many live events (for scripts).
        #[arg(long, value_name = "N")]
        max_events: Option<u64>,
    },
    /// Jobs: active ones (and refused), or all with --all; --since/--until a period, --csv for a
    /// spreadsheet (names opened here).
    Jobs(cmd::fleet::JobsArgs),
    /// The fleet queue in the order jobs go out (priority, then age); `top` and `priority` move a
    /// queued job.
    #[command(args_conflicts_with_subcommands = true)]
    Queue {
        #[command(subcommand)]
        cmd: Option<cmd::fleet::QueueCmd>,
        #[arg(long)]
        json: bool,
    },
    /// Serve the OctoPrint upload API on this machine so slicers' uploads are sealed here first.
    Bridge(cmd::bridge::BridgeArgs),
    /// Your own dashboard in the browser, served by this machine: file names, thumbnails and
    /// camera frames opened here, uploads and prints sealed and signed here.
    Ui(cmd::ui::UiArgs),
    /// Pause a printing job.
    Pause(JobArg),
    /// Resume a paused job.
    Resume(JobArg),
    /// Cancel a job.
    Cancel(JobArg),
    /// Approve jobs waiting for an admin's approval (organisations that require it: `hearth org
    /// approval required`); each then goes to a printer like any queued job.
    Approve {
        /// Job ids.
        #[arg(required_unless_present = "waiting")]
        jobs: Vec<String>,
        /// Every job waiting for approval now (a backlog, or after `hearth org approval off`,
        /// which leaves waiting jobs waiting).
        #[arg(long, conflicts_with = "jobs")]
        waiting: bool,
        #[arg(long)]
        json: bool,
    },
    /// Reject a job waiting for an admin's approval: it is cancelled, with your reason as its
    /// message for the member who submitted it.
    Reject {
        /// Job ids.
        #[arg(required = true)]
        jobs: Vec<String>,
        /// Why, for the submitter (one line).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct JobArg {
    /// Job id.
    job: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum OrgCmd {
    /// Create the organisation's genesis and first epoch key (the founding owner, once).
    Init,
    /// The verified organisation: fingerprint, members, agents.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Whether members must have a second factor to act in the organisation (admins).
    Mfa {
        #[arg(value_enum)]
        policy: MfaPolicyArg,
    },
    /// Whether jobs of members below admin wait for an admin's approval before they print
    /// (admins; `hearth approve` / `hearth reject`).
    Approval {
        #[arg(value_enum)]
        policy: ApprovalPolicyArg,
    },
    /// Whether members must have logged in through single sign-on to act in the organisation
    /// (admins, themselves logged in through it: `hearth login --sso`).
    Sso {
        #[arg(value_enum)]
        policy: SsoPolicyArg,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SsoPolicyArg {
    /// Sessions and API tokens not from a single sign-on login are refused in the organisation.
    Required,
    /// A passphrase login will do too.
    Optional,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ApprovalPolicyArg {
    /// Operators' jobs wait in the queue until an admin approves them.
    Required,
    /// Jobs go to printers without approval.
    Off,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MfaPolicyArg {
    /// Members without a second factor are refused until they set one up.
    Required,
    /// Up to each member.
    Optional,
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect(args) => cmd::inspect::run(&args),
        Command::Setup(args) => cmd::login::setup(&args).await,
        Command::Login(args) => cmd::login::login(&args).await,
        Command::Passwd(args) => cmd::login::passwd(&args).await,
        Command::Mfa { cmd } => cmd::mfa::run(cmd.as_ref()).await,
        Command::Sso { cmd, json } => cmd::sso::run(cmd.as_ref(), json).await,
        Command::Passkeys { cmd, json } => cmd::passkeys::run(cmd.as_ref(), json).await,
        Command::Tokens { cmd, json } => cmd::tokens::run(cmd.as_ref(), json).await,
        Command::Org(OrgCmd::Init) => cmd::login::init_org(&mut ctx::Ctx::load()?).await,
        Command::Org(OrgCmd::Show { json }) => {
            cmd::login::show_org(&mut ctx::Ctx::load()?, json).await
        }
        Command::Org(OrgCmd::Mfa { policy }) => {
            let on = matches!(policy, MfaPolicyArg::Required);
            cmd::login::org_policy(cmd::login::Policy::Mfa, on).await
        }
        Command::Org(OrgCmd::Approval { policy }) => {
            let on = matches!(policy, ApprovalPolicyArg::Required);
            cmd::login::org_policy(cmd::login::Policy::Approval, on).await
        }
        Command::Org(OrgCmd::Sso { policy }) => {
            let on = matches!(policy, SsoPolicyArg::Required);
            cmd::login::org_policy(cmd::login::Policy::Sso, on).await
        }
        Command::Keys(c) => cmd::keys::run(&c).await,
        Command::Members(c) => cmd::members::run(&c).await,
        Command::Agents(c) => cmd::agents::run(&c).await,
        Command::LegalRequests(args) => cmd::legal::run(&args).await,
        Command::Notify(c) => cmd::notify::run(&c).await,
        Command::Audit(args) => cmd::audit::run(&args).await,
        Command::Upload(args) => cmd::upload::upload(&args).await,
        Command::Files { cmd: None, json } => cmd::files::list(json).await,
        Command::Files {
            cmd: Some(cmd::files::FilesCmd::Delete { id, yes }),
            ..
        } => cmd::files::delete(&id, yes).await,
        Command::Download(args) => cmd::files::download(&args).await,
        Command::Print(args) => cmd::upload::print(&args).await,
        Command::Camera(args) => cmd::camera::run(&args).await,
        Command::Timelapse(args) => cmd::timelapse::run(&args).await,
        Command::Printers { cmd: None, json } => cmd::fleet::printers(json).await,
        Command::Printers {
            cmd: Some(cmd::fleet::PrintersCmd::Load(args)),
            ..
        } => cmd::fleet::load(&args).await,
        Command::Printers {
            cmd: Some(cmd::fleet::PrintersCmd::Bed(args)),
            ..
        } => cmd::fleet::bed(&args).await,
        Command::Printers {
            cmd: Some(cmd::fleet::PrintersCmd::Hold(args)),
            ..
        } => cmd::fleet::hold(&args, true).await,
        Command::Printers {
            cmd: Some(cmd::fleet::PrintersCmd::Release(args)),
            ..
        } => cmd::fleet::hold(&args, false).await,
        Command::Printers {
            cmd: Some(cmd::fleet::PrintersCmd::Heat(args)),
            ..
        } => cmd::fleet::heat(&args).await,
        Command::Printers {
            cmd: Some(cmd::fleet::PrintersCmd::Tune(args)),
            ..
        } => cmd::fleet::tune(&args).await,
        Command::Printers {
            cmd: Some(cmd::fleet::PrintersCmd::Temps(args)),
            ..
        } => cmd::fleet::temps(&args).await,
        Command::Printers {
            cmd: Some(cmd::fleet::PrintersCmd::Run(args)),
            ..
        } => cmd::fleet::run_action(&args).await,
        Command::Printers {
            cmd: Some(cmd::fleet::PrintersCmd::Actions(args)),
            ..
        } => cmd::fleet::list_actions(&args).await,
        Command::Materials { cmd } => cmd::inventory::materials(cmd.as_ref()).await,
        Command::Spools { cmd } => cmd::inventory::spools(cmd.as_ref()).await,
        Command::Stats {
            days,
            members: true,
            csv,
            json,
        } => cmd::stats::members(days, csv, json).await,
        Command::Stats { days, json, .. } => cmd::stats::run(days, json).await,
        Command::Maintenance { cmd, json } => {
            cmd::maintenance::run(&cmd.unwrap_or(cmd::maintenance::MaintenanceCmd::List { json }))
                .await
        }
        Command::Status { json, max_events } => cmd::fleet::status(json, max_events).await,
        Command::Jobs(args) => cmd::fleet::jobs(&args).await,
        Command::Queue { cmd, json } => cmd::fleet::queue(cmd.as_ref(), json).await,
        Command::Bridge(args) => cmd::bridge::run(&args).await,
        Command::Ui(args) => cmd::ui::run(&args).await,
        Command::Pause(j) => cmd::fleet::control("pause", &j.job, j.json).await,
        Command::Resume(j) => cmd::fleet::control("resume", &j.job, j.json).await,
        Command::Cancel(j) => cmd::fleet::control("cancel", &j.job, j.json).await,
        Command::Approve {
            jobs,
            waiting: false,
            json,
        } => cmd::fleet::decide(&jobs, true, None, json).await,
        Command::Approve {
            waiting: true,
            json,
            ..
        } => cmd::fleet::approve_waiting(json).await,
        Command::Reject { jobs, reason, json } => {
            cmd::fleet::decide(&jobs, false, reason.as_deref(), json).await
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli.command)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The server's hints name `hearth login SERVER`: this machine knows which server.
            let me = profile::config_dir()
                .and_then(|d| profile::Profile::load(&d))
                .ok();
            let server = me.as_ref().map_or("SERVER", |p| p.server.as_str());
            let said = format!("{e:#}")
                .replace("hearth login SERVER ", &format!("hearth login {server} "));
            eprintln!("error: {said}");
            // This machine's API token was revoked or has expired: say how to get a new one.
            let token_gone = e.chain().any(|c| {
                c.downcast_ref::<hearth_client::ClientError>()
                    .is_some_and(|c| c.status() == Some(401) && c.to_string().contains("API token"))
            });
            if token_gone {
                let login = me.as_ref().map_or("YOU", |p| p.login.as_str());
                eprintln!(
                    "this machine's login has ended: run `hearth login {server} --login {login}` again"
                );
            }
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand (unique argument names, valid
    /// defaults...): a clash otherwise panics only when a user runs that subcommand.
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
