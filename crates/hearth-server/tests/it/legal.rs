//! Legal requests: an instance admin records one; it lands in the instance's audit chain and the
//! organisation's, in the same words, which the organisation's admins list, verify and are told of.

use crate::support::*;
use hearth_proto::Role;
use hearth_proto::legal::NewLegalRequest;
use hearth_proto::notify::NotifyEvent;

fn request(org: Option<hearth_proto::ids::OrgId>) -> NewLegalRequest {
    NewLegalRequest {
        org,
        authority: "Landgericht Berlin".into(),
        reference: Some("27 O 123/26".into()),
        received_on: "2026-12-01".into(),
        requested: "every file of the organisation and who printed it".into(),
        disclosed: "account logins and job times; the files are sealed and were not opened".into(),
    }
}

#[tokio::test]
async fn a_legal_request_is_recorded_in_the_instance_and_organisation_chains() {
    let server = crate::notify::server().await;
    let (owner, org) = server.bootstrap().await;
    let mut hook = crate::notify::webhook(&owner, org, NotifyEvent::LegalRequest).await;
    // Owner of the organisation and of the instance (the first account) here; an admin of the
    // organisation only may not record one.
    let ines = member(&server, &owner, org, "ines", Role::Admin).await;
    let refused = ines
        .record_legal_request(&request(Some(org)))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");

    let recorded = owner
        .record_legal_request(&request(Some(org)))
        .await
        .unwrap();
    assert_eq!(
        (recorded.scope.as_str(), recorded.recorded_by.as_str()),
        ("system", "owner")
    );
    assert_eq!(recorded.request, request(Some(org)));

    // The organisation's admins see it, from their own chain, which still verifies.
    let listed = ines.legal_requests(Some(org)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].scope, org.to_string());
    assert_eq!(listed[0].request, request(Some(org)));
    assert_eq!(listed[0].recorded_by, "owner");
    let head = ines.verify_audit(Some(org), None).await.unwrap();
    assert!(head.seq >= listed[0].seq);
    let entries = ines.audit_page(Some(org), 0, 500).await.unwrap().entries;
    let entry = entries
        .iter()
        .find(|e| e.action == "legal.request")
        .unwrap();
    assert_eq!(entry.details["authority"], "Landgericht Berlin");
    assert_eq!(entry.target.as_deref(), Some(&*format!("org:{org}")));
    // Only instance admins list the instance's.
    assert_eq!(
        ines.legal_requests(None).await.unwrap_err().status(),
        Some(403)
    );
    owner.record_legal_request(&request(None)).await.unwrap();
    let all = owner.legal_requests(None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].request.org, None);
    assert_eq!(ines.legal_requests(Some(org)).await.unwrap().len(), 1);
    owner.verify_audit(None, None).await.unwrap();

    // The organisation's channels are told, in words and as the record.
    let said = hook.next("legal.request").await.json();
    assert_eq!(said["type"], "legal.request");
    let text = said["data"]["message"].as_str().unwrap();
    assert!(
        text.contains("Landgericht Berlin asked (27 O 123/26) on 2026-12-01"),
        "{text}"
    );
    assert_eq!(said["data"]["legal"]["disclosed"], request(None).disclosed);

    // What does not make a record is refused, and nothing is written.
    for bad in [
        NewLegalRequest {
            authority: " ".into(),
            ..request(Some(org))
        },
        NewLegalRequest {
            received_on: "last Tuesday".into(),
            ..request(Some(org))
        },
        NewLegalRequest {
            requested: "x".repeat(2001),
            ..request(Some(org))
        },
        NewLegalRequest {
            org: Some(hearth_proto::ids::OrgId::new()),
            ..request(None)
        },
    ] {
        let e = owner.record_legal_request(&bad).await.unwrap_err();
        assert_eq!(e.status(), Some(422), "{e}");
    }
    assert_eq!(owner.legal_requests(None).await.unwrap().len(), 2);
}
