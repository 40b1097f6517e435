//! The operator console at `/`: the fleet (paged, filtered, counted, kept live by an SSE stream
//! polled from the live state), a charger's page with its bookings on a day or week timeline,
//! its transactions, the running ones' energy as a chart (a fragment the page refetches), remote
//! start/stop and the toolbox's commands ([`super::toolbox`]), the bookings and transactions
//! lists, customers, and the fleet load and energy-per-day charts. It reads the store and the live sessions as the REST handlers do and sends
//! OCPP calls through `central.sessions.call`, as they do; it must not write charger state.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use futures_util::Stream;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::session::{self, Side, Who};
use super::svg::{self, Block};
use super::toolbox;
use super::{
    Console, Frame, OperatorSession, csrf_ok, csrf_refused, day_of, day_text, hhmm, internal, kwh,
    page, signin_page, when,
};
use super::{CsrfOnly, SignInForm};
use crate::api::{ApiError, auth};
use crate::booking::store::{Page, StoreError};
use crate::central::CallFailure;
use crate::central::breaker::BreakerState;
use crate::domain::ChargeBoxId;
use crate::domain::charger::ChargerRecord;
use crate::domain::customer::{IdTag, NewCustomer, new_token, token_digest};
use crate::domain::reservation::{ReservationFilter, ReservationStatus};
use crate::domain::transaction::{Transaction, TransactionFilter, TransactionStatus};
use crate::ocpp::v16::messages::{RemoteStartTransaction, RemoteStopTransaction};
use crate::ocpp::v16::types::{CiString, RemoteStartStopStatus};
use crate::transport::Peer;

/// Chargers per fleet page.
const PAGE_SIZE: usize = 100;
/// How often the fleet stream looks at the live state: well inside the 2 s the contract allows.
const FLEET_TICK: Duration = Duration::from_millis(500);
/// How often the fleet stream rereads the registered chargers (new or deleted ones).
const FLEET_REREAD: Duration = Duration::from_secs(10);
/// Rows the stream sends in full on its first tick (the page's own).
const MAX_WATCHED: usize = 500;

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/", get(fleet))
        .route("/console/signin", post(sign_in))
        .route("/console/signout", post(sign_out))
        .route("/console/events", get(fleet_events))
        .route("/console/chargers/{id}", get(charger_page))
        .route("/console/chargers/{id}/energy", get(energy_fragment))
        .route("/console/chargers/{id}/remote-start", post(remote_start))
        .route("/console/chargers/{id}/remote-stop", post(remote_stop))
        .route("/console/reservations", get(reservations_page))
        .route("/console/transactions", get(transactions_page))
        .route(
            "/console/customers",
            get(customers_page).post(create_customer),
        )
}

fn frame<'a>(title: &'a str, s: &'a OperatorSession, stream: Option<String>) -> Frame<'a> {
    Frame {
        title,
        side: Side::Operator,
        session: Some(&s.session),
        stream,
    }
}

// ---- sign-in ----

async fn sign_in(
    State(c): State<Arc<Console>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let secure = session::over_tls(&headers);
    if !session::signin_token_ok(&headers, Side::Operator, &form.signin) {
        return signin_page(
            Side::Operator,
            secure,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired. Try again."),
        );
    }
    let token = form.token.trim();
    let digest = token_digest(token);
    let attempt = match auth::enter_from(peer.as_ref().map(|p| &p.0), &c.api, &digest).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    // A customer token is a valid token, but not for this console.
    if !c.api.operator.matches(token) {
        if let ApiError::Throttled(_) = auth::failed(&c.api, attempt) {
            return signin_page(
                Side::Operator,
                secure,
                StatusCode::TOO_MANY_REQUESTS,
                Some("Too many wrong tokens from this address. Wait a moment and try again."),
            );
        }
        return signin_page(
            Side::Operator,
            secure,
            StatusCode::UNAUTHORIZED,
            Some("That is not the operator token."),
        );
    }
    auth::passed(attempt);
    super::signed_in(&c, Who::Operator, Side::Operator, secure)
}

async fn sign_out(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    super::signed_out(&c, &s.session, &s.id, Side::Operator, &headers, &form.csrf)
}

// ---- the fleet ----

/// One charger as the fleet list shows it, and as the stream sends its changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    id: String,
    name: String,
    online: bool,
    faulted: bool,
    seen: String,
    status: String,
    firmware: String,
    breaker: &'static str,
}

fn row(c: &Console, mut record: ChargerRecord) -> Row {
    c.api.central.live.overlay(&mut record);
    let faulted = record
        .connector_status
        .iter()
        .any(|s| s.status == "Faulted" || s.error_code != "NoError");
    let status = record
        .connector_status
        .iter()
        .filter(|s| s.connector_id > 0)
        .map(|s| format!("{} {}", s.connector_id, s.status))
        .collect::<Vec<_>>()
        .join(" · ");
    let breaker = match c.api.central.sessions.breaker(&record.id) {
        BreakerState::Closed { .. } => "closed",
        BreakerState::Open { .. } => "open",
        BreakerState::HalfOpen => "half open",
    };
    Row {
        online: c.api.central.holder(&record.id).is_some(),
        id: record.id.to_string(),
        name: record.name.unwrap_or_default(),
        faulted,
        seen: record
            .last_seen_at
            .map(when)
            .unwrap_or_else(|| "never".into()),
        status: if status.is_empty() {
            "—".into()
        } else {
            status
        },
        firmware: record
            .boot
            .and_then(|b| b.firmware_version)
            .unwrap_or_else(|| "—".into()),
        breaker,
    }
}

