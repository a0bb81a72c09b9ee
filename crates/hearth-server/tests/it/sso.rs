//! Single sign-on against a real OpenID Connect provider (`oidc_peer.rs`). A small cookie-keeping
//! HTTP client plays the browser: it follows the redirects from hearthd to the provider and back,
//! as a browser's address bar would.

use crate::browser_run::browser_test;
use crate::oathtool::code as oathtool;
use crate::oidc_peer::{Browser, OidcPeer, TEST_CA, decoded};
use crate::support::*;
use hearth_proto::api::{LoginResponse, ServerInfo, SsoIdentity};
use std::path::PathBuf;

/// A hearthd with the provider `corp` (`accounts` as given) at `peer`, registered there.
async fn server_with(peer: &OidcPeer, providers: &[(&str, &str)]) -> TestServer {
    server_configured(peer, providers, |_| {}).await
}

/// As [`server_with`], each provider's settings adjusted by `tweak`.
async fn server_configured(
    peer: &OidcPeer,
    providers: &[(&str, &str)],
    tweak: impl Fn(&mut hearth_server::config::OidcProvider),
) -> TestServer {
    server_set(peer, providers, tweak, |_| {}).await
}

/// As [`server_configured`], the server's settings adjusted by `settings`.
async fn server_set(
    peer: &OidcPeer,
    providers: &[(&str, &str)],
    tweak: impl Fn(&mut hearth_server::config::OidcProvider),
    settings: impl FnOnce(&mut hearth_server::config::Settings),
) -> TestServer {
    server_started(peer, providers, tweak, settings, false).await
}

/// As [`server_with`], at `http://localhost:PORT` (its `public_url`), where passkeys work.
async fn server_at_localhost(peer: &OidcPeer, providers: &[(&str, &str)]) -> TestServer {
    server_started(peer, providers, |_| {}, |_| {}, true).await
}

async fn server_started(
    peer: &OidcPeer,
    providers: &[(&str, &str)],
    tweak: impl Fn(&mut hearth_server::config::OidcProvider),
    settings: impl FnOnce(&mut hearth_server::config::Settings),
    at_localhost: bool,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings(&dir.path().join("data"));
    settings(&mut s);
    for (id, accounts) in providers {
        let secret = dir.path().join(format!("{id}.secret"));
        std::fs::write(&secret, format!("secret of {id}\n")).unwrap();
        let mut p = hearth_server::config::OidcProvider {
            id: (*id).into(),
            name: format!("{id} SSO"),
            issuer: peer.issuer.clone(),
            client_id: format!("hearth-{id}"),
            client_secret_file: Some(secret),
            accounts: (*accounts).into(),
            ..Default::default()
        };
        tweak(&mut p);
        s.auth.oidc.push(p);
    }
    let server = if at_localhost {
        TestServer::start_in_at_localhost(dir, s).await
    } else {
        TestServer::start_in(dir, s).await
    };
    for (id, _) in providers {
        peer.client(
            &format!("hearth-{id}"),
            &format!("secret of {id}"),
            &server.url,
            id,
        )
        .await;
    }
    server
}

