//! The simulator as a charge point, against a small central system with transactions built from
//! bare tokio-tungstenite: it answers Authorize/Start/Stop/MeterValues, sends requests of its
//! own (ReserveNow, RemoteStart, TriggerMessage, Reset, ...) on command, can drop connections,
//! and checks every frame the simulator sends against the official OCPP 1.6 JSON schemas.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use echarging_sim::backoff::Backoff;
use echarging_sim::charge_point::ConnectorStatus;
use echarging_sim::load::{ReconnectPolicy, SessionPlan};
use echarging_sim::messages::{now_rfc3339, now_unix_ms, rfc3339_from_ms};
use echarging_sim::station::{PlugIn, Station, StationConfig, StationError};
use echarging_sim::{ChargerConfig, LoadConfig, Mode};

const SHORT: Duration = Duration::from_secs(3);

/// What the central system can be told to do on one charger's connection.
enum Command {
    Call(String, Value, oneshot::Sender<Value>),
    Close(u16),
}

#[derive(Default)]
struct Shared {
    /// Every CALL the chargers sent: (charge box id, connection number, action, payload).
    calls: Mutex<Vec<(String, u64, String, Value)>>,
    links: Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>,
    /// Frames from the simulator that broke their schema.
    invalid: Mutex<Vec<String>>,
    /// Chargers whose next StartTransaction goes unanswered while the connection is dropped.
    drop_next_start: Mutex<HashSet<String>>,
    connections: AtomicU64,
    next_transaction: AtomicI64,
}

struct Central {
    url: String,
    shared: Arc<Shared>,
}

impl Central {
    async fn start() -> Central {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        shared.next_transaction.store(1000, Ordering::Relaxed);
        let state = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, state.clone()));
            }
        });
        Central {
            url: format!("ws://{addr}/ocpp"),
            shared,
        }
    }

    /// Sends a request to `charger` and waits for its answer.
    async fn call(&self, charger: &str, action: &str, payload: Value) -> Value {
        let (tx, rx) = oneshot::channel();
        self.link(charger)
            .send(Command::Call(action.into(), payload, tx))
            .unwrap_or_else(|_| panic!("{charger} is gone"));
        tokio::time::timeout(SHORT, rx)
            .await
            .expect("the charger answers in time")
            .expect("an answer")
    }

    fn link(&self, charger: &str) -> mpsc::UnboundedSender<Command> {
        self.shared.links.lock().unwrap()[charger].clone()
    }

    fn close_all(&self, code: u16) {
        for link in self.shared.links.lock().unwrap().values() {
            let _ = link.send(Command::Close(code));
        }
    }

    /// The CALLs `charger` sent, in order: (connection number, action, payload).
    fn calls_from(&self, charger: &str) -> Vec<(u64, String, Value)> {
        let calls = self.shared.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(id, ..)| id == charger)
            .map(|(_, conn, action, payload)| (*conn, action.clone(), payload.clone()))
            .collect()
    }

    /// The statuses `charger` reported for `connector`, in order.
    fn statuses(&self, charger: &str, connector: u64) -> Vec<String> {
        self.calls_from(charger)
            .into_iter()
            .filter(|(_, a, p)| a == "StatusNotification" && p["connectorId"] == connector)
            .map(|(_, _, p)| p["status"].as_str().unwrap().to_owned())
            .collect()
    }

    fn assert_all_frames_valid(&self) {
        let invalid = self.shared.invalid.lock().unwrap();
        assert!(invalid.is_empty(), "schema violations: {invalid:#?}");
    }
}

