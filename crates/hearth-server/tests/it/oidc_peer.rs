//! A real OpenID Connect provider for single sign-on tests, and a browser as far as cookies and
//! redirects go. The provider is panva's `oidc-provider`, run by `web/tests/oidc-peer.mjs` (npm,
//! installed by `scripts/install-browser.sh`; without Node.js or the package the tests using it
//! say so and pass, and fail under `HEARTH_REQUIRE_PEERS=1`). Shared by hearthd's and the CLI's
//! tests (`#[path]`).

use hearth_proto::api::Me;
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::io::AsyncBufReadExt;

/// The provider, killed with the test.
pub struct OidcPeer {
    pub issuer: String,
    _child: tokio::process::Child,
}

impl OidcPeer {
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// With `env` for the peer (its TLS certificate and key).
    pub async fn start_with(env: &[(&str, String)]) -> Option<Self> {
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

    pub async fn post(&self, path: &str, body: serde_json::Value) {
        let r = Browser::default()
            .http()
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
    }

    /// Registers hearthd at `hearth` as the client `id` of its provider `provider`, with its
    /// back-channel logout address (and `sid` in ID and logout tokens), as the README says.
    pub async fn client(&self, id: &str, secret: &str, hearth: &str, provider: &str) {
        self.client_with(id, secret, hearth, provider, serde_json::json!({}))
            .await;
    }

    /// As [`Self::client`], with the registration's fields `extra` added or replaced.
    pub async fn client_with(
        &self,
        id: &str,
        secret: &str,
        hearth: &str,
        provider: &str,
        extra: serde_json::Value,
    ) {
        let at = |path: &str| format!("{hearth}/api/v1/auth/sso/{provider}/{path}");
        let mut client = serde_json::json!({
            "client_id": id,
            "client_secret": secret,
            "redirect_uris": [at("callback")],
            "backchannel_logout_uri": at("logout"),
            "backchannel_logout_session_required": true,
            "post_logout_redirect_uris": [format!("{hearth}/")],
        });
        client
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.post("/_test/client", client).await;
    }

    pub async fn account(&self, sub: &str, claims: serde_json::Value) {
        self.post(
            "/_test/account",
            serde_json::json!({ "sub": sub, "claims": claims }),
        )
        .await;
    }

    /// The next login at the provider is answered as `sub`, or refused.
    pub async fn next_login(&self, sub: Option<&str>) {
        self.post("/_test/next-login", serde_json::json!({ "sub": sub }))
            .await;
    }
}

/// A browser as far as cookies and redirects go (cookies per host, paths ignored). It trusts the
/// test's own CA, as a company's browsers trust the company's.
#[derive(Default)]
pub struct Browser {
    cookies: HashMap<String, HashMap<String, String>>,
    /// The last page `walk` stopped at before going on (hearthd's question before it hands the
    /// command line its login).
    pub last_page: String,
}

/// The CA of `tls_peer`'s certificate, trusted by every test browser.
pub static TEST_CA: std::sync::OnceLock<crate::pki::Pki> = std::sync::OnceLock::new();

impl Browser {
    pub fn http(&self) -> reqwest::Client {
        let pki = TEST_CA.get_or_init(crate::pki::Pki::new);
        let ca = std::fs::read(pki.path("ca.pem")).unwrap();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap()
    }

    /// Drops the cookies of the site at `origin`.
    pub fn forget(&mut self, origin: &str) {
        let url = reqwest::Url::parse(origin).unwrap();
        self.cookies.remove(url.authority());
    }

    pub fn cookie_header(&self, url: &reqwest::Url) -> Option<String> {
        let jar = self.cookies.get(url.authority())?;
        let v: Vec<String> = jar
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        (!v.is_empty()).then(|| v.join("; "))
    }

