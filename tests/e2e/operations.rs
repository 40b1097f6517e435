//! End-to-end operations: `/metrics` moves with what the server does (sessions, frames,
//! CALLERRORs, outbound CALLs, bookings, HTTP requests), and REST load shedding answers 503 with
//! `Retry-After` past `rest_max_concurrency` while charger sessions, probes and `/metrics` go on
//! as if nothing happened.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::{TestApp, expect_close, spawn_app, spawn_app_with};
use echarging::central::CallFailure;
use echarging::domain::ChargeBoxId;
use echarging::ocpp::v16 as ocpp;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const WAIT: Duration = Duration::from_secs(5);

/// The recorder is global to the process and the connected-chargers gauge has no label to tell
/// apps apart: tests that connect chargers run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One `/metrics` scrape, parsed.
struct Scrape {
    text: String,
    series: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// The sum over every series of `name` whose labels include `labels` (0 when none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|got| got == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = r.text().await.unwrap();
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| parse_series(l).unwrap_or_else(|| panic!("not a sample line: {l}")))
        .collect();
    Scrape { text, series }
}

/// `name{k="v",…} value` (label values may hold `{`, `}`, `,` and escapes).
fn parse_series(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_string(), BTreeMap::new(), value));
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.strip_suffix('}')?.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        (chars.next()? == '"').then_some(())?;
        let mut v = String::new();
        loop {
            match chars.next()? {
                '\\' => v.push(match chars.next()? {
                    'n' => '\n',
                    c => c,
                }),
                '"' => break,
                c => v.push(c),
            }
        }
        labels.insert(key, v);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name.to_string(), labels, value))
}

/// Poll `/metrics` until `check` holds for it.
async fn wait_for_scrape(app: &TestApp, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(app).await;
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}; metrics:\n{}", s.text);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

const CONNECTED: &str = "echarging_chargers_connected";
const FRAMES: &str = "echarging_ocpp_frames_total";

fn slot(hours_from_now: i64) -> (String, String) {
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
        + time::Duration::hours(hours_from_now);
    let end = start + time::Duration::hours(1);
    (
        start.format(&Rfc3339).unwrap(),
        end.format(&Rfc3339).unwrap(),
    )
}

