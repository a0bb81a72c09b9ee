//! A second factor at login, with codes made by oath-toolkit's `oathtool` (the reference TOTP
//! tool, a peer: `scripts/peers.sh` installs it; without it these tests say so and pass, and fail
//! under `HEARTH_REQUIRE_PEERS=1`).

use crate::oathtool::code as oathtool;
use crate::support::*;
use hearth_proto::api::Me;

#[tokio::test]
async fn a_second_factor_guards_logins_and_each_code_logs_in_once() {
    let server = TestServer::start().await;
    let (owner, _org) = server.bootstrap().await;
    let setup = owner.begin_mfa().await.unwrap();
    assert!(
        setup.uri.starts_with("otpauth://totp/Hearth")
            && setup.uri.contains(":owner?secret=")
            && setup.uri.contains(&setup.secret),
        "{}",
        setup.uri
    );
    let Some(now) = oathtool(&setup.secret, 0) else {
        return;
    };
    // Not asked at login until confirmed; a wrong code does not confirm it.
    server.client().login("owner", OWNER_SECRET).await.unwrap();
    let wrong = owner.confirm_mfa("000000").await.unwrap_err();
    assert_eq!(wrong.status(), Some(422), "{wrong}");
    let codes = owner.confirm_mfa(&now).await.unwrap().recovery_codes;
    assert_eq!(codes.len(), 10);
    let me: Me = owner.raw_get("/api/v1/me").await.unwrap();
    assert!(me.mfa);

    // The secret alone no longer logs in; it says what is missing.
    let mut c = server.client();
    let e = c.login("owner", OWNER_SECRET).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(401), Some("mfa_required")));
    // The code that confirmed it was taken: not again.
    let e = c
        .login_with_code("owner", OWNER_SECRET, Some(&now))
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(401), Some("mfa_invalid")));
    // The app's next code logs in, once.
    let next = oathtool(&setup.secret, 1).unwrap();
    c.login_with_code("owner", OWNER_SECRET, Some(&next))
        .await
        .unwrap();
    let replay = server
        .client()
        .login_with_code("owner", OWNER_SECRET, Some(&next))
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Some("mfa_invalid"));
    // A wrong secret with a good code is still a wrong secret.
    let e = server
        .client()
        .login_with_code("owner", "not the secret 0", Some(&next))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("unauthenticated"));
    // A recovery code logs in once, typed as people type it.
    let typed = codes[3].to_uppercase().replace('-', " ");
    server
        .client()
        .login_with_code("owner", OWNER_SECRET, Some(&typed))
        .await
        .unwrap();
    let again = server
        .client()
        .login_with_code("owner", OWNER_SECRET, Some(&codes[3]))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("mfa_invalid"));
    let me: Me = c.raw_get("/api/v1/me").await.unwrap();
    assert_eq!(me.recovery_codes_left, Some(9));
    // New recovery codes (in this fresh session): the old ones are void, the new ones work.
    let fresh = c.new_recovery_codes(None).await.unwrap().recovery_codes;
    assert_eq!(fresh.len(), 10);
    let void = server
        .client()
        .login_with_code("owner", OWNER_SECRET, Some(&codes[4]))
        .await
        .unwrap_err();
    assert_eq!(void.code(), Some("mfa_invalid"));
    server
        .client()
        .login_with_code("owner", OWNER_SECRET, Some(&fresh[0]))
        .await
        .unwrap();

    // Failures are audited and throttled like wrong secrets.
    let audit = c.audit_page(None, 0, 200).await.unwrap().entries;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "auth.login_failed" && e.details["failed"] == "second factor"),
        "{audit:?}"
    );
    assert!(audit.iter().any(|e| e.action == "auth.mfa_on"));
    assert!(audit.iter().any(|e| e.action == "auth.login"
        && e.details["mfa"] == "recovery_code"
        && e.details["recovery_codes_left"] == 9));

    // Set up and removed only in a login session, not with an API token.
    let scripted = server.token_client(&c).await;
    let refused = scripted.remove_mfa(None).await.unwrap_err();
    assert_eq!(refused.status(), Some(403));
    // A fresh session (its login passed the second factor) turns it off; logins no longer ask.
    c.remove_mfa(None).await.unwrap();
    server.client().login("owner", OWNER_SECRET).await.unwrap();
    let me: Me = c.raw_get("/api/v1/me").await.unwrap();
    assert!(!me.mfa);
}

#[tokio::test]
async fn an_instance_admin_removes_a_lost_second_factor() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let bob = member(&server, &owner, org, "bob", hearth_proto::Role::Operator).await;
    let setup = bob.begin_mfa().await.unwrap();
    let Some(code) = oathtool(&setup.secret, 0) else {
        return;
    };
    bob.confirm_mfa(&code).await.unwrap();
    let bob_id = bob.me().await.unwrap().user.id;
    // Bob cannot remove another's; the instance admin can, audited.
    let refused = bob.reset_mfa(bob_id).await.unwrap_err();
    assert_eq!(refused.status(), Some(403));
    owner.reset_mfa(bob_id).await.unwrap();
    let none = owner.reset_mfa(bob_id).await.unwrap_err();
    assert_eq!(none.status(), Some(404));
    let audit = owner.audit_page(None, 0, 200).await.unwrap().entries;
    assert!(
        audit
            .iter()
            .any(|e| e.action == "auth.mfa_reset" && e.details["login"] == "bob")
    );
}

