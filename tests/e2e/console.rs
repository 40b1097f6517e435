//! End-to-end: the web console in a real headless Chromium, driven over WebDriver (chromedriver,
//! started here on a free port). The operator signs in, watches a charger come online without a
//! reload, remote-stops a charge from the charger page, and signs out; a driver books a free
//! slot through the form, sees the charger's ReserveNow answer and the energy rise live; a
//! customer token cannot open the operator console. Each page is saved as a screenshot in
//! `target/console-screenshots/`. Without chromium and chromedriver the tests skip, except
//! under `CI=true`, where that is a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::{Customer, TOKEN, TestApp, create_customer, now, rfc, spawn_app};
use echarging_sim::Charger;

/// What the contract gives the page to show a change: 2 s, no reload.
const LIVE: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(10);

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A browser session, or `None` (skipped) when Chromium is not installed outside CI.
async fn browser() -> Option<(Driver, Client)> {
    let chromium = find_binary(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find_binary(&["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "chromium and chromedriver are required under CI=true (apt-get install chromium chromium-driver)"
            );
        }
        eprintln!("SKIPPED: console browser tests need chromium and chromedriver on PATH");
        return None;
    };
    let port = free_port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().expect("profile dir");
    let d = Driver {
        child,
        port,
        _profile: profile,
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", d.port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", d._profile.path().display())])
    .collect::<Vec<_>>();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium.display().to_string(), "args": args}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a WebDriver session");
    Some((d, client))
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

async fn shot(b: &Client, name: &str) {
    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).expect("screenshot written");
}

