//! `hearth bridge`, driven exactly like PrusaSlicer's "send to OctoPrint": `GET /api/version`, then a
//! multipart `POST /api/files/local` with `print`, `path`, `file` in that order and `X-Api-Key`.

use tokio::io::AsyncBufReadExt as _;

use crate::e2e::{agent_opens_job, enrolled_agent};
use crate::support::*;

/// What a slicer asks first, answered at `base` with `key` as OctoPrint answers it, and refused
/// without the key.
pub(crate) async fn answers_as_octoprint(base: &str, key: &str) {
    let http = reqwest::Client::new();
    let no_key = http
        .get(format!("{base}/api/version"))
        .header("X-Api-Key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 403);
    let v: serde_json::Value = http
        .get(format!("{base}/api/version"))
        .header("X-Api-Key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["api"].is_string());
    assert!(v["text"].as_str().unwrap().starts_with("OctoPrint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slicer_upload_through_the_bridge_is_sealed_and_printed() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let (agent, mut ws, http_token) = enrolled_agent(&server, &ada, "bench-pi", "mk4").await;
    let key = ada.run(&["bridge", "--show-key"]).await.trim().to_owned();
    assert!(key.len() >= 32);

    let mut bridge = ada
        .command(&["bridge", "--listen", "127.0.0.1:0", "--printer", "mk4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(bridge.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let base = first
        .strip_prefix("hearth bridge listening on ")
        .unwrap()
        .to_owned();

    let http = reqwest::Client::new();
    answers_as_octoprint(&base, &key).await;

    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "cube.gcode", "from the slicer");
    let data = std::fs::read(&file).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("print", "true")
        .text("path", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(data.clone())
                .file_name("cube20_prusaslicer_mk3s.gcode")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    let resp = http
        .post(format!("{base}/api/files/local"))
        .header("X-Api-Key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/api/files/local/cube20_prusaslicer_mk3s.gcode")
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["done"], true);
    assert_eq!(body["effectivePrint"], true);
    assert_eq!(
        body["files"]["local"]["name"],
        "cube20_prusaslicer_mk3s.gcode"
    );

    // The agent gets a job it verifies and opens to the slicer's exact bytes.
    let (_, plain) = agent_opens_job(&server, &ada, &agent, &mut ws, &http_token).await;
    assert_eq!(plain, data);
    let (c, org) = ada.client();
    let files: Vec<hearth_proto::api::FileEntry> = c
        .raw_get(&format!("/api/v1/orgs/{org}/files"))
        .await
        .unwrap();
    assert_eq!(files.len(), 1);

    // Without the key nothing is accepted.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(data).file_name("x.gcode"),
    );
    let resp = http
        .post(format!("{base}/api/files/local"))
        .header("X-Api-Key", "wrong")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    bridge.kill().await.unwrap();
}