// The handshake callback's error type is tungstenite's, not ours to shrink.
#[allow(clippy::result_large_err)]
async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let mut charger = String::new();
    let callback = |request: &Request, mut response: Response| {
        charger = request.uri().path().trim_start_matches("/ocpp/").to_owned();
        response.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("ocpp1.6"),
        );
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let connection = shared.connections.fetch_add(1, Ordering::Relaxed);
    let (tx, mut commands) = mpsc::unbounded_channel();
    shared.links.lock().unwrap().insert(charger.clone(), tx);
    let mut pending: HashMap<String, (String, oneshot::Sender<Value>)> = HashMap::new();
    let mut next_id = 0;
    loop {
        let message = tokio::select! {
            message = ws.next() => match message {
                Some(Ok(message)) => message,
                _ => return,
            },
            command = commands.recv() => match command {
                Some(Command::Call(action, payload, answer)) => {
                    next_id += 1;
                    let id = format!("srv-{next_id}");
                    let text = json!([2, id, action, payload]).to_string();
                    pending.insert(id, (action, answer));
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Command::Close(code)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: "bye".into() };
                    let _ = ws.send(Message::Close(Some(frame))).await;
                    return;
                }
                None => return,
            },
        };
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Vec<Value> = serde_json::from_str(&text).unwrap();
        let id = frame[1].as_str().unwrap().to_owned();
        if frame[0] == 3 || frame[0] == 4 {
            let Some((action, answer)) = pending.remove(&id) else {
                continue;
            };
            if frame[0] == 3 {
                check(&shared, &format!("{action}Response"), &frame[2]);
            }
            let _ = answer.send(if frame[0] == 3 {
                frame[2].clone()
            } else {
                json!({"callError": frame[2]})
            });
            continue;
        }
        let (action, payload) = (frame[2].as_str().unwrap().to_owned(), frame[3].clone());
        check(&shared, &action, &payload);
        shared.calls.lock().unwrap().push((
            charger.clone(),
            connection,
            action.clone(),
            payload.clone(),
        ));
        let tag = payload["idTag"].as_str().unwrap_or_default();
        let answer = match action.as_str() {
            "BootNotification" => {
                json!({"status": "Accepted", "currentTime": now_rfc3339(), "interval": 300})
            }
            "Heartbeat" => json!({"currentTime": now_rfc3339()}),
            "Authorize" => {
                let status = if tag.starts_with("BAD") {
                    "Invalid"
                } else {
                    "Accepted"
                };
                json!({"idTagInfo": {"status": status}})
            }
            "StartTransaction" => {
                if shared.drop_next_start.lock().unwrap().remove(&charger) {
                    let frame = CloseFrame {
                        code: CloseCode::Away,
                        reason: "restarting".into(),
                    };
                    let _ = ws.send(Message::Close(Some(frame))).await;
                    return;
                }
                let status = if tag.starts_with("NOSTART") {
                    "Invalid"
                } else {
                    "Accepted"
                };
                let tx = shared.next_transaction.fetch_add(1, Ordering::Relaxed);
                json!({"idTagInfo": {"status": status}, "transactionId": tx})
            }
            "StopTransaction" => json!({"idTagInfo": {"status": "Accepted"}}),
            "StatusNotification" | "MeterValues" => json!({}),
            _ => {
                let error = json!([4, id, "NotImplemented", "", {}]).to_string();
                let _ = ws.send(Message::text(error)).await;
                continue;
            }
        };
        check(&shared, &format!("{action}Response"), &answer);
        if ws
            .send(Message::text(json!([3, id, answer]).to_string()))
            .await
            .is_err()
        {
            return;
        }
    }
}

fn check(shared: &Shared, schema: &str, payload: &Value) {
    if let Err(e) = validate(schema, payload) {
        shared
            .invalid
            .lock()
            .unwrap()
            .push(format!("{e}: {payload}"));
    }
}

use ocpp_schemas::validate;

async fn station(central: &Central, id: &str) -> Station {
    let cfg = StationConfig::new(ChargerConfig::new(&central.url, id), 2);
    let mut station = Station::connect(cfg).await.unwrap();
    station.boot().await.unwrap();
    station.announce().await.unwrap();
    station
}

/// Sends a request to the station and lets it answer (and do what it promised).
async fn ask(station: &mut Station, central: &Central, action: &str, payload: Value) -> Value {
    let id = station.charger().charge_box_id().to_owned();
    let (answer, served) = tokio::join!(central.call(&id, action, payload), station.serve(SHORT));
    assert!(served.unwrap(), "{action} reached the station");
    answer
}