/// Every registered charger, in id order.
async fn all_chargers(c: &Console) -> Result<Vec<ChargerRecord>, StoreError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let batch = c
            .api
            .central
            .store
            .chargers(&Page {
                after: after.clone(),
                limit: 10_000,
                state: None,
            })
            .await?;
        let done = batch.len() < 10_000;
        after = batch.last().map(|r| r.id.to_string());
        all.extend(batch);
        if done || after.is_none() {
            return Ok(all);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Filter {
    #[default]
    All,
    Online,
    Offline,
    Faulted,
}

impl Filter {
    fn keeps(self, r: &Row) -> bool {
        match self {
            Filter::All => true,
            Filter::Online => r.online,
            Filter::Offline => !r.online,
            Filter::Faulted => r.faulted,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Online => "online",
            Filter::Offline => "offline",
            Filter::Faulted => "faulted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
struct Counts {
    all: usize,
    online: usize,
    offline: usize,
    faulted: usize,
}

fn count(rows: &[Row]) -> Counts {
    let mut k = Counts {
        all: rows.len(),
        ..Counts::default()
    };
    for r in rows {
        if r.online {
            k.online += 1;
        } else {
            k.offline += 1;
        }
        if r.faulted {
            k.faulted += 1;
        }
    }
    k
}

#[derive(Deserialize, Default)]
struct FleetQuery {
    #[serde(default)]
    filter: Option<Filter>,
    #[serde(default)]
    page: Option<usize>,
}

async fn fleet(
    State(c): State<Arc<Console>>,
    s: Result<OperatorSession, super::SignInFirst>,
    headers: HeaderMap,
    q: Result<Query<FleetQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(s) = s else {
        return signin_page(
            Side::Operator,
            session::over_tls(&headers),
            StatusCode::OK,
            None,
        );
    };
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let filter = q.filter.unwrap_or_default();
    let records = match all_chargers(&c).await {
        Ok(r) => r,
        Err(e) => return internal(&e),
    };
    let rows: Vec<Row> = records.into_iter().map(|r| row(&c, r)).collect();
    let counts = count(&rows);
    let shown: Vec<&Row> = rows.iter().filter(|r| filter.keeps(r)).collect();
    let pages = shown.len().div_ceil(PAGE_SIZE).max(1);
    let at = q.page.unwrap_or(1).clamp(1, pages);
    let slice = &shown[(at - 1) * PAGE_SIZE..(at * PAGE_SIZE).min(shown.len())];
    let ids: Vec<&str> = slice.iter().map(|r| r.id.as_str()).collect();
    let stream = format!("/console/events?ids={}", ids.join(","));
    let link = |f: Filter, p: usize| format!("/?filter={}&page={p}", f.name());
    let days = match super::load::energy_per_day(&c).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "console cannot sum the fleet's energy per day");
            None
        }
    };
    let body = html! {
        section aria-labelledby="counts-h" {
            h2 #counts-h .visually-hidden { "Counts" }
            ul.counts {
                @for (f, label, n) in [(Filter::All, "All", counts.all), (Filter::Online, "Online", counts.online), (Filter::Offline, "Offline", counts.offline), (Filter::Faulted, "Faulted", counts.faulted)] {
                    li {
                        a href=(link(f, 1)) aria-current=[(f == filter).then_some("page")] class=(if f == filter { "chip active" } else { "chip" }) {
                            (label) " " strong data-count=(f.name()) { (n) }
                        }
                    }
                }
            }
        }
        div.charts {
            section aria-labelledby="load-h" .card {
                h2 #load-h { "Fleet load" }
                @let samples = c.load.snapshot();
                @if let Some(last) = samples.last() {
                    p data-load-kw=(format!("{:.1}", last.kw)) { "Now " strong { (format!("{:.1} kW", last.kw)) } " over " (last.charging) " charging sessions (from their meter values, as of " (hhmm(last.at)) " UTC)." }
                }
                (svg::load_chart(&samples))
            }
            section aria-labelledby="days-h" .card {
                h2 #days-h { "Energy per day" }
                @match &days {
                    Some(days) => {
                        @let total: i64 = days.iter().map(|d| d.1).fold(0, i64::saturating_add);
                        @let today = days.last().map(|d| d.1).unwrap_or(0);
                        p data-energy-today=(today) { "Today " strong { (kwh(today)) } "; " (kwh(total)) " over the last " (days.len()) " days (each charge counts on the UTC day it started)." }
                        (svg::day_bars(days, &format!("Fleet energy per day, last {} days: {} in all, {} today", days.len(), kwh(total), kwh(today))))
                    }
                    None => { p.hint { "Not available just now." } }
                }
            }
        }
        section aria-labelledby="fleet-h" {
            h2 #fleet-h { "Chargers" span.hint { " (" (filter.name()) ", page " (at) " of " (pages) ", live)" } }
            div.scroll {
                table.fleet {
                    thead { tr { th scope="col" { "Charger" } th scope="col" { "State" } th scope="col" { "Connectors" } th scope="col" { "Last seen" } th scope="col" { "Firmware" } th scope="col" { "Breaker" } } }
                    tbody {
                        @for r in slice {
                            (fleet_row(r))
                        }
                        @if slice.is_empty() {
                            tr { td colspan="6" { "No chargers here." } }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if at > 1 { a href=(link(filter, at - 1)) rel="prev" { "← Previous" } }
                @if at < pages { a href=(link(filter, at + 1)) rel="next" { "Next →" } }
            }
        }
    };
    page(frame("Fleet", &s, Some(stream)), body).into_response()
}

fn fleet_row(r: &Row) -> Markup {
    html! {
        tr data-charger=(r.id) data-online=(r.online) data-faulted=(r.faulted) {
            th scope="row" {
                a href=(format!("/console/chargers/{}", r.id)) { (r.id) }
                @if !r.name.is_empty() { br; span.hint { (r.name) } }
            }
            td { span.badge data-field="online" { (if r.online { "online" } else { "offline" }) } }
            td data-field="status" { (r.status) }
            td data-field="seen" { (r.seen) }
            td data-field="firmware" { (r.firmware) }
            td data-field="breaker" { (r.breaker) }
        }
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    ids: String,
}

/// The fleet, live: every `FLEET_TICK` the stream compares each charger's row with what it
/// last sent and sends the changed ones (`chargers`, a JSON array of rows) and the counts
/// (`counts`) when they moved. Its first tick sends the rows the page asked for in full, so a
/// change between the page's render and the stream's start is not lost.
async fn fleet_events(
    State(c): State<Arc<Console>>,
    s: Result<OperatorSession, super::SignInFirst>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, StatusCode> {
    if s.is_err() {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let watched: Vec<String> = q
        .ids
        .split(',')
        .filter(|s| !s.is_empty())
        .take(MAX_WATCHED)
        .map(str::to_string)
        .collect();
    struct Follow {
        c: Arc<Console>,
        records: Vec<ChargerRecord>,
        read_at: Option<Instant>,
        sent: HashMap<String, Row>,
        counts: Option<Counts>,
        watched: Vec<String>,
        queue: std::collections::VecDeque<SseEvent>,
        tick: tokio::time::Interval,
    }
    let mut tick = tokio::time::interval(FLEET_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Follow {
        c,
        records: Vec::new(),
        read_at: None,
        sent: HashMap::new(),
        counts: None,
        watched,
        queue: Default::default(),
        tick,
    };
    let stream = futures_util::stream::unfold(state, |mut f| async move {
        loop {
            if let Some(e) = f.queue.pop_front() {
                return Some((Ok(e), f));
            }
            tokio::select! {
                _ = f.c.api.central.shutdown.cancelled() => return None,
                _ = f.tick.tick() => {}
            }
            if f.read_at.is_none_or(|t| t.elapsed() >= FLEET_REREAD) {
                match all_chargers(&f.c).await {
                    Ok(r) => f.records = r,
                    Err(e) => {
                        tracing::warn!(error = %e, "console fleet stream cannot read chargers")
                    }
                }
                f.read_at = Some(Instant::now());
            }
            let rows: Vec<Row> = f.records.iter().cloned().map(|r| row(&f.c, r)).collect();
            let first = f.sent.is_empty();
            let mut changed = Vec::new();
            for r in &rows {
                let differs = f.sent.get(&r.id) != Some(r);
                if differs && (!first || f.watched.contains(&r.id)) {
                    changed.push(r.clone());
                }
            }
            if first {
                f.sent = rows.iter().map(|r| (r.id.clone(), r.clone())).collect();
            } else {
                for r in &changed {
                    f.sent.insert(r.id.clone(), r.clone());
                }
            }
            if !changed.is_empty() {
                let e = SseEvent::default()
                    .event("chargers")
                    .json_data(&changed)
                    .unwrap_or_default();
                f.queue.push_back(e);
            }
            let counts = count(&rows);
            if f.counts != Some(counts) {
                f.counts = Some(counts);
                let e = SseEvent::default()
                    .event("counts")
                    .json_data(counts)
                    .unwrap_or_default();
                f.queue.push_back(e);
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

// ---- one charger ----

#[derive(Deserialize, Default)]
struct ChargerQuery {
    #[serde(default)]
    day: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    answer: Option<String>,
    /// `week` for the week timeline; else the day's.
    #[serde(default)]
    view: Option<String>,
}

/// What a command's outcome may say on the page: only these words, so a crafted link cannot
/// put text of its choosing there.
fn outcome_text(action: &str, answer: &str) -> Option<String> {
    let action = match action {
        "start" => "Remote start",
        "stop" => "Remote stop",
        "reset-soft" => "Reset (Soft)",
        "reset-hard" => "Reset (Hard)",
        "unlock" => "Unlock connector",
        "availability" => "Change availability",
        "trigger" => "Trigger message",
        "config-read" => "Read configuration",
        "config-change" => "Change configuration",
        _ => return None,
    };
    let answer = match answer {
        "Accepted" => "the charger accepted",
        "Rejected" => "the charger rejected it",
        "Scheduled" => "the charger will do it once its running transaction ends",
        "Unlocked" => "the charger unlocked the connector",
        "UnlockFailed" => "the charger could not unlock the connector",
        "NotSupported" => "the charger does not support it",
        "NotImplemented" => "the charger does not implement it",
        "RebootRequired" => "the charger accepted; it takes effect after a reboot",
        "read" => "the charger answered; the snapshot below is new",
        "notbooted" => "the charger has not booted on this connection",
        "badconnector" => "the charger has no such connector",
        "offline" => "the charger is not connected",
        "timeout" => "the charger did not answer in time",
        "busy" => "the charger is not answering (breaker open or queue full); try later",
        "refused" => "the charger answered with an error",
        "notrunning" => "that transaction is not running",
        "badinput" => "check the connector and idTag",
        _ => return None,
    };
    Some(format!("{action}: {answer}."))
}

fn energy_of(t: &Transaction) -> Option<i64> {
    t.energy_wh.or_else(|| {
        t.last_meter_wh
            .map(|m| m.saturating_sub(t.meter_start_wh).max(0))
    })
}

/// How many security events the charger page shows.
const SECURITY_EVENTS_SHOWN: u32 = 10;

async fn charger_page(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Path(raw): Path<String>,
    q: Result<Query<ChargerQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let Ok(id) = ChargeBoxId::parse(&raw) else {
        return super::message_page(StatusCode::NOT_FOUND, "No such charger", "No such charger.");
    };
    let store = &c.api.central.store;
    let record = match store.charger(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return super::message_page(
                StatusCode::NOT_FOUND,
                "No such charger",
                "No such charger.",
            );
        }
        Err(e) => return internal(&e),
    };
    let connectors = record.connectors;
    let deviations = c.api.central.live.deviations(&id);
    // The audit trail is a side panel: a store that cannot answer it leaves it empty rather
    // than failing the page.
    let security_events = store
        .security_events(&id, None, SECURITY_EVENTS_SHOWN)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(charger = %id, error = %e, "security events not read for the console");
            Vec::new()
        });
    let mut live = record.clone();
    c.api.central.live.overlay(&mut live);
    let r = row(&c, record);
    let day = day_of(q.day.as_deref());
    let week = q.view.as_deref() == Some("week");
    // A week runs Monday to Sunday (UTC), as calendars show it.
    let first = if week {
        let back = i64::from(day.weekday().number_days_from_monday());
        day.checked_sub(time::Duration::days(back)).unwrap_or(day)
    } else {
        day
    };
    let span = if week { 7 } else { 1 };
    let day_start = first.midnight().assume_utc();
    let bookings = match store
        .reservations(&ReservationFilter {
            charger_id: Some(id.clone()),
            from: Some(day_start),
            to: Some(day_start + time::Duration::days(span)),
            limit: 1000,
            ..Default::default()
        })
        .await
    {
        Ok(b) => b,
        Err(e) => return internal(&e),
    };
    let transactions = match store
        .transactions(&TransactionFilter {
            charger_id: Some(id.clone()),
            limit: 1000,
            ..Default::default()
        })
        .await
    {
        Ok(mut t) => {
            t.sort_by_key(|t| std::cmp::Reverse(t.started_at));
            t.truncate(50);
            t
        }
        Err(e) => return internal(&e),
    };
    let blocks: Vec<Block> = bookings
        .iter()
        .filter(|b| b.status != ReservationStatus::Cancelled)
        .map(|b| Block {
            connector: b.connector_id,
            start: b.slot.start(),
            end: b.slot.end(),
            class: b.status.as_str().to_ascii_lowercase(),
            label: format!(
                "#{} {}–{} {} ({})",
                b.id,
                hhmm(b.slot.start()),
                hhmm(b.slot.end()),
                b.status,
                b.charger_ack
            ),
            booking: Some(b.id),
        })
        .collect();
    let availability = match store.availability(&id).await {
        Ok(a) => a,
        Err(e) => return internal(&e),
    };
    let snapshot = match store.configuration(&id).await {
        Ok(s) => s,
        Err(e) => return internal(&e),
    };
    let running: Vec<&Transaction> = transactions
        .iter()
        .filter(|t| t.status == TransactionStatus::Active)
        .collect();
    let notice = match (&q.action, &q.answer) {
        (Some(a), Some(b)) => outcome_text(a, b),
        _ => None,
    };
    let step = time::Duration::days(span);
    let prev = day_text(first.checked_sub(step).unwrap_or(first));
    let next = day_text(first.checked_add(step).unwrap_or(first));
    let last = first
        .checked_add(time::Duration::days(span - 1))
        .unwrap_or(first);
    let view = if week { "week" } else { "day" };
    let base = format!("/console/chargers/{id}");
    let title = format!("Charger {id}");
    let stream = format!("/console/events?ids={id}");
    let csrf = &s.session.csrf;
    let body = html! {
        @if let Some(n) = notice { p.notice role="status" data-answer=[q.answer.as_deref()] { (n) } }
        section.card data-charger=(r.id) data-online=(r.online) data-faulted=(r.faulted) aria-labelledby="state-h" {
            h2 #state-h { "State" }
            dl.facts {
                dt { "Connection" } dd { span.badge data-field="online" { (if r.online { "online" } else { "offline" }) } }
                dt { "Last seen" } dd data-field="seen" { (r.seen) }
                dt { "Firmware" } dd data-field="firmware" { (r.firmware) }
                dt { "Breaker" } dd data-field="breaker" { (r.breaker) }
                @if let Some(b) = &live.boot {
                    dt { "Vendor / model" } dd { (b.vendor) " / " (b.model) }
                }
                dt { "Connectors" } dd data-field="status" { (r.status) }
            }
        }
        section.card aria-labelledby="conn-h" {
            h2 #conn-h { "Connectors" }
            div.scroll { table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Status" } th scope="col" { "Availability" } th scope="col" { "Error" } th scope="col" { "Since" } } }
                tbody {
                    @for n in 1..=connectors {
                        @let st = live.connector_status.iter().find(|x| x.connector_id == n);
                        @let av = toolbox::availability_of(&availability, n);
                        tr data-connector=(n) data-availability=(av.split(' ').next().unwrap_or_default()) {
                            th scope="row" { (n) }
                            td { (st.map(|x| x.status.to_string()).unwrap_or_else(|| "not reported".into())) }
                            td data-field="availability" { (av) }
                            td { (st.map(|x| x.error_code.to_string()).unwrap_or_default()) }
                            td { (st.map(|x| when(x.updated_at)).unwrap_or_default()) }
                        }
                    }
                }
            } }
        }
        @if !running.is_empty() {
            section.card aria-labelledby="energy-h" {
                h2 #energy-h { "Running charge" span.hint { " (live)" } }
                div data-refresh=(format!("{base}/energy")) aria-live="polite" {
                    (energy_charts(&c, &running))
                }
            }
        }
        section.card aria-labelledby="day-h" data-view=(view) {
            @if week {
                h2 #day-h { "Bookings " (day_text(first)) " to " (day_text(last)) " (UTC)" }
            } @else {
                h2 #day-h { "Bookings on " (day_text(day)) " (UTC)" }
            }
            nav.pager aria-label="Timeline" {
                a href=(format!("{base}?view={view}&day={prev}")) rel="prev" { "← " (if week { "previous week" } else { prev.as_str() }) }
                a href=(format!("{base}?view=day&day={}", day_text(first))) aria-current=[(!week).then_some("page")] class=(if week { "chip" } else { "chip active" }) { "Day" }
                a href=(format!("{base}?view=week&day={}", day_text(first))) aria-current=[week.then_some("page")] class=(if week { "chip active" } else { "chip" }) { "Week" }
                a href=(format!("{base}?view={view}&day={next}")) rel="next" { (if week { "next week" } else { next.as_str() }) " →" }
            }
            @if week {
                (svg::week(first, connectors, &blocks, &format!("Bookings of {id}, week of {}", day_text(first))))
            } @else {
                (svg::timeline(day_start, connectors, &blocks, &format!("Bookings of {id} on {}", day_text(day))))
            }
            @if bookings.is_empty() { p.hint { (if week { "No bookings this week." } else { "No bookings this day." }) } } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Booking" } th scope="col" { "Connector" } th scope="col" { "Slot" } th scope="col" { "Status" } th scope="col" { "Charger said" } th scope="col" { "Customer" } } }
                    tbody { @for b in &bookings {
                        tr data-reservation=(b.id) data-status=(b.status.as_str()) {
                            td { (b.id) } td { (b.connector_id) }
                            td { @if week { (day_text(b.slot.start().date())) " " } (hhmm(b.slot.start())) "–" (hhmm(b.slot.end())) }
                            td { (b.status.as_str()) } td { (b.charger_ack.as_str()) } td { (b.customer_id) }
                        }
                    } }
                } }
            }
        }
        section.card aria-labelledby="tx-h" {
            h2 #tx-h { "Transactions" }
            @if transactions.is_empty() { p.hint { "None yet." } } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Transaction" } th scope="col" { "Connector" } th scope="col" { "idTag" } th scope="col" { "Started" } th scope="col" { "Status" } th scope="col" { "Energy" } th scope="col" { "Command" } } }
                    tbody { @for t in &transactions {
                        tr data-transaction=(t.id) data-status=(t.status.as_str()) {
                            td { (t.id) } td { (t.connector_id) } td { (t.id_tag) } td { (when(t.started_at)) }
                            td { (t.status.as_str()) }
                            td { (energy_of(t).map(kwh).unwrap_or_else(|| "—".into())) }
                            td {
                                @if t.status == TransactionStatus::Active {
                                    form.inline method="post" action=(format!("{base}/remote-stop")) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="transactionId" value=(t.id);
                                        button.danger type="submit" { "Remote stop " (t.id) }
                                    }
                                }
                            }
                        }
                    } }
                } }
            }
        }
        section.card aria-labelledby="dev-h" {
            h2 #dev-h { "Off-spec frames accepted" span.hint { " (lenient mode, since the server started)" } }
            @if deviations.is_empty() { p.hint { "None: this charger keeps to the OCPP 1.6 schemas." } } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Action" } th scope="col" { "Rule" } th scope="col" { "Count" } th scope="col" { "Last seen" } th scope="col" { "Latest" } } }
                    tbody { @for d in &deviations {
                        tr data-deviation=(d.rule.as_str()) {
                            td { (d.action) } td { (d.rule.as_str()) } td { (d.count) }
                            td { (when(d.last_seen_at)) } td { (d.detail) }
                        }
                    } }
                } }
            }
        }
        section.card aria-labelledby="sec-h" {
            h2 #sec-h { "Security events" span.hint { " (latest " (SECURITY_EVENTS_SHOWN) "; all at " code { "/api/v1/chargers/" (id) "/security-events" } ")" } }
            @if security_events.is_empty() { p.hint { "None recorded." } } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Source" } th scope="col" { "Event" } th scope="col" { "Details" } th scope="col" { "From" } } }
                    tbody { @for (event_id, e) in &security_events {
                        tr data-security-event=(event_id) data-source=(e.source.as_str()) {
                            td { (when(e.at)) } td { (e.source.as_str()) } td { (e.kind) }
                            td { (e.tech_info.as_deref().unwrap_or("—")) }
                            td { (e.peer.map(|p| p.to_string()).unwrap_or_else(|| "—".into())) }
                        }
                    } }
                } }
            }
        }
        section.card aria-labelledby="cmd-h" {
            h2 #cmd-h { "Remote start" }
            form.stack method="post" action=(format!("{base}/remote-start")) {
                input type="hidden" name="csrf" value=(csrf);
                label for="rs-conn" { "Connector" }
                select id="rs-conn" name="connectorId" {
                    option value="" { "any (charger decides)" }
                    @for n in 1..=connectors { option value=(n) { (n) } }
                }
                label for="rs-tag" { "idTag (empty: the current booking's)" }
                input id="rs-tag" name="idTag" maxlength="20" autocomplete="off";
                button type="submit" { "Remote start" }
            }
        }
        (toolbox::section(&id, connectors, csrf, snapshot.as_ref()))
    };
    page(frame(&title, &s, Some(stream)), body).into_response()
}

