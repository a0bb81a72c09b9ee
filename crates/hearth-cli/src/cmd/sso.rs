//! `hearth login --sso PROVIDER`: logging in through the organisation's identity provider, in the
//! browser, as RFC 8252 has native apps do it. The CLI waits on a loopback port of its own, opens
//! the server's start address with that port and a challenge (the SHA-256 of a random verifier it
//! keeps), and the server sends the browser back to `http://127.0.0.1:PORT/?state=...` once the
//! provider vouched for the account (or `?error=...`). The CLI finishes the login with that state
//! and the verifier, so nothing else on the machine that sees the redirect can finish it, and the
//! account's own second factor is asked as at any login. The passphrase still unlocks the device
//! keys afterwards: the provider only logs in.

use anyhow::{Context, bail};
use base64::Engine as _;
use hearth_client::Client;
use hearth_proto::api::{ServerInfo, SsoFinishRequest};
use sha2::Digest as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the CLI waits for the browser.
const WAIT: Duration = Duration::from_secs(600);

/// A session of the account `provider` vouched for, and its login.
pub async fn session(server: &str, provider: &str) -> anyhow::Result<(Client, String)> {
    let probe = Client::new(server)?;
    let info: ServerInfo = probe
        .raw_get("/api/v1/info")
        .await
        .with_context(|| format!("cannot reach {server}"))?;
    let only = match info.sso.as_slice() {
        [one] if provider.is_empty() => Some(one),
        _ => None,
    };
    let Some(p) = only.or_else(|| info.sso.iter().find(|p| p.id == provider)) else {
        if info.sso.is_empty() {
            bail!(
                "{server} has no single sign-on provider: log in with --login and your passphrase"
            );
        }
        let asked = if provider.is_empty() {
            "several single sign-on providers: choose one with --sso ID".to_owned()
        } else {
            format!("no single sign-on provider {provider:?}")
        };
        bail!(
            "{server} has {asked}; it has: {}",
            info.sso
                .iter()
                .map(|p| format!("{} ({})", p.id, p.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let verifier =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on a loopback port for the browser's return")?;
    let port = listener.local_addr()?.port();
    let url = format!(
        "{server}/api/v1/auth/sso/{}/start?cli_port={port}&cli_challenge={challenge}",
        p.id
    );
    eprintln!("Log in through {} in your browser:\n  {url}", p.name);
    if std::env::var_os("HEARTH_NO_BROWSER").is_none() {
        open_browser(&url);
    }
    eprintln!("waiting for the browser (up to 10 minutes; Ctrl-C gives up)...");
    let state = tokio::time::timeout(WAIT, returned(&listener, &p.name))
        .await
        .map_err(|_| anyhow::anyhow!("the browser did not come back within 10 minutes"))??;
    let mut session = Client::new(server)?;
    let mut req = SsoFinishRequest {
        code: None,
        state: Some(state),
        verifier: Some(verifier),
        passkey: None,
    };
    let out = match session.sso_finish(&req).await {
        Ok(out) => out,
        Err(e) if e.code() == Some("mfa_required") => {
            req.code = Some(super::login::mfa_code()?.to_string());
            session.sso_finish(&req).await.context("login failed")?
        }
        Err(e) => return Err(anyhow::Error::new(e).context("login failed")),
    };
    eprintln!("{} vouched for {}", p.name, out.user.login);
    Ok((session, out.user.login))
}

/// Waits for the browser's return on `listener`: the state to finish with, or the reason the
/// login was refused. Other requests (a browser's favicon) are answered 404.
async fn returned(listener: &tokio::net::TcpListener, provider: &str) -> anyhow::Result<String> {
    loop {
        let (mut conn, _) = listener.accept().await?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let query = target.strip_prefix("/?").unwrap_or("");
        let pairs: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{query}"))
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
        let find = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let (status, page, outcome) = match (find("state"), find("error")) {
            (Some(state), _) => (
                "200 OK",
                "Logged in to Hearth. You can close this tab and go back to the terminal."
                    .to_owned(),
                Some(Ok(state)),
            ),
            (None, Some(error)) => (
                "200 OK",
                format!("Hearth could not log you in: {error}"),
                Some(Err(anyhow::anyhow!(
                    "login through {provider} refused: {error}"
                ))),
            ),
            (None, None) => ("404 Not Found", "Not here.".to_owned(), None),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
             connection: close\r\ncache-control: no-store\r\n\r\n{page}",
            page.len()
        );
        let _ = conn.write_all(response.as_bytes()).await;
        let _ = conn.shutdown().await;
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

/// Best effort: the desktop's browser; the address is printed in any case.
fn open_browser(url: &str) {
    let (program, args): (&str, &[&str]) = if cfg!(target_os = "macos") {
        ("open", &[])
    } else if cfg!(windows) {
        ("rundll32", &["url.dll,FileProtocolHandler"])
    } else {
        ("xdg-open", &[])
    };
    let _ = std::process::Command::new(program)
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// `hearth sso`: the accounts at single sign-on providers linked to yours.
#[derive(Debug, clap::Subcommand)]
pub enum SsoCmd {
    /// Unlink your account at a provider (its id, from `hearth sso`): it no longer logs in to
    /// yours. Linking is done in the web dashboard (Account, Single sign-on), in a browser.
    Unlink { provider: String },
}

pub async fn run(cmd: Option<&SsoCmd>, json: bool) -> anyhow::Result<()> {
    let ctx = crate::ctx::Ctx::load()?;
    match cmd {
        None => {
            let linked: Vec<hearth_proto::api::SsoIdentity> = ctx
                .client
                .raw_get("/api/v1/me/sso")
                .await
                .context("cannot list your single sign-on accounts")?;
            if json {
                return super::fleet::print_json(&linked);
            }
            if linked.is_empty() {
                println!(
                    "no single sign-on account is linked to yours (link one in the web dashboard: \
                     Account, Single sign-on)"
                );
                return Ok(());
            }
            let mut t = super::fleet::Table::new(&[
                "PROVIDER",
                "NAME",
                "ACCOUNT THERE",
                "LINKED",
                "LAST LOGIN",
            ]);
            for i in linked {
                t.row(vec![
                    i.provider,
                    if i.provider_name.is_empty() {
                        "(no longer configured)".into()
                    } else {
                        i.provider_name
                    },
                    i.claimed,
                    i.linked_at,
                    i.last_login_at.unwrap_or_else(|| "never".into()),
                ]);
            }
            t.print();
        }
        Some(SsoCmd::Unlink { provider }) => {
            ctx.client
                .raw_delete(&format!("/api/v1/me/sso/{provider}"))
                .await
                .with_context(|| format!("cannot unlink your account at {provider}"))?;
            println!("unlinked: {provider} no longer logs in to your account");
        }
    }
    Ok(())
}
