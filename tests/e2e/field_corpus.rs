//! Frames as real chargers send them (tests/fixtures/field-frames.json, each with the public
//! source it was taken from), sent by a real WebSocket charger to the real app in each
//! `ocpp_strictness`: strict answers today's schema-exact CALLERRORs, lenient answers what a
//! frame means and records each deviation, named by rule, in the charger view and in
//! `echarging_ocpp_deviations_total{action,rule}`. Compliant frames pass both with no deviation.
//! The app is configured through its own flags (`--ocpp-strictness`), as an operator would.

use std::collections::BTreeSet;
use std::time::Duration;

use echarging::settings::{self, Invocation, Settings};
use echarging_sim::{CallOutcome, LoadConfig, Mode, Provisioning, Quirks, Report, load};
use serde::Deserialize;
use serde_json::Value;

use crate::support::schema::assert_server_frames_valid;
use crate::support::{TOKEN, TestApp, spawn_app_with};

const CORPUS: &str = include_str!("../fixtures/field-frames.json");

#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    origin: String,
    action: String,
    payload: Value,
    /// `accept` or the CALLERROR code strict mode answers.
    strict: String,
    /// `accept` or the CALLERROR code lenient mode answers.
    lenient: String,
    /// The deviation rules lenient mode records for this frame.
    rules: Vec<String>,
}

const RULES: &[&str] = &[
    "string_too_long",
    "null_optional",
    "unknown_field",
    "number_as_string",
    "string_as_number",
    "enum_case",
    "unknown_enum_value",
    "comma_decimal",
];

fn corpus() -> Vec<Entry> {
    serde_json::from_str(CORPUS).expect("tests/fixtures/field-frames.json is a valid corpus")
}

#[test]
fn corpus_is_well_formed() {
    let entries = corpus();
    assert!(entries.len() >= 25, "{} entries", entries.len());
    let mut names = BTreeSet::new();
    for e in &entries {
        assert!(names.insert(&e.name), "duplicate name {:?}", e.name);
        assert!(
            e.origin.starts_with("https://") || e.origin.contains('/'),
            "{}: origin {:?} is no URL or repo/path",
            e.name,
            e.origin
        );
        assert!(e.payload.is_object() || e.payload.is_array(), "{}", e.name);
        for r in &e.rules {
            assert!(RULES.contains(&r.as_str()), "{}: unknown rule {r}", e.name);
        }
        // A frame a lenient server refuses records no deviation; one strict mode takes is
        // schema-valid, and lenient takes it as it is.
        if e.lenient != "accept" {
            assert!(e.rules.is_empty(), "{}", e.name);
        }
        if e.strict == "accept" {
            assert_eq!(e.lenient, "accept", "{}", e.name);
        }
    }
    assert!(
        entries
            .iter()
            .any(|e| e.strict == "accept" && e.rules.is_empty()),
        "compliant frames too"
    );
}

/// The app with `--ocpp-strictness MODE` parsed by its own settings loader, on the harness's
/// database, port and token.
async fn app_in(mode: &str) -> TestApp {
    spawn_app_with(|s| {
        let args = [
            "echarging".to_string(),
            "--database-url".into(),
            s.database_url.clone(),
            "--listen".into(),
            s.listen.to_string(),
            "--api-token".into(),
            TOKEN.into(),
            "--data-dir".into(),
            s.data_dir.display().to_string(),
            "--ocpp-strictness".into(),
            mode.into(),
        ];
        let parsed = match settings::from_iter(args) {
            Ok(Invocation::Serve(parsed)) => parsed,
            Ok(other) => panic!("not a serve invocation: {other:?}"),
            Err(e) => panic!("--ocpp-strictness {mode}: {e}"),
        };
        let keep: Settings = s.clone();
        *s = Settings {
            state_flush_interval: keep.state_flush_interval,
            ..parsed
        };
    })
    .await
}

/// Send every entry from its own registered (and, but for Boot entries, booted) charger;
/// returns the entries each answer disagreed with, so one run names every mismatch.
async fn run_corpus(app: &TestApp, lenient: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    for (i, e) in corpus().iter().enumerate() {
        let id = format!("FIELD-{i:02}");
        let expected = if lenient { &e.lenient } else { &e.strict };
        let mut cp = if e.action == "BootNotification" {
            app.register_charger(&id, 2, None).await;
            app.connect(&id).await
        } else {
            app.booted_charger(&id).await
        };
        let outcome = cp
            .call(&e.action, e.payload.clone())
            .await
            .unwrap_or_else(|err| panic!("{}: no answer: {err}", e.name));
        let got = match &outcome {
            CallOutcome::Result(_) => "accept".to_string(),
            CallOutcome::Error { code, .. } => code.clone(),
        };
        if &got != expected {
            wrong.push(format!(
                "{} ({}): expected {expected}, got {got}: {outcome:?}",
                e.name, e.origin
            ));
        }
        assert_server_frames_valid(&cp);
        if lenient {
            let view = app.charger_view(&id).await;
            let seen: BTreeSet<String> = view["deviations"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no deviations in {view}", e.name))
                .iter()
                .inspect(|d| {
                    assert!(d["count"].as_u64().is_some_and(|n| n >= 1), "{d}");
                    assert!(d["lastSeenAt"].is_string(), "{d}");
                })
                .filter(|d| d["action"] == e.action.as_str())
                .filter_map(|d| d["rule"].as_str().map(str::to_owned))
                .collect();
            let want: BTreeSet<String> = e.rules.iter().cloned().collect();
            if seen != want {
                wrong.push(format!(
                    "{}: deviations {seen:?}, expected {want:?}",
                    e.name
                ));
            }
        } else {
            // Strict mode refuses instead of deviating: nothing is counted for the charger.
            let view = app.charger_view(&id).await;
            if view["deviations"] != serde_json::json!([]) {
                wrong.push(format!("{}: strict counted {}", e.name, view["deviations"]));
            }
        }
    }
    wrong
}

/// The value of one Prometheus sample line (`name{labels} value`); NaN when unreadable.
fn sample_value(line: &str) -> f64 {
    line.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN)
}

