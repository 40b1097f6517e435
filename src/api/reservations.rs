//! `/api/v1/reservations`: book, read, list and cancel slots. A customer token acts on its own
//! reservations only; someone else's answers 404, never 403, so a reservation's existence is not
//! revealed (documented in the OpenAPI spec). Who books for whom, with which idTag and slot, is
//! decided by [`crate::domain::placement`]; the database decides overlaps; this module gathers
//! the facts, calls the rules and the ledger, and answers HTTP.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::auth::Principal;
use super::error::FieldErrors;
use super::{Api, ApiError};
use crate::booking::store::CancelError;
use crate::domain::ChargeBoxId;
use crate::domain::placement::{self, BookingFor, PlacementError};
use crate::domain::reservation::{
    ChargerAck, NewReservation, Reservation, ReservationFilter, ReservationStatus,
};
use crate::problem::{ApiJson, Problem};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/reservations", get(list).post(book))
        .route("/reservations/{id}", get(show).delete(cancel))
}

/// A slot to book. Unknown members are refused (422).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct BookRequest {
    /// The charger's charge box id.
    #[schema(example = "CP-0001")]
    charger_id: String,
    /// Omitted: the lowest connector free for the whole slot. 0: the whole charger (any of
    /// its connectors): its slot overlaps every connector's, and it is sent as ReserveNow
    /// connectorId 0 where the charger's `ReserveConnectorZeroSupported` is true, else on a
    /// connector that reported Available.
    #[serde(default)]
    #[schema(minimum = 0)]
    connector_id: Option<u32>,
    /// One of the customer's idTags (compared case-insensitively); defaults to its first.
    #[serde(default)]
    id_tag: Option<String>,
    /// Required when the operator books for a customer; a customer may omit it.
    #[serde(default)]
    customer_id: Option<i64>,
    /// Start of the slot. It may lie up to 5 minutes in the past ("from now"), not more.
    #[serde(with = "time::serde::rfc3339")]
    start: OffsetDateTime,
    /// End of the slot, exclusive: after `start`, at most the configured maximum (default 24 h)
    /// later.
    #[serde(with = "time::serde::rfc3339")]
    end: OffsetDateTime,
}

