//! `hearth-agent`: run the edge agent, or print an example configuration.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hearth_agent::{AgentConfig, KeyFileIdentity, NoOpener, Setup};

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

#[derive(Subcommand)]
enum Command {
    /// Connect to the server and drive the configured printers until SIGINT/SIGTERM.
    Run {
        /// The configuration file.
        #[arg(
            long,
            short,
            env = "HEARTH_AGENT_CONFIG",
            default_value = "hearth-agent.toml"
        )]
        config: PathBuf,
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
        #[arg(
            long,
            short,
            env = "HEARTH_AGENT_CONFIG",
            default_value = "hearth-agent.toml"
        )]
        config: PathBuf,
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
            command: ConfigCommand::Check { config },
        } => {
            let c = load(&config)?;
            println!(
                "{}: {} printer(s), server {}",
                config.display(),
                c.printers.len(),
                c.server
            );
        }
        Command::Run { config } => {
            let config = load(&config)?;
            let identity = KeyFileIdentity::load(&config.state_dir).with_context(|| {
                format!(
                    "no agent key in {} (enroll the agent first)",
                    config.state_dir.display()
                )
            })?;
            tracing::warn!(
                "built without hearth-crypto: every job will be refused until the job verifier is linked"
            );
            let setup = Setup::from_config(config, Arc::new(identity), Arc::new(NoOpener))?;
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
