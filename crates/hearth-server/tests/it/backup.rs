//! A backup of a running server restores into a server whose audit chains verify and whose every blob
//! downloads with the right hash.

use crate::support::*;
use hearth_proto::Role;

#[tokio::test]
async fn backup_of_a_running_server_restores_and_verifies() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let _op = member(&server, &owner, org, "otto", Role::Operator).await;
    let mut hashes = Vec::new();
    for (i, len) in [10usize, 70_000, 1 << 20].into_iter().enumerate() {
        let f = make_file(server.dir.path(), &format!("f{i}"), len);
        hashes.push((
            owner.upload_file(org, &f).await.unwrap(),
            std::fs::read(&f).unwrap(),
        ));
    }
    // The owner's second factor: its secret is sealed with the key file, which the backup keeps.
    let mfa = owner.begin_mfa().await.unwrap();
    let code = crate::oathtool::code(&mfa.secret, 0);
    if let Some(code) = &code {
        owner.confirm_mfa(code).await.unwrap();
    }
    let head = owner.verify_audit(Some(org), None).await.unwrap();

    // Back up while the server keeps running.
    let dest = server.dir.path().join("backup");
    let settings = test_settings(&server.data_dir());
    let summary = hearth_server::backup::backup(&settings, &dest)
        .await
        .unwrap();
    assert_eq!(summary.blobs, 3);
    assert!(summary.secret_key && dest.join("secret.key").exists());
    assert!(
        hearth_server::backup::backup(&settings, &dest)
            .await
            .is_err(),
        "never overwrites a backup"
    );

    let restored_root = tempfile::tempdir().unwrap();
    let restored_data = restored_root.path().join("data");
    let report = hearth_server::backup::restore(&dest, &restored_data)
        .await
        .unwrap();
    assert_eq!(report.blobs, 3);
    assert!(report.audit_entries >= head.seq);

    let restored = TestServer::start_in(restored_root, test_settings(&restored_data)).await;
    assert!(
        restored.setup_token.is_none(),
        "the restored server has its accounts"
    );
    let mut c = restored.client();
    let next = code.and_then(|_| crate::oathtool::code(&mfa.secret, 1));
    c.login_with_code("owner", OWNER_SECRET, next.as_deref())
        .await
        .unwrap();
    assert_eq!(
        c.verify_audit(Some(org), Some(&head)).await.unwrap().seq,
        head.seq
    );
    c.verify_audit(None, None).await.unwrap();
    for (i, (hash, bytes)) in hashes.iter().enumerate() {
        let out = restored.dir.path().join(format!("out{i}"));
        c.download_blob(org, hash, &out).await.unwrap();
        assert_eq!(&std::fs::read(&out).unwrap(), bytes);
    }
}
