//! The one error type of the REST handlers: each variant says which HTTP status it answers, and
//! the lower layers' errors (store, booking, cancel, charger calls) convert into it with `?`.
//! Everything leaves as problem+json through [`Problem`]; an internal error is logged with its
//! details here and answered with a generic 500, never with the details.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::booking::store::{BookError, CancelError, StoreError};
use crate::central::CallFailure;
use crate::domain::instant::rfc3339;
use crate::domain::placement::PlacementError;
use crate::domain::remote_start::RemoteStartError;
use crate::domain::reservation::{InvalidSlot, TimeSlot};
use crate::problem::Problem;

/// How long a client should wait before retrying a charger whose breaker is open or whose call
/// queue is full.
const CHARGER_RETRY_AFTER: &str = "30";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 with `WWW-Authenticate: Bearer`: no token, or one that is not valid.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 429 with `Retry-After` (seconds): too many failed logins from this address.
    #[error("too many failed logins")]
    Throttled(u64),
    /// 422: one member of the request is invalid; `field` names it (a JSON path).
    #[error("{field}: {reason}")]
    InvalidField { field: String, reason: String },
    /// 422: several members are invalid; `field` names the first, `detail` every one.
    #[error("{}", join(.0))]
    InvalidFields(Vec<(String, String)>),
    /// 404: the thing named in the path does not exist (or is not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// 404: the charger named in the path does not exist.
    #[error("no charger {0:?}")]
    NoSuchCharger(String),
    /// 403: the caller may not act for whom it named; `field` names the member.
    #[error("{detail}")]
    Forbidden {
        detail: String,
        field: Option<&'static str>,
    },
    /// 409: the request conflicts with the state of the ledger.
    #[error("{title}: {detail}")]
    Conflict {
        title: &'static str,
        detail: String,
        field: Option<&'static str>,
    },
    /// 409 with the `conflict` member: the slot overlaps this taken one (never its holder).
    #[error("the slot overlaps a reservation")]
    SlotTaken(TimeSlot),
    /// 409 offline, 504 silent, 503 + Retry-After failing fast or queue full, 502 CALLERROR or
    /// a broken answer: a call to a charger that did not give an answer.
    #[error(transparent)]
    Charger(CallFailure),
    /// 500: logged with its details, answered without them.
    #[error("{0}")]
    Internal(String),
    /// Any other answer already formed as a problem (400, 415, 401…), e.g. by an extractor.
    #[error("{}", .0.title)]
    Problem(Problem),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidField { .. } | ApiError::InvalidFields(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::NotFound(_) | ApiError::NoSuchCharger(_) => StatusCode::NOT_FOUND,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } | ApiError::SlotTaken(_) => StatusCode::CONFLICT,
            ApiError::Charger(f) => charger_status(f).0,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Problem(p) => p.status(),
        }
    }

    fn into_problem(self) -> Problem {
        match self {
            ApiError::Unauthorized(detail) => {
                Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized").detail(detail)
            }
            ApiError::Throttled(seconds) => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many failed logins").detail(
                    format!(
                        "too many invalid bearer tokens from this address; retry in {seconds} s"
                    ),
                )
            }
            ApiError::InvalidField { field, reason } => Problem::invalid_field(&field, reason),
            ApiError::InvalidFields(all) => {
                let first = all.first().map(|(f, _)| f.clone()).unwrap_or_default();
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request field")
                    .detail(join(&all))
                    .field(first)
            }
            ApiError::NotFound(what) => Problem::not_found(what),
            e @ ApiError::NoSuchCharger(_) => Problem::not_found(e.to_string()),
            ApiError::Forbidden { detail, field } => {
                let p = Problem::new(StatusCode::FORBIDDEN, "Forbidden").detail(detail);
                match field {
                    Some(f) => p.field(f),
                    None => p,
                }
            }
            ApiError::Conflict {
                title,
                detail,
                field,
            } => {
                let p = Problem::new(StatusCode::CONFLICT, title).detail(detail);
                match field {
                    Some(f) => p.field(f),
                    None => p,
                }
            }
            ApiError::SlotTaken(taken) => {
                let (start, end) = (rfc3339(taken.start()), rfc3339(taken.end()));
                let mut p = Problem::new(StatusCode::CONFLICT, "Slot taken")
                    .detail(format!("the connector is reserved from {start} to {end}"));
                p.conflict = Some(Box::new(json!({"start": start, "end": end})));
                p
            }
            ApiError::Charger(failure) => match charger_status(&failure) {
                (StatusCode::INTERNAL_SERVER_ERROR, _) => Problem::internal(&failure),
                (status, title) => Problem::new(status, title).detail(failure.to_string()),
            },
            ApiError::Internal(cause) => Problem::internal(&cause),
            ApiError::Problem(p) => p,
        }
    }
}

fn join(all: &[(String, String)]) -> String {
    all.iter()
        .map(|(field, reason)| format!("{field}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Collects what is wrong with several members, so one answer names every bad one.
#[derive(Default)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    /// The value, or `None` with the error noted against `field`.
    pub fn check<T, E: std::fmt::Display>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.0.push((field.to_string(), e.to_string())))
            .ok()
    }

    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.len() {
            0 => Ok(()),
            1 => {
                let (field, reason) = self.0.into_iter().next().unwrap_or_default();
                Err(ApiError::InvalidField { field, reason })
            }
            _ => Err(ApiError::InvalidFields(self.0)),
        }
    }
}

