//! `hearth members add|remove`: a second member joins after a fingerprint comparison, gets the
//! epoch key through a rotation, uploads; once removed, the organisation rotates again and the
//! removed device can no longer upload. A member added later opens the older files through a history
//! grant, at once or, after `--no-history`, once an admin runs `grant-history`.

use hearth_crypto::{KdfParams, derive_login_secret};

use crate::support::*;

/// `login` gets an account and the operator role from `admin`'s server account, and runs
/// `hearth login` on a machine of their own; returns it and the device fingerprint it printed.
/// `login` joins `admin`'s organisation as an operator (pinning the fingerprint `hearth org
/// show` prints) and `admin` adds the new device to the chain: a member who can print.
pub(crate) async fn operator(server: &TestServer, admin: &Machine, login: &str) -> Machine {
    let org_fp = admin
        .run(&["org", "show"])
        .await
        .lines()
        .find_map(|l| l.strip_prefix("Fingerprint:"))
        .unwrap()
        .trim()
        .to_owned();
    let (m, fp) = join(server, admin, &org_fp, login).await;
    admin
        .run(&["members", "add", login, "--fingerprint", &fp])
        .await;
    m
}

pub(crate) async fn join(
    server: &TestServer,
    admin: &Machine,
    org_fp: &str,
    login: &str,
) -> (Machine, String) {
    let (c, org) = admin.client();
    let passphrase = format!("{login}'s passphrase");
    let secret = derive_login_secret(
        &passphrase,
        &server.url,
        login,
        &KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    c.create_user(login, &secret.expose_hex(), false)
        .await
        .unwrap();
    c.add_member(org, login, hearth_proto::Role::Operator)
        .await
        .unwrap();
    let m = Machine::new(&passphrase);
    let out = m
        .run(&[
            "login",
            &server.url,
            "--login",
            login,
            "--org-fingerprint",
            org_fp,
        ])
        .await;
    let fp = out
        .lines()
        .find_map(|l| l.strip_prefix("device fingerprint:"))
        .unwrap()
        .trim()
        .to_owned();
    (m, fp)
}

pub(crate) fn org_fingerprint(setup_out: &str) -> String {
    setup_out
        .lines()
        .find_map(|l| l.strip_prefix("organisation fingerprint:"))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_added_after_comparing_fingerprints_and_removed_with_a_rotation() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    let org_fp = org_fingerprint(&ada.setup(&server).await);
    let work = tempfile::tempdir().unwrap();
    let older = gcode(work.path(), "older.gcode", "from before bob");
    let older_id = ada.run(&["upload", older.to_str().unwrap()]).await;
    let (bob, bob_fp) = join(&server, &ada, &org_fp, "bob").await;
    let file = gcode(work.path(), "bobs.gcode", "bob's part");

    // Not in the chain yet: bob cannot seal for the organisation.
    let out = bob.try_run(&["upload", file.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a current member"));

    // A wrong fingerprint is refused; the right one adds bob and rotates to epoch 2.
    let wrong = hearth_crypto::DeviceKeys::generate()
        .fingerprint()
        .to_string();
    let out = ada
        .try_run(&["members", "add", "bob", "--fingerprint", &wrong])
        .await;
    assert!(!out.status.success());
    let out = ada
        .run(&["members", "add", "bob", "--fingerprint", &bob_fp])
        .await;
    assert!(out.contains("gave bob the keys of epoch 1"), "{out}");
    // With that history, bob opens the file uploaded before he joined.
    let back = work.path().join("back.gcode");
    bob.run(&["download", older_id.trim(), "--out", back.to_str().unwrap()])
        .await;
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&older).unwrap()
    );
    let listed = ada.run(&["members", "list"]).await;
    assert!(
        listed.contains("bob") && listed.contains(&bob_fp),
        "{listed}"
    );
    bob.run(&["upload", file.to_str().unwrap()]).await;
    let show: serde_json::Value =
        serde_json::from_str(&bob.run(&["org", "show", "--json"]).await).unwrap();
    assert_eq!(show["epoch"], 2);
    let ids = bob.run(&["keys", "export"]).await;
    assert!(
        ids.contains("organisation epoch 1") && ids.contains("organisation epoch 2"),
        "{ids}"
    );

    // Removal: epoch 3 for the remaining members only; bob is out.
    ada.run(&["members", "remove", "bob", "--yes"]).await;
    let show: serde_json::Value =
        serde_json::from_str(&ada.run(&["org", "show", "--json"]).await).unwrap();
    assert_eq!(show["epoch"], 3);
    assert_eq!(show["members"].as_array().unwrap().len(), 1);
    let out = bob.try_run(&["upload", file.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let ids = ada.run(&["keys", "export"]).await;
    assert!(ids.contains("organisation epoch 3"), "{ids}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_without_history_is_told_why_older_files_stay_shut_until_granted() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    let org_fp = org_fingerprint(&ada.setup(&server).await);
    let work = tempfile::tempdir().unwrap();
    let older = gcode(work.path(), "older.gcode", "from epoch 1");
    let older_id = ada.run(&["upload", older.to_str().unwrap()]).await;
    let (carol, carol_fp) = join(&server, &ada, &org_fp, "carol").await;

    // A grant is for members of the chain only.
    let out = ada.try_run(&["members", "grant-history", "carol"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no device in the organisation chain"),
        "{out:?}"
    );

    let out = ada
        .run(&[
            "members",
            "add",
            "carol",
            "--fingerprint",
            &carol_fp,
            "--no-history",
        ])
        .await;
    assert!(out.contains("--no-history"), "{out}");
    let back = work.path().join("back.gcode");
    let out = carol
        .try_run(&["download", older_id.trim(), "--out", back.to_str().unwrap()])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("epoch 1 began before this device joined")
            && err.contains("hearth members grant-history carol"),
        "{err}"
    );
    assert!(!back.exists());
    let export = carol.try_run(&["keys", "export"]).await;
    assert!(String::from_utf8_lossy(&export.stderr).contains("epoch 1 was sealed before"));

    // Granted later: the same download opens the file.
    let out = ada.run(&["members", "grant-history", "carol"]).await;
    assert!(out.contains("gave carol the keys of epoch 1"), "{out}");
    carol
        .run(&["download", older_id.trim(), "--out", back.to_str().unwrap()])
        .await;
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&older).unwrap()
    );
}
