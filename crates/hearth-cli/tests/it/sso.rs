//! `hearth login --sso`: the browser goes through the real OpenID Connect provider and back to the
//! CLI's loopback port; the passphrase still unlocks the member's keys.

use crate::oidc_peer::{Browser, OidcPeer};
use crate::support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// What the CLI said, and what its loopback page told the browser.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    page: String,
}

/// `hearth login SERVER --sso corp` on `machine`, with a browser that follows the address it prints.
async fn login_through_provider(machine: &Machine, server: &TestServer) -> Run {
    login_with(machine, &["login", &server.url, "--sso", "corp"]).await
}

/// `hearth ARGS` (a login through the provider) on `machine`, with a browser that follows the
/// address it prints.
async fn login_with(machine: &Machine, args: &[&str]) -> Run {
    let mut child = machine
        .command(args)
        .env("HEARTH_NO_BROWSER", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).await.unwrap() > 0,
            "hearth exited without an address:\n{said}"
        );
        said.push_str(&line);
        if let Some(at) = line.find("http") {
            break line[at..].trim().to_owned();
        }
    };
    let port = url
        .split("cli_port=")
        .nth(1)
        .and_then(|p| p.split('&').next())
        .unwrap();
    let back = format!("http://127.0.0.1:{port}/");
    let mut browser = Browser::default();
    let reached = browser.walk(&url, Some(&back)).await;
    // Asked before the login goes to the command line (when there is one to hand over).
    assert!(
        reached.contains("error=")
            || browser
                .last_page
                .contains("Log in the hearth command line?"),
        "{}",
        browser.last_page
    );
    let page = browser
        .send(reqwest::Method::GET, &reached, None)
        .await
        .text()
        .await
        .unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).await.unwrap();
    said.push_str(&rest);
    let out = child.wait_with_output().await.unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: said,
        page,
    }
}

fn fingerprint(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("device fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint in {stdout}"))
}

#[tokio::test]
async fn hearth_login_through_a_provider_then_unlocks_the_members_keys_with_the_passphrase() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "cli secret\n").unwrap();
    let issuer = peer.issuer.clone();
    let server = TestServer::start_with(|s, _| {
        s.auth.oidc.push(hearth_server::config::OidcProvider {
            id: "corp".into(),
            name: "Corp SSO".into(),
            issuer,
            client_id: "hearth-cli-test".into(),
            client_secret_file: Some(secret.path().to_owned()),
            accounts: "create".into(),
            ..Default::default()
        });
    })
    .await;
    peer.client("hearth-cli-test", "cli secret", &server.url, "corp")
        .await;
    let laptop = Machine::new("ada's passphrase here");
    let first = laptop.setup(&server).await;

    // On a second machine, ada logs in through the provider; her passphrase unwraps the same keys.
    peer.account("u-ada", serde_json::json!({ "preferred_username": "ada" }))
        .await;
    peer.next_login(Some("u-ada")).await;
    let desktop = Machine::new("ada's passphrase here");
    let run = login_through_provider(&desktop, &server).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.page.contains("Logged in to Hearth"), "{}", run.page);
    assert!(
        run.stderr.contains("Corp SSO vouched for ada"),
        "{}",
        run.stderr
    );
    assert_eq!(fingerprint(&run.stdout), fingerprint(&first));
    assert_eq!(desktop.profile()["login"], "ada");
    assert!(desktop.run(&["org", "show"]).await.contains("Acme"));
    let linked = desktop.run(&["sso"]).await;
    assert!(
        linked.contains("corp") && linked.contains("Corp SSO") && linked.contains("ada"),
        "{linked}"
    );
    let members = desktop.run(&["members", "list", "--json"]).await;
    let members: serde_json::Value = serde_json::from_str(&members).unwrap();
    assert_eq!(members[0]["sso"], serde_json::json!(["corp"]), "{members}");

    // The organisation can require it: only from a login through the provider, and then the
    // laptop's passphrase login (its token) is refused in it, saying how to get in.
    let refused = laptop.try_run(&["org", "sso", "required"]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("yourself first"),
        "{refused:?}"
    );
    assert!(
        desktop
            .run(&["org", "sso", "required"])
            .await
            .contains("must log in through single sign-on")
    );
    assert!(
        desktop
            .run(&["org", "show"])
            .await
            .contains("log in through single sign-on")
    );
    let out = laptop.try_run(&["members", "list"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "hearth login {} --sso corp",
            laptop.profile()["server"].as_str().unwrap()
        )),
        "{out:?}"
    );
    desktop.run(&["org", "sso", "optional"]).await;
    laptop.run(&["members", "list"]).await;

    // The provider vouching is not enough: a wrong passphrase unlocks nothing, and saves nothing.
    let stranger = Machine::new("not ada's passphrase");
    let run = login_through_provider(&stranger, &server).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("cannot unwrap your device keys"),
        "{}",
        run.stderr
    );
    assert!(!stranger.dir.path().join("profile.json").exists());

    // An account the provider makes at first login chooses its passphrase there.
    peer.account(
        "u-new",
        serde_json::json!({ "preferred_username": "newbie" }),
    )
    .await;
    peer.next_login(Some("u-new")).await;
    let newbie = Machine::new("newbie's own passphrase");
    // The server has one provider: `--sso` alone takes it.
    let run = login_with(&newbie, &["login", &server.url, "--sso"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stderr.contains("created device keys"), "{}", run.stderr);
    assert_eq!(newbie.profile()["login"], "newbie");
    // ada unlinks hers; newbie's is the only way into an account the provider made, so it stays.
    assert!(
        desktop
            .run(&["sso", "unlink", "corp"])
            .await
            .contains("unlinked")
    );
    assert!(
        desktop
            .run(&["sso"])
            .await
            .contains("no single sign-on account is linked")
    );
    let kept = newbie.try_run(&["sso", "unlink", "corp"]).await;
    assert!(!kept.status.success());
    assert!(
        String::from_utf8_lossy(&kept.stderr).contains("only way in"),
        "{kept:?}"
    );

    // Refused at the provider: the browser's page and the CLI both say so.
    peer.next_login(None).await;
    let run = login_through_provider(&Machine::new("whatever passphrase"), &server).await;
    assert!(!run.ok);
    assert!(
        run.page.contains("refused the login (access_denied)"),
        "{}",
        run.page
    );
    assert!(
        run.stderr.contains("login through Corp SSO refused")
            && run.stderr.contains("access_denied"),
        "{}",
        run.stderr
    );

    // A provider the server does not have is named with the ones it has.
    let out = newbie
        .try_run(&["login", &server.url, "--sso", "okta"])
        .await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no single sign-on provider \"okta\"") && said.contains("corp (Corp SSO)"),
        "{said}"
    );
}