#[tokio::test]
async fn a_booked_remote_session_walks_through_every_status() {
    let central = Central::start().await;
    let mut cp = station(&central, "CP-1").await;
    let expiry = rfc3339_from_ms(now_unix_ms() + 3_600_000);
    let reserve = json!({
        "connectorId": 1, "expiryDate": expiry, "idTag": "DRIVER-1", "reservationId": 11,
    });
    let answer = ask(&mut cp, &central, "ReserveNow", reserve.clone()).await;
    assert_eq!(answer, json!({"status": "Accepted"}));
    let mut other = reserve.clone();
    other["reservationId"] = json!(12);
    assert_eq!(
        ask(&mut cp, &central, "ReserveNow", other).await,
        json!({"status": "Occupied"})
    );
    assert_eq!(cp.stats().double_bookings_seen, 1);

    let start = json!({"idTag": "DRIVER-1"});
    let answer = ask(&mut cp, &central, "RemoteStartTransaction", start).await;
    assert_eq!(answer, json!({"status": "Accepted"}));
    let calls = central.calls_from("CP-1");
    let started = calls
        .iter()
        .find(|(_, a, _)| a == "StartTransaction")
        .map(|(_, _, p)| p.clone())
        .expect("a StartTransaction after the remote start");
    assert_eq!(started["connectorId"], 1);
    assert_eq!(
        started["reservationId"], 11,
        "the session uses the reservation"
    );
    assert_eq!(cp.charge_point().status(1), Some(ConnectorStatus::Charging));
    let transaction = cp
        .charge_point()
        .session(1)
        .unwrap()
        .transaction_id
        .unwrap();

    assert!(cp.sample(1, Duration::from_secs(60)).await.unwrap());
    let meter = central.calls_from("CP-1").pop().unwrap();
    assert_eq!(meter.1, "MeterValues");
    assert_eq!(meter.2["transactionId"], transaction);

    let stop = json!({"transactionId": transaction});
    let answer = ask(&mut cp, &central, "RemoteStopTransaction", stop.clone()).await;
    assert_eq!(answer, json!({"status": "Accepted"}));
    let stopped = central
        .calls_from("CP-1")
        .into_iter()
        .rev()
        .find(|(_, a, _)| a == "StopTransaction");
    let stopped = stopped.expect("a StopTransaction").2;
    assert_eq!(stopped["reason"], "Remote");
    assert_eq!(stopped["transactionId"], transaction);
    assert!(stopped["meterStop"].as_i64() > started["meterStart"].as_i64());
    assert_eq!(
        ask(&mut cp, &central, "RemoteStopTransaction", stop).await,
        json!({"status": "Rejected"})
    );
    assert_eq!(
        central.statuses("CP-1", 1),
        [
            "Available",
            "Reserved",
            "Preparing",
            "Charging",
            "Finishing",
            "Available"
        ]
    );
    assert_eq!(cp.stats().sessions_completed, 1);
    central.assert_all_frames_valid();
}