async fn metrics(app: &TestApp) -> String {
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_refuses_what_the_schemas_refuse() {
    let app = app_in("strict").await;
    let wrong = run_corpus(&app, false).await;
    assert!(wrong.is_empty(), "strict:\n{}", wrong.join("\n"));
    // (The metrics registry is this test binary's, shared with lenient tests running beside
    // this one: per-charger views are what say strict mode counted nothing.)
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenient_mode_takes_what_chargers_mean_and_counts_it() {
    let app = app_in("lenient").await;
    let wrong = run_corpus(&app, true).await;
    assert!(wrong.is_empty(), "lenient:\n{}", wrong.join("\n"));
    let text = metrics(&app).await;
    for (action, rule) in corpus_pairs() {
        let found = text.lines().any(|l| {
            l.starts_with("echarging_ocpp_deviations_total{")
                && l.contains(&format!("action=\"{action}\""))
                && l.contains(&format!("rule=\"{rule}\""))
                && sample_value(l) >= 1.0
        });
        assert!(found, "no deviation counter for {action}/{rule}:\n{text}");
    }
    app.shutdown().await;
}

/// Every (action, rule) the corpus expects lenient mode to count.
fn corpus_pairs() -> BTreeSet<(String, String)> {
    corpus()
        .into_iter()
        .flat_map(|e| {
            let action = e.action;
            e.rules.into_iter().map(move |r| (action.clone(), r))
        })
        .collect()
}

/// A short charge-mode run of `chargers` simulated chargers with `quirks`, provisioned over
/// REST (their idTags as customers), not reconnecting: a refused Boot fails the charger.
async fn quirky_run(app: &TestApp, prefix: &str, chargers: usize, quirks: &str) -> Report {
    let mut cfg = LoadConfig::new(app.ws_url.clone(), chargers, Mode::Charge { rate: None });
    cfg.id_prefix = prefix.into();
    cfg.duration = Duration::from_secs(3);
    cfg.sessions.id_tag_prefix = format!("{prefix}TAG-");
    cfg.sessions.meter_interval = Duration::from_millis(250);
    cfg.sessions.meter_values = 2;
    cfg.sessions.pause = Duration::from_millis(200);
    cfg.reconnect = None;
    cfg.quirks = Quirks::parse(quirks).expect("quirks");
    cfg.provision = Some(Provisioning {
        api_url: app.base.clone(),
        token: TOKEN.into(),
    });
    load::run(cfg).await.expect("load run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_quirks_all_charge_without_callerrors_in_lenient_mode() {
    let app = app_in("lenient").await;
    let report = quirky_run(&app, "QL-", 20, "all").await;
    assert_eq!(report.connected, 20, "failures: {:?}", report.failures);
    assert!(
        report.call_errors.is_empty(),
        "{:?}",
        report.call_errors_by_action
    );
    assert!(report.sessions > 0, "sessions completed: {report:?}");
    assert_eq!(report.quirks, Quirks::all().to_string());
    let view = app.charger_view("QL-00001").await;
    let rules: BTreeSet<&str> = view["deviations"]
        .as_array()
        .expect("deviations")
        .iter()
        .filter_map(|d| d["rule"].as_str())
        .collect();
    // Every habit shows as its rule: Boot (long serial, nulls, extra fields), status (case),
    // the start (a string meterStart), the meter values (numbers, commas, odd units).
    for rule in RULES {
        assert!(rules.contains(rule), "{rule} not in {rules:?}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_quirks_draw_the_expected_callerrors_in_strict_mode() {
    let app = app_in("strict").await;
    // Long serials: every Boot refused, no charger comes into service.
    let report = quirky_run(&app, "QS-", 10, "long-serial").await;
    assert_eq!(report.connected, 0, "{report:?}");
    assert!(
        report.call_errors_by_action["BootNotification: PropertyConstraintViolation"] >= 10,
        "{:?}",
        report.call_errors_by_action
    );
    // Numbers where strings belong, and strings where numbers do: Boot passes, the meter
    // values (or the start) do not.
    for (prefix, quirks, refused) in [
        (
            "QN-",
            "numeric-meter",
            "MeterValues: TypeConstraintViolation",
        ),
        (
            "QT-",
            "string-numbers",
            "StartTransaction: TypeConstraintViolation",
        ),
    ] {
        let report = quirky_run(&app, prefix, 5, quirks).await;
        assert!(
            report.call_errors_by_action.contains_key(refused),
            "{quirks}: {:?}",
            report.call_errors_by_action
        );
    }
    app.shutdown().await;
}
