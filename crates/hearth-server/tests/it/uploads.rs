//! Sealed blobs: resumable uploads, verification, quotas, downloads, deletion, audit tampering.

use crate::support::*;
use futures::StreamExt;
use hearth_proto::ids::BlobHash;

#[tokio::test]
async fn an_interrupted_upload_resumes_and_the_blob_appears_only_when_complete() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let path = make_file(server.dir.path(), "sealed.age", 3 << 20);
    let data = std::fs::read(&path).unwrap();
    let hash = BlobHash::of(&data);
    let url = owner
        .create_upload(org, data.len() as u64, &hash)
        .await
        .unwrap();

    // 1 MiB is sent, then the connection stalls and is dropped.
    let first = bytes::Bytes::copy_from_slice(&data[..1 << 20]);
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(first)])
        .chain(futures::stream::pending());
    let (patcher, patch_url) = (owner.clone(), url.clone());
    let inflight = tokio::spawn(async move {
        let _ = patcher
            .patch_upload(&patch_url, 0, reqwest::Body::wrap_stream(stream))
            .await;
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while owner.upload_offset(&url).await.unwrap() < 512 << 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never received the first bytes"
        );
    }
    inflight.abort();
    let offset = owner.upload_offset(&url).await.unwrap();
    assert!(
        offset > 0 && offset <= 1 << 20,
        "what arrived before the break is kept: {offset}"
    );
    assert!(
        owner.blobs(org).await.unwrap().is_empty(),
        "nothing visible before the last byte"
    );

    // A PATCH at the wrong offset is refused, not spliced in.
    let wrong = owner
        .patch_upload(&url, 0, reqwest::Body::from(vec![0u8; 10]))
        .await
        .unwrap_err();
    assert_eq!(wrong.status(), Some(409));

    owner
        .resume_upload(&url, &path, data.len() as u64)
        .await
        .unwrap();
    let blobs = owner.blobs(org).await.unwrap();
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0].sha256, hash);

    // Downloads verify their hash and resume with Range.
    let dest = server.dir.path().join("download");
    std::fs::write(&dest, &data[..12345]).unwrap();
    assert_eq!(
        owner.download_blob(org, &hash, &dest).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let actions: Vec<String> = owner
        .audit_page(Some(org), 0, 100)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"blob.upload".into()) && actions.contains(&"blob.download".into()),
        "{actions:?}"
    );

    owner.delete_blob(org, &hash).await.unwrap();
    assert!(owner.blobs(org).await.unwrap().is_empty());
    assert!(
        !server
            .data_dir()
            .join("blobs/sha256")
            .join(&hash.as_str()[..2])
            .join(hash.as_str())
            .exists()
    );
    assert_eq!(
        owner
            .download_blob(org, &hash, &dest)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn bytes_that_do_not_match_the_announced_hash_never_become_a_blob() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    let claimed = BlobHash::of(b"what the client promised");
    let url = owner.create_upload(org, 5, &claimed).await.unwrap();
    let e = owner
        .patch_upload(&url, 0, reqwest::Body::from(&b"other"[..]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("hash_mismatch"), "{e}");
    assert!(owner.blobs(org).await.unwrap().is_empty());
    assert_eq!(
        owner.usage(org).await.unwrap().reserved_bytes,
        0,
        "the reservation is released"
    );
}

#[tokio::test]
async fn quotas_refuse_uploads_with_a_clear_error() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    owner.set_quota(org, 150_000).await.unwrap();
    let a = make_file(server.dir.path(), "a", 100_000);
    owner.upload_file(org, &a).await.unwrap();
    let b = make_file(server.dir.path(), "b", 60_000);
    let e = owner.upload_file(org, &b).await.unwrap_err();
    assert_eq!(e.code(), Some("quota_exceeded"));
    assert_eq!(e.status(), Some(413));
    assert!(e.to_string().contains("150000"), "{e}");
    let usage = owner.usage(org).await.unwrap();
    assert_eq!(
        (usage.used_bytes, usage.reserved_bytes, usage.quota_bytes),
        (100_000, 0, 150_000)
    );
}

#[tokio::test]
async fn editing_or_deleting_audit_rows_in_the_database_is_reported() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    for name in ["a", "b", "c"] {
        let f = make_file(server.dir.path(), name, 100 + name.len());
        owner.upload_file(org, &f).await.unwrap();
    }
    let head = owner.verify_audit(Some(org), None).await.unwrap();
    assert!(owner.audit_verify_on_server(Some(org)).await.unwrap().ok);
    assert_eq!(head.seq, 4);

    sqlx::any::install_default_drivers();
    let url = hearth_store::sqlite_url(&server.data_dir().join("hearth.db"));
    let db = sqlx::AnyPool::connect(&url).await.unwrap();
    let scope = org.to_string();
    sqlx::query("UPDATE audit_log SET actor = 'user:someone-else' WHERE scope = $1 AND seq = 3")
        .bind(&scope)
        .execute(&db)
        .await
        .unwrap();
    let v = owner.audit_verify_on_server(Some(org)).await.unwrap();
    assert!(!v.ok);
    assert!(v.message.contains("entry 3 was altered"), "{}", v.message);
    assert!(
        owner
            .verify_audit(Some(org), None)
            .await
            .unwrap_err()
            .to_string()
            .contains("entry 3")
    );

    sqlx::query("DELETE FROM audit_log WHERE scope = $1 AND seq = 3")
        .bind(&scope)
        .execute(&db)
        .await
        .unwrap();
    let v = owner.audit_verify_on_server(Some(org)).await.unwrap();
    assert!(v.message.contains("entry 3 is missing"), "{}", v.message);

    // Deleting the newest entry and the head record together is caught by a client that pinned the head.
    sqlx::query("DELETE FROM audit_log WHERE scope = $1 AND seq >= 2")
        .bind(&scope)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_heads SET seq = 1, hash = (SELECT hash FROM audit_log WHERE scope = $1 AND seq = 1) WHERE scope = $1")
        .bind(&scope)
        .execute(&db)
        .await
        .unwrap();
    assert!(
        owner.audit_verify_on_server(Some(org)).await.unwrap().ok,
        "a consistent truncation fools the server"
    );
    let e = owner
        .verify_audit(Some(org), Some(&head))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("missing"),
        "but not a client that pinned the head: {e}"
    );
}
