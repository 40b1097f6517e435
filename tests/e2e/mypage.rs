//! End-to-end: my page, the read model. A booking appears; charging start, live energy from
//! MeterValues, the end with its energy, a cancellation and an expiry all appear; another
//! customer's data never shows on a page or in a stream; the SSE stream carries the changes in
//! order; a rebuild from the log equals the incrementally built view; a restart resumes without
//! duplicates or gaps, including events committed while the server was down.

use std::time::Duration;

use crate::support::{Customer, TestApp, as_customer, create_customer, now, rfc, spawn_app_with};
use echarging::domain::ChargeBoxId;
use echarging::domain::reservation::{NewReservation, TimeSlot};
use echarging::settings::Settings;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

const WAIT: Duration = Duration::from_secs(5);

/// An app on a database in `dir`, so a later app (or the rebuild) can reopen it.
async fn app_in(dir: &std::path::Path) -> TestApp {
    let db = format!("sqlite://{}", dir.join("echarging.db").display());
    let data = dir.to_path_buf();
    spawn_app_with(move |s| {
        s.database_url = db;
        s.data_dir = data;
    })
    .await
}

async fn my_page(app: &TestApp, c: &Customer) -> Value {
    let r = as_customer(app, c, Method::GET, "/api/v1/me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Poll my page until `check` holds for it.
async fn page_until(app: &TestApp, c: &Customer, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = my_page(app, c).await;
        if check(&page) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "my page never matched: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn entry(page: &Value, id: i64) -> Value {
    page["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn book(
    app: &TestApp,
    c: &Customer,
    charger: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> i64 {
    let r = as_customer(app, c, Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": charger, "connectorId": 1, "start": rfc(from), "end": rfc(to)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// Server-Sent Events read off a response: (event, id, data).
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    async fn open(app: &TestApp, c: &Customer) -> Sse {
        let response = as_customer(app, c, Method::GET, "/api/v1/me/events")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Sse {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), or None when `wait` passes.
    async fn next(&mut self, wait: Duration) -> Option<(String, String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some((event, id, data));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?;
            let bytes = chunk.unwrap()?;
            self.buffer.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
}

#[tokio::test]
async fn my_page_follows_a_booking_through_charging_and_streams_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_in(dir.path()).await;
    app.register_charger("CP-PAGE", 2, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-PAGE"]).await;
    let bob = create_customer(&app, "Bob", &["BOB-PAGE"]).await;
    let mut ada_stream = Sse::open(&app, &ada).await;
    let mut bob_stream = Sse::open(&app, &bob).await;
    let (event, _, snapshot) = ada_stream.next(WAIT).await.unwrap();
    assert_eq!(event, "snapshot");
    assert_eq!(snapshot["customer"], json!({"id": ada.id, "name": "Ada"}));
    assert_eq!(snapshot["reservations"], json!([]));
    bob_stream.next(WAIT).await.unwrap();

    // A booking appears, newest slot first.
    let later = book(
        &app,
        &ada,
        "CP-PAGE",
        now() + time::Duration::hours(3),
        now() + time::Duration::hours(4),
    )
    .await;
    let current = book(
        &app,
        &ada,
        "CP-PAGE",
        now() - time::Duration::minutes(1),
        now() + time::Duration::hours(1),
    )
    .await;
    let page = page_until(&app, &ada, |p| {
        p["reservations"].as_array().unwrap().len() == 2
    })
    .await;
    let ids: Vec<i64> = page["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![later, current], "newest slot first");
    assert_eq!(entry(&page, current)["status"], "BOOKED");
    assert_eq!(entry(&page, current)["charging"], Value::Null);

    // The charger takes the reservation and Ada charges on it.
    let mut cp = app.connect("CP-PAGE").await;
    cp.boot().await.unwrap();
    let (call, action, _) = cp.next_call(WAIT).await.unwrap();
    assert_eq!(action, "ReserveNow");
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    page_until(&app, &ada, |p| {
        entry(p, current)["chargerAck"] == "ACCEPTED"
    })
    .await;
    let started = cp
        .call_result(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "ADA-PAGE",
            "meterStart": 2000, "reservationId": current, "timestamp": rfc(now())}),
        )
        .await
        .unwrap();
    let tx = started["transactionId"].as_i64().unwrap();
    let page = page_until(&app, &ada, |p| {
        entry(p, current)["status"] == "CHARGING_STARTED"
    })
    .await;
    let charging = &entry(&page, current)["charging"];
    assert_eq!(charging["transactionId"], tx);
    assert_eq!(charging["meterStartWh"], 2000);
    assert_eq!(charging["endedAt"], Value::Null);
    // Live energy from MeterValues.
    for wh in ["2600", "3100"] {
        cp.call_result(
            "MeterValues",
            json!({"connectorId": 1, "transactionId": tx,
            "meterValue": [{"timestamp": rfc(now()), "sampledValue": [{"value": wh}]}]}),
        )
        .await
        .unwrap();
    }
    let page = page_until(&app, &ada, |p| {
        entry(p, current)["charging"]["energyWh"] == 1100
    })
    .await;
    assert_eq!(entry(&page, current)["charging"]["lastMeterWh"], 3100);
    // The end, with its energy.
    cp.call_result(
        "StopTransaction",
        json!({"transactionId": tx, "meterStop": 5000,
        "timestamp": rfc(now())}),
    )
    .await
    .unwrap();
    let page = page_until(&app, &ada, |p| {
        entry(p, current)["status"] == "CHARGING_ENDED"
    })
    .await;
    let charging = &entry(&page, current)["charging"];
    assert_eq!(charging["energyWh"], 3000);
    assert_eq!(charging["meterStopWh"], 5000);
    assert!(charging["endedAt"].is_string());
    // A cancellation appears.
    let r = as_customer(
        &app,
        &ada,
        Method::DELETE,
        &format!("/api/v1/reservations/{later}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    page_until(&app, &ada, |p| entry(p, later)["status"] == "CANCELLED").await;

    // The stream carried every change of Ada's page, in commit order.
    let mut seen = Vec::new();
    let mut last_id = 0i64;
    while let Some((event, id, data)) = ada_stream.next(Duration::from_millis(500)).await {
        let id: i64 = id.parse().unwrap();
        assert!(id > last_id, "in order: {id} after {last_id}");
        last_id = id;
        assert_eq!(data["customerId"], ada.id);
        seen.push((event, data["id"].as_i64().unwrap()));
    }
    let expected: Vec<(String, i64)> = [
        ("ReservationBooked", later),
        ("ReservationBooked", current),
        ("ReservationAckChanged", current),
        ("TransactionStarted", current),
        ("MeterValuesRecorded", current),
        ("MeterValuesRecorded", current),
        ("TransactionStopped", current),
        ("ReservationCancelled", later),
    ]
    .iter()
    .map(|(k, id)| (k.to_string(), *id))
    .collect();
    assert_eq!(seen, expected);

    // Bob saw none of it, on his page or in his stream.
    assert_eq!(my_page(&app, &bob).await["reservations"], json!([]));
    assert!(bob_stream.next(Duration::from_millis(300)).await.is_none());
    let r = as_customer(
        &app,
        &bob,
        Method::GET,
        &format!("/api/v1/customers/{}/mypage", ada.id),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    // The operator reads Ada's page; the operator has no page of its own.
    let r = app
        .api(Method::GET, &format!("/api/v1/customers/{}/mypage", ada.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let operator_view: Value = r.json().await.unwrap();
    assert_eq!(operator_view, my_page(&app, &ada).await);
    assert_eq!(
        app.api(Method::GET, "/api/v1/me")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_expired_booking_appears_and_pages_are_paged() {
    let app = spawn_app_with(|_| {}).await;
    app.register_charger("CP-EXPP", 1, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-EXPP"]).await;
    let n = now();
    let soon = book(
        &app,
        &ada,
        "CP-EXPP",
        n - time::Duration::minutes(1),
        n + time::Duration::seconds(2),
    )
    .await;
    for h in 1..=4 {
        book(
            &app,
            &ada,
            "CP-EXPP",
            n + time::Duration::hours(h),
            n + time::Duration::hours(h) + time::Duration::minutes(30),
        )
        .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let page = my_page(&app, &ada).await;
        if entry(&page, soon)["status"] == "EXPIRED" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never expired on my page: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two per page, newest first, until nextPage runs out: each reservation exactly once.
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => "/api/v1/me?limit=2".to_string(),
            Some(t) => format!("/api/v1/me?limit=2&after={t}"),
        };
        let page: Value = as_customer(&app, &ada, Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in page["reservations"].as_array().unwrap() {
            ids.push(e["id"].as_i64().unwrap());
        }
        match page["nextPage"].as_str() {
            Some(t) => after = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 5);
    assert_eq!(*ids.last().unwrap(), soon, "the oldest slot comes last");
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 5);
    let r = as_customer(&app, &ada, Method::GET, "/api/v1/me?after=nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    app.shutdown().await;
}

/// Every customer's page as the operator reads it.
async fn all_pages(app: &TestApp, customers: &[&Customer]) -> Vec<Value> {
    let mut pages = Vec::new();
    for c in customers {
        let r = app
            .api(
                Method::GET,
                &format!("/api/v1/customers/{}/mypage?limit=500", c.id),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        pages.push(r.json().await.unwrap());
    }
    pages
}

#[tokio::test]
async fn restart_resumes_and_a_rebuild_equals_the_incremental_view() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_in(dir.path()).await;
    app.register_charger("CP-REB", 2, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-REB"]).await;
    let bob = create_customer(&app, "Bob", &["BOB-REB"]).await;
    let mut cp = app.connect("CP-REB").await;
    cp.boot().await.unwrap();
    let n = now();
    for (i, c) in [&ada, &bob, &ada].iter().enumerate() {
        let from = n + time::Duration::hours(i as i64 + 1);
        book(&app, c, "CP-REB", from, from + time::Duration::minutes(30)).await;
    }
    let current = book(
        &app,
        &bob,
        "CP-REB",
        n - time::Duration::minutes(1),
        n + time::Duration::minutes(50),
    )
    .await;
    let (call, _, _) = cp.next_call(WAIT).await.unwrap();
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let started = cp
        .call_result(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "BOB-REB",
            "meterStart": 0, "timestamp": rfc(now())}),
        )
        .await
        .unwrap();
    let tx = started["transactionId"].as_i64().unwrap();
    cp.call_result("MeterValues", json!({"connectorId": 1, "transactionId": tx,
        "meterValue": [{"timestamp": rfc(now()), "sampledValue": [{"value": "1.25", "unit": "kWh"}]}]}))
        .await
        .unwrap();
    page_until(&app, &bob, |p| {
        entry(p, current)["charging"]["energyWh"] == 1250
    })
    .await;
    drop(cp);
    app.shutdown().await;

    // While the server is down, the ledger moves on (another process writing, say).
    let url = format!("sqlite://{}", dir.path().join("echarging.db").display());
    let store = echarging::booking::store::open(&url).await.unwrap();
    let from = n + time::Duration::hours(6);
    let offline = store
        .book(&NewReservation {
            charger_id: ChargeBoxId::parse("CP-REB").unwrap(),
            connector_id: Some(2),
            customer_id: ada.id,
            id_tag: "ADA-REB".into(),
            slot: TimeSlot::parse(from, from + time::Duration::hours(1)).unwrap(),
        })
        .await
        .unwrap();
    let head = *store.head().borrow();
    store.close().await;

    // The restarted server resumes from its cursor: the new booking appears, nothing twice.
    let app = app_in(dir.path()).await;
    let page = page_until(&app, &ada, |p| !entry(p, i64::from(offline.id)).is_null()).await;
    assert_eq!(page["reservations"].as_array().unwrap().len(), 3);
    let incremental = all_pages(&app, &[&ada, &bob]).await;
    assert_eq!(incremental[1]["reservations"].as_array().unwrap().len(), 2);
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // (The values are process-wide and other tests' apps share them: only presence here.)
    assert!(
        metrics.contains("echarging_mypage_lag_seconds"),
        "the lag is exposed"
    );
    app.shutdown().await;

    // Rebuilt from the log, the view is the same, field for field.
    let mut settings = Settings::with_database(url);
    settings.data_dir = dir.path().to_path_buf();
    let events = echarging::app::rebuild_projections(&settings)
        .await
        .unwrap();
    assert_eq!(events as i64, head);
    let app = app_in(dir.path()).await;
    assert_eq!(all_pages(&app, &[&ada, &bob]).await, incremental);
    app.shutdown().await;
}

#[tokio::test]
async fn two_nodes_on_postgres_share_the_ledger_and_my_page() {
    let Some(pg) = crate::support::pg::PgSchema::new().await else {
        return; // skipped outside CI without TEST_DATABASE_URL (said by the helper)
    };
    // Two nodes on one database, as in a scaled-out deployment: the charger is connected to
    // node A, the driver talks to node B.
    let a = spawn_app_with(|s| s.database_url = pg.url.clone()).await;
    let b = spawn_app_with(|s| s.database_url = pg.url.clone()).await;
    b.register_charger("CP-PGN", 1, None).await;
    let ada = create_customer(&b, "Ada", &["ADA-PGN"]).await;
    let mut cp = a.connect("CP-PGN").await;
    cp.boot().await.unwrap();
    let rid = book(
        &b,
        &ada,
        "CP-PGN",
        now() - time::Duration::minutes(1),
        now() + time::Duration::hours(1),
    )
    .await;
    // Node A's dispatcher sees node B's booking in the shared log and reaches its charger.
    let (call, action, reserve) = cp.next_call(WAIT).await.unwrap();
    assert_eq!(
        (action.as_str(), reserve["reservationId"].as_i64()),
        ("ReserveNow", Some(rid))
    );
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let started = cp
        .call_result(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "ADA-PGN", "meterStart": 100,
                "reservationId": rid, "timestamp": rfc(now())}),
        )
        .await
        .unwrap();
    let tx = started["transactionId"].as_i64().unwrap();
    cp.call_result(
        "StopTransaction",
        json!({"transactionId": tx, "meterStop": 2100, "timestamp": rfc(now())}),
    )
    .await
    .unwrap();
    // Both nodes serve the same page.
    let on_b = page_until(&b, &ada, |p| entry(p, rid)["status"] == "CHARGING_ENDED").await;
    assert_eq!(entry(&on_b, rid)["charging"]["energyWh"], 2000);
    let on_a = page_until(&a, &ada, |p| entry(p, rid)["status"] == "CHARGING_ENDED").await;
    assert_eq!(on_a, on_b);
    drop(cp);
    a.shutdown().await;
    b.shutdown().await;

    // The rebuild on PostgreSQL gives the same page.
    let mut settings = Settings::with_database(pg.url.clone());
    settings.data_dir = tempfile::tempdir().unwrap().path().to_path_buf();
    echarging::app::rebuild_projections(&settings)
        .await
        .unwrap();
    let c = spawn_app_with(|s| s.database_url = pg.url.clone()).await;
    let rebuilt = page_until(&c, &ada, |p| !entry(p, rid).is_null()).await;
    assert_eq!(rebuilt, on_b);
    c.shutdown().await;
}