    pub fn keep(&mut self, url: &reqwest::Url, r: &reqwest::Response) {
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

    pub async fn send(
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

    /// A request with the session's CSRF token, as the dashboard sends its changes.
    pub async fn send_with_csrf(
        &mut self,
        method: reqwest::Method,
        url: &str,
        body: Option<serde_json::Value>,
        csrf: &str,
    ) -> reqwest::Response {
        let parsed = reqwest::Url::parse(url).unwrap();
        let mut req = self
            .http()
            .request(method, url)
            .header("x-csrf-token", csrf);
        if let Some(c) = self.cookie_header(&parsed) {
            req = req.header(reqwest::header::COOKIE, c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// Opens `url` and follows redirects until one leads back to hearthd's dashboard (`/#...`);
    /// returns that fragment. `stop_at` ends the walk before a URL starting with it, returned whole.
    pub async fn walk(&mut self, url: &str, stop_at: Option<&str>) -> String {
        let mut at = reqwest::Url::parse(url).unwrap();
        for _ in 0..20 {
            if let Some(prefix) = stop_at
                && at.as_str().starts_with(prefix)
            {
                return at.to_string();
            }
            let mut r = self.send(reqwest::Method::GET, at.as_str(), None).await;
            if !r.status().is_redirection() {
                let status = r.status();
                let page = r.text().await.unwrap_or_default();
                // hearthd asking before it hands a command line its login: the member clicks on.
                if let Some(link) = page
                    .split("id=\"continue\" href=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                {
                    let link = link.replace("&amp;", "&");
                    self.last_page = page;
                    at = at.join(&link).unwrap();
                    continue;
                }
                // A page whose script submits its form at once (the provider ending its session
                // of someone else): submitted, as a browser would.
                let Some((action, fields)) = auto_submitted_form(&page) else {
                    panic!("{at}: {status}: {page}");
                };
                let target = at.join(&action).unwrap();
                r = self.post_form(&target, &fields).await;
                at = target;
                assert!(r.status().is_redirection(), "{at}: {}", r.status());
            }
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
    pub async fn sso(&mut self, hearth: &str, provider: &str) -> String {
        self.walk(
            &format!("{}/api/v1/auth/sso/{provider}/start", hearth),
            None,
        )
        .await
    }

    /// Logs out at the provider `issuer` (its own page, answered "Yes, sign me out"); the
    /// provider's back-channel logouts are sent before it answers.
    pub async fn log_out_at(&mut self, issuer: &str) {
        self.end_session(&format!("{issuer}/session/end")).await;
    }

    /// Opens the provider's end-session address `end` and answers its page "Yes, sign me out";
    /// where the provider then sends the browser, if anywhere.
    pub async fn end_session(&mut self, end: &str) -> Option<String> {
        let r = self.send(reqwest::Method::GET, end, None).await;
        assert_eq!(r.status(), 200, "{end}");
        let page = r.text().await.unwrap();
        let (action, mut fields) = first_form(&page).unwrap_or_else(|| panic!("{end}: {page}"));
        fields.push(("logout".into(), "yes".into()));
        let target = reqwest::Url::parse(end).unwrap().join(&action).unwrap();
        let r = self.post_form(&target, &fields).await;
        assert!(
            r.status().is_redirection() || r.status().is_success(),
            "{target}: {}",
            r.status()
        );
        r.headers()
            .get(reqwest::header::LOCATION)
            .map(|l| target.join(l.to_str().unwrap()).unwrap().to_string())
    }

    /// A form submitted as a browser does, with this browser's cookies.
    async fn post_form(
        &mut self,
        target: &reqwest::Url,
        fields: &[(String, String)],
    ) -> reqwest::Response {
        let mut body = reqwest::Url::parse("http://x/").unwrap();
        body.query_pairs_mut().extend_pairs(fields);
        let mut req = self
            .http()
            .post(target.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.query().unwrap_or_default().to_owned());
        if let Some(c) = self.cookie_header(target) {
            req = req.header(reqwest::header::COOKIE, c);
        }
        let r = req.send().await.unwrap();
        self.keep(target, &r);
        r
    }

    /// `POST /auth/sso/finish`, as the dashboard does on `/#sso`.
    pub async fn finish(&mut self, hearth: &str, code: Option<&str>) -> reqwest::Response {
        let url = format!("{}/api/v1/auth/sso/finish", hearth);
        self.send(
            reqwest::Method::POST,
            &url,
            Some(serde_json::json!({ "code": code })),
        )
        .await
    }

    pub async fn me(&mut self, hearth: &str) -> Me {
        let url = format!("{}/api/v1/me", hearth);
        let r = self.send(reqwest::Method::GET, &url, None).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

/// The action and hidden fields of a page that submits its only form on load.
fn auto_submitted_form(page: &str) -> Option<(String, Vec<(String, String)>)> {
    if !page.contains("forms[0].submit()") {
        return None;
    }
    first_form(page)
}

/// The action and fields of a page's first form.
fn first_form(page: &str) -> Option<(String, Vec<(String, String)>)> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(tag[start..].split('"').next()?.to_owned())
    };
    let form = page.split("<form").nth(1)?;
    let action = attr(form.split('>').next()?, "action")?;
    let fields = form
        .split("<input")
        .skip(1)
        .filter_map(|i| {
            let tag = i.split('>').next()?;
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect();
    Some((action, fields))
}

pub fn decoded(fragment: &str) -> String {
    let (_, v) = fragment.split_once('=').unwrap_or((fragment, ""));
    reqwest::Url::parse(&format!("http://x/?m={v}"))
        .unwrap()
        .query_pairs()
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
