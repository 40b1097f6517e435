//! Crash safety: bookings in flight while the server process is killed with SIGKILL; after a
//! restart on the same database every booking that was answered 201 is still there, unchanged.

use std::sync::Arc;
use std::time::Duration;

use crate::support::process::{ServerProcess, command};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Mutex;

const TOKEN: &str = "durability-operator-token-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_bookings_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ECHARGING_API_TOKEN", TOKEN)];
    let server = tokio::task::block_in_place(|| ServerProcess::start(command(dir.path(), &env)));
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/chargers"))
        .bearer_auth(TOKEN)
        .json(&json!({"id": "CP-DUR", "connectors": 8}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let customer: Value = http
        .post(format!("{base}/api/v1/customers"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "Durable", "idTags": ["DUR-1"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = customer["token"].as_str().unwrap().to_string();

    // 16 clients book distinct, non-overlapping slots as fast as they can.
    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + time::Duration::hours(1);
    let mut clients = Vec::new();
    for client in 0..16i64 {
        let (http, base, token, acked) = (http.clone(), base.clone(), token.clone(), acked.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..10_000i64 {
                let from = start + time::Duration::minutes((n * 16 + client) * 2);
                let body = json!({"chargerId": "CP-DUR", "connectorId": 1 + client % 8,
                    "start": from.format(&Rfc3339).unwrap(),
                    "end": (from + time::Duration::minutes(1)).format(&Rfc3339).unwrap()});
                let Ok(r) = http
                    .post(format!("{base}/api/v1/reservations"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                else {
                    return; // the server is gone
                };
                if r.status() != 201 {
                    return;
                }
                let Ok(v) = r.json::<Value>().await else {
                    return;
                };
                acked.lock().await.push(v);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.signal("KILL");
    for c in clients {
        let _ = c.await;
    }
    drop(server);
    let acked = acked.lock().await.clone();
    assert!(
        acked.len() > 20,
        "the load ran before the kill: {}",
        acked.len()
    );

    let server = tokio::task::block_in_place(|| ServerProcess::start(command(dir.path(), &env)));
    let base = format!("http://{}", server.addr);
    for booked in &acked {
        let id = booked["id"].as_i64().unwrap();
        let r = http
            .get(format!("{base}/api/v1/reservations/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "acknowledged reservation {id} lost in the crash"
        );
        let stored: Value = r.json().await.unwrap();
        assert_eq!(&stored, booked);
    }
    // And the listing agrees with the point reads.
    let listed: Vec<Value> = http
        .get(format!(
            "{base}/api/v1/reservations?limit=1000&chargerId=CP-DUR"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.len() >= acked.len().min(1000));
}
