//! `hearth notify`: an admin adds a signed webhook and a Slack channel, tests both against a real
//! HTTP destination on 127.0.0.1, reads the deliveries and removes one.

use crate::support::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

type Got = (HeaderMap, Bytes);
type Shared = (mpsc::UnboundedSender<Got>, Arc<Mutex<VecDeque<u16>>>);

async fn record(
    State((tx, answers)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let _ = tx.send((headers, body));
    let status = answers.lock().unwrap().pop_front().unwrap_or(200);
    (StatusCode::from_u16(status).unwrap(), "no_service")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_tests_lists_and_removes_notification_channels() {
    let server =
        TestServer::start_with(|s, _| s.notifications.allow_private_addresses = true).await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let answers = Arc::new(Mutex::new(VecDeque::new()));
    let app = axum::Router::new()
        .fallback(record)
        .with_state((tx, answers.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dest = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let out = ada.try_run(&["notify", "list"]).await;
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no notification channels"));

    // A signed webhook: the secret is printed once, and it verifies what the server sends.
    let hook_url = format!("{dest}/hooks/hearth");
    let out = ada
        .run(&[
            "notify",
            "add",
            "ops",
            "--kind",
            "webhook",
            "--url",
            &hook_url,
            "--events",
            "job.failed,printer.error",
        ])
        .await;
    assert!(out.contains("job.failed, printer.error"), "{out}");
    let secret = out
        .lines()
        .find(|l| l.starts_with("whsec_"))
        .unwrap_or_else(|| panic!("no signing secret in {out}"))
        .to_owned();
    let out = ada.run(&["notify", "test", "ops"]).await;
    assert!(out.contains("ops: delivered (200)"), "{out}");
    let (headers, body) = rx.recv().await.unwrap();
    let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    let expected = hearth_server::notify::render::sign(
        &secret,
        &h("webhook-id"),
        h("webhook-timestamp").parse().unwrap(),
        &body,
    )
    .unwrap();
    assert_eq!(h("webhook-signature"), expected);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["type"], "test");

    // A Slack URL read from standard input (it is a password), refused by the destination.
    let mut add = ada.command(&["notify", "add", "chat", "--kind", "slack", "--url", "-"]);
    let mut child = add
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{dest}/services/T0/B0/xyz\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    assert_success(&child.wait_with_output().await.unwrap());
    answers.lock().unwrap().push_back(404);
    let out = ada.try_run(&["notify", "test", "chat"]).await;
    assert!(!out.status.success(), "a refused test fails the command");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("chat: failed (the destination answered 404: no_service)"),
        "{err}"
    );
    let (_, body) = rx.recv().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        json["text"]
            .as_str()
            .unwrap()
            .starts_with("*Test notification from Hearth*")
    );

    // Bad input is refused with the reason, before anything is sent.
    let out = ada
        .try_run(&[
            "notify",
            "add",
            "x",
            "--kind",
            "ntfy",
            "--url",
            &dest,
            "--events",
            "job.finished",
        ])
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("job.completed"));
    let out = ada
        .try_run(&["notify", "add", "x", "--kind", "ntfy", "--url", &dest])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("topic"),
        "{out:?}"
    );

    let list = ada.run(&["notify", "list"]).await;
    let chat = list.lines().find(|l| l.starts_with("chat")).unwrap();
    assert!(
        chat.contains("slack") && chat.contains("failed (the destination answered 404"),
        "{list}"
    );
    assert!(
        !list.contains("xyz"),
        "the Slack URL's secret part is not shown: {list}"
    );
    let ops = list.lines().find(|l| l.starts_with("ops")).unwrap();
    assert!(ops.contains("delivered (200)"), "{list}");
    let deliveries: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["notify", "deliveries", "chat", "--json"]).await).unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["state"], "failed");
    assert_eq!(deliveries[0]["response_status"], 404);

    let out = ada
        .run(&[
            "notify",
            "edit",
            "ops",
            "--events",
            "job.completed,job.failed",
        ])
        .await;
    assert_eq!(out.trim(), "ops now follows job.completed, job.failed");
    let out = ada
        .run(&["notify", "edit", "ops", "--pools", "pla,petg"])
        .await;
    assert_eq!(
        out.trim(),
        "ops now follows job.completed, job.failed for pools petg, pla"
    );
    let list = ada.run(&["notify", "list"]).await;
    assert!(
        list.lines()
            .any(|l| l.starts_with("ops") && l.contains(" petg,pla ")),
        "{list}"
    );
    let out = ada.run(&["notify", "edit", "ops", "--pools", ""]).await;
    assert_eq!(out.trim(), "ops now follows job.completed, job.failed");
    let out = ada.try_run(&["notify", "edit", "ops"]).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--name, --events, --pools and/or --quiet")
    );

    // Quiet hours: set in a time zone, shown, refused without one or with a bad time, removed.
    let out = ada
        .run(&[
            "notify",
            "edit",
            "ops",
            "--quiet",
            "22:00-7:00",
            "--time-zone",
            "Europe/Berlin",
        ])
        .await;
    assert!(
        out.contains("quiet hours: 22:00-07:00 Europe/Berlin"),
        "{out}"
    );
    let list = ada.run(&["notify", "list"]).await;
    assert!(
        list.lines()
            .any(|l| l.starts_with("ops") && l.contains("22:00-07:00 Europe/Berlin")),
        "{list}"
    );
    for (args, says) in [
        (&["--quiet", "22:00-07:00"][..], "--quiet needs --time-zone"),
        (
            &["--quiet", "22:00-31:00", "--time-zone", "UTC"][..],
            "give a time of day as HH:MM",
        ),
    ] {
        let mut all = vec!["notify", "edit", "ops"];
        all.extend_from_slice(args);
        let out = ada.try_run(&all).await;
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = ada.run(&["notify", "edit", "ops", "--quiet", "off"]).await;
    assert!(out.contains("quiet hours: -"), "{out}");

    assert!(
        ada.run(&["notify", "remove", "chat"])
            .await
            .contains("removed chat")
    );
    let list = ada.run(&["notify", "list"]).await;
    assert!(!list.contains("chat") && list.contains("ops"), "{list}");
}
