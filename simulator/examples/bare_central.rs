//! The "bare tokio-tungstenite" baseline of the performance table: a central system with no
//! logic that accepts any charge box at `/ocpp/{id}`, echoes `ocpp1.6` and answers every CALL
//! at once (BootNotification Accepted, everything else `{}` plus `currentTime` for Heartbeat).
//! Run: `cargo run --release -p echarging-sim --example bare_central -- 127.0.0.1:9000 [threads]`.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(async {
            let listener = TcpListener::bind(&listen).await?;
            eprintln!("bare central system on ws://{listen}/ocpp");
            loop {
                let (stream, _) = listener.accept().await?;
                tokio::spawn(session(stream));
            }
        })
}

// The handshake callback's error type is tungstenite's, not ours to shrink.
#[allow(clippy::result_large_err)]
async fn session(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let echo = |request: &Request, mut response: Response| {
        let offered = request
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if offered.split(',').any(|p| p.trim() == "ocpp1.6") {
            response.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("ocpp1.6"),
            );
        }
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, echo, Some(config)).await
    else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(Value::Array(frame)) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if frame.len() != 4 || frame[0] != 2 {
            continue;
        }
        let payload = match frame[2].as_str() {
            Some("BootNotification") => {
                json!({"status": "Accepted", "currentTime": now(), "interval": 300})
            }
            Some("Heartbeat") => json!({"currentTime": now()}),
            _ => json!({}),
        };
        let reply = json!([3, frame[1], payload]).to_string();
        if ws.send(Message::text(reply)).await.is_err() {
            return;
        }
    }
}

fn now() -> String {
    echarging_sim::messages::now_rfc3339()
}
