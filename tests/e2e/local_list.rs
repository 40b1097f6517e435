//! Local authorization lists kept in step with the ledger: a charger whose configuration says
//! it keeps one gets every customer's idTags in full after its Boot (cut to its
//! `SendLocalListMaxLength`), then each change as a differential (a blocked tag within a second,
//! a removed one without idTagInfo); after a reconnect it is asked its version and resent the
//! list when behind; refusals show in the charger view; the operator can force a resend.

use std::time::{Duration, Instant};

use echarging_sim::Charger;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::schema::assert_server_frames_valid;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(5);

fn keys(send_max: u32) -> Value {
    json!([
        {"key": "SupportedFeatureProfiles", "readonly": true,
         "value": "Core,FirmwareManagement,LocalAuthListManagement,Reservation"},
        {"key": "LocalAuthListEnabled", "readonly": false, "value": "true"},
        {"key": "SendLocalListMaxLength", "readonly": true, "value": send_max.to_string()},
        {"key": "LocalAuthListMaxLength", "readonly": true, "value": "100"}
    ])
}

/// The next CALL, which must be `action`; its id and payload.
async fn expect_call(charger: &mut Charger, action: &str) -> (String, Value) {
    let (id, got, payload) = charger
        .next_call(WAIT)
        .await
        .unwrap_or_else(|e| panic!("expected {action}: {e}"));
    assert_eq!(got, action, "{payload}");
    (id, payload)
}

/// Boot, answer GetConfiguration with `config` and GetLocalListVersion with `held`.
async fn boot_with(charger: &mut Charger, config: Value, held: i64) {
    let boot = charger.boot().await.expect("boot answered");
    assert_eq!(boot["status"], "Accepted");
    let (id, _) = expect_call(charger, "GetConfiguration").await;
    charger
        .reply(&id, json!({"configurationKey": config}))
        .await
        .unwrap();
    let (id, _) = expect_call(charger, "GetLocalListVersion").await;
    charger
        .reply(&id, json!({"listVersion": held}))
        .await
        .unwrap();
}

/// Answer every SendLocalList of a full sync Accepted; the entries by idTag and the last version.
async fn take_full_list(charger: &mut Charger, tags: usize) -> (Vec<Value>, i64) {
    let mut entries = Vec::new();
    let mut versions = Vec::new();
    while entries.len() < tags || versions.is_empty() {
        let (id, payload) = expect_call(charger, "SendLocalList").await;
        let expected = if versions.is_empty() {
            "Full"
        } else {
            "Differential"
        };
        assert_eq!(payload["updateType"], expected, "{payload}");
        versions.push(payload["listVersion"].as_i64().unwrap());
        entries.extend(
            payload["localAuthorizationList"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        charger
            .reply(&id, json!({"status": "Accepted"}))
            .await
            .unwrap();
    }
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions rise: {versions:?}"
    );
    (entries, *versions.last().unwrap())
}

fn entry<'a>(entries: &'a [Value], tag: &str) -> &'a Value {
    entries
        .iter()
        .find(|e| e["idTag"] == tag)
        .unwrap_or_else(|| panic!("{tag} in {entries:?}"))
}

