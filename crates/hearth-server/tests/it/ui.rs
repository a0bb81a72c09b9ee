//! The web dashboard's files: served from the binary with headers that keep the page to its own
//! scripts and origin. What the page does is tested in a real browser (hearth-demo's tests).

use crate::support::*;

#[tokio::test]
async fn the_dashboard_is_served_with_a_strict_content_security_policy() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    for (path, kind, needle) in [
        ("/", "text/html", "/ui/app.js"),
        ("/ui/app.js", "text/javascript", "/auth/login"),
        ("/ui/app.css", "text/css", ".printer"),
        ("/ui/argon2.js", "text/javascript", "argon2id"),
    ] {
        let r = http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        let header = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}: {h:?}");
        let csp = header("content-security-policy");
        // Scripts only from the server itself (no inline script, no eval; WebAssembly for
        // Argon2 only), requests only to it, and no framing.
        for part in [
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval';",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"),
            "{csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert!(r.text().await.unwrap().contains(needle), "{path}");
    }
    // Anything else under /ui is a JSON 404 like every unknown path, never a file from disk.
    for path in ["/ui/nope.js", "/ui/..%2fCargo.toml", "/ui/app.js/x"] {
        let r = http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn an_api_only_server_serves_no_dashboard() {
    let server = TestServer::start_with(|s| s.ui.enabled = false).await;
    for path in ["/", "/ui/app.js"] {
        let r = reqwest::get(format!("{}{path}", server.url)).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "not_found", "{path}");
    }
    let info = reqwest::get(format!("{}/api/v1/info", server.url))
        .await
        .unwrap();
    assert_eq!(info.status(), 200, "the API is still served");
}
