//! `hearth members add|remove`: a second member joins after a fingerprint comparison, gets the
//! epoch key through a rotation, uploads; once removed, the organisation rotates again and the
//! removed device can no longer upload.

use hearth_crypto::{KdfParams, derive_login_secret};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_added_after_comparing_fingerprints_and_removed_with_a_rotation() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    let out = ada.setup(&server).await;
    let org_fp = out
        .lines()
        .find_map(|l| l.strip_prefix("organisation fingerprint:"))
        .unwrap()
        .trim()
        .to_owned();
    let (c, org) = ada.client();
    let bob_secret = derive_login_secret(
        "bob's passphrase",
        &server.url,
        "bob",
        &KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    c.create_user("bob", &bob_secret.expose_hex(), false)
        .await
        .unwrap();
    c.add_member(org, "bob", hearth_proto::Role::Operator)
        .await
        .unwrap();

    let bob = Machine::new("bob's passphrase");
    let out = bob
        .run(&[
            "login",
            &server.url,
            "--login",
            "bob",
            "--org-fingerprint",
            &org_fp,
        ])
        .await;
    let bob_fp = out
        .lines()
        .find_map(|l| l.strip_prefix("device fingerprint:"))
        .unwrap()
        .trim()
        .to_owned();
    let work = tempfile::tempdir().unwrap();
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
    ada.run(&["members", "add", "bob", "--fingerprint", &bob_fp])
        .await;
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
    assert!(ids.contains("organisation epoch 2"), "{ids}");

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
