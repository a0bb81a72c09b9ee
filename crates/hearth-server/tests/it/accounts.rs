//! Setup, login, sessions, CSRF, roles, tokens, and that each lands in the audit log.

use crate::support::*;
use hearth_proto::Role;
use hearth_proto::api::{CreateTokenRequest, SetupRequest};

#[tokio::test]
async fn first_owner_needs_the_printed_token_which_works_once() {
    let server = TestServer::start().await;
    let c = server.client();
    assert!(c.info().await.unwrap().setup_required);
    let mut req = SetupRequest {
        token: "not-the-token".into(),
        login: "owner".into(),
        secret: OWNER_SECRET.into(),
        org_name: "Acme".into(),
    };
    assert_eq!(c.setup(&req).await.unwrap_err().status(), Some(403));
    req.token = server.setup_token.clone().unwrap();
    let out = c.setup(&req).await.unwrap();
    assert!(out.user.instance_admin);
    assert!(!c.info().await.unwrap().setup_required);
    assert_eq!(
        c.setup(&req).await.unwrap_err().status(),
        Some(409),
        "second setup is refused"
    );
}

#[tokio::test]
async fn login_failures_are_audited_and_throttled_per_account() {
    let server = TestServer::start_with(|s| s.auth.max_failures_per_account = 3).await;
    let (owner, _) = server.bootstrap().await;
    let mut c = server.client();
    for _ in 0..3 {
        let e = c.login("owner", "wrong secret 0000").await.unwrap_err();
        assert_eq!(e.code(), Some("unauthenticated"));
    }
    let e = c.login("owner", OWNER_SECRET).await.unwrap_err();
    assert_eq!(
        e.status(),
        Some(429),
        "even the right secret waits once throttled: {e}"
    );
    let unknown = c.login("nobody", "whatever secret").await.unwrap_err();
    assert_eq!(
        unknown.code(),
        Some("unauthenticated"),
        "unknown logins look the same as wrong secrets"
    );

    let page = owner.audit_page(None, 0, 100).await.unwrap();
    let failed = page
        .entries
        .iter()
        .filter(|e| e.action == "auth.login_failed")
        .count();
    assert_eq!(failed, 4);
    assert!(
        page.entries
            .iter()
            .any(|e| e.action == "auth.login" && e.source.as_deref() == Some("127.0.0.1"))
    );
    owner.verify_audit(None, None).await.unwrap();
}

