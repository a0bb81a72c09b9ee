//! `hearth keys show|export`: this device's keys, and an identity file for the stock `age` tool.

use std::path::PathBuf;

use anyhow::Context;
use hearth_crypto::export_identity_file;

use crate::ctx::Ctx;
use crate::profile::write_private;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCmd {
    /// This device's fingerprint and public keys.
    Show,
    /// Write an age identity file (your device key and every organisation epoch key you hold), so
    /// `age -d -i FILE` opens your files without Hearth. Secret: keep it like an SSH key.
    Export {
        /// Write here (mode 0600) instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

pub async fn run(cmd: &KeysCmd) -> anyhow::Result<()> {
    let mut ctx = Ctx::load()?;
    let device = ctx.device()?;
    match cmd {
        KeysCmd::Show => {
            let p = device.public();
            println!("fingerprint: {}", p.fingerprint());
            println!("signing key: {}", p.signing);
            println!("age recipient: {}", p.recipient);
            Ok(())
        }
        KeysCmd::Export { out } => {
            let (_, trusted) = ctx.trusted().await?;
            let mut epochs = Vec::new();
            for n in 1..=trusted.current_epoch().epoch {
                match ctx.held_epoch_key(&device, &trusted, n).await? {
                    Some(k) => epochs.push(k),
                    None => {
                        eprintln!("note: epoch {n} was sealed before this device joined; skipped");
                    }
                }
            }
            let refs: Vec<_> = epochs.iter().collect();
            let text = export_identity_file(&device, &refs);
            match out {
                Some(path) => {
                    write_private(path, text.as_bytes())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!(
                        "wrote your device key and {} epoch key(s) to {}",
                        epochs.len(),
                        path.display()
                    );
                }
                None => print!("{}", text.as_str()),
            }
            Ok(())
        }
    }
}
