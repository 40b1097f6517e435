//! The simulator against a tiny OCPP central system built from bare tokio-tungstenite: it
//! answers every CALL, echoes `ocpp1.6` only when offered, rejects unknown charge boxes with
//! 404 and bad credentials with 401, and, on request (DataTransfer vendorId), interleaves a
//! server CALL, pings, sends garbage or closes, so the client's correlation and queueing are
//! tested over a real socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{self, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use echarging_sim::messages::now_rfc3339;
use echarging_sim::{
    CallOutcome, Charger, ChargerConfig, ClientError, ConnectError, Incoming, LoadConfig, Mode,
};

const SHORT: Duration = Duration::from_secs(2);

struct MockCentral {
    url: String,
    /// CALLRESULTs the chargers sent back to server CALLs.
    results: Arc<AtomicUsize>,
}

async fn spawn_mock() -> MockCentral {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let results = Arc::new(AtomicUsize::new(0));
    let counter = results.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(stream, counter.clone()));
        }
    });
    MockCentral {
        url: format!("ws://{addr}/ocpp"),
        results,
    }
}

fn reject(status: u16) -> ErrorResponse {
    http::Response::builder().status(status).body(None).unwrap()
}

// The handshake callback's error type is tungstenite's, not ours to shrink.
#[allow(clippy::result_large_err)]
async fn serve_connection(stream: TcpStream, results: Arc<AtomicUsize>) {
    let mut charge_box_id = String::new();
    let callback = |request: &Request, mut response: Response| {
        let id = request.uri().path().trim_start_matches("/ocpp/").to_owned();
        if id.starts_with("UNKNOWN") {
            return Err(reject(404));
        }
        if id.starts_with("AUTH-") {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:secret"))
            );
            let given = request.headers().get("authorization");
            if given.and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
                return Err(reject(401));
            }
        }
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
        charge_box_id = id;
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(Value::Array(frame)) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if frame.first() == Some(&json!(3)) {
            results.fetch_add(1, Ordering::Relaxed);
        }
        if frame.first() != Some(&json!(2)) || frame.len() != 4 {
            continue;
        }
        let id = frame[1].as_str().unwrap_or_default().to_owned();
        let payload = &frame[3];
        let answer = match frame[2].as_str().unwrap_or_default() {
            "BootNotification" => {
                json!({"status": "Accepted", "currentTime": now_rfc3339(), "interval": 300})
            }
            "Heartbeat" => json!({"currentTime": now_rfc3339()}),
            "StatusNotification" => {
                let reply = json!([3, id, {}]).to_string();
                ws.send(Message::text(reply)).await.unwrap();
                if charge_box_id.starts_with("IDLE-") && payload["connectorId"] == 1 {
                    let call = json!([2, "srv-cfg", "GetConfiguration", {}]).to_string();
                    ws.send(Message::text(call)).await.unwrap();
                }
                continue;
            }
            "DataTransfer" => match payload["vendorId"].as_str().unwrap_or_default() {
                "interleave" => {
                    let call = json!([2, "srv-1", "Reset", {"type": "Soft"}]).to_string();
                    ws.send(Message::text(call)).await.unwrap();
                    json!({"status": "Accepted"})
                }
                "ping" => {
                    ws.send(Message::Ping(b"are you there".to_vec().into()))
                        .await
                        .unwrap();
                    let pong = tokio::time::timeout(SHORT, async {
                        while let Some(Ok(message)) = ws.next().await {
                            if matches!(message, Message::Pong(_)) {
                                return true;
                            }
                        }
                        false
                    })
                    .await;
                    let status = if pong == Ok(true) {
                        "Accepted"
                    } else {
                        "Rejected"
                    };
                    json!({"status": status})
                }
                "garbage" => {
                    ws.send(Message::text("hello, not a frame")).await.unwrap();
                    json!({"status": "Accepted"})
                }
                "close" => {
                    let frame = CloseFrame {
                        code: CloseCode::Away,
                        reason: "going away".into(),
                    };
                    let _ = ws.send(Message::Close(Some(frame))).await;
                    continue;
                }
                _ => json!({"status": "UnknownVendorId"}),
            },
            _ => {
                let error = json!([4, id, "NotImplemented", "", {}]).to_string();
                ws.send(Message::text(error)).await.unwrap();
                continue;
            }
        };
        let reply = json!([3, id, answer]).to_string();
        if ws.send(Message::text(reply)).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn negotiates_ocpp16_and_boots() {
    let mock = spawn_mock().await;
    let mut charger = Charger::connect(&ChargerConfig::new(&mock.url, "CP-1"))
        .await
        .unwrap();
    assert_eq!(charger.protocol(), Some("ocpp1.6"));
    let boot = charger.boot().await.unwrap();
    assert_eq!(boot["status"], "Accepted");
    assert_eq!(boot["interval"], 300);
    assert!(charger.heartbeat().await.unwrap()["currentTime"].is_string());
    charger
        .status_notification(1, "Available", "NoError")
        .await
        .unwrap();
    assert_eq!(charger.received().len(), 3);
    assert!(charger.received()[0].starts_with("[3,\"1\","));
    assert!(charger.sent()[0].starts_with("[2,\"1\",\"BootNotification\","));
    let answer = charger.call("NoSuchAction", json!({})).await.unwrap();
    assert!(matches!(answer, CallOutcome::Error { code, .. } if code == "NotImplemented"));
    let err = charger.call_result("NoSuchAction", json!({})).await;
    assert!(matches!(err, Err(ClientError::CallError { code, .. }) if code == "NotImplemented"));
}

