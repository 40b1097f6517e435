//! End-to-end: real WebSocket chargers against the real server. Upgrade rules (404, 401,
//! subprotocol), boot/heartbeat/status, malformed frames answered with the right CALLERROR while
//! the session lives on, replacement by a second connection, server-initiated CALLs correlated
//! or timed out, liveness, and what GET /chargers/{id} shows of it all.

use std::time::Duration;

use crate::support::schema::assert_server_frames_valid;
use crate::support::{expect_close, spawn_app, spawn_app_with};
use echarging::central::CallFailure;
use echarging::domain::ChargeBoxId;
use echarging::ocpp::v16::Strictness;
use echarging::ocpp::v16::{self as ocpp, ErrorCode};
use echarging_sim::{CallOutcome, Charger, ConnectError, Incoming};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const WAIT: Duration = Duration::from_secs(5);

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("a time string"), &Rfc3339).expect("RFC 3339")
}

/// The next frame that is not a ping-driven artefact, expecting a CALLERROR for `id`.
async fn expect_call_error(charger: &mut Charger, id: &str) -> (String, String) {
    match charger.next_incoming(WAIT).await.expect("an answer") {
        Incoming::Error {
            id: got,
            code,
            description,
            details,
        } => {
            assert_eq!(got, id, "CALLERROR id");
            assert_eq!(details, json!({}), "details are {{}} when empty");
            (code, description)
        }
        other => panic!("expected CALLERROR for {id}, got {other:?}"),
    }
}

async fn still_answers(charger: &mut Charger) {
    let hb = charger.heartbeat().await.expect("session still answers");
    assert!(hb["currentTime"].is_string());
}

#[tokio::test]
async fn boot_heartbeat_and_status_show_in_the_charger_view() {
    let app = spawn_app_with(|s| s.heartbeat_interval = Duration::from_secs(120)).await;
    app.register_charger("CP-1", 2, None).await;
    let view = app.charger_view("CP-1").await;
    assert_eq!(view["online"], false);
    assert_eq!(view["lastSeen"], Value::Null);

    let mut charger = app.connect("CP-1").await;
    assert_eq!(charger.protocol(), Some("ocpp1.6"));
    let boot = charger
        .call_result(
            "BootNotification",
            json!({
                "chargePointVendor": "Acme",
                "chargePointModel": "Volt-22",
                "chargePointSerialNumber": "SN-778",
                "firmwareVersion": "4.2.1"
            }),
        )
        .await
        .unwrap();
    assert_eq!(boot["status"], "Accepted");
    assert_eq!(boot["interval"], 120);
    let now = OffsetDateTime::now_utc();
    assert!((parse_time(&boot["currentTime"]) - now).abs() < time::Duration::seconds(5));

    let hb = charger.heartbeat().await.unwrap();
    assert!((parse_time(&hb["currentTime"]) - now).abs() < time::Duration::seconds(5));

    for (connector, status) in [(0, "Available"), (1, "Preparing"), (2, "Faulted")] {
        let error = if status == "Faulted" {
            "GroundFailure"
        } else {
            "NoError"
        };
        let answer = charger
            .call_result(
                "StatusNotification",
                json!({"connectorId": connector, "status": status, "errorCode": error,
                       "timestamp": "2026-11-24T10:00:00Z"}),
            )
            .await
            .unwrap();
        assert_eq!(answer, json!({}));
    }

    let view = app
        .wait_for_view("CP-1", |v| {
            v["online"] == true
                && v["connectorStatus"]
                    .as_array()
                    .is_some_and(|a| a.len() == 3)
        })
        .await;
    assert_eq!(view["vendor"], "Acme");
    assert_eq!(view["model"], "Volt-22");
    assert_eq!(view["serialNumber"], "SN-778");
    assert_eq!(view["firmwareVersion"], "4.2.1");
    assert!((parse_time(&view["lastSeen"]) - now).abs() < time::Duration::seconds(5));
    let statuses = view["connectorStatus"].as_array().unwrap();
    assert_eq!(statuses[0]["connectorId"], 0);
    assert_eq!(statuses[0]["status"], "Available");
    assert_eq!(statuses[1]["status"], "Preparing");
    assert_eq!(statuses[2]["status"], "Faulted");
    assert_eq!(statuses[2]["errorCode"], "GroundFailure");
    assert_eq!(
        parse_time(&statuses[2]["timestamp"]),
        parse_time(&json!("2026-11-24T10:00:00Z"))
    );

    assert!(assert_server_frames_valid(&charger) >= 5);

    // Once the charger leaves, the view says offline and keeps what it reported.
    drop(charger);
    let view = app.wait_for_view("CP-1", |v| v["online"] == false).await;
    assert_eq!(view["vendor"], "Acme");
    assert_eq!(view["connectorStatus"].as_array().unwrap().len(), 3);
    app.shutdown().await;
}

