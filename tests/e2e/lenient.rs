//! Lenient by default, strict on demand (`ocpp_strictness`): off-spec frames real chargers send
//! are answered as meant and each deviation is counted, per charger and in /metrics; strict
//! mode refuses them as the schemas do, and the session lives on either way.

use std::time::Duration;

use echarging::ocpp::v16::Strictness;
use echarging_sim::{CallOutcome, Charger};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::schema::assert_server_frames_valid;
use crate::support::*;

/// A Schneider EVlink-style Boot: a serial longer than CiString25, nulls for unused fields and
/// a vendor field the schema does not have.
fn evlink_boot() -> Value {
    json!({
        "chargePointVendor": "Schneider Electric",
        "chargePointModel": "EVlink Pro AC",
        "chargePointSerialNumber": "EVB1A22P4KI3N2151112345678",
        "chargeBoxSerialNumber": "3N2151112345678-EVB1A22P4KI",
        "firmwareVersion": "3.4.0.12",
        "iccid": null,
        "imsi": null,
        "meterType": "EVB1A",
        "vendorExtension": {"hw": "rev C"}
    })
}

/// The process-wide metrics text (other tests in this binary count there too).
async fn metrics(app: &TestApp) -> String {
    app.http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn rules(view: &Value) -> Vec<(String, String, u64)> {
    let mut found: Vec<(String, String, u64)> = view["deviations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["action"].as_str().unwrap().to_owned(),
                d["rule"].as_str().unwrap().to_owned(),
                d["count"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn an_off_spec_boot_is_accepted_recorded_and_counted() {
    let app = spawn_app().await;
    app.register_charger("EVLINK-1", 1, None).await;
    let mut charger = app.connect("EVLINK-1").await;
    for _ in 0..2 {
        let answer = charger
            .call_result("BootNotification", evlink_boot())
            .await
            .unwrap();
        assert_eq!(answer["status"], "Accepted", "{answer}");
    }
    let view = app
        .wait_for_view("EVLINK-1", |v| {
            !v["deviations"].as_array().unwrap().is_empty()
        })
        .await;
    // Kept whole, not cut to 25.
    assert_eq!(view["chargeBoxSerialNumber"], "3N2151112345678-EVB1A22P4KI");
    assert_eq!(view["serialNumber"], "EVB1A22P4KI3N2151112345678");
    assert_eq!(view["firmwareVersion"], "3.4.0.12");
    let boot = "BootNotification".to_owned();
    assert_eq!(
        rules(&view),
        [
            (boot.clone(), "null_optional".to_owned(), 4),
            (boot.clone(), "string_too_long".to_owned(), 4),
            (boot.clone(), "unknown_field".to_owned(), 2),
        ]
    );
    let text = metrics(&app).await;
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("echarging_ocpp_deviations_total")
                && l.contains(r#"action="BootNotification""#)
                && l.contains(r#"rule="string_too_long""#)
        })
        .unwrap_or_else(|| panic!("no deviation counter in:\n{text}"));
    // At least this charger's four (the registry is shared with the tests running beside it).
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 4.0, "{line}");
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}

#[tokio::test]
async fn strict_mode_refuses_the_same_boot_and_the_session_lives_on() {
    let app = spawn_app_with(|s| s.ocpp_strictness = Strictness::Strict).await;
    app.register_charger("EVLINK-2", 1, None).await;
    let mut charger = app.connect("EVLINK-2").await;
    match charger
        .call("BootNotification", evlink_boot())
        .await
        .unwrap()
    {
        CallOutcome::Error { code, .. } => assert_eq!(code, "PropertyConstraintViolation"),
        other => panic!("strict mode accepted it: {other:?}"),
    }
    let compliant =
        json!({"chargePointVendor": "Schneider Electric", "chargePointModel": "EVlink"});
    let answer = charger
        .call_result("BootNotification", compliant)
        .await
        .unwrap();
    assert_eq!(answer["status"], "Accepted");
    let view = app.charger_view("EVLINK-2").await;
    assert_eq!(view["deviations"], json!([]));
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}

#[tokio::test]
async fn a_decimal_comma_reading_is_energy_and_numbers_are_read_as_strings() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("KEBA-1").await;
    create_customer(&app, "Ada", &["ADA-TAG"]).await;
    let start = charger
        .call_result(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "ADA-TAG", "meterStart": "1000",
                "timestamp": rfc(now())}),
        )
        .await
        .unwrap();
    assert_eq!(start["idTagInfo"]["status"], "Accepted", "{start}");
    let tx = start["transactionId"].as_i64().unwrap();
    let answer = charger
        .call_result(
            "MeterValues",
            json!({"connectorId": 1, "transactionId": tx, "meterValue": [{
            "timestamp": rfc(now()),
            "sampledValue": [
                {"value": 7.4, "measurand": "Power.Active.Import", "unit": "kW"},
                {"value": "1,8", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
                {"value": "57", "measurand": "SoC", "unit": "percent", "location": "EV"}
            ]}]}),
        )
        .await
        .unwrap();
    assert_eq!(answer, json!({}));
    let t = poll_until(&app, &format!("/api/v1/transactions/{tx}"), |t| {
        t["lastMeterWh"] == 1800
    })
    .await;
    assert_eq!(t["meterStartWh"], 1000);
    let view = app.charger_view("KEBA-1").await;
    let seen = rules(&view);
    for rule in ["comma_decimal", "number_as_string", "enum_case"] {
        assert!(
            seen.iter().any(|(a, r, _)| a == "MeterValues" && r == rule),
            "{rule} missing: {seen:?}"
        );
    }
    assert!(
        seen.iter()
            .any(|(a, r, _)| a == "StartTransaction" && r == "string_as_number"),
        "{seen:?}"
    );
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}

#[tokio::test]
async fn the_subprotocol_in_another_case_is_echoed_as_offered() {
    let app = spawn_app().await;
    app.register_charger("CASE-1", 1, None).await;
    let mut config = app.charger_config("CASE-1");
    config.subprotocols = vec!["OCPP1.6".into()];
    let mut charger = Charger::connect(&config).await.expect("upgrade");
    assert_eq!(charger.protocol(), Some("OCPP1.6"));
    assert_eq!(charger.boot().await.unwrap()["status"], "Accepted");
    let view = app.charger_view("CASE-1").await;
    assert_eq!(
        rules(&view),
        [("Connect".to_owned(), "subprotocol_case".to_owned(), 1)]
    );
    app.shutdown().await;

    // Strict: another letter case is none of ours, refused at the upgrade (400)...
    let app = spawn_app_with(|s| s.ocpp_strictness = Strictness::Strict).await;
    app.register_charger("CASE-2", 1, None).await;
    let mut config = app.charger_config("CASE-2");
    config.subprotocols = vec!["OCPP1.6".into()];
    let err = Charger::connect(&config).await.err().expect("refused");
    assert!(
        matches!(err, echarging_sim::ConnectError::Http { status: 400 }),
        "{err:?}"
    );
    app.shutdown().await;

    // ...or, with `subprotocol_mismatch = close`, selected nothing and closed (OCPP-J §3.1.2).
    let app = spawn_app_with(|s| {
        s.ocpp_strictness = Strictness::Strict;
        s.subprotocol_mismatch = echarging::settings::SubprotocolMismatch::Close;
    })
    .await;
    app.register_charger("CASE-3", 1, None).await;
    let mut config = app.charger_config("CASE-3");
    config.subprotocols = vec!["OCPP1.6".into()];
    if let Ok(mut charger) = Charger::connect(&config).await {
        assert_eq!(charger.protocol(), None);
        assert_eq!(expect_close(&mut charger).await, Some(1002));
    }
    app.shutdown().await;
}

/// The status code of a raw WebSocket upgrade of `path`.
async fn upgrade_status(app: &TestApp, path: &str) -> u16 {
    let authority = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head))
        .await
        .expect("answered")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{head}"))
}