#[tokio::test]
async fn session_writes_need_the_csrf_token() {
    let server = TestServer::start().await;
    let (owner, _) = server.bootstrap().await;
    let _ = owner;
    // Log in by hand to hold the cookie without the CSRF token.
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(&serde_json::json!({"login": "owner", "secret": OWNER_SECRET}))
        .send()
        .await
        .unwrap();
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP on loopback: no Secure flag"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let csrf = resp.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let me = http
        .get(format!("{}/api/v1/me", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "reads need no CSRF token");
    let body = serde_json::json!({"name": "laptop"});
    let forged = http
        .post(format!("{}/api/v1/tokens", server.url))
        .header("cookie", &cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let ok = http
        .post(format!("{}/api/v1/tokens", server.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
}

#[tokio::test]
async fn roles_are_enforced_and_outsiders_see_nothing() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let viewer = member(&server, &owner, org, "vera", Role::Viewer).await;
    let operator = member(&server, &owner, org, "otto", Role::Operator).await;
    let admin = member(&server, &owner, org, "ada", Role::Admin).await;
    owner
        .create_user("stranger", "stranger secret 01", false)
        .await
        .unwrap();
    let mut stranger = server.client();
    stranger
        .login("stranger", "stranger secret 01")
        .await
        .unwrap();

    // Viewers read, but do not upload.
    assert_eq!(viewer.members(org).await.unwrap().len(), 4);
    let f = make_file(server.dir.path(), "blob", 1000);
    assert_eq!(
        viewer.upload_file(org, &f).await.unwrap_err().status(),
        Some(403)
    );
    // Operators upload, but do not manage members.
    operator.upload_file(org, &f).await.unwrap();
    assert_eq!(
        operator
            .add_member(org, "stranger", Role::Viewer)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    // Admins manage below themselves only; owners anything; the last owner stays.
    admin
        .add_member(org, "stranger", Role::Viewer)
        .await
        .unwrap();
    let stranger_id = owner
        .members(org)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.user.login == "stranger")
        .unwrap()
        .user
        .id;
    assert_eq!(
        admin
            .set_role(org, stranger_id, Role::Admin)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    admin.remove_member(org, stranger_id).await.unwrap();
    let vera_id = owner
        .members(org)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.user.login == "vera")
        .unwrap()
        .user
        .id;
    assert_eq!(
        owner
            .set_role(org, vera_id, Role::Operator)
            .await
            .unwrap()
            .role,
        Role::Operator
    );
    let owner_id = owner.me().await.unwrap().user.id;
    assert_eq!(
        owner
            .set_role(org, owner_id, Role::Admin)
            .await
            .unwrap_err()
            .status(),
        Some(409)
    );
    assert_eq!(
        admin.audit_page(Some(org), 0, 10).await.unwrap().entries[0].action,
        "org.create"
    );
    assert_eq!(
        operator
            .audit_page(Some(org), 0, 10)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    // Outsiders cannot even tell the organisation exists.
    assert_eq!(stranger.members(org).await.unwrap_err().status(), Some(404));
    // Only instance admins create accounts and organisations.
    assert_eq!(
        admin
            .create_user("x", "x secret 0123456", false)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );
    assert_eq!(
        admin
            .create_org("Other", None, None)
            .await
            .unwrap_err()
            .status(),
        Some(403)
    );

    let actions: Vec<String> = owner
        .audit_page(Some(org), 0, 100)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "org.create",
        "member.add",
        "member.role",
        "member.remove",
        "blob.upload",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    owner.verify_audit(Some(org), None).await.unwrap();
}

#[tokio::test]
async fn api_tokens_are_shown_once_scoped_and_revocable() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let other = owner
        .create_org("Second workshop", None, None)
        .await
        .unwrap();
    let created = owner
        .create_token(&CreateTokenRequest {
            name: "ci".into(),
            org: Some(org),
            max_role: Some(Role::Viewer),
            expires_in_days: Some(30),
        })
        .await
        .unwrap();
    assert!(created.token.starts_with("hth_"));
    let listed = owner.tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_none());
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains(&created.token),
        "the secret is never listed"
    );

    let bot = server.client().with_token(&created.token);
    assert_eq!(bot.me().await.unwrap().user.login, "owner");
    assert_eq!(bot.members(org).await.unwrap().len(), 1);
    let f = make_file(server.dir.path(), "blob", 10);
    assert_eq!(
        bot.upload_file(org, &f).await.unwrap_err().status(),
        Some(403),
        "capped at viewer"
    );
    assert_eq!(
        bot.members(other.id).await.unwrap_err().status(),
        Some(403),
        "restricted to one org"
    );
    assert_eq!(
        bot.create_token(&CreateTokenRequest {
            name: "more".into(),
            org: None,
            max_role: None,
            expires_in_days: None
        })
        .await
        .unwrap_err()
        .status(),
        Some(403),
        "a token cannot mint tokens"
    );
    assert!(
        owner.tokens().await.unwrap()[0].last_used_at.is_some(),
        "last use is recorded"
    );

    owner.revoke_token(created.info.id).await.unwrap();
    assert_eq!(bot.me().await.unwrap_err().status(), Some(401));
    let actions: Vec<String> = owner
        .audit_page(None, 0, 100)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"token.create".to_owned())
            && actions.contains(&"token.revoke".to_owned())
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let server = TestServer::start().await;
    let (mut owner, _) = server.bootstrap().await;
    let copy = owner.clone();
    owner.logout().await.unwrap();
    assert_eq!(copy.me().await.unwrap_err().status(), Some(401));
}

