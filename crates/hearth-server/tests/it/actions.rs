//! A printer's actions (homing, fans, a light, macros): the server relays a member's request to
//! the printer's agent only for an action that agent announced, only while the printer is idle
//! unless the action is one for printing too, for operators, and audits it.

use crate::fleet::*;
use crate::support::*;
use hearth_proto::agent::{ActionWhen, AgentMsg, PrinterAction, PrinterInfo, ServerMsg};
use hearth_proto::api::Event;

#[tokio::test]
async fn a_member_runs_the_actions_a_printers_agent_announced() {
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let action = |id: &str, label: &str, when| PrinterAction {
        id: id.into(),
        label: label.into(),
        when,
        admins_only: false,
        confirm: None,
    };
    let actions = vec![
        action("home", "Home all axes", ActionWhen::Idle),
        action("light-on", "Light on", ActionWhen::Always),
        action("speed-sport", "Speed: sport", ActionWhen::Printing),
        PrinterAction {
            admins_only: true,
            ..action("restart", "Firmware restart", ActionWhen::Always)
        },
    ];
    let x1c = PrinterInfo {
        actions: actions.clone(),
        ..printer_info("x1c", "farm")
    };
    let (_agent, mut ws) = approved_agent(
        &server,
        &owner,
        org,
        1,
        vec![x1c, printer_info("xl", "farm")],
    )
    .await;
    let ps = printers_until(&owner, org, "both printers", |p| p.len() == 2).await;
    let x1c = ps.iter().find(|p| p.name == "x1c").unwrap().clone();
    let xl = ps.iter().find(|p| p.name == "xl").unwrap().clone();
    // The API lists each printer's actions as its agent announced them.
    assert_eq!(x1c.actions, actions);
    assert!(xl.actions.is_empty());

    // Idle: both run, each reaching the agent by its id with a request id of its own; what the
    // agent answers reaches the members following the organisation's events.
    let mut events = owner.events(org).await.unwrap();
    let mut requests = Vec::new();
    for id in ["home", "light-on"] {
        requests.push(relayed(&owner, &mut ws, (org, x1c.id), id).await);
    }
    assert_ne!(requests[0], requests[1]);
    let answer = |request: &str, ok, message: Option<&str>| AgentMsg::Outcome {
        printer: "x1c".into(),
        request: request.into(),
        ok,
        message: message.map(str::to_owned),
    };
    // Answers for another agent's printer are not its to give, and go nowhere.
    let stray = AgentMsg::Outcome {
        printer: "not-mine".into(),
        request: "x".into(),
        ok: true,
        message: None,
    };
    send(&mut ws, &stray).await;
    send(&mut ws, &answer(&requests[0], true, None)).await;
    send(&mut ws, &answer(&requests[1], false, Some("no light"))).await;
    let mut outcomes = Vec::new();
    while outcomes.len() < 2 {
        if let Some(Event::Outcome {
            printer_id,
            request,
            ok,
            message,
        }) = events.next().await.unwrap()
        {
            assert_eq!(printer_id, x1c.id);
            outcomes.push((request, ok, message));
        }
    }
    assert_eq!(
        outcomes,
        [
            (requests[0].clone(), true, None),
            (requests[1].clone(), false, Some("no light".into()))
        ]
    );

    // Refused, and nothing sent: an action the agent did not announce (or a malformed id), a
    // printer without actions, a viewer.
    for (printer, id, status, says) in [
        (
            x1c.id,
            "format-sd",
            404,
            "its agent offers home, light-on, speed-sport, restart",
        ),
        (x1c.id, "../heat", 404, "no action \"../heat\""),
        (xl.id, "home", 404, "its agent offers none"),
    ] {
        let e = owner
            .run_printer_action(org, printer, id)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(status), "{id}: {e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let e = owner
        .run_printer_action(org, x1c.id, "speed-sport")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(
        e.to_string()
            .contains("is idle: \"Speed: sport\" runs only while it is printing or paused"),
        "{e}"
    );
    let viewer = member(&server, &owner, org, "vera", hearth_proto::Role::Viewer).await;
    let e = viewer
        .run_printer_action(org, x1c.id, "light-on")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    // An action for admins: not an operator's; the owner's.
    let operator = member(&server, &owner, org, "otto", hearth_proto::Role::Operator).await;
    let e = operator
        .run_printer_action(org, x1c.id, "restart")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert!(
        e.to_string().contains("is for the organisation's admins"),
        "{e}"
    );
    relayed(&owner, &mut ws, (org, x1c.id), "restart").await;

    // Printing: homing waits for idle, the light does not, the speed mode is for now.
    report_printing(&mut ws, &owner, org, "x1c").await;
    let e = owner
        .run_printer_action(org, x1c.id, "home")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(
        e.to_string()
            .contains("is printing: \"Home all axes\" runs only while it is idle"),
        "{e}"
    );
    for id in ["light-on", "speed-sport"] {
        relayed(&owner, &mut ws, (org, x1c.id), id).await;
    }

    // Each relayed action is in the organisation's audit log; the agent was sent nothing else.
    send(&mut ws, &AgentMsg::Ping).await;
    assert_eq!(next_command(&mut ws).await, ServerMsg::Pong);
    let audit = owner.audit_page(Some(org), 0, 100).await.unwrap();
    let runs: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action == "printer.action")
        .map(|e| e.details["action"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        runs,
        ["home", "light-on", "restart", "light-on", "speed-sport"],
        "{runs:?}"
    );
}

/// `owner` runs action `id` on x1c (`printer` of `org`), which reaches its agent with the request id the
/// server answered; returns that id.
async fn relayed(
    owner: &hearth_client::Client,
    ws: &mut Ws,
    (org, printer): (hearth_proto::ids::OrgId, hearth_proto::ids::PrinterId),
    id: &str,
) -> String {
    let accepted = owner.run_printer_action(org, printer, id).await.unwrap();
    assert_eq!(
        next_command(ws).await,
        ServerMsg::Action {
            printer: "x1c".into(),
            action: id.into(),
            request: Some(accepted.request.clone()),
        }
    );
    accepted.request
}
