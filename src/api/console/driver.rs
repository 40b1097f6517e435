//! The driver's page at `/my/`: a charger's free slots for a day, the booking form, cancel, my
//! bookings with what the charger said to ReserveNow, the running charge with its energy rising
//! (live over SSE from the my-page hub, as `GET /me/events` follows it), and my history. A
//! driver sees and touches only their own bookings; it books and cancels through the store as
//! the REST handlers do, and must not reveal another customer's booking beyond "taken".

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use futures_util::Stream;
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use super::session::{self, Side, Who};
use super::svg::{self, Block};
use super::{
    Console, DriverSession, Frame, csrf_ok, csrf_refused, day_of, day_text, hhmm, internal, kwh,
    local_input, page, parse_instant, signin_page, when,
};
use super::{CsrfOnly, SignInForm};
use crate::api::{ApiError, auth};
use crate::booking::mypage::PageEntry;
use crate::booking::store::{BookError, CancelError, Page};
use crate::domain::ChargeBoxId;
use crate::domain::charger::RegistrationState;
use crate::domain::customer::{Customer, token_digest};
use crate::domain::reservation::{
    InvalidSlot, NewReservation, ReservationFilter, ReservationStatus, TimeSlot,
};
use crate::domain::transaction::TransactionFilter;
use crate::transport::Peer;

/// As the REST layer: a slot may start this long ago (a driver filling the form in).
const START_GRACE: time::Duration = time::Duration::minutes(5);
/// Chargers offered in the charger picker.
const PICKER: u32 = 1000;

pub fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/my/", get(my_page))
        .route("/my/signin", post(sign_in))
        .route("/my/signout", post(sign_out))
        .route("/my/book", post(book))
        .route("/my/reservations/{id}/cancel", post(cancel))
        .route("/my/events", get(events))
        .route("/my/history", get(history))
}

