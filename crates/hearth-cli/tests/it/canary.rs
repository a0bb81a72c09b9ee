//! THE CANARY TEST: a full flow (setup, login on a second machine, enroll and approve an agent,
//! upload, print, the agent opens the job) with a unique canary string inside the design and in
//! its file name; afterwards no file under the server's data directory (database, WAL, blobs) and
//! not its DEBUG log contains the canary raw, in base64 (standard and URL-safe, every alignment) or
//! in hex.

use std::path::Path;

use base64::Engine as _;

use crate::e2e::{agent_opens_job, enrolled_agent};
use crate::support::*;

/// Every encoding of `canary` we look for: raw, hex (both cases), and the part of a base64 encoding
/// that depends only on the canary, for each of the three alignments and both alphabets.
fn encodings(canary: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("raw".to_owned(), canary.to_vec()),
        ("hex".to_owned(), hex::encode(canary).into_bytes()),
        ("HEX".to_owned(), hex::encode_upper(canary).into_bytes()),
    ];
    for (alphabet, engine) in [
        ("base64", base64::engine::general_purpose::STANDARD),
        ("base64url", base64::engine::general_purpose::URL_SAFE),
    ] {
        for shift in 0..3 {
            let mut data = vec![0u8; shift];
            data.extend_from_slice(canary);
            let enc = engine.encode(&data);
            let first_group = shift.div_ceil(3);
            let last_group = (shift + canary.len()) / 3;
            out.push((
                format!("{alphabet} at alignment {shift}"),
                enc.as_bytes()[4 * first_group..4 * last_group].to_vec(),
            ));
        }
    }
    out
}

fn scan(path: &Path, needles: &[(String, Vec<u8>)], found: &mut Vec<String>, files: &mut usize) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            scan(&e.unwrap().path(), needles, found, files);
        }
        return;
    }
    let Ok(data) = std::fs::read(path) else {
        return;
    };
    *files += 1;
    for (what, n) in needles {
        if data.windows(n.len()).any(|w| w == n.as_slice()) {
            found.push(format!("{} contains the canary ({what})", path.display()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_never_holds_the_canary_in_any_encoding() {
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("hearthd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // Global, so every server task logs here (other tests' servers too: more to scan, not less).
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log))
        .try_init();
    tracing::info!("canary test: logging at DEBUG");

    let canary = format!("hearth-canary-{}", hex::encode(rand::random::<[u8; 12]>()));
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let work = tempfile::tempdir().unwrap();
    let file = gcode(work.path(), &format!("design-{canary}.gcode"), &canary);
    let original = std::fs::read(&file).unwrap();
    assert!(
        original
            .windows(canary.len())
            .any(|w| w == canary.as_bytes())
    );

    let (agent, mut ws, http_token) = enrolled_agent(&server, &ada, "bench-pi", "mk4").await;
    ada.run(&["upload", file.to_str().unwrap(), "--note", &canary])
        .await;
    ada.run(&["print", file.to_str().unwrap(), "--printer", "mk4"])
        .await;
    let (_, plain) = agent_opens_job(&server, &ada, &agent, &mut ws, &http_token).await;
    assert_eq!(plain, original, "the agent opened the exact design");
    ada.run(&["jobs"]).await;
    ada.run(&["printers"]).await;
    // A second machine logs in and reads the library: names open locally, never on the server.
    let laptop = Machine::new("correct horse battery");
    laptop.run(&["login", &server.url, "--login", "ada"]).await;
    assert!(laptop.run(&["files"]).await.contains(&canary));

    let needles = encodings(canary.as_bytes());
    let mut found = Vec::new();
    let mut files = 0;
    scan(&server.data_dir(), &needles, &mut found, &mut files);
    scan(&log_path, &needles, &mut found, &mut files);
    assert!(files >= 4, "scanned only {files} files");
    let log_text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log_text.lines().any(|l| l.contains("hearth_server")),
        "the server logged nothing"
    );
    assert!(found.is_empty(), "{found:#?}");

    // The scan itself finds the canary where it is (so an empty result means something).
    let mut self_check = Vec::new();
    scan(&file, &needles, &mut self_check, &mut files);
    let b64 = work.path().join("b64");
    std::fs::write(
        &b64,
        base64::engine::general_purpose::STANDARD.encode(format!("xy{canary}")),
    )
    .unwrap();
    scan(&b64, &needles, &mut self_check, &mut files);
    for what in ["(raw)", "(base64 at alignment 2)"] {
        assert!(
            self_check.iter().any(|f| f.ends_with(what)),
            "{what} not detected: {self_check:?}"
        );
    }
}
