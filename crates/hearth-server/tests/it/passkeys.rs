//! Passkeys: off without a `public_url` that names the server; adding one takes a fresh login or
//! the passphrase, and a browser session; ceremonies are taken once; a login with a credential
//! the server does not know, or an answer that is not one, is refused and audited; and the whole
//! of it in a real Chromium with its virtual authenticator (`web/tests/passkeys.test.mjs`).

use crate::browser_run::browser_test;
use crate::support::*;
use base64::Engine as _;
use hearth_client::Client;
use hearth_proto::api::{LoginRequest, PasskeyLoginFinish, PasskeyRegisterRequest, ServerInfo};

fn code(e: &hearth_client::ClientError) -> (Option<u16>, Option<String>) {
    (e.status(), e.code().map(str::to_owned))
}

/// The server's database, to age sessions or mark what opened them.
async fn database(server: &TestServer) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&hearth_store::sqlite_url(
        &server.data_dir().join("hearth.db"),
    ))
    .await
    .unwrap()
}

/// A passphrase login answering its second factor with `answer` to `ceremony`.
fn with_passkey(
    login: &str,
    secret: &str,
    ceremony: &str,
    answer: serde_json::Value,
) -> LoginRequest {
    LoginRequest {
        login: login.into(),
        secret: secret.into(),
        code: None,
        passkey: Some(PasskeyLoginFinish {
            ceremony: ceremony.into(),
            credential: answer,
        }),
    }
}

async fn info(server: &TestServer) -> ServerInfo {
    server.client().info().await.unwrap()
}

#[tokio::test]
async fn passkeys_are_off_unless_public_url_names_the_server() {
    let plain = TestServer::start().await;
    assert!(!info(&plain).await.passkeys, "no public_url");
    let refused = plain.client().begin_passkey_login().await.unwrap_err();
    assert_eq!(code(&refused), (Some(404), Some("passkeys_off".into())));

    // Authenticators refuse IP addresses as relying parties.
    let ip = TestServer::start_with(|s| s.public_url = Some("http://127.0.0.1:8080".into())).await;
    assert!(!info(&ip).await.passkeys, "an IP address");

    let named = TestServer::start_at_localhost(|_| {}).await;
    assert!(info(&named).await.passkeys);
    let start = named.client().begin_passkey_login().await.unwrap();
    let o = &start.options["publicKey"];
    assert_eq!(o["rpId"], "localhost", "{o}");
    assert_eq!(o["userVerification"], "required", "{o}");
    assert!(
        o["allowCredentials"].as_array().is_none_or(Vec::is_empty),
        "the authenticator names the account: {o}"
    );
    assert!(
        start.options.get("mediation").is_none_or(|m| m.is_null()),
        "a modal request"
    );
}

