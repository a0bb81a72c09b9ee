//! Preheating and cooling a printer: the server relays a member's targets to the printer's agent
//! only for a printer its agent announced as heatable, within the agent's limits, while the
//! printer is idle, for operators, and audits it.

use crate::fleet::*;
use crate::support::*;
use hearth_proto::agent::{AgentMsg, HeatLimits, PrinterInfo, ServerMsg};
use hearth_proto::api::HeatRequest;

#[tokio::test]
async fn a_member_preheats_and_cools_an_idle_printer_within_its_agents_limits() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let heatable = PrinterInfo {
        heat: Some(HeatLimits {
            max_nozzle_c: 260.0,
            max_bed_c: 100.0,
        }),
        material: Some("PETG".into()),
        ..printer_info("mk4", "farm")
    };
    let (_agent, mut ws) = approved_agent(
        &server,
        &owner,
        org,
        1,
        vec![heatable, printer_info("xl", "farm")],
    )
    .await;
    let ps = printers_until(&owner, org, "both printers", |p| p.len() == 2).await;
    let mk4 = ps.iter().find(|p| p.name == "mk4").unwrap().clone();
    let xl = ps.iter().find(|p| p.name == "xl").unwrap().clone();
    // The API says which printers can be heated, to what, and the preset for the loaded PETG.
    assert_eq!(mk4.heat.map(|h| h.max_nozzle_c), Some(260.0));
    assert_eq!(
        mk4.preheat,
        Some(HeatRequest {
            nozzle_c: Some(240.0),
            bed_c: Some(80.0)
        })
    );
    assert_eq!((xl.heat, xl.preheat.clone()), (None, None));

    let heat = |nozzle_c, bed_c| HeatRequest { nozzle_c, bed_c };
    // Each accepted request reaches the agent as it was made.
    for (nozzle_c, bed_c) in [(Some(240.0), Some(80.0)), (None, Some(0.0))] {
        let accepted = owner
            .heat_printer(org, mk4.id, &heat(nozzle_c, bed_c))
            .await
            .unwrap();
        assert_eq!(
            next_command(&mut ws).await,
            ServerMsg::Heat {
                printer: "mk4".into(),
                nozzle_c,
                bed_c,
                request: Some(accepted.request),
            }
        );
    }

    // Refused, and nothing sent: above the limits, no target, a printer its agent does not let
    // be heated, a viewer.
    for (req, status, says) in [
        (heat(Some(261.0), None), 422, "0 to 260 °C for the nozzle"),
        (heat(None, Some(-1.0)), 422, "0 to 100 °C for the bed"),
        (
            heat(Some(-1.0), Some(50.0)),
            422,
            "0 to 260 °C for the nozzle",
        ),
        (heat(None, None), 422, "give nozzle_c, bed_c or both"),
    ] {
        let e = owner.heat_printer(org, mk4.id, &req).await.unwrap_err();
        assert_eq!(e.status(), Some(status), "{req:?}: {e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let e = owner
        .heat_printer(org, xl.id, &heat(Some(200.0), None))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(e.to_string().contains("remote = false"), "{e}");
    let viewer = member(&server, &owner, org, "vera", hearth_proto::Role::Viewer).await;
    let e = viewer
        .heat_printer(org, mk4.id, &heat(Some(200.0), None))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));

    // Printing: not now.
    report_printing(&mut ws, &owner, org, "mk4").await;
    let e = owner
        .heat_printer(org, mk4.id, &heat(Some(200.0), None))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(e.to_string().contains("is printing"), "{e}");

    // Each relayed change is in the organisation's audit log; the agent was sent nothing else.
    send(&mut ws, &AgentMsg::Ping).await;
    assert_eq!(next_command(&mut ws).await, ServerMsg::Pong);
    let audit = owner.audit_page(Some(org), 0, 100).await.unwrap();
    let heats: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action == "printer.heat")
        .map(|e| (e.details["nozzle_c"].clone(), e.details["bed_c"].clone()))
        .collect();
    assert_eq!(
        heats,
        [
            (serde_json::json!(240.0), serde_json::json!(80.0)),
            (serde_json::Value::Null, serde_json::json!(0.0))
        ],
        "{heats:?}"
    );
}