/// Each running transaction's energy as a chart: the readings the sampler kept, between its
/// start and its latest reading (read just now from the ledger, so a new one shows at once).
fn energy_charts(c: &Console, running: &[&Transaction]) -> Markup {
    html! {
        @for t in running {
            @let since = energy_points(c, t);
            @let energy = energy_of(t).unwrap_or(0);
            figure.energy data-energy-chart=(t.id) data-energy-wh=(energy) {
                (svg::energy_chart(&since, &format!("Energy of transaction {} on connector {}: {} since {}", t.id, t.connector_id, kwh(energy), hhmm(t.started_at))))
                figcaption {
                    "Transaction " (t.id) ", connector " (t.connector_id) ": " strong data-field="energy" { (kwh(energy)) }
                    " since " (hhmm(t.started_at)) " UTC"
                    @if let Some(at) = t.last_meter_at { " (latest reading " (hhmm(at)) ")" } @else { " (no meter reading yet)" }
                }
            }
        }
    }
}

/// `(when, Wh since the start)` of a running transaction, in time order, from its start.
fn energy_points(c: &Console, t: &Transaction) -> Vec<(OffsetDateTime, i64)> {
    let mut points = vec![(t.started_at, t.meter_start_wh)];
    points.extend(c.load.series(t.id));
    if let (Some(wh), Some(at)) = (t.last_meter_wh, t.last_meter_at) {
        points.push((at, wh));
    }
    points.sort_by_key(|p| p.0);
    points.dedup_by_key(|p| p.0);
    points
        .into_iter()
        .map(|(at, wh)| (at, wh.saturating_sub(t.meter_start_wh).max(0)))
        .collect()
}