#[tokio::test]
async fn an_organisation_requiring_a_second_factor_admits_only_members_with_one() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let bob = member(&server, &owner, org, "bob", hearth_proto::Role::Operator).await;
    // An owner without one cannot require it: it would lock them out.
    let refused = owner.set_mfa_policy(org, true).await.unwrap_err();
    assert_eq!(refused.status(), Some(409), "{refused}");
    let setup = owner.begin_mfa().await.unwrap();
    let Some(c) = oathtool(&setup.secret, 0) else {
        return;
    };
    owner.confirm_mfa(&c).await.unwrap();
    // An operator cannot set the policy; the owner can.
    let denied = bob.set_mfa_policy(org, true).await.unwrap_err();
    assert_eq!(denied.status(), Some(403));
    let o: hearth_proto::api::Org = owner.set_mfa_policy(org, true).await.unwrap();
    assert!(o.require_mfa);
    // While it is required, a member's own stays on.
    let kept = owner.remove_mfa(None).await.unwrap_err();
    assert_eq!(kept.status(), Some(409), "{kept}");

    // Bob, without one, is told what to do, and may still set one up.
    let printers = format!("/api/v1/orgs/{org}/printers");
    let e = bob
        .raw_get::<serde_json::Value>(&printers)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("mfa_required_by_org"))
    );
    assert!(e.to_string().contains("hearth mfa on"), "{e}");
    // Admins see who has one.
    let has = |members: Vec<hearth_proto::api::Member>, login: &str| {
        members.iter().any(|m| m.user.login == login && m.mfa)
    };
    assert!(has(owner.members(org).await.unwrap(), "owner"));
    assert!(!has(owner.members(org).await.unwrap(), "bob"));
    let setup = bob.begin_mfa().await.unwrap();
    bob.confirm_mfa(&oathtool(&setup.secret, 0).unwrap())
        .await
        .unwrap();
    bob.raw_get::<serde_json::Value>(&printers).await.unwrap();
    assert!(has(owner.members(org).await.unwrap(), "bob"));

    let o: hearth_proto::api::Org = owner.set_mfa_policy(org, false).await.unwrap();
    assert!(!o.require_mfa);
    let audit = owner.audit_page(Some(org), 0, 200).await.unwrap().entries;
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == "org.mfa_policy")
            .count(),
        2
    );
}

#[tokio::test]
async fn authenticator_secrets_are_sealed_in_the_database_with_the_key_file_beside_it() {
    let server = TestServer::start().await;
    let (owner, _org) = server.bootstrap().await;
    let id = owner.me().await.unwrap().user.id;
    let setup = owner.begin_mfa().await.unwrap();
    let Some(code) = oathtool(&setup.secret, 0) else {
        return;
    };
    owner.confirm_mfa(&code).await.unwrap();
    // The database holds the secret sealed, not the secret.
    let sealed = |server: &TestServer| {
        let store = server.state.store.clone();
        let secret = setup.secret.clone();
        async move {
            let stored = store.mfa(id).await.unwrap().unwrap().totp_secret;
            assert!(
                stored.starts_with("v1:") && !stored.contains(&secret),
                "{stored}"
            );
            stored
        }
    };
    let stored = sealed(&server).await;
    let key = server.data_dir().join("secret.key");
    assert!(key.exists());

    // A database from before sealing (the secret in clear) is sealed at start, and its codes
    // still log in.
    assert!(
        server
            .state
            .store
            .replace_totp_secret(id, &stored, &setup.secret)
            .await
            .unwrap()
    );
    // Likewise recovery codes kept as plain SHA-256 by an older server: one still logs in, once;
    // new ones are kept as keyed hashes, never the code or its plain hash.
    let legacy = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(b"abcde23456"))
    };
    let mut tx = server.state.store.begin().await.unwrap();
    assert!(
        tx.replace_recovery_codes(id, std::slice::from_ref(&legacy))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let server = server.restart().await;
    sealed(&server).await;
    server
        .assert_metrics(&["hearth_secrets_unopenable 0"])
        .await;
    let mut c = server.client();
    c.login_with_code("owner", OWNER_SECRET, Some("ABCDE-23456"))
        .await
        .unwrap();
    let again = server
        .client()
        .login_with_code("owner", OWNER_SECRET, Some("abcde-23456"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("mfa_invalid"));
    let fresh = c.new_recovery_codes(None).await.unwrap().recovery_codes;
    let kept = server.state.store.mfa(id).await.unwrap().unwrap().recovery;
    assert_eq!(kept.len(), fresh.len());
    for (code, hash) in fresh.iter().zip(&kept) {
        assert!(
            hash.starts_with("h1:") && !hash.contains(code.as_str()),
            "{hash}"
        );
    }
    let next = oathtool(&setup.secret, 1).unwrap();
    server
        .client()
        .login_with_code("owner", OWNER_SECRET, Some(&next))
        .await
        .unwrap();

    // Started with another key file (a cluster instance set up apart, a lost key): logins with
    // a code fail as a server error (its log names the key file), not as a wrong code.
    let mut settings = server.state.settings.clone();
    settings.auth.secret_key_file = Some(server.dir.path().join("another.key"));
    let TestServer { dir, .. } = server;
    let server = TestServer::start_in(dir, settings).await;
    // Said at start (and logged), before anyone fails to log in.
    server
        .assert_metrics(&["hearth_secrets_unopenable 1"])
        .await;
    let later = oathtool(&setup.secret, 2).unwrap();
    let e = server
        .client()
        .login_with_code("owner", OWNER_SECRET, Some(&later))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(500), "{e}");
}