#[tokio::test]
async fn a_provider_logs_a_member_in_once_per_answer_and_hearths_second_factor_still_applies() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_with(&peer, &[("corp", "match")]).await;
    let (owner, org) = server.bootstrap().await;
    let info: ServerInfo = owner.raw_get("/api/v1/info").await.unwrap();
    assert_eq!(info.sso.len(), 1);
    assert_eq!(
        (info.sso[0].id.as_str(), info.sso[0].name.as_str()),
        ("corp", "corp SSO")
    );

    // The provider's account whose preferred_username is "owner" reaches the owner's account.
    peer.account("u-1", serde_json::json!({ "preferred_username": "owner", "email": "owner@example.org", "email_verified": true }))
        .await;
    peer.next_login(Some("u-1")).await;
    let mut b = Browser::default();
    assert_eq!(b.sso(&server.url, "corp").await, "sso");
    let r = b.finish(&server.url, None).await;
    assert_eq!(r.status(), 200);
    let login: LoginResponse = r.json().await.unwrap();
    assert_eq!(login.user.login, "owner");
    assert!(!login.csrf_token.is_empty());
    assert_eq!(b.me(&server.url).await.user.login, "owner");
    // The member's list of sessions says which came through a provider.
    let sessions: Vec<hearth_proto::api::SessionInfo> = b
        .send(
            reqwest::Method::GET,
            &format!("{}/api/v1/me/sessions", server.url),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let by: Vec<_> = sessions
        .iter()
        .map(|s| (s.current, s.sso.as_deref()))
        .collect();
    assert!(
        by.contains(&(true, Some("corp"))) && by.contains(&(false, None)),
        "{by:?}"
    );
    // The answer is used once.
    let again = b.finish(&server.url, None).await;
    assert_eq!(again.status(), 401);
    let e: serde_json::Value = again.json().await.unwrap();
    assert_eq!(e["code"], "sso_expired");
    let ids: Vec<SsoIdentity> = owner.raw_get("/api/v1/me/sso").await.unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        (
            ids[0].provider.as_str(),
            ids[0].provider_name.as_str(),
            ids[0].claimed.as_str()
        ),
        ("corp", "corp SSO", "owner")
    );
    assert!(ids[0].last_login_at.is_some());
    // The organisation's admins see who has an account linked where.
    let members = owner.members(org).await.unwrap();
    assert_eq!(members[0].sso, ["corp"], "{members:?}");

    // A callback delivered to another browser (login CSRF) is refused, and spends nothing.
    let mut victim = Browser::default();
    let callback_prefix = format!("{}/api/v1/auth/sso/corp/callback", server.url);
    let callback = b
        .walk(
            &format!("{}/api/v1/auth/sso/corp/start", server.url),
            Some(&callback_prefix),
        )
        .await;
    let fragment = victim.walk(&callback, None).await;
    assert!(
        decoded(&fragment).contains("not started in this browser"),
        "{fragment}"
    );
    assert_eq!(
        b.walk(&callback, None).await,
        "sso",
        "the right browser still finishes"
    );
    assert_eq!(b.finish(&server.url, None).await.status(), 200);

    // Someone the provider knows but Hearth has no account for: refused and audited.
    peer.account(
        "u-2",
        serde_json::json!({ "preferred_username": "mallory" }),
    )
    .await;
    peer.next_login(Some("u-2")).await;
    let fragment = Browser::default().sso(&server.url, "corp").await;
    assert!(fragment.starts_with("sso-error="), "{fragment}");
    assert!(
        decoded(&fragment).contains("no Hearth account \"mallory\""),
        "{fragment}"
    );
    // The provider refusing (the member cancelled there) says so.
    peer.next_login(None).await;
    let fragment = Browser::default().sso(&server.url, "corp").await;
    assert!(
        decoded(&fragment).contains("refused the login (access_denied)"),
        "{fragment}"
    );

    // With Hearth's own second factor on, the provider alone does not log in.
    let setup = owner.begin_mfa().await.unwrap();
    let Some(now) = oathtool(&setup.secret, 0) else {
        return;
    };
    owner.confirm_mfa(&now).await.unwrap();
    peer.next_login(Some("u-1")).await;
    let mut b = Browser::default();
    assert_eq!(b.sso(&server.url, "corp").await, "sso");
    let r = b.finish(&server.url, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "mfa_required"
    );
    let r = b.finish(&server.url, Some("000000")).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "mfa_invalid"
    );
    let next = oathtool(&setup.secret, 1).unwrap();
    let r = b.finish(&server.url, Some(&next)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(b.me(&server.url).await.user.login, "owner");

    let actions = audit_actions(&owner).await;
    let sso_logins: Vec<_> = actions
        .iter()
        .filter(|(a, d)| a == "auth.login" && d["sso"] == "corp")
        .collect();
    assert_eq!(sso_logins.len(), 3, "{actions:?}");
    assert_eq!(sso_logins[2].1["mfa"], "totp");
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.sso_link" && d["by_login"] == "owner")
    );
    assert!(
        actions.iter().any(|(a, d)| a == "auth.login_failed"
            && d["sso"] == "corp"
            && d["claimed"] == "mallory")
    );
}

