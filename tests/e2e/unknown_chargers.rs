//! End-to-end: chargers nobody registered (api.md `unknown_chargers`) and chargers that have not
//! booted. Pending: the socket is let in, Boot is answered Pending and the charger listed with
//! what it said; the operator accepts it (TriggerMessage brings it in at once, then it is
//! bookable and gets ReserveNow) or rejects it (Boot Rejected from then on). Accept mode
//! registers it on its first Boot. A connected charger that never booted Accepted gets no call
//! and REST answers 409 "not booted" at once. Real server, real WebSocket chargers, every frame
//! the server sent checked against the OCPP 1.6 schemas.

use std::time::{Duration, Instant};

use crate::support::schema::assert_server_frames_valid;
use crate::support::{
    TestApp, as_customer, create_customer, expect_close, now, rfc, spawn_app, spawn_app_with,
};
use echarging::settings::UnknownChargers;
use echarging_sim::{Charger, ClientError, ConnectError};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

async fn pending_app() -> TestApp {
    spawn_app_with(|s| s.unknown_chargers = UnknownChargers::Pending).await
}

/// The next server CALL, which must be `action`.
async fn expect_call(charger: &mut Charger, action: &str) -> (String, Value) {
    let (id, got, payload) = charger
        .next_call(WAIT)
        .await
        .unwrap_or_else(|e| panic!("expected {action}: {e}"));
    assert_eq!(got, action, "{payload}");
    (id, payload)
}

/// No server CALL arrives within `quiet`.
async fn expect_no_call(charger: &mut Charger, quiet: Duration) {
    match charger.next_call(quiet).await {
        Err(ClientError::Timeout) => {}
        other => panic!("expected no call, got {other:?}"),
    }
}