/// The charger page's running-charge charts alone, which the page's script refetches every few
/// seconds. 401 without a session, so a signed-out page keeps its last chart rather than
/// drawing the sign-in form into it.
async fn energy_fragment(
    State(c): State<Arc<Console>>,
    s: Result<OperatorSession, super::SignInFirst>,
    Path(raw): Path<String>,
) -> Response {
    if s.is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(id) = ChargeBoxId::parse(&raw) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let running = match c
        .api
        .central
        .store
        .transactions(&TransactionFilter {
            charger_id: Some(id),
            status: Some(TransactionStatus::Active),
            limit: 100,
            ..Default::default()
        })
        .await
    {
        Ok(t) => t,
        Err(e) => return internal(&e),
    };
    let refs: Vec<&Transaction> = running.iter().collect();
    let body = if refs.is_empty() {
        html! { p.hint data-energy-chart="none" { "The charge has ended." } }
    } else {
        energy_charts(&c, &refs)
    };
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into_string(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    connector_id: String,
    #[serde(default)]
    id_tag: String,
}

pub(super) fn back(id: &ChargeBoxId, action: &str, answer: &str) -> Response {
    Redirect::to(&format!(
        "/console/chargers/{id}?action={action}&answer={answer}"
    ))
    .into_response()
}

pub(super) fn failure_word(f: &CallFailure) -> &'static str {
    match f {
        CallFailure::Offline | CallFailure::Disconnected => "offline",
        CallFailure::NotBooted => "notbooted",
        CallFailure::Timeout => "timeout",
        CallFailure::BreakerOpen | CallFailure::QueueFull | CallFailure::ClusterUnavailable => {
            "busy"
        }
        CallFailure::CallError { .. } | CallFailure::BadResponse { .. } => "refused",
        CallFailure::Encode(_) => "refused",
    }
}