#[tokio::test]
async fn changing_the_secret_ends_other_sessions_and_stores_the_rewrapped_bundle() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let mut laptop = server.client();
    laptop.login("owner", OWNER_SECRET).await.unwrap();
    owner
        .raw_put(
            "/api/v1/me/key-bundle",
            &serde_json::json!({"bundle": {"wrapped": "old"}}),
        )
        .await
        .unwrap();
    owner
        .raw_put(
            "/api/v1/me/device",
            &serde_json::json!({"public": {"signing": "k", "age": "age1x"}}),
        )
        .await
        .unwrap();

    let wrong =
        serde_json::json!({"current_secret": "not it at all", "new_secret": "brand new secret"});
    assert_eq!(
        owner
            .raw_put("/api/v1/me/secret", &wrong)
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    let change = serde_json::json!({
        "current_secret": OWNER_SECRET, "new_secret": "brand new secret", "key_bundle": {"wrapped": "new"}
    });
    owner.raw_put("/api/v1/me/secret", &change).await.unwrap();
    assert_eq!(
        laptop.me().await.unwrap_err().status(),
        Some(401),
        "the other session ended"
    );
    owner.me().await.unwrap();
    let bundle: serde_json::Value = owner.raw_get("/api/v1/me/key-bundle").await.unwrap();
    assert_eq!(bundle["bundle"]["wrapped"], "new");
    let mut again = server.client();
    assert!(again.login("owner", OWNER_SECRET).await.is_err());
    again.login("owner", "brand new secret").await.unwrap();

    // Device public keys and sealed epochs are stored opaque; epochs are written once.
    let me = owner.me().await.unwrap().user.id;
    let dev: serde_json::Value = owner
        .raw_get(&format!("/api/v1/orgs/{org}/members/{me}/device"))
        .await
        .unwrap();
    assert_eq!(dev["public"]["age"], "age1x");
    let e1 = serde_json::json!({"epoch": 1, "sealed": {"age": "..."}});
    owner
        .raw_post::<serde_json::Value>(&format!("/api/v1/orgs/{org}/epochs"), &e1)
        .await
        .unwrap();
    let dup = owner
        .raw_post::<serde_json::Value>(&format!("/api/v1/orgs/{org}/epochs"), &e1)
        .await
        .unwrap_err();
    assert_eq!(dup.status(), Some(409));
    let latest: serde_json::Value = owner
        .raw_get(&format!("/api/v1/orgs/{org}/epochs/latest"))
        .await
        .unwrap();
    assert_eq!(latest["epoch"], 1);
}

