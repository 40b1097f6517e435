//! REST load shedding: at most `rest_max_concurrency` requests under `/api/` run at once; one
//! more is answered 503 with `Retry-After: 1` at once instead of queueing, so an overload shows
//! as fast refusals rather than ever-growing latency. Charger sessions (`/ocpp/…`), probes,
//! `/metrics` and the docs are never shed: they must answer exactly when the REST API cannot.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::problem::Problem;

/// The paths the limit applies to.
const LIMITED_PREFIX: &str = "/api/";

/// The permits REST requests take; one per `rest_max_concurrency`.
#[derive(Clone)]
pub struct RestLimit(Arc<Semaphore>);

impl RestLimit {
    pub fn new(max_concurrency: usize) -> Self {
        RestLimit(Arc::new(Semaphore::new(max_concurrency)))
    }
}

/// Middleware: take a permit for a REST request or answer 503; the permit is held until the
/// handler has produced its response.
pub async fn shed_rest(State(limit): State<RestLimit>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with(LIMITED_PREFIX) {
        return next.run(request).await;
    }
    match limit.0.try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(_) => {
            crate::metrics::rest_shed();
            overloaded()
        }
    }
}

/// 503 problem+json with `Retry-After: 1`.
fn overloaded() -> Response {
    let mut response = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Overloaded")
        .detail("too many requests are running; retry after a second")
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
