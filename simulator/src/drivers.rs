//! Drivers: closed-loop clients that book charger time slots over the public REST API (any
//! server that implements echarging's api.md). Each client is one customer with its own token;
//! it books random future slots on random chargers as fast as answers come, cancels a share of
//! what it got, and the run checks that no two accepted, uncancelled bookings overlap.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::load::charger_ids;
use crate::progress;
use crate::provision::ensure_chargers;
use crate::report::ActionStats;
use crate::rng::Rng;

#[derive(Debug, Clone)]
pub struct BookingConfig {
    pub api_url: String,
    pub token: String,
    /// Chargers to book on (registered first, idempotently).
    pub chargers: usize,
    pub id_prefix: String,
    pub first_index: usize,
    pub connectors: u32,
    /// Concurrent drivers, each a customer.
    pub clients: usize,
    pub duration: Duration,
    /// Length of every booked slot.
    pub slot: Duration,
    /// Slots start on a grid this many slots deep, from one hour ahead: fewer means more
    /// collisions (409s).
    pub horizon_slots: u32,
    /// Share of successful bookings that the driver cancels right away (0.0–1.0).
    pub cancel_share: f64,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl BookingConfig {
    pub fn new(api_url: impl Into<String>, token: impl Into<String>) -> BookingConfig {
        BookingConfig {
            api_url: api_url.into(),
            token: token.into(),
            chargers: 100,
            id_prefix: "SIM-".into(),
            first_index: 1,
            connectors: 2,
            clients: 32,
            duration: Duration::from_secs(10),
            slot: Duration::from_secs(30 * 60),
            horizon_slots: 5000,
            cancel_share: 0.0,
            progress: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingReport {
    pub mode: &'static str,
    pub clients: usize,
    pub chargers: usize,
    pub measured_seconds: f64,
    /// 201 answers.
    pub bookings_made: u64,
    /// 409 answers: the slot was taken.
    pub bookings_refused: u64,
    pub cancelled: u64,
    /// Accepted bookings per second.
    pub bookings_per_second: f64,
    /// Booking requests (any answer) per second.
    pub requests_per_second: f64,
    /// Unexpected answers by HTTP status (or "transport").
    pub errors: BTreeMap<String, u64>,
    /// Pairs of accepted, uncancelled bookings on one connector whose slots overlap. Must be 0.
    pub double_bookings: u64,
    pub actions: BTreeMap<String, ActionStats>,
}

impl BookingReport {
    pub fn failed_checks(&self) -> Vec<String> {
        let mut failed = Vec::new();
        if self.double_bookings > 0 {
            failed.push(format!("{} double bookings", self.double_bookings));
        }
        if !self.errors.is_empty() {
            failed.push(format!("unexpected answers: {:?}", self.errors));
        }
        if self.bookings_made == 0 {
            failed.push("no booking succeeded".into());
        }
        failed
    }

    pub fn to_table(&self) -> String {
        let mut t = format!(
            "mode            book\nclients         {}\nchargers        {}\nmeasured        {:.1} s\n\
             bookings made   {} ({:.0}/s)\nrefused (409)   {}\ncancelled       {}\n\
             requests        {:.0}/s\ndouble bookings {}\n",
            self.clients,
            self.chargers,
            self.measured_seconds,
            self.bookings_made,
            self.bookings_per_second,
            self.bookings_refused,
            self.cancelled,
            self.requests_per_second,
            self.double_bookings
        );
        for (action, s) in &self.actions {
            t.push_str(&format!(
                "{action:<15} n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms\n",
                s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            ));
        }
        for (k, v) in &self.errors {
            t.push_str(&format!("error {k}: {v}\n"));
        }
        t
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("provisioning chargers failed: {0}")]
    Provision(String),
    #[error("creating customer {0} failed: {1}")]
    Customer(usize, String),
}

/// One accepted booking as the driver saw it.
#[derive(Debug, Clone)]
struct Accepted {
    charger: String,
    connector: u64,
    start: String,
    end: String,
}

#[derive(Default)]
struct Tally {
    made: u64,
    refused: u64,
    cancelled: u64,
    errors: BTreeMap<String, u64>,
    accepted: Vec<Accepted>,
    book: Option<Histogram<u64>>,
    cancel: Option<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// RFC 3339 in UTC, second precision, from Unix seconds (civil-from-days, H. Hinnant).
fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

pub async fn run(cfg: BookingConfig) -> Result<BookingReport, BookingError> {
    let api = cfg.api_url.trim_end_matches('/').to_string();
    let ids = charger_ids(&cfg.id_prefix, cfg.first_index, cfg.chargers);
    ensure_chargers(&api, &cfg.token, &ids, cfg.connectors, None)
        .await
        .map_err(|e| BookingError::Provision(e.to_string()))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.clients * 2)
        .build()
        .map_err(|e| BookingError::Provision(e.to_string()))?;

    // Fresh customers per run: a customer's token is shown once, so a re-run cannot reuse one.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let run_tag = format!("{:x}", now.as_secs() % 0xff_ffff);
    let mut tokens = Vec::with_capacity(cfg.clients);
    for i in 0..cfg.clients {
        let body = json!({"name": format!("driver {i}"), "idTags": [format!("D{run_tag}-{i}")]});
        let r = http
            .post(format!("{api}/api/v1/customers"))
            .bearer_auth(&cfg.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| BookingError::Customer(i, e.to_string()))?;
        if r.status().as_u16() != 201 {
            return Err(BookingError::Customer(i, format!("HTTP {}", r.status())));
        }
        let v: Value = r
            .json()
            .await
            .map_err(|e| BookingError::Customer(i, e.to_string()))?;
        tokens.push(v["token"].as_str().unwrap_or_default().to_string());
    }

    let tally = Arc::new(Mutex::new(Tally::default()));
    // Slots on a grid from one whole hour ahead, so every run books the future.
    let grid_start = (now.as_secs() as i64 / 3600 + 1) * 3600;
    let slot_secs = cfg.slot.as_secs().max(60) as i64;
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let made = Arc::new(AtomicU64::new(0));
    let mut drivers = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (http, api, ids, tally) = (http.clone(), api.clone(), ids.clone(), tally.clone());
        let made = made.clone();
        let cfg = cfg.clone();
        drivers.push(tokio::spawn(async move {
            let mut rng = Rng::new(i as u64);
            let mut local = Tally {
                book: Some(histogram()),
                cancel: Some(histogram()),
                ..Tally::default()
            };
            while Instant::now() < deadline {
                let charger = &ids[rng.below(ids.len() as u64) as usize];
                let k = rng.below(u64::from(cfg.horizon_slots)) as i64;
                let start = rfc3339(grid_start + k * slot_secs);
                let end = rfc3339(grid_start + (k + 1) * slot_secs);
                let body = json!({"chargerId": charger, "start": start, "end": end});
                let sent = Instant::now();
                let answer = http
                    .post(format!("{api}/api/v1/reservations"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let status = match &answer {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                let elapsed = sent.elapsed().as_micros() as u64;
                if let Some(h) = local.book.as_mut() {
                    let _ = h.record(elapsed.max(1));
                }
                match status {
                    201 => {
                        local.made += 1;
                        made.fetch_add(1, Ordering::Relaxed);
                        let v: Value = match answer {
                            Ok(r) => r.json().await.unwrap_or_default(),
                            Err(_) => Value::Null,
                        };
                        let cancel = rng.below(1_000_000) < (cfg.cancel_share * 1e6) as u64;
                        if cancel {
                            let id = v["id"].as_i64().unwrap_or_default();
                            let sent = Instant::now();
                            let r = http
                                .delete(format!("{api}/api/v1/reservations/{id}"))
                                .bearer_auth(&token)
                                .send()
                                .await;
                            if let Some(h) = local.cancel.as_mut() {
                                let _ = h.record((sent.elapsed().as_micros() as u64).max(1));
                            }
                            if r.map(|r| r.status().as_u16() == 200).unwrap_or(false) {
                                local.cancelled += 1;
                                continue;
                            }
                            *local.errors.entry("cancel".into()).or_default() += 1;
                        }
                        local.accepted.push(Accepted {
                            charger: v["chargerId"].as_str().unwrap_or_default().to_string(),
                            connector: v["connectorId"].as_u64().unwrap_or_default(),
                            start: v["start"].as_str().unwrap_or_default().to_string(),
                            end: v["end"].as_str().unwrap_or_default().to_string(),
                        });
                    }
                    409 => local.refused += 1,
                    0 => *local.errors.entry("transport".into()).or_default() += 1,
                    other => *local.errors.entry(other.to_string()).or_default() += 1,
                }
            }
            let mut guard = tally.lock().await;
            let t = &mut *guard;
            t.made += local.made;
            t.refused += local.refused;
            t.cancelled += local.cancelled;
            for (k, v) in local.errors {
                *t.errors.entry(k).or_default() += v;
            }
            t.accepted.extend(local.accepted);
            for (mine, theirs) in [(&local.book, &mut t.book), (&local.cancel, &mut t.cancel)] {
                if let Some(h) = mine {
                    match theirs {
                        Some(all) => {
                            let _ = all.add(h);
                        }
                        None => *theirs = Some(h.clone()),
                    }
                }
            }
        }));
    }
    let bar = progress::bar(cfg.progress, cfg.duration.as_millis() as u64, "book");
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    for mut d in drivers {
        loop {
            tokio::select! {
                _ = &mut d => break,
                _ = ticker.tick(), if !bar.is_hidden() => {
                    bar.set_position(started.elapsed().as_millis() as u64);
                    bar.set_message(format!("{} bookings", made.load(Ordering::Relaxed)));
                }
            }
        }
    }
    bar.finish_and_clear();
    let measured = started.elapsed().as_secs_f64();
    let t = std::mem::take(&mut *tally.lock().await);
    let mut actions = BTreeMap::new();
    if let Some(h) = &t.book {
        actions.insert("Book".to_string(), ActionStats::from_micros(h));
    }
    if let Some(h) = t.cancel.as_ref().filter(|h| !h.is_empty()) {
        actions.insert("Cancel".to_string(), ActionStats::from_micros(h));
    }
    Ok(BookingReport {
        mode: "book",
        clients: cfg.clients,
        chargers: cfg.chargers,
        measured_seconds: measured,
        bookings_made: t.made,
        bookings_refused: t.refused,
        cancelled: t.cancelled,
        bookings_per_second: t.made as f64 / measured,
        requests_per_second: (t.made + t.refused) as f64 / measured,
        errors: t.errors,
        double_bookings: double_bookings(t.accepted),
        actions,
    })
}

/// Overlapping pairs among accepted bookings, per connector (RFC 3339 UTC strings of one format
/// sort as time does).
fn double_bookings(mut accepted: Vec<Accepted>) -> u64 {
    accepted.sort_by(|a, b| {
        (&a.charger, a.connector, &a.start).cmp(&(&b.charger, b.connector, &b.start))
    });
    let mut pairs = 0;
    for (i, a) in accepted.iter().enumerate() {
        for b in &accepted[i + 1..] {
            if (&b.charger, b.connector) != (&a.charger, a.connector) || b.start >= a.end {
                break;
            }
            pairs += 1;
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn double_bookings_counts_overlaps_per_connector_only() {
        let b = |c: &str, n: u64, s: &str, e: &str| Accepted {
            charger: c.into(),
            connector: n,
            start: s.into(),
            end: e.into(),
        };
        let ok = vec![
            b("A", 1, "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z"),
            b("A", 1, "2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"),
            b("A", 2, "2026-01-01T10:30:00Z", "2026-01-01T11:30:00Z"),
            b("B", 1, "2026-01-01T10:30:00Z", "2026-01-01T11:30:00Z"),
        ];
        assert_eq!(double_bookings(ok.clone()), 0);
        let mut bad = ok;
        bad.push(b("A", 1, "2026-01-01T10:59:00Z", "2026-01-01T11:01:00Z"));
        assert_eq!(double_bookings(bad), 2);
    }
}