async fn post(app: &TestApp, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.api(Method::POST, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A customer's booking of connector `connector` from a minute ago for an hour.
async fn book(app: &TestApp, token: &crate::support::Customer, charger: &str) -> (u16, Value) {
    let n = now();
    let r = as_customer(app, token, Method::POST, "/api/v1/reservations")
        .json(&json!({
            "chargerId": charger,
            "connectorId": 1,
            "start": rfc(n - time::Duration::minutes(1)),
            "end": rfc(n + time::Duration::minutes(60)),
        }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn event_kinds(app: &TestApp, charger: &str) -> Vec<String> {
    let events = app.central.store.events_after(0, 1000).await.unwrap();
    events
        .iter()
        .filter(|e| e.charger_id.as_ref().is_some_and(|c| c.as_str() == charger))
        .map(|e| e.kind.as_str().to_string())
        .collect()
}

#[tokio::test]
async fn a_pending_charger_comes_into_service_when_the_operator_accepts_it() {
    let app = pending_app().await;
    let mut cp = app.connect("CP-NEW").await;
    // Field chargers often report status before they boot; that is answered as ever.
    assert_eq!(
        cp.status_notification(0, "Available", "NoError")
            .await
            .unwrap(),
        json!({})
    );
    let boot = cp.boot().await.unwrap();
    assert_eq!(boot["status"], "Pending", "{boot}");
    assert_eq!(boot["interval"], 300);
    assert!(cp.heartbeat().await.unwrap()["currentTime"].is_string());

    // Listed for the operator with what its Boot said.
    let pending = app.list_chargers("?state=pending").await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let view = &pending[0];
    assert_eq!(view["id"], "CP-NEW");
    assert_eq!(view["state"], "pending");
    assert_eq!(view["online"], true);
    assert_eq!(view["vendor"], "Echarging Labs");
    assert_eq!(view["model"], "SimCharge AC22");
    assert_eq!(view["chargeBoxSerialNumber"], "SN-CP-NEW");
    assert_eq!(view["firmwareVersion"], "1.8.3+sim");
    assert!(view["lastBootAt"].is_string(), "{view}");
    assert!(app.list_chargers("?state=accepted").await.is_empty());
    let r = app
        .api(Method::GET, "/api/v1/chargers?state=maybe")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Not bookable, and no command reaches it.
    let ada = create_customer(&app, "Ada", &["ADA-NEW"]).await;
    let (status, problem) = book(&app, &ada, "CP-NEW").await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["field"], "chargerId");
    assert!(
        problem["detail"].as_str().unwrap().contains("pending"),
        "{problem}"
    );
    let (status, problem) = post(
        &app,
        "/api/v1/chargers/CP-NEW/remote-start",
        Some(json!({"connectorId": 1, "idTag": "ADA-NEW"})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("not booted"));

    // The operator accepts it, naming it and giving it two connectors: it is asked to boot at
    // once, and its Boot is then Accepted.
    let (status, view) = post(
        &app,
        "/api/v1/chargers/CP-NEW/accept",
        Some(json!({"name": "Bay 9", "connectors": 2})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "accepted");
    assert_eq!(view["name"], "Bay 9");
    assert_eq!(view["connectors"], 2);
    let (call, trigger) = expect_call(&mut cp, "TriggerMessage").await;
    assert_eq!(trigger, json!({"requestedMessage": "BootNotification"}));
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");

    // In service: bookable, and the booking reaches it as ReserveNow.
    let (status, booked) = book(&app, &ada, "CP-NEW").await;
    assert_eq!(status, 201, "{booked}");
    let (call, reserve) = expect_call(&mut cp, "ReserveNow").await;
    assert_eq!(reserve["reservationId"], booked["id"]);
    assert_eq!(reserve["idTag"], "ADA-NEW");
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    assert!(app.list_chargers("?state=pending").await.is_empty());

    let kinds = event_kinds(&app, "CP-NEW").await;
    assert_eq!(
        kinds[..2],
        ["ChargerPending", "ChargerAccepted"],
        "{kinds:?}"
    );
    assert!(assert_server_frames_valid(&cp) >= 6);
    app.shutdown().await;
}

#[tokio::test]
async fn a_rejected_charger_is_told_so_and_gets_nothing() {
    let app = pending_app().await;
    let mut cp = app.connect("CP-ODD").await;
    assert_eq!(cp.boot().await.unwrap()["status"], "Pending");
    let (status, view) = post(&app, "/api/v1/chargers/CP-ODD/reject", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "rejected");
    // Its socket is closed so that it boots again, and it is told Rejected from then on.
    assert_eq!(expect_close(&mut cp).await, Some(1008));
    assert_server_frames_valid(&cp);
    let mut again = app.connect("CP-ODD").await;
    let boot = again.boot().await.unwrap();
    assert_eq!(boot["status"], "Rejected", "{boot}");
    assert_eq!(boot["interval"], 300);
    let listed = app.list_chargers("?state=rejected").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], "CP-ODD");

    let ada = create_customer(&app, "Ada", &["ADA-ODD"]).await;
    let (status, problem) = book(&app, &ada, "CP-ODD").await;
    assert_eq!(status, 409, "{problem}");
    let (status, problem) = post(
        &app,
        "/api/v1/chargers/CP-ODD/remote-start",
        Some(json!({"connectorId": 1, "idTag": "ADA-ODD"})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("not booted"));
    expect_no_call(&mut again, Duration::from_millis(300)).await;

    // Unknown chargers elsewhere: accept and reject name one that exists.
    let (status, _) = post(&app, "/api/v1/chargers/CP-NONE/accept", None).await;
    assert_eq!(status, 404);
    let (status, _) = post(&app, "/api/v1/chargers/CP-NONE/reject", None).await;
    assert_eq!(status, 404);
    let (status, problem) = post(
        &app,
        "/api/v1/chargers/CP-ODD/accept",
        Some(json!({"connectors": 0})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(problem["field"], "connectors");

    let kinds = event_kinds(&app, "CP-ODD").await;
    assert_eq!(kinds, ["ChargerPending", "ChargerRejected"]);
    assert_server_frames_valid(&again);
    app.shutdown().await;
}

#[tokio::test]
async fn accept_mode_registers_an_unknown_charger_on_its_first_boot() {
    let app = spawn_app_with(|s| s.unknown_chargers = UnknownChargers::Accept).await;
    let mut cp = app.connect("CP-AUTO").await;
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");
    let view = app.charger_view("CP-AUTO").await;
    assert_eq!(view["state"], "accepted");
    assert_eq!(view["connectors"], 1);
    assert_eq!(view["passwordProtected"], false);
    assert_eq!(view["vendor"], "Echarging Labs");
    assert_eq!(event_kinds(&app, "CP-AUTO").await, ["ChargerRegistered"]);

    let ada = create_customer(&app, "Ada", &["ADA-AUTO"]).await;
    let (status, booked) = book(&app, &ada, "CP-AUTO").await;
    assert_eq!(status, 201, "{booked}");
    let (call, _) = expect_call(&mut cp, "ReserveNow").await;
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    // A second Boot finds it registered: no second registration.
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");
    assert_eq!(event_kinds(&app, "CP-AUTO").await[0], "ChargerRegistered");
    assert_eq!(
        event_kinds(&app, "CP-AUTO")
            .await
            .iter()
            .filter(|k| *k == "ChargerRegistered")
            .count(),
        1
    );
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}

#[tokio::test]
async fn reject_mode_keeps_unknown_chargers_out() {
    let app = spawn_app().await;
    let err = Charger::connect(&app.charger_config("CP-STRANGER"))
        .await
        .err()
        .expect("must be refused");
    assert!(matches!(err, ConnectError::Http { status: 404 }), "{err:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_charger_that_never_booted_gets_no_call_and_409_at_once() {
    let app = spawn_app().await;
    app.register_charger("CP-QUIET", 1, None).await;
    let mut cp = app.connect("CP-QUIET").await;
    // What it sends before its Boot is answered.
    assert!(cp.heartbeat().await.unwrap()["currentTime"].is_string());
    assert_eq!(
        cp.status_notification(1, "Available", "NoError")
            .await
            .unwrap(),
        json!({})
    );

    // REST answers at once (not after the 30 s call timeout), and nothing is sent.
    let started = Instant::now();
    let (status, problem) = post(
        &app,
        "/api/v1/chargers/CP-QUIET/remote-start",
        Some(json!({"connectorId": 1, "idTag": "ANY-TAG"})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(problem["title"], "Charger not booted");
    assert!(problem["detail"].as_str().unwrap().contains("not booted"));

    // A booking made meanwhile waits for the Boot, then goes out.
    let ada = create_customer(&app, "Ada", &["ADA-QUIET"]).await;
    let (status, booked) = book(&app, &ada, "CP-QUIET").await;
    assert_eq!(status, 201, "{booked}");
    expect_no_call(&mut cp, Duration::from_millis(500)).await;
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");
    let (call, reserve) = expect_call(&mut cp, "ReserveNow").await;
    assert_eq!(reserve["reservationId"], booked["id"]);
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}
