//! Bad input gets a 4xx with `{"code", "message"}`, never a 500. The cases live in
//! `test_data/malformed.txt`, one request per line.

use crate::support::*;
use hearth_proto::api::ErrorBody;

#[tokio::test]
async fn malformed_requests_get_clear_4xx_answers() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let token = new_token(&owner).await;
    let cases = include_str!("../../test_data/malformed.txt");
    let http = reqwest::Client::new();
    let mut failures = Vec::new();
    for (n, line) in cases
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.splitn(6, '|').map(str::trim).collect();
        let (status, method, path, auth, headers, body) = (f[0], f[1], f[2], f[3], f[4], f[5]);
        let path = path
            .replace("{org}", &org.to_string())
            .replace("{uuid}", &uuid::Uuid::new_v4().to_string())
            .replace("{hash}", &"ab".repeat(32));
        let mut rb = http.request(method.parse().unwrap(), format!("{}{path}", server.url));
        rb = match auth {
            "token" => rb.bearer_auth(&token),
            "badtoken" => rb.bearer_auth("hth_not-a-real-token"),
            _ => rb,
        };
        if headers != "-" {
            for kv in headers.split(';') {
                let (k, v) = kv.split_once(':').unwrap();
                rb = rb.header(k, v);
            }
        }
        match body {
            "-" => {}
            "@big" => rb = rb.body(format!("{{\"token\":\"{}\"}}", "x".repeat(1 << 20))),
            b => rb = rb.body(b.to_owned()),
        }
        let resp = rb.send().await.unwrap();
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        if got.to_string() != status {
            failures.push(format!(
                "line {}: {method} {path}: expected {status}, got {got}: {text}",
                n + 1
            ));
            continue;
        }
        if method != "HEAD" {
            match serde_json::from_str::<ErrorBody>(&text) {
                Ok(b) if !b.code.is_empty() && !b.message.is_empty() => {}
                _ => failures.push(format!(
                    "line {}: {method} {path}: body is not an error object: {text}",
                    n + 1
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
