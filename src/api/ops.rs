//! Operations endpoints without auth: `/healthz` (the process answers) and `/readyz` (the
//! database answers and the server is not draining), for load balancers and Kubernetes probes,
//! and `/metrics` (Prometheus text, rendered by [`crate::metrics`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::central::Central;

pub fn router(central: Arc<Central>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(central)
}

/// The body of `/healthz` (documentation type: the handler writes it with `json!`).
#[derive(utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// The body of `/readyz` (documentation type: the handler writes it with `json!`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready` (200); `draining`, `ledger cannot write`, `database unavailable` or
    /// `database timeout` (503).
    #[schema(example = "ready")]
    pub status: String,
    /// Chargers with an open OCPP WebSocket; only when ready.
    pub chargers_online: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    summary = "Liveness",
    description = "200 while the process runs. No auth.",
    responses((status = 200, description = "The process answers", body = Health)),
    security(())
)]
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "Prometheus text exposition format: chargers connected, OCPP frames and \
        CALLERRORs, outbound CALL outcomes and latency, bookings, HTTP requests and latency, REST \
        requests shed. Never shed itself. No auth.",
    responses((status = 200, description = "The metrics of this process",
        body = String, content_type = "text/plain")),
    security(())
)]
async fn metrics(State(central): State<Arc<Central>>) -> axum::response::Response {
    let mut per_node = vec![(
        central.node_id().to_string(),
        central.sessions.online_count(),
    )];
    if let Some(cluster) = central.sessions.cluster() {
        per_node.extend(cluster.held_elsewhere());
    }
    crate::metrics::cluster_sampled(central.node_id(), &per_node);
    crate::metrics::render(
        central.sessions.online_count(),
        central.sessions.open_breakers(),
    )
    .await
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    summary = "Readiness",
    description = "200 when the database answers (within 2 s), the ledger can write and the \
        server is not draining, else 503 (plain JSON, not problem+json, so probes can read the \
        reason). No auth.",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness,
            example = json!({"status": "ready", "chargersOnline": 3})),
        (status = 503, description = "Draining, or the database does not answer", body = Readiness,
            example = json!({"status": "database unavailable"}))
    ),
    security(())
)]
async fn ready(State(central): State<Arc<Central>>) -> (StatusCode, Json<Value>) {
    if central.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    if !central.store.can_write() {
        tracing::error!("readiness: the ledger can no longer write");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "ledger cannot write"})),
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), central.store.ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "chargersOnline": central.sessions.online_count()})),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "database unavailable"})),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "database timeout"})),
        ),
    }
}
