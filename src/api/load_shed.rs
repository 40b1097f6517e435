//! REST load shedding: at most `rest_max_concurrency` requests under `/api/` run at once; one
//! more is answered 503 with `Retry-After: 1` at once instead of queueing, so an overload shows
//! as fast refusals rather than ever-growing latency. Charger sessions (`/ocpp/…`), probes,
//! `/metrics` and the docs are never shed: they must answer exactly when the REST API cannot.
//! A request's body is read (within [`BODY_READ_TIMEOUT`], at most [`MAX_BODY`] bytes) before its
//! permit is taken, so clients slow to send a body hold their own connection, never a permit.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::problem::Problem;

/// The paths the limit applies to.
const LIMITED_PREFIX: &str = "/api/";

/// The largest REST body read; a larger one is answered 413.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// How long a client has to send a whole body; past it the request is answered 408 and the
/// connection closed.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    // A firmware upload is streamed to disk by its handler, under its own size limit and idle
    // timeout, and holds no permit for as long as the upload takes.
    if request.method() == axum::http::Method::POST
        && request.uri().path() == crate::api::files::FIRMWARE_UPLOAD_PATH
    {
        return next.run(request).await;
    }
    let request = match read_body(request).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
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

/// The request with its body read into memory, or the answer to a body that is too slow, too
/// large or broken (the connection is then closed: the rest of the body is not read).
async fn read_body(request: Request) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let read = async move {
        let mut stream = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                refusal(
                    Problem::new(StatusCode::BAD_REQUEST, "Unreadable body").detail(e.to_string()),
                )
            })?;
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(bytes)) => Ok(Request::from_parts(parts, Body::from(bytes))),
        Ok(Err(refused)) => Err(refused),
        Err(_) => Err(refusal(
            Problem::new(StatusCode::REQUEST_TIMEOUT, "Request timeout").detail(format!(
                "the body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            )),
        )),
    }
}

fn too_large() -> Response {
    refusal(
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Body too large")
            .detail(format!("a body may be at most {MAX_BODY} bytes")),
    )
}

/// A problem answered on a connection that is then closed.
fn refusal(problem: Problem) -> Response {
    let mut response = problem.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
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
