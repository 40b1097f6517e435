//! My page over REST: `GET /me` and `GET /customers/{id}/mypage` answer from the projection's
//! own tables only (see `booking::mypage`), newest slot first, paged by an opaque `after`
//! token; `GET /me/events` streams each change of the caller's page as Server-Sent Events.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use super::Api;
use super::ApiError;
use super::auth::Principal;
use crate::booking::mypage::{MyPage, PageCustomer, page_token, parse_page_token};
use crate::problem::Problem;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/me", get(me))
        .route("/me/events", get(events))
        .route("/customers/{id}/mypage", get(customer_page))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// At most this many reservations (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `nextPage` token of the previous page: continue with older slots.
    after: Option<String>,
}

fn only_customers() -> ApiError {
    ApiError::Forbidden {
        detail: "my page belongs to a customer: use a customer token, or as the operator GET \
            /api/v1/customers/{id}/mypage"
            .into(),
        field: None,
    }
}

async fn page(
    api: &Api,
    customer: PageCustomer,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MyPage>, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::Problem(
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid query").detail(e.body_text()),
        )
    })?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be from 1 to {MAX_PAGE}"),
        ));
    }
    let after = match q.after.as_deref() {
        None => None,
        Some(t) => Some(
            parse_page_token(t)
                .ok_or_else(|| ApiError::invalid("after", "not a nextPage token"))?,
        ),
    };
    // One more than asked tells whether an older page exists.
    let mut reservations = api.pages.entries(customer.id, after, limit + 1).await?;
    let next_page = if reservations.len() > limit as usize {
        reservations.truncate(limit as usize);
        reservations.last().map(page_token)
    } else {
        None
    };
    Ok(Json(MyPage {
        customer,
        reservations,
        next_page,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "my page",
    operation_id = "myPage",
    summary = "My page",
    description = "The calling customer's reservations, newest slot first, each with its \
        charging (transaction, energy so far) when it has one. Served from the my-page read \
        model, which follows the ledger within milliseconds (see the \
        `echarging_mypage_lag_seconds` metric). Customer token only.",
    params(PageQuery),
    responses(
        (status = 200, description = "My page", body = MyPage),
        (status = 403, description = "The operator token has no page of its own",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is invalid (`field` names it)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn me(
    who: Principal,
    State(api): State<Arc<Api>>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MyPage>, ApiError> {
    let Principal::Customer(c) = who else {
        return Err(only_customers());
    };
    // A customer created a moment ago may not have reached the view yet.
    let customer = PageCustomer {
        id: c.id,
        name: c.name,
    };
    page(&api, customer, query).await
}

#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}/mypage",
    tag = "my page",
    operation_id = "customerPage",
    summary = "A customer's page",
    description = "What `GET /api/v1/me` shows that customer. The operator reads any; a \
        customer only its own (another's answers 404).",
    params(("id" = i64, Path, description = "The customer id"), PageQuery),
    responses(
        (status = 200, description = "The customer's page", body = MyPage),
        (status = 404, description = "No such customer (yet, in the view), or not the caller",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is invalid (`field` names it)",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn customer_page(
    who: Principal,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MyPage>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no customer {raw:?}"));
    let id: i64 = raw.parse().map_err(|_| not_found())?;
    if who.customer_id().is_some_and(|own| own != id) {
        return Err(not_found());
    }
    let customer = api.pages.customer(id).await?.ok_or_else(not_found)?;
    page(&api, customer, query).await
}

/// One Server-Sent Event of `GET /api/v1/me/events`, as an EventSource reads it (documentation
/// type: the stream is written by axum's SSE support).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct MyPageEvent {
    /// `snapshot`, `resync`, or the ledger event's kind (e.g. `ReservationBooked`).
    event: Option<String>,
    /// The ledger event's sequence number.
    id: Option<String>,
    /// JSON text: the page (`snapshot`) or the reservation entry as it now stands.
    data: Option<String>,
    /// Reconnection time in milliseconds, when the server suggests one.
    retry: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/me/events",
    tag = "my page",
    operation_id = "myPageEvents",
    summary = "My page, live (Server-Sent Events)",
    description = "A `text/event-stream`. First a `snapshot` event whose data is the first page \
        (as `GET /api/v1/me`), then one event per change of the caller's page, in commit order: \
        the event name is the ledger event (`ReservationBooked`, `ReservationAckChanged`, \
        `TransactionStarted`, `MeterValuesRecorded`, `TransactionStopped`, \
        `ReservationCancelled`, `ReservationExpired`), the id its sequence number, the data the \
        reservation as my page now shows it. A `resync` event means the stream fell behind: \
        reload the page. Only the caller's own changes are ever sent; the stream ends when the \
        customer is deleted or the server stops (reconnect, as EventSource does by itself). \
        Customer token only.",
    responses(
        (status = 200, description = "The stream; each event as below",
            content_type = "text/event-stream", body = MyPageEvent),
        (status = 403, description = "The operator token has no page of its own",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn events(
    who: Principal,
    State(api): State<Arc<Api>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Principal::Customer(c) = who else {
        return Err(only_customers());
    };
    // Subscribed before the snapshot is read: a change committed in between is sent (again),
    // never lost. Each message carries the entry as it stands, so a repeat is harmless.
    let news = api.hub.subscribe();
    let since = api.pages.cursor().await?;
    let Json(snapshot) = page(
        &api,
        PageCustomer {
            id: c.id,
            name: c.name.clone(),
        },
        Ok(Query(PageQuery {
            limit: None,
            after: None,
        })),
    )
    .await?;
    let first = SseEvent::default()
        .event("snapshot")
        .id(since.to_string())
        .json_data(&snapshot)
        .unwrap_or_default();
    struct Follow {
        api: Arc<Api>,
        news: tokio::sync::broadcast::Receiver<crate::booking::mypage::PageNews>,
        customer: i64,
        since: i64,
        first: Option<SseEvent>,
    }
    let state = Follow {
        api,
        news,
        customer: c.id,
        since,
        first: Some(first),
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if let Some(first) = s.first.take() {
            return Some((Ok(first), s));
        }
        loop {
            // A stopping server ends its streams, or they would hold the drain for the grace.
            let received = tokio::select! {
                _ = s.api.central.shutdown.cancelled() => return None,
                received = s.news.recv() => received,
            };
            match received {
                // Deleted: its token no longer opens anything, so neither does this stream.
                Ok(n)
                    if n.customer_id == s.customer
                        && n.kind == crate::domain::event::kind::CUSTOMER_DELETED =>
                {
                    return None;
                }
                Ok(n) if n.customer_id == s.customer && n.seq > s.since => {
                    let Some(reservation) = n.reservation_id else {
                        continue;
                    };
                    let entry = match s.api.pages.entry(reservation).await {
                        Ok(Some(entry)) if entry.customer_id == s.customer => entry,
                        _ => continue,
                    };
                    s.since = n.seq;
                    let event = SseEvent::default()
                        .event(n.kind.as_str())
                        .id(n.seq.to_string())
                        .json_data(&entry)
                        .unwrap_or_default();
                    return Some((Ok(event), s));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {
                    let event = SseEvent::default().event("resync").data("reload the page");
                    return Some((Ok(event), s));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