/// A reservation: one connector of one charger for the half-open slot `[start, end)`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    /// Also the OCPP reservationId sent to the charger (32-bit signed).
    id: i32,
    charger_id: String,
    connector_id: u32,
    customer_id: i64,
    /// The idTag the charger will accept for this slot.
    id_tag: String,
    #[serde(with = "time::serde::rfc3339")]
    start: OffsetDateTime,
    /// Exclusive.
    #[serde(with = "time::serde::rfc3339")]
    end: OffsetDateTime,
    status: ReservationStatus,
    charger_ack: ChargerAck,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl From<Reservation> for ReservationView {
    fn from(r: Reservation) -> Self {
        ReservationView {
            id: r.id,
            charger_id: r.charger_id.to_string(),
            connector_id: r.connector_id,
            customer_id: r.customer_id,
            id_tag: r.id_tag,
            start: r.slot.start(),
            end: r.slot.end(),
            status: r.status,
            charger_ack: r.charger_ack,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/reservations",
    tag = "reservations",
    operation_id = "bookReservation",
    summary = "Book a slot",
    description = "A customer books for itself (`customerId` omitted or its own); the operator \
        must give `customerId`. Carries a Location header.",
    request_body = BookRequest,
    responses(
        (
            status = 201,
            description = "Booked",
            body = ReservationView,
            headers(("Location" = String, description = "URL of the new reservation"))
        ),
        (status = 400, description = "The body is not valid JSON",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token gave another customer's `customerId`",
            body = Problem, content_type = "application/problem+json"),
        (
            status = 409,
            description = "The slot overlaps a live reservation on that connector (or no \
                connector is free for it); `conflict` holds the taken slot's start and end, never \
                its holder. Or the charger is not in service (`pending` or `rejected`: an \
                operator must accept it first; `field` is `chargerId`). Or the connector is \
                out of service: made Inoperative through ChangeAvailability, it or its charger \
                as a whole (`field` is `connectorId`; without `connectorId`, when every \
                connector that is not taken is out of service)",
            body = Problem, content_type = "application/problem+json"
        ),
        (status = 415, description = "The body is not sent as JSON",
            body = Problem, content_type = "application/problem+json"),
        (
            status = 422,
            description = "A member is missing, unknown or invalid: end not after start, slot in \
                the past or too long, unknown charger, connector, customer or idTag (`field` \
                names it)",
            body = Problem, content_type = "application/problem+json"
        )
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn book(
    who: Principal,
    State(api): State<Arc<Api>>,
    body: Result<ApiJson<BookRequest>, Problem>,
) -> Result<Response, ApiError> {
    // The body is taken as a `Result` so that unreadable bookings are counted as well.
    let answer = match body {
        Ok(ApiJson(body)) => place(who, &api, body).await,
        Err(problem) => Err(problem.into()),
    };
    crate::metrics::booking(match &answer {
        Ok(response) => response.status(),
        Err(e) => e.status(),
    });
    answer
}

async fn place(who: Principal, api: &Api, body: BookRequest) -> Result<Response, ApiError> {
    let caller = match &who {
        Principal::Customer(c) => Some(c),
        Principal::Operator => None,
    };
    let customer = match placement::booking_for(caller, body.customer_id)? {
        BookingFor::Caller => caller.cloned().ok_or(PlacementError::CustomerRequired)?,
        BookingFor::Named(id) => api
            .store
            .customer(id)
            .await?
            .ok_or(PlacementError::UnknownCustomer(id))?,
    };
    let max =
        time::Duration::try_from(api.central.settings.max_slot).unwrap_or(time::Duration::DAY);
    let placed = placement::place(
        &customer,
        body.id_tag.as_deref(),
        body.start,
        body.end,
        OffsetDateTime::now_utc(),
        max,
    )?;
    let charger_id = ChargeBoxId::parse(&body.charger_id)
        .map_err(|_| ApiError::invalid("chargerId", "no such charger"))?;
    api.refuse_unusable_tag(&placed.id_tag).await?;
    let reservation = api
        .store
        .book(&NewReservation {
            charger_id,
            connector_id: body.connector_id,
            customer_id: customer.id,
            id_tag: placed.id_tag,
            slot: placed.slot,
        })
        .await?;
    let location = format!("/api/v1/reservations/{}", reservation.id);
    let mut response = (
        StatusCode::CREATED,
        Json(ReservationView::from(reservation)),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

fn not_found(raw: &str) -> ApiError {
    ApiError::NotFound(format!("no reservation {raw:?}"))
}

#[utoipa::path(
    get,
    path = "/api/v1/reservations/{id}",
    tag = "reservations",
    operation_id = "getReservation",
    summary = "Read a reservation",
    description = "The operator reads any reservation, a customer only its own; another \
        customer's answers 404 (existence is not revealed).",
    params(("id" = i32, Path, description = "The reservation id")),
    responses(
        (status = 200, description = "The reservation", body = ReservationView),
        (status = 404, description = "No such reservation, or not the caller's",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn show(
    who: Principal,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<ReservationView>, ApiError> {
    let id: i32 = raw.parse().map_err(|_| not_found(&raw))?;
    let reservation = api
        .store
        .reservation(id)
        .await?
        .filter(|r| who.customer_id().is_none_or(|own| own == r.customer_id))
        .ok_or_else(|| not_found(&raw))?;
    Ok(Json(reservation.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this charger's reservations.
    charger_id: Option<String>,
    /// Only this customer's (a customer token may give only its own id).
    customer_id: Option<i64>,
    /// Only reservations in this status.
    #[param(value_type = Option<ReservationStatus>)]
    status: Option<String>,
    /// Slots ending after this instant.
    #[serde(default, with = "time::serde::rfc3339::option")]
    from: Option<OffsetDateTime>,
    /// Slots starting before this instant.
    #[serde(default, with = "time::serde::rfc3339::option")]
    to: Option<OffsetDateTime>,
    /// At most this many (default 100), ordered by start, then id.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/reservations",
    tag = "reservations",
    operation_id = "listReservations",
    summary = "List reservations",
    description = "The operator lists any; a customer token lists its own only. `from`/`to` \
        select slots overlapping `[from, to)`. Ordered by start, then id.",
    params(ListQuery),
    responses(
        (status = 200, description = "The reservations", body = Vec<ReservationView>),
        (status = 403, description = "A customer token asked for another customer's `customerId`",
            body = Problem, content_type = "application/problem+json"),
        (
            status = 422,
            description = "A query parameter is unknown, of the wrong type, or out of range",
            body = Problem, content_type = "application/problem+json"
        )
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn list(
    who: Principal,
    State(api): State<Arc<Api>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ReservationView>>, ApiError> {
    let Query(q) = query.map_err(|e| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid query").detail(e.body_text())
    })?;
    let customer_id = match (who.customer_id(), q.customer_id) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::Forbidden {
                detail: "a customer lists its own reservations only".into(),
                field: Some("customerId"),
            });
        }
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    let mut bad = FieldErrors::default();
    let status = q.status.as_deref().and_then(|s| {
        bad.check(
            "status",
            ReservationStatus::parse(s).ok_or(format!("unknown status {s:?}")),
        )
    });
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    bad.check(
        "limit",
        (1..=MAX_PAGE)
            .contains(&limit)
            .then_some(())
            .ok_or(format!("must be from 1 to {MAX_PAGE}")),
    );
    bad.finish()?;
    let charger_id = match q.charger_id.as_deref() {
        None => None,
        // An id that cannot exist matches nothing.
        Some(raw) => match ChargeBoxId::parse(raw) {
            Ok(id) => Some(id),
            Err(_) => return Ok(Json(Vec::new())),
        },
    };
    let reservations = api
        .store
        .reservations(&ReservationFilter {
            charger_id,
            customer_id,
            status,
            from: q.from,
            to: q.to,
            limit,
        })
        .await?;
    Ok(Json(reservations.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    delete,
    path = "/api/v1/reservations/{id}",
    tag = "reservations",
    operation_id = "cancelReservation",
    summary = "Cancel a reservation",
    description = "The owner or the operator cancels a BOOKED reservation; the answer is the \
        reservation with status CANCELLED. Another customer's answers 404 (existence is not \
        revealed).",
    params(("id" = i32, Path, description = "The reservation id")),
    responses(
        (status = 200, description = "Cancelled", body = ReservationView),
        (status = 404, description = "No such reservation, or not the caller's",
            body = Problem, content_type = "application/problem+json"),
        (
            status = 409,
            description = "The reservation is not BOOKED (already started, ended, cancelled or \
                expired)",
            body = Problem, content_type = "application/problem+json"
        )
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn cancel(
    who: Principal,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
) -> Result<Json<ReservationView>, ApiError> {
    let id: i32 = raw.parse().map_err(|_| not_found(&raw))?;
    match api.store.cancel_reservation(id, who.customer_id()).await {
        Ok(r) => Ok(Json(r.into())),
        Err(CancelError::NotFound) => Err(not_found(&raw)),
        Err(other) => Err(other.into()),
    }
}