#[tokio::test]
async fn admins_grant_a_later_member_the_key_of_an_earlier_epoch() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let e1 = serde_json::json!({"epoch": 1, "sealed": {"age": "to the founders"}});
    owner
        .raw_post::<serde_json::Value>(&format!("/api/v1/orgs/{org}/epochs"), &e1)
        .await
        .unwrap();
    let bob = member(&server, &owner, org, "bob", Role::Operator).await;
    let carol = member(&server, &owner, org, "carol", Role::Operator).await;
    let bob_id = bob.me().await.unwrap().user.id;
    let grant_path = format!("/api/v1/orgs/{org}/members/{bob_id}/epochs/1");
    let mine = format!("/api/v1/orgs/{org}/epochs/1/grant");
    let grant = |s: &str| serde_json::json!({"epoch": 1, "sealed": {"age": s}});
    let status = |r: hearth_client::Result<()>| r.unwrap_err().status();
    async fn get_status(c: &hearth_client::Client, path: &str) -> Option<u16> {
        c.raw_get::<serde_json::Value>(path)
            .await
            .unwrap_err()
            .status()
    }

    // Nothing granted yet; an operator may not grant, not even to themself.
    assert_eq!(get_status(&bob, &mine).await, Some(404));
    assert_eq!(
        status(bob.raw_put(&grant_path, &grant("self-made")).await),
        Some(403)
    );
    // The body must name the epoch of the path; the epoch and the member must exist.
    assert_eq!(
        status(
            owner
                .raw_put(
                    &grant_path,
                    &serde_json::json!({"epoch": 2, "sealed": {"age": "x"}})
                )
                .await
        ),
        Some(422)
    );
    assert_eq!(
        status(
            owner
                .raw_put(
                    &format!("/api/v1/orgs/{org}/members/{bob_id}/epochs/7"),
                    &serde_json::json!({"epoch": 7, "sealed": {"age": "x"}})
                )
                .await
        ),
        Some(404)
    );
    let stranger = hearth_proto::ids::UserId::new();
    assert_eq!(
        status(
            owner
                .raw_put(
                    &format!("/api/v1/orgs/{org}/members/{stranger}/epochs/1"),
                    &grant("x")
                )
                .await
        ),
        Some(404)
    );

    // Granted, and granted again (after a device change): bob reads the latest, carol none.
    owner.raw_put(&grant_path, &grant("first")).await.unwrap();
    owner.raw_put(&grant_path, &grant("for bob")).await.unwrap();
    let got: serde_json::Value = bob.raw_get(&mine).await.unwrap();
    assert_eq!(got, grant("for bob"));
    assert_eq!(get_status(&carol, &mine).await, Some(404));
    // The epoch itself is untouched, and the grant is in the audit log.
    let e: serde_json::Value = bob
        .raw_get(&format!("/api/v1/orgs/{org}/epochs/1"))
        .await
        .unwrap();
    assert_eq!(e, e1);
    let audit: serde_json::Value = owner
        .raw_get(&format!("/api/v1/orgs/{org}/audit"))
        .await
        .unwrap();
    let grants: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "epoch.grant")
        .collect();
    assert_eq!(grants.len(), 2, "{audit}");
    assert_eq!(grants[0]["target"], format!("user:{bob_id}"));

    // Removed and added back: the old grant is gone with the membership.
    owner.remove_member(org, bob_id).await.unwrap();
    owner.add_member(org, "bob", Role::Operator).await.unwrap();
    assert_eq!(get_status(&bob, &mine).await, Some(404));
}

#[tokio::test]
async fn a_member_sees_where_they_are_logged_in_and_ends_a_session() {
    let server = TestServer::start().await;
    let (first, _org) = server.bootstrap().await;
    let mut second = server.client();
    second.login("owner", OWNER_SECRET).await.unwrap();
    let mut third = server.client();
    third.login("owner", OWNER_SECRET).await.unwrap();
    let listed: Vec<hearth_proto::api::SessionInfo> =
        first.raw_get("/api/v1/me/sessions").await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed.iter().filter(|s| s.current).count(), 1);
    assert!(listed.iter().all(|s| s.source.is_some()));
    assert!(
        listed
            .iter()
            .all(|s| s.user_agent.as_deref() == Some(concat!("hearth/", env!("CARGO_PKG_VERSION")))),
        "{listed:?}"
    );
    // Another one ended from the first: that one is logged out, the rest go on.
    let other = &listed.iter().find(|s| !s.current).unwrap().id;
    first
        .raw_delete(&format!("/api/v1/me/sessions/{other}"))
        .await
        .unwrap();
    let mut out = 0;
    for c in [&second, &third] {
        if c.me().await.is_err() {
            out += 1;
        }
    }
    assert_eq!(out, 1);
    let gone = first
        .raw_delete(&format!("/api/v1/me/sessions/{other}"))
        .await
        .unwrap_err();
    assert_eq!(gone.status(), Some(404));
    // Everywhere else: the others end, the first goes on.
    first.raw_delete("/api/v1/me/sessions").await.unwrap();
    assert_eq!(second.me().await.unwrap_err().status(), Some(401));
    assert_eq!(third.me().await.unwrap_err().status(), Some(401));
    first.me().await.unwrap();
    let listed: Vec<hearth_proto::api::SessionInfo> =
        first.raw_get("/api/v1/me/sessions").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].current);
}