#[tokio::test]
async fn requests_get_the_answers_a_charger_gives() {
    let central = Central::start().await;
    let mut cp = station(&central, "CP-2").await;
    let cancel = json!({"reservationId": 99});
    assert_eq!(
        ask(&mut cp, &central, "CancelReservation", cancel).await,
        json!({"status": "Rejected"})
    );
    let trigger = json!({"requestedMessage": "StatusNotification", "connectorId": 2});
    assert_eq!(
        ask(&mut cp, &central, "TriggerMessage", trigger).await,
        json!({"status": "Accepted"})
    );
    assert_eq!(central.statuses("CP-2", 2), ["Available", "Available"]);
    let trigger = json!({"requestedMessage": "MeterValues"});
    ask(&mut cp, &central, "TriggerMessage", trigger).await;
    let meters: Vec<_> = central
        .calls_from("CP-2")
        .into_iter()
        .filter(|(_, a, _)| a == "MeterValues")
        .collect();
    assert_eq!(meters.len(), 2, "one per connector");
    let trigger = json!({"requestedMessage": "DiagnosticsStatusNotification"});
    assert_eq!(
        ask(&mut cp, &central, "TriggerMessage", trigger).await,
        json!({"status": "NotImplemented"})
    );

    let config = ask(
        &mut cp,
        &central,
        "GetConfiguration",
        json!({"key": ["HeartbeatInterval", "Foo"]}),
    )
    .await;
    assert_eq!(
        config["configurationKey"][0]["value"], "300",
        "the boot interval"
    );
    assert_eq!(config["unknownKey"], json!(["Foo"]));
    let change = json!({"key": "MeterValueSampleInterval", "value": "15"});
    assert_eq!(
        ask(&mut cp, &central, "ChangeConfiguration", change).await,
        json!({"status": "Accepted"})
    );
    let change = json!({"key": "Foo", "value": "1"});
    assert_eq!(
        ask(&mut cp, &central, "ChangeConfiguration", change).await,
        json!({"status": "NotSupported"})
    );
    let off = json!({"connectorId": 2, "type": "Inoperative"});
    assert_eq!(
        ask(&mut cp, &central, "ChangeAvailability", off).await,
        json!({"status": "Accepted"})
    );
    assert_eq!(central.statuses("CP-2", 2).last().unwrap(), "Unavailable");
    let unknown = ask(
        &mut cp,
        &central,
        "UnlockConnector",
        json!({"connectorId": 1}),
    )
    .await;
    assert_eq!(unknown, json!({"status": "Unlocked"}));

    // Reset: answered, then the charger reconnects and boots again.
    assert_eq!(
        ask(&mut cp, &central, "Reset", json!({"type": "Soft"})).await,
        json!({"status": "Accepted"})
    );
    let calls = central.calls_from("CP-2");
    let (last_connection, ..) = calls.last().unwrap();
    assert_eq!(*last_connection, calls[0].0 + 1, "a new connection");
    let after: Vec<&str> = calls
        .iter()
        .filter(|(c, ..)| c == last_connection)
        .map(|(_, a, _)| a.as_str())
        .collect();
    assert_eq!(
        after,
        [
            "BootNotification",
            "StatusNotification",
            "StatusNotification"
        ]
    );
    assert_eq!(central.statuses("CP-2", 2).last().unwrap(), "Unavailable");
    let bad = json!({"type": "Sideways"});
    let answer = ask(&mut cp, &central, "Reset", bad).await;
    assert_eq!(answer["callError"], "PropertyConstraintViolation");
    assert_eq!(cp.stats().bad_server_calls["Reset"], 1);
    central.assert_all_frames_valid();
}

#[tokio::test]
async fn unanswered_transaction_messages_are_resent_after_the_boot() {
    let central = Central::start().await;
    let mut cp = station(&central, "FLAKY-1").await;
    central
        .shared
        .drop_next_start
        .lock()
        .unwrap()
        .insert("FLAKY-1".into());
    let err = cp.plug_in(1, "DRIVER-7").await.unwrap_err();
    assert!(matches!(err, StationError::Lost(_)), "{err}");
    assert_eq!(cp.queued_tx(), 1);

    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100), 1);
    let give_up = tokio::time::Instant::now() + SHORT;
    cp.reconnect(&mut backoff, give_up).await.unwrap();
    assert_eq!(cp.queued_tx(), 0);
    assert_eq!(cp.stats().reconnects, 1);
    assert_eq!(cp.stats().tx_resent, 1);
    assert_eq!(cp.charge_point().status(1), Some(ConnectorStatus::Charging));

    let calls = central.calls_from("FLAKY-1");
    let starts: Vec<&Value> = calls
        .iter()
        .filter(|(_, a, _)| a == "StartTransaction")
        .map(|(_, _, p)| p)
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(
        starts[0], starts[1],
        "the very same message, timestamp included"
    );
    let second: Vec<&str> = calls
        .iter()
        .filter(|(c, ..)| *c == calls.last().unwrap().0)
        .map(|(_, a, _)| a.as_str())
        .collect();
    assert_eq!(
        second,
        [
            "BootNotification",
            "StatusNotification",
            "StatusNotification",
            "StartTransaction",
            "StatusNotification"
        ],
        "boot first, then what was never answered, then what is new"
    );
    assert_eq!(central.statuses("FLAKY-1", 1).last().unwrap(), "Charging");
    central.assert_all_frames_valid();
}