#[tokio::test]
async fn adding_a_passkey_takes_a_recent_login_or_the_passphrase() {
    let server = TestServer::start_at_localhost(|_| {}).await;
    let (owner, _org) = server.bootstrap().await;
    let me = owner.me().await.unwrap().user;

    let started = owner
        .begin_passkey(&PasskeyRegisterRequest::default())
        .await
        .unwrap();
    let o = &started.options["publicKey"];
    assert_eq!(o["rp"]["id"], "localhost", "{o}");
    assert_eq!(o["user"]["name"], "owner", "{o}");
    let handle = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(me.id.0.as_bytes());
    assert_eq!(
        o["user"]["id"], handle,
        "the user handle is the account's id: {o}"
    );
    let sel = &o["authenticatorSelection"];
    assert_eq!(
        (
            sel["residentKey"].as_str(),
            sel["requireResidentKey"].as_bool()
        ),
        (Some("required"), Some(true)),
        "logins are discoverable, so the authenticator must keep the credential: {o}"
    );
    assert_eq!(sel["userVerification"], "required", "{o}");

    // A name finish would refuse is refused before the authenticator makes anything.
    let bad = owner
        .begin_passkey(&PasskeyRegisterRequest {
            name: Some("a\tname".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(422));

    // An API token cannot add a way in.
    let scripted = server.token_client(&owner).await;
    let refused = scripted
        .begin_passkey(&PasskeyRegisterRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403));

    // A session whose login is older than five minutes needs the login secret again.
    let db = database(&server).await;
    sqlx::query("UPDATE sessions SET created_at = created_at - 600000")
        .execute(&db)
        .await
        .unwrap();
    let stale = owner
        .begin_passkey(&PasskeyRegisterRequest::default())
        .await
        .unwrap_err();
    assert_eq!(code(&stale), (Some(403), Some("reauth_required".into())));
    let wrong = owner
        .begin_passkey(&PasskeyRegisterRequest {
            secret: Some("not the secret".into()),
            name: None,
        })
        .await
        .unwrap_err();
    assert_eq!(code(&wrong), (Some(403), Some("reauth_required".into())));
    owner
        .begin_passkey(&PasskeyRegisterRequest {
            secret: Some(OWNER_SECRET.into()),
            name: Some("Laptop".into()),
        })
        .await
        .unwrap();
    let actions = audit_actions(&owner).await;
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.login_failed" && d["failed"] == "passphrase to add a passkey"),
        "a wrong passphrase counts as a failed login: {actions:?}"
    );
}

#[tokio::test]
async fn a_passkey_login_is_taken_once_and_refuses_what_it_cannot_check() {
    let server = TestServer::start_at_localhost(|_| {}).await;
    let (owner, _org) = server.bootstrap().await;
    let mut c = server.client();
    let start = c.begin_passkey_login().await.unwrap();
    // An assertion from a credential this server never registered (a well-formed answer).
    let unknown = serde_json::json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {
            "clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA",
            "userHandle": base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(owner.me().await.unwrap().user.id.0.as_bytes()),
        },
        "clientExtensionResults": {},
    });
    let refused = c
        .passkey_login(&PasskeyLoginFinish {
            ceremony: start.ceremony.clone(),
            credential: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&refused), (Some(401), Some("passkey_invalid".into())));
    // The challenge was spent by that attempt.
    let again = c
        .passkey_login(&PasskeyLoginFinish {
            ceremony: start.ceremony,
            credential: unknown,
        })
        .await
        .unwrap_err();
    assert_eq!(code(&again), (Some(400), Some("passkey_expired".into())));
    // Something that is not a credential at all.
    let start = c.begin_passkey_login().await.unwrap();
    let junk = c
        .passkey_login(&PasskeyLoginFinish {
            ceremony: start.ceremony,
            credential: serde_json::json!({ "hello": "world" }),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&junk), (Some(401), Some("passkey_invalid".into())));
    assert!(c.me().await.is_err(), "no session was opened");
    let actions = audit_actions(&owner).await;
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.login_failed" && d["failed"] == "unknown passkey"),
        "{actions:?}"
    );
    // Nothing to remove.
    let missing = owner.remove_passkey("AAAA").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
}