#[tokio::test]
async fn accounts_are_made_at_a_first_login_or_linked_by_their_member_as_each_provider_allows() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_with(&peer, &[("make", "create"), ("strict", "linked")]).await;
    let (owner, _org) = server.bootstrap().await;

    // "create": a first login makes the account; no passphrase logs in to it.
    peer.account("u-3", serde_json::json!({ "preferred_username": "newbie" }))
        .await;
    peer.next_login(Some("u-3")).await;
    let mut newbie = Browser::default();
    assert_eq!(newbie.sso(&server.url, "make").await, "sso");
    let r = newbie.finish(&server.url, None).await;
    assert_eq!(r.status(), 200);
    let csrf = r.json::<LoginResponse>().await.unwrap().csrf_token;
    let me = newbie.me(&server.url).await;
    assert_eq!(me.user.login, "newbie");
    assert!(me.memberships.is_empty());
    let e = server.client().login("newbie", "!sso").await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    // Its only way in stays linked.
    let url = format!("{}/api/v1/me/sso/make", server.url);
    let r = newbie.send(reqwest::Method::DELETE, &url, None).await;
    assert_eq!(r.status(), 403, "a session needs its CSRF token");
    let r = newbie
        .send_with_csrf(reqwest::Method::DELETE, &url, None, &csrf)
        .await;
    assert_eq!(r.status(), 409);

    // "linked": the provider's "owner" is not the owner until the owner links it.
    peer.account("u-4", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    peer.next_login(Some("u-4")).await;
    let fragment = Browser::default().sso(&server.url, "strict").await;
    assert!(
        decoded(&fragment).contains("is not linked to a Hearth account"),
        "{fragment}"
    );
    // Linking needs a session; without one the dashboard is told so.
    let fragment = Browser::default()
        .walk(
            &format!("{}/api/v1/auth/sso/strict/start?link=true", server.url),
            None,
        )
        .await;
    assert!(
        decoded(&fragment).contains("your session has ended"),
        "{fragment}"
    );
    let mut owners_browser = Browser::default();
    let r = owners_browser
        .send(
            reqwest::Method::POST,
            &format!("{}/api/v1/auth/login", server.url),
            Some(serde_json::json!({ "login": "owner", "secret": OWNER_SECRET })),
        )
        .await;
    assert_eq!(r.status(), 200);
    let csrf = r.json::<LoginResponse>().await.unwrap().csrf_token;
    let linked = owners_browser
        .walk(
            &format!("{}/api/v1/auth/sso/strict/start?link=true", server.url),
            None,
        )
        .await;
    assert_eq!(linked, "sso-linked=strict");
    let mut b = Browser::default();
    assert_eq!(b.sso(&server.url, "strict").await, "sso");
    assert_eq!(b.finish(&server.url, None).await.status(), 200);
    assert_eq!(b.me(&server.url).await.user.login, "owner");
    // The same provider account cannot be linked to a second Hearth account (newbie's browser
    // forgets its session at the provider, where it is still logged in as u-3).
    peer.next_login(Some("u-4")).await;
    newbie.forget(&peer.issuer);
    let fragment = newbie
        .walk(
            &format!("{}/api/v1/auth/sso/strict/start?link=true", server.url),
            None,
        )
        .await;
    assert!(
        decoded(&fragment).contains("linked to another Hearth account"),
        "{fragment}"
    );

    // Unlinked, it no longer logs in.
    let url = format!("{}/api/v1/me/sso/strict", server.url);
    let r = owners_browser
        .send_with_csrf(reqwest::Method::DELETE, &url, None, &csrf)
        .await;
    assert_eq!(r.status(), 204);
    let fragment = Browser::default().sso(&server.url, "strict").await;
    assert!(decoded(&fragment).contains("is not linked"), "{fragment}");
    let actions = audit_actions(&owner).await;
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "user.create" && d["sso"] == "make" && d["login"] == "newbie")
    );
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.sso_unlink" && d["provider"] == "strict")
    );
}

/// A provider with a certificate of the organisation's own CA is reached over HTTPS once its
/// `ca_file` is given, and refused (with the reason shown) without it.
#[tokio::test]
async fn a_provider_behind_an_internal_ca_is_trusted_through_its_ca_file() {
    let pki = TEST_CA.get_or_init(crate::pki::Pki::new);
    let tls = [
        ("OIDC_TLS_CERT", pki.path("cert.pem")),
        ("OIDC_TLS_KEY", pki.path("key.pem")),
    ];
    let Some(peer) = OidcPeer::start_with(&tls).await else {
        return;
    };
    assert!(
        peer.issuer.starts_with("https://localhost:"),
        "{}",
        peer.issuer
    );
    peer.account("u-1", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    peer.next_login(Some("u-1")).await;

    let untrusting = server_with(&peer, &[("corp", "match")]).await;
    untrusting.bootstrap().await;
    let fragment = Browser::default().sso(&untrusting.url, "corp").await;
    assert!(
        decoded(&fragment).contains("corp SSO could not be reached"),
        "{fragment}"
    );
    // A command line waiting for it is told so too.
    let back = "http://127.0.0.1:4000/";
    let start = format!(
        "{}/api/v1/auth/sso/corp/start?cli_port=4000&cli_challenge={}",
        untrusting.url,
        "a".repeat(43)
    );
    let reached = Browser::default().walk(&start, Some(back)).await;
    let said = decoded(reached.split_once('?').unwrap().1);
    assert!(
        reached.starts_with(&format!("{back}?error=")) && said.contains("could not be reached"),
        "{reached}"
    );

    let ca: PathBuf = pki.path("ca.pem").into();
    let server = server_configured(&peer, &[("corp", "match")], |p| {
        p.ca_file = Some(ca.clone())
    })
    .await;
    server.bootstrap().await;
    let mut b = Browser::default();
    assert_eq!(b.sso(&server.url, "corp").await, "sso");
    assert_eq!(b.finish(&server.url, None).await.status(), 200);
    assert_eq!(b.me(&server.url).await.user.login, "owner");
}

/// A browser session opened through the provider `corp` as its account `sub` (which has no
/// second factor), and its CSRF token.
async fn provider_session(peer: &OidcPeer, server: &TestServer, sub: &str) -> (Browser, String) {
    peer.next_login(Some(sub)).await;
    let mut b = Browser::default();
    assert_eq!(b.sso(&server.url, "corp").await, "sso");
    let csrf = b
        .finish(&server.url, None)
        .await
        .json::<LoginResponse>()
        .await
        .unwrap()
        .csrf_token;
    (b, csrf)
}

/// Runs the browser test `test` against `server` and `peer` once the owner has an authenticator
/// app, giving it the first of its recovery codes; the codes, or `None` when the test could not
/// run here (no `oathtool`, no browser).
async fn with_app_in_browser(
    test: &str,
    server: &TestServer,
    peer: &OidcPeer,
    owner: &hearth_client::Client,
) -> Option<Vec<String>> {
    let codes = with_authenticator_app(owner).await?;
    let env = [
        ("HEARTH_URL", server.url.as_str()),
        ("OIDC_ISSUER", peer.issuer.as_str()),
        ("HEARTH_RECOVERY_CODE", codes[0].as_str()),
    ];
    browser_test(test, &env).await.then_some(codes)
}

/// Turns on `owner`'s authenticator app; its recovery codes, or `None` without `oathtool` here.
async fn with_authenticator_app(owner: &hearth_client::Client) -> Option<Vec<String>> {
    let setup = owner.begin_mfa().await.unwrap();
    let now = oathtool(&setup.secret, 0)?;
    Some(owner.confirm_mfa(&now).await.unwrap().recovery_codes)
}

/// A new API token made in the provider's session `b` (CSRF token `csrf`).
async fn sso_token(b: &mut Browser, server: &TestServer, csrf: &str) -> String {
    let r = b
        .send_with_csrf(
            reqwest::Method::POST,
            &format!("{}/api/v1/tokens", server.url),
            Some(serde_json::json!({ "name": "cli" })),
            csrf,
        )
        .await;
    r.json::<hearth_proto::api::CreatedToken>()
        .await
        .unwrap()
        .token
}

/// The dashboard in a real Chromium logs in through the provider (button on the login form, then
/// Hearth's second factor), shows a refusal, lists, unlinks and links the member's identity
/// under Account, and logs out at the provider too (`web/tests/sso.test.mjs` holds the steps).
#[tokio::test]
async fn the_dashboard_logs_in_and_links_through_the_provider_in_a_real_browser() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_configured(&peer, &[("corp", "match")], |p| {
        p.logout_at_provider = true;
    })
    .await;
    let (owner, _org) = server.bootstrap().await;
    peer.account(
        "u-1",
        serde_json::json!({ "preferred_username": "owner", "name": "Olive Owner" }),
    )
    .await;
    peer.account(
        "u-2",
        serde_json::json!({ "preferred_username": "mallory" }),
    )
    .await;
    if with_app_in_browser("sso.test.mjs", &server, &peer, &owner)
        .await
        .is_none()
    {
        return;
    }
    let actions = audit_actions(&owner).await;
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.login" && d["sso"] == "corp" && d["mfa"] == "recovery_code"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.sso_unlink" && d["provider"] == "corp")
    );
    let ids: Vec<SsoIdentity> = owner.raw_get("/api/v1/me/sso").await.unwrap();
    assert_eq!(ids.len(), 1, "linked again from the Account tab");
}

