//! `hearth-agent`: run the edge agent, or print an example configuration.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hearth_agent::{AgentConfig, KeyFileIdentity, Setup};

#[derive(Parser)]
#[command(
    name = "hearth-agent",
    version,
    about = "Hearth edge agent: drives printers for a Hearth server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The configuration file option every command that reads it takes.
#[derive(clap::Args)]
struct ConfigFile {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "HEARTH_AGENT_CONFIG",
        default_value = "hearth-agent.toml"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to the server and drive the configured printers until SIGINT/SIGTERM.
    Run {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Enroll this agent with a server using a one-time token from an admin, then wait for approval.
    Enroll {
        /// The server's base URL (defaults to `server` in the configuration file).
        #[arg(long)]
        server: Option<String>,
        /// The one-time enrollment token (`hae_...`).
        #[arg(long, env = "HEARTH_AGENT_ENROLL_TOKEN")]
        token: String,
        /// A name for people (defaults to the host name).
        #[arg(long)]
        name: Option<String>,
        /// The organisation's genesis hash, as `hearth org show` prints it. Pinning it means a server can
        /// never make this agent trust another organisation's keys; without it the first chain seen is pinned.
        #[arg(long, env = "HEARTH_AGENT_GENESIS")]
        genesis: Option<String>,
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print an example configuration with every setting explained.
    Example,
    /// Check a configuration file and report unknown keys.
    Check {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Print [[printer.action]] tables to paste, one per macro a printer's firmware defines
    /// (Klipper's [gcode_macro]) that the configuration does not run yet.
    Actions {
        #[command(flatten)]
        config: ConfigFile,
    },
}

/// The file, then `HEARTH_AGENT_SERVER` / `HEARTH_AGENT_STATE_DIR` / `HEARTH_AGENT_CA_CERT` on top.
fn load(path: &std::path::Path) -> anyhow::Result<AgentConfig> {
    let (mut config, unknown) =
        AgentConfig::load(path).with_context(|| format!("loading {}", path.display()))?;
    for key in unknown {
        tracing::warn!(%key, file = %path.display(), "unknown configuration key ignored");
    }
    if let Some(server) = std::env::var_os("HEARTH_AGENT_SERVER") {
        config.server = server.to_string_lossy().into_owned();
    }
    if let Some(dir) = std::env::var_os("HEARTH_AGENT_STATE_DIR") {
        config.state_dir = dir.into();
    }
    if let Some(ca) = std::env::var_os("HEARTH_AGENT_CA_CERT") {
        config.ca_cert = Some(ca.into());
    }
    config.validate()?;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Example,
        } => print!("{}", hearth_agent::config::EXAMPLE),
        Command::Config {
            command:
                ConfigCommand::Check {
                    config: ConfigFile { config },
                },
        } => {
            let c = load(&config)?;
            println!(
                "{}: {} printer(s), server {}",
                config.display(),
                c.printers.len(),
                c.server
            );
        }
        Command::Config {
            command:
                ConfigCommand::Actions {
                    config: ConfigFile { config },
                },
        } => print!(
            "{}",
            hearth_agent::suggest::suggested_actions(&load(&config)?).await
        ),
        Command::Enroll {
            server,
            token,
            name,
            genesis,
            config: ConfigFile { config },
        } => {
            let mut config = load(&config)?;
            let genesis: Option<hearth_crypto::Sha256Digest> = genesis
                .map(|g| g.trim().parse())
                .transpose()
                .map_err(|e| anyhow::anyhow!("--genesis is not a SHA-256 hash: {e}"))?;
            if let Some(server) = server {
                config.server = server;
            }
            let ca = config
                .ca_cert
                .as_deref()
                .map(hearth_agent::tls::read_ca)
                .transpose()?;
            let tls = hearth_agent::tls::client_config(
                ca.as_deref(),
                &hearth_agent::tls::system_roots(),
            )?;
            let http = hearth_agent::tls::http_client(&tls)?;
            let name = name.unwrap_or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "hearth-agent".into())
            });
            let enrolled = hearth_agent::enroll::enroll(
                &http,
                &config.server,
                &token,
                &name,
                &config.state_dir,
            )
            .await?;
            if let Some(g) = genesis {
                let trust = hearth_agent::crypto::TrustFile {
                    genesis: Some(g),
                    checkpoint: None,
                };
                trust
                    .save(&config.state_dir)
                    .context("recording the pinned genesis")?;
            }
            println!(
                "Enrolled as agent {} in organisation {}.\nFingerprint: {}\n\
                 Ask an admin to compare this fingerprint in Hearth and approve the agent, then run `hearth-agent run`.",
                enrolled.response.agent_id, enrolled.response.org_id, enrolled.fingerprint
            );
        }
        Command::Run {
            config: ConfigFile { config },
        } => {
            let config = load(&config)?;
            let identity = KeyFileIdentity::load(&config.state_dir).with_context(|| {
                format!(
                    "no agent key in {} (enroll the agent first)",
                    config.state_dir.display()
                )
            })?;
            let opener =
                hearth_agent::crypto::TrustingOpener::load(&config.state_dir, identity.keys())
                    .context("reading the agent's trust file")?;
            let setup = Setup::from_config(config, Arc::new(identity), Arc::new(opener))?;
            hearth_agent::run(setup, shutdown_signal()).await?;
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