/// An instance admin removes a member's passkeys (a device lost or taken) and the sessions they
/// opened; the organisation's member list counts each member's passkeys.
#[tokio::test]
async fn an_admin_removes_a_members_passkeys_and_the_sessions_they_opened() {
    let server = TestServer::start_at_localhost(|_| {}).await;
    let (owner, org) = server.bootstrap().await;
    let bob = member(&server, &owner, org, "bob", hearth_proto::Role::Operator).await;
    let bob_id = bob.me().await.unwrap().user.id;
    let db = database(&server).await;
    for (id, at) in [("bob-laptop", 1_i64), ("bob-phone", 2)] {
        sqlx::query(
            "INSERT INTO passkeys (credential_id, user_id, name, credential, created_at) \
             VALUES ($1, $2, $1, '{}', $3)",
        )
        .bind(id)
        .bind(bob_id.to_string())
        .bind(at)
        .execute(&db)
        .await
        .unwrap();
    }
    // Bob's browser session was opened with his laptop's passkey.
    sqlx::query("UPDATE sessions SET passkey = 'bob-laptop' WHERE user_id = $1")
        .bind(bob_id.to_string())
        .execute(&db)
        .await
        .unwrap();
    let members = owner.members(org).await.unwrap();
    let count = |login: &str| {
        members
            .iter()
            .find(|m| m.user.login == login)
            .unwrap()
            .passkeys
    };
    assert_eq!((count("bob"), count("owner")), (2, 0));

    let refused = bob.reset_passkeys(bob_id).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "instance admins only");
    owner.reset_passkeys(bob_id).await.unwrap();
    assert!(
        bob.me().await.is_err(),
        "the session the passkey opened ended"
    );
    let none = owner.reset_passkeys(bob_id).await.unwrap_err();
    assert_eq!(none.status(), Some(404), "nothing left to remove");
    let actions = audit_actions(&owner).await;
    assert!(
        actions.iter().any(|(a, d)| a == "auth.passkey_reset"
            && d["login"] == "bob"
            && d["passkeys"] == 2
            && d["sessions_ended"] == 1),
        "{actions:?}"
    );
}

#[tokio::test]
async fn passkey_starts_are_capped() {
    let server =
        TestServer::start_at_localhost(|s| s.auth.max_passkey_ceremonies_in_flight = 2).await;
    let c = server.client();
    c.begin_passkey_login().await.unwrap();
    c.begin_passkey_login().await.unwrap();
    let busy = c.begin_passkey_login().await.unwrap_err();
    assert_eq!(code(&busy), (Some(503), Some("passkeys_busy".into())));
}

/// The dashboard in a real Chromium with its virtual authenticator: a member adds a passkey from
/// Account, logs out, logs in with it (no login typed), sees the session logged in by it, a
/// replayed answer is refused, and removing it ends that session and its logins.
#[tokio::test]
async fn the_dashboard_adds_and_logs_in_with_a_passkey_in_a_real_browser() {
    let server = TestServer::start_at_localhost(|_| {}).await;
    let passphrase = "correct horse battery staple";
    let secret = owner_with_passphrase(&server, passphrase).await;
    let env = [
        ("HEARTH_URL", server.url.as_str()),
        ("HEARTH_LOGIN", "owner"),
        ("HEARTH_PASSPHRASE", passphrase),
    ];
    if !browser_test("passkeys.test.mjs", &env).await {
        return;
    }
    let mut owner: Client = server.client();
    owner.login("owner", &secret).await.unwrap();
    assert!(
        owner.passkeys().await.unwrap().is_empty(),
        "removed in the page"
    );
    let actions = audit_actions(&owner).await;
    for (action, what) in [
        ("auth.passkey_add", "added"),
        ("auth.passkey_remove", "removed"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(a, d)| a == action && d["name"] == "Laptop"),
            "the passkey was {what}: {actions:?}"
        );
    }
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.login" && d["name"] == "Laptop" && d["passkey"].is_string()),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|(a, d)| a == "auth.passkey_rename"
            && d["was"] == "Laptop"
            && d["name"] == "Work laptop"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.passkey_remove" && d["sessions_ended"] == 1),
        "removing it ended the session it had opened: {actions:?}"
    );
}