fn frame<'a>(title: &'a str, s: &'a DriverSession, stream: Option<String>) -> Frame<'a> {
    Frame {
        title,
        side: Side::Driver,
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
    if !session::signin_token_ok(&headers, Side::Driver, &form.signin) {
        return signin_page(
            Side::Driver,
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
    let customer = match auth::customer(&c.api, digest).await {
        Ok(Some(cu)) if !token.is_empty() => cu,
        Ok(_) => {
            let why = if c.api.operator.matches(token) {
                auth::passed(attempt);
                "That is the operator token: sign in to the operator console at / instead."
            } else if let ApiError::Throttled(_) = auth::failed(&c.api, attempt) {
                return signin_page(
                    Side::Driver,
                    secure,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some("Too many wrong tokens from this address. Wait a moment and try again."),
                );
            } else {
                "That token is not valid."
            };
            return signin_page(Side::Driver, secure, StatusCode::UNAUTHORIZED, Some(why));
        }
        Err(e) => return internal(&e),
    };
    auth::passed(attempt);
    super::signed_in(&c, Who::Customer(customer), Side::Driver, secure)
}

async fn sign_out(
    State(c): State<Arc<Console>>,
    s: DriverSession,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    super::signed_out(&c, &s.session, &s.id, Side::Driver, &headers, &form.csrf)
}

// ---- the page ----

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct MyQuery {
    #[serde(default)]
    charger_id: Option<String>,
    #[serde(default)]
    day: Option<String>,
    #[serde(default)]
    connector_id: Option<String>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    booked: Option<i32>,
    #[serde(default)]
    cancelled: Option<i32>,
}

/// The booking form's values, kept when the server refuses it.
#[derive(Default, Clone)]
struct Draft {
    charger_id: String,
    connector_id: String,
    start: String,
    end: String,
}

async fn my_page(
    State(c): State<Arc<Console>>,
    s: Result<DriverSession, super::SignInFirst>,
    headers: HeaderMap,
    q: Result<Query<MyQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(s) = s else {
        return signin_page(
            Side::Driver,
            session::over_tls(&headers),
            StatusCode::OK,
            None,
        );
    };
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let draft = Draft {
        charger_id: q.charger_id.clone().unwrap_or_default(),
        connector_id: q.connector_id.clone().unwrap_or_default(),
        start: q.start.clone().unwrap_or_default(),
        end: q.end.clone().unwrap_or_default(),
    };
    let notice = match (q.booked, q.cancelled) {
        (Some(id), _) => Some(format!(
            "Booked: booking {id}. It reaches the charger when its slot begins."
        )),
        (_, Some(id)) => Some(format!("Booking {id} is cancelled.")),
        _ => None,
    };
    render(
        &c,
        &s,
        q.day.as_deref(),
        draft,
        notice,
        None,
        StatusCode::OK,
    )
    .await
}

async fn render(
    c: &Console,
    s: &DriverSession,
    day: Option<&str>,
    draft: Draft,
    notice: Option<String>,
    problem: Option<String>,
    status: StatusCode,
) -> Response {
    let entries = match c.api.pages.entries(s.customer.id, None, 50).await {
        Ok(e) => e,
        Err(e) => return internal(&e),
    };
    let chargers = match c
        .api
        .central
        .store
        .chargers(&Page {
            after: None,
            limit: PICKER,
            // Drivers can book only chargers in service.
            state: Some(RegistrationState::Accepted),
        })
        .await
    {
        Ok(list) => list,
        Err(e) => return internal(&e),
    };
    let day = day_of(day);
    let slots = match free_slots(c, s.customer.id, &draft.charger_id, day).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let running: Vec<&PageEntry> = entries
        .iter()
        .filter(|e| e.status == ReservationStatus::ChargingStarted)
        .collect();
    let title = format!("Hello, {}", s.customer.name);
    let body = html! {
        @if let Some(n) = &notice { p.notice role="status" { (n) } }
        @if let Some(p) = &problem { p.notice.error role="alert" id="book-problem" { (p) } }
        @if !running.is_empty() {
            section.card aria-labelledby="run-h" {
                h2 #run-h { "Charging now" }
                @for e in &running {
                    p.big { "Booking " (e.id) " on " (e.charger_id) " #" (e.connector_id) ": "
                        strong data-energy-of=(e.id) { (energy_text(e)) } }
                }
            }
        }
        section.card aria-labelledby="mine-h" {
            h2 #mine-h { "My bookings" }
            @if entries.is_empty() { p.hint { "No bookings yet." } }
            ul.bookings {
                @for e in &entries { (entry(e, &s.session.csrf)) }
            }
        }
        (slots_section(&draft.charger_id, day, &slots, &chargers))
        (book_form(&s.session.csrf, &draft, &chargers))
    };
    (
        status,
        page(frame(&title, s, Some("/my/events".into())), body),
    )
        .into_response()
}

fn energy_text(e: &PageEntry) -> String {
    e.charging
        .as_ref()
        .and_then(|ch| ch.energy_wh)
        .map(kwh)
        .unwrap_or_else(|| "—".into())
}

fn entry(e: &PageEntry, csrf: &str) -> Markup {
    html! {
        li.booking data-reservation=(e.id) data-status=(e.status.as_str()) data-ack=(e.charger_ack.as_str()) {
            div {
                strong { "Booking " (e.id) } " · " (e.charger_id) " connector " (e.connector_id)
                br;
                span { (when(e.start)) " – " (hhmm(e.end)) }
            }
            dl.facts {
                dt { "Status" } dd data-field="status" { (e.status.as_str()) }
                dt { "Charger said" } dd data-field="ack" { (e.charger_ack.as_str()) }
                dt { "Energy" } dd data-field="energy" { (energy_text(e)) }
            }
            @if e.status == ReservationStatus::Booked {
                form.inline method="post" action=(format!("/my/reservations/{}/cancel", e.id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    button.danger type="submit" aria-label=(format!("Cancel booking {}", e.id)) { "Cancel" }
                }
            }
        }
    }
}

/// A connector's free time within the day shown (from now on, when the day is today).
struct Free {
    connector: u32,
    start: OffsetDateTime,
    end: OffsetDateTime,
}

struct Slots {
    charger: Option<ChargeBoxId>,
    connectors: u32,
    free: Vec<Free>,
    taken: Vec<Block>,
    day_start: OffsetDateTime,
}

async fn free_slots(
    c: &Console,
    customer: i64,
    raw: &str,
    day: time::Date,
) -> Result<Slots, Response> {
    let day_start = day.midnight().assume_utc();
    let mut slots = Slots {
        charger: None,
        connectors: 0,
        free: Vec::new(),
        taken: Vec::new(),
        day_start,
    };
    let Ok(id) = ChargeBoxId::parse(raw.trim()) else {
        return Ok(slots);
    };
    let Some(record) = c
        .api
        .central
        .store
        .charger(&id)
        .await
        .map_err(|e| internal(&e))?
    else {
        return Ok(slots);
    };
    let day_end = day_start + time::Duration::DAY;
    let booked = c
        .api
        .central
        .store
        .reservations(&ReservationFilter {
            charger_id: Some(id.clone()),
            from: Some(day_start),
            to: Some(day_end),
            limit: 1000,
            ..Default::default()
        })
        .await
        .map_err(|e| internal(&e))?;
    let now = OffsetDateTime::now_utc()
        .replace_second(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let from = day_start.max(now);
    for n in 1..=record.connectors {
        let mut taken: Vec<(OffsetDateTime, OffsetDateTime, Option<i32>)> = booked
            .iter()
            .filter(|r| r.connector_id == n && r.status.is_live())
            .map(|r| {
                let mine = (r.customer_id == customer).then_some(r.id);
                (r.slot.start(), r.slot.end(), mine)
            })
            .collect();
        taken.sort();
        let mut cursor = from;
        for (a, b, _) in &taken {
            if *a > cursor && cursor < day_end {
                slots.free.push(Free {
                    connector: n,
                    start: cursor,
                    end: (*a).min(day_end),
                });
            }
            cursor = cursor.max(*b);
        }
        if cursor < day_end {
            slots.free.push(Free {
                connector: n,
                start: cursor,
                end: day_end,
            });
        }
        for (a, b, mine) in taken {
            // Another customer's booking shows as "taken", never whose.
            let (class, label) = match mine {
                Some(id) => (
                    "mine",
                    format!("your booking {id}: {}–{}", hhmm(a), hhmm(b)),
                ),
                None => ("taken", format!("taken {}–{}", hhmm(a), hhmm(b))),
            };
            slots.taken.push(Block {
                connector: n,
                start: a,
                end: b,
                class: class.into(),
                label,
                booking: None,
            });
        }
    }
    slots.connectors = record.connectors;
    slots.charger = Some(id);
    Ok(slots)
}

fn slots_section(
    raw: &str,
    day: time::Date,
    slots: &Slots,
    chargers: &[crate::domain::charger::ChargerRecord],
) -> Markup {
    let prev = day_text(day.previous_day().unwrap_or(day));
    let next = day_text(day.next_day().unwrap_or(day));
    html! {
        section.card aria-labelledby="free-h" {
            h2 #free-h { "Free slots" }
            form.filters method="get" action="/my/" {
                label for="s-charger" { "Charger" }
                input id="s-charger" name="chargerId" list="chargers" value=(raw) autocomplete="off";
                label for="s-day" { "Day (UTC)" }
                input id="s-day" type="date" name="day" value=(day_text(day));
                button type="submit" { "Show free slots" }
            }
            (charger_list(chargers))
            @match &slots.charger {
                None => { p.hint { @if raw.is_empty() { "Pick a charger to see when it is free." } @else { "No such charger." } } }
                Some(id) => {
                    nav.pager aria-label="Day" {
                        a href=(format!("/my/?chargerId={id}&day={prev}")) { "← " (prev) }
                        a href=(format!("/my/?chargerId={id}&day={next}")) { (next) " →" }
                    }
                    (svg::timeline(slots.day_start, slots.connectors, &slots.taken, &format!("Taken slots of {id} on {}", day_text(day))))
                    p.hint { span.key.mine {} " yours " span.key.taken {} " taken by others; times in UTC" }
                    @if slots.free.is_empty() { p.hint { "Nothing free on this day." } }
                    ul.free {
                        @for f in &slots.free {
                            @let end = f.end.min(f.start + time::Duration::HOUR);
                            li data-free-connector=(f.connector) {
                                "Connector " (f.connector) ": free " (hhmm(f.start)) "–" @if f.end >= slots.day_start + time::Duration::DAY { "24:00" } @else { (hhmm(f.end)) } " "
                                a href=(format!("/my/?chargerId={id}&day={}&connectorId={}&start={}&end={}#book-h", day_text(day), f.connector, local_input(f.start), local_input(end))) {
                                    "Book from " (hhmm(f.start))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn charger_list(chargers: &[crate::domain::charger::ChargerRecord]) -> Markup {
    html! {
        datalist id="chargers" {
            @for ch in chargers { option value=(ch.id) { (ch.name.as_deref().unwrap_or("")) } }
        }
    }
}

fn book_form(csrf: &str, d: &Draft, chargers: &[crate::domain::charger::ChargerRecord]) -> Markup {
    let now = OffsetDateTime::now_utc();
    let start = if d.start.is_empty() {
        local_input(now)
    } else {
        d.start.clone()
    };
    let end = if d.end.is_empty() {
        local_input(now + time::Duration::HOUR)
    } else {
        d.end.clone()
    };
    html! {
        section.card aria-labelledby="book-h" {
            h2 #book-h { "Book a slot" }
            form.stack method="post" action="/my/book" {
                input type="hidden" name="csrf" value=(csrf);
                label for="b-charger" { "Charger" }
                input id="b-charger" name="chargerId" list="chargers" required value=(d.charger_id) autocomplete="off";
                label for="b-conn" { "Connector (empty: the first free one)" }
                input id="b-conn" name="connectorId" inputmode="numeric" value=(d.connector_id) autocomplete="off";
                label for="b-start" { "Start (UTC)" }
                input id="b-start" type="datetime-local" name="start" required value=(start);
                label for="b-end" { "End (UTC)" }
                input id="b-end" type="datetime-local" name="end" required value=(end);
                button type="submit" { "Book" }
            }
            @if chargers.is_empty() { p.hint { "No chargers are registered yet." } }
        }
    }
}

// ---- book and cancel ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BookForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    charger_id: String,
    #[serde(default)]
    connector_id: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
}

/// As `POST /reservations` with a customer token: the customer's first idTag, the ledger
/// refusing an overlap.
async fn book(
    State(c): State<Arc<Console>>,
    s: DriverSession,
    Form(form): Form<BookForm>,
) -> Response {
    if !csrf_ok(&s.session, &form.csrf) {
        return csrf_refused();
    }
    let draft = Draft {
        charger_id: form.charger_id.trim().to_string(),
        connector_id: form.connector_id.trim().to_string(),
        start: form.start.clone(),
        end: form.end.clone(),
    };
    let day = parse_instant(&form.start).map(|t| day_text(t.date()));
    let outcome = place(&c, &s.customer, &form).await;
    crate::metrics::booking(match &outcome {
        Ok(_) => StatusCode::CREATED,
        Err((status, _)) => *status,
    });
    match outcome {
        Ok(id) => Redirect::to(&format!(
            "/my/?booked={id}&chargerId={}&day={}",
            draft.charger_id,
            day.unwrap_or_default()
        ))
        .into_response(),
        Err((status, why)) => render(&c, &s, day.as_deref(), draft, None, Some(why), status).await,
    }
}

async fn place(
    c: &Console,
    customer: &Customer,
    f: &BookForm,
) -> Result<i32, (StatusCode, String)> {
    let bad = |why: &str| (StatusCode::UNPROCESSABLE_ENTITY, why.to_string());
    let charger_id =
        ChargeBoxId::parse(f.charger_id.trim()).map_err(|_| bad("There is no such charger."))?;
    let connector_id = match f.connector_id.trim() {
        "" => None,
        n => Some(
            n.parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("The connector is a number from 1."))?,
        ),
    };
    let start = parse_instant(&f.start).ok_or_else(|| bad("The start is not a date and time."))?;
    let end = parse_instant(&f.end).ok_or_else(|| bad("The end is not a date and time."))?;
    let id_tag = customer
        .id_tags
        .first()
        .cloned()
        .ok_or_else(|| bad("Your account has no idTag; ask your operator."))?;
    let max =
        time::Duration::try_from(c.api.central.settings.max_slot).unwrap_or(time::Duration::DAY);
    let slot = TimeSlot::bookable(start, end, OffsetDateTime::now_utc(), START_GRACE, max)
        .map_err(|e| match e {
            InvalidSlot::InPast => bad("The slot has already begun; pick a later start."),
            InvalidSlot::EndNotAfterStart => bad("The end must come after the start."),
            other => bad(&format!("The slot cannot be booked: {other}.")),
        })?;
    let booked = c
        .api
        .central
        .store
        .book(&NewReservation {
            charger_id,
            connector_id,
            customer_id: customer.id,
            id_tag,
            slot,
        })
        .await;
    match booked {
        Ok(r) => Ok(r.id),
        Err(BookError::UnknownCharger(_)) => Err(bad("There is no such charger.")),
        Err(BookError::UnknownConnector(n)) => {
            Err(bad(&format!("The charger has no connector {n}.")))
        }
        Err(BookError::UnknownCustomer(_)) => Err(bad("Your account is not known.")),
        Err(BookError::NotInService(..)) => Err((
            StatusCode::CONFLICT,
            "That charger is not in service yet; pick another.".into(),
        )),
        Err(BookError::OutOfService(n)) => Err((
            StatusCode::CONFLICT,
            format!("Connector {n} is out of service for now; pick another."),
        )),
        Err(BookError::Overlap(taken)) => Err((
            StatusCode::CONFLICT,
            format!(
                "That slot is taken from {} to {}; pick a free one.",
                when(taken.start()),
                when(taken.end())
            ),
        )),
        Err(BookError::Store(e)) => {
            tracing::error!(error = %e, "console booking failed");
            Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "The booking could not be saved; try again.".into(),
            ))
        }
    }
}

async fn cancel(
    State(c): State<Arc<Console>>,
    s: DriverSession,
    Path(raw): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !csrf_ok(&s.session, &form.csrf) {
        return csrf_refused();
    }
    let problem = |status, text: &str| super::message_page(status, "Not cancelled", text);
    let Ok(id) = raw.parse::<i32>() else {
        return problem(StatusCode::NOT_FOUND, "No such booking of yours.");
    };
    match c
        .api
        .central
        .store
        .cancel_reservation(id, Some(s.customer.id))
        .await
    {
        Ok(_) => Redirect::to(&format!("/my/?cancelled={id}")).into_response(),
        Err(CancelError::NotFound) => problem(StatusCode::NOT_FOUND, "No such booking of yours."),
        Err(CancelError::NotCancellable(st)) => problem(
            StatusCode::CONFLICT,
            &format!("The booking is {st}; only BOOKED can be cancelled."),
        ),
        Err(CancelError::Store(e)) => internal(&e),
    }
}

// ---- live ----

/// The caller's page changes as `reservation` events (the entry as my page now shows it), from
/// the same hub `GET /me/events` follows, after the first page's entries as they stand;
/// `resync` asks the page to reload.
async fn events(
    State(c): State<Arc<Console>>,
    s: Result<DriverSession, super::SignInFirst>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, StatusCode> {
    let Ok(s) = s else {
        return Err(StatusCode::UNAUTHORIZED);
    };
    let news = c.api.hub.subscribe();
    let since = c
        .api
        .pages
        .cursor()
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    // The page was drawn from the view before this stream subscribed: a change in between
    // would be lost, so the stream opens with the entries as they stand now (after the
    // subscription, so nothing falls between the two).
    let first: std::collections::VecDeque<SseEvent> = c
        .api
        .pages
        .entries(s.customer.id, None, 50)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .iter()
        .map(|e| {
            SseEvent::default()
                .event("reservation")
                .json_data(e)
                .unwrap_or_default()
        })
        .collect();
    struct Follow {
        c: Arc<Console>,
        news: tokio::sync::broadcast::Receiver<crate::booking::mypage::PageNews>,
        customer: i64,
        since: i64,
        first: std::collections::VecDeque<SseEvent>,
    }
    let state = Follow {
        c,
        news,
        customer: s.customer.id,
        since,
        first,
    };
    let stream = futures_util::stream::unfold(state, |mut f| async move {
        if let Some(e) = f.first.pop_front() {
            return Some((Ok(e), f));
        }
        loop {
            let received = tokio::select! {
                _ = f.c.api.central.shutdown.cancelled() => return None,
                r = f.news.recv() => r,
            };
            match received {
                Ok(n) if n.customer_id == f.customer && n.seq > f.since => {
                    let Some(id) = n.reservation_id else { continue };
                    let entry = match f.c.api.pages.entry(id).await {
                        Ok(Some(e)) if e.customer_id == f.customer => e,
                        _ => continue,
                    };
                    f.since = n.seq;
                    let e = SseEvent::default()
                        .event("reservation")
                        .id(n.seq.to_string())
                        .json_data(&entry)
                        .unwrap_or_default();
                    return Some((Ok(e), f));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {
                    let e = SseEvent::default().event("resync").data("reload");
                    return Some((Ok(e), f));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

// ---- history ----

async fn history(State(c): State<Arc<Console>>, s: DriverSession) -> Response {
    let mut list = match c
        .api
        .central
        .store
        .transactions(&TransactionFilter {
            customer_id: Some(s.customer.id),
            limit: 1000,
            ..Default::default()
        })
        .await
    {
        Ok(l) => l,
        Err(e) => return internal(&e),
    };
    list.sort_by_key(|t| std::cmp::Reverse(t.started_at));
    let total: i64 = list.iter().filter_map(|t| t.energy_wh).sum();
    let body = html! {
        p { "Energy charged in all: " strong { (kwh(total)) } }
        @if list.is_empty() { p.hint { "No charging sessions yet." } }
        div.scroll { table {
            thead { tr { th scope="col" { "Session" } th scope="col" { "Charger" } th scope="col" { "Started" } th scope="col" { "Ended" } th scope="col" { "Energy" } } }
            tbody { @for t in &list {
                tr data-transaction=(t.id) data-status=(t.status.as_str()) {
                    td { (t.id) } td { (t.charger_id) " #" (t.connector_id) }
                    td { (when(t.started_at)) }
                    td { (t.stopped_at.map(when).unwrap_or_else(|| "charging".into())) }
                    td { (t.energy_wh.or(t.last_meter_wh.map(|m| m.saturating_sub(t.meter_start_wh).max(0))).map(kwh).unwrap_or_else(|| "—".into())) }
                }
            } }
        } }
    };
    page(frame("My history", &s, None), body).into_response()
}
