//! Diagnostics uploaded to the server itself: GetDiagnostics carries an upload location on this
//! server; a real WebSocket charger uploads there by HTTP PUT (raw) and POST (multipart), the
//! operator lists and downloads the same bytes, and the DiagnosticsStatusNotifications show in
//! the charger view. A wrong token or charger finds nothing; an oversized file is refused.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::schema::assert_server_frames_valid;
use crate::support::spawn_app_with;

const WAIT: Duration = Duration::from_secs(5);

fn multipart(boundary: &str, filename: &str, content: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nfrom CP\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test]
async fn a_charger_uploads_diagnostics_that_the_operator_downloads() {
    let app = spawn_app_with(|s| s.diagnostics_max_bytes = 256 * 1024).await;
    let mut cp = app.booted_charger("CP-DIAG").await;
    let request = app
        .api(Method::POST, "/api/v1/chargers/CP-DIAG/diagnostics")
        .json(&json!({"startTime": "2026-11-30T00:00:00Z", "retries": 1}))
        .send();
    let charger_side = async {
        let (id, action, payload) = cp.next_call(WAIT).await.expect("GetDiagnostics");
        cp.reply(&id, json!({"fileName": "diag.log"}))
            .await
            .unwrap();
        (action, payload)
    };
    let (r, (action, payload)) = tokio::join!(request, charger_side);
    let r = r.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(action, "GetDiagnostics");
    let location = payload["location"].as_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{}/files/diagnostics/CP-DIAG/", app.base)),
        "{location}"
    );
    // Sent as every time the server writes: to the millisecond.
    assert_eq!(payload["startTime"], "2026-11-30T00:00:00.000Z");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["location"], location);
    assert_eq!(answer["response"]["fileName"], "diag.log");

    cp.call_result(
        "DiagnosticsStatusNotification",
        json!({"status": "Uploading"}),
    )
    .await
    .unwrap();
    // PUT, raw, the file named in the path.
    let first: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{location}/diag.log"))
        .body(first.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // POST, multipart, the file named by its part.
    let second = b"second file\r\n--not the boundary\r\n".repeat(500);
    let r = http
        .post(&location)
        .header(
            "content-type",
            "multipart/form-data; boundary=----cpBoundary42",
        )
        .body(multipart(
            "----cpBoundary42",
            "panel/../second.txt",
            &second,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["fileName"], "second.txt");
    cp.call_result(
        "DiagnosticsStatusNotification",
        json!({"status": "Uploaded"}),
    )
    .await
    .unwrap();

    let view = app.charger_view("CP-DIAG").await;
    assert_eq!(view["diagnosticsStatus"]["status"], "Uploaded", "{view:#}");
    assert_eq!(
        view["diagnosticsStatus"]["history"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let listed: Value = app
        .api(Method::GET, "/api/v1/chargers/CP-DIAG/diagnostics")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fileName"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["diag.log", "second.txt"], "{listed:#}");
    for (name, content) in [("diag.log", &first), ("second.txt", &second)] {
        let r = app
            .api(
                Method::GET,
                &format!("/api/v1/chargers/CP-DIAG/diagnostics/{name}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert!(
            r.bytes().await.unwrap().as_ref() == content.as_slice(),
            "{name}"
        );
    }
    // The download is the operator's only.
    let anonymous = http
        .get(app.url("/api/v1/chargers/CP-DIAG/diagnostics/diag.log"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Another token, or another charger with this one's token, finds nothing.
    let token = location.rsplit('/').next().unwrap();
    let wrong = location.replace(token, &"f".repeat(32));
    let r = http
        .put(format!("{wrong}/x.log"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.register_charger("CP-OTHER", 1, None).await;
    let other = location.replace("CP-DIAG", "CP-OTHER");
    let r = http
        .put(format!("{other}/x.log"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Too large, announced or not: refused, nothing kept.
    let r = http
        .put(format!("{location}/big.log"))
        .body(vec![0u8; 256 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Sent chunked, with no length announced: counted as it streams.
    let path = location.strip_prefix(&app.base).unwrap();
    assert_eq!(
        chunked_put(&app.base, &format!("{path}/streamed.log"), 33, 8 * 1024).await,
        413
    );
    let listed: Value = app
        .api(Method::GET, "/api/v1/chargers/CP-DIAG/diagnostics")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed:#}");
    assert!(assert_server_frames_valid(&cp) >= 1);
    app.shutdown().await;
}

/// PUTs `chunks` chunks of `size` bytes with `Transfer-Encoding: chunked` over a plain socket
/// (no Content-Length), returning the status the server answered.
async fn chunked_put(base: &str, path: &str, chunks: usize, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.strip_prefix("http://").unwrap();
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n");
    socket.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        let mut chunk = format!("{size:x}\r\n").into_bytes();
        chunk.extend(std::iter::repeat_n(7u8, size));
        chunk.extend_from_slice(b"\r\n");
        // The server may answer and close before the last chunk: stop writing then.
        if socket.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(WAIT, socket.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let line = String::from_utf8_lossy(&answer[..n]).into_owned();
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
