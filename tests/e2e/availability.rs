//! ChangeAvailability and the ledger, against a real WebSocket charger: a connector the charger
//! accepts to make Inoperative is out of service (its reservations show UNAVAILABLE, new
//! bookings on it are 409 naming `connectorId`, a booking without a connector lands on another,
//! the charger view says so, the log has ConnectorAvailabilityChanged); Operative again makes it
//! bookable and its reservations are offered to the charger again; a Rejected answer changes
//! nothing. Every frame the server sent validates against the official schemas.

use std::time::Duration;

use echarging::domain::event::kind;
use echarging_sim::Charger;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::schema::assert_server_frames_valid;
use crate::support::{
    Customer, TestApp, as_customer, create_customer, now, poll_until, rfc, spawn_app,
};

const WAIT: Duration = Duration::from_secs(5);

/// Sends ChangeAvailability through `path` while the charger answers `status`.
async fn change(app: &TestApp, cp: &mut Charger, path: &str, body: Value, status: &str) {
    let request = app.api(Method::POST, path).json(&body).send();
    let charger_side = async {
        let (id, action, payload) = cp.next_call(WAIT).await.expect("the CALL arrives");
        assert_eq!(action, "ChangeAvailability");
        assert_eq!(payload, body);
        cp.reply(&id, json!({"status": status})).await.unwrap();
    };
    let (r, ()) = tokio::join!(request, charger_side);
    let r = r.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    // The generic route wraps the charger's payload as `{status: 200, response}`.
    let payload = answer.get("response").unwrap_or(&answer);
    assert_eq!(payload, &json!({"status": status}));
}