/// Members' passphrase sessions in the dashboard (an operator's, an admin's), in an organisation
/// that requires single sign-on, are told on the Account tab to log in through the provider, and
/// the page stays usable; logged in through the provider's button, the organisation's data loads
/// (`web/tests/sso-policy.test.mjs` holds the steps).
#[tokio::test]
async fn the_dashboard_tells_a_passphrase_session_to_log_in_through_the_provider_an_org_requires() {
    use hearth_proto::Role;
    use hearth_proto::api::Org;
    use hearth_proto::inventory::{NewMaterial, NewSpool};
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_with(&peer, &[("corp", "match")]).await;
    let (owner, org) = server.bootstrap().await;
    // The members' login secrets, derived from the passphrase as the page derives them (the salt
    // holds the address the browser uses).
    let passphrase = "violet staple horse battery";
    let mut users = Vec::new();
    for (login, role) in [("olga", Role::Operator), ("mia", Role::Admin)] {
        let secret = hearth_crypto::derive_login_secret(
            passphrase,
            &server.url,
            login,
            &hearth_crypto::KdfParams::default(),
        )
        .unwrap();
        let user = owner
            .create_user(login, &secret.expose_hex(), false)
            .await
            .unwrap();
        owner.add_member(org, login, role).await.unwrap();
        users.push(user);
    }
    let pla = owner
        .create_material(
            org,
            &NewMaterial {
                name: "Policy PLA".into(),
                material: "PLA".into(),
                ..NewMaterial::default()
            },
        )
        .await
        .unwrap();
    owner
        .create_spool(
            org,
            &NewSpool {
                material: pla.id,
                ..NewSpool::default()
            },
        )
        .await
        .unwrap();
    peer.account("u-1", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    peer.account("u-mia", serde_json::json!({ "preferred_username": "mia" }))
        .await;

    // The owner requires single sign-on from a login through the provider.
    let (mut b, csrf) = provider_session(&peer, &server, "u-1").await;
    let r = b
        .send_with_csrf(
            reqwest::Method::PUT,
            &format!("{}/api/v1/orgs/{org}/sso-policy", server.url),
            Some(serde_json::json!({ "require_sso": true })),
            &csrf,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Org>().await.unwrap().require_sso);

    let env = [
        ("HEARTH_URL", server.url.as_str()),
        ("OIDC_ISSUER", peer.issuer.as_str()),
        ("HEARTH_LOGINS", "olga,mia"),
        ("HEARTH_PASSPHRASE", passphrase),
    ];
    if !browser_test("sso-policy.test.mjs", &env).await {
        return;
    }
    // The page's logins, as the server saw them: each member's passphrase, then mia's provider.
    let page: serde_json::Value = owner
        .raw_get("/api/v1/system/audit?limit=1000")
        .await
        .unwrap();
    let logins_of = |user: &hearth_proto::api::User| -> Vec<serde_json::Value> {
        let actor = format!("user:{}", user.id);
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "auth.login" && e["actor"] == actor.as_str())
            .map(|e| e["details"]["sso"].clone())
            .collect()
    };
    assert_eq!(logins_of(&users[0]), [serde_json::Value::Null], "{page}");
    assert_eq!(
        logins_of(&users[1]),
        [serde_json::Value::Null, serde_json::json!("corp")],
        "{page}"
    );
    // That login linked the member to the provider's account, and the policy is still on.
    let r = b
        .send(
            reqwest::Method::GET,
            &format!("{}/api/v1/orgs/{org}/members", server.url),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let members: Vec<hearth_proto::api::Member> = r.json().await.unwrap();
    let row = members.iter().find(|m| m.user.login == "mia").unwrap();
    assert_eq!(row.sso, ["corp"], "{members:?}");
    assert_eq!(
        owner.members(org).await.unwrap_err().code(),
        Some("sso_required_by_org")
    );
}

/// A login `hearth login --sso` started comes back to its loopback port, and only the holder of
/// the verifier finishes it: not the browser (no cookie is set for it), not a wrong verifier.
#[tokio::test]
async fn a_login_the_cli_started_is_finished_by_the_verifier_only() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_with(&peer, &[("corp", "match")]).await;
    server.bootstrap().await;
    peer.account("u-1", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    peer.next_login(Some("u-1")).await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = b64.encode([7u8; 32]);
    let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let start = format!("{}/api/v1/auth/sso/corp/start", server.url);
    let mut b = Browser::default();
    // Malformed: a challenge that is no SHA-256, or linking at the same time.
    for bad in [
        "?cli_port=4000&cli_challenge=short",
        "?cli_port=4000",
        &format!("?cli_port=4000&cli_challenge={challenge}&link=true"),
    ] {
        let r = b
            .send(reqwest::Method::GET, &format!("{start}{bad}"), None)
            .await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let back = "http://127.0.0.1:4000/";
    let reached = b
        .walk(
            &format!("{start}?cli_port=4000&cli_challenge={challenge}"),
            Some(back),
        )
        .await;
    assert!(
        b.last_page.contains("will be logged in as owner") && b.last_page.contains("port 4000"),
        "the member is asked first: {}",
        b.last_page
    );
    let state = reqwest::Url::parse(&reached)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{reached}"));
    // The browser has no cookie to finish it with.
    assert_eq!(b.finish(&server.url, None).await.status(), 401);
    let finish = |verifier: String| {
        let url = format!("{}/api/v1/auth/sso/finish", server.url);
        let body = serde_json::json!({ "state": state, "verifier": verifier });
        async move {
            Browser::default()
                .send(reqwest::Method::POST, &url, Some(body))
                .await
        }
    };
    assert_eq!(finish(b64.encode([8u8; 32])).await.status(), 401);
    let r = finish(verifier.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<LoginResponse>().await.unwrap().user.login, "owner");
    assert_eq!(finish(verifier).await.status(), 401, "once");

    // Refused at the provider: the CLI is told why, not the dashboard.
    peer.next_login(None).await;
    let reached = Browser::default()
        .walk(
            &format!("{start}?cli_port=4000&cli_challenge={challenge}"),
            Some(back),
        )
        .await;
    assert!(reached.starts_with(&format!("{back}?error=")), "{reached}");
    assert!(
        decoded(reached.split_once('?').unwrap().1).contains("access_denied"),
        "{reached}"
    );
}

/// A provider set to `prompt = "login"` asks again even when the browser is still logged in there,
/// so on a shared machine the next person is not logged in as the last; one without it answers
/// silently, as providers do.
#[tokio::test]
async fn a_provider_set_to_prompt_asks_again_on_a_shared_machine() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_configured(&peer, &[("corp", "create"), ("kiosk", "create")], |p| {
        if p.id == "kiosk" {
            p.prompt = "login".into();
        }
    })
    .await;
    server.bootstrap().await;
    peer.account("u-a", serde_json::json!({ "preferred_username": "alice" }))
        .await;
    peer.account("u-b", serde_json::json!({ "preferred_username": "bob" }))
        .await;
    let url = server.url.clone();
    let log_in = async |b: &mut Browser, provider: &str| {
        assert_eq!(b.sso(&url, provider).await, "sso");
        assert_eq!(b.finish(&url, None).await.status(), 200);
        b.me(&url).await.user.login
    };
    let mut shared = Browser::default();
    peer.next_login(Some("u-a")).await;
    assert_eq!(log_in(&mut shared, "corp").await, "alice");
    // Bob at the same browser: the provider still knows alice and says so without asking.
    peer.next_login(Some("u-b")).await;
    assert_eq!(log_in(&mut shared, "corp").await, "alice");
    // Through the provider set to prompt, it asks, and bob is bob.
    assert_eq!(log_in(&mut shared, "kiosk").await, "bob");
}

/// Starting a login needs no account, and each start is kept ten minutes: past the configured
/// number in flight, starts are refused rather than stored.
#[tokio::test]
async fn a_flood_of_anonymous_starts_is_refused_past_the_logins_in_flight_allowed() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_set(
        &peer,
        &[("corp", "match")],
        |_| {},
        |s| {
            s.auth.max_sso_logins_in_flight = 2;
        },
    )
    .await;
    let start = format!("{}/api/v1/auth/sso/corp/start", server.url);
    let mut b = Browser::default();
    for _ in 0..2 {
        let r = b.send(reqwest::Method::GET, &start, None).await;
        assert_eq!(r.status(), 303);
    }
    let r = b.send(reqwest::Method::GET, &start, None).await;
    assert_eq!(r.status(), 503);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["code"], "sso_busy");
    assert_eq!(server.state.store.sso_logins_in_flight(0).await.unwrap(), 2);
}

