//! `hearth mfa`: an authenticator app as a second factor for the account's logins, from the CLI,
//! with codes made by the reference `oathtool`.

use crate::oathtool::code;
use crate::support::*;

#[tokio::test]
async fn a_second_factor_is_set_up_asked_at_login_and_turned_off() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    assert!(ada.run(&["mfa"]).await.contains("second factor: off"));
    let setup: serde_json::Value =
        serde_json::from_str(&ada.run(&["mfa", "on", "--json"]).await).unwrap();
    let secret = setup["secret"].as_str().unwrap();
    assert!(
        setup["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let Some(now) = code(secret, 0) else {
        return;
    };
    let wrong = ada.try_run(&["mfa", "confirm", "123456"]).await;
    assert!(!wrong.status.success());
    let confirmed = ada.run(&["mfa", "confirm", &now]).await;
    assert!(confirmed.contains("The second factor is on"), "{confirmed}");
    let recovery: Vec<&str> = confirmed
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(recovery.len(), 10, "{confirmed}");
    let status = ada.run(&["mfa"]).await;
    assert!(
        status.contains("second factor: on") && status.contains("10 recovery codes left"),
        "{status}"
    );

    // Another machine: the passphrase alone is not enough, with no terminal to ask on.
    let laptop = Machine::new("correct horse battery");
    let out = laptop
        .try_run(&["login", &server.url, "--login", "ada"])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("this account asks for a second factor") && err.contains("HEARTH_MFA_CODE"),
        "{err}"
    );
    // With the app's next code it logs in; the same code again does not.
    let next = code(secret, 1).unwrap();
    let out = laptop
        .command(&["login", &server.url, "--login", "ada"])
        .env("HEARTH_MFA_CODE", &next)
        .output()
        .await
        .unwrap();
    assert_success(&out);
    let out = Machine::new("correct horse battery")
        .command(&["login", &server.url, "--login", "ada"])
        .env("HEARTH_MFA_CODE", &next)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already used"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The API token the login made works as before (a second factor guards logins).
    laptop.run(&["printers"]).await;
    // New recovery codes, logging in with an old one: the old ones are void after.
    let out = laptop
        .command(&["mfa", "recovery-codes", "--json"])
        .env("HEARTH_MFA_CODE", recovery[2])
        .output()
        .await
        .unwrap();
    assert_success(&out);
    let fresh: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fresh: Vec<String> = serde_json::from_value(fresh["recovery_codes"].clone()).unwrap();
    assert_eq!(fresh.len(), 10);
    let out = laptop
        .command(&["mfa", "recovery-codes"])
        .env("HEARTH_MFA_CODE", recovery[3])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "an old recovery code still logs in");
    let recovery: Vec<&str> = fresh.iter().map(String::as_str).collect();
    // The organisation can require it of every member; then it cannot be turned off.
    let said = ada.run(&["org", "mfa", "required"]).await;
    assert!(said.contains("members must have a second factor"), "{said}");
    let shown = ada.run(&["org", "show"]).await;
    assert!(
        shown.contains("Logins:       members must have a second factor"),
        "{shown}"
    );
    let out = laptop
        .command(&["mfa", "off"])
        .env("HEARTH_MFA_CODE", recovery[1])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("requires a second factor of its members"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ada.run(&["org", "mfa", "optional"]).await;
    // Off, with a recovery code for the login it takes.
    let out = laptop
        .command(&["mfa", "off"])
        .env("HEARTH_MFA_CODE", recovery[0])
        .output()
        .await
        .unwrap();
    assert_success(&out);
    assert!(laptop.run(&["mfa"]).await.contains("second factor: off"));
    Machine::new("correct horse battery")
        .run(&["login", &server.url, "--login", "ada"])
        .await;
}

