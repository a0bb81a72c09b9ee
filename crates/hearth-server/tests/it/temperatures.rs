//! A printer's recent temperatures: recorded from what its agent reports, listed for charts.

use crate::fleet::*;
use crate::support::*;
use hearth_proto::agent::AgentMsg;

/// A printer's recent temperatures, as its agent reported them, for the dashboards' chart: viewers
/// read them; reports closer together than the chart's resolution make one sample.
#[tokio::test]
async fn a_printers_recent_temperatures_are_listed_for_its_chart() {
    use hearth_proto::agent::{Heater, PrinterTelemetry};
    use hearth_proto::api::TemperatureSample;
    let server = TestServer::start().await;
    let (owner, org) = server.bootstrap().await;
    genesis(&owner, org).await;
    let (_agent, mut ws) =
        approved_agent(&server, &owner, org, 1, vec![printer_info("mk4", "farm")]).await;
    let ps = printers_until(&owner, org, "the printer", |p| p.len() == 1).await;
    let path = format!("/api/v1/orgs/{org}/printers/{}/temperatures", ps[0].id);
    let heating = |actual| PrinterTelemetry {
        heaters: vec![
            Heater {
                name: "tool0".into(),
                actual,
                target: Some(215.0),
            },
            Heater {
                name: "bed".into(),
                actual: 59.5,
                target: Some(60.0),
            },
        ],
        ..idle()
    };
    for actual in [180.0, 181.0] {
        send(
            &mut ws,
            &AgentMsg::Telemetry {
                printer: "mk4".into(),
                status: heating(actual),
            },
        )
        .await;
    }
    printers_until(&owner, org, "the second report", |p| {
        p[0].telemetry.heaters.first().map(|h| h.actual) == Some(181.0)
    })
    .await;
    let viewer = member(&server, &owner, org, "vera", hearth_proto::Role::Viewer).await;
    let samples: Vec<TemperatureSample> = viewer.raw_get(&path).await.unwrap();
    // The announcement's idle report (one heater, the bed) came first; a report within five
    // seconds of the last sample kept adds none (on a machine this fast, both of the above).
    assert_eq!(samples[0].heaters, idle().heaters, "{samples:?}");
    let reported = [
        idle().heaters,
        heating(180.0).heaters,
        heating(181.0).heaters,
    ];
    assert!(
        samples.iter().all(|s| reported.contains(&s.heaters)),
        "{samples:?}"
    );
    let at: Vec<i64> = samples
        .iter()
        .map(|s| hearth_proto::time_fmt::parse_rfc3339(&s.at).unwrap())
        .collect();
    assert!(
        at.windows(2)
            .all(|w| w[1] - w[0] >= hearth_server::temps::EVERY_MS),
        "{samples:?}"
    );
    let recent: Vec<TemperatureSample> = owner.raw_get(&format!("{path}?minutes=1")).await.unwrap();
    assert_eq!(recent, samples);
    // The whole fleet at once: the same, per printer.
    let fleet: Vec<hearth_proto::api::PrinterTemperatures> = viewer
        .raw_get(&format!("/api/v1/orgs/{org}/temperatures"))
        .await
        .unwrap();
    assert_eq!(fleet.len(), 1);
    assert_eq!(
        (fleet[0].printer_id, &fleet[0].samples),
        (ps[0].id, &samples)
    );
    let e = owner
        .raw_get::<Vec<TemperatureSample>>(&format!("{path}?minutes=x"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    let e = owner
        .raw_get::<Vec<TemperatureSample>>(&format!(
            "/api/v1/orgs/{org}/printers/{}/temperatures",
            hearth_proto::ids::PrinterId::new()
        ))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}
