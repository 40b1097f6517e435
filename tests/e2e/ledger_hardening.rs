//! The ledger against what an outside fuzzing run sent it, through the real app: a charger's
//! timestamp at the end of time, a slot shorter than the ledger's millisecond, a my-page file
//! left over from another ledger, and readiness when the ledger cannot write. The store-level
//! halves (on both backends) are conformance checks in `store_conformance`.

use std::time::Duration;

use echarging_sim::CallOutcome;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Customer, TestApp, as_customer, create_customer, now, rfc, spawn_app_with};

/// An app on a database in `dir`, so a later app can reopen it.
async fn app_in(dir: &std::path::Path) -> TestApp {
    let db = format!("sqlite://{}", dir.join("echarging.db").display());
    let data = dir.to_path_buf();
    spawn_app_with(move |s| {
        s.database_url = db;
        s.data_dir = data;
    })
    .await
}

async fn book(app: &TestApp, c: &Customer, start: &str, end: &str) -> reqwest::Response {
    as_customer(app, c, Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": "CP-H", "connectorId": 1, "start": start, "end": end}))
        .send()
        .await
        .unwrap()
}

async fn readiness(app: &TestApp) -> (u16, Value) {
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn my_reservations(app: &TestApp, c: &Customer) -> Vec<Value> {
    let r = as_customer(app, c, Method::GET, "/api/v1/me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    page["reservations"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_start_at_the_end_of_time_leaves_the_ledger_writing() {
    let app = spawn_app_with(|_| {}).await;
    let ada = create_customer(&app, "Ada", &["ADA-H"]).await;
    let mut cp = app.booted_charger("CP-H").await;
    // Whatever the charger edge makes of it (refused, or handed on to the ledger), the answer
    // comes and the ledger keeps writing for everybody.
    let answer = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "ADA-H", "meterStart": 0,
                   "timestamp": "9999-12-31T23:59:59Z"}),
        )
        .await
        .expect("answered");
    if let CallOutcome::Error { code, .. } = &answer {
        assert_ne!(code, "InternalError", "{answer:?}");
    }
    let n = now() + time::Duration::hours(1);
    let r = book(&app, &ada, &rfc(n), &rfc(n + time::Duration::hours(1))).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(readiness(&app).await.0, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_slot_shorter_than_a_millisecond_is_refused_before_the_ledger() {
    let app = spawn_app_with(|_| {}).await;
    app.register_charger("CP-H", 1, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-H"]).await;
    let day = (now() + time::Duration::days(1)).date();
    let start = format!("{day}T10:00:00.000Z");
    let r = book(&app, &ada, &start, &format!("{day}T10:00:00.0001Z")).await;
    assert_eq!(r.status(), 422, "{}", r.text().await.unwrap());
    // One millisecond is a slot.
    let r = book(&app, &ada, &start, &format!("{day}T10:00:00.001Z")).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    app.shutdown().await;
}

#[tokio::test]
async fn a_my_page_file_left_from_another_ledger_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_in(dir.path()).await;
    app.register_charger("CP-H", 1, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-H"]).await;
    let n = now() + time::Duration::hours(1);
    let r = book(&app, &ada, &rfc(n), &rfc(n + time::Duration::hours(1))).await;
    assert_eq!(r.status(), 201);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while my_reservations(&app, &ada).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Ada's page never showed her booking"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.shutdown().await;

    // The ledger file goes (restored from nothing, say); the my-page file stays.
    for name in ["echarging.db", "echarging.db-wal", "echarging.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    assert!(dir.path().join("echarging-mypage.db").exists());
    let app = app_in(dir.path()).await;
    let bob = create_customer(&app, "Bob", &["BOB-H"]).await;
    assert_eq!(
        bob.id, ada.id,
        "the new ledger numbers customers from 1 again"
    );
    // Give the projector time to fold whatever it would.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        my_reservations(&app, &bob).await,
        Vec::<Value>::new(),
        "Bob must not see the old ledger's customer 1's bookings"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_my_page_view_ahead_of_a_restored_ledger_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_in(dir.path()).await;
    app.register_charger("CP-H", 1, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-H"]).await;
    app.shutdown().await;
    let backup = tempfile::tempdir().unwrap();
    let ledger_files = ["echarging.db", "echarging.db-wal"];
    for name in ledger_files {
        if dir.path().join(name).exists() {
            std::fs::copy(dir.path().join(name), backup.path().join(name)).unwrap();
        }
    }

    let app = app_in(dir.path()).await;
    let n = now() + time::Duration::hours(1);
    let r = book(&app, &ada, &rfc(n), &rfc(n + time::Duration::hours(1))).await;
    assert_eq!(r.status(), 201);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while my_reservations(&app, &ada).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the booking never showed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.shutdown().await;

    // The same ledger, restored from before the booking: the view folded past its end.
    for name in ["echarging.db-wal", "echarging.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(name));
    }
    for name in ledger_files {
        if backup.path().join(name).exists() {
            std::fs::copy(backup.path().join(name), dir.path().join(name)).unwrap();
        }
    }
    let app = app_in(dir.path()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        my_reservations(&app, &ada).await,
        Vec::<Value>::new(),
        "a booking the ledger no longer has is not shown"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_fails_when_the_ledger_cannot_write() {
    let app = spawn_app_with(|_| {}).await;
    assert_eq!(readiness(&app).await.0, 200);
    app.central.store.close().await;
    let (status, body) = readiness(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "ledger cannot write");
    app.shutdown().await;
}