/// An organisation that requires single sign-on refuses its members' passphrase sessions and the
/// API tokens made in them, and takes those of a provider's login; an admin turns it on only from
/// such a login (not to be locked out).
#[tokio::test]
async fn an_organisation_requiring_single_sign_on_refuses_passphrase_logins_and_their_tokens() {
    use hearth_proto::api::Org;
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_with(&peer, &[("corp", "match")]).await;
    let (owner, org) = server.bootstrap().await;
    let e = owner.set_sso_policy(org, true).await.unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    assert!(e.to_string().contains("yourself first"), "{e}");
    let passphrase_token = server.token_client(&owner).await;

    peer.account("u-1", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    let (mut b, csrf) = provider_session(&peer, &server, "u-1").await;
    let policy = format!("{}/api/v1/orgs/{org}/sso-policy", server.url);
    let on = serde_json::json!({ "require_sso": true });
    let r = b
        .send_with_csrf(reqwest::Method::PUT, &policy, Some(on), &csrf)
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Org>().await.unwrap().require_sso);

    // The passphrase session and its token: refused in the organisation, saying how to get in.
    for c in [&owner, &passphrase_token] {
        let e = c.members(org).await.unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (Some(403), Some("sso_required_by_org")),
            "{e}"
        );
        let said = e.to_string();
        assert!(
            said.contains("\"Log in with corp SSO\"")
                && said.contains("hearth login SERVER --sso corp"),
            "names this server's provider: {said}"
        );
    }
    // Outside it, the account still answers (to see why, to link).
    owner
        .raw_get::<serde_json::Value>("/api/v1/me")
        .await
        .unwrap();
    // The provider's session, and a token made in it, act in it.
    let printers = format!("{}/api/v1/orgs/{org}/printers", server.url);
    assert_eq!(
        b.send(reqwest::Method::GET, &printers, None).await.status(),
        200
    );
    let sso_token = server
        .client()
        .with_token(sso_token(&mut b, &server, &csrf).await);
    sso_token.members(org).await.unwrap();

    // Lifted (from the provider's login), the passphrase's work again; both changes audited.
    let off = serde_json::json!({ "require_sso": false });
    let r = b
        .send_with_csrf(reqwest::Method::PUT, &policy, Some(off), &csrf)
        .await;
    assert_eq!(r.status(), 200);
    owner.members(org).await.unwrap();
    let page: serde_json::Value = sso_token
        .raw_get(&format!("/api/v1/orgs/{org}/audit?limit=1000"))
        .await
        .unwrap();
    let policies: Vec<_> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "org.sso_policy")
        .map(|e| e["details"]["require_sso"].clone())
        .collect();
    assert_eq!(policies, [true, false]);
}

