//! `hearth`, the member's command line. One module per subcommand under `cmd/`.

mod cmd;

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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
