//! The operator's toolbox against a real WebSocket charger: any OCPP command through
//! `POST /chargers/{id}/ocpp/{Action}` and the typed conveniences reach the charger exactly as
//! sent and bring its answer back; a CALLERROR is 502, an offline charger 409, a silent one 504,
//! a bad body 422 naming the field (and nothing is sent). The configuration is read after the
//! first Boot and kept in step with accepted changes. Every answer matches the OpenAPI document
//! and every frame the server sent validates against the official schemas.

use std::time::Duration;

use echarging_sim::Charger;
use reqwest::Method;
use serde_json::{Value, json};

use crate::openapi::{Contract, fetch_spec};
use crate::support::schema::assert_server_frames_valid;
use crate::support::{TestApp, poll_until, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(5);
const ANY: &str = "/api/v1/chargers/{id}/ocpp/{action}";

/// POSTs `body` to `path` while the charger takes the one CALL it causes and answers
/// `answer`; returns the REST response and the CALL as the charger saw it.
async fn exchange(
    app: &TestApp,
    cp: &mut Charger,
    path: &str,
    body: &Value,
    answer: Value,
) -> (reqwest::Response, String, Value) {
    let request = app.api(Method::POST, path).json(body).send();
    let charger_side = async {
        let (id, action, payload) = cp.next_call(WAIT).await.expect("the CALL arrives");
        cp.reply(&id, answer).await.unwrap();
        (action, payload)
    };
    let (r, (action, payload)) = tokio::join!(request, charger_side);
    (r.unwrap(), action, payload)
}

#[tokio::test]
async fn commands_reach_a_real_charger_and_bring_its_answer_back() {
    let app = spawn_app().await;
    let contract = Contract {
        spec: fetch_spec(&app).await,
    };
    let mut cp = app.booted_charger("CP-TOOL").await;
    let base = "/api/v1/chargers/CP-TOOL";
    let profile = json!({
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 7, "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}
        }
    });
    // (path template, path, body, the action the charger must see, its answer)
    let cases = [
        (
            ANY,
            "/ocpp/ChangeConfiguration",
            json!({"key": "HeartbeatInterval", "value": "120"}),
            "ChangeConfiguration",
            json!({"status": "Accepted"}),
        ),
        (
            ANY,
            "/ocpp/GetConfiguration",
            json!({"key": ["HeartbeatInterval", "NoSuchKey"]}),
            "GetConfiguration",
            json!({
                "configurationKey": [{"key": "HeartbeatInterval", "readonly": false, "value": "120"}],
                "unknownKey": ["NoSuchKey"]
            }),
        ),
        (
            ANY,
            "/ocpp/DataTransfer",
            json!({"vendorId": "com.example", "messageId": "Ping", "data": "{\"n\":1}"}),
            "DataTransfer",
            json!({"status": "Accepted", "data": "pong"}),
        ),
        (
            ANY,
            "/ocpp/GetLocalListVersion",
            json!({}),
            "GetLocalListVersion",
            json!({"listVersion": 3}),
        ),
        (
            ANY,
            "/ocpp/SetChargingProfile",
            profile,
            "SetChargingProfile",
            json!({"status": "Accepted"}),
        ),
        (
            ANY,
            "/ocpp/GetInstalledCertificateIds",
            json!({"certificateType": "CentralSystemRootCertificate"}),
            "GetInstalledCertificateIds",
            json!({"status": "NotFound"}),
        ),
        (
            ANY,
            "/ocpp/UpdateFirmware",
            json!({"location": "https://fw.example.com/2.1.bin",
                "retrieveDate": "2026-12-01T02:00:00.000Z", "retries": 2}),
            "UpdateFirmware",
            json!({}),
        ),
        (
            "/api/v1/chargers/{id}/reset",
            "/reset",
            json!({"type": "Soft"}),
            "Reset",
            json!({"status": "Accepted"}),
        ),
        (
            "/api/v1/chargers/{id}/unlock",
            "/unlock",
            json!({"connectorId": 2}),
            "UnlockConnector",
            json!({"status": "Unlocked"}),
        ),
        (
            "/api/v1/chargers/{id}/availability",
            "/availability",
            json!({"connectorId": 0, "type": "Inoperative"}),
            "ChangeAvailability",
            json!({"status": "Scheduled"}),
        ),
        (
            "/api/v1/chargers/{id}/trigger",
            "/trigger",
            json!({"requestedMessage": "StatusNotification", "connectorId": 1}),
            "TriggerMessage",
            json!({"status": "Accepted"}),
        ),
    ];
    for (template, path, body, action, answer) in cases {
        contract.request("POST", template, &body);
        let (r, seen, payload) = exchange(
            &app,
            &mut cp,
            &format!("{base}{path}"),
            &body,
            answer.clone(),
        )
        .await;
        assert_eq!(seen, action, "{path}");
        assert_eq!(payload, body, "{path}: the charger got exactly the body");
        assert_eq!(r.status(), 200, "{path}");
        let got = contract.answer("POST", template, r).await;
        if template == ANY {
            assert_eq!(got, json!({"status": 200, "response": answer}), "{path}");
        } else {
            assert_eq!(got, answer, "{path}");
        }
    }
    assert!(assert_server_frames_valid(&cp) >= 11);
    // The document lists the actions the path takes, and each one's official schemas.
    let op = &contract.spec["paths"][ANY]["post"];
    let action = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "action")
        .unwrap();
    let listed = action["schema"]["$ref"]
        .as_str()
        .map(|r| &contract.spec["components"]["schemas"][r.rsplit('/').next().unwrap()])
        .unwrap_or(&action["schema"]);
    let names = listed["enum"].as_array().unwrap();
    assert_eq!(names.len(), 26, "{names:?}");
    for name in names {
        let name = name.as_str().unwrap();
        for component in [format!("Ocpp{name}"), format!("Ocpp{name}Response")] {
            assert!(
                contract.spec["components"]["schemas"][&component].is_object(),
                "{component}"
            );
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_callerror_is_502_with_its_code_and_a_broken_answer_too() {
    let app = spawn_app().await;
    let contract = Contract {
        spec: fetch_spec(&app).await,
    };
    let mut cp = app.booted_charger("CP-ERR").await;
    let path = "/api/v1/chargers/CP-ERR/ocpp/GetDiagnostics";
    let body = json!({"location": "ftp://diag.example.com/upload/"});
    let request = app.api(Method::POST, path).json(&body).send();
    let charger_side = async {
        let (id, action, _) = cp.next_call(WAIT).await.unwrap();
        assert_eq!(action, "GetDiagnostics");
        cp.reply_error(&id, "NotSupported", "no diagnostics here")
            .await
            .unwrap();
    };
    let (r, ()) = tokio::join!(request, charger_side);
    let r = r.unwrap();
    assert_eq!(r.status(), 502);
    let problem = contract.answer("POST", ANY, r).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("NotSupported") && detail.contains("no diagnostics here"),
        "{detail}"
    );
    // An answer outside the response schema is the charger's fault as well.
    let (r, _, _) = exchange(
        &app,
        &mut cp,
        "/api/v1/chargers/CP-ERR/reset",
        &json!({"type": "Hard"}),
        json!({"status": "Maybe"}),
    )
    .await;
    assert_eq!(r.status(), 502);
    contract
        .answer("POST", "/api/v1/chargers/{id}/reset", r)
        .await;
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_is_sent() {
    let app = spawn_app().await;
    let contract = Contract {
        spec: fetch_spec(&app).await,
    };
    let mut cp = app.booted_charger("CP-BODY").await;
    app.register_charger("CP-AWAY", 1, None).await;
    let post = |path: &str, body: Value| app.api(Method::POST, path).json(&body).send();

    // (path, template, body, status, field)
    let cases = [
        (
            "/api/v1/chargers/CP-BODY/ocpp/Reset",
            ANY,
            json!({"type": "Warm"}),
            422,
            Some("type"),
        ),
        (
            "/api/v1/chargers/CP-BODY/ocpp/Reset",
            ANY,
            json!({}),
            422,
            Some("type"),
        ),
        (
            "/api/v1/chargers/CP-BODY/ocpp/ChangeConfiguration",
            ANY,
            json!({"key": "HeartbeatInterval", "value": "1", "extra": true}),
            422,
            Some("extra"),
        ),
        (
            "/api/v1/chargers/CP-BODY/ocpp/SetChargingProfile",
            ANY,
            json!({"connectorId": 1, "csChargingProfiles": {
                "chargingProfileId": 1, "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
                "chargingSchedule": {"chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.25}]}}}),
            422,
            Some("csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit"),
        ),
        (
            "/api/v1/chargers/CP-BODY/ocpp/UpdateFirmware",
            ANY,
            json!({"location": "not a uri", "retrieveDate": "2026-12-01T02:00:00Z"}),
            422,
            Some("location"),
        ),
        (
            "/api/v1/chargers/CP-BODY/ocpp/GetConfiguration",
            ANY,
            json!({"key": null}),
            422,
            Some("key"),
        ),
        (
            "/api/v1/chargers/CP-BODY/unlock",
            "/api/v1/chargers/{id}/unlock",
            json!({"connectorId": 3}),
            422,
            Some("connectorId"),
        ),
        (
            "/api/v1/chargers/CP-BODY/availability",
            "/api/v1/chargers/{id}/availability",
            json!({"connectorId": -1, "type": "Operative"}),
            422,
            Some("connectorId"),
        ),
        (
            "/api/v1/chargers/CP-BODY/ocpp/BootNotification",
            ANY,
            json!({"chargePointVendor": "x", "chargePointModel": "y"}),
            404,
            None,
        ),
        (
            "/api/v1/chargers/CP-BODY/ocpp/Frobnicate",
            ANY,
            json!({}),
            404,
            None,
        ),
        (
            "/api/v1/chargers/CP-NONE/ocpp/Reset",
            ANY,
            json!({"type": "Soft"}),
            404,
            None,
        ),
        (
            "/api/v1/chargers/CP-AWAY/ocpp/Reset",
            ANY,
            json!({"type": "Soft"}),
            409,
            None,
        ),
        (
            "/api/v1/chargers/CP-AWAY/trigger",
            "/api/v1/chargers/{id}/trigger",
            json!({"requestedMessage": "Heartbeat"}),
            409,
            None,
        ),
    ];
    for (path, template, body, status, field) in cases {
        let r = post(path, body.clone()).await.unwrap();
        assert_eq!(r.status(), status, "{path} {body}");
        let problem = contract.answer("POST", template, r).await;
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{path} {body}: {problem}");
        }
        if path.ends_with("Frobnicate") {
            let detail = problem["detail"].as_str().unwrap();
            assert!(
                detail.contains("GetConfiguration"),
                "lists the actions: {detail}"
            );
        }
    }
    // A customer may not use the toolbox.
    let customer = crate::support::create_customer(&app, "Ann", &["ANN-1"]).await;
    let r = crate::support::as_customer(
        &app,
        &customer,
        Method::POST,
        "/api/v1/chargers/CP-BODY/reset",
    )
    .json(&json!({"type": "Soft"}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    // None of it reached the charger.
    assert!(
        cp.next_call(Duration::from_millis(300)).await.is_err(),
        "a refused request was sent"
    );
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}

#[tokio::test]
async fn a_charger_that_never_answers_is_504() {
    let app = spawn_app_with(|s| s.call_timeout = Duration::from_millis(500)).await;
    let contract = Contract {
        spec: fetch_spec(&app).await,
    };
    let mut cp = app.booted_charger("CP-MUTE").await;
    let request = app
        .api(Method::POST, "/api/v1/chargers/CP-MUTE/ocpp/ClearCache")
        .json(&json!({}))
        .send();
    let charger_side = async {
        let (_, action, _) = cp.next_call(WAIT).await.unwrap();
        assert_eq!(action, "ClearCache");
    };
    let (r, ()) = tokio::join!(request, charger_side);
    let r = r.unwrap();
    assert_eq!(r.status(), 504);
    contract.answer("POST", ANY, r).await;
    assert_server_frames_valid(&cp);
    app.shutdown().await;
}

#[tokio::test]
async fn the_configuration_is_read_after_the_first_boot_and_kept_in_step() {
    let app = spawn_app_with(|s| s.read_configuration_on_boot = true).await;
    let contract = Contract {
        spec: fetch_spec(&app).await,
    };
    let show = "/api/v1/chargers/{id}/configuration";
    let path = "/api/v1/chargers/CP-CFG/configuration";
    app.register_charger("CP-CFG", 2, None).await;
    let r = app.api(Method::GET, path).send().await.unwrap();
    let never = contract.answer("GET", show, r).await;
    assert_eq!(
        never,
        json!({"fetchedAt": null, "keys": [], "unknownKeys": []})
    );

    let mut cp = app.connect("CP-CFG").await;
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");
    let (id, action, payload) = cp
        .next_call(WAIT)
        .await
        .expect("GetConfiguration after Boot");
    assert_eq!(action, "GetConfiguration");
    assert_eq!(payload, json!({}), "all keys");
    let keys = json!([
        {"key": "HeartbeatInterval", "readonly": false, "value": "300"},
        {"key": "NumberOfConnectors", "readonly": true, "value": "2"},
        {"key": "AuthorizationKey", "readonly": false}
    ]);
    cp.reply(&id, json!({"configurationKey": keys}))
        .await
        .unwrap();
    let read = poll_until(&app, path, |v| v["fetchedAt"].is_string()).await;
    assert_eq!(
        read["keys"],
        json!([
            {"key": "HeartbeatInterval", "value": "300", "readonly": false},
            {"key": "NumberOfConnectors", "value": "2", "readonly": true},
            {"key": "AuthorizationKey", "value": null, "readonly": false}
        ])
    );
    let r = app.api(Method::GET, path).send().await.unwrap();
    contract.answer("GET", show, r).await;

    // Only the first Boot in this process reads it.
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");
    assert!(cp.next_call(Duration::from_millis(300)).await.is_err());

    // A change the charger accepts is in the snapshot and the ledger's log; a refused one is
    // in neither.
    for (value, status) in [("60", "Accepted"), ("5", "Rejected")] {
        let body = json!({"key": "HeartbeatInterval", "value": value});
        let (r, _, _) = exchange(
            &app,
            &mut cp,
            "/api/v1/chargers/CP-CFG/ocpp/ChangeConfiguration",
            &body,
            json!({"status": status}),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let now = poll_until(&app, path, |_| true).await;
    assert_eq!(now["keys"][0]["value"], "60");
    assert_eq!(now["fetchedAt"], read["fetchedAt"]);
    let changes: Vec<_> = app
        .central
        .store
        .events_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.as_str() == "ConfigurationChanged")
        .collect();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].data["value"], "60");

    // On demand: a fresh read replaces the snapshot.
    let request = app
        .api(
            Method::POST,
            "/api/v1/chargers/CP-CFG/configuration/refresh",
        )
        .send();
    let charger_side = async {
        let (id, action, _) = cp.next_call(WAIT).await.unwrap();
        assert_eq!(action, "GetConfiguration");
        cp.reply(
            &id,
            json!({"configurationKey": [{"key": "HeartbeatInterval", "readonly": false, "value": "90"}],
                "unknownKey": ["Nope"]}),
        )
        .await
        .unwrap();
    };
    let (r, ()) = tokio::join!(request, charger_side);
    let r = r.unwrap();
    assert_eq!(r.status(), 200);
    let fresh = contract
        .answer("POST", "/api/v1/chargers/{id}/configuration/refresh", r)
        .await;
    assert_eq!(fresh["keys"].as_array().unwrap().len(), 1);
    assert_eq!(fresh["unknownKeys"], json!(["Nope"]));
    let r = app.api(Method::GET, path).send().await.unwrap();
    assert_eq!(contract.answer("GET", show, r).await, fresh);

    assert_server_frames_valid(&cp);

    // Offline and unknown chargers.
    drop(cp);
    app.wait_for_view("CP-CFG", |v| v["online"] == false).await;
    let refresh = "/api/v1/chargers/{id}/configuration/refresh";
    let r = app
        .api(
            Method::POST,
            "/api/v1/chargers/CP-CFG/configuration/refresh",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    contract.answer("POST", refresh, r).await;
    let r = app
        .api(Method::GET, "/api/v1/chargers/CP-NONE/configuration")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    contract.answer("GET", show, r).await;
    app.shutdown().await;
}
