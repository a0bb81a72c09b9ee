//! `hearth audit` and `hearth audit verify`: the log read with names, recomputed on the member's
//! machine with its head pinned, so a log cut short is caught even when the server's own check
//! was made to agree with it.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_pins_the_head_and_catches_a_log_the_server_cut_short() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let (client, org) = ada.client();

    // The log, newest first, with the member's login instead of an id.
    let out = ada.run(&["audit"]).await;
    let first = out.lines().nth(1).unwrap();
    let last = out.lines().last().unwrap();
    assert!(out.lines().next().unwrap().starts_with("#  "), "{out}");
    assert!(
        last.starts_with("1 ") && last.contains("org.create"),
        "{out}"
    );
    assert!(last.contains(" ada "), "the actor by login: {out}");
    let n: i64 = first.split_whitespace().next().unwrap().parse().unwrap();
    assert!(n > 1, "{out}");
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["audit", "--json", "--limit", "2"]).await).unwrap();
    assert_eq!(json.len(), 2);
    // This server forwards its log nowhere, and says so.
    let out = ada.run(&["audit", "forwarding"]).await;
    assert!(out.contains("not forwarded"), "{out}");

    // First verification: recomputed here and pinned in the profile.
    let out = ada.run(&["audit", "verify"]).await;
    assert!(
        out.contains("verifies here") && out.contains("pinned"),
        "{out}"
    );
    let pinned = ada.profile()["audit_heads"][org.to_string()].clone();
    assert!(pinned["seq"].as_i64().unwrap() >= n, "{pinned}");

    // The log grows; the next verification proves it extends the pinned head.
    let work = tempfile::tempdir().unwrap();
    let part = gcode(work.path(), "part.gcode", "audit");
    ada.run(&["upload", part.to_str().unwrap()]).await;
    let out = ada.run(&["audit", "verify"]).await;
    assert!(
        out.contains("it extends the head this device pinned"),
        "{out}"
    );
    let pinned = ada.profile()["audit_heads"][org.to_string()].clone();
    let pinned_seq = pinned["seq"].as_i64().unwrap();

    // Whoever holds the database removes the newest entries and rewinds the recorded head to
    // match: the server's own check agrees with the shortened log, this machine does not.
    sqlx::any::install_default_drivers();
    let url = hearth_store::sqlite_url(&server.data_dir().join("hearth.db"));
    let db = sqlx::AnyPool::connect(&url).await.unwrap();
    let scope = org.to_string();
    for q in [
        "DELETE FROM audit_log WHERE scope = $1 AND seq > 3",
        "UPDATE audit_heads SET seq = 3, hash = (SELECT hash FROM audit_log WHERE scope = $1 AND seq = 3) WHERE scope = $1",
    ] {
        sqlx::query(q).bind(&scope).execute(&db).await.unwrap();
    }
    assert!(client.audit_verify_on_server(Some(org)).await.unwrap().ok);
    let out = ada.try_run(&["audit", "verify"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does NOT verify")
            && err.contains(&format!("verified it up to entry {pinned_seq}")),
        "{err}"
    );
    // The evidence is kept: the pinned head is not replaced by the shortened log's.
    assert_eq!(ada.profile()["audit_heads"][org.to_string()], pinned);
}

/// `hearth legal-requests record`: the instance admin records a request for the organisation's
/// data; `hearth legal-requests` lists it from the organisation's chain, which still verifies
/// here and extends the pinned head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legal_request_is_recorded_and_listed_from_the_verified_log() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    assert!(
        ada.run(&["legal-requests"])
            .await
            .contains("no legal request recorded for this organisation")
    );
    ada.run(&["audit", "verify"]).await;
    let said = ada
        .run(&[
            "legal-requests",
            "record",
            "--authority",
            "Landgericht Berlin",
            "--reference",
            "27 O 123/26",
            "--received-on",
            "2026-12-01",
            "--requested",
            "the organisation's files",
            "--disclosed",
            "nothing: the files are sealed",
        ])
        .await;
    assert!(
        said.contains("of the instance's audit log and in the organisation's"),
        "{said}"
    );
    let table = ada.run(&["legal-requests"]).await;
    let row = table.lines().nth(1).unwrap_or_else(|| panic!("{table}"));
    for part in [
        "ada",
        "2026-12-01",
        "Landgericht Berlin",
        "27 O 123/26",
        "nothing: the files are sealed",
    ] {
        assert!(row.contains(part), "{part}: {table}");
    }
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["legal-requests", "--instance", "--json"]).await).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["scope"], "system");
    let out = ada.run(&["audit", "verify"]).await;
    assert!(out.contains("verifies here"), "{out}");
    // A day that is not one is refused with the server's reason.
    let bad = ada
        .try_run(&[
            "legal-requests",
            "record",
            "--authority",
            "x",
            "--received-on",
            "yesterday",
            "--requested",
            "x",
            "--disclosed",
            "x",
        ])
        .await;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("received_on"), "{err}");
}
