//! Operations endpoints without auth: `/healthz` (the process answers) and `/readyz` (the
//! database answers and the server is not draining), for load balancers and Kubernetes probes.

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
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .with_state(central)
}

async fn ready(State(central): State<Arc<Central>>) -> (StatusCode, Json<Value>) {
    if central.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
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