/// A call the charger did not answer, as HTTP: offline or not booted is a state conflict, silence a gateway
/// timeout, a breaker or a full queue a 503 to retry later, a broken answer a bad gateway.
fn charger_status(failure: &CallFailure) -> (StatusCode, &'static str) {
    match failure {
        CallFailure::Offline | CallFailure::Disconnected => {
            (StatusCode::CONFLICT, "Charger not connected")
        }
        CallFailure::NotBooted => (StatusCode::CONFLICT, "Charger not booted"),
        CallFailure::Timeout => (StatusCode::GATEWAY_TIMEOUT, "Charger did not answer"),
        CallFailure::BreakerOpen | CallFailure::QueueFull => {
            (StatusCode::SERVICE_UNAVAILABLE, "Charger not answering")
        }
        CallFailure::CallError { .. } | CallFailure::BadResponse { .. } => {
            (StatusCode::BAD_GATEWAY, "Charger refused the call")
        }
        CallFailure::Encode(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
        CallFailure::ClusterUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "Cluster unavailable"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = matches!(self, ApiError::Charger(_))
            && self.status() == StatusCode::SERVICE_UNAVAILABLE;
        let challenge = matches!(self, ApiError::Unauthorized(_));
        let throttled = match self {
            ApiError::Throttled(seconds) => Some(seconds),
            _ => None,
        };
        let mut response = self.into_problem().into_response();
        if let Some(seconds) = throttled {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if retry {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(CHARGER_RETRY_AFTER),
            );
        }
        if challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        ApiError::Problem(p)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict {
                title: "Conflict",
                detail: what,
                field: None,
            },
            other => ApiError::internal(other),
        }
    }
}

impl From<BookError> for ApiError {
    fn from(e: BookError) -> Self {
        match e {
            BookError::UnknownCharger(id) => {
                ApiError::invalid("chargerId", format!("no charger {id}"))
            }
            BookError::UnknownConnector(c) => {
                ApiError::invalid("connectorId", format!("the charger has no connector {c}"))
            }
            e @ BookError::NotInService(..) => ApiError::Conflict {
                title: "Charger not in service",
                detail: e.to_string(),
                field: Some("chargerId"),
            },
            BookError::UnknownCustomer(id) => {
                ApiError::invalid("customerId", format!("no customer {id}"))
            }
            e @ BookError::OutOfService(_) => ApiError::Conflict {
                title: "Connector out of service",
                detail: e.to_string(),
                field: Some("connectorId"),
            },
            BookError::Overlap(taken) => ApiError::SlotTaken(taken),
            BookError::Store(e) => e.into(),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::NotFound => ApiError::NotFound("no such reservation".into()),
            CancelError::NotCancellable(status) => ApiError::Conflict {
                title: "Not cancellable",
                detail: format!("the reservation is {status}; only BOOKED can be cancelled"),
                field: None,
            },
            CancelError::Store(e) => e.into(),
        }
    }
}

impl From<PlacementError> for ApiError {
    fn from(e: PlacementError) -> Self {
        let field = match &e {
            PlacementError::ForAnother => {
                return ApiError::Forbidden {
                    detail: e.to_string(),
                    field: Some("customerId"),
                };
            }
            PlacementError::CustomerRequired | PlacementError::UnknownCustomer(_) => "customerId",
            PlacementError::NoIdTag | PlacementError::ForeignIdTag => "idTag",
            PlacementError::Slot(InvalidSlot::InPast) => "start",
            PlacementError::Slot(_) => "end",
        };
        ApiError::invalid(field, e)
    }
}

impl From<RemoteStartError> for ApiError {
    fn from(e: RemoteStartError) -> Self {
        let field = match &e {
            RemoteStartError::NoCurrentReservation => return ApiError::NotFound(e.to_string()),
            RemoteStartError::ConnectorZero | RemoteStartError::NoSuchConnector(_) => "connectorId",
            RemoteStartError::ForeignIdTag
            | RemoteStartError::IdTagRequired
            | RemoteStartError::IdTagTooLong => "idTag",
        };
        ApiError::invalid(field, e)
    }
}

impl From<CallFailure> for ApiError {
    fn from(f: CallFailure) -> Self {
        ApiError::Charger(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_failures_answer_their_status() {
        let cases = [
            (CallFailure::Offline, 409),
            (CallFailure::Disconnected, 409),
            (CallFailure::NotBooted, 409),
            (CallFailure::Timeout, 504),
            (CallFailure::BreakerOpen, 503),
            (CallFailure::QueueFull, 503),
            (CallFailure::Encode("x".into()), 500),
        ];
        for (failure, status) in cases {
            let r = ApiError::from(failure).into_response();
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(
                r.headers().contains_key(header::RETRY_AFTER),
                status == 503,
                "Retry-After only on 503"
            );
        }
    }

    #[test]
    fn internal_details_are_not_sent() {
        let p = ApiError::internal("password=hunter2 in the DSN").into_problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.unwrap_or_default().contains("hunter2"));
    }

    #[test]
    fn store_conflicts_are_409() {
        let e: ApiError = StoreError::Conflict("charger CP-1 exists".into()).into();
        assert_eq!(e.status(), StatusCode::CONFLICT);
    }
}