#[tokio::test]
async fn a_trailing_slash_after_the_id_is_the_same_endpoint_leniently() {
    let app = spawn_app().await;
    app.register_charger("SLASH-1", 1, None).await;
    assert_eq!(upgrade_status(&app, "/ocpp/SLASH-1/").await, 101);
    let view = app
        .wait_for_view("SLASH-1", |v| {
            !v["deviations"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(
        rules(&view),
        [("Connect".to_owned(), "url_trailing_slash".to_owned(), 1)]
    );
    // Still 404 for an id nobody registered.
    assert_eq!(upgrade_status(&app, "/ocpp/NOBODY/").await, 404);
    app.shutdown().await;

    let app = spawn_app_with(|s| s.ocpp_strictness = Strictness::Strict).await;
    app.register_charger("SLASH-2", 1, None).await;
    assert_eq!(upgrade_status(&app, "/ocpp/SLASH-2/").await, 404);
    assert_eq!(upgrade_status(&app, "/ocpp/SLASH-2").await, 101);
    app.shutdown().await;
}

#[tokio::test]
async fn a_connector_beyond_the_registered_count_is_added_and_bookable() {
    let app = spawn_app().await;
    app.register_charger("GROW-1", 1, None).await;
    let mut charger = app.connect("GROW-1").await;
    charger.boot().await.unwrap();
    for connector in [0, 1, 2] {
        charger
            .status_notification(connector, "Available", "NoError")
            .await
            .expect("answered");
    }
    let view = app.wait_for_view("GROW-1", |v| v["connectors"] == 2).await;
    assert!(
        view["connectorStatus"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["connectorId"] == 2),
        "{view}"
    );
    // Bookable on the connector it reported.
    let ada = create_customer(&app, "Ada", &["GROW-ADA"]).await;
    let start = now() + time::Duration::hours(2);
    let r = as_customer(&app, &ada, reqwest::Method::POST, "/api/v1/reservations")
        .json(
            &json!({"chargerId": "GROW-1", "connectorId": 2, "start": rfc(start),
            "end": rfc(start + time::Duration::hours(1))}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Beyond the ledger's bound: refused, and nothing stored.
    match charger
        .call(
            "StatusNotification",
            json!({"connectorId": 101, "errorCode": "NoError", "status": "Available"}),
        )
        .await
        .unwrap()
    {
        CallOutcome::Error { code, .. } => assert_eq!(code, "PropertyConstraintViolation"),
        other => panic!("connector 101 accepted: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let view = app.charger_view("GROW-1").await;
    assert_eq!(view["connectors"], 2);
    assert!(
        !view["connectorStatus"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["connectorId"] == 101),
        "{view}"
    );
    assert_server_frames_valid(&charger);
    app.shutdown().await;
}

/// Sends ClearCache through the toolbox while the charger answers `answer`.
async fn clear_cache(
    app: &TestApp,
    charger: &mut Charger,
    id: &str,
    answer: Value,
) -> (u16, Value) {
    let request = app
        .api(
            reqwest::Method::POST,
            &format!("/api/v1/chargers/{id}/ocpp/ClearCache"),
        )
        .json(&json!({}))
        .send();
    let charger_side = async {
        let (call, action, _) = charger
            .next_call(Duration::from_secs(5))
            .await
            .expect("the CALL arrives");
        assert_eq!(action, "ClearCache");
        charger.reply(&call, answer).await.unwrap();
    };
    let (r, ()) = tokio::join!(request, charger_side);
    let r = r.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn off_spec_answers_to_our_calls_are_read_too() {
    let off_spec = json!({"status": "accepted", "firmware": "x"});
    let app = spawn_app().await;
    let mut charger = app.booted_charger("ANSWER-1").await;
    let (status, body) = clear_cache(&app, &mut charger, "ANSWER-1", off_spec.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["status"], "Accepted");
    let seen = rules(&app.charger_view("ANSWER-1").await);
    for rule in ["enum_case", "unknown_field"] {
        assert!(
            seen.iter().any(|(a, r, _)| a == "ClearCache" && r == rule),
            "{rule}: {seen:?}"
        );
    }
    app.shutdown().await;

    // Strict: the same answer is a broken one (502), nothing counted.
    let app = spawn_app_with(|s| s.ocpp_strictness = Strictness::Strict).await;
    let mut charger = app.booted_charger("ANSWER-2").await;
    let (status, body) = clear_cache(&app, &mut charger, "ANSWER-2", off_spec).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(app.charger_view("ANSWER-2").await["deviations"], json!([]));
    app.shutdown().await;
}