#[tokio::test]
async fn metrics_move_with_sessions_frames_calls_bookings_and_requests() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app().await;
    let before = scrape(&app).await;

    // A session: connect, boot, heartbeat, one frame that is not OCPP-J, one outbound CALL.
    let mut charger = app.booted_charger("CP-MET-1").await;
    charger.heartbeat().await.unwrap();
    charger.send_text("not json").await.unwrap();
    charger.next_incoming(WAIT).await.unwrap(); // its CALLERROR
    let id = ChargeBoxId::parse("CP-MET-1").unwrap();
    let central = app.central.clone();
    let call_id = id.clone();
    let call =
        tokio::spawn(async move { central.sessions.call(&call_id, &ocpp::ClearCache {}).await });
    let (msg_id, _, _) = charger.next_call(WAIT).await.unwrap();
    charger
        .reply(&msg_id, json!({"status": "Accepted"}))
        .await
        .unwrap();
    call.await.unwrap().unwrap();
    let nowhere = ChargeBoxId::parse("CP-MET-NOWHERE").unwrap();
    assert_eq!(
        app.central
            .sessions
            .call(&nowhere, &ocpp::ClearCache {})
            .await
            .unwrap_err(),
        CallFailure::Offline
    );

    // A booking over REST, and a request no route matches.
    let r = app
        .api(Method::POST, "/api/v1/customers")
        .json(&json!({"name": "Ada", "idTags": ["MET-ADA"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (start, end) = slot(1);
    let r = app
        .http
        .post(app.url("/api/v1/reservations"))
        .bearer_auth(&token)
        .json(&json!({"chargerId": "CP-MET-1", "start": start, "end": end}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = app
        .http
        .get(app.url("/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let (b, a) = (before.sum(name, labels), after.sum(name, labels));
        assert!(a > b, "{name}{labels:?}: {b} → {a}\n{}", after.text);
    };
    assert_eq!(
        after.sum(CONNECTED, &[]),
        before.sum(CONNECTED, &[]) + 1.0,
        "{}",
        after.text
    );
    for action in ["BootNotification", "Heartbeat"] {
        for direction in ["in", "out"] {
            grew(FRAMES, &[("action", action), ("direction", direction)]);
        }
    }
    for direction in ["in", "out"] {
        grew(FRAMES, &[("action", "invalid"), ("direction", direction)]);
        grew(
            FRAMES,
            &[("action", "ClearCache"), ("direction", direction)],
        );
    }
    grew(
        "echarging_ocpp_callerrors_total",
        &[("code", "FormationViolation"), ("direction", "out")],
    );
    grew(
        "echarging_ocpp_calls_total",
        &[("action", "ClearCache"), ("outcome", "result")],
    );
    grew(
        "echarging_ocpp_calls_total",
        &[("action", "ClearCache"), ("outcome", "offline")],
    );
    grew(
        "echarging_ocpp_call_duration_seconds_count",
        &[("action", "ClearCache")],
    );
    grew("echarging_bookings_total", &[("outcome", "created")]);
    let booking_route = [
        ("route", "/api/v1/reservations"),
        ("method", "POST"),
        ("status", "201"),
    ];
    grew("echarging_http_requests_total", &booking_route);
    grew(
        "echarging_http_request_duration_seconds_count",
        &booking_route,
    );
    grew(
        "echarging_http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
    );
    // Route templates, never concrete paths.
    assert!(!after.text.contains("route=\"/api/v1/chargers/CP-MET-1\""));
    for name in [
        CONNECTED,
        FRAMES,
        "echarging_ocpp_callerrors_total",
        "echarging_ocpp_calls_total",
        "echarging_ocpp_call_duration_seconds",
        "echarging_bookings_total",
        "echarging_http_requests_total",
        "echarging_http_request_duration_seconds",
    ] {
        assert!(
            after.text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }

    // A second connection replaces the first without counting the charger twice, and the
    // charger leaving counts it off.
    let mut second = app.connect("CP-MET-1").await;
    assert_eq!(expect_close(&mut charger).await, Some(1000));
    second.heartbeat().await.unwrap();
    let now = scrape(&app).await;
    assert_eq!(
        now.sum(CONNECTED, &[]),
        before.sum(CONNECTED, &[]) + 1.0,
        "replacement counted twice:\n{}",
        now.text
    );
    second.send_close(1000, "bye").await.unwrap();
    drop(second);
    let base = before.sum(CONNECTED, &[]);
    wait_for_scrape(&app, "the gauge never came back down", |s| {
        s.sum(CONNECTED, &[]) == base
    })
    .await;
    app.shutdown().await;
}

/// A REST request that holds its permit until the returned charger goes away: a remote start
/// to a charger that takes the call and never answers it. (A slow body no longer holds one:
/// bodies are read before the permit is taken.) Sent again if it was itself shed.
async fn hold_rest_permit(app: &TestApp) -> (echarging_sim::Charger, tokio::task::JoinHandle<()>) {
    let mut charger = app.booted_charger("CP-HOLD").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let request = app
            .api(Method::POST, "/api/v1/chargers/CP-HOLD/remote-start")
            .json(&json!({"idTag": "HOLD-1"}));
        let call = tokio::spawn(async move {
            let _ = request.send().await;
        });
        match charger.next_incoming(Duration::from_millis(500)).await {
            Ok(echarging_sim::Incoming::Call { action, .. })
                if action == "RemoteStartTransaction" =>
            {
                return (charger, call);
            }
            _ => {
                let _ = call.await;
                assert!(
                    Instant::now() < deadline,
                    "the remote start never reached the charger"
                );
            }
        }
    }
}

/// A shed answer: 503, `Retry-After: 1`, problem+json.
async fn assert_shed(r: reqwest::Response) {
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 503, "{body}");
}

#[tokio::test]
async fn probes_metrics_docs_and_charger_sessions_are_never_shed() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with(|s| s.rest_max_concurrency = 1).await;
    app.register_charger("CP-SHED-1", 1, None).await;
    let shed_before = scrape(&app)
        .await
        .sum("echarging_http_requests_shed_total", &[]);

    let held = hold_rest_permit(&app).await;
    // The held request reaches its handler asynchronously: wait until the limit bites.
    let deadline = Instant::now() + WAIT;
    let r = loop {
        let r = app
            .api(Method::GET, "/api/v1/chargers")
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            break r;
        }
        assert_eq!(r.status(), 200);
        assert!(Instant::now() < deadline, "the REST limit never bit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_shed(r).await;
    let r = app
        .api(Method::POST, "/api/v1/customers")
        .json(&json!({"name": "Eve", "idTags": ["SHED-EVE"]}))
        .send()
        .await
        .unwrap();
    assert_shed(r).await;
    // Anything under /api/ is limited, routed or not.
    let r = app
        .api(Method::GET, "/api/v1/nothing")
        .send()
        .await
        .unwrap();
    assert_shed(r).await;

    // While REST is saturated: probes, metrics and docs answer, and a charger connects, boots
    // and heartbeats.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} while REST is saturated");
    }
    let mut charger = app.connect("CP-SHED-1").await;
    assert_eq!(charger.boot().await.unwrap()["status"], "Accepted");
    charger.heartbeat().await.unwrap();
    let s = scrape(&app).await;
    assert!(
        s.sum("echarging_http_requests_shed_total", &[]) >= shed_before + 3.0,
        "{}",
        s.text
    );
    assert!(
        s.sum(
            "echarging_http_requests_total",
            &[
                ("route", "/api/v1/chargers"),
                ("method", "GET"),
                ("status", "503")
            ]
        ) >= 1.0,
        "{}",
        s.text
    );

    // The permit comes back when the held request ends.
    drop(held);
    let deadline = Instant::now() + WAIT;
    loop {
        let r = app
            .api(Method::GET, "/api/v1/chargers")
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "the REST limit never freed up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(charger);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_flood_is_shed_while_heartbeats_keep_their_latency() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with(|s| s.rest_max_concurrency = 1).await;
    let mut charger = app.booted_charger("CP-FLOOD-1").await;

    let mut baseline = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        charger.heartbeat().await.unwrap();
        baseline.push(started.elapsed());
    }
    let baseline_max = *baseline.iter().max().unwrap();

    // Closed-loop heartbeats while rounds of 200 concurrent REST requests run, until every
    // heartbeat has had REST traffic around it.
    let heartbeats = tokio::spawn(async move {
        let mut rtts = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            charger.heartbeat().await.expect("heartbeat answered");
            rtts.push(started.elapsed());
        }
        (charger, rtts)
    });
    let (mut ok, mut shed, mut rounds) = (0, 0, 0);
    while rounds < 3 || !heartbeats.is_finished() {
        rounds += 1;
        let mut flood = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let request = app.api(Method::GET, "/api/v1/chargers");
            flood.spawn(async move {
                let r = request.send().await.unwrap();
                let status = r.status().as_u16();
                let retry_after = r.headers().get("retry-after").cloned();
                let ct = r.headers().get("content-type").cloned();
                let body = r.text().await.unwrap();
                (status, retry_after, ct, body)
            });
        }
        while let Some(answer) = flood.join_next().await {
            let (status, retry_after, ct, body) = answer.unwrap();
            match status {
                200 => ok += 1,
                503 => {
                    shed += 1;
                    assert_eq!(retry_after.unwrap(), "1");
                    assert_eq!(ct.unwrap(), "application/problem+json");
                    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["status"], 503);
                }
                other => panic!("a flooded request answered {other}: {body}"),
            }
        }
    }
    let (mut charger, during) = heartbeats.await.unwrap();
    assert!(ok > 0 && shed > 0, "ok {ok}, shed {shed}");
    // Generous, so a busy box does not flake; heartbeats queued behind hundreds of REST
    // requests would blow it.
    let bound = Duration::from_millis(200).max(baseline_max * 4);
    let worst = *during.iter().max().unwrap();
    assert!(
        worst < bound,
        "heartbeat latency during the flood {worst:?} (baseline max {baseline_max:?}, {} beats)",
        during.len()
    );
    charger.heartbeat().await.unwrap();
    app.shutdown().await;
}