#[tokio::test]
async fn subprotocol_offers() {
    let mock = spawn_mock().await;
    let mut none = ChargerConfig::new(&mock.url, "CP-2");
    none.subprotocols.clear();
    let charger = Charger::connect(&none).await.unwrap();
    assert_eq!(charger.protocol(), None);

    let mut other = ChargerConfig::new(&mock.url, "CP-3");
    other.subprotocols = vec!["ocpp2.0.1".into()];
    let err = Charger::connect(&other).await.err().unwrap();
    assert!(matches!(err, ConnectError::NoSubprotocol), "{err}");

    let mut several = ChargerConfig::new(&mock.url, "CP-4");
    several.subprotocols = vec!["ocpp2.0.1".into(), "ocpp1.6".into()];
    let charger = Charger::connect(&several).await.unwrap();
    assert_eq!(charger.protocol(), Some("ocpp1.6"));
}

#[tokio::test]
async fn upgrade_refusals_surface_their_status() {
    let mock = spawn_mock().await;
    let err = Charger::connect(&ChargerConfig::new(&mock.url, "UNKNOWN-1"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ConnectError::Http { status: 404 }), "{err}");

    let mut cfg = ChargerConfig::new(&mock.url, "AUTH-1");
    let err = Charger::connect(&cfg).await.err().unwrap();
    assert!(matches!(err, ConnectError::Http { status: 401 }), "{err}");
    cfg.password = Some("wrong".into());
    let err = Charger::connect(&cfg).await.err().unwrap();
    assert!(matches!(err, ConnectError::Http { status: 401 }), "{err}");
    cfg.password = Some("secret".into());
    assert!(Charger::connect(&cfg).await.is_ok());
}

#[tokio::test]
async fn connection_refused_is_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cfg = ChargerConfig::new(format!("ws://{addr}/ocpp"), "CP-9");
    let err = Charger::connect(&cfg).await.err().unwrap();
    assert!(matches!(err, ConnectError::Io(_)), "{err}");
}

