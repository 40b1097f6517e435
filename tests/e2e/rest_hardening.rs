//! REST hardening, as an outside client probing the port would find it: clients that send slowly
//! or not at all cannot starve anyone else, NUL is refused at the edge on both backends, bodies
//! are JSON objects of a JSON media type and a bounded size, and answers say what is stored.
//! Slow clients are raw TCP streams against the real server.

use std::time::{Duration, Instant};

use echarging::transport::listener::ConnectionLimits;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    TOKEN, TestApp, as_customer, create_customer, now, rfc, spawn_app, spawn_app_built,
    spawn_app_with,
};

/// Small limits so that the tests see them act within seconds.
fn small_limits(max_pending: usize) -> ConnectionLimits {
    ConnectionLimits {
        max_open: 10_000,
        max_pending,
        header_read_timeout: Duration::from_secs(2),
    }
}

async fn raw(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Whether the server closes `tcp` within `within` (EOF or reset), reading past any answer.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "errors are problem+json"
    );
    r.json().await.unwrap()
}

#[tokio::test]
async fn clients_slow_to_send_a_body_do_not_stop_the_operator() {
    let app = spawn_app_with(|s| s.rest_max_concurrency = 8).await;
    let mut slow = Vec::new();
    for _ in 0..16 {
        let mut tcp = raw(&app).await;
        let head = format!(
            "POST /api/v1/chargers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        slow.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let r = app
            .api(Method::GET, "/api/v1/chargers")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "the operator is served while 16 bodies trickle in"
        );
    }
    // The slow ones are answered 408 and closed once the body timeout passes.
    let started = Instant::now();
    let mut first = slow.remove(0);
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), first.read_to_end(&mut answer)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(started.elapsed() < Duration::from_secs(12));
    app.shutdown().await;
}

#[tokio::test]
async fn a_half_sent_request_is_closed_within_the_header_timeout() {
    let app = spawn_app_built(|_| {}, |a| a.set_connection_limits(small_limits(1000))).await;
    let mut tcp = raw(&app).await;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut tcp, Duration::from_secs(6)).await,
        "a head that never ends is closed"
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    // An idle keep-alive connection goes the same way.
    let mut idle = raw(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(6)).await);
    app.shutdown().await;
}

#[tokio::test]
async fn a_dribbling_client_is_cut_off() {
    let app = spawn_app_built(|_| {}, |a| a.set_connection_limits(small_limits(1000))).await;
    let mut tcp = raw(&app).await;
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut = false;
    for byte in head.iter() {
        if tcp.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(250), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(_)) => panic!("the dribbled request was answered"),
            Err(_) => {}
        }
    }
    assert!(
        cut,
        "a head dribbled for {:?} was not cut off",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    app.shutdown().await;
}

