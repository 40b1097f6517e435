//! `GET /api/v1/chargers/{id}/security-events`: a charger's security audit trail, what it
//! reported (SecurityEventNotification) and what the server saw (refused CSRs, certificates it
//! signed, a charger refused below its security profile), newest first, from the ledger.
//! Operator only. A deleted charger's trail is still shown; an id with neither a charger nor
//! events is 404.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::Api;
use super::ApiError;
use super::auth::Operator;
use crate::domain::ChargeBoxId;
use crate::domain::security::SecurityEvent;
use crate::problem::Problem;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub fn routes() -> Router<Arc<Api>> {
    Router::new().route("/chargers/{id}/security-events", get(list))
}

/// Who saw a security event.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) enum SecuritySource {
    /// The charger reported it (SecurityEventNotification).
    Charger,
    /// The central system saw it.
    Server,
}

/// One security event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SecurityEventView {
    /// Ascending in the order events were recorded; page with `before`.
    id: i64,
    source: SecuritySource,
    /// The event type: the whitepaper's (`FirmwareUpdated`, `InvalidCentralSystemCertificate`,
    /// …), a vendor's own, or the server's (`SignCertificateRefused`, …). At most 50 characters.
    #[schema(example = "InvalidCentralSystemCertificate")]
    kind: String,
    /// When it happened, as its source says.
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    /// When the server recorded it.
    #[serde(with = "time::serde::rfc3339")]
    received_at: OffsetDateTime,
    /// Details, at most 255 characters.
    tech_info: Option<String>,
    /// The address it came from, when known.
    #[schema(example = "192.0.2.10")]
    peer: Option<String>,
}

impl SecurityEventView {
    fn of(id: i64, e: SecurityEvent) -> Self {
        SecurityEventView {
            id,
            source: match e.source {
                crate::domain::security::Source::Charger => SecuritySource::Charger,
                crate::domain::security::Source::Server => SecuritySource::Server,
            },
            kind: e.kind,
            at: e.at,
            received_at: e.received_at,
            tech_info: e.tech_info,
            peer: e.peer.map(|p| p.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Paging: only events older than this id (the last `id` of the page before).
    before: Option<i64>,
    /// At most this many (default 100), newest first.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/v1/chargers/{id}/security-events",
    tag = "chargers",
    operation_id = "listChargerSecurityEvents",
    summary = "List a charger's security events",
    description = "Operator only. What the charger reported with SecurityEventNotification and \
        what the server saw (a CSR refused or signed, the charger's answer to CertificateSigned, \
        a connection refused below the charger's security profile), newest first; page with \
        `before` (the last id seen) and `limit`. Kept after the charger is deleted.",
    params(("id" = String, Path, description = "The charge box id"), ListQuery),
    responses(
        (status = 200, description = "The events, newest first", body = Vec<SecurityEventView>),
        (
            status = 400,
            description = "A query parameter cannot be read (unknown, or of the wrong type)",
            body = Problem, content_type = "application/problem+json"
        ),
        (status = 404, description = "No such charger, and no events for its id",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit` or `before` is out of range",
            body = Problem, content_type = "application/problem+json")
    ),
    security(("operatorOrCustomerToken" = []))
)]
async fn list(
    _: Operator,
    State(api): State<Arc<Api>>,
    Path(raw): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<SecurityEventView>>, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::Problem(
            Problem::new(StatusCode::BAD_REQUEST, "Invalid query").detail(e.body_text()),
        )
    })?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be from 1 to {MAX_PAGE}"),
        ));
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::invalid("before", "must be 1 or more"));
    }
    let id = ChargeBoxId::parse(&raw).map_err(|_| ApiError::NoSuchCharger(raw.clone()))?;
    let events = api.store.security_events(&id, q.before, limit).await?;
    if events.is_empty() && api.store.charger(&id).await?.is_none() {
        // A later page of a deleted charger's trail is empty too, but it had a first page.
        let any = q.before.is_some() && !api.store.security_events(&id, None, 1).await?.is_empty();
        if !any {
            return Err(ApiError::NoSuchCharger(raw));
        }
    }
    Ok(Json(
        events
            .into_iter()
            .map(|(id, e)| SecurityEventView::of(id, e))
            .collect(),
    ))
}
