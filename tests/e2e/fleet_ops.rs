//! Fleet operations against real WebSocket chargers: one command to twenty chargers (two of
//! them offline) runs in the background and reports 18 ok and 2 offline; a bad payload, action
//! or target is refused before anything is sent. The configuration key policy is persisted,
//! reaches a charger on its next Boot (only the keys its snapshot does not already show), and
//! reaches booted chargers at once when it changes, with every outcome visible.

use std::time::Duration;

use echarging_sim::Charger;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::schema::assert_server_frames_valid;
use crate::support::{TestApp, poll_until, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(5);

/// A charger that answers every CALL it gets (TriggerMessage Accepted) until the socket
/// closes, returning how many it answered.
fn answering(mut cp: Charger) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut answered = 0;
        while let Ok((id, action, _)) = cp.next_call(Duration::from_secs(10)).await {
            let answer = match action.as_str() {
                "TriggerMessage" => json!({"status": "Accepted"}),
                _ => json!({}),
            };
            if cp.reply(&id, answer).await.is_err() {
                break;
            }
            answered += 1;
        }
        answered
    })
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.api(Method::POST, path).json(body).send().await.unwrap()
}

#[tokio::test]
async fn a_command_to_twenty_chargers_reports_each_with_two_offline() {
    let app = spawn_app().await;
    let ids: Vec<String> = (0..20).map(|n| format!("CP-FLEET-{n:02}")).collect();
    let mut chargers = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        if n % 10 == 3 {
            app.register_charger(id, 1, None).await; // 03 and 13 stay offline
        } else {
            chargers.push(answering(app.booted_charger(id).await));
        }
    }
    let command = json!({
        "action": "TriggerMessage",
        "payload": {"requestedMessage": "Heartbeat"},
        "chargerIds": ids,
        "concurrency": 4,
    });
    let r = post(&app, "/api/v1/fleet/commands", &command).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let started: Value = r.json().await.unwrap();
    assert_eq!(started["total"], 20);
    assert_eq!(
        location,
        format!("/api/v1/fleet/commands/{}", started["id"])
    );
    let done = poll_until(&app, &location, |j| j["state"] == "completed").await;
    assert_eq!(done["counts"], json!({"ok": 18, "offline": 2}), "{done:#}");
    assert_eq!(done["done"], 20);
    let outcomes = done["outcomes"].as_array().unwrap();
    for (n, o) in outcomes.iter().enumerate() {
        assert_eq!(o["chargerId"], ids[n]);
        if n % 10 == 3 {
            assert_eq!(o["outcome"], "offline", "{o}");
        } else {
            assert_eq!(o["outcome"], "ok", "{o}");
            assert_eq!(o["response"], json!({"status": "Accepted"}));
        }
    }
    // A filter picks the online ones.
    let r = post(
        &app,
        "/api/v1/fleet/commands",
        &json!({"action": "TriggerMessage", "payload": {"requestedMessage": "Heartbeat"},
            "filter": {"online": true}}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["total"], 18);
    let path = format!("/api/v1/fleet/commands/{}", job["id"]);
    let done = poll_until(&app, &path, |j| j["state"] == "completed").await;
    assert_eq!(done["counts"], json!({"ok": 18}));
    let list: Value = app
        .api(Method::GET, "/api/v1/fleet/commands")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        list[0]["outcomes"].is_null(),
        "the list leaves outcomes out"
    );
    app.shutdown().await;
    for c in chargers {
        assert_eq!(
            c.await.unwrap(),
            2,
            "each online charger answered both jobs"
        );
    }
}

