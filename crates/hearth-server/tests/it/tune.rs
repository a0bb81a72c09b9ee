//! Tuning a print: the server relays a member's speed, flow and fan to the printer's agent only
//! for a printer its agent announced as tunable, within the agent's limits, while it prints, for
//! operators, and audits it.

use crate::fleet::*;
use crate::support::*;
use hearth_proto::agent::{AgentMsg, PrinterInfo, ServerMsg, Tune, TuneLimits};

#[tokio::test]
async fn a_member_tunes_a_printing_printer_within_its_agents_limits() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let tunable = PrinterInfo {
        tune: Some(TuneLimits {
            min_speed_percent: 50,
            max_speed_percent: 150,
            min_flow_percent: 90,
            max_flow_percent: 110,
        }),
        ..printer_info("mk4", "farm")
    };
    let (_agent, mut ws) = approved_agent(
        &server,
        &owner,
        org,
        1,
        vec![tunable, printer_info("x1c", "farm")],
    )
    .await;
    let ps = printers_until(&owner, org, "both printers", |p| p.len() == 2).await;
    let mk4 = ps.iter().find(|p| p.name == "mk4").unwrap().clone();
    let x1c = ps.iter().find(|p| p.name == "x1c").unwrap().clone();
    // The API says which printers can be tuned, and how far.
    assert_eq!(mk4.tune.map(|t| t.max_speed_percent), Some(150));
    assert_eq!(x1c.tune, None);
    let tune = |speed_percent, flow_percent, fan_percent| Tune {
        speed_percent,
        flow_percent,
        fan_percent,
    };

    // Idle: nothing to tune.
    let e = owner
        .tune_printer(org, mk4.id, &tune(Some(120), None, None))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409), "{e}");
    assert!(e.to_string().contains("is idle"), "{e}");

    report_printing(&mut ws, &owner, org, "mk4").await;
    report_printing(&mut ws, &owner, org, "x1c").await;
    // Each accepted request reaches the agent as it was made.
    let asked = [
        tune(Some(120), None, None),
        tune(None, Some(95), Some(0)),
        tune(Some(50), Some(110), Some(100)),
    ];
    for req in asked {
        let accepted = owner.tune_printer(org, mk4.id, &req).await.unwrap();
        assert_eq!(
            next_command(&mut ws).await,
            ServerMsg::Tune {
                printer: "mk4".into(),
                tune: req,
                request: Some(accepted.request),
            }
        );
    }

    // Refused, and nothing sent: outside the limits, nothing asked, a printer its agent does not
    // let be tuned, a viewer.
    for (req, status, says) in [
        (
            tune(Some(151), None, None),
            422,
            "speed 151 % is outside 50 to 150 %",
        ),
        (
            tune(Some(100), Some(89), None),
            422,
            "flow 89 % is outside 90 to 110 %",
        ),
        (
            tune(None, None, Some(101)),
            422,
            "fan 101 % is outside 0 to 100 %",
        ),
        (tune(None, None, None), 422, "give speed_percent"),
    ] {
        let e = owner.tune_printer(org, mk4.id, &req).await.unwrap_err();
        assert_eq!(e.status(), Some(status), "{req:?}: {e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let e = owner
        .tune_printer(org, x1c.id, &tune(Some(100), None, None))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(e.to_string().contains("remote = false"), "{e}");
    let viewer = member(&server, &owner, org, "vera", hearth_proto::Role::Viewer).await;
    let e = viewer
        .tune_printer(org, mk4.id, &tune(Some(100), None, None))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));

    // Each relayed tuning is in the organisation's audit log; the agent was sent nothing else.
    send(&mut ws, &AgentMsg::Ping).await;
    assert_eq!(next_command(&mut ws).await, ServerMsg::Pong);
    let audit = owner.audit_page(Some(org), 0, 100).await.unwrap();
    let tunes: Vec<Tune> = audit
        .entries
        .iter()
        .filter(|e| e.action == "printer.tune")
        .map(|e| serde_json::from_value(e.details["tune"].clone()).unwrap())
        .collect();
    assert_eq!(tunes, asked);
}