/// The first element matching `css`, waiting up to `within`.
async fn wait_for(b: &Client, css: &str, within: Duration) -> fantoccini::elements::Element {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(e) = b.find(Locator::Css(css)).await {
            return e;
        }
        if tokio::time::Instant::now() >= deadline {
            let url = b
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let source = b.source().await.unwrap_or_default();
            panic!("no {css} within {within:?} on {url}:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Text of the first match of `css`, waiting until `check` holds for it.
async fn wait_text(b: &Client, css: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = match b.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if check(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} never matched, last {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mark the page; [`not_reloaded`] then tells whether it is still the same document.
async fn mark_page(b: &Client) {
    b.execute("window.__consoleMark = 42;", vec![])
        .await
        .expect("script runs");
}

async fn not_reloaded(b: &Client) -> bool {
    b.execute("return window.__consoleMark === 42;", vec![])
        .await
        .expect("script runs")
        == json!(true)
}

/// Fill the sign-in form (a password field named `token`) and submit it.
async fn sign_in(b: &Client, app: &TestApp, path: &str, token: &str) {
    b.goto(&app.url(path)).await.unwrap();
    let field = wait_for(b, "input[type=password][name=token]", WAIT).await;
    field.send_keys(token).await.unwrap();
    b.find(Locator::Css("form.signin button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Set a form field's value as the page's own script would (a `datetime-local` field's typing
/// order depends on the browser's locale).
async fn set_value(b: &Client, css: &str, value: &str) {
    b.execute(
        "document.querySelector(arguments[0]).value = arguments[1];",
        vec![json!(css), json!(value)],
    )
    .await
    .expect("script runs");
}

/// `YYYY-MM-DDTHH:MM` in UTC, as the console's datetime-local fields read.
fn local_minute(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

async fn expect_call(charger: &mut Charger, action: &str) -> (String, Value) {
    let (id, got, payload) = charger
        .next_call(WAIT)
        .await
        .unwrap_or_else(|e| panic!("expected {action}: {e}"));
    assert_eq!(got, action, "{payload}");
    (id, payload)
}

async fn status(charger: &mut Charger, connector: u32, status: &str, error: &str) {
    let answer = charger
        .call_result(
            "StatusNotification",
            json!({"connectorId": connector, "status": status, "errorCode": error,
                "timestamp": rfc(now())}),
        )
        .await
        .unwrap();
    assert_eq!(answer, json!({}));
}

async fn meter(charger: &mut Charger, tx: i64, wh: i64, at: time::OffsetDateTime) {
    let answer = charger
        .call_result(
            "MeterValues",
            json!({"connectorId": 1, "transactionId": tx, "meterValue": [{
                "timestamp": rfc(at),
                "sampledValue": [
                    {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
                    {"value": wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                ]}]}),
        )
        .await
        .unwrap();
    assert_eq!(answer, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_and_driver_use_the_console_in_a_real_browser() {
    let Some((_driver, b)) = browser().await else {
        return;
    };
    let app = spawn_app().await;
    app.register_charger("CP-WEB", 2, None).await;
    app.register_charger("CP-IDLE", 1, None).await;
    let ada: Customer = create_customer(&app, "Ada", &["ADA-WEB"]).await;

    // The operator signs in with the operator token: the fleet, CP-WEB offline.
    b.goto(&app.url("/")).await.unwrap();
    wait_for(&b, "input[type=password][name=token]", WAIT).await;
    shot(&b, "01-operator-sign-in").await;
    sign_in(&b, &app, "/", TOKEN).await;
    wait_for(&b, r#"[data-charger="CP-WEB"][data-online="false"]"#, WAIT).await;

    // The charger connects and boots: its row turns online within 2 s, without a reload.
    mark_page(&b).await;
    let mut cp = app.connect("CP-WEB").await;
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");
    wait_for(&b, r#"[data-charger="CP-WEB"][data-online="true"]"#, LIVE).await;
    for connector in 1..=2 {
        status(&mut cp, connector, "Available", "NoError").await;
    }
    wait_text(&b, r#"[data-charger="CP-WEB"] [data-field=status]"#, |t| {
        t == "1 Available · 2 Available"
    })
    .await;
    // A fault shows in the row and the counts, live.
    status(&mut cp, 2, "Faulted", "GroundFailure").await;
    wait_for(&b, r#"[data-charger="CP-WEB"][data-faulted="true"]"#, LIVE).await;
    wait_text(&b, r#"[data-count="faulted"]"#, |t| t == "1").await;
    status(&mut cp, 2, "Available", "NoError").await;
    wait_for(&b, r#"[data-charger="CP-WEB"][data-faulted="false"]"#, LIVE).await;
    assert!(not_reloaded(&b).await, "the row changed by a reload");
    wait_text(&b, r#"[data-count="online"]"#, |t| t == "1").await;
    shot(&b, "02-operator-fleet").await;

    // The driver signs in at /my/, picks the charger and sees its free slots.
    sign_in(&b, &app, "/my/", &ada.token).await;
    wait_text(&b, "h1", |t| t.contains("Ada")).await;
    b.goto(&app.url("/my/?chargerId=CP-WEB")).await.unwrap();
    wait_for(&b, r#"[data-free-connector="1"]"#, WAIT).await;

    // … and books one through the form, starting now.
    let n = now();
    set_value(&b, "input[name=chargerId]#b-charger", "CP-WEB").await;
    set_value(&b, "input[name=connectorId]", "1").await;
    set_value(&b, "input[name=start]", &local_minute(n)).await;
    set_value(
        &b,
        "input[name=end]",
        &local_minute(n + time::Duration::minutes(90)),
    )
    .await;
    b.find(Locator::Css("#book-h + form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let booking = wait_for(&b, r#"[data-reservation][data-status="BOOKED"]"#, WAIT).await;
    let rid: i64 = booking
        .attr("data-reservation")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let mine = format!(r#"[data-reservation="{rid}"]"#);
    wait_text(&b, &format!("{mine} [data-field=ack]"), |t| t == "PENDING").await;

    // The slot has begun, so the charger is sent ReserveNow; its answer shows live.
    mark_page(&b).await;
    let (call, reserve) = expect_call(&mut cp, "ReserveNow").await;
    assert_eq!(reserve["reservationId"], rid);
    cp.reply(&call, json!({"status": "Accepted"}))
        .await
        .unwrap();
    wait_for(&b, &format!(r#"{mine}[data-ack="ACCEPTED"]"#), LIVE).await;
    wait_text(&b, &format!("{mine} [data-field=ack]"), |t| t == "ACCEPTED").await;
    assert!(not_reloaded(&b).await);
    shot(&b, "03-driver-booked").await;

    // Ada plugs in: the booking is charging, and its energy rises on the page as meters come.
    // Plugged in six minutes ago (inside the early-start grace), so the meters below give a
    // steady 30 kW: 1500 Wh every three minutes.
    let began = now() - time::Duration::minutes(6);
    let started = cp
        .call_result(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "ADA-WEB", "meterStart": 1000,
                "reservationId": rid, "timestamp": rfc(began)}),
        )
        .await
        .unwrap();
    assert_eq!(started["idTagInfo"]["status"], "Accepted");
    let tx = started["transactionId"].as_i64().unwrap();
    status(&mut cp, 1, "Charging", "NoError").await;
    wait_for(
        &b,
        &format!(r#"{mine}[data-status="CHARGING_STARTED"]"#),
        WAIT,
    )
    .await;
    wait_for(&b, &format!(r#"[data-energy-of="{rid}"]"#), WAIT).await;
    mark_page(&b).await;
    meter(&mut cp, tx, 2500, began + time::Duration::minutes(3)).await;
    wait_text(&b, &format!("{mine} [data-field=energy]"), |t| {
        t == "1.500 kWh"
    })
    .await;
    meter(&mut cp, tx, 4000, began + time::Duration::minutes(6)).await;
    wait_text(&b, &format!("{mine} [data-field=energy]"), |t| {
        t == "3.000 kWh"
    })
    .await;
    wait_text(&b, &format!(r#"[data-energy-of="{rid}"]"#), |t| {
        t == "3.000 kWh"
    })
    .await;
    assert!(not_reloaded(&b).await, "the energy rose by a reload");
    shot(&b, "04-driver-charging").await;

    // The fleet page draws the load of the running charge from its meter values.
    b.goto(&app.url("/")).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let drawn = b
            .find(Locator::Css("svg.chart polyline.load"))
            .await
            .is_ok();
        let now_text = match b.find(Locator::Css("[data-load-kw]")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if drawn && now_text.starts_with("Now 30.0 kW over 1 charging sessions") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no load chart: {now_text:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.refresh().await.unwrap();
    }
    shot(&b, "04b-operator-fleet-load").await;
    b.goto(&app.url("/my/")).await.unwrap();
    wait_for(&b, &format!(r#"[data-energy-of="{rid}"]"#), WAIT).await;
    b.set_window_size(390, 844).await.unwrap();
    shot(&b, "05-driver-phone").await;
    b.set_window_size(1280, 1400).await.unwrap();

    // A later booking on the other charger, then cancelled from the page.
    let later = now() + time::Duration::hours(2);
    b.goto(&app.url("/my/?chargerId=CP-IDLE")).await.unwrap();
    wait_for(&b, r#"[data-free-connector="1"]"#, WAIT).await;
    set_value(&b, "input[name=chargerId]#b-charger", "CP-IDLE").await;
    set_value(&b, "input[name=connectorId]", "").await;
    set_value(&b, "input[name=start]", &local_minute(later)).await;
    set_value(
        &b,
        "input[name=end]",
        &local_minute(later + time::Duration::hours(1)),
    )
    .await;
    b.find(Locator::Css("#book-h + form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let second = wait_for(&b, r#"li.booking[data-status="BOOKED"]"#, WAIT).await;
    let second_id = second.attr("data-reservation").await.unwrap().unwrap();
    assert_ne!(second_id, rid.to_string());
    second
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &b,
        &format!(r#"[data-reservation="{second_id}"][data-status="CANCELLED"]"#),
        WAIT,
    )
    .await;
    wait_text(&b, "p.notice", |t| t.contains("is cancelled")).await;

    // The operator opens the charger page and remote-stops the charge; the charger answers
    // and then stops the transaction.
    b.goto(&app.url("/console/chargers/CP-WEB")).await.unwrap();
    wait_for(&b, r#"[data-charger="CP-WEB"][data-online="true"]"#, WAIT).await;
    wait_for(
        &b,
        &format!(r#"[data-transaction="{tx}"][data-status="ACTIVE"]"#),
        WAIT,
    )
    .await;
    shot(&b, "06-operator-charger").await;
    let charger_side = tokio::spawn(async move {
        let (call, stop) = expect_call(&mut cp, "RemoteStopTransaction").await;
        assert_eq!(stop["transactionId"], tx);
        cp.reply(&call, json!({"status": "Accepted"}))
            .await
            .unwrap();
        let answer = cp
            .call_result(
                "StopTransaction",
                json!({"transactionId": tx, "meterStop": 4500, "timestamp": rfc(now()),
                    "reason": "Remote"}),
            )
            .await
            .unwrap();
        assert!(answer.is_object(), "{answer}");
        cp
    });
    b.find(Locator::Css(&format!(
        r#"[data-transaction="{tx}"] button[type=submit]"#
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(&b, "p.notice", |t| {
        t == "Remote stop: the charger accepted."
    })
    .await;
    let _cp = tokio::time::timeout(WAIT, charger_side)
        .await
        .expect("the charger side finished")
        .expect("the charger side did not panic");
    b.goto(&app.url("/console/chargers/CP-WEB")).await.unwrap();
    wait_for(
        &b,
        &format!(r#"[data-transaction="{tx}"][data-status="ENDED"]"#),
        WAIT,
    )
    .await;
    wait_text(&b, &format!(r#"[data-transaction="{tx}"]"#), |t| {
        t.contains("3.500 kWh")
    })
    .await;
    shot(&b, "07-operator-charger-stopped").await;

    // The driver's history shows the session's energy.
    b.goto(&app.url("/my/history")).await.unwrap();
    wait_text(&b, &format!(r#"[data-transaction="{tx}"]"#), |t| {
        t.contains("3.500 kWh")
    })
    .await;
    shot(&b, "08-driver-history").await;

    // The other operator pages.
    b.goto(&app.url("/console/reservations")).await.unwrap();
    wait_for(
        &b,
        &format!(r#"[data-reservation="{rid}"][data-status="CHARGING_ENDED"]"#),
        WAIT,
    )
    .await;
    shot(&b, "09-operator-bookings").await;
    b.goto(&app.url("/console/transactions")).await.unwrap();
    wait_for(&b, &format!(r#"[data-transaction="{tx}"]"#), WAIT).await;
    shot(&b, "10-operator-transactions").await;
    b.goto(&app.url("/console/customers")).await.unwrap();
    wait_for(&b, "#c-name", WAIT)
        .await
        .send_keys("Bob")
        .await
        .unwrap();
    b.find(Locator::Css("#c-tags"))
        .await
        .unwrap()
        .send_keys("BOB-WEB, BOB-CARD")
        .await
        .unwrap();
    b.find(Locator::Css("#new-h + form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let bob_token = wait_for(&b, "[data-token]", WAIT)
        .await
        .text()
        .await
        .unwrap();
    shot(&b, "11-operator-customer-created").await;
    let me = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(bob_token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "the issued token works");

    // Signing out ends the operator session: the console asks for the token again.
    b.goto(&app.url("/")).await.unwrap();
    b.find(Locator::Css(
        "header form[action='/console/signout'] button",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_for(&b, "input[type=password][name=token]", WAIT).await;
    b.goto(&app.url("/console/transactions")).await.unwrap();
    wait_for(&b, "input[type=password][name=token]", WAIT).await;
    assert!(b.find(Locator::Css("[data-transaction]")).await.is_err());

    // A customer token does not open the operator console, even with a driver session open.
    sign_in(&b, &app, "/", &ada.token).await;
    wait_text(&b, "[role=alert]", |t| t.contains("not the operator token")).await;
    shot(&b, "12-operator-refuses-customer-token").await;
    b.goto(&app.url("/")).await.unwrap();
    wait_for(&b, "input[type=password][name=token]", WAIT).await;
    assert!(b.find(Locator::Css("[data-charger]")).await.is_err());

    // The driver signs out too.
    b.goto(&app.url("/my/")).await.unwrap();
    b.find(Locator::Css("header form[action='/my/signout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&b, "input[type=password][name=token]", WAIT).await;

    b.close().await.unwrap();
    app.shutdown().await;
}

/// Without a browser: what the cookies and forms promise (HttpOnly, SameSite=Strict, CSRF), and
/// that a driver's session or a customer token reaches no operator page or stream.
#[tokio::test]
async fn sessions_are_strict_cookies_and_forms_need_their_token() {
    let app = spawn_app().await;
    let ada = create_customer(&app, "Ada", &["ADA-COOKIE"]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http.get(app.url("/my/")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let pre = cookie_of(&form, "echarging_my_signin");
    let html = form.text().await.unwrap();
    assert!(html.contains(r#"type="password" name="token""#), "{html}");
    let field = hidden(&html, "signin");

    // Without the sign-in form's own token, no session.
    let forged = http
        .post(app.url("/my/signin"))
        .form(&[("token", ada.token.as_str()), ("signin", "forged")])
        .header("cookie", format!("echarging_my_signin={pre}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let signed = http
        .post(app.url("/my/signin"))
        .form(&[("token", ada.token.as_str()), ("signin", field.as_str())])
        .header("cookie", format!("echarging_my_signin={pre}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let set = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("echarging_my="))
        .expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let session = set.split(';').next().unwrap().to_string();

    // The driver's page is reachable with it; the operator console and its stream are not.
    let mine = http
        .get(app.url("/my/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200);
    let page = mine.text().await.unwrap();
    assert!(page.contains("Hello, Ada"));
    let csrf = hidden(&page, "csrf");
    let events = http
        .get(app.url("/console/events"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 401);
    let fleet = http
        .get(app.url("/console/transactions"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(fleet.status(), 303, "sent to the sign-in form");

    // A form without the session's CSRF token changes nothing.
    let n = now();
    let slot = [
        ("chargerId", "NOPE".to_string()),
        ("start", rfc(n + time::Duration::hours(1))),
        ("end", rfc(n + time::Duration::hours(2))),
    ];
    let mut without: Vec<(&str, String)> = slot.to_vec();
    without.push(("csrf", "wrong".into()));
    let refused = http
        .post(app.url("/my/book"))
        .header("cookie", &session)
        .form(&without)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let mut with: Vec<(&str, String)> = slot.to_vec();
    with.push(("csrf", csrf));
    let checked = http
        .post(app.url("/my/book"))
        .header("cookie", &session)
        .form(&with)
        .send()
        .await
        .unwrap();
    assert_eq!(checked.status(), 422, "the form was read: no such charger");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let form = http
        .get(app.url("/"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let pre = cookie_of(&form, "echarging_console_signin");
    let field = hidden(&form.text().await.unwrap(), "signin");
    let op = http
        .post(app.url("/console/signin"))
        .header("x-forwarded-proto", "https")
        .header("cookie", format!("echarging_console_signin={pre}"))
        .form(&[("token", TOKEN), ("signin", field.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(op.status(), 303);
    let set = op.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.starts_with("echarging_console=") && set.contains("; Secure"),
        "{set}"
    );
    app.shutdown().await;
}

fn cookie_of(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie {name}"))
        .to_string()
}

/// The value of the first hidden field named `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}"));
    let rest = &html[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The operator's charger page lists what lenient mode accepted from that charger (no browser
/// needed: it is server-rendered).
#[tokio::test]
async fn the_charger_page_shows_the_deviations_a_charger_sent() {
    let app = spawn_app().await;
    app.register_charger("CON-DEV", 1, None).await;
    let mut charger = app.connect("CON-DEV").await;
    let boot = json!({"chargePointVendor": "Schneider Electric", "chargePointModel": "EVlink",
        "chargeBoxSerialNumber": "3N2151112345678-EVB1A22P4KI", "iccid": null});
    assert_eq!(
        charger.call_result("BootNotification", boot).await.unwrap()["status"],
        "Accepted"
    );
    let page = operator_page(&app, "/console/chargers/CON-DEV").await;
    for rule in ["string_too_long", "null_optional"] {
        assert!(
            page.contains(&format!(r#"data-deviation="{rule}""#)),
            "{rule} not on the page"
        );
    }
    app.shutdown().await;
}

/// A console page as the signed-in operator sees it, fetched without a browser.
async fn operator_page(app: &TestApp, path: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http.get(app.url("/")).send().await.unwrap();
    let pre = cookie_of(&form, "echarging_console_signin");
    let field = hidden(&form.text().await.unwrap(), "signin");
    let signed = http
        .post(app.url("/console/signin"))
        .form(&[("token", TOKEN), ("signin", field.as_str())])
        .header("cookie", format!("echarging_console_signin={pre}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let session = format!(
        "echarging_console={}",
        cookie_of(&signed, "echarging_console")
    );
    http.get(app.url(path))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The charger page lists the charger's latest security events, what it reported and what
/// the server saw.
#[tokio::test]
async fn the_charger_page_shows_the_latest_security_events() {
    let app = spawn_app().await;
    let mut charger = app.booted_charger("CON-SEC").await;
    let event = json!({"type": "TamperDetectionActivated", "timestamp": rfc(now()), "techInfo": "lid opened"});
    charger
        .call_result("SecurityEventNotification", event)
        .await
        .unwrap();
    // No CA configured: the server's own event.
    let answer = charger
        .call_result("SignCertificate", json!({"csr": "not a CSR"}))
        .await
        .unwrap();
    assert_eq!(answer["status"], "Rejected");
    let page = operator_page(&app, "/console/chargers/CON-SEC").await;
    assert!(page.contains("Security events"), "{page}");
    assert!(page.contains(r#"data-source="charger""#) && page.contains("TamperDetectionActivated"));
    assert!(page.contains("lid opened"));
    assert!(page.contains(r#"data-source="server""#) && page.contains("SignCertificateNoCa"));
    app.shutdown().await;
}

/// Runs `answer` as the charger's side of one command while the browser submits the form
/// `form_css`, and returns the charger once it answered.
async fn command_from_page(
    b: &Client,
    mut cp: Charger,
    form_css: &str,
    action: &'static str,
    answer: Value,
) -> (Charger, Value) {
    let side = tokio::spawn(async move {
        let (call, payload) = expect_call(&mut cp, action).await;
        cp.reply(&call, answer).await.unwrap();
        (cp, payload)
    });
    b.find(Locator::Css(&format!("{form_css} button[type=submit]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tokio::time::timeout(WAIT, side)
        .await
        .expect("the charger side finished")
        .expect("the charger side did not panic")
}

/// Select the option `value` of the `<select>` `css`.
async fn choose(b: &Client, css: &str, value: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

/// The charger page's toolbox, week view and energy chart, and the fleet's energy per day, in a
/// real browser: the operator resets the charger (it receives Reset, the page shows Accepted),
/// takes a connector out of service (it shows Inoperative), reads and changes the configuration,
/// sees a booking on its day in the week view, and watches the running charge's energy chart
/// grow without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_the_toolbox_and_reads_the_charts_in_a_real_browser() {
    let Some((_driver, b)) = browser().await else {
        return;
    };
    let app = spawn_app().await;
    app.register_charger("CP-TOOL", 2, None).await;
    let ada = create_customer(&app, "Ada", &["ADA-TOOL"]).await;
    // A booking two days ahead, 10:00–11:30 UTC, on connector 1.
    let day = (now() + time::Duration::days(2)).date();
    let from = day.with_hms(10, 0, 0).unwrap().assume_utc();
    let r = crate::support::as_customer(&app, &ada, reqwest::Method::POST, "/api/v1/reservations")
        .json(
            &json!({"chargerId": "CP-TOOL", "connectorId": 1, "start": rfc(from),
        "end": rfc(from + time::Duration::minutes(90))}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rid = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let mut cp = app.connect("CP-TOOL").await;
    assert_eq!(cp.boot().await.unwrap()["status"], "Accepted");
    for connector in 1..=2 {
        status(&mut cp, connector, "Available", "NoError").await;
    }

    sign_in(&b, &app, "/", TOKEN).await;
    wait_for(&b, r#"[data-charger="CP-TOOL"]"#, WAIT).await;
    b.goto(&app.url("/console/chargers/CP-TOOL")).await.unwrap();
    wait_for(&b, r#"[data-charger="CP-TOOL"][data-online="true"]"#, WAIT).await;

    // Reset: the charger receives Reset (Soft) and the page shows its Accepted.
    choose(&b, "#t-reset", "Soft").await;
    let (cp, reset) = command_from_page(
        &b,
        cp,
        r#"form[action$="/reset"]"#,
        "Reset",
        json!({"status": "Accepted"}),
    )
    .await;
    assert_eq!(reset, json!({"type": "Soft"}));
    wait_text(&b, r#"p.notice[data-answer="Accepted"]"#, |t| {
        t == "Reset (Soft): the charger accepted."
    })
    .await;

    // Connector 2 out of service: ChangeAvailability, Accepted, and the table says Inoperative.
    choose(&b, "#t-av-conn", "2").await;
    choose(&b, "#t-av-type", "Inoperative").await;
    let (cp, change) = command_from_page(
        &b,
        cp,
        r#"form[action$="/availability"]"#,
        "ChangeAvailability",
        json!({"status": "Accepted"}),
    )
    .await;
    assert_eq!(change, json!({"connectorId": 2, "type": "Inoperative"}));
    wait_text(&b, "p.notice", |t| {
        t == "Change availability: the charger accepted."
    })
    .await;
    wait_text(
        &b,
        r#"tr[data-connector="2"][data-availability="Inoperative"] [data-field=availability]"#,
        |t| t == "Inoperative",
    )
    .await;
    wait_text(
        &b,
        r#"tr[data-connector="1"] [data-field=availability]"#,
        |t| t == "Operative",
    )
    .await;

    // Unlock and trigger reach the charger the same way; its answers show as it gave them.
    choose(&b, "#t-unlock", "1").await;
    let (cp, unlock) = command_from_page(
        &b,
        cp,
        r#"form[action$="/unlock"]"#,
        "UnlockConnector",
        json!({"status": "Unlocked"}),
    )
    .await;
    assert_eq!(unlock, json!({"connectorId": 1}));
    wait_text(&b, r#"p.notice[data-answer="Unlocked"]"#, |t| {
        t.contains("unlocked the connector")
    })
    .await;
    choose(&b, "#t-trig", "Heartbeat").await;
    let (cp, trig) = command_from_page(
        &b,
        cp,
        r#"form[action$="/trigger"]"#,
        "TriggerMessage",
        json!({"status": "Accepted"}),
    )
    .await;
    assert_eq!(trig, json!({"requestedMessage": "Heartbeat"}));
    wait_text(&b, r#"p.notice[data-answer="Accepted"]"#, |t| {
        t == "Trigger message: the charger accepted."
    })
    .await;

    // Read the configuration: GetConfiguration, and the snapshot shows on the page.
    wait_for(&b, r#"[data-configuration="none"]"#, WAIT).await;
    let (cp, get) = command_from_page(
        &b,
        cp,
        r#"form[action$="/configuration/read"]"#,
        "GetConfiguration",
        json!({"configurationKey": [
            {"key": "HeartbeatInterval", "readonly": false, "value": "300"},
            {"key": "NumberOfConnectors", "readonly": true, "value": "2"}
        ]}),
    )
    .await;
    assert_eq!(get, json!({}));
    wait_text(&b, "p.notice", |t| t.starts_with("Read configuration:")).await;
    wait_text(
        &b,
        r#"tr[data-key="HeartbeatInterval"] [data-field=value]"#,
        |t| t == "300",
    )
    .await;
    wait_for(&b, r#"[data-configuration="2"]"#, WAIT).await;

    // … and change a key: ChangeConfiguration, Accepted, and the snapshot shows the new value.
    b.find(Locator::Css("#t-key"))
        .await
        .unwrap()
        .send_keys("HeartbeatInterval")
        .await
        .unwrap();
    b.find(Locator::Css("#t-value"))
        .await
        .unwrap()
        .send_keys("120")
        .await
        .unwrap();
    let (mut cp, changed) = command_from_page(
        &b,
        cp,
        r#"form[action$="/configuration"]"#,
        "ChangeConfiguration",
        json!({"status": "Accepted"}),
    )
    .await;
    assert_eq!(changed, json!({"key": "HeartbeatInterval", "value": "120"}));
    wait_text(&b, "p.notice", |t| {
        t == "Change configuration: the charger accepted."
    })
    .await;
    wait_text(
        &b,
        r#"tr[data-key="HeartbeatInterval"] [data-field=value]"#,
        |t| t == "120",
    )
    .await;
    b.execute(
        "document.getElementById('tools-h').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    shot(&b, "13-operator-charger-toolbox").await;

    // The week view: from the booking's day, switch to its week; the booking sits on its day.
    let day_s = format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    );
    b.goto(&app.url(&format!("/console/chargers/CP-TOOL?day={day_s}")))
        .await
        .unwrap();
    wait_for(&b, r#"[data-view="day"]"#, WAIT).await;
    wait_for(&b, &format!(r#"rect[data-booking="{rid}"]"#), WAIT).await;
    b.find(Locator::Css(
        r#"nav[aria-label="Timeline"] a[href*="view=week"]"#,
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_for(&b, r#"[data-view="week"]"#, WAIT).await;
    let block = wait_for(&b, &format!(r#"svg.week rect[data-booking="{rid}"]"#), WAIT).await;
    assert_eq!(
        block.attr("data-day").await.unwrap().as_deref(),
        Some(day_s.as_str())
    );
    wait_text(&b, &format!(r#"[data-reservation="{rid}"]"#), |t| {
        t.contains(&format!("{day_s} 10:00–11:30"))
    })
    .await;
    b.execute("document.getElementById('day-h').scrollIntoView();", vec![])
        .await
        .unwrap();
    shot(&b, "14-operator-charger-week").await;

    // A charge runs on connector 1: its energy is a chart on the charger page that grows live.
    let began = now() - time::Duration::minutes(10);
    let started = cp
        .call_result(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "ADA-TOOL", "meterStart": 5000,
                "timestamp": rfc(began)}),
        )
        .await
        .unwrap();
    assert_eq!(started["idTagInfo"]["status"], "Accepted");
    let tx = started["transactionId"].as_i64().unwrap();
    status(&mut cp, 1, "Charging", "NoError").await;
    meter(&mut cp, tx, 6500, began + time::Duration::minutes(3)).await;
    b.goto(&app.url("/console/chargers/CP-TOOL")).await.unwrap();
    let chart = format!(r#"[data-energy-chart="{tx}"]"#);
    wait_for(
        &b,
        &format!(r#"{chart}[data-energy-wh="1500"] svg.energy"#),
        WAIT,
    )
    .await;
    mark_page(&b).await;
    // Apart by more than the sampler's 2 s, as a charger's meter values are, so each is kept.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    meter(&mut cp, tx, 8000, began + time::Duration::minutes(6)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    meter(&mut cp, tx, 9700, began + time::Duration::minutes(9)).await;
    // A charge counts on the UTC day it started: in the first minutes after midnight that is
    // yesterday, and today has none of it.
    let charged_on = began.date();
    wait_for(&b, &format!(r#"{chart}[data-energy-wh="4700"]"#), WAIT).await;
    wait_text(&b, &format!("{chart} [data-field=energy]"), |t| {
        t == "4.700 kWh"
    })
    .await;
    // Start, the readings the server kept (at least the latest), as a line.
    wait_for(&b, &format!("{chart} svg.energy polyline.load"), WAIT).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while b
        .find_all(Locator::Css(&format!("{chart} svg.energy circle.point")))
        .await
        .unwrap()
        .len()
        < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the chart never showed the three readings"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(not_reloaded(&b).await, "the chart grew by a reload");
    b.execute(
        "document.getElementById('energy-h').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    shot(&b, "15-operator-charger-energy").await;
    b.set_window_size(390, 844).await.unwrap();
    b.execute(
        "document.getElementById('tools-h').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    shot(&b, "16-operator-charger-phone").await;
    b.set_window_size(1280, 1400).await.unwrap();

    // The fleet's energy per day counts today's charge beside the load chart.
    let charged_s = format!(
        "{:04}-{:02}-{:02}",
        charged_on.year(),
        u8::from(charged_on.month()),
        charged_on.day()
    );
    b.goto(&app.url("/")).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let wh = match b.find(Locator::Css("[data-energy-today]")).await {
            Ok(e) => e.attr("data-energy-today").await.unwrap_or_default(),
            Err(_) => None,
        };
        let expected = if now().date() == charged_on {
            "4700"
        } else {
            "0"
        };
        if wh.as_deref() == Some(expected) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "today's energy never showed: {wh:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.refresh().await.unwrap();
    }
    let bars = b.find_all(Locator::Css("svg.days rect.bar")).await.unwrap();
    assert_eq!(bars.len(), 14);
    wait_for(
        &b,
        &format!(r#"svg.days rect.bar[data-day="{charged_s}"][data-wh="4700"]"#),
        WAIT,
    )
    .await;
    shot(&b, "17-operator-fleet-energy").await;

    b.close().await.unwrap();
    app.shutdown().await;
}