/// RemoteStartTransaction as `POST /chargers/{id}/remote-start` sends it for the operator: the
/// idTag given, or the one of the booking current on that connector.
async fn remote_start(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Path(raw): Path<String>,
    Form(form): Form<StartForm>,
) -> Response {
    if !csrf_ok(&s.session, &form.csrf) {
        return csrf_refused();
    }
    let Ok(id) = ChargeBoxId::parse(&raw) else {
        return super::message_page(StatusCode::NOT_FOUND, "No such charger", "No such charger.");
    };
    let connector: Option<u32> = match form.connector_id.trim() {
        "" => None,
        n => match n.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => return back(&id, "start", "badinput"),
        },
    };
    let now = OffsetDateTime::now_utc();
    let current = match c
        .api
        .central
        .store
        .reservations(&ReservationFilter {
            charger_id: Some(id.clone()),
            status: Some(ReservationStatus::Booked),
            from: Some(now),
            to: Some(now + c.api.central.early_grace()),
            limit: 100,
            ..Default::default()
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return internal(&e),
    };
    let booking = current
        .iter()
        .find(|r| connector.is_none_or(|n| n == r.connector_id));
    let tag = match (form.id_tag.trim(), booking) {
        ("", Some(b)) => b.id_tag.clone(),
        ("", None) => return back(&id, "start", "badinput"),
        (t, _) => t.to_string(),
    };
    let Ok(token) = CiString::new(tag.as_str()) else {
        return back(&id, "start", "badinput");
    };
    let connector = connector.or(booking.map(|b| b.connector_id));
    let mut wait = c.api.central.starts.wait(&id, connector, &tag);
    let answer = c
        .api
        .central
        .sessions
        .call(
            &id,
            &RemoteStartTransaction {
                connector_id: connector.and_then(|n| i32::try_from(n).ok()),
                id_tag: token,
                charging_profile: None,
            },
        )
        .await;
    match answer {
        Ok(a) => {
            if a.status == RemoteStartStopStatus::Accepted {
                // Give the charger the same short while as the REST call to start, so the
                // page it comes back to shows the transaction.
                let _ =
                    tokio::time::timeout(c.api.central.settings.remote_start_wait, &mut wait.found)
                        .await;
            }
            back(&id, "start", a.status.as_str())
        }
        Err(f) => back(&id, "start", failure_word(&f)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    transaction_id: String,
}

async fn remote_stop(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Path(raw): Path<String>,
    Form(form): Form<StopForm>,
) -> Response {
    if !csrf_ok(&s.session, &form.csrf) {
        return csrf_refused();
    }
    let Ok(id) = ChargeBoxId::parse(&raw) else {
        return super::message_page(StatusCode::NOT_FOUND, "No such charger", "No such charger.");
    };
    let Ok(tx) = form.transaction_id.trim().parse::<i32>() else {
        return back(&id, "stop", "badinput");
    };
    let transaction = match c.api.central.store.transaction(tx).await {
        Ok(Some(t)) if t.charger_id == id => t,
        Ok(_) => return back(&id, "stop", "notrunning"),
        Err(e) => return internal(&e),
    };
    if transaction.status != TransactionStatus::Active {
        return back(&id, "stop", "notrunning");
    }
    match c
        .api
        .central
        .sessions
        .call(&id, &RemoteStopTransaction { transaction_id: tx })
        .await
    {
        Ok(a) => back(&id, "stop", a.status.as_str()),
        Err(f) => back(&id, "stop", failure_word(&f)),
    }
}

// ---- lists ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    day: Option<String>,
    #[serde(default)]
    charger_id: Option<String>,
}

async fn reservations_page(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let status = q.status.as_deref().and_then(ReservationStatus::parse);
    let day = day_of(q.day.as_deref());
    let start = day.midnight().assume_utc();
    let charger_id = q
        .charger_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .and_then(|c| ChargeBoxId::parse(c).ok());
    let list = match c
        .api
        .central
        .store
        .reservations(&ReservationFilter {
            charger_id: charger_id.clone(),
            status,
            from: Some(start),
            to: Some(start + time::Duration::DAY),
            limit: 1000,
            ..Default::default()
        })
        .await
    {
        Ok(l) => l,
        Err(e) => return internal(&e),
    };
    let body = html! {
        form.filters method="get" action="/console/reservations" {
            label for="f-day" { "Day (UTC)" }
            input id="f-day" type="date" name="day" value=(day_text(day));
            label for="f-status" { "Status" }
            select id="f-status" name="status" {
                option value="" { "any" }
                @for st in ReservationStatus::ALL {
                    option value=(st.as_str()) selected[status == Some(*st)] { (st.as_str()) }
                }
            }
            label for="f-charger" { "Charger" }
            input id="f-charger" name="chargerId" value=(charger_id.as_ref().map(|c| c.to_string()).unwrap_or_default());
            button type="submit" { "Show" }
        }
        p.hint { (list.len()) " bookings overlapping " (day_text(day)) (if list.len() >= 1000 { " (first 1000)" } else { "" }) }
        div.scroll { table {
            thead { tr { th scope="col" { "Booking" } th scope="col" { "Charger" } th scope="col" { "Connector" } th scope="col" { "Slot (UTC)" } th scope="col" { "Status" } th scope="col" { "Charger said" } th scope="col" { "Customer" } } }
            tbody { @for b in &list {
                tr data-reservation=(b.id) data-status=(b.status.as_str()) {
                    td { (b.id) }
                    td { a href=(format!("/console/chargers/{}?day={}", b.charger_id, day_text(day))) { (b.charger_id) } }
                    td { (b.connector_id) }
                    td { (when(b.slot.start())) " – " (hhmm(b.slot.end())) }
                    td { (b.status.as_str()) } td { (b.charger_ack.as_str()) }
                    td { a href=(format!("/console/customers?id={}", b.customer_id)) { (b.customer_id) } }
                }
            } }
        } }
    };
    page(frame("Bookings", &s, None), body).into_response()
}

async fn transactions_page(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let status = q.status.as_deref().and_then(TransactionStatus::parse);
    let charger_id = q
        .charger_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .and_then(|c| ChargeBoxId::parse(c).ok());
    let mut list = match c
        .api
        .central
        .store
        .transactions(&TransactionFilter {
            charger_id: charger_id.clone(),
            status,
            limit: 1000,
            ..Default::default()
        })
        .await
    {
        Ok(l) => l,
        Err(e) => return internal(&e),
    };
    list.sort_by_key(|t| std::cmp::Reverse(t.started_at));
    let body = html! {
        form.filters method="get" action="/console/transactions" {
            label for="t-status" { "Status" }
            select id="t-status" name="status" {
                option value="" { "any" }
                @for st in TransactionStatus::ALL {
                    option value=(st.as_str()) selected[status == Some(*st)] { (st.as_str()) }
                }
            }
            label for="t-charger" { "Charger" }
            input id="t-charger" name="chargerId" value=(charger_id.as_ref().map(|c| c.to_string()).unwrap_or_default());
            button type="submit" { "Show" }
        }
        div.scroll { table {
            thead { tr { th scope="col" { "Transaction" } th scope="col" { "Charger" } th scope="col" { "Connector" } th scope="col" { "idTag" } th scope="col" { "Booking" } th scope="col" { "Started" } th scope="col" { "Stopped" } th scope="col" { "Status" } th scope="col" { "Energy" } } }
            tbody { @for t in &list {
                tr data-transaction=(t.id) data-status=(t.status.as_str()) {
                    td { (t.id) }
                    td { a href=(format!("/console/chargers/{}", t.charger_id)) { (t.charger_id) } }
                    td { (t.connector_id) } td { (t.id_tag) }
                    td { (t.reservation_id.map(|r| r.to_string()).unwrap_or_else(|| "walk-in".into())) }
                    td { (when(t.started_at)) }
                    td { (t.stopped_at.map(when).unwrap_or_else(|| "—".into())) }
                    td { (t.status.as_str()) }
                    td { (energy_of(t).map(kwh).unwrap_or_else(|| "—".into())) }
                }
            } }
        } }
    };
    page(frame("Transactions", &s, None), body).into_response()
}

// ---- customers ----

#[derive(Deserialize, Default)]
struct CustomerQuery {
    #[serde(default)]
    id: Option<String>,
}

fn customer_forms(csrf: &str, problem: Option<&str>) -> Markup {
    html! {
        section.card aria-labelledby="new-h" {
            h2 #new-h { "New customer" }
            @if let Some(p) = problem { p.notice.error role="alert" { (p) } }
            form.stack method="post" action="/console/customers" {
                input type="hidden" name="csrf" value=(csrf);
                label for="c-name" { "Name" }
                input id="c-name" name="name" required maxlength="100" autocomplete="off";
                label for="c-tags" { "idTags (separated by spaces or commas; up to 20 characters each)" }
                input id="c-tags" name="idTags" required autocomplete="off";
                button type="submit" { "Create and issue a token" }
            }
        }
        section.card aria-labelledby="find-h" {
            h2 #find-h { "Look up a customer" }
            form.filters method="get" action="/console/customers" {
                label for="c-id" { "Customer id" }
                input id="c-id" name="id" inputmode="numeric";
                button type="submit" { "Show" }
            }
        }
    }
}

async fn customers_page(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    q: Result<Query<CustomerQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let found = match q.id.as_deref().and_then(|i| i.trim().parse::<i64>().ok()) {
        Some(id) => match c.api.central.store.customer(id).await {
            Ok(found) => Some((id, found)),
            Err(e) => return internal(&e),
        },
        None => None,
    };
    let body = html! {
        @if let Some((id, found)) = &found {
            section.card aria-labelledby="cust-h" {
                @match found {
                    Some(cu) => {
                        h2 #cust-h { "Customer " (cu.id) ": " (cu.name) }
                        p { "idTags: " @for t in &cu.id_tags { code { (t) } " " } }
                        p { "Created " (when(cu.created_at)) ". " a href=(format!("/console/reservations?day={}", day_text(OffsetDateTime::now_utc().date()))) { "Today's bookings" } }
                    }
                    None => { h2 #cust-h { "No customer " (id) } }
                }
            }
        }
        (customer_forms(&s.session.csrf, None))
    };
    page(frame("Customers", &s, None), body).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    id_tags: String,
}

/// As `POST /customers` does: the token is shown once, on this answer (never in a URL).
async fn create_customer(
    State(c): State<Arc<Console>>,
    s: OperatorSession,
    Form(form): Form<CustomerForm>,
) -> Response {
    if !csrf_ok(&s.session, &form.csrf) {
        return csrf_refused();
    }
    let refuse = |why: &str| {
        let body = customer_forms(&s.session.csrf, Some(why));
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(frame("Customers", &s, None), body),
        )
            .into_response()
    };
    let name = form.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return refuse("The name must be 1 to 100 characters.");
    }
    let mut tags: Vec<IdTag> = Vec::new();
    for raw in form
        .id_tags
        .split(|ch: char| ch == ',' || ch.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        match IdTag::parse(raw) {
            Ok(t) if tags.iter().any(|o| o.key() == t.key()) => {
                return refuse(&format!("idTag {raw} is listed twice."));
            }
            Ok(t) => tags.push(t),
            Err(e) => return refuse(&format!("idTag {raw}: {e}.")),
        }
    }
    if tags.is_empty() || tags.len() > 20 {
        return refuse("Give 1 to 20 idTags.");
    }
    let token = new_token();
    let customer = match c
        .api
        .central
        .store
        .insert_customer(&NewCustomer {
            name,
            id_tags: tags,
            token_digest: token_digest(&token),
        })
        .await
    {
        Ok(cu) => cu,
        Err(StoreError::Conflict(what)) => return refuse(&what),
        Err(e) => return internal(&e),
    };
    let body = html! {
        section.card aria-labelledby="made-h" {
            h2 #made-h { "Created customer " (customer.id) ": " (customer.name) }
            p { "idTags: " @for t in &customer.id_tags { code { (t) } " " } }
            p { strong { "Token (shown only now; give it to the driver for the driver's page at /my/):" } }
            p { code.token data-token { (token) } }
        }
        (customer_forms(&s.session.csrf, None))
    };
    (
        StatusCode::CREATED,
        page(frame("Customers", &s, None), body),
    )
        .into_response()
}