#[tokio::test]
async fn server_calls_arriving_during_a_call_are_queued() {
    let mock = spawn_mock().await;
    let mut charger = Charger::connect(&ChargerConfig::new(&mock.url, "CP-5"))
        .await
        .unwrap();
    let answer = charger
        .call("DataTransfer", json!({"vendorId": "interleave"}))
        .await
        .unwrap();
    assert_eq!(answer, CallOutcome::Result(json!({"status": "Accepted"})));
    let (id, action, payload) = charger.next_call(SHORT).await.unwrap();
    assert_eq!(
        (id.as_str(), action.as_str(), payload),
        ("srv-1", "Reset", json!({"type": "Soft"}))
    );
    charger
        .reply(&id, json!({"status": "Accepted"}))
        .await
        .unwrap();
    assert!(matches!(
        charger.next_call(Duration::from_millis(50)).await,
        Err(ClientError::Timeout)
    ));
    // The mock counts the CALLRESULT once it has read it.
    charger.heartbeat().await.unwrap();
    assert_eq!(mock.results.load(Ordering::Relaxed), 1);
    assert_eq!(
        charger.sent().last().map(String::as_str),
        Some(r#"[2,"2","Heartbeat",{}]"#)
    );
}

#[tokio::test]
async fn pings_are_answered_while_waiting() {
    let mock = spawn_mock().await;
    let mut charger = Charger::connect(&ChargerConfig::new(&mock.url, "CP-6"))
        .await
        .unwrap();
    let answer = charger
        .call_result("DataTransfer", json!({"vendorId": "ping"}))
        .await
        .unwrap();
    assert_eq!(answer["status"], "Accepted");
}

#[tokio::test]
async fn raw_frames_and_server_close() {
    let mock = spawn_mock().await;
    let mut charger = Charger::connect(&ChargerConfig::new(&mock.url, "CP-7"))
        .await
        .unwrap();
    charger
        .call_result("DataTransfer", json!({"vendorId": "garbage"}))
        .await
        .unwrap();
    assert_eq!(
        charger.next_incoming(SHORT).await.unwrap(),
        Incoming::Raw("hello, not a frame".into())
    );
    let err = charger
        .call("DataTransfer", json!({"vendorId": "close"}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Closed {
                code: Some(1001),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        charger.next_incoming(SHORT).await.unwrap(),
        Incoming::Close {
            code: Some(1001),
            reason: "going away".into()
        }
    );
    assert!(charger.is_closed());
    assert!(matches!(
        charger.next_incoming(SHORT).await,
        Err(ClientError::Closed { .. })
    ));
}

#[tokio::test]
async fn load_run_in_heartbeat_mode() {
    let mock = spawn_mock().await;
    let mut cfg = LoadConfig::new(&mock.url, 50, Mode::Heartbeat { rate: None });
    cfg.duration = Duration::from_secs(1);
    cfg.connect_concurrency = 16;
    let report = echarging_sim::load::run(cfg).await.unwrap();
    assert_eq!(report.connected, 50, "{}", report.to_table());
    assert_eq!(report.failed, 0);
    assert!(report.passed());
    assert_eq!(report.actions["BootNotification"].count, 50);
    assert_eq!(report.actions["StatusNotification"].count, 100);
    let heartbeats = report.actions["Heartbeat"].count;
    assert!(heartbeats > 0);
    assert_eq!(report.round_trips, heartbeats);
    // Every heartbeat is one frame each way, and nothing else moved in the measured phase;
    // each charger's last one may be answered after the deadline, and is then not timed.
    for frames in [report.frames_sent, report.frames_received] {
        assert!(
            (heartbeats..=heartbeats + 50).contains(&frames),
            "{frames} frames for {heartbeats} timed heartbeats"
        );
    }
    assert!(report.round_trips_per_second > 0.0);
}

#[tokio::test]
async fn load_run_in_idle_mode_answers_server_calls_and_counts_failures() {
    let mock = spawn_mock().await;
    let mut cfg = LoadConfig::new(&mock.url, 10, Mode::Idle);
    cfg.id_prefix = "IDLE-".into();
    cfg.duration = Duration::from_millis(200);
    cfg.server_pid = Some(std::process::id());
    cfg.settle = Duration::ZERO;
    let report = echarging_sim::load::run(cfg).await.unwrap();
    assert_eq!(report.connected, 10, "{}", report.to_table());
    assert_eq!(report.server_calls["GetConfiguration"], 10);
    assert_eq!(mock.results.load(Ordering::Relaxed), 10);
    assert!(report.server_rss_per_charger_kib.is_some());

    let mut cfg = LoadConfig::new(&mock.url, 3, Mode::Idle);
    cfg.id_prefix = "UNKNOWN-".into();
    cfg.duration = Duration::from_millis(100);
    let report = echarging_sim::load::run(cfg).await.unwrap();
    assert_eq!(report.connected, 0);
    assert_eq!(report.failed, 3);
    assert_eq!(
        report.failures["connect: the server answered the upgrade with HTTP 404"],
        3
    );
    assert!(!report.passed());
}
