//! Single sign-on against a real OpenID Connect provider: panva's `oidc-provider`, run by
//! `web/tests/oidc-peer.mjs` (npm, installed by `scripts/install-browser.sh`; without Node.js or
//! the package these tests say so and pass, and fail under `HEARTH_REQUIRE_PEERS=1`).
//!
//! A small cookie-keeping HTTP client plays the browser: it follows the redirects from hearthd to
//! the provider and back, as a browser's address bar would.

use crate::oathtool::code as oathtool;
use crate::support::*;
use hearth_proto::api::{LoginResponse, Me, ServerInfo, SsoIdentity};
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::io::AsyncBufReadExt;

/// The provider, killed with the test.
struct OidcPeer {
    issuer: String,
    _child: tokio::process::Child,
}

impl OidcPeer {
    async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// With `env` for the peer (its TLS certificate and key).
    async fn start_with(env: &[(&str, String)]) -> Option<Self> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/tests");
        let require = std::env::var("HEARTH_REQUIRE_PEERS").as_deref() == Ok("1");
        if !dir.join("node_modules/oidc-provider").is_dir() {
            assert!(
                !require,
                "HEARTH_REQUIRE_PEERS=1 but oidc-provider is not installed (scripts/install-browser.sh)"
            );
            eprintln!("skipped: oidc-provider is not installed (scripts/install-browser.sh)");
            return None;
        }
        let mut child = match tokio::process::Command::new("node")
            .arg("oidc-peer.mjs")
            .current_dir(&dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                assert!(!require, "HEARTH_REQUIRE_PEERS=1 but node cannot run: {e}");
                eprintln!("skipped: node cannot run: {e}");
                return None;
            }
        };
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(issuer) = line.strip_prefix("listening ") {
                let issuer = issuer.to_owned();
                // Keep reading (and dropping) what it prints, so it never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Some(Self {
                    issuer,
                    _child: child,
                });
            }
        }
        panic!("the OpenID provider exited before listening");
    }

    async fn post(&self, path: &str, body: serde_json::Value) {
        let r = Browser::default()
            .http()
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
    }

    async fn client(&self, id: &str, secret: &str, hearth: &TestServer, provider: &str) {
        let redirect = format!("{}/api/v1/auth/sso/{provider}/callback", hearth.url);
        self.post(
            "/_test/client",
            serde_json::json!({ "client_id": id, "client_secret": secret, "redirect_uris": [redirect] }),
        )
        .await;
    }

    async fn account(&self, sub: &str, claims: serde_json::Value) {
        self.post(
            "/_test/account",
            serde_json::json!({ "sub": sub, "claims": claims }),
        )
        .await;
    }

    /// The next login at the provider is answered as `sub`, or refused.
    async fn next_login(&self, sub: Option<&str>) {
        self.post("/_test/next-login", serde_json::json!({ "sub": sub }))
            .await;
    }
}

/// A browser as far as cookies and redirects go (cookies per host, paths ignored). It trusts the
/// test's own CA, as a company's browsers trust the company's.
#[derive(Default)]
struct Browser {
    cookies: HashMap<String, HashMap<String, String>>,
}

/// The CA of `tls_peer`'s certificate, trusted by every test browser.
static TEST_CA: std::sync::OnceLock<crate::pki::Pki> = std::sync::OnceLock::new();

impl Browser {
    fn http(&self) -> reqwest::Client {
        let pki = TEST_CA.get_or_init(crate::pki::Pki::new);
        let ca = std::fs::read(pki.path("ca.pem")).unwrap();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap()
    }

    /// Drops the cookies of the site at `origin`.
    fn forget(&mut self, origin: &str) {
        let url = reqwest::Url::parse(origin).unwrap();
        self.cookies.remove(url.authority());
    }

    fn cookie_header(&self, url: &reqwest::Url) -> Option<String> {
        let jar = self.cookies.get(url.authority())?;
        let v: Vec<String> = jar
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        (!v.is_empty()).then(|| v.join("; "))
    }