async fn patch(app: &TestApp, path: &str, body: Value) {
    let r = app
        .api(Method::PATCH, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn the_list_is_sent_in_full_after_boot_and_a_blocked_tag_follows_within_a_second() {
    let app = spawn_app_with(|s| s.read_configuration_on_boot = true).await;
    let ada = create_customer(&app, "Ada", &["ADA-1", "ADA-2"]).await;
    create_customer(&app, "Bob", &["BOB-1"]).await;
    patch(
        &app,
        &format!("/api/v1/customers/{}/id-tags/ADA-2", ada.id),
        json!({"expiryDate": "2099-01-01T00:00:00Z", "parentIdTag": "FLEET-7"}),
    )
    .await;
    app.register_charger("LL-1", 2, None).await;
    let mut charger = app.connect("LL-1").await;
    boot_with(&mut charger, keys(2), 0).await;

    // Three tags, two to a message: Full with two, then a Differential with the third.
    let (entries, version) = take_full_list(&mut charger, 3).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(entry(&entries, "ADA-1")["idTagInfo"]["status"], "Accepted");
    assert_eq!(entry(&entries, "BOB-1")["idTagInfo"]["status"], "Accepted");
    let fleet = &entry(&entries, "ADA-2")["idTagInfo"];
    assert_eq!(fleet["parentIdTag"], "FLEET-7");
    assert_eq!(fleet["expiryDate"], "2099-01-01T00:00:00.000Z");
    let view = app
        .wait_for_view("LL-1", |v| v["localList"]["status"] == "Accepted")
        .await;
    assert_eq!(view["localList"]["version"], version);
    assert!(view["localList"]["syncedAt"].is_string());

    // Blocked over REST: the charger hears it as a differential within a second.
    let blocked_at = Instant::now();
    patch(
        &app,
        &format!("/api/v1/customers/{}/id-tags/ada-1", ada.id),
        json!({"status": "BLOCKED"}),
    )
    .await;
    let (id, payload) = expect_call(&mut charger, "SendLocalList").await;
    let took = blocked_at.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(payload["updateType"], "Differential");
    assert!(payload["listVersion"].as_i64().unwrap() > version);
    // The changed customer's tags, as they stand now.
    let list = payload["localAuthorizationList"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        entry(&list, "ADA-1"),
        &json!({"idTag": "ADA-1", "idTagInfo": {"status": "Blocked"}})
    );
    assert_eq!(entry(&list, "ADA-2")["idTagInfo"]["status"], "Accepted");
    let blocked_version = payload["listVersion"].as_i64().unwrap();
    charger
        .reply(&id, json!({"status": "Accepted"}))
        .await
        .unwrap();
    app.wait_for_view("LL-1", |v| v["localList"]["version"] == blocked_version)
        .await;

    // A removed tag is sent without idTagInfo.
    let r = app
        .api(
            Method::DELETE,
            &format!("/api/v1/customers/{}/id-tags/ADA-2", ada.id),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (id, payload) = expect_call(&mut charger, "SendLocalList").await;
    let list = payload["localAuthorizationList"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        entry(&list, "ADA-2"),
        &json!({"idTag": "ADA-2"}),
        "{payload}"
    );
    assert_eq!(entry(&list, "ADA-1")["idTagInfo"]["status"], "Blocked");
    assert!(payload["listVersion"].as_i64().unwrap() > blocked_version);
    charger
        .reply(&id, json!({"status": "Accepted"}))
        .await
        .unwrap();

    // A deleted customer's tags leave every list.
    let carl = create_customer(&app, "Carl", &["CARL-1"]).await;
    let (id, payload) = expect_call(&mut charger, "SendLocalList").await;
    assert_eq!(
        payload["localAuthorizationList"],
        json!([{"idTag": "CARL-1", "idTagInfo": {"status": "Accepted"}}])
    );
    charger
        .reply(&id, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let r = app
        .api(Method::DELETE, &format!("/api/v1/customers/{}", carl.id))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (id, payload) = expect_call(&mut charger, "SendLocalList").await;
    assert_eq!(
        payload["localAuthorizationList"],
        json!([{"idTag": "CARL-1"}])
    );
    charger
        .reply(&id, json!({"status": "Accepted"}))
        .await
        .unwrap();

    assert!(assert_server_frames_valid(&charger) >= 8);
    app.shutdown().await;
}

#[tokio::test]
async fn a_reconnected_charger_is_asked_its_version_and_resent_the_list_when_behind() {
    let app = spawn_app_with(|s| s.read_configuration_on_boot = true).await;
    let ada = create_customer(&app, "Ada", &["ADA-1"]).await;
    app.register_charger("LL-2", 1, None).await;
    let mut charger = app.connect("LL-2").await;
    boot_with(&mut charger, keys(10), 0).await;
    let (_, version) = take_full_list(&mut charger, 1).await;
    app.wait_for_view("LL-2", |v| v["localList"]["version"] == version)
        .await;

    // Rebooted holding the same version: nothing to send.
    let boot = charger.boot().await.unwrap();
    assert_eq!(boot["status"], "Accepted");
    let (id, _) = expect_call(&mut charger, "GetLocalListVersion").await;
    charger
        .reply(&id, json!({"listVersion": version}))
        .await
        .unwrap();
    let quiet = charger.next_call(Duration::from_millis(300)).await;
    assert!(quiet.is_err(), "nothing more: {quiet:?}");

    // Offline while a tag is blocked: after its reconnect it is behind and gets it all again.
    drop(charger);
    app.wait_for_view("LL-2", |v| v["online"] == false).await;
    patch(
        &app,
        &format!("/api/v1/customers/{}/id-tags/ADA-1", ada.id),
        json!({"status": "BLOCKED"}),
    )
    .await;
    // Its differential finds it offline (a charger back online by then would get it instead).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut charger = app.connect("LL-2").await;
    let boot = charger.boot().await.unwrap();
    assert_eq!(boot["status"], "Accepted");
    let (id, _) = expect_call(&mut charger, "GetLocalListVersion").await;
    charger
        .reply(&id, json!({"listVersion": version}))
        .await
        .unwrap();
    let (entries, newer) = take_full_list(&mut charger, 1).await;
    assert!(newer > version);
    assert_eq!(entry(&entries, "ADA-1")["idTagInfo"]["status"], "Blocked");

    // A differential answered VersionMismatch: the list is sent in full.
    patch(
        &app,
        &format!("/api/v1/customers/{}/id-tags/ADA-1", ada.id),
        json!({"status": "ACCEPTED"}),
    )
    .await;
    let (id, payload) = expect_call(&mut charger, "SendLocalList").await;
    assert_eq!(payload["updateType"], "Differential");
    charger
        .reply(&id, json!({"status": "VersionMismatch"}))
        .await
        .unwrap();
    let (entries, _) = take_full_list(&mut charger, 1).await;
    assert_eq!(entry(&entries, "ADA-1")["idTagInfo"]["status"], "Accepted");

    assert_server_frames_valid(&charger);
    app.shutdown().await;
}

#[tokio::test]
async fn refusals_are_shown_and_the_operator_can_force_a_full_resend() {
    let app = spawn_app_with(|s| s.read_configuration_on_boot = true).await;
    create_customer(&app, "Ada", &["ADA-1"]).await;
    // A charger without the profile gets nothing after its Boot.
    app.register_charger("LL-3", 1, None).await;
    let mut charger = app.connect("LL-3").await;
    let boot = charger.boot().await.unwrap();
    assert_eq!(boot["status"], "Accepted");
    let (id, _) = expect_call(&mut charger, "GetConfiguration").await;
    charger
        .reply(
            &id,
            json!({"configurationKey": [
                {"key": "SupportedFeatureProfiles", "readonly": true, "value": "Core"}
            ]}),
        )
        .await
        .unwrap();
    let quiet = charger.next_call(Duration::from_millis(300)).await;
    assert!(quiet.is_err(), "no list for it: {quiet:?}");
    let view = app.charger_view("LL-3").await;
    assert_eq!(
        view["localList"],
        json!({"version": 0, "syncedAt": null, "status": "NeverSynced"})
    );

    // The operator forces one; the charger's NotSupported is recorded.
    let r = app
        .api(Method::POST, "/api/v1/chargers/LL-3/local-list/sync")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (id, payload) = expect_call(&mut charger, "SendLocalList").await;
    assert_eq!(payload["updateType"], "Full");
    charger
        .reply(&id, json!({"status": "NotSupported"}))
        .await
        .unwrap();
    app.wait_for_view("LL-3", |v| v["localList"]["status"] == "NotSupported")
        .await;

    // Failed, then accepted on the next forced sync.
    app.api(Method::POST, "/api/v1/chargers/LL-3/local-list/sync")
        .send()
        .await
        .unwrap();
    let (id, _) = expect_call(&mut charger, "SendLocalList").await;
    charger
        .reply(&id, json!({"status": "Failed"}))
        .await
        .unwrap();
    app.wait_for_view("LL-3", |v| v["localList"]["status"] == "Failed")
        .await;
    app.api(Method::POST, "/api/v1/chargers/LL-3/local-list/sync")
        .send()
        .await
        .unwrap();
    let (entries, version) = take_full_list(&mut charger, 1).await;
    assert_eq!(entries.len(), 1);
    app.wait_for_view("LL-3", |v| {
        v["localList"]["status"] == "Accepted" && v["localList"]["version"] == version
    })
    .await;

    let r = app
        .api(Method::POST, "/api/v1/chargers/NOPE/local-list/sync")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}