#[tokio::test]
async fn reported_state_survives_a_restart() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("CP-P").await;
    charger
        .call_result(
            "StatusNotification",
            json!({"connectorId": 1, "status": "Charging", "errorCode": "NoError"}),
        )
        .await
        .unwrap();
    drop(charger);
    let db = app.dir.path().join("echarging.db");
    let dir = app.dir.path().to_path_buf();
    app.stop.cancel();
    let _ = app.server.await;

    // A second server on the same database file.
    let again = spawn_app_with(|s| {
        s.database_url = format!("sqlite://{}", db.display());
        s.data_dir = dir.clone();
    })
    .await;
    let view = again.charger_view("CP-P").await;
    assert_eq!(view["online"], false);
    assert_eq!(view["vendor"], "Echarging Labs");
    assert_eq!(view["connectorStatus"][0]["status"], "Charging");
    assert!(view["lastSeen"].is_string());
    again.shutdown().await;
}

#[tokio::test]
async fn unregistered_charger_gets_404() {
    let app = spawn_app().await;
    let err = Charger::connect(&app.charger_config("NOPE-1"))
        .await
        .err()
        .expect("must be refused");
    assert!(matches!(err, ConnectError::Http { status: 404 }), "{err:?}");
    // An id that could never be registered is just as unknown.
    let err = Charger::connect(&app.charger_config("bad:id"))
        .await
        .err()
        .expect("must be refused");
    assert!(matches!(err, ConnectError::Http { status: 404 }), "{err:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn password_protected_charger_needs_basic_auth() {
    let app = spawn_app().await;
    let password = "s3cret-machine-key-01";
    app.register_charger("CP-SEC", 1, Some(password)).await;

    let refused = |cfg| async move { Charger::connect(&cfg).await.err().expect("refused") };
    let err = refused(app.charger_config("CP-SEC")).await;
    assert!(matches!(err, ConnectError::Http { status: 401 }), "{err:?}");

    let mut wrong = app.charger_config("CP-SEC");
    wrong.password = Some("not-the-right-key-99".into());
    let err = refused(wrong).await;
    assert!(matches!(err, ConnectError::Http { status: 401 }), "{err:?}");

    let mut right = app.charger_config("CP-SEC");
    right.password = Some(password.into());
    let mut charger = Charger::connect(&right).await.expect("right key connects");
    assert_eq!(charger.boot().await.unwrap()["status"], "Accepted");

    // The view never shows the key, only that there is one.
    let view = app.charger_view("CP-SEC").await;
    assert_eq!(view["passwordProtected"], true);
    assert!(!view.to_string().contains(password));
    app.shutdown().await;
}

/// The raw answer (head and body) to a WebSocket upgrade of `path` offering `protocols`
/// (no header when `None`).
async fn raw_upgrade(base: &str, path: &str, protocols: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let offer = protocols
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn client_without_our_subprotocol_is_refused_at_the_upgrade() {
    let app = spawn_app().await;
    app.register_charger("CP-NOPROTO", 1, None).await;

    // Offering nothing, or only another protocol: 400 before any WebSocket is made.
    for offered in [vec![], vec!["ocpp2.0.1".to_owned()]] {
        let mut cfg = app.charger_config("CP-NOPROTO");
        cfg.subprotocols = offered;
        let err = Charger::connect(&cfg).await.err().expect("refused");
        assert!(matches!(err, ConnectError::Http { status: 400 }), "{err:?}");
    }
    // The refusal is problem+json and says what was offered and what we speak.
    let answer = raw_upgrade(&app.base, "/ocpp/CP-NOPROTO", Some("ocpp2.0.1, ocpp1.5")).await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    let problem: Value = serde_json::from_str(body).expect("problem+json");
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["field"], "Sec-WebSocket-Protocol");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("ocpp2.0.1, ocpp1.5") && detail.contains("ocpp1.6"),
        "{detail}"
    );
    let answer = raw_upgrade(&app.base, "/ocpp/CP-NOPROTO", None).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("no WebSocket subprotocol was offered"),
        "{answer}"
    );

    // Offering several with ours among them: ours is chosen.
    let mut cfg = app.charger_config("CP-NOPROTO");
    cfg.subprotocols = vec!["ocpp2.0.1".into(), "ocpp1.6".into()];
    let charger = Charger::connect(&cfg).await.expect("connects");
    assert_eq!(charger.protocol(), Some("ocpp1.6"));
    app.shutdown().await;
}