/// A provider taken out of the configuration no longer vouches for what it let in: the sessions
/// opened through it and the tokens made in them are refused, saying why, while passphrase logins
/// go on; put back, it lets them in again (nothing was deleted).
#[tokio::test]
async fn a_provider_removed_from_the_configuration_ends_what_it_let_in() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_with(&peer, &[("corp", "match")]).await;
    let (owner, _org) = server.bootstrap().await;
    let passphrase_token = new_token(&owner).await;
    peer.account("u-1", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    let (mut b, csrf) = provider_session(&peer, &server, "u-1").await;
    let sso_token = sso_token(&mut b, &server, &csrf).await;
    let providers = server.state.settings.auth.oidc.clone();
    // The restarted server listens on another port; a browser keeps cookies by host, not port.
    let cookie = b
        .cookie_header(&reqwest::Url::parse(&server.url).unwrap())
        .unwrap();
    let me = async |server: &TestServer| {
        reqwest::Client::new()
            .get(format!("{}/api/v1/me", server.url))
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await
            .unwrap()
    };

    let server = server.restart_with(|s| s.auth.oidc.clear()).await;
    let r = me(&server).await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "sso_provider_removed", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("this session was opened through the single sign-on provider \"corp\""),
        "{body}"
    );
    let e = server
        .client()
        .with_token(sso_token.clone())
        .me()
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(401), Some("sso_provider_removed"))
    );
    assert!(
        e.to_string().contains("this API token was made in a login"),
        "{e}"
    );
    // What the passphrase opened goes on.
    let token = server.client().with_token(passphrase_token);
    token.me().await.unwrap();
    let mut c = server.client();
    c.login("owner", OWNER_SECRET).await.unwrap();

    let server = server.restart_with(|s| s.auth.oidc = providers).await;
    assert_eq!(me(&server).await.status(), 200);
    server.client().with_token(sso_token).me().await.unwrap();
}