#[tokio::test]
async fn refused_idtags_never_charge() {
    let central = Central::start().await;
    let mut cp = station(&central, "CP-3").await;
    assert_eq!(
        cp.plug_in(1, "BAD-TAG").await.unwrap(),
        PlugIn::Refused("Invalid".into())
    );
    assert_eq!(cp.stats().authorize_refused, 1);

    // Authorised, but the start itself is refused: stopped at once as DeAuthorized.
    let started = cp.plug_in(2, "NOSTART-1").await.unwrap();
    assert!(matches!(started, PlugIn::Started(_)), "{started:?}");
    assert_eq!(cp.stats().starts_refused, 1);
    let calls = central.calls_from("CP-3");
    let (_, _, start) = calls
        .iter()
        .find(|(_, a, _)| a == "StartTransaction")
        .unwrap();
    assert!(start.get("reservationId").is_none());
    let (_, _, stop) = calls
        .iter()
        .find(|(_, a, _)| a == "StopTransaction")
        .unwrap();
    assert_eq!(stop["reason"], "DeAuthorized");
    assert_eq!(stop["meterStop"], start["meterStart"]);
    assert_eq!(
        central.statuses("CP-3", 2),
        ["Available", "Preparing", "Finishing", "Available"]
    );
    assert_eq!(
        central.statuses("CP-3", 1),
        ["Available"],
        "no session on 1"
    );
    central.assert_all_frames_valid();
}

fn charge_config(central: &Central, chargers: usize) -> LoadConfig {
    let mut cfg = LoadConfig::new(&central.url, chargers, Mode::Charge { rate: None });
    cfg.duration = Duration::from_millis(1500);
    cfg.sessions = SessionPlan {
        meter_interval: Duration::from_millis(100),
        meter_values: 2,
        pause: Duration::from_millis(50),
        ..SessionPlan::default()
    };
    cfg
}

#[tokio::test]
async fn load_run_in_charge_mode_runs_whole_sessions() {
    let central = Central::start().await;
    let report = echarging_sim::load::run(charge_config(&central, 5))
        .await
        .unwrap();
    assert!(report.passed(), "{}", report.to_table());
    assert_eq!(report.connected, 5);
    assert!(report.sessions >= 10, "{}", report.to_table());
    assert_eq!(report.starts_refused, 0);
    assert_eq!(report.tx_undelivered, 0);
    for action in [
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
    ] {
        assert!(report.actions[action].count > 0, "{action}");
    }
    // Two samples per completed session, and at most one from each session cut short (its
    // stop, after the deadline, is not timed).
    let (meters, stops) = (
        report.actions["MeterValues"].count,
        report.actions["StopTransaction"].count,
    );
    assert_eq!(stops, report.sessions);
    assert!(
        meters >= 2 * stops && meters <= 2 * stops + 5,
        "{meters} {stops}"
    );
    assert!(report.sessions_cut_short <= 5);
    // One charger's sessions, message by message.
    let flow: Vec<String> = central
        .calls_from("SIM-00002")
        .into_iter()
        .filter(|(_, a, _)| !matches!(a.as_str(), "BootNotification" | "StatusNotification"))
        .map(|(_, a, p)| match a.as_str() {
            "Authorize" | "StartTransaction" => format!("{a}:{}", p["idTag"].as_str().unwrap()),
            _ => a,
        })
        .collect();
    let session = [
        "Authorize:SIMTAG-00002",
        "StartTransaction:SIMTAG-00002",
        "MeterValues",
        "MeterValues",
        "StopTransaction",
    ];
    assert!(flow.len() >= 10, "{flow:?}");
    for (i, step) in flow[..10].iter().enumerate() {
        assert_eq!(step, session[i % 5], "{flow:?}");
    }
    // Sessions alternate between the two connectors.
    let connectors: Vec<Value> = central
        .calls_from("SIM-00002")
        .into_iter()
        .filter(|(_, a, _)| a == "StartTransaction")
        .map(|(_, _, p)| p["connectorId"].clone())
        .collect();
    assert_ne!(connectors[0], connectors[1], "{connectors:?}");
    central.assert_all_frames_valid();
}

