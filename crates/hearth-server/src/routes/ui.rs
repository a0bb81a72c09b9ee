//! The web dashboard: static files from `web/`, compiled into the binary so `hearthd` stays one
//! file to install. Everything it shows comes from `/api/v1` with the browser's session, like any
//! other client; the server adds nothing but the files and their security headers.
//!
//! The files hold no secret and no design: the login secret is derived in the browser (Argon2id,
//! through the vendored `hash-wasm`), and what the server serves is the same for everyone.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A file of the dashboard: its name under `/ui/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("../../../../web/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../web/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../../web/app.css"),
    },
    Asset {
        name: "argon2.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../web/vendor/hash-wasm-argon2-4.13.0.umd.min.js"),
    },
];

/// What the page may do: load its own files, talk to its own origin, compile the Argon2
/// WebAssembly module (`wasm-unsafe-eval` allows WebAssembly only, not `eval`), nothing inline,
/// never framed (clickjacking of the job buttons).
const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

fn serve(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            // Small files, and a new server version must never run with an old script.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard's page.
pub async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

/// `GET /ui/{file}`: one of the dashboard's scripts or style sheets.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a.content_type, a.body),
        None => ApiError::not_found(format!("dashboard file {name}")).into_response(),
    }
}
