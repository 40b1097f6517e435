//! End-to-end: the booking ledger over real HTTP. Customers and their tokens, booking with and
//! without a connector, half-open neighbours, overlaps (409 with the slot's times and never the
//! holder), every 422/400, ownership (someone else's reservation is 404), cancellation and
//! re-booking, listing filters, the event log, and the 64-request race on SQLite and PostgreSQL.

use std::sync::Arc;

use crate::support::{Customer, TestApp, as_customer, create_customer, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// A slot `hours_from_now`..+`len_hours`, on whole minutes, as RFC 3339 strings.
fn slot(hours_from_now: i64, len_hours: i64) -> (String, String) {
    let base = OffsetDateTime::now_utc()
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap()
        + Duration::hours(hours_from_now);
    let end = base + Duration::hours(len_hours);
    (
        base.format(&Rfc3339).unwrap(),
        end.format(&Rfc3339).unwrap(),
    )
}

async fn book(app: &TestApp, c: &Customer, body: Value) -> reqwest::Response {
    as_customer(app, c, Method::POST, "/api/v1/reservations")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn problem(r: reqwest::Response, status: u16) -> Value {
    let got = r.status();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(ct, "application/problem+json");
    body
}

#[tokio::test]
async fn customers_are_created_with_a_token_shown_once() {
    let app = spawn_app().await;
    let r = app
        .api(Method::POST, "/api/v1/customers")
        .json(&json!({"name": "Ada", "idTags": ["ADA-1", "ADA-2"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["name"], "Ada");
    assert_eq!(created["idTags"], json!(["ADA-1", "ADA-2"]));
    let token = created["token"].as_str().unwrap();
    assert!(token.len() >= 40);
    let id = created["id"].as_i64().unwrap();

    let shown: Value = app
        .api(Method::GET, &format!("/api/v1/customers/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["idTags"], json!(["ADA-1", "ADA-2"]));
    assert!(
        shown.get("token").is_none(),
        "the token is never shown again"
    );

    // idTags are unique, compared as OCPP does (case-insensitive); nothing is half-written.
    let r = app
        .api(Method::POST, "/api/v1/customers")
        .json(&json!({"name": "Eve", "idTags": ["EVE-1", "ada-2"]}))
        .send()
        .await
        .unwrap();
    problem(r, 409).await;
    let r = app
        .api(Method::POST, "/api/v1/customers")
        .json(&json!({"name": "Eve", "idTags": ["EVE-1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "EVE-1 was not left behind by the refused request"
    );

    for (body, field) in [
        (json!({"name": "", "idTags": ["X"]}), "name"),
        (json!({"name": "X", "idTags": []}), "idTags"),
        (
            json!({"name": "X", "idTags": ["123456789012345678901"]}),
            "idTags[0]",
        ),
        (json!({"name": "X", "idTags": ["A1", "a1"]}), "idTags[1]"),
        (json!({"name": "X"}), "idTags"),
    ] {
        let r = app
            .api(Method::POST, "/api/v1/customers")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(problem(r, 422).await["field"], field, "{body}");
    }
    // A customer reads itself; anyone else's record, or one that does not exist, is 404.
    let eve = create_customer(&app, "Eve Two", &["EVE-2"]).await;
    let r = as_customer(
        &app,
        &eve,
        Method::GET,
        &format!("/api/v1/customers/{}", eve.id),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = as_customer(&app, &eve, Method::GET, &format!("/api/v1/customers/{id}"))
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = app
        .api(Method::GET, "/api/v1/customers/999999")
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = app
        .api(Method::GET, "/api/v1/customers/not-a-number")
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    // Customers cannot create customers.
    let c = Customer {
        id,
        token: token.to_string(),
    };
    let r = as_customer(&app, &c, Method::POST, "/api/v1/customers")
        .json(&json!({"name": "Mallory", "idTags": ["M"]}))
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    app.shutdown().await;
}

#[tokio::test]
async fn booking_rules_end_to_end() {
    let app = spawn_app().await;
    app.register_charger("CP-1", 2, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-1"]).await;
    let bob = create_customer(&app, "Bob", &["BOB-1", "BOB-2"]).await;

    // Connector omitted → the lowest free one; the answer is the reservation.
    let (s, e) = slot(1, 1);
    let r = book(
        &app,
        &ada,
        json!({"chargerId": "CP-1", "start": s, "end": e}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["connectorId"], 1);
    assert_eq!(first["status"], "BOOKED");
    assert_eq!(first["chargerAck"], "PENDING");
    assert_eq!(first["idTag"], "ADA-1");
    assert_eq!(first["customerId"], ada.id);
    let id = first["id"].as_i64().unwrap();
    assert!(id > 0 && id <= i64::from(i32::MAX));
    assert_eq!(location, format!("/api/v1/reservations/{id}"));

    // The same slot again without a connector → connector 2; a third time → 409.
    let r = book(
        &app,
        &bob,
        json!({"chargerId": "CP-1", "start": s, "end": e, "idTag": "bob-2"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["connectorId"], 2);
    assert_eq!(second["idTag"], "BOB-2");
    let r = book(
        &app,
        &bob,
        json!({"chargerId": "CP-1", "start": s, "end": e}),
    )
    .await;
    let conflict = problem(r, 409).await;
    assert_eq!(conflict["conflict"]["start"], s);
    assert_eq!(conflict["conflict"]["end"], e);
    let text = conflict.to_string();
    assert!(
        !text.contains("ADA-1"),
        "never reveals who holds the slot: {text}"
    );

    // Overlapping on a named connector → 409 with the taken slot's times.
    let (s2, e2) = slot(1, 2);
    let r = book(
        &app,
        &bob,
        json!({"chargerId": "CP-1", "connectorId": 1, "start": s2, "end": e2}),
    )
    .await;
    let conflict = problem(r, 409).await;
    assert_eq!(conflict["conflict"]["start"], s);
    // Half-open: the next hour on connector 1 fits, as does the hour before.
    let (s3, e3) = slot(2, 1);
    assert_eq!(e, s3);
    let r = book(
        &app,
        &bob,
        json!({"chargerId": "CP-1", "connectorId": 1, "start": s3, "end": e3}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let (s0, e0) = slot(0, 1);
    let r = book(
        &app,
        &bob,
        json!({"chargerId": "CP-1", "connectorId": 1, "start": s0, "end": e0}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // Ownership: Bob cannot see or cancel Ada's reservation (404, existence not revealed).
    let r = as_customer(&app, &bob, Method::GET, &location)
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = as_customer(&app, &bob, Method::DELETE, &location)
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = as_customer(&app, &ada, Method::GET, &location)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Booking for someone else, or with someone else's idTag, is refused.
    let (s4, e4) = slot(5, 1);
    let r = book(
        &app,
        &bob,
        json!({"chargerId": "CP-1", "customerId": ada.id, "start": s4, "end": e4}),
    )
    .await;
    problem(r, 403).await;
    let r = book(
        &app,
        &bob,
        json!({"chargerId": "CP-1", "idTag": "ADA-1", "start": s4, "end": e4}),
    )
    .await;
    assert_eq!(problem(r, 422).await["field"], "idTag");

    // Lists: a customer sees only its own; the operator filters freely.
    let mine: Vec<Value> = as_customer(&app, &bob, Method::GET, "/api/v1/reservations")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|r| r["customerId"] == bob.id));
    let starts: Vec<&str> = mine.iter().map(|r| r["start"].as_str().unwrap()).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "ordered by start");
    let r = as_customer(
        &app,
        &bob,
        Method::GET,
        &format!("/api/v1/reservations?customerId={}", ada.id),
    )
    .send()
    .await
    .unwrap();
    problem(r, 403).await;
    let all: Vec<Value> = app
        .api(
            Method::GET,
            "/api/v1/reservations?chargerId=CP-1&status=BOOKED",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let window: Vec<Value> = app
        .api(
            Method::GET,
            &format!(
                "/api/v1/reservations?from={}&to={}",
                urlenc(&s3),
                urlenc(&e3)
            ),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(window.len(), 1, "only the slot inside [s3, e3) overlaps it");
    let r = app
        .api(Method::GET, "/api/v1/reservations?status=MAYBE")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 422).await["field"], "status");

    // Cancel: 200 CANCELLED; again → 409; the slot can be booked again.
    let r = as_customer(&app, &ada, Method::DELETE, &location)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    let r = as_customer(&app, &ada, Method::DELETE, &location)
        .send()
        .await
        .unwrap();
    problem(r, 409).await;
    let r = book(
        &app,
        &bob,
        json!({"chargerId": "CP-1", "connectorId": 1, "start": s, "end": e}),
    )
    .await;
    assert_eq!(r.status(), 201);

    // A charger with live reservations cannot be deleted from under them.
    let r = app
        .api(Method::DELETE, "/api/v1/chargers/CP-1")
        .send()
        .await
        .unwrap();
    problem(r, 409).await;

    // The database agrees: no two live reservations overlap.
    assert!(
        app.central
            .store
            .overlapping_reservations()
            .await
            .unwrap()
            .is_empty()
    );
    app.shutdown().await;
}

fn urlenc(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn bad_bookings_are_422_or_400_naming_the_field() {
    let app = spawn_app_with(|s| s.max_slot = std::time::Duration::from_secs(4 * 3600)).await;
    app.register_charger("CP-V", 2, None).await;
    let c = create_customer(&app, "Val", &["VAL-1"]).await;
    let (s, e) = slot(1, 1);
    let (past_s, past_e) = slot(-3, 1);
    let (long_s, long_e) = slot(1, 5);
    let cases = [
        (json!({"chargerId": "CP-V", "start": e, "end": s}), "end"),
        (json!({"chargerId": "CP-V", "start": s, "end": s}), "end"),
        (
            json!({"chargerId": "CP-V", "start": past_s, "end": past_e}),
            "start",
        ),
        (
            json!({"chargerId": "CP-V", "start": long_s, "end": long_e}),
            "end",
        ),
        (
            json!({"chargerId": "CP-NONE", "start": s, "end": e}),
            "chargerId",
        ),
        (
            json!({"chargerId": "CP-V", "connectorId": 3, "start": s, "end": e}),
            "connectorId",
        ),
        (
            json!({"chargerId": "CP-V", "start": "tomorrow", "end": e}),
            "start",
        ),
        (json!({"chargerId": "CP-V", "end": e}), "start"),
        (json!({"start": s, "end": e}), "chargerId"),
        (
            json!({"chargerId": "CP-V", "start": s, "end": e, "extra": 1}),
            "extra",
        ),
    ];
    for (body, field) in cases {
        let r = book(&app, &c, body.clone()).await;
        assert_eq!(problem(r, 422).await["field"], field, "{body}");
    }
    let r = as_customer(&app, &c, Method::POST, "/api/v1/reservations")
        .header("content-type", "application/json")
        .body("{\"chargerId\": ")
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    // The operator must say for whom.
    let r = app
        .api(Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": "CP-V", "start": s, "end": e}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 422).await["field"], "customerId");
    let r = app
        .api(Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": "CP-V", "customerId": 999, "start": s, "end": e}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 422).await["field"], "customerId");
    // No token, a bad token → 401.
    let r = app
        .http
        .post(app.url("/api/v1/reservations"))
        .json(&json!({"chargerId": "CP-V", "start": s, "end": e}))
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let r = app
        .http
        .get(app.url("/api/v1/reservations/1"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let r = app
        .api(Method::GET, "/api/v1/reservations/123456")
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    // Nothing of the above was written.
    let all: Vec<Value> = app
        .api(Method::GET, "/api/v1/reservations")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(all.is_empty());
    // The operator books for a customer.
    let r = app
        .api(Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": "CP-V", "customerId": c.id, "start": s, "end": e}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    app.shutdown().await;
}

#[tokio::test]
async fn every_change_is_in_the_event_log_in_order() {
    let app = spawn_app().await;
    app.register_charger("CP-E", 1, None).await;
    let c = create_customer(&app, "Eva", &["EVA-1"]).await;
    let (s, e) = slot(1, 1);
    let r = book(&app, &c, json!({"chargerId": "CP-E", "start": s, "end": e})).await;
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap() as i32;
    as_customer(
        &app,
        &c,
        Method::DELETE,
        &format!("/api/v1/reservations/{id}"),
    )
    .send()
    .await
    .unwrap();
    let events = app.central.store.events_after(0, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ChargerRegistered",
            "CustomerCreated",
            "ReservationBooked",
            "ReservationCancelled"
        ]
    );
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "gap-free");
    assert_eq!(events[2].reservation_id, Some(id));
    assert_eq!(events[2].customer_id, Some(c.id));
    assert_eq!(
        events[2].charger_id.as_ref().map(|id| id.as_str()),
        Some("CP-E")
    );
    assert_eq!(events[3].data["status"], "CANCELLED");
    // A consumer resumes from the last seq it saw.
    let rest = app.central.store.events_after(2, 100).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].seq, 3);
    assert!(
        !events[1].data.to_string().contains(&c.token),
        "no secrets in events"
    );
    app.shutdown().await;
}

/// 64 concurrent bookings of overlapping slots on one connector: exactly one 201, 63 409s, and no
/// two live reservations overlap afterwards.
async fn race(app: &TestApp) {
    app.register_charger("CP-RACE", 1, None).await;
    let c = Arc::new(create_customer(app, "Racer", &["RACE-1"]).await);
    let base = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::hours(1);
    let mut tasks = Vec::new();
    for i in 0..64i64 {
        // Every slot overlaps every other: all contain [base+63min, base+64min).
        let start = base + Duration::minutes(i);
        let end = base + Duration::minutes(64 + i);
        let body = json!({"chargerId": "CP-RACE", "connectorId": 1,
                          "start": start.format(&Rfc3339).unwrap(),
                          "end": end.format(&Rfc3339).unwrap()});
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
    let live: Vec<Value> = app
        .api(
            Method::GET,
            "/api/v1/reservations?chargerId=CP-RACE&status=BOOKED",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_of_64_bookings_on_sqlite() {
    let app = spawn_app().await;
    race(&app).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_of_64_bookings_on_postgres() {
    let Some(pg) = crate::support::pg::PgSchema::new().await else {
        return; // skipped outside CI without TEST_DATABASE_URL (said by the helper)
    };
    let app = spawn_app_with(|s| s.database_url = pg.url.clone()).await;
    race(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_whole_booking_flow_runs_on_postgres() {
    let Some(pg) = crate::support::pg::PgSchema::new().await else {
        return;
    };
    let app = spawn_app_with(|s| s.database_url = pg.url.clone()).await;
    app.register_charger("CP-PG", 2, None).await;
    let c = create_customer(&app, "Pat", &["PAT-1"]).await;
    let (s, e) = slot(1, 1);
    let r = book(
        &app,
        &c,
        json!({"chargerId": "CP-PG", "start": s, "end": e}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    let r = book(
        &app,
        &c,
        json!({"chargerId": "CP-PG", "start": s, "end": e}),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["connectorId"], 2);
    let r = book(
        &app,
        &c,
        json!({"chargerId": "CP-PG", "start": s, "end": e}),
    )
    .await;
    let conflict = problem(r, 409).await;
    assert_eq!(conflict["conflict"]["start"], s);
    let id = first["id"].as_i64().unwrap();
    let r = as_customer(
        &app,
        &c,
        Method::DELETE,
        &format!("/api/v1/reservations/{id}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "CANCELLED");
    let r = book(
        &app,
        &c,
        json!({"chargerId": "CP-PG", "connectorId": 1, "start": s, "end": e}),
    )
    .await;
    assert_eq!(r.status(), 201, "a cancelled slot is free again");
    let events = app.central.store.events_after(0, 100).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "gap-free"
    );
    assert!(
        app.central
            .store
            .overlapping_reservations()
            .await
            .unwrap()
            .is_empty()
    );
    app.shutdown().await;
}
