//! End-to-end: the operator's charger administration over real HTTP. Auth (401 problem+json),
//! create/list/get/patch/delete, every validation error naming its field, and that deleting a
//! connected charger closes its socket.

use crate::support::{TOKEN, expect_close, spawn_app};
use echarging_sim::{Charger, ConnectError};
use reqwest::Method;
use serde_json::{Value, json};

async fn problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "errors are problem+json"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["type"].is_string());
    body
}

#[tokio::test]
async fn operator_token_is_required() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(app.url("/api/v1/chargers"))
        .send()
        .await
        .unwrap();
    let body = problem(r, 401).await;
    assert!(body["detail"].as_str().unwrap().contains("Bearer"));
    let r = app
        .http
        .get(app.url("/api/v1/chargers"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let r = app
        .http
        .post(app.url("/api/v1/chargers"))
        .json(&json!({"id": "CP-X", "connectors": 1}))
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    // Nothing was written by the refused request.
    assert!(app.list_chargers("").await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn create_get_list_update_delete() {
    let app = spawn_app().await;
    let r = app
        .api(Method::POST, "/api/v1/chargers")
        .json(&json!({"id": "CP-B", "name": "Bay 2", "connectors": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], "/api/v1/chargers/CP-B");
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["id"], "CP-B");
    assert_eq!(created["name"], "Bay 2");
    assert_eq!(created["connectors"], 2);
    assert_eq!(created["online"], false);
    assert_eq!(created["passwordProtected"], false);
    assert_eq!(created["connectorStatus"], json!([]));
    assert!(created["createdAt"].is_string());

    app.register_charger("CP-A", 1, None).await;
    app.register_charger("CP-C", 1, None).await;

    // Listing is ordered by id and pages with `after` + `limit`.
    let list = app.list_chargers("").await;
    let ids: Vec<&str> = list.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["CP-A", "CP-B", "CP-C"]);
    let page = app.list_chargers("?after=CP-A&limit=1").await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], "CP-B");

    // online=true lists only connected chargers.
    let mut charger = app.connect("CP-C").await;
    charger.boot().await.unwrap();
    let online = app.list_chargers("?online=true").await;
    assert_eq!(online.len(), 1);
    assert_eq!(online[0]["id"], "CP-C");

    // PATCH changes only what it names; null clears.
    let r = app
        .api(Method::PATCH, "/api/v1/chargers/CP-B")
        .json(&json!({"connectors": 4, "password": "a-new-machine-key-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["connectors"], 4);
    assert_eq!(patched["name"], "Bay 2");
    assert_eq!(patched["passwordProtected"], true);
    // The new password is in force at the upgrade.
    let err = Charger::connect(&app.charger_config("CP-B"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ConnectError::Http { status: 401 }));
    let r = app
        .api(Method::PATCH, "/api/v1/chargers/CP-B")
        .json(&json!({"name": null, "password": null}))
        .send()
        .await
        .unwrap();
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["name"], Value::Null);
    assert_eq!(patched["passwordProtected"], false);
    assert!(Charger::connect(&app.charger_config("CP-B")).await.is_ok());

    // DELETE closes the live socket and the charger is gone.
    let r = app
        .api(Method::DELETE, "/api/v1/chargers/CP-C")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(expect_close(&mut charger).await, Some(1008));
    let r = app
        .api(Method::GET, "/api/v1/chargers/CP-C")
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let err = Charger::connect(&app.charger_config("CP-C"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ConnectError::Http { status: 404 }));
    let r = app
        .api(Method::DELETE, "/api/v1/chargers/CP-C")
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    app.shutdown().await;
}

#[tokio::test]
async fn duplicate_id_is_409() {
    let app = spawn_app().await;
    app.register_charger("CP-D", 1, None).await;
    let r = app
        .api(Method::POST, "/api/v1/chargers")
        .json(&json!({"id": "CP-D", "connectors": 3}))
        .send()
        .await
        .unwrap();
    let body = problem(r, 409).await;
    assert!(body["detail"].as_str().unwrap().contains("CP-D"));
    // The first registration is untouched.
    assert_eq!(app.charger_view("CP-D").await["connectors"], 1);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_name_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"id": "bad id", "connectors": 1}), "id"),
        (json!({"id": "", "connectors": 1}), "id"),
        (json!({"id": "x".repeat(49), "connectors": 1}), "id"),
        (json!({"id": "CP-1", "connectors": 0}), "connectors"),
        (json!({"id": "CP-1", "connectors": 101}), "connectors"),
        (json!({"id": "CP-1", "connectors": "two"}), "connectors"),
        (json!({"id": "CP-1", "connectors": -1}), "connectors"),
        (json!({"id": "CP-1"}), "connectors"),
        (json!({"connectors": 1}), "id"),
        (
            json!({"id": "CP-1", "connectors": 1, "password": "short"}),
            "password",
        ),
        (
            json!({"id": "CP-1", "connectors": 1, "name": "n".repeat(101)}),
            "name",
        ),
        (
            json!({"id": "CP-1", "connectors": 1, "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let r = app
            .api(Method::POST, "/api/v1/chargers")
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = problem(r, 422).await;
        assert_eq!(p["field"], field, "for {body}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(field), "{p}");
    }
    // Malformed JSON is 400.
    let r = app
        .api(Method::POST, "/api/v1/chargers")
        .header("content-type", "application/json")
        .body("{\"id\": \"CP-1\", ")
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    // A body that is not JSON at all is 415.
    let r = app
        .api(Method::POST, "/api/v1/chargers")
        .header("content-type", "text/plain")
        .body("id=CP-1")
        .send()
        .await
        .unwrap();
    problem(r, 415).await;
    let r = app
        .api(Method::PATCH, "/api/v1/chargers/CP-404")
        .json(&json!({"connectors": 2}))
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = app
        .api(Method::GET, "/api/v1/chargers?limit=0")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 422).await["field"], "limit");
    // None of it was written.
    let list = app.list_chargers("").await;
    assert!(list.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn probes_answer() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The operator token is not needed for probes, and no token leaks from them.
    assert!(!r.text().await.unwrap().contains(TOKEN));
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_in_each_state() {
    let app =
        crate::support::spawn_app_with(|s| s.drain_delay = std::time::Duration::from_secs(2)).await;
    // Serving: ready.
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");

    // Draining: still answering HTTP for the drain delay, but not ready, and chargers are sent
    // elsewhere.
    app.register_charger("CP-DRAIN", 1, None).await;
    app.stop.cancel();
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "draining");
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "alive while draining");
    let err = Charger::connect(&app.charger_config("CP-DRAIN"))
        .await
        .err()
        .expect("no new sessions while draining");
    assert!(matches!(err, ConnectError::Http { status: 503 }), "{err:?}");
    let _ = app.server.await;

    // Database not answering: not ready (alive all the same).
    let app = spawn_app().await;
    app.central.store.close().await;
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.shutdown().await;
}
