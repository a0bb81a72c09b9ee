//! What the two servers the CLI runs on the member's machine share (`hearth bridge` for slicers,
//! `hearth ui` for the browser).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Whether the secret a client sent is `expected`: in time independent of where they differ (the
/// length is not secret).
pub fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An error answer: `status` and `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}
