//! End-to-end: the charging story, where what chargers report meets the reservation ledger. One
//! test per story of the original system (register, book → ReserveNow, cancel →
//! CancelReservation, double booking refused, start → CHARGING_STARTED, stop → CHARGING_ENDED
//! with energy, status through the API), plus the offline charger, someone else's slot, a
//! retried stop, expiry, remote start/stop and a SIGKILL between start and stop. Real server,
//! real WebSocket chargers (the simulator's client), real SQLite; every frame the server sends
//! is checked against the official OCPP 1.6 schemas.

use std::time::Duration;

use crate::support::schema::assert_server_frames_valid;
use crate::support::{
    Customer, TestApp, as_customer, create_customer, now, poll_until, rfc, spawn_app,
    spawn_app_with,
};
use echarging_sim::Charger;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const WAIT: Duration = Duration::from_secs(5);

/// A slot from `from_min` to `to_min` minutes from now.
fn slot(from_min: i64, to_min: i64) -> (String, String) {
    let n = now();
    (
        rfc(n + time::Duration::minutes(from_min)),
        rfc(n + time::Duration::minutes(to_min)),
    )
}

async fn book(
    app: &TestApp,
    c: &Customer,
    charger: &str,
    connector: u32,
    s: &(String, String),
) -> Value {
    let r = as_customer(app, c, Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": charger, "connectorId": connector, "start": s.0, "end": s.1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn get(app: &TestApp, path: &str) -> Value {
    let r = app.api(Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
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

async fn start_tx(
    charger: &mut Charger,
    connector: u32,
    tag: &str,
    meter: i64,
    reservation: Option<i64>,
    at: OffsetDateTime,
) -> Value {
    let mut p = json!({"connectorId": connector, "idTag": tag, "meterStart": meter,
        "timestamp": rfc(at)});
    if let Some(r) = reservation {
        p["reservationId"] = json!(r);
    }
    charger.call_result("StartTransaction", p).await.unwrap()
}

async fn stop_tx(charger: &mut Charger, tx: i64, meter: i64, at: OffsetDateTime) -> Value {
    charger
        .call_result(
            "StopTransaction",
            json!({"transactionId": tx, "meterStop": meter, "timestamp": rfc(at),
                "reason": "Local"}),
        )
        .await
        .unwrap()
}

async fn meter(charger: &mut Charger, connector: u32, tx: i64, value: &str, unit: &str) {
    let answer = charger
        .call_result(
            "MeterValues",
            json!({"connectorId": connector, "transactionId": tx, "meterValue": [{
            "timestamp": rfc(now()),
            "sampledValue": [
                {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
                {"value": value, "measurand": "Energy.Active.Import.Register", "unit": unit}
            ]}]}),
        )
        .await
        .unwrap();
    assert_eq!(answer, json!({}));
}

/// A booted charger with `connectors`, registered by the operator (story 1 for every test).
async fn charger(app: &TestApp, id: &str, connectors: u32) -> Charger {
    app.register_charger(id, connectors, None).await;
    let mut c = app.connect(id).await;
    assert_eq!(c.boot().await.unwrap()["status"], "Accepted");
    c
}

#[tokio::test]
async fn the_seven_stories_end_to_end() {
    let app = spawn_app().await;
    // (1) The operator registers a charger; it connects, boots and is online.
    let mut cp = charger(&app, "CP-STORY", 2).await;
    app.wait_for_view("CP-STORY", |v| v["online"] == true).await;
    let ada = create_customer(&app, "Ada", &["ADA-TAG"]).await;
    let bob = create_customer(&app, "Bob", &["BOB-TAG"]).await;

    // (2) Ada books a slot that has begun: the charger receives ReserveNow at once.
    let current = slot(-1, 60);
    let booked = book(&app, &ada, "CP-STORY", 1, &current).await;
    let rid = booked["id"].as_i64().unwrap();
    assert_eq!(booked["chargerAck"], "PENDING");
    let (call, reserve) = expect_call(&mut cp, "ReserveNow").await;
    assert_eq!(reserve["reservationId"], rid);
    assert_eq!(reserve["connectorId"], 1);
    assert_eq!(reserve["idTag"], "ADA-TAG");
    assert_eq!(
        OffsetDateTime::parse(reserve["expiryDate"].as_str().unwrap(), &Rfc3339).unwrap(),
        OffsetDateTime::parse(&current.1, &Rfc3339).unwrap(),
        "expiryDate is the slot end"
    );
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    poll_until(&app, &format!("/api/v1/reservations/{rid}"), |r| {
        r["chargerAck"] == "ACCEPTED"
    })
    .await;

    // (4) A second booking of the same slot is refused.
    let r = as_customer(&app, &bob, Method::POST, "/api/v1/reservations")
        .json(
            &json!({"chargerId": "CP-STORY", "connectorId": 1, "start": current.0,
            "end": current.1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // (3) Bob books the other connector and cancels: the charger receives CancelReservation.
    let bobs = book(&app, &bob, "CP-STORY", 2, &current).await;
    let bid = bobs["id"].as_i64().unwrap();
    let (call, _) = expect_call(&mut cp, "ReserveNow").await;
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    poll_until(&app, &format!("/api/v1/reservations/{bid}"), |r| {
        r["chargerAck"] == "ACCEPTED"
    })
    .await;
    let r = as_customer(
        &app,
        &bob,
        Method::DELETE,
        &format!("/api/v1/reservations/{bid}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let (call, cancel) = expect_call(&mut cp, "CancelReservation").await;
    assert_eq!(cancel, json!({"reservationId": bid}));
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();

    // (5) Ada plugs in: Authorize, StartTransaction with her reservation → CHARGING_STARTED.
    let auth = cp
        .call_result("Authorize", json!({"idTag": "ada-tag"}))
        .await
        .unwrap();
    assert_eq!(
        auth["idTagInfo"]["status"], "Accepted",
        "idTags are case-insensitive"
    );
    let unknown = cp
        .call_result("Authorize", json!({"idTag": "NOBODY"}))
        .await
        .unwrap();
    assert_eq!(unknown["idTagInfo"]["status"], "Invalid");
    let started = start_tx(&mut cp, 1, "ADA-TAG", 1000, Some(rid), now()).await;
    assert_eq!(started["idTagInfo"]["status"], "Accepted");
    let tx = started["transactionId"].as_i64().unwrap();
    assert!(tx > 0 && tx <= i64::from(i32::MAX));
    let r = get(&app, &format!("/api/v1/reservations/{rid}")).await;
    assert_eq!(
        r["status"], "CHARGING_STARTED",
        "committed before the answer"
    );

    // Live energy from MeterValues (kWh converted to Wh).
    meter(&mut cp, 1, tx, "3.5", "kWh").await;
    let t = get(&app, &format!("/api/v1/transactions/{tx}")).await;
    assert_eq!(t["lastMeterWh"], 3500);
    assert_eq!(t["energyWh"], 2500);
    assert_eq!(t["status"], "ACTIVE");

    // (6) Stop → CHARGING_ENDED with energy = meterStop − meterStart.
    let stopped = stop_tx(&mut cp, tx, 12_500, now()).await;
    assert!(stopped.get("idTagInfo").is_none() || stopped["idTagInfo"]["status"] == "Accepted");
    // (7) All of it visible through the API.
    let r = get(&app, &format!("/api/v1/reservations/{rid}")).await;
    assert_eq!(r["status"], "CHARGING_ENDED");
    let t = get(&app, &format!("/api/v1/transactions/{tx}")).await;
    assert_eq!(t["status"], "ENDED");
    assert_eq!(t["energyWh"], 11_500);
    assert_eq!(t["meterStartWh"], 1000);
    assert_eq!(t["meterStopWh"], 12_500);
    assert_eq!(t["reservationId"], rid);
    assert_eq!(t["customerId"], ada.id);
    let mine: Value = as_customer(
        &app,
        &ada,
        Method::GET,
        &format!("/api/v1/transactions/{tx}"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(mine["id"], tx);
    let theirs = as_customer(
        &app,
        &bob,
        Method::GET,
        &format!("/api/v1/transactions/{tx}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        theirs.status(),
        404,
        "someone else's transaction is not revealed"
    );
    let listed = get(&app, "/api/v1/transactions?chargerId=CP-STORY").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let cancelled = get(&app, &format!("/api/v1/reservations/{bid}")).await;
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(
        assert_server_frames_valid(&cp),
        9,
        "every frame the server sent"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_booking_on_an_offline_charger_reaches_it_after_boot() {
    let app = spawn_app().await;
    app.register_charger("CP-OFF", 1, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-OFF"]).await;
    let booked = book(&app, &ada, "CP-OFF", 1, &slot(0, 30)).await;
    let rid = booked["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = get(&app, &format!("/api/v1/reservations/{rid}")).await;
    assert_eq!(
        r["status"], "BOOKED",
        "the booking stands while the charger is away"
    );
    assert_eq!(r["chargerAck"], "PENDING");

    let mut cp = app.connect("CP-OFF").await;
    cp.boot().await.unwrap();
    let (call, reserve) = expect_call(&mut cp, "ReserveNow").await;
    assert_eq!(reserve["reservationId"], rid);
    // A refusal is recorded and never deletes the booking.
    cp.reply(&call, json!({"status": "Occupied"}))
        .await
        .unwrap();
    let r = poll_until(&app, &format!("/api/v1/reservations/{rid}"), |r| {
        r["chargerAck"] == "OCCUPIED"
    })
    .await;
    assert_eq!(r["status"], "BOOKED");
    // The connector frees up: the reservation is offered again.
    cp.status_notification(1, "Available", "NoError")
        .await
        .unwrap();
    let (call, again) = expect_call(&mut cp, "ReserveNow").await;
    assert_eq!(again["reservationId"], rid);
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    poll_until(&app, &format!("/api/v1/reservations/{rid}"), |r| {
        r["chargerAck"] == "ACCEPTED"
    })
    .await;
    // A fault on the reserved connector shows on the reservation.
    cp.status_notification(1, "Faulted", "GroundFailure")
        .await
        .unwrap();
    poll_until(&app, &format!("/api/v1/reservations/{rid}"), |r| {
        r["chargerAck"] == "FAULTED"
    })
    .await;
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}

/// The driver cancels while ReserveNow is still unanswered: the cancel owes the charger
/// nothing yet (it was never acknowledged), so when the charger then accepts, the reservation
/// it now holds must be taken back with CancelReservation.
#[tokio::test]
async fn a_cancel_while_reserve_now_is_unanswered_is_carried_after_the_charger_accepts() {
    let app = spawn_app().await;
    let mut cp = charger(&app, "CP-RACE", 1).await;
    let ada = create_customer(&app, "Ada", &["ADA-RACE"]).await;
    let booked = book(&app, &ada, "CP-RACE", 1, &slot(0, 30)).await;
    let rid = booked["id"].as_i64().unwrap();
    let (call, reserve) = expect_call(&mut cp, "ReserveNow").await;
    assert_eq!(reserve["reservationId"], rid);
    let r = as_customer(
        &app,
        &ada,
        Method::DELETE,
        &format!("/api/v1/reservations/{rid}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // Let the dispatcher read the cancel before the charger's answer arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let (call, cancel) = expect_call(&mut cp, "CancelReservation").await;
    assert_eq!(cancel["reservationId"], rid);
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn nobody_else_charges_on_a_reserved_connector() {
    let app = spawn_app().await;
    let mut cp = charger(&app, "CP-MINE", 2).await;
    let ada = create_customer(&app, "Ada", &["ADA-MINE"]).await;
    let _bob = create_customer(&app, "Bob", &["BOB-MINE"]).await;
    let rid = book(&app, &ada, "CP-MINE", 1, &slot(-1, 60)).await["id"]
        .as_i64()
        .unwrap();
    let (call, _) = expect_call(&mut cp, "ReserveNow").await;
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();

    // Bob on Ada's connector, even naming her reservation: not Accepted, nothing charged.
    let refused = start_tx(&mut cp, 1, "BOB-MINE", 0, Some(rid), now()).await;
    assert_eq!(refused["idTagInfo"]["status"], "Invalid");
    let refused_tx = refused["transactionId"].as_i64().unwrap();
    let t = get(&app, &format!("/api/v1/transactions/{refused_tx}")).await;
    assert_eq!(t["status"], "REFUSED");
    assert_eq!(t["customerId"], Value::Null, "nothing is charged to anyone");
    let r = get(&app, &format!("/api/v1/reservations/{rid}")).await;
    assert_eq!(r["status"], "BOOKED", "Ada's reservation is untouched");
    // The charger ends the refused transaction as OCPP says; it stays refused.
    stop_tx(&mut cp, refused_tx, 0, now()).await;
    assert_eq!(
        get(&app, &format!("/api/v1/transactions/{refused_tx}")).await["status"],
        "REFUSED"
    );

    // An unknown idTag is refused too; Bob may walk in on the free connector.
    let unknown = start_tx(&mut cp, 2, "NOBODY", 0, None, now()).await;
    assert_eq!(unknown["idTagInfo"]["status"], "Invalid");
    let walk_in = start_tx(&mut cp, 2, "BOB-MINE", 0, None, now()).await;
    assert_eq!(walk_in["idTagInfo"]["status"], "Accepted");
    let t = get(
        &app,
        &format!("/api/v1/transactions/{}", walk_in["transactionId"]),
    )
    .await;
    assert_eq!(t["reservationId"], Value::Null);
    assert_eq!(t["status"], "ACTIVE");

    // Ada herself, without naming her reservation, is linked by connector + idTag + time.
    let own = start_tx(&mut cp, 1, "ADA-MINE", 0, None, now()).await;
    assert_eq!(own["idTagInfo"]["status"], "Accepted");
    let r = get(&app, &format!("/api/v1/reservations/{rid}")).await;
    assert_eq!(r["status"], "CHARGING_STARTED");
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}

#[tokio::test]
async fn walk_ins_can_be_switched_off() {
    let app = spawn_app_with(|s| s.allow_walk_in = false).await;
    let mut cp = charger(&app, "CP-STRICT", 1).await;
    create_customer(&app, "Ada", &["ADA-STRICT"]).await;
    let refused = start_tx(&mut cp, 1, "ADA-STRICT", 0, None, now()).await;
    assert_eq!(refused["idTagInfo"]["status"], "Invalid");
    app.shutdown().await;
}

#[tokio::test]
async fn retried_start_and_stop_count_once() {
    let app = spawn_app().await;
    let mut cp = charger(&app, "CP-RETRY", 1).await;
    create_customer(&app, "Ada", &["ADA-RETRY"]).await;
    let at = now();
    let first = start_tx(&mut cp, 1, "ADA-RETRY", 500, None, at).await;
    // The same StartTransaction again (the answer was lost): the same transaction.
    let again = start_tx(&mut cp, 1, "ADA-RETRY", 500, None, at).await;
    assert_eq!(first, again);
    let tx = first["transactionId"].as_i64().unwrap();
    let end = now();
    let a = stop_tx(&mut cp, tx, 2500, end).await;
    let b = stop_tx(&mut cp, tx, 2500, end).await;
    assert_eq!(a, b, "a retried stop gets the same answer");
    let t = get(&app, &format!("/api/v1/transactions/{tx}")).await;
    assert_eq!(t["energyWh"], 2000);
    assert_eq!(
        get(&app, "/api/v1/transactions?chargerId=CP-RETRY")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let events = app.central.store.events_after(0, 1000).await.unwrap();
    let count = |kind: &str| events.iter().filter(|e| e.kind.as_str() == kind).count();
    assert_eq!(count("TransactionStarted"), 1);
    assert_eq!(count("TransactionStopped"), 1, "counted once");
    // A stop for a transaction nobody knows is still answered.
    let unknown = stop_tx(&mut cp, 987_654, 1, now()).await;
    assert!(unknown.is_object());
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}

#[tokio::test]
async fn an_unused_slot_expires() {
    let app = spawn_app().await;
    app.register_charger("CP-EXP", 1, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-EXP"]).await;
    let n = now();
    let s = (
        rfc(n - time::Duration::minutes(1)),
        rfc(n + time::Duration::seconds(2)),
    );
    let rid = book(&app, &ada, "CP-EXP", 1, &s).await["id"]
        .as_i64()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let r = get(&app, &format!("/api/v1/reservations/{rid}")).await;
        if r["status"] == "EXPIRED" {
            break;
        }
        assert_eq!(r["status"], "BOOKED");
        assert!(tokio::time::Instant::now() < deadline, "never expired: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The slot is free again.
    let events = app.central.store.events_after(0, 100).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind.as_str() == "ReservationExpired")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn remote_start_returns_the_transaction_id_and_remote_stop_ends_it() {
    let app = spawn_app().await;
    let mut cp = charger(&app, "CP-REMOTE", 2).await;
    let ada = create_customer(&app, "Ada", &["ADA-REMOTE"]).await;
    let bob = create_customer(&app, "Bob", &["BOB-REMOTE"]).await;
    let rid = book(&app, &ada, "CP-REMOTE", 2, &slot(-1, 60)).await["id"]
        .as_i64()
        .unwrap();
    let (call, _) = expect_call(&mut cp, "ReserveNow").await;
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();

    // Bob holds no slot here: his remote start is refused without reaching the charger.
    let r = as_customer(
        &app,
        &bob,
        Method::POST,
        "/api/v1/chargers/CP-REMOTE/remote-start",
    )
    .json(&json!({}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);

    // Ada starts from the app; the charger answers and then starts the transaction.
    let request = as_customer(
        &app,
        &ada,
        Method::POST,
        "/api/v1/chargers/CP-REMOTE/remote-start",
    )
    .json(&json!({}))
    .send();
    let charger_side = async {
        let (call, remote) = expect_call(&mut cp, "RemoteStartTransaction").await;
        assert_eq!(remote["idTag"], "ADA-REMOTE");
        assert_eq!(remote["connectorId"], 2);
        cp.reply(&call, json!({"status": "Accepted"}))
            .await
            .unwrap();
        let started = start_tx(&mut cp, 2, "ADA-REMOTE", 0, Some(rid), now()).await;
        started["transactionId"].as_i64().unwrap()
    };
    let (answer, tx) = tokio::join!(request, charger_side);
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer, json!({"status": "Accepted", "transactionId": tx}));

    // Bob cannot stop Ada's transaction; Ada can.
    let r = as_customer(
        &app,
        &bob,
        Method::POST,
        "/api/v1/chargers/CP-REMOTE/remote-stop",
    )
    .json(&json!({"transactionId": tx}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let request = as_customer(
        &app,
        &ada,
        Method::POST,
        "/api/v1/chargers/CP-REMOTE/remote-stop",
    )
    .json(&json!({"transactionId": tx}))
    .send();
    let charger_side = async {
        let (call, remote) = expect_call(&mut cp, "RemoteStopTransaction").await;
        assert_eq!(remote, json!({"transactionId": tx}));
        cp.reply(&call, json!({"status": "Accepted"}))
            .await
            .unwrap();
    };
    let (answer, ()) = tokio::join!(request, charger_side);
    let answer: Value = answer.unwrap().json().await.unwrap();
    assert_eq!(answer, json!({"status": "Accepted"}));
    stop_tx(&mut cp, tx, 4000, now()).await;
    assert_eq!(
        get(&app, &format!("/api/v1/reservations/{rid}")).await["status"],
        "CHARGING_ENDED"
    );
    // Stopping it again is a conflict: it is not running.
    let r = app
        .api(Method::POST, "/api/v1/chargers/CP-REMOTE/remote-stop")
        .json(&json!({"transactionId": tx}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // The operator's remote start on a charger that rejects it: the answer, no transaction.
    let request = app
        .api(Method::POST, "/api/v1/chargers/CP-REMOTE/remote-start")
        .json(&json!({"connectorId": 1, "idTag": "BOB-REMOTE"}))
        .send();
    let charger_side = async {
        let (call, _) = expect_call(&mut cp, "RemoteStartTransaction").await;
        cp.reply(&call, json!({"status": "Rejected"}))
            .await
            .unwrap();
    };
    let (answer, ()) = tokio::join!(request, charger_side);
    let answer: Value = answer.unwrap().json().await.unwrap();
    assert_eq!(answer, json!({"status": "Rejected", "transactionId": null}));
    // The operator must name an idTag when no reservation gives one.
    let r = app
        .api(Method::POST, "/api/v1/chargers/CP-REMOTE/remote-start")
        .json(&json!({"connectorId": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["field"], "idTag");
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_survives_sigkill_between_start_and_stop() {
    use crate::support::process::{ServerProcess, command};
    const TOKEN: &str = "charging-crash-operator-token";
    let dir = tempfile::tempdir().unwrap();
    let env = [("ECHARGING_API_TOKEN", TOKEN)];
    let server = tokio::task::block_in_place(|| ServerProcess::start(command(dir.path(), &env)));
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    assert_eq!(
        post(
            "/api/v1/chargers",
            json!({"id": "CP-CRASH", "connectors": 1})
        )
        .await
        .unwrap()
        .status(),
        201
    );
    let customer: Value = post(
        "/api/v1/customers",
        json!({"name": "Ada", "idTags": ["ADA-CRASH"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let s = slot(-1, 60);
    let booked: Value = post(
        "/api/v1/reservations",
        json!({"chargerId": "CP-CRASH", "connectorId": 1, "customerId": customer["id"],
            "start": s.0, "end": s.1}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rid = booked["id"].as_i64().unwrap();
    let ws = format!("ws://{}/ocpp", server.addr);
    let mut cp = Charger::connect(&echarging_sim::ChargerConfig::new(ws, "CP-CRASH"))
        .await
        .unwrap();
    cp.boot().await.unwrap();
    let (call, _) = expect_call(&mut cp, "ReserveNow").await;
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let started = start_tx(&mut cp, 1, "ADA-CRASH", 100, Some(rid), now()).await;
    let tx = started["transactionId"].as_i64().unwrap();
    assert_eq!(started["idTagInfo"]["status"], "Accepted");

    // Killed right after the acknowledged start.
    server.signal("KILL");
    drop(server);
    drop(cp);
    let server = tokio::task::block_in_place(|| ServerProcess::start(command(dir.path(), &env)));
    let ws = format!("ws://{}/ocpp", server.addr);
    let mut cp = Charger::connect(&echarging_sim::ChargerConfig::new(ws, "CP-CRASH"))
        .await
        .unwrap();
    cp.boot().await.unwrap();
    stop_tx(&mut cp, tx, 9100, now()).await;
    let base = format!("http://{}", server.addr);
    let t: Value = http
        .get(format!("{base}/api/v1/transactions/{tx}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["status"], "ENDED");
    assert_eq!(t["energyWh"], 9000);
    let r: Value = http
        .get(format!("{base}/api/v1/reservations/{rid}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "CHARGING_ENDED");
    assert_server_frames_valid(&cp);

    // The maintenance command refolds my page from the same log once the server is gone.
    drop(cp);
    drop(server);
    let out = command(dir.path(), &[])
        .arg("rebuild-projections")
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.starts_with("my page rebuilt from "), "{said}");
}

/// A remote start may carry a TxProfile (a power limit for this charge): it reaches the charger
/// in RemoteStartTransaction exactly as given, and one that is not a valid TxProfile is refused
/// before anything is sent, naming the member.
#[tokio::test]
async fn a_remote_start_carries_a_tx_profile_to_the_charger() {
    // The charger accepts but never starts: no need to wait the full 10 s for its transaction.
    let app = spawn_app_with(|s| s.remote_start_wait = Duration::from_millis(200)).await;
    let mut cp = app.booted_charger("CP-PROFILE").await;
    create_customer(&app, "Ada", &["ADA-PROFILE"]).await;
    let profile = json!({
        "chargingProfileId": 12, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.0}]}
    });
    let request = app
        .api(Method::POST, "/api/v1/chargers/CP-PROFILE/remote-start")
        .json(&json!({"connectorId": 1, "idTag": "ADA-PROFILE", "chargingProfile": profile}))
        .send();
    let charger_side = async {
        let (call, remote) = expect_call(&mut cp, "RemoteStartTransaction").await;
        assert_eq!(remote["chargingProfile"], profile);
        cp.reply(&call, json!({"status": "Accepted"}))
            .await
            .unwrap();
    };
    let (answer, ()) = tokio::join!(request, charger_side);
    let answer = answer.unwrap();
    assert_eq!(answer.status(), 200);

    let refused = [
        (
            json!({"chargingProfilePurpose": "TxDefaultProfile"}),
            "chargingProfile.chargingProfilePurpose",
        ),
        (json!({"transactionId": 5}), "chargingProfile.transactionId"),
        (
            json!({"chargingSchedule": {"chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.05}]}}),
            "chargingProfile.chargingSchedule.chargingSchedulePeriod[0].limit",
        ),
    ];
    for (change, field) in refused {
        let mut bad = profile.clone();
        for (k, v) in change.as_object().unwrap() {
            bad[k] = v.clone();
        }
        let r = app
            .api(Method::POST, "/api/v1/chargers/CP-PROFILE/remote-start")
            .json(&json!({"connectorId": 1, "idTag": "ADA-PROFILE", "chargingProfile": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{field}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["field"], field, "{problem}");
    }
    assert!(
        cp.next_call(Duration::from_millis(200)).await.is_err(),
        "nothing refused reaches the charger"
    );
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}