/// A passkey as the second factor: its challenge is given only for the right login secret (a
/// wrong one counts as a failed login), to an account that has a passkey, on a server with
/// passkeys; the login then says which factors it takes.
#[tokio::test]
async fn a_passkey_second_factor_is_challenged_only_after_the_passphrase() {
    let plain = TestServer::start().await;
    plain.bootstrap().await;
    let off = plain
        .client()
        .begin_passkey_second_factor("owner", OWNER_SECRET)
        .await
        .unwrap_err();
    assert_eq!(code(&off), (Some(404), Some("passkeys_off".into())));

    let server = TestServer::start_at_localhost(|_| {}).await;
    let (owner, _org) = server.bootstrap().await;
    let c = server.client();
    let wrong = c
        .begin_passkey_second_factor("owner", "not the secret 0123")
        .await
        .unwrap_err();
    assert_eq!(wrong.status(), Some(401));
    let nobody = c
        .begin_passkey_second_factor("nobody", OWNER_SECRET)
        .await
        .unwrap_err();
    assert_eq!(
        nobody.status(),
        Some(401),
        "an unknown login is refused alike"
    );
    let none = c
        .begin_passkey_second_factor("owner", OWNER_SECRET)
        .await
        .unwrap_err();
    assert_eq!(code(&none), (Some(409), Some("no_passkeys".into())));
    let failed = audit_actions(&owner)
        .await
        .into_iter()
        .filter(|(a, d)| a == "auth.login_failed" && d["login"] == "owner")
        .count();
    assert_eq!(failed, 1, "the wrong secret counts as a failed login");

    // A second factor's answer is checked even for an account that asks for none: a login
    // carrying one that does not check out opens nothing.
    let mut c = server.client();
    let start = c.begin_passkey_login().await.unwrap();
    let refused = c
        .login_with(&with_passkey(
            "owner",
            OWNER_SECRET,
            &start.ceremony,
            serde_json::json!({}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        code(&refused),
        (Some(400), Some("passkey_expired".into())),
        "a passkey login's challenge is not a second factor's"
    );
    assert!(c.me().await.is_err(), "no session was opened");

    // With an authenticator app, the question names the passkeys once the account has one.
    let Some(first) = crate::oathtool::code(&owner.begin_mfa().await.unwrap().secret, 0) else {
        return;
    };
    owner.confirm_mfa(&first).await.unwrap();
    let asked = server
        .client()
        .login("owner", OWNER_SECRET)
        .await
        .unwrap_err();
    assert_eq!(asked.code(), Some("mfa_required"));
    assert!(!asked.to_string().contains("passkey"), "{asked}");
    let db = database(&server).await;
    sqlx::query(
        "INSERT INTO passkeys (credential_id, user_id, name, credential, created_at) \
         VALUES ('k1', $1, 'Key', '{}', 1)",
    )
    .bind(owner.me().await.unwrap().user.id.to_string())
    .execute(&db)
    .await
    .unwrap();
    let asked = server
        .client()
        .login("owner", OWNER_SECRET)
        .await
        .unwrap_err();
    assert_eq!(asked.code(), Some("mfa_required"));
    assert!(asked.to_string().contains("one of its passkeys"), "{asked}");
}

/// An organisation requiring a second factor takes a session a passkey opened (alone, or after
/// the passphrase) from a member without an authenticator app, and refuses the same member's
/// passphrase sessions and API tokens; an admin in such a session may turn the policy on.
#[tokio::test]
async fn an_organisation_requiring_a_second_factor_takes_sessions_a_passkey_opened() {
    let server = TestServer::start_at_localhost(|_| {}).await;
    let (owner, org) = server.bootstrap().await;
    let bob = member(&server, &owner, org, "bob", hearth_proto::Role::Operator).await;
    let bob_token = server.token_client(&bob).await;
    let db = database(&server).await;
    let mark = async |login: &str, second: Option<&str>| {
        sqlx::query(
            "UPDATE sessions SET passkey = 'k-' || user_id, second_factor = $2 \
             WHERE user_id = (SELECT id FROM users WHERE login = $1)",
        )
        .bind(login.to_owned())
        .bind(second.map(str::to_owned))
        .execute(&db)
        .await
        .unwrap();
    };

    let refused = owner.set_mfa_policy(org, true).await.unwrap_err();
    assert_eq!(
        refused.status(),
        Some(409),
        "the owner has no second factor"
    );
    mark("owner", None).await;
    owner.set_mfa_policy(org, true).await.unwrap();
    owner.materials(org).await.unwrap();

    let refused = bob.materials(org).await.unwrap_err();
    assert_eq!(
        code(&refused),
        (Some(403), Some("mfa_required_by_org".into()))
    );
    assert!(refused.to_string().contains("with a passkey"), "{refused}");
    mark("bob", Some("passkey")).await;
    bob.materials(org).await.unwrap();
    let token = bob_token.materials(org).await.unwrap_err();
    assert_eq!(
        code(&token),
        (Some(403), Some("mfa_required_by_org".into())),
        "a token made in a passphrase session has one factor"
    );
}

/// A passkey answering a passphrase login's second factor, in a real Chromium
/// (`web/tests/passkey-second-factor.test.mjs`), for an owner with an authenticator app; then,
/// with the passkey that page registered, what the API refuses: a wrong secret, an answer that
/// does not check out (counted, and its challenge spent), another account's challenge.
#[tokio::test]
async fn a_passkey_answers_the_second_factor_of_a_passphrase_login_in_a_real_browser() {
    let server = TestServer::start_at_localhost(|_| {}).await;
    let passphrase = "correct horse battery staple";
    let secret = owner_with_passphrase(&server, passphrase).await;
    let mut owner = server.client();
    owner.login("owner", &secret).await.unwrap();
    let mfa = owner.begin_mfa().await.unwrap();
    let Some(first) = crate::oathtool::code(&mfa.secret, 0) else {
        return;
    };
    let recovery = owner.confirm_mfa(&first).await.unwrap().recovery_codes;
    let env = [
        ("HEARTH_URL", server.url.as_str()),
        ("HEARTH_LOGIN", "owner"),
        ("HEARTH_PASSPHRASE", passphrase),
        ("HEARTH_RECOVERY_CODE", recovery[0].as_str()),
    ];
    if !browser_test("passkey-second-factor.test.mjs", &env).await {
        return;
    }
    let actions = audit_actions(&owner).await;
    assert!(
        actions
            .iter()
            .any(|(a, d)| a == "auth.login" && d["mfa"] == "passkey" && d["name"] == "Key"),
        "the login says the passkey answered its second factor: {actions:?}"
    );
    let key = owner.passkeys().await.unwrap().remove(0);

    let c = server.client();
    let start = c
        .begin_passkey_second_factor("owner", &secret)
        .await
        .unwrap();
    let o = &start.options["publicKey"];
    assert_eq!(o["rpId"], "localhost", "{o}");
    let allowed: Vec<_> = o["allowCredentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        allowed,
        [key.id.as_str()],
        "the account's own passkeys: {o}"
    );

    // An answer that does not check out (the right credential id, no valid signature).
    let forged = serde_json::json!({
        "id": key.id, "rawId": key.id, "type": "public-key",
        "response": { "clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA" },
        "clientExtensionResults": {},
    });
    let mut c = server.client();
    let attempt = with_passkey("owner", &secret, &start.ceremony, forged.clone());
    // Refused, then the same again: its challenge was spent by the first.
    for refused in [(401, "passkey_invalid"), (400, "passkey_expired")] {
        let e = c.login_with(&attempt).await.unwrap_err();
        assert_eq!(code(&e), (Some(refused.0), Some(refused.1.into())));
    }
    assert!(c.me().await.is_err(), "no session was opened");
    let actions = audit_actions(&owner).await;
    assert!(
        actions.iter().any(|(a, d)| a == "auth.login_failed"
            && d["login"] == "owner"
            && d["failed"] == "passkey as second factor"),
        "{actions:?}"
    );

    // The owner's challenge does not finish another account's login.
    let org = owner.orgs().await.unwrap()[0].org.id;
    member(&server, &owner, org, "bob", hearth_proto::Role::Operator).await;
    let start = c
        .begin_passkey_second_factor("owner", &secret)
        .await
        .unwrap();
    let other = c
        .login_with(&with_passkey(
            "bob",
            "bob secret 0123",
            &start.ceremony,
            forged,
        ))
        .await
        .unwrap_err();
    assert_eq!(code(&other), (Some(400), Some("passkey_expired".into())));
}
