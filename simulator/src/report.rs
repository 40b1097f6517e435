//! The result of a load run: one JSON object (`--json`, camelCase, stable keys for scripts) or
//! a human table, and the checks that decide the exit status. Pure data and formatting; the
//! numbers come from `load`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `idle`, `heartbeat` or `charge`.
    pub mode: String,
    /// Chargers asked for.
    pub chargers: usize,
    /// Chargers booted and held to the end of the measured phase.
    pub connected: usize,
    pub failed: usize,
    /// From the first connect attempt until the last charger was booted.
    pub connect_seconds: f64,
    /// Chargers booted per second over `connect_seconds`.
    pub connect_rate: f64,
    /// Length of the measured phase (idle hold or heartbeat load).
    pub measured_seconds: f64,
    /// Data frames sent during the measured phase, all chargers.
    pub frames_sent: u64,
    pub frames_received: u64,
    /// (sent + received) / measured_seconds.
    pub frames_per_second: f64,
    /// Heartbeat round trips completed during the measured phase.
    pub round_trips: u64,
    pub round_trips_per_second: f64,
    /// CALLERROR code → how many answers carried it.
    pub call_errors: BTreeMap<String, u64>,
    /// `Action: code` → how many answers to that action carried it (absent when none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub call_errors_by_action: BTreeMap<String, u64>,
    /// The `--quirks` the chargers sent with, as a list (absent when none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub quirks: String,
    /// Why chargers failed → how many.
    pub failures: BTreeMap<String, u64>,
    /// Server-initiated CALLs answered, by action.
    pub server_calls: BTreeMap<String, u64>,
    /// Round-trip latency per action the chargers sent.
    pub actions: BTreeMap<String, ActionStats>,
    /// Connections re-established after they dropped (all chargers).
    #[serde(default)]
    pub reconnects: u64,
    /// UpdateFirmware requests carried out to Installed, and those whose download failed.
    #[serde(default)]
    pub firmware_installed: u64,
    #[serde(default)]
    pub firmware_failed: u64,
    /// Our CALLs that got no answer within the call timeout, by action.
    #[serde(default)]
    pub timeouts: BTreeMap<String, u64>,
    /// Server requests that broke their OCPP schema (answered with a CALLERROR), by action.
    #[serde(default)]
    pub bad_server_calls: BTreeMap<String, u64>,
    /// Server answers that broke their OCPP schema (e.g. no transactionId), by action.
    #[serde(default)]
    pub bad_answers: BTreeMap<String, u64>,
    /// Charging sessions completed: StopTransaction answered for an accepted transaction,
    /// within the measured phase.
    #[serde(default)]
    pub sessions: u64,
    /// Sessions still charging at the end of the measured phase, stopped then (not timed).
    #[serde(default)]
    pub sessions_cut_short: u64,
    /// StartTransaction answered Accepted.
    #[serde(default)]
    pub starts_accepted: u64,
    /// StartTransactions that carried the reservationId the charger held (ReserveNow).
    #[serde(default)]
    pub starts_with_reservation: u64,
    /// StartTransaction answered with another status (then stopped as DeAuthorized).
    #[serde(default)]
    pub starts_refused: u64,
    /// Authorize answered with a status other than Accepted (no session followed).
    #[serde(default)]
    pub authorize_refused: u64,
    /// Session starts that found no free connector (or, paced, the last session still running).
    #[serde(default)]
    pub sessions_skipped: u64,
    /// Transaction messages sent again after a lost connection or a timeout.
    #[serde(default)]
    pub tx_resent: u64,
    /// Transaction messages given up on after every attempt.
    #[serde(default)]
    pub tx_dropped: u64,
    /// Transaction messages still unanswered when the run ended.
    #[serde(default)]
    pub tx_undelivered: u64,
    /// Whether this run registered every idTag, so that every start should be accepted.
    #[serde(default)]
    pub id_tags_registered: bool,
    /// Bookings the drivers made over REST before charging (201), and slots refused (409).
    #[serde(default)]
    pub bookings_made: u64,
    #[serde(default)]
    pub bookings_refused: u64,
    /// Unexpected answers to booking requests, by HTTP status (or "transport").
    #[serde(default)]
    pub booking_errors: BTreeMap<String, u64>,
    /// ReserveNow requests the chargers accepted.
    #[serde(default)]
    pub reservations_accepted: u64,
    /// ReserveNow for a connector that still held another live reservation: a double booking
    /// as the charger sees it. Must be 0.
    #[serde(default)]
    pub double_bookings_seen: u64,
    #[serde(
        rename = "serverRssBeforeKiB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub server_rss_before_kib: Option<u64>,
    #[serde(
        rename = "serverRssAfterKiB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub server_rss_after_kib: Option<u64>,
    /// (after − before) / chargers connected when it was sampled.
    #[serde(
        rename = "serverRssPerChargerKiB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub server_rss_per_charger_kib: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionStats {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl ActionStats {
    /// From a histogram of microseconds.
    pub fn from_micros(histogram: &Histogram<u64>) -> ActionStats {
        let ms = |micros: u64| micros as f64 / 1000.0;
        ActionStats {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

impl Report {
    /// Each check that failed, in words; empty when the run passed.
    pub fn failed_checks(&self) -> Vec<String> {
        let mut failed = Vec::new();
        if self.connected < self.chargers {
            failed.push(format!(
                "only {} of {} chargers were held to the end",
                self.connected, self.chargers
            ));
        }
        if !self.call_errors.is_empty() {
            let total: u64 = self.call_errors.values().sum();
            failed.push(format!(
                "{total} CALLERROR answers ({})",
                join_counts(&self.call_errors)
            ));
        }
        let mut counted = |what: &str, counts: &BTreeMap<String, u64>| {
            if !counts.is_empty() {
                let total: u64 = counts.values().sum();
                failed.push(format!("{total} {what} ({})", join_counts(counts)));
            }
        };
        counted("CALLs without an answer in time", &self.timeouts);
        counted(
            "server requests that broke their schema",
            &self.bad_server_calls,
        );
        counted("answers that broke their schema", &self.bad_answers);
        counted("unexpected answers to bookings", &self.booking_errors);
        if self.double_bookings_seen > 0 {
            failed.push(format!(
                "{} double bookings seen by the chargers",
                self.double_bookings_seen
            ));
        }
        if self.mode == "charge" && self.sessions + self.sessions_cut_short == 0 {
            failed.push("no charging session completed".to_owned());
        }
        if self.id_tags_registered && self.starts_refused + self.authorize_refused > 0 {
            failed.push(format!(
                "{} Authorize and {} StartTransaction refused although every idTag is registered",
                self.authorize_refused, self.starts_refused
            ));
        }
        failed
    }

    pub fn passed(&self) -> bool {
        self.failed_checks().is_empty()
    }

    /// The report as aligned text for a terminal.
    pub fn to_table(&self) -> String {
        let mut t = String::new();
        let mut row = |label: &str, value: String| {
            let _ = writeln!(t, "{label:<26}{value}");
        };
        row("mode", self.mode.clone());
        row("chargers", self.chargers.to_string());
        row("connected (held)", self.connected.to_string());
        row("failed", self.failed.to_string());
        row(
            "connect + boot",
            format!(
                "{:.2} s ({:.0} chargers/s)",
                self.connect_seconds, self.connect_rate
            ),
        );
        row("measured phase", format!("{:.2} s", self.measured_seconds));
        row(
            "frames sent / received",
            format!("{} / {}", self.frames_sent, self.frames_received),
        );
        let rate = |n: u64| {
            if self.measured_seconds > 0.0 {
                n as f64 / self.measured_seconds
            } else {
                0.0
            }
        };
        row(
            "frames/s sent / received",
            format!(
                "{:.0} / {:.0} ({:.0} in all)",
                rate(self.frames_sent),
                rate(self.frames_received),
                self.frames_per_second
            ),
        );
        row(
            "round trips/s",
            format!(
                "{:.0} ({} heartbeats)",
                self.round_trips_per_second, self.round_trips
            ),
        );
        row("reconnects", self.reconnects.to_string());
        if self.mode == "charge" || self.starts_accepted + self.starts_refused > 0 {
            row(
                "sessions completed",
                format!(
                    "{} ({:.1}/s), {} more cut short at the end",
                    self.sessions,
                    rate(self.sessions),
                    self.sessions_cut_short
                ),
            );
            row(
                "starts accepted/refused",
                format!("{} / {}", self.starts_accepted, self.starts_refused),
            );
            row("authorize refused", self.authorize_refused.to_string());
            row("sessions skipped", self.sessions_skipped.to_string());
            row(
                "tx resent/dropped/left",
                format!(
                    "{} / {} / {}",
                    self.tx_resent, self.tx_dropped, self.tx_undelivered
                ),
            );
        }
        row(
            "bookings made/refused",
            format!("{} / {}", self.bookings_made, self.bookings_refused),
        );
        row(
            "ReserveNow accepted",
            format!(
                "{} ({} starts on a reservation)",
                self.reservations_accepted, self.starts_with_reservation
            ),
        );
        row(
            "double bookings seen",
            self.double_bookings_seen.to_string(),
        );
        if let (Some(before), Some(after)) = (self.server_rss_before_kib, self.server_rss_after_kib)
        {
            row("server RSS before/after", format!("{before} / {after} KiB"));
        }
        if let Some(per) = self.server_rss_per_charger_kib {
            row("server RSS per charger", format!("{per:.2} KiB"));
        }
        if !self.quirks.is_empty() {
            row("quirks", self.quirks.clone());
        }
        if !self.call_errors.is_empty() {
            row("CALLERRORs", join_counts(&self.call_errors));
        }
        if !self.call_errors_by_action.is_empty() {
            row(
                "CALLERRORs by action",
                join_counts(&self.call_errors_by_action),
            );
        }
        if !self.server_calls.is_empty() {
            row("server CALLs answered", join_counts(&self.server_calls));
        }
        for (label, counts) in [
            ("timeouts", &self.timeouts),
            ("bad server requests", &self.bad_server_calls),
            ("bad answers", &self.bad_answers),
            ("booking errors", &self.booking_errors),
        ] {
            if !counts.is_empty() {
                row(label, join_counts(counts));
            }
        }
        for (reason, count) in &self.failures {
            row("failure", format!("{count} × {reason}"));
        }
        let _ = writeln!(
            t,
            "\n{:<20}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "action", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for (action, s) in &self.actions {
            let _ = writeln!(
                t,
                "{action:<20}{:>10}{:>10.3}{:>10.3}{:>10.3}{:>10.3}",
                s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            );
        }
        t
    }
}

fn join_counts(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Report {
        let mut histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for micros in [800, 1_000, 1_200, 15_000] {
            histogram.record(micros).unwrap();
        }
        Report {
            mode: "heartbeat".into(),
            chargers: 10,
            connected: 9,
            failed: 1,
            connect_seconds: 0.5,
            connect_rate: 18.0,
            measured_seconds: 1.0,
            frames_sent: 4,
            frames_received: 4,
            frames_per_second: 8.0,
            round_trips: 4,
            round_trips_per_second: 4.0,
            call_errors: BTreeMap::from([("NotImplemented".into(), 2)]),
            failures: BTreeMap::from([("connect: timed out".into(), 1)]),
            server_calls: BTreeMap::new(),
            actions: BTreeMap::from([("Heartbeat".into(), ActionStats::from_micros(&histogram))]),
            server_rss_before_kib: Some(1000),
            server_rss_after_kib: Some(1090),
            server_rss_per_charger_kib: Some(10.0),
            ..Report::default()
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let value = serde_json::to_value(sample()).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "actions",
                "authorizeRefused",
                "badAnswers",
                "badServerCalls",
                "bookingErrors",
                "bookingsMade",
                "bookingsRefused",
                "callErrors",
                "chargers",
                "connectRate",
                "connectSeconds",
                "connected",
                "doubleBookingsSeen",
                "failed",
                "failures",
                "firmwareFailed",
                "firmwareInstalled",
                "framesPerSecond",
                "framesReceived",
                "framesSent",
                "idTagsRegistered",
                "measuredSeconds",
                "mode",
                "reconnects",
                "reservationsAccepted",
                "roundTrips",
                "roundTripsPerSecond",
                "serverCalls",
                "serverRssAfterKiB",
                "serverRssBeforeKiB",
                "serverRssPerChargerKiB",
                "sessions",
                "sessionsCutShort",
                "sessionsSkipped",
                "startsAccepted",
                "startsRefused",
                "startsWithReservation",
                "timeouts",
                "txDropped",
                "txResent",
                "txUndelivered",
            ]
        );
        assert_eq!(value["callErrors"], json!({"NotImplemented": 2}));
        let heartbeat = &value["actions"]["Heartbeat"];
        assert_eq!(heartbeat["count"], 4);
        assert_eq!(heartbeat["p50Ms"], 1.0);
        assert!(heartbeat["p99Ms"].as_f64().unwrap() >= 14.9);
        assert!(heartbeat["maxMs"].as_f64().unwrap() >= 14.9);
        assert!(heartbeat["p90Ms"].as_f64().unwrap() >= 1.0);
        let back: Report = serde_json::from_value(value).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn rss_fields_are_omitted_without_a_server_pid() {
        let mut report = sample();
        report.server_rss_before_kib = None;
        report.server_rss_after_kib = None;
        report.server_rss_per_charger_kib = None;
        let value = serde_json::to_value(report).unwrap();
        assert!(value.get("serverRssBeforeKiB").is_none());
    }

    #[test]
    fn checks_fail_on_missing_chargers_and_call_errors() {
        let report = sample();
        assert!(!report.passed());
        assert_eq!(report.failed_checks().len(), 2);
        let mut ok = sample();
        ok.connected = 10;
        ok.call_errors.clear();
        assert!(ok.passed());
        assert!(ok.to_table().contains("Heartbeat"));
    }

    #[test]
    fn charging_checks() {
        let mut report = sample();
        report.connected = 10;
        report.call_errors.clear();
        report.mode = "charge".into();
        assert_eq!(report.failed_checks(), ["no charging session completed"]);
        report.sessions = 3;
        report.starts_accepted = 3;
        assert!(report.passed());
        report.starts_refused = 1;
        assert!(report.passed(), "unknown idTags may be refused");
        report.id_tags_registered = true;
        assert_eq!(report.failed_checks().len(), 1, "registered ones may not");
        report.starts_refused = 0;
        report.double_bookings_seen = 1;
        report.timeouts.insert("StopTransaction".into(), 2);
        let failed = report.failed_checks();
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(failed[0].contains("2 CALLs without an answer in time (StopTransaction: 2)"));
        let table = report.to_table();
        assert!(table.contains("double bookings seen"), "{table}");
        assert!(table.contains("sessions completed"), "{table}");
        // Reports written before these fields existed still read.
        let mut old = serde_json::to_value(sample()).unwrap();
        old.as_object_mut().unwrap().remove("reconnects");
        let back: Report = serde_json::from_value(old).unwrap();
        assert_eq!(back.reconnects, 0);
    }
}