#[tokio::test]
async fn bad_fleet_commands_are_refused_naming_the_member() {
    let app = spawn_app().await;
    app.register_charger("CP-F1", 1, None).await;
    let cases = [
        (
            json!({"action": "TriggerMessage", "payload": {"requestedMessage": "Nap"},
                "chargerIds": ["CP-F1"]}),
            "payload.requestedMessage",
        ),
        (
            json!({"action": "Heartbeat", "payload": {}, "chargerIds": ["CP-F1"]}),
            "action",
        ),
        (
            json!({"action": "ClearCache", "chargerIds": ["CP-NOPE"]}),
            "chargerIds[0]",
        ),
        (
            json!({"action": "ClearCache", "chargerIds": ["CP-F1", "CP-F1"]}),
            "chargerIds[1]",
        ),
        (json!({"action": "ClearCache"}), "chargerIds"),
        (
            json!({"action": "ClearCache", "chargerIds": ["CP-F1"], "filter": {}}),
            "filter",
        ),
        (
            json!({"action": "ClearCache", "chargerIds": ["CP-F1"], "concurrency": 0}),
            "concurrency",
        ),
    ];
    for (body, field) in cases {
        let r = post(&app, "/api/v1/fleet/commands", &body).await;
        assert_eq!(r.status(), 422, "{body}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    let r = app
        .api(Method::GET, "/api/v1/fleet/commands/999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.shutdown().await;
}

#[tokio::test]
async fn a_policy_reaches_a_charger_on_its_next_boot_and_booted_ones_at_once() {
    let app = spawn_app_with(|s| s.read_configuration_on_boot = true).await;
    app.register_charger("CP-POL", 1, None).await;
    let policy = json!({"HeartbeatInterval": "120", "MeterValueSampleInterval": 30});
    let r = app
        .api(Method::PUT, "/api/v1/fleet/configuration-policy")
        .json(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let view: Value = r.json().await.unwrap();
    assert_eq!(
        view["keys"],
        json!({"HeartbeatInterval": "120", "MeterValueSampleInterval": "30"})
    );
    assert_eq!(
        view["counts"],
        json!({"applied": 0, "rejected": 0, "pending": 1})
    );
    // Persisted in the ledger's database.
    let stored = app.central.store.configuration_policy().await.unwrap();
    assert_eq!(stored.len(), 2);

    // Its Boot: the configuration is read, and only the key that differs is changed.
    let mut cp = app.connect("CP-POL").await;
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");
    let (id, action, _) = cp.next_call(WAIT).await.expect("GetConfiguration");
    assert_eq!(action, "GetConfiguration");
    cp.reply(
        &id,
        json!({"configurationKey": [
            {"key": "HeartbeatInterval", "readonly": false, "value": "300"},
            {"key": "MeterValueSampleInterval", "readonly": false, "value": "30"},
        ]}),
    )
    .await
    .unwrap();
    let (id, action, payload) = cp.next_call(WAIT).await.expect("ChangeConfiguration");
    assert_eq!(action, "ChangeConfiguration");
    assert_eq!(payload, json!({"key": "HeartbeatInterval", "value": "120"}));
    cp.reply(&id, json!({"status": "Accepted"})).await.unwrap();
    let view = poll_until(&app, "/api/v1/fleet/configuration-policy", |v| {
        v["counts"]["applied"] == 1
    })
    .await;
    let keys = &view["chargers"][0]["keys"];
    assert_eq!(keys[0]["key"], "HeartbeatInterval");
    assert_eq!(keys[0]["state"], "applied");
    assert_eq!(keys[1]["state"], "applied");
    // The snapshot follows the accepted change.
    let config = poll_until(&app, "/api/v1/chargers/CP-POL/configuration", |c| {
        c["keys"][0]["value"] == "120"
    })
    .await;
    assert_eq!(config["keys"][0]["key"], "HeartbeatInterval");

    // A change reaches the booted charger at once; its refusal shows.
    let r = app
        .api(Method::PUT, "/api/v1/fleet/configuration-policy")
        .json(&json!({"HeartbeatInterval": "60"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (id, action, payload) = cp.next_call(WAIT).await.expect("ChangeConfiguration");
    assert_eq!(action, "ChangeConfiguration");
    assert_eq!(payload, json!({"key": "HeartbeatInterval", "value": "60"}));
    cp.reply(&id, json!({"status": "Rejected"})).await.unwrap();
    let view = poll_until(&app, "/api/v1/fleet/configuration-policy", |v| {
        v["counts"]["rejected"] == 1
    })
    .await;
    assert!(
        view["chargers"][0]["keys"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("Rejected"),
        "{view:#}"
    );
    // Bad policies are refused naming the key.
    for (body, field) in [
        (json!({"HeartbeatInterval": {"n": 1}}), "HeartbeatInterval"),
        (json!({"K": "x".repeat(501)}), "K"),
        (json!({"k": "1", "K": "2"}), "k"),
    ] {
        let r = app
            .api(Method::PUT, "/api/v1/fleet/configuration-policy")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{body}");
        let problem: Value = r.json().await.unwrap();
        assert!(
            problem["field"] == field || problem["field"] == field.to_uppercase(),
            "{problem}"
        );
    }
    assert!(assert_server_frames_valid(&cp) >= 3);
    app.shutdown().await;
}

/// A charger that takes one UpdateFirmware and then reports `steps`, one
/// FirmwareStatusNotification each; the payload of the UpdateFirmware it got.
fn updating(mut cp: Charger, steps: &'static [&'static str]) -> tokio::task::JoinHandle<Value> {
    tokio::spawn(async move {
        let (id, action, payload) = cp.next_call(Duration::from_secs(20)).await.unwrap();
        assert_eq!(action, "UpdateFirmware");
        cp.reply(&id, json!({})).await.unwrap();
        for step in steps {
            tokio::time::sleep(Duration::from_millis(100)).await;
            cp.call_result("FirmwareStatusNotification", json!({"status": step}))
                .await
                .unwrap();
        }
        // Held open until the test ends, so the job sees the charger online.
        let _ = cp.next_call(Duration::from_secs(5)).await;
        payload
    })
}

/// A firmware rollout holds each charger's place until it reports how its update ended, so
/// `concurrency` bounds the downloads; a charger reporting DownloadFailed counts against
/// `maxFailures`, and the rollout stops there with the rest skipped.
#[tokio::test]
async fn a_firmware_rollout_waits_for_each_install_and_stops_at_a_failed_download() {
    let app = spawn_app().await;
    let installs = updating(
        app.booted_charger("CP-FW-1").await,
        &["Downloading", "Downloaded", "Installing", "Installed"],
    );
    let fails = updating(
        app.booted_charger("CP-FW-2").await,
        &["Downloading", "DownloadFailed"],
    );
    let mut third = app.booted_charger("CP-FW-3").await;
    let command = json!({
        "action": "UpdateFirmware",
        "payload": {"location": "http://cs.example/fw.bin", "retrieveDate": "2026-12-01T00:00:00Z"},
        "chargerIds": ["CP-FW-1", "CP-FW-2", "CP-FW-3"],
        "concurrency": 1,
        "maxFailures": 0,
        "installTimeoutSeconds": 20,
    });
    let r = post(&app, "/api/v1/fleet/commands", &command).await;
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let path = format!("/api/v1/fleet/commands/{}", job["id"]);
    // While the first charger installs, the second has not been sent anything.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let running = poll_until(&app, &path, |j| j["state"] == "running").await;
    assert_eq!(
        running["done"], 0,
        "the first charger's place is held until Installed"
    );
    let done = poll_until(&app, &path, |j| j["state"] != "running").await;
    assert_eq!(done["state"], "stopped");
    let outcomes: Vec<(&str, &str)> = done["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["chargerId"].as_str().unwrap(),
                o["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("CP-FW-1", "ok"),
            ("CP-FW-2", "firmwareFailed"),
            ("CP-FW-3", "skipped")
        ]
    );
    assert!(
        done["outcomes"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("DownloadFailed")
    );
    assert_eq!(
        installs.await.unwrap()["location"],
        "http://cs.example/fw.bin"
    );
    fails.await.unwrap();
    assert!(
        third.next_call(Duration::from_millis(300)).await.is_err(),
        "the skipped charger was sent nothing"
    );
    app.shutdown().await;
}
