//! Firmware hosted by the server itself: the operator uploads a file over REST, a real
//! WebSocket charger receives UpdateFirmware whose location is on this server, downloads it
//! over HTTP with no operator token and gets the same bytes; its FirmwareStatusNotifications
//! show in the charger view. Names with path separators, duplicates and oversized files are
//! refused, and a wrong token finds nothing.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::schema::assert_server_frames_valid;
use crate::support::{spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(5);

/// Bytes no two offsets of which look alike for long: a copy that drops or reorders a chunk
/// cannot pass for the original.
fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_charger_downloads_the_uploaded_firmware_and_reports_its_progress() {
    let app = spawn_app().await;
    let mut cp = app.booted_charger("CP-FW").await;
    let bytes = image(3 * 1024 * 1024 + 17); // past the 2 MiB limit of other REST bodies
    let r = app
        .api(Method::POST, "/api/v1/firmware?name=acme-2.1.0.bin")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let stored: Value = r.json().await.unwrap();
    assert_eq!(stored["name"], "acme-2.1.0.bin");
    assert_eq!(stored["size"], bytes.len());
    assert_eq!(stored["sha256"], hex(&Sha256::digest(&bytes)));
    let url = stored["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/files/firmware/", app.base)),
        "{url}"
    );

    let listed: Value = app
        .api(Method::GET, "/api/v1/firmware")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["url"], url);

    // The update: the charger gets this server's location, as the listing shows it.
    let request = app
        .api(Method::POST, "/api/v1/chargers/CP-FW/firmware-update")
        .json(&json!({"firmware": "acme-2.1.0.bin", "retries": 2}))
        .send();
    let charger_side = async {
        let (id, action, payload) = cp.next_call(WAIT).await.expect("UpdateFirmware");
        cp.reply(&id, json!({})).await.unwrap();
        (action, payload)
    };
    let (r, (action, payload)) = tokio::join!(request, charger_side);
    let r = r.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(action, "UpdateFirmware");
    assert_eq!(payload["location"], url);
    assert_eq!(payload["retries"], 2);
    assert!(payload["retrieveDate"].is_string());
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["location"], url);

    // The charger downloads it: plain HTTP, no token but the one in the URL.
    let download = reqwest::get(&url).await.unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    let got = download.bytes().await.unwrap();
    assert!(got.as_ref() == bytes.as_slice(), "the same bytes");
    // Another token, or another name under the token, finds nothing.
    let token = url.rsplit('/').nth(1).unwrap();
    let wrong = url.replace(token, &"0".repeat(32));
    assert_eq!(reqwest::get(&wrong).await.unwrap().status(), 404);
    let renamed = url.replace("acme-2.1.0.bin", "other.bin");
    assert_eq!(reqwest::get(&renamed).await.unwrap().status(), 404);

    for status in ["Downloading", "Downloaded", "Installing", "Installed"] {
        cp.call_result("FirmwareStatusNotification", json!({"status": status}))
            .await
            .unwrap();
    }
    let view = app.charger_view("CP-FW").await;
    let firmware = &view["firmwareStatus"];
    assert_eq!(firmware["status"], "Installed", "{view:#}");
    assert!(firmware["updatedAt"].is_string());
    let history: Vec<&str> = firmware["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["Downloading", "Downloaded", "Installing", "Installed"]
    );
    assert_eq!(view["diagnosticsStatus"]["status"], Value::Null);
    assert!(assert_server_frames_valid(&cp) >= 1);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_names_duplicates_and_oversized_firmware_are_refused() {
    let app = spawn_app_with(|s| s.firmware_max_bytes = 1000).await;
    for name in ["..%2Fescape.bin", "a%2Fb.bin", ".hidden", ""] {
        let r = app
            .api(Method::POST, &format!("/api/v1/firmware?name={name}"))
            .body(vec![1u8; 10])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{name}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["field"], "name");
    }
    let upload = |body: Vec<u8>| {
        app.api(Method::POST, "/api/v1/firmware?name=fw.bin")
            .body(body)
            .send()
    };
    assert_eq!(upload(vec![0u8; 1001]).await.unwrap().status(), 413);
    assert_eq!(upload(vec![0u8; 1000]).await.unwrap().status(), 201);
    assert_eq!(upload(vec![0u8; 10]).await.unwrap().status(), 409);
    // Nothing of the refused uploads is left behind.
    let listed: Value = app
        .api(Method::GET, "/api/v1/firmware")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let entries = std::fs::read_dir(app.dir.path().join("firmware"))
        .unwrap()
        .count();
    assert_eq!(entries, 1);
    // Without the operator token nothing is stored, and an update needs a stored file.
    let anonymous = app
        .http
        .post(app.url("/api/v1/firmware?name=x.bin"))
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.register_charger("CP-NOFW", 1, None).await;
    let r = app
        .api(Method::POST, "/api/v1/chargers/CP-NOFW/firmware-update")
        .json(&json!({"firmware": "missing.bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "firmware");
    let r = app
        .api(Method::POST, "/api/v1/chargers/CP-NOFW/firmware-update")
        .json(&json!({"firmware": "fw.bin", "retries": "two"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["field"], "retries");
    app.shutdown().await;
}
