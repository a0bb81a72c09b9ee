//! `hearth print` when the server refuses the job after its file was uploaded: the member is told,
//! and what was uploaded for it is deleted at once (it would otherwise count against the quota
//! until the server's daily sweep), so nothing is left behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::printer_chain::{simulated, start_chain_agent};
use crate::queue::printer_idle;
use crate::support::{Machine, TestServer, gcode};

/// A front for the server at `target` that passes every request on, except that it answers
/// `POST .../jobs` with a server's own 422 while `refuse` is set.
async fn refusing_front(target: String, refuse: Arc<AtomicBool>) -> String {
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (http, target, refuse) = (http.clone(), target.clone(), refuse.clone());
        async move {
            let path = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            if req.method() == Method::POST
                && path.ends_with("/jobs")
                && refuse.load(Ordering::SeqCst)
            {
                let body = serde_json::json!({
                    "code": "invalid_input",
                    "message": "the test's front refuses this job",
                });
                return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response();
            }
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut out = http.request(parts.method, format!("{target}{path}"));
            for (name, value) in &parts.headers {
                if name != axum::http::header::HOST {
                    out = out.header(name, value);
                }
            }
            let answer = out.body(body).send().await.unwrap();
            let mut resp = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if name != axum::http::header::TRANSFER_ENCODING {
                    resp = resp.header(name, value);
                }
            }
            resp.body(Body::from(answer.bytes().await.unwrap()))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{at}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_job_leaves_no_upload_behind() {
    let server = TestServer::start().await;
    let refuse = Arc::new(AtomicBool::new(false));
    let front = refusing_front(server.url.clone(), refuse.clone()).await;
    let ada = Machine::new("correct horse battery");
    let out = ada.setup_command(&server, &front).output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let _agent = start_chain_agent(&server, &ada, simulated("mk4", 50.0)).await;
    let (client, org) = ada.client();
    printer_idle(&client, org).await;
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), "part.gcode", "part");

    refuse.store(true, Ordering::SeqCst);
    let out = ada
        .try_run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("submitting the job failed (what was uploaded for it is deleted)")
            && said.contains("the test's front refuses this job"),
        "{said}"
    );
    // Nothing of it is left: neither the sealed file nor its sealed label, nor a job.
    assert!(client.blobs(org).await.unwrap().is_empty());
    let jobs: Vec<hearth_proto::api::Job> = client
        .raw_get(&format!("/api/v1/orgs/{org}/jobs"))
        .await
        .unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");

    // The same file prints once the server takes it.
    refuse.store(false, Ordering::SeqCst);
    ada.run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await;
    assert_eq!(
        client.blobs(org).await.unwrap().len(),
        2,
        "its file and its label"
    );
}
