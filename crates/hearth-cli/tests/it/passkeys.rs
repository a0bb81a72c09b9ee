//! `hearth passkeys`: a member lists the passkeys that log in to their dashboard and removes one
//! (a lost laptop's) by name or id. Passkeys are made in a browser (the server's own tests do that
//! in Chromium); here they are put in the server's database as a registration leaves them.

use crate::support::*;

#[tokio::test]
async fn passkeys_are_listed_and_removed_by_name_or_id() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    assert!(
        ada.run(&["passkeys"]).await.contains("no passkey logs in"),
        "none yet"
    );
    let (client, _org) = ada.client();
    let me = client.me().await.unwrap().user.id;
    sqlx::any::install_default_drivers();
    let url = hearth_store::sqlite_url(&server.data_dir().join("hearth.db"));
    let db = sqlx::AnyPool::connect(&url).await.unwrap();
    for (id, name, at) in [
        ("cred-a", "Laptop", 1),
        ("cred-b", "Laptop", 2),
        ("cred-c", "Phone", 3),
    ] {
        sqlx::query(
            "INSERT INTO passkeys (credential_id, user_id, name, credential, created_at) \
             VALUES ($1, $2, $3, '{}', $4)",
        )
        .bind(id)
        .bind(me.to_string())
        .bind(name)
        .bind(1_765_000_000_000_i64 + at)
        .execute(&db)
        .await
        .unwrap();
    }
    let listed = ada.run(&["passkeys"]).await;
    assert!(
        listed.contains("Laptop") && listed.contains("Phone") && listed.contains("cred-b"),
        "{listed}"
    );
    assert!(listed.contains("never"), "none used yet: {listed}");
    let members: serde_json::Value =
        serde_json::from_str(&ada.run(&["members", "list", "--json"]).await).unwrap();
    assert_eq!(members[0]["passkeys"], 3, "{members}");

    // Two share a name: the id decides.
    let ambiguous = ada.try_run(&["passkeys", "remove", "Laptop"]).await;
    assert!(!ambiguous.status.success());
    assert!(
        String::from_utf8_lossy(&ambiguous.stderr).contains("2 passkeys are named \"Laptop\""),
        "{ambiguous:?}"
    );
    // Renamed by name or id; a name the server refuses leaves it as it was.
    assert!(
        ada.run(&["passkeys", "rename", "Phone", "Old phone"])
            .await
            .contains("\"Phone\" is now \"Old phone\"")
    );
    let long = "x".repeat(65);
    let refused = ada.try_run(&["passkeys", "rename", "cred-c", &long]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("1 to 64 printable characters"),
        "{refused:?}"
    );
    assert!(
        ada.run(&["passkeys", "remove", "Old phone"])
            .await
            .contains("removed")
    );
    assert!(
        ada.run(&["passkeys", "remove", "cred-a"])
            .await
            .contains("\"Laptop\"")
    );
    let missing = ada.try_run(&["passkeys", "remove", "Phone"]).await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no passkey named"),
        "{missing:?}"
    );
    let left: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["passkeys", "--json"]).await).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], "cred-b");
    assert_eq!(left[0]["name"], "Laptop");
    assert!(left[0]["last_used_at"].is_null());

    // An instance admin (ada set the server up) removes a user's passkeys at once.
    assert!(
        ada.run(&["passkeys", "reset", "ada"])
            .await
            .contains("The passkeys of ada are removed")
    );
    assert!(ada.run(&["passkeys"]).await.contains("no passkey logs in"));
    let again = ada.try_run(&["passkeys", "reset", "ada"]).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("ada has no passkey"),
        "{again:?}"
    );
    let nobody = ada.try_run(&["passkeys", "reset", "nobody"]).await;
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no user \"nobody\""));
}