    fn keep(&mut self, url: &reqwest::Url, r: &reqwest::Response) {
        for c in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            let gone = attrs.to_ascii_lowercase().contains("max-age=0");
            let jar = self.cookies.entry(url.authority().to_owned()).or_default();
            if gone {
                jar.remove(k.trim());
            } else {
                jar.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let url = reqwest::Url::parse(url).unwrap();
        let mut req = self.http().request(method, url.clone());
        if let Some(c) = self.cookie_header(&url) {
            req = req.header(reqwest::header::COOKIE, c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        self.keep(&url, &r);
        r
    }

    /// Opens `url` and follows redirects until one leads back to hearthd's dashboard (`/#...`);
    /// returns that fragment. `stop_at` ends the walk before a URL starting with it, returned whole.
    async fn walk(&mut self, url: &str, stop_at: Option<&str>) -> String {
        let mut at = reqwest::Url::parse(url).unwrap();
        for _ in 0..20 {
            if let Some(prefix) = stop_at
                && at.as_str().starts_with(prefix)
            {
                return at.to_string();
            }
            let r = self.send(reqwest::Method::GET, at.as_str(), None).await;
            assert!(r.status().is_redirection(), "{at}: {}", r.status());
            let location = r.headers()[reqwest::header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned();
            let next = at.join(&location).unwrap();
            if next.path() == "/" && next.fragment().is_some() {
                return next.fragment().unwrap().to_owned();
            }
            at = next;
        }
        panic!("more than 20 redirects from {url}");
    }

    /// The whole login through `provider` of `hearth`: the fragment the dashboard is sent to.
    async fn sso(&mut self, hearth: &TestServer, provider: &str) -> String {
        self.walk(
            &format!("{}/api/v1/auth/sso/{provider}/start", hearth.url),
            None,
        )
        .await
    }

    /// `POST /auth/sso/finish`, as the dashboard does on `/#sso`.
    async fn finish(&mut self, hearth: &TestServer, code: Option<&str>) -> reqwest::Response {
        let url = format!("{}/api/v1/auth/sso/finish", hearth.url);
        self.send(
            reqwest::Method::POST,
            &url,
            Some(serde_json::json!({ "code": code })),
        )
        .await
    }

    async fn me(&mut self, hearth: &TestServer) -> Me {
        let url = format!("{}/api/v1/me", hearth.url);
        let r = self.send(reqwest::Method::GET, &url, None).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

fn decoded(fragment: &str) -> String {
    let (_, v) = fragment.split_once('=').unwrap_or((fragment, ""));
    reqwest::Url::parse(&format!("http://x/?m={v}"))
        .unwrap()
        .query_pairs()
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A hearthd with the provider `corp` (`accounts` as given) at `peer`, registered there.
async fn server_with(peer: &OidcPeer, providers: &[(&str, &str)]) -> TestServer {
    server_trusting(peer, providers, None).await
}

/// As [`server_with`], trusting the CAs of `ca_file` for the providers.
async fn server_trusting(
    peer: &OidcPeer,
    providers: &[(&str, &str)],
    ca_file: Option<PathBuf>,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings(&dir.path().join("data"));
    for (id, accounts) in providers {
        let secret = dir.path().join(format!("{id}.secret"));
        std::fs::write(&secret, format!("secret of {id}\n")).unwrap();
        s.auth.oidc.push(hearth_server::config::OidcProvider {
            id: (*id).into(),
            name: format!("{id} SSO"),
            issuer: peer.issuer.clone(),
            client_id: format!("hearth-{id}"),
            client_secret_file: Some(secret),
            ca_file: ca_file.clone(),
            accounts: (*accounts).into(),
            ..Default::default()
        });
    }
    let server = TestServer::start_in(dir, s).await;
    for (id, _) in providers {
        peer.client(
            &format!("hearth-{id}"),
            &format!("secret of {id}"),
            &server,
            id,
        )
        .await;
    }
    server
}

async fn audit_actions(owner: &hearth_client::Client) -> Vec<(String, serde_json::Value)> {
    let page: serde_json::Value = owner
        .raw_get("/api/v1/system/audit?limit=1000")
        .await
        .unwrap();
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["details"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_provider_logs_a_member_in_once_per_answer_and_hearths_second_factor_still_applies() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let server = server_with(&peer, &[("corp", "match")]).await;
    let (owner, _org) = server.bootstrap().await;
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
    assert_eq!(b.sso(&server, "corp").await, "sso");
    let r = b.finish(&server, None).await;
    assert_eq!(r.status(), 200);
    let login: LoginResponse = r.json().await.unwrap();
    assert_eq!(login.user.login, "owner");
    assert!(!login.csrf_token.is_empty());
    assert_eq!(b.me(&server).await.user.login, "owner");
    // The answer is used once.
    let again = b.finish(&server, None).await;
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
    assert_eq!(b.finish(&server, None).await.status(), 200);

    // Someone the provider knows but Hearth has no account for: refused and audited.
    peer.account(
        "u-2",
        serde_json::json!({ "preferred_username": "mallory" }),
    )
    .await;
    peer.next_login(Some("u-2")).await;
    let fragment = Browser::default().sso(&server, "corp").await;
    assert!(fragment.starts_with("sso-error="), "{fragment}");
    assert!(
        decoded(&fragment).contains("no Hearth account \"mallory\""),
        "{fragment}"
    );
    // The provider refusing (the member cancelled there) says so.
    peer.next_login(None).await;
    let fragment = Browser::default().sso(&server, "corp").await;
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
    assert_eq!(b.sso(&server, "corp").await, "sso");
    let r = b.finish(&server, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "mfa_required"
    );
    let r = b.finish(&server, Some("000000")).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "mfa_invalid"
    );
    let next = oathtool(&setup.secret, 1).unwrap();
    let r = b.finish(&server, Some(&next)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(b.me(&server).await.user.login, "owner");

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
    assert_eq!(newbie.sso(&server, "make").await, "sso");
    let r = newbie.finish(&server, None).await;
    assert_eq!(r.status(), 200);
    let csrf = r.json::<LoginResponse>().await.unwrap().csrf_token;
    let me = newbie.me(&server).await;
    assert_eq!(me.user.login, "newbie");
    assert!(me.memberships.is_empty());
    let e = server.client().login("newbie", "!sso").await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    // Its only way in stays linked.
    let url = format!("{}/api/v1/me/sso/make", server.url);
    let r = newbie.send(reqwest::Method::DELETE, &url, None).await;
    assert_eq!(r.status(), 403, "a session needs its CSRF token");
    let r = Browser::default()
        .http()
        .delete(&url)
        .header("x-csrf-token", csrf)
        .header(
            reqwest::header::COOKIE,
            newbie
                .cookie_header(&reqwest::Url::parse(&url).unwrap())
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // "linked": the provider's "owner" is not the owner until the owner links it.
    peer.account("u-4", serde_json::json!({ "preferred_username": "owner" }))
        .await;
    peer.next_login(Some("u-4")).await;
    let fragment = Browser::default().sso(&server, "strict").await;
    assert!(
        decoded(&fragment).contains("is not linked to a Hearth account"),
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
    assert_eq!(b.sso(&server, "strict").await, "sso");
    assert_eq!(b.finish(&server, None).await.status(), 200);
    assert_eq!(b.me(&server).await.user.login, "owner");
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
    let r = Browser::default()
        .http()
        .delete(&url)
        .header("x-csrf-token", csrf)
        .header(
            reqwest::header::COOKIE,
            owners_browser
                .cookie_header(&reqwest::Url::parse(&url).unwrap())
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let fragment = Browser::default().sso(&server, "strict").await;
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
    let fragment = Browser::default().sso(&untrusting, "corp").await;
    assert!(
        decoded(&fragment).contains("corp SSO could not be reached"),
        "{fragment}"
    );

    let server =
        server_trusting(&peer, &[("corp", "match")], Some(pki.path("ca.pem").into())).await;
    server.bootstrap().await;
    let mut b = Browser::default();
    assert_eq!(b.sso(&server, "corp").await, "sso");
    assert_eq!(b.finish(&server, None).await.status(), 200);
    assert_eq!(b.me(&server).await.user.login, "owner");
}

/// The dashboard in a real Chromium logs in through the provider (button on the login form, then
/// Hearth's second factor), shows a refusal, and lists, unlinks and links the member's identity
/// under Account (`web/tests/sso.test.mjs` holds the steps).
#[tokio::test]
async fn the_dashboard_logs_in_and_links_through_the_provider_in_a_real_browser() {
    let Some(peer) = OidcPeer::start().await else {
        return;
    };
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/tests");
    let chromium = std::env::var_os("CHROMIUM").map_or("/usr/bin/chromium".into(), PathBuf::from);
    if !chromium.exists() || !web.join("node_modules/playwright-core").is_dir() {
        assert!(
            std::env::var("HEARTH_REQUIRE_PEERS").as_deref() != Ok("1"),
            "HEARTH_REQUIRE_PEERS=1 but Chromium or playwright-core is missing (scripts/install-browser.sh)"
        );
        eprintln!("skipped: Chromium or playwright-core is missing (scripts/install-browser.sh)");
        return;
    }
    let server = server_with(&peer, &[("corp", "match")]).await;
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
    let setup = owner.begin_mfa().await.unwrap();
    let Some(now) = oathtool(&setup.secret, 0) else {
        return;
    };
    let codes = owner.confirm_mfa(&now).await.unwrap().recovery_codes;
    let out = tokio::process::Command::new("node")
        .arg("sso.test.mjs")
        .current_dir(&web)
        .env("HEARTH_URL", &server.url)
        .env("OIDC_ISSUER", &peer.issuer)
        .env("HEARTH_RECOVERY_CODE", &codes[0])
        .env("CHROMIUM", chromium)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
