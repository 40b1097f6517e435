//! Customers and their cards over their life: an operator blocks, expires, re-parents and
//! removes idTags and rotates tokens over REST; chargers hear it at their next Authorize,
//! StartTransaction or StopTransaction, and a blocked tag can neither book nor be started
//! remotely.

use std::time::Duration;

use echarging_sim::Charger;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::schema::assert_server_frames_valid;
use crate::support::*;

async fn authorize(charger: &mut Charger, tag: &str) -> Value {
    charger
        .call_result("Authorize", json!({"idTag": tag}))
        .await
        .unwrap()["idTagInfo"]
        .clone()
}

async fn change(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.api(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Authorize until it answers `status`, failing after `within`.
async fn authorize_until(
    charger: &mut Charger,
    tag: &str,
    status: &str,
    within: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let info = authorize(charger, tag).await;
        if info["status"] == status {
            return info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {info} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_blocked_tag_is_refused_everywhere_within_a_second_and_unblocked_again() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("TAGS-1").await;
    let ada = create_customer(&app, "Ada", &["ADA-CARD", "ADA-APP"]).await;
    // Warm the cache: the block must not wait for it to age.
    assert_eq!(
        authorize(&mut charger, "ada-card").await["status"],
        "Accepted"
    );

    let (status, view) = change(
        &app,
        Method::PATCH,
        &format!("/api/v1/customers/{}/id-tags/Ada-Card", ada.id),
        Some(json!({"status": "BLOCKED"})),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["tags"][0]["status"], "BLOCKED");
    assert_eq!(view["tags"][0]["authorization"], "Blocked");
    authorize_until(&mut charger, "ADA-CARD", "Blocked", Duration::from_secs(1)).await;
    // The other card is untouched.
    assert_eq!(
        authorize(&mut charger, "ADA-APP").await["status"],
        "Accepted"
    );

    // It cannot book, nor be started remotely …
    let start = now() + time::Duration::hours(1);
    let r = as_customer(&app, &ada, Method::POST, "/api/v1/reservations")
        .json(
            &json!({"chargerId": "TAGS-1", "idTag": "ADA-CARD", "start": rfc(start),
            "end": rfc(start + time::Duration::hours(1))}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["field"], "idTag", "{problem}");
    let r = app
        .api(Method::POST, "/api/v1/chargers/TAGS-1/remote-start")
        .json(&json!({"connectorId": 1, "idTag": "ADA-CARD"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // … and a charger that starts anyway (offline authorization) is told Blocked, and the
    // start is recorded as refused, charged to nobody.
    let answer = charger
        .call_result(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "ADA-CARD", "meterStart": 0,
                "timestamp": rfc(now())}),
        )
        .await
        .unwrap();
    assert_eq!(answer["idTagInfo"]["status"], "Blocked", "{answer}");
    let tx = answer["transactionId"].as_i64().unwrap();
    let t = poll_until(&app, &format!("/api/v1/transactions/{tx}"), |t| {
        t["status"] == "REFUSED"
    })
    .await;
    assert_eq!(t["customerId"], Value::Null);

    let (status, _) = change(
        &app,
        Method::PATCH,
        &format!("/api/v1/customers/{}/id-tags/ADA-CARD", ada.id),
        Some(json!({"status": "ACCEPTED"})),
    )
    .await;
    assert_eq!(status, 200);
    authorize_until(&mut charger, "ADA-CARD", "Accepted", Duration::from_secs(1)).await;
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}

#[tokio::test]
async fn expiry_and_fleet_parents_reach_the_charger_in_id_tag_info() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("TAGS-2").await;
    let fleet = create_customer(&app, "Fleet Ltd", &["FLEET-1"]).await;
    let later = rfc(now() + time::Duration::days(30));
    let (status, view) = change(
        &app,
        Method::POST,
        &format!("/api/v1/customers/{}/id-tags", fleet.id),
        Some(json!({"idTag": "VAN-7", "parentIdTag": "FLEET-1", "expiryDate": later})),
    )
    .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["idTags"], json!(["FLEET-1", "VAN-7"]));
    let info = authorize(&mut charger, "VAN-7").await;
    assert_eq!(info["status"], "Accepted");
    assert_eq!(info["parentIdTag"], "FLEET-1");
    assert!(info["expiryDate"].is_string(), "{info}");

    let past = rfc(now() - time::Duration::minutes(1));
    let (status, _) = change(
        &app,
        Method::PATCH,
        &format!("/api/v1/customers/{}/id-tags/VAN-7", fleet.id),
        Some(json!({"expiryDate": past})),
    )
    .await;
    assert_eq!(status, 200);
    let info = authorize_until(&mut charger, "VAN-7", "Expired", Duration::from_secs(1)).await;
    assert_eq!(info["parentIdTag"], "FLEET-1");
    // `null` clears it.
    let (status, view) = change(
        &app,
        Method::PATCH,
        &format!("/api/v1/customers/{}/id-tags/VAN-7", fleet.id),
        Some(json!({"expiryDate": null, "parentIdTag": null})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["tags"][1]["expiryDate"], Value::Null);
    let info = authorize_until(&mut charger, "VAN-7", "Accepted", Duration::from_secs(1)).await;
    assert_eq!(info.get("parentIdTag"), None);

    // A tag that is someone else's cannot be added; a bad date names its field.
    let other = create_customer(&app, "Other", &["OTHER-1"]).await;
    let (status, _) = change(
        &app,
        Method::POST,
        &format!("/api/v1/customers/{}/id-tags", other.id),
        Some(json!({"idTag": "van-7"})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, problem) = change(
        &app,
        Method::PATCH,
        &format!("/api/v1/customers/{}/id-tags/VAN-7", fleet.id),
        Some(json!({"expiryDate": "soon"})),
    )
    .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("expiryDate"))
    );
    let (status, _) = change(
        &app,
        Method::PATCH,
        &format!("/api/v1/customers/{}/id-tags/VAN-7", other.id),
        Some(json!({"status": "BLOCKED"})),
    )
    .await;
    assert_eq!(
        status, 404,
        "another customer's tag is not theirs to change"
    );
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}

#[tokio::test]
async fn removing_a_tag_renaming_and_rotating_the_token() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("TAGS-3").await;
    let bo = create_customer(&app, "Bo", &["BO-1", "BO-2"]).await;
    assert_eq!(authorize(&mut charger, "BO-2").await["status"], "Accepted");
    let (status, view) = change(
        &app,
        Method::DELETE,
        &format!("/api/v1/customers/{}/id-tags/BO-2", bo.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(view["idTags"], json!(["BO-1"]));
    authorize_until(&mut charger, "BO-2", "Invalid", Duration::from_secs(1)).await;

    let (status, view) = change(
        &app,
        Method::PATCH,
        &format!("/api/v1/customers/{}", bo.id),
        Some(json!({"name": "Bo Diddley"})),
    )
    .await;
    assert_eq!((status, view["name"].as_str()), (200, Some("Bo Diddley")));

    // The customer signs in with its token (cached), then the operator rotates it.
    let me = |token: &str| {
        app.http
            .get(app.url("/api/v1/me"))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(me(&bo.token).await.unwrap().status(), 200);
    let (status, view) = change(
        &app,
        Method::POST,
        &format!("/api/v1/customers/{}/token", bo.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let fresh = view["token"].as_str().unwrap().to_owned();
    assert_eq!(
        me(&bo.token).await.unwrap().status(),
        401,
        "old token dead at once"
    );
    let page: Value = me(&fresh).await.unwrap().json().await.unwrap();
    assert_eq!(page["customer"]["name"], "Bo Diddley");
    // The token is not shown anywhere else.
    let (_, shown) = change(
        &app,
        Method::GET,
        &format!("/api/v1/customers/{}", bo.id),
        None,
    )
    .await;
    assert_eq!(shown.get("token"), None);
    app.shutdown().await;
}

/// The next server CALL, which must be `action`.
async fn expect_call(charger: &mut Charger, action: &str) -> (String, Value) {
    let (id, got, payload) = charger
        .next_call(Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("expected {action}: {e}"));
    assert_eq!(got, action, "{payload}");
    (id, payload)
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let (status, body) = change(app, Method::GET, path, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

#[tokio::test]
async fn deleting_a_customer_cancels_its_bookings_and_forgets_it_but_keeps_its_charging() {
    let app = spawn_app_with(|s| s.read_configuration_on_boot = false).await;
    let mut charger = app.booted_charger("DEL-1").await;
    let cy = create_customer(&app, "Cy", &["CY-1"]).await;
    let path = format!("/api/v1/customers/{}", cy.id);

    // A past walk-in transaction of Cy's.
    let started = charger
        .call_result(
            "StartTransaction",
            json!({"connectorId": 2, "idTag": "CY-1", "meterStart": 100,
                "timestamp": rfc(now() - time::Duration::minutes(30))}),
        )
        .await
        .unwrap();
    assert_eq!(started["idTagInfo"]["status"], "Accepted", "{started}");
    let tx = started["transactionId"].as_i64().unwrap();

    // While it is charging the deletion is refused and nothing changes.
    let (status, problem) = change(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["detail"], "customer is charging; stop first");
    assert_eq!(get_json(&app, &path).await["idTags"], json!(["CY-1"]));
    assert_eq!(authorize(&mut charger, "CY-1").await["status"], "Accepted");

    let stopped = charger
        .call_result(
            "StopTransaction",
            json!({"transactionId": tx, "meterStop": 2100, "idTag": "CY-1",
                "timestamp": rfc(now() - time::Duration::minutes(20))}),
        )
        .await
        .unwrap();
    assert_eq!(stopped["idTagInfo"]["status"], "Accepted", "{stopped}");

    // A booking in five minutes: within the early grace, so the charger holds it at once.
    let booked = as_customer(&app, &cy, Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": "DEL-1", "connectorId": 1,
            "start": rfc(now() + time::Duration::minutes(5)),
            "end": rfc(now() + time::Duration::minutes(65))}))
        .send()
        .await
        .unwrap();
    assert_eq!(booked.status(), 201);
    let rid = booked.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let (call, reserve) = expect_call(&mut charger, "ReserveNow").await;
    assert_eq!(reserve["reservationId"], rid);
    charger
        .reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    poll_until(&app, &format!("/api/v1/reservations/{rid}"), |r| {
        r["chargerAck"] == "ACCEPTED"
    })
    .await;
    let me = |token: &str| {
        app.http
            .get(app.url("/api/v1/me"))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(me(&cy.token).await.unwrap().status(), 200, "token cached");
    poll_until(&app, &format!("{path}/mypage"), |p| {
        p["reservations"].as_array().is_some_and(|e| !e.is_empty())
    })
    .await;

    // Deleted: the charger is told to drop the reservation, which is CANCELLED.
    let (status, body) = change(&app, Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        me(&cy.token).await.unwrap().status(),
        401,
        "token dead at once"
    );
    let (call, cancel) = expect_call(&mut charger, "CancelReservation").await;
    assert_eq!(cancel, json!({"reservationId": rid}));
    charger
        .reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let r = get_json(&app, &format!("/api/v1/reservations/{rid}")).await;
    assert_eq!(r["status"], "CANCELLED");
    authorize_until(&mut charger, "CY-1", "Invalid", Duration::from_secs(1)).await;

    // Its transaction stays, belonging to no one; the customer, its page and its tag are gone.
    let t = get_json(&app, &format!("/api/v1/transactions/{tx}")).await;
    assert_eq!(t["customerId"], Value::Null, "{t}");
    assert_eq!(t["idTag"], "CY-1");
    let listed = get_json(&app, "/api/v1/transactions?chargerId=DEL-1").await;
    assert!(
        listed.to_string().contains(&format!("\"id\":{tx}")),
        "{listed}"
    );
    let (status, _) = change(&app, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = change(&app, Method::GET, &format!("{path}/mypage"), None).await;
        if status == 404 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "my page still there"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The tag is free again, and a second delete is 404 (problem+json).
    create_customer(&app, "Cy again", &["CY-1"]).await;
    let r = app.api(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}

#[tokio::test]
async fn a_deleted_customers_live_page_stream_ends() {
    let app = spawn_app().await;
    let dee = create_customer(&app, "Dee", &["DEE-1"]).await;
    // The page exists in the view before the stream can open.
    let page = format!("/api/v1/customers/{}/mypage", dee.id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while change(&app, Method::GET, &page, None).await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "no page");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut stream = as_customer(&app, &dee, Method::GET, "/api/v1/me/events")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("snapshot")
        .unwrap()
        .expect("a chunk");
    assert!(String::from_utf8_lossy(&first).contains("snapshot"));

    let (status, _) = change(
        &app,
        Method::DELETE,
        &format!("/api/v1/customers/{}", dee.id),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(_chunk) = stream.chunk().await.unwrap() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its customer");
    app.shutdown().await;
}
