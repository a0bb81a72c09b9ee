//! `hearthd`: start the Hearth server, print an example config, back up, restore, verify.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hearth_server::config::{EXAMPLE, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "hearthd",
    version,
    about = "Hearth server: a self-hosted cloud for 3D-printer fleets that cannot read your designs"
)]
struct Cli {
    /// TOML config file (see `hearthd config example`).
    #[arg(long, global = true, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, sealed blobs). Default: ./hearth-data
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Address to listen on. Default: 127.0.0.1:8080
    #[arg(long, global = true)]
    listen: Option<String>,
    /// postgres://... to use PostgreSQL instead of the SQLite file in the data directory.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, global = true, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, global = true, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Write a consistent backup of the (possibly running) server into a new directory.
    Backup { dest: PathBuf },
    /// Restore a backup into an empty data directory (--data-dir) and verify it.
    Restore { src: PathBuf },
    /// Verify the data directory: every audit chain and every blob's hash.
    Verify,
    /// Print the OpenAPI document of the API.
    Openapi,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print a commented example config with every setting and its default.
    Example,
    /// Print the settings in force after layering file, environment and flags.
    Show,
}

fn settings(cli: &Cli) -> anyhow::Result<(Settings, Vec<String>)> {
    let (mut s, warnings) = Settings::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(d) = &cli.data_dir {
        s.data_dir = d.clone();
    }
    if let Some(l) = &cli.listen {
        s.listen = l.clone();
    }
    if let Some(u) = &cli.database_url {
        s.database_url = Some(u.clone());
    }
    if let (Some(c), Some(k)) = (&cli.tls_cert, &cli.tls_key) {
        s.tls.cert = Some(c.clone());
        s.tls.key = Some(k.clone());
    }
    s.validate()?;
    Ok((s, warnings))
}

fn init_logging(s: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&s.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if s.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, before the server says
/// it is listening, so a signal sent right after that line is never the default "terminate now".
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
    })
}

async fn serve(s: Settings, warnings: Vec<String>) -> anyhow::Result<()> {
    init_logging(&s);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let listener = tokio::net::TcpListener::bind(&s.listen)
        .await
        .with_context(|| format!("cannot listen on {}", s.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let scheme = if s.tls_enabled() { "https" } else { "http" };
    if !addr.ip().is_loopback() && !s.tls_enabled() {
        let banner = "!".repeat(78);
        eprintln!(
            "{banner}\n!! WARNING: listening on {addr} WITHOUT TLS. Logins, tokens and session cookies will cross\n!! the network in clear. Give --tls-cert/--tls-key, or put hearthd behind a TLS proxy\n!! and bind it to 127.0.0.1.\n{banner}"
        );
        tracing::warn!(%addr, "serving plain HTTP on a non-loopback address");
    }
    tracing::info!(database = %hearth_store::redact_url(&s.effective_database_url()), data_dir = %s.data_dir.display(), "starting");
    let public = s
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let server = hearth_server::start(s).await.context("starting hearthd")?;
    let shutdown = shutdown_signal()?;
    // Tests and scripts wait for this exact line instead of sleeping.
    println!("hearthd listening on {scheme}://{addr}");
    if let Some(token) = &server.setup_token {
        println!(
            "\nNo account exists yet. Create the first owner with this one-time setup token:\n\n    {token}\n\n\
             for example:\n    curl -X POST {public}/api/v1/setup -H 'Content-Type: application/json' \\\n      \
             -d '{{\"token\":\"{token}\",\"login\":\"admin\",\"secret\":\"<at least 12 characters>\",\"org_name\":\"My workshop\"}}'\n\
             The token works once; a restart before setup issues a new one.\n"
        );
    }
    server.run(listener, shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Config {
            what: ConfigCommand::Example,
        }) => print!("{EXAMPLE}"),
        Some(Command::Config {
            what: ConfigCommand::Show,
        }) => {
            let (mut s, warnings) = settings(&cli)?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            // Passwords in URLs stay out of what is printed (it is pasted into tickets).
            for url in [&mut s.database_url, &mut s.cluster.nats_url]
                .into_iter()
                .flatten()
            {
                *url = hearth_store::redact_url(url);
            }
            print!("{}", toml::to_string_pretty(&s)?);
        }
        Some(Command::Openapi) => print!("{}", hearth_server::routes::openapi_json()),
        Some(Command::Backup { dest }) => {
            let (s, _) = settings(&cli)?;
            let summary = hearth_server::backup::backup(&s, dest)
                .await
                .context("backup failed")?;
            println!(
                "backup written to {}: database {}, {} blobs ({} bytes), each verified{}",
                dest.display(),
                summary.database,
                summary.blobs,
                summary.blob_bytes,
                match summary.secret_key {
                    true =>
                        "; with secret.key, which opens the second factors' secrets in the \
                             database: keep the backup as safe as the server",
                    false => "",
                }
            );
        }
        Some(Command::Restore { src }) => {
            let (s, _) = settings(&cli)?;
            let r = hearth_server::backup::restore(src, &s.data_dir)
                .await
                .context("restore failed")?;
            println!(
                "restored into {}: {} audit entries in {} chains verified, {} blobs verified",
                s.data_dir.display(),
                r.audit_entries,
                r.scopes,
                r.blobs
            );
        }
        Some(Command::Verify) => {
            let (s, _) = settings(&cli)?;
            let r = hearth_server::backup::verify(&s)
                .await
                .context("verification failed")?;
            println!(
                "ok: {} audit entries in {} chains, {} blobs verified",
                r.audit_entries, r.scopes, r.blobs
            );
        }
        None | Some(Command::Serve) => {
            let (s, warnings) = settings(&cli)?;
            serve(s, warnings).await?;
        }
    }
    Ok(())
}
