//! Whole-charger reservations (connector 0): the slot overlaps every connector's slot of the
//! charger and theirs it, judged by the database on SQLite and PostgreSQL alike (a race between
//! a connector-0 and a connector-1 booking has one winner); it is sent as ReserveNow
//! connectorId 0 where the charger says `ReserveConnectorZeroSupported`, otherwise on a connector
//! that reported Available; its holder starts on any connector, anyone else on none.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use echarging_sim::Charger;
use reqwest::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::support::schema::assert_server_frames_valid;
use crate::support::*;

const WAIT: StdDuration = StdDuration::from_secs(5);

/// An hour from now, to the second: what the test's slots are counted from.
fn base() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::hours(1)
}

fn at(base: OffsetDateTime, minutes: i64) -> String {
    (base + Duration::minutes(minutes))
        .format(&Rfc3339)
        .unwrap()
}

async fn book(app: &TestApp, c: &Customer, body: Value) -> (u16, Value) {
    let r = as_customer(app, c, Method::POST, "/api/v1/reservations")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn slot_rules(app: &TestApp) {
    app.register_charger("WC-1", 2, None).await;
    let ada = create_customer(app, "Ada", &["ADA-1"]).await;
    let b = base();
    let at = |m| at(b, m);
    let (s, e) = (at(60), at(120));
    let (status, whole) = book(
        app,
        &ada,
        json!({"chargerId": "WC-1", "connectorId": 0, "start": s, "end": e}),
    )
    .await;
    assert_eq!(status, 201, "{whole}");
    assert_eq!(whole["connectorId"], 0);
    // Every connector's slot inside it is taken, and so is the charger as a whole again.
    for connector in [json!(1), json!(2), json!(0), Value::Null] {
        let mut body = json!({"chargerId": "WC-1", "start": at(90), "end": at(150)});
        if !connector.is_null() {
            body["connectorId"] = connector.clone();
        }
        let (status, problem) = book(app, &ada, body).await;
        assert_eq!(status, 409, "connector {connector}: {problem}");
    }
    // Touching is not overlapping.
    let (status, one) = book(
        app,
        &ada,
        json!({"chargerId": "WC-1", "connectorId": 1, "start": at(120), "end": at(180)}),
    )
    .await;
    assert_eq!(status, 201, "{one}");
    // A connector's slot keeps the whole charger out too.
    let (status, problem) = book(
        app,
        &ada,
        json!({"chargerId": "WC-1", "connectorId": 0, "start": at(150), "end": at(200)}),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    // Once that one is cancelled, the whole charger is free there.
    let r = app
        .api(
            Method::DELETE,
            &format!("/api/v1/reservations/{}", one["id"]),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (status, _) = book(
        app,
        &ada,
        json!({"chargerId": "WC-1", "connectorId": 0, "start": at(150), "end": at(200)}),
    )
    .await;
    assert_eq!(status, 201);
    assert!(
        app.central
            .store
            .overlapping_reservations()
            .await
            .unwrap()
            .is_empty()
    );
}

/// 64 concurrent bookings of one slot, half for the whole charger and half for connector 1:
/// exactly one wins.
async fn race(app: &TestApp) {
    app.register_charger("WC-RACE", 2, None).await;
    let c = Arc::new(create_customer(app, "Racer", &["RACE-1"]).await);
    let b = base();
    let at = |m| at(b, m);
    let mut tasks = Vec::new();
    for i in 0..64i64 {
        let body = json!({"chargerId": "WC-RACE", "connectorId": i % 2,
                          "start": at(i), "end": at(64 + i)});
        let req = app
            .http
            .post(app.url("/api/v1/reservations"))
            .bearer_auth(&c.token)
            .json(&body);
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let created = statuses.iter().filter(|s| **s == 201).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, conflicts), (1, 63), "{statuses:?}");
    assert!(
        app.central
            .store
            .overlapping_reservations()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_whole_charger_slot_overlaps_every_connector_on_sqlite() {
    let app = spawn_app().await;
    slot_rules(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_whole_charger_slot_overlaps_every_connector_on_postgres() {
    let Some(pg) = crate::support::pg::PgSchema::new().await else {
        return; // skipped outside CI without TEST_DATABASE_URL (said by the helper)
    };
    let app = spawn_app_with(|s| s.database_url = pg.url.clone()).await;
    slot_rules(&app).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_of_whole_charger_and_connector_bookings_on_sqlite() {
    let app = spawn_app().await;
    race(&app).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_of_whole_charger_and_connector_bookings_on_postgres() {
    let Some(pg) = crate::support::pg::PgSchema::new().await else {
        return;
    };
    let app = spawn_app_with(|s| s.database_url = pg.url.clone()).await;
    race(&app).await;
    app.shutdown().await;
}

async fn expect_call(charger: &mut Charger, action: &str) -> (String, Value) {
    let (id, got, payload) = charger
        .next_call(WAIT)
        .await
        .unwrap_or_else(|e| panic!("expected {action}: {e}"));
    assert_eq!(got, action, "{payload}");
    (id, payload)
}

/// A booking of the whole charger from now for an hour.
async fn book_now(app: &TestApp, c: &Customer, charger: &str) -> i64 {
    let start = now();
    let (status, r) = book(
        app,
        c,
        json!({"chargerId": charger, "connectorId": 0, "start": rfc(start),
               "end": rfc(start + Duration::hours(1))}),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    r["id"].as_i64().unwrap()
}

#[tokio::test]
async fn sent_as_connector_zero_where_supported_and_used_on_any_connector() {
    let app = spawn_app_with(|s| s.read_configuration_on_boot = true).await;
    let ada = create_customer(&app, "Ada", &["ADA-1"]).await;
    create_customer(&app, "Bob", &["BOB-1"]).await;
    app.register_charger("WC-ZERO", 2, None).await;
    let mut charger = app.connect("WC-ZERO").await;
    assert_eq!(charger.boot().await.unwrap()["status"], "Accepted");
    let (id, _) = expect_call(&mut charger, "GetConfiguration").await;
    charger
        .reply(
            &id,
            json!({"configurationKey": [
                {"key": "ReserveConnectorZeroSupported", "readonly": true, "value": "true"}
            ]}),
        )
        .await
        .unwrap();
    poll_until(&app, "/api/v1/chargers/WC-ZERO/configuration", |v| {
        v["fetchedAt"].is_string()
    })
    .await;
    let reservation = book_now(&app, &ada, "WC-ZERO").await;
    let (id, payload) = expect_call(&mut charger, "ReserveNow").await;
    assert_eq!(payload["connectorId"], 0, "{payload}");
    assert_eq!(payload["reservationId"], reservation);
    charger
        .reply(&id, json!({"status": "Accepted"}))
        .await
        .unwrap();

    // Someone else cannot start on any connector; the holder starts on connector 2.
    let start = |connector: u32, tag: &str, reservation: Option<i64>| {
        let mut p = json!({"connectorId": connector, "idTag": tag, "meterStart": 0,
                           "timestamp": rfc(now())});
        if let Some(r) = reservation {
            p["reservationId"] = json!(r);
        }
        p
    };
    let refused = charger
        .call_result("StartTransaction", start(1, "BOB-1", None))
        .await
        .unwrap();
    assert_eq!(refused["idTagInfo"]["status"], "Invalid", "{refused}");
    let started = charger
        .call_result("StartTransaction", start(2, "ADA-1", Some(reservation)))
        .await
        .unwrap();
    assert_eq!(started["idTagInfo"]["status"], "Accepted", "{started}");
    poll_until(&app, &format!("/api/v1/reservations/{reservation}"), |r| {
        r["status"] == "CHARGING_STARTED"
    })
    .await;
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}

#[tokio::test]
async fn sent_on_an_available_connector_where_connector_zero_is_not_supported() {
    let app = spawn_app().await;
    let ada = create_customer(&app, "Ada", &["ADA-1"]).await;
    let mut charger = app.booted_charger("WC-ONE").await;
    charger
        .status_notification(1, "Charging", "NoError")
        .await
        .unwrap();
    charger
        .status_notification(2, "Available", "NoError")
        .await
        .unwrap();
    let reservation = book_now(&app, &ada, "WC-ONE").await;
    let (id, payload) = expect_call(&mut charger, "ReserveNow").await;
    assert_eq!(payload["connectorId"], 2, "{payload}");
    assert_eq!(payload["reservationId"], reservation);
    charger
        .reply(&id, json!({"status": "Accepted"}))
        .await
        .unwrap();
    poll_until(&app, &format!("/api/v1/reservations/{reservation}"), |r| {
        r["chargerAck"] == "ACCEPTED"
    })
    .await;
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}