#[tokio::test]
async fn a_flood_of_half_sent_requests_leaves_room_for_probes_and_chargers() {
    let app = spawn_app_built(
        |_| {},
        |a| {
            let mut l = small_limits(16);
            l.header_read_timeout = Duration::from_secs(30);
            a.set_connection_limits(l)
        },
    )
    .await;
    let mut flood = Vec::new();
    for _ in 0..100 {
        let mut tcp = raw(&app).await;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        flood.push(tcp);
    }
    // The oldest waiting ones were closed to make room: at most 16 are left waiting.
    let mut closed = 0;
    for tcp in flood.iter_mut() {
        if closed_within(tcp, Duration::from_millis(20)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 100 - 16,
        "only {closed} of 100 half-sent requests were closed"
    );
    let started = Instant::now();
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _charger = app.booted_charger("CP-FLOOD").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    app.shutdown().await;
}

/// NUL in names, idTags and query parameters is 422 naming the field.
async fn nul_is_refused(app: &TestApp) {
    let r = app
        .api(Method::POST, "/api/v1/chargers")
        .json(&json!({"id": "CP-NUL", "name": "a\u{0}b", "connectors": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 422).await["field"], "name");
    let r = app
        .api(Method::POST, "/api/v1/customers")
        .json(&json!({"name": "Nul", "idTags": ["OK-1", "BAD\u{0}"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 422).await["field"], "idTags[1]");
    for (path, field) in [
        ("/api/v1/chargers?after=%00", "after"),
        ("/api/v1/reservations?chargerId=CP%00", "chargerId"),
        ("/api/v1/reservations?status=%00", "status"),
        ("/api/v1/transactions?chargerId=%00", "chargerId"),
    ] {
        let r = app.api(Method::GET, path).send().await.unwrap();
        assert_eq!(problem(r, 422).await["field"], field, "{path}");
    }
    app.register_charger("CP-NUL", 1, None).await;
    let c = create_customer(app, "Nula", &["NULA-1"]).await;
    let start = now() + time::Duration::hours(1);
    let r = as_customer(app, &c, Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": "CP-NUL", "idTag": "NULA\u{0}",
            "start": rfc(start), "end": rfc(start + time::Duration::hours(1))}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 422).await["field"], "idTag");
    // Nothing was half-written: the server still answers everything.
    let r = app
        .api(Method::GET, "/api/v1/chargers")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn nul_is_refused_at_the_edge_on_sqlite() {
    let app = spawn_app().await;
    nul_is_refused(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn nul_is_refused_at_the_edge_on_postgres() {
    let Some(pg) = crate::support::pg::PgSchema::new().await else {
        return;
    };
    let app = spawn_app_with(|s| s.database_url = pg.url.clone()).await;
    nul_is_refused(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn fewer_connectors_cannot_orphan_a_reservation() {
    let app = spawn_app().await;
    app.register_charger("CP-2", 2, None).await;
    let c = create_customer(&app, "Ada", &["ADA-1"]).await;
    let start = now() + time::Duration::hours(1);
    let r = as_customer(&app, &c, Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": "CP-2", "connectorId": 2,
            "start": rfc(start), "end": rfc(start + time::Duration::hours(1))}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = app
        .api(Method::PATCH, "/api/v1/chargers/CP-2")
        .json(&json!({"connectors": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 409).await["field"], "connectors");
    assert_eq!(app.charger_view("CP-2").await["connectors"], 2);
    // Growing, or shrinking above the booked connector, is fine.
    let r = app
        .api(Method::PATCH, "/api/v1/chargers/CP-2")
        .json(&json!({"connectors": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .api(Method::PATCH, "/api/v1/chargers/CP-2")
        .json(&json!({"connectors": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn bodies_are_json_objects_of_a_json_media_type_and_bounded() {
    let app = spawn_app().await;
    app.register_charger("CP-1", 1, None).await;
    let r = app
        .api(Method::PATCH, "/api/v1/chargers/CP-1")
        .json(&json!({"name": "Bay 4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An array is not a body, even one serde could read member by position.
    let r = app
        .api(Method::PATCH, "/api/v1/chargers/CP-1")
        .json(&json!([null, null]))
        .send()
        .await
        .unwrap();
    problem(r, 422).await;
    assert_eq!(app.charger_view("CP-1").await["name"], "Bay 4");
    // No Content-Type: 415.
    let r = app
        .api(Method::POST, "/api/v1/chargers")
        .body(r#"{"id":"CP-2","connectors":1}"#)
        .send()
        .await
        .unwrap();
    problem(r, 415).await;
    // Media types are case-insensitive.
    let r = app
        .api(Method::POST, "/api/v1/chargers")
        .header("content-type", "Application/JSON; charset=UTF-8")
        .body(r#"{"id":"CP-2","connectors":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Too large: 413, whether announced or not.
    let big = format!(
        r#"{{"id":"CP-3","connectors":1,"name":"{}"}}"#,
        "x".repeat(3 << 20)
    );
    let r = app
        .api(Method::POST, "/api/v1/chargers")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    problem(r, 413).await;
    app.shutdown().await;
}

#[tokio::test]
async fn every_bad_query_parameter_is_named() {
    let app = spawn_app().await;
    // An id that cannot exist does not skip checking the rest.
    let r = app
        .api(
            Method::GET,
            "/api/v1/transactions?chargerId=no%20such&status=NOPE",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, 422).await["field"], "status");
    let r = app
        .api(
            Method::GET,
            "/api/v1/reservations?chargerId=bad%20id&status=NOPE&limit=0",
        )
        .send()
        .await
        .unwrap();
    let p = problem(r, 422).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("status") && detail.contains("limit"), "{p}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_booking_answers_what_is_stored() {
    let app = spawn_app().await;
    app.register_charger("CP-1", 1, None).await;
    let c = create_customer(&app, "Ada", &["ADA-1"]).await;
    let day = (now() + time::Duration::days(1)).date();
    let r = as_customer(&app, &c, Method::POST, "/api/v1/reservations")
        .json(&json!({"chargerId": "CP-1",
            "start": format!("{day}T12:00:00.123456789+02:00"),
            "end": format!("{day}T13:00:00.5+02:00")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let posted: Value = r.json().await.unwrap();
    assert_eq!(posted["start"], format!("{day}T10:00:00.123Z"));
    assert_eq!(posted["end"], format!("{day}T11:00:00.5Z"));
    let path = format!("/api/v1/reservations/{}", posted["id"]);
    let got: Value = app
        .api(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&got["start"], &got["end"]),
        (&posted["start"], &posted["end"])
    );
    app.shutdown().await;
}
