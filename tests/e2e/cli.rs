//! End-to-end on the real binary: a bad setting stops start-up with one clear line; with no
//! token configured one is generated into the data folder; SIGTERM closes charger sockets with
//! 1001 (Going Away) and the process exits cleanly.

use std::time::Duration;

use crate::support::expect_close;
use crate::support::process::{ServerProcess, command as server};
use echarging_sim::{Charger, ChargerConfig};
use serde_json::json;

#[test]
fn a_bad_setting_stops_startup_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, name) in [
        ("ECHARGING_LISTEN", "not-an-address", "listen"),
        ("ECHARGING_HEARTBEAT_INTERVAL", "soon", "heartbeat_interval"),
        ("ECHARGING_DATABASE_URL", "mysql://x", "database_url"),
        ("ECHARGING_LOG_FORMAT", "xml", "log_format"),
    ] {
        let out = server(dir.path(), &[(key, value)]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains(key),
            "names the setting and its source: {stderr}"
        );
    }
    // A flag beats the environment.
    let out = server(dir.path(), &[("ECHARGING_LISTEN", "127.0.0.1:0")])
        .arg("--listen")
        .arg("nowhere")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_token_works_and_sigterm_closes_chargers_with_1001() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::task::block_in_place(|| ServerProcess::start(server(dir.path(), &[])));
    let (addr, lines) = (child.addr.clone(), child.startup_log.clone());

    // No token configured: one was generated next to the database and its path logged.
    let token_path = dir.path().join("db").join("operator-token");
    let token = std::fs::read_to_string(&token_path).expect("token file");
    let token = token.trim();
    assert!(token.len() >= 32);
    assert!(
        lines
            .iter()
            .any(|l| l["path"].as_str() == Some(token_path.to_str().unwrap())),
        "the token's location is logged"
    );
    assert!(
        !lines.iter().any(|l| l.to_string().contains(token)),
        "never the token itself"
    );

    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{addr}/api/v1/chargers"))
        .bearer_auth(token)
        .json(&json!({"id": "CP-TERM", "connectors": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut charger = Charger::connect(&ChargerConfig::new(format!("ws://{addr}/ocpp"), "CP-TERM"))
        .await
        .unwrap();
    charger.boot().await.unwrap();

    child.signal("TERM");
    assert_eq!(expect_close(&mut charger).await, Some(1001));
    let exit = tokio::task::block_in_place(|| child.wait());
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_in_flight_at_sigterm_complete_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("ECHARGING_API_TOKEN", "sigterm-operator-token-012345"),
        ("ECHARGING_DRAIN_DELAY", "300ms"),
    ];
    let mut child = tokio::task::block_in_place(|| ServerProcess::start(server(dir.path(), &env)));
    let base = format!("http://{}", child.addr);
    let http = reqwest::Client::new();
    let token = "sigterm-operator-token-012345";
    let ok = http
        .post(format!("{base}/api/v1/chargers"))
        .bearer_auth(token)
        .json(&json!({"id": "CP-INFLIGHT", "connectors": 64}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let customer: serde_json::Value = http
        .post(format!("{base}/api/v1/customers"))
        .bearer_auth(token)
        .json(&json!({"name": "Late", "idTags": ["LATE-1"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let customer_token = customer["token"].as_str().unwrap().to_string();

    // 64 bookings sent together, SIGTERM right behind them.
    let start = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::hours(1);
    let mut inflight = Vec::new();
    for c in 1..=64i64 {
        let body = json!({"chargerId": "CP-INFLIGHT", "connectorId": c,
            "start": start.format(&time::format_description::well_known::Rfc3339).unwrap(),
            "end": (start + time::Duration::hours(1)).format(&time::format_description::well_known::Rfc3339).unwrap()});
        let req = http
            .post(format!("{base}/api/v1/reservations"))
            .bearer_auth(&customer_token)
            .json(&body);
        inflight.push(tokio::spawn(async move { req.send().await }));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    child.signal("TERM");
    let mut created = Vec::new();
    for t in inflight {
        match t.await.unwrap() {
            Ok(r) => {
                // A request the server took is finished properly, never cut off or failed.
                assert_eq!(r.status(), 201, "in-flight booking got {}", r.status());
                created.push(
                    r.json::<serde_json::Value>().await.unwrap()["id"]
                        .as_i64()
                        .unwrap(),
                );
            }
            // Only requests that had not reached the server yet may find it gone.
            Err(e) => assert!(e.is_connect() || e.is_request(), "{e}"),
        }
    }
    let exit = tokio::task::block_in_place(|| child.wait());
    assert!(exit.success());
    assert!(!created.is_empty(), "some bookings were in flight");

    // Every booking that was answered is there after a restart.
    let again = tokio::task::block_in_place(|| ServerProcess::start(server(dir.path(), &env)));
    for id in created {
        let r = http
            .get(format!("http://{}/api/v1/reservations/{id}", again.addr))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "booking {id} lost");
    }
}