#[tokio::test]
async fn load_run_reconnects_when_the_server_drops_everyone() {
    let central = Arc::new(Central::start().await);
    let mut cfg = charge_config(&central, 4);
    cfg.duration = Duration::from_millis(2500);
    cfg.reconnect = Some(ReconnectPolicy {
        min: Duration::from_millis(50),
        max: Duration::from_millis(200),
    });
    let dropper = central.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        dropper.close_all(1001);
    });
    let report = echarging_sim::load::run(cfg).await.unwrap();
    assert!(report.passed(), "{}", report.to_table());
    assert_eq!(report.connected, 4);
    assert_eq!(report.reconnects, 4, "{}", report.to_table());
    assert!(report.sessions >= 8);
    for id in ["SIM-00001", "SIM-00004"] {
        let boots = central
            .calls_from(id)
            .iter()
            .filter(|(_, a, _)| a == "BootNotification")
            .count();
        assert_eq!(boots, 2, "{id} booted again after reconnecting");
    }
    central.assert_all_frames_valid();

    // Without reconnects, a dropped charger is a failed one.
    let mut cfg = charge_config(&central, 2);
    cfg.id_prefix = "ONCE-".into();
    cfg.reconnect = None;
    let dropper = central.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        dropper.close_all(1001);
    });
    let report = echarging_sim::load::run(cfg).await.unwrap();
    assert_eq!(report.connected, 0, "{}", report.to_table());
    assert!(!report.passed());
}

#[tokio::test]
async fn paced_sessions_count_drivers_who_find_the_charger_busy() {
    let central = Central::start().await;
    // A driver every 100 ms, sessions of ~200 ms on 1 connector: about every other one waits.
    let mut cfg = charge_config(&central, 3);
    cfg.mode = Mode::Charge { rate: Some(10.0) };
    cfg.connectors = 1;
    cfg.duration = Duration::from_millis(1200);
    let report = echarging_sim::load::run(cfg).await.unwrap();
    assert!(report.passed(), "{}", report.to_table());
    assert!(report.sessions >= 3, "{}", report.to_table());
    assert!(report.sessions_skipped >= 3, "{}", report.to_table());
    central.assert_all_frames_valid();
}

#[tokio::test]
async fn idle_chargers_carry_out_remote_starts_and_stops() {
    let central = Arc::new(Central::start().await);
    let mut cfg = LoadConfig::new(&central.url, 1, Mode::Idle);
    cfg.id_prefix = "IDLE-".into();
    cfg.duration = Duration::from_millis(1500);
    cfg.sessions.meter_interval = Duration::from_millis(100);
    let operator = central.clone();
    let remote = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = json!({"idTag": "REMOTE-1", "connectorId": 2});
        let started = operator
            .call("IDLE-00001", "RemoteStartTransaction", start)
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let transaction = operator
            .calls_from("IDLE-00001")
            .into_iter()
            .find(|(_, a, _)| a == "StartTransaction")
            .map(|(_, _, p)| p)
            .expect("a StartTransaction");
        assert_eq!(transaction["idTag"], "REMOTE-1");
        let stop = json!({"transactionId": 1000});
        let stopped = operator
            .call("IDLE-00001", "RemoteStopTransaction", stop)
            .await;
        (started, stopped)
    });
    let report = echarging_sim::load::run(cfg).await.unwrap();
    let (started, stopped) = remote.await.unwrap();
    assert_eq!(started, json!({"status": "Accepted"}));
    assert_eq!(stopped, json!({"status": "Accepted"}));
    assert!(report.passed(), "{}", report.to_table());
    assert_eq!(report.server_calls["RemoteStartTransaction"], 1);
    assert_eq!(report.sessions, 1);
    // Sampled while it ran (every 100 ms for ~500 ms), stopped remotely.
    assert!(
        report.actions["MeterValues"].count >= 3,
        "{}",
        report.to_table()
    );
    let stop = central
        .calls_from("IDLE-00001")
        .into_iter()
        .find(|(_, a, _)| a == "StopTransaction")
        .unwrap()
        .2;
    assert_eq!(stop["reason"], "Remote");
    assert_eq!(
        central.statuses("IDLE-00001", 2),
        [
            "Available",
            "Preparing",
            "Charging",
            "Finishing",
            "Available"
        ]
    );
    central.assert_all_frames_valid();
}
