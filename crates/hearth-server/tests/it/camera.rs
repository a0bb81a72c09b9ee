//! Printer cameras through the server: an agent's sealed frame is kept (the latest per printer)
//! and handed to members as it was sent; what the server can check without keys is checked, and a
//! member's request for a fresh frame reaches the agent.

use crate::fleet::*;
use crate::support::*;
use base64::Engine;
use hearth_proto::agent::ServerMsg;
use hearth_proto::api::{MAX_SNAPSHOT_BYTES, Printer};
use hearth_proto::ids::OrgId;
use sha2::Digest;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A frame as an agent uploads it: age bytes and a manifest naming the printer, epoch and hash
/// (the signature is the agent's business with members; the server does not check it).
pub(crate) fn upload(printer: &str, epoch: i64, sealed: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "manifest": {
            "manifest": {
                "printer": printer,
                "epoch": epoch,
                "blob_sha256": hex::encode(sha2::Sha256::digest(sealed)),
            },
            "signature": "by the agent",
        },
        "sealed": b64(sealed),
    })
}

pub(crate) async fn put(
    server: &TestServer,
    token: &str,
    printer: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .put(format!(
            "{}/api/v1/agent/printers/{printer}/snapshot",
            server.url
        ))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

async fn printers(owner: &hearth_client::Client, org: OrgId) -> Vec<Printer> {
    owner
        .raw_get(&format!("/api/v1/orgs/{org}/printers"))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_latest_sealed_frame_is_kept_checked_and_handed_to_members_only() {
    // One that may notify a receiver on this machine.
    let server = crate::notify::server().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    owner
        .raw_post::<serde_json::Value>(
            &format!("/api/v1/orgs/{org}/epochs"),
            &serde_json::json!({"epoch": 1, "sealed": {"epoch": 1}}),
        )
        .await
        .unwrap();
    let with_camera = hearth_proto::agent::PrinterInfo {
        camera: true,
        ..printer_info("mk4", "farm")
    };
    let (agent, ws) = approved_agent(
        &server,
        &owner,
        org,
        1,
        vec![with_camera, printer_info("xl", "farm")],
    )
    .await;
    drop(ws);
    let (mut ws, token) = agent.connect(&server).await.unwrap();
    let ps = printers(&owner, org).await;
    let mk4 = ps.iter().find(|p| p.name == "mk4").unwrap().clone();
    let xl = ps.iter().find(|p| p.name == "xl").unwrap().clone();
    assert_eq!(
        mk4.camera.as_ref().map(|c| c.snapshot_at.is_none()),
        Some(true)
    );
    assert_eq!(xl.camera, None, "no camera configured");

    let sealed = b"age-encryption.org/v1\n-> X25519 stanza\nciphertext...".repeat(20);
    // Refused: no token, not an age file, a hash that does not match, another printer in the
    // manifest, a printer of no such name, an old epoch, too large.
    let anon = reqwest::Client::new()
        .put(format!("{}/api/v1/agent/printers/mk4/snapshot", server.url))
        .json(&upload("mk4", 1, &sealed))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert_eq!(
        put(
            &server,
            &token,
            "mk4",
            &upload("mk4", 1, b"\xff\xd8 a JPEG")
        )
        .await
        .0,
        422
    );
    let mut lying = upload("mk4", 1, &sealed);
    lying["sealed"] = b64(b"age-encryption.org/v1\nother").into();
    assert_eq!(put(&server, &token, "mk4", &lying).await.0, 422);
    assert_eq!(
        put(&server, &token, "mk4", &upload("xl", 1, &sealed))
            .await
            .0,
        422
    );
    assert_eq!(
        put(&server, &token, "nope", &upload("nope", 1, &sealed))
            .await
            .0,
        404
    );
    let (status, body) = put(&server, &token, "mk4", &upload("mk4", 0, &sealed)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("stale_epoch")),
        "{body}"
    );
    let mut huge = b"age-encryption.org/v1\n".to_vec();
    huge.resize(MAX_SNAPSHOT_BYTES + 1, b'x');
    assert_eq!(
        put(&server, &token, "mk4", &upload("mk4", 1, &huge))
            .await
            .0,
        413
    );
    assert_eq!(
        owner
            .printer_snapshot(org, mk4.id)
            .await
            .unwrap_err()
            .status(),
        Some(404),
        "nothing kept of the refused ones"
    );

    // The largest frame is accepted (its body is larger than other JSON bodies may be).
    huge.truncate(MAX_SNAPSHOT_BYTES);
    assert_eq!(
        put(&server, &token, "mk4", &upload("mk4", 1, &huge))
            .await
            .0,
        204
    );

    // Accepted: the printer says when, members get the bytes and manifest as sent.
    let sent = upload("mk4", 1, &sealed);
    assert_eq!(put(&server, &token, "mk4", &sent).await.0, 204);
    let seen = printers(&owner, org).await;
    let cam = seen
        .iter()
        .find(|p| p.name == "mk4")
        .unwrap()
        .camera
        .clone()
        .unwrap();
    assert!(cam.snapshot_at.is_some());
    let viewer = member(&server, &owner, org, "vera", hearth_proto::Role::Viewer).await;
    let got = viewer.printer_snapshot(org, mk4.id).await.unwrap();
    assert_eq!(got.manifest, sent["manifest"]);
    assert_eq!(got.sealed, sent["sealed"].as_str().unwrap());
    assert_eq!(Some(got.received_at), cam.snapshot_at);
    // A newer frame replaces it.
    let newer = b"age-encryption.org/v1\n-> X25519 another\nmore".to_vec();
    assert_eq!(
        put(&server, &token, "mk4", &upload("mk4", 1, &newer))
            .await
            .0,
        204
    );
    let got = viewer.printer_snapshot(org, mk4.id).await.unwrap();
    assert_eq!(got.sealed, b64(&newer));
    // Another organisation's member does not find it.
    let other = owner.create_org("other", None, None).await.unwrap();
    let err = owner.printer_snapshot(other.id, mk4.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));

    // When the printer reports an error, the notification says where to look.
    let mut hook =
        crate::notify::webhook(&owner, org, hearth_proto::notify::NotifyEvent::PrinterError).await;
    let mut jammed = idle();
    jammed.state = hearth_proto::agent::PrinterState::Error;
    jammed.error = Some("filament runout".into());
    send(
        &mut ws,
        &hearth_proto::agent::AgentMsg::Telemetry {
            printer: "mk4".into(),
            status: jammed,
        },
    )
    .await;
    let said = hook.next("printer.error").await.json();
    let message = said["data"]["message"].as_str().unwrap();
    assert!(
        message.contains("filament runout") && message.contains("`hearth camera mk4`"),
        "{said}"
    );

    // Operators see the frames in the metrics: three kept, six refused (the 401 is no agent's).
    server
        .assert_metrics(&[
            "hearth_camera_frames_total{result=\"kept\"} 3",
            "hearth_camera_frames_total{result=\"refused\"} 6",
        ])
        .await;

    // A member asks for a fresh frame: the agent is told; a printer without a camera, or whose
    // agent is away, cannot be asked.
    viewer.request_snapshot(org, mk4.id).await.unwrap();
    loop {
        match recv(&mut ws).await {
            ServerMsg::Snapshot { printer } => {
                assert_eq!(printer, "mk4");
                break;
            }
            ServerMsg::Ping | ServerMsg::Job { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let err = viewer.request_snapshot(org, xl.id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    drop(ws);
    let away = printers_until(&owner, org, "the agent away", |p| {
        p.iter()
            .all(|p| p.telemetry.state == hearth_proto::agent::PrinterState::Offline)
    })
    .await;
    assert!(!away.is_empty());
    let err = viewer.request_snapshot(org, mk4.id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
}