/// `hearth tokens`: each machine's login made a token; one revoked from another machine stops
/// working at once.
#[tokio::test]
async fn a_machines_token_is_listed_and_revoked_from_another() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    ada.setup(&server).await;
    let laptop = Machine::new("correct horse battery");
    laptop.run(&["login", &server.url, "--login", "ada"]).await;
    let listed = ada.run(&["tokens"]).await;
    assert_eq!(listed.matches("(this machine)").count(), 1, "{listed}");
    let tokens: Vec<serde_json::Value> =
        serde_json::from_str(&laptop.run(&["tokens", "--json"]).await).unwrap();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    // The laptop revokes the other machine's token by its id.
    let me: serde_json::Value = {
        let (c, _) = ada.client();
        c.raw_get("/api/v1/me").await.unwrap()
    };
    let ada_token = me["token"]["id"].as_str().unwrap().to_owned();
    let said = laptop.run(&["tokens", "revoke", &ada_token]).await;
    assert!(
        said.contains(&format!("revoked token {ada_token}")),
        "{said}"
    );
    let out = ada.try_run(&["printers"]).await;
    assert!(!out.status.success());
    // What to run, with this machine's server and login filled in.
    let again = format!(
        "this machine's login has ended: run `hearth login {} --login {}` again",
        ada.profile()["server"].as_str().unwrap(),
        ada.profile()["login"].as_str().unwrap()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&again),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unknown = laptop.try_run(&["tokens", "revoke", "nope"]).await;
    assert!(!unknown.status.success());
    laptop.run(&["printers"]).await;
}

/// A member joining an organisation that requires a second factor is told, at login, to set one
/// up; with it, the same login goes through and pins the organisation.
#[tokio::test]
async fn a_new_member_of_an_organisation_requiring_it_sets_one_up_at_login() {
    let server = TestServer::start().await;
    let ada = Machine::new("correct horse battery");
    let org_fp = crate::members::org_fingerprint(&ada.setup(&server).await);
    let setup: serde_json::Value =
        serde_json::from_str(&ada.run(&["mfa", "on", "--json"]).await).unwrap();
    let Some(now) = code(setup["secret"].as_str().unwrap(), 0) else {
        return;
    };
    ada.run(&["mfa", "confirm", &now]).await;
    ada.run(&["org", "mfa", "required"]).await;
    let before = ada.run(&["members", "list"]).await;
    assert!(
        before
            .lines()
            .any(|l| l.starts_with("ada") && l.contains(" on ")),
        "{before}"
    );

    // Bob's account and membership, as an admin makes them; his first login on his machine.
    let (c, org) = ada.client();
    let passphrase = "bob's passphrase";
    let secret = hearth_crypto::derive_login_secret(
        passphrase,
        &server.url,
        "bob",
        &hearth_crypto::KdfParams::insecure_fast_for_tests(),
    )
    .unwrap();
    c.create_user("bob", &secret.expose_hex(), false)
        .await
        .unwrap();
    c.add_member(org, "bob", hearth_proto::Role::Operator)
        .await
        .unwrap();
    let bob = Machine::new(passphrase);
    let login = [
        "login",
        &server.url,
        "--login",
        "bob",
        "--org-fingerprint",
        &org_fp,
    ];
    let out = bob.try_run(&login).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the organisation asks for a second factor first")
            && err.contains("hearth mfa on"),
        "{err}"
    );
    // What the message says works.
    let setup: serde_json::Value =
        serde_json::from_str(&bob.run(&["mfa", "on", "--json"]).await).unwrap();
    let secret = setup["secret"].as_str().unwrap();
    bob.run(&["mfa", "confirm", &code(secret, 0).unwrap()])
        .await;
    let out = bob
        .command(&login)
        .env("HEARTH_MFA_CODE", code(secret, 1).unwrap())
        .output()
        .await
        .unwrap();
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("organisation fingerprint:"));
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ada.run(&["members", "list", "--json"]).await).unwrap();
    assert!(listed.iter().all(|m| m["mfa"] == true), "{listed:?}");
}