/// After the provider, one of the account's passkeys answers Hearth's second factor instead of
/// the app's code, in a real Chromium (`web/tests/sso-passkey.test.mjs`); then what the API
/// refuses: a challenge asked without the provider's login, and an answer that does not check out
/// (counted as a failed login, and the provider's login still open for the right one).
#[tokio::test]
async fn a_passkey_answers_hearths_second_factor_after_the_provider_in_a_real_browser() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_at_localhost(&peer, &[("corp", "match")]).await;
    let (owner, _org) = server.bootstrap().await;
    peer.account("u-1", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    let Some(codes) = with_app_in_browser("sso-passkey.test.mjs", &server, &peer, &owner).await
    else {
        return;
    };
    let actions = audit_actions(&owner).await;
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.login" && d["sso"] == "corp" && d["mfa"] == "passkey"),
        "{actions:?}"
    );
    let key = owner.passkeys().await.unwrap().remove(0);

    let start = format!("{}/api/v1/auth/sso/finish/passkey", server.url);
    let r = reqwest::Client::new().post(&start).send().await.unwrap();
    assert_eq!(r.status(), 401, "no provider's login to answer for");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "sso_expired"
    );

    peer.next_login(Some("u-1")).await;
    let mut b = Browser::default();
    assert_eq!(b.sso(&server.url, "corp").await, "sso");
    let ceremony: serde_json::Value = b
        .send(reqwest::Method::POST, &start, None)
        .await
        .json()
        .await
        .unwrap();
    let allowed = &ceremony["options"]["publicKey"]["allowCredentials"];
    assert_eq!(allowed[0]["id"], key.id.as_str(), "{ceremony}");
    assert_eq!(allowed.as_array().unwrap().len(), 1);
    let forged = serde_json::json!({
        "id": key.id, "rawId": key.id, "type": "public-key",
        "response": { "clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA" },
        "clientExtensionResults": {},
    });
    let finish = format!("{}/api/v1/auth/sso/finish", server.url);
    let answer = serde_json::json!({ "passkey": {
        "ceremony": ceremony["ceremony"], "credential": forged } });
    let r = b.send(reqwest::Method::POST, &finish, Some(answer)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "passkey_invalid"
    );
    assert!(
        audit_actions(&owner)
            .await
            .iter()
            .any(|(a, d)| a == "auth.login_failed" && d["failed"] == "passkey as second factor"),
        "a forged answer counts as a failed login"
    );
    let r = b.finish(&server.url, Some(codes[1].as_str())).await;
    assert_eq!(r.status(), 200, "the provider's login is still open");
}