async fn book(
    app: &TestApp,
    c: &Customer,
    connector: Option<u32>,
    from: OffsetDateTime,
    hours: i64,
) -> reqwest::Response {
    let mut body = json!({"chargerId": "CP-AV", "start": rfc(from),
        "end": rfc(from + time::Duration::hours(hours))});
    if let Some(c) = connector {
        body["connectorId"] = json!(c);
    }
    as_customer(app, c, Method::POST, "/api/v1/reservations")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn booked(
    app: &TestApp,
    c: &Customer,
    connector: Option<u32>,
    from: OffsetDateTime,
) -> Value {
    let r = book(app, c, connector, from, 1).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn ack_is(app: &TestApp, id: &Value, ack: &str) {
    poll_until(app, &format!("/api/v1/reservations/{id}"), |r| {
        r["chargerAck"] == ack
    })
    .await;
}

fn connector(view: &Value, id: u64) -> &Value {
    view["availability"]
        .as_array()
        .expect("availability shown")
        .iter()
        .find(|a| a["connectorId"] == id)
        .expect("every connector listed")
}

#[tokio::test]
async fn inoperative_connectors_are_out_of_service_in_the_ledger_until_operative() {
    let app = spawn_app().await;
    let mut cp = app.booted_charger("CP-AV").await;
    let ada = create_customer(&app, "Ada", &["TAG-AV"]).await;
    let path = "/api/v1/chargers/CP-AV/availability";
    let start = now();
    let hour = time::Duration::hours(1);

    // A slot that has begun on connector 2: the charger takes ReserveNow.
    let current = booked(&app, &ada, Some(2), start).await;
    let (call, action, reserve) = cp.next_call(WAIT).await.unwrap();
    assert_eq!(action, "ReserveNow");
    assert_eq!(reserve["reservationId"], current["id"]);
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    ack_is(&app, &current["id"], "ACCEPTED").await;
    // A later one on 2, not yet sent.
    let later = booked(&app, &ada, Some(2), start + 3 * hour).await;

    // Rejected: nothing changes.
    change(
        &app,
        &mut cp,
        path,
        json!({"connectorId": 2, "type": "Inoperative"}),
        "Rejected",
    )
    .await;
    let view = app.charger_view("CP-AV").await;
    assert_eq!(connector(&view, 2)["availability"], "Operative");
    assert_eq!(connector(&view, 2)["since"], Value::Null);
    let r = book(&app, &ada, Some(2), start + 5 * hour, 1).await;
    assert_eq!(r.status(), 201, "still bookable");

    // Accepted: connector 2 is out of service.
    change(
        &app,
        &mut cp,
        path,
        json!({"connectorId": 2, "type": "Inoperative"}),
        "Accepted",
    )
    .await;
    for r in [&current, &later] {
        ack_is(&app, &r["id"], "UNAVAILABLE").await;
    }
    let r = book(&app, &ada, Some(2), start + 7 * hour, 1).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["field"], "connectorId", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("out of service"),
        "{problem}"
    );
    let elsewhere = booked(&app, &ada, None, start + 7 * hour).await;
    assert_eq!(elsewhere["connectorId"], 1);
    let view = app.charger_view("CP-AV").await;
    assert_eq!(connector(&view, 2)["availability"], "Inoperative");
    assert_eq!(connector(&view, 2)["scheduled"], false);
    assert!(connector(&view, 2)["since"].is_string());
    assert_eq!(connector(&view, 1)["availability"], "Operative");
    assert_eq!(connector(&view, 0)["availability"], "Operative");
    // The driver's own page shows why.
    let mine: Value = as_customer(
        &app,
        &ada,
        Method::GET,
        &format!("/api/v1/reservations/{}", later["id"]),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(mine["chargerAck"], "UNAVAILABLE");

    // Operative: the current reservation is offered again, the later one waits for its time.
    change(
        &app,
        &mut cp,
        path,
        json!({"connectorId": 2, "type": "Operative"}),
        "Accepted",
    )
    .await;
    let (call, action, reserve) = cp.next_call(WAIT).await.unwrap();
    assert_eq!(action, "ReserveNow");
    assert_eq!(reserve["reservationId"], current["id"]);
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    ack_is(&app, &current["id"], "ACCEPTED").await;
    ack_is(&app, &later["id"], "PENDING").await;
    let again = booked(&app, &ada, Some(2), start + 7 * hour).await;
    assert_eq!(again["connectorId"], 2);
    let view = app.charger_view("CP-AV").await;
    assert_eq!(connector(&view, 2)["availability"], "Operative");

    // The whole charger, Scheduled, through the generic toolbox route: nothing is bookable.
    change(
        &app,
        &mut cp,
        "/api/v1/chargers/CP-AV/ocpp/ChangeAvailability",
        json!({"connectorId": 0, "type": "Inoperative"}),
        "Scheduled",
    )
    .await;
    let r = book(&app, &ada, None, start + 9 * hour, 1).await;
    assert_eq!(r.status(), 409);
    let view = app.charger_view("CP-AV").await;
    for c in 0..=2 {
        assert_eq!(connector(&view, c)["availability"], "Inoperative");
        assert_eq!(connector(&view, c)["scheduled"], true);
    }
    change(
        &app,
        &mut cp,
        path,
        json!({"connectorId": 0, "type": "Operative"}),
        "Accepted",
    )
    .await;
    // Marked again by the whole-charger change, offered again now.
    let (call, action, _) = cp.next_call(WAIT).await.unwrap();
    assert_eq!(action, "ReserveNow");
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let r = book(&app, &ada, None, start + 9 * hour, 1).await;
    assert_eq!(r.status(), 201);

    // Every change the server made is in the log: Rejected is not one.
    let events = app.central.store.events_after(0, 10_000).await.unwrap();
    let changes: Vec<(Value, Value, Value)> = events
        .iter()
        .filter(|e| e.kind == kind::CONNECTOR_AVAILABILITY_CHANGED)
        .map(|e| {
            (
                e.data["connectorId"].clone(),
                e.data["type"].clone(),
                e.data["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (json!(2), json!("Inoperative"), json!("Accepted")),
            (json!(2), json!("Operative"), json!("Accepted")),
            (json!(0), json!("Inoperative"), json!("Scheduled")),
            (json!(0), json!("Operative"), json!("Accepted")),
        ]
    );
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}
