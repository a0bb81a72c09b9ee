use crate::support::{self, TestDb};
use hearth_proto::Role;
use hearth_proto::agent::PrinterInfo;
use hearth_proto::api::{AgentStatus, LoadedRequest};
use hearth_proto::audit::ChainBreak;
use hearth_proto::ids::{
    AgentId, BlobHash, JobId, MaterialId, OrgId, PrinterId, SpoolId, TokenId, UploadId, UserId,
};
use hearth_store::audit::NewAuditEntry;
use hearth_store::blobdir::{BlobDir, FinishError};
use hearth_store::fleet::PrinterNotice;
use hearth_store::*;

#[tokio::test]
async fn story_on_sqlite() {
    story(support::sqlite().await).await;
}

#[tokio::test]
async fn story_on_postgres() {
    if let Some(db) = support::postgres().await {
        story(db).await;
    }
}

fn audit(scope: &str, action: &str, n: i64) -> NewAuditEntry {
    NewAuditEntry {
        scope: scope.to_owned(),
        ts_ms: 1_795_000_000_000 + n,
        actor: "user:test".into(),
        action: action.into(),
        target: None,
        source: Some("192.0.2.1".into()),
        details: serde_json::json!({ "n": n }),
    }
}

async fn story(db: TestDb) {
    let s = &db.store;
    let label = db.label;
    let now = 1_795_000_000_000;

    // A fresh server has no users and a one-time setup token that works once.
    assert_eq!(s.user_count().await.unwrap(), 0, "{label}");
    let mut tx = s.begin().await.unwrap();
    tx.replace_setup_token("hash-of-setup-token", now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(!tx.consume_setup_token("wrong").await.unwrap());
    assert!(tx.consume_setup_token("hash-of-setup-token").await.unwrap());
    assert!(!tx.consume_setup_token("hash-of-setup-token").await.unwrap());

    // The first owner and their organisation, with the audit entry, in one transaction.
    let alice = UserRow {
        id: UserId::new(),
        login: "alice".into(),
        secret_hash: "$argon2id$fake".into(),
        instance_admin: true,
        created_at: now,
    };
    let org = OrgRow {
        require_mfa: false,
        require_approval: false,
        require_sso: false,
        id: OrgId::new(),
        name: "Acme Prototyping".into(),
        quota_bytes: 1000,
        created_at: now,
    };
    tx.insert_user(&alice).await.unwrap();
    tx.insert_org(&org).await.unwrap();
    tx.set_membership(org.id, alice.id, Role::Owner, now)
        .await
        .unwrap();
    tx.append_audit(audit(&org.id.to_string(), "org.create", 1))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A rolled-back transaction leaves nothing behind.
    let mut tx = s.begin().await.unwrap();
    let ghost = UserRow {
        id: UserId::new(),
        login: "ghost".into(),
        ..alice.clone()
    };
    tx.insert_user(&ghost).await.unwrap();
    drop(tx);
    assert!(
        s.user_by_login("ghost").await.unwrap().is_none(),
        "{label}: rollback"
    );

    // Logins are unique; the error says which.
    let mut tx = s.begin().await.unwrap();
    let dup = UserRow {
        id: UserId::new(),
        ..alice.clone()
    };
    match tx.insert_user(&dup).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("alice"), "{msg}"),
        other => panic!("{label}: expected a conflict, got {other:?}"),
    }
    drop(tx);

    let bob = UserRow {
        id: UserId::new(),
        login: "bob".into(),
        secret_hash: "$argon2id$fake2".into(),
        instance_admin: false,
        created_at: now + 1,
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_user(&bob).await.unwrap();
    tx.set_membership(org.id, bob.id, Role::Operator, now)
        .await
        .unwrap();
    tx.append_audit(audit(&org.id.to_string(), "member.add", 2))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(s.user_by_login("bob").await.unwrap().unwrap(), bob);
    assert_eq!(s.user_by_id(alice.id).await.unwrap(), alice);
    assert!(matches!(
        s.user_by_id(UserId::new()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.role_in(org.id, bob.id).await.unwrap(),
        Some(Role::Operator)
    );
    let members = s.members(org.id).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|(u, r)| (u.login.as_str(), *r))
            .collect::<Vec<_>>(),
        [("alice", Role::Owner), ("bob", Role::Operator)]
    );
    assert_eq!(s.memberships_of(bob.id).await.unwrap()[0].0, org);

    // Promotion, owner counting, removal.
    let mut tx = s.begin().await.unwrap();
    tx.set_membership(org.id, bob.id, Role::Admin, now)
        .await
        .unwrap();
    assert_eq!(tx.owner_count(org.id).await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert_eq!(s.role_in(org.id, bob.id).await.unwrap(), Some(Role::Admin));

    // Sessions expire.
    let sess = SessionRow {
        user_id: bob.id,
        csrf_token: "csrf".into(),
        created_at: now,
        expires_at: now + 1000,
        sso_provider: Some("corp".into()),
        sso_sid: Some("idp-session".into()),
        sso_id_token: Some("eyJ.id.token".into()),
        passkey: None,
        second_factor: Some("totp".into()),
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_session("sess-hash", &sess, Some("192.0.2.7"), Some("hearth/0.1.0"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.session("sess-hash", now + 10).await.unwrap(), Some(sess));
    assert_eq!(s.session("sess-hash", now + 1000).await.unwrap(), None);
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.delete_expired_sessions(now + 2000).await.unwrap(), 1);
    tx.commit().await.unwrap();

    // API tokens: stored by hash, scoped, revocable only by their owner, with last-used time.
    let tok = TokenRow {
        id: TokenId::new(),
        user_id: bob.id,
        org_id: Some(org.id),
        name: "ci".into(),
        max_role: Role::Operator,
        created_at: now,
        last_used_at: None,
        expires_at: Some(now + 86_400_000),
        revoked_at: None,
        sso_provider: Some("corp".into()),
        sso_sid: Some("idp-session".into()),
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_token(&tok, "tok-hash").await.unwrap();
    tx.commit().await.unwrap();
    let found = s.token_by_hash("tok-hash").await.unwrap().unwrap();
    assert_eq!(found, tok);
    assert!(found.is_live(now) && !found.is_live(now + 86_400_000));
    s.touch_token(tok.id, now + 5).await.unwrap();
    assert_eq!(
        s.tokens_of(bob.id).await.unwrap()[0].last_used_at,
        Some(now + 5)
    );
    let mut tx = s.begin().await.unwrap();
    assert!(matches!(
        tx.revoke_token(tok.id, alice.id, now).await,
        Err(StoreError::NotFound(_))
    ));
    tx.revoke_token(tok.id, bob.id, now + 6).await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        !s.token_by_hash("tok-hash")
            .await
            .unwrap()
            .unwrap()
            .is_live(now + 7)
    );

    // Blobs: a resumable upload survives an interruption, is verified, then becomes visible.
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobDir::open(dir.path().join("blobs")).await.unwrap();
    let data: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
    let hash = BlobHash::of(&data);
    let up = UploadRow {
        id: UploadId::new(),
        org_id: org.id,
        user_id: bob.id,
        length: data.len() as i64,
        sha256: hash.clone(),
        created_at: now,
        expires_at: now + 1000,
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_upload(&up).await.unwrap();
    tx.commit().await.unwrap();
    blobs.create_upload(up.id).await.unwrap();
    let mut f = blobs.append_upload(up.id).await.unwrap();
    f.write(&data[..250]).await.unwrap();
    drop(f); // the connection broke
    assert_eq!(blobs.upload_offset(up.id).await.unwrap(), Some(250));
    assert!(
        !blobs.blob_exists(&hash).await.unwrap(),
        "a partial upload is never a visible blob"
    );
    assert_eq!(
        s.usage(org.id).await.unwrap(),
        UsageRow {
            used: 0,
            reserved: 600
        }
    );
    let mut f = blobs.append_upload(up.id).await.unwrap();
    assert_eq!(f.offset(), 250);
    f.write(&data[250..]).await.unwrap();
    assert_eq!(f.sync().await.unwrap(), 600);
    blobs.finish_upload(up.id, &hash).await.unwrap();
    assert_eq!(blobs.hash_blob(&hash).await.unwrap(), hash);
    let mut tx = s.begin().await.unwrap();
    tx.delete_upload(up.id).await.unwrap();
    let row = BlobRow {
        org_id: org.id,
        sha256: hash.clone(),
        size: 600,
        created_at: now,
        created_by: bob.id,
    };
    tx.insert_blob(&row).await.unwrap();
    tx.insert_blob(&row).await.unwrap(); // uploading the same ciphertext again is harmless
    tx.commit().await.unwrap();
    assert_eq!(s.blob(org.id, &hash).await.unwrap(), row);
    assert_eq!(s.blobs(org.id, None, 10).await.unwrap(), vec![row.clone()]);
    assert!(s.blobs(org.id, Some(&hash), 10).await.unwrap().is_empty());
    assert_eq!(
        s.usage(org.id).await.unwrap(),
        UsageRow {
            used: 600,
            reserved: 0
        }
    );
    assert_eq!(
        s.all_blob_hashes().await.unwrap(),
        vec![(hash.clone(), 600)]
    );

    // An upload whose bytes don't match the announced hash is refused and discarded.
    let bad = UploadId::new();
    blobs.create_upload(bad).await.unwrap();
    let mut f = blobs.append_upload(bad).await.unwrap();
    f.write(b"not what was announced").await.unwrap();
    f.sync().await.unwrap();
    assert!(matches!(
        blobs.finish_upload(bad, &hash).await,
        Err(FinishError::HashMismatch { .. })
    ));
    assert_eq!(blobs.upload_offset(bad).await.unwrap(), None);

    let mut tx = s.begin().await.unwrap();
    tx.delete_blob(org.id, &hash).await.unwrap();
    assert!(!tx.blob_referenced(&hash).await.unwrap());
    assert!(matches!(
        tx.delete_blob(org.id, &hash).await,
        Err(StoreError::NotFound(_))
    ));
    tx.commit().await.unwrap();

    // The audit chain verifies, and every kind of direct tampering is named.
    let org_scope = org.id.to_string();
    let check = s.verify_audit(&org_scope).await.unwrap();
    assert_eq!(check.entries_checked, 2);
    assert_eq!(check.result.unwrap(), check.head);

    for (scope, sql, expected) in [
        (
            "edit",
            "UPDATE audit_log SET actor = 'user:mallory' WHERE scope = 'edit' AND seq = 2",
            ChainBreak::Altered { seq: 2 },
        ),
        (
            "delete",
            "DELETE FROM audit_log WHERE scope = 'delete' AND seq = 2",
            ChainBreak::Removed {
                expected: 2,
                found: 3,
            },
        ),
        (
            "tail",
            "DELETE FROM audit_log WHERE scope = 'tail' AND seq = 4",
            ChainBreak::Truncated { last: 3, head: 4 },
        ),
        (
            "reorder",
            "UPDATE audit_log SET seq = 1000 WHERE scope = 'reorder' AND seq = 2; \
             UPDATE audit_log SET seq = 2 WHERE scope = 'reorder' AND seq = 3; \
             UPDATE audit_log SET seq = 3 WHERE scope = 'reorder' AND seq = 1000",
            ChainBreak::Altered { seq: 2 },
        ),
    ] {
        let mut tx = s.begin().await.unwrap();
        for n in 1..=4 {
            tx.append_audit(audit(scope, "test.event", n))
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        assert!(
            s.verify_audit(scope).await.unwrap().result.is_ok(),
            "{label}/{scope}: intact first"
        );
        assert!(
            support::raw(&db.url, sql).await > 0,
            "{label}/{scope}: tampering applied"
        );
        let check = s.verify_audit(scope).await.unwrap();
        assert_eq!(check.result, Err(expected), "{label}/{scope}");
    }

    // Pages come oldest first and continue after a given entry.
    let page = s.audit_page(&org_scope, 1, 10).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(page[0].action, "member.add");

    // A printer's loaded material, set by a member, lasts until its configuration changes it.
    let agent = hearth_store::fleet::AgentRow {
        id: AgentId::new(),
        org_id: org.id,
        name: "bench-pi".into(),
        signing_key: "key".into(),
        age_recipient: "age1...".into(),
        status: AgentStatus::Approved,
        created_at: now,
        last_seen_at: None,
    };
    let configured = PrinterInfo {
        name: "mk4".into(),
        kind: "simulated".into(),
        model: "Prusa MK4".into(),
        nozzle_mm: Some(0.4),
        material: Some("PLA".into()),
        color: Some("black".into()),
        pools: vec!["pla".into()],
        can_pause: true,
        camera: false,
        heat: None,
        tune: None,
        actions: Vec::new(),
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_agent(&agent).await.unwrap();
    let id = tx
        .upsert_printer(org.id, agent.id, &configured, now)
        .await
        .unwrap();
    let petg = LoadedRequest {
        spool: None,
        material: Some("PETG".into()),
        color: None,
        nozzle_mm: Some(0.6),
    };
    assert!(tx.set_printer_loaded(id, Some(&petg)).await.unwrap());
    tx.commit().await.unwrap();
    let p = s.printer(id).await.unwrap();
    assert_eq!(p.loaded.as_ref(), Some(&petg), "{label}");
    assert_eq!(
        (
            p.effective().material,
            p.effective().color,
            p.effective().nozzle_mm
        ),
        (Some("PETG".into()), None, Some(0.6)),
        "{label}"
    );
    for (announced, kept) in [
        (configured.clone(), true),
        (
            PrinterInfo {
                material: Some("ABS".into()),
                ..configured.clone()
            },
            false,
        ),
    ] {
        let mut tx = s.begin().await.unwrap();
        let again = tx
            .upsert_printer(org.id, agent.id, &announced, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(again, id, "{label}");
        let p = s.printer(id).await.unwrap();
        assert_eq!(p.loaded.is_some(), kept, "{label}: {announced:?}");
    }

    // A printer's absence (or error) is reported once, whoever asks first (instances share the
    // database), and its end once; then the next may be reported again. The two are apart.
    for notice in [PrinterNotice::Offline, PrinterNotice::Error] {
        let other = match notice {
            PrinterNotice::Offline => PrinterNotice::Error,
            PrinterNotice::Error => PrinterNotice::Offline,
        };
        assert!(
            !s.clear_notice(id, notice).await.unwrap(),
            "{label} {notice:?}: none stands"
        );
        assert!(s.claim_notice(id, notice, now).await.unwrap(), "{label}");
        assert!(
            !s.claim_notice(id, notice, now + 1).await.unwrap(),
            "{label} {notice:?}: once"
        );
        assert!(
            !s.clear_notice(id, other).await.unwrap(),
            "{label} {notice:?}: the other kind stands apart"
        );
        assert!(
            s.clear_notice(id, notice).await.unwrap(),
            "{label} {notice:?}: ended"
        );
        assert!(
            !s.clear_notice(id, notice).await.unwrap(),
            "{label} {notice:?}: ended once"
        );
        assert!(
            s.claim_notice(id, notice, now + 2).await.unwrap(),
            "{label} {notice:?}: anew"
        );
        assert!(s.clear_notice(id, notice).await.unwrap(), "{label}");
    }

    // A second factor: set up, confirmed once, each step and each recovery code taken once.
    assert_eq!(s.mfa(alice.id).await.unwrap(), None, "{label}");
    assert!(s.begin_totp(alice.id, "SECRETONE").await.unwrap());
    assert!(
        s.begin_totp(alice.id, "SECRETTWO").await.unwrap(),
        "{label}: replaced"
    );
    let hashes = vec!["h1".to_owned(), "h2".to_owned()];
    let mut tx = s.begin().await.unwrap();
    assert!(
        !tx.confirm_totp(alice.id, "SECRETONE", 10, &hashes, now)
            .await
            .unwrap(),
        "{label}: a replaced setup is not confirmed"
    );
    tx.commit().await.unwrap();
    assert!(
        !s.take_totp_step(alice.id, 11).await.unwrap(),
        "{label}: not on yet"
    );
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.confirm_totp(alice.id, "SECRETTWO", 10, &hashes, now)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert!(
        !s.begin_totp(alice.id, "SECRETTHREE").await.unwrap(),
        "{label}: on"
    );
    assert!(
        !s.take_totp_step(alice.id, 10).await.unwrap(),
        "{label}: the confirming step"
    );
    assert!(s.take_totp_step(alice.id, 11).await.unwrap(), "{label}");
    assert!(
        !s.take_totp_step(alice.id, 11).await.unwrap(),
        "{label}: once"
    );
    let m = s.mfa(alice.id).await.unwrap().unwrap();
    assert_eq!(
        (m.enabled_at, m.last_step, &m.recovery),
        (Some(now), Some(11), &hashes)
    );
    assert!(
        s.take_recovery_code(alice.id, &m.recovery, "h2")
            .await
            .unwrap()
    );
    assert!(
        !s.take_recovery_code(alice.id, &m.recovery, "h1")
            .await
            .unwrap(),
        "{label}: read before another was taken"
    );
    let m = s.mfa(alice.id).await.unwrap().unwrap();
    assert_eq!(m.recovery, ["h1"]);
    assert!(
        !s.take_recovery_code(alice.id, &m.recovery, "h2")
            .await
            .unwrap()
    );
    let mut tx = s.begin().await.unwrap();
    assert!(tx.clear_mfa(alice.id).await.unwrap());
    assert!(!tx.clear_mfa(alice.id).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(s.mfa(alice.id).await.unwrap(), None);

    // History grants: an older epoch's key sealed for one member, replaceable, only for an epoch
    // that exists, and gone with the membership.
    let (sealed1, sealed2) = (serde_json::json!({ "v": 1 }), serde_json::json!({ "v": 2 }));
    let mut tx = s.begin().await.unwrap();
    tx.insert_org_epoch(org.id, 1, &sealed1, alice.id, now)
        .await
        .unwrap();
    tx.put_epoch_grant(org.id, 1, bob.id, &sealed1, alice.id, now)
        .await
        .unwrap();
    tx.put_epoch_grant(org.id, 1, bob.id, &sealed2, alice.id, now + 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        s.epoch_grant(org.id, 1, bob.id).await.unwrap(),
        Some(sealed2.clone()),
        "{label}"
    );
    assert_eq!(s.epoch_grant(org.id, 1, alice.id).await.unwrap(), None);
    assert_eq!(s.epoch_grant(org.id, 2, bob.id).await.unwrap(), None);
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.put_epoch_grant(org.id, 9, bob.id, &sealed1, alice.id, now)
            .await
            .is_err(),
        "{label}: a grant of an epoch that does not exist"
    );
    drop(tx);
    let mut tx = s.begin().await.unwrap();
    tx.remove_membership(org.id, bob.id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        s.epoch_grant(org.id, 1, bob.id).await.unwrap(),
        None,
        "{label}"
    );

    inventory(s, label, org.id, id, &configured, now).await;
    notifications(s, label, org.id, alice.id, now).await;
    timelapses(s, label, org.id, id, alice.id, now).await;
    queue(s, label, org.id, id, alice.id, now).await;
    maintenance(s, label, org.id, id, alice.id, now).await;
    single_sign_on(s, label, alice.id, bob.id, now).await;
    passkeys(s, label, alice.id, bob.id, now).await;
    audit_forwarding(s, label, now).await;
    let mut tx = s.begin().await.unwrap();
    tx.set_org_policy(org.id, OrgPolicy::RequireSso, true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(s.org_by_id(org.id).await.unwrap().require_sso, "{label}");
    assert!(
        s.memberships_of(alice.id).await.unwrap()[0].0.require_sso,
        "{label}"
    );
}

/// Forwarding the audit log: every chain with entries is listed until they are marked sent (a
/// mark never moves back), and one instance at a time holds the lease.
async fn audit_forwarding(s: &Store, label: &str, now: i64) {
    let backlog = s.audit_unforwarded().await.unwrap();
    assert!(!backlog.is_empty(), "{label}");
    assert!(backlog.iter().all(|(_, done)| *done == 0), "{label}");
    let (scope, _) = backlog[0].clone();
    let head = s.audit_head(&scope).await.unwrap().seq;
    let mut all = 0;
    for (sc, _) in &backlog {
        all += s.audit_head(sc).await.unwrap().seq;
    }
    assert_eq!(s.audit_forward_backlog().await.unwrap(), all, "{label}");
    s.mark_audit_forwarded(&scope, head - 1).await.unwrap();
    assert_eq!(
        s.audit_forward_backlog().await.unwrap(),
        all - head + 1,
        "{label}"
    );
    assert!(
        s.audit_unforwarded()
            .await
            .unwrap()
            .contains(&(scope.clone(), head - 1)),
        "{label}"
    );
    s.mark_audit_forwarded(&scope, head).await.unwrap();
    s.mark_audit_forwarded(&scope, 1).await.unwrap();
    let left = s.audit_unforwarded().await.unwrap();
    assert!(left.iter().all(|(sc, _)| *sc != scope), "{label}: {left:?}");
    let mut tx = s.begin().await.unwrap();
    tx.append_audit(audit(&scope, "after.forward", 99))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(
        s.audit_unforwarded()
            .await
            .unwrap()
            .contains(&(scope.clone(), head)),
        "{label}: a new entry is due"
    );
    // Forwarding set up without its history: every chain is marked sent up to its head, the
    // first time only.
    assert!(s.begin_audit_forwarding(false).await.unwrap(), "{label}");
    assert_eq!(s.audit_unforwarded().await.unwrap(), [], "{label}");
    let mut tx = s.begin().await.unwrap();
    tx.append_audit(audit(&scope, "after.setup", 100))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(!s.begin_audit_forwarding(false).await.unwrap(), "{label}");
    assert_eq!(
        s.audit_unforwarded().await.unwrap(),
        [(scope.clone(), head + 1)],
        "{label}"
    );

    assert!(
        s.take_audit_forward_lease("a", now, now + 30)
            .await
            .unwrap()
    );
    assert!(
        !s.take_audit_forward_lease("b", now + 10, now + 40)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        s.take_audit_forward_lease("a", now + 20, now + 50)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !s.take_audit_forward_lease("b", now + 49, now + 79)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        s.take_audit_forward_lease("b", now + 51, now + 81)
            .await
            .unwrap(),
        "{label}: lapsed"
    );
    assert!(
        !s.take_audit_forward_lease("a", now + 60, now + 90)
            .await
            .unwrap(),
        "{label}"
    );
}

/// Logins in flight at a provider are taken once and expire; identities link once.
async fn single_sign_on(s: &Store, label: &str, alice: UserId, bob: UserId, now: i64) {
    use hearth_store::sso::{CliLogin, SsoIdentityRow, SsoLoginRow};
    let login = |hash: &str, cli: Option<CliLogin>| SsoLoginRow {
        state_hash: hash.into(),
        provider: "corp".into(),
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        redirect_uri: "https://h/cb".into(),
        link_user_id: Some(alice),
        user_id: None,
        cli,
        sso_sid: None,
        sso_id_token: None,
        created_at: now,
        expires_at: now + 600_000,
    };
    let cli = CliLogin {
        port: 49_152,
        challenge: "c".repeat(43),
    };
    s.insert_sso_login(&login("s1", Some(cli.clone())))
        .await
        .unwrap();
    let taken = s.take_sso_login("s1", now + 1).await.unwrap();
    assert_eq!(taken, Some(login("s1", Some(cli.clone()))), "{label}");
    assert_eq!(
        s.take_sso_login("s1", now + 1).await.unwrap(),
        None,
        "{label}: once"
    );
    // Expired: not taken; and a later start clears it away.
    s.insert_sso_login(&login("s2", None)).await.unwrap();
    assert_eq!(
        s.take_sso_login("s2", now + 600_000).await.unwrap(),
        None,
        "{label}"
    );
    // Back for a second factor under a new state, keeping where the CLI waits.
    let mut tx = s.begin().await.unwrap();
    tx.await_second_factor(
        taken.as_ref().unwrap(),
        "s3",
        bob,
        (Some("idp-1"), Some("eyJ.id.token")),
        now + 300_000,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let waiting = s.sso_login("s3", now + 2).await.unwrap().unwrap();
    assert_eq!(
        (
            waiting.user_id,
            waiting.cli,
            waiting.sso_sid.as_deref(),
            waiting.sso_id_token.as_deref()
        ),
        (Some(bob), Some(cli), Some("idp-1"), Some("eyJ.id.token")),
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_sso_login("s3").await.unwrap());
    assert!(!tx.delete_sso_login("s3").await.unwrap());
    tx.commit().await.unwrap();

    let identity = |user| SsoIdentityRow {
        provider: "corp".into(),
        subject: "sub-1".into(),
        user_id: user,
        claimed: "alice@example.org".into(),
        linked_at: now,
        last_login_at: None,
    };
    let mut tx = s.begin().await.unwrap();
    tx.link_sso_identity(&identity(alice)).await.unwrap();
    tx.touch_sso_identity("corp", "sub-1", now + 5)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(
        matches!(
            tx.link_sso_identity(&identity(bob)).await,
            Err(StoreError::Conflict(_))
        ),
        "{label}: one account per identity"
    );
    drop(tx);
    let found = s.sso_identity("corp", "sub-1").await.unwrap().unwrap();
    assert_eq!(
        (found.user_id, found.last_login_at),
        (alice, Some(now + 5)),
        "{label}"
    );
    assert_eq!(
        s.sso_identities_of(alice).await.unwrap(),
        vec![found],
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.unlink_sso_identities(alice, "corp").await.unwrap(), 1);
    tx.commit().await.unwrap();
    assert!(
        s.sso_identities_of(alice).await.unwrap().is_empty(),
        "{label}"
    );
    back_channel_logout(s, label, alice, bob, now).await;
}

/// A provider's back-channel logout ends the sessions (and revokes the tokens) of its logins:
/// of one provider session (`sid`), or of an account, never those opened after the logout, of
/// another provider, or of a passphrase.
async fn back_channel_logout(s: &Store, label: &str, alice: UserId, bob: UserId, now: i64) {
    use hearth_store::sso::SsoLogout;
    // (name, user, provider, sid, opened at)
    type Login<'a> = (&'a str, UserId, Option<&'a str>, Option<&'a str>, i64);
    let logins: [Login; 7] = [
        ("a-corp-1", alice, Some("corp"), Some("sid-1"), now),
        ("a-corp-2", alice, Some("corp"), Some("sid-2"), now),
        (
            "a-corp-late",
            alice,
            Some("corp"),
            Some("sid-1"),
            now + 10_000,
        ),
        ("a-corp-nosid", alice, Some("corp"), None, now),
        ("a-lab", alice, Some("lab"), Some("sid-1"), now),
        ("a-pass", alice, None, None, now),
        ("b-corp-1", bob, Some("corp"), Some("sid-1"), now),
    ];
    let mut tx = s.begin().await.unwrap();
    for (name, user, provider, sid, at) in logins {
        let session = SessionRow {
            user_id: user,
            csrf_token: "csrf".into(),
            created_at: at,
            expires_at: now + 3_600_000,
            sso_provider: provider.map(str::to_owned),
            sso_sid: sid.map(str::to_owned),
            sso_id_token: None,
            passkey: None,
            second_factor: None,
        };
        tx.insert_session(&format!("bcl-{name}"), &session, None, None)
            .await
            .unwrap();
        let token = TokenRow {
            id: TokenId::new(),
            user_id: user,
            org_id: None,
            name: name.into(),
            max_role: Role::Admin,
            created_at: at,
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
            sso_provider: provider.map(str::to_owned),
            sso_sid: sid.map(str::to_owned),
        };
        tx.insert_token(&token, &format!("bcl-tok-{name}"))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let alive = async || {
        let mut out = Vec::new();
        for (name, ..) in logins {
            let session = s.session(&format!("bcl-{name}"), now).await.unwrap();
            let token = s
                .token_by_hash(&format!("bcl-tok-{name}"))
                .await
                .unwrap()
                .unwrap();
            out.push((name, session.is_some(), token.revoked_at.is_none()));
        }
        out
    };
    let end = async |user, sid, tokens| {
        let mut tx = s.begin().await.unwrap();
        let ended = tx
            .end_sso_logins("corp", user, sid, now + 5_000, tokens, now + 6_000)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        ended
    };
    // Naming nobody ends nothing.
    assert_eq!(end(None, None, true).await, SsoLogout::default(), "{label}");
    // alice's sid-1 at corp, sessions only.
    assert_eq!(
        end(Some(alice), Some("sid-1"), false).await,
        SsoLogout {
            sessions: 1,
            tokens: 0
        },
        "{label}"
    );
    // Then everything of alice's at corp opened by then, tokens too; again, nothing more.
    assert_eq!(
        end(Some(alice), None, true).await,
        SsoLogout {
            sessions: 2,
            tokens: 3
        },
        "{label}"
    );
    assert_eq!(
        end(Some(alice), None, true).await,
        SsoLogout::default(),
        "{label}"
    );
    assert_eq!(
        alive().await,
        [
            ("a-corp-1", false, false),
            ("a-corp-2", false, false),
            ("a-corp-late", true, true),
            ("a-corp-nosid", false, false),
            ("a-lab", true, true),
            ("a-pass", true, true),
            ("b-corp-1", true, true),
        ],
        "{label}"
    );
    // A sid alone (its account not linked here) ends that provider session's logins.
    assert_eq!(
        end(None, Some("sid-1"), true).await,
        SsoLogout {
            sessions: 1,
            tokens: 1
        },
        "{label}: bob's"
    );
    let mut tx = s.begin().await.unwrap();
    for (name, ..) in logins {
        tx.delete_session(&format!("bcl-{name}")).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Passkeys: one account per credential, listed oldest first, the counter and last use kept, removed
/// only by their member; ceremonies taken once, by kind, until they expire.
async fn passkeys(s: &Store, label: &str, alice: UserId, bob: UserId, now: i64) {
    use hearth_store::passkeys::{CeremonyKind, CeremonyRow, PasskeyRow};
    let key = |id: &str, user, at| PasskeyRow {
        credential_id: id.into(),
        user_id: user,
        name: format!("key {id}"),
        credential: r#"{"cred":"v1"}"#.into(),
        created_at: at,
        last_used_at: None,
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_passkey(&key("k2", alice, now + 1)).await.unwrap();
    tx.insert_passkey(&key("k1", alice, now)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(
        matches!(
            tx.insert_passkey(&key("k1", bob, now)).await,
            Err(StoreError::Conflict(_))
        ),
        "{label}: a credential logs one account in"
    );
    drop(tx);
    let ids = |v: Vec<PasskeyRow>| v.into_iter().map(|p| p.credential_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.passkeys_of(alice).await.unwrap()),
        ["k1", "k2"],
        "{label}"
    );
    // Sessions opened with a passkey, alone or after the passphrase, are listed with its name
    // and the second factor, and end when it is removed.
    let mut tx = s.begin().await.unwrap();
    for (hash, passkey, second) in [
        ("by-k1", Some("k1"), None),
        ("by-k2", Some("k2"), Some("passkey")),
        ("by-pass", None, None),
    ] {
        let session = SessionRow {
            user_id: alice,
            csrf_token: "csrf".into(),
            created_at: now,
            expires_at: now + 60_000,
            sso_provider: None,
            sso_sid: None,
            sso_id_token: None,
            passkey: passkey.map(str::to_owned),
            second_factor: second.map(str::to_owned),
        };
        tx.insert_session(hash, &session, None, None).await.unwrap();
    }
    tx.use_passkey("k1", r#"{"cred":"v2"}"#, now + 9)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let listed = |v: Vec<SessionListing>| {
        let mut v: Vec<_> = v
            .into_iter()
            .map(|l| (l.token_hash, l.passkey, l.second_factor))
            .collect();
        v.sort();
        v
    };
    let named = |hash: &str, name: Option<&str>, second: Option<&str>| {
        (
            hash.to_owned(),
            name.map(str::to_owned),
            second.map(str::to_owned),
        )
    };
    assert_eq!(
        listed(s.sessions_of(alice, now).await.unwrap()),
        [
            named("by-k1", Some("key k1"), None),
            named("by-k2", Some("key k2"), Some("passkey")),
            named("by-pass", None, None)
        ],
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.delete_passkey(bob, "k2").await.unwrap(), None, "{label}");
    assert_eq!(
        tx.delete_passkey(alice, "k2").await.unwrap(),
        Some(("key k2".to_owned(), 1)),
        "{label}"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        listed(s.sessions_of(alice, now).await.unwrap()),
        [
            named("by-k1", Some("key k1"), None),
            named("by-pass", None, None)
        ],
        "{label}: the removed passkey's session ended"
    );
    let k1 = s.passkey("k1").await.unwrap().unwrap();
    assert_eq!(
        (k1.credential.as_str(), k1.last_used_at, k1.user_id),
        (r#"{"cred":"v2"}"#, Some(now + 9), alice),
        "{label}"
    );
    assert!(s.passkey("k2").await.unwrap().is_none(), "{label}");
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        tx.rename_passkey(bob, "k1", "mine").await.unwrap(),
        None,
        "{label}"
    );
    assert_eq!(
        tx.rename_passkey(alice, "k1", "renamed")
            .await
            .unwrap()
            .as_deref(),
        Some("key k1"),
        "{label}"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        s.passkey("k1").await.unwrap().unwrap().name,
        "renamed",
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        tx.delete_passkeys_of(alice).await.unwrap(),
        (1, 1),
        "{label}"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        listed(s.sessions_of(alice, now).await.unwrap()),
        [named("by-pass", None, None)],
        "{label}: the passphrase's session stays"
    );
    assert!(s.passkeys_of(alice).await.unwrap().is_empty(), "{label}");

    let ceremony = |hash: &str, kind, expires_at| CeremonyRow {
        id_hash: hash.into(),
        kind,
        user_id: (kind != CeremonyKind::Login).then_some(alice),
        state: "{}".into(),
        created_at: now,
        expires_at,
    };
    s.insert_passkey_ceremony(&ceremony("c1", CeremonyKind::Register, now + 100))
        .await
        .unwrap();
    s.insert_passkey_ceremony(&ceremony("c2", CeremonyKind::Login, now + 100))
        .await
        .unwrap();
    s.insert_passkey_ceremony(&ceremony("c3", CeremonyKind::Login, now + 10))
        .await
        .unwrap();
    s.insert_passkey_ceremony(&ceremony("c4", CeremonyKind::SecondFactor, now + 100))
        .await
        .unwrap();
    assert_eq!(
        s.passkey_ceremonies_in_flight(now + 50).await.unwrap(),
        3,
        "{label}"
    );
    assert!(
        s.take_passkey_ceremony("c4", CeremonyKind::Login, now)
            .await
            .unwrap()
            .is_none(),
        "{label}: a second factor's challenge does not log in alone"
    );
    assert_eq!(
        s.take_passkey_ceremony("c4", CeremonyKind::SecondFactor, now)
            .await
            .unwrap()
            .and_then(|c| c.user_id),
        Some(alice),
        "{label}"
    );
    assert!(
        s.take_passkey_ceremony("c1", CeremonyKind::Login, now)
            .await
            .unwrap()
            .is_none(),
        "{label}: a registration does not finish a login"
    );
    assert_eq!(
        s.take_passkey_ceremony("c1", CeremonyKind::Register, now)
            .await
            .unwrap(),
        Some(ceremony("c1", CeremonyKind::Register, now + 100)),
        "{label}"
    );
    assert!(
        s.take_passkey_ceremony("c1", CeremonyKind::Register, now)
            .await
            .unwrap()
            .is_none(),
        "{label}: taken once"
    );
    assert!(
        s.take_passkey_ceremony("c3", CeremonyKind::Login, now + 10)
            .await
            .unwrap()
            .is_none(),
        "{label}: expired"
    );
    let c2 = s
        .take_passkey_ceremony("c2", CeremonyKind::Login, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c2.user_id, None, "{label}");
}

/// Maintenance tasks count the printer's hours of printing (its rollups in state `printing`,
/// nothing else) since they were last done, and report once per round.
async fn maintenance(s: &Store, label: &str, org: OrgId, printer: PrinterId, by: UserId, now: i64) {
    use hearth_proto::maintenance::MaintenanceKind::{Lubrication, Nozzle};
    use hearth_store::maintenance::{NewMaintenance, SetMaintenance};
    const H: i64 = 3_600_000;
    let hour = now - now % H;
    let mut tx = s.begin().await.unwrap();
    // Forty days ago it printed five hours; two days ago, two hours (and paused one).
    tx.add_rollup(printer, hour - 40 * 24 * H, "printing", 5 * H)
        .await
        .unwrap();
    tx.add_rollup(printer, hour - 2 * 24 * H, "printing", 2 * H)
        .await
        .unwrap();
    tx.add_rollup(printer, hour - 2 * 24 * H, "paused", H)
        .await
        .unwrap();
    let task = |kind, last_done| NewMaintenance {
        org,
        printer,
        kind,
        every_print_hours: Some(100),
        every_days: None,
        hold_when_due: true,
        last_done,
        by,
        now,
    };
    // Done thirty days ago: the two hours since count, not the five before.
    assert_eq!(
        tx.set_maintenance(&task(Lubrication, Some(now - 30 * 24 * H)))
            .await
            .unwrap(),
        SetMaintenance {
            created: true,
            release: false
        },
        "{label}"
    );
    // Counted from now: nothing yet.
    tx.set_maintenance(&task(Nozzle, None)).await.unwrap();
    tx.commit().await.unwrap();
    let lube = s.maintenance_task(printer, Lubrication).await.unwrap();
    assert_eq!(
        (lube.printed_ms, lube.done_at, lube.done_by),
        (2 * H, now - 30 * 24 * H, Some(by)),
        "{label}"
    );
    let nozzle = s.maintenance_task(printer, Nozzle).await.unwrap();
    assert_eq!(
        (nozzle.printed_ms, nozzle.done_at, nozzle.done_by),
        (0, now, None),
        "{label}"
    );

    // An hour of printing later, both count it.
    let mut tx = s.begin().await.unwrap();
    tx.add_rollup(printer, hour, "printing", H).await.unwrap();
    tx.commit().await.unwrap();
    let all = s.maintenance(org).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|m| (m.kind, m.printed_ms))
            .collect::<Vec<_>>(),
        vec![(Lubrication, 3 * H), (Nozzle, H)],
        "{label}"
    );

    // The fleet's time per state since a given hour, for the statistics.
    let mut time = s.fleet_time(org, hour - 3 * 24 * H).await.unwrap();
    time.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        time,
        vec![
            (printer, "paused".to_owned(), H),
            (printer, "printing".to_owned(), 3 * H)
        ],
        "{label}"
    );
    let ends = s.job_ends(org, 0).await.unwrap();
    assert!(
        ends.iter().any(|(p, st, n)| *p == Some(printer)
            && *st == hearth_proto::agent::JobState::Completed
            && *n >= 1),
        "{label}: {ends:?}"
    );

    // Reported once per round; the hold it placed is released when it is done.
    assert_eq!(
        s.maintenance_unreported().await.unwrap().len(),
        2,
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.claim_maintenance_report(printer, Nozzle, now)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !tx.claim_maintenance_report(printer, Nozzle, now)
            .await
            .unwrap(),
        "{label}: a second instance finds it claimed"
    );
    tx.maintenance_placed_hold(printer, Nozzle).await.unwrap();
    tx.maintenance_placed_hold(printer, Lubrication)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        s.maintenance_unreported()
            .await
            .unwrap()
            .iter()
            .map(|m| m.kind)
            .collect::<Vec<_>>(),
        vec![Lubrication],
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    assert!(
        !tx.maintenance_done(printer, Nozzle, now + 1, by)
            .await
            .unwrap(),
        "{label}: lubrication still holds the printer"
    );
    assert!(
        tx.maintenance_done(printer, Lubrication, now + 1, by)
            .await
            .unwrap(),
        "{label}: the last task holding it was done"
    );
    tx.commit().await.unwrap();
    let nozzle = s.maintenance_task(printer, Nozzle).await.unwrap();
    assert_eq!(
        (nozzle.printed_ms, nozzle.done_at, nozzle.notified_at),
        (0, now + 1, None),
        "{label}: counted again from when it was done"
    );

    // Removed; a task that does not exist is not found.
    let mut tx = s.begin().await.unwrap();
    tx.remove_maintenance(printer, Nozzle).await.unwrap();
    assert!(matches!(
        tx.remove_maintenance(printer, Nozzle).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        tx.maintenance_done(printer, Nozzle, now, by).await,
        Err(StoreError::NotFound(_))
    ));
    drop(tx);
    assert_eq!(
        s.maintenance(org).await.unwrap().len(),
        2,
        "{label}: the removal was rolled back"
    );
}

/// The fleet queue's order: priority first (higher first), then age; only a queued job moves.
async fn queue(s: &Store, label: &str, org: OrgId, printer: PrinterId, by: UserId, now: i64) {
    use hearth_proto::agent::JobState;
    use hearth_store::fleet::JobRow;
    let job = |n: i64, priority: i64| JobRow {
        label: None,
        approval: None,
        id: JobId::new(),
        org_id: org,
        printer_id: Some(printer),
        pool: None,
        blob_sha256: BlobHash::of(b"queued"),
        manifest: serde_json::json!({}),
        facts: Default::default(),
        state: JobState::Queued,
        message: None,
        submitted_by: by,
        created_at: now + n,
        updated_at: now + n,
        priority,
    };
    let (old, new, urgent, later) = (job(1, 0), job(2, 0), job(3, 5), job(4, -1));
    let mut tx = s.begin().await.unwrap();
    for j in [&later, &new, &urgent, &old] {
        tx.insert_job(j).await.unwrap();
    }
    tx.commit().await.unwrap();
    let order = |jobs: Vec<JobRow>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        order(s.queued_jobs(org).await.unwrap()),
        [urgent.id, old.id, new.id, later.id],
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    assert!(tx.set_job_priority(new.id, 9, now + 10).await.unwrap());
    assert!(
        tx.update_job(urgent.id, JobState::Assigned, None, None, now + 10)
            .await
            .unwrap()
    );
    assert!(
        !tx.set_job_priority(urgent.id, 0, now + 11).await.unwrap(),
        "{label}: a job sent to a printer keeps its place"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        order(s.queued_jobs(org).await.unwrap()),
        [new.id, old.id, later.id],
        "{label}"
    );
    assert_eq!(s.job(new.id).await.unwrap().priority, 9, "{label}");
    // Two dispatches (two instances) assign the same job: only the first wins.
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.assign_job(new.id, printer, now + 20).await.unwrap(),
        "{label}"
    );
    assert!(
        !tx.assign_job(new.id, printer, now + 21).await.unwrap(),
        "{label}"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        s.job(new.id).await.unwrap().state,
        JobState::Assigned,
        "{label}"
    );
    // A job waiting for approval: stored as pending, decided once (two admins, two instances).
    use hearth_proto::api::ApprovalState;
    use hearth_store::fleet::ApprovalRow;
    let waiting = JobRow {
        approval: Some(ApprovalRow {
            state: ApprovalState::Pending,
            decided: None,
        }),
        ..job(30, 0)
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_job(&waiting).await.unwrap();
    tx.commit().await.unwrap();
    let read = s.job(waiting.id).await.unwrap();
    assert!(read.awaits_approval(), "{label}");
    assert_eq!(read.approval, waiting.approval, "{label}");
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.decide_approval(waiting.id, ApprovalState::Approved, by, now + 40)
            .await
            .unwrap(),
        "{label}"
    );
    assert!(
        !tx.decide_approval(waiting.id, ApprovalState::Rejected, by, now + 41)
            .await
            .unwrap(),
        "{label}: decided once"
    );
    tx.commit().await.unwrap();
    let read = s.job(waiting.id).await.unwrap();
    assert_eq!(
        read.approval,
        Some(ApprovalRow {
            state: ApprovalState::Approved,
            decided: Some((by, now + 40)),
        }),
        "{label}"
    );
    assert!(!read.awaits_approval(), "{label}");
}

/// A job's timelapse: frames numbered as they arrive, thinned evenly at the limit, refused over
/// the quota (and counted), counted in the usage and by the blob references, listed, expired
/// after the job ended, deleted.
async fn timelapses(s: &Store, label: &str, org: OrgId, printer: PrinterId, by: UserId, now: i64) {
    use hearth_proto::agent::JobState;
    use hearth_store::fleet::JobRow;
    use hearth_store::timelapse::{Added, FrameRow};
    let job = JobRow {
        label: None,
        approval: None,
        id: JobId::new(),
        org_id: org,
        printer_id: Some(printer),
        pool: None,
        blob_sha256: BlobHash::of(b"timelapse job"),
        manifest: serde_json::json!({}),
        facts: Default::default(),
        state: JobState::Printing,
        message: None,
        submitted_by: by,
        created_at: now,
        updated_at: now,
        priority: 0,
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_job(&job).await.unwrap();
    tx.commit().await.unwrap();
    let used_before = s.usage(org).await.unwrap().used;
    let frame = |n: i64| FrameRow {
        job_id: job.id,
        seq: 0,
        org_id: org,
        sha256: BlobHash::of(format!("frame {n}").as_bytes()),
        size: 100,
        manifest: format!("{{\"n\":{n}}}"),
        received_at: now + n,
    };
    let mut outcomes = Vec::new();
    for n in 0..6 {
        let mut tx = s.begin().await.unwrap();
        outcomes.push(
            tx.add_timelapse_frame(&frame(n), i64::MAX, 3)
                .await
                .unwrap(),
        );
        tx.commit().await.unwrap();
    }
    // 0, 1, 2 kept; 3 would be a fourth: 1 goes (every other one), and 3 falls between, as
    // 5 does; 4 is kept.
    let added = |kept, dropped: &[i64]| Added {
        kept,
        over_quota: false,
        dropped: dropped.iter().map(|n| frame(*n).sha256).collect(),
    };
    assert_eq!(
        outcomes,
        [
            added(Some(0), &[]),
            added(Some(1), &[]),
            added(Some(2), &[]),
            added(None, &[1]),
            added(Some(4), &[]),
            added(None, &[]),
        ],
        "{label}"
    );
    let frames = s.timelapse_frames(job.id).await.unwrap();
    let seqs: Vec<i64> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [0, 2, 4], "{label}");
    assert_eq!(frames[1].manifest, "{\"n\":2}", "{label}");
    assert_eq!(
        s.timelapse_frame(job.id, 4).await.unwrap(),
        frames[2],
        "{label}"
    );
    assert!(matches!(
        s.timelapse_frame(job.id, 1).await,
        Err(StoreError::NotFound(_))
    ));
    let t = s.timelapse(job.id).await.unwrap();
    assert_eq!(
        (
            t.arrived, t.stride, t.frames, t.bytes, t.first_at, t.last_at
        ),
        (6, 2, 3, 300, Some(now), Some(now + 4)),
        "{label}"
    );
    assert_eq!(t.ended_at, None, "{label}: its job still prints");
    assert_eq!(s.timelapses(org).await.unwrap(), vec![t.clone()], "{label}");
    assert_eq!(
        s.usage(org).await.unwrap().used,
        used_before + 300,
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.blob_referenced(&frame(2).sha256).await.unwrap(),
        "{label}"
    );
    assert!(
        !tx.blob_referenced(&frame(1).sha256).await.unwrap(),
        "{label}"
    );
    // Over the quota: not kept, counted.
    let quota = used_before + 300;
    assert_eq!(
        tx.add_timelapse_frame(&frame(6), quota, 100).await.unwrap(),
        Added {
            kept: None,
            over_quota: true,
            dropped: vec![]
        },
        "{label}"
    );
    tx.commit().await.unwrap();
    assert_eq!(s.timelapse(job.id).await.unwrap().over_quota, 1, "{label}");
    assert!(
        s.all_blob_hashes()
            .await
            .unwrap()
            .contains(&(frame(4).sha256, 100)),
        "{label}: backups copy frames"
    );

    // Expiry lists it only once the job has ended, by when it ended.
    assert_eq!(
        s.timelapses_ended_before(now + 1000).await.unwrap(),
        vec![],
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    tx.update_job(job.id, JobState::Completed, None, None, now + 10)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        s.timelapses_ended_before(now + 10).await.unwrap(),
        vec![],
        "{label}"
    );
    assert_eq!(
        s.timelapses_ended_before(now + 11).await.unwrap(),
        vec![(org, job.id)],
        "{label}"
    );
    assert_eq!(
        s.timelapse(job.id).await.unwrap().ended_at,
        Some(now + 10),
        "{label}: its expiry counts from when the job ended"
    );
    let mut tx = s.begin().await.unwrap();
    let mut gone = tx.delete_timelapse(job.id).await.unwrap();
    gone.sort();
    let mut expected: Vec<_> = [0, 2, 4].iter().map(|n| (frame(*n).sha256, 100)).collect();
    expected.sort();
    assert_eq!(gone, expected, "{label}");
    assert!(matches!(
        tx.delete_timelapse(job.id).await,
        Err(StoreError::NotFound(_))
    ));
    tx.commit().await.unwrap();
    assert_eq!(s.usage(org).await.unwrap().used, used_before, "{label}");
    assert!(s.timelapses(org).await.unwrap().is_empty(), "{label}");
}

/// Materials, spools on printers (one each way), what jobs used (once per job, never below 0) and
/// the statistics per material; archiving or reconfiguring the printer takes a spool off it.
async fn inventory(
    s: &Store,
    label: &str,
    org: OrgId,
    printer: PrinterId,
    configured: &PrinterInfo,
    now: i64,
) {
    use hearth_proto::agent::JobState;
    use hearth_store::fleet::JobRow;
    use hearth_store::inventory::{MaterialRow, SpoolRow, UseRow};
    let petg = MaterialRow {
        id: MaterialId::new(),
        org_id: org,
        name: "Galaxy Black".into(),
        brand: Some("Prusament".into()),
        material: "PETG".into(),
        color: Some("#1a1a1a".into()),
        density: 1.27,
        diameter: 1.75,
        price_per_kg: Some(30.0),
        created_at: now,
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_material(&petg).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    let twice = tx
        .insert_material(&MaterialRow {
            id: MaterialId::new(),
            ..petg.clone()
        })
        .await;
    assert!(
        matches!(twice, Err(StoreError::Conflict(_))),
        "{label}: {twice:?}"
    );
    drop(tx);
    assert_eq!(
        s.materials(org).await.unwrap(),
        vec![petg.clone()],
        "{label}"
    );

    let spool = |grams: f32, at: i64| SpoolRow {
        id: SpoolId::new(),
        org_id: org,
        material: petg.clone(),
        initial_grams: 1000.0,
        remaining_grams: grams,
        empty_spool_grams: Some(250.0),
        low_grams: 100.0,
        location: Some("shelf".into()),
        printer_id: None,
        slot: None,
        rfid: None,
        archived: false,
        created_at: at,
        last_used_at: None,
    };
    let (a, b) = (spool(1000.0, now), spool(50.0, now + 1));
    let mut tx = s.begin().await.unwrap();
    tx.insert_spool(&a).await.unwrap();
    tx.insert_spool(&b).await.unwrap();
    tx.load_spool(a.id, printer).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        s.spool(a.id).await.unwrap().printer_id,
        Some(printer),
        "{label}"
    );
    let p = s.printer(printer).await.unwrap();
    assert_eq!(
        p.spool.map(|x| (x.id, x.remaining_grams)),
        Some((a.id, 1000.0)),
        "{label}"
    );
    // Another spool on the same printer takes the first one's place.
    let mut tx = s.begin().await.unwrap();
    tx.load_spool(b.id, printer).await.unwrap();
    assert_eq!(
        tx.spool_on(printer).await.unwrap().map(|x| x.id),
        Some(b.id)
    );
    tx.commit().await.unwrap();
    assert_eq!(s.spool(a.id).await.unwrap().printer_id, None, "{label}");
    let listed: Vec<SpoolId> = s
        .spools(org, false)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, [b.id, a.id], "{label}: newest first");

    // A job's use is recorded once and never takes a spool below 0.
    let job = JobRow {
        label: None,
        approval: None,
        id: JobId::new(),
        org_id: org,
        printer_id: Some(printer),
        pool: None,
        blob_sha256: BlobHash::of(b"job"),
        manifest: serde_json::json!({}),
        facts: Default::default(),
        state: JobState::Completed,
        message: None,
        submitted_by: s.list_users().await.unwrap()[0].id,
        created_at: now,
        updated_at: now,
        priority: 0,
    };
    let used = UseRow {
        job_id: job.id,
        part: 0,
        org_id: org,
        spool_id: Some(b.id),
        printer_id: Some(printer),
        slot: None,
        material: Some("PETG".into()),
        color: Some("#1a1a1a".into()),
        grams: 80.0,
        cost: Some(2.4),
        state: JobState::Completed,
        at: now + 5,
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_job(&job).await.unwrap();
    assert!(tx.record_uses(std::slice::from_ref(&used)).await.unwrap());
    assert!(
        !tx.record_uses(std::slice::from_ref(&used)).await.unwrap(),
        "{label}: once per job"
    );
    tx.commit().await.unwrap();
    let after = s.spool(b.id).await.unwrap();
    assert_eq!(
        (after.remaining_grams, after.last_used_at),
        (0.0, Some(now + 5)),
        "{label}"
    );
    let uses = s.spool_uses(b.id, 10).await.unwrap();
    assert_eq!(uses, vec![used.clone()], "{label}");
    // A use without a price makes the row's cost unknown.
    let job2 = JobRow {
        label: None,
        approval: None,
        id: JobId::new(),
        ..job.clone()
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_job(&job2).await.unwrap();
    tx.record_uses(&[UseRow {
        job_id: job2.id,
        spool_id: None,
        cost: None,
        grams: 20.0,
        ..used.clone()
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let usage = s.material_usage(org, now).await.unwrap();
    assert_eq!(usage.len(), 1, "{label}");
    assert_eq!(
        (usage[0].grams, usage[0].jobs, usage[0].cost),
        (100.0, 2, None),
        "{label}"
    );
    assert!(
        s.material_usage(org, now + 6).await.unwrap().is_empty(),
        "{label}: the period"
    );

    // Archived: off its printer, out of the default list; the material is still needed.
    let mut tx = s.begin().await.unwrap();
    tx.update_spool(&SpoolRow {
        archived: true,
        ..after.clone()
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.spool(b.id).await.unwrap().printer_id, None, "{label}");
    assert_eq!(s.spools(org, false).await.unwrap().len(), 1, "{label}");
    assert_eq!(s.spools(org, true).await.unwrap().len(), 2, "{label}");
    let mut tx = s.begin().await.unwrap();
    assert!(
        matches!(
            tx.delete_material(petg.id).await,
            Err(StoreError::Conflict(_))
        ),
        "{label}"
    );
    drop(tx);

    // Slots (AMS trays): a spool is in one place at most, and a job's filaments are taken from
    // the spools of their slots, once per job.
    let (c, d) = (spool(500.0, now + 2), spool(700.0, now + 3));
    let mut tx = s.begin().await.unwrap();
    tx.insert_spool(&c).await.unwrap();
    tx.insert_spool(&d).await.unwrap();
    tx.load_spool(c.id, printer).await.unwrap();
    tx.load_spool_slot(c.id, printer, "A1").await.unwrap();
    tx.load_spool_slot(d.id, printer, "A2").await.unwrap();
    tx.commit().await.unwrap();
    let in_a1 = s.spool(c.id).await.unwrap();
    assert_eq!(
        (in_a1.printer_id, in_a1.slot.as_deref()),
        (Some(printer), Some("A1")),
        "{label}: from the holder into the slot"
    );
    let p = s.printer(printer).await.unwrap();
    assert!(p.spool.is_none(), "{label}: the holder is empty now");
    assert_eq!(
        p.slot_spools
            .iter()
            .map(|x| (x.slot.as_str(), x.id, x.remaining_grams))
            .collect::<Vec<_>>(),
        [("A1", c.id, 500.0), ("A2", d.id, 700.0)],
        "{label}"
    );
    assert_eq!(s.printers(org).await.unwrap()[0].slot_spools, p.slot_spools);
    let job3 = JobRow {
        id: JobId::new(),
        ..job.clone()
    };
    let part = |part: i64, spool: SpoolId, slot: &str, grams: f32| UseRow {
        job_id: job3.id,
        part,
        spool_id: Some(spool),
        slot: Some(slot.into()),
        grams,
        ..used.clone()
    };
    let parts = [part(0, c.id, "A1", 30.0), part(1, d.id, "A2", 12.5)];
    let mut tx = s.begin().await.unwrap();
    tx.insert_job(&job3).await.unwrap();
    assert_eq!(
        tx.spool_in_slot(printer, "A2").await.unwrap().map(|x| x.id),
        Some(d.id)
    );
    assert!(tx.record_uses(&parts).await.unwrap());
    assert!(
        !tx.record_uses(&parts).await.unwrap(),
        "{label}: once per job"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        s.spool(c.id).await.unwrap().remaining_grams,
        470.0,
        "{label}"
    );
    assert_eq!(
        s.spool(d.id).await.unwrap().remaining_grams,
        687.5,
        "{label}"
    );
    assert_eq!(s.spool_uses(d.id, 10).await.unwrap(), [parts[1].clone()]);
    let usage = s.material_usage(org, now).await.unwrap();
    assert_eq!(
        (usage[0].grams, usage[0].jobs),
        (142.5, 3),
        "{label}: a job of two filaments of one material counts once"
    );
    // Another spool into a taken slot takes the one there out; a spool moved to another slot
    // leaves its old one; archiving takes a spool out of its slot.
    let mut tx = s.begin().await.unwrap();
    tx.load_spool_slot(d.id, printer, "A1").await.unwrap();
    tx.commit().await.unwrap();
    let c_now = s.spool(c.id).await.unwrap();
    assert_eq!((c_now.printer_id, c_now.slot), (None, None), "{label}");
    let p = s.printer(printer).await.unwrap();
    assert_eq!(
        p.slot_spools
            .iter()
            .map(|x| (x.slot.as_str(), x.id))
            .collect::<Vec<_>>(),
        [("A1", d.id)],
        "{label}"
    );
    let mut tx = s.begin().await.unwrap();
    assert!(!tx.unload_slot(printer, "B4").await.unwrap());
    tx.update_spool(&SpoolRow {
        archived: true,
        ..s.spool(d.id).await.unwrap()
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(
        s.printer(printer).await.unwrap().slot_spools.is_empty(),
        "{label}"
    );
    assert_eq!(s.spool(d.id).await.unwrap().slot, None, "{label}");
    let mut tx = s.begin().await.unwrap();
    assert!(
        matches!(
            tx.load_spool_slot(d.id, printer, "A3").await,
            Err(StoreError::NotFound(_))
        ),
        "{label}: an archived spool goes in no slot"
    );
    drop(tx);

    // A spool's RFID tag is found again, and names one spool of the organisation.
    let tagged = SpoolRow {
        id: SpoolId::new(),
        rfid: Some("0F1E2D3C4B5A69788796A5B4C3D2E1F0".into()),
        ..spool(800.0, now + 4)
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_spool(&tagged).await.unwrap();
    let found = tx
        .spool_by_rfid(org, "0F1E2D3C4B5A69788796A5B4C3D2E1F0")
        .await
        .unwrap()
        .map(|x| (x.id, x.rfid));
    assert_eq!(found, Some((tagged.id, tagged.rfid.clone())), "{label}");
    assert!(
        tx.spool_by_rfid(org, "00").await.unwrap().is_none(),
        "{label}"
    );
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    let again = tx
        .insert_spool(&SpoolRow {
            id: SpoolId::new(),
            ..tagged.clone()
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "{label}: {again:?}"
    );
    drop(tx);
    assert_eq!(
        tx_material_named(s, org, &petg.name).await,
        Some(petg.id),
        "{label}"
    );

    // A number that may be absent (a price, an empty spool's weight, a use's cost) is written
    // absent and then present by the same statement on one connection: PostgreSQL must not keep
    // the type the absent one was sent with (sqlx 0.8's Any driver sends an absent f64 as a
    // float4, and a prepared statement would then refuse the float8 of the next).
    let mut tx = s.begin().await.unwrap();
    for (i, price) in [None, Some(21.5), None, Some(19.0)].into_iter().enumerate() {
        let m = MaterialRow {
            id: MaterialId::new(),
            name: format!("priced {i}"),
            price_per_kg: price,
            ..petg.clone()
        };
        tx.insert_material(&m).await.unwrap();
        tx.update_material(&MaterialRow {
            price_per_kg: price.map(|p| p + 1.0),
            ..m.clone()
        })
        .await
        .unwrap();
        let weighed = SpoolRow {
            id: SpoolId::new(),
            empty_spool_grams: price,
            material: m,
            ..spool(500.0, now + 5)
        };
        tx.insert_spool(&weighed).await.unwrap();
        tx.update_spool(&weighed).await.unwrap();
        let job = JobRow {
            id: JobId::new(),
            ..job.clone()
        };
        tx.insert_job(&job).await.unwrap();
        tx.record_uses(&[UseRow {
            job_id: job.id,
            cost: price.map(f64::from),
            spool_id: Some(weighed.id),
            ..used.clone()
        }])
        .await
        .unwrap();
    }
    drop(tx);

    // A printer reconfigured on purpose loses the spool a member put on it.
    let mut tx = s.begin().await.unwrap();
    tx.load_spool(a.id, printer).await.unwrap();
    let other = PrinterInfo {
        material: Some("ASA".into()),
        ..configured.clone()
    };
    tx.upsert_printer(org, p.agent_id, &other, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.spool(a.id).await.unwrap().printer_id, None, "{label}");
    assert!(s.printer(printer).await.unwrap().spool.is_none(), "{label}");
}

async fn tx_material_named(s: &Store, org: OrgId, name: &str) -> Option<MaterialId> {
    let mut tx = s.begin().await.unwrap();
    tx.material_named(org, name).await.unwrap().map(|m| m.id)
}

/// Channels, deliveries queued per following channel, leases that keep two senders apart, retries,
/// and the pruning of finished deliveries.
async fn notifications(s: &Store, label: &str, org: OrgId, by: UserId, now: i64) {
    use hearth_proto::ids::ChannelId;
    use hearth_proto::notify::{ChannelKind, DeliveryState, NotifyEvent};
    use hearth_store::notify::{ChannelRow, KEEP_FINISHED, Outcome};
    let channel = |name: &str, events: Vec<NotifyEvent>| ChannelRow {
        id: ChannelId::new(),
        org_id: org,
        name: name.into(),
        kind: ChannelKind::Webhook,
        url: "https://example.org/hook/secret-path".into(),
        secret: "whsec_c2VjcmV0".into(),
        events,
        pools: vec![],
        quiet: None,
        created_by: by,
        created_at: now,
    };
    let mut failures = channel("failures", vec![NotifyEvent::JobFailed]);
    failures.pools = vec!["pla".into()];
    let mut all = channel("all", NotifyEvent::FOLLOWABLE.to_vec());
    all.quiet = Some(hearth_proto::notify::QuietHours {
        from: "22:00".into(),
        to: "07:00".into(),
        time_zone: "Europe/Berlin".into(),
    });
    let mut tx = s.begin().await.unwrap();
    tx.insert_channel(&failures).await.unwrap();
    tx.insert_channel(&all).await.unwrap();
    assert!(
        matches!(
            tx.insert_channel(&channel("all", vec![NotifyEvent::JobFailed]))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "{label}: names are unique in an organisation"
    );
    drop(tx);
    let mut tx = s.begin().await.unwrap();
    tx.insert_channel(&failures).await.unwrap();
    tx.insert_channel(&all).await.unwrap();
    assert_eq!(
        tx.enqueue_notification(
            org,
            NotifyEvent::JobFailed,
            "{\"n\":1}",
            &["pla".to_owned()],
            now,
            |_| now
        )
        .await
        .unwrap(),
        2,
        "{label}"
    );
    assert_eq!(
        tx.enqueue_notification(
            org,
            NotifyEvent::PrinterOnline,
            "{\"n\":2}",
            &[],
            now,
            |_| now
        )
        .await
        .unwrap(),
        1,
        "{label}: only the channel following it"
    );
    tx.commit().await.unwrap();
    let listed = s.channels(org).await.unwrap();
    assert_eq!(listed, vec![all.clone(), failures.clone()], "{label}");
    let shown = format!("{:?}", listed[0]);
    assert!(
        !shown.contains("secret-path") && !shown.contains("c2VjcmV0"),
        "{label}: Debug redacts the URL and the secret: {shown}"
    );

    // One sender takes the due deliveries; another finds none while the lease holds.
    let claimed = s.claim_due_deliveries(now, 30_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 3, "{label}");
    assert!(
        s.claim_due_deliveries(now, 30_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "{label}"
    );
    let on_all: Vec<_> = claimed.iter().filter(|d| d.channel_id == all.id).collect();
    let retried = on_all[0].id;
    let mut tx = s.begin().await.unwrap();
    tx.record_delivery(
        retried,
        &Outcome::Retry {
            status: Some(503),
            error: "busy".into(),
            at: now + 10_000,
        },
        now,
    )
    .await
    .unwrap();
    for d in claimed.iter().filter(|d| d.id != retried) {
        tx.record_delivery(d.id, &Outcome::Delivered { status: 204 }, now)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(
        s.next_delivery_due().await.unwrap(),
        Some(now + 10_000),
        "{label}"
    );
    assert!(
        s.claim_due_deliveries(now + 9_999, 30_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = s
        .claim_due_deliveries(now + 10_000, 30_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "{label}");
    assert_eq!((again[0].id, again[0].attempts), (retried, 1), "{label}");
    // A stopping sender frees what it took at once.
    s.release_deliveries(&[retried]).await.unwrap();
    let again = s
        .claim_due_deliveries(now + 10_000, 30_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "{label}");
    let mut tx = s.begin().await.unwrap();
    tx.record_delivery(
        retried,
        &Outcome::Failed {
            status: Some(410),
            error: "gone".into(),
        },
        now + 10_000,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let d = s.delivery(retried).await.unwrap();
    assert_eq!(
        (d.state, d.attempts, d.response_status),
        (DeliveryState::Failed, 2, Some(410)),
        "{label}"
    );
    let (pending, last) = s.channel_status(all.id).await.unwrap();
    assert_eq!((pending, last.map(|d| d.id)), (0, Some(retried)), "{label}");

    // Finished deliveries are pruned to the newest KEEP_FINISHED per channel.
    let mut tx = s.begin().await.unwrap();
    for i in 0..KEEP_FINISHED + 5 {
        tx.enqueue_notification(
            org,
            NotifyEvent::JobFailed,
            "{}",
            &["pla".to_owned()],
            now + 20_000 + i,
            |_| now,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    loop {
        let batch = s
            .claim_due_deliveries(now + 1_000_000, 30_000, 50)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        let mut tx = s.begin().await.unwrap();
        for d in batch {
            tx.record_delivery(d.id, &Outcome::Delivered { status: 200 }, now + 1_000_000)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let kept = s.deliveries(failures.id, 1000).await.unwrap();
    assert_eq!(kept.len() as i64, KEEP_FINISHED, "{label}");

    // A channel limited to some pools hears only of printers and jobs of those pools.
    let mut tx = s.begin().await.unwrap();
    let pla = ["pla".to_owned(), "big".to_owned()];
    assert_eq!(
        tx.enqueue_notification(org, NotifyEvent::JobFailed, "{}", &pla, now, |_| now)
            .await
            .unwrap(),
        2,
        "{label}"
    );
    let petg = ["petg".to_owned()];
    assert_eq!(
        tx.enqueue_notification(org, NotifyEvent::JobFailed, "{}", &petg, now, |_| now)
            .await
            .unwrap(),
        1,
        "{label}: only the channel for every printer"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        s.channel(failures.id).await.unwrap().pools,
        ["pla"],
        "{label}"
    );

    // Deleting a channel takes its deliveries with it.
    let mut tx = s.begin().await.unwrap();
    tx.delete_channel(org, failures.id).await.unwrap();
    assert!(matches!(
        tx.delete_channel(org, failures.id).await,
        Err(StoreError::NotFound(_))
    ));
    tx.commit().await.unwrap();
    assert!(
        s.deliveries(failures.id, 10).await.unwrap().is_empty(),
        "{label}"
    );
    assert!(matches!(
        s.channel(failures.id).await,
        Err(StoreError::NotFound(_))
    ));
}