/// The provider's back-channel logout, sent by the real provider when a member logs out there:
/// what that provider session opened here ends (its dashboard session, and the API token made in
/// it is revoked), while the member's other logins — another browser's through the provider, a
/// passphrase session — go on, and `auth.sso_logout` says what ended. A provider registered
/// without `sid` in its tokens names only the account: every login through it ends. Forged,
/// malformed or misdirected logout requests end nothing.
#[tokio::test]
async fn logging_out_at_the_provider_ends_what_its_session_opened_here() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_with(&peer, &[("corp", "match"), ("lab", "match")]).await;
    let (owner, _org) = server.bootstrap().await;
    // `lab` is registered without backchannel_logout_session_required: no `sid` anywhere.
    peer.client_with(
        "hearth-lab",
        "secret of lab",
        &server.url,
        "lab",
        serde_json::json!({ "backchannel_logout_session_required": false }),
    )
    .await;
    peer.account("u-1", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    let (mut laptop, csrf) = provider_session(&peer, &server, "u-1").await;
    let laptop_token = sso_token(&mut laptop, &server, &csrf).await;
    let (mut desk, desk_csrf) = provider_session(&peer, &server, "u-1").await;
    let desk_token = sso_token(&mut desk, &server, &desk_csrf).await;
    let me_status = async |b: &mut Browser| {
        b.send(
            reqwest::Method::GET,
            &format!("{}/api/v1/me", server.url),
            None,
        )
        .await
        .status()
    };

    // Requests that are no logout token of the provider's end nothing.
    let logout = format!("{}/api/v1/auth/sso/corp/logout", server.url);
    let post = async |url: &str, body: &str| {
        reqwest::Client::new()
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    };
    let b64 = |v: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = hearth_proto::time_fmt::now_ms() / 1000;
    let unsigned = format!(
        "{}.{}.",
        b64(serde_json::json!({ "alg": "none", "typ": "logout+jwt" })),
        b64(serde_json::json!({
            "iss": peer.issuer, "aud": "hearth-corp", "sub": "u-1", "iat": now, "exp": now + 120,
            "jti": "forged", "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        }))
    );
    for body in [
        format!("logout_token={unsigned}"),
        "logout_token=not.a.jwt".to_owned(),
        "nothing=here".to_owned(),
    ] {
        let r = post(&logout, &body).await;
        assert_eq!(r.status(), 400, "{body}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["code"], "invalid_request", "{e}");
    }
    let r = post(
        &format!("{}/api/v1/auth/sso/nobody/logout", server.url),
        &format!("logout_token={unsigned}"),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(me_status(&mut laptop).await, 200);

    // The laptop logs out at the provider: its session here ends and its token is revoked.
    laptop.log_out_at(&peer.issuer).await;
    assert_eq!(me_status(&mut laptop).await, 401);
    let e = server
        .client()
        .with_token(laptop_token)
        .me()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    // The desk's login through the provider, its token and the passphrase session go on.
    assert_eq!(desk.me(&server.url).await.user.login, "owner");
    server
        .client()
        .with_token(desk_token.clone())
        .me()
        .await
        .unwrap();
    owner.me().await.unwrap();
    let audit = owner.audit_page(None, 0, 100).await.unwrap();
    let ended: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action == "auth.sso_logout")
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    let d = &ended[0].details;
    assert_eq!(ended[0].actor, "sso:corp");
    assert_eq!(
        (&d["provider"], &d["subject"], &d["sessions"], &d["tokens"]),
        (
            &serde_json::json!("corp"),
            &serde_json::json!("u-1"),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{d}"
    );
    assert!(d["sid"].is_string(), "{d}");

    // Through `lab`, whose tokens carry no sid: one logout at the provider ends both browsers'
    // logins through it, and nothing of `corp`'s.
    let lab_login = async || {
        let mut b = Browser::default();
        peer.next_login(Some("u-1")).await;
        assert_eq!(b.sso(&server.url, "lab").await, "sso");
        assert_eq!(b.finish(&server.url, None).await.status(), 200);
        b
    };
    let mut kiosk = lab_login().await;
    let mut bench = lab_login().await;
    kiosk.log_out_at(&peer.issuer).await;
    assert_eq!(me_status(&mut kiosk).await, 401);
    assert_eq!(me_status(&mut bench).await, 401);
    assert_eq!(desk.me(&server.url).await.user.login, "owner");
    server.client().with_token(desk_token).me().await.unwrap();
    owner.verify_audit(None, None).await.unwrap();
}

/// With `logout_at_provider`, logging out of the dashboard also logs out at the provider (its
/// end-session page, then back to the dashboard): the next login through it asks again, where it
/// would otherwise answer at once as the member before.
#[tokio::test]
async fn logging_out_of_hearth_logs_out_at_a_provider_set_to() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_configured(&peer, &[("corp", "match")], |p| {
        p.logout_at_provider = true;
    })
    .await;
    server.bootstrap().await;
    peer.account("u-1", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    let (mut b, csrf) = provider_session(&peer, &server, "u-1").await;
    let r = b
        .send_with_csrf(
            reqwest::Method::POST,
            &format!("{}/api/v1/auth/logout", server.url),
            None,
            &csrf,
        )
        .await;
    assert_eq!(r.status(), 200);
    let out: hearth_proto::api::LogoutResponse = r.json().await.unwrap();
    let url = reqwest::Url::parse(&out.provider_logout).unwrap();
    assert!(
        out.provider_logout
            .starts_with(&format!("{}/session/end", peer.issuer)),
        "{url}"
    );
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "hearth-corp");
    assert_eq!(
        query["post_logout_redirect_uri"],
        format!("{}/", server.url)
    );
    // The ID token of this login, as the provider's hint of whose session ends (Okta requires
    // it); the provider checks it on its page below.
    let hint = query["id_token_hint"].split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, hint).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&claims["sub"], &claims["aud"]),
        (&serde_json::json!("u-1"), &serde_json::json!("hearth-corp"))
    );
    // Hearth's session is over already; the provider's ends on its page and comes back.
    let me = b
        .send(
            reqwest::Method::GET,
            &format!("{}/api/v1/me", server.url),
            None,
        )
        .await;
    assert_eq!(me.status(), 401);
    assert_eq!(
        b.end_session(&out.provider_logout).await.as_deref(),
        Some(format!("{}/", server.url).as_str())
    );
    // The provider no longer knows this browser: it asks, and (the test refusing) Hearth says so.
    peer.next_login(None).await;
    let fragment = b.sso(&server.url, "corp").await;
    assert!(fragment.starts_with("sso-error="), "{fragment}");
}