#[tokio::test]
async fn client_without_our_subprotocol_is_closed_when_configured() {
    let app = spawn_app_with(|s| {
        s.subprotocol_mismatch = echarging::settings::SubprotocolMismatch::Close
    })
    .await;
    app.register_charger("CP-NOPROTO", 1, None).await;

    // Offering nothing: the handshake completes without the header, then the server closes.
    let mut cfg = app.charger_config("CP-NOPROTO");
    cfg.subprotocols.clear();
    let mut charger = Charger::connect(&cfg).await.expect("handshake completes");
    assert_eq!(charger.protocol(), None);
    assert_eq!(expect_close(&mut charger).await, Some(1002));

    // Offering only another protocol: no header is echoed, which the client must refuse.
    let mut cfg = app.charger_config("CP-NOPROTO");
    cfg.subprotocols = vec!["ocpp2.0.1".into()];
    let err = Charger::connect(&cfg)
        .await
        .err()
        .expect("no protocol echoed");
    assert!(matches!(err, ConnectError::NoSubprotocol), "{err:?}");

    // Offering several with ours among them: ours is chosen.
    let mut cfg = app.charger_config("CP-NOPROTO");
    cfg.subprotocols = vec!["ocpp2.0.1".into(), "ocpp1.6".into()];
    let charger = Charger::connect(&cfg).await.expect("connects");
    assert_eq!(charger.protocol(), Some("ocpp1.6"));
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_get_the_right_callerror_and_the_session_lives_on() {
    // The spec's table, as strict mode applies it (lenient mode answers some of these as meant:
    // see `lenient` and `field_corpus`).
    let app = spawn_app_with(|s| s.ocpp_strictness = Strictness::Strict).await;
    let mut charger = app.booted_charger("CP-BAD").await;
    let long_id = "x".repeat(37);
    let cases: Vec<(String, &str, &str)> = vec![
        ("this is not json".into(), "-1", "FormationViolation"),
        (r#"{"an":"object"}"#.into(), "-1", "FormationViolation"),
        // A CALL without its payload is incomplete (ProtocolError).
        (r#"[2,"a1","Heartbeat"]"#.into(), "a1", "ProtocolError"),
        (r#"[9,"a2","Heartbeat",{}]"#.into(), "a2", "PropertyConstraintViolation"),
        (r#"[2,"a3","Heartbeat",[]]"#.into(), "a3", "TypeConstraintViolation"),
        // An id too long to echo is answered with "-1".
        (
            format!(r#"[2,"{long_id}","Heartbeat",{{}}]"#),
            "-1",
            "PropertyConstraintViolation",
        ),
        (r#"[2,"a4","FlyToTheMoon",{}]"#.into(), "a4", "NotImplemented"),
        (
            r#"[2,"a5","ReserveNow",{"connectorId":1,"expiryDate":"2026-11-24T10:00:00Z","idTag":"T","reservationId":1}]"#.into(),
            "a5",
            "NotSupported",
        ),
        (
            r#"[2,"a6","BootNotification",{"chargePointVendor":"Acme"}]"#.into(),
            "a6",
            "OccurenceConstraintViolation",
        ),
        (
            r#"[2,"a7","Heartbeat",{"unexpected":true}]"#.into(),
            "a7",
            "FormationViolation",
        ),
        (
            r#"[2,"a8","BootNotification",{"chargePointVendor":12,"chargePointModel":"M"}]"#.into(),
            "a8",
            "TypeConstraintViolation",
        ),
        (
            r#"[2,"a9","BootNotification",{"chargePointVendor":"ABCDEFGHIJKLMNOPQRSTU","chargePointModel":"M"}]"#.into(),
            "a9",
            "PropertyConstraintViolation",
        ),
        (
            r#"[2,"a10","StatusNotification",{"connectorId":1,"status":"Flying","errorCode":"NoError"}]"#.into(),
            "a10",
            "PropertyConstraintViolation",
        ),
    ];
    let mut wrong = Vec::new();
    for (text, id, code) in &cases {
        charger.send_text(text).await.unwrap();
        let (got, description) = expect_call_error(&mut charger, id).await;
        if &got != code {
            wrong.push(format!("{text}: got {got} ({description}), want {code}"));
        }
        assert!(!description.is_empty());
        still_answers(&mut charger).await;
    }
    assert!(
        wrong.is_empty(),
        "wrong CALLERROR codes:\n{}",
        wrong.join("\n")
    );

    // A binary frame is not OCPP-J either.
    charger.send_binary(vec![1, 2, 3]).await.unwrap();
    let (code, _) = expect_call_error(&mut charger, "-1").await;
    assert_eq!(code, "FormationViolation");
    still_answers(&mut charger).await;

    // An answer to a call the server never made is ignored, not fatal.
    charger
        .send_text(r#"[3,"never-sent",{"status":"Accepted"}]"#)
        .await
        .unwrap();
    charger
        .send_text(r#"[4,"never-sent-either","GenericError","",{}]"#)
        .await
        .unwrap();
    still_answers(&mut charger).await;

    // A broken answer is not answered (that could ping-pong), and the session goes on.
    charger.send_text(r#"[3,"x"]"#).await.unwrap();
    charger
        .send_text(r#"[4,"x","GenericError"]"#)
        .await
        .unwrap();
    still_answers(&mut charger).await;
    assert!(
        charger
            .next_incoming(Duration::from_millis(200))
            .await
            .is_err(),
        "nothing may answer a broken CALLRESULT/CALLERROR"
    );

    // The 2.0 spelling of an error code is understood on input (no reply is due to it).
    charger
        .send_text(r#"[4,"nope","FormatViolation","x",{}]"#)
        .await
        .unwrap();
    still_answers(&mut charger).await;

    assert!(assert_server_frames_valid(&charger) > cases.len());
    app.shutdown().await;
}

#[tokio::test]
async fn oversized_frame_closes_with_1009_and_reconnect_works() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("CP-BIG").await;
    let huge = format!(
        r#"[2,"big","DataTransfer",{{"vendorId":"x","data":"{}"}}]"#,
        "a".repeat(70 * 1024)
    );
    charger.send_text(&huge).await.unwrap();
    assert_eq!(expect_close(&mut charger).await, Some(1009));

    let mut again = app.connect("CP-BIG").await;
    still_answers(&mut again).await;
    app.shutdown().await;
}

#[tokio::test]
async fn every_charger_request_gets_a_valid_answer() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("CP-ALL").await;
    let requests = [
        ("Authorize", json!({"idTag": "TAG-1"})),
        (
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "TAG-1", "meterStart": 100,
                   "timestamp": "2026-11-24T10:00:00Z"}),
        ),
        (
            "MeterValues",
            json!({"connectorId": 1, "meterValue": [{"timestamp": "2026-11-24T10:01:00Z",
                   "sampledValue": [{"value": "150", "measurand": "Energy.Active.Import.Register",
                                     "unit": "Wh"}]}]}),
        ),
        (
            "StopTransaction",
            json!({"transactionId": 7, "meterStop": 200, "timestamp": "2026-11-24T10:02:00Z"}),
        ),
        ("DataTransfer", json!({"vendorId": "com.example"})),
        (
            "DiagnosticsStatusNotification",
            json!({"status": "Uploaded"}),
        ),
        ("FirmwareStatusNotification", json!({"status": "Installed"})),
    ];
    for (action, payload) in requests {
        match charger.call(action, payload).await.unwrap() {
            CallOutcome::Result(_) => {}
            CallOutcome::Error { code, .. } => panic!("{action} got CALLERROR {code}"),
        }
    }
    // Until the ledger knows idTags, nobody is authorised.
    let auth = charger
        .call_result("Authorize", json!({"idTag": "TAG-1"}))
        .await
        .unwrap();
    assert_eq!(auth["idTagInfo"]["status"], "Invalid");
    assert!(assert_server_frames_valid(&charger) >= 9);
    app.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_replaces_the_first() {
    let app = spawn_app().await;
    let mut first = app.booted_charger("CP-DUP").await;
    let mut second = app.connect("CP-DUP").await;
    assert_eq!(expect_close(&mut first).await, Some(1000));
    still_answers(&mut second).await;
    assert_eq!(app.central.sessions.online_count(), 1);
    assert_eq!(app.charger_view("CP-DUP").await["online"], true);

    // Calls now go to the new socket, once it has booted there: a connection is judged by its
    // own Boot.
    let id = ChargeBoxId::parse("CP-DUP").unwrap();
    assert_eq!(
        app.central.sessions.call(&id, &ocpp::ClearCache {}).await,
        Err(CallFailure::NotBooted)
    );
    assert_eq!(second.boot().await.unwrap()["status"], "Accepted");
    let central = app.central.clone();
    let call = tokio::spawn(async move { central.sessions.call(&id, &ocpp::ClearCache {}).await });
    let (msg_id, action, _) = second.next_call(WAIT).await.unwrap();
    assert_eq!(action, "ClearCache");
    second
        .reply(&msg_id, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let answer = call.await.unwrap().unwrap();
    assert_eq!(answer.status, ocpp::ClearCacheStatus::Accepted);
    app.shutdown().await;
}

fn reserve_now(reservation_id: i32) -> ocpp::ReserveNow {
    ocpp::ReserveNow {
        connector_id: 1,
        expiry_date: ocpp::Timestamp::now(),
        id_tag: ocpp::IdToken::new("TAG-42").unwrap(),
        parent_id_tag: None,
        reservation_id,
    }
}

#[tokio::test]
async fn server_calls_are_correlated_queued_one_at_a_time_and_validated() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("CP-CALL").await;
    let id = ChargeBoxId::parse("CP-CALL").unwrap();

    // Two calls at once: the second waits until the first is answered.
    let central = app.central.clone();
    let (id1, id2) = (id.clone(), id.clone());
    let c1 = central.clone();
    let first = tokio::spawn(async move { c1.sessions.call(&id1, &reserve_now(1)).await });
    let (msg1, action, payload) = charger.next_call(WAIT).await.unwrap();
    let c2 = central.clone();
    let second = tokio::spawn(async move { c2.sessions.call(&id2, &reserve_now(2)).await });
    assert_eq!(action, "ReserveNow");
    assert_eq!(payload["reservationId"], 1);
    assert!(
        charger.next_call(Duration::from_millis(300)).await.is_err(),
        "a second CALL went out while the first was unanswered"
    );
    charger
        .reply(&msg1, json!({"status": "Accepted"}))
        .await
        .unwrap();
    let answer = first.await.unwrap().unwrap();
    assert_eq!(answer.status, ocpp::ReservationStatus::Accepted);

    let (msg2, _, payload) = charger.next_call(WAIT).await.unwrap();
    assert_eq!(payload["reservationId"], 2);
    assert_ne!(msg1, msg2);
    charger
        .reply_error(&msg2, "NotSupported", "no reservations here")
        .await
        .unwrap();
    match second.await.unwrap() {
        Err(CallFailure::CallError {
            code, description, ..
        }) => {
            assert_eq!(code, ErrorCode::NotSupported);
            assert_eq!(description, "no reservations here");
        }
        other => panic!("expected a CALLERROR failure, got {other:?}"),
    }

    // An answer that does not fit the response schema is a clear failure, not a panic.
    let c3 = central.clone();
    let id3 = id.clone();
    let third = tokio::spawn(async move { c3.sessions.call(&id3, &reserve_now(3)).await });
    let (msg3, _, _) = charger.next_call(WAIT).await.unwrap();
    charger
        .reply(&msg3, json!({"status": "Maybe"}))
        .await
        .unwrap();
    assert!(matches!(
        third.await.unwrap(),
        Err(CallFailure::BadResponse { .. })
    ));

    assert!(assert_server_frames_valid(&charger) >= 4);
    app.shutdown().await;
}

#[tokio::test]
async fn unanswered_call_times_out_and_offline_charger_fails_fast() {
    let app = spawn_app_with(|s| s.call_timeout = Duration::from_millis(300)).await;
    let mut charger = app.booted_charger("CP-SLOW").await;
    let id = ChargeBoxId::parse("CP-SLOW").unwrap();

    let started = std::time::Instant::now();
    let central = app.central.clone();
    let id1 = id.clone();
    let call = tokio::spawn(async move { central.sessions.call(&id1, &reserve_now(9)).await });
    let (_ignored, action, _) = charger.next_call(WAIT).await.unwrap();
    assert_eq!(action, "ReserveNow");
    assert_eq!(call.await.unwrap(), Err(CallFailure::Timeout));
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The queue moves on: the next call goes out and is answered.
    let central = app.central.clone();
    let id2 = id.clone();
    let call = tokio::spawn(async move { central.sessions.call(&id2, &reserve_now(10)).await });
    let (msg, _, _) = charger.next_call(WAIT).await.unwrap();
    charger
        .reply(&msg, json!({"status": "Occupied"}))
        .await
        .unwrap();
    assert_eq!(
        call.await.unwrap().unwrap().status,
        ocpp::ReservationStatus::Occupied
    );

    let offline = ChargeBoxId::parse("CP-NEVER").unwrap();
    assert_eq!(
        app.central.sessions.call(&offline, &reserve_now(1)).await,
        Err(CallFailure::Offline)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn silent_charger_is_marked_offline_and_closed() {
    let app = spawn_app_with(|s| {
        s.heartbeat_interval = Duration::from_secs(1);
        s.offline_after_intervals = 1.5;
        s.ws_ping_interval = Duration::from_millis(200);
    })
    .await;
    // One charger keeps reading (so it answers pings); the other goes quiet.
    let mut lively = app.booted_charger("CP-LIVE").await;
    let mut quiet = app.booted_charger("CP-QUIET").await;
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while tokio::time::Instant::now() < until {
        let _ = lively.next_incoming(Duration::from_millis(100)).await;
    }
    let view = app
        .wait_for_view("CP-QUIET", |v| v["online"] == false)
        .await;
    assert!(view["lastSeen"].is_string());
    assert_eq!(app.charger_view("CP-LIVE").await["online"], true);
    assert_eq!(expect_close(&mut quiet).await, Some(1000));
    app.shutdown().await;
}

#[tokio::test]
async fn stopping_the_server_closes_chargers_with_going_away() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("CP-STOP").await;
    app.stop.cancel();
    assert_eq!(expect_close(&mut charger).await, Some(1001));
    let _ = app.server.await;
}

#[tokio::test]
async fn a_silent_charger_opens_its_breaker_and_an_answer_closes_it() {
    let app = spawn_app_with(|s| {
        s.call_timeout = Duration::from_millis(200);
        s.breaker_failures = 2;
        s.breaker_cool_down = Duration::from_millis(600);
    })
    .await;
    let mut charger = app.booted_charger("CP-BRK").await;
    let id = ChargeBoxId::parse("CP-BRK").unwrap();
    assert_eq!(
        app.charger_view("CP-BRK").await["breaker"]["state"],
        "closed"
    );

    // Two calls the charger receives but never answers.
    for n in 0..2 {
        let central = app.central.clone();
        let id = id.clone();
        let call = tokio::spawn(async move { central.sessions.call(&id, &reserve_now(n)).await });
        charger.next_call(WAIT).await.unwrap();
        assert_eq!(call.await.unwrap(), Err(CallFailure::Timeout));
    }
    let view = app.charger_view("CP-BRK").await;
    assert_eq!(view["breaker"]["state"], "open");
    assert!(view["breaker"]["probeAfter"].is_string());
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open_breakers: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("echarging_breakers_open "))
        .expect("breaker gauge exported")
        .trim()
        .parse()
        .unwrap();
    assert!(open_breakers >= 1.0, "{open_breakers}");
    assert!(metrics.contains("echarging_breaker_opened_total"));

    // While open, calls fail fast and nothing reaches the charger.
    let started = std::time::Instant::now();
    assert_eq!(
        app.central.sessions.call(&id, &reserve_now(3)).await,
        Err(CallFailure::BreakerOpen)
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(charger.next_call(Duration::from_millis(200)).await.is_err());

    // After the cool-down one probe goes out; the charger answers; the breaker closes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let central = app.central.clone();
    let probe_id = id.clone();
    let probe =
        tokio::spawn(async move { central.sessions.call(&probe_id, &reserve_now(4)).await });
    let (msg, _, _) = charger.next_call(WAIT).await.unwrap();
    // Only one probe at a time: a second call meanwhile still fails fast.
    assert_eq!(
        app.central.sessions.call(&id, &reserve_now(5)).await,
        Err(CallFailure::BreakerOpen)
    );
    charger
        .reply(&msg, json!({"status": "Accepted"}))
        .await
        .unwrap();
    assert!(probe.await.unwrap().is_ok());
    let view = app.charger_view("CP-BRK").await;
    assert_eq!(view["breaker"]["state"], "closed");
    assert_eq!(view["breaker"]["consecutiveTimeouts"], 0);
    app.shutdown().await;
}
