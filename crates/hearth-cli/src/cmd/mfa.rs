//! `hearth mfa`: a second factor for this account's logins (an authenticator app's codes, and
//! one-time recovery codes). Setting it up and removing it need a login session, opened here with
//! the passphrase (and, once it is on, a code), not the CLI's API token.

use anyhow::{Context, anyhow, bail};
use hearth_client::Client;
use hearth_proto::api::{Me, User};

use crate::cmd::fleet::print_json;
use crate::cmd::login::{PassArgs, open_session};
use crate::ctx::Ctx;
use crate::profile::{self, Profile, kdf_params};

#[derive(Debug, clap::Subcommand)]
pub enum MfaCmd {
    /// Start setting up an authenticator app: prints the secret and its `otpauth://` address to
    /// add to the app; then `hearth mfa confirm CODE`.
    On {
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long)]
        json: bool,
    },
    /// Confirm the app with the code it shows now: from then on every login asks for a code.
    /// Prints ten recovery codes, this once: keep them apart from the app.
    Confirm {
        /// The six digits the app shows.
        code: String,
        #[command(flatten)]
        pass: PassArgs,
        #[arg(long)]
        json: bool,
    },
    /// Turn the second factor off (the login this asks for takes a code).
    Off {
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Remove a user's second factor (instance admins), for one who lost the app and the recovery
    /// codes.
    Reset {
        /// Their login.
        login: String,
    },
}

/// A session of this machine's account, opened with the passphrase (and a code when asked).
async fn session(pass: &PassArgs) -> anyhow::Result<(Client, Profile)> {
    let p = Profile::load(&profile::config_dir()?)?;
    let passphrase = profile::passphrase(
        pass.passphrase_file.as_deref(),
        "HEARTH_PASSPHRASE",
        "Passphrase: ",
        false,
    )?;
    let secret = crate::cmd::login::login_secret(&passphrase, &p.server, &p.login, &kdf_params())?;
    let mut s = Client::new(&p.server)?;
    open_session(&mut s, &p.login, &secret)
        .await
        .context("login failed")?;
    Ok((s, p))
}

pub async fn run(cmd: Option<&MfaCmd>) -> anyhow::Result<()> {
    match cmd {
        None => {
            let ctx = Ctx::load()?;
            let me: Me = ctx.client.raw_get("/api/v1/me").await?;
            if me.mfa {
                println!(
                    "second factor: on (logins of {} ask for an authenticator code or a recovery code)",
                    me.user.login
                );
            } else {
                println!(
                    "second factor: off (`hearth mfa on` sets up an authenticator app for {})",
                    me.user.login
                );
            }
        }
        Some(MfaCmd::On { pass, json }) => {
            let (s, p) = session(pass).await?;
            let setup = s.begin_mfa().await.context("cannot start the setup")?;
            if *json {
                return print_json(&setup);
            }
            println!(
                "Add this account to your authenticator app (as a QR code of the address, or by typing the secret):"
            );
            println!("  secret:  {}", setup.secret);
            println!("  address: {}", setup.uri);
            println!(
                "Then confirm with the code it shows: hearth mfa confirm CODE (logins of {} ask for codes from then on)",
                p.login
            );
        }
        Some(MfaCmd::Confirm { code, pass, json }) => {
            let (s, _) = session(pass).await?;
            let codes = s
                .confirm_mfa(code)
                .await
                .context("the second factor is not on")?;
            if *json {
                return print_json(&codes);
            }
            println!(
                "The second factor is on. Recovery codes, each good for one login without the app (shown this once):"
            );
            for c in &codes.recovery_codes {
                println!("  {c}");
            }
        }
        Some(MfaCmd::Off { pass }) => {
            let (s, p) = session(pass).await?;
            s.remove_mfa(None)
                .await
                .context("cannot turn the second factor off")?;
            println!("The second factor of {} is off.", p.login);
        }
        Some(MfaCmd::Reset { login }) => {
            let ctx = Ctx::load()?;
            let users: Vec<User> = ctx
                .client
                .raw_get("/api/v1/users")
                .await
                .context("cannot list the users (instance admins only)")?;
            let user = users
                .iter()
                .find(|u| u.login == *login)
                .ok_or_else(|| anyhow!("no user {login:?}"))?;
            if let Err(e) = ctx.client.reset_mfa(user.id).await {
                if e.status() == Some(404) {
                    bail!("{login} has no second factor");
                }
                return Err(e).context("cannot reset the second factor");
            }
            println!(
                "The second factor of {login} is removed: they log in with their passphrase alone until they set one up again."
            );
        }
    }
    Ok(())
}
