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
    /// New recovery codes, the old ones void (the login this asks for takes a code). Printed once.
    RecoveryCodes {
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

/// The instance's user `login` (instance admins list them).
pub async fn user_by_login(ctx: &Ctx, login: &str) -> anyhow::Result<User> {
    let users: Vec<User> = ctx
        .client
        .raw_get("/api/v1/users")
        .await
        .context("cannot list the users (instance admins only)")?;
    users
        .into_iter()
        .find(|u| u.login == login)
        .ok_or_else(|| anyhow!("no user {login:?}"))
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

/// `text` as a QR code for a terminal: two modules a character (upper and lower half blocks),
/// light modules drawn, dark ones left as the (dark) background, in a quiet zone of light; phone
/// cameras read it either way round. `None` when it does not fit a QR code.
fn qr_lines(text: &str) -> Option<Vec<String>> {
    use qrcodegen::{QrCode, QrCodeEcc};
    const QUIET: i32 = 2;
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let n = qr.size();
    let light = |x: i32, y: i32| -> bool {
        !(0..n).contains(&x) || !(0..n).contains(&y) || !qr.get_module(x, y)
    };
    let lines = (-QUIET..n + QUIET)
        .step_by(2)
        .map(|y| {
            (-QUIET..n + QUIET)
                .map(|x| match (light(x, y), light(x, y + 1)) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                })
                .collect()
        })
        .collect();
    Some(lines)
}

/// Recovery codes as the account gets them, once: JSON, or a list under `what`.
fn show_codes(
    codes: &hearth_proto::api::RecoveryCodes,
    json: bool,
    what: &str,
) -> anyhow::Result<()> {
    if json {
        return print_json(codes);
    }
    println!("{what}, each good for one login without the app (shown this once):");
    for c in &codes.recovery_codes {
        println!("  {c}");
    }
    Ok(())
}

pub async fn run(cmd: Option<&MfaCmd>) -> anyhow::Result<()> {
    match cmd {
        None => {
            let ctx = Ctx::load()?;
            let me: Me = ctx.client.raw_get("/api/v1/me").await?;
            if me.mfa {
                println!(
                    "second factor: on (logins of {} ask for an authenticator code or a recovery code); {} recovery codes left",
                    me.user.login,
                    me.recovery_codes_left.unwrap_or_default()
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
            println!("Scan this with your authenticator app (or type the secret in):");
            match qr_lines(&setup.uri) {
                Some(lines) => lines.iter().for_each(|l| println!("{l}")),
                None => println!("(the address is too long for a QR code here)"),
            }
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
            return show_codes(&codes, *json, "The second factor is on. Recovery codes");
        }
        Some(MfaCmd::RecoveryCodes { pass, json }) => {
            let (s, _) = session(pass).await?;
            let codes = s
                .new_recovery_codes(None)
                .await
                .context("no new recovery codes")?;
            return show_codes(
                &codes,
                *json,
                "New recovery codes (the old ones no longer work)",
            );
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
            let user = user_by_login(&ctx, login).await?;
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

#[cfg(test)]
mod tests {
    use super::qr_lines;

    #[test]
    fn an_otpauth_address_is_drawn_as_a_square_qr_code_in_a_light_quiet_zone() {
        let uri = "otpauth://totp/Hearth%20%28farm.example%29:ada?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Hearth%20%28farm.example%29&algorithm=SHA1&digits=6&period=30";
        let lines = qr_lines(uri).unwrap();
        let width = lines[0].chars().count();
        // A QR code has 21 + 4k modules a side; two blank modules around it; two rows a line.
        assert_eq!((width - 4 - 21) % 4, 0, "{width}");
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert!(lines[0].chars().all(|c| c == '█'), "the quiet zone above");
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("██") && l.ends_with("██"))
        );
        // The top-left finder pattern right inside the quiet zone: its first two rows are dark
        // across, then dark at its edges with light between.
        let finder: String = lines[1].chars().skip(2).take(7).collect();
        assert_eq!(finder, " ▄▄▄▄▄ ", "{}", lines[1]);
        assert!(qr_lines(&"x".repeat(5000)).is_none());
    }
}
